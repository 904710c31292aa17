//! The cloud ledger walks its member index in item order instead of descending it once per
//! item: it must give exactly what one descent each gives, whatever the order (the reference
//! server sends items in any order).

use proptest::prelude::*;
use sponsorship_core::cloud::{CloudLedger, CloudOrganization, process_sync_batch};
use sponsorship_core::ids::{MemberId, SponsorshipId};
use sponsorship_core::plan::PlanSponsorshipType;
use sponsorship_core::wire::SponsorshipSyncItem;

use crate::fixtures::{cloud_org, hours, t0, uuid};

fn item(member: u128, kind: u8) -> SponsorshipSyncItem {
    SponsorshipSyncItem {
        sponsoring_organization_user_id: MemberId::from_uuid(uuid(member)),
        friendly_name: Some(format!("m{member}@home.example")),
        offered_to_email: Some(format!("m{member}@home.example")),
        plan_sponsorship_type: PlanSponsorshipType::FamiliesForEnterprise,
        last_sync_date: (kind > 0).then(t0),
        valid_until: None,
        to_delete: kind == 2,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_ledger_finds_rows_whatever_the_item_order(
        ours in proptest::collection::btree_set(0u128..400, 0..200),
        theirs in proptest::collection::btree_set(0u128..400, 0..60),
        items in proptest::collection::vec((0u128..420, 0u8..3), 0..250),
        sorted in any::<bool>(),
    ) {
        let org = cloud_org();
        let other = CloudOrganization {
            id: sponsorship_core::ids::CloudOrganizationId::from_uuid(uuid(3)),
            ..cloud_org()
        };
        let mut ledger = CloudLedger::new();
        let mut next = 0u128;
        let mut new_id = || {
            next += 1;
            SponsorshipId::from_uuid(uuid(5_000_000 + next))
        };
        // Rows of two organizations, interleaved in the member index.
        let setup: Vec<_> = ours.iter().map(|&m| item(m, 0)).collect();
        ledger.sync_batch(&org, &setup, t0(), &mut new_id).unwrap();
        let setup: Vec<_> = theirs.iter().map(|&m| item(m, 0)).collect();
        ledger.sync_batch(&other, &setup, t0(), &mut new_id).unwrap();

        let mut items: Vec<_> = items.into_iter().map(|(m, kind)| item(m, kind)).collect();
        if sorted {
            items.sort_by_key(|i| i.sponsoring_organization_user_id);
        }
        let before = ledger.clone();
        let (outcome, _) = ledger.sync_batch(&org, &items, hours(1), &mut new_id).unwrap();
        let by_descent =
            process_sync_batch(&org, |m| before.by_member(org.id, m), &items, hours(1));
        prop_assert_eq!(outcome, by_descent);
    }
}
