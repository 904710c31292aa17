//! The seed: the JSON document an emulator starts from (a contract shared with the CLI and with
//! tests outside this crate).
//!
//! ```json
//! {"region":"US",
//!  "installations":[{"id":"…","key":"20 alphanumerics","region":"US","enabled":true}],
//!  "organizations":[{"id":"…","name":"Acme","planType":20,"enabled":true,
//!                    "billingSyncKey":"30 alphanumerics, optional"}],
//!  "users":[{"email":"owner@acme.example","password":"…","ownerOf":["…"]}]}
//! ```
//!
//! Unknown fields are refused, and every error names the field's path.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sponsorship_core::ids::{CloudOrganizationId, InstallationId};
use sponsorship_core::plan::PlanType;
use sponsorship_core::region::CloudRegion;
use sponsorship_core::secret::{BillingSyncKey, InstallationKey, RawSecret};

use crate::error::Error;

/// The whole seed document.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Seed {
    /// The region this emulator plays (`US`, `EU` or `Gov`); installations of another region
    /// are refused at `/connect/token`.
    pub region: CloudRegion,
    /// Installations that may obtain tokens.
    #[serde(default)]
    pub installations: Vec<SeedInstallation>,
    /// Cloud organizations.
    #[serde(default)]
    pub organizations: Vec<SeedOrganization>,
    /// Users who can sign in (owners and recipients).
    #[serde(default)]
    pub users: Vec<SeedUser>,
    /// Whether the recipient page's "Create account" form works (the real cloud lets anyone
    /// register). Off unless the seed says so: `cloud serve` is a shipped server.
    #[serde(default)]
    pub allow_registration: bool,
}

/// One installation (spec §2.7).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedInstallation {
    /// Installation id.
    pub id: InstallationId,
    /// Installation key (20 alphanumerics).
    pub key: InstallationKey,
    /// The region the installation was issued for.
    pub region: CloudRegion,
    /// Disabled installations get `invalid_client`.
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// One cloud organization.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedOrganization {
    /// Cloud organization id (the license's `id`).
    pub id: CloudOrganizationId,
    /// Display name (used in offer e-mails and on the redemption page).
    pub name: String,
    /// Plan type number (20 = Enterprise annually, 22 = Families).
    pub plan_type: PlanType,
    /// Enabled.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A billing sync key already generated (30 alphanumerics); absent = none yet.
    #[serde(default)]
    pub billing_sync_key: Option<BillingSyncKey>,
}

/// One user account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedUser {
    /// E-mail (the login name; offers are bound to it).
    pub email: String,
    /// Password (plain: this is an emulator; the data file is written `0600`).
    pub password: RawSecret,
    /// Organizations this user owns.
    #[serde(default)]
    pub owner_of: Vec<CloudOrganizationId>,
}

fn yes() -> bool {
    true
}

impl Seed {
    /// Parses a seed; errors name the field's path, such as `organizations[0].planType`.
    pub fn from_json(json: &str) -> Result<Self, Error> {
        let de = &mut serde_json::Deserializer::from_str(json);
        let seed: Self = serde_path_to_error::deserialize(de).map_err(|e| Error::Seed {
            path: e.path().to_string(),
            message: e.into_inner().to_string(),
        })?;
        seed.check()?;
        Ok(seed)
    }

    /// Reads and parses a seed file.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            action: "read",
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(&text)
    }

    /// Cross-field checks: owned organizations exist, ids and e-mails are unique.
    fn check(&self) -> Result<(), Error> {
        let bad = |path: String, message: &str| Error::Seed {
            path,
            message: message.to_owned(),
        };
        for (i, inst) in self.installations.iter().enumerate() {
            if self.installations[..i].iter().any(|o| o.id == inst.id) {
                return Err(bad(
                    format!("installations[{i}].id"),
                    "duplicate installation id",
                ));
            }
        }
        for (i, org) in self.organizations.iter().enumerate() {
            if self.organizations[..i].iter().any(|o| o.id == org.id) {
                return Err(bad(
                    format!("organizations[{i}].id"),
                    "duplicate organization id",
                ));
            }
        }
        for (i, user) in self.users.iter().enumerate() {
            if sponsorship_core::email::validate_strict_email(&user.email).is_err() {
                return Err(bad(
                    format!("users[{i}].email"),
                    "not a valid e-mail address",
                ));
            }
            if self.users[..i]
                .iter()
                .any(|u| sponsorship_core::email::same_email(&u.email, &user.email))
            {
                return Err(bad(format!("users[{i}].email"), "duplicate user e-mail"));
            }
            for (j, org) in user.owner_of.iter().enumerate() {
                if !self.organizations.iter().any(|o| o.id == *org) {
                    return Err(bad(
                        format!("users[{i}].ownerOf[{j}]"),
                        "no organization with this id in the seed",
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: &str = "0b7c2f0e-1111-2222-3333-444455556666";

    #[test]
    fn full_seed_parses() {
        let json = format!(
            r#"{{"region":"US","installations":[{{"id":"7e0b3c52-3f4c-4d0e-9e57-aa7a1e5c9a10","key":"AbCdEfGhIj0123456789","region":"US","enabled":true}}],
            "organizations":[{{"id":"{ORG}","name":"Acme","planType":20,"enabled":true,"billingSyncKey":"Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd"}}],
            "users":[{{"email":"owner@acme.example","password":"pw","ownerOf":["{ORG}"]}}]}}"#
        );
        let seed = Seed::from_json(&json).unwrap();
        assert_eq!(
            seed.organizations[0].plan_type,
            PlanType::EnterpriseAnnually
        );
        assert!(seed.organizations[0].billing_sync_key.is_some());
    }

    #[test]
    fn unknown_field_is_named_with_its_path() {
        let json = format!(
            r#"{{"region":"US","organizations":[{{"id":"{ORG}","name":"Acme","planType":20,"enabld":true}}]}}"#
        );
        let err = Seed::from_json(&json).unwrap_err().to_string();
        assert!(err.contains("organizations[0]"), "{err}");
        assert!(err.contains("enabld"), "{err}");
    }

    #[test]
    fn bad_key_and_dangling_owner_are_refused_without_echoing_secrets() {
        let json = r#"{"region":"US","installations":[{"id":"7e0b3c52-3f4c-4d0e-9e57-aa7a1e5c9a10","key":"SECRETshort","region":"US"}]}"#;
        let err = Seed::from_json(json).unwrap_err().to_string();
        assert!(err.contains("installations[0].key"), "{err}");
        assert!(!err.contains("SECRETshort"), "{err}");
        let json = format!(
            r#"{{"region":"US","users":[{{"email":"a@b.example","password":"p","ownerOf":["{ORG}"]}}]}}"#
        );
        let err = Seed::from_json(&json).unwrap_err().to_string();
        assert!(err.contains("users[0].ownerOf[0]"), "{err}");
    }
}
