//! License sync: fetch the cloud organization's license (spec §11).

use reqwest::Method;
use secrecy::ExposeSecret;
use sponsorship_core::license::{
    LicenseError, LicenseVerifier, OrganizationLicense, VerifiedLicense,
};
use sponsorship_core::org::BillingSyncConfig;
use sponsorship_core::secret::RawSecret;
use sponsorship_core::wire::{LicenseRequest, Scope};

use crate::client::CloudClient;
use crate::error::{Error, ErrorKind};
use crate::transport::{Call, Endpoint};

/// Path of the license endpoint for a cloud organization, relative to the API URL.
pub fn license_path(billing: &BillingSyncConfig) -> String {
    format!("licenses/organization/{}", billing.cloud_organization_id)
}

impl CloudClient {
    /// Fetches the organization license from the cloud: `GET licenses/organization/{id}` with a
    /// JSON body `{"licenseKey","billingSyncKey"}` (the cloud expects a GET with a body), token
    /// scope `api.licensing`. The license is verified with `verifier` for this installation
    /// (its signature, then the real server's checks) before it is returned with its verified
    /// values; `Version N is not supported.` (from the cloud or the local check) is
    /// [`ErrorKind::UnsupportedLicenseVersion`], any other refusal
    /// [`ErrorKind::LicenseRefused`].
    ///
    /// `license_key` is the key of the organization's current license. Storing the license and
    /// the time of the sync is the caller's job.
    pub async fn fetch_license(
        &self,
        billing: &BillingSyncConfig,
        license_key: &RawSecret,
        verifier: &LicenseVerifier,
    ) -> Result<(OrganizationLicense, VerifiedLicense), Error> {
        let request = LicenseRequest {
            license_key: license_key.clone(),
            billing_sync_key: billing.billing_sync_key.to_raw(),
        };
        let body = serde_json::to_vec(&request).map_err(|e| {
            Error::new(ErrorKind::Config {
                reason: format!("could not serialize the license request: {e}"),
            })
        })?;
        let call = Call {
            method: Method::GET,
            base: &self.config.api_url,
            path: license_path(billing),
            content_type: "application/json; charset=utf-8",
            body: Some(body),
            bearer: Some(Scope::Licensing),
            batch: None,
            endpoint: Endpoint::License,
        };
        let host = self.config.api_url.host_str().unwrap_or("?").to_owned();
        let license: OrganizationLicense = self
            .execute(
                &call,
                &[
                    license_key.expose_secret(),
                    billing.billing_sync_key.expose_secret(),
                ],
            )
            .await?;
        let checked = verifier
            .verify(&license, Some(self.config.installation_id), (self.clock)())
            .map_err(|e| {
                let kind = match e {
                    LicenseError::UnsupportedVersion { version } => {
                        ErrorKind::UnsupportedLicenseVersion {
                            version: Some(version),
                        }
                    }
                    other => ErrorKind::LicenseRefused(other),
                };
                Error::new(kind).with_host(host)
            })?;
        tracing::info!(
            version = license.version,
            anchor = checked.anchor,
            "organization license fetched and verified"
        );
        Ok((license, checked))
    }
}
