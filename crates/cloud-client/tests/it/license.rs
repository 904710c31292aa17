//! License sync.

use chrono::TimeDelta;
use cloud_client::ErrorKind;
use sponsorship_core::cloud::LicenseSigner;
use sponsorship_core::license::{LicenseVerifier, OrganizationLicense};
use sponsorship_core::schedule::ErrorCategory;
use sponsorship_core::secret::RawSecret;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

/// The reference cloud's test signing key (trusted by [`verifier`] only).
const SIGNING_KEY: &str = include_str!("../../../cloud-emulator/src/licensing-key.pem");

fn signer() -> LicenseSigner {
    LicenseSigner::from_pkcs8_pem(SIGNING_KEY).unwrap()
}

/// Bitwarden's key and the test key.
pub fn verifier() -> LicenseVerifier {
    LicenseVerifier::default().trusting(signer().trust_anchor("test key"))
}

/// A license as the cloud issues it, signed (a version that cannot be signed stays unsigned).
pub fn license_json(version: u32) -> serde_json::Value {
    license_for(version, &installation_id().to_string())
}

fn license_for(version: u32, installation: &str) -> serde_json::Value {
    let mut license = OrganizationLicense::parse(
        &serde_json::json!({
            "id": cloud_org_id().to_string(),
            "name": "Acme",
            "planType": 20,
            "version": version,
            "licenseKey": LICENSE_KEY,
            "installationId": installation,
            "selfHost": true,
            "enabled": true,
            "licenseType": 1,
            "seats": 50,
        })
        .to_string(),
    )
    .unwrap();
    license.issued = Some(now() - TimeDelta::days(1));
    license.expires = Some(now() + TimeDelta::days(365));
    let _ = signer().sign(&mut license, now() - TimeDelta::hours(1));
    serde_json::to_value(license).unwrap()
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
        .fetch_license(&billing(), &RawSecret::new(LICENSE_KEY), &verifier())
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
        .fetch_license(&billing(), &RawSecret::new(LICENSE_KEY), &verifier())
        .await
        .unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::UnsupportedLicenseVersion { version: Some(16) }
    ));
}

#[tokio::test]
async fn license_for_another_installation_is_refused() {
    let json = license_for(15, "11111111-3f4c-4d0e-9e57-aa7a1e5c9a10");
    let server = license_server(ResponseTemplate::new(200).set_body_json(json)).await;
    let (client, _) = client(config(&server));
    let err = client
        .fetch_license(&billing(), &RawSecret::new(LICENSE_KEY), &verifier())
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::LicenseRefused(_)), "{err}");
    assert!(
        err.to_string()
            .contains("The installation ID does not match the current installation."),
        "{err}"
    );
    assert_eq!(err.category(), ErrorCategory::Rejected);
}

#[tokio::test]
async fn an_unsigned_or_untrusted_license_is_refused() {
    let mut json = license_json(15);
    json["token"] = serde_json::Value::Null;
    json["signature"] = serde_json::Value::Null;
    let server = license_server(ResponseTemplate::new(200).set_body_json(json)).await;
    let (client, _) = client(config(&server));
    let err = client
        .fetch_license(&billing(), &RawSecret::new(LICENSE_KEY), &verifier())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("The license verification failed."),
        "{err}"
    );
    let server = license_server(ResponseTemplate::new(200).set_body_json(license_json(15))).await;
    let (untrusting, _) = crate::support::client(config(&server));
    let err = untrusting
        .fetch_license(
            &billing(),
            &RawSecret::new(LICENSE_KEY),
            &LicenseVerifier::default(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
}

#[tokio::test]
async fn organization_not_found_is_not_an_api_change() {
    let server = license_server(ResponseTemplate::new(404).set_body_json(serde_json::json!({
        "object": "error", "message": "Organization not found."
    })))
    .await;
    let (client, _) = client(config(&server));
    let err = client
        .fetch_license(&billing(), &RawSecret::new(LICENSE_KEY), &verifier())
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
        .fetch_license(&billing(), &RawSecret::new(LICENSE_KEY), &verifier())
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::ApiChanged, "{err}");
    assert!(
        err.to_string().contains("/licenses/organization/{id}"),
        "{err}"
    );
}
