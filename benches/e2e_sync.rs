//! End-to-end sync: `sponsorctl sync` (SQLite store → cloud client → reference cloud on
//! loopback → store) against a raw baseline measured in the same run: the same request bodies,
//! pre-serialized, POSTed with a bare `reqwest` loop to a bare axum route that parses them into
//! the wire type and echoes a response of the same size.
//!
//! Sizes come from `SPONSOR_BENCH_SIZES` (comma-separated; default `1000,10000,100000` under
//! `cargo bench`, `1000` in test mode, which is how CI smoke-runs it:
//! `cargo test -p families-sponsorship --benches`).
//! Each sync iteration restores a copy of the seeded store and starts a fresh reference cloud;
//! only the `sponsorctl sync` process is timed. After each size, one more sync runs to measure
//! the process's peak resident memory. A summary (medians, ratios, per-row times) is printed.
//!
//! The summary also gives the *store floor* (see `timed_store_floor`): reading and writing every
//! row once in SQLite with nothing else. It shows how much of the ratio to the raw baseline, which
//! stores nothing, any durable store must pay.
//!
//! With `SPONSOR_BENCH_BEFORE` naming another `sponsorctl` binary (an older commit's, built by
//! `scripts/bench-before.sh`), each size is also seeded with that binary and the two syncs are
//! timed in alternation, `BEFORE_PAIRS` times, so that both see the same machine state; the
//! summary gives both medians and the change.
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

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use sponsorship_core::ids::{CloudOrganizationId, MemberId};
use sponsorship_core::plan::PlanSponsorshipType;
use sponsorship_core::secret::RawSecret;
use sponsorship_core::sync::BATCH_SIZE;
use sponsorship_core::wire::{SponsorshipSyncItem, SponsorshipSyncRequest};

use cli_bin::{BILLING_KEY, CliSandbox, runtime, start_cloud};
use common::{before_binary, bench_sizes};

/// A seeded sandbox, its pristine store and the cloud base URL its env file names now.
struct Prepared {
    sandbox: CliSandbox,
    pristine: PathBuf,
    base: String,
    cloud_org: CloudOrganizationId,
}

fn prepare(rt: &tokio::runtime::Runtime, n: usize, bin: Option<&Path>) -> Prepared {
    let cloud_org = CloudOrganizationId::new_random();
    let (cloud, base) = start_cloud(rt, cloud_org);
    let sandbox = bin.map_or_else(CliSandbox::new, CliSandbox::with_binary);
    let t = Instant::now();
    sandbox.seed(&base, cloud_org, n);
    eprintln!(
        "seeded {n} sponsorships with the bulk imports in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    rt.block_on(cloud.stop()).unwrap();
    let pristine = sandbox.path().join("pristine.db");
    sandbox.copy_state_to(&pristine);
    Prepared {
        sandbox,
        pristine,
        base,
        cloud_org,
    }
}

/// Restores the seeded store and starts a fresh cloud for the next run.
fn reset(rt: &tokio::runtime::Runtime, p: &mut Prepared) -> cloud_emulator::RunningEmulator {
    p.sandbox.restore_state_from(&p.pristine);
    let (cloud, base) = start_cloud(rt, p.cloud_org);
    p.sandbox.repoint(&p.base, &base);
    p.base = base;
    cloud
}

/// One timed `sponsorctl sync`.
fn timed_sync(rt: &tokio::runtime::Runtime, p: &mut Prepared) -> Duration {
    let cloud = reset(rt, p);
    let t = Instant::now();
    let status = p
        .sandbox
        .cmd()
        .arg("sync")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    let elapsed = t.elapsed();
    assert!(status.success(), "sponsorctl sync: {status:?}");
    rt.block_on(cloud.stop()).unwrap();
    elapsed
}

/// Peak resident memory (KiB) of one `sponsorctl sync`, and how it was measured.
fn peak_rss_kib(rt: &tokio::runtime::Runtime, p: &mut Prepared, n: usize) -> (u64, &'static str) {
    let cloud = reset(rt, p);
    let time = Path::new("/usr/bin/time");
    let result = if time.is_file() {
        let out = p.sandbox.path().join("time.out");
        let mut c = Command::new(time);
        p.sandbox.configure(&mut c);
        let status = c
            .args(["-f", "%M", "-o"])
            .arg(&out)
            .arg(cli_bin::sponsorctl())
            .arg("sync")
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "sponsorctl sync under time: {status:?}");
        let text = std::fs::read_to_string(&out).unwrap();
        let kib = text
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .next_back()
            .unwrap_or_else(|| panic!("no maximum RSS in {text:?}"));
        (kib, "/usr/bin/time %M")
    } else {
        // Poll VmHWM (the kernel's high-water mark) while the process runs.
        let mut child = p
            .sandbox
            .cmd()
            .arg("sync")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let status_file = format!("/proc/{}/status", child.id());
        let mut peak = 0;
        let status = loop {
            if let Ok(text) = std::fs::read_to_string(&status_file)
                && let Some(kib) = text
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kib);
            }
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        assert!(status.success(), "sponsorctl sync: {status:?}");
        (peak, "VmHWM polled every 2 ms")
    };
    assert_eq!(
        cloud.sponsorships(p.cloud_org).len(),
        n,
        "the cloud holds every sponsorship once"
    );
    rt.block_on(cloud.stop()).unwrap();
    result
}

/// The raw baseline: a bare axum route that parses and echoes, and the pre-serialized bodies.
struct Baseline {
    url: String,
    bodies: Vec<&'static [u8]>,
    client: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

async fn echo(body: axum::body::Bytes) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let request: SponsorshipSyncRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let out = serde_json::to_vec(&request).unwrap();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response()
}

fn baseline(rt: &tokio::runtime::Runtime, n: usize) -> Baseline {
    let cloud_org = CloudOrganizationId::new_random();
    let mut bodies = Vec::new();
    let mut i = 0;
    while i < n {
        let batch: Vec<SponsorshipSyncItem> = (i..n.min(i + BATCH_SIZE))
            .map(|k| {
                let email = format!("family{k:06}@home.example");
                SponsorshipSyncItem {
                    sponsoring_organization_user_id: MemberId::new_random(),
                    friendly_name: Some(email.clone()),
                    offered_to_email: Some(email),
                    plan_sponsorship_type: PlanSponsorshipType::FamiliesForEnterprise,
                    last_sync_date: None,
                    valid_until: None,
                    to_delete: false,
                }
            })
            .collect();
        let request = SponsorshipSyncRequest {
            billing_sync_key: RawSecret::new(BILLING_KEY),
            sponsoring_organization_cloud_id: cloud_org,
            sponsorships_batch: batch,
        };
        let body: &'static [u8] = Vec::leak(serde_json::to_vec(&request).unwrap());
        bodies.push(body);
        i += BATCH_SIZE;
    }
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app =
        axum::Router::new().route("/organization/sponsorship/sync", axum::routing::post(echo));
    let server = rt.spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    // The same TLS set-up as the cloud client (unused on plain HTTP, but reqwest needs one).
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .build()
        .unwrap();
    Baseline {
        url: format!("http://{addr}/organization/sponsorship/sync"),
        bodies,
        client,
        server,
    }
}

fn timed_baseline(rt: &tokio::runtime::Runtime, b: &Baseline) -> Duration {
    rt.block_on(async {
        let t = Instant::now();
        for body in &b.bodies {
            let response = b
                .client
                .post(&b.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(*body)
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
            let bytes = response.bytes().await.unwrap();
            assert!(bytes.len() > body.len() / 2);
        }
        t.elapsed()
    })
}

/// The store floor: what any durable SQLite store must do for a first sync, and nothing else —
/// read every row once and write every row once, 1,000 rows per transaction, with the same
/// connection settings as `sponsorctl` (WAL, `synchronous=NORMAL`, 32 MiB page cache, 64 MiB
/// between checkpoints). No HTTP, no JSON, no cloud.
/// Measured on a fresh copy of the seeded store.
fn timed_store_floor(p: &Prepared) -> Duration {
    let copy = p.sandbox.path().join("floor.db");
    for suffix in ["", "-wal", "-shm"] {
        let from = format!("{}{suffix}", p.pristine.display());
        if Path::new(&from).exists() {
            std::fs::copy(&from, format!("{}{suffix}", copy.display())).unwrap();
        }
    }
    let conn = rusqlite::Connection::open(&copy).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.pragma_update(None, "cache_size", -32_768).unwrap();
    conn.pragma_update(None, "wal_autocheckpoint", 16_384)
        .unwrap();
    let t = Instant::now();
    let rows: Vec<(String, String, Option<String>, Option<String>)> = conn
        .prepare(
            "SELECT sponsoring_member_id, id, friendly_name, offered_to_email FROM sponsorships",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let synced_at = "2026-11-25T00:00:00Z";
    for chunk in rows.chunks(BATCH_SIZE) {
        conn.execute_batch("BEGIN").unwrap();
        let mut update = conn
            .prepare_cached(
                "UPDATE sponsorships SET last_sync_date = ?3, awaiting_sync = 0 \
                 WHERE sponsoring_member_id = ?1 AND id = ?2",
            )
            .unwrap();
        for (member, id, _, _) in chunk {
            assert_eq!(update.execute((member, id, synced_at)).unwrap(), 1);
        }
        drop(update);
        conn.execute_batch("COMMIT").unwrap();
    }
    let elapsed = t.elapsed();
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", copy.display()));
    }
    elapsed
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples[samples.len() / 2]
}

/// Alternating (current, before) sync pairs per size when an older binary is given.
const BEFORE_PAIRS: usize = 10;

/// The current and the older binary's sync medians over alternating runs.
fn timed_against_before(
    rt: &tokio::runtime::Runtime,
    current: &mut Prepared,
    before: &mut Prepared,
) -> (Duration, Duration) {
    let (mut now, mut then) = (Vec::new(), Vec::new());
    for _ in 0..BEFORE_PAIRS {
        now.push(timed_sync(rt, current));
        then.push(timed_sync(rt, before));
    }
    (median(&mut now), median(&mut then))
}

struct Row {
    n: usize,
    sync: Duration,
    /// (current, older binary) medians of the alternating runs.
    against_before: Option<(Duration, Duration)>,
    baseline: Duration,
    store_floor: Duration,
    rss_kib: u64,
    rss_method: &'static str,
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let rt = runtime();
    let before_bin = before_binary();
    let mut rows = Vec::new();
    for n in bench_sizes("1000,10000,100000") {
        let mut prepared = prepare(&rt, n, None);
        let base = baseline(&rt, n);
        let mut sync_samples = Vec::new();
        let mut baseline_samples = Vec::new();
        {
            let mut group = criterion.benchmark_group("e2e_sync");
            group
                .sampling_mode(SamplingMode::Flat)
                .sample_size(10)
                .warm_up_time(Duration::from_millis(1))
                .measurement_time(Duration::from_secs(1))
                .throughput(Throughput::Elements(n as u64));
            group.bench_function(BenchmarkId::new("sponsorctl_sync", n), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let d = timed_sync(&rt, &mut prepared);
                        sync_samples.push(d);
                        total += d;
                    }
                    total
                });
            });
            group.bench_function(BenchmarkId::new("raw_baseline", n), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let d = timed_baseline(&rt, &base);
                        baseline_samples.push(d);
                        total += d;
                    }
                    total
                });
            });
            group.finish();
        }
        base.server.abort();
        let mut floor_samples: Vec<Duration> =
            (0..5).map(|_| timed_store_floor(&prepared)).collect();
        let (rss_kib, rss_method) = peak_rss_kib(&rt, &mut prepared, n);
        let against_before = before_bin.as_deref().map(|bin| {
            let mut before = prepare(&rt, n, Some(bin));
            timed_against_before(&rt, &mut prepared, &mut before)
        });
        rows.push(Row {
            n,
            sync: median(&mut sync_samples),
            against_before,
            baseline: median(&mut baseline_samples),
            store_floor: median(&mut floor_samples),
            rss_kib,
            rss_method,
        });
    }
    criterion.final_summary();

    print_summary(&rows);
}

/// The table the bench prints after criterion's own report.
fn print_summary(rows: &[Row]) {
    println!("\nsummary (medians of the recorded runs, warm-up included)");
    println!(
        "{:>8} | {:>11} | {:>11} | {:>5} | {:>14} | {:>11} | {:>12} | {:>13}",
        "rows",
        "sync ms",
        "baseline ms",
        "ratio",
        "store floor ms",
        "floor ratio",
        "sync µs/row",
        "peak RSS MiB"
    );
    for r in rows {
        let per_row = r.sync.as_secs_f64() * 1e6 / r.n as f64;
        println!(
            "{:>8} | {:>11.1} | {:>11.1} | {:>5.2} | {:>14.1} | {:>11.2} | {:>12.2} | {:>13.1} ({})",
            r.n,
            r.sync.as_secs_f64() * 1e3,
            r.baseline.as_secs_f64() * 1e3,
            r.sync.as_secs_f64() / r.baseline.as_secs_f64(),
            r.store_floor.as_secs_f64() * 1e3,
            r.store_floor.as_secs_f64() / r.baseline.as_secs_f64(),
            per_row,
            r.rss_kib as f64 / 1024.0,
            r.rss_method
        );
    }
    for r in rows {
        if let Some((now, before)) = r.against_before {
            println!(
                "{:>8} rows, {BEFORE_PAIRS} alternating runs: this build {:.1} ms, before {:.1} ms ({:+.1}%)",
                r.n,
                now.as_secs_f64() * 1e3,
                before.as_secs_f64() * 1e3,
                (now.as_secs_f64() / before.as_secs_f64() - 1.0) * 100.0
            );
        }
    }
    for pair in rows.windows(2) {
        println!(
            "growth {} → {}: sync time × {:.2} for rows × {:.1}",
            pair[0].n,
            pair[1].n,
            pair[1].sync.as_secs_f64() / pair[0].sync.as_secs_f64(),
            pair[1].n as f64 / pair[0].n as f64
        );
    }
}
