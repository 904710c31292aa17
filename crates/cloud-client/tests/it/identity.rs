//! Tokens: cached per scope, refreshed before expiry, refreshed once on a 401, no back-off.

use cloud_client::{ErrorKind, Scope};
use sponsorship_core::schedule::ErrorCategory;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

fn empty_sync() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({"sponsorshipsBatch": []}))
}

#[tokio::test]
async fn tokens_are_cached_per_scope() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/connect/token"))
        .and(body_string_contains("scope=api.installation"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body(86_400)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/organization/sponsorship/sync"))
        .respond_with(empty_sync())
        .expect(3)
        .mount(&server)
        .await;
    let (client, _) = client(config(&server));
    for _ in 0..3 {
        client.verify_billing_sync_key(&billing()).await.unwrap();
    }
}

#[tokio::test]
async fn a_token_due_for_refresh_is_renewed_before_use() {
    // A lifetime of zero seconds is always inside the refresh margin: every call gets a new
    // token instead of sending one that is about to expire (the reference refreshes only
    // five minutes *after* expiry, QUIRK 14.10).
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/connect/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body(0)))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/organization/sponsorship/sync"))
        .respond_with(empty_sync())
        .expect(2)
        .mount(&server)
        .await;
    let (client, _) = client(config(&server));
    client.verify_billing_sync_key(&billing()).await.unwrap();
    client.verify_billing_sync_key(&billing()).await.unwrap();
}

#[tokio::test]
async fn a_401_refreshes_the_token_once_and_retries() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/connect/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body(86_400)))
        .expect(2)
        .mount(&server)
        .await;
    // The first sync request is refused (a revoked token); the next one is accepted.
    Mock::given(method("POST"))
        .and(path("/organization/sponsorship/sync"))
        .respond_with(ResponseTemplate::new(401))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/organization/sponsorship/sync"))
        .and(header(
            "authorization",
            format!("Bearer {ACCESS_TOKEN}").as_str(),
        ))
        .respond_with(empty_sync())
        .expect(1)
        .mount(&server)
        .await;
    let (client, waits) = client(config(&server));
    client.verify_billing_sync_key(&billing()).await.unwrap();
    assert!(waits.all().is_empty(), "a refresh does not wait");
}

#[tokio::test]
async fn a_second_401_with_a_fresh_token_is_an_identity_error() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    Mock::given(method("POST"))
        .and(path("/organization/sponsorship/sync"))
        .respond_with(ResponseTemplate::new(401))
        .expect(2)
        .mount(&server)
        .await;
    let (client, _) = client(config(&server));
    let err = client
        .verify_billing_sync_key(&billing())
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::TokenRefused), "{err}");
    assert_eq!(err.category(), ErrorCategory::IdentityRejected);
    assert!(err.to_string().contains("same region"), "{err}");
}

#[tokio::test]
async fn invalid_client_names_the_host_and_the_region_and_does_not_back_off() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/connect/token"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(serde_json::json!({"error": "invalid_client"})),
        )
        // Asked again on every call: no 24 h back-off (lesson C2).
        .expect(3)
        .mount(&server)
        .await;
    let (client, waits) = client(config(&server));
    for _ in 0..2 {
        let err = client
            .check_identity(Scope::Installation)
            .await
            .unwrap_err();
        assert_eq!(err.category(), ErrorCategory::IdentityRejected);
        assert_eq!(err.attempts(), 1, "not retried");
        let text = err.to_string();
        assert!(
            text.starts_with(
                "installation id/key rejected by 127.0.0.1 (invalid_client); created for another region?"
            ),
            "{text}"
        );
        assert!(text.contains("category identity-rejected"), "{text}");
    }
    assert!(waits.all().is_empty());
    // A sync request is never sent without a token.
    let err = client
        .verify_billing_sync_key(&billing())
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::IdentityRejected);
    let requests = server.received_requests().await.unwrap();
    assert!(requests.iter().all(|r| r.url.path() == "/connect/token"));
}

#[tokio::test]
async fn a_bare_401_from_identity_is_a_rejected_installation_not_a_refused_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/connect/token"))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&server)
        .await;
    let (client, _waits) = client(config(&server));
    let err = client
        .check_identity(Scope::Installation)
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::IdentityRejected);
    assert!(
        matches!(err.kind(), ErrorKind::IdentityRejected { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("installation id/key rejected by 127.0.0.1 (HTTP 401)"),
        "{err}"
    );
}
