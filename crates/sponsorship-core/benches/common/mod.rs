//! What the sync benchmarks share: the rows of a large organization and one complete run of
//! the core's part of `sponsorctl sync`: the plan, each batch built and moved into its request,
//! the cloud's rules processing it (what the reference cloud runs), and the answer turned into
//! the store's changes. Storing them is the store's part (SQLite in `sponsorctl`), measured by
//! the end-to-end bench.
#![allow(dead_code, clippy::unwrap_used)] // each bench uses its part

use chrono::{TimeDelta, TimeZone, Utc};
use sponsorship_core::cloud::{CloudLedger, CloudOrganization};
use sponsorship_core::ids::{CloudOrganizationId, MemberId, OrganizationId, SponsorshipId};
use sponsorship_core::plan::PlanType;
use sponsorship_core::secret::BillingSyncKey;
use sponsorship_core::sponsorship::Sponsorship;
use sponsorship_core::sync::{BATCH_SIZE, BatchApplication, apply_change, apply_response, plan};
use uuid::Uuid;

/// `n` rows of one organization, never synced, one per member, in member order (as a store
/// loads them).
pub(crate) fn rows(n: usize) -> Vec<Sponsorship> {
    let now = Utc.with_ymd_and_hms(2026, 11, 24, 0, 0, 0).unwrap();
    let org = OrganizationId::from_uuid(Uuid::from_u128(1));
    let mut rows: Vec<Sponsorship> = (0..n)
        .map(|i| {
            Sponsorship::new_offer(
                SponsorshipId::from_uuid(Uuid::from_u128(1_000_000 + i as u128)),
                org,
                MemberId::from_uuid(Uuid::from_u128(
                    (i as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                )),
                &format!("recipient{i}@home.example"),
                now,
            )
        })
        .collect();
    rows.sort_by_key(|r| (r.sponsoring_member_id, r.id));
    rows
}

pub(crate) fn cloud_org() -> CloudOrganization {
    CloudOrganization {
        id: CloudOrganizationId::from_uuid(Uuid::from_u128(2)),
        name: "Acme".into(),
        plan_type: PlanType::EnterpriseAnnually,
        enabled: true,
        expiration_date: None,
    }
}

/// One complete run over `rows`; `store` gets each batch's changes, as a store's `apply_batch`
/// would. Returns the number of offers queued (kept alive by black_box).
pub(crate) fn run(
    rows: &[Sponsorship],
    ledger: &mut CloudLedger,
    org: &CloudOrganization,
    next_id: &mut u128,
    mut store: impl FnMut(&BatchApplication),
) -> usize {
    let now = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap()
        + TimeDelta::seconds(i64::try_from(*next_id % 1000).unwrap());
    let key = BillingSyncKey::parse("Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd").unwrap();
    let plan = plan(rows, BATCH_SIZE);
    let mut offers = 0;
    for batch in plan.batches() {
        let (request, receipt) = batch.into_request(key.to_raw(), org.id);
        let (outcome, sent) = ledger
            .sync_batch(org, &request.sponsorships_batch, now, || {
                *next_id += 1;
                SponsorshipId::from_uuid(Uuid::from_u128(*next_id))
            })
            .unwrap();
        offers += sent.len();
        store(&apply_response(&receipt, &outcome.response));
    }
    offers
}

/// `rows` after one run, as the store leaves them: the state of the daily resync.
pub(crate) fn synced(
    rows: &[Sponsorship],
    ledger: &mut CloudLedger,
    org: &CloudOrganization,
    next_id: &mut u128,
) -> Vec<Sponsorship> {
    let mut after: std::collections::BTreeMap<_, _> = rows
        .iter()
        .map(|r| ((r.sponsoring_member_id, r.id), r.clone()))
        .collect();
    run(rows, ledger, org, next_id, |app| {
        for change in &app.changes {
            let key = (change.member_id, change.sponsorship_id);
            if let Some(row) = after
                .get(&key)
                .and_then(|r| apply_change(r, &change.action))
            {
                after.insert(key, row);
            } else {
                after.remove(&key);
            }
        }
    });
    after.into_values().collect()
}
