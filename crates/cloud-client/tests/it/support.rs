//! Shared fixtures: keys, configs, a cloud that answers sync requests with the core's ledger.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloud_client::{CloudClient, CloudConfig, RetryPolicy, Sleeper, Timeouts};
use sponsorship_core::cloud::{CloudLedger, CloudOrganization};
use sponsorship_core::ids::{MemberId, OrganizationId, SponsorshipId};
use sponsorship_core::org::BillingSyncConfig;
use sponsorship_core::plan::PlanType;
use sponsorship_core::secret::{BillingSyncKey, InstallationKey};
use sponsorship_core::sponsorship::Sponsorship;
use sponsorship_core::wire::{SponsorshipSyncRequest, SponsorshipSyncResponse};
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub use test_support::{cloud_org_id, fixed_now as now, installation_id};

pub const INSTALLATION_KEY: &str = "InStKeY0123456789xyz";
pub const BILLING_KEY: &str = "BiLlInGkEy0123456789abcdefGHIJ";
pub const ACCESS_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.AcCeSsToKeN.sig";
pub const LICENSE_KEY: &str = "LiCeNsEkEy42";
pub const EMAIL_DOMAIN: &str = "home.example";

/// Every secret the tests use (for "never printed" checks).
pub const SECRETS: [&str; 4] = [INSTALLATION_KEY, BILLING_KEY, ACCESS_TOKEN, LICENSE_KEY];

pub fn billing() -> BillingSyncConfig {
    BillingSyncConfig {
        billing_sync_key: BillingSyncKey::parse(BILLING_KEY).unwrap(),
        cloud_organization_id: cloud_org_id(),
        last_license_sync: None,
    }
}

/// Fast retries: three attempts, a few milliseconds apart, one second in all.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        max_total: Duration::from_secs(1),
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

pub fn config_for(identity: &str, api: &str) -> CloudConfig {
    let mut cfg = CloudConfig::new(
        installation_id(),
        InstallationKey::parse(INSTALLATION_KEY).unwrap(),
        Url::parse(identity).unwrap(),
        Url::parse(api).unwrap(),
    );
    cfg.retry = fast_retry();
    cfg.timeouts = Timeouts {
        connect: Duration::from_secs(5),
        request: Duration::from_secs(10),
    };
    cfg
}

pub fn config(server: &MockServer) -> CloudConfig {
    config_for(&server.uri(), &server.uri())
}

/// Records the waits the client asks for and returns at once.
#[derive(Clone, Default)]
pub struct Waits(pub Arc<Mutex<Vec<Duration>>>);

impl Waits {
    pub fn sleeper(&self) -> Sleeper {
        let waits = self.0.clone();
        Arc::new(move |d| {
            waits.lock().unwrap().push(d);
            Box::pin(std::future::ready(()))
        })
    }

    pub fn all(&self) -> Vec<Duration> {
        self.0.lock().unwrap().clone()
    }
}

pub fn client(cfg: CloudConfig) -> (CloudClient, Waits) {
    let waits = Waits::default();
    let client = CloudClient::new(cfg)
        .unwrap()
        .with_clock(now)
        .with_sleeper(waits.sleeper());
    (client, waits)
}

pub fn token_body(expires_in: u64) -> serde_json::Value {
    serde_json::json!({
        "access_token": ACCESS_TOKEN,
        "expires_in": expires_in,
        "token_type": "Bearer",
        "scope": "api.installation"
    })
}

pub async fn mount_token(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/connect/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body(86_400)))
        .mount(server)
        .await;
}

/// A new row offered to `n@home.example`, never synced.
pub fn row(org: OrganizationId, n: usize) -> Sponsorship {
    Sponsorship::new_offer(
        SponsorshipId::new_random(),
        org,
        MemberId::new_random(),
        &format!("member{n}@{EMAIL_DOMAIN}"),
        now(),
    )
}

/// A cloud that answers sync requests with the core's ledger. Calls listed in `fail_calls`
/// (1-based) answer 500 instead.
pub struct LedgerCloud {
    pub ledger: Mutex<CloudLedger>,
    pub org: CloudOrganization,
    pub calls: AtomicUsize,
    pub fail_calls: Mutex<Vec<usize>>,
    pub batch_sizes: Mutex<Vec<usize>>,
    /// Each sync answer waits this long (milliseconds).
    pub delay_ms: std::sync::atomic::AtomicU64,
}

impl LedgerCloud {
    pub fn new(plan_type: PlanType) -> Arc<Self> {
        Arc::new(Self {
            ledger: Mutex::new(CloudLedger::new()),
            org: CloudOrganization {
                id: cloud_org_id(),
                name: "Acme".into(),
                plan_type,
                enabled: true,
                expiration_date: None,
            },
            calls: AtomicUsize::new(0),
            fail_calls: Mutex::new(Vec::new()),
            batch_sizes: Mutex::new(Vec::new()),
            delay_ms: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub async fn mount(self: &Arc<Self>, server: &MockServer) {
        Mock::given(method("POST"))
            .and(path("/organization/sponsorship/sync"))
            .respond_with(LedgerResponder(self.clone()))
            .mount(server)
            .await;
    }

    pub fn rows(&self) -> usize {
        self.ledger.lock().unwrap().len()
    }
}

struct LedgerResponder(Arc<LedgerCloud>);

impl Respond for LedgerResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let call = self.0.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.0.fail_calls.lock().unwrap().contains(&call) {
            return ResponseTemplate::new(500).set_body_json(serde_json::json!({
                "object": "error", "message": "An unhandled server error has occurred."
            }));
        }
        let body: SponsorshipSyncRequest = request.body_json().unwrap();
        self.0
            .batch_sizes
            .lock()
            .unwrap()
            .push(body.sponsorships_batch.len());
        let Ok((outcome, _offers)) = self.0.ledger.lock().unwrap().sync_batch(
            &self.0.org,
            &body.sponsorships_batch,
            now(),
            SponsorshipId::new_random,
        ) else {
            return ResponseTemplate::new(500).set_body_json(serde_json::json!({
                "object": "error", "message": "An unhandled server error has occurred."
            }));
        };
        let response: SponsorshipSyncResponse = outcome.response;
        let delay = Duration::from_millis(self.0.delay_ms.load(Ordering::SeqCst));
        ResponseTemplate::new(200)
            .set_body_json(response)
            .set_delay(delay)
    }
}
