//! [`LicenseVerifier`]: a license checked as the real self-hosted server checks it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;

use super::legacy::legacy_signature_data;
use super::token::verify_token;
use super::trust::TrustAnchor;
use super::{LicenseError, OrganizationLicense, SUPPORTED_LICENSE_VERSIONS};
use crate::ids::{CloudOrganizationId, InstallationId};
use crate::plan::PlanType;
use crate::secret::RawSecret;

/// The real server's refusal texts (`OrganizationLicense.CanUse`).
mod text {
    pub(super) const DISABLED: &str = "Your cloud-hosted organization is currently disabled.";
    pub(super) const INSTALLATION: &str =
        "The installation ID does not match the current installation.";
    pub(super) const NOT_SELF_HOST: &str =
        "The license does not allow for on-premise hosting of organizations.";
    pub(super) const NOT_ORGANIZATION: &str = "Premium licenses cannot be applied to an organization vault. Upload this license from your personal account Settings page.";
    pub(super) const NOT_ISSUED: &str = "The license hasn't been issued yet.";
    pub(super) const EXPIRED: &str = "The license has expired.";
    pub(super) const SIGNATURE: &str = "The license verification failed.";
}

/// How a verified license was signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedBy {
    /// Its claims token verified.
    Token,
    /// Its legacy signature verified (no token).
    LegacySignature,
}

/// The values of a license that passed [`LicenseVerifier::verify`], taken from what was signed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifiedLicense {
    /// The cloud organization (the token's audience).
    pub cloud_organization_id: CloudOrganizationId,
    /// Organization name.
    pub name: String,
    /// Plan.
    pub plan_type: PlanType,
    /// Enabled in the cloud.
    pub enabled: bool,
    /// Admin-initiated sponsorships allowed.
    pub use_admin_sponsored_families: bool,
    /// The installation it was issued for.
    pub installation_id: Option<InstallationId>,
    /// When the license (not its token) expires.
    pub expires: Option<DateTime<Utc>>,
    /// The license key.
    pub license_key: RawSecret,
    /// File format version.
    pub version: u32,
    /// Which signature verified, and against which anchor.
    pub signed_by: SignedBy,
    /// The name of the trust anchor it verified against.
    pub anchor: String,
}

impl VerifiedLicense {
    /// Copies the verified values onto `license`, as the real server does before it stores a
    /// license: what is stored is what was signed.
    pub fn apply_to(&self, license: &mut OrganizationLicense) {
        license.name.clone_from(&self.name);
        license.plan_type = self.plan_type;
        license.enabled = self.enabled;
        license.use_admin_sponsored_families = self.use_admin_sponsored_families;
        license.installation_id = self.installation_id;
        license.expires = self.expires;
        license.self_host = true;
    }
}

/// Verifies licenses against a set of trust anchors; [`LicenseVerifier::default`] trusts
/// Bitwarden's licensing key only.
#[derive(Debug, Clone)]
pub struct LicenseVerifier {
    anchors: Vec<TrustAnchor>,
}

impl Default for LicenseVerifier {
    fn default() -> Self {
        Self {
            anchors: vec![TrustAnchor::bitwarden()],
        }
    }
}

impl LicenseVerifier {
    /// A verifier trusting exactly `anchors` (none: every license is refused).
    pub fn with_anchors(anchors: Vec<TrustAnchor>) -> Self {
        Self { anchors }
    }

    /// Also trusts `anchor` (the reference cloud's key, in tests and the demo).
    #[must_use]
    pub fn trusting(mut self, anchor: TrustAnchor) -> Self {
        self.anchors.push(anchor);
        self
    }

    /// The anchors.
    pub fn anchors(&self) -> &[TrustAnchor] {
        &self.anchors
    }

    /// Checks `license` for `installation` at `now`, as the real self-hosted server does at
    /// upload and at "Sync license".
    ///
    /// # Errors
    ///
    /// [`LicenseError::UnsupportedVersion`] for a file version outside the supported range,
    /// [`LicenseError::Invalid`] with every reason otherwise.
    pub fn verify(
        &self,
        license: &OrganizationLicense,
        installation: Option<InstallationId>,
        now: DateTime<Utc>,
    ) -> Result<VerifiedLicense, LicenseError> {
        if !SUPPORTED_LICENSE_VERSIONS.contains(&license.version) {
            return Err(LicenseError::UnsupportedVersion {
                version: license.version,
            });
        }
        match license.token.as_deref().filter(|t| !t.trim().is_empty()) {
            Some(token) => self.verify_claims(license, token, installation, now),
            None => self.verify_legacy(license, installation, now),
        }
    }

    fn verify_claims(
        &self,
        license: &OrganizationLicense,
        token: &str,
        installation: Option<InstallationId>,
        now: DateTime<Utc>,
    ) -> Result<VerifiedLicense, LicenseError> {
        let (claims, anchor) = verify_token(token, license.id, &self.anchors, now)?;
        let anchor = anchor.name().to_owned();
        let claimed_installation = claims
            .get("InstallationId")
            .and_then(|i| i.trim().parse::<InstallationId>().ok());
        let mut reasons = Vec::new();
        if !claims.flag("Enabled") {
            reasons.push(text::DISABLED);
        }
        if installation.is_some() && claimed_installation != installation {
            reasons.push(text::INSTALLATION);
        }
        if !claims.flag("SelfHost") {
            reasons.push(text::NOT_SELF_HOST);
        }
        let organization_type = claims.get("LicenseType").map(str::trim);
        if !matches!(organization_type, Some(t) if t.eq_ignore_ascii_case("Organization") || t == "1")
        {
            reasons.push(text::NOT_ORGANIZATION);
        }
        let plan_type = claims
            .get("PlanType")
            .and_then(|p| p.trim().parse::<u8>().ok())
            .and_then(PlanType::from_number);
        let Some(plan_type) = plan_type else {
            return Err(LicenseError::invalid(
                "The license token carries no known PlanType.",
            ));
        };
        refuse_for(reasons)?;
        Ok(VerifiedLicense {
            cloud_organization_id: license.id,
            name: claims
                .get("Name")
                .map_or_else(|| license.name.clone(), str::to_owned),
            plan_type,
            enabled: true,
            use_admin_sponsored_families: claims.flag("UseAdminSponsoredFamilies"),
            installation_id: claimed_installation,
            expires: claims.date("Expires"),
            license_key: claims.get("LicenseKey").map_or_else(
                || license.license_key.clone(),
                |k| RawSecret::new(k.to_owned()),
            ),
            version: license.version,
            signed_by: SignedBy::Token,
            anchor,
        })
    }

    fn verify_legacy(
        &self,
        license: &OrganizationLicense,
        installation: Option<InstallationId>,
        now: DateTime<Utc>,
    ) -> Result<VerifiedLicense, LicenseError> {
        let data = legacy_signature_data(license, false)?;
        let signature = license
            .signature
            .as_deref()
            .and_then(|s| STANDARD.decode(s.trim()).ok());
        let anchor = signature.as_ref().and_then(|sig| {
            self.anchors
                .iter()
                .find(|a| a.verifies(data.as_bytes(), sig))
        });
        let mut reasons = Vec::new();
        if !license.enabled {
            reasons.push(text::DISABLED);
        }
        if license.issued.is_some_and(|i| i > now) {
            reasons.push(text::NOT_ISSUED);
        }
        if license.expires.is_none_or(|e| e < now) {
            reasons.push(text::EXPIRED);
        }
        if installation.is_some() && license.installation_id != installation {
            reasons.push(text::INSTALLATION);
        }
        if !license.self_host {
            reasons.push(text::NOT_SELF_HOST);
        }
        let license_type = license
            .other
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("licenseType"))
            .map(|(_, v)| v.clone());
        if !matches!(license_type, None | Some(serde_json::Value::Null))
            && license_type != Some(serde_json::Value::from(1))
        {
            reasons.push(text::NOT_ORGANIZATION);
        }
        if anchor.is_none() {
            reasons.push(text::SIGNATURE);
        }
        refuse_for(reasons)?;
        Ok(VerifiedLicense {
            cloud_organization_id: license.id,
            name: license.name.clone(),
            plan_type: license.plan_type,
            enabled: true,
            use_admin_sponsored_families: license.use_admin_sponsored_families,
            installation_id: license.installation_id,
            expires: license.expires,
            license_key: RawSecret::new(license.license_key.expose_secret().to_owned()),
            version: license.version,
            signed_by: SignedBy::LegacySignature,
            anchor: anchor.map(|a| a.name().to_owned()).unwrap_or_default(),
        })
    }
}

fn refuse_for(reasons: Vec<&str>) -> Result<(), LicenseError> {
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(LicenseError::Invalid {
            reasons: reasons.into_iter().map(str::to_owned).collect(),
        })
    }
}
