//! Request binding as the real cloud's ASP.NET model binding does it (spec §3): JSON member
//! names match case-insensitively, and a missing member binds to its type's default (`null`, an
//! empty GUID, `false`) instead of failing, so the action decides what a missing value means.
//!
//! The fast path parses the body into the wire types directly and watches for members it does
//! not know: what our own client sends (camelCase, every member present) never leaves it. Any
//! other body is parsed into a tree whose member names are mapped onto the known names first.

use axum::body::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sponsorship_core::ids::CloudOrganizationId;
use sponsorship_core::secret::RawSecret;
use sponsorship_core::wire::{LicenseRequest, SponsorshipSyncItem, SponsorshipSyncRequest};

use super::{json_body, model_state};
use crate::problem::ApiError;

/// Every member name of the request models this cloud binds, as the models spell them.
const KNOWN: &[&str] = &[
    "billingSyncKey",
    "sponsoringOrganizationCloudId",
    "sponsorshipsBatch",
    "sponsoringOrganizationUserId",
    "friendlyName",
    "offeredToEmail",
    "planSponsorshipType",
    "lastSyncDate",
    "validUntil",
    "toDelete",
    "licenseKey",
];

/// `OrganizationSponsorshipSyncRequestModel` as bound: every member may be missing.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct SyncBody {
    pub(crate) billing_sync_key: Option<RawSecret>,
    pub(crate) sponsoring_organization_cloud_id: Option<CloudOrganizationId>,
    /// Missing or `null`: the action fails with a 500 once the key is valid (spec §5.3).
    pub(crate) sponsorships_batch: Option<Vec<SponsorshipSyncItem>>,
}

/// `SelfHostedOrganizationLicenseRequestModel` as bound.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct LicenseBody {
    pub(crate) license_key: Option<RawSecret>,
    pub(crate) billing_sync_key: Option<RawSecret>,
}

impl From<SponsorshipSyncRequest> for SyncBody {
    fn from(r: SponsorshipSyncRequest) -> Self {
        Self {
            billing_sync_key: Some(r.billing_sync_key),
            sponsoring_organization_cloud_id: Some(r.sponsoring_organization_cloud_id),
            sponsorships_batch: Some(r.sponsorships_batch),
        }
    }
}

impl From<LicenseRequest> for LicenseBody {
    fn from(r: LicenseRequest) -> Self {
        Self {
            license_key: Some(r.license_key),
            billing_sync_key: Some(r.billing_sync_key),
        }
    }
}

/// Binds a sync request body.
pub(crate) fn sync_body(body: &Bytes) -> Result<SyncBody, ApiError> {
    bind::<SponsorshipSyncRequest, SyncBody>(body)
}

/// Binds a license request body.
pub(crate) fn license_body(body: &Bytes) -> Result<LicenseBody, ApiError> {
    bind::<LicenseRequest, LicenseBody>(body)
}

/// `Strict` is the wire type (fast path); `Bound` the lenient model it converts into.
fn bind<Strict, Bound>(body: &Bytes) -> Result<Bound, ApiError>
where
    Strict: DeserializeOwned + Into<Bound>,
    Bound: DeserializeOwned,
{
    let mut unknown = false;
    let de = &mut serde_json::Deserializer::from_slice(body);
    if let Ok(strict) = serde_ignored::deserialize::<_, _, Strict>(de, |_| unknown = true)
        && !unknown
    {
        return Ok(strict.into());
    }
    let mut tree: Value = json_body(body)?;
    canonical_names(&mut tree);
    serde_path_to_error::deserialize(tree).map_err(model_state)
}

/// Renames every object member whose name matches a known name case-insensitively.
fn canonical_names(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let renames: Vec<(String, &str)> = map
                .keys()
                .filter_map(|k| {
                    KNOWN
                        .iter()
                        .find(|known| known.eq_ignore_ascii_case(k) && **known != k)
                        .map(|known| (k.clone(), *known))
                })
                .collect();
            for (from, to) in renames {
                if let Some(v) = map.remove(&from) {
                    map.insert(to.to_owned(), v);
                }
            }
            map.values_mut().for_each(canonical_names);
        }
        Value::Array(items) => items.iter_mut().for_each(canonical_names),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn member_names_bind_in_any_casing_and_missing_members_are_defaults() {
        let body = Bytes::from_static(
            br#"{"BillingSyncKey":"k","SPONSORINGORGANIZATIONCLOUDID":"0b7c2f0e-1111-2222-3333-444455556666",
                "sponsorshipsbatch":[{"SponsoringOrganizationUserId":"9e1d0000-0000-4000-8000-000000000001","ToDelete":true}]}"#,
        );
        let bound = sync_body(&body).unwrap();
        assert_eq!(bound.billing_sync_key.unwrap().expose_secret(), "k");
        assert!(bound.sponsoring_organization_cloud_id.is_some());
        let items = bound.sponsorships_batch.unwrap();
        assert!(items[0].to_delete, "a PascalCase member is not ignored");

        let bound = sync_body(&Bytes::from_static(b"{}")).unwrap();
        assert!(bound.billing_sync_key.is_none() && bound.sponsorships_batch.is_none());

        let bound = license_body(&Bytes::from_static(br#"{"LICENSEKEY":"lk"}"#)).unwrap();
        assert_eq!(bound.license_key.unwrap().expose_secret(), "lk");
        assert!(bound.billing_sync_key.is_none());
    }

    #[test]
    fn a_body_that_is_not_json_is_a_model_state_error() {
        assert!(matches!(
            sync_body(&Bytes::from_static(b"{")),
            Err(ApiError::ModelState(..))
        ));
    }
}
