//! Organization licenses, as far as sponsorships need them (spec §11).
//!
//! A self-hosted release accepts license file versions in a fixed range. The cloud issues
//! licenses at its current version; a release whose range ends below it refuses the license with
//! "Version N is not supported."
//!
//! # Verification
//!
//! A license is trusted only once [`LicenseVerifier::verify`] has checked it the way the real
//! self-hosted server does (bitwarden/server `LicensingService`, `OrganizationLicense.CanUse`):
//!
//! * **Signed claims token** (`token`, what the cloud issues today): an RS256 JWT whose
//!   signature must verify against a [`TrustAnchor`], with issuer `bitwarden`, audience
//!   `organization:{id}` and a lifetime that includes `now` (no clock skew). The values that
//!   matter (plan, enabled, installation, self-host, license type, expiry, admin-sponsored
//!   families) are then taken from its claims, never from the unsigned JSON next to it.
//! * **Legacy signature** (`signature`, licenses without a token): RSASSA-PKCS1-v1_5 with
//!   SHA-256 over the license's data string (see [`legacy_signature_data`]); the JSON values
//!   are then the signed ones, and issue and expiry dates are checked.
//!
//! The trust anchor is Bitwarden's public licensing key ([`TrustAnchor::bitwarden`]) unless a
//! caller adds another one explicitly (the reference cloud's key, in tests and the demo).
//! Refusals name every reason, with the real server's texts after `Invalid license. `.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{CloudOrganizationId, InstallationId};
use crate::plan::PlanType;
use crate::secret::RawSecret;

mod legacy;
mod token;
mod trust;
mod verify;

pub use legacy::legacy_signature_data;
pub use token::{LicenseClaims, TOKEN_AUDIENCE_PREFIX, TOKEN_ISSUER};
pub use trust::TrustAnchor;
pub use verify::{LicenseVerifier, SignedBy, VerifiedLicense};

/// License file versions this release understands.
pub const SUPPORTED_LICENSE_VERSIONS: RangeInclusive<u32> = 1..=16;
/// The version the reference cloud issues by default (one below the maximum).
pub const CURRENT_LICENSE_VERSION: u32 = 15;

/// An organization license. Unknown fields are kept as they are.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationLicense {
    /// The cloud organization id.
    #[serde(alias = "Id")]
    pub id: CloudOrganizationId,
    /// Organization name.
    #[serde(alias = "Name")]
    pub name: String,
    /// Plan.
    #[serde(alias = "PlanType")]
    pub plan_type: PlanType,
    /// File format version.
    #[serde(alias = "Version")]
    pub version: u32,
    /// The license key (secret; sent back in license sync requests).
    #[serde(alias = "LicenseKey")]
    pub license_key: RawSecret,
    /// The installation the license was issued for.
    #[serde(default, alias = "InstallationId")]
    pub installation_id: Option<InstallationId>,
    /// Enabled in the cloud.
    #[serde(default = "yes", alias = "Enabled")]
    pub enabled: bool,
    /// May be used self-hosted.
    #[serde(default = "yes", alias = "SelfHost")]
    pub self_host: bool,
    /// Admin-initiated sponsorships allowed.
    #[serde(default, alias = "UseAdminSponsoredFamilies")]
    pub use_admin_sponsored_families: bool,
    /// Issued at.
    #[serde(default, with = "crate::wire::time::option", alias = "Issued")]
    pub issued: Option<DateTime<Utc>>,
    /// Expires at.
    #[serde(default, with = "crate::wire::time::option", alias = "Expires")]
    pub expires: Option<DateTime<Utc>>,
    /// The signed claims token (a JWT), in licenses the cloud issues today.
    #[serde(default, alias = "Token")]
    pub token: Option<String>,
    /// The legacy signature (base64), over [`legacy_signature_data`].
    #[serde(default, alias = "Signature")]
    pub signature: Option<String>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

fn yes() -> bool {
    true
}

/// Why a license is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LicenseError {
    /// The file format is newer (or older) than this release understands.
    #[error("Version {version} is not supported.")]
    UnsupportedVersion {
        /// The license's version.
        version: u32,
    },
    /// The file does not parse.
    #[error("the license file is not a valid organization license: {0}")]
    Malformed(String),
    /// The license failed verification; each reason in the real server's words, one per line.
    #[error("Invalid license. {}", .reasons.join("\n"))]
    Invalid {
        /// The reasons.
        reasons: Vec<String>,
    },
}

impl LicenseError {
    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Self::Invalid {
            reasons: vec![reason.into()],
        }
    }
}

impl OrganizationLicense {
    /// Parses a license file.
    pub fn parse(json: &str) -> Result<Self, LicenseError> {
        serde_json::from_str(json).map_err(|e| LicenseError::Malformed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_license_parses_keeps_unknown_fields_and_hides_its_key() {
        let ok = OrganizationLicense::parse(
            r#"{"id":"0b7c2f0e-1111-2222-3333-444455556666","name":"Acme","planType":20,"version":15,
               "licenseKey":"LK123","installationId":"7e0b3c52-3f4c-4d0e-9e57-aa7a1e5c9a10","selfHost":true,
               "seats":50,"issued":"2026-01-01T00:00:00","Token":"t.o.k"}"#,
        )
        .unwrap();
        assert_eq!(ok.other.get("seats"), Some(&serde_json::json!(50)));
        assert_eq!(
            ok.token.as_deref(),
            Some("t.o.k"),
            "PascalCase files parse too"
        );
        assert!(!format!("{ok:?}").contains("LK123"));
        assert!(matches!(
            OrganizationLicense::parse("{}"),
            Err(LicenseError::Malformed(_))
        ));
        assert_eq!(
            LicenseError::UnsupportedVersion { version: 17 }.to_string(),
            "Version 17 is not supported."
        );
    }
}
