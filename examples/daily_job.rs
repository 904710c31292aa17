//! Wiring the daily sync into a host server's own tokio task, with graceful shutdown.
//!
//! The host hands the library's [`DailyRunner`] its client, its store and where to find its
//! organizations ([`SyncTargets`]); the runner asks the schedule when each sync is due
//! (persisting a new `next_due` so restarts keep it), sleeps until then, syncs, purges expired
//! rows, and repeats until the host's shutdown future completes; a sync in progress then stops
//! after its current batch. Ctrl-C triggers it; so does the end of the demo.
//!
//! The schedule here uses demo durations (runs every 400 ms) so the example ends by itself
//! after three runs, in about two seconds, against the reference cloud on 127.0.0.1.
//!
//! Run: `cargo run -p families-sponsorship --example daily_job` (offline).
#![allow(clippy::print_stdout, clippy::print_stderr)] // a program: its output is the point

use std::convert::Infallible;
use std::error::Error;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use cloud_client::runner::{DailyRunner, RunnerEvent, SyncTarget, SyncTargets};
use cloud_client::{CloudClient, CloudConfig};
use cloud_emulator::{EmulatorOptions, Seed};
use sponsorship_core::ids::{MemberId, OrganizationId, SponsorshipId};
use sponsorship_core::org::{BillingSyncConfig, BillingSyncConnection};
use sponsorship_core::schedule::{Schedule, display_time};
use sponsorship_core::secret::{BillingSyncKey, InstallationKey};
use sponsorship_core::sponsorship::{RowChange, Sponsorship, StatusCounts};
use sponsorship_core::store::MemoryStore;
use tokio::sync::Notify;

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
    Sponsorship::new_offer(
        SponsorshipId::new_random(),
        org,
        MemberId::new_random(),
        &format!("family{n}@home.example"),
        Utc::now(),
    )
}

/// A source of jitter for the schedule: a small xorshift seeded from the clock (a host would
/// use its own random source).
fn jitter() -> impl FnMut(TimeDelta) -> TimeDelta + Send {
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

/// The host's organizations: here one, whose connection the host stored. The host decides
/// readiness through the core, as it would from its own tables.
struct HostOrganizations {
    org: OrganizationId,
    key: BillingSyncKey,
}

impl SyncTargets for HostOrganizations {
    type Error = Infallible;

    async fn sync_targets(&self) -> Result<Vec<SyncTarget>, Infallible> {
        let billing: Result<BillingSyncConfig, _> = BillingSyncConnection::readiness(
            self.org,
            Some((self.key.clone(), true)),
            CLOUD_ORG.parse().ok(),
            None,
        );
        Ok(vec![SyncTarget {
            organization_id: self.org,
            name: "Acme".into(),
            billing,
        }])
    }
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
    let store = MemoryStore::new();
    for n in 0..3 {
        store.write(org, RowChange::Upsert(new_offer(org, n)));
    }
    let organizations = HostOrganizations {
        org,
        key: BillingSyncKey::parse(BILLING_KEY)?,
    };
    let client = CloudClient::new(CloudConfig::new(
        INSTALLATION.parse()?,
        InstallationKey::parse(INSTALLATION_KEY)?,
        cloud.base_url().clone(),
        cloud.base_url().clone(),
    ))?;

    // The host decides when to stop: Ctrl-C, or (in this demo) after a few runs, bounded in
    // time either way.
    let demo_over = Notify::new();
    let shutdown = async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => println!("ctrl-c: shutting down"),
            () = demo_over.notified() => println!("demo over: shutting down"),
            () = tokio::time::sleep(Duration::from_secs(4)) => println!("demo time is up: shutting down"),
        }
    };
    let mut completed = 0;
    let on_event = |event: RunnerEvent<'_>| match event {
        RunnerEvent::Synced { report, .. } => {
            completed += 1;
            println!(
                "run {completed}: sent {}, updated {} ({:?}); next due {}",
                report.sent,
                report.updated,
                report.outcome,
                display_time(store.state(org).next_due)
            );
            if completed >= DEMO_RUNS {
                demo_over.notify_one();
            }
            // Meanwhile, someone makes a new offer in the host's UI.
            store.write(org, RowChange::Upsert(new_offer(org, completed + 10)));
        }
        // A failed run is recorded in the sync state; the schedule retries sooner.
        RunnerEvent::Failed { error, .. } => println!("run failed: {error}"),
        _ => {}
    };
    DailyRunner::new(&client, &store, &organizations, "daily_job example")
        .schedule(demo_schedule())
        .run(jitter(), shutdown, on_event)
        .await?;

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
