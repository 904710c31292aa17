//! `sponsorship offer|revoke|import|list`, through the core's rules, each one transaction.

use std::path::Path;

use crate::state::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sponsorship_core::ids::{MemberId, OrganizationId, SponsorshipId};
use sponsorship_core::org::Member;
use sponsorship_core::sponsorship::{
    self, OfferError, OfferKind, OfferRequest, RowChange, Sponsorship, UiStatus,
};

use crate::confirm::{Needed, confirmed};
use crate::input::read_lines;
use crate::output::{CliError, Out, bail, print_json, table};
use crate::resolve::{resolve_member, resolve_org};

/// `sponsorship import`: offers from a file, in one transaction.
pub(crate) fn offer_import(db: &State, out: Out, org: &str, file: &Path) -> anyhow::Result<()> {
    let lines = read_lines(file)?;
    let now = Utc::now();
    let (created, replaced, unchanged) = confirmed(out, |replace_mailed| {
        db.write(|tx| {
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
            let mut mailed_replaced = Vec::new();
            for (n, line) in &lines {
                let at =
                    |msg: String| CliError::invalid(format!("{}: line {n}: {msg}", file.display()));
                let mut fields = line.splitn(3, ',').map(str::trim);
                let (Some(member), Some(to)) = (fields.next(), fields.next()) else {
                    return bail(at(
                        "expected member-email,recipient-email[,friendly name]".into()
                    ));
                };
                let name = fields
                    .next()
                    .filter(|f| !f.is_empty())
                    .map(|f| crate::input::name(f, "the friendly name", 256))
                    .transpose()
                    .map_err(|e| at(e.message))?;
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
                if let Some(old) = mailed_offer_replaced(&nearby, &made) {
                    mailed_replaced.push(format!("{} (to {old}, line {n})", m.email));
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
            if !replace_mailed && !mailed_replaced.is_empty() {
                return Err(replacing_mailed_offers(&mailed_replaced).into());
            }
            let replaced = mailed_replaced.len();
            Ok::<_, anyhow::Error>((created - replaced, replaced, unchanged))
        })
    })?;
    print_import(out, created, replaced, unchanged)
}

/// The question before an import replaces offers the cloud has e-mailed (the first five named).
fn replacing_mailed_offers(replaced: &[String]) -> Needed {
    let shown = replaced.len().min(5);
    let more = replaced.len() - shown;
    Needed(format!(
        "The file replaces {} offer(s) the cloud has e-mailed: {}{}; replace them? The old offers are withdrawn at the next sync.",
        replaced.len(),
        replaced[..shown].join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    ))
}

fn print_import(out: Out, created: usize, replaced: usize, unchanged: usize) -> anyhow::Result<()> {
    if out.json {
        return print_json(&serde_json::json!({
            "offered": created,
            "replaced": replaced,
            "unchanged": unchanged,
        }));
    }
    if created + replaced == 0 {
        println!("Nothing changed: all {unchanged} offer(s) exist already.");
        return Ok(());
    }
    let replacing = if replaced > 0 {
        format!(", replacing {replaced} offer(s) the cloud had e-mailed")
    } else {
        String::new()
    };
    println!(
        "Offered {} sponsorship(s){replacing} ({unchanged} unchanged): the cloud e-mails them at the next sync.",
        created + replaced
    );
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

/// The recipient of an offer the cloud has e-mailed (the row was synced) that `made` replaces.
fn mailed_offer_replaced(rows: &[Sponsorship], made: &sponsorship::OfferOutcome) -> Option<String> {
    if made.kind != OfferKind::Replaced {
        return None;
    }
    rows.iter()
        .find(|r| r.id == made.sponsorship.id && r.last_sync_date.is_some())
        .map(|r| r.offered_to_email.clone().unwrap_or_default())
}

/// `sponsorship offer`
pub(crate) fn offer(
    db: &State,
    out: Out,
    org: &str,
    member: &str,
    to_email: &str,
    friendly_name: Option<&str>,
) -> anyhow::Result<()> {
    let to_email = to_email.trim();
    let now = Utc::now();
    let made = confirmed(out, |replace_mailed| {
        db.write(|tx| {
        let o = resolve_org(tx, org)?;
        let m = resolve_member(tx, &o.org, member)?;
        let rows = tx.sponsorships(Some(o.org.id))?;
        let request = OfferRequest {
            sponsor_email: &m.email,
            offered_to_email: to_email,
            friendly_name: friendly_name
                .map(|f| crate::input::name(f, "--friendly-name", 256))
                .transpose()?,
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
        if !replace_mailed && let Some(old) = mailed_offer_replaced(&rows, &made) {
            return Err(Needed(format!(
                "{} has an offer to {old} that the cloud has e-mailed; replace it with an offer to {to_email}? The old one is withdrawn at the next sync.",
                m.email
            ))
            .into());
        }
        if made.kind != OfferKind::AlreadyOffered {
            tx.write_changes(&[RowChange::Upsert(made.sponsorship.clone())])?;
        }
        Ok::<_, anyhow::Error>(made)
        })
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
pub(crate) fn revoke(db: &State, out: Out, org: &str, member: &str) -> anyhow::Result<()> {
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
        None => println!("Revoked: the offer is deleted."),
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
pub(crate) fn list(db: &State, out: Out, org: Option<&str>) -> anyhow::Result<()> {
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
