//! Every error category, with the host named and the right retries.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloud_client::{CloudClient, ErrorKind, Scope, SyncOptions};
use sponsorship_core::ids::OrganizationId;
use sponsorship_core::org::BillingSyncConfig;
use sponsorship_core::schedule::ErrorCategory;
use sponsorship_core::sponsorship::RowChange;
use sponsorship_core::store::{AppliedBatch, LockOutcome, MemoryStore, SponsorshipStore, SyncLock};
use sponsorship_core::sync::BatchApplication;
use sponsorship_core::{ids::OrganizationId as Org, schedule::SyncState, sponsorship::Sponsorship};
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

/// A server whose sync endpoint answers `template` (after a good token).
async fn sync_answers(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    mount_token(&server).await;
    Mock::given(method("POST"))
        .and(path("/organization/sponsorship/sync"))
        .respond_with(template)
        .mount(&server)
        .await;
    server
}

fn error_body(message: &str) -> serde_json::Value {
    serde_json::json!({"object": "error", "message": message, "validationErrors": null})
}

async fn verify_against(server: &MockServer) -> cloud_client::Error {
    let (client, _) = client(config(server));
    client
        .verify_billing_sync_key(&billing())
        .await
        .unwrap_err()
}

async fn sync_requests(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/organization/sponsorship/sync")
        .count()
}

#[tokio::test]
async fn dns_failure() {
    let (client, waits) = client(config_for(
        "https://identity.cloud-client-test.invalid",
        "https://api.cloud-client-test.invalid",
    ));
    let err = client
        .check_identity(Scope::Installation)
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Dns), "{err:?}");
    assert_eq!(err.category(), ErrorCategory::Dns);
    assert_eq!(err.host(), Some("identity.cloud-client-test.invalid"));
    assert!(
        err.to_string()
            .contains("host identity.cloud-client-test.invalid"),
        "{err}"
    );
    assert_eq!(err.attempts(), 3, "DNS failures are retried");
    assert_eq!(waits.all().len(), 2);
}

#[tokio::test]
async fn connection_refused() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let (client, _) = client(config_for(&base, &base));
    let err = client
        .check_identity(Scope::Installation)
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Connect { detail } if detail == "connection refused"),
        "{err:?}"
    );
    assert_eq!(err.category(), ErrorCategory::Connect);
    assert_eq!(err.attempts(), 3);
}

#[tokio::test]
async fn tls_failure_https_to_a_plain_http_server() {
    let server = MockServer::start().await;
    let base = format!("https://127.0.0.1:{}", server.address().port());
    let (client, _) = client(config_for(&base, &base));
    let err = client
        .check_identity(Scope::Installation)
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Tls { .. }), "{err:?}");
    assert_eq!(err.category(), ErrorCategory::Tls);
    assert_eq!(err.attempts(), 1, "TLS failures are not retried");
}

#[tokio::test]
async fn request_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/connect/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(token_body(60))
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;
    let mut cfg = config(&server);
    cfg.timeouts.request = Duration::from_millis(100);
    cfg.retry.max_attempts = 2;
    let (client, _) = client(cfg);
    let err = client
        .check_identity(Scope::Installation)
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Timeout), "{err:?}");
    assert_eq!(err.category(), ErrorCategory::Timeout);
    assert_eq!(err.attempts(), 2, "timeouts are retried");
}

#[tokio::test]
async fn proxy_refusing_the_tunnel() {
    // The proxy (a wiremock server) answers CONNECT with 404: the tunnel fails.
    let proxy = MockServer::start().await;
    let mut cfg = config_for(
        "https://identity.cloud-client-test.example",
        "https://api.cloud-client-test.example",
    );
    cfg.proxy = Some(Url::parse(&format!("http://user:ProxyPw99@{}", proxy.address())).unwrap());
    let (client, _) = client(cfg);
    let err = client
        .check_identity(Scope::Installation)
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Proxy { .. }), "{err:?}");
    assert_eq!(err.category(), ErrorCategory::Proxy);
    let text = format!("{err} {err:?}");
    assert!(!text.contains("ProxyPw99"), "{text}");
    assert!(text.contains(&proxy.address().to_string()), "{text}");
    let requests = proxy.received_requests().await.unwrap();
    assert!(!requests.is_empty(), "the request went to the proxy");
}

/// A forward proxy that answers every CONNECT with `answer` and records the request heads.
fn connect_proxy(answer: &'static str) -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            record.lock().unwrap().push(head);
            let mut stream = stream;
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn proxy_requiring_authentication() {
    // An https target through an http proxy: the proxy refuses the tunnel with 407.
    let (proxy, _) =
        connect_proxy("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n");
    let mut cfg = config_for(
        "https://identity.cloud-client-test.example",
        "https://api.cloud-client-test.example",
    );
    cfg.proxy = Some(Url::parse(&format!("http://{proxy}")).unwrap());
    let (client, _) = client(cfg);
    let err = client
        .check_identity(Scope::Installation)
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Proxy { .. }), "{err:?}");
}

#[tokio::test]
async fn unreachable_proxy() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut cfg = config_for(
        "https://identity.cloud-client-test.example",
        "https://api.cloud-client-test.example",
    );
    cfg.proxy = Some(Url::parse(&format!("http://127.0.0.1:{port}")).unwrap());
    let (client, _) = client(cfg);
    let err = client
        .check_identity(Scope::Installation)
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Proxy { detail, .. } if detail.starts_with("could not reach the proxy")),
        "{err:?}"
    );
}

#[tokio::test]
async fn billing_sync_key_invalid() {
    let server = sync_answers(
        ResponseTemplate::new(400).set_body_json(error_body("Invalid Billing Sync Key")),
    )
    .await;
    let err = verify_against(&server).await;
    assert!(matches!(err.kind(), ErrorKind::BillingSyncKeyInvalid));
    assert_eq!(err.category(), ErrorCategory::BillingKeyInvalid);
    assert!(
        err.to_string()
            .contains("it was probably rotated in the cloud"),
        "{err}"
    );
    assert_eq!(sync_requests(&server).await, 1, "not retried");
}

#[tokio::test]
async fn cloud_organization_unknown() {
    let server =
        sync_answers(ResponseTemplate::new(400).set_body_json(error_body("Invalid organization")))
            .await;
    let err = verify_against(&server).await;
    assert_eq!(
        err.category(),
        ErrorCategory::CloudOrganizationUnknown,
        "{err}"
    );
}

#[tokio::test]
async fn other_refusals_keep_the_clouds_message() {
    let server = sync_answers(
        ResponseTemplate::new(400).set_body_json(error_body("The model state is invalid.")),
    )
    .await;
    let err = verify_against(&server).await;
    assert!(
        matches!(err.kind(), ErrorKind::Rejected { status: 400, message } if message == "The model state is invalid."),
        "{err:?}"
    );
    assert_eq!(err.category(), ErrorCategory::Rejected);
}

#[tokio::test]
async fn rate_limited_waits_retry_after_seconds() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    Mock::given(method("POST"))
        .and(path("/organization/sponsorship/sync"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "7"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/organization/sponsorship/sync"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"sponsorshipsBatch": []})),
        )
        .mount(&server)
        .await;
    let mut cfg = config(&server);
    cfg.retry.max_total = Duration::from_secs(30);
    let (client, waits) = client(cfg);
    client.verify_billing_sync_key(&billing()).await.unwrap();
    assert_eq!(waits.all(), [Duration::from_secs(7)]);
}

#[tokio::test]
async fn rate_limited_with_an_http_date_beyond_the_budget_fails_at_once() {
    // `now()` is 2026-11-24 12:00:00 UTC; the cloud asks for an hour.
    let server = sync_answers(
        ResponseTemplate::new(429).insert_header("Retry-After", "Tue, 24 Nov 2026 13:00:00 GMT"),
    )
    .await;
    let (client, waits) = client(config(&server));
    let err = client
        .verify_billing_sync_key(&billing())
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::RateLimited { retry_after: Some(d) } if *d == Duration::from_hours(1)),
        "{err:?}"
    );
    assert_eq!(err.category(), ErrorCategory::RateLimited);
    assert!(err.to_string().contains("retry after 3600 s"), "{err}");
    assert!(
        waits.all().is_empty(),
        "the wait does not fit in the budget"
    );
    assert_eq!(sync_requests(&server).await, 1);
}

#[tokio::test]
async fn cloud_5xx_is_retried_within_the_bounds() {
    let server = sync_answers(ResponseTemplate::new(503)).await;
    let err = verify_against(&server).await;
    assert!(matches!(
        err.kind(),
        ErrorKind::CloudUnavailable { status: 503 }
    ));
    assert_eq!(err.category(), ErrorCategory::CloudUnavailable);
    assert_eq!(err.attempts(), 3);
    assert_eq!(sync_requests(&server).await, 3);
}

#[tokio::test]
async fn retries_stop_at_the_time_budget() {
    let server = sync_answers(ResponseTemplate::new(502)).await;
    let mut cfg = config(&server);
    cfg.retry.max_attempts = 10;
    cfg.retry.base_delay = Duration::from_millis(400);
    cfg.retry.max_delay = Duration::from_millis(400);
    cfg.retry.max_total = Duration::from_secs(1);
    let (client, waits) = client(cfg);
    let err = client
        .verify_billing_sync_key(&billing())
        .await
        .unwrap_err();
    let waited: Duration = waits.all().iter().sum();
    assert!(waited <= Duration::from_secs(1), "{waited:?}");
    assert!(err.attempts() < 10, "{}", err.attempts());
}

#[tokio::test]
async fn api_changed_on_404_405_410() {
    for status in [404, 405, 410] {
        let server = sync_answers(ResponseTemplate::new(status)).await;
        let err = verify_against(&server).await;
        assert!(
            matches!(err.kind(), ErrorKind::ApiChanged { status: s, .. } if *s == status),
            "{err:?}"
        );
        assert_eq!(err.category(), ErrorCategory::ApiChanged);
        assert!(
            err.to_string()
                .contains("/organization/sponsorship/sync: the cloud API changed"),
            "{err}"
        );
        assert_eq!(sync_requests(&server).await, 1, "not retried");
    }
}

#[tokio::test]
async fn redirects_never_leave_the_host() {
    let server = sync_answers(ResponseTemplate::new(307).insert_header(
        "Location",
        "https://elsewhere.example/organization/sponsorship/sync",
    ))
    .await;
    let err = verify_against(&server).await;
    assert!(
        matches!(err.kind(), ErrorKind::Redirected { status: 307 }),
        "{err:?}"
    );
    assert_eq!(err.category(), ErrorCategory::ApiChanged);
}

#[tokio::test]
async fn malformed_response() {
    let server =
        sync_answers(ResponseTemplate::new(200).set_body_string("<html>portal</html>")).await;
    let err = verify_against(&server).await;
    assert!(
        matches!(err.kind(), ErrorKind::MalformedResponse { status: 200, .. }),
        "{err:?}"
    );
    assert_eq!(err.category(), ErrorCategory::MalformedResponse);
    assert!(
        err.to_string().contains("sponsorship sync response"),
        "{err}"
    );
}

#[tokio::test]
async fn malformed_token_response() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/connect/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"token": 1})))
        .mount(&server)
        .await;
    let (client, _) = client(config(&server));
    let err = client.check_identity(Scope::Licensing).await.unwrap_err();
    assert_eq!(err.category(), ErrorCategory::MalformedResponse, "{err}");
}

#[test]
fn bad_extra_ca_bundle_is_a_config_error() {
    let mut cfg = config_for("https://identity.example", "https://api.example");
    cfg.extra_ca_pem = Some(b"not a certificate".to_vec());
    let err = CloudClient::new(cfg).unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Config, "{err}");
    assert!(err.to_string().contains("extra CA bundle"), "{err}");
}

/// A store whose writes fail.
struct BrokenStore(MemoryStore);

#[derive(Debug, thiserror::Error)]
#[error("disk full")]
struct DiskFull;

impl SponsorshipStore for BrokenStore {
    type Error = DiskFull;

    async fn sponsorships(&self, org: Org) -> Result<Vec<Sponsorship>, DiskFull> {
        Ok(self.0.rows(org))
    }
    async fn write_changes(&self, _: Org, _: &[RowChange]) -> Result<(), DiskFull> {
        Err(DiskFull)
    }
    async fn apply_batch(&self, _: Org, _: &BatchApplication) -> Result<AppliedBatch, DiskFull> {
        Err(DiskFull)
    }
    async fn sync_state(&self, org: Org) -> Result<SyncState, DiskFull> {
        Ok(self.0.state(org))
    }
    async fn save_next_due(
        &self,
        org: Org,
        due: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), DiskFull> {
        self.0.save_next_due(org, due).await.map_err(|_| DiskFull)
    }
    async fn save_sync_state(&self, org: Org, state: &SyncState) -> Result<(), DiskFull> {
        self.0
            .save_sync_state(org, state)
            .await
            .map_err(|_| DiskFull)
    }
    async fn try_lock_sync(
        &self,
        org: Org,
        lock: &SyncLock,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<LockOutcome, DiskFull> {
        self.0
            .try_lock_sync(org, lock, now)
            .await
            .map_err(|_| DiskFull)
    }
    async fn renew_sync_lock(&self, org: Org, lock: &SyncLock) -> Result<bool, DiskFull> {
        self.0
            .renew_sync_lock(org, lock)
            .await
            .map_err(|_| DiskFull)
    }
    async fn unlock_sync(&self, org: Org, token: &str) -> Result<(), DiskFull> {
        self.0.unlock_sync(org, token).await.map_err(|_| DiskFull)
    }
}

#[tokio::test]
async fn store_failure_is_reported_and_recorded() {
    let server = sync_answers(
        ResponseTemplate::new(200).set_body_json(serde_json::json!({"sponsorshipsBatch": []})),
    )
    .await;
    let (client, _) = client(config(&server));
    let store = BrokenStore(MemoryStore::new());
    let org = OrganizationId::new_random();
    let billing: BillingSyncConfig = billing();
    let err = client
        .sync_organization(&store, org, &billing, SyncOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Store(_)), "{err:?}");
    assert_eq!(err.category(), ErrorCategory::Store);
    assert!(err.to_string().contains("disk full"), "{err}");
    let state = store.0.state(org);
    assert_eq!(state.last_error.unwrap().category, ErrorCategory::Store);
}

#[tokio::test]
async fn the_proxy_is_used_with_its_credentials() {
    let (proxy, seen) = connect_proxy("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    let mut cfg = config_for(
        "https://identity.cloud-client-test.example",
        "https://api.cloud-client-test.example",
    );
    cfg.proxy = Some(Url::parse(&format!("http://user:ProxyPw99@{proxy}")).unwrap());
    let (client, _) = client(cfg);
    let err = client
        .check_identity(Scope::Installation)
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("ProxyPw99"), "{err}");
    let heads = seen.lock().unwrap().clone();
    assert!(
        heads[0].starts_with("CONNECT identity.cloud-client-test.example:443 "),
        "{heads:?}"
    );
    assert!(
        heads[0].contains("proxy-authorization: Basic dXNlcjpQcm94eVB3OTk="),
        "{heads:?}"
    );
}

#[tokio::test]
async fn loopback_and_no_proxy_hosts_bypass_the_proxy() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut cfg = config(&server);
    cfg.proxy = Some(Url::parse(&format!("http://127.0.0.1:{closed}")).unwrap());
    let (direct, _) = client(cfg.clone());
    direct.check_identity(Scope::Installation).await.unwrap();

    // A non-loopback host listed in NO_PROXY goes direct too (and fails on DNS, not the proxy).
    cfg.identity_url = Url::parse("https://identity.cloud-client-test.invalid").unwrap();
    cfg.no_proxy = Some("example.org, .cloud-client-test.invalid".into());
    cfg.retry.max_attempts = 1;
    let (direct, _) = client(cfg);
    let err = direct
        .check_identity(Scope::Installation)
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Dns, "{err}");
}

/// One request's budget holds for a request that hangs: the attempts share `max_total`
/// instead of each getting the whole per-request timeout (issue #16, item 7). Here the budget
/// is 1 s and the per-request timeout 10 s; before, the three attempts took 30 s.
#[tokio::test]
async fn a_hung_request_costs_its_budget_not_attempts_times_the_timeout() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    Mock::given(method("POST"))
        .and(path("/organization/sponsorship/sync"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"sponsorshipsBatch": []}))
                .set_delay(Duration::from_mins(1)),
        )
        .mount(&server)
        .await;
    let (client, _) = client(config(&server));
    let started = std::time::Instant::now();
    let err = client
        .verify_billing_sync_key(&billing())
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err.kind(), ErrorKind::Timeout), "{err:?}");
    assert!(
        took < Duration::from_secs(5),
        "took {took:?} for a 1 s budget"
    );
}

/// A failing token request names the identity host, not the API host it was fetched for.
#[tokio::test]
async fn a_token_failure_names_the_identity_host() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let api = MockServer::start().await;
    let cfg = config_for(
        &format!("http://127.0.0.1:{closed}/"),
        &api.uri().replace("127.0.0.1", "localhost"),
    );
    let (client, _) = client(cfg);
    let err = client
        .verify_billing_sync_key(&billing())
        .await
        .unwrap_err();
    assert_eq!(err.host(), Some("127.0.0.1"), "{err}");
    assert!(matches!(err.kind(), ErrorKind::Connect { .. }), "{err:?}");
}
