//! The storage an embedding server implements for its own database, and an in-memory one.
//!
//! # Shape
//!
//! The methods return `impl Future + Send` (async functions in traits), because the cloud client
//! calls them between HTTP requests on a multi-threaded tokio runtime. A host whose database
//! layer is blocking (diesel) implements each method as
//! `async move { tokio::task::spawn_blocking(move || …).await }` with owned copies of the
//! arguments; a host with an async driver awaits it directly; the in-memory store is ready at
//! once. The trait itself needs no runtime, so the core stays free of one.
//!
//! # Contract
//!
//! * [`SponsorshipStore::apply_batch`] is **one transaction**: all of a batch's changes land, or
//!   none. Each change applies only if the row still has the expected revision
//!   (compare-and-set); rows edited meanwhile are reported as `stale` and left alone.
//! * [`SponsorshipStore::write_changes`] is one transaction too.
//! * Rows come back field for field as written; timestamps keep at least microseconds.
//! * [`SponsorshipStore::try_lock_sync`] decides whether a sync may run: at most one holder per
//!   organization; a lock past its `expires_at` (a crashed process) may be taken over.
//!
//! The conformance kit (`sponsorship_core::conformance`, feature `test-util`) checks all of
//! this; every implementation runs it in its own tests.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{MemberId, OrganizationId, SponsorshipId};
use crate::org::BillingConnection;
use crate::schedule::SyncState;
use crate::secret::BillingSyncKey;
use crate::sponsorship::{RowChange, Sponsorship};
use crate::sync::{BatchApplication, apply_change_in_place};

/// The result of applying one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppliedBatch {
    /// Changes applied.
    pub applied: usize,
    /// Rows whose revision changed while the sync ran, or that no longer exist; sent again next time.
    pub stale: Vec<SponsorshipId>,
}

/// A sync lock held by one process or task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncLock {
    /// Who holds it (for example `sponsorctl pid 1234 on host`).
    pub holder: String,
    /// Random token proving ownership.
    pub token: String,
    /// Taken at.
    pub acquired_at: DateTime<Utc>,
    /// Considered abandoned after this (renewed per batch by the holder).
    pub expires_at: DateTime<Utc>,
}

impl SyncLock {
    /// Whether this lock, found held at `now`, keeps out a request with `token`: it belongs to
    /// someone else and has not expired. Its holder renews it with the same token, and anyone may
    /// take it over once it has expired (a crashed process).
    pub fn excludes(&self, token: &str, now: DateTime<Utc>) -> bool {
        self.token != token && self.expires_at > now
    }
}

/// The answer to a lock request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockOutcome {
    /// The caller holds the lock now.
    Acquired,
    /// Someone else does.
    HeldBy {
        /// The holder's description.
        holder: String,
        /// Since when.
        since: DateTime<Utc>,
    },
}

/// Persistence of sponsorships and sync state for the sync engine.
pub trait SponsorshipStore: Send + Sync {
    /// The store's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// All rows of the organization, in any state.
    fn sponsorships(
        &self,
        org: OrganizationId,
    ) -> impl Future<Output = Result<Vec<Sponsorship>, Self::Error>> + Send;

    /// Writes lifecycle changes (offer, revoke, member removal, expiry clean-up: what the rules
    /// in [`sponsorship`](crate::sponsorship) return) in one transaction. An upsert replaces the
    /// row with the same id, whatever its member was. `org` is the organization of every row
    /// changed.
    fn write_changes(
        &self,
        org: OrganizationId,
        changes: &[RowChange],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Applies one batch atomically (see the contract above).
    fn apply_batch(
        &self,
        org: OrganizationId,
        batch: &BatchApplication,
    ) -> impl Future<Output = Result<AppliedBatch, Self::Error>> + Send;

    /// The organization's sync state (default when none is stored).
    fn sync_state(
        &self,
        org: OrganizationId,
    ) -> impl Future<Output = Result<SyncState, Self::Error>> + Send;

    /// Stores the organization's sync state.
    fn save_sync_state(
        &self,
        org: OrganizationId,
        state: &SyncState,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Stores when the organization's next scheduled sync is due, leaving the rest of its sync
    /// state as it is, in one step: another process may record a run meanwhile, and a
    /// read-modify-write of the whole state would put its old figures back.
    fn save_next_due(
        &self,
        org: OrganizationId,
        next_due: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Takes the organization's sync lock at `now` (a lock with the same token is taken again).
    fn try_lock_sync(
        &self,
        org: OrganizationId,
        lock: &SyncLock,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<LockOutcome, Self::Error>> + Send;

    /// Renews the caller's lock: sets the stored lock's `expires_at` to `lock.expires_at` only
    /// if it still carries `lock.token` (compare-and-set on the holder's own token, whether or
    /// not it has expired meanwhile). `false` when the lock is missing or carries another token:
    /// the lock was lost (the holder was suspended past its expiry and another sync took it,
    /// perhaps released it already), and the caller must stop before it sends anything more.
    fn renew_sync_lock(
        &self,
        org: OrganizationId,
        lock: &SyncLock,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// Releases the lock if `token` holds it.
    fn unlock_sync(
        &self,
        org: OrganizationId,
        token: &str,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// The billing sync connections a host keeps ("Manage billing sync"): at most one per
/// organization, its key and its switch. The self-hosted API (`selfhost-api`) saves and reads
/// them through this trait; the daily runner reads them through the host's
/// `SyncTargets`. A store that implements it passes `conformance::check_billing_connections`.
pub trait BillingConnectionStore: SponsorshipStore {
    /// The organization's connection, if one is saved.
    fn billing_connection(
        &self,
        org: OrganizationId,
    ) -> impl Future<Output = Result<Option<BillingConnection>, Self::Error>> + Send;

    /// Saves the connection whole, in one transaction: the key and the switch replace what was
    /// stored (the reference server's create and update are full replaces).
    fn save_billing_connection(
        &self,
        org: OrganizationId,
        key: &BillingSyncKey,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Deletes the connection; `false` when there was none. Rows and sync history stay.
    fn delete_billing_connection(
        &self,
        org: OrganizationId,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;
}

/// The key of a row in the memory store: member first, as the sync plan orders items.
type RowKey = (MemberId, SponsorshipId);

/// An organization's rows in the memory store.
type RowMap = BTreeMap<RowKey, Sponsorship>;

const fn row_key(row: &Sponsorship) -> RowKey {
    (row.sponsoring_member_id, row.id)
}

/// Writes lifecycle changes in order: an upsert replaces the row with the same id, whatever its
/// member (rows are keyed by member, so finding it takes a pass over the map), a delete removes
/// it. The last change of an id decides, so one pass serves all of them.
fn write_all(rows: &mut RowMap, changes: impl IntoIterator<Item = RowChange>) {
    let mut last: HashMap<SponsorshipId, Option<Sponsorship>> = HashMap::new();
    for change in changes {
        match change {
            RowChange::Upsert(row) => last.insert(row.id, Some(row)),
            RowChange::Delete(id) => last.insert(id, None),
        };
    }
    rows.retain(|(_, id), _| !last.contains_key(id));
    for row in last.into_values().flatten() {
        rows.insert(row_key(&row), row);
    }
}

/// Applies a batch to rows in memory with the compare-and-set rule: each change applies only to
/// the row of its (member, id) key that still has the expected revision; the others are stale.
fn apply_to_rows(rows: &mut RowMap, batch: &BatchApplication) -> AppliedBatch {
    let mut out = AppliedBatch::default();
    for change in &batch.changes {
        let key = (change.member_id, change.sponsorship_id);
        match rows.get_mut(&key) {
            Some(row) if row.revision == change.expected_revision => {
                if !apply_change_in_place(row, &change.action) {
                    rows.remove(&key);
                }
                out.applied += 1;
            }
            _ => out.stale.push(change.sponsorship_id),
        }
    }
    out
}

/// The store failed (in-memory: never, except a poisoned lock).
#[derive(Debug, thiserror::Error)]
#[error("in-memory store: {0}")]
pub struct MemoryStoreError(String);

#[derive(Debug, Default)]
struct OrgData {
    rows: RowMap,
    state: SyncState,
    lock: Option<SyncLock>,
    connection: Option<BillingConnection>,
}

/// An in-memory [`SponsorshipStore`] for tests, examples and embedders' experiments.
#[derive(Debug, Default)]
pub struct MemoryStore {
    orgs: Mutex<HashMap<OrganizationId, OrgData>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, org: OrganizationId, f: impl FnOnce(&mut OrgData) -> T) -> T {
        let mut guard = self.orgs.lock().unwrap_or_else(PoisonError::into_inner);
        f(guard.entry(org).or_default())
    }

    /// Writes a lifecycle change (offer, revoke, member removal).
    pub fn write(&self, org: OrganizationId, change: RowChange) {
        self.with(org, |d| write_all(&mut d.rows, [change]));
    }

    /// A snapshot of the organization's rows, ordered by member id, then row id.
    pub fn rows(&self, org: OrganizationId) -> Vec<Sponsorship> {
        self.with(org, |d| d.rows.values().cloned().collect())
    }

    /// The organization's sync state.
    pub fn state(&self, org: OrganizationId) -> SyncState {
        self.with(org, |d| d.state.clone())
    }
}

impl SponsorshipStore for MemoryStore {
    type Error = MemoryStoreError;

    async fn sponsorships(&self, org: OrganizationId) -> Result<Vec<Sponsorship>, Self::Error> {
        Ok(self.rows(org))
    }

    async fn write_changes(
        &self,
        org: OrganizationId,
        changes: &[RowChange],
    ) -> Result<(), Self::Error> {
        // All changes under one lock: one step for every other call.
        self.with(org, |d| write_all(&mut d.rows, changes.iter().cloned()));
        Ok(())
    }

    async fn apply_batch(
        &self,
        org: OrganizationId,
        batch: &BatchApplication,
    ) -> Result<AppliedBatch, Self::Error> {
        // All changes under one lock: atomic with respect to every other call.
        Ok(self.with(org, |d| apply_to_rows(&mut d.rows, batch)))
    }

    async fn sync_state(&self, org: OrganizationId) -> Result<SyncState, Self::Error> {
        Ok(self.state(org))
    }

    async fn save_sync_state(
        &self,
        org: OrganizationId,
        state: &SyncState,
    ) -> Result<(), Self::Error> {
        self.with(org, |d| d.state = state.clone());
        Ok(())
    }

    async fn save_next_due(
        &self,
        org: OrganizationId,
        next_due: DateTime<Utc>,
    ) -> Result<(), Self::Error> {
        self.with(org, |d| d.state.next_due = Some(next_due));
        Ok(())
    }

    async fn try_lock_sync(
        &self,
        org: OrganizationId,
        lock: &SyncLock,
        now: DateTime<Utc>,
    ) -> Result<LockOutcome, Self::Error> {
        Ok(self.with(org, |d| match &d.lock {
            Some(held) if held.excludes(&lock.token, now) => LockOutcome::HeldBy {
                holder: held.holder.clone(),
                since: held.acquired_at,
            },
            _ => {
                d.lock = Some(lock.clone());
                LockOutcome::Acquired
            }
        }))
    }

    async fn renew_sync_lock(
        &self,
        org: OrganizationId,
        lock: &SyncLock,
    ) -> Result<bool, Self::Error> {
        Ok(self.with(org, |d| match &mut d.lock {
            Some(held) if held.token == lock.token => {
                held.expires_at = lock.expires_at;
                true
            }
            _ => false,
        }))
    }

    async fn unlock_sync(&self, org: OrganizationId, token: &str) -> Result<(), Self::Error> {
        self.with(org, |d| {
            if d.lock.as_ref().is_some_and(|l| l.token == token) {
                d.lock = None;
            }
        });
        Ok(())
    }
}

impl BillingConnectionStore for MemoryStore {
    async fn billing_connection(
        &self,
        org: OrganizationId,
    ) -> Result<Option<BillingConnection>, Self::Error> {
        Ok(self.with(org, |d| d.connection.clone()))
    }

    async fn save_billing_connection(
        &self,
        org: OrganizationId,
        key: &BillingSyncKey,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> Result<(), Self::Error> {
        let connection = BillingConnection::new(key.clone(), enabled, now);
        self.with(org, |d| d.connection = Some(connection));
        Ok(())
    }

    async fn delete_billing_connection(&self, org: OrganizationId) -> Result<bool, Self::Error> {
        Ok(self.with(org, |d| d.connection.take().is_some()))
    }
}
