//! The embedded SQLite store: organizations, members, sponsorships, billing sync connections,
//! sync state and sync locks, behind the core's [`SponsorshipStore`] trait.
//!
//! * The file is created with mode `0600` (it holds the billing sync keys and licenses); SQLite
//!   gives its `-wal` and `-shm` files the same mode.
//! * WAL journal and a busy timeout, so a `status` can read while a `sync` writes, and two
//!   processes wait for each other instead of failing with "database is locked".
//! * Versioned migrations through `PRAGMA user_version`.
//! * Every write is one `BEGIN IMMEDIATE` transaction: a command that fails changes nothing.
//! * [`SponsorshipStore::apply_batch`] applies a batch in one transaction with compare-and-set on
//!   the row revision, through the core's [`apply_change_in_place`].
//! * The sync lock is a row (holder, token, expiry) per organization, so two processes never sync
//!   one organization at once; a crashed holder's lock expires.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use secrecy::ExposeSecret;
use sponsorship_core::ids::{CloudOrganizationId, MemberId, OrganizationId};
use sponsorship_core::license::OrganizationLicense;
use sponsorship_core::org::{Member, MemberRole, MemberStatus, Organization};
use sponsorship_core::plan::{PlanSponsorshipType, PlanType};
use sponsorship_core::schedule::{ErrorCategory, SyncErrorRecord, SyncState};
use sponsorship_core::secret::BillingSyncKey;
use sponsorship_core::sponsorship::{
    RowChange, Sponsorship, StatusCounts, SupersededOffer, UiStatus,
};
use sponsorship_core::store::{AppliedBatch, LockOutcome, SponsorshipStore, SyncLock};
use sponsorship_core::sync::{BatchApplication, apply_change_in_place};

/// The store failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// SQLite reported an error (file not writable, disk full, locked for too long).
    #[error("state database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored value does not parse (the file was edited by hand or is from a newer release).
    #[error("state database {path}: {message}")]
    Corrupt {
        /// The database file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The file could not be created.
    #[error("cannot create the state database {path}: {source}")]
    Create {
        /// The database file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Ordered schema migrations; `PRAGMA user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE organizations (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    plan_type INTEGER NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    use_admin_sponsored_families INTEGER NOT NULL DEFAULT 0,
    cloud_organization_id TEXT,
    license_json TEXT,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX organizations_name ON organizations (name COLLATE NOCASE);
CREATE TABLE members (
    id TEXT PRIMARY KEY NOT NULL,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    email TEXT NOT NULL,
    status TEXT NOT NULL,
    role TEXT NOT NULL
);
CREATE UNIQUE INDEX members_email ON members (organization_id, email COLLATE NOCASE);
CREATE TABLE sponsorships (
    id TEXT PRIMARY KEY NOT NULL,
    sponsoring_organization_id TEXT,
    sponsoring_member_id TEXT NOT NULL,
    friendly_name TEXT,
    offered_to_email TEXT,
    plan_sponsorship_type INTEGER,
    last_sync_date TEXT,
    valid_until TEXT,
    to_delete INTEGER NOT NULL,
    is_admin_initiated INTEGER NOT NULL,
    notes TEXT,
    revision INTEGER NOT NULL,
    awaiting_sync INTEGER NOT NULL,
    superseded_offer TEXT,
    revision_date TEXT NOT NULL
);
CREATE INDEX sponsorships_org ON sponsorships (sponsoring_organization_id);
CREATE TABLE billing_sync_connections (
    organization_id TEXT PRIMARY KEY NOT NULL REFERENCES organizations (id),
    billing_sync_key TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE sync_state (
    organization_id TEXT PRIMARY KEY NOT NULL,
    last_attempt TEXT,
    last_success TEXT,
    last_error_category TEXT,
    last_error_message TEXT,
    last_error_at TEXT,
    next_due TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_license_sync TEXT
);
CREATE TABLE sync_locks (
    organization_id TEXT PRIMARY KEY NOT NULL,
    holder TEXT NOT NULL,
    token TEXT NOT NULL,
    acquired_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
",
    r"
-- 2: sponsorships clustered by member. A sync batch covers consecutive member ids; stored in
-- that order its rows share pages, so a batch commit writes a few dozen pages instead of one per
-- row (which made syncs of 100,000 sponsorships grow faster than linearly).
CREATE TABLE sponsorships_by_member (
    id TEXT NOT NULL,
    sponsoring_organization_id TEXT,
    sponsoring_member_id TEXT NOT NULL,
    friendly_name TEXT,
    offered_to_email TEXT,
    plan_sponsorship_type INTEGER,
    last_sync_date TEXT,
    valid_until TEXT,
    to_delete INTEGER NOT NULL,
    is_admin_initiated INTEGER NOT NULL,
    notes TEXT,
    revision INTEGER NOT NULL,
    awaiting_sync INTEGER NOT NULL,
    superseded_offer TEXT,
    revision_date TEXT NOT NULL,
    PRIMARY KEY (sponsoring_member_id, id)
) WITHOUT ROWID;
INSERT INTO sponsorships_by_member (id, sponsoring_organization_id, sponsoring_member_id,
    friendly_name, offered_to_email, plan_sponsorship_type, last_sync_date, valid_until, to_delete,
    is_admin_initiated, notes, revision, awaiting_sync, superseded_offer, revision_date)
SELECT id, sponsoring_organization_id, sponsoring_member_id, friendly_name, offered_to_email,
    plan_sponsorship_type, last_sync_date, valid_until, to_delete, is_admin_initiated, notes,
    revision, awaiting_sync, superseded_offer, revision_date
FROM sponsorships;
DROP TABLE sponsorships;
ALTER TABLE sponsorships_by_member RENAME TO sponsorships;
CREATE UNIQUE INDEX sponsorships_id ON sponsorships (id);
CREATE INDEX sponsorships_org ON sponsorships (sponsoring_organization_id);
",
    r"
-- 3: `status` counts rows per UI status from this index alone, in index order (no table reads,
-- no sort); its entries follow member order within a status, so sync batches stay local.
CREATE INDEX sponsorships_status ON sponsorships (sponsoring_organization_id, to_delete,
    valid_until IS NOT NULL, last_sync_date IS NOT NULL, awaiting_sync);
-- It leads with the organization, so the plain organization index is redundant.
DROP INDEX sponsorships_org;
",
];

/// A self-hosted organization with what the CLI keeps beside the core's [`Organization`].
#[derive(Debug, Clone)]
pub(crate) struct OrgRecord {
    /// The organization.
    pub(crate) org: Organization,
    /// From the license (or given by hand).
    pub(crate) cloud_organization_id: Option<CloudOrganizationId>,
    /// The imported license, if any.
    pub(crate) license: Option<OrganizationLicense>,
}

/// A billing sync connection as stored.
#[derive(Debug, Clone)]
pub(crate) struct BillingConnection {
    /// The key (shown as its last four characters only).
    pub(crate) key: BillingSyncKey,
    /// Switched on.
    pub(crate) enabled: bool,
    /// Last change.
    pub(crate) updated_at: DateTime<Utc>,
}

/// The SQLite state file.
#[derive(Debug)]
pub(crate) struct Db {
    conn: Mutex<Connection>,
    path: PathBuf,
}

pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn opt_ts(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(ts)
}

fn parse_ts(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("bad timestamp {s:?}: {e}"))
}

#[allow(clippy::needless_pass_by_value)] // takes what `Row::get` returns
fn parse_opt_ts(s: Option<String>) -> Result<Option<DateTime<Utc>>, String> {
    s.as_deref().map(parse_ts).transpose()
}

fn parse_id<T: std::str::FromStr>(s: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>().map_err(|e| e.to_string())
}

fn status_from(s: &str) -> Result<MemberStatus, String> {
    Ok(match s {
        "invited" => MemberStatus::Invited,
        "accepted" => MemberStatus::Accepted,
        "confirmed" => MemberStatus::Confirmed,
        "revoked" => MemberStatus::Revoked,
        other => return Err(format!("unknown member status {other:?}")),
    })
}

fn role_from(s: &str) -> Result<MemberRole, String> {
    Ok(match s {
        "owner" => MemberRole::Owner,
        "admin" => MemberRole::Admin,
        "user" => MemberRole::User,
        "custom" => MemberRole::CustomManageUsers,
        other => return Err(format!("unknown member role {other:?}")),
    })
}

/// Converts a closure's string error into a rusqlite conversion error.
fn conv<T>(r: Result<T, String>) -> rusqlite::Result<T> {
    r.map_err(|m| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, m.into())
    })
}

const ORG_COLUMNS: &str = "id, name, plan_type, enabled, use_admin_sponsored_families, cloud_organization_id, license_json";

fn org_from_row(r: &Row<'_>) -> rusqlite::Result<OrgRecord> {
    let id: String = r.get(0)?;
    let plan: u8 = r.get(2)?;
    let cloud: Option<String> = r.get(5)?;
    let license: Option<String> = r.get(6)?;
    Ok(OrgRecord {
        org: Organization {
            id: conv(parse_id(&id))?,
            name: r.get(1)?,
            plan_type: conv(PlanType::from_number(plan).ok_or(format!("unknown plan {plan}")))?,
            enabled: r.get(3)?,
            use_admin_sponsored_families: r.get(4)?,
        },
        cloud_organization_id: conv(cloud.as_deref().map(parse_id).transpose())?,
        license: conv(
            license
                .as_deref()
                .map(|l| OrganizationLicense::parse(l).map_err(|e| e.to_string()))
                .transpose(),
        )?,
    })
}

fn member_from_row(r: &Row<'_>) -> rusqlite::Result<Member> {
    let id: String = r.get(0)?;
    let org: String = r.get(1)?;
    let status: String = r.get(3)?;
    let role: String = r.get(4)?;
    Ok(Member {
        id: conv(parse_id(&id))?,
        organization_id: conv(parse_id(&org))?,
        email: r.get(2)?,
        status: conv(status_from(&status))?,
        role: conv(role_from(&role))?,
    })
}

const ROW_COLUMNS: &str = "id, sponsoring_organization_id, sponsoring_member_id, friendly_name, \
    offered_to_email, plan_sponsorship_type, last_sync_date, valid_until, to_delete, \
    is_admin_initiated, notes, revision, awaiting_sync, superseded_offer, revision_date";

fn sponsorship_from_row(r: &Row<'_>) -> rusqlite::Result<Sponsorship> {
    let id: String = r.get(0)?;
    let org: Option<String> = r.get(1)?;
    let member: String = r.get(2)?;
    let pst: Option<u8> = r.get(5)?;
    let superseded: Option<String> = r.get(13)?;
    let revision: i64 = r.get(11)?;
    let revision_date: String = r.get(14)?;
    Ok(Sponsorship {
        id: conv(parse_id(&id))?,
        sponsoring_organization_id: conv(org.as_deref().map(parse_id).transpose())?,
        sponsoring_member_id: conv(parse_id(&member))?,
        friendly_name: r.get(3)?,
        offered_to_email: r.get(4)?,
        plan_sponsorship_type: conv(
            pst.map(|n| {
                PlanSponsorshipType::from_number(n).ok_or(format!("unknown sponsorship type {n}"))
            })
            .transpose(),
        )?,
        last_sync_date: conv(parse_opt_ts(r.get(6)?))?,
        valid_until: conv(parse_opt_ts(r.get(7)?))?,
        to_delete: r.get(8)?,
        is_admin_initiated: r.get(9)?,
        notes: r.get(10)?,
        revision: conv(u64::try_from(revision).map_err(|e| e.to_string()))?,
        awaiting_sync: r.get(12)?,
        superseded_offer: conv(
            superseded
                .as_deref()
                .map(|s| serde_json::from_str::<SupersededOffer>(s).map_err(|e| e.to_string()))
                .transpose(),
        )?,
        revision_date: conv(parse_ts(&revision_date))?,
    })
}

fn upsert_sponsorship(tx: &Connection, row: &Sponsorship) -> rusqlite::Result<()> {
    let superseded = row
        .superseded_offer
        .as_ref()
        .map(|s| serde_json::to_string(s).unwrap_or_default());
    let revision = i64::try_from(row.revision).unwrap_or(i64::MAX);
    tx.prepare_cached(&format!(
        "INSERT OR REPLACE INTO sponsorships ({ROW_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
    ))?
    .execute(params![
        row.id.to_string(),
        row.sponsoring_organization_id.map(|o| o.to_string()),
        row.sponsoring_member_id.to_string(),
        row.friendly_name,
        row.offered_to_email,
        row.plan_sponsorship_type.map(PlanSponsorshipType::number),
        opt_ts(row.last_sync_date),
        opt_ts(row.valid_until),
        row.to_delete,
        row.is_admin_initiated,
        row.notes,
        revision,
        row.awaiting_sync,
        superseded,
        ts(row.revision_date),
    ])?;
    Ok(())
}

/// Writes the fields a sync may change (see `sync::apply_change_in_place`) in place: an
/// `UPDATE` keeps the row where it is, so only the changed pages are written.
fn update_synced_fields(tx: &Connection, row: &Sponsorship) -> rusqlite::Result<()> {
    let superseded = row
        .superseded_offer
        .as_ref()
        .map(|s| serde_json::to_string(s).unwrap_or_default());
    let revision = i64::try_from(row.revision).unwrap_or(i64::MAX);
    tx.prepare_cached(
        "UPDATE sponsorships SET friendly_name = ?2, offered_to_email = ?3, last_sync_date = ?4, \
         valid_until = ?5, to_delete = ?6, revision = ?7, awaiting_sync = ?8, superseded_offer = ?9 \
         WHERE id = ?1",
    )?
    .execute(params![
        row.id.to_string(),
        row.friendly_name,
        row.offered_to_email,
        opt_ts(row.last_sync_date),
        opt_ts(row.valid_until),
        row.to_delete,
        revision,
        row.awaiting_sync,
        superseded,
    ])?;
    Ok(())
}

/// Reads and writes inside one transaction (see [`Db::write`] and [`Db::read`]).
pub(crate) struct Tx<'a> {
    tx: &'a Transaction<'a>,
}

impl Tx<'_> {
    /// Counts the organization's rows per UI status with one grouped query (no row is loaded,
    /// so `status` stays fast on large organizations).
    pub(crate) fn status_counts(&self, org: OrganizationId) -> rusqlite::Result<StatusCounts> {
        let mut st = self.tx.prepare_cached(
            // Answered from the covering index `sponsorships_status` (migration 3).
            "SELECT to_delete, valid_until IS NOT NULL, last_sync_date IS NOT NULL, awaiting_sync, \
             COUNT(*) FROM sponsorships WHERE sponsoring_organization_id = ?1 GROUP BY 1, 2, 3, 4",
        )?;
        let groups = st.query_map([org.to_string()], |r| {
            Ok((
                r.get::<_, bool>(0)?,
                r.get::<_, bool>(1)?,
                r.get::<_, bool>(2)?,
                r.get::<_, bool>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut counts = StatusCounts::default();
        for group in groups {
            let (to_delete, redeemed, synced, awaiting, n) = group?;
            counts.add(
                UiStatus::from_flags(to_delete, redeemed, synced),
                awaiting,
                usize::try_from(n).unwrap_or(0),
            );
        }
        Ok(counts)
    }

    /// All organizations, by name.
    pub(crate) fn organizations(&self) -> rusqlite::Result<Vec<OrgRecord>> {
        let mut st = self.tx.prepare(&format!(
            "SELECT {ORG_COLUMNS} FROM organizations ORDER BY name COLLATE NOCASE, id"
        ))?;
        st.query_map([], org_from_row)?.collect()
    }

    /// Inserts an organization.
    pub(crate) fn insert_organization(
        &self,
        rec: &OrgRecord,
        now: DateTime<Utc>,
    ) -> rusqlite::Result<()> {
        self.tx.execute(
            "INSERT INTO organizations (id, name, plan_type, enabled, use_admin_sponsored_families, \
             cloud_organization_id, license_json, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7)",
            params![
                rec.org.id.to_string(),
                rec.org.name,
                rec.org.plan_type.number(),
                rec.org.enabled,
                rec.org.use_admin_sponsored_families,
                rec.cloud_organization_id.map(|c| c.to_string()),
                ts(now),
            ],
        )?;
        Ok(())
    }

    /// Stores an imported license and what it says about the organization.
    pub(crate) fn save_license(
        &self,
        org: OrganizationId,
        license: &OrganizationLicense,
        license_json: &str,
    ) -> rusqlite::Result<()> {
        self.tx.execute(
            "UPDATE organizations SET cloud_organization_id = ?2, license_json = ?3, plan_type = ?4, \
             enabled = ?5, use_admin_sponsored_families = ?6 WHERE id = ?1",
            params![
                org.to_string(),
                license.id.to_string(),
                license_json,
                license.plan_type.number(),
                license.enabled,
                license.use_admin_sponsored_families,
            ],
        )?;
        Ok(())
    }

    /// Members of an organization, by e-mail.
    pub(crate) fn members(&self, org: OrganizationId) -> rusqlite::Result<Vec<Member>> {
        let mut st = self.tx.prepare(
            "SELECT id, organization_id, email, status, role FROM members \
             WHERE organization_id = ?1 ORDER BY email COLLATE NOCASE",
        )?;
        st.query_map([org.to_string()], member_from_row)?.collect()
    }

    /// Inserts a member.
    pub(crate) fn insert_member(&self, m: &Member) -> rusqlite::Result<()> {
        self.tx.execute(
            "INSERT INTO members (id, organization_id, email, status, role) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                m.id.to_string(),
                m.organization_id.to_string(),
                m.email,
                m.status.name(),
                m.role.name()
            ],
        )?;
        Ok(())
    }

    /// Deletes a member (their sponsorship rows stay, marked for deletion by the caller).
    pub(crate) fn delete_member(&self, id: MemberId) -> rusqlite::Result<()> {
        self.tx
            .execute("DELETE FROM members WHERE id = ?1", [id.to_string()])?;
        Ok(())
    }

    /// Sponsorship rows of an organization (all when `None`), ordered by organization and member.
    pub(crate) fn sponsorships(
        &self,
        org: Option<OrganizationId>,
    ) -> rusqlite::Result<Vec<Sponsorship>> {
        let order = "ORDER BY sponsoring_organization_id, sponsoring_member_id, id";
        if let Some(org) = org {
            let mut st = self.tx.prepare(&format!(
                "SELECT {ROW_COLUMNS} FROM sponsorships WHERE sponsoring_organization_id = ?1 {order}"
            ))?;
            st.query_map([org.to_string()], sponsorship_from_row)?
                .collect()
        } else {
            let mut st = self
                .tx
                .prepare(&format!("SELECT {ROW_COLUMNS} FROM sponsorships {order}"))?;
            st.query_map([], sponsorship_from_row)?.collect()
        }
    }

    /// Writes lifecycle changes (offer, revoke, member removal).
    pub(crate) fn write_changes(&self, changes: &[RowChange]) -> rusqlite::Result<()> {
        for change in changes {
            match change {
                RowChange::Upsert(row) => upsert_sponsorship(self.tx, row)?,
                RowChange::Delete(id) => {
                    self.tx
                        .execute("DELETE FROM sponsorships WHERE id = ?1", [id.to_string()])?;
                }
            }
        }
        Ok(())
    }

    /// The organization's billing sync connection.
    pub(crate) fn connection(
        &self,
        org: OrganizationId,
    ) -> rusqlite::Result<Option<BillingConnection>> {
        self.tx
            .query_row(
                "SELECT billing_sync_key, enabled, updated_at FROM billing_sync_connections \
                 WHERE organization_id = ?1",
                [org.to_string()],
                |r| {
                    let key: String = r.get(0)?;
                    let updated: String = r.get(2)?;
                    Ok(BillingConnection {
                        key: conv(BillingSyncKey::parse(&key).map_err(|e| e.to_string()))?,
                        enabled: r.get(1)?,
                        updated_at: conv(parse_ts(&updated))?,
                    })
                },
            )
            .optional()
    }

    /// Stores (or replaces) the key; a new connection starts enabled, a replaced key keeps the
    /// switch as it was.
    pub(crate) fn set_key(
        &self,
        org: OrganizationId,
        key: &BillingSyncKey,
        now: DateTime<Utc>,
    ) -> rusqlite::Result<()> {
        self.tx.execute(
            "INSERT INTO billing_sync_connections (organization_id, billing_sync_key, enabled, updated_at) \
             VALUES (?1, ?2, 1, ?3) ON CONFLICT (organization_id) DO UPDATE SET \
             billing_sync_key = excluded.billing_sync_key, updated_at = excluded.updated_at",
            params![org.to_string(), key.expose_secret(), ts(now)],
        )?;
        Ok(())
    }

    /// Switches the connection; `false` when there is none.
    pub(crate) fn set_enabled(
        &self,
        org: OrganizationId,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> rusqlite::Result<bool> {
        let n = self.tx.execute(
            "UPDATE billing_sync_connections SET enabled = ?2, updated_at = ?3 WHERE organization_id = ?1",
            params![org.to_string(), enabled, ts(now)],
        )?;
        Ok(n > 0)
    }

    /// The organization's sync state (default when none is stored).
    pub(crate) fn sync_state(&self, org: OrganizationId) -> rusqlite::Result<SyncState> {
        self.tx
            .query_row(
                "SELECT last_attempt, last_success, last_error_category, last_error_message, \
                 last_error_at, next_due, consecutive_failures, last_license_sync \
                 FROM sync_state WHERE organization_id = ?1",
                [org.to_string()],
                |r| {
                    let category: Option<String> = r.get(2)?;
                    let message: Option<String> = r.get(3)?;
                    let at: Option<String> = r.get(4)?;
                    let last_error = match (category, message, at) {
                        (Some(c), Some(m), Some(at)) => Some(SyncErrorRecord {
                            category: conv(
                                serde_json::from_value::<ErrorCategory>(serde_json::Value::String(
                                    c,
                                ))
                                .map_err(|e| e.to_string()),
                            )?,
                            message: m,
                            at: conv(parse_ts(&at))?,
                        }),
                        _ => None,
                    };
                    Ok(SyncState {
                        last_attempt: conv(parse_opt_ts(r.get(0)?))?,
                        last_success: conv(parse_opt_ts(r.get(1)?))?,
                        last_error,
                        next_due: conv(parse_opt_ts(r.get(5)?))?,
                        consecutive_failures: r.get(6)?,
                        last_license_sync: conv(parse_opt_ts(r.get(7)?))?,
                    })
                },
            )
            .optional()
            .map(Option::unwrap_or_default)
    }

    /// Stores the organization's sync state.
    pub(crate) fn save_sync_state(
        &self,
        org: OrganizationId,
        s: &SyncState,
    ) -> rusqlite::Result<()> {
        let category = s
            .last_error
            .as_ref()
            .map(|e| match serde_json::to_value(e.category) {
                Ok(serde_json::Value::String(c)) => c,
                _ => e.category.name().to_owned(),
            });
        self.tx.execute(
            "INSERT OR REPLACE INTO sync_state (organization_id, last_attempt, last_success, \
             last_error_category, last_error_message, last_error_at, next_due, consecutive_failures, \
             last_license_sync) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                org.to_string(),
                opt_ts(s.last_attempt),
                opt_ts(s.last_success),
                category,
                s.last_error.as_ref().map(|e| e.message.clone()),
                s.last_error.as_ref().map(|e| ts(e.at)),
                opt_ts(s.next_due),
                s.consecutive_failures,
                opt_ts(s.last_license_sync),
            ],
        )?;
        Ok(())
    }

    /// The lock row of an organization.
    pub(crate) fn lock(&self, org: OrganizationId) -> rusqlite::Result<Option<SyncLock>> {
        self.tx
            .query_row(
                "SELECT holder, token, acquired_at, expires_at FROM sync_locks WHERE organization_id = ?1",
                [org.to_string()],
                |r| {
                    let acquired: String = r.get(2)?;
                    let expires: String = r.get(3)?;
                    Ok(SyncLock {
                        holder: r.get(0)?,
                        token: r.get(1)?,
                        acquired_at: conv(parse_ts(&acquired))?,
                        expires_at: conv(parse_ts(&expires))?,
                    })
                },
            )
            .optional()
    }

    fn apply_batch(
        &self,
        org: OrganizationId,
        batch: &BatchApplication,
    ) -> rusqlite::Result<AppliedBatch> {
        let mut out = AppliedBatch::default();
        let mut select = self.tx.prepare_cached(&format!(
            "SELECT {ROW_COLUMNS} FROM sponsorships WHERE id = ?1 AND sponsoring_organization_id = ?2"
        ))?;
        for change in &batch.changes {
            let row = select
                .query_row(
                    params![change.sponsorship_id.to_string(), org.to_string()],
                    sponsorship_from_row,
                )
                .optional()?;
            match row {
                Some(mut row) if row.revision == change.expected_revision => {
                    if apply_change_in_place(&mut row, &change.action) {
                        update_synced_fields(self.tx, &row)?;
                    } else {
                        self.tx
                            .prepare_cached("DELETE FROM sponsorships WHERE id = ?1")?
                            .execute([change.sponsorship_id.to_string()])?;
                    }
                    out.applied += 1;
                }
                _ => out.stale.push(change.sponsorship_id),
            }
        }
        Ok(out)
    }

    fn try_lock(
        &self,
        org: OrganizationId,
        lock: &SyncLock,
        now: DateTime<Utc>,
    ) -> rusqlite::Result<LockOutcome> {
        if let Some(held) = self.lock(org)?
            && held.token != lock.token
            && held.expires_at > now
        {
            if crate::liveness::holder_is_gone(&held.holder) {
                tracing::warn!(
                    holder = %held.holder,
                    "taking over the sync lock of a process that no longer runs"
                );
                return self.write_lock(org, lock);
            }
            return Ok(LockOutcome::HeldBy {
                holder: held.holder,
                since: held.acquired_at,
            });
        }
        self.write_lock(org, lock)
    }

    fn write_lock(&self, org: OrganizationId, lock: &SyncLock) -> rusqlite::Result<LockOutcome> {
        self.tx.execute(
            "INSERT OR REPLACE INTO sync_locks (organization_id, holder, token, acquired_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                org.to_string(),
                lock.holder,
                lock.token,
                ts(lock.acquired_at),
                ts(lock.expires_at)
            ],
        )?;
        Ok(LockOutcome::Acquired)
    }
}

impl Db {
    /// Opens (creating with mode `0600` when missing) and migrates the state file.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        if !path.exists() {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::Create {
                    path: shown.clone(),
                    source,
                })?;
            }
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|source| StoreError::Create {
                    path: shown.clone(),
                    source,
                })?;
        }
        let sqlite = |source| StoreError::Sqlite {
            path: shown.clone(),
            source,
        };
        let mut conn = Connection::open(path).map_err(sqlite)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(sqlite)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sqlite)?;
        // In WAL mode NORMAL stays consistent after a crash (the crash tests kill syncs at
        // random); only the last commits may roll back on power loss, and a re-run converges.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sqlite)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sqlite)?;
        migrate(&mut conn, &shown)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path: path.to_owned(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        match source {
            rusqlite::Error::FromSqlConversionFailure(_, _, e) => StoreError::Corrupt {
                path: self.path.display().to_string(),
                message: e.to_string(),
            },
            source => StoreError::Sqlite {
                path: self.path.display().to_string(),
                source,
            },
        }
    }

    /// Runs `f` in one write transaction (`BEGIN IMMEDIATE`): committed when `f` returns `Ok`,
    /// rolled back otherwise.
    pub(crate) fn write<T, E>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let out = f(&Tx { tx: &tx })?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(out)
    }

    /// Runs `f` in one read transaction (a consistent snapshot).
    pub(crate) fn read<T, E>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(|e| self.err(e))?;
        let out = f(&Tx { tx: &tx })?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(out)
    }

    /// A write transaction whose body only fails with SQLite errors.
    pub(crate) fn write_sql<T>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        self.write(|tx| f(tx).map_err(|e| self.err(e)))
    }

    /// A read transaction whose body only fails with SQLite errors.
    pub(crate) fn read_sql<T>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        self.read(|tx| f(tx).map_err(|e| self.err(e)))
    }
}

fn migrate(conn: &mut Connection, shown: &str) -> Result<(), StoreError> {
    let sqlite = |source| StoreError::Sqlite {
        path: shown.to_owned(),
        source,
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite)?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        return Err(StoreError::Corrupt {
            path: shown.to_owned(),
            message: format!(
                "schema version {version} is newer than this release understands ({}): use a newer sponsorctl",
                MIGRATIONS.len()
            ),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.execute_batch(sql).map_err(sqlite)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(i + 1).unwrap_or(i64::MAX),
        )
        .map_err(sqlite)?;
    }
    tx.commit().map_err(sqlite)
}

impl SponsorshipStore for Db {
    type Error = StoreError;

    async fn sponsorships(&self, org: OrganizationId) -> Result<Vec<Sponsorship>, StoreError> {
        self.read_sql(|tx| tx.sponsorships(Some(org)))
    }

    async fn apply_batch(
        &self,
        org: OrganizationId,
        batch: &BatchApplication,
    ) -> Result<AppliedBatch, StoreError> {
        self.write_sql(|tx| tx.apply_batch(org, batch))
    }

    async fn sync_state(&self, org: OrganizationId) -> Result<SyncState, StoreError> {
        self.read_sql(|tx| tx.sync_state(org))
    }

    async fn save_sync_state(
        &self,
        org: OrganizationId,
        state: &SyncState,
    ) -> Result<(), StoreError> {
        self.write_sql(|tx| tx.save_sync_state(org, state))
    }

    async fn try_lock_sync(
        &self,
        org: OrganizationId,
        lock: &SyncLock,
        now: DateTime<Utc>,
    ) -> Result<LockOutcome, StoreError> {
        self.write_sql(|tx| tx.try_lock(org, lock, now))
    }

    async fn unlock_sync(&self, org: OrganizationId, token: &str) -> Result<(), StoreError> {
        self.write_sql(|tx| {
            tx.tx.execute(
                "DELETE FROM sync_locks WHERE organization_id = ?1 AND token = ?2",
                params![org.to_string(), token],
            )?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use sponsorship_core::ids::SponsorshipId;
    use sponsorship_core::sync::{SyncAction, SyncChange, apply_change};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
    }

    fn setup() -> (tempfile::TempDir, Db, OrganizationId, Sponsorship) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("s.db")).unwrap();
        let org = OrganizationId::new_random();
        let member = MemberId::new_random();
        let row = Sponsorship {
            id: SponsorshipId::new_random(),
            sponsoring_organization_id: Some(org),
            sponsoring_member_id: member,
            friendly_name: Some("f".into()),
            offered_to_email: Some("a@b.example".into()),
            plan_sponsorship_type: Some(PlanSponsorshipType::FamiliesForEnterprise),
            last_sync_date: None,
            valid_until: None,
            to_delete: false,
            is_admin_initiated: false,
            notes: None,
            revision: 1,
            awaiting_sync: true,
            superseded_offer: Some(SupersededOffer {
                friendly_name: Some("old".into()),
                offered_to_email: Some("old@b.example".into()),
                last_sync_date: now(),
            }),
            revision_date: now(),
        };
        db.write_sql(|tx| tx.write_changes(&[RowChange::Upsert(row.clone())]))
            .unwrap();
        (dir, db, org, row)
    }

    #[test]
    fn file_is_private_and_rows_round_trip() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, db, org, row) = setup();
        let mode = std::fs::metadata(dir.path().join("s.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            db.read_sql(|tx| tx.sponsorships(Some(org))).unwrap(),
            vec![row]
        );
        // Reopening does not migrate again.
        drop(db);
        let again = Db::open(&dir.path().join("s.db")).unwrap();
        assert_eq!(again.read_sql(|tx| tx.sponsorships(None)).unwrap().len(), 1);
    }

    #[test]
    fn rows_of_a_version_1_file_survive_the_clustering_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let (_keep, db, org, row) = setup();
        // The row as version 1 stored it, copied into a file left at version 1.
        let stored = db.read_sql(|tx| tx.sponsorships(Some(org))).unwrap();
        drop(db);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let migrated = Db::open(&path).unwrap();
        migrated
            .write_sql(|tx| tx.write_changes(&[RowChange::Upsert(row.clone())]))
            .unwrap();
        assert_eq!(
            migrated.read_sql(|tx| tx.sponsorships(Some(org))).unwrap(),
            stored
        );
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(usize::try_from(version).unwrap(), MIGRATIONS.len());
        // A second row with the same id is refused by the unique index on id.
        let dup = conn.execute(
            "INSERT INTO sponsorships (id, sponsoring_member_id, to_delete, is_admin_initiated, \
             revision, awaiting_sync, revision_date) VALUES (?1, 'other', 0, 0, 1, 1, 'x')",
            [row.id.to_string()],
        );
        assert!(dup.is_err());
    }

    #[tokio::test]
    async fn apply_batch_is_compare_and_set() {
        let (_dir, db, org, row) = setup();
        let confirm = SyncAction::Confirm {
            last_sync_date: Some(now()),
            valid_until: None,
            to_delete: false,
        };
        let batch = BatchApplication {
            batch_number: 1,
            changes: vec![
                SyncChange {
                    sponsorship_id: row.id,
                    member_id: row.sponsoring_member_id,
                    expected_revision: 0,
                    action: confirm.clone(),
                },
                SyncChange {
                    sponsorship_id: SponsorshipId::new_random(),
                    member_id: row.sponsoring_member_id,
                    expected_revision: 0,
                    action: SyncAction::Delete,
                },
            ],
            skipped: vec![],
            unexpected: vec![],
        };
        let out = db.apply_batch(org, &batch).await.unwrap();
        assert_eq!(out.applied, 0);
        assert_eq!(out.stale.len(), 2);
        let batch = BatchApplication {
            changes: vec![SyncChange {
                sponsorship_id: row.id,
                member_id: row.sponsoring_member_id,
                expected_revision: 1,
                action: confirm.clone(),
            }],
            ..batch
        };
        let out = db.apply_batch(org, &batch).await.unwrap();
        assert_eq!(out.applied, 1);
        let stored = db.sponsorships(org).await.unwrap();
        assert_eq!(stored, vec![apply_change(&row, &confirm).unwrap()]);
    }

    #[tokio::test]
    async fn lock_is_exclusive_until_released_or_expired() {
        let (dir, db, org, _) = setup();
        let other = Db::open(&dir.path().join("s.db")).unwrap();
        let lock = |token: &str| SyncLock {
            holder: format!("test {token}"),
            token: token.into(),
            acquired_at: now(),
            expires_at: now() + chrono::TimeDelta::minutes(10),
        };
        assert_eq!(
            db.try_lock_sync(org, &lock("a"), now()).await.unwrap(),
            LockOutcome::Acquired
        );
        assert!(matches!(
            other.try_lock_sync(org, &lock("b"), now()).await.unwrap(),
            LockOutcome::HeldBy { ref holder, .. } if holder == "test a"
        ));
        // Renewal by the holder works; expiry lets another take over.
        assert_eq!(
            db.try_lock_sync(org, &lock("a"), now()).await.unwrap(),
            LockOutcome::Acquired
        );
        let later = now() + chrono::TimeDelta::minutes(11);
        assert_eq!(
            other.try_lock_sync(org, &lock("b"), later).await.unwrap(),
            LockOutcome::Acquired
        );
        other.unlock_sync(org, "b").await.unwrap();
        assert_eq!(
            db.try_lock_sync(org, &lock("a"), now()).await.unwrap(),
            LockOutcome::Acquired
        );
    }

    #[tokio::test]
    async fn sync_state_round_trips() {
        let (_dir, db, org, _) = setup();
        assert_eq!(db.sync_state(org).await.unwrap(), SyncState::default());
        let state = SyncState {
            last_attempt: Some(now()),
            last_success: None,
            last_error: Some(SyncErrorRecord {
                category: ErrorCategory::IdentityRejected,
                message: "rejected".into(),
                at: now(),
            }),
            next_due: Some(now()),
            consecutive_failures: 2,
            last_license_sync: Some(now()),
        };
        db.save_sync_state(org, &state).await.unwrap();
        assert_eq!(db.sync_state(org).await.unwrap(), state);
    }
}
