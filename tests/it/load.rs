//! Concurrency and load: 20 installations sync 1,000 sponsorships each against ONE reference
//! cloud at the same time (20 tokio tasks, 20 in-memory stores, 20 cloud organizations). No
//! errors, no lost rows: every row Sent, the cloud holds 20,000 rows, 20,000 offers went out.

use std::time::{Duration, Instant};

use cloud_client::{SyncOptions, SyncOutcome};
use sponsorship_core::sponsorship::UiStatus;

use crate::support::{
    Waits, billing, check_store, client, cloud_org, config, emulator, installation_key, local_org,
    store_with,
};

const INSTALLATIONS: usize = 20;
const ROWS: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_installations_sync_a_thousand_each_at_once() {
    let emu = emulator(INSTALLATIONS).await;
    let base = emu.base_url().clone();
    let started = Instant::now();
    let tasks: Vec<_> = (0..INSTALLATIONS)
        .map(|i| {
            let base = base.clone();
            tokio::spawn(async move {
                let store = store_with(i, ROWS);
                let waits = Waits::default();
                let client = client(
                    config(&base, i, &installation_key(i), Duration::from_mins(1)),
                    &waits,
                );
                let report = client
                    .sync_organization(&store, local_org(i), &billing(i), SyncOptions::default())
                    .await;
                (i, store, report, waits.take())
            })
        })
        .collect();
    let mut retries = 0;
    let mut stores = Vec::new();
    for task in tasks {
        let (i, store, report, waits) = task.await.unwrap();
        let report = report.unwrap_or_else(|e| panic!("installation {i}: {e}"));
        assert_eq!(report.outcome, SyncOutcome::Completed);
        assert_eq!(
            (report.sent, report.updated),
            (ROWS, ROWS),
            "installation {i}"
        );
        assert!(report.skipped.is_empty() && report.stale.is_empty());
        retries += waits.len();
        stores.push((i, store));
    }
    let wall = started.elapsed();

    for (i, store) in &stores {
        assert_eq!(check_store(store, *i, ROWS), ROWS, "installation {i}");
        assert!(
            store
                .rows(local_org(*i))
                .iter()
                .all(|r| r.ui_status() == UiStatus::Sent)
        );
        assert!(store.state(local_org(*i)).last_success.is_some());
        let cloud = emu.sponsorships(cloud_org(*i));
        assert_eq!(cloud.len(), ROWS, "cloud rows of installation {i}");
    }
    let outbox = emu.outbox();
    assert_eq!(outbox.len(), INSTALLATIONS * ROWS);
    let mut recipients: Vec<_> = outbox.iter().map(|m| m.to.as_str()).collect();
    recipients.sort_unstable();
    recipients.dedup();
    assert_eq!(
        recipients.len(),
        INSTALLATIONS * ROWS,
        "an offer went out twice"
    );
    println!(
        "load: {INSTALLATIONS} installations x {ROWS} sponsorships synced at once in {:.2} s \
         ({} rows in the cloud, {} offers, {retries} retries)",
        wall.as_secs_f64(),
        INSTALLATIONS * ROWS,
        outbox.len()
    );
    emu.stop().await.unwrap();
}
