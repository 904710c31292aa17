//! Secrets and e-mail addresses never appear in errors or in tracing output.

use std::io;
use std::sync::{Arc, Mutex};

use cloud_client::{Error, Scope, SyncOptions};
use sponsorship_core::ids::OrganizationId;
use sponsorship_core::plan::PlanType;
use sponsorship_core::secret::RawSecret;
use sponsorship_core::sponsorship::RowChange;
use sponsorship_core::store::MemoryStore;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn assert_clean(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows a secret: {text}");
    }
    assert!(
        !text.contains(EMAIL_DOMAIN),
        "{what} shows an e-mail: {text}"
    );
}

fn check(err: &Error) {
    assert_clean("Display", &err.to_string());
    assert_clean("Debug", &format!("{err:?}"));
    assert_clean("kind Display", &err.kind().to_string());
}

/// A cloud whose error answers echo the secrets and e-mails each request carried.
async fn echoing_cloud(status: u16) -> MockServer {
    let server = MockServer::start().await;
    let sync_echo = format!(
        "bad key {BILLING_KEY} for member1@{EMAIL_DOMAIN} with {INSTALLATION_KEY} and {ACCESS_TOKEN}"
    );
    let license_echo = format!("{sync_echo} and {LICENSE_KEY}");
    Mock::given(method("POST"))
        .and(path("/connect/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body(86_400)))
        .mount(&server)
        .await;
    for (prefix, echo) in [("organization", sync_echo), ("licenses", license_echo)] {
        Mock::given(path_regex(format!("^/{prefix}/")))
            .respond_with(
                ResponseTemplate::new(status)
                    .set_body_json(serde_json::json!({"object": "error", "message": echo})),
            )
            .mount(&server)
            .await;
    }
    server
}

#[tokio::test]
async fn errors_and_traces_never_show_secrets_or_emails() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);

    let org = OrganizationId::new_random();
    let store = MemoryStore::new();
    for i in 0..3 {
        store.write(org, RowChange::Upsert(row(org, i)));
    }
    let mut errors = Vec::new();

    // A successful sync (traces only).
    let server = MockServer::start().await;
    mount_token(&server).await;
    LedgerCloud::new(PlanType::EnterpriseAnnually)
        .mount(&server)
        .await;
    let (c, _) = client(config(&server));
    c.sync_organization(&store, org, &billing(), SyncOptions::default())
        .await
        .unwrap();

    // Cloud messages that echo secrets and e-mails: 400 (rejected), 200 with a body that does
    // not parse, 500.
    for status in [400, 422, 200, 500] {
        let server = echoing_cloud(status).await;
        let (c, _) = client(config(&server));
        errors.push(
            c.sync_organization(&store, org, &billing(), SyncOptions::default())
                .await
                .unwrap_err(),
        );
        errors.push(
            c.fetch_license(
                &billing(),
                &RawSecret::new(LICENSE_KEY),
                &crate::license::verifier(),
            )
            .await
            .unwrap_err(),
        );
    }

    // Identity rejections, with the key echoed in the OAuth error.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/connect/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": format!("invalid_client {INSTALLATION_KEY}")
        })))
        .mount(&server)
        .await;
    let (c, _) = client(config(&server));
    errors.push(c.check_identity(Scope::Installation).await.unwrap_err());
    errors.push(c.verify_billing_sync_key(&billing()).await.unwrap_err());

    // Transport failures.
    let (c, _) = client(config_for(
        "http://127.0.0.1:1",
        "https://cloud-client-test.invalid",
    ));
    errors.push(c.check_identity(Scope::Installation).await.unwrap_err());

    assert!(errors.len() >= 10);
    for err in &errors {
        check(err);
    }
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(
        messages.iter().any(|m| m.contains("[REDACTED]")),
        "the echoed secrets were redacted, not dropped: {messages:#?}"
    );

    drop(guard);
    let traces = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(traces.contains("cloud response"), "{traces}");
    assert!(traces.contains("status=200"), "{traces}");
    assert!(traces.contains("batch stored"), "{traces}");
    // Each request's span and event: host, path, batch, status, duration.
    for field in [
        "host=127.0.0.1",
        "path=/organization/sponsorship/sync",
        "path=/connect/token",
        "batch=1",
        "duration_ms=",
        "status=400",
    ] {
        assert!(traces.contains(field), "{field} missing: {traces}");
    }
    assert_clean("tracing output", &traces);
}

/// The transport refuses a plain-http endpoint on a non-loopback host before anything is sent,
/// with the message `env check` gives: the installation key would travel in clear text.
#[test]
fn plain_http_to_a_remote_host_is_refused_where_the_client_is_built() {
    for (identity, api) in [
        ("http://identity.example.com/", "https://api.example.com/"),
        ("https://identity.example.com/", "http://10.0.0.5/api/"),
    ] {
        let err = cloud_client::CloudClient::new(config_for(identity, api)).unwrap_err();
        assert!(
            matches!(err.kind(), cloud_client::ErrorKind::Config { .. }),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("clear text"), "{text}");
        assert!(!text.contains(INSTALLATION_KEY), "{text}");
    }
    assert!(
        cloud_client::CloudClient::new(config_for("http://127.0.0.1:9/", "http://[::1]:9/"))
            .is_ok()
    );
}
