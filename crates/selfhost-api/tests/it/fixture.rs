//! A host over the core's memory store, the reference cloud in-process, and requests through
//! the axum adapter (as the web vault sends them).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use chrono::{DateTime, Utc};
use cloud_client::{CloudClient, CloudConfig};
use cloud_emulator::client::EmulatorClient;
use cloud_emulator::{EmulatorOptions, RunningEmulator, Seed};
use selfhost_api::{Host, HostOrganization, SelfHostedApi, User};
use sponsorship_core::ids::{MemberId, OrganizationId, UserId};
use sponsorship_core::license::{LicenseVerifier, OrganizationLicense};
use sponsorship_core::org::BillingConnection;
use sponsorship_core::org::{Member, MemberRole, MemberStatus, Organization};
use sponsorship_core::plan::PlanType;
use sponsorship_core::schedule::SyncState;
use sponsorship_core::secret::BillingSyncKey;
use sponsorship_core::secret::InstallationKey;
use sponsorship_core::sponsorship::{RowChange, Sponsorship};
use sponsorship_core::store::{
    AppliedBatch, BillingConnectionStore, LockOutcome, MemoryStore, MemoryStoreError,
    SponsorshipStore, SyncLock,
};
use sponsorship_core::sync::BatchApplication;
use tower::ServiceExt as _;

/// The memory store, with reads that can be made slow: a wide window between a request's
/// read of the rows and its write, where two requests of one member would both decide.
#[derive(Default)]
pub(crate) struct SlowStore {
    inner: MemoryStore,
    pub(crate) slow_reads: std::sync::atomic::AtomicBool,
}

impl SponsorshipStore for SlowStore {
    type Error = MemoryStoreError;

    async fn sponsorships(&self, org: OrganizationId) -> Result<Vec<Sponsorship>, Self::Error> {
        let rows = self.inner.sponsorships(org).await?;
        if self.slow_reads.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Ok(rows)
    }
    async fn write_changes(
        &self,
        org: OrganizationId,
        changes: &[RowChange],
    ) -> Result<(), Self::Error> {
        self.inner.write_changes(org, changes).await
    }
    async fn apply_batch(
        &self,
        org: OrganizationId,
        batch: &BatchApplication,
    ) -> Result<AppliedBatch, Self::Error> {
        self.inner.apply_batch(org, batch).await
    }
    async fn sync_state(&self, org: OrganizationId) -> Result<SyncState, Self::Error> {
        self.inner.sync_state(org).await
    }
    async fn save_sync_state(
        &self,
        org: OrganizationId,
        state: &SyncState,
    ) -> Result<(), Self::Error> {
        self.inner.save_sync_state(org, state).await
    }
    async fn save_next_due(
        &self,
        org: OrganizationId,
        next_due: DateTime<Utc>,
    ) -> Result<(), Self::Error> {
        self.inner.save_next_due(org, next_due).await
    }
    async fn try_lock_sync(
        &self,
        org: OrganizationId,
        lock: &SyncLock,
        now: DateTime<Utc>,
    ) -> Result<LockOutcome, Self::Error> {
        self.inner.try_lock_sync(org, lock, now).await
    }
    async fn renew_sync_lock(
        &self,
        org: OrganizationId,
        lock: &SyncLock,
    ) -> Result<bool, Self::Error> {
        self.inner.renew_sync_lock(org, lock).await
    }
    async fn unlock_sync(&self, org: OrganizationId, token: &str) -> Result<(), Self::Error> {
        self.inner.unlock_sync(org, token).await
    }
}

impl BillingConnectionStore for SlowStore {
    async fn billing_connection(
        &self,
        org: OrganizationId,
    ) -> Result<Option<BillingConnection>, Self::Error> {
        self.inner.billing_connection(org).await
    }
    async fn save_billing_connection(
        &self,
        org: OrganizationId,
        key: &BillingSyncKey,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> Result<(), Self::Error> {
        self.inner
            .save_billing_connection(org, key, enabled, now)
            .await
    }
    async fn delete_billing_connection(&self, org: OrganizationId) -> Result<bool, Self::Error> {
        self.inner.delete_billing_connection(org).await
    }
}

pub(crate) struct TestHost {
    pub(crate) store: SlowStore,
    pub(crate) cloud: Option<CloudClient>,
    pub(crate) verifier: LicenseVerifier,
    pub(crate) users: HashMap<String, User>,
    pub(crate) members: Mutex<Vec<(UserId, Member)>>,
    pub(crate) orgs: Mutex<HashMap<OrganizationId, HostOrganization>>,
}

impl Host for TestHost {
    type Store = SlowStore;
    type Error = Infallible;

    fn store(&self) -> &SlowStore {
        &self.store
    }
    fn cloud(&self) -> Option<&CloudClient> {
        self.cloud.as_ref()
    }
    fn license_verifier(&self) -> &LicenseVerifier {
        &self.verifier
    }
    async fn user_by_token(&self, token: &str) -> Result<Option<User>, Infallible> {
        Ok(self.users.get(token).cloned())
    }
    async fn membership(
        &self,
        user: &User,
        org: OrganizationId,
    ) -> Result<Option<Member>, Infallible> {
        Ok(self
            .members
            .lock()
            .unwrap()
            .iter()
            .find(|(u, m)| *u == user.id && m.organization_id == org)
            .map(|(_, m)| m.clone()))
    }
    async fn memberships(&self, user: &User) -> Result<Vec<Member>, Infallible> {
        Ok(self
            .members
            .lock()
            .unwrap()
            .iter()
            .filter(|(u, _)| *u == user.id)
            .map(|(_, m)| m.clone())
            .collect())
    }
    async fn organization(
        &self,
        org: OrganizationId,
    ) -> Result<Option<HostOrganization>, Infallible> {
        Ok(self.orgs.lock().unwrap().get(&org).cloned())
    }
    async fn organization_ids(&self) -> Result<Vec<OrganizationId>, Infallible> {
        Ok(self.orgs.lock().unwrap().keys().copied().collect())
    }
    async fn save_license(
        &self,
        org: OrganizationId,
        license: &OrganizationLicense,
    ) -> Result<(), Infallible> {
        if let Some(o) = self.orgs.lock().unwrap().get_mut(&org) {
            o.organization.plan_type = license.plan_type;
            o.organization.use_admin_sponsored_families = license.use_admin_sponsored_families;
            o.license = Some(license.clone());
        }
        Ok(())
    }
}

/// Who is who in the Acme organization (tokens are the names).
pub(crate) const OWNER: &str = "owner";
pub(crate) const ADMIN: &str = "admin";
pub(crate) const CUSTOM: &str = "custom";
pub(crate) const ALICE: &str = "alice";
pub(crate) const BOB: &str = "bob";
pub(crate) const INVITED: &str = "invited";
pub(crate) const REVOKED: &str = "revoked";
pub(crate) const STRANGER: &str = "stranger";

pub(crate) struct World {
    _cloud: RunningEmulator,
    pub(crate) emulator: EmulatorClient,
    pub(crate) api: Arc<SelfHostedApi<TestHost>>,
    /// The host the API serves, shared (the daily runner's `HostTargets` takes it).
    pub(crate) shared_host: Arc<TestHost>,
    pub(crate) org: OrganizationId,
    /// The member ids by token.
    pub(crate) member: HashMap<&'static str, MemberId>,
    pub(crate) license: OrganizationLicense,
}

impl World {
    /// Acme (Enterprise, licensed, admin-sponsored families on) with one member of each role
    /// and status; cloud communication on unless `cloud_off`.
    pub(crate) async fn new(cloud_off: bool) -> Self {
        let mut seed = test_support::seed(test_support::INSTALLATION_KEY, "Acme");
        seed["allowRegistration"] = serde_json::json!(true);
        let cloud = cloud_emulator::start(
            Seed::from_json(&seed.to_string()).unwrap(),
            EmulatorOptions::default(),
        )
        .await
        .unwrap();
        let emulator = EmulatorClient::new(cloud.base_url().clone()).unwrap();
        let mut license_json = emulator
            .license_json(
                test_support::cloud_org_id(),
                Some(test_support::installation_id()),
            )
            .await
            .unwrap();
        license_json["useAdminSponsoredFamilies"] = serde_json::json!(true);
        let license = OrganizationLicense::parse(&license_json.to_string()).unwrap();
        let client = CloudClient::new(CloudConfig::new(
            test_support::installation_id(),
            InstallationKey::parse(test_support::INSTALLATION_KEY).unwrap(),
            cloud.base_url().clone(),
            cloud.base_url().clone(),
        ))
        .unwrap();
        let org = Organization {
            id: OrganizationId::new_random(),
            name: "Acme".into(),
            plan_type: PlanType::EnterpriseAnnually,
            enabled: true,
            use_admin_sponsored_families: true,
        };
        let mut users = HashMap::new();
        let mut members = Vec::new();
        let mut member = HashMap::new();
        for (token, role, status) in [
            (OWNER, Some(MemberRole::Owner), MemberStatus::Confirmed),
            (ADMIN, Some(MemberRole::Admin), MemberStatus::Confirmed),
            (
                CUSTOM,
                Some(MemberRole::CustomManageUsers),
                MemberStatus::Confirmed,
            ),
            (ALICE, Some(MemberRole::User), MemberStatus::Confirmed),
            (BOB, Some(MemberRole::User), MemberStatus::Confirmed),
            (INVITED, Some(MemberRole::Owner), MemberStatus::Invited),
            (REVOKED, Some(MemberRole::Admin), MemberStatus::Revoked),
            (STRANGER, None, MemberStatus::Confirmed),
        ] {
            let user = User::new(UserId::new_random(), format!("{token}@acme.example"), None);
            if let Some(role) = role {
                let m = Member {
                    id: MemberId::new_random(),
                    organization_id: org.id,
                    email: user.email.clone(),
                    status,
                    role,
                };
                member.insert(token, m.id);
                members.push((user.id, m));
            }
            users.insert(token.to_owned(), user);
        }
        let host = Arc::new(TestHost {
            store: SlowStore::default(),
            cloud: (!cloud_off).then_some(client),
            verifier: LicenseVerifier::default().trusting(cloud_emulator::license_trust_anchor()),
            users,
            members: Mutex::new(members),
            orgs: Mutex::new(HashMap::from([(
                org.id,
                HostOrganization::new(org.clone(), Some(100), Some(license.clone())),
            )])),
        });
        Self {
            _cloud: cloud,
            emulator,
            api: Arc::new(SelfHostedApi::new(host.clone())),
            shared_host: host,
            org: org.id,
            member,
            license,
        }
    }

    pub(crate) fn host(&self) -> &TestHost {
        self.api.host()
    }

    /// A request through the axum adapter, nested under `/api`: (status, body).
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String) {
        let app =
            axum::Router::new().nest("/api", selfhost_api::axum::api_router(self.api.clone()));
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(format!("/api{path}"))
            .header("Device-Type", "9")
            .header("Bitwarden-Client-Name", "web");
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header("Content-Type", "application/json; charset=utf-8");
        }
        let request = request
            .body(Body::from(body.unwrap_or_default().to_owned()))
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        if status == 200 && !response.headers().is_empty() {
            // A body the web vault reads must say it is JSON.
            if let Some(t) = response.headers().get("content-type") {
                assert!(t.to_str().unwrap().contains("application/json"), "{t:?}");
            }
        }
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    /// The reference server's error body with `message`.
    pub(crate) fn error(message: &str) -> String {
        format!(
            r#"{{"object":"error","message":"{message}","validationErrors":null,"exceptionMessage":null,"exceptionStackTrace":null,"innerExceptionMessage":null}}"#
        )
    }

    /// The member page's offer of `email`.
    pub(crate) async fn offer(&self, token: &str, email: &str) -> (u16, String) {
        let body = format!(
            r#"{{"sponsoredEmail":"{email}","planSponsorshipType":0,"friendlyName":"{email}"}}"#
        );
        self.call(
            "POST",
            &format!(
                "/organization/sponsorship/self-hosted/{}/families-for-enterprise",
                self.org
            ),
            Some(token),
            Some(&body),
        )
        .await
    }

    /// Saves the billing sync key through H9.
    pub(crate) async fn connect(&self) -> (u16, String) {
        let body = format!(
            r#"{{"organizationId":"{}","type":1,"enabled":true,"config":{{"billingSyncKey":"{}"}}}}"#,
            self.org,
            test_support::BILLING_KEY
        );
        self.call(
            "POST",
            "/organizations/connections/",
            Some(OWNER),
            Some(&body),
        )
        .await
    }

    /// "Sync now".
    pub(crate) async fn sync(&self) -> (u16, String) {
        self.call(
            "POST",
            &format!("/organization/sponsorship/self-hosted/{}/sync", self.org),
            Some(OWNER),
            None,
        )
        .await
    }
}
