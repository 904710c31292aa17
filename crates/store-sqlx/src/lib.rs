//! The sponsorship store on a server database: PostgreSQL, or MySQL/MariaDB, through
//! sqlx (async, pooled, versioned migrations per backend, embedded in the binary). It
//! implements [`SponsorshipStore`] with the contract the SQLite store keeps and the
//! conformance kit checks: a sync batch is one transaction of compare-and-set statements on
//! each row's revision, and the sync lock is a lease row renewed with compare-and-set on the
//! holder's token, so that several replicas of a server share one database safely.
//!
//! ```no_run
//! use store_sqlx::SqlxStore;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! // Connects (a pool of 10), applies the migrations the database lacks.
//! let store = SqlxStore::connect("postgres://sponsor:secret@db.internal/sponsorships").await?;
//! let (applied, known) = store.schema_version().await?;
//! assert_eq!(applied, known);
//! // `store` is a `SponsorshipStore`: hand it to `CloudClient::sync_organization` or to the
//! // daily runner of `cloud_client::runner`, from every replica.
//! # Ok(()) }
//! ```
//!
//! # Backends
//!
//! Cargo features `postgres` and `mysql` (both by default) select the drivers; a host that
//! needs one turns the defaults off. Queries are checked at run time, so no database is needed
//! to build. Times are stored as microseconds since the Unix epoch, ids in their hyphenated
//! form and flags as 0/1: one encoding and one set of statements for both backends, except the
//! placeholders and the upserts ([`Backend`]).
//!
//! # Several replicas
//!
//! Any number of processes (on any number of machines) may run the daily runner on one
//! database: the lease row lets one of them sync an organization at a time, a replica killed
//! mid-sync leaves its lease to expire (`SyncOptions::lock_ttl`), and one suspended past its
//! lease finds it lost at its next renewal and stops before it sends anything more. A lease
//! rather than the databases' advisory locks: an advisory lock belongs to a connection, so a
//! suspended holder would keep it for as long as its connection lives, and poolers in
//! transaction mode do not carry it; a lease expires, and its token fences a late holder.
//!
//! # Two parts
//!
//! * What every host needs: the rows, the sync state and lock ([`SponsorshipStore`]), and the
//!   billing sync connection ([`SqlxStore::connection`], [`SqlxStore::set_key`], …). The cloud
//!   organization id and the organization's name stay the host's, from its own tables.
//! * What a standalone host needs, one without tables of its own (`sponsorctl --state
//!   postgres://…`): organizations with their license and members, in [`SqlxTx`], a
//!   transaction that also reads and writes rows, connections and sync state in one step.
//!
//! The tables are the store's alone: `sponsorships`, `sync_state`, `sync_locks`,
//! `billing_sync_connections`, `organizations`, `members` and sqlx's `_sqlx_migrations`.
#![forbid(unsafe_code)]

mod connection;
mod dialect;
mod error;
mod host;
mod rows;
mod state;
mod statements;
mod store;
mod tx;

use chrono::{DateTime, Utc};
use sponsorship_core::ids::OrganizationId;
use sponsorship_core::org::BillingConnection;
use sponsorship_core::schedule::SyncState;
use sponsorship_core::secret::BillingSyncKey;
use sponsorship_core::sponsorship::{RowChange, Sponsorship};
use sponsorship_core::store::{
    AppliedBatch, BillingConnectionStore, LockOutcome, SponsorshipStore, SyncLock,
};
use sponsorship_core::sync::BatchApplication;

pub use dialect::Backend;
pub use error::Error;
pub use store::SqlxStore;
pub use tx::SqlxTx;

impl SponsorshipStore for SqlxStore {
    type Error = Error;

    async fn sponsorships(&self, org: OrganizationId) -> Result<Vec<Sponsorship>, Error> {
        self.load_rows(&mut *self.acquire().await?, org).await
    }

    async fn write_changes(
        &self,
        _org: OrganizationId,
        changes: &[RowChange],
    ) -> Result<(), Error> {
        self.write_rows(&mut *self.acquire().await?, changes).await
    }

    async fn apply_batch(
        &self,
        org: OrganizationId,
        batch: &BatchApplication,
    ) -> Result<AppliedBatch, Error> {
        self.apply(&mut *self.acquire().await?, org, batch).await
    }

    async fn sync_state(&self, org: OrganizationId) -> Result<SyncState, Error> {
        self.load_state(&mut *self.acquire().await?, org).await
    }

    async fn save_sync_state(&self, org: OrganizationId, state: &SyncState) -> Result<(), Error> {
        self.store_state(&mut *self.acquire().await?, org, state)
            .await
    }

    async fn save_next_due(
        &self,
        org: OrganizationId,
        next_due: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.store_next_due(&mut *self.acquire().await?, org, next_due)
            .await
    }

    async fn try_lock_sync(
        &self,
        org: OrganizationId,
        lock: &SyncLock,
        now: DateTime<Utc>,
    ) -> Result<LockOutcome, Error> {
        self.take_lock(&mut *self.acquire().await?, org, lock, now)
            .await
    }

    async fn renew_sync_lock(&self, org: OrganizationId, lock: &SyncLock) -> Result<bool, Error> {
        self.renew(&mut *self.acquire().await?, org, lock).await
    }

    async fn unlock_sync(&self, org: OrganizationId, token: &str) -> Result<(), Error> {
        self.unlock(&mut *self.acquire().await?, org, token).await
    }
}

/// The connection operations of [`SqlxStore`], the save in one transaction.
impl BillingConnectionStore for SqlxStore {
    async fn billing_connection(
        &self,
        org: OrganizationId,
    ) -> Result<Option<BillingConnection>, Error> {
        self.connection(org).await
    }

    async fn save_billing_connection(
        &self,
        org: OrganizationId,
        key: &BillingSyncKey,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        tx.set_key(org, key, now).await?;
        tx.set_enabled(org, enabled, now).await?;
        tx.commit().await
    }

    async fn delete_billing_connection(&self, org: OrganizationId) -> Result<bool, Error> {
        self.delete_connection(org).await
    }
}
