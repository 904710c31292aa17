//! The core's part of `sponsorctl sync` in memory (see `common::run`): plan, requests, cloud
//! process, answers turned into the store's changes, for 1k, 10k and 100k sponsorships.
//!
//! `first_sync`: every row is new (the cloud creates rows and queues offer e-mails).
//! `resync`: every row is already synced (the daily steady state).
//! Throughput is reported in sponsorships per second. Each runs twice: `sync/…` with the input
//! as cloning left it in the caches, `sync_cold/…` after flushing them (see `bench`).
#![allow(clippy::print_stdout, clippy::print_stderr)] // a program: its output is the point
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sponsorship_core::cloud::CloudLedger;

use common::{cloud_org, rows, run, synced};

// The allocator a host serving large organizations would pick (see the workspace manifest);
// with glibc's, freeing one run's rows made the next run walk them (`malloc_consolidate`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Writes one byte per cache line of a buffer twice the size of this machine's last-level cache
/// (32 MiB), so the run that follows starts with none of its data cached.
fn evict_caches(buffer: &mut [u8]) {
    for i in (0..buffer.len()).step_by(64) {
        buffer[i] = buffer[i].wrapping_add(1);
    }
    black_box(&*buffer);
}

fn bench(c: &mut Criterion) {
    let org = cloud_org();
    let mut eviction = vec![0u8; 64 << 20];
    // `sync`: the routine starts right after its input was cloned, so a small organization's
    // rows are still cached. `sync_cold`: the caches are flushed first, as for a daily sync
    // whose rows nobody touched since the day before. The difference between the two growth
    // ratios is the memory hierarchy, not the algorithm.
    for (group_name, cold) in [("sync", false), ("sync_cold", true)] {
        let mut group = c.benchmark_group(group_name);
        group.sample_size(10);
        for n in [1_000usize, 10_000, 100_000] {
            group.throughput(Throughput::Elements(n as u64));
            let base = rows(n);
            let first = (base.clone(), CloudLedger::new(), 1u128 << 64);
            let mut after = first.clone();
            let rows_after = synced(&after.0, &mut after.1, &org, &mut after.2);
            let resync = (rows_after, after.1, after.2);
            // Each case starts every iteration from a copy of its state.
            for (case, start) in [("first_sync", first), ("resync", resync)] {
                group.bench_with_input(BenchmarkId::new(case, n), &n, |b, _| {
                    b.iter_batched(
                        || {
                            let input = start.clone();
                            if cold {
                                evict_caches(&mut eviction);
                            }
                            input
                        },
                        |(sh, mut ledger, mut next)| {
                            let mut changes = 0;
                            black_box(run(&sh, &mut ledger, &org, &mut next, |app| {
                                changes += app.changes.len();
                            }));
                            black_box(changes);
                            (sh, ledger)
                        },
                        BatchSize::LargeInput,
                    );
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
