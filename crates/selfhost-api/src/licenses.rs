//! H12–H14: "Sync license", the license upload and the subscription page's data.

use std::fmt::Write as _;

use chrono::TimeDelta;
use cloud_client::ErrorKind;
use sponsorship_core::ids::OrganizationId;
use sponsorship_core::license::{LicenseError, OrganizationLicense, VerifiedLicense};
use sponsorship_core::org::CLOUD_COMMUNICATION_DISABLED;
use sponsorship_core::plan::ProductTier;
use sponsorship_core::store::{LockOutcome, SponsorshipStore, SyncLock};

use crate::api::SelfHostedApi;
use crate::connections::judge;
use crate::host::{Host, User};
use crate::json::{ApiError, internal};
use crate::models::{PlanResponse, SubscriptionResponse};

/// The largest upload the reference server reads as a license (`Content-Length` ≤ 51 200).
pub const LICENSE_UPLOAD_LIMIT: usize = 51_200;

/// The reference server's grace period of a self-hosted subscription.
const GRACE_PERIOD: TimeDelta = TimeDelta::days(60);

const CLOUD_CALL_FAILED: &str = "An error has occurred. Check your internet connection and ensure the billing token is correct.";

fn license_refused(e: &LicenseError) -> ApiError {
    match e {
        LicenseError::Malformed(_) => ApiError::bad_request("Invalid license"),
        other => ApiError::bad_request(other.to_string()),
    }
}

impl<H: Host> SelfHostedApi<H> {
    /// H12 "Sync license": fetches the organization's license from the cloud with the billing
    /// sync key, checks it, stores it and records the time.
    pub async fn sync_license(&self, user: &User, org: OrganizationId) -> Result<(), ApiError> {
        if !self.owns(user, org).await? {
            return Err(ApiError::not_found());
        }
        let organization = self.organization_of(org).await?;
        let Some(connection) = self.stored_connection(org).await? else {
            return Err(ApiError::not_found());
        };
        let host = self.host();
        let Some(cloud) = host.cloud() else {
            return Err(ApiError::bad_request(
                CLOUD_COMMUNICATION_DISABLED
                    .trim_start_matches("Failed to sync instance with cloud - "),
            ));
        };
        let state = self.sync_state(org).await?;
        let billing = judge(org, &organization, Some(connection), &state)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let Some(current) = &organization.license else {
            return Err(ApiError::bad_request("Cannot verify license file."));
        };
        let (license, checked) = cloud
            .fetch_license(&billing, &current.license_key, host.license_verifier())
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::UnsupportedLicenseVersion {
                    version: Some(version),
                } => ApiError::bad_request(format!("Version {version} is not supported.")),
                ErrorKind::LicenseRefused(refused) => license_refused(refused),
                _ => {
                    tracing::warn!(organization = %org, error = %e, "license sync failed");
                    ApiError::bad_request(CLOUD_CALL_FAILED)
                }
            })?;
        // The time is part of the sync state, which a sync records whole before it releases
        // the organization's lock: under that lock, neither write can undo the other.
        let store = host.store();
        let now = host.now();
        let lock = SyncLock {
            holder: "selfhost-api license sync".to_owned(),
            token: uuid::Uuid::new_v4().to_string(),
            acquired_at: now,
            expires_at: now + TimeDelta::minutes(1),
        };
        match store
            .try_lock_sync(org, &lock, now)
            .await
            .map_err(|e| internal("taking the sync lock", &e))?
        {
            LockOutcome::Acquired => {}
            LockOutcome::HeldBy { .. } => {
                return Err(ApiError::bad_request(
                    "A sync of this organization is running: select Sync license again when it has finished.",
                ));
            }
        }
        let recorded = async {
            self.store_license(org, license, &checked).await?;
            let mut state = self.sync_state(org).await?;
            state.last_license_sync = Some(now);
            store
                .save_sync_state(org, &state)
                .await
                .map_err(|e| internal("recording the license sync", &e))
        }
        .await;
        if let Err(e) = store.unlock_sync(org, &lock.token).await {
            tracing::warn!(organization = %org, error = %e, "releasing the sync lock failed; it expires in a minute");
        }
        recorded
    }

    /// H13: a license file uploaded by hand (`multipart/form-data`, field `license`), given as
    /// the request's `content-type` and body.
    pub async fn upload_license(
        &self,
        user: &User,
        org: OrganizationId,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<(), ApiError> {
        if !self.owns(user, org).await? {
            return Err(ApiError::not_found());
        }
        let text = license_field(content_type, body)
            .await
            .ok_or_else(|| ApiError::bad_request("Invalid license"))?;
        let license = OrganizationLicense::parse(&text).map_err(|e| license_refused(&e))?;
        let host = self.host();
        let installation = host.installation_id();
        let checked = host
            .license_verifier()
            .verify(&license, installation, host.now())
            .map_err(|e| license_refused(&e))?;
        self.store_license(org, license, &checked).await
    }

    /// H14: the subscription page's data of a self-hosted organization (owners only).
    pub async fn subscription(
        &self,
        user: &User,
        org: OrganizationId,
    ) -> Result<SubscriptionResponse, ApiError> {
        if !self.owns(user, org).await? {
            return Err(ApiError::not_found());
        }
        let found = self.organization_of(org).await?;
        let o = &found.organization;
        let license = found.license.as_ref();
        let expiration = license.and_then(|l| l.expires);
        let trial = license
            .and_then(|l| l.other.get("trial").or_else(|| l.other.get("Trial")))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        let stated = license
            .and_then(|l| {
                l.other
                    .get("expirationWithoutGracePeriod")
                    .or_else(|| l.other.get("ExpirationWithoutGracePeriod"))
            })
            .and_then(|v| serde_json::from_value(v.clone()).ok());
        let without_grace =
            stated.or_else(|| expiration.map(|e| if trial { e } else { e - GRACE_PERIOD }));
        Ok(SubscriptionResponse {
            id: o.id,
            name: html_encode(&o.name),
            business_name: None,
            billing_email: None,
            plan: PlanResponse {
                object: "plan",
                plan_type: o.plan_type.number(),
                product_tier: tier_number(o.plan_type.product_tier()),
                name: o.plan_type.display_name().to_owned(),
            },
            secrets_manager_plan: None,
            plan_type: o.plan_type.number(),
            seats: found.seats,
            use_admin_sponsored_families: o.use_admin_sponsored_families,
            storage_name: None,
            storage_gb: None,
            customer_discount: None,
            subscription: None,
            upcoming_invoice: None,
            pending_annual_upgrade: None,
            sm_service_accounts_grace: None,
            expiration_without_grace_period: without_grace,
            expiration,
            exempt_from_billing_automation: false,
            object: "organizationSubscription",
        })
    }

    /// Refuses a license another organization of this server uses, then stores it.
    async fn store_license(
        &self,
        org: OrganizationId,
        mut license: OrganizationLicense,
        checked: &VerifiedLicense,
    ) -> Result<(), ApiError> {
        let host = self.host();
        let ids = host
            .organization_ids()
            .await
            .map_err(|e| internal("listing the organizations", &e))?;
        for other in ids.into_iter().filter(|id| *id != org) {
            let uses = self
                .find_organization(other)
                .await?
                .and_then(|o| o.license)
                .is_some_and(|l| l.id == checked.cloud_organization_id);
            if uses {
                return Err(ApiError::bad_request(
                    "License is already in use by another organization vault.",
                ));
            }
        }
        checked.apply_to(&mut license);
        host.save_license(org, &license)
            .await
            .map_err(|e| internal("storing the license", &e))?;
        tracing::info!(organization = %org, version = license.version, "license stored");
        Ok(())
    }
}

/// The `license` field of a multipart body, when the body is small enough to be read.
async fn license_field(content_type: Option<&str>, body: &[u8]) -> Option<String> {
    if body.len() > LICENSE_UPLOAD_LIMIT {
        return None;
    }
    let boundary = multer::parse_boundary(content_type?).ok()?;
    let chunk: Result<Vec<u8>, std::io::Error> = Ok(body.to_vec());
    let mut multipart = multer::Multipart::new(futures_util::stream::iter([chunk]), boundary);
    while let Ok(Some(field)) = multipart.next_field().await {
        if field
            .name()
            .is_some_and(|n| n.eq_ignore_ascii_case("license"))
        {
            return field.text().await.ok();
        }
    }
    None
}

/// `ProductTierType`'s number.
pub(crate) const fn tier_number(tier: ProductTier) -> u8 {
    match tier {
        ProductTier::Free => 0,
        ProductTier::Families => 1,
        ProductTier::Teams => 2,
        ProductTier::Enterprise => 3,
        ProductTier::TeamsStarter => 4,
    }
}

/// `HtmlEncoder.Default.Encode`, which the reference applies to names it writes.
fn html_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            '+' => out.push_str("&#x2B;"),
            c if !c.is_ascii() || c.is_ascii_control() => {
                let _ = write!(out, "&#x{:X};", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}
