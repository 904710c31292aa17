//! Both sides of the sync together: batches, skips, withdrawals, compare-and-set, quirks.

use crate::fixtures::*;
use chrono::TimeDelta;
use sponsorship_core::cloud::{
    CloudSkipReason, KeySyncStatus, OfferClaims, RedeemError, RemoveError,
};
use sponsorship_core::ids::{MemberId, SponsorshipId};
use sponsorship_core::plan::{PlanSponsorshipType, PlanType};
use sponsorship_core::sponsorship::{RowChange, UiStatus, revoke};
use sponsorship_core::sync::{self, ItemKind, SkipReason, SyncAction};
use sponsorship_core::wire::{SponsorshipSyncItem, SponsorshipSyncResponse};

#[test]
fn zero_rows_plan_one_empty_batch() {
    let plan = plan_all(&[], sync::BATCH_SIZE);
    assert_eq!(plan.batches.len(), 1);
    assert!(plan.batches[0].items.is_empty());
    assert_eq!(plan.item_count(), 0);
}

#[test]
fn batches_of_1000_in_member_order() {
    let mut sh = SelfHosted::default();
    for n in (0..2500).rev() {
        sh.offer(&member(n), &format!("r{n}@home.example"), t0());
    }
    let plan = plan_all(&sh.all(), sync::BATCH_SIZE);
    let sizes: Vec<usize> = plan.batches.iter().map(|b| b.items.len()).collect();
    assert_eq!(sizes, vec![1000, 1000, 500]);
    assert_eq!(
        plan.batches.iter().map(|b| b.number).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let members: Vec<MemberId> = plan
        .batches
        .iter()
        .flat_map(|b| b.items.iter().map(|i| i.sponsoring_organization_user_id))
        .collect();
    let mut sorted = members.clone();
    sorted.sort();
    assert_eq!(members, sorted);
    // Same input, same plan.
    let again = plan_all(&sh.all(), sync::BATCH_SIZE);
    assert_eq!(again.batches[2].items, plan.batches[2].items);
}

#[test]
fn full_lifecycle_requested_sent_active_revoke_when_expired() {
    let mut sh = SelfHosted::default();
    let mut cloud = Cloud::default();
    let m = member(1);
    sh.offer(&m, "kid@home.example", t0());
    let r = sync_once(&mut sh, &mut cloud, hours(1));
    assert!(r.skipped.is_empty());
    assert_eq!(r.batches, 1);
    let row = sh.by_member(&m).unwrap().clone();
    assert_eq!(row.ui_status(), UiStatus::Sent);
    assert!(!row.awaiting_sync);
    assert_eq!(row.last_sync_date, Some(hours(1)));
    assert_eq!(cloud.outbox.len(), 1);
    assert_eq!(cloud.outbox[0].email, "kid@home.example");

    // A second sync sends no second e-mail.
    sync_once(&mut sh, &mut cloud, hours(2));
    assert_eq!(cloud.outbox.len(), 1);

    let claims = OfferClaims::for_offer(&cloud.outbox[0]);
    let redeemed = cloud
        .ledger
        .redeem(&claims, "KID@home.example", &families(1), true, hours(3))
        .unwrap()
        .clone();
    assert!(
        redeemed.awaiting_sync(),
        "changed in the cloud after the last sync"
    );
    assert_eq!(redeemed.offered_to_email, None);
    sync_once(&mut sh, &mut cloud, hours(4));
    let row = sh.by_member(&m).unwrap().clone();
    assert_eq!(row.ui_status(), UiStatus::Active);
    assert_eq!(row.valid_until, redeemed.valid_until);
    assert!(!cloud.ledger.of_organization(cloud.org.id)[0].awaiting_sync());

    // Revoke after redemption: marked in the cloud, the benefit lasts until ValidUntil.
    let RowChange::Upsert(marked) = revoke(m.id, &sh.all(), hours(5)).unwrap() else {
        panic!()
    };
    sh.write(RowChange::Upsert(marked));
    sync_once(&mut sh, &mut cloud, hours(6));
    let row = sh.by_member(&m).unwrap();
    assert_eq!(row.ui_status(), UiStatus::RevokeWhenExpired);
    assert!(cloud.ledger.of_organization(cloud.org.id)[0].to_delete);
}

#[test]
fn changed_email_on_synced_offer_reaches_new_recipient_in_one_run() {
    let mut sh = SelfHosted::default();
    let mut cloud = Cloud::default();
    let m = member(1);
    sh.offer(&m, "old@home.example", t0());
    sync_once(&mut sh, &mut cloud, hours(1));
    sh.offer(&m, "new@home.example", hours(2));
    let plan = plan_all(&sh.all(), sync::BATCH_SIZE);
    assert_eq!(
        plan.batches.len(),
        2,
        "withdrawal and new offer go in separate requests"
    );
    assert_eq!(plan.batches[0].sent[0].kind, ItemKind::Withdrawal);
    assert!(plan.batches[0].items[0].to_delete);
    let r = sync_once(&mut sh, &mut cloud, hours(3));
    assert!(r.skipped.is_empty());
    assert_eq!(cloud.outbox.len(), 2);
    assert_eq!(cloud.outbox[1].email, "new@home.example");
    let rows = cloud.ledger.of_organization(cloud.org.id);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].offered_to_email.as_deref(),
        Some("new@home.example")
    );
    let row = sh.by_member(&m).unwrap();
    assert_eq!(row.ui_status(), UiStatus::Sent);
    assert!(!row.awaiting_sync);
    assert_eq!(row.superseded_offer, None);
    // The old link is dead.
    let old = OfferClaims::for_offer(&cloud.outbox[0]);
    assert_eq!(
        cloud
            .ledger
            .redeem(&old, "old@home.example", &families(1), true, hours(4))
            .unwrap_err(),
        RedeemError::NoOffer
    );
}

/// QUIRK 14.5 on the self-hosted side: the withdrawal of a replaced offer whose cloud row is
/// already gone must not make the cloud re-create it and e-mail the old recipient.
#[test]
fn replacing_an_offer_the_cloud_no_longer_has_mails_only_the_new_recipient() {
    let mut sh = SelfHosted::default();
    let mut cloud = Cloud::default();
    let m = member(1);
    sh.offer(&m, "old@home.example", t0());
    sync_once(&mut sh, &mut cloud, hours(1));
    // The cloud row is gone (purged, or deleted by hand in the cloud).
    let mut cloud = Cloud::default();
    sh.offer(&m, "new@home.example", hours(2));
    let report = sync_once(&mut sh, &mut cloud, hours(3));
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let mailed: Vec<&str> = cloud.outbox.iter().map(|o| o.email.as_str()).collect();
    assert_eq!(mailed, ["new@home.example"]);
    let rows = cloud.ledger.of_organization(cloud.org.id);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].offered_to_email.as_deref(),
        Some("new@home.example")
    );
    let local = sh.by_member(&m).unwrap();
    assert_eq!(local.ui_status(), UiStatus::Sent);
    assert!(local.superseded_offer.is_none());
}

#[test]
fn offer_redeemed_before_its_replacement_synced_is_reported_not_lost() {
    let mut sh = SelfHosted::default();
    let mut cloud = Cloud::default();
    let m = member(1);
    sh.offer(&m, "old@home.example", t0());
    sync_once(&mut sh, &mut cloud, hours(1));
    sh.offer(&m, "new@home.example", hours(2));
    let claims = OfferClaims::for_offer(&cloud.outbox[0]);
    cloud
        .ledger
        .redeem(&claims, "old@home.example", &families(1), true, hours(3))
        .unwrap();
    let r = sync_once(&mut sh, &mut cloud, hours(4));
    assert_eq!(r.skipped.len(), 1);
    assert_eq!(r.skipped[0].reason, SkipReason::PreviousOfferRedeemed);
    let row = sh.by_member(&m).unwrap().clone();
    assert_eq!(row.ui_status(), UiStatus::RevokeWhenExpired);
    assert_eq!(row.offered_to_email.as_deref(), Some("old@home.example"));
    assert_eq!(cloud.outbox.len(), 1, "no offer to the new address");
    // Converges: the next run changes nothing more and reports nothing.
    let r = sync_once(&mut sh, &mut cloud, hours(5));
    assert!(r.skipped.is_empty());
    assert_eq!(
        sh.by_member(&m).unwrap().ui_status(),
        UiStatus::RevokeWhenExpired
    );
}

#[test]
fn several_rows_of_one_member_do_not_fail_the_sync() {
    let mut sh = SelfHosted::default();
    let mut cloud = Cloud::default();
    let a = sh.offer(&member(1), "a@home.example", t0());
    let mut dup = sh.offer(&member(2), "b@home.example", t0());
    dup.sponsoring_member_id = member(1).id;
    dup.is_admin_initiated = true;
    sh.write(RowChange::Upsert(dup.clone()));
    let plan = plan_all(&sh.all(), sync::BATCH_SIZE);
    assert_eq!(plan.duplicates.len(), 1);
    assert_eq!(plan.duplicates[0].sponsorship_id, dup.id);
    assert_eq!(
        plan.duplicates[0].sent_instead, a.id,
        "the member-initiated row is sent"
    );
    let r = sync_once(&mut sh, &mut cloud, hours(1));
    assert!(r.skipped.is_empty());
    assert_eq!(sh.row(a.id).ui_status(), UiStatus::Sent);
    assert_eq!(sh.row(dup.id).ui_status(), UiStatus::Requested);
}

#[test]
fn items_the_cloud_skips_are_reported() {
    let mut sh = SelfHosted::default();
    let mut cloud = Cloud::default();
    cloud.org.plan_type = PlanType::TeamsAnnually;
    sh.offer(&member(1), "a@home.example", t0());
    let r = sync_once(&mut sh, &mut cloud, hours(1));
    assert_eq!(r.skipped.len(), 1);
    assert_eq!(r.skipped[0].reason, SkipReason::NotReturnedByCloud);
    assert_eq!(r.skipped[0].batch_number, 1);
    assert_eq!(
        sh.by_member(&member(1)).unwrap().ui_status(),
        UiStatus::Requested
    );
    assert!(
        SkipReason::NotReturnedByCloud
            .explain()
            .contains("Enterprise")
    );
}

#[test]
fn a_change_during_the_sync_is_not_overwritten() {
    let mut sh = SelfHosted::default();
    let mut cloud = Cloud::default();
    let m = member(1);
    sh.offer(&m, "a@home.example", t0());
    sync_once(&mut sh, &mut cloud, hours(1));
    let plan = plan_all(&sh.all(), sync::BATCH_SIZE);
    let batch = &plan.batches[0];
    // The member revokes while the request is in flight.
    let RowChange::Upsert(marked) = revoke(m.id, &sh.all(), hours(2)).unwrap() else {
        panic!()
    };
    sh.write(RowChange::Upsert(marked));
    let (outcome, _) = cloud
        .ledger
        .sync_batch(&cloud.org, &batch.items, hours(2), || unreachable!())
        .unwrap();
    let app = sync::apply_response(&batch.receipt(), &outcome.response);
    let applied = apply(&mut sh.rows, &app);
    assert_eq!(applied.stale.len(), 1);
    let row = sh.by_member(&m).unwrap();
    assert!(
        row.to_delete,
        "the revoke survives the echo of the old state"
    );
    assert!(row.awaiting_sync);
    sync_once(&mut sh, &mut cloud, hours(3));
    assert!(sh.rows.is_empty());
    assert!(cloud.ledger.is_empty());
}

#[test]
fn unexpected_and_duplicated_answers_are_ignored() {
    let mut sh = SelfHosted::default();
    sh.offer(&member(1), "a@home.example", t0());
    let plan = plan_all(&sh.all(), sync::BATCH_SIZE);
    let receipt = plan.batches[0].receipt();
    let item = |m: MemberId| sponsorship_core::wire::SponsorshipSyncResponseItem {
        sponsoring_organization_user_id: m,
        friendly_name: None,
        offered_to_email: None,
        plan_sponsorship_type: PlanSponsorshipType::default(),
        last_sync_date: Some(hours(1)),
        valid_until: None,
        to_delete: false,
        cloud_sponsorship_removed: false,
        is_admin_initiated: false,
    };
    let response = SponsorshipSyncResponse {
        sponsorships_batch: vec![item(member(1).id), item(member(1).id), item(member(7).id)],
    };
    let app = sync::apply_response(&receipt, &response);
    assert_eq!(app.changes.len(), 1);
    assert_eq!(app.unexpected, vec![member(1).id, member(7).id]);
    assert!(matches!(app.changes[0].action, SyncAction::Confirm { .. }));
}

#[test]
fn cloud_skip_rules_and_the_real_clouds_quirks() {
    let mut cloud = Cloud::default();
    let item = |n: u128, to_delete: bool, last: Option<chrono::DateTime<chrono::Utc>>| {
        SponsorshipSyncItem {
            sponsoring_organization_user_id: member(n).id,
            friendly_name: Some(format!("r{n}@home.example")),
            offered_to_email: Some(format!("r{n}@home.example")),
            plan_sponsorship_type: PlanSponsorshipType::default(),
            last_sync_date: last,
            valid_until: None,
            to_delete,
        }
    };
    let mut next = 0;
    let mut ids = || {
        next += 1;
        sponsorship_core::ids::SponsorshipId::from_uuid(uuid(5_000 + next))
    };
    let items = vec![
        item(1, true, None),       // revoked before the cloud saw it: skipped
        item(2, true, Some(t0())), // 14.5: no cloud row: created, e-mailed, answered "removed"
        item(3, false, None),      // created
    ];
    let (outcome, offers) = cloud
        .ledger
        .sync_batch(&cloud.org, &items, hours(1), &mut ids)
        .unwrap();
    assert_eq!(
        outcome.skipped,
        vec![(member(1).id, CloudSkipReason::RevokedBeforeFirstSync)]
    );
    let answers = &outcome.response.sponsorships_batch;
    assert_eq!(answers.len(), 2);
    assert!(answers[0].cloud_sponsorship_removed && answers[0].to_delete);
    let mailed: Vec<&str> = offers.iter().map(|o| o.email.as_str()).collect();
    assert_eq!(
        mailed,
        ["r2@home.example", "r3@home.example"],
        "14.5: the withdrawn offer is e-mailed again"
    );
    assert_eq!(cloud.ledger.len(), 2, "14.5 leaves an orphan row");

    // Disabled beyond grace: no new rows, existing ones still touched.
    cloud.org.enabled = false;
    cloud.org.expiration_date = Some(t0() - TimeDelta::days(94));
    let (outcome, offers) = cloud
        .ledger
        .sync_batch(
            &cloud.org,
            &[item(3, false, Some(hours(1))), item(4, false, None)],
            hours(2),
            &mut ids,
        )
        .unwrap();
    assert_eq!(
        outcome.skipped,
        vec![(member(4).id, CloudSkipReason::OrganizationDisabled)]
    );
    assert!(offers.is_empty());
    assert_eq!(
        outcome.response.sponsorships_batch[0].last_sync_date,
        Some(hours(2))
    );
    cloud.org.expiration_date = Some(t0() - TimeDelta::days(92));
    let (outcome, _) = cloud
        .ledger
        .sync_batch(&cloud.org, &[item(4, false, None)], hours(2), &mut ids)
        .unwrap();
    assert!(outcome.skipped.is_empty(), "still within the 93-day grace");
}

/// QUIRK 14.2 as the real cloud has it: two items for one new member create two rows and two
/// offers, and every later sync of the organization fails.
#[test]
fn two_items_for_one_member_break_the_cloud_organization() {
    let mut cloud = Cloud::default();
    let item = |email: &str| SponsorshipSyncItem {
        sponsoring_organization_user_id: member(1).id,
        friendly_name: Some(email.into()),
        offered_to_email: Some(email.into()),
        plan_sponsorship_type: PlanSponsorshipType::default(),
        last_sync_date: None,
        valid_until: None,
        to_delete: false,
    };
    let (outcome, offers) = cloud
        .ledger
        .sync_batch(
            &cloud.org,
            &[item("a@home.example"), item("b@home.example")],
            hours(1),
            SponsorshipId::new_random,
        )
        .unwrap();
    assert_eq!(outcome.response.sponsorships_batch.len(), 2);
    assert_eq!(offers.len(), 2);
    assert_eq!(cloud.ledger.of_organization(cloud.org.id).len(), 2);
    assert!(cloud.ledger.has_duplicate_member_rows(cloud.org.id));
    assert_eq!(
        cloud
            .ledger
            .sync_batch(&cloud.org, &[], hours(2), SponsorshipId::new_random)
            .unwrap_err(),
        sponsorship_core::cloud::CloudSyncError::DuplicateMemberRows
    );
    // Once one of the two rows is gone (its redemption expired, the weekly purge), the
    // organization syncs again.
    let first = OfferClaims::for_offer(&offers[0]);
    cloud
        .ledger
        .redeem(&first, "a@home.example", &families(1), true, hours(3))
        .unwrap();
    cloud
        .ledger
        .purge_expired(hours(3) + TimeDelta::days(365 + 91));
    assert!(!cloud.ledger.has_duplicate_member_rows(cloud.org.id));
    assert!(
        cloud
            .ledger
            .sync_batch(&cloud.org, &[], hours(4), SponsorshipId::new_random)
            .is_ok()
    );
}

/// QUIRK 14.3: a changed recipient on an existing, unredeemed row reaches nobody.
#[test]
fn the_cloud_keeps_the_old_recipient_of_an_existing_row() {
    let mut cloud = Cloud::default();
    let first = SponsorshipSyncItem {
        sponsoring_organization_user_id: member(1).id,
        friendly_name: Some("a".into()),
        offered_to_email: Some("a@home.example".into()),
        plan_sponsorship_type: PlanSponsorshipType::default(),
        last_sync_date: None,
        valid_until: None,
        to_delete: false,
    };
    let (_, offers) = cloud
        .ledger
        .sync_batch(
            &cloud.org,
            std::slice::from_ref(&first),
            hours(1),
            SponsorshipId::new_random,
        )
        .unwrap();
    assert_eq!(offers.len(), 1);
    let changed = SponsorshipSyncItem {
        offered_to_email: Some("b@home.example".into()),
        friendly_name: Some("b".into()),
        last_sync_date: Some(hours(1)),
        ..first
    };
    let (outcome, offers) = cloud
        .ledger
        .sync_batch(&cloud.org, &[changed], hours(2), || unreachable!())
        .unwrap();
    assert!(offers.is_empty());
    assert_eq!(
        outcome.response.sponsorships_batch[0]
            .offered_to_email
            .as_deref(),
        Some("b@home.example"),
        "the answer echoes the item"
    );
    let row = &cloud.ledger.of_organization(cloud.org.id)[0];
    assert_eq!(row.offered_to_email.as_deref(), Some("a@home.example"));
    assert_eq!(row.last_sync_date, Some(hours(2)));
}

/// Blank recipients get a row but no e-mail.
#[test]
fn blank_recipients_are_never_mailed() {
    let mut cloud = Cloud::default();
    let items: Vec<SponsorshipSyncItem> = ["", "   "]
        .iter()
        .enumerate()
        .map(|(n, email)| SponsorshipSyncItem {
            sponsoring_organization_user_id: member(n as u128 + 1).id,
            friendly_name: None,
            offered_to_email: Some((*email).to_owned()),
            plan_sponsorship_type: PlanSponsorshipType::default(),
            last_sync_date: None,
            valid_until: None,
            to_delete: false,
        })
        .collect();
    let (outcome, offers) = cloud
        .ledger
        .sync_batch(&cloud.org, &items, hours(1), SponsorshipId::new_random)
        .unwrap();
    assert_eq!(outcome.response.sponsorships_batch.len(), 2);
    assert!(offers.is_empty());
    assert_eq!(cloud.ledger.len(), 2);
}

/// QUIRK 14.4: the answer's `toDelete` is the item's, so a removal by the recipient (C7) is
/// invisible on the self-hosted side; the cloud row itself is marked.
#[test]
fn recipient_removal_is_not_reported_back_to_the_self_hosted_side() {
    let mut sh = SelfHosted::default();
    let mut cloud = Cloud::default();
    let m = member(1);
    sh.offer(&m, "kid@home.example", t0());
    sync_once(&mut sh, &mut cloud, hours(1));
    let claims = OfferClaims::for_offer(&cloud.outbox[0]);
    let fam = families(1);
    cloud
        .ledger
        .redeem(&claims, "kid@home.example", &fam, true, hours(2))
        .unwrap();
    assert_eq!(
        cloud.ledger.remove_sponsorship(fam.id, false, hours(3)),
        Err(RemoveError::NotOwner)
    );
    cloud
        .ledger
        .remove_sponsorship(fam.id, true, hours(3))
        .unwrap();
    assert!(cloud.ledger.of_organization(cloud.org.id)[0].awaiting_sync());
    assert_eq!(
        cloud
            .ledger
            .remove_sponsorship(fam.id, true, hours(3))
            .unwrap_err()
            .to_string(),
        "The requested organization is not currently being sponsored."
    );
    sync_once(&mut sh, &mut cloud, hours(4));
    assert_eq!(sh.by_member(&m).unwrap().ui_status(), UiStatus::Active);
    assert!(cloud.ledger.of_organization(cloud.org.id)[0].to_delete);
}

#[test]
fn redemption_rules_of_spec_8_6() {
    let mut sh = SelfHosted::default();
    let mut cloud = Cloud::default();
    sh.offer(&member(1), "a@home.example", t0());
    sh.offer(&member(2), "b@home.example", t0());
    sync_once(&mut sh, &mut cloud, hours(1));
    let a = OfferClaims::for_offer(&cloud.outbox[0]);
    let b = OfferClaims::for_offer(&cloud.outbox[1]);
    let fam = families(1);
    let ent = cloud_org();
    let l = &mut cloud.ledger;
    assert_eq!(
        l.redeem(&a, "a@home.example", &fam, false, hours(2))
            .unwrap_err()
            .to_string(),
        "Can only redeem sponsorship for an organization you own."
    );
    assert_eq!(
        l.redeem(&a, "b@home.example", &fam, true, hours(2))
            .unwrap_err()
            .to_string(),
        "No unredeemed sponsorship offer exists for you."
    );
    assert_eq!(
        l.redeem(&a, "a@home.example", &ent, true, hours(2))
            .unwrap_err()
            .to_string(),
        "Can only redeem sponsorship offer on families organizations."
    );
    l.redeem(&a, "a@home.example", &fam, true, hours(2))
        .unwrap();
    assert_eq!(
        l.redeem(&a, "a@home.example", &families(2), true, hours(2))
            .unwrap_err(),
        RedeemError::NoOffer,
        "single use"
    );
    assert_eq!(
        l.redeem(&b, "b@home.example", &fam, true, hours(2))
            .unwrap_err()
            .to_string(),
        "Cannot redeem a sponsorship offer for an organization that is already sponsored. Revoke existing sponsorship first."
    );
    let late = hours(1) + TimeDelta::days(183);
    assert_eq!(
        l.redeem(&b, "b@home.example", &families(3), true, late)
            .unwrap_err()
            .to_string(),
        "This sponsorship offer is more than 6 months old and has expired."
    );
    assert_eq!(l.len(), 1, "the stale offer is deleted");
}

#[test]
fn billing_key_status_dialog() {
    assert_eq!(
        KeySyncStatus::of(None, t0(), hours(1)),
        KeySyncStatus::NeverSynced
    );
    assert_eq!(KeySyncStatus::of(None, t0(), hours(1)).message(), None);
    let synced = KeySyncStatus::of(Some(hours(2)), t0(), hours(3));
    assert_eq!(
        synced,
        KeySyncStatus::Synced {
            last_sync_date: hours(2)
        }
    );
    let rotated = KeySyncStatus::of(Some(hours(2)), hours(5), hours(5 + 36));
    assert_eq!(
        rotated,
        KeySyncStatus::AwaitingSync {
            days_since_rotation: 2
        }
    );
    assert_eq!(
        rotated.message().unwrap(),
        "Token rotated 2 days ago. Update the billing sync token in your self-hosted organization settings."
    );
    let one = KeySyncStatus::of(Some(hours(2)), hours(5), hours(5 + 20));
    assert!(
        one.message()
            .unwrap()
            .starts_with("Token rotated 1 day ago.")
    );
}

#[test]
fn key_check_is_strict_and_handles_a_missing_key() {
    use sponsorship_core::cloud::{SyncRejection, check_billing_sync_key};
    use sponsorship_core::secret::{BillingSyncKey, RawSecret};
    let key = BillingSyncKey::parse("Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd").unwrap();
    assert_eq!(
        check_billing_sync_key(
            Some(&key),
            &RawSecret::new("Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd")
        ),
        Ok(())
    );
    assert_eq!(
        check_billing_sync_key(
            Some(&key),
            &RawSecret::new("ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd")
        ),
        Err(SyncRejection::InvalidBillingSyncKey)
    );
    // QUIRK 14.9: no stored key is a failure of its own (the cloud answers 500), but only once
    // the supplied key is not blank.
    assert_eq!(
        check_billing_sync_key(None, &RawSecret::new("Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd")),
        Err(SyncRejection::NoKeyStored)
    );
    assert_eq!(
        check_billing_sync_key(None, &RawSecret::new("  ")),
        Err(SyncRejection::InvalidBillingSyncKey)
    );
    assert_eq!(
        check_billing_sync_key(Some(&key), &RawSecret::new(" ")),
        Err(SyncRejection::InvalidBillingSyncKey)
    );
}

#[test]
fn rerun_after_a_lost_response_converges() {
    // The cloud applied batch 1 but the answer never arrived: the next run must not duplicate.
    let mut sh = SelfHosted::default();
    let mut cloud = Cloud::default();
    for n in 0..5 {
        sh.offer(&member(n), &format!("r{n}@home.example"), t0());
    }
    let plan = plan_all(&sh.all(), 2);
    let mut n = 0;
    let _lost = cloud
        .ledger
        .sync_batch(&cloud.org, &plan.batches[0].items, hours(1), || {
            n += 1;
            sponsorship_core::ids::SponsorshipId::from_uuid(uuid(7_000 + n))
        })
        .unwrap();
    let r = sync_run(&mut sh, &mut cloud, hours(2), 2);
    assert!(r.skipped.is_empty());
    assert_eq!(cloud.ledger.len(), 5);
    assert!(sh.rows.values().all(|r| r.ui_status() == UiStatus::Sent));
}

/// The plan announces exactly the batches it then yields, numbered from 1, with the
/// withdrawals first, whatever the mix of rows and the batch size.
#[test]
fn the_plan_counts_and_numbers_its_batches() {
    for (offers, replaced, batch_size) in [(0, 0, 2), (5, 0, 2), (4, 3, 2), (1, 1, 1000), (6, 0, 3)]
    {
        let mut sh = SelfHosted::default();
        let mut cloud = Cloud::default();
        let members: Vec<_> = (0..offers).map(|i| member(100 + i)).collect();
        for (i, m) in members.iter().enumerate() {
            sh.offer(m, &format!("old{i}@home.example"), t0());
        }
        sync_once(&mut sh, &mut cloud, hours(1));
        for (i, m) in members.iter().take(replaced).enumerate() {
            sh.offer(m, &format!("new{i}@home.example"), hours(2));
        }
        let rows = sh.all();
        let streaming = sync::plan(&rows, batch_size);
        let batches: Vec<_> = streaming.batches().collect();
        let what = format!("{offers} offers, {replaced} replaced, batches of {batch_size}");
        assert_eq!(streaming.batch_count(), batches.len(), "{what}");
        assert_eq!(
            streaming.item_count(),
            batches.iter().map(|b| b.items.len()).sum::<usize>(),
            "{what}"
        );
        assert_eq!(
            batches.iter().map(|b| b.number).collect::<Vec<_>>(),
            (1..=batches.len()).collect::<Vec<_>>(),
            "{what}"
        );
        let kinds: Vec<ItemKind> = batches
            .iter()
            .flat_map(|b| b.sent.iter().map(|s| s.kind))
            .collect();
        let withdrawals = kinds.iter().filter(|k| **k == ItemKind::Withdrawal).count();
        assert_eq!(withdrawals, replaced, "{what}");
        assert!(
            kinds[..withdrawals]
                .iter()
                .all(|k| *k == ItemKind::Withdrawal),
            "withdrawals come first: {what}"
        );
        assert!(
            batches.iter().all(|b| b.items.len() <= batch_size),
            "{what}"
        );
        // Every member's current row once, in member order, after the withdrawals.
        let current: Vec<_> = batches
            .iter()
            .flat_map(|b| b.sent.iter())
            .filter(|s| s.kind == ItemKind::Current)
            .map(|s| s.member_id)
            .collect();
        let mut in_order = current.clone();
        in_order.sort_unstable();
        in_order.dedup();
        assert_eq!(current, in_order, "{what}");
        assert_eq!(current.len(), usize::try_from(offers).unwrap(), "{what}");
    }
}
