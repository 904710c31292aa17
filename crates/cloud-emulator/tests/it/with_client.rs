//! The self-hosted side's own client (`cloud-client`) against the emulator: a full sync round
//! trip with an in-memory store, key rotation mid-life, region mismatch, unsupported license
//! version, and a transient failure retried.

use std::sync::Arc;

use chrono::Utc;
use cloud_client::{CloudClient, CloudConfig, ErrorKind, Scope, SyncOptions, SyncOutcome};
use cloud_emulator::{Fault, FaultRule, ScriptedRedeem};
use sponsorship_core::ids::{MemberId, OrganizationId, SponsorshipId};
use sponsorship_core::org::{BillingSyncConfig, Member, MemberRole, MemberStatus, Organization};
use sponsorship_core::plan::PlanType;
use sponsorship_core::secret::{BillingSyncKey, InstallationKey};
use sponsorship_core::sponsorship::{OfferRequest, UiStatus, offer, revoke};
use sponsorship_core::store::MemoryStore;

use crate::fixture::*;

struct SelfHosted {
    org: Organization,
    member: Member,
    store: MemoryStore,
}

impl SelfHosted {
    fn with_offer_to(recipient: &str) -> Self {
        let org = Organization {
            id: OrganizationId::new_random(),
            name: "Acme (self-hosted)".into(),
            plan_type: PlanType::EnterpriseAnnually,
            enabled: true,
            use_admin_sponsored_families: false,
        };
        let member = Member {
            id: MemberId::new_random(),
            organization_id: org.id,
            email: "alice@acme.example".into(),
            status: MemberStatus::Confirmed,
            role: MemberRole::User,
        };
        let store = MemoryStore::new();
        let made = offer(
            &org,
            &member,
            &[],
            &OfferRequest {
                sponsor_email: &member.email,
                offered_to_email: recipient,
                friendly_name: None,
                admin_initiated: false,
                notes: None,
            },
            SponsorshipId::new_random(),
            Utc::now(),
        )
        .unwrap();
        store.write(
            org.id,
            sponsorship_core::sponsorship::RowChange::Upsert(made.sponsorship),
        );
        Self { org, member, store }
    }

    fn status(&self) -> UiStatus {
        self.store.rows(self.org.id)[0].ui_status()
    }
}

fn cloud_client(emu: &cloud_emulator::RunningEmulator, installation: &str) -> CloudClient {
    let config = CloudConfig::new(
        installation.parse().unwrap(),
        InstallationKey::parse(INSTALLATION_KEY).unwrap(),
        emu.base_url().clone(),
        emu.base_url().clone(),
    );
    // Retries wait through this sleeper: no real waiting in tests.
    CloudClient::new(config)
        .unwrap()
        .with_sleeper(Arc::new(|_| Box::pin(async {})))
}

fn billing(key: &str) -> BillingSyncConfig {
    BillingSyncConfig {
        billing_sync_key: BillingSyncKey::parse(key).unwrap(),
        cloud_organization_id: acme(),
        last_license_sync: None,
    }
}

#[tokio::test]
async fn full_round_trip_offer_redeem_active_revoke() {
    let emu = emulator().await;
    let sh = SelfHosted::with_offer_to(KID);
    let client = cloud_client(&emu, INSTALLATION);
    assert_eq!(sh.status(), UiStatus::Requested);

    // 1. First sync: the cloud creates its row and e-mails the offer; the row is "Sent".
    let report = client
        .sync_organization(&sh.store, sh.org.id, &billing(KEY), SyncOptions::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Completed);
    assert_eq!((report.sent, report.updated), (1, 1));
    assert_eq!(sh.status(), UiStatus::Sent);
    let outbox = emu.outbox();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].to, KID);

    // 2. The recipient redeems it on their existing Families organization.
    let redeemed = crate::fixture::client(&emu)
        .redeem(&ScriptedRedeem {
            link: Some(outbox[0].link.clone()),
            token: None,
            email: KID.into(),
            password: Some(KID_PASSWORD.into()),
            create_user: false,
            organization_id: Some(home()),
            new_organization_name: None,
        })
        .await
        .unwrap();
    assert!(emu.sponsorships(acme())[0].awaiting_sync);

    // 3. Next sync: "Active", with the cloud's ValidUntil; the cloud row is confirmed.
    client
        .sync_organization(&sh.store, sh.org.id, &billing(KEY), SyncOptions::default())
        .await
        .unwrap();
    assert_eq!(sh.status(), UiStatus::Active);
    assert_eq!(
        sh.store.rows(sh.org.id)[0].valid_until,
        redeemed.valid_until
    );
    assert!(!emu.sponsorships(acme())[0].awaiting_sync);

    // 4. The member revokes; the sync marks the redeemed cloud row to delete.
    let change = revoke(sh.member.id, &sh.store.rows(sh.org.id), Utc::now()).unwrap();
    sh.store.write(sh.org.id, change);
    client
        .sync_organization(&sh.store, sh.org.id, &billing(KEY), SyncOptions::default())
        .await
        .unwrap();
    assert!(emu.sponsorships(acme())[0].row.to_delete);
    assert_eq!(emu.outbox().len(), 1, "one offer e-mail in all");
    emu.stop().await.unwrap();
}

#[tokio::test]
async fn key_rotated_in_the_cloud_mid_life() {
    let emu = emulator().await;
    let sh = SelfHosted::with_offer_to(KID);
    let client = cloud_client(&emu, INSTALLATION);
    client.verify_billing_sync_key(&billing(KEY)).await.unwrap();
    client
        .sync_organization(&sh.store, sh.org.id, &billing(KEY), SyncOptions::default())
        .await
        .unwrap();

    let scripts = crate::fixture::client(&emu);
    let owner = scripts.login(OWNER, OWNER_PASSWORD).await.unwrap();
    let rotated = scripts
        .rotate_billing_sync_key(&owner, acme(), OWNER_PASSWORD)
        .await
        .unwrap();
    let new_key = secrecy::ExposeSecret::expose_secret(&rotated.api_key).to_owned();

    let err = client
        .sync_organization(&sh.store, sh.org.id, &billing(KEY), SyncOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::BillingSyncKeyInvalid),
        "{err}"
    );
    let warning = scripts.billing_sync_status(&owner, acme()).await.unwrap();
    assert!(
        warning
            .message
            .unwrap()
            .starts_with("Token rotated 0 days ago.")
    );

    client
        .sync_organization(
            &sh.store,
            sh.org.id,
            &billing(&new_key),
            SyncOptions::default(),
        )
        .await
        .unwrap();
    let status = scripts.billing_sync_status(&owner, acme()).await.unwrap();
    assert!(status.message.unwrap().starts_with("Last sync: "));
    emu.stop().await.unwrap();
}

#[tokio::test]
async fn an_installation_of_another_region_is_rejected() {
    let emu = emulator().await;
    let err = cloud_client(&emu, EU_INSTALLATION)
        .check_identity(Scope::Installation)
        .await
        .unwrap_err();
    match err.kind() {
        ErrorKind::IdentityRejected { error, .. } => assert_eq!(error, "invalid_client"),
        other => panic!("expected IdentityRejected, got {other:?}"),
    }
    let ok = cloud_client(&emu, INSTALLATION)
        .check_identity(Scope::Licensing)
        .await
        .unwrap();
    assert_eq!(ok.lifetime.as_secs(), 86_400);
    emu.stop().await.unwrap();
}

#[tokio::test]
async fn license_sync_and_an_unsupported_version() {
    let emu = emulator().await;
    let client = cloud_client(&emu, INSTALLATION);
    let license_key = emu.license(acme(), None).unwrap().license_key;
    let verifier = sponsorship_core::license::LicenseVerifier::default()
        .trusting(cloud_emulator::license_trust_anchor());
    let (license, checked) = client
        .fetch_license(&billing(KEY), &license_key, &verifier)
        .await
        .unwrap();
    assert_eq!(
        checked.signed_by,
        sponsorship_core::license::SignedBy::Token
    );
    assert_eq!(
        license.version,
        sponsorship_core::license::CURRENT_LICENSE_VERSION
    );
    assert_eq!(license.installation_id, Some(installation()));

    crate::fixture::client(&emu)
        .set_license_version(17)
        .await
        .unwrap();
    let err = client
        .fetch_license(&billing(KEY), &license_key, &verifier)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::UnsupportedLicenseVersion { version: Some(17) }
        ),
        "{err}"
    );
    emu.stop().await.unwrap();
}

#[tokio::test]
async fn a_transient_cloud_failure_is_retried() {
    let emu = emulator().await;
    let sh = SelfHosted::with_offer_to(KID);
    assert!(emu.inject_fault(FaultRule {
        path: "/organization/sponsorship/sync".into(),
        count: 1,
        fault: Fault::Status {
            status: 503,
            retry_after: None
        },
    }));
    let report = cloud_client(&emu, INSTALLATION)
        .sync_organization(&sh.store, sh.org.id, &billing(KEY), SyncOptions::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Completed);
    assert_eq!(sh.status(), UiStatus::Sent);
    emu.stop().await.unwrap();
}

/// An answer cut in the middle is named as such (the cloud may have acted), not "could not
/// connect" (issue #16, item 7).
#[tokio::test]
async fn a_connection_lost_mid_answer_is_named_as_such() {
    let emu = emulator().await;
    let sh = SelfHosted::with_offer_to(KID);
    assert!(emu.inject_fault(FaultRule {
        path: "/organization/sponsorship/sync".into(),
        count: 10,
        fault: Fault::Truncated,
    }));
    let err = cloud_client(&emu, INSTALLATION)
        .sync_organization(&sh.store, sh.org.id, &billing(KEY), SyncOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::ConnectionLost { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("may have applied"), "{text}");
    assert!(!text.contains("could not connect"), "{text}");
    assert!(err.attempts() > 1, "retried: {text}");
    emu.stop().await.unwrap();
}
