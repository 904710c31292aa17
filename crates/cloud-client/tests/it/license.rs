//! License sync.

use cloud_client::ErrorKind;
use sponsorship_core::schedule::ErrorCategory;
use sponsorship_core::secret::RawSecret;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

pub fn license_json(version: u32) -> serde_json::Value {
    serde_json::json!({
        "id": cloud_org_id().to_string(),
        "name": "Acme",
        "planType": 20,
        "version": version,
        "licenseKey": LICENSE_KEY,
        "installationId": installation_id().to_string(),
        "selfHost": true,
        "seats": 50,
        "issued": "2026-01-01T00:00:00"
    })
}

async fn license_server(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    mount_token(&server).await;
    Mock::given(method("GET"))
        .and(path(format!("/licenses/organization/{}", cloud_org_id())))
        .respond_with(template)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn unsupported_version_from_the_local_check_says_what_to_do() {
    let server = license_server(ResponseTemplate::new(200).set_body_json(license_json(17))).await;
    let (client, _) = client(config(&server));
    let err = client
        .fetch_license(&billing(), &RawSecret::new(LICENSE_KEY))
        .await
        .unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::UnsupportedLicenseVersion { version: Some(17) }
    ));
    assert_eq!(err.category(), ErrorCategory::UnsupportedVersion);
    let text = err.to_string();
    assert!(text.starts_with("Version 17 is not supported."), "{text}");
    assert!(text.contains("Back up bwdata, update the server, then upload the license again"));
}

#[tokio::test]
async fn unsupported_version_from_the_cloud_is_the_same_kind() {
    let server = license_server(ResponseTemplate::new(400).set_body_json(serde_json::json!({
        "object": "error", "message": "Version 16 is not supported.", "validationErrors": null
    })))
    .await;
    let (client, _) = client(config(&server));
    let err = client
        .fetch_license(&billing(), &RawSecret::new(LICENSE_KEY))
        .await
        .unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::UnsupportedLicenseVersion { version: Some(16) }
    ));
}

#[tokio::test]
async fn license_for_another_installation_is_refused() {
    let mut json = license_json(15);
    json["installationId"] = serde_json::json!("11111111-3f4c-4d0e-9e57-aa7a1e5c9a10");
    let server = license_server(ResponseTemplate::new(200).set_body_json(json)).await;
    let (client, _) = client(config(&server));
    let err = client
        .fetch_license(&billing(), &RawSecret::new(LICENSE_KEY))
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::LicenseRefused(_)), "{err}");
    assert_eq!(err.category(), ErrorCategory::Rejected);
}

#[tokio::test]
async fn organization_not_found_is_not_an_api_change() {
    let server = license_server(ResponseTemplate::new(404).set_body_json(serde_json::json!({
        "object": "error", "message": "Organization not found."
    })))
    .await;
    let (client, _) = client(config(&server));
    let err = client
        .fetch_license(&billing(), &RawSecret::new(LICENSE_KEY))
        .await
        .unwrap_err();
    assert_eq!(
        err.category(),
        ErrorCategory::CloudOrganizationUnknown,
        "{err}"
    );
}

#[tokio::test]
async fn removed_license_endpoint_is_an_api_change() {
    // Lesson A10: the cloud once removed this endpoint.
    let server = license_server(ResponseTemplate::new(404)).await;
    let (client, _) = client(config(&server));
    let err = client
        .fetch_license(&billing(), &RawSecret::new(LICENSE_KEY))
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::ApiChanged, "{err}");
    assert!(
        err.to_string().contains("/licenses/organization/{id}"),
        "{err}"
    );
}
