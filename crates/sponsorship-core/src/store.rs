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
//! The conformance kit (`sponsorship_core::conformance`, feature `test-util`) checks all of this; every
//! implementation runs it in its own tests.
//!
//! # Rows held in memory
//!
//! A host that keeps an organization's rows in a [`RowMap`] plans a run with [`plan_row_map`]
//! and applies each answer with [`apply_to_rows`]. Each batch is built from the map just before
//! it is sent, so no copy of the rows is made up front, and the rows a batch reads are still in
//! the CPU caches when its answer changes them. Both walk the map in key order instead of
//! descending it once per row.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{MemberId, OrganizationId, SponsorshipId};
use crate::schedule::SyncState;
use crate::sponsorship::{RowChange, Sponsorship};
use crate::sync::{
    BatchApplication, DuplicateMember, ItemKind, PlannedBatch, SentItem, apply_change_in_place,
    sent_item, triage, wire_item, withdrawal_batch,
};
use crate::wire::SponsorshipSyncItem;

/// The result of applying one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// row with the same id.
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

    /// Takes (or renews, with the same token) the organization's sync lock at `now`.
    fn try_lock_sync(
        &self,
        org: OrganizationId,
        lock: &SyncLock,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<LockOutcome, Self::Error>> + Send;

    /// Releases the lock if `token` holds it.
    fn unlock_sync(
        &self,
        org: OrganizationId,
        token: &str,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// The key of a self-hosted row in memory: member first, so that rows are clustered the way sync
/// batches walk them (plan orders items by member id).
pub type RowKey = (MemberId, SponsorshipId);

/// Rows held in memory, clustered by member (see [`RowKey`]).
pub type RowMap = BTreeMap<RowKey, Sponsorship>;

/// The [`RowKey`] of a row.
pub const fn row_key(row: &Sponsorship) -> RowKey {
    (row.sponsoring_member_id, row.id)
}

/// The plan of a sync run over rows the caller holds in a [`RowMap`] and changes while the run
/// goes on: each batch is built from the map just before it is sent, after the previous
/// batch's answer was applied to the same map.
///
/// The plan keeps keys, not rows, so it does not borrow the map. Building a batch walks the
/// map from the batch's first key (one descent per batch), and the rows a batch reads are the
/// ones its answer changes right after, while they are still in the CPU caches.
///
/// When nobody else changes the map during the run, it sends exactly what
/// [`plan`](crate::sync::plan) on a snapshot of the map would: the only rows a run itself
/// changes before sending them are those with a withdrawal, whose items are therefore built
/// when planning. A row someone else changes between two batches is sent as it is when its
/// batch is built (with its new revision, so the answer applies); a row removed meanwhile is
/// left out.
#[derive(Debug, Clone)]
pub struct RowMapPlan {
    /// Rows left out because their member has another row.
    pub duplicates: Vec<DuplicateMember>,
    /// Local changes to make before sending: revoked rows the cloud never saw.
    pub local_purges: BatchApplication,
    withdrawal_batches: Vec<PlannedBatch>,
    current: Vec<RowKey>,
    /// Items of rows the withdrawal batches may change, as they were when planning.
    built_early: HashMap<RowKey, (SponsorshipSyncItem, SentItem)>,
    batch_size: usize,
}

/// Plans a sync run over the rows of a [`RowMap`] (see [`RowMapPlan`]). At most `batch_size`
/// items per batch (use [`BATCH_SIZE`](crate::sync::BATCH_SIZE)).
pub fn plan_row_map(rows: &RowMap, batch_size: usize) -> RowMapPlan {
    let batch_size = batch_size.max(1);
    let triage = triage(rows.values(), |key, _| key);
    let built_early = triage
        .withdrawals
        .iter()
        .map(|r| {
            let item = (wire_item(r), sent_item(r, ItemKind::Current));
            (row_key(r), item)
        })
        .collect();
    RowMapPlan {
        duplicates: triage.duplicates,
        local_purges: triage.purges,
        withdrawal_batches: triage
            .withdrawals
            .chunks(batch_size)
            .map(withdrawal_batch)
            .collect(),
        current: triage.current,
        built_early,
        batch_size,
    }
}

impl RowMapPlan {
    /// Number of batches; at least one (zero rows give one empty batch).
    pub fn batch_count(&self) -> usize {
        (self.withdrawal_batches.len() + self.current.len().div_ceil(self.batch_size)).max(1)
    }

    /// Number of items over all batches.
    pub fn item_count(&self) -> usize {
        self.withdrawal_batches
            .iter()
            .map(|b| b.items.len())
            .sum::<usize>()
            + self.current.len()
    }

    /// Batch `index` (0-based; its `number` is `index + 1`), built from `rows` now; `None`
    /// past the last batch. Withdrawal batches come first.
    pub fn batch(&self, index: usize, rows: &RowMap) -> Option<PlannedBatch> {
        let number = index.saturating_add(1);
        if let Some(withdrawals) = self.withdrawal_batches.get(index) {
            return Some(PlannedBatch {
                number,
                ..withdrawals.clone()
            });
        }
        let first = (index - self.withdrawal_batches.len()).saturating_mul(self.batch_size);
        if first >= self.current.len() {
            return (index == 0).then(|| PlannedBatch {
                number,
                items: Vec::new(),
                sent: Vec::new(),
            });
        }
        let keys = &self.current[first..self.current.len().min(first + self.batch_size)];
        let mut items = Vec::with_capacity(keys.len());
        let mut sent = Vec::with_capacity(keys.len());
        let mut walk = rows.range(keys[0]..).peekable();
        for key in keys {
            if !self.built_early.is_empty()
                && let Some((item, sent_as)) = self.built_early.get(key)
            {
                items.push(item.clone());
                sent.push(*sent_as);
                continue;
            }
            // Rows between two keys are the few left out (duplicates, purges).
            while walk.next_if(|(k, _)| *k < key).is_some() {}
            if let Some((_, row)) = walk.next_if(|(k, _)| *k == key) {
                items.push(wire_item(row));
                sent.push(sent_item(row, ItemKind::Current));
            }
        }
        Some(PlannedBatch {
            number,
            items,
            sent,
        })
    }
}

/// Applies a batch to rows held in a [`RowMap`], with the compare-and-set rule. Stores that load
/// rows into memory can use this to get the reference semantics.
///
/// A batch's changes name rows in key order (plan orders items by member), so instead of one
/// descent of the tree per change, the map is walked forward from the first change, skipping at
/// most [`WALK_SKIP_LIMIT`] rows between two changes; a change behind the walk or farther ahead
/// starts a new descent. Deletions are made after the walk, or before a new descent, so a later
/// change naming a deleted row finds it gone, as one-by-one application would.
pub fn apply_to_rows(rows: &mut RowMap, batch: &BatchApplication) -> AppliedBatch {
    let mut out = AppliedBatch::default();
    let mut deleted: Vec<RowKey> = Vec::new();
    let mut rest = batch.changes.as_slice();
    while let Some(first) = rest.first() {
        for key in deleted.drain(..) {
            rows.remove(&key);
        }
        let mut last = (first.member_id, first.sponsorship_id);
        let mut walk = rows.range_mut(last..).peekable();
        let mut taken = 0;
        for change in rest {
            let key = (change.member_id, change.sponsorship_id);
            if taken > 0 {
                if key <= last {
                    break; // behind the walk: descend again
                }
                let mut skipped = 0;
                while walk.next_if(|(k, _)| **k < key).is_some() {
                    skipped += 1;
                    if skipped > WALK_SKIP_LIMIT {
                        break;
                    }
                }
                if skipped > WALK_SKIP_LIMIT {
                    break; // far ahead: a descent is cheaper than the walk
                }
            }
            taken += 1;
            last = key;
            match walk.next_if(|(k, _)| **k == key) {
                Some((_, row)) if row.revision == change.expected_revision => {
                    if !apply_change_in_place(row, &change.action) {
                        deleted.push(key);
                    }
                    out.applied += 1;
                }
                _ => out.stale.push(change.sponsorship_id),
            }
        }
        rest = &rest[taken..];
    }
    for key in deleted {
        rows.remove(&key);
    }
    out
}

/// How many rows [`apply_to_rows`] walks past between two changes before it descends the tree
/// again instead.
pub const WALK_SKIP_LIMIT: usize = 16;

/// The store failed (in-memory: never, except a poisoned lock).
#[derive(Debug, thiserror::Error)]
#[error("in-memory store: {0}")]
pub struct MemoryStoreError(String);

#[derive(Debug, Default)]
struct OrgData {
    rows: RowMap,
    state: SyncState,
    lock: Option<SyncLock>,
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
        self.with(org, |d| match change {
            RowChange::Upsert(row) => {
                d.rows.insert(row_key(&row), row);
            }
            RowChange::Delete(id) => {
                // Rows are keyed by member; a test store can afford the scan for the id.
                d.rows.retain(|&(_, row_id), _| row_id != id);
            }
        });
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
        for change in changes {
            self.write(org, change.clone());
        }
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

    async fn unlock_sync(&self, org: OrganizationId, token: &str) -> Result<(), Self::Error> {
        self.with(org, |d| {
            if d.lock.as_ref().is_some_and(|l| l.token == token) {
                d.lock = None;
            }
        });
        Ok(())
    }
}
