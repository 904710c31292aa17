//! Sponsorship sync against a cloud that runs the core's ledger.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use cloud_client::{ErrorKind, SyncOptions, SyncOutcome, SyncProgress};
use sponsorship_core::ids::OrganizationId;
use sponsorship_core::plan::PlanType;
use sponsorship_core::schedule::ErrorCategory;
use sponsorship_core::sponsorship::{RowChange, UiStatus};
use sponsorship_core::store::{LockOutcome, MemoryStore, SponsorshipStore, SyncLock};
use sponsorship_core::sync::SkipReason;
use wiremock::MockServer;

use crate::support::*;

fn store_with(org: OrganizationId, n: usize) -> MemoryStore {
    let store = MemoryStore::new();
    for i in 0..n {
        store.write(org, RowChange::Upsert(row(org, i)));
    }
    store
}

fn small_batches<'a>() -> SyncOptions<'a> {
    SyncOptions {
        batch_size: 2,
        ..SyncOptions::default()
    }
}

#[tokio::test]
async fn complete_sync_stores_results_and_records_success() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    let cloud = LedgerCloud::new(PlanType::EnterpriseAnnually);
    cloud.mount(&server).await;
    let org = OrganizationId::new_random();
    let store = store_with(org, 5);
    let (client, _) = client(config(&server));
    let seen = Mutex::new(Vec::new());
    let progress = |p: &SyncProgress| seen.lock().unwrap().push(*p);
    let report = client
        .sync_organization(
            &store,
            org,
            &billing(),
            SyncOptions {
                progress: Some(&progress),
                ..small_batches()
            },
        )
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Completed);
    assert_eq!((report.sent, report.updated, report.removed), (5, 5, 0));
    assert_eq!(report.batches.len(), 3);
    assert_eq!(
        report.batches.iter().map(|b| b.sent).collect::<Vec<_>>(),
        [2, 2, 1]
    );
    assert!(report.skipped.is_empty() && report.stale.is_empty());
    assert!(
        store
            .rows(org)
            .iter()
            .all(|r| r.ui_status() == UiStatus::Sent)
    );
    assert_eq!(cloud.rows(), 5);
    let progress = seen.lock().unwrap().clone();
    assert_eq!(progress.len(), 3);
    let last = progress[2];
    assert_eq!(
        (last.batch, last.batches, last.items_sent, last.items_total),
        (3, 3, 5, 5)
    );
    let state = store.state(org);
    assert_eq!(state.last_success, Some(now()));
    assert_eq!(state.last_attempt, Some(now()));
    assert_eq!(state.last_error, None);
    // The lock was released: another sync may run.
    let again = client
        .sync_organization(&store, org, &billing(), small_batches())
        .await
        .unwrap();
    assert_eq!(again.sent, 5);
}

#[tokio::test]
async fn zero_sponsorships_still_send_one_empty_batch() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    let cloud = LedgerCloud::new(PlanType::EnterpriseAnnually);
    cloud.mount(&server).await;
    let org = OrganizationId::new_random();
    let store = MemoryStore::new();
    let (client, _) = client(config(&server));
    let report = client
        .sync_organization(&store, org, &billing(), SyncOptions::default())
        .await
        .unwrap();
    assert_eq!(report.sent, 0);
    assert_eq!(report.batches.len(), 1);
    assert_eq!(*cloud.batch_sizes.lock().unwrap(), [0]);
    assert_eq!(store.state(org).last_success, Some(now()));
}

#[tokio::test]
async fn failure_in_batch_two_of_three_keeps_batch_one_and_a_rerun_converges() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    let cloud = LedgerCloud::new(PlanType::EnterpriseAnnually);
    // Batch 2 fails on every attempt (three attempts: calls 2, 3 and 4).
    *cloud.fail_calls.lock().unwrap() = vec![2, 3, 4];
    cloud.mount(&server).await;
    let org = OrganizationId::new_random();
    let store = store_with(org, 5);
    let (client, waits) = client(config(&server));
    let err = client
        .sync_organization(&store, org, &billing(), small_batches())
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::CloudUnavailable);
    assert_eq!(err.batch(), Some((2, 3)));
    assert_eq!(err.attempts(), 3);
    assert_eq!(waits.all().len(), 2, "two waits between three attempts");
    let text = err.to_string();
    assert!(
        text.contains("batch 2 of 3; batches 1..1 were stored"),
        "{text}"
    );
    let synced = store
        .rows(org)
        .iter()
        .filter(|r| r.last_sync_date.is_some())
        .count();
    assert_eq!(synced, 2, "batch 1's results are stored");
    let state = store.state(org);
    assert_eq!(state.last_success, None);
    let recorded = state.last_error.unwrap();
    assert_eq!(recorded.category, ErrorCategory::CloudUnavailable);
    assert_eq!(state.consecutive_failures, 1);

    // The cloud recovers; the re-run sends everything again and converges.
    let report = client
        .sync_organization(&store, org, &billing(), small_batches())
        .await
        .unwrap();
    assert_eq!((report.sent, report.updated), (5, 5));
    assert!(store.rows(org).iter().all(|r| r.last_sync_date.is_some()));
    assert_eq!(cloud.rows(), 5, "no duplicate cloud rows");
    let state = store.state(org);
    assert_eq!(state.last_error, None);
    assert_eq!(state.consecutive_failures, 0);
}

#[tokio::test]
async fn items_the_cloud_skips_are_reported() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    // A Teams organization may not sponsor: the cloud skips every item.
    let cloud = LedgerCloud::new(PlanType::TeamsAnnually);
    cloud.mount(&server).await;
    let org = OrganizationId::new_random();
    let store = store_with(org, 3);
    let (client, _) = client(config(&server));
    let report = client
        .sync_organization(&store, org, &billing(), small_batches())
        .await
        .unwrap();
    assert_eq!(report.sent, 3);
    assert_eq!(report.updated, 0);
    assert_eq!(report.skipped.len(), 3);
    assert!(
        report
            .skipped
            .iter()
            .all(|s| s.reason == SkipReason::NotReturnedByCloud)
    );
    let mut skipped: Vec<_> = report.skipped.iter().map(|s| s.sponsorship_id).collect();
    let mut ids: Vec<_> = store.rows(org).iter().map(|r| r.id).collect();
    skipped.sort();
    ids.sort();
    assert_eq!(skipped, ids);
    assert!(
        store
            .rows(org)
            .iter()
            .all(|r| r.ui_status() == UiStatus::Requested)
    );
}

#[tokio::test]
async fn a_second_sync_while_one_runs_is_busy() {
    let server = MockServer::start().await;
    let org = OrganizationId::new_random();
    let store = MemoryStore::new();
    let other = SyncLock {
        holder: "scheduled sync".into(),
        token: "other".into(),
        acquired_at: now(),
        expires_at: now() + chrono::TimeDelta::minutes(10),
    };
    assert_eq!(
        store.try_lock_sync(org, &other, now()).await.unwrap(),
        LockOutcome::Acquired
    );
    let (client, _) = client(config(&server));
    let err = client
        .sync_organization(&store, org, &billing(), SyncOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Busy { holder, .. } if holder == "scheduled sync"));
    assert_eq!(err.category(), ErrorCategory::Busy);
    assert!(server.received_requests().await.unwrap().is_empty());
    assert_eq!(
        store.state(org).last_attempt,
        None,
        "a refused run records nothing"
    );
}

#[tokio::test]
async fn stop_flag_finishes_the_current_batch_then_stops() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    let cloud = LedgerCloud::new(PlanType::EnterpriseAnnually);
    cloud.mount(&server).await;
    let org = OrganizationId::new_random();
    let store = store_with(org, 5);
    let (client, _) = client(config(&server));
    let stop = AtomicBool::new(false);
    // SIGTERM arrives while batch 1 is being stored (the progress callback stands in for it);
    // batch 2 is on the wire by then (batches are pipelined), so it is the current batch.
    let progress = |_: &SyncProgress| stop.store(true, Ordering::SeqCst);
    let report = client
        .sync_organization(
            &store,
            org,
            &billing(),
            SyncOptions {
                progress: Some(&progress),
                stop: Some(&stop),
                ..small_batches()
            },
        )
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Stopped { next_batch: 3 });
    assert_eq!(report.sent, 4);
    assert_eq!(
        report.batches.len(),
        2,
        "the answered batch in flight is stored"
    );
    let synced = store
        .rows(org)
        .iter()
        .filter(|r| r.last_sync_date.is_some())
        .count();
    assert_eq!(synced, 4, "every answered batch is stored, nothing more");
    let state = store.state(org);
    assert_eq!(state.last_attempt, Some(now()));
    assert_eq!(state.last_success, None, "a stopped run is not a success");
    assert_eq!(state.last_error, None);
}

#[test]
fn sync_future_is_send() {
    fn assert_send<T: Send>(_: T) {}
    let (client, _) = client(config_for("http://127.0.0.1:9", "http://127.0.0.1:9"));
    let store = MemoryStore::new();
    let billing = billing();
    assert_send(client.sync_organization(
        &store,
        OrganizationId::new_random(),
        &billing,
        SyncOptions::default(),
    ));
}

#[tokio::test]
async fn more_than_a_thousand_rows_fail_in_batch_two_and_converge() {
    // Lesson C4 at the real batch size: 2500 rows are three batches of up to 1000.
    let server = MockServer::start().await;
    mount_token(&server).await;
    let cloud = LedgerCloud::new(PlanType::EnterpriseAnnually);
    *cloud.fail_calls.lock().unwrap() = vec![2, 3, 4];
    cloud.mount(&server).await;
    let org = OrganizationId::new_random();
    let store = store_with(org, 2500);
    let (client, _) = client(config(&server));
    let err = client
        .sync_organization(&store, org, &billing(), SyncOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.batch(), Some((2, 3)));
    let synced = store
        .rows(org)
        .iter()
        .filter(|r| r.last_sync_date.is_some())
        .count();
    assert_eq!(synced, 1000);
    let report = client
        .sync_organization(&store, org, &billing(), SyncOptions::default())
        .await
        .unwrap();
    assert_eq!(report.sent, 2500);
    assert_eq!(
        report.batches.iter().map(|b| b.sent).collect::<Vec<_>>(),
        [1000, 1000, 500]
    );
    assert!(store.rows(org).iter().all(|r| r.last_sync_date.is_some()));
    assert_eq!(cloud.rows(), 2500);
}

#[tokio::test]
async fn rows_changed_during_the_sync_are_left_alone_and_reported_stale() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    let cloud = LedgerCloud::new(PlanType::EnterpriseAnnually);
    cloud.mount(&server).await;
    let org = OrganizationId::new_random();
    let store = store_with(org, 4);
    let (client, _) = client(config(&server));
    // After batch 1 is stored, an admin revokes the last row (sent in batch 2).
    let rows = store.rows(org);
    let plan = sponsorship_core::sync::plan(&rows, 2);
    let last = plan.batches().nth(1).unwrap().sent[1].sponsorship_id;
    let revoke = |p: &SyncProgress| {
        if p.batch == 1 {
            let mut row = store.rows(org).into_iter().find(|r| r.id == last).unwrap();
            row.to_delete = true;
            row.revision += 1;
            store.write(org, RowChange::Upsert(row));
        }
    };
    let report = client
        .sync_organization(
            &store,
            org,
            &billing(),
            SyncOptions {
                progress: Some(&revoke),
                ..small_batches()
            },
        )
        .await
        .unwrap();
    assert_eq!(report.stale, [last]);
    assert_eq!(report.updated, 4, "the cloud confirmed four items");
    let row = store.rows(org).into_iter().find(|r| r.id == last).unwrap();
    assert!(
        row.to_delete,
        "the revoke is not overwritten by the sync's echo"
    );
    assert_eq!(row.last_sync_date, None);
}

/// A memory store that records the locks asked for.
struct LockRecorder {
    inner: MemoryStore,
    locks: Mutex<Vec<SyncLock>>,
    unlocks: Mutex<Vec<String>>,
}

impl SponsorshipStore for LockRecorder {
    type Error = <MemoryStore as SponsorshipStore>::Error;

    async fn sponsorships(
        &self,
        org: OrganizationId,
    ) -> Result<Vec<sponsorship_core::sponsorship::Sponsorship>, Self::Error> {
        self.inner.sponsorships(org).await
    }
    async fn write_changes(
        &self,
        org: OrganizationId,
        changes: &[RowChange],
    ) -> Result<(), Self::Error> {
        self.inner.write_changes(org, changes).await
    }
    async fn apply_batch(
        &self,
        org: OrganizationId,
        batch: &sponsorship_core::sync::BatchApplication,
    ) -> Result<sponsorship_core::store::AppliedBatch, Self::Error> {
        self.inner.apply_batch(org, batch).await
    }
    async fn sync_state(
        &self,
        org: OrganizationId,
    ) -> Result<sponsorship_core::schedule::SyncState, Self::Error> {
        self.inner.sync_state(org).await
    }
    async fn save_sync_state(
        &self,
        org: OrganizationId,
        state: &sponsorship_core::schedule::SyncState,
    ) -> Result<(), Self::Error> {
        self.inner.save_sync_state(org, state).await
    }
    async fn save_next_due(
        &self,
        org: OrganizationId,
        due: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), Self::Error> {
        self.inner.save_next_due(org, due).await
    }
    async fn try_lock_sync(
        &self,
        org: OrganizationId,
        lock: &SyncLock,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<LockOutcome, Self::Error> {
        self.locks.lock().unwrap().push(lock.clone());
        self.inner.try_lock_sync(org, lock, now).await
    }
    async fn renew_sync_lock(
        &self,
        org: OrganizationId,
        lock: &SyncLock,
    ) -> Result<bool, Self::Error> {
        self.locks.lock().unwrap().push(lock.clone());
        self.inner.renew_sync_lock(org, lock).await
    }
    async fn unlock_sync(&self, org: OrganizationId, token: &str) -> Result<(), Self::Error> {
        self.unlocks.lock().unwrap().push(token.to_owned());
        self.inner.unlock_sync(org, token).await
    }
}

#[tokio::test]
async fn the_lock_is_renewed_per_batch_and_released_after_a_failure() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    let cloud = LedgerCloud::new(PlanType::EnterpriseAnnually);
    *cloud.fail_calls.lock().unwrap() = vec![3, 4, 5];
    cloud.mount(&server).await;
    let org = OrganizationId::new_random();
    let store = LockRecorder {
        inner: store_with(org, 5),
        locks: Mutex::new(Vec::new()),
        unlocks: Mutex::new(Vec::new()),
    };
    // The wall clock advances a minute each time it is read.
    let minutes = std::sync::atomic::AtomicI64::new(0);
    let (client, _) = client(config(&server));
    let client = client.with_clock(move || {
        now() + chrono::TimeDelta::minutes(minutes.fetch_add(1, Ordering::SeqCst))
    });
    let err = client
        .sync_organization(
            &store,
            org,
            &billing(),
            SyncOptions {
                holder: "test holder",
                ..small_batches()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.batch(), Some((3, 3)));
    let locks = store.locks.lock().unwrap().clone();
    assert_eq!(locks.len(), 3, "taken once, renewed before batches 2 and 3");
    assert!(
        locks
            .iter()
            .all(|l| l.token == locks[0].token && l.holder == "test holder")
    );
    assert!(locks[0].expires_at < locks[1].expires_at && locks[1].expires_at < locks[2].expires_at);
    assert_eq!(*store.unlocks.lock().unwrap(), [locks[0].token.clone()]);
}

/// A store whose first batch write fails (a full disk that is then cleared).
struct FailsFirstBatch {
    inner: MemoryStore,
    failed: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
#[error("disk full")]
struct DiskFull;

impl SponsorshipStore for FailsFirstBatch {
    type Error = DiskFull;

    async fn sponsorships(
        &self,
        org: OrganizationId,
    ) -> Result<Vec<sponsorship_core::sponsorship::Sponsorship>, DiskFull> {
        Ok(self.inner.rows(org))
    }
    async fn write_changes(
        &self,
        org: OrganizationId,
        changes: &[RowChange],
    ) -> Result<(), DiskFull> {
        self.inner
            .write_changes(org, changes)
            .await
            .map_err(|_| DiskFull)
    }
    async fn apply_batch(
        &self,
        org: OrganizationId,
        batch: &sponsorship_core::sync::BatchApplication,
    ) -> Result<sponsorship_core::store::AppliedBatch, DiskFull> {
        if batch.batch_number > 0 && !self.failed.swap(true, Ordering::SeqCst) {
            return Err(DiskFull);
        }
        self.inner
            .apply_batch(org, batch)
            .await
            .map_err(|_| DiskFull)
    }
    async fn sync_state(
        &self,
        org: OrganizationId,
    ) -> Result<sponsorship_core::schedule::SyncState, DiskFull> {
        Ok(self.inner.state(org))
    }
    async fn save_sync_state(
        &self,
        org: OrganizationId,
        state: &sponsorship_core::schedule::SyncState,
    ) -> Result<(), DiskFull> {
        self.inner
            .save_sync_state(org, state)
            .await
            .map_err(|_| DiskFull)
    }
    async fn save_next_due(
        &self,
        org: OrganizationId,
        due: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), DiskFull> {
        self.inner
            .save_next_due(org, due)
            .await
            .map_err(|_| DiskFull)
    }
    async fn try_lock_sync(
        &self,
        org: OrganizationId,
        lock: &SyncLock,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<LockOutcome, DiskFull> {
        self.inner
            .try_lock_sync(org, lock, now)
            .await
            .map_err(|_| DiskFull)
    }
    async fn renew_sync_lock(
        &self,
        org: OrganizationId,
        lock: &SyncLock,
    ) -> Result<bool, DiskFull> {
        self.inner
            .renew_sync_lock(org, lock)
            .await
            .map_err(|_| DiskFull)
    }
    async fn unlock_sync(&self, org: OrganizationId, token: &str) -> Result<(), DiskFull> {
        self.inner
            .unlock_sync(org, token)
            .await
            .map_err(|_| DiskFull)
    }
}

/// Batches are pipelined: batch 2 is on the wire while batch 1 is stored. When storing batch 1
/// fails, the run reports batch 1's store error, stores nothing after it, and a re-run converges
/// without creating any cloud row twice.
#[tokio::test]
async fn store_failure_while_the_next_batch_is_in_flight_reports_it_and_a_rerun_converges() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    let cloud = LedgerCloud::new(PlanType::EnterpriseAnnually);
    cloud.mount(&server).await;
    let org = OrganizationId::new_random();
    let store = FailsFirstBatch {
        inner: store_with(org, 5),
        failed: AtomicBool::new(false),
    };
    let (client, _) = client(config(&server));
    let err = client
        .sync_organization(&store, org, &billing(), small_batches())
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Store, "{err}");
    assert!(err.to_string().contains("batch 1 of 3"), "{err}");
    assert_eq!(
        cloud.calls.load(Ordering::SeqCst),
        2,
        "batch 2 was in flight"
    );
    assert!(
        store
            .inner
            .rows(org)
            .iter()
            .all(|r| r.last_sync_date.is_none()),
        "nothing stored after the failed batch"
    );

    let report = client
        .sync_organization(&store, org, &billing(), small_batches())
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Completed);
    assert_eq!(report.updated, 5);
    assert!(
        store
            .inner
            .rows(org)
            .iter()
            .all(|r| r.ui_status() == UiStatus::Sent)
    );
    assert_eq!(cloud.rows(), 5, "no cloud row created twice");
}

/// A sync suspended past its lock's expiry (SIGSTOP, a paused VM, a clock jump) while another
/// sync takes the organization over and finishes: the suspended one must not send the rest of
/// its old plan, which would re-create an offer revoked meanwhile.
#[tokio::test]
async fn a_run_that_lost_its_lock_sends_nothing_more() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicI64;

    let server = MockServer::start().await;
    mount_token(&server).await;
    let cloud = LedgerCloud::new(PlanType::EnterpriseAnnually);
    cloud.mount(&server).await;
    cloud.delay_ms.store(400, Ordering::SeqCst);
    let org = OrganizationId::new_random();
    let store = store_with(org, 4);
    // The row of the second batch (items go in member order) that is revoked meanwhile.
    let mut rows = store.rows(org);
    rows.sort_by_key(|r| r.sponsoring_member_id);
    let late = rows[3].clone();

    let offset = Arc::new(AtomicI64::new(0));
    let clock = {
        let offset = offset.clone();
        move || now() + chrono::TimeDelta::seconds(offset.load(Ordering::SeqCst))
    };
    let (suspended, _) = client(config(&server));
    let suspended = suspended.with_clock(clock.clone());
    let (other, _) = client(config(&server));
    let other = other.with_clock(clock);

    let billing = billing();
    let first = suspended.sync_organization(&store, org, &billing, small_batches());
    let meanwhile = async {
        // Batch 1 is on the wire; the process is "stopped" for 20 minutes (TTL 10).
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        offset.store(20 * 60, Ordering::SeqCst);
        let RowChange::Upsert(revoked) = sponsorship_core::sponsorship::revoke(
            late.sponsoring_member_id,
            &store.rows(org),
            now(),
        )
        .unwrap() else {
            panic!("a revoke marks the row")
        };
        store.write(org, RowChange::Upsert(revoked));
        cloud.delay_ms.store(0, Ordering::SeqCst);
        other
            .sync_organization(&store, org, &billing, small_batches())
            .await
            .unwrap()
    };
    let (first, other_report) = tokio::join!(first, meanwhile);
    assert_eq!(other_report.outcome, SyncOutcome::Completed);
    let err = first.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::LockLost), "{err:?}");
    assert_eq!(err.category(), ErrorCategory::Busy);
    // The revoked offer never reached the cloud, and its local row is gone.
    let ledger = cloud.ledger.lock().unwrap();
    assert!(
        ledger
            .by_member(cloud.org.id, late.sponsoring_member_id)
            .is_none(),
        "the stale plan re-created a revoked offer"
    );
    assert_eq!(ledger.len(), 3);
    drop(ledger);
    assert!(store.rows(org).iter().all(|r| r.id != late.id));
    assert_eq!(
        cloud.batch_sizes.lock().unwrap().len(),
        3,
        "one batch of the suspended run, two of the other"
    );
}
