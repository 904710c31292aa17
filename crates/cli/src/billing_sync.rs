//! `billing-sync set-token|show|enable|disable`: the billing sync connection.

use std::io::{IsTerminal, Read};
use std::path::Path;

use anyhow::Context;
use chrono::Utc;
use sponsorship_core::org::OrgRecord;
use sponsorship_core::schedule::display_time;
use sponsorship_core::secret::BillingSyncKey;

use crate::state::State;

use crate::confirm::{Needed, confirmed};
use crate::input::{TOKEN_LIMIT, read_text};
use crate::output::{CliError, Out, bail, print_json};
use crate::resolve::resolve_org;

/// Reads the token from a file or standard input; trims and validates it. The value is never
/// echoed, not even in the error.
fn read_token(token_file: Option<&Path>) -> anyhow::Result<BillingSyncKey> {
    let raw = if let Some(path) = token_file {
        read_text(path, TOKEN_LIMIT, "the token file")?
    } else {
        {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                // Read from the terminal with echo off: the token never lands in scrollback.
                rpassword::prompt_password(
                    "Paste the billing sync token from the cloud organization (Billing > Subscription; it is not shown), then press Enter: ",
                )
                .context("reading the token from the terminal")?
            } else {
                let mut all = String::new();
                stdin
                    .take(64 * 1024)
                    .read_to_string(&mut all)
                    .context("reading standard input")?;
                all
            }
        }
    };
    BillingSyncKey::parse(&raw).map_err(|e| {
        CliError::invalid(format!(
            "{e} (the token is read from --token-file or standard input)"
        ))
        .into()
    })
}

/// Checks a token against the cloud before it is stored.
pub(crate) type Verifier<'a> = &'a dyn Fn(&OrgRecord, &BillingSyncKey) -> anyhow::Result<()>;

/// `billing-sync set-token` (without `--verify`; the caller verifies first when asked).
pub(crate) fn set_token(
    db: &State,
    out: Out,
    org: &str,
    token_file: Option<&Path>,
    verify: Option<Verifier<'_>>,
) -> anyhow::Result<()> {
    let key = read_token(token_file)?;
    let now = Utc::now();
    let rec = db.read(|tx| resolve_org(tx, org))?;
    if let Some(verify) = verify {
        verify(&rec, &key)?;
    }
    let enabled = confirmed(out, |replace| {
        db.write(|tx| {
            // Resolve again inside the write transaction: the organization must still exist.
            let o = resolve_org(tx, &rec.org.id.to_string())?;
            if let Some(stored) = tx.connection(o.org.id)?
                && !replace
                && !stored.key.matches(&key.to_raw())
            {
                return Err(Needed(format!(
                    "{} has the billing sync token {} stored; replace it with {}?",
                    o.org.name,
                    stored.key.last_four(),
                    key.last_four()
                ))
                .into());
            }
            tx.set_key(o.org.id, &key, now)?;
            Ok::<_, anyhow::Error>(tx.connection(o.org.id)?.is_some_and(|c| c.enabled))
        })
    })?;
    tracing::info!(org = %rec.org.id, "billing sync token stored");
    if out.json {
        return print_json(&serde_json::json!({
            "organizationId": rec.org.id,
            "token": key.last_four(),
            "enabled": enabled,
            "cloudOrganizationId": rec.cloud_organization_id,
        }));
    }
    println!(
        "Stored the billing sync token {} for {}; billing sync is {}.",
        key.last_four(),
        rec.org.name,
        if enabled { "enabled" } else { "disabled" }
    );
    if rec.cloud_organization_id.is_none() {
        println!(
            "Note: {} has no cloud organization id yet: import its license (`sponsorctl license import --org {} FILE`).",
            rec.org.name,
            crate::output::shell_word(&rec.org.name)
        );
    }
    Ok(())
}

/// `billing-sync show`
pub(crate) fn show_connection(db: &State, out: Out, org: &str) -> anyhow::Result<()> {
    let (rec, conn, state) = db.read(|tx| {
        let o = resolve_org(tx, org)?;
        let c = tx.connection(o.org.id)?;
        let s = tx.sync_state(o.org.id)?;
        Ok::<_, anyhow::Error>((o, c, s))
    })?;
    if out.json {
        return print_json(&serde_json::json!({
            "organizationId": rec.org.id,
            "configured": conn.is_some(),
            "enabled": conn.as_ref().is_some_and(|c| c.enabled),
            "token": conn.as_ref().map(|c| c.key.last_four()),
            "cloudOrganizationId": rec.cloud_organization_id,
            "lastLicenseSync": state.last_license_sync,
            "updatedAt": conn.as_ref().map(|c| c.updated_at),
        }));
    }
    println!("Organization:        {} ({})", rec.org.name, rec.org.id);
    match &conn {
        Some(c) => {
            println!("Billing sync token:  {}", c.key.last_four());
            println!(
                "Billing sync:        {}",
                if c.enabled { "enabled" } else { "disabled" }
            );
        }
        None => println!(
            "Billing sync token:  not set (`sponsorctl billing-sync set-token --org {}`)",
            crate::output::shell_word(&rec.org.name)
        ),
    }
    println!(
        "Cloud organization:  {}",
        rec.cloud_organization_id.map_or_else(
            || "not set (import the license)".to_owned(),
            |c| c.to_string()
        )
    );
    println!(
        "Last license sync:   {}",
        display_time(state.last_license_sync)
    );
    Ok(())
}

/// `billing-sync enable|disable`
pub(crate) fn set_enabled(db: &State, out: Out, org: &str, enabled: bool) -> anyhow::Result<()> {
    let rec = db.write(|tx| {
        let o = resolve_org(tx, org)?;
        if !tx.set_enabled(o.org.id, enabled, Utc::now())? {
            return bail(CliError::failure(
                "config",
                format!(
                    "{} has no billing sync token yet: set one first (`sponsorctl billing-sync set-token --org {}`)",
                    o.org.name,
                    crate::output::shell_word(&o.org.name)
                ),
            ));
        }
        Ok(o)
    })?;
    if out.json {
        return print_json(&serde_json::json!({"organizationId": rec.org.id, "enabled": enabled}));
    }
    println!(
        "Billing sync is {} for {}.",
        if enabled { "enabled" } else { "disabled" },
        rec.org.name
    );
    Ok(())
}

/// `billing-sync delete`: removes the connection and its token.
pub(crate) fn delete(db: &State, out: Out, org: &str) -> anyhow::Result<()> {
    let (rec, deleted) = db.write(|tx| {
        let o = resolve_org(tx, org)?;
        let deleted = tx.delete_connection(o.org.id)?;
        Ok::<_, anyhow::Error>((o, deleted))
    })?;
    if out.json {
        return print_json(&serde_json::json!({"organizationId": rec.org.id, "deleted": deleted}));
    }
    if deleted {
        println!(
            "Deleted the billing sync connection of {}: it is not synced until a token is set again (`sponsorctl billing-sync set-token --org {}`).",
            rec.org.name,
            crate::output::shell_word(&rec.org.name)
        );
    } else {
        println!(
            "{} has no billing sync connection: nothing to delete.",
            rec.org.name
        );
    }
    Ok(())
}
