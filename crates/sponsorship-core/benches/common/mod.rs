//! What the sync benchmarks share: the rows of a large organization and one complete run.
#![allow(dead_code, clippy::unwrap_used)] // each bench uses its part

use chrono::{TimeDelta, TimeZone, Utc};
use sponsorship_core::cloud::{CloudLedger, CloudOrganization};
use sponsorship_core::ids::{CloudOrganizationId, MemberId, OrganizationId, SponsorshipId};
use sponsorship_core::plan::{PlanSponsorshipType, PlanType};
use sponsorship_core::sponsorship::Sponsorship;
use sponsorship_core::store::{RowMap, apply_to_rows, plan_row_map, row_key};
use sponsorship_core::sync::{BATCH_SIZE, apply_response};
use uuid::Uuid;

/// `n` rows of one organization, never synced, one per member.
pub(crate) fn rows(n: usize) -> RowMap {
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

pub(crate) fn cloud_org() -> CloudOrganization {
    CloudOrganization {
        id: CloudOrganizationId::from_uuid(Uuid::from_u128(2)),
        name: "Acme".into(),
        plan_type: PlanType::EnterpriseAnnually,
        enabled: true,
        expiration_date: None,
    }
}

/// One complete run; returns the number of offers queued (kept alive by black_box).
pub(crate) fn run(
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
