//! Wiring the daily sync schedule into a host server's own tokio task, with graceful shutdown.
//!
//! The host owns the loop: it asks [`Schedule::next_run`] when the next sync is due (persisting
//! a new `next_due` so restarts keep it), sleeps until then or until shutdown, runs the sync
//! (which records success or failure in the sync state through the same schedule), and
//! repeats. Shutdown is a `watch` channel plus the client's stop flag, so a run in progress
//! stops after its current batch. Ctrl-C triggers it; so does the end of the demo.
//!
//! The schedule here uses demo durations (runs every 400 ms) so the example ends by itself
//! after three runs, in about two seconds, against the reference cloud on 127.0.0.1.
//!
//! Run: `cargo run -p families-sponsorship --example daily_job` (offline).

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use cloud_client::{CloudClient, CloudConfig, SyncOptions};
use cloud_emulator::{EmulatorOptions, Seed};
use sponsorship_core::ids::{MemberId, OrganizationId, SponsorshipId};
use sponsorship_core::org::BillingSyncConfig;
use sponsorship_core::schedule::{Schedule, display_time};
use sponsorship_core::secret::{BillingSyncKey, InstallationKey};
use sponsorship_core::sponsorship::{RowChange, Sponsorship, StatusCounts};
use sponsorship_core::store::{MemoryStore, SponsorshipStore};
use tokio::sync::{mpsc, watch};

const INSTALLATION: &str = "7e0b3c52-3f4c-4d0e-9e57-aa7a1e5c9a10";
const INSTALLATION_KEY: &str = "AbCdEfGhIj0123456789";
const CLOUD_ORG: &str = "0b7c2f0e-1111-2222-3333-444455556666";
const BILLING_KEY: &str = "Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd";
const DEMO_RUNS: usize = 3;

/// The production schedule is `Schedule::default()` (daily, first run within 24 h, retries
/// from 1 h); the demo shrinks every duration.
fn demo_schedule() -> Schedule {
    Schedule {
        interval: TimeDelta::milliseconds(400),
        first_run_window: TimeDelta::milliseconds(200),
        catch_up_spread: TimeDelta::milliseconds(50),
        retry_base: TimeDelta::milliseconds(100),
    }
}

fn new_offer(org: OrganizationId, n: usize) -> Sponsorship {
    Sponsorship {
        id: SponsorshipId::new_random(),
        sponsoring_organization_id: Some(org),
        sponsoring_member_id: MemberId::new_random(),
        friendly_name: Some(format!("family{n}@home.example")),
        offered_to_email: Some(format!("family{n}@home.example")),
        plan_sponsorship_type: None,
        last_sync_date: None,
        valid_until: None,
        to_delete: false,
        is_admin_initiated: false,
        notes: None,
        revision: 1,
        awaiting_sync: true,
        superseded_offer: None,
        revision_date: Utc::now(),
    }
}

/// A source of jitter for the schedule: a small xorshift seeded from the clock (a host would
/// use its own random source).
fn jitter() -> impl FnMut(TimeDelta) -> TimeDelta {
    let mut x = u64::from(Utc::now().timestamp_subsec_nanos()) | 1;
    move |max: TimeDelta| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let ms = max.num_milliseconds();
        if ms <= 0 {
            return TimeDelta::zero();
        }
        TimeDelta::milliseconds(i64::try_from(x % ms.unsigned_abs()).unwrap_or(0))
    }
}

/// The host's sync task: runs until `shutdown` changes, reporting each run on `runs`.
async fn sync_job(
    client: CloudClient,
    store: Arc<MemoryStore>,
    org: OrganizationId,
    billing: BillingSyncConfig,
    mut shutdown: watch::Receiver<bool>,
    stop: Arc<AtomicBool>,
    runs: mpsc::Sender<usize>,
) -> Result<usize, Box<dyn Error + Send + Sync>> {
    let schedule = demo_schedule();
    let mut jitter = jitter();
    let mut completed = 0;
    loop {
        let mut state = store.sync_state(org).await?;
        let now = Utc::now();
        let due = schedule.next_run(&state, now, &mut jitter);
        if state.next_due.is_none() {
            // Persist the first due time, so a restart does not roll the dice again.
            state.next_due = Some(due);
            store.save_sync_state(org, &state).await?;
        }
        let wait = (due - now).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = shutdown.changed() => break,
            () = tokio::time::sleep(wait) => {}
        }
        let options = SyncOptions {
            holder: "daily_job example",
            schedule,
            stop: Some(&stop),
            ..SyncOptions::default()
        };
        match client
            .sync_organization(&*store, org, &billing, options)
            .await
        {
            Ok(report) => {
                completed += 1;
                let state = store.sync_state(org).await?;
                println!(
                    "run {completed}: sent {}, updated {} ({:?}); next due {}",
                    report.sent,
                    report.updated,
                    report.outcome,
                    display_time(state.next_due)
                );
            }
            // A failed run is recorded in the sync state; the schedule retries sooner.
            Err(e) => println!("run failed: {e}"),
        }
        if runs.send(completed).await.is_err() {
            break;
        }
        // Meanwhile, someone makes a new offer in the host's UI.
        store.write(org, RowChange::Upsert(new_offer(org, completed + 10)));
    }
    println!("sync job stopped after {completed} run(s)");
    Ok(completed)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let seed = Seed::from_json(&format!(
        r#"{{"region":"US",
  "installations":[{{"id":"{INSTALLATION}","key":"{INSTALLATION_KEY}","region":"US"}}],
  "organizations":[{{"id":"{CLOUD_ORG}","name":"Acme","planType":20,"billingSyncKey":"{BILLING_KEY}"}}]}}"#
    ))?;
    let cloud = cloud_emulator::start(seed, EmulatorOptions::default()).await?;

    let org = OrganizationId::new_random();
    let store = Arc::new(MemoryStore::new());
    for n in 0..3 {
        store.write(org, RowChange::Upsert(new_offer(org, n)));
    }
    let billing = BillingSyncConfig {
        billing_sync_key: BillingSyncKey::parse(BILLING_KEY)?,
        cloud_organization_id: CLOUD_ORG.parse()?,
        last_license_sync: None,
    };
    let client = CloudClient::new(CloudConfig::new(
        INSTALLATION.parse()?,
        InstallationKey::parse(INSTALLATION_KEY)?,
        cloud.base_url().clone(),
        cloud.base_url().clone(),
    ))?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let stop = Arc::new(AtomicBool::new(false));
    let (runs_tx, mut runs_rx) = mpsc::channel(8);
    let job = tokio::spawn(sync_job(
        client,
        store.clone(),
        org,
        billing,
        shutdown_rx,
        stop.clone(),
        runs_tx,
    ));

    // The host decides when to stop: Ctrl-C, or (in this demo) after a few runs, bounded in
    // time either way.
    let demo_over = async {
        while let Some(done) = runs_rx.recv().await {
            if done >= DEMO_RUNS {
                break;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => println!("ctrl-c: shutting down"),
        () = demo_over => println!("demo over: shutting down"),
        () = tokio::time::sleep(Duration::from_secs(4)) => println!("demo time is up: shutting down"),
    }
    // Graceful: a run in progress stops after its current batch; the loop exits at its next wait.
    stop.store(true, Ordering::SeqCst);
    let _ = shutdown_tx.send(true);
    drop(runs_rx);
    let completed = job.await??;

    let counts = StatusCounts::of(&store.rows(org));
    let state = store.state(org);
    println!(
        "{completed} run(s); rows: {counts:?}; last success: {}; offers e-mailed: {}",
        display_time(state.last_success),
        cloud.outbox().len()
    );
    cloud.stop().await?;
    if completed == 0 {
        return Err("no sync ran".into());
    }
    Ok(())
}
