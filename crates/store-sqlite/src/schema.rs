//! The schema: versioned migrations (`PRAGMA user_version` is the number applied) and the
//! connection settings a sync relies on, each with its reason.

use rusqlite::{Connection, TransactionBehavior};

use crate::Error;

/// Ordered schema migrations; `PRAGMA user_version` is the number applied.
pub(crate) const MIGRATIONS: &[&str] = &[
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
    r"
-- 4: a billing sync connection no longer needs a row in `organizations`: a host that keeps its
-- organizations in its own tables (or its own database) stores connections here all the same.
CREATE TABLE billing_sync_connections_v4 (
    organization_id TEXT PRIMARY KEY NOT NULL,
    billing_sync_key TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
INSERT INTO billing_sync_connections_v4 (organization_id, billing_sync_key, enabled, updated_at)
SELECT organization_id, billing_sync_key, enabled, updated_at FROM billing_sync_connections;
DROP TABLE billing_sync_connections;
ALTER TABLE billing_sync_connections_v4 RENAME TO billing_sync_connections;
",
];

/// WAL pages (4 KiB each) after which a commit checkpoints: 64 MiB (see [`tune`]).
pub(crate) const WAL_AUTOCHECKPOINT_PAGES: i64 = 16_384;
/// `cache_size` during a sync (negative: KiB), see [`SqliteStore::prepare_for_sync`](crate::SqliteStore::prepare_for_sync).
pub(crate) const SYNC_CACHE_KIB: i64 = -32_768;
/// The size a checkpointed WAL file is truncated back to.
pub(crate) const WAL_SIZE_LIMIT_BYTES: i64 = 64 * 1024 * 1024;
/// How long a statement waits for another connection's write before failing with "database is
/// locked": a `status` reads while a `sync` writes, two processes wait for each other.
pub(crate) const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The settings [`SqliteStore::open`](crate::SqliteStore::open) gives its connection.
pub(crate) fn tune(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // In WAL mode NORMAL stays consistent after a crash (the crash tests kill syncs at
    // random); only the last commits may roll back on power loss, and a re-run converges.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Sorts and temporary indexes in memory: they are small, and never need to hit the disk.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Checkpoint every 64 MiB of WAL instead of every 4 MB: a sync of 100,000 rows commits
    // ~40 MB of pages, and at the default it stopped a dozen times to copy pages back and
    // fsync, often copying the same page more than once. The WAL stays bounded by this size
    // (and is truncated back to it by `journal_size_limit`); a sync checkpoints at its end
    // (`SqliteStore::checkpoint`), and closing the last connection checkpoints too.
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT_BYTES)?;
    Ok(())
}

/// The `application_id` in the header of this store's databases ("SPON").
pub(crate) const APPLICATION_ID: i64 = 0x5350_4F4E;

/// Every table the migrations create (SQLite's own `sqlite_` tables aside).
const OUR_TABLES: &[&str] = &[
    "billing_sync_connections",
    "members",
    "organizations",
    "sponsorships",
    "sync_locks",
    "sync_state",
];

/// Whether `conn` is this store's database: its `application_id`, or (a database of a release
/// that did not set one, or a new one) no `application_id` and only tables this store creates.
/// Reads only.
pub(crate) fn check_ours(conn: &Connection, shown: &str) -> Result<(), Error> {
    let sqlite = |source| Error::Sqlite {
        path: shown.to_owned(),
        source,
    };
    let id: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(sqlite)?;
    if id == APPLICATION_ID {
        return Ok(());
    }
    let not_ours = |reason: String| Error::NotOurs {
        path: shown.to_owned(),
        reason,
    };
    if id != 0 {
        return Err(not_ours(format!("its application_id is {id:#x}")));
    }
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .map_err(sqlite)?;
    let foreign: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(sqlite)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sqlite)?
        .into_iter()
        .filter(|t| !OUR_TABLES.contains(&t.as_str()))
        .collect();
    if foreign.is_empty() {
        Ok(())
    } else {
        let mut shown_tables = foreign
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if foreign.len() > 5 {
            shown_tables.push_str(", …");
        }
        Err(not_ours(format!(
            "it has tables this store never creates: {shown_tables}"
        )))
    }
}

/// Applies the migrations `conn` does not have yet, in one transaction, after checking that
/// the database is this store's ([`check_ours`]); `shown` names the database in errors.
pub(crate) fn migrate(conn: &mut Connection, shown: &str) -> Result<(), Error> {
    let sqlite = |source| Error::Sqlite {
        path: shown.to_owned(),
        source,
    };
    check_ours(conn, shown)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite)?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        return Err(Error::Corrupt {
            path: shown.to_owned(),
            message: format!(
                "schema version {version} is newer than this release understands ({}): open it with the newer release that wrote it",
                MIGRATIONS.len()
            ),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.execute_batch(sql)
            .map_err(|e| Error::migration(shown, i + 1, &e))?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(i + 1).unwrap_or(i64::MAX),
        )
        .map_err(sqlite)?;
    }
    let id: i64 = tx
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(sqlite)?;
    if id != APPLICATION_ID {
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(sqlite)?;
    }
    tx.commit().map_err(sqlite)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use rusqlite::Connection;
    use sponsorship_core::conformance::synced_row;
    use sponsorship_core::ids::{MemberId, OrganizationId};
    use sponsorship_core::secret::BillingSyncKey;

    use super::MIGRATIONS;
    use crate::{Error, SqliteStore};

    fn user_version(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    }

    /// A file left at version 1 by an old release: its rows and connections survive every later
    /// migration, and the result has the current schema.
    #[test]
    fn a_version_1_file_migrates_with_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let org = OrganizationId::new_random();
        let row = synced_row(org, MemberId::new_random(), true);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO organizations (id, name, plan_type, created_at) \
                 VALUES (?1, 'Acme', 20, '2026-11-24T12:00:00.000000Z')",
                [org.to_string()],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO billing_sync_connections VALUES (?1, ?2, 1, \
                 '2026-11-24T12:00:00.000000Z')",
                [org.to_string(), "Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd".to_owned()],
            )
            .unwrap();
            // The version-1 table has the columns of today's: the row as that release wrote it.
            crate::rows::upsert_sponsorship(&conn, &row).unwrap();
        }
        let migrated = SqliteStore::open(&path).unwrap();
        assert_eq!(
            migrated.read(|tx| tx.sponsorships(Some(org))).unwrap(),
            vec![row.clone()]
        );
        let connection = migrated.read(|tx| tx.connection(org)).unwrap().unwrap();
        assert!(connection.enabled);
        let conn = Connection::open(&path).unwrap();
        assert_eq!(
            usize::try_from(user_version(&conn)).unwrap(),
            MIGRATIONS.len()
        );
        // A second row with the same id is refused by the unique index on id.
        let dup = conn.execute(
            "INSERT INTO sponsorships (id, sponsoring_member_id, to_delete, is_admin_initiated, \
             revision, awaiting_sync, revision_date) VALUES (?1, 'other', 0, 0, 1, 1, 'x')",
            [row.id.to_string()],
        );
        assert!(dup.is_err());
    }

    /// Since migration 4 a connection needs no organization row: a host with its own
    /// organizations stores one all the same.
    #[test]
    fn a_connection_needs_no_organization_row() {
        let store =
            SqliteStore::from_connection(Connection::open_in_memory().unwrap(), "memory").unwrap();
        store
            .with_connection(|c| c.pragma_update(None, "foreign_keys", "ON"))
            .unwrap();
        let org = OrganizationId::new_random();
        let key = BillingSyncKey::parse("Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd").unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        store.write(|tx| tx.set_key(org, &key, now)).unwrap();
        assert!(store.read(|tx| tx.connection(org)).unwrap().is_some());
    }

    /// A file from a newer release is refused with what to do, and left as it is.
    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let newer = i64::try_from(MIGRATIONS.len() + 1).unwrap();
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", newer)
            .unwrap();
        let err = SqliteStore::open(&path).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
        assert!(
            err.to_string().contains("newer release that wrote it"),
            "{err}"
        );
        assert_eq!(user_version(&Connection::open(&path).unwrap()), newer);
    }
}
