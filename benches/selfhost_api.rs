//! The self-hosted API as a host serves it: `examples/host_server.rs` (axum, the selfhost-api
//! handlers, the SQLite store) over loopback HTTP, with an organization of N sponsorships (the
//! largest of `SPONSOR_BENCH_SIZES`; default 10,000 under `cargo bench`, 1,000 in test mode).
//!
//! * `offer`: `POST …/families-for-enterprise`, one member replacing their unredeemed offer
//!   (the rule reads the organization's rows, then one row is written);
//! * `profile`: `GET /api/accounts/profile`, the H15 fields of one membership.
//!
//! No target is set for these; the figures go to `docs/performance.md`.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a program: its output is the point
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub
)]

mod common;

#[path = "../tests/it/cli_bin.rs"]
#[allow(dead_code)]
mod cli_bin;
#[path = "../tests/it/host_support.rs"]
#[allow(dead_code)]
mod host_support;

use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{BenchmarkId, Criterion};
use reqwest::Method;
use sponsorship_core::ids::{MemberId, OrganizationId, SponsorshipId};
use sponsorship_core::sponsorship::{RowChange, Sponsorship};
use sponsorship_core::store::SponsorshipStore as _;

use host_support::{HostProcess, ORG};

/// A seed of `n` confirmed members plus the example's owner, and their member ids.
fn seed(n: usize) -> (serde_json::Value, Vec<MemberId>) {
    let mut seed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(host_support::seed_file()).unwrap()).unwrap();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let user = format!("55555555-0000-4000-8000-{i:012}");
        let member = format!("66666666-0000-4000-8000-{i:012}");
        seed["users"].as_array_mut().unwrap().push(serde_json::json!({
            "id": user, "email": format!("member{i}@acme.example"), "token": format!("member-{i}"),
        }));
        seed["organizations"][0]["members"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "id": member, "userId": user, "role": "user", "status": "confirmed",
            }));
        ids.push(member.parse().unwrap());
    }
    (seed, ids)
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let n = common::bench_sizes("10000")
        .into_iter()
        .max()
        .unwrap_or(10_000);
    let rt = cli_bin::runtime();
    let dir = tempfile::tempdir().unwrap();
    let (seed, members) = seed(n);
    let seed_path = dir.path().join("seed.json");
    std::fs::write(&seed_path, seed.to_string()).unwrap();
    let state = dir.path().join("host.db");
    // The organization's rows, one per member, written before the host starts.
    {
        let store = store_sqlite::SqliteStore::open(&state).unwrap();
        let org: OrganizationId = ORG.parse().unwrap();
        let rows: Vec<RowChange> = members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                RowChange::Upsert(Sponsorship::new_offer(
                    SponsorshipId::new_random(),
                    org,
                    *m,
                    &format!("family{i}@home.example"),
                    Utc::now(),
                ))
            })
            .collect();
        rt.block_on(store.write_changes(org, &rows)).unwrap();
    }
    let host = HostProcess::start_with(&seed_path, &state);
    let create = format!("/organization/sponsorship/self-hosted/{ORG}/families-for-enterprise");
    let mut medians = Vec::new();
    let mut group = criterion.benchmark_group("selfhost_api");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500));
    for name in ["offer", "profile"] {
        let mut samples = Vec::new();
        let mut round = 0_usize;
        group.bench_function(BenchmarkId::new(name, n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    round += 1;
                    let started = Instant::now();
                    let (status, body) = rt.block_on(async {
                        if name == "offer" {
                            let body = format!(r#"{{"sponsoredEmail":"kid{round}@home.example","planSponsorshipType":0}}"#);
                            host.api(Method::POST, &create, "member-0", Some(&body)).await
                        } else {
                            host.api(Method::GET, "/accounts/profile", "member-0", None).await
                        }
                    });
                    let took = started.elapsed();
                    assert_eq!(status, 200, "{name}: {body}");
                    samples.push(took);
                    total += took;
                }
                total
            });
        });
        samples.sort();
        medians.push((name, samples[samples.len() / 2], samples.len()));
    }
    group.finish();
    criterion.final_summary();
    // Where the time goes: the organization's rows, as both requests read them.
    let org: OrganizationId = ORG.parse().unwrap();
    let store = store_sqlite::SqliteStore::open_read_only(&state).unwrap();
    let mut reads: Vec<Duration> = (0..20)
        .map(|_| {
            let started = Instant::now();
            let rows = rt.block_on(store.sponsorships(org)).unwrap();
            assert_eq!(rows.len(), n, "one row per member, replaced in place");
            started.elapsed()
        })
        .collect();
    reads.sort();
    println!(
        "reading the {n} rows alone (SqliteStore::sponsorships): median {:.2} ms",
        reads[reads.len() / 2].as_secs_f64() * 1e3
    );
    for (name, median, runs) in medians {
        println!(
            "{name} in an organization of {n} sponsorships: median {:.2} ms over {runs} requests",
            median.as_secs_f64() * 1e3
        );
    }
}
