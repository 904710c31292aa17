//! `sponsorctl status` on a store with many sponsorships (the largest of `SPONSOR_BENCH_SIZES`;
//! default 100,000 under `cargo bench`, 1,000 in test mode), timing the whole process from spawn
//! to exit. Target: under 50 ms.
//!
//! CI smoke-runs it in test mode: `cargo test -p families-sponsorship --benches`.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a program: its output is the point
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "../tests/it/cli_bin.rs"]
#[allow(dead_code, unreachable_pub)]
mod cli_bin;

use std::process::Stdio;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use sponsorship_core::ids::CloudOrganizationId;

use cli_bin::{CliSandbox, runtime, start_cloud};
use common::bench_sizes;

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    // The largest of the sizes asked for.
    let n = bench_sizes("100000").into_iter().max().unwrap_or(100_000);
    let rt = runtime();
    let cloud_org = CloudOrganizationId::new_random();
    let (cloud, base) = start_cloud(&rt, cloud_org);
    let sandbox = CliSandbox::new();
    sandbox.seed(&base, cloud_org, n);
    rt.block_on(cloud.stop()).unwrap();
    // The figures are right before measuring.
    let status: serde_json::Value =
        serde_json::from_str(&sandbox.ok(&["--json", "status"])).unwrap();
    assert_eq!(
        status["organizations"][0]["counts"]["requested"].as_u64(),
        Some(n as u64),
        "{status}"
    );

    let mut samples = Vec::new();
    for (name, args) in [
        ("sponsorctl_status", &["status"][..]),
        ("sponsorctl_status_json", &["--json", "status"][..]),
    ] {
        let mut group = criterion.benchmark_group("status");
        group
            .sample_size(30)
            .warm_up_time(Duration::from_millis(500));
        group.bench_function(BenchmarkId::new(name, n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let s = sandbox
                        .cmd()
                        .args(args)
                        .stdout(Stdio::null())
                        .status()
                        .unwrap();
                    let d = t.elapsed();
                    assert!(s.success());
                    samples.push((name, d));
                    total += d;
                }
                total
            });
        });
        group.finish();
    }
    criterion.final_summary();
    for name in ["sponsorctl_status", "sponsorctl_status_json"] {
        let mut mine: Vec<Duration> = samples
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, d)| *d)
            .collect();
        mine.sort();
        if let Some(median) = mine.get(mine.len() / 2) {
            println!(
                "{name} on {n} sponsorships: median {:.1} ms over {} runs (target < 50 ms)",
                median.as_secs_f64() * 1e3,
                mine.len()
            );
        }
    }
}
