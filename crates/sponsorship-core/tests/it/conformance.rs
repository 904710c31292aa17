//! The store conformance kit: `MemoryStore` passes it, and stores that break the contract in
//! one way each fail the check meant for it (so the kit can fail).

use chrono::{DateTime, Utc};
use sponsorship_core::conformance;
use sponsorship_core::ids::OrganizationId;
use sponsorship_core::schedule::SyncState;
use sponsorship_core::sponsorship::{RowChange, Sponsorship};
use sponsorship_core::store::{
    AppliedBatch, LockOutcome, MemoryStore, MemoryStoreError, SponsorshipStore, SyncLock,
};
use sponsorship_core::sync::BatchApplication;

#[tokio::test]
async fn memory_store_passes_the_kit() {
    conformance::run_all(&MemoryStore::new()).await;
    conformance::check_billing_connections(&MemoryStore::new()).await;
}

/// How a [`Mutant`] breaks the contract.
#[derive(Clone, Copy)]
enum Flaw {
    /// Applies a batch one change at a time, yielding between changes.
    YieldsWithinBatch,
    /// Keeps every organization's rows together (the organization is ignored).
    IgnoresOrganization,
    /// An expired lock stays with its old holder.
    KeepsExpiredLocks,
    /// Drops the superseded offer when storing a row.
    DropsSupersededOffer,
    /// Applies a change whatever revision its row has now (no compare-and-set).
    IgnoresRevision,
    /// Writes lifecycle changes one at a time, yielding between them.
    WritesOneByOne,
    /// Renews a lock by taking it again, so a lost lock is granted anew.
    RenewsLostLocks,
}

/// A memory store with one flaw.
struct Mutant {
    inner: MemoryStore,
    flaw: Flaw,
}

impl Mutant {
    fn new(flaw: Flaw) -> Self {
        Self {
            inner: MemoryStore::new(),
            flaw,
        }
    }

    /// The organization rows are kept under.
    fn org(&self, org: OrganizationId) -> OrganizationId {
        match self.flaw {
            Flaw::IgnoresOrganization => OrganizationId::from(uuid::Uuid::nil()),
            _ => org,
        }
    }
}

impl SponsorshipStore for Mutant {
    type Error = MemoryStoreError;

    async fn sponsorships(&self, org: OrganizationId) -> Result<Vec<Sponsorship>, Self::Error> {
        self.inner.sponsorships(self.org(org)).await
    }

    async fn write_changes(
        &self,
        org: OrganizationId,
        changes: &[RowChange],
    ) -> Result<(), Self::Error> {
        if let Flaw::WritesOneByOne = self.flaw {
            for change in changes {
                self.inner
                    .write_changes(org, std::slice::from_ref(change))
                    .await?;
                tokio::task::yield_now().await;
            }
            return Ok(());
        }
        let mut changes = changes.to_vec();
        if let Flaw::DropsSupersededOffer = self.flaw {
            for change in &mut changes {
                if let RowChange::Upsert(row) = change {
                    row.superseded_offer = None;
                }
            }
        }
        self.inner.write_changes(self.org(org), &changes).await
    }

    async fn apply_batch(
        &self,
        org: OrganizationId,
        batch: &BatchApplication,
    ) -> Result<AppliedBatch, Self::Error> {
        match self.flaw {
            Flaw::YieldsWithinBatch => {
                let mut out = AppliedBatch::default();
                for change in &batch.changes {
                    let one = BatchApplication {
                        changes: vec![change.clone()],
                        ..batch.clone()
                    };
                    let applied = self.inner.apply_batch(org, &one).await?;
                    out.applied += applied.applied;
                    out.stale.extend(applied.stale);
                    tokio::task::yield_now().await;
                }
                Ok(out)
            }
            Flaw::IgnoresRevision => {
                let rows = self.inner.rows(org);
                let mut blind = batch.clone();
                for change in &mut blind.changes {
                    if let Some(row) = rows.iter().find(|r| r.id == change.sponsorship_id) {
                        change.expected_revision = row.revision;
                    }
                }
                self.inner.apply_batch(org, &blind).await
            }
            _ => self.inner.apply_batch(self.org(org), batch).await,
        }
    }

    async fn sync_state(&self, org: OrganizationId) -> Result<SyncState, Self::Error> {
        self.inner.sync_state(org).await
    }

    async fn save_sync_state(
        &self,
        org: OrganizationId,
        state: &SyncState,
    ) -> Result<(), Self::Error> {
        self.inner.save_sync_state(org, state).await
    }

    async fn save_next_due(
        &self,
        org: OrganizationId,
        next_due: DateTime<Utc>,
    ) -> Result<(), Self::Error> {
        self.inner.save_next_due(org, next_due).await
    }

    async fn try_lock_sync(
        &self,
        org: OrganizationId,
        lock: &SyncLock,
        now: DateTime<Utc>,
    ) -> Result<LockOutcome, Self::Error> {
        if let Flaw::KeepsExpiredLocks = self.flaw {
            // Judges expiry as if no time had passed since the beginning of time.
            return self
                .inner
                .try_lock_sync(org, lock, DateTime::<Utc>::MIN_UTC)
                .await;
        }
        self.inner.try_lock_sync(org, lock, now).await
    }

    async fn renew_sync_lock(
        &self,
        org: OrganizationId,
        lock: &SyncLock,
    ) -> Result<bool, Self::Error> {
        if let Flaw::RenewsLostLocks = self.flaw {
            // Renews by taking the lock again: a missing lock is granted.
            let taken = self
                .inner
                .try_lock_sync(org, lock, lock.acquired_at)
                .await?;
            return Ok(taken == sponsorship_core::store::LockOutcome::Acquired);
        }
        self.inner.renew_sync_lock(org, lock).await
    }

    async fn unlock_sync(&self, org: OrganizationId, token: &str) -> Result<(), Self::Error> {
        self.inner.unlock_sync(org, token).await
    }
}

#[tokio::test]
#[should_panic(expected = "a batch must land as one transaction")]
async fn a_store_that_yields_within_a_batch_fails() {
    conformance::batch_is_one_step_for_readers(&Mutant::new(Flaw::YieldsWithinBatch)).await;
}

#[tokio::test]
#[should_panic(expected = "each organization sees only its rows")]
async fn a_store_that_mixes_organizations_fails() {
    conformance::rows_round_trip(&Mutant::new(Flaw::IgnoresOrganization)).await;
}

#[tokio::test]
#[should_panic(expected = "a missing lock is not granted by a renewal")]
async fn a_store_that_renews_lost_locks_fails() {
    conformance::lock_renewal_is_compare_and_set(&Mutant::new(Flaw::RenewsLostLocks)).await;
}

#[tokio::test]
#[should_panic(expected = "an expired lock is taken over")]
async fn a_store_that_keeps_expired_locks_fails() {
    conformance::lock_exclusion_renewal_expiry_takeover(&Mutant::new(Flaw::KeepsExpiredLocks))
        .await;
}

#[tokio::test]
#[should_panic(expected = "rows read back as written")]
async fn a_store_that_drops_a_field_fails() {
    conformance::rows_round_trip(&Mutant::new(Flaw::DropsSupersededOffer)).await;
}

#[tokio::test]
#[should_panic(expected = "a mismatched change is stale")]
async fn a_store_without_compare_and_set_fails() {
    conformance::compare_and_set(&Mutant::new(Flaw::IgnoresRevision)).await;
}

#[tokio::test]
#[should_panic(expected = "write_changes must be one transaction")]
async fn a_store_that_writes_changes_one_by_one_fails() {
    conformance::write_changes_is_one_step_for_readers(&Mutant::new(Flaw::WritesOneByOne)).await;
}

#[tokio::test]
async fn the_mutants_pass_the_checks_their_flaw_does_not_touch() {
    // Each flaw is caught by its check, not by accident of another.
    conformance::sync_state_round_trips(&Mutant::new(Flaw::YieldsWithinBatch)).await;
    conformance::lock_exclusion_renewal_expiry_takeover(&Mutant::new(Flaw::DropsSupersededOffer))
        .await;
    conformance::large_organization(&Mutant::new(Flaw::KeepsExpiredLocks), 2_000).await;
}
