//! The exact requests: form fields, headers, JSON bodies, URL joining with a base path.

use cloud_client::Scope;
use sponsorship_core::ids::OrganizationId;
use sponsorship_core::store::MemoryStore;
use wiremock::matchers::{body_json, body_string, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

#[tokio::test]
async fn token_request_is_the_client_credentials_form() {
    let server = MockServer::start().await;
    let form = format!(
        "grant_type=client_credentials&scope=api.licensing&client_id=installation.{}&client_secret={INSTALLATION_KEY}",
        installation_id()
    );
    Mock::given(method("POST"))
        .and(path("/connect/token"))
        .and(header("accept", "application/json"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string(form))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body(3600)))
        .expect(1)
        .mount(&server)
        .await;
    let (client, _) = client(config(&server));
    let info = client.check_identity(Scope::Licensing).await.unwrap();
    assert_eq!(info.scope, Scope::Licensing);
    assert_eq!(info.lifetime.as_secs(), 3600);
    assert_eq!(info.expires_at, now() + chrono::TimeDelta::hours(1));
}

#[tokio::test]
async fn base_urls_with_a_path_keep_it() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/identity/connect/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body(3600)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/bw/organization/sponsorship/sync"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"sponsorshipsBatch": []})),
        )
        .expect(1)
        .mount(&server)
        .await;
    // No trailing slash on either base: the reference would glue `bworganization/...`.
    let cfg = config_for(
        &format!("{}/identity", server.uri()),
        &format!("{}/bw", server.uri()),
    );
    let (client, _) = client(cfg);
    client.verify_billing_sync_key(&billing()).await.unwrap();
}

#[tokio::test]
async fn sync_request_carries_bearer_and_exact_json() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    let org = OrganizationId::new_random();
    let store = MemoryStore::new();
    let r = row(org, 1);
    store.write(
        org,
        sponsorship_core::sponsorship::RowChange::Upsert(r.clone()),
    );
    let expected = serde_json::json!({
        "billingSyncKey": BILLING_KEY,
        "sponsoringOrganizationCloudId": cloud_org_id().to_string(),
        "sponsorshipsBatch": [{
            "sponsoringOrganizationUserId": r.sponsoring_member_id.to_string(),
            "friendlyName": "member1@home.example",
            "offeredToEmail": "member1@home.example",
            "planSponsorshipType": 0,
            "lastSyncDate": null,
            "validUntil": null,
            "toDelete": false
        }]
    });
    Mock::given(method("POST"))
        .and(path("/organization/sponsorship/sync"))
        .and(header(
            "authorization",
            format!("Bearer {ACCESS_TOKEN}").as_str(),
        ))
        .and(header("accept", "application/json"))
        .and(header("content-type", "application/json; charset=utf-8"))
        .and(body_json(expected))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "sponsorshipsBatch": [{
                "sponsoringOrganizationUserId": r.sponsoring_member_id.to_string(),
                "friendlyName": "member1@home.example",
                "offeredToEmail": "member1@home.example",
                "planSponsorshipType": 0,
                "lastSyncDate": "2026-11-24T12:00:01.1234567",
                "validUntil": null,
                "toDelete": false,
                "cloudSponsorshipRemoved": false,
                "isAdminInitiated": false
            }]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let (client, _) = client(config(&server));
    let report = client
        .sync_organization(
            &store,
            org,
            &billing(),
            cloud_client::SyncOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!((report.sent, report.updated), (1, 1));
    let stored = store.rows(org);
    assert_eq!(
        stored[0].last_sync_date,
        sponsorship_core::wire::time::parse("2026-11-24T12:00:01.1234567Z")
    );
    // The token was asked for with the installation scope.
    let requests = server.received_requests().await.unwrap();
    let token_form = String::from_utf8(requests[0].body.clone()).unwrap();
    assert!(
        token_form.contains("scope=api.installation"),
        "{token_form}"
    );
}

#[tokio::test]
async fn license_request_is_a_get_with_a_json_body() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    Mock::given(method("GET"))
        .and(path(format!("/licenses/organization/{}", cloud_org_id())))
        .and(header(
            "authorization",
            format!("Bearer {ACCESS_TOKEN}").as_str(),
        ))
        .and(header("content-type", "application/json; charset=utf-8"))
        .and(body_json(serde_json::json!({
            "licenseKey": LICENSE_KEY,
            "billingSyncKey": BILLING_KEY
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(crate::license::license_json(15)))
        .expect(1)
        .mount(&server)
        .await;
    let (client, _) = client(config(&server));
    let (license, _) = client
        .fetch_license(
            &billing(),
            &sponsorship_core::secret::RawSecret::new(LICENSE_KEY),
            &crate::license::verifier(),
        )
        .await
        .unwrap();
    assert_eq!(license.version, 15);
    let requests = server.received_requests().await.unwrap();
    let token_form = String::from_utf8(requests[0].body.clone()).unwrap();
    assert!(token_form.contains("scope=api.licensing"), "{token_form}");
}
