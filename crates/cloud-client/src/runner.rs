//! The daily runner: keeps a host's organizations in sync on the core's schedule.
//!
//! [`DailyRunner::run`] is the loop a server (or `sponsorctl sync --daemon`) runs in a task of
//! its own:
//!
//! * asks the host for its organizations ([`SyncTargets`]) on every round, so new
//!   organizations, new tokens and switched-off connections count from the next round;
//! * for each ready organization asks [`Schedule::next_run`] when it is due (first run at a
//!   random offset within a day, daily after a success, catch-up after downtime, back-off after
//!   failures) and persists a new `next_due` in the store, so a restart keeps it;
//! * sleeps until the earliest due time, waking at least every [`DailyRunner::recheck_every`];
//! * syncs the due organization through [`CloudClient::sync_organization`] (which takes the
//!   store's lock and records the run in the sync state), then purges the rows whose paid
//!   period ended more than 90 days ago by the cloud's clock ([`sponsorship::expired`]);
//! * when another process holds the organization's sync lock (a replica of the same server on
//!   the same database), goes on with the next due organization at once and looks at that one
//!   again only after a few seconds (that process moves its due time on when it ends): several
//!   replicas share the due organizations between them instead of queueing behind one;
//! * stops when the host's `shutdown` future completes: a wait ends at once, a sync in progress
//!   stops after its current batch (the next run sends everything again); a batch still
//!   unanswered after [`SHUTDOWN_GRACE`] is abandoned, so a hung request never holds a
//!   shutdown for its whole time budget. Nothing is half-written: a batch is stored in one
//!   transaction or not at all, and the abandoned run's lock expires (or is taken over as its
//!   holder's, once that process is gone).
//!
//! The host hears of each step through [`RunnerEvent`]s and decides what to print or log.

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sponsorship_core::ids::OrganizationId;
use sponsorship_core::org::{BillingSyncConfig, ConnectionError};
use sponsorship_core::schedule::{Jitter, Schedule};
use sponsorship_core::sponsorship::{self, RowChange};
use sponsorship_core::store::SponsorshipStore;

use crate::{CloudClient, Error, ErrorKind, SyncOptions, SyncOutcome, SyncReport};

/// How long a runner that found an organization's lock held leaves that organization alone.
const BUSY_RETRY: Duration = Duration::from_secs(5);

/// How long a shutdown lets a sync in progress finish the batch on the wire.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// An organization the runner keeps in sync, as the host knows it this round.
#[derive(Debug, Clone)]
pub struct SyncTarget {
    /// The self-hosted organization.
    pub organization_id: OrganizationId,
    /// Its name, for events.
    pub name: String,
    /// Its billing sync connection, as [`BillingSyncConnection::readiness`] judged it; an
    /// organization that is not ready is left out of the round.
    ///
    /// [`BillingSyncConnection::readiness`]: sponsorship_core::org::BillingSyncConnection::readiness
    pub billing: Result<BillingSyncConfig, ConnectionError>,
}

/// Where the runner learns which organizations to sync: the host's own tables.
pub trait SyncTargets: Send + Sync {
    /// The host's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The organizations with a billing sync connection, ready or not.
    fn sync_targets(&self) -> impl Future<Output = Result<Vec<SyncTarget>, Self::Error>> + Send;
}

/// What the runner is doing, for the host to print or log.
#[derive(Debug)]
#[non_exhaustive]
pub enum RunnerEvent<'a> {
    /// No organization is ready; the runner looks again after `recheck_in`.
    Idle {
        /// Until the next look.
        recheck_in: Duration,
    },
    /// The next sync is due at `due`; the runner sleeps until then (or its next look).
    Waiting {
        /// The organization due first.
        target: &'a SyncTarget,
        /// When.
        due: DateTime<Utc>,
    },
    /// A sync ran to its end (or stopped after a batch on shutdown).
    Synced {
        /// The organization.
        target: &'a SyncTarget,
        /// What it did.
        report: &'a SyncReport,
    },
    /// A sync failed; it is recorded in the sync state and retried on the schedule's back-off.
    Failed {
        /// The organization.
        target: &'a SyncTarget,
        /// Why.
        error: &'a Error,
    },
    /// Rows past their paid period by more than 90 days (by the cloud's clock) were purged.
    Purged {
        /// The organization.
        target: &'a SyncTarget,
        /// How many rows.
        rows: usize,
    },
}

/// The runner could not go on: the host's organizations or the store could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// [`SyncTargets::sync_targets`] failed.
    #[error("cannot list the organizations to sync: {0}")]
    Targets(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The store failed while the runner read or saved a sync state.
    #[error("the sponsorship store failed: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The daily sync loop over a host's organizations (see the [module docs](self)).
#[derive(Debug)]
pub struct DailyRunner<'a, S, T> {
    client: &'a CloudClient,
    store: &'a S,
    targets: &'a T,
    holder: &'a str,
    schedule: Schedule,
    recheck: Duration,
    lock_ttl: Duration,
}

impl<'a, S: SponsorshipStore, T: SyncTargets> DailyRunner<'a, S, T> {
    /// A runner on the production schedule ([`Schedule::default`]) that looks for new
    /// organizations hourly; `holder` names this process in the sync lock.
    pub fn new(client: &'a CloudClient, store: &'a S, targets: &'a T, holder: &'a str) -> Self {
        Self {
            client,
            store,
            targets,
            holder,
            schedule: Schedule::default(),
            recheck: Duration::from_hours(1),
            lock_ttl: SyncOptions::default().lock_ttl,
        }
    }

    /// Another schedule (tests and demos shrink its durations).
    #[must_use]
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// How often a sleeping runner looks again for new organizations and changed schedules.
    #[must_use]
    pub fn recheck_every(mut self, every: Duration) -> Self {
        self.recheck = every;
        self
    }

    /// How long an organization's sync lock outlives a runner that stops renewing it (killed,
    /// suspended, cut off from the store): another runner takes the organization over after
    /// this long. The default is [`SyncOptions::lock_ttl`]'s, 10 minutes; the lock is renewed
    /// before every batch, so a batch must be answered within it.
    #[must_use]
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl;
        self
    }

    /// Runs until `shutdown` completes (see the [module docs](self)). Syncs run one at a time;
    /// a failed sync is an event, not an error, and is retried on the schedule.
    pub async fn run(
        self,
        mut jitter: impl Jitter + Send,
        shutdown: impl Future<Output = ()> + Send,
        mut on_event: impl FnMut(RunnerEvent<'_>) + Send,
    ) -> Result<(), RunnerError> {
        let mut shutdown = pin!(shutdown);
        let stop = AtomicBool::new(false);
        // Organizations whose lock another process held, until when they are left alone.
        let mut busy: HashMap<OrganizationId, Instant> = HashMap::new();
        while !stop.load(Ordering::SeqCst) {
            let now = (self.client.clock)();
            busy.retain(|_, until| *until > Instant::now());
            // A wait ends early when a busy organization may be free again.
            let free_again = busy.values().min().map_or(self.recheck, |until| {
                until.saturating_duration_since(Instant::now())
            });
            let Some((due, target)) = self.earliest_due(now, &mut jitter, &busy).await? else {
                on_event(RunnerEvent::Idle {
                    recheck_in: self.recheck,
                });
                self.wait(self.recheck.min(free_again), shutdown.as_mut(), &stop)
                    .await;
                continue;
            };
            if due > now {
                on_event(RunnerEvent::Waiting {
                    target: &target,
                    due,
                });
                let until_due = (due - now).to_std().unwrap_or_default();
                self.wait(
                    until_due.min(self.recheck).min(free_again),
                    shutdown.as_mut(),
                    &stop,
                )
                .await;
                continue;
            }
            let Ok(billing) = &target.billing else {
                continue;
            };
            // A shutdown that came while the organizations were listed or rows purged (when
            // it was not being waited on) starts no new sync.
            if fired(shutdown.as_mut()).await {
                break;
            }
            let options = SyncOptions {
                holder: self.holder,
                schedule: self.schedule,
                stop: Some(&stop),
                lock_ttl: self.lock_ttl,
                due: Some(due),
                ..SyncOptions::default()
            };
            let mut sync = pin!(self.client.sync_organization(
                self.store,
                target.organization_id,
                billing,
                options
            ));
            let result = tokio::select! {
                result = &mut sync => result,
                () = shutdown.as_mut() => {
                    // Let the sync finish the batch on the wire and release its lock, for a
                    // few seconds at most.
                    stop.store(true, Ordering::SeqCst);
                    if let Ok(result) = tokio::time::timeout(SHUTDOWN_GRACE, &mut sync).await {
                        result
                    } else {
                        tracing::warn!(
                            organization = %target.organization_id,
                            "shutdown: abandoning a batch still unanswered after {} s; the next run sends it again",
                            SHUTDOWN_GRACE.as_secs()
                        );
                        return Ok(());
                    }
                }
            };
            if self.after_sync(&target, result, &mut on_event).await? {
                // Another process syncs the organization right now and moves its due time on
                // when it ends: go on with the next one, and look at this one again shortly
                // instead of asking for its lock in a loop.
                busy.insert(
                    target.organization_id,
                    Instant::now() + BUSY_RETRY.min(self.recheck),
                );
            }
        }
        Ok(())
    }

    /// Reports a sync and purges after a success; `true` when the lock was held by another.
    async fn after_sync(
        &self,
        target: &SyncTarget,
        result: Result<SyncReport, Error>,
        on_event: &mut (impl FnMut(RunnerEvent<'_>) + Send),
    ) -> Result<bool, RunnerError> {
        match result {
            // A replica ran it since it was due: nothing to report or purge.
            Ok(report) if report.outcome == SyncOutcome::AlreadyRun => {}
            Ok(report) => {
                on_event(RunnerEvent::Synced {
                    target,
                    report: &report,
                });
                let rows = self.purge_expired(target.organization_id).await?;
                if rows > 0 {
                    on_event(RunnerEvent::Purged { target, rows });
                }
            }
            Err(error) => {
                on_event(RunnerEvent::Failed {
                    target,
                    error: &error,
                });
                return Ok(matches!(error.kind(), ErrorKind::Busy { .. }));
            }
        }
        Ok(false)
    }

    /// The ready organization due first (leaving out those another process is syncing), with
    /// every changed due time persisted.
    async fn earliest_due(
        &self,
        now: DateTime<Utc>,
        jitter: &mut (impl Jitter + Send),
        busy: &HashMap<OrganizationId, Instant>,
    ) -> Result<Option<(DateTime<Utc>, SyncTarget)>, RunnerError> {
        let targets = self
            .targets
            .sync_targets()
            .await
            .map_err(|e| RunnerError::Targets(Box::new(e)))?;
        let mut next: Option<(DateTime<Utc>, SyncTarget)> = None;
        for target in targets {
            if target.billing.is_err() {
                continue;
            }
            let org = target.organization_id;
            let state = self.store.sync_state(org).await.map_err(store_error)?;
            let due = self.schedule.next_run(&state, now, jitter);
            if state.next_due != Some(due) {
                // The due time alone: a run another process records meanwhile stays recorded.
                self.store
                    .save_next_due(org, due)
                    .await
                    .map_err(store_error)?;
            }
            if !busy.contains_key(&org) && next.as_ref().is_none_or(|(d, _)| due < *d) {
                next = Some((due, target));
            }
        }
        Ok(next)
    }

    /// The documented expiry clean-up (`ValidUntil` + 90 days, by the cloud's clock).
    async fn purge_expired(&self, org: OrganizationId) -> Result<usize, RunnerError> {
        let rows = self.store.sponsorships(org).await.map_err(store_error)?;
        let expired: Vec<RowChange> = sponsorship::expired(&rows)
            .into_iter()
            .map(RowChange::Delete)
            .collect();
        if !expired.is_empty() {
            self.store
                .write_changes(org, &expired)
                .await
                .map_err(store_error)?;
        }
        Ok(expired.len())
    }

    async fn wait(
        &self,
        duration: Duration,
        shutdown: std::pin::Pin<&mut (impl Future<Output = ()> + Send)>,
        stop: &AtomicBool,
    ) {
        tokio::select! {
            () = tokio::time::sleep(duration) => {}
            () = shutdown => stop.store(true, Ordering::SeqCst),
        }
    }
}

/// Whether `shutdown` has completed, without waiting for it.
async fn fired(shutdown: std::pin::Pin<&mut (impl Future<Output = ()> + Send)>) -> bool {
    tokio::select! {
        biased;
        () = shutdown => true,
        () = std::future::ready(()) => false,
    }
}

fn store_error(e: impl std::error::Error + Send + Sync + 'static) -> RunnerError {
    RunnerError::Store(Box::new(e))
}
