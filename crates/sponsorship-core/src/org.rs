//! Organizations, members and the billing sync configuration of a self-hosted organization.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{CloudOrganizationId, MemberId, OrganizationId};
use crate::plan::PlanType;
use crate::secret::BillingSyncKey;

/// A self-hosted organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    /// The self-hosted id.
    pub id: OrganizationId,
    /// Display name.
    pub name: String,
    /// The plan, from the organization's license.
    pub plan_type: PlanType,
    /// Disabled organizations are not synced.
    pub enabled: bool,
    /// The license grants admin-initiated sponsorships (`UseAdminSponsoredFamilies`).
    #[serde(default)]
    pub use_admin_sponsored_families: bool,
}

/// A membership's status (`OrganizationUserStatusType`). One string form everywhere (store,
/// JSON, logs): [`MemberStatus::name`], which [`FromStr`](std::str::FromStr) parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MemberStatus {
    /// Invited, not yet accepted (0).
    Invited,
    /// Accepted, not yet confirmed by an admin (1).
    Accepted,
    /// Confirmed (2): the only status that may sponsor.
    Confirmed,
    /// Staged (3): provisioned by SCIM or Directory Connector, not yet invited. May not sponsor.
    Staged,
    /// Revoked (-1): access suspended, restorable. May not sponsor; a sponsorship the member
    /// already has stays as it is (the reference server leaves it alone; removing the member
    /// revokes it).
    Revoked,
}

impl MemberStatus {
    /// The reference server's number.
    pub const fn number(self) -> i8 {
        match self {
            Self::Invited => 0,
            Self::Accepted => 1,
            Self::Confirmed => 2,
            Self::Staged => 3,
            Self::Revoked => -1,
        }
    }

    /// Lower-case name (`invited`, `accepted`, `confirmed`, `staged`, `revoked`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Invited => "invited",
            Self::Accepted => "accepted",
            Self::Confirmed => "confirmed",
            Self::Staged => "staged",
            Self::Revoked => "revoked",
        }
    }
}

/// A membership's role (`OrganizationUserType`). One string form everywhere (store, JSON,
/// logs): [`MemberRole::name`], which [`FromStr`](std::str::FromStr) parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MemberRole {
    /// Owner (0).
    Owner,
    /// Admin (1).
    Admin,
    /// User (2).
    User,
    /// Custom role with the ManageUsers permission (4).
    #[serde(rename = "custom", alias = "customManageUsers")]
    CustomManageUsers,
}

impl MemberRole {
    /// Owners, admins and custom roles with ManageUsers may act for the organization.
    pub const fn can_manage_users(self) -> bool {
        matches!(self, Self::Owner | Self::Admin | Self::CustomManageUsers)
    }

    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::User => "user",
            Self::CustomManageUsers => "custom",
        }
    }
}

/// A string that is no member status or role name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown member {what} {input:?}")]
pub struct UnknownMemberValue {
    /// `status` or `role`.
    pub what: &'static str,
    /// What was given (at most 64 characters).
    pub input: String,
}

impl std::str::FromStr for MemberStatus {
    type Err = UnknownMemberValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::Invited,
            Self::Accepted,
            Self::Confirmed,
            Self::Staged,
            Self::Revoked,
        ]
        .into_iter()
        .find(|v| v.name() == s)
        .ok_or_else(|| UnknownMemberValue {
            what: "status",
            input: s.chars().take(64).collect(),
        })
    }
}

impl std::str::FromStr for MemberRole {
    type Err = UnknownMemberValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::Owner,
            Self::Admin,
            Self::User,
            Self::CustomManageUsers,
        ]
        .into_iter()
        .find(|v| v.name() == s)
        .ok_or_else(|| UnknownMemberValue {
            what: "role",
            input: s.chars().take(64).collect(),
        })
    }
}

/// A member (organization user) of a self-hosted organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The membership id; sent to the cloud as `sponsoringOrganizationUserId`.
    pub id: MemberId,
    /// The organization.
    pub organization_id: OrganizationId,
    /// The member's own account e-mail.
    pub email: String,
    /// Membership status.
    pub status: MemberStatus,
    /// Role.
    pub role: MemberRole,
}

/// The billing sync connection of a self-hosted organization (`OrganizationConnection` of type
/// `CloudBillingSync` with its `BillingSyncConfig`).
///
/// The cloud organization id is derived from the organization's license, never from what a
/// client sends; replacing the key keeps it (field lessons A2, A3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BillingSyncConfig {
    /// The 30-character key from the cloud.
    pub billing_sync_key: BillingSyncKey,
    /// The cloud organization the key belongs to (from the license).
    pub cloud_organization_id: CloudOrganizationId,
    /// Last successful license sync, UTC (the reference stores local time, lesson C12).
    #[serde(default)]
    pub last_license_sync: Option<DateTime<Utc>>,
}

/// A billing sync connection: the config plus its switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingSyncConnection {
    /// The organization it belongs to.
    pub organization_id: OrganizationId,
    /// Switched on.
    pub enabled: bool,
    /// The configuration.
    pub config: BillingSyncConfig,
}

/// A self-hosted organization as a standalone host keeps it (one without tables of its own,
/// such as `sponsorctl`): the [`Organization`] and what its license says.
#[derive(Debug, Clone)]
pub struct OrgRecord {
    /// The organization.
    pub org: Organization,
    /// From the license (or given by hand).
    pub cloud_organization_id: Option<CloudOrganizationId>,
    /// The imported license, if any.
    pub license: Option<crate::license::OrganizationLicense>,
}

/// A billing sync connection as a store keeps it: the key an admin saved, its switch, and
/// when either last changed ("Manage billing sync").
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BillingConnection {
    /// The key (shown as its last four characters only).
    pub key: crate::secret::BillingSyncKey,
    /// Switched on.
    pub enabled: bool,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl BillingConnection {
    /// A connection as loaded from a store.
    pub fn new(
        key: crate::secret::BillingSyncKey,
        enabled: bool,
        updated_at: DateTime<Utc>,
    ) -> Self {
        Self {
            key,
            enabled,
            updated_at,
        }
    }
}

/// The reference server's text when a sync is asked for while cloud communication is off
/// (`globalSettings__enableCloudCommunication` is not `true`).
pub const CLOUD_COMMUNICATION_DISABLED: &str =
    "Failed to sync instance with cloud - Cloud communication is disabled in global settings";

/// Why a connection cannot be used: the reference server's texts (spec §2.4), and with
/// [`ConnectionError::hint`] what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The connection is switched off.
    #[error("Connection disabled for organization {0}")]
    Disabled(OrganizationId),
    /// No connection (no billing sync key) is stored for the organization.
    #[error("No saved Connection config for organization {0}")]
    NoConfig(OrganizationId),
    /// The organization has no cloud organization id: its license was never imported.
    #[error("No cloud organization for organization {0}")]
    NoCloudOrganization(OrganizationId),
}

impl ConnectionError {
    /// What the administrator does about it, in the web vault's words.
    pub const fn hint(&self) -> &'static str {
        match self {
            Self::Disabled(_) => {
                "switch automatic sync back on (Billing → Subscription → Manage billing sync)"
            }
            Self::NoConfig(_) => {
                "paste the billing sync token an owner of the cloud organization generated (Billing → Subscription → Manage billing sync)"
            }
            Self::NoCloudOrganization(_) => {
                "upload the organization's license from the cloud first (Billing → Subscription → Upload license)"
            }
        }
    }
}

impl BillingSyncConnection {
    /// The connection a host stored, judged before use: `key` is the stored key with its
    /// switch (`None` when no connection is stored), `cloud_organization_id` what the license
    /// says. The one place that decides whether an organization can sync; the checks run in
    /// the reference's order (the switch first).
    pub fn readiness(
        organization_id: OrganizationId,
        key: Option<(BillingSyncKey, bool)>,
        cloud_organization_id: Option<CloudOrganizationId>,
        last_license_sync: Option<DateTime<Utc>>,
    ) -> Result<BillingSyncConfig, ConnectionError> {
        let Some((billing_sync_key, enabled)) = key else {
            return Err(ConnectionError::NoConfig(organization_id));
        };
        if !enabled {
            return Err(ConnectionError::Disabled(organization_id));
        }
        let Some(cloud_organization_id) = cloud_organization_id else {
            return Err(ConnectionError::NoCloudOrganization(organization_id));
        };
        let connection = Self {
            organization_id,
            enabled,
            config: BillingSyncConfig {
                billing_sync_key,
                cloud_organization_id,
                last_license_sync,
            },
        };
        connection.validate().cloned()
    }

    /// Checks the connection before use.
    pub fn validate(&self) -> Result<&BillingSyncConfig, ConnectionError> {
        if self.enabled {
            Ok(&self.config)
        } else {
            Err(ConnectionError::Disabled(self.organization_id))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_config_uses_pascal_case_keys_like_the_reference() {
        let cfg = BillingSyncConfig {
            billing_sync_key: BillingSyncKey::parse("Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd").unwrap(),
            cloud_organization_id: "0b7c2f0e-1111-2222-3333-444455556666".parse().unwrap(),
            last_license_sync: None,
        };
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(
            json,
            r#"{"BillingSyncKey":"Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd","CloudOrganizationId":"0b7c2f0e-1111-2222-3333-444455556666","LastLicenseSync":null}"#
        );
        assert!(!format!("{cfg:?}").contains("Ab3d"));
        let conn = BillingSyncConnection {
            organization_id: OrganizationId::new_random(),
            enabled: false,
            config: cfg,
        };
        let err = conn.validate().unwrap_err().to_string();
        assert!(
            err.starts_with("Connection disabled for organization "),
            "{err}"
        );
    }

    #[test]
    fn one_string_form_for_statuses_and_roles() {
        use std::str::FromStr;
        for status in [
            MemberStatus::Invited,
            MemberStatus::Accepted,
            MemberStatus::Confirmed,
            MemberStatus::Staged,
            MemberStatus::Revoked,
        ] {
            assert_eq!(serde_json::to_value(status).unwrap(), status.name());
            assert_eq!(MemberStatus::from_str(status.name()), Ok(status));
        }
        for role in [
            MemberRole::Owner,
            MemberRole::Admin,
            MemberRole::User,
            MemberRole::CustomManageUsers,
        ] {
            assert_eq!(serde_json::to_value(role).unwrap(), role.name());
            assert_eq!(MemberRole::from_str(role.name()), Ok(role));
        }
        assert!(MemberRole::from_str("customManageUsers").is_err());
    }

    #[test]
    fn readiness_is_decided_in_the_reference_order() {
        let org = OrganizationId::new_random();
        let key = BillingSyncKey::parse("Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd").unwrap();
        let cloud: CloudOrganizationId = "0b7c2f0e-1111-2222-3333-444455556666".parse().unwrap();
        let ready = |k: Option<(BillingSyncKey, bool)>, c| {
            BillingSyncConnection::readiness(org, k, c, None)
        };
        assert_eq!(
            ready(None, Some(cloud)),
            Err(ConnectionError::NoConfig(org))
        );
        assert_eq!(
            ready(Some((key.clone(), false)), None),
            Err(ConnectionError::Disabled(org)),
            "the switch is checked before the rest"
        );
        assert_eq!(
            ready(Some((key.clone(), true)), None),
            Err(ConnectionError::NoCloudOrganization(org))
        );
        let config = ready(Some((key, true)), Some(cloud)).unwrap();
        assert_eq!(config.cloud_organization_id, cloud);
        assert_eq!(
            ConnectionError::NoConfig(org).to_string(),
            format!("No saved Connection config for organization {org}")
        );
        for e in [
            ConnectionError::Disabled(org),
            ConnectionError::NoConfig(org),
            ConnectionError::NoCloudOrganization(org),
        ] {
            assert!(e.hint().contains("Billing"), "{e}: {}", e.hint());
        }
    }
}
