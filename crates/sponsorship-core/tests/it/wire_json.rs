//! Wire JSON against the spec's examples, literally.

use crate::fixtures::*;
use serde_json::json;
use sponsorship_core::ids::CloudOrganizationId;
use sponsorship_core::secret::{BillingSyncKey, RawSecret};
use sponsorship_core::sync;
use sponsorship_core::wire::{
    SponsorshipSyncRequest, SponsorshipSyncResponse, TokenErrorResponse, TokenResponse,
};

#[test]
fn request_body_has_the_exact_shape_of_spec_5_3() {
    let mut sh = SelfHosted::default();
    sh.offer(&member(1), "me@home.example", t0());
    let plan = plan_all(&sh.all(), sync::BATCH_SIZE);
    let key = BillingSyncKey::parse("q0W3q0W3q0W3q0W3q0W3q0W3q0W3q0").unwrap();
    let cloud = CloudOrganizationId::from_uuid(uuid(2));
    let body = serde_json::to_value(plan.batches[0].request(key.to_raw(), cloud)).unwrap();
    assert_eq!(
        body,
        json!({
            "billingSyncKey": "q0W3q0W3q0W3q0W3q0W3q0W3q0W3q0",
            "sponsoringOrganizationCloudId": "10000000-0000-4000-8000-000000000002",
            "sponsorshipsBatch": [{
                "sponsoringOrganizationUserId": "10000000-0000-4000-8000-0000000003e9",
                "friendlyName": "me@home.example",
                "offeredToEmail": "me@home.example",
                "planSponsorshipType": 0,
                "lastSyncDate": null,
                "validUntil": null,
                "toDelete": false
            }]
        })
    );
}

#[test]
fn response_from_the_cloud_side_has_the_shape_of_spec_5_4() {
    let mut sh = SelfHosted::default();
    let mut cloud = Cloud::default();
    sh.offer(&member(1), "me@home.example", t0());
    let plan = plan_all(&sh.all(), sync::BATCH_SIZE);
    let (outcome, _) = cloud
        .ledger
        .sync_batch(&cloud.org, &plan.batches[0].items, hours(1), || {
            sponsorship_core::ids::SponsorshipId::from_uuid(uuid(3))
        })
        .unwrap();
    let body = serde_json::to_value(&outcome.response).unwrap();
    assert_eq!(
        body,
        json!({"sponsorshipsBatch": [{
            "sponsoringOrganizationUserId": "10000000-0000-4000-8000-0000000003e9",
            "friendlyName": "me@home.example",
            "offeredToEmail": "me@home.example",
            "planSponsorshipType": 0,
            "lastSyncDate": "2026-11-24T13:00:00Z",
            "validUntil": null,
            "toDelete": false,
            "cloudSponsorshipRemoved": false,
            "isAdminInitiated": false
        }]})
    );
    let back: SponsorshipSyncResponse = serde_json::from_value(body).unwrap();
    assert_eq!(back, outcome.response);
}

#[test]
fn token_bodies() {
    let ok: TokenResponse = serde_json::from_value(json!({
        "access_token": "eyJhbGciOi.x.y", "expires_in": 86400, "token_type": "Bearer", "scope": "api.installation"
    }))
    .unwrap();
    assert_eq!(ok.expires_in, 86_400);
    assert!(!format!("{ok:?}").contains("eyJ"));
    let err: TokenErrorResponse =
        serde_json::from_value(json!({"error": "invalid_client"})).unwrap();
    assert_eq!(err.error, "invalid_client");
    assert_eq!(
        serde_json::to_value(&err).unwrap(),
        json!({"error": "invalid_client"})
    );
}

#[test]
fn null_batch_is_refused_when_parsing_a_request() {
    let bad = json!({"billingSyncKey": "x", "sponsoringOrganizationCloudId": "10000000-0000-4000-8000-000000000002", "sponsorshipsBatch": null});
    assert!(serde_json::from_value::<SponsorshipSyncRequest>(bad).is_err());
    assert_eq!(
        format!("{:?}", RawSecret::new("x")),
        "RawSecret([REDACTED])"
    );
}
