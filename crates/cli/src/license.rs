//! `license import|sync`: the organization's license, checked before it is stored; "Sync
//! license" fetches it from the cloud.

use std::path::Path;

use chrono::Utc;
use serde_json::json;
use sponsorship_core::license::{LicenseError, OrganizationLicense};
use sponsorship_core::schedule::{ErrorCategory, display_time};
use store_sqlite::SqliteStore;

use crate::output::{CliError, Out, exit, print_json};
use crate::remote::{UNSUPPORTED_VERSION, client_from_env, cloud_error, open_env};
use crate::resolve::resolve_org;
use crate::synccmd::target_of;

fn license_refused(e: &LicenseError) -> anyhow::Error {
    match e {
        LicenseError::UnsupportedVersion { .. } => CliError::of(
            ErrorCategory::UnsupportedVersion,
            format!("{UNSUPPORTED_VERSION} ({e})"),
        )
        .into(),
        LicenseError::Malformed(_) => CliError::invalid(e.to_string()).into(),
        _ => CliError::refused(e.to_string()).into(),
    }
}

/// `license import`: checks the file, then stores it; the organization takes its cloud id and
/// plan from it. Nothing changes when the check fails.
pub(crate) fn import(
    db: &SqliteStore,
    env_file: &Path,
    out: Out,
    org: &str,
    file: &Path,
) -> anyhow::Result<u8> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        CliError::invalid(format!(
            "cannot read the license file {}: {e}",
            file.display()
        ))
    })?;
    let license = OrganizationLicense::parse(&text).map_err(|e| license_refused(&e))?;
    // The installation id, when the env file has one, must match the license's.
    let installation = open_env(env_file)
        .ok()
        .and_then(|env| env.settings().installation_id);
    license
        .check(installation)
        .map_err(|e| license_refused(&e))?;
    let rec = db.write(|tx| {
        let rec = resolve_org(tx, org)?;
        tx.save_license(rec.org.id, &license, text.trim())
            .map_err(anyhow::Error::new)?;
        Ok::<_, anyhow::Error>(rec)
    })?;
    if out.json {
        print_json(&json!({
            "organizationId": rec.org.id,
            "cloudOrganizationId": license.id,
            "version": license.version,
            "plan": license.plan_type.kebab_name(),
        }))?;
    } else {
        println!(
            "Imported the license of {} (version {}, plan {}): cloud organization id {}.",
            rec.org.name,
            license.version,
            license.plan_type.kebab_name(),
            license.id
        );
        if rec.cloud_organization_id.is_some_and(|c| c != license.id) {
            println!(
                "Note: the cloud organization id changed from {}: a billing sync token of the old organization will be refused.",
                rec.cloud_organization_id
                    .map(|c| c.to_string())
                    .unwrap_or_default()
            );
        }
    }
    Ok(exit::OK)
}

/// `license sync`: the "Sync license" button.
pub(crate) async fn license_sync(
    db: &SqliteStore,
    env_file: &Path,
    out: Out,
    org: &str,
) -> anyhow::Result<u8> {
    let rec = db.read(|tx| resolve_org(tx, org))?;
    let Some(current) = rec.license.clone() else {
        return Err(CliError::of(
            ErrorCategory::Config,
            format!(
                "{} has no license yet: import one first (`sponsorctl license import --org {} FILE`)",
                rec.org.name, rec.org.name
            ),
        )
        .into());
    };
    let target = match target_of(db, rec)? {
        Ok(t) => t,
        Err(e) => return Err(e.into()),
    };
    let (client, _) = client_from_env(env_file)?;
    let license = client
        .fetch_license(&target.billing, &current.license_key)
        .await
        .map_err(cloud_error)?;
    let text = serde_json::to_string(&license)?;
    let now = Utc::now();
    db.write(|tx| {
        tx.save_license(target.rec.org.id, &license, &text)?;
        let mut state = tx.sync_state(target.rec.org.id)?;
        state.last_license_sync = Some(now);
        tx.save_sync_state(target.rec.org.id, &state)
    })?;
    if out.json {
        print_json(&json!({
            "organizationId": target.rec.org.id,
            "version": license.version,
            "lastLicenseSync": now,
        }))?;
    } else {
        println!(
            "Synced the license of {} (version {}); last license sync {}.",
            target.rec.org.name,
            license.version,
            display_time(Some(now))
        );
    }
    Ok(exit::OK)
}
