//! What the web vault does, replayed against the reference cloud: billing sync set up, a
//! member's offer through to Active, revokes before and after a sync, an admin-initiated
//! offer, license sync, the connection updated and deleted; the member's `familySponsorship*`
//! profile fields (H15) checked at each step.

use cloud_emulator::ScriptedRedeem;
use selfhost_api::models::FamilySponsorshipFields;
use sponsorship_core::sponsorship::UiStatus;

use crate::fixture::*;

async fn fields(w: &World, token: &str) -> FamilySponsorshipFields {
    let user = w.host().users[token].clone();
    let member = w
        .host()
        .members
        .lock()
        .unwrap()
        .iter()
        .find(|(u, _)| *u == user.id)
        .unwrap()
        .1
        .clone();
    w.api.family_sponsorship(&member).await.unwrap().unwrap()
}

/// The status the web vault derives from the profile fields (sponsoring-org-row).
fn status(f: &FamilySponsorshipFields) -> Option<UiStatus> {
    f.family_sponsorship_friendly_name.as_ref().map(|_| {
        UiStatus::from_flags(
            f.family_sponsorship_to_delete == Some(true),
            f.family_sponsorship_valid_until.is_some(),
            f.family_sponsorship_last_sync_date.is_some(),
        )
    })
}

#[tokio::test]
async fn the_web_vault_flow_from_offer_to_active_and_back() {
    let w = World::new(false).await;
    let before = fields(&w, ALICE).await;
    assert!(before.family_sponsorship_available);
    assert_eq!(status(&before), None);
    assert_eq!(before.family_sponsorship_to_delete, None);

    // Billing → Subscription: the owner pastes the token; "Last sync" is Never.
    assert_eq!(w.connect().await.0, 200);
    let user = w.host().users[OWNER].clone();
    assert_eq!(
        w.api
            .billing_sync_overview(&user, w.org)
            .await
            .unwrap()
            .state
            .last_success,
        None
    );

    // A member offers: Requested, nothing mailed.
    assert_eq!(
        w.offer(ALICE, "kid@home.example").await,
        (200, String::new())
    );
    let requested = fields(&w, ALICE).await;
    assert_eq!(status(&requested), Some(UiStatus::Requested));
    assert_eq!(
        requested.family_sponsorship_friendly_name.as_deref(),
        Some("kid@home.example")
    );
    assert!(!requested.family_sponsorship_available);
    assert!(w.emulator.outbox().await.unwrap().is_empty());

    // Bob offers and revokes before any sync.
    w.offer(BOB, "bobs-kid@home.example").await;
    let bob_revoke = format!("/organization/sponsorship/self-hosted/{}", w.org);
    assert_eq!(w.call("DELETE", &bob_revoke, Some(BOB), None).await.0, 200);
    assert_eq!(
        status(&fields(&w, BOB).await),
        Some(UiStatus::RemovedAwaitingSync)
    );

    // An admin-initiated offer (for the admin's own membership).
    let admin_offer = r#"{"sponsoredEmail":"partner@home.example","planSponsorshipType":0,"friendlyName":"partner@home.example","isAdminInitiated":true,"notes":"2.aXY=|ZGF0YQ==|bWFj"}"#;
    let create = format!(
        "/organization/sponsorship/self-hosted/{}/families-for-enterprise",
        w.org
    );
    assert_eq!(
        w.call("POST", &create, Some(ADMIN), Some(admin_offer))
            .await
            .0,
        200
    );

    // Sync now: Sent; the cloud mails Alice's kid and the partner, never Bob's kid.
    let (status_code, report) = w.sync().await;
    assert_eq!(status_code, 200, "{report}");
    let sent = fields(&w, ALICE).await;
    assert_eq!(status(&sent), Some(UiStatus::Sent));
    assert!(sent.family_sponsorship_last_sync_date.is_some());
    assert_eq!(status(&fields(&w, BOB).await), None, "withdrawn and gone");
    let mails = w.emulator.outbox().await.unwrap();
    let recipients: Vec<&str> = mails.iter().map(|m| m.to.as_str()).collect();
    assert!(
        recipients.contains(&"kid@home.example") && recipients.contains(&"partner@home.example"),
        "{recipients:?}"
    );
    assert!(!recipients.contains(&"bobs-kid@home.example"));
    let list = format!("/organization/sponsorship/self-hosted/{}/sponsored", w.org);
    let admin_list = w.call("GET", &list, Some(ADMIN), None).await.1;
    assert!(
        admin_list.contains(r#""friendlyName":"partner@home.example""#)
            && !admin_list.contains(r#""lastSyncDate":null"#),
        "{admin_list}"
    );

    // The recipient redeems in the cloud; the next sync makes it Active.
    let mail = mails.iter().find(|m| m.to == "kid@home.example").unwrap();
    w.emulator
        .redeem(&ScriptedRedeem {
            link: Some(mail.link.clone()),
            token: None,
            email: "kid@home.example".into(),
            password: Some("correct horse battery".into()),
            create_user: true,
            organization_id: None,
            new_organization_name: Some("The Kids".into()),
        })
        .await
        .unwrap();
    assert_eq!(
        status(&fields(&w, ALICE).await),
        Some(UiStatus::Sent),
        "the self-hosted side learns at the next sync"
    );
    assert_eq!(w.sync().await.0, 200);
    let active = fields(&w, ALICE).await;
    assert_eq!(status(&active), Some(UiStatus::Active));
    assert!(active.family_sponsorship_valid_until.is_some());
    assert_eq!(
        w.offer(ALICE, "other@home.example").await,
        (
            400,
            World::error("Can only sponsor one organization per Organization User.")
        )
    );

    // Revoke after the sync: "Revoke when expired" once the cloud knows.
    assert_eq!(
        w.call(
            "DELETE",
            &format!("/organization/sponsorship/self-hosted/{}", w.org),
            Some(ALICE),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        status(&fields(&w, ALICE).await),
        Some(UiStatus::RevokeWhenExpired)
    );
    assert_eq!(w.sync().await.0, 200);
    let revoked = fields(&w, ALICE).await;
    assert_eq!(revoked.family_sponsorship_to_delete, Some(true));

    // Sync license, then the token replaced and deleted.
    let sync_license = format!("/organizations/licenses/self-hosted/{}/sync/", w.org);
    assert_eq!(
        w.call("POST", &sync_license, Some(OWNER), None).await,
        (200, String::new())
    );
    let overview = w.api.billing_sync_overview(&user, w.org).await.unwrap();
    assert!(overview.state.last_success.is_some() && overview.state.last_license_sync.is_some());
    let update = format!(
        r#"{{"organizationId":"{}","type":1,"enabled":true,"config":{{"billingSyncKey":"{}"}}}}"#,
        w.org,
        test_support::BILLING_KEY
    );
    assert_eq!(
        w.call(
            "PUT",
            &format!("/organizations/connections/{}", w.org),
            Some(OWNER),
            Some(&update)
        )
        .await
        .0,
        200
    );
    assert!(
        w.api
            .billing_sync_overview(&user, w.org)
            .await
            .unwrap()
            .state
            .last_license_sync
            .is_some(),
        "kept across a key update"
    );
    assert_eq!(
        w.call(
            "DELETE",
            &format!("/organizations/connections/{}", w.org),
            Some(OWNER),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        w.sync().await,
        (
            400,
            World::error(&format!(
                "No saved Connection config for organization {}",
                w.org
            ))
        )
    );
}
