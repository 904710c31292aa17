//! Lifecycle rules of spec §8, with the reference server's texts.

use crate::fixtures::*;
use chrono::TimeDelta;
use sponsorship_core::email::EmailError;
use sponsorship_core::ids::SponsorshipId;
use sponsorship_core::org::{MemberRole, MemberStatus};
use sponsorship_core::plan::PlanType;
use sponsorship_core::sponsorship::{
    OfferError, OfferKind, OfferRequest, RevokeError, RowChange, StatusCounts, UiStatus, expired,
    member_removed, offer, revoke,
};

fn new_id() -> SponsorshipId {
    SponsorshipId::from_uuid(uuid(77))
}

#[test]
fn offer_errors_carry_the_reference_texts_in_order() {
    let org = enterprise();
    let m = member(1);

    let me = request(&m, "MEMBER1@acme.example");
    let err = offer(&org, &m, &[], &me, new_id(), t0()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Cannot offer a Families Organization Sponsorship to yourself. Choose a different email."
    );

    let teams = sponsorship_core::org::Organization {
        plan_type: PlanType::TeamsAnnually,
        ..org.clone()
    };
    let err = offer(
        &teams,
        &m,
        &[],
        &request(&m, "x@home.example"),
        new_id(),
        t0(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Specified Organization cannot sponsor other organizations."
    );

    for status in [
        MemberStatus::Invited,
        MemberStatus::Accepted,
        MemberStatus::Revoked,
    ] {
        let invited = sponsorship_core::org::Member {
            status,
            ..m.clone()
        };
        let err = offer(
            &org,
            &invited,
            &[],
            &request(&invited, "x@home.example"),
            new_id(),
            t0(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Only confirmed users can sponsor other organizations."
        );
    }

    let err = offer(&org, &m, &[], &request(&m, "x@home"), new_id(), t0()).unwrap_err();
    assert_eq!(
        err,
        OfferError::InvalidEmail {
            reason: EmailError::BadDomain
        }
    );
    assert!(
        err.to_string()
            .starts_with("The SponsoredEmail field is not a supported e-mail address format.")
    );

    let other_org_member = sponsorship_core::org::Member {
        organization_id: cloud_org_as_sh(),
        ..m.clone()
    };
    assert_eq!(
        offer(
            &org,
            &other_org_member,
            &[],
            &request(&m, "x@home.example"),
            new_id(),
            t0()
        ),
        Err(OfferError::MemberNotInOrganization)
    );

    let long = "n".repeat(257);
    let req = OfferRequest {
        friendly_name: Some(&long),
        ..request(&m, "x@home.example")
    };
    assert!(matches!(
        offer(&org, &m, &[], &req, new_id(), t0()),
        Err(OfferError::TooLong {
            field: "friendly name",
            max: 256
        })
    ));
}

fn cloud_org_as_sh() -> sponsorship_core::ids::OrganizationId {
    sponsorship_core::ids::OrganizationId::from_uuid(uuid(999))
}

#[test]
fn new_offer_is_requested_and_awaiting_sync() {
    let mut sh = SelfHosted::default();
    let row = sh.offer(&member(1), "kid@home.example", t0());
    assert_eq!(row.ui_status(), UiStatus::Requested);
    assert!(row.awaiting_sync);
    assert_eq!(row.friendly_name.as_deref(), Some("kid@home.example"));
    assert_eq!(row.revision, 1);
    assert_eq!(row.revision_date, t0());
}

#[test]
fn same_offer_again_is_idempotent_and_says_so() {
    let mut sh = SelfHosted::default();
    let m = member(1);
    let first = sh.offer(&m, "kid@home.example", t0());
    let again = offer(
        &enterprise(),
        &m,
        &sh.all(),
        &request(&m, "Kid@Home.example"),
        new_id(),
        hours(1),
    );
    // Friendly name differs in case, so it is a replacement of the same member's offer.
    assert_eq!(again.unwrap().kind, OfferKind::Replaced);
    let same = offer(
        &enterprise(),
        &m,
        &sh.all(),
        &request(&m, "kid@home.example"),
        new_id(),
        hours(1),
    )
    .unwrap();
    assert_eq!(same.kind, OfferKind::AlreadyOffered);
    assert_eq!(same.sponsorship, first);
}

#[test]
fn friendly_name_of_another_member_is_refused() {
    let mut sh = SelfHosted::default();
    sh.offer(&member(1), "kid@home.example", t0());
    let m2 = member(2);
    let err = offer(
        &enterprise(),
        &m2,
        &sh.all(),
        &request(&m2, "kid@home.example"),
        new_id(),
        t0(),
    )
    .unwrap_err();
    assert_eq!(err, OfferError::FriendlyNameTaken);
}

/// An unsynced offer may still have reached the cloud (a lost answer), so it is withdrawn too.
#[test]
fn replacing_an_unsynced_offer_keeps_the_id_and_withdraws_the_old_one() {
    let mut sh = SelfHosted::default();
    let m = member(1);
    let first = sh.offer(&m, "a@home.example", t0());
    let second = sh.offer(&m, "b@home.example", hours(1));
    assert_eq!(second.id, first.id);
    assert_eq!(second.revision, 2);
    let old = second.superseded_offer.as_deref().unwrap();
    assert_eq!(old.offered_to_email.as_deref(), Some("a@home.example"));
    assert_eq!(old.last_sync_date, None);
    assert_eq!(sh.rows.len(), 1);
    // The cloud never saw it: the withdrawal is skipped, and only the new offer goes out.
    let mut cloud = Cloud::default();
    let report = sync_once(&mut sh, &mut cloud, hours(2));
    assert!(report.skipped.is_empty());
    let mailed: Vec<&str> = cloud.outbox.iter().map(|o| o.email.as_str()).collect();
    assert_eq!(mailed, ["b@home.example"]);
    let row = sh.by_member(&m).unwrap();
    assert!(row.superseded_offer.is_none() && !row.awaiting_sync);
}

#[test]
fn replacing_a_synced_offer_remembers_it_for_withdrawal() {
    let mut sh = SelfHosted::default();
    let mut cloud = Cloud::default();
    let m = member(1);
    sh.offer(&m, "a@home.example", t0());
    sync_once(&mut sh, &mut cloud, hours(1));
    let replaced = sh.offer(&m, "b@home.example", hours(2));
    let old = replaced.superseded_offer.clone().unwrap();
    assert_eq!(old.offered_to_email.as_deref(), Some("a@home.example"));
    assert_eq!(old.last_sync_date, Some(hours(1)));
    assert_eq!(replaced.last_sync_date, None);
    assert_eq!(replaced.ui_status(), UiStatus::Requested);
    // Replacing again keeps the offer the cloud knows, not the intermediate one.
    let again = sh.offer(&m, "c@home.example", hours(3));
    assert_eq!(
        again.superseded_offer.unwrap().offered_to_email.as_deref(),
        Some("a@home.example")
    );
}

#[test]
fn redeemed_sponsorship_blocks_a_new_offer() {
    let mut sh = SelfHosted::default();
    let m = member(1);
    let mut row = sh.offer(&m, "a@home.example", t0());
    row.valid_until = Some(hours(24 * 365));
    sh.write(RowChange::Upsert(row));
    let err = offer(
        &enterprise(),
        &m,
        &sh.all(),
        &request(&m, "b@home.example"),
        new_id(),
        t0(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Can only sponsor one organization per Organization User."
    );
}

#[test]
fn admin_initiated_needs_the_role_and_the_license_and_may_repeat() {
    let org = enterprise();
    let user = member(1);
    let req = OfferRequest {
        admin_initiated: true,
        ..request(&user, "x@home.example")
    };
    assert_eq!(
        offer(&org, &user, &[], &req, new_id(), t0())
            .unwrap_err()
            .to_string(),
        "You do not have permissions to send sponsorships on behalf of the organization"
    );
    let admin = sponsorship_core::org::Member {
        role: MemberRole::Admin,
        ..member(2)
    };
    let unlicensed = sponsorship_core::org::Organization {
        use_admin_sponsored_families: false,
        ..org.clone()
    };
    let req = OfferRequest {
        admin_initiated: true,
        ..request(&admin, "x@home.example")
    };
    assert_eq!(
        offer(&unlicensed, &admin, &[], &req, new_id(), t0())
            .unwrap_err()
            .to_string(),
        "Sponsoring organization cannot send admin-initiated sponsorship invitations"
    );
    let first = offer(&org, &admin, &[], &req, new_id(), t0()).unwrap();
    let req2 = OfferRequest {
        admin_initiated: true,
        ..request(&admin, "y@home.example")
    };
    let second = offer(
        &org,
        &admin,
        std::slice::from_ref(&first.sponsorship),
        &req2,
        SponsorshipId::from_uuid(uuid(78)),
        t0(),
    )
    .unwrap();
    // One sponsorship per member on a self-hosted server (QUIRK 14.2): the second replaces
    // the first, and the admin's own offer is refused while it lasts.
    assert_eq!(second.kind, OfferKind::Replaced);
    assert_eq!(second.sponsorship.id, first.sponsorship.id);
    assert!(second.sponsorship.is_admin_initiated);
    let own = offer(
        &org,
        &admin,
        std::slice::from_ref(&second.sponsorship),
        &request(&admin, "z@home.example"),
        new_id(),
        t0(),
    )
    .unwrap_err();
    assert_eq!(
        own,
        OfferError::OnePerMember {
            existing: "y@home.example".into()
        }
    );
    assert!(own.to_string().contains("syncs one per member"));
}

/// A revoke marks the row whether or not a sync confirmed it: an unconfirmed offer may have
/// reached the cloud with its answer lost, so the cloud must be told.
#[test]
fn revoke_marks_the_row_before_and_after_the_first_sync() {
    let mut sh = SelfHosted::default();
    let mut cloud = Cloud::default();
    let m = member(1);
    assert_eq!(
        revoke(m.id, &sh.all(), t0()).unwrap_err().to_string(),
        "You are not currently sponsoring an organization."
    );
    assert_eq!(
        revoke(m.id, &sh.all(), t0()),
        Err(RevokeError::NotSponsoring)
    );

    let row = sh.offer(&m, "a@home.example", t0());
    let RowChange::Upsert(unsynced) = revoke(m.id, &sh.all(), hours(1)).unwrap() else {
        panic!("an unsynced row is marked, not deleted")
    };
    assert_eq!(unsynced.id, row.id);
    assert!(unsynced.to_delete);
    assert_eq!(unsynced.ui_status(), UiStatus::RemovedAwaitingSync);
    // The sync sends it with `toDelete` and no sync date; the cloud has no row and skips it,
    // and the local row goes.
    let mut marked_only = sh.clone();
    marked_only.write(RowChange::Upsert(unsynced));
    let report = sync_once(&mut marked_only, &mut cloud, hours(1));
    assert!(report.skipped.is_empty());
    assert!(marked_only.rows.is_empty());
    assert!(cloud.ledger.is_empty());

    sync_once(&mut sh, &mut cloud, hours(1));
    let RowChange::Upsert(marked) = revoke(m.id, &sh.all(), hours(2)).unwrap() else {
        panic!("a synced row is marked, not deleted")
    };
    assert!(marked.to_delete);
    assert!(marked.awaiting_sync);
    assert_eq!(marked.ui_status(), UiStatus::RemovedAwaitingSync);
}

#[test]
fn revoking_an_unsynced_replacement_withdraws_the_synced_original() {
    let mut sh = SelfHosted::default();
    let mut cloud = Cloud::default();
    let m = member(1);
    sh.offer(&m, "a@home.example", t0());
    sync_once(&mut sh, &mut cloud, hours(1));
    sh.offer(&m, "b@home.example", hours(2));
    let RowChange::Upsert(row) = revoke(m.id, &sh.all(), hours(3)).unwrap() else {
        panic!("must be kept so the cloud learns of it")
    };
    assert_eq!(row.offered_to_email.as_deref(), Some("a@home.example"));
    assert!(row.to_delete);
    assert_eq!(row.superseded_offer, None);
    sh.write(RowChange::Upsert(row));
    sync_once(&mut sh, &mut cloud, hours(4));
    assert!(sh.rows.is_empty());
    assert!(cloud.ledger.is_empty());
}

#[test]
fn member_removed_marks_every_row() {
    let mut sh = SelfHosted::default();
    let mut cloud = Cloud::default();
    let admin = sponsorship_core::org::Member {
        role: MemberRole::Owner,
        ..member(1)
    };
    let synced = sh.offer(&admin, "a@home.example", t0());
    sync_once(&mut sh, &mut cloud, hours(1));
    let req = OfferRequest {
        admin_initiated: true,
        ..request(&admin, "b@home.example")
    };
    // A second row of the member, as an older release (or the reference server) could leave.
    let local_only = offer(&enterprise(), &admin, &[], &req, new_id(), hours(2)).unwrap();
    sh.write(RowChange::Upsert(local_only.sponsorship.clone()));
    let changes = member_removed(admin.id, &sh.all(), hours(3));
    assert_eq!(changes.len(), 2);
    assert!(changes.iter().any(
        |c| matches!(c, RowChange::Upsert(r) if r.id == local_only.sponsorship.id && r.to_delete)
    ));
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, RowChange::Upsert(r) if r.id == synced.id && r.to_delete))
    );
    assert!(member_removed(member(9).id, &sh.all(), hours(3)).is_empty());
}

#[test]
fn ui_status_table_of_spec_8_11() {
    let mut sh = SelfHosted::default();
    let mut row = sh.offer(&member(1), "a@home.example", t0());
    assert_eq!(row.ui_status(), UiStatus::Requested);
    row.last_sync_date = Some(t0());
    assert_eq!(row.ui_status(), UiStatus::Sent);
    row.valid_until = Some(hours(24));
    assert_eq!(row.ui_status(), UiStatus::Active);
    row.to_delete = true;
    assert_eq!(row.ui_status(), UiStatus::RevokeWhenExpired);
    row.valid_until = None;
    assert_eq!(row.ui_status(), UiStatus::RemovedAwaitingSync);
    assert_eq!(
        UiStatus::RemovedAwaitingSync.label(),
        "Removed (awaiting sync)"
    );
    let counts = StatusCounts::of([&row]);
    assert_eq!(counts.removed_awaiting_sync, 1);
    assert_eq!(counts.awaiting_sync, 1);
}

#[test]
fn expiry_uses_the_cloud_clock_not_the_local_one() {
    let mut sh = SelfHosted::default();
    let mut row = sh.offer(&member(1), "a@home.example", t0());
    row.valid_until = Some(t0());
    // Last confirmed by the cloud 89 days after the period ended: kept.
    row.last_sync_date = Some(t0() + TimeDelta::days(89));
    assert!(expired(std::slice::from_ref(&row)).is_empty());
    // Confirmed 91 days after: purged.
    row.last_sync_date = Some(t0() + TimeDelta::days(91));
    assert_eq!(expired(std::slice::from_ref(&row)), vec![row.id]);
    row.valid_until = None;
    assert!(expired(&[row]).is_empty());
}
