//! End-to-end sync in memory: plan + cloud process + apply, for 1k, 10k and 100k sponsorships.
//!
//! `first_sync`: every row is new (the cloud creates rows and queues offer e-mails).
//! `resync`: every row is already synced (the daily steady state).
//! Throughput is reported in sponsorships per second. Each runs twice: `sync/…` with the input
//! as cloning left it in the caches, `sync_cold/…` after flushing them (see `bench`).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use chrono::{TimeDelta, TimeZone, Utc};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sponsorship_core::cloud::{CloudLedger, CloudOrganization};
use sponsorship_core::ids::{CloudOrganizationId, MemberId, OrganizationId, SponsorshipId};
use sponsorship_core::plan::{PlanSponsorshipType, PlanType};
use sponsorship_core::sponsorship::Sponsorship;
use sponsorship_core::store::{RowMap, apply_to_rows, plan_row_map, row_key};
use sponsorship_core::sync::{BATCH_SIZE, apply_response};
use uuid::Uuid;

// The allocator a host serving large organizations would pick (see the workspace manifest);
// with glibc's, freeing one run's rows made the next run walk them (`malloc_consolidate`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rows(n: usize) -> RowMap {
    let now = Utc.with_ymd_and_hms(2026, 11, 24, 0, 0, 0).unwrap();
    let org = OrganizationId::from_uuid(Uuid::from_u128(1));
    (0..n)
        .map(|i| {
            let id = SponsorshipId::from_uuid(Uuid::from_u128(1_000_000 + i as u128));
            let email = format!("recipient{i}@home.example");
            let row = Sponsorship {
                id,
                sponsoring_organization_id: Some(org),
                sponsoring_member_id: MemberId::from_uuid(Uuid::from_u128(
                    (i as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                )),
                friendly_name: Some(email.clone()),
                offered_to_email: Some(email),
                plan_sponsorship_type: Some(PlanSponsorshipType::default()),
                last_sync_date: None,
                valid_until: None,
                to_delete: false,
                is_admin_initiated: false,
                notes: None,
                revision: 1,
                awaiting_sync: true,
                superseded_offer: None,
                revision_date: now,
            };
            (row_key(&row), row)
        })
        .collect()
}

fn cloud_org() -> CloudOrganization {
    CloudOrganization {
        id: CloudOrganizationId::from_uuid(Uuid::from_u128(2)),
        name: "Acme".into(),
        plan_type: PlanType::EnterpriseAnnually,
        enabled: true,
        expiration_date: None,
    }
}

/// One complete run; returns the number of offers queued (kept alive by black_box).
fn run(
    sh: &mut RowMap,
    ledger: &mut CloudLedger,
    org: &CloudOrganization,
    next_id: &mut u128,
) -> usize {
    let now = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap()
        + TimeDelta::seconds(i64::try_from(*next_id % 1000).unwrap());
    // Each batch is built from the rows just before it is sent, as a sync engine does.
    let plan = plan_row_map(sh, BATCH_SIZE);
    apply_to_rows(sh, &plan.local_purges);
    let mut offers = 0;
    for i in 0..plan.batch_count() {
        let batch = plan.batch(i, sh).unwrap();
        let (outcome, sent) = ledger.sync_batch(org, &batch.items, now, || {
            *next_id += 1;
            SponsorshipId::from_uuid(Uuid::from_u128(*next_id))
        });
        offers += sent.len();
        let app = apply_response(&batch.receipt(), &outcome.response);
        apply_to_rows(sh, &app);
    }
    offers
}

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
            let mut synced = first.clone();
            run(&mut synced.0, &mut synced.1, &org, &mut synced.2);
            // Each case starts every iteration from a copy of its state.
            for (case, start) in [("first_sync", first), ("resync", synced)] {
                group.bench_with_input(BenchmarkId::new(case, n), &n, |b, _| {
                    b.iter_batched(
                        || {
                            let input = start.clone();
                            if cold {
                                evict_caches(&mut eviction);
                            }
                            input
                        },
                        |(mut sh, mut ledger, mut next)| {
                            black_box(run(&mut sh, &mut ledger, &org, &mut next));
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
