//! The self-hosted side (`cloud-client` and the core rules) against the reference cloud's
//! reproduction of the real cloud's quirks (QUIRK 14.2, 14.3, 14.5, 14.9 and the error texts):
//! each fix on the self-hosted side is shown here.

use std::sync::Arc;

use chrono::Utc;
use cloud_client::{CloudClient, CloudConfig, ErrorKind, SyncOptions};
use sponsorship_core::ids::{MemberId, OrganizationId, SponsorshipId};
use sponsorship_core::org::{BillingSyncConfig, Member, MemberRole, MemberStatus, Organization};
use sponsorship_core::plan::PlanType;
use sponsorship_core::secret::{BillingSyncKey, InstallationKey, RawSecret};
use sponsorship_core::sponsorship::{OfferRequest, RowChange, UiStatus, offer};
use sponsorship_core::store::MemoryStore;

use crate::fixture::*;

struct SelfHosted {
    org: Organization,
    member: Member,
    store: MemoryStore,
}

impl SelfHosted {
    fn new(use_admin_sponsored_families: bool) -> Self {
        let org = Organization {
            id: OrganizationId::new_random(),
            name: "Acme (self-hosted)".into(),
            plan_type: PlanType::EnterpriseAnnually,
            enabled: true,
            use_admin_sponsored_families,
        };
        let member = Member {
            id: MemberId::new_random(),
            organization_id: org.id,
            email: "alice@acme.example".into(),
            status: MemberStatus::Confirmed,
            role: MemberRole::Owner,
        };
        Self {
            org,
            member,
            store: MemoryStore::new(),
        }
    }

    fn offer(&self, recipient: &str, admin_initiated: bool) {
        let made = offer(
            &self.org,
            &self.member,
            &self.store.rows(self.org.id),
            &OfferRequest {
                sponsor_email: &self.member.email,
                offered_to_email: recipient,
                friendly_name: None,
                admin_initiated,
                notes: None,
            },
            SponsorshipId::new_random(),
            Utc::now(),
        )
        .unwrap();
        self.store
            .write(self.org.id, RowChange::Upsert(made.sponsorship));
    }

    async fn sync(
        &self,
        emu: &cloud_emulator::RunningEmulator,
        billing: &BillingSyncConfig,
    ) -> Result<cloud_client::SyncReport, cloud_client::Error> {
        client(emu)
            .sync_organization(&self.store, self.org.id, billing, SyncOptions::default())
            .await
    }
}

fn client(emu: &cloud_emulator::RunningEmulator) -> CloudClient {
    let config = CloudConfig::new(
        INSTALLATION.parse().unwrap(),
        InstallationKey::parse(INSTALLATION_KEY).unwrap(),
        emu.base_url().clone(),
        emu.base_url().clone(),
    );
    CloudClient::new(config)
        .unwrap()
        .with_sleeper(Arc::new(|_| Box::pin(async {})))
}

fn billing_for(cloud_org: sponsorship_core::ids::CloudOrganizationId) -> BillingSyncConfig {
    BillingSyncConfig {
        billing_sync_key: BillingSyncKey::parse(KEY).unwrap(),
        cloud_organization_id: cloud_org,
        last_license_sync: None,
    }
}

fn mailed(emu: &cloud_emulator::RunningEmulator) -> Vec<String> {
    emu.outbox().into_iter().map(|m| m.to).collect()
}

/// QUIRK 14.3: the real cloud never changes the recipient of an existing row, so the self-hosted
/// side withdraws the old offer first; the new recipient gets an offer, the old one nothing more.
#[tokio::test]
async fn a_replaced_synced_offer_reaches_the_new_recipient_only() {
    let emu = emulator().await;
    let sh = SelfHosted::new(false);
    sh.offer("old@home.example", false);
    sh.sync(&emu, &billing_for(acme())).await.unwrap();
    sh.offer("new@home.example", false);
    sh.sync(&emu, &billing_for(acme())).await.unwrap();
    assert_eq!(mailed(&emu), ["old@home.example", "new@home.example"]);
    let rows = emu.sponsorships(acme());
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].row.offered_to_email.as_deref(),
        Some("new@home.example")
    );
    let local = &sh.store.rows(sh.org.id)[0];
    assert_eq!(local.ui_status(), UiStatus::Sent);
    assert!(local.superseded_offer.is_none());
    // Steady state: nothing more is mailed.
    sh.sync(&emu, &billing_for(acme())).await.unwrap();
    assert_eq!(emu.outbox().len(), 2);
    emu.stop().await.unwrap();
}

/// QUIRK 14.5: when the cloud row of the replaced offer is already gone, a withdrawal carrying a
/// `lastSyncDate` would make the real cloud re-create it and mail the OLD recipient.
#[tokio::test]
async fn a_replaced_offer_whose_cloud_row_is_gone_never_re_mails_the_old_recipient() {
    let first_cloud = emulator().await;
    let sh = SelfHosted::new(false);
    sh.offer("old@home.example", false);
    sh.sync(&first_cloud, &billing_for(acme())).await.unwrap();
    first_cloud.stop().await.unwrap();

    // The same cloud organization without the row (purged in the cloud).
    let emu = emulator().await;
    sh.offer("new@home.example", false);
    let report = sh.sync(&emu, &billing_for(acme())).await.unwrap();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(mailed(&emu), ["new@home.example"]);
    let rows = emu.sponsorships(acme());
    assert_eq!(rows.len(), 1, "no orphan offer");
    assert_eq!(
        rows[0].row.offered_to_email.as_deref(),
        Some("new@home.example")
    );
    emu.stop().await.unwrap();
}

/// QUIRK 14.2: two items of one member in one batch would create two cloud rows, and every later
/// sync of the organization would fail with a 500. Only one row per member is ever sent.
#[tokio::test]
async fn two_rows_of_one_member_never_go_in_one_batch() {
    let emu = emulator().await;
    let sh = SelfHosted::new(true);
    sh.offer("own@home.example", false);
    // The rules refuse a second sponsorship of one member; a second row can still be in a
    // store (made by an older release or the reference server).
    let mut second = sh.store.rows(sh.org.id)[0].clone();
    second.id = SponsorshipId::new_random();
    second.is_admin_initiated = true;
    second.offered_to_email = Some("admin-offer@home.example".into());
    second.friendly_name = Some("admin-offer@home.example".into());
    sh.store.write(sh.org.id, RowChange::Upsert(second));
    assert_eq!(sh.store.rows(sh.org.id).len(), 2);
    for _ in 0..2 {
        let report = sh.sync(&emu, &billing_for(acme())).await.unwrap();
        assert_eq!(report.duplicates.len(), 1);
    }
    assert_eq!(mailed(&emu), ["own@home.example"]);
    assert_eq!(emu.sponsorships(acme()).len(), 1);
    emu.stop().await.unwrap();
}

/// QUIRK 14.9: a cloud organization without a billing sync key answers every sync with a 500.
/// It is retried, then reported with the hint, naming host, batch and attempts.
#[tokio::test]
async fn a_persistent_500_points_at_the_missing_billing_sync_token() {
    let emu = emulator().await;
    let sh = SelfHosted::new(false);
    sh.offer("kid@home.example", false);
    let err = sh.sync(&emu, &billing_for(home())).await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::SyncServerError { status: 500 }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("no billing sync token"), "{text}");
    assert!(text.contains("Manage billing sync"), "{text}");
    assert!(text.contains("host 127.0.0.1"), "{text}");
    assert!(text.contains("batch 1 of 1"), "{text}");
    assert!(err.attempts() > 1, "retried: {text}");
    assert!(emu.outbox().is_empty());
    emu.stop().await.unwrap();
}

/// The real cloud's 404 body is `Resource not found.`: on license sync it means an unknown
/// cloud organization, not a changed API.
#[tokio::test]
async fn license_sync_for_an_unknown_cloud_organization_says_so() {
    let emu = emulator().await;
    let unknown = "0b7c2f0e-1111-2222-3333-000000000000".parse().unwrap();
    let err = client(&emu)
        .fetch_license(
            &billing_for(unknown),
            &RawSecret::new("license-key"),
            &sponsorship_core::license::LicenseVerifier::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::CloudOrganizationUnknown { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("host 127.0.0.1"), "{err}");
    emu.stop().await.unwrap();
}
