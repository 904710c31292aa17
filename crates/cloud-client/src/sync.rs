//! Sponsorship sync: lock, plan, send batch by batch, store each batch's result, record the run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::Method;
use secrecy::ExposeSecret;
use sponsorship_core::ids::{MemberId, OrganizationId, SponsorshipId};
use sponsorship_core::org::BillingSyncConfig;
use sponsorship_core::schedule::Schedule;
use sponsorship_core::store::{LockOutcome, SponsorshipStore, SyncLock};
use sponsorship_core::sync::{
    BATCH_SIZE, BatchReceipt, DuplicateMember, SkippedItem, apply_response, plan,
};
use sponsorship_core::wire::{Scope, SponsorshipSyncRequest, SponsorshipSyncResponse};

use tracing::Instrument;

use crate::client::CloudClient;
use crate::error::{Error, ErrorKind};
use crate::transport::{Call, Endpoint};

/// Path of the sync endpoint, relative to the API URL.
pub const SYNC_PATH: &str = "organization/sponsorship/sync";

/// Options of one sync run.
#[derive(Clone, Copy)]
pub struct SyncOptions<'a> {
    /// Who takes the lock (shown to a second sync that is refused), e.g. `sponsorctl pid 42`.
    pub holder: &'a str,
    /// A lock not renewed for this long is considered abandoned (it is renewed per batch).
    pub lock_ttl: Duration,
    /// Items per request (the reference sends [`BATCH_SIZE`]).
    pub batch_size: usize,
    /// The schedule that records the run in the sync state.
    pub schedule: Schedule,
    /// Called after each stored batch (for a progress bar).
    pub progress: Option<&'a (dyn Fn(&SyncProgress) + Send + Sync)>,
    /// Checked before each batch: when set, the run stops after the current batch
    /// ([`SyncOutcome::Stopped`]); for a graceful SIGTERM.
    pub stop: Option<&'a AtomicBool>,
    /// The due time this run is for (the daily runner sets it). Once the lock is taken, the
    /// stored `next_due` is read again: when another process (a replica) ran the organization
    /// meanwhile and moved it past this time, the run ends at once with
    /// [`SyncOutcome::AlreadyRun`], sending and recording nothing.
    pub due: Option<DateTime<Utc>>,
}

impl Default for SyncOptions<'_> {
    fn default() -> Self {
        Self {
            holder: "cloud-client",
            lock_ttl: Duration::from_mins(10),
            batch_size: BATCH_SIZE,
            schedule: Schedule::default(),
            progress: None,
            stop: None,
            due: None,
        }
    }
}

impl std::fmt::Debug for SyncOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncOptions")
            .field("holder", &self.holder)
            .field("lock_ttl", &self.lock_ttl)
            .field("batch_size", &self.batch_size)
            .field("progress", &self.progress.is_some())
            .field("stop", &self.stop)
            .field("due", &self.due)
            .finish_non_exhaustive()
    }
}

/// Progress after a stored batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncProgress {
    /// The batch just stored (1-based).
    pub batch: usize,
    /// Number of batches in the run.
    pub batches: usize,
    /// Items sent so far.
    pub items_sent: usize,
    /// Items in the run.
    pub items_total: usize,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncOutcome {
    /// Every batch was sent and stored.
    Completed,
    /// The stop flag was set; the batches before `next_batch` were sent and stored. The next
    /// run sends everything again (the cloud's side is idempotent).
    Stopped {
        /// The first batch not sent.
        next_batch: usize,
    },
    /// Another process ran the organization after the due time this run was for
    /// ([`SyncOptions::due`]): nothing was sent or recorded.
    AlreadyRun,
}

/// One batch's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchReport {
    /// 1-based number.
    pub number: usize,
    /// Items sent.
    pub sent: usize,
    /// Rows updated from the answer.
    pub updated: usize,
    /// Rows deleted because the cloud removed its row.
    pub removed: usize,
    /// Items the cloud did not return.
    pub skipped: usize,
    /// Changes not applied because the row changed meanwhile.
    pub stale: usize,
    /// Time of the HTTP request (retries included).
    pub request_time: Duration,
    /// Time to store the result.
    pub store_time: Duration,
}

/// What a sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncReport {
    /// Completed or stopped.
    pub outcome: SyncOutcome,
    /// Items sent over all batches.
    pub sent: usize,
    /// Rows updated from the cloud's answers.
    pub updated: usize,
    /// Rows deleted because the cloud removed its row.
    pub removed: usize,
    /// Items the cloud skipped, with the reason.
    pub skipped: Vec<SkippedItem>,
    /// Rows not sent because another row of the same member was.
    pub duplicates: Vec<DuplicateMember>,
    /// Rows changed while the sync ran: left alone, sent again next time.
    pub stale: Vec<SponsorshipId>,
    /// Member ids the cloud returned that were not sent (ignored).
    pub unexpected: Vec<MemberId>,
    /// Per-batch figures.
    pub batches: Vec<BatchReport>,
    /// Start (wall clock).
    pub started_at: DateTime<Utc>,
    /// End (wall clock).
    pub finished_at: DateTime<Utc>,
    /// Duration (monotonic).
    pub duration: Duration,
}

impl SyncReport {
    fn new(started_at: DateTime<Utc>) -> Self {
        Self {
            outcome: SyncOutcome::Completed,
            sent: 0,
            updated: 0,
            removed: 0,
            skipped: Vec::new(),
            duplicates: Vec::new(),
            stale: Vec::new(),
            unexpected: Vec::new(),
            batches: Vec::new(),
            started_at,
            finished_at: started_at,
            duration: Duration::ZERO,
        }
    }
}

impl CloudClient {
    /// Syncs one organization's sponsorships with the cloud (spec §5.2, with the reference's
    /// failure modes fixed):
    ///
    /// 1. takes the store's sync lock (refused with a [`ErrorKind::Busy`] error while another
    ///    sync holds it), renews it before each batch and always releases it, after the run is
    ///    recorded;
    /// 2. plans the batches and sends every batch (an organization without rows still sends
    ///    one empty batch, which validates the key);
    /// 3. stores each batch's result before the next is sent, so a failure in batch *k* keeps
    ///    batches 1..k−1;
    /// 4. records the run in the store's sync state (last attempt, success or error with its
    ///    category) with [`Schedule::record_run`].
    pub async fn sync_organization<S: SponsorshipStore>(
        &self,
        store: &S,
        org: OrganizationId,
        billing: &BillingSyncConfig,
        options: SyncOptions<'_>,
    ) -> Result<SyncReport, Error> {
        let started_at = (self.clock)();
        let lock = SyncLock {
            holder: options.holder.to_owned(),
            token: uuid::Uuid::new_v4().to_string(),
            acquired_at: started_at,
            expires_at: started_at + ttl(options.lock_ttl),
        };
        match store
            .try_lock_sync(org, &lock, started_at)
            .await
            .map_err(Error::store)?
        {
            LockOutcome::Acquired => {}
            LockOutcome::HeldBy { holder, since } => {
                return Err(Error::new(ErrorKind::Busy { holder, since }));
            }
        }
        if let Some(due) = options.due {
            let already_run = store
                .sync_state(org)
                .await
                .map(|state| state.next_due.is_some_and(|next| next > due));
            if !matches!(already_run, Ok(false)) {
                release(store, org, &lock.token).await;
                already_run.map_err(Error::store)?;
                tracing::debug!(organization = %org, "already run by another process since it was due");
                let mut report = SyncReport::new(started_at);
                report.outcome = SyncOutcome::AlreadyRun;
                report.finished_at = started_at;
                return Ok(report);
            }
        }
        let span = tracing::info_span!("sponsorship_sync", organization = %org);
        let monotonic = Instant::now();
        let mut report = SyncReport::new(started_at);
        let result = self
            .sync_locked(store, org, billing, &options, &lock, &mut report)
            .instrument(span)
            .await;
        let finished_at = (self.clock)();
        report.finished_at = finished_at;
        report.duration = monotonic.elapsed();

        // Recorded while the lock is still held: a replica that takes the lock next reads the
        // new due time, and does not run the organization a second time for the same one.
        let recorded = self
            .record(
                store,
                org,
                &options.schedule,
                (started_at, finished_at),
                &report,
                &result,
            )
            .await;
        release(store, org, &lock.token).await;
        match (result, recorded) {
            (Err(e), _) => {
                tracing::warn!(
                    category = e.category().name(),
                    "sponsorship sync failed: {e}"
                );
                Err(e)
            }
            (Ok(()), Err(e)) => Err(e),
            (Ok(()), Ok(())) => {
                tracing::info!(
                    sent = report.sent,
                    updated = report.updated,
                    removed = report.removed,
                    skipped = report.skipped.len(),
                    stale = report.stale.len(),
                    duration_ms = u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
                    "sponsorship sync finished"
                );
                Ok(report)
            }
        }
    }

    async fn record<S: SponsorshipStore>(
        &self,
        store: &S,
        org: OrganizationId,
        schedule: &Schedule,
        (started_at, finished_at): (DateTime<Utc>, DateTime<Utc>),
        report: &SyncReport,
        result: &Result<(), Error>,
    ) -> Result<(), Error> {
        // A busy store is the other holder's business; nothing to record.
        // A lost lock belongs to the sync that took it over: nothing to record either.
        if matches!(result, Err(e) if matches!(e.kind(), ErrorKind::Busy { .. } | ErrorKind::LockLost))
        {
            return Ok(());
        }
        let state = store.sync_state(org).await.map_err(Error::store)?;
        let next = match (result, report.outcome) {
            (Err(e), _) => schedule.record_run(
                &state,
                started_at,
                finished_at,
                Err((e.category(), e.to_string())),
            ),
            (Ok(()), SyncOutcome::Completed) => {
                schedule.record_run(&state, started_at, finished_at, Ok(()))
            }
            // (returned before the run, never recorded)
            (Ok(()), SyncOutcome::AlreadyRun) => return Ok(()),
            // Stopped: an attempt, neither a success nor a failure; the schedule stays due.
            (Ok(()), SyncOutcome::Stopped { .. }) => {
                let mut s = state.clone();
                s.last_attempt = Some(started_at);
                s
            }
        };
        store
            .save_sync_state(org, &next)
            .await
            .map_err(Error::store)
    }

    async fn sync_locked<S: SponsorshipStore>(
        &self,
        store: &S,
        org: OrganizationId,
        billing: &BillingSyncConfig,
        options: &SyncOptions<'_>,
        lock: &SyncLock,
        report: &mut SyncReport,
    ) -> Result<(), Error> {
        let rows = store.sponsorships(org).await.map_err(Error::store)?;
        // Each batch's items are built from `rows` when it is sent: never all items at once.
        let planned = plan(&rows, options.batch_size);
        report.duplicates.clone_from(&planned.duplicates);
        let run = RunShape {
            org,
            batches: planned.batch_count(),
            items_total: planned.item_count(),
        };
        // Pipelined: while batch k+1 is on the wire and the cloud works on it, batch k's answer
        // is stored. Stores still apply batches one at a time and in order, each in its own
        // transaction, and a batch is sent only after the previous one was answered.
        let mut answered: Option<AnsweredBatch> = None;
        for batch in planned.batches() {
            let number = batch.number;
            if options.stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
                tracing::info!(
                    batch = number,
                    "stop requested: not sending further batches"
                );
                if let Some(previous) = answered.take() {
                    store_answered(store, &run, previous, options, report).await?;
                }
                report.outcome = SyncOutcome::Stopped { next_batch: number };
                return Ok(());
            }
            if number > 1 {
                self.renew_lock(store, org, lock).await?;
            }
            let sent = batch.items.len();
            let (request, receipt) = batch.into_request(
                billing.billing_sync_key.to_raw(),
                billing.cloud_organization_id,
            );
            let round_trip = async {
                let started = Instant::now();
                let response = self
                    .post_sync(&request, Some(number))
                    .await
                    .map_err(|e| e.with_batch(number, run.batches));
                (response, started.elapsed())
            };
            let store_previous = async {
                match answered.take() {
                    Some(previous) => store_answered(store, &run, previous, options, report).await,
                    None => Ok(()),
                }
            };
            // `biased`: the request goes out first, then the store works while it is answered.
            let ((response, request_time), stored) =
                tokio::join!(biased; round_trip, store_previous);
            // An earlier batch's store failure is the first thing that went wrong.
            stored?;
            let response = response?;
            drop(request);
            answered = Some(AnsweredBatch {
                number,
                sent,
                receipt,
                response,
                request_time,
            });
        }
        if let Some(previous) = answered.take() {
            store_answered(store, &run, previous, options, report).await?;
        }
        Ok(())
    }

    async fn renew_lock<S: SponsorshipStore>(
        &self,
        store: &S,
        org: OrganizationId,
        lock: &SyncLock,
    ) -> Result<(), Error> {
        let now = (self.clock)();
        let renewed = SyncLock {
            expires_at: now
                + ttl(Duration::from_secs(
                    u64::try_from((lock.expires_at - lock.acquired_at).num_seconds())
                        .unwrap_or(600),
                )),
            ..lock.clone()
        };
        // Compare-and-set on our own token: a lock that is gone or carries another token was
        // lost while this run was suspended; nothing more may be sent from its old plan.
        if store
            .renew_sync_lock(org, &renewed)
            .await
            .map_err(Error::store)?
        {
            Ok(())
        } else {
            tracing::warn!("the sync lock was lost: stopping before the next batch");
            Err(Error::new(ErrorKind::LockLost))
        }
    }

    /// Checks the billing sync key against the cloud without touching any row: a sync request
    /// with an empty batch (for `--verify` and when a key is saved).
    pub async fn verify_billing_sync_key(&self, billing: &BillingSyncConfig) -> Result<(), Error> {
        let request = SponsorshipSyncRequest {
            billing_sync_key: billing.billing_sync_key.to_raw(),
            sponsoring_organization_cloud_id: billing.cloud_organization_id,
            sponsorships_batch: Vec::new(),
        };
        self.post_sync(&request, None).await.map(drop)
    }

    async fn post_sync(
        &self,
        request: &SponsorshipSyncRequest,
        batch: Option<usize>,
    ) -> Result<SponsorshipSyncResponse, Error> {
        let body = serde_json::to_vec(request).map_err(|e| {
            Error::new(ErrorKind::Config {
                reason: format!("could not serialize the sync request: {e}"),
            })
        })?;
        let call = Call {
            method: Method::POST,
            base: &self.config.api_url,
            path: SYNC_PATH.to_owned(),
            content_type: "application/json; charset=utf-8",
            body: Some(body),
            bearer: Some(Scope::Installation),
            batch,
            endpoint: Endpoint::SponsorshipSync,
        };
        self.execute(&call, &[request.billing_sync_key.expose_secret()])
            .await
    }
}

/// Releases the run's lock; a failure only delays the next sync until the lock expires.
async fn release<S: SponsorshipStore>(store: &S, org: OrganizationId, token: &str) {
    if let Err(e) = store.unlock_sync(org, token).await {
        tracing::warn!("could not release the sync lock (it expires on its own): {e}");
    }
}

fn ttl(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::minutes(10))
}

/// What every batch of one run shares.
struct RunShape {
    org: OrganizationId,
    batches: usize,
    items_total: usize,
}

/// A batch the cloud has answered, not stored yet.
struct AnsweredBatch {
    number: usize,
    sent: usize,
    receipt: BatchReceipt,
    response: SponsorshipSyncResponse,
    request_time: Duration,
}

/// Stores one answered batch in one transaction and records it in the report.
async fn store_answered<S: SponsorshipStore>(
    store: &S,
    run: &RunShape,
    batch: AnsweredBatch,
    options: &SyncOptions<'_>,
    report: &mut SyncReport,
) -> Result<(), Error> {
    let number = batch.number;
    let application = apply_response(&batch.receipt, &batch.response);
    drop(batch.response);
    let store_started = Instant::now();
    let applied = store
        .apply_batch(run.org, &application)
        .await
        .map_err(|e| Error::store(e).with_batch(number, run.batches))?;
    let store_time = store_started.elapsed();

    let updated = application.confirmed();
    let removed = application.removed();
    report.sent += batch.sent;
    report.updated += updated;
    report.removed += removed;
    report.skipped.extend_from_slice(&application.skipped);
    report.unexpected.extend_from_slice(&application.unexpected);
    report.stale.extend_from_slice(&applied.stale);
    report.batches.push(BatchReport {
        number,
        sent: batch.sent,
        updated,
        removed,
        skipped: application.skipped.len(),
        stale: applied.stale.len(),
        request_time: batch.request_time,
        store_time,
    });
    tracing::info!(
        batch = number,
        batches = run.batches,
        sent = batch.sent,
        updated,
        removed,
        skipped = application.skipped.len(),
        stale = applied.stale.len(),
        "batch stored"
    );
    if let Some(progress) = options.progress {
        progress(&SyncProgress {
            batch: number,
            batches: run.batches,
            items_sent: report.sent,
            items_total: run.items_total,
        });
    }
    Ok(())
}
