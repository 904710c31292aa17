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
//!   the row revision, with the semantics of the core's [`apply_change_in_place`]: Confirm, Delete
//!   and ForgetSupersededOffer are one `UPDATE`/`DELETE` each, addressed by the primary key
//!   (member, id) and guarded by organization and revision (no row changed = stale); the rare
//!   RevertToRedeemedOffer loads the row and goes through `apply_change_in_place` itself.
//! * Tuned for syncs of 100,000 rows (see [`Db::open`]): 32 MiB page cache, WAL checkpoints every
//!   64 MiB and after each sync ([`Db::checkpoint`]); WAL with `synchronous = NORMAL` stays.
//! * The sync lock is a row (holder, token, expiry) per organization, so two processes never sync
//!   one organization at once; a crashed holder's lock expires.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{
    Connection, OptionalExtension, Row, ToSql, Transaction, TransactionBehavior, params,
};
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
use sponsorship_core::sync::{BatchApplication, SyncAction, SyncChange, apply_change_in_place};
use sponsorship_core::wire::time::{self, Fraction, Rfc3339};

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

/// WAL pages (4 KiB each) after which a commit checkpoints: 64 MiB (see [`Db::open`]).
const WAL_AUTOCHECKPOINT_PAGES: i64 = 16_384;
/// `cache_size` during a sync (negative: KiB), see [`Db::prepare_for_sync`].
const SYNC_CACHE_KIB: i64 = -32_768;
/// The size a checkpointed WAL file is truncated back to.
const WAL_SIZE_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

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

/// A timestamp in the stored form (RFC 3339, UTC, microseconds: `YYYY-MM-DDTHH:MM:SS.ffffffZ`),
/// bound to a statement without a `String` per value.
enum TsText {
    Fixed(Rfc3339),
    Other(String),
}

impl TsText {
    fn new(t: DateTime<Utc>) -> Self {
        match Rfc3339::new(&t, Fraction::Micros) {
            Some(fixed) => Self::Fixed(fixed),
            None => Self::Other(t.to_rfc3339_opts(SecondsFormat::Micros, true)),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Self::Fixed(f) => f.as_str(),
            Self::Other(s) => s,
        }
    }
}

impl ToSql for TsText {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(
            self.as_str().as_bytes(),
        )))
    }
}

/// The stored form of a timestamp: RFC 3339 in UTC with microseconds.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    match TsText::new(t) {
        TsText::Fixed(f) => f.as_str().to_owned(),
        TsText::Other(s) => s,
    }
}

fn opt_ts(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(ts)
}

/// Reads a stored timestamp: strict RFC 3339, the stored form without chrono's general parser.
fn parse_ts(s: &str) -> Result<DateTime<Utc>, String> {
    time::parse_rfc3339(s).ok_or_else(|| match DateTime::parse_from_rfc3339(s) {
        Err(e) => format!("bad timestamp {s:?}: {e}"),
        Ok(_) => format!("bad timestamp {s:?}"),
    })
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

/// A text column's bytes without copying them into a `String`; `None` for NULL. Any other type
/// fails as `Row::get::<String>` would.
fn text_at<'r>(r: &'r Row<'_>, i: usize) -> rusqlite::Result<Option<&'r [u8]>> {
    match r.get_ref(i)? {
        ValueRef::Null => Ok(None),
        ValueRef::Text(b) => Ok(Some(b)),
        other => Err(rusqlite::Error::InvalidColumnType(
            i,
            r.as_ref().column_name(i)?.to_owned(),
            other.data_type(),
        )),
    }
}

/// A NOT NULL text column's bytes.
fn required_text_at<'r>(r: &'r Row<'_>, i: usize) -> rusqlite::Result<&'r [u8]> {
    text_at(r, i)?.ok_or_else(|| {
        rusqlite::Error::InvalidColumnType(
            i,
            r.as_ref()
                .column_name(i)
                .map_or_else(|_| String::new(), str::to_owned),
            rusqlite::types::Type::Null,
        )
    })
}

fn utf8(b: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(b).map_err(|e| e.to_string())
}

/// An id from its stored bytes: the hyphenated form parses straight from them; any other form
/// goes through `FromStr` as before.
fn id_from<T>(b: &[u8]) -> Result<T, String>
where
    T: From<uuid::Uuid> + std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match uuid::Uuid::try_parse_ascii(b) {
        Ok(u) => Ok(T::from(u)),
        Err(_) => parse_id(utf8(b)?),
    }
}

fn ts_from(b: &[u8]) -> Result<DateTime<Utc>, String> {
    parse_ts(utf8(b)?)
}

/// Reads one row; ids and timestamps are parsed from the column bytes (no `String` each), and
/// timestamps in the stored form skip chrono's general RFC 3339 parser (loading 100,000 rows
/// before a sync is on the operator's clock).
fn sponsorship_from_row(r: &Row<'_>) -> rusqlite::Result<Sponsorship> {
    let pst: Option<u8> = r.get(5)?;
    let revision: i64 = r.get(11)?;
    Ok(Sponsorship {
        id: conv(id_from(required_text_at(r, 0)?))?,
        sponsoring_organization_id: conv(text_at(r, 1)?.map(id_from).transpose())?,
        sponsoring_member_id: conv(id_from(required_text_at(r, 2)?))?,
        friendly_name: r.get(3)?,
        offered_to_email: r.get(4)?,
        plan_sponsorship_type: conv(
            pst.map(|n| {
                // (`ok_or_else`: no message is formatted for the rows that parse)
                PlanSponsorshipType::from_number(n)
                    .ok_or_else(|| format!("unknown sponsorship type {n}"))
            })
            .transpose(),
        )?,
        last_sync_date: conv(text_at(r, 6)?.map(ts_from).transpose())?,
        valid_until: conv(text_at(r, 7)?.map(ts_from).transpose())?,
        to_delete: r.get(8)?,
        is_admin_initiated: r.get(9)?,
        notes: r.get(10)?,
        revision: conv(u64::try_from(revision).map_err(|e| e.to_string()))?,
        awaiting_sync: r.get(12)?,
        superseded_offer: conv(
            text_at(r, 13)?
                .map(|s| {
                    serde_json::from_slice::<Box<SupersededOffer>>(s).map_err(|e| e.to_string())
                })
                .transpose(),
        )?,
        revision_date: conv(ts_from(required_text_at(r, 14)?))?,
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
/// `UPDATE` keeps the row where it is, so only the changed pages are written. The row is
/// addressed by its primary key (member, id).
fn update_synced_fields(tx: &Connection, row: &Sponsorship) -> rusqlite::Result<()> {
    let superseded = row
        .superseded_offer
        .as_ref()
        .map(|s| serde_json::to_string(s).unwrap_or_default());
    let revision = i64::try_from(row.revision).unwrap_or(i64::MAX);
    tx.prepare_cached(
        "UPDATE sponsorships SET friendly_name = ?3, offered_to_email = ?4, last_sync_date = ?5, \
         valid_until = ?6, to_delete = ?7, revision = ?8, awaiting_sync = ?9, superseded_offer = ?10 \
         WHERE sponsoring_member_id = ?1 AND id = ?2",
    )?
    .execute(params![
        IdText::new(row.sponsoring_member_id.as_uuid()),
        IdText::new(row.id.as_uuid()),
        row.friendly_name,
        row.offered_to_email,
        row.last_sync_date.map(TsText::new),
        row.valid_until.map(TsText::new),
        row.to_delete,
        revision,
        row.awaiting_sync,
        superseded,
    ])?;
    Ok(())
}

/// An id in its stored (lowercase hyphenated) form on the stack, bound without a `String`.
struct IdText([u8; uuid::fmt::Hyphenated::LENGTH]);

impl IdText {
    fn new(id: &uuid::Uuid) -> Self {
        let mut buf = [0; uuid::fmt::Hyphenated::LENGTH];
        id.hyphenated().encode_lower(&mut buf);
        Self(buf)
    }
}

impl ToSql for IdText {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(&self.0)))
    }
}

/// Confirm (`apply_change_in_place`'s `Confirm` arm) as one compare-and-set: the row is
/// addressed by its primary key, must still belong to the organization and have the revision the
/// batch was planned from; no row changed means stale. The revision stays as it is.
const CONFIRM_SQL: &str = "UPDATE sponsorships SET last_sync_date = ?5, valid_until = ?6, \
     to_delete = ?7, awaiting_sync = (superseded_offer IS NOT NULL) \
     WHERE sponsoring_member_id = ?1 AND id = ?2 AND sponsoring_organization_id = ?3 \
     AND revision = ?4";
/// Delete as one compare-and-set (same addressing as [`CONFIRM_SQL`]).
const DELETE_SQL: &str = "DELETE FROM sponsorships \
     WHERE sponsoring_member_id = ?1 AND id = ?2 AND sponsoring_organization_id = ?3 \
     AND revision = ?4";
/// ForgetSupersededOffer as one compare-and-set (same addressing as [`CONFIRM_SQL`]).
const FORGET_SQL: &str = "UPDATE sponsorships SET superseded_offer = NULL \
     WHERE sponsoring_member_id = ?1 AND id = ?2 AND sponsoring_organization_id = ?3 \
     AND revision = ?4";

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
        if let Some(org) = org {
            // One pass over the table in primary-key order (member, id), which is the order
            // asked for: the unary `+` keeps SQLite from going through `sponsorships_status`
            // instead, which costs a key lookup per row and a sort. Rows of other organizations
            // are skipped on the way (a server has few organizations).
            let mut st = self.tx.prepare(&format!(
                "SELECT {ROW_COLUMNS} FROM sponsorships WHERE +sponsoring_organization_id = ?1 \
                 ORDER BY sponsoring_member_id, id"
            ))?;
            st.query_map([IdText::new(org.as_uuid())], sponsorship_from_row)?
                .collect()
        } else {
            let mut st = self.tx.prepare(&format!(
                "SELECT {ROW_COLUMNS} FROM sponsorships \
                 ORDER BY sponsoring_organization_id, sponsoring_member_id, id"
            ))?;
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
        let org_text = IdText::new(org.as_uuid());
        let mut confirm = self.tx.prepare_cached(CONFIRM_SQL)?;
        let mut delete = self.tx.prepare_cached(DELETE_SQL)?;
        let mut forget = self.tx.prepare_cached(FORGET_SQL)?;
        for change in &batch.changes {
            // A revision beyond SQLite's integers matches no stored row.
            let Ok(revision) = i64::try_from(change.expected_revision) else {
                out.stale.push(change.sponsorship_id);
                continue;
            };
            let member = IdText::new(change.member_id.as_uuid());
            let id = IdText::new(change.sponsorship_id.as_uuid());
            let key = params![member, id, org_text, revision];
            let changed = match &change.action {
                SyncAction::Confirm {
                    last_sync_date,
                    valid_until,
                    to_delete,
                } => confirm.execute(params![
                    member,
                    id,
                    org_text,
                    revision,
                    last_sync_date.map(TsText::new),
                    valid_until.map(TsText::new),
                    to_delete,
                ])?,
                SyncAction::Delete => delete.execute(key)?,
                SyncAction::ForgetSupersededOffer => forget.execute(key)?,
                SyncAction::RevertToRedeemedOffer { .. } => {
                    usize::from(self.apply_loaded(change, key)?)
                }
            };
            if changed > 0 {
                out.applied += 1;
            } else {
                out.stale.push(change.sponsorship_id);
            }
        }
        Ok(out)
    }

    /// The generic path (load, `apply_change_in_place`, write) for the rare actions that rewrite
    /// more than the SQL fast paths do; `key` is (member, id, organization, revision) as in
    /// [`CONFIRM_SQL`]. `false` when the row is gone or has another revision (stale).
    fn apply_loaded(&self, change: &SyncChange, key: &[&dyn ToSql]) -> rusqlite::Result<bool> {
        let row = self
            .tx
            .prepare_cached(&format!(
                "SELECT {ROW_COLUMNS} FROM sponsorships WHERE sponsoring_member_id = ?1 AND id = ?2 \
                 AND sponsoring_organization_id = ?3 AND revision = ?4"
            ))?
            .query_row(key, sponsorship_from_row)
            .optional()?;
        let Some(mut row) = row else {
            return Ok(false);
        };
        if apply_change_in_place(&mut row, &change.action) {
            update_synced_fields(self.tx, &row)?;
        } else {
            self.tx.prepare_cached(DELETE_SQL)?.execute(key)?;
        }
        Ok(true)
    }

    fn try_lock(
        &self,
        org: OrganizationId,
        lock: &SyncLock,
        now: DateTime<Utc>,
    ) -> rusqlite::Result<LockOutcome> {
        if let Some(held) = self.lock(org)?
            && held.excludes(&lock.token, now)
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
        // Sorts and temporary indexes in memory: they are small, and never need to hit the disk.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(sqlite)?;
        // Checkpoint every 64 MiB of WAL instead of every 4 MB: a sync of 100,000 rows commits
        // ~40 MB of pages, and at the default it stopped a dozen times to copy pages back and
        // fsync, often copying the same page more than once. The WAL stays bounded by this size
        // (and is truncated back to it by `journal_size_limit`); a sync checkpoints at its end
        // (`Db::checkpoint`), and closing the last connection checkpoints too.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
            .map_err(sqlite)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT_BYTES)
            .map_err(sqlite)?;
        migrate(&mut conn, &shown)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path: path.to_owned(),
        })
    }

    /// Before a sync: 32 MiB of page cache instead of SQLite's 2 MB. A sync reads an
    /// organization's rows once and then rewrites them batch by batch; with 100,000 rows the table
    /// and the status index are ~37 MB, and a 2 MB cache read most pages from the file twice.
    /// Only syncs get it: SQLite allocates each cached page separately until the cache is full,
    /// which made a one-shot `status` on 100,000 rows 60% slower (34 → 54 ms) for no reuse.
    pub(crate) fn prepare_for_sync(&self) -> Result<(), StoreError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        conn.pragma_update(None, "cache_size", SYNC_CACHE_KIB)
            .map_err(|e| self.err(e))
    }

    /// Copies the WAL back into the database file as far as readers allow, without waiting for
    /// them (`PRAGMA wal_checkpoint(PASSIVE)`): called after a sync, so that its writes do not
    /// stay in the WAL until the next automatic checkpoint (a daemon keeps its connection open).
    pub(crate) fn checkpoint(&self) -> Result<(), StoreError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(|e| self.err(e))
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
        let started = Instant::now();
        let rows = self.read_sql(|tx| tx.sponsorships(Some(org)))?;
        tracing::debug!(
            rows = rows.len(),
            duration_ms = started.elapsed().as_secs_f64() * 1e3,
            "sponsorships loaded"
        );
        Ok(rows)
    }

    async fn apply_batch(
        &self,
        org: OrganizationId,
        batch: &BatchApplication,
    ) -> Result<AppliedBatch, StoreError> {
        let started = Instant::now();
        let applied = self.write_sql(|tx| tx.apply_batch(org, batch))?;
        tracing::debug!(
            batch = batch.batch_number,
            changes = batch.changes.len(),
            stale = applied.stale.len(),
            duration_ms = started.elapsed().as_secs_f64() * 1e3,
            "batch written"
        );
        Ok(applied)
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
            superseded_offer: Some(Box::new(SupersededOffer {
                friendly_name: Some("old".into()),
                offered_to_email: Some("old@b.example".into()),
                last_sync_date: now(),
            })),
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

    /// A row of `org` as a sync finds it: `superseded` when a new offer replaced a synced one.
    fn row_of(org: OrganizationId, member: MemberId, superseded: bool) -> Sponsorship {
        let micros = chrono::TimeDelta::microseconds(123_456);
        Sponsorship {
            id: SponsorshipId::new_random(),
            sponsoring_organization_id: Some(org),
            sponsoring_member_id: member,
            friendly_name: Some("new@family.example".into()),
            offered_to_email: Some("new@family.example".into()),
            plan_sponsorship_type: Some(PlanSponsorshipType::FamiliesForEnterprise),
            last_sync_date: Some(now() - chrono::TimeDelta::days(3) + micros),
            valid_until: (!superseded).then(|| now() + chrono::TimeDelta::days(300) + micros),
            to_delete: false,
            is_admin_initiated: false,
            notes: Some("kept as it is".into()),
            revision: 7,
            awaiting_sync: true,
            superseded_offer: superseded.then(|| {
                Box::new(SupersededOffer {
                    friendly_name: Some("old@family.example".into()),
                    offered_to_email: Some("old@family.example".into()),
                    last_sync_date: now() - chrono::TimeDelta::days(40) + micros,
                })
            }),
            revision_date: now() - chrono::TimeDelta::days(1) + micros,
        }
    }

    fn actions() -> Vec<SyncAction> {
        let at = now() + chrono::TimeDelta::microseconds(654_321);
        vec![
            SyncAction::Confirm {
                last_sync_date: Some(at),
                valid_until: Some(at + chrono::TimeDelta::days(365)),
                to_delete: false,
            },
            SyncAction::Confirm {
                last_sync_date: Some(at),
                valid_until: None,
                to_delete: true,
            },
            SyncAction::Confirm {
                last_sync_date: None,
                valid_until: None,
                to_delete: false,
            },
            SyncAction::Delete,
            SyncAction::ForgetSupersededOffer,
            SyncAction::RevertToRedeemedOffer {
                last_sync_date: Some(at),
                valid_until: Some(at + chrono::TimeDelta::days(30)),
            },
            SyncAction::RevertToRedeemedOffer {
                last_sync_date: None,
                valid_until: None,
            },
        ]
    }

    fn batch_of(changes: Vec<SyncChange>) -> BatchApplication {
        BatchApplication {
            batch_number: 1,
            changes,
            skipped: vec![],
            unexpected: vec![],
        }
    }

    fn stored(db: &Db, org: OrganizationId, id: SponsorshipId) -> Option<Sponsorship> {
        db.read_sql(|tx| tx.sponsorships(Some(org)))
            .unwrap()
            .into_iter()
            .find(|r| r.id == id)
    }

    /// Every SQL fast path (Confirm, Delete, ForgetSupersededOffer) and the generic path
    /// (RevertToRedeemedOffer) leaves exactly the row the core's reference semantics make, with
    /// and without a superseded offer; the untouched neighbour of the same member stays as it was.
    #[tokio::test]
    async fn each_action_stores_exactly_the_reference_row() {
        let (_dir, db, org, _) = setup();
        for superseded in [false, true] {
            for action in actions() {
                let member = MemberId::new_random();
                let row = row_of(org, member, superseded);
                let neighbour = row_of(org, member, !superseded);
                db.write_sql(|tx| {
                    tx.write_changes(&[
                        RowChange::Upsert(row.clone()),
                        RowChange::Upsert(neighbour.clone()),
                    ])
                })
                .unwrap();
                let out = db
                    .apply_batch(
                        org,
                        &batch_of(vec![SyncChange {
                            sponsorship_id: row.id,
                            member_id: member,
                            expected_revision: row.revision,
                            action: action.clone(),
                        }]),
                    )
                    .await
                    .unwrap();
                assert_eq!(
                    out,
                    AppliedBatch {
                        applied: 1,
                        stale: vec![]
                    },
                    "{action:?}"
                );
                assert_eq!(
                    stored(&db, org, row.id),
                    apply_change(&row, &action),
                    "{action:?} on a row with superseded offer: {superseded}"
                );
                assert_eq!(stored(&db, org, neighbour.id), Some(neighbour));
            }
        }
    }

    /// A change whose revision, organization, member or row does not match is stale for every
    /// action, and changes nothing.
    #[tokio::test]
    async fn mismatched_changes_are_stale_and_change_nothing() {
        let (_dir, db, org, _) = setup();
        let other_org = OrganizationId::new_random();
        for action in actions() {
            let row = row_of(org, MemberId::new_random(), true);
            db.write_sql(|tx| tx.write_changes(&[RowChange::Upsert(row.clone())]))
                .unwrap();
            let change = |member_id, expected_revision| SyncChange {
                sponsorship_id: row.id,
                member_id,
                expected_revision,
                action: action.clone(),
            };
            let member = row.sponsoring_member_id;
            let cases = [
                (org, change(member, row.revision - 1)),
                (org, change(member, row.revision + 1)),
                (org, change(member, u64::MAX)),
                (other_org, change(member, row.revision)),
                (org, change(MemberId::new_random(), row.revision)),
                (
                    org,
                    SyncChange {
                        sponsorship_id: SponsorshipId::new_random(),
                        ..change(member, row.revision)
                    },
                ),
            ];
            for (in_org, change) in cases {
                let out = db
                    .apply_batch(in_org, &batch_of(vec![change.clone()]))
                    .await
                    .unwrap();
                assert_eq!(out.applied, 0, "{change:?}");
                assert_eq!(out.stale, vec![change.sponsorship_id], "{change:?}");
                assert_eq!(stored(&db, org, row.id).as_ref(), Some(&row), "{change:?}");
            }
        }
    }

    /// One batch mixing every action, stale changes among them, counts and applies each on its
    /// own, as the reference rule does in memory.
    #[tokio::test]
    async fn a_mixed_batch_matches_the_reference_rule() {
        let (_dir, db, org, first) = setup();
        let mut reference = std::collections::BTreeMap::new();
        reference.insert(first.id, first);
        let mut changes = Vec::new();
        for (i, action) in actions().into_iter().enumerate() {
            let row = row_of(org, MemberId::new_random(), i % 2 == 0);
            let stale = i % 3 == 0;
            changes.push(SyncChange {
                sponsorship_id: row.id,
                member_id: row.sponsoring_member_id,
                expected_revision: if stale {
                    row.revision + 1
                } else {
                    row.revision
                },
                action,
            });
            reference.insert(row.id, row);
        }
        let rows: Vec<RowChange> = reference.values().cloned().map(RowChange::Upsert).collect();
        db.write_sql(|tx| tx.write_changes(&rows)).unwrap();
        let batch = batch_of(changes);
        // The reference rule: compare the revision of the addressed row, then apply in memory.
        let mut expected = AppliedBatch::default();
        for change in &batch.changes {
            match reference.get_mut(&change.sponsorship_id) {
                Some(row)
                    if row.revision == change.expected_revision
                        && row.sponsoring_member_id == change.member_id =>
                {
                    if !apply_change_in_place(row, &change.action) {
                        reference.remove(&change.sponsorship_id);
                    }
                    expected.applied += 1;
                }
                _ => expected.stale.push(change.sponsorship_id),
            }
        }
        assert!(expected.applied > 0 && !expected.stale.is_empty());
        assert_eq!(db.apply_batch(org, &batch).await.unwrap(), expected);
        let mut want: Vec<Sponsorship> = reference.into_values().collect();
        want.sort_by_key(|r| (r.sponsoring_member_id, r.id));
        assert_eq!(db.sponsorships(org).await.unwrap(), want);
    }

    /// An organization's rows come back in (member, id) order, without the other organization's.
    #[test]
    fn an_organizations_rows_load_in_member_order() {
        let (_dir, db, org, first) = setup();
        let other = OrganizationId::new_random();
        let mut mine = vec![first];
        let mut theirs = Vec::new();
        for i in 0..20 {
            let member = MemberId::new_random();
            mine.push(row_of(org, member, i % 2 == 0));
            mine.push(row_of(org, member, false));
            theirs.push(row_of(other, member, false));
        }
        let all: Vec<RowChange> = mine
            .iter()
            .chain(&theirs)
            .cloned()
            .map(RowChange::Upsert)
            .collect();
        db.write_sql(|tx| tx.write_changes(&all)).unwrap();
        for (o, rows) in [(org, &mut mine), (other, &mut theirs)] {
            rows.sort_by_key(|r| (r.sponsoring_member_id, r.id));
            assert_eq!(&db.read_sql(|tx| tx.sponsorships(Some(o))).unwrap(), rows);
        }
    }

    /// The stored timestamp form is chrono's RFC 3339 with microseconds, written and read without
    /// chrono on the common path: both directions agree with chrono everywhere, and forms the
    /// fast path does not take are left to chrono.
    #[test]
    fn timestamps_match_chrono_both_ways() {
        let chrono_ts = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
        let chrono_parse = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .ok()
        };
        let mut times = vec![
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(2024, 2, 29, 7, 8, 9).unwrap(),
            Utc.with_ymd_and_hms(-1, 6, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap(),
            now() + chrono::TimeDelta::nanoseconds(999_999_999),
        ];
        // A spread of instants over the years 0..=9999, with sub-microsecond parts.
        let mut x: i64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let secs = x.rem_euclid(253_402_300_800) - 62_167_219_200;
            let nanos = u32::try_from(x.rem_euclid(1_000_000_000)).unwrap();
            times.push(DateTime::from_timestamp(secs, nanos).unwrap());
        }
        for t in times {
            let s = ts(t);
            assert_eq!(s, chrono_ts(t));
            assert_eq!(parse_ts(&s).ok(), chrono_parse(&s), "{s}");
            assert_eq!(ts_from(s.as_bytes()).ok(), chrono_parse(&s), "{s}");
        }
        for s in [
            "2026-11-24T12:00:00Z",
            "2026-11-24T12:00:00.123+02:00",
            "2026-11-24t12:00:00.000000z",
            "2016-12-31T23:59:60.000000Z",
            "2026-02-30T00:00:00.000000Z",
            "2026-13-01T00:00:00.000000Z",
            "2026-11-24T24:00:00.000000Z",
            "2026-11-24T12:00:00.00000aZ",
            "+2026-11-24T12:00:00.00000Z",
            "",
        ] {
            assert_eq!(parse_ts(s).ok(), chrono_parse(s), "{s}");
            assert_eq!(ts_from(s.as_bytes()).ok(), chrono_parse(s), "{s}");
        }
    }

    /// The connection settings a sync relies on, and the end-of-sync checkpoint leaving no
    /// frame behind.
    #[test]
    fn connection_is_tuned_and_checkpoints_on_request() {
        let (dir, db, org, _) = setup();
        let cache_size = |db: &Db| -> i64 {
            db.conn
                .lock()
                .unwrap()
                .query_row("PRAGMA cache_size", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(cache_size(&db), -2000, "SQLite's default outside a sync");
        db.prepare_for_sync().unwrap();
        {
            let conn = db.conn.lock().unwrap();
            let get = |p: &str| -> String {
                conn.query_row(&format!("PRAGMA {p}"), [], |r| {
                    r.get::<_, rusqlite::types::Value>(0)
                })
                .map(|v| format!("{v:?}"))
                .unwrap()
            };
            assert_eq!(get("journal_mode"), r#"Text("wal")"#);
            assert_eq!(get("synchronous"), "Integer(1)"); // NORMAL
            assert_eq!(get("cache_size"), "Integer(-32768)");
            assert_eq!(get("temp_store"), "Integer(2)"); // MEMORY
            assert_eq!(get("wal_autocheckpoint"), "Integer(16384)");
        }
        let rows: Vec<RowChange> = (0..200)
            .map(|_| RowChange::Upsert(row_of(org, MemberId::new_random(), false)))
            .collect();
        db.write_sql(|tx| tx.write_changes(&rows)).unwrap();
        db.checkpoint().unwrap();
        // Every frame is in the database file now: a second reader sees all rows from it.
        let (log, done): (i64, i64) = db
            .conn
            .lock()
            .unwrap()
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert!(log > 0);
        assert_eq!(log, done);
        let other = Db::open(&dir.path().join("s.db")).unwrap();
        assert_eq!(
            other
                .read_sql(|tx| tx.sponsorships(Some(org)))
                .unwrap()
                .len(),
            201
        );
    }
}
