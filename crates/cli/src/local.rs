//! Commands that only touch the state file: organizations, members, sponsorships, the billing
//! sync connection and status. Each one is one transaction: a failed command changes nothing.

use std::io::{IsTerminal, Read};
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sponsorship_core::email::{self, INVALID_EMAIL_TEXT};
use sponsorship_core::ids::{CloudOrganizationId, MemberId, OrganizationId, SponsorshipId};
use sponsorship_core::org::{Member, MemberRole, MemberStatus, Organization};
use sponsorship_core::plan::PlanType;
use sponsorship_core::schedule::{SyncErrorRecord, display_time};
use sponsorship_core::secret::BillingSyncKey;
use sponsorship_core::sponsorship::{
    self, OfferError, OfferKind, OfferRequest, RowChange, Sponsorship, UiStatus,
};

use crate::cli::{RoleArg, StatusArg};
use crate::output::{CliError, Out, bail, print_json, table};
use store_sqlite::{OrgRecord, SqliteStore, Tx};

/// Finds an organization by id or (case-insensitive) name.
pub(crate) fn resolve_org(tx: &Tx<'_>, ident: &str) -> anyhow::Result<OrgRecord> {
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
fn resolve_member(tx: &Tx<'_>, org: &Organization, ident: &str) -> anyhow::Result<Member> {
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
            org.name, org.name
        ))),
    }
}

fn check_email(what: &str, address: &str) -> anyhow::Result<()> {
    email::validate_strict_email(address).map_err(|reason| {
        CliError::invalid(format!(
            "{what} {address:?} is not accepted: {reason} ({INVALID_EMAIL_TEXT})"
        ))
        .into()
    })
}

/// `org add`
pub(crate) fn org_add(
    db: &SqliteStore,
    out: Out,
    name: &str,
    plan: &str,
    cloud_org_id: Option<&str>,
) -> anyhow::Result<()> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 256 {
        return bail(CliError::invalid(
            "the organization name must be 1 to 256 characters",
        ));
    }
    let plan_type: PlanType = plan
        .parse()
        .map_err(|e: sponsorship_core::plan::UnknownPlan| CliError::invalid(e.to_string()))?;
    let cloud = cloud_org_id
        .map(|c| {
            c.parse::<CloudOrganizationId>()
                .map_err(|e| CliError::invalid(format!("--cloud-org-id: {e}")))
        })
        .transpose()?;
    let rec = OrgRecord {
        org: Organization {
            id: OrganizationId::new_random(),
            name: name.to_owned(),
            plan_type,
            enabled: true,
            use_admin_sponsored_families: false,
        },
        cloud_organization_id: cloud,
        license: None,
    };
    db.write(|tx| {
        if tx
            .organizations()?
            .iter()
            .any(|o| o.org.name.eq_ignore_ascii_case(name))
        {
            return bail(CliError::invalid(format!(
                "an organization named {name:?} exists already: choose another name"
            )));
        }
        Ok(tx.insert_organization(&rec, Utc::now())?)
    })?;
    tracing::info!(org = %rec.org.id, plan = %plan_type, "organization created");
    if out.json {
        print_json(&serde_json::json!({"id": rec.org.id}))
    } else {
        println!("{}", rec.org.id);
        Ok(())
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrgJson {
    id: OrganizationId,
    name: String,
    plan: &'static str,
    plan_type: u8,
    enabled: bool,
    cloud_organization_id: Option<CloudOrganizationId>,
    billing_sync_enabled: bool,
    license_version: Option<u32>,
}

/// `org list`
pub(crate) fn org_list(db: &SqliteStore, out: Out) -> anyhow::Result<()> {
    let orgs = db.read(|tx| -> anyhow::Result<_> {
        let mut v = Vec::new();
        for o in tx.organizations()? {
            let conn = tx.connection(o.org.id)?;
            v.push(OrgJson {
                id: o.org.id,
                name: o.org.name.clone(),
                plan: o.org.plan_type.kebab_name(),
                plan_type: o.org.plan_type.number(),
                enabled: o.org.enabled,
                cloud_organization_id: o.cloud_organization_id,
                billing_sync_enabled: conn.is_some_and(|c| c.enabled),
                license_version: o.license.as_ref().map(|l| l.version),
            });
        }
        Ok(v)
    })?;
    if out.json {
        return print_json(&serde_json::json!({ "organizations": orgs }));
    }
    if orgs.is_empty() {
        println!(
            "No organizations. Create one with `sponsorctl org add --name NAME --plan enterprise-annually`."
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = orgs
        .iter()
        .map(|o| {
            vec![
                o.id.to_string(),
                o.name.clone(),
                o.plan.to_owned(),
                o.cloud_organization_id
                    .map_or_else(|| "-".to_owned(), |c| c.to_string()),
                if o.billing_sync_enabled {
                    "enabled"
                } else {
                    "off"
                }
                .to_owned(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["ID", "NAME", "PLAN", "CLOUD ORGANIZATION", "BILLING SYNC"],
            &rows
        )
    );
    Ok(())
}

/// `member add`
pub(crate) fn member_add(
    db: &SqliteStore,
    out: Out,
    org: &str,
    email_addr: &str,
    status: StatusArg,
    role: RoleArg,
) -> anyhow::Result<()> {
    let email_addr = email_addr.trim();
    check_email("the member e-mail", email_addr)?;
    let member = db.write(|tx| {
        let o = resolve_org(tx, org)?;
        if tx
            .members(o.org.id)?
            .iter()
            .any(|m| email::same_email(&m.email, email_addr))
        {
            return bail(CliError::invalid(format!(
                "{email_addr} is a member of {:?} already",
                o.org.name
            )));
        }
        let member = Member {
            id: MemberId::new_random(),
            organization_id: o.org.id,
            email: email_addr.to_owned(),
            status: match status {
                StatusArg::Confirmed => MemberStatus::Confirmed,
                StatusArg::Invited => MemberStatus::Invited,
                StatusArg::Accepted => MemberStatus::Accepted,
            },
            role: match role {
                RoleArg::Owner => MemberRole::Owner,
                RoleArg::Admin => MemberRole::Admin,
                RoleArg::User => MemberRole::User,
            },
        };
        tx.insert_member(&member)?;
        Ok::<_, anyhow::Error>(member)
    })?;
    tracing::info!(member = %member.id, org = %member.organization_id, "member added");
    if out.json {
        print_json(&serde_json::json!({"id": member.id}))
    } else {
        println!("{}", member.id);
        Ok(())
    }
}

/// `member remove`
pub(crate) fn member_remove(
    db: &SqliteStore,
    out: Out,
    org: &str,
    member: &str,
) -> anyhow::Result<()> {
    let now = Utc::now();
    let (m, revoked) = db.write(|tx| {
        let o = resolve_org(tx, org)?;
        let m = resolve_member(tx, &o.org, member)?;
        let rows = tx.sponsorships(Some(o.org.id))?;
        let changes = sponsorship::member_removed(m.id, &rows, now);
        tx.write_changes(&changes)?;
        tx.delete_member(m.id)?;
        Ok::<_, anyhow::Error>((m, changes.len()))
    })?;
    if out.json {
        return print_json(&serde_json::json!({"id": m.id, "sponsorshipsRevoked": revoked}));
    }
    println!("Removed member {} ({}).", m.email, m.id);
    if revoked > 0 {
        println!(
            "Revoked {revoked} sponsorship(s): the cloud learns at the next sync (`sponsorctl sync`)."
        );
    }
    Ok(())
}

fn read_lines(file: &Path) -> anyhow::Result<Vec<(usize, String)>> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::invalid(format!("cannot read {}: {e}", file.display())))?;
    Ok(text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim().to_owned()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .collect())
}

/// `member import`: confirmed users, one e-mail per line, in one transaction.
pub(crate) fn member_import(
    db: &SqliteStore,
    out: Out,
    org: &str,
    file: &Path,
) -> anyhow::Result<()> {
    let lines = read_lines(file)?;
    let added = db.write(|tx| {
        let o = resolve_org(tx, org)?;
        let mut seen: std::collections::HashSet<String> = tx
            .members(o.org.id)?
            .into_iter()
            .map(|m| m.email.to_lowercase())
            .collect();
        for (n, address) in &lines {
            check_email(
                &format!("{}: line {n}: the member e-mail", file.display()),
                address,
            )?;
            if !seen.insert(address.to_lowercase()) {
                return bail(CliError::invalid(format!(
                    "{}: line {n}: {address} is a member of {:?} already",
                    file.display(),
                    o.org.name
                )));
            }
            tx.insert_member(&Member {
                id: MemberId::new_random(),
                organization_id: o.org.id,
                email: address.clone(),
                status: MemberStatus::Confirmed,
                role: MemberRole::User,
            })?;
        }
        Ok::<_, anyhow::Error>(lines.len())
    })?;
    if out.json {
        return print_json(&serde_json::json!({"added": added}));
    }
    println!("Added {added} member(s).");
    Ok(())
}

/// `sponsorship import`: offers from a file, in one transaction.
pub(crate) fn offer_import(
    db: &SqliteStore,
    out: Out,
    org: &str,
    file: &Path,
) -> anyhow::Result<()> {
    let lines = read_lines(file)?;
    let now = Utc::now();
    let (created, unchanged) = db.write(|tx| {
        let o = resolve_org(tx, org)?;
        let members: std::collections::HashMap<String, Member> = tx
            .members(o.org.id)?
            .into_iter()
            .map(|m| (m.email.to_lowercase(), m))
            .collect();
        let mut rows = tx.sponsorships(Some(o.org.id))?;
        // The offer rule looks only at the member's rows and rows with the same friendly name:
        // index those so that a large import stays linear.
        let mut by_member: std::collections::HashMap<MemberId, Vec<usize>> =
            std::collections::HashMap::new();
        let mut by_name: std::collections::HashMap<String, Vec<usize>> =
            std::collections::HashMap::new();
        for (i, r) in rows.iter().enumerate() {
            by_member.entry(r.sponsoring_member_id).or_default().push(i);
            if let Some(name) = &r.friendly_name {
                by_name.entry(name.clone()).or_default().push(i);
            }
        }
        let (mut created, mut unchanged) = (0_usize, 0_usize);
        for (n, line) in &lines {
            let at =
                |msg: String| CliError::invalid(format!("{}: line {n}: {msg}", file.display()));
            let mut fields = line.splitn(3, ',').map(str::trim);
            let (Some(member), Some(to)) = (fields.next(), fields.next()) else {
                return bail(at(
                    "expected member-email,recipient-email[,friendly name]".into()
                ));
            };
            let name = fields.next().filter(|f| !f.is_empty());
            let Some(m) = members.get(&member.to_lowercase()) else {
                return bail(at(format!("{member} is not a member of {:?}", o.org.name)));
            };
            let request = OfferRequest {
                sponsor_email: &m.email,
                offered_to_email: to,
                friendly_name: name,
                admin_initiated: false,
                notes: None,
            };
            let mut relevant: Vec<usize> = by_member.get(&m.id).cloned().unwrap_or_default();
            relevant.extend(by_name.get(name.unwrap_or(to)).into_iter().flatten());
            relevant.sort_unstable();
            relevant.dedup();
            let nearby: Vec<Sponsorship> = relevant.iter().map(|i| rows[*i].clone()).collect();
            let made = sponsorship::offer(
                &o.org,
                m,
                &nearby,
                &request,
                SponsorshipId::new_random(),
                now,
            )
            .map_err(|e| at(e.to_string()))?;
            if made.kind == OfferKind::AlreadyOffered {
                unchanged += 1;
                continue;
            }
            tx.write_changes(&[RowChange::Upsert(made.sponsorship.clone())])?;
            let replaced = relevant
                .iter()
                .copied()
                .find(|i| rows[*i].id == made.sponsorship.id);
            let index = if let Some(i) = replaced {
                i
            } else {
                rows.push(made.sponsorship.clone());
                by_member.entry(m.id).or_default().push(rows.len() - 1);
                rows.len() - 1
            };
            if let Some(name) = &made.sponsorship.friendly_name {
                by_name.entry(name.clone()).or_default().push(index);
            }
            rows[index] = made.sponsorship;
            created += 1;
        }
        Ok::<_, anyhow::Error>((created, unchanged))
    })?;
    if out.json {
        return print_json(&serde_json::json!({"offered": created, "unchanged": unchanged}));
    }
    println!(
        "Offered {created} sponsorship(s) ({unchanged} unchanged): the cloud e-mails them at the next sync."
    );
    Ok(())
}

/// `member list`
pub(crate) fn member_list(db: &SqliteStore, out: Out, org: &str) -> anyhow::Result<()> {
    let members = db.read(|tx| {
        let o = resolve_org(tx, org)?;
        Ok::<_, anyhow::Error>(tx.members(o.org.id)?)
    })?;
    if out.json {
        return print_json(&serde_json::json!({ "members": members }));
    }
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|m| {
            vec![
                m.id.to_string(),
                m.email.clone(),
                m.status.name().to_owned(),
                m.role.name().to_owned(),
            ]
        })
        .collect();
    print!("{}", table(&["ID", "EMAIL", "STATUS", "ROLE"], &rows));
    Ok(())
}

fn offer_error(e: &OfferError) -> CliError {
    match e {
        OfferError::InvalidEmail { .. } | OfferError::TooLong { .. } => {
            CliError::invalid(e.to_string())
        }
        _ => CliError::refused(e.to_string()),
    }
}

/// `sponsorship offer`
pub(crate) fn offer(
    db: &SqliteStore,
    out: Out,
    org: &str,
    member: &str,
    to_email: &str,
    friendly_name: Option<&str>,
) -> anyhow::Result<()> {
    let to_email = to_email.trim();
    let now = Utc::now();
    let made = db.write(|tx| {
        let o = resolve_org(tx, org)?;
        let m = resolve_member(tx, &o.org, member)?;
        let rows = tx.sponsorships(Some(o.org.id))?;
        let request = OfferRequest {
            sponsor_email: &m.email,
            offered_to_email: to_email,
            friendly_name: friendly_name.map(str::trim),
            admin_initiated: false,
            notes: None,
        };
        let made = sponsorship::offer(
            &o.org,
            &m,
            &rows,
            &request,
            SponsorshipId::new_random(),
            now,
        )
        .map_err(|e| offer_error(&e))?;
        if made.kind != OfferKind::AlreadyOffered {
            tx.write_changes(&[RowChange::Upsert(made.sponsorship.clone())])?;
        }
        Ok::<_, anyhow::Error>(made)
    })?;
    let row = &made.sponsorship;
    tracing::info!(sponsorship = %row.id, kind = ?made.kind, "offer written");
    if out.json {
        return print_json(&serde_json::json!({
            "id": row.id,
            "kind": made.kind,
            "status": row.ui_status(),
        }));
    }
    match made.kind {
        OfferKind::Created => println!(
            "Offered a Families sponsorship to {to_email} ({}): the cloud e-mails the offer at the next sync.",
            row.ui_status().label()
        ),
        OfferKind::Replaced => println!(
            "Replaced the member's unredeemed offer; the new one goes to {to_email} at the next sync (the old offer is withdrawn first)."
        ),
        OfferKind::AlreadyOffered => println!(
            "This offer exists already ({}); nothing changed.",
            row.ui_status().label()
        ),
    }
    Ok(())
}

/// `sponsorship revoke`
pub(crate) fn revoke(db: &SqliteStore, out: Out, org: &str, member: &str) -> anyhow::Result<()> {
    let now = Utc::now();
    let change = db.write(|tx| {
        let o = resolve_org(tx, org)?;
        let m = resolve_member(tx, &o.org, member)?;
        let rows = tx.sponsorships(Some(o.org.id))?;
        let change =
            sponsorship::revoke(m.id, &rows, now).map_err(|e| CliError::refused(e.to_string()))?;
        tx.write_changes(std::slice::from_ref(&change))?;
        Ok::<_, anyhow::Error>(change)
    })?;
    let (id, status) = match &change {
        RowChange::Upsert(row) => (row.id, Some(row.ui_status())),
        RowChange::Delete(id) => (*id, None),
    };
    if out.json {
        return print_json(&serde_json::json!({
            "id": id,
            "deleted": status.is_none(),
            "status": status,
        }));
    }
    match status {
        None => println!("Revoked: the offer was never synced, so it is deleted."),
        Some(UiStatus::RevokeWhenExpired) => println!(
            "Revoked: the sponsored organization keeps its plan until the end of the paid period (Revoke when expired); the cloud learns at the next sync."
        ),
        Some(s) => println!(
            "Revoked; status {}: the cloud withdraws the offer at the next sync.",
            s.label()
        ),
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RowJson {
    id: SponsorshipId,
    organization_id: Option<OrganizationId>,
    member_id: MemberId,
    friendly_name: Option<String>,
    offered_to_email: Option<String>,
    status: UiStatus,
    last_sync_date: Option<DateTime<Utc>>,
    valid_until: Option<DateTime<Utc>>,
    to_delete: bool,
}

/// `sponsorship list`
pub(crate) fn list(db: &SqliteStore, out: Out, org: Option<&str>) -> anyhow::Result<()> {
    let (rows, emails) = db.read(|tx| {
        let (org_id, orgs) = match org {
            Some(ident) => {
                let o = resolve_org(tx, ident)?;
                (Some(o.org.id), vec![o])
            }
            None => (None, tx.organizations()?),
        };
        let mut emails = std::collections::HashMap::new();
        for o in &orgs {
            for m in tx.members(o.org.id)? {
                emails.insert(m.id, m.email);
            }
        }
        Ok::<_, anyhow::Error>((tx.sponsorships(org_id)?, emails))
    })?;
    print_rows(out, &rows, &emails)
}

/// Prints sponsorship rows (also used by `demo`).
pub(crate) fn print_rows(
    out: Out,
    rows: &[Sponsorship],
    emails: &std::collections::HashMap<MemberId, String>,
) -> anyhow::Result<()> {
    // People read rows by member e-mail; rows of removed members come last.
    let mut sorted: Vec<&Sponsorship> = rows.iter().collect();
    sorted.sort_by_key(|r| {
        (
            r.sponsoring_organization_id,
            emails
                .get(&r.sponsoring_member_id)
                .map(|e| e.to_lowercase())
                .is_none(),
            emails
                .get(&r.sponsoring_member_id)
                .map(|e| e.to_lowercase()),
            r.sponsoring_member_id,
            r.id,
        )
    });
    let rows = sorted;
    if out.json {
        let v: Vec<RowJson> = rows
            .iter()
            .map(|&r| RowJson {
                id: r.id,
                organization_id: r.sponsoring_organization_id,
                member_id: r.sponsoring_member_id,
                friendly_name: r.friendly_name.clone(),
                offered_to_email: r.offered_to_email.clone(),
                status: r.ui_status(),
                last_sync_date: r.last_sync_date,
                valid_until: r.valid_until,
                to_delete: r.to_delete,
            })
            .collect();
        return print_json(&serde_json::json!({ "sponsorships": v }));
    }
    if rows.is_empty() {
        println!("No sponsorships.");
        return Ok(());
    }
    let date = |t: Option<DateTime<Utc>>| {
        t.map_or_else(|| "-".to_owned(), |t| t.format("%Y-%m-%d").to_string())
    };
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|&r| {
            vec![
                emails
                    .get(&r.sponsoring_member_id)
                    .cloned()
                    .unwrap_or_else(|| format!("(removed) {}", r.sponsoring_member_id)),
                r.offered_to_email.clone().unwrap_or_default(),
                r.ui_status().label().to_owned(),
                date(r.last_sync_date),
                date(r.valid_until),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["MEMBER", "OFFERED TO", "STATUS", "LAST SYNC", "VALID UNTIL"],
            &table_rows
        )
    );
    Ok(())
}

/// Reads the token from a file or standard input; trims and validates it. The value is never
/// echoed, not even in the error.
fn read_token(token_file: Option<&Path>) -> anyhow::Result<BillingSyncKey> {
    let raw = if let Some(path) = token_file {
        std::fs::read_to_string(path).map_err(|e| {
            CliError::invalid(format!(
                "cannot read the token file {}: {e}",
                path.display()
            ))
        })?
    } else {
        {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprintln!(
                    "Paste the billing sync token from the cloud organization (Billing > Subscription), then press Enter:"
                );
                let mut line = String::new();
                stdin
                    .read_line(&mut line)
                    .context("reading standard input")?;
                line
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
    db: &SqliteStore,
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
    let enabled = db.write(|tx| {
        // Resolve again inside the write transaction: the organization must still exist.
        let o = resolve_org(tx, &rec.org.id.to_string())?;
        tx.set_key(o.org.id, &key, now)?;
        Ok::<_, anyhow::Error>(tx.connection(o.org.id)?.is_some_and(|c| c.enabled))
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
            rec.org.name, rec.org.name
        );
    }
    Ok(())
}

/// `billing-sync show`
pub(crate) fn show_connection(db: &SqliteStore, out: Out, org: &str) -> anyhow::Result<()> {
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
            rec.org.name
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
pub(crate) fn set_enabled(
    db: &SqliteStore,
    out: Out,
    org: &str,
    enabled: bool,
) -> anyhow::Result<()> {
    let rec = db.write(|tx| {
        let o = resolve_org(tx, org)?;
        if !tx.set_enabled(o.org.id, enabled, Utc::now())? {
            return bail(CliError::failure(
                "config",
                format!(
                    "{} has no billing sync token yet: set one first (`sponsorctl billing-sync set-token --org {}`)",
                    o.org.name, o.org.name
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
pub(crate) fn status(db: &SqliteStore, out: Out, org: Option<&str>) -> anyhow::Result<()> {
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
    if out.json {
        return print_json(&serde_json::json!({ "organizations": report }));
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
    Ok(())
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
