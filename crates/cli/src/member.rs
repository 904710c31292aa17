//! `member add|remove|import|list`. A removed member's sponsorships are revoked in the same
//! transaction.

use std::path::Path;

use crate::state::State;
use chrono::Utc;
use sponsorship_core::email::{self};
use sponsorship_core::ids::MemberId;
use sponsorship_core::org::{Member, MemberRole, MemberStatus};
use sponsorship_core::sponsorship::{self};

use crate::cli::{RoleArg, StatusArg};
use crate::confirm::{Needed, confirmed};
use crate::input::read_lines;
use crate::output::{CliError, Out, bail, print_json, table};
use crate::resolve::{check_email, resolve_member, resolve_org};

/// `member add`
pub(crate) fn member_add(
    db: &State,
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
            status: status.status(),
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
pub(crate) fn member_remove(db: &State, out: Out, org: &str, member: &str) -> anyhow::Result<()> {
    let now = Utc::now();
    let (m, revoked) = confirmed(out, |revoke| {
        db.write(|tx| {
            let o = resolve_org(tx, org)?;
            let m = resolve_member(tx, &o.org, member)?;
            let rows = tx.sponsorships(Some(o.org.id))?;
            let changes = sponsorship::member_removed(m.id, &rows, now);
            if !revoke && !changes.is_empty() {
                let offered: Vec<&str> = rows
                    .iter()
                    .filter(|r| r.sponsoring_member_id == m.id && !r.to_delete)
                    .filter_map(|r| r.offered_to_email.as_deref())
                    .collect();
                return Err(Needed(format!(
                    "Removing {} revokes their sponsorship ({}); the cloud learns at the next sync. Remove them?",
                    m.email,
                    if offered.is_empty() { "no recipient yet".to_owned() } else { format!("offered to {}", offered.join(", ")) }
                ))
                .into());
            }
            tx.write_changes(&changes)?;
            tx.delete_member(m.id)?;
            Ok::<_, anyhow::Error>((m, changes.len()))
        })
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

/// `member import`: confirmed users, one e-mail per line, in one transaction.
pub(crate) fn member_import(db: &State, out: Out, org: &str, file: &Path) -> anyhow::Result<()> {
    let lines = read_lines(file)?;
    let (added, unchanged) = db.write(|tx| {
        let o = resolve_org(tx, org)?;
        // Members already in the organization are left as they are, so that an import can be
        // run again (after a fix of the file, or twice by mistake) and change nothing.
        let existing: std::collections::HashSet<String> = tx
            .members(o.org.id)?
            .into_iter()
            .map(|m| m.email.to_lowercase())
            .collect();
        let mut in_file: std::collections::HashMap<String, usize> =
            std::collections::HashMap::new();
        let (mut added, mut unchanged) = (0_usize, 0_usize);
        for (n, address) in &lines {
            check_email(
                &format!("{}: line {n}: the member e-mail", file.display()),
                address,
            )?;
            let key = address.to_lowercase();
            if let Some(first) = in_file.insert(key.clone(), *n) {
                return bail(CliError::invalid(format!(
                    "{}: line {n}: {address} is on line {first} already: remove one of the two",
                    file.display(),
                )));
            }
            if existing.contains(&key) {
                unchanged += 1;
                continue;
            }
            tx.insert_member(&Member {
                id: MemberId::new_random(),
                organization_id: o.org.id,
                email: address.clone(),
                status: MemberStatus::Confirmed,
                role: MemberRole::User,
            })?;
            added += 1;
        }
        Ok::<_, anyhow::Error>((added, unchanged))
    })?;
    if out.json {
        return print_json(&serde_json::json!({"added": added, "unchanged": unchanged}));
    }
    if unchanged == 0 {
        println!("Added {added} member(s).");
    } else {
        println!(
            "Added {added} member(s); {unchanged} were members already and are left as they are."
        );
    }
    Ok(())
}

/// `member list`
pub(crate) fn member_list(db: &State, out: Out, org: &str) -> anyhow::Result<()> {
    let members = db.read(|tx| {
        let o = resolve_org(tx, org)?;
        tx.members(o.org.id)
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

/// `member set-status`.
pub(crate) fn member_set_status(
    db: &State,
    out: Out,
    org: &str,
    member: &str,
    status: StatusArg,
) -> anyhow::Result<()> {
    let status = status.status();
    let (m, rows) = db.write(|tx| {
        let o = resolve_org(tx, org)?;
        let m = resolve_member(tx, &o.org, member)?;
        tx.set_member_status(m.id, status)?;
        let rows = tx.sponsorships(Some(o.org.id))?;
        Ok::<_, anyhow::Error>((m, rows))
    })?;
    let sponsoring = rows
        .iter()
        .filter(|r| r.sponsoring_member_id == m.id)
        .count();
    if out.json {
        return print_json(&serde_json::json!({
            "memberId": m.id,
            "status": status.name(),
            "sponsorships": sponsoring,
        }));
    }
    println!("{} is now {}.", m.email, status.name());
    if status != MemberStatus::Confirmed {
        println!(
            "Only confirmed members may offer a sponsorship{}.",
            if sponsoring > 0 {
                "; the member's existing sponsorship stays as it is (remove the member to revoke it)"
            } else {
                ""
            }
        );
    }
    Ok(())
}
