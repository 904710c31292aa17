//! What the SQLite store promises beyond the kit.

use chrono::{TimeDelta, Utc};
use sponsorship_core::conformance::{new_row, synced_row};
use sponsorship_core::ids::{MemberId, OrganizationId};
use sponsorship_core::org::{Member, MemberRole, MemberStatus, Organization};
use sponsorship_core::plan::PlanType;
use sponsorship_core::secret::BillingSyncKey;
use sponsorship_core::sponsorship::{RowChange, Sponsorship};
use sponsorship_core::store::{LockOutcome, SponsorshipStore, SyncLock};
use sponsorship_core::sync::{BatchApplication, SyncAction, SyncChange};
use store_sqlite::rusqlite::Connection;
use store_sqlite::{Error, OrgRecord, SqliteStore};

fn now() -> chrono::DateTime<Utc> {
    test_support::fixed_now()
}

fn confirm_all(rows: &[Sponsorship]) -> BatchApplication {
    BatchApplication {
        batch_number: 1,
        changes: rows
            .iter()
            .map(|r| SyncChange {
                sponsorship_id: r.id,
                member_id: r.sponsoring_member_id,
                expected_revision: r.revision,
                action: SyncAction::Confirm {
                    last_sync_date: Some(now()),
                    valid_until: None,
                    to_delete: false,
                },
            })
            .collect(),
        skipped: vec![],
        unexpected: vec![],
    }
}

/// A batch whose statement fails half-way (here a trigger refuses the 51st row) changes
/// nothing: the whole batch rolls back, the error names the database, and a retry after the
/// cause is gone applies it whole.
#[tokio::test]
async fn a_batch_that_fails_half_way_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = SqliteStore::open(&path).unwrap();
    let org = OrganizationId::new_random();
    let mut rows: Vec<Sponsorship> = (0..100).map(|n| new_row(org, n)).collect();
    rows.sort_by_key(|r| (r.sponsoring_member_id, r.id));
    let upserts: Vec<RowChange> = rows.iter().cloned().map(RowChange::Upsert).collect();
    store.write_changes(org, &upserts).await.unwrap();
    let host = Connection::open(&path).unwrap();
    host.execute_batch(&format!(
        "CREATE TRIGGER refuse BEFORE UPDATE ON sponsorships WHEN old.id = '{}' \
         BEGIN SELECT RAISE(ABORT, 'disk full (simulated)'); END;",
        rows[50].id
    ))
    .unwrap();
    let err = store
        .apply_batch(org, &confirm_all(&rows))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Sqlite { .. }), "{err:?}");
    assert!(err.to_string().contains("s.db"), "{err}");
    let after = store.sponsorships(org).await.unwrap();
    assert_eq!(after, rows, "no change of the failed batch landed");
    host.execute_batch("DROP TRIGGER refuse").unwrap();
    let applied = store.apply_batch(org, &confirm_all(&rows)).await.unwrap();
    assert_eq!(applied.applied, 100);
}

/// An organization's rows come back in (member, id) order, the order sync plans in, without
/// the other organization's.
#[test]
fn rows_load_in_member_order() {
    let store =
        SqliteStore::from_connection(Connection::open_in_memory().unwrap(), "memory").unwrap();
    let org = OrganizationId::new_random();
    let other = OrganizationId::new_random();
    let mut mine = Vec::new();
    let mut theirs = Vec::new();
    for i in 0..20 {
        let member = MemberId::new_random();
        mine.push(synced_row(org, member, i % 2 == 0));
        mine.push(synced_row(org, member, false));
        theirs.push(synced_row(other, member, false));
    }
    let all: Vec<RowChange> = mine
        .iter()
        .chain(&theirs)
        .cloned()
        .map(RowChange::Upsert)
        .collect();
    store.write(|tx| tx.write_changes(&all)).unwrap();
    for (o, rows) in [(org, &mut mine), (other, &mut theirs)] {
        rows.sort_by_key(|r| (r.sponsoring_member_id, r.id));
        assert_eq!(&store.read(|tx| tx.sponsorships(Some(o))).unwrap(), rows);
    }
}

/// A lock whose holder the host judges gone is taken over before it expires; without that
/// judgement (or when the holder lives) it is respected.
#[tokio::test]
async fn a_gone_holders_lock_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let org = OrganizationId::new_random();
    let lock = |holder: &str, token: &str| SyncLock {
        holder: holder.into(),
        token: token.into(),
        acquired_at: now(),
        expires_at: now() + TimeDelta::minutes(10),
    };
    let first = SqliteStore::open(&path).unwrap();
    assert_eq!(
        first
            .try_lock_sync(org, &lock("crashed process", "a"), now())
            .await
            .unwrap(),
        LockOutcome::Acquired
    );
    let plain = SqliteStore::open(&path).unwrap();
    assert!(matches!(
        plain
            .try_lock_sync(org, &lock("me", "b"), now())
            .await
            .unwrap(),
        LockOutcome::HeldBy { .. }
    ));
    let alive = SqliteStore::open(&path)
        .unwrap()
        .take_over_gone_holders(|_| false);
    assert!(matches!(
        alive
            .try_lock_sync(org, &lock("me", "b"), now())
            .await
            .unwrap(),
        LockOutcome::HeldBy { .. }
    ));
    let judging = SqliteStore::open(&path)
        .unwrap()
        .take_over_gone_holders(|holder| holder == "crashed process");
    assert_eq!(
        judging
            .try_lock_sync(org, &lock("me", "b"), now())
            .await
            .unwrap(),
        LockOutcome::Acquired
    );
    // The new holder is alive by the same judgement: the first process is kept out now.
    assert!(matches!(
        judging
            .try_lock_sync(org, &lock("crashed process", "a"), now())
            .await
            .unwrap(),
        LockOutcome::HeldBy { ref holder, .. } if holder == "me"
    ));
}

/// The billing sync connection: a new one starts enabled, a replaced key keeps the switch,
/// switching a missing one says so, and the key never shows in `Debug`.
#[test]
fn billing_sync_connection_round_trips() {
    let store =
        SqliteStore::from_connection(Connection::open_in_memory().unwrap(), "memory").unwrap();
    let org = OrganizationId::new_random();
    assert!(store.read(|tx| tx.connection(org)).unwrap().is_none());
    assert!(!store.write(|tx| tx.set_enabled(org, false, now())).unwrap());
    let key = test_support::billing_key();
    store.write(|tx| tx.set_key(org, &key, now())).unwrap();
    let c = store.read(|tx| tx.connection(org)).unwrap().unwrap();
    assert!(c.enabled);
    assert_eq!(c.updated_at, now());
    assert!(store.write(|tx| tx.set_enabled(org, false, now())).unwrap());
    let rotated = BillingSyncKey::parse("Zz3dEf6hIj9lMn2pQr5tUv8xYz1bQq").unwrap();
    let later = now() + TimeDelta::hours(1);
    store.write(|tx| tx.set_key(org, &rotated, later)).unwrap();
    let c = store.read(|tx| tx.connection(org)).unwrap().unwrap();
    assert!(!c.enabled, "a replaced key keeps the switch as it was");
    assert_eq!(c.updated_at, later);
    assert!(!format!("{c:?}").contains("Zz3dEf6hIj9lMn2pQr5tUv8xYz1bQq"));
    // Delete, as the reference UI's Delete does; a second delete finds nothing.
    assert!(store.write(|tx| tx.delete_connection(org)).unwrap());
    assert!(store.read(|tx| tx.connection(org)).unwrap().is_none());
    assert!(!store.write(|tx| tx.delete_connection(org)).unwrap());
}

fn organizations(tx: &store_sqlite::Tx<'_>) -> Result<Vec<OrgRecord>, Error> {
    tx.organizations()
}

/// The standalone host's organizations and members, and a transaction that fails half-way
/// (a duplicate member) leaving nothing behind.
#[test]
fn standalone_host_tables() {
    let store =
        SqliteStore::from_connection(Connection::open_in_memory().unwrap(), "memory").unwrap();
    let org = Organization {
        id: OrganizationId::new_random(),
        name: "Acme".into(),
        plan_type: PlanType::EnterpriseAnnually,
        enabled: true,
        use_admin_sponsored_families: false,
    };
    let rec = OrgRecord {
        org: org.clone(),
        cloud_organization_id: None,
        license: None,
    };
    store
        .write(|tx| tx.insert_organization(&rec, now()))
        .unwrap();
    let member = |email: &str| Member {
        id: MemberId::new_random(),
        organization_id: org.id,
        email: email.into(),
        status: MemberStatus::Confirmed,
        role: MemberRole::User,
    };
    let bob = member("bob@acme.example");
    let alice = member("alice@acme.example");
    store
        .write(|tx| {
            tx.insert_member(&bob)?;
            tx.insert_member(&alice)
        })
        .unwrap();
    let err = store
        .write(|tx| {
            tx.insert_member(&member("carol@acme.example"))?;
            tx.insert_member(&member("ALICE@acme.example"))
        })
        .unwrap_err();
    assert!(matches!(err, Error::Sqlite { .. }), "{err:?}");
    let members = store.read(|tx| tx.members(org.id)).unwrap();
    assert_eq!(
        members,
        vec![alice.clone(), bob],
        "by e-mail; carol rolled back"
    );
    store.write(|tx| tx.delete_member(alice.id)).unwrap();
    assert_eq!(store.read(|tx| tx.members(org.id)).unwrap().len(), 1);
    let orgs = store.read(organizations).unwrap();
    assert_eq!(orgs.len(), 1);
    assert_eq!(orgs[0].org, org);
}

/// A category is stored in its one string form (`identity-rejected`); the camelCase form
/// earlier releases stored still reads.
#[tokio::test]
async fn error_categories_are_stored_by_name() {
    use sponsorship_core::schedule::{ErrorCategory, SyncErrorRecord, SyncState};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = SqliteStore::open(&path).unwrap();
    let org = OrganizationId::new_random();
    let raw = Connection::open(&path).unwrap();
    raw.execute(
        "INSERT INTO sync_state (organization_id, last_error_category, last_error_message, \
         last_error_at) VALUES (?1, 'identityRejected', 'rejected', '2026-11-24T12:00:00.000000Z')",
        [org.to_string()],
    )
    .unwrap();
    let state = store.sync_state(org).await.unwrap();
    assert_eq!(
        state.last_error.as_ref().map(|e| e.category),
        Some(ErrorCategory::IdentityRejected)
    );
    let mut state = SyncState::default();
    state.last_error = Some(SyncErrorRecord {
        category: ErrorCategory::CloudOrganizationUnknown,
        message: "unknown".into(),
        at: now(),
    });
    store.save_sync_state(org, &state).await.unwrap();
    let stored: String = raw
        .query_row(
            "SELECT last_error_category FROM sync_state WHERE organization_id = ?1",
            [org.to_string()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, "cloud-organization-unknown");
}

/// Someone else's SQLite file is refused before anything is written to it: no table, no WAL
/// switch, no schema version (issue #16, item 5).
#[test]
fn another_applications_database_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    for (name, setup) in [
        (
            "tables.db",
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);",
        ),
        ("app-id.db", "PRAGMA application_id = 1234;"),
    ] {
        let path = dir.path().join(name);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(setup).unwrap();
        }
        let before = std::fs::read(&path).unwrap();
        let err = SqliteStore::open(&path).unwrap_err();
        assert!(matches!(err, Error::NotOurs { .. }), "{err:?}");
        assert!(err.to_string().contains("nothing was written"), "{err}");
        let err = SqliteStore::open_read_only(&path).unwrap_err();
        assert!(matches!(err, Error::NotOurs { .. }), "{err:?}");
        assert_eq!(std::fs::read(&path).unwrap(), before, "{name} changed");
        assert!(
            !path.with_extension("db-wal").exists(),
            "{name} was switched to WAL"
        );
        // Nor through a host's own connection.
        let err = SqliteStore::from_connection(Connection::open(&path).unwrap(), name).unwrap_err();
        assert!(matches!(err, Error::NotOurs { .. }), "{err:?}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
}

/// A migration that fails (here: a half-made file of ours whose first table exists already)
/// rolls back and says why in one sentence, naming the schema version and never quoting the
/// migration's SQL.
#[test]
fn a_failed_migration_says_why_without_its_sql_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("half.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA application_id = 1397772110; CREATE TABLE organizations (id TEXT);")
        .unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(err, Error::Migration { version: 1, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("upgrading its schema to version 1 failed"),
        "{text}"
    );
    assert!(text.contains("already exists"), "{text}");
    assert!(!text.contains("CREATE"), "the SQL is quoted: {text}");
    let version: i64 = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 0, "rolled back");
}

/// A store marks its file as its own; a file of an earlier release (no mark, only our tables)
/// still opens and is marked.
#[test]
fn our_files_are_marked_and_earlier_ones_still_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    drop(SqliteStore::open(&path).unwrap());
    let id: i64 = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    assert_eq!(id, 0x5350_4F4E);
    Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA application_id = 0;")
        .unwrap();
    let store = SqliteStore::open(&path).unwrap();
    drop(store);
    let id: i64 = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    assert_eq!(id, 0x5350_4F4E);
}

/// Reading opens nothing for writing: a missing file reads as empty and is not created, and an
/// existing file is read without a byte changing.
#[test]
fn read_only_opening_creates_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none").join("s.db");
    let empty = SqliteStore::open_read_only(&missing).unwrap();
    assert!(empty.read(organizations).unwrap().is_empty());
    assert!(!missing.exists() && !missing.parent().unwrap().exists());

    let path = dir.path().join("s.db");
    let org = OrganizationId::new_random();
    {
        let store = SqliteStore::open(&path).unwrap();
        let key = test_support::billing_key();
        store.write(|tx| tx.set_key(org, &key, now())).unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let store = SqliteStore::open_read_only(&path).unwrap();
    assert!(store.read(|tx| tx.connection(org)).unwrap().is_some());
    let err = store
        .write(|tx| tx.set_enabled(org, false, now()))
        .unwrap_err();
    assert!(err.to_string().contains("readonly"), "{err}");
    drop(store);
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

/// A state file that others can read is tightened to 0600 before a key is written to it.
#[test]
fn a_readable_state_file_is_tightened_before_a_secret_lands() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    drop(SqliteStore::open(&path).unwrap());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = SqliteStore::open(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    store
        .write(|tx| {
            tx.set_key(
                OrganizationId::new_random(),
                &test_support::billing_key(),
                now(),
            )
        })
        .unwrap();
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        if let Ok(meta) = std::fs::metadata(std::path::PathBuf::from(side)) {
            assert_eq!(meta.permissions().mode() & 0o077, 0, "{suffix}");
        }
    }
}
