//! Embedding the sync in a host server that has its own storage.
//!
//! The host keeps sponsorships in its own row shape (`HostRow`: string ids, a status column,
//! JSON text for the rarely used parts) behind its own lock, and implements
//! [`SponsorshipStore`] by converting to and from the core's [`Sponsorship`]. It then runs one
//! sync against the reference cloud, started in-process on 127.0.0.1, and prints the report.
//!
//! Run: `cargo run -p families-sponsorship --example embed_sync` (offline). Its test runs the
//! core's store conformance kit against `HostDb`: `cargo test --example embed_sync`.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a program: its output is the point

use std::collections::HashMap;
use std::error::Error;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use cloud_client::{CloudClient, CloudConfig, SyncOptions};
use cloud_emulator::{EmulatorOptions, Seed};
use sponsorship_core::ids::{MemberId, OrganizationId, SponsorshipId};
use sponsorship_core::org::{BillingSyncConfig, Member, MemberRole, MemberStatus, Organization};
use sponsorship_core::plan::{PlanSponsorshipType, PlanType};
use sponsorship_core::schedule::SyncState;
use sponsorship_core::secret::{BillingSyncKey, InstallationKey};
use sponsorship_core::sponsorship::{OfferRequest, RowChange, Sponsorship, offer};
use sponsorship_core::store::{AppliedBatch, LockOutcome, SponsorshipStore, SyncLock};
use sponsorship_core::sync::{BatchApplication, apply_change};

const INSTALLATION: &str = "7e0b3c52-3f4c-4d0e-9e57-aa7a1e5c9a10";
const INSTALLATION_KEY: &str = "AbCdEfGhIj0123456789";
const CLOUD_ORG: &str = "0b7c2f0e-1111-2222-3333-444455556666";
const BILLING_KEY: &str = "Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd";

/// The host's own row: how its database table looks.
#[derive(Debug, Clone)]
struct HostRow {
    uuid: String,
    org_uuid: Option<String>,
    member_uuid: String,
    friendly_name: Option<String>,
    email: Option<String>,
    plan_type: Option<u8>,
    last_synced: Option<DateTime<Utc>>,
    valid_until: Option<DateTime<Utc>>,
    revoked: bool,
    admin_initiated: bool,
    notes: Option<String>,
    version: u64,
    dirty: bool,
    /// The rarely used part, kept as JSON text in a nullable column.
    superseded_json: Option<String>,
    updated_at: DateTime<Utc>,
}

impl HostRow {
    fn from_core(s: &Sponsorship) -> Result<Self, HostError> {
        Ok(Self {
            uuid: s.id.to_string(),
            org_uuid: s.sponsoring_organization_id.map(|o| o.to_string()),
            member_uuid: s.sponsoring_member_id.to_string(),
            friendly_name: s.friendly_name.clone(),
            email: s.offered_to_email.clone(),
            plan_type: s.plan_sponsorship_type.map(PlanSponsorshipType::number),
            last_synced: s.last_sync_date,
            valid_until: s.valid_until,
            revoked: s.to_delete,
            admin_initiated: s.is_admin_initiated,
            notes: s.notes.clone(),
            version: s.revision,
            dirty: s.awaiting_sync,
            superseded_json: s
                .superseded_offer
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| HostError(e.to_string()))?,
            updated_at: s.revision_date,
        })
    }

    fn to_core(&self) -> Result<Sponsorship, HostError> {
        let bad = |what: &str| HostError(format!("row {}: bad {what}", self.uuid));
        Ok(Sponsorship {
            id: self.uuid.parse().map_err(|_| bad("uuid"))?,
            sponsoring_organization_id: self
                .org_uuid
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|_| bad("org_uuid"))?,
            sponsoring_member_id: self.member_uuid.parse().map_err(|_| bad("member_uuid"))?,
            friendly_name: self.friendly_name.clone(),
            offered_to_email: self.email.clone(),
            plan_sponsorship_type: match self.plan_type {
                Some(n) => Some(PlanSponsorshipType::from_number(n).ok_or_else(|| bad("plan"))?),
                None => None,
            },
            last_sync_date: self.last_synced,
            valid_until: self.valid_until,
            to_delete: self.revoked,
            is_admin_initiated: self.admin_initiated,
            notes: self.notes.clone(),
            revision: self.version,
            awaiting_sync: self.dirty,
            superseded_offer: self
                .superseded_json
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|_| bad("superseded_json"))?,
            revision_date: self.updated_at,
        })
    }
}

/// The host's storage error.
#[derive(Debug)]
struct HostError(String);

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "host database: {}", self.0)
    }
}

impl Error for HostError {}

/// The host's database: one table of rows, one of sync state, one of locks.
#[derive(Default)]
struct HostDb {
    rows: Mutex<Vec<HostRow>>,
    sync_state: Mutex<HashMap<OrganizationId, SyncState>>,
    locks: Mutex<HashMap<OrganizationId, SyncLock>>,
}

fn poisoned<T>(_: T) -> HostError {
    HostError("a lock was poisoned".to_owned())
}

impl SponsorshipStore for HostDb {
    type Error = HostError;

    async fn sponsorships(&self, org: OrganizationId) -> Result<Vec<Sponsorship>, HostError> {
        let org = org.to_string();
        let rows = self.rows.lock().map_err(poisoned)?;
        rows.iter()
            .filter(|r| r.org_uuid.as_deref() == Some(org.as_str()))
            .map(HostRow::to_core)
            .collect()
    }

    async fn write_changes(
        &self,
        _org: OrganizationId,
        changes: &[RowChange],
    ) -> Result<(), HostError> {
        // One "transaction": every change made on a copy, swapped in when all converted.
        let mut rows = self.rows.lock().map_err(poisoned)?;
        let mut next = rows.clone();
        for change in changes {
            match change {
                RowChange::Upsert(s) => {
                    let row = HostRow::from_core(s)?;
                    match next.iter_mut().find(|r| r.uuid == row.uuid) {
                        Some(old) => *old = row,
                        None => next.push(row),
                    }
                }
                RowChange::Delete(id) => {
                    let id = id.to_string();
                    next.retain(|r| r.uuid != id);
                }
            }
        }
        *rows = next;
        Ok(())
    }

    async fn apply_batch(
        &self,
        org: OrganizationId,
        batch: &BatchApplication,
    ) -> Result<AppliedBatch, HostError> {
        // One "transaction": the whole batch under the table lock, computed on a copy and
        // swapped in only when every row converted.
        let mut rows = self.rows.lock().map_err(poisoned)?;
        let mut next = rows.clone();
        let mut out = AppliedBatch::default();
        let org = org.to_string();
        for change in &batch.changes {
            // The row is addressed by id, and must be the batch's organization's and member's.
            let id = change.sponsorship_id.to_string();
            let member = change.member_id.to_string();
            let Some(pos) = next.iter().position(|r| {
                r.uuid == id && r.member_uuid == member && r.org_uuid.as_deref() == Some(&org)
            }) else {
                out.stale.push(change.sponsorship_id);
                continue;
            };
            // Compare-and-set on the host's version column.
            if next[pos].version != change.expected_revision {
                out.stale.push(change.sponsorship_id);
                continue;
            }
            match apply_change(&next[pos].to_core()?, &change.action) {
                Some(updated) => next[pos] = HostRow::from_core(&updated)?,
                None => {
                    next.remove(pos);
                }
            }
            out.applied += 1;
        }
        *rows = next;
        Ok(out)
    }

    async fn sync_state(&self, org: OrganizationId) -> Result<SyncState, HostError> {
        let states = self.sync_state.lock().map_err(poisoned)?;
        Ok(states.get(&org).cloned().unwrap_or_default())
    }

    async fn save_sync_state(
        &self,
        org: OrganizationId,
        state: &SyncState,
    ) -> Result<(), HostError> {
        self.sync_state
            .lock()
            .map_err(poisoned)?
            .insert(org, state.clone());
        Ok(())
    }

    async fn save_next_due(
        &self,
        org: OrganizationId,
        next_due: DateTime<Utc>,
    ) -> Result<(), HostError> {
        // One "statement": only the due time changes, under the table lock.
        self.sync_state
            .lock()
            .map_err(poisoned)?
            .entry(org)
            .or_default()
            .next_due = Some(next_due);
        Ok(())
    }

    async fn try_lock_sync(
        &self,
        org: OrganizationId,
        lock: &SyncLock,
        now: DateTime<Utc>,
    ) -> Result<LockOutcome, HostError> {
        let mut locks = self.locks.lock().map_err(poisoned)?;
        match locks.get(&org) {
            Some(held) if held.excludes(&lock.token, now) => Ok(LockOutcome::HeldBy {
                holder: held.holder.clone(),
                since: held.acquired_at,
            }),
            _ => {
                locks.insert(org, lock.clone());
                Ok(LockOutcome::Acquired)
            }
        }
    }

    async fn renew_sync_lock(
        &self,
        org: OrganizationId,
        lock: &SyncLock,
    ) -> Result<bool, HostError> {
        let mut locks = self.locks.lock().map_err(poisoned)?;
        Ok(match locks.get_mut(&org) {
            Some(held) if held.token == lock.token => {
                held.expires_at = lock.expires_at;
                true
            }
            _ => false,
        })
    }

    async fn unlock_sync(&self, org: OrganizationId, token: &str) -> Result<(), HostError> {
        let mut locks = self.locks.lock().map_err(poisoned)?;
        if locks.get(&org).is_some_and(|l| l.token == token) {
            locks.remove(&org);
        }
        Ok(())
    }
}

fn seed() -> Result<Seed, cloud_emulator::Error> {
    Seed::from_json(&format!(
        r#"{{"region":"US",
  "installations":[{{"id":"{INSTALLATION}","key":"{INSTALLATION_KEY}","region":"US","enabled":true}}],
  "organizations":[{{"id":"{CLOUD_ORG}","name":"Acme","planType":20,"enabled":true,"billingSyncKey":"{BILLING_KEY}"}}],
  "users":[]}}"#
    ))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    // The reference cloud, in-process on 127.0.0.1.
    let cloud = cloud_emulator::start(seed()?, EmulatorOptions::default()).await?;

    // The host's organization, three members, and the offers they made through the host's UI.
    let org = Organization {
        id: OrganizationId::new_random(),
        name: "Acme (self-hosted)".into(),
        plan_type: PlanType::EnterpriseAnnually,
        enabled: true,
        use_admin_sponsored_families: false,
    };
    let db = HostDb::default();
    for (sponsor, recipient) in [
        ("alice@acme.example", "alice.family@home.example"),
        ("bob@acme.example", "bob.family@home.example"),
        ("carol@acme.example", "carol.family@home.example"),
    ] {
        let member = Member {
            id: MemberId::new_random(),
            organization_id: org.id,
            email: sponsor.into(),
            status: MemberStatus::Confirmed,
            role: MemberRole::User,
        };
        let made = offer(
            &org,
            &member,
            &[],
            &OfferRequest {
                sponsor_email: sponsor,
                offered_to_email: recipient,
                friendly_name: None,
                admin_initiated: false,
                notes: None,
            },
            SponsorshipId::new_random(),
            Utc::now(),
        )?;
        db.write_changes(org.id, &[RowChange::Upsert(made.sponsorship)])
            .await?;
    }

    // The billing sync connection the owner configured, and the installation's client.
    let billing = BillingSyncConfig {
        billing_sync_key: BillingSyncKey::parse(BILLING_KEY)?,
        cloud_organization_id: CLOUD_ORG.parse()?,
        last_license_sync: None,
    };
    let config = CloudConfig::new(
        INSTALLATION.parse()?,
        InstallationKey::parse(INSTALLATION_KEY)?,
        cloud.base_url().clone(),
        cloud.base_url().clone(),
    );
    let client = CloudClient::new(config)?;

    let report = client
        .sync_organization(
            &db,
            org.id,
            &billing,
            SyncOptions {
                holder: "embed_sync example",
                ..SyncOptions::default()
            },
        )
        .await?;

    println!("sync against {}: {:?}", cloud.base_url(), report.outcome);
    println!(
        "  sent {}, updated {}, removed {}, skipped {}, stale {}, in {} batch(es), {} ms",
        report.sent,
        report.updated,
        report.removed,
        report.skipped.len(),
        report.stale.len(),
        report.batches.len(),
        report.duration.as_millis()
    );
    for row in db.rows.lock().map_err(poisoned)?.iter() {
        let status = row.to_core()?.ui_status().label();
        println!(
            "  host row {}: {:<27} {status}",
            row.uuid,
            row.email.as_deref().unwrap_or("-")
        );
    }
    let state = db.sync_state(org.id).await?;
    println!(
        "  last success: {}; offers e-mailed by the cloud: {}",
        sponsorship_core::schedule::display_time(state.last_success),
        cloud.outbox().len()
    );
    cloud.stop().await?;
    Ok(())
}

/// The host proves its store with the core's conformance kit (`cargo test --example
/// embed_sync`).
#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_host_store_passes_the_conformance_kit() {
        sponsorship_core::conformance::run_all(&super::HostDb::default()).await;
    }
}
