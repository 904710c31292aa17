//! Finding what a command names: an organization by id or name, a member by id or e-mail,
//! and e-mail addresses checked before they are stored.

use sponsorship_core::email::{self, INVALID_EMAIL_TEXT};
use sponsorship_core::ids::{MemberId, OrganizationId};
use sponsorship_core::org::OrgRecord;
use sponsorship_core::org::{Member, Organization};

use crate::state::Tx;

use crate::output::{CliError, bail};

/// Finds an organization by id or (case-insensitive) name.
pub(crate) fn resolve_org(tx: &dyn Tx, ident: &str) -> anyhow::Result<OrgRecord> {
    let orgs = tx.organizations()?;
    let ident = ident.trim();
    let by_id = ident.parse::<OrganizationId>().ok();
    let found = orgs
        .into_iter()
        .find(|o| Some(o.org.id) == by_id || o.org.name.eq_ignore_ascii_case(ident));
    match found {
        Some(o) => Ok(o),
        None => bail(CliError::not_found(format!(
            "unknown organization {ident:?}: give its id or name (see `sponsorctl org list`, or create it with `sponsorctl org add`)"
        ))),
    }
}

/// Finds a member of the organization by id or e-mail.
pub(crate) fn resolve_member(
    tx: &dyn Tx,
    org: &Organization,
    ident: &str,
) -> anyhow::Result<Member> {
    let ident = ident.trim();
    let by_id = ident.parse::<MemberId>().ok();
    let found = tx
        .members(org.id)?
        .into_iter()
        .find(|m| Some(m.id) == by_id || email::same_email(&m.email, ident));
    match found {
        Some(m) => Ok(m),
        None => bail(CliError::not_found(format!(
            "unknown member {ident:?} in organization {:?}: give the member's id or e-mail (see `sponsorctl member list --org {}`)",
            org.name,
            crate::output::shell_word(&org.name)
        ))),
    }
}

pub(crate) fn check_email(what: &str, address: &str) -> anyhow::Result<()> {
    email::validate_strict_email(address).map_err(|reason| {
        CliError::invalid(format!(
            "{what} {address:?} is not accepted: {reason} ({INVALID_EMAIL_TEXT})"
        ))
        .into()
    })
}
