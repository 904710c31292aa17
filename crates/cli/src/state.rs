//! Where `sponsorctl` keeps its state: the embedded SQLite file (the default), or a server
//! database (`--state postgres://…` or `mysql://…`, through store-sqlx). Commands see one
//! transaction type, [`Tx`], and one store, [`State`], whichever it is.

use std::future::Future;
use std::path::Path;

use chrono::{DateTime, Utc};
use sponsorship_core::ids::{MemberId, OrganizationId};
use sponsorship_core::license::OrganizationLicense;
use sponsorship_core::org::{BillingConnection, Member, MemberStatus, OrgRecord};
use sponsorship_core::schedule::SyncState;
use sponsorship_core::secret::BillingSyncKey;
use sponsorship_core::sponsorship::{RowChange, Sponsorship, StatusCounts};
use sponsorship_core::store::{AppliedBatch, LockOutcome, SponsorshipStore, SyncLock};
use sponsorship_core::sync::BatchApplication;
use store_sqlite::SqliteStore;
use store_sqlx::{SqlxStore, SqlxTx};

/// The schemes that name a server database instead of a file.
const SERVER_SCHEMES: [&str; 4] = ["postgres://", "postgresql://", "mysql://", "mariadb://"];

/// Whether `--state` names a server database.
pub(crate) fn is_server(state: &Path) -> bool {
    state
        .to_str()
        .is_some_and(|s| SERVER_SCHEMES.iter().any(|p| s.starts_with(p)))
}

/// The state a command works on.
#[derive(Debug)]
pub(crate) enum State {
    /// The embedded SQLite file.
    Sqlite(SqliteStore),
    /// A server database.
    Server(Server),
}

/// A server database and the runtime its pool lives on.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) store: SqlxStore,
    handle: tokio::runtime::Handle,
}

/// Runs `f` to its end from synchronous code, inside the runtime or outside it.
fn block<F: Future>(handle: &tokio::runtime::Handle, f: F) -> F::Output {
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::task::block_in_place(|| handle.block_on(f))
    } else {
        handle.block_on(f)
    }
}

impl State {
    /// Connects to the server database `url` (applying the migrations it lacks).
    pub(crate) fn connect(url: &str, runtime: &tokio::runtime::Runtime) -> anyhow::Result<Self> {
        let handle = runtime.handle().clone();
        // A command waits a few seconds for a database that does not answer, not half a minute.
        let store = block(
            &handle,
            SqlxStore::connect_with(url, 4, std::time::Duration::from_secs(5)),
        )?;
        Ok(Self::Server(Server { store, handle }))
    }

    /// A read-only step: `f` sees one consistent state, nothing is written.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&dyn Tx) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        match self {
            Self::Sqlite(db) => db.read(|tx| f(tx)),
            Self::Server(s) => {
                let tx = ServerTx::begin(s)?;
                // Dropped without a commit: rolled back, nothing was written anyway.
                f(&tx)
            }
        }
    }

    /// One transaction: everything `f` writes lands, or nothing when it fails.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&dyn Tx) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        match self {
            Self::Sqlite(db) => db.write(|tx| f(tx)),
            Self::Server(s) => {
                let tx = ServerTx::begin(s)?;
                let out = f(&tx)?;
                block(&s.handle, tx.tx.into_inner().commit())?;
                Ok(out)
            }
        }
    }

    /// Before a sync: the SQLite store enlarges its page cache; a server needs nothing.
    pub(crate) fn prepare_for_sync(&self) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(db) => Ok(db.prepare_for_sync()?),
            Self::Server(_) => Ok(()),
        }
    }

    /// After a sync: the SQLite store copies its WAL back into the file; a server needs
    /// nothing.
    pub(crate) fn checkpoint(&self) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(db) => Ok(db.checkpoint()?),
            Self::Server(_) => Ok(()),
        }
    }

    /// The server database, when the state is one.
    pub(crate) fn server(&self) -> Option<&Server> {
        match self {
            Self::Server(s) => Some(s),
            Self::Sqlite(_) => None,
        }
    }
}

impl Server {
    /// The schema version applied and the one this release knows, for `doctor`.
    pub(crate) fn schema_version(&self) -> anyhow::Result<(i64, i64)> {
        Ok(block(&self.handle, self.store.schema_version())?)
    }
}

/// The operations of one step on the state, whichever store holds it.
pub(crate) trait Tx {
    fn organizations(&self) -> anyhow::Result<Vec<OrgRecord>>;
    fn insert_organization(&self, rec: &OrgRecord, now: DateTime<Utc>) -> anyhow::Result<()>;
    fn save_license(
        &self,
        org: OrganizationId,
        license: &OrganizationLicense,
        license_json: &str,
    ) -> anyhow::Result<()>;
    fn members(&self, org: OrganizationId) -> anyhow::Result<Vec<Member>>;
    fn insert_member(&self, m: &Member) -> anyhow::Result<()>;
    fn set_member_status(&self, id: MemberId, status: MemberStatus) -> anyhow::Result<bool>;
    fn delete_member(&self, id: MemberId) -> anyhow::Result<()>;
    fn connection(&self, org: OrganizationId) -> anyhow::Result<Option<BillingConnection>>;
    fn set_key(
        &self,
        org: OrganizationId,
        key: &BillingSyncKey,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()>;
    fn set_enabled(
        &self,
        org: OrganizationId,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool>;
    fn delete_connection(&self, org: OrganizationId) -> anyhow::Result<bool>;
    fn sponsorships(&self, org: Option<OrganizationId>) -> anyhow::Result<Vec<Sponsorship>>;
    fn write_changes(&self, changes: &[RowChange]) -> anyhow::Result<()>;
    fn sync_state(&self, org: OrganizationId) -> anyhow::Result<SyncState>;
    fn save_sync_state(&self, org: OrganizationId, state: &SyncState) -> anyhow::Result<()>;
    fn status_counts(&self, org: OrganizationId) -> anyhow::Result<StatusCounts>;
}

/// The SQLite store's transaction, as is.
impl Tx for store_sqlite::Tx<'_> {
    fn organizations(&self) -> anyhow::Result<Vec<OrgRecord>> {
        Ok(store_sqlite::Tx::organizations(self)?)
    }
    fn insert_organization(&self, rec: &OrgRecord, now: DateTime<Utc>) -> anyhow::Result<()> {
        Ok(store_sqlite::Tx::insert_organization(self, rec, now)?)
    }
    fn save_license(
        &self,
        org: OrganizationId,
        license: &OrganizationLicense,
        license_json: &str,
    ) -> anyhow::Result<()> {
        Ok(store_sqlite::Tx::save_license(
            self,
            org,
            license,
            license_json,
        )?)
    }
    fn members(&self, org: OrganizationId) -> anyhow::Result<Vec<Member>> {
        Ok(store_sqlite::Tx::members(self, org)?)
    }
    fn insert_member(&self, m: &Member) -> anyhow::Result<()> {
        Ok(store_sqlite::Tx::insert_member(self, m)?)
    }
    fn set_member_status(&self, id: MemberId, status: MemberStatus) -> anyhow::Result<bool> {
        Ok(store_sqlite::Tx::set_member_status(self, id, status)?)
    }
    fn delete_member(&self, id: MemberId) -> anyhow::Result<()> {
        Ok(store_sqlite::Tx::delete_member(self, id)?)
    }
    fn connection(&self, org: OrganizationId) -> anyhow::Result<Option<BillingConnection>> {
        Ok(store_sqlite::Tx::connection(self, org)?)
    }
    fn set_key(
        &self,
        org: OrganizationId,
        key: &BillingSyncKey,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        Ok(store_sqlite::Tx::set_key(self, org, key, now)?)
    }
    fn set_enabled(
        &self,
        org: OrganizationId,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        Ok(store_sqlite::Tx::set_enabled(self, org, enabled, now)?)
    }
    fn delete_connection(&self, org: OrganizationId) -> anyhow::Result<bool> {
        Ok(store_sqlite::Tx::delete_connection(self, org)?)
    }
    fn sponsorships(&self, org: Option<OrganizationId>) -> anyhow::Result<Vec<Sponsorship>> {
        Ok(store_sqlite::Tx::sponsorships(self, org)?)
    }
    fn write_changes(&self, changes: &[RowChange]) -> anyhow::Result<()> {
        Ok(store_sqlite::Tx::write_changes(self, changes)?)
    }
    fn sync_state(&self, org: OrganizationId) -> anyhow::Result<SyncState> {
        Ok(store_sqlite::Tx::sync_state(self, org)?)
    }
    fn save_sync_state(&self, org: OrganizationId, state: &SyncState) -> anyhow::Result<()> {
        Ok(store_sqlite::Tx::save_sync_state(self, org, state)?)
    }
    fn status_counts(&self, org: OrganizationId) -> anyhow::Result<StatusCounts> {
        Ok(store_sqlite::Tx::status_counts(self, org)?)
    }
}

/// A server database's transaction, driven to each answer from the synchronous commands.
struct ServerTx<'a> {
    tx: std::cell::RefCell<SqlxTx>,
    handle: &'a tokio::runtime::Handle,
}

impl<'a> ServerTx<'a> {
    fn begin(server: &'a Server) -> anyhow::Result<Self> {
        Ok(Self {
            tx: std::cell::RefCell::new(block(&server.handle, server.store.begin())?),
            handle: &server.handle,
        })
    }
}

/// One method of [`Tx`] on the server transaction: borrow it, drive the call, convert the
/// error.
macro_rules! on_server {
    ($self:ident, $method:ident ( $($arg:expr),* )) => {{
        let mut tx = $self.tx.borrow_mut();
        Ok(block($self.handle, tx.$method($($arg),*))?)
    }};
}

impl Tx for ServerTx<'_> {
    fn organizations(&self) -> anyhow::Result<Vec<OrgRecord>> {
        on_server!(self, organizations())
    }
    fn insert_organization(&self, rec: &OrgRecord, now: DateTime<Utc>) -> anyhow::Result<()> {
        on_server!(self, insert_organization(rec, now))
    }
    fn save_license(
        &self,
        org: OrganizationId,
        license: &OrganizationLicense,
        license_json: &str,
    ) -> anyhow::Result<()> {
        on_server!(self, save_license(org, license, license_json))
    }
    fn members(&self, org: OrganizationId) -> anyhow::Result<Vec<Member>> {
        on_server!(self, members(org))
    }
    fn insert_member(&self, m: &Member) -> anyhow::Result<()> {
        on_server!(self, insert_member(m))
    }
    fn set_member_status(&self, id: MemberId, status: MemberStatus) -> anyhow::Result<bool> {
        on_server!(self, set_member_status(id, status))
    }
    fn delete_member(&self, id: MemberId) -> anyhow::Result<()> {
        on_server!(self, delete_member(id))
    }
    fn connection(&self, org: OrganizationId) -> anyhow::Result<Option<BillingConnection>> {
        on_server!(self, connection(org))
    }
    fn set_key(
        &self,
        org: OrganizationId,
        key: &BillingSyncKey,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        on_server!(self, set_key(org, key, now))
    }
    fn set_enabled(
        &self,
        org: OrganizationId,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        on_server!(self, set_enabled(org, enabled, now))
    }
    fn delete_connection(&self, org: OrganizationId) -> anyhow::Result<bool> {
        on_server!(self, delete_connection(org))
    }
    fn sponsorships(&self, org: Option<OrganizationId>) -> anyhow::Result<Vec<Sponsorship>> {
        on_server!(self, sponsorships(org))
    }
    fn write_changes(&self, changes: &[RowChange]) -> anyhow::Result<()> {
        on_server!(self, write_changes(changes))
    }
    fn sync_state(&self, org: OrganizationId) -> anyhow::Result<SyncState> {
        on_server!(self, sync_state(org))
    }
    fn save_sync_state(&self, org: OrganizationId, state: &SyncState) -> anyhow::Result<()> {
        on_server!(self, save_sync_state(org, state))
    }
    fn status_counts(&self, org: OrganizationId) -> anyhow::Result<StatusCounts> {
        on_server!(self, status_counts(org))
    }
}

/// A failure of either store.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StateError {
    #[error(transparent)]
    Sqlite(#[from] store_sqlite::Error),
    #[error(transparent)]
    Server(#[from] store_sqlx::Error),
}

/// The sync engine's view of the state, whichever store holds it.
impl SponsorshipStore for State {
    type Error = StateError;

    async fn sponsorships(&self, org: OrganizationId) -> Result<Vec<Sponsorship>, StateError> {
        Ok(match self {
            Self::Sqlite(s) => s.sponsorships(org).await?,
            Self::Server(s) => s.store.sponsorships(org).await?,
        })
    }

    async fn write_changes(
        &self,
        org: OrganizationId,
        changes: &[RowChange],
    ) -> Result<(), StateError> {
        match self {
            Self::Sqlite(s) => SponsorshipStore::write_changes(s, org, changes).await?,
            Self::Server(s) => SponsorshipStore::write_changes(&s.store, org, changes).await?,
        }
        Ok(())
    }

    async fn apply_batch(
        &self,
        org: OrganizationId,
        batch: &BatchApplication,
    ) -> Result<AppliedBatch, StateError> {
        Ok(match self {
            Self::Sqlite(s) => s.apply_batch(org, batch).await?,
            Self::Server(s) => s.store.apply_batch(org, batch).await?,
        })
    }

    async fn sync_state(&self, org: OrganizationId) -> Result<SyncState, StateError> {
        Ok(match self {
            Self::Sqlite(s) => SponsorshipStore::sync_state(s, org).await?,
            Self::Server(s) => SponsorshipStore::sync_state(&s.store, org).await?,
        })
    }

    async fn save_sync_state(
        &self,
        org: OrganizationId,
        state: &SyncState,
    ) -> Result<(), StateError> {
        match self {
            Self::Sqlite(s) => SponsorshipStore::save_sync_state(s, org, state).await?,
            Self::Server(s) => SponsorshipStore::save_sync_state(&s.store, org, state).await?,
        }
        Ok(())
    }

    async fn save_next_due(
        &self,
        org: OrganizationId,
        next_due: DateTime<Utc>,
    ) -> Result<(), StateError> {
        match self {
            Self::Sqlite(s) => SponsorshipStore::save_next_due(s, org, next_due).await?,
            Self::Server(s) => SponsorshipStore::save_next_due(&s.store, org, next_due).await?,
        }
        Ok(())
    }

    async fn try_lock_sync(
        &self,
        org: OrganizationId,
        lock: &SyncLock,
        now: DateTime<Utc>,
    ) -> Result<LockOutcome, StateError> {
        Ok(match self {
            Self::Sqlite(s) => s.try_lock_sync(org, lock, now).await?,
            Self::Server(s) => s.store.try_lock_sync(org, lock, now).await?,
        })
    }

    async fn renew_sync_lock(
        &self,
        org: OrganizationId,
        lock: &SyncLock,
    ) -> Result<bool, StateError> {
        Ok(match self {
            Self::Sqlite(s) => s.renew_sync_lock(org, lock).await?,
            Self::Server(s) => s.store.renew_sync_lock(org, lock).await?,
        })
    }

    async fn unlock_sync(&self, org: OrganizationId, token: &str) -> Result<(), StateError> {
        match self {
            Self::Sqlite(s) => s.unlock_sync(org, token).await?,
            Self::Server(s) => s.store.unlock_sync(org, token).await?,
        }
        Ok(())
    }
}
