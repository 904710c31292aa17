//! The sponsorship store on a server database: the end-to-end sync (store-sqlx on PostgreSQL
//! or MariaDB → cloud client → reference cloud in this process → store) against a bare-driver
//! floor measured in the same run, and the daily runner's throughput with 1, 2 and 4 replica
//! processes on one database.
//!
//! * `store_sync`: `CloudClient::sync_organization` on a `SqlxStore` whose organization holds
//!   `n` never-synced offers (a fresh organization each run, seeded untimed), against a fresh
//!   reference cloud.
//! * `bare_driver_floor`: the same reads and writes with the backend's own sqlx driver and
//!   nothing else: one `SELECT` of the organization's rows in member order, then per batch of
//!   1,000 one transaction of the same compare-and-set `UPDATE`s the store runs. No cloud, no
//!   JSON, no `Any` layer.
//! * replicas: 50 organizations of 100 offers, due at one instant; the time from the due time
//!   until every organization's sync is recorded, with 1, 2 and 4 `examples/replica.rs`
//!   processes.
//!
//! Sizes come from `SPONSOR_BENCH_SIZES` (default `10000,100000` under `cargo bench`, `1000`
//! in test mode, which is how `scripts/test.sh` smoke-runs it). The servers come from
//! `scripts/databases.sh` (`eval "$(scripts/databases.sh start)"`).
#![allow(clippy::print_stdout, clippy::print_stderr)] // a program: its output is the point
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss // figures for a printed summary
)]

mod common;

#[path = "../tests/it/cli_bin.rs"]
#[allow(dead_code, unreachable_pub)]
mod cli_bin;

#[path = "../tests/it/replica_support.rs"]
#[allow(dead_code, unreachable_pub)]
mod replica_support;

use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use cloud_client::{CloudClient, CloudConfig, SyncOptions};
use cloud_emulator::{EmulatorOptions, Seed};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use sponsorship_core::ids::{CloudOrganizationId, MemberId, OrganizationId, SponsorshipId};
use sponsorship_core::org::BillingSyncConfig;
use sponsorship_core::secret::InstallationKey;
use sponsorship_core::sponsorship::{RowChange, Sponsorship};
use sponsorship_core::store::SponsorshipStore as _;
use sponsorship_core::sync::BATCH_SIZE;
use store_sqlx::SqlxStore;
use test_support::{BILLING_KEY, INSTALLATION_ID, INSTALLATION_KEY};

use common::bench_sizes;
use replica_support::{
    ORGS, cloud, connect_host, database_url, host, prepare_round, spawn_replicas, wait_all_synced,
};

const BACKENDS: [(&str, &str); 2] = [
    ("PostgreSQL", "SPONSORSHIP_TEST_POSTGRES_URL"),
    ("MariaDB", "SPONSORSHIP_TEST_MYSQL_URL"),
];

/// A fresh organization with `n` never-synced offers in the store.
async fn seeded_org(store: &SqlxStore, n: usize) -> OrganizationId {
    let org = OrganizationId::new_random();
    let now = Utc::now();
    let changes: Vec<_> = (0..n)
        .map(|i| {
            RowChange::Upsert(Sponsorship::new_offer(
                SponsorshipId::new_random(),
                org,
                MemberId::new_random(),
                &format!("family{i:06}@home.example"),
                now,
            ))
        })
        .collect();
    for chunk in changes.chunks(10_000) {
        store.write_changes(org, chunk).await.unwrap();
    }
    org
}

/// Deletes the organization's rows again (untimed), so that every run finds a table of the
/// same size.
async fn remove_org(store: &SqlxStore, org: OrganizationId) {
    let sql = match store.backend() {
        store_sqlx::Backend::Postgres => {
            "DELETE FROM sponsorships WHERE sponsoring_organization_id = $1"
        }
        _ => "DELETE FROM sponsorships WHERE sponsoring_organization_id = ?",
    };
    sqlx_core::query::query::<sqlx_core::any::Any>(sql)
        .bind(org.to_string())
        .execute(store.pool())
        .await
        .unwrap();
}

/// One timed `sync_organization` of a freshly seeded organization against a fresh cloud.
async fn timed_store_sync(store: &SqlxStore, n: usize) -> Duration {
    let org = seeded_org(store, n).await;
    let cloud_org = CloudOrganizationId::new_random();
    let seed = serde_json::json!({
        "region": "US",
        "installations": [{"id": INSTALLATION_ID, "key": INSTALLATION_KEY, "region": "US"}],
        "organizations": [{"id": cloud_org, "name": "Acme", "planType": 20, "billingSyncKey": BILLING_KEY}],
    });
    let emu = cloud_emulator::start(
        Seed::from_json(&seed.to_string()).unwrap(),
        EmulatorOptions::default(),
    )
    .await
    .unwrap();
    let client = CloudClient::new(CloudConfig::new(
        INSTALLATION_ID.parse().unwrap(),
        InstallationKey::parse(INSTALLATION_KEY).unwrap(),
        emu.base_url().clone(),
        emu.base_url().clone(),
    ))
    .unwrap();
    let billing = BillingSyncConfig {
        billing_sync_key: test_support::billing_key(),
        cloud_organization_id: cloud_org,
        last_license_sync: None,
    };
    let t = Instant::now();
    let report = client
        .sync_organization(store, org, &billing, SyncOptions::default())
        .await
        .unwrap();
    let elapsed = t.elapsed();
    assert_eq!(report.updated, n);
    emu.stop().await.unwrap();
    remove_org(store, org).await;
    elapsed
}

/// The floor with one backend's own driver: the same `SELECT` and the same guarded `UPDATE`s,
/// one transaction per batch of 1,000. `$select` and `$update` are the backend's SQL.
macro_rules! bare_floor {
    ($name:ident, $db:ty, $pool:ty, $select:expr, $update:expr) => {
        async fn $name(url: &str, store: &SqlxStore, n: usize) -> Duration {
            use sqlx_core::row::Row as _;
            let org = seeded_org(store, n).await;
            let pool = <$pool>::connect(url).await.unwrap();
            let t = Instant::now();
            let rows = sqlx_core::query::query::<$db>($select)
                .bind(org.to_string())
                .fetch_all(&pool)
                .await
                .unwrap();
            let keys: Vec<(String, String, i64)> = rows
                .iter()
                .map(|r| {
                    // Every column decoded, as the store decodes them.
                    let _: (Option<String>, Option<String>, Option<i16>, Option<i64>) =
                        (r.get(3), r.get(4), r.get(5), r.get(6));
                    let _: (Option<String>, Option<String>, i64) =
                        (r.get(10), r.get(13), r.get(14));
                    (r.get(2), r.get(0), r.get(11))
                })
                .collect();
            let synced_at = Utc::now().timestamp_micros();
            for chunk in keys.chunks(BATCH_SIZE) {
                let mut tx = pool.begin().await.unwrap();
                for (member, id, revision) in chunk {
                    let done = sqlx_core::query::query::<$db>($update)
                        .bind(synced_at)
                        .bind(None::<i64>)
                        .bind(0_i16)
                        .bind(member.as_str())
                        .bind(id.as_str())
                        .bind(org.to_string())
                        .bind(*revision)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    assert_eq!(done.rows_affected(), 1);
                }
                tx.commit().await.unwrap();
            }
            let elapsed = t.elapsed();
            pool.close().await;
            remove_org(store, org).await;
            elapsed
        }
    };
}

const COLUMNS: &str = "id, sponsoring_organization_id, sponsoring_member_id, friendly_name, \
    offered_to_email, plan_sponsorship_type, last_sync_date, valid_until, to_delete, \
    is_admin_initiated, notes, revision, awaiting_sync, superseded_offer, revision_date";

bare_floor!(
    postgres_floor,
    sqlx_postgres::Postgres,
    sqlx_postgres::PgPool,
    const_format(&[
        "SELECT ",
        COLUMNS,
        " FROM sponsorships WHERE sponsoring_organization_id = $1 ORDER BY sponsoring_member_id, id"
    ]),
    "UPDATE sponsorships SET last_sync_date = $1, valid_until = $2, to_delete = $3, \
     awaiting_sync = CASE WHEN superseded_offer IS NULL THEN 0 ELSE 1 END \
     WHERE sponsoring_member_id = $4 AND id = $5 AND sponsoring_organization_id = $6 AND revision = $7"
);

bare_floor!(
    mysql_floor,
    sqlx_mysql::MySql,
    sqlx_mysql::MySqlPool,
    const_format(&[
        "SELECT ",
        COLUMNS,
        " FROM sponsorships WHERE sponsoring_organization_id = ? ORDER BY sponsoring_member_id, id"
    ]),
    "UPDATE sponsorships SET last_sync_date = ?, valid_until = ?, to_delete = ?, \
     awaiting_sync = CASE WHEN superseded_offer IS NULL THEN 0 ELSE 1 END \
     WHERE sponsoring_member_id = ? AND id = ? AND sponsoring_organization_id = ? AND revision = ?"
);

/// A `'static` statement from pieces (sqlx takes only `'static` text without an assertion).
fn const_format(parts: &[&str]) -> &'static str {
    Box::leak(parts.concat().into_boxed_str())
}

/// Seconds from the due time until all 50 organizations' syncs are recorded, with `replicas`
/// replica processes.
async fn timed_replicas(url: &str, store: &SqlxStore, replicas: usize) -> Duration {
    let host = host();
    let emu = cloud(&host).await;
    connect_host(store, &host).await;
    let due = Utc::now() + TimeDelta::seconds(3);
    prepare_round(store, &host, replica_support::ROWS_PER_ORG, due).await;
    let mut running = spawn_replicas(url, &host, &emu, replicas);
    wait_all_synced(store, &host, due - TimeDelta::seconds(1), "replica bench").await;
    let took = (Utc::now() - due).to_std().unwrap_or_default();
    for r in &mut running {
        r.stop();
    }
    emu.stop().await.unwrap();
    took
}

struct Row {
    backend: &'static str,
    n: usize,
    sync: Duration,
    floor: Duration,
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn main() {
    let sizes = bench_sizes("10000,100000");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut criterion = Criterion::default().configure_from_args().sample_size(10);
    let mut rows = Vec::new();
    let mut throughput = Vec::new();
    for (backend, variable) in BACKENDS {
        let url = database_url(variable);
        let store = rt.block_on(SqlxStore::connect(&url)).unwrap();
        for &n in &sizes {
            let mut sync_samples = Vec::new();
            let mut floor_samples = Vec::new();
            let mut group = criterion.benchmark_group(format!("server_db/{backend}"));
            group.sampling_mode(SamplingMode::Flat);
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(BenchmarkId::new("store_sync", n), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let d = rt.block_on(timed_store_sync(&store, n));
                        sync_samples.push(d);
                        total += d;
                    }
                    total
                });
            });
            group.bench_function(BenchmarkId::new("bare_driver_floor", n), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let d = if backend == "PostgreSQL" {
                            rt.block_on(postgres_floor(&url, &store, n))
                        } else {
                            rt.block_on(mysql_floor(&url, &store, n))
                        };
                        floor_samples.push(d);
                        total += d;
                    }
                    total
                });
            });
            group.finish();
            rows.push(Row {
                backend,
                n,
                sync: median(&mut sync_samples),
                floor: median(&mut floor_samples),
            });
        }
        for replicas in [1, 2, 4] {
            let took = rt.block_on(timed_replicas(&url, &store, replicas));
            throughput.push((backend, replicas, took));
        }
    }
    criterion.final_summary();

    println!("\nsummary (medians of the recorded runs, warm-up included)");
    println!(
        "{:>10} | {:>8} | {:>10} | {:>12} | {:>5} | {:>11}",
        "backend", "rows", "sync ms", "floor ms", "ratio", "sync µs/row"
    );
    for r in &rows {
        println!(
            "{:>10} | {:>8} | {:>10.1} | {:>12.1} | {:>5.2} | {:>11.2}",
            r.backend,
            r.n,
            r.sync.as_secs_f64() * 1e3,
            r.floor.as_secs_f64() * 1e3,
            r.sync.as_secs_f64() / r.floor.as_secs_f64(),
            r.sync.as_secs_f64() * 1e6 / r.n as f64
        );
    }
    for (backend, replicas, took) in &throughput {
        println!(
            "{backend}: {ORGS} organizations due at once, {replicas} replica(s): all synced {:.2} s after the due time ({:.1} organizations/s)",
            took.as_secs_f64(),
            ORGS as f64 / took.as_secs_f64()
        );
    }
}
