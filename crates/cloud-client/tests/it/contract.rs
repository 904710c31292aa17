//! The wire contract: literal JSON fixtures (`tests/fixtures/wire/`), written from the spec, of
//! every request the self-hosted side sends and every answer the real cloud gives. The
//! client's serializer must write the request fixtures exactly, and its parser and error
//! classification must read the answer fixtures as the real cloud means them: a change that
//! breaks the wire fails here.

use chrono::{TimeZone, Utc};
use cloud_client::ErrorKind;
use serde_json::Value;
use sponsorship_core::ids::MemberId;
use sponsorship_core::license::OrganizationLicense;
use sponsorship_core::secret::{BillingSyncKey, RawSecret};
use sponsorship_core::wire::{
    LicenseRequest, SponsorshipSyncItem, SponsorshipSyncRequest, SponsorshipSyncResponse,
};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

fn fixture(name: &str) -> String {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/wire")
        .join(name);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

const KEY: &str = "Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd";

#[test]
fn the_sync_request_is_written_exactly_as_spec_5_3() {
    let request = SponsorshipSyncRequest {
        billing_sync_key: BillingSyncKey::parse(KEY).unwrap().to_raw(),
        sponsoring_organization_cloud_id: "0b7c2f0e-1111-2222-3333-444455556666".parse().unwrap(),
        sponsorships_batch: vec![SponsorshipSyncItem {
            sponsoring_organization_user_id: "9e1d0000-0000-4000-8000-000000000001"
                .parse::<MemberId>()
                .unwrap(),
            friendly_name: Some("kid@home.example".into()),
            offered_to_email: Some("kid@home.example".into()),
            plan_sponsorship_type: sponsorship_core::plan::PlanSponsorshipType::default(),
            last_sync_date: None,
            valid_until: None,
            to_delete: false,
        }],
    };
    // Member order too: the fixture is the spec's order.
    assert_eq!(
        serde_json::to_string(&request).unwrap(),
        fixture("sync-request.json").trim()
    );
    let license = LicenseRequest {
        license_key: RawSecret::new("LK-acme"),
        billing_sync_key: RawSecret::new(KEY),
    };
    assert_eq!(
        serde_json::to_value(&license).unwrap(),
        json("license-request.json")
    );
}

#[test]
fn the_clouds_answers_parse_as_they_are_meant() {
    let response: SponsorshipSyncResponse =
        serde_json::from_str(&fixture("sync-response.json")).unwrap();
    let item = &response.sponsorships_batch[0];
    // Seven fraction digits with `Z`, and a database value without an offset (UTC).
    assert_eq!(
        item.last_sync_date.map(|t| t.timestamp_subsec_nanos()),
        Some(123_456_700)
    );
    assert_eq!(
        item.valid_until,
        Some(Utc.with_ymd_and_hms(2027, 12, 2, 10, 0, 0).unwrap())
    );
    assert!(!item.cloud_sponsorship_removed && !item.to_delete);

    let license = OrganizationLicense::parse(&fixture("license.json")).unwrap();
    assert_eq!(license.version, 15);
    assert!(license.use_admin_sponsored_families);
    assert!(license.token.as_deref().unwrap().starts_with("eyJ"));
    assert_eq!(license.signature.as_deref(), Some("c2lnbmF0dXJl"));
    assert_eq!(license.other["hash"], "abc+/def=", "\\u002B is a plus");
    assert!(!format!("{license:?}").contains("LK-acme"));
}

/// Each error the real cloud gives, answered on the endpoint it comes from.
#[tokio::test]
async fn the_clouds_errors_are_classified() {
    /// Route, fixture, status, which call, and the kind it must be.
    type Case = (
        &'static str,
        &'static str,
        u16,
        &'static str,
        fn(&ErrorKind) -> bool,
    );
    let cases: [Case; 7] = [
        (
            "/connect/token",
            "token-invalid-client.json",
            400,
            "identity",
            |k| matches!(k, ErrorKind::IdentityRejected { error, .. } if error == "invalid_client"),
        ),
        (
            "/organization/sponsorship/sync",
            "error-invalid-billing-sync-key.json",
            400,
            "sync",
            |k| matches!(k, ErrorKind::BillingSyncKeyInvalid),
        ),
        (
            "/organization/sponsorship/sync",
            "error-invalid-organization.json",
            400,
            "sync",
            |k| matches!(k, ErrorKind::CloudOrganizationUnknown { .. }),
        ),
        (
            "/organization/sponsorship/sync",
            "error-unhandled.json",
            500,
            "sync",
            |k| matches!(k, ErrorKind::SyncServerError { status: 500 }),
        ),
        (
            "/licenses/organization/",
            "error-resource-not-found.json",
            404,
            "license",
            |k| matches!(k, ErrorKind::CloudOrganizationUnknown { .. }),
        ),
        (
            "/licenses/organization/",
            "error-unsupported-version.json",
            400,
            "license",
            |k| {
                matches!(
                    k,
                    ErrorKind::UnsupportedLicenseVersion { version: Some(17) }
                )
            },
        ),
        (
            "/licenses/organization/",
            "error-invalid-license-key.json",
            400,
            "license",
            |k| matches!(k, ErrorKind::Rejected { status: 400, message } if message == "Invalid license key."),
        ),
    ];
    for (route, file, status, call, expected) in cases {
        let server = MockServer::start().await;
        if route != "/connect/token" {
            mount_token(&server).await;
        }
        let route = if route.ends_with('/') {
            format!("{route}{}", billing().cloud_organization_id)
        } else {
            route.to_owned()
        };
        Mock::given(method(if call == "license" { "GET" } else { "POST" }))
            .and(path(route))
            .respond_with(
                ResponseTemplate::new(status).set_body_raw(fixture(file), "application/json"),
            )
            .mount(&server)
            .await;
        let (client, _) = client(config(&server));
        let err = match call {
            "identity" => client
                .check_identity(cloud_client::Scope::Installation)
                .await
                .map(drop),
            "sync" => client.verify_billing_sync_key(&billing()).await,
            _ => client
                .fetch_license(
                    &billing(),
                    &RawSecret::new(LICENSE_KEY),
                    &crate::license::verifier(),
                )
                .await
                .map(drop),
        }
        .unwrap_err();
        assert!(expected(err.kind()), "{file}: {err:?}");
    }
}
