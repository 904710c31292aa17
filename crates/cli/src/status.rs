//! `status`: what Billing → Subscription shows per organization, from the store alone.

use crate::state::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sponsorship_core::ids::{CloudOrganizationId, OrganizationId};
use sponsorship_core::schedule::{SyncErrorRecord, display_time};

use crate::output::{Out, exit, print_json};
use crate::resolve::resolve_org;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CountsJson {
    requested: usize,
    sent: usize,
    active: usize,
    removed_awaiting_sync: usize,
    revoke_when_expired: usize,
}

/// The last error as `status --json` shows it: the category by its stable kebab-case name, as
/// in error output.
#[derive(Serialize)]
struct ErrorJson {
    category: &'static str,
    message: String,
    at: DateTime<Utc>,
}

impl From<SyncErrorRecord> for ErrorJson {
    fn from(e: SyncErrorRecord) -> Self {
        Self {
            category: e.category.name(),
            message: e.message,
            at: e.at,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusJson {
    id: OrganizationId,
    name: String,
    billing_sync_enabled: bool,
    cloud_organization_id: Option<CloudOrganizationId>,
    last_sync: Option<DateTime<Utc>>,
    last_attempt: Option<DateTime<Utc>>,
    last_error: Option<ErrorJson>,
    next_due: Option<DateTime<Utc>>,
    last_license_sync: Option<DateTime<Utc>>,
    counts: CountsJson,
    awaiting_sync: usize,
    #[serde(skip)]
    token_last_four: Option<String>,
}

/// `status`
/// `status`; with `check`, exit [`exit::LAST_SYNC_FAILED`] when the last sync of an
/// organization with billing sync enabled failed.
pub(crate) fn status(db: &State, out: Out, org: Option<&str>, check: bool) -> anyhow::Result<u8> {
    let report = db.read(|tx| {
        let orgs = match org {
            Some(ident) => vec![resolve_org(tx, ident)?],
            None => tx.organizations()?,
        };
        let mut v = Vec::new();
        for o in orgs {
            let conn = tx.connection(o.org.id)?;
            let state = tx.sync_state(o.org.id)?;
            let c = tx.status_counts(o.org.id)?;
            v.push(StatusJson {
                id: o.org.id,
                name: o.org.name,
                billing_sync_enabled: conn.as_ref().is_some_and(|c| c.enabled),
                cloud_organization_id: o.cloud_organization_id,
                last_sync: state.last_success,
                last_attempt: state.last_attempt,
                last_error: state.last_error.map(ErrorJson::from),
                next_due: state.next_due,
                last_license_sync: state.last_license_sync,
                counts: CountsJson {
                    requested: c.requested,
                    sent: c.sent,
                    active: c.active,
                    removed_awaiting_sync: c.removed_awaiting_sync,
                    revoke_when_expired: c.revoke_when_expired,
                },
                awaiting_sync: c.awaiting_sync,
                token_last_four: conn.map(|c| c.key.last_four()),
            });
        }
        Ok::<_, anyhow::Error>(v)
    })?;
    // `--check`: the organizations whose billing sync is on and whose last sync failed.
    let mut code = exit::OK;
    for s in report.iter().filter(|s| check && s.billing_sync_enabled) {
        if let Some(e) = &s.last_error {
            code = exit::LAST_SYNC_FAILED;
            if !out.json {
                eprintln!(
                    "{}: the last sync failed ({}): {}",
                    s.name, e.category, e.message
                );
            }
        }
    }
    if out.json {
        print_json(&serde_json::json!({ "organizations": report }))?;
        return Ok(code);
    }
    if report.is_empty() {
        println!(
            "No organizations. Create one with `sponsorctl org add --name NAME --plan enterprise-annually`."
        );
    }
    for (i, s) in report.iter().enumerate() {
        if i > 0 {
            println!();
        }
        print!("{}", status_text(s));
    }
    Ok(code)
}

fn status_text(s: &StatusJson) -> String {
    use std::fmt::Write;
    let mut t = String::new();
    let _ = writeln!(t, "{} ({})", s.name, s.id);
    let billing = match (&s.token_last_four, s.billing_sync_enabled) {
        (None, _) => "not set up".to_owned(),
        (Some(k), true) => format!("enabled (token {k})"),
        (Some(k), false) => format!("disabled (token {k})"),
    };
    let _ = writeln!(t, "  Billing sync:        {billing}");
    let _ = writeln!(
        t,
        "  Cloud organization:  {}",
        s.cloud_organization_id.map_or_else(
            || "not set (import the license)".to_owned(),
            |c| c.to_string()
        )
    );
    let _ = writeln!(t, "  Last sync:           {}", display_time(s.last_sync));
    let _ = writeln!(t, "  Last attempt:        {}", display_time(s.last_attempt));
    let _ = writeln!(
        t,
        "  Last error:          {}",
        s.last_error.as_ref().map_or_else(
            || "none".to_owned(),
            |e| format!(
                "[{}] {} ({})",
                e.category,
                e.message,
                display_time(Some(e.at))
            )
        )
    );
    let next = if s.billing_sync_enabled {
        s.next_due.map_or_else(
            || "at the first `sync --daemon` run".to_owned(),
            |t| display_time(Some(t)),
        )
    } else {
        "not scheduled (billing sync off)".to_owned()
    };
    let _ = writeln!(t, "  Next due:            {next}");
    let _ = writeln!(
        t,
        "  Last license sync:   {}",
        display_time(s.last_license_sync)
    );
    let c = &s.counts;
    let _ = writeln!(
        t,
        "  Sponsorships:        {} Requested · {} Sent · {} Active · {} Removed (awaiting sync) · {} Revoke when expired",
        c.requested, c.sent, c.active, c.removed_awaiting_sync, c.revoke_when_expired
    );
    let _ = writeln!(t, "  Awaiting sync:       {}", s.awaiting_sync);
    t
}
