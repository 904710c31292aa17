//! [`SqliteStore`]: the connection, its transactions, and the [`SponsorshipStore`]
//! implementation on top.

use std::fmt;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use sponsorship_core::ids::OrganizationId;
use sponsorship_core::org::BillingConnection;
use sponsorship_core::schedule::SyncState;
use sponsorship_core::secret::BillingSyncKey;
use sponsorship_core::sponsorship::{RowChange, Sponsorship};
use sponsorship_core::store::{
    AppliedBatch, BillingConnectionStore, LockOutcome, SponsorshipStore, SyncLock,
};
use sponsorship_core::sync::BatchApplication;

use crate::Error;
use crate::schema::{SYNC_CACHE_KIB, migrate, tune};

/// Judges whether the holder of a sync lock (as its `holder` text names it) is gone for good,
/// so its lock may be taken over before it expires (see [`SqliteStore::take_over_gone_holders`]).
type HolderCheck = dyn Fn(&str) -> bool + Send + Sync;

/// A SQLite database holding sponsorships, sync state, sync locks and billing sync connections
/// (and, for a host without tables of its own, organizations and members: see the
/// [crate docs](crate#two-parts)).
///
/// The connection is behind a mutex: one statement at a time per store. Open one store per
/// process and share it (`Arc`); other processes open their own and SQLite's locking (WAL, busy
/// timeout) orders them. Calls block the calling thread while SQLite works; the
/// [`SponsorshipStore`] methods do so for the few milliseconds a batch takes.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    label: String,
    gone_holder: Option<Box<HolderCheck>>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("database", &self.label)
            .field("takes_over_gone_holders", &self.gone_holder.is_some())
            .finish_non_exhaustive()
    }
}

/// Reads and writes inside one transaction (see [`SqliteStore::write`] and
/// [`SqliteStore::read`]).
pub struct Tx<'a> {
    pub(crate) tx: &'a Transaction<'a>,
    pub(crate) label: &'a str,
}

impl fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tx")
            .field("database", &self.label)
            .finish_non_exhaustive()
    }
}

impl Tx<'_> {
    /// Runs `f` on the transaction, with its rusqlite errors as the store's.
    pub(crate) fn run<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, Error> {
        f(self.tx).map_err(|e| Error::of(self.label, e))
    }
}

impl SqliteStore {
    /// Opens the database file at `path`, creating it with mode `0600` when it is missing (it
    /// holds billing sync keys; SQLite gives its `-wal` and `-shm` files the same mode), tunes
    /// the connection (WAL journal, `synchronous = NORMAL`, a 10 s busy timeout, foreign keys,
    /// checkpoints every 64 MiB of WAL) and applies the migrations it lacks.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let label = path.display().to_string();
        if !path.exists() {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| Error::Create {
                    path: label.clone(),
                    source,
                })?;
            }
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|source| Error::Create {
                    path: label.clone(),
                    source,
                })?;
        }
        // It holds billing sync keys: a file that others can read is tightened to 0600 (with
        // its -wal and -shm files) before anything is written to it, and said so.
        for file in [
            path.to_path_buf(),
            sidecar(path, "-wal"),
            sidecar(path, "-shm"),
        ] {
            tighten(&file, &label)?;
        }
        // Someone else's database is refused before tuning writes to its header.
        {
            let peek = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(|e| Error::of(&label, e))?;
            crate::schema::check_ours(&peek, &label)?;
        }
        let conn = Connection::open(path).map_err(|e| Error::of(&label, e))?;
        tune(&conn).map_err(|e| Error::of(&label, e))?;
        Self::from_connection(conn, label)
    }

    /// Opens the database file at `path` for reading only, for commands that change nothing:
    /// nothing is created (a missing file reads as an empty store, in memory) and nothing is
    /// written, so it works on a read-only file or directory. A file of an older release,
    /// which lacks migrations, is opened as [`open`](Self::open) opens it, to migrate it.
    pub fn open_read_only(path: &Path) -> Result<Self, Error> {
        let label = path.display().to_string();
        if !path.exists() {
            let empty = Connection::open_in_memory().map_err(|e| Error::of(&label, e))?;
            return Self::from_connection(empty, label);
        }
        let conn = read_only_connection(path, &label)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| Error::of(&label, e))?;
        if usize::try_from(version).unwrap_or(usize::MAX) < crate::schema::MIGRATIONS.len() {
            drop(conn);
            return Self::open(path);
        }
        conn.busy_timeout(crate::schema::BUSY_TIMEOUT)
            .map_err(|e| Error::of(&label, e))?;
        Ok(Self {
            conn: Mutex::new(conn),
            label,
            gone_holder: None,
        })
    }

    /// Takes a host's own connection (an in-memory database, or a file the host opened with
    /// settings of its own) and applies the migrations it lacks. The connection's settings stay
    /// the host's: [`open`](Self::open) is what tunes one. `label` names the database in errors.
    ///
    /// The database must be this store's alone: the migrations count in `PRAGMA user_version`
    /// and create tables named `sponsorships`, `organizations`, `members`, `sync_state`,
    /// `sync_locks` and `billing_sync_connections`. A host keeps its own tables in another
    /// database file (SQLite can `ATTACH` the two to one connection).
    pub fn from_connection(mut conn: Connection, label: impl Into<String>) -> Result<Self, Error> {
        let label = label.into();
        migrate(&mut conn, &label)?;
        Ok(Self {
            conn: Mutex::new(conn),
            label,
            gone_holder: None,
        })
    }

    /// Lets [`SponsorshipStore::try_lock_sync`] take over a lock before it expires when
    /// `is_gone` says its holder (the `holder` text of the [`SyncLock`]) no longer runs, such as
    /// a process killed with SIGKILL on this host. Without it a lock held by someone else is
    /// respected until it expires.
    #[must_use]
    pub fn take_over_gone_holders(
        mut self,
        is_gone: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.gone_holder = Some(Box::new(is_gone));
        self
    }

    /// Before a sync: 32 MiB of page cache instead of SQLite's 2 MB. A sync reads an
    /// organization's rows once and then rewrites them batch by batch; with 100,000 rows the table
    /// and the status index are ~37 MB, and a 2 MB cache read most pages from the file twice.
    /// Only syncs get it: SQLite allocates each cached page separately until the cache is full,
    /// which made a one-shot `status` on 100,000 rows 60% slower (34 → 54 ms) for no reuse.
    pub fn prepare_for_sync(&self) -> Result<(), Error> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        conn.pragma_update(None, "cache_size", SYNC_CACHE_KIB)
            .map_err(|e| Error::of(&self.label, e))
    }

    /// Copies the WAL back into the database file as far as readers allow, without waiting for
    /// them (`PRAGMA wal_checkpoint(PASSIVE)`): called after a sync, so that its writes do not
    /// stay in the WAL until the next automatic checkpoint (a daemon keeps its connection open).
    pub fn checkpoint(&self) -> Result<(), Error> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(|e| Error::of(&self.label, e))
    }

    /// Runs `f` in one write transaction (`BEGIN IMMEDIATE`): committed when `f` returns `Ok`,
    /// rolled back otherwise, so a command that fails changes nothing.
    pub fn write<T, E>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<Error>,
    {
        self.transaction(TransactionBehavior::Immediate, f)
    }

    /// Runs `f` in one read transaction (a consistent snapshot).
    pub fn read<T, E>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<Error>,
    {
        self.transaction(TransactionBehavior::Deferred, f)
    }

    fn transaction<T, E>(
        &self,
        behavior: TransactionBehavior,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<Error>,
    {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn
            .transaction_with_behavior(behavior)
            .map_err(|e| Error::of(&self.label, e))?;
        let out = f(&Tx {
            tx: &tx,
            label: &self.label,
        })?;
        tx.commit().map_err(|e| Error::of(&self.label, e))?;
        Ok(out)
    }

    /// Runs `f` on the connection itself (tests look at its settings).
    #[cfg(test)]
    pub(crate) fn with_connection<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        f(&self.conn.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl SponsorshipStore for SqliteStore {
    type Error = Error;

    async fn sponsorships(&self, org: OrganizationId) -> Result<Vec<Sponsorship>, Error> {
        let started = Instant::now();
        let rows = self.read(|tx| tx.sponsorships(Some(org)))?;
        tracing::debug!(
            rows = rows.len(),
            duration_ms = started.elapsed().as_secs_f64() * 1e3,
            "sponsorships loaded"
        );
        Ok(rows)
    }

    /// Writes the changes in one transaction. The rows name their organization themselves, so
    /// `org` only scopes the log line.
    async fn write_changes(&self, org: OrganizationId, changes: &[RowChange]) -> Result<(), Error> {
        self.write(|tx| tx.write_changes(changes))?;
        tracing::debug!(organization = %org, changes = changes.len(), "row changes written");
        Ok(())
    }

    async fn apply_batch(
        &self,
        org: OrganizationId,
        batch: &BatchApplication,
    ) -> Result<AppliedBatch, Error> {
        let started = Instant::now();
        let applied = self.write(|tx| tx.apply_batch(org, batch))?;
        tracing::debug!(
            batch = batch.batch_number,
            changes = batch.changes.len(),
            stale = applied.stale.len(),
            duration_ms = started.elapsed().as_secs_f64() * 1e3,
            "batch written"
        );
        Ok(applied)
    }

    async fn sync_state(&self, org: OrganizationId) -> Result<SyncState, Error> {
        self.read(|tx| tx.sync_state(org))
    }

    async fn save_sync_state(&self, org: OrganizationId, state: &SyncState) -> Result<(), Error> {
        self.write(|tx| tx.save_sync_state(org, state))
    }

    async fn save_next_due(
        &self,
        org: OrganizationId,
        next_due: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.write(|tx| tx.save_next_due(org, next_due))
    }

    async fn try_lock_sync(
        &self,
        org: OrganizationId,
        lock: &SyncLock,
        now: DateTime<Utc>,
    ) -> Result<LockOutcome, Error> {
        self.write(|tx| tx.try_lock(org, lock, now, self.gone_holder.as_deref()))
    }

    async fn renew_sync_lock(&self, org: OrganizationId, lock: &SyncLock) -> Result<bool, Error> {
        self.write(|tx| tx.renew_lock(org, lock))
    }

    async fn unlock_sync(&self, org: OrganizationId, token: &str) -> Result<(), Error> {
        self.write(|tx| tx.unlock(org, token))
    }
}

/// `path` with `suffix` appended to its file name (SQLite's `-wal` and `-shm` files).
fn sidecar(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// A read-only connection to `path`, checked to be ours. A WAL database whose `-shm` file is
/// missing cannot be read by a process that may not create it (a read-only directory, another
/// user's state): SQLite then says "attempt to write a readonly database". Such a reader opens
/// the file `immutable` instead. That is exact while no writer has the database open, which is
/// the case whenever the `-shm` file is missing: the last writer to close removed it after
/// checkpointing everything into the file.
fn read_only_connection(path: &Path, label: &str) -> Result<Connection, Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| Error::of(label, e))?;
    match crate::schema::check_ours(&conn, label) {
        Ok(()) => Ok(conn),
        Err(Error::Sqlite { source, .. })
            if source.sqlite_error_code() == Some(rusqlite::ErrorCode::ReadOnly) =>
        {
            drop(conn);
            let Some(uri) = immutable_uri(path) else {
                return Err(Error::of(label, source));
            };
            tracing::debug!(
                file = label,
                "no -shm file and no right to create one: reading it immutable"
            );
            let conn = Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)
                .map_err(|e| Error::of(label, e))?;
            crate::schema::check_ours(&conn, label)?;
            Ok(conn)
        }
        Err(e) => Err(e),
    }
}

/// `file:/abs/path?immutable=1`, with the characters a URI path cannot hold escaped; `None`
/// for a path that is not UTF-8.
fn immutable_uri(path: &Path) -> Option<String> {
    use std::fmt::Write as _;
    let absolute = std::path::absolute(path).ok()?;
    let mut uri = String::from("file:");
    for c in absolute.to_str()?.chars() {
        match c {
            '?' | '#' | '%' => {
                let _ = write!(uri, "%{:02X}", u32::from(c));
            }
            c => uri.push(c),
        }
    }
    uri.push_str("?immutable=1");
    Some(uri)
}

/// Removes group and other permissions from `file` when it exists and has any.
fn tighten(file: &Path, label: &str) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(file) else {
        return Ok(());
    };
    let mode = meta.permissions().mode() & 0o777;
    let others = mode & 0o077;
    if others == 0 {
        return Ok(());
    }
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode & 0o700)).map_err(
        |source| Error::Create {
            path: format!("{label} (tightening its mode {mode:o} to 0600)"),
            source,
        },
    )?;
    tracing::warn!(
        file = %file.display(),
        "the state file was readable by others (mode {mode:o}); tightened to {:o}, as it holds billing sync keys",
        mode & 0o700
    );
    Ok(())
}

/// The connection operations of [`Tx`], each in a transaction of its own.
impl BillingConnectionStore for SqliteStore {
    async fn billing_connection(
        &self,
        org: OrganizationId,
    ) -> Result<Option<BillingConnection>, Error> {
        self.read(|tx| tx.connection(org))
    }

    async fn save_billing_connection(
        &self,
        org: OrganizationId,
        key: &BillingSyncKey,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.write(|tx| {
            tx.set_key(org, key, now)?;
            tx.set_enabled(org, enabled, now).map(drop)
        })
    }

    async fn delete_billing_connection(&self, org: OrganizationId) -> Result<bool, Error> {
        self.write(|tx| tx.delete_connection(org))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use sponsorship_core::conformance::{new_row, synced_row};
    use sponsorship_core::ids::MemberId;

    use super::*;

    /// The file is created `0600` (it holds billing sync keys), reopening migrates nothing
    /// again, and the rows are there.
    #[test]
    fn file_is_private_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("s.db");
        let store = SqliteStore::open(&path).unwrap();
        let org = OrganizationId::new_random();
        let row = synced_row(org, MemberId::new_random(), true);
        store
            .write(|tx| tx.write_changes(&[RowChange::Upsert(row.clone())]))
            .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        drop(store);
        let again = SqliteStore::open(&path).unwrap();
        assert_eq!(again.read(|tx| tx.sponsorships(None)).unwrap(), vec![row]);
    }

    /// The connection settings a sync relies on, and the end-of-sync checkpoint leaving no
    /// frame behind.
    #[test]
    fn connection_is_tuned_and_checkpoints_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = SqliteStore::open(&path).unwrap();
        let org = OrganizationId::new_random();
        let pragma = |store: &SqliteStore, p: &str| -> String {
            store.with_connection(|conn| {
                conn.query_row(&format!("PRAGMA {p}"), [], |r| {
                    r.get::<_, rusqlite::types::Value>(0)
                })
                .map(|v| format!("{v:?}"))
                .unwrap()
            })
        };
        assert_eq!(
            pragma(&store, "cache_size"),
            "Integer(-2000)",
            "SQLite's default outside a sync"
        );
        store.prepare_for_sync().unwrap();
        assert_eq!(pragma(&store, "journal_mode"), r#"Text("wal")"#);
        assert_eq!(pragma(&store, "synchronous"), "Integer(1)"); // NORMAL
        assert_eq!(pragma(&store, "cache_size"), "Integer(-32768)");
        assert_eq!(pragma(&store, "temp_store"), "Integer(2)"); // MEMORY
        assert_eq!(pragma(&store, "wal_autocheckpoint"), "Integer(16384)");
        assert_eq!(pragma(&store, "busy_timeout"), "Integer(10000)");
        let rows: Vec<RowChange> = (0..200)
            .map(|n| RowChange::Upsert(new_row(org, n)))
            .collect();
        store.write(|tx| tx.write_changes(&rows)).unwrap();
        store.checkpoint().unwrap();
        // Every frame is in the database file now.
        let (log, done): (i64, i64) = store.with_connection(|conn| {
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(1)?, r.get(2)?))
            })
            .unwrap()
        });
        assert!(log > 0);
        assert_eq!(log, done);
        let other = SqliteStore::open(&path).unwrap();
        assert_eq!(
            other.read(|tx| tx.sponsorships(Some(org))).unwrap().len(),
            200
        );
    }

    /// A host's own connection keeps the host's settings; only the schema is added.
    #[test]
    fn a_hosts_connection_keeps_its_settings() {
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "cache_size", -1234).unwrap();
        let store = SqliteStore::from_connection(conn, "host db").unwrap();
        store.with_connection(|conn| {
            let cache: i64 = conn
                .query_row("PRAGMA cache_size", [], |r| r.get(0))
                .unwrap();
            assert_eq!(cache, -1234);
        });
        assert!(format!("{store:?}").contains("host db"));
    }
}
