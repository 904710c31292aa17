//! The response models, member for member as the reference server writes them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sponsorship_core::ids::{CloudOrganizationId, MemberId, OrganizationId, UserId};
use sponsorship_core::sponsorship::Sponsorship;

use crate::json::{db_date, local_date, utc_date};

/// `ListResponseModel`: `data`, `continuationToken`, then `object` (`"list"`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ListResponse<T> {
    /// The items.
    pub data: Vec<T>,
    /// Always null here.
    pub continuation_token: Option<String>,
    /// `"list"`.
    pub object: &'static str,
}

impl<T> ListResponse<T> {
    /// A list.
    pub fn new(data: Vec<T>) -> Self {
        Self {
            data,
            continuation_token: None,
            object: "list",
        }
    }
}

/// H5's items (`OrganizationSponsorshipInvitesResponseModel`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SponsorshipInvite {
    /// The sponsoring member.
    pub sponsoring_organization_user_id: MemberId,
    /// The label.
    pub friendly_name: Option<String>,
    /// The recipient.
    pub offered_to_email: Option<String>,
    /// 0 (Families for Enterprise).
    pub plan_sponsorship_type: u8,
    /// The last sync that covered the row (a database value).
    #[serde(serialize_with = "db_date")]
    pub last_sync_date: Option<DateTime<Utc>>,
    /// End of the paid period (a database value).
    #[serde(serialize_with = "db_date")]
    pub valid_until: Option<DateTime<Utc>>,
    /// Revocation requested.
    pub to_delete: bool,
    /// Always true in H5.
    pub is_admin_initiated: bool,
    /// The encrypted note.
    pub notes: Option<String>,
    /// Always false on a self-hosted server.
    pub cloud_sponsorship_removed: bool,
    /// `"organizationSponsorship"`.
    pub object: &'static str,
}

impl SponsorshipInvite {
    /// The item of a row.
    pub fn of(row: &Sponsorship) -> Self {
        Self {
            sponsoring_organization_user_id: row.sponsoring_member_id,
            friendly_name: row.friendly_name.clone(),
            offered_to_email: row.offered_to_email.clone(),
            plan_sponsorship_type: row
                .plan_sponsorship_type
                .map_or(0, sponsorship_core::plan::PlanSponsorshipType::number),
            last_sync_date: row.last_sync_date,
            valid_until: row.valid_until,
            to_delete: row.to_delete,
            is_admin_initiated: row.is_admin_initiated,
            notes: row.notes.clone(),
            cloud_sponsorship_removed: false,
            object: "organizationSponsorship",
        }
    }
}

/// The stored `BillingSyncConfig`, PascalCase as the reference stores it.
#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct BillingSyncConfigJson {
    /// The key, in clear text (the dialog pre-fills it; owners only).
    pub billing_sync_key: String,
    /// From the license.
    pub cloud_organization_id: CloudOrganizationId,
    /// The last license sync (a local time).
    #[serde(serialize_with = "local_date")]
    pub last_license_sync: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for BillingSyncConfigJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BillingSyncConfigJson")
            .field("billing_sync_key", &"…")
            .field("cloud_organization_id", &self.cloud_organization_id)
            .field("last_license_sync", &self.last_license_sync)
            .finish()
    }
}

/// H8–H10's `OrganizationConnectionResponseModel` (no `object`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ConnectionResponse {
    /// The connection's id: on this server the organization's id (one billing sync
    /// connection per organization).
    pub id: Option<OrganizationId>,
    /// 1 (CloudBillingSync), or 0 for "no connection".
    #[serde(rename = "type")]
    pub connection_type: u8,
    /// The organization (all zeros for "no connection").
    pub organization_id: uuid::Uuid,
    /// Switched on.
    pub enabled: bool,
    /// The config.
    pub config: Option<BillingSyncConfigJson>,
}

impl ConnectionResponse {
    /// No connection: what the reference writes for a null connection.
    pub fn none() -> Self {
        Self {
            id: None,
            connection_type: 0,
            organization_id: uuid::Uuid::nil(),
            enabled: false,
            config: None,
        }
    }
}

/// The `plan` member of H14 (`PlanResponseModel(organization)`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PlanResponse {
    /// `"plan"`.
    pub object: &'static str,
    /// The plan type number.
    #[serde(rename = "type")]
    pub plan_type: u8,
    /// The product tier number.
    pub product_tier: u8,
    /// The organization's plan name.
    pub name: String,
}

/// H14's `OrganizationSubscriptionResponseModel`, the members the self-hosted page reads and
/// those the reference writes for a self-hosted organization.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SubscriptionResponse {
    /// The organization.
    pub id: OrganizationId,
    /// Its name (HTML-encoded, as the reference writes it).
    pub name: String,
    /// The business name (HTML-encoded), null here.
    pub business_name: Option<String>,
    /// The billing e-mail, null here.
    pub billing_email: Option<String>,
    /// The plan.
    pub plan: PlanResponse,
    /// Null on a self-hosted server.
    pub secrets_manager_plan: Option<()>,
    /// The plan type number.
    pub plan_type: u8,
    /// Seats.
    pub seats: Option<u32>,
    /// The license allows admin-initiated sponsorships.
    pub use_admin_sponsored_families: bool,
    /// Storage (none on a self-hosted server).
    pub storage_name: Option<String>,
    /// Storage in GB.
    pub storage_gb: Option<f64>,
    /// Null on a self-hosted server.
    pub customer_discount: Option<()>,
    /// Null on a self-hosted server.
    pub subscription: Option<()>,
    /// Null on a self-hosted server.
    pub upcoming_invoice: Option<()>,
    /// Null on a self-hosted server.
    pub pending_annual_upgrade: Option<()>,
    /// Null on a self-hosted server.
    pub sm_service_accounts_grace: Option<()>,
    /// The license's expiry without the 60-day grace period.
    #[serde(serialize_with = "utc_date")]
    pub expiration_without_grace_period: Option<DateTime<Utc>>,
    /// The license's expiry.
    #[serde(serialize_with = "utc_date")]
    pub expiration: Option<DateTime<Utc>>,
    /// False on a self-hosted server.
    pub exempt_from_billing_automation: bool,
    /// `"organizationSubscription"`.
    pub object: &'static str,
}

/// The five `familySponsorship*` members and `isAdminInitiated` of a
/// `profileOrganization` (H15), for the host to put into its `/sync` and `/accounts/profile`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct FamilySponsorshipFields {
    /// The member's sponsorship's label.
    pub family_sponsorship_friendly_name: Option<String>,
    /// The member may offer one: no sponsorship yet (or an admin-initiated one) and an
    /// Enterprise-tier organization.
    pub family_sponsorship_available: bool,
    /// The last sync that covered it (a database value).
    #[serde(serialize_with = "db_date")]
    pub family_sponsorship_last_sync_date: Option<DateTime<Utc>>,
    /// End of the paid period (a database value).
    #[serde(serialize_with = "db_date")]
    pub family_sponsorship_valid_until: Option<DateTime<Utc>>,
    /// Revocation requested; null without a sponsorship.
    pub family_sponsorship_to_delete: Option<bool>,
    /// The sponsorship was made by an admin.
    pub is_admin_initiated: bool,
}

/// H17's items (`OrganizationUserUserMiniDetailsResponseModel`), which the host builds from
/// its own tables: the admin dialog refuses an e-mail of a member.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct MemberMiniDetails {
    /// The membership.
    pub id: MemberId,
    /// The user.
    pub user_id: Option<UserId>,
    /// The role number.
    #[serde(rename = "type")]
    pub role: u8,
    /// The status number.
    pub status: i8,
    /// The user's name.
    pub name: Option<String>,
    /// The user's e-mail.
    pub email: String,
    /// `"organizationUserUserMiniDetails"`.
    pub object: &'static str,
}

impl MemberMiniDetails {
    /// The item of a member.
    pub fn of(
        member: &sponsorship_core::org::Member,
        user_id: Option<UserId>,
        name: Option<String>,
    ) -> Self {
        Self {
            id: member.id,
            user_id,
            role: role_number(member.role),
            status: member.status.number(),
            name,
            email: member.email.clone(),
            object: "organizationUserUserMiniDetails",
        }
    }
}

/// A `profileOrganization` (`ProfileOrganizationResponseModel`) with the members the
/// Sponsored Families page reads: what a host writes into its `/sync` and
/// `/accounts/profile` (a host with more members writes its own and takes the six sponsorship
/// members from [`FamilySponsorshipFields`]).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ProfileOrganization {
    /// The organization.
    pub id: OrganizationId,
    /// Its name.
    pub name: String,
    /// The member's status number.
    pub status: i8,
    /// The member's role number.
    #[serde(rename = "type")]
    pub role: u8,
    /// The organization is enabled.
    pub enabled: bool,
    /// The plan's product tier number.
    pub product_tier_type: u8,
    /// The license grants admin-initiated sponsorships.
    pub use_admin_sponsored_families: bool,
    /// H15: the six sponsorship members, in the reference's order.
    #[serde(flatten)]
    pub sponsorship: FamilySponsorshipFields,
    /// `"profileOrganization"`.
    pub object: &'static str,
}

impl ProfileOrganization {
    /// The item of a membership of `organization`, with its sponsorship fields.
    pub fn of(
        organization: &sponsorship_core::org::Organization,
        member: &sponsorship_core::org::Member,
        fields: FamilySponsorshipFields,
    ) -> Self {
        Self {
            id: organization.id,
            name: organization.name.clone(),
            status: member.status.number(),
            role: role_number(member.role),
            enabled: organization.enabled,
            product_tier_type: crate::licenses::tier_number(organization.plan_type.product_tier()),
            use_admin_sponsored_families: organization.use_admin_sponsored_families,
            sponsorship: fields,
            object: "profileOrganization",
        }
    }
}

/// `OrganizationUserType`'s number.
pub(crate) const fn role_number(role: sponsorship_core::org::MemberRole) -> u8 {
    use sponsorship_core::org::MemberRole;
    match role {
        MemberRole::Owner => 0,
        MemberRole::Admin => 1,
        MemberRole::User => 2,
        MemberRole::CustomManageUsers => 4,
    }
}

/// Writes a body as the reference server does (System.Text.Json's escapes and date forms):
/// for the host's own responses that carry these models.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    crate::json::to_vec(value)
}
