//! `apply_to_rows` and the cloud ledger walk their maps in key order instead of descending them
//! once per change or item: they must give exactly what one descent each gives, whatever the
//! order (the reference server sends items in any order).

use proptest::prelude::*;
use sponsorship_core::cloud::{CloudLedger, CloudOrganization, process_sync_batch};
use sponsorship_core::ids::{MemberId, SponsorshipId};
use sponsorship_core::plan::PlanSponsorshipType;
use sponsorship_core::sponsorship::Sponsorship;
use sponsorship_core::store::{
    AppliedBatch, RowMap, WALK_SKIP_LIMIT, apply_to_rows, plan_row_map, row_key,
};
use sponsorship_core::sync::{BatchApplication, SyncAction, SyncChange, apply_change_in_place};
use sponsorship_core::wire::SponsorshipSyncItem;

use crate::fixtures::{cloud_org, hours, member, t0, unsynced_row, uuid};

fn row(member: u128, id: u128) -> Sponsorship {
    Sponsorship {
        revision: u64::try_from(id % 3).unwrap(),
        ..unsynced_row(
            member,
            SponsorshipId::from_uuid(uuid(1_000 + id)),
            &format!("r{id}@home.example"),
        )
    }
}

/// The reference: one descent per change, deletions at once.
fn one_by_one(rows: &mut RowMap, batch: &BatchApplication) -> AppliedBatch {
    let mut out = AppliedBatch::default();
    for change in &batch.changes {
        let key = (change.member_id, change.sponsorship_id);
        match rows.get_mut(&key) {
            Some(row) if row.revision == change.expected_revision => {
                if !apply_change_in_place(row, &change.action) {
                    rows.remove(&key);
                }
                out.applied += 1;
            }
            _ => out.stale.push(change.sponsorship_id),
        }
    }
    out
}

fn action(kind: u8) -> SyncAction {
    match kind {
        0 => SyncAction::Delete,
        1 => SyncAction::ForgetSupersededOffer,
        _ => SyncAction::Confirm {
            last_sync_date: Some(hours(i64::from(kind))),
            valid_until: None,
            to_delete: kind.is_multiple_of(2),
        },
    }
}

/// Rows of members `0..members` (one to three each, some members without), and changes that
/// name rows (existing or not) in key order with gaps of every size, or in any order, with
/// repeats.
fn case() -> impl Strategy<Value = (RowMap, Vec<SyncChange>)> {
    let members = 1u128..200;
    members
        .prop_flat_map(|m| {
            (
                proptest::collection::vec(0u128..4, m as usize),
                proptest::collection::vec((0..m + 2, 0u128..4, 0u64..3, 0u8..5), 0..120),
                any::<bool>(),
            )
        })
        .prop_map(|(per_member, picks, sorted)| {
            let mut rows = RowMap::new();
            for (m, &count) in per_member.iter().enumerate() {
                for k in 0..count {
                    let r = row(m as u128, m as u128 * 10 + k);
                    rows.insert(row_key(&r), r);
                }
            }
            let mut changes: Vec<SyncChange> = picks
                .into_iter()
                .map(|(m, k, revision, kind)| SyncChange {
                    sponsorship_id: SponsorshipId::from_uuid(uuid(1_000 + m * 10 + k)),
                    member_id: member(m).id,
                    expected_revision: revision,
                    action: action(kind),
                })
                .collect();
            if sorted {
                changes.sort_by_key(|c| (c.member_id, c.sponsorship_id));
            }
            (rows, changes)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn walking_the_map_equals_applying_one_by_one((rows, changes) in case()) {
        let batch = BatchApplication {
            batch_number: 1,
            changes,
            skipped: Vec::new(),
            unexpected: Vec::new(),
        };
        let mut walked = rows.clone();
        let mut reference = rows;
        let got = apply_to_rows(&mut walked, &batch);
        let want = one_by_one(&mut reference, &batch);
        prop_assert_eq!(got, want);
        prop_assert_eq!(walked, reference);
    }
}

#[test]
fn a_change_far_ahead_and_a_repeated_deleted_row() {
    let mut rows = RowMap::new();
    for m in 0..(3 * WALK_SKIP_LIMIT as u128) {
        let r = row(m, m * 10);
        rows.insert(row_key(&r), r);
    }
    let change = |m: u128, action: SyncAction| SyncChange {
        sponsorship_id: SponsorshipId::from_uuid(uuid(1_000 + m * 10)),
        member_id: member(m).id,
        expected_revision: u64::try_from(m * 10 % 3).unwrap(),
        action,
    };
    let last = 3 * WALK_SKIP_LIMIT as u128 - 1;
    let batch = BatchApplication {
        batch_number: 1,
        changes: vec![
            change(0, SyncAction::Delete),
            change(last, action(2)),
            // The row deleted above: gone, so stale, not applied twice.
            change(0, action(3)),
        ],
        skipped: Vec::new(),
        unexpected: Vec::new(),
    };
    let mut reference = rows.clone();
    let got = apply_to_rows(&mut rows, &batch);
    assert_eq!(got.applied, 2);
    assert_eq!(got.stale, [SponsorshipId::from_uuid(uuid(1_000))]);
    assert_eq!(got, one_by_one(&mut reference, &batch));
    assert_eq!(rows, reference);
}

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
        ledger.sync_batch(&org, &setup, t0(), &mut new_id);
        let setup: Vec<_> = theirs.iter().map(|&m| item(m, 0)).collect();
        ledger.sync_batch(&other, &setup, t0(), &mut new_id);

        let mut items: Vec<_> = items.into_iter().map(|(m, kind)| item(m, kind)).collect();
        if sorted {
            items.sort_by_key(|i| i.sponsoring_organization_user_id);
        }
        let before = ledger.clone();
        let (outcome, _) = ledger.sync_batch(&org, &items, hours(1), &mut new_id);
        let by_descent =
            process_sync_batch(&org, |m| before.by_member(org.id, m), &items, hours(1));
        prop_assert_eq!(outcome, by_descent);
    }
}

#[test]
fn a_map_plan_builds_each_batch_from_the_rows_as_they_are_then() {
    let mut rows = RowMap::new();
    for m in 0..5 {
        let r = row(m, m * 10);
        rows.insert(row_key(&r), r);
    }
    let plan = plan_row_map(&rows, 2);
    assert_eq!(plan.batch_count(), 3);
    assert_eq!(plan.item_count(), 5);
    let first = plan.batch(0, &rows).unwrap();
    assert_eq!((first.number, first.items.len()), (1, 2));

    // Between two batches the host revokes member 2's offer and deletes member 3's row.
    let revoked = row_key(&row(2, 20));
    let r = rows.get_mut(&revoked).unwrap();
    r.to_delete = true;
    r.revision += 1;
    let new_revision = r.revision;
    rows.remove(&row_key(&row(3, 30)));

    let second = plan.batch(1, &rows).unwrap();
    assert_eq!((second.number, second.items.len()), (2, 1));
    assert!(second.items[0].to_delete, "sent as it is now");
    assert_eq!(second.sent[0].sponsorship_id, revoked.1);
    assert_eq!(second.sent[0].revision, new_revision);
    assert_eq!(plan.batch(2, &rows).unwrap().items.len(), 1);
    assert!(plan.batch(3, &rows).is_none());
    assert!(plan.batch(usize::MAX, &rows).is_none());
}
