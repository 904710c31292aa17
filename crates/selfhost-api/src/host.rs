//! What the embedding server provides: its users, memberships, organizations and stores.

use std::future::Future;

use chrono::{DateTime, Utc};
use cloud_client::CloudClient;
use sponsorship_core::ids::{InstallationId, OrganizationId, UserId};
use sponsorship_core::license::{LicenseVerifier, OrganizationLicense};
use sponsorship_core::org::{Member, MemberRole, MemberStatus, Organization};
use sponsorship_core::store::BillingConnectionStore;

/// A signed-in user of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct User {
    /// The user's id.
    pub id: UserId,
    /// The account e-mail (a member may not offer a sponsorship to it).
    pub email: String,
    /// The display name.
    pub name: Option<String>,
}

impl User {
    /// A user.
    pub fn new(id: UserId, email: impl Into<String>, name: Option<String>) -> Self {
        Self {
            id,
            email: email.into(),
            name,
        }
    }
}

/// A self-hosted organization as the host knows it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HostOrganization {
    /// Id, name, plan, switch and the admin-sponsored-families flag.
    pub organization: Organization,
    /// Seats, when limited.
    pub seats: Option<u32>,
    /// The organization's license file (its `id` is the cloud organization's).
    pub license: Option<OrganizationLicense>,
    /// Members who take a seat (invited, accepted or confirmed); with the live
    /// admin-initiated sponsorships they are the occupied seats.
    pub seated_members: u32,
}

impl HostOrganization {
    /// An organization.
    pub fn new(
        organization: Organization,
        seats: Option<u32>,
        license: Option<OrganizationLicense>,
    ) -> Self {
        Self {
            organization,
            seats,
            license,
            seated_members: 0,
        }
    }

    /// Sets how many members take a seat (an admin-initiated offer takes one more; with
    /// `seats` reached, a self-hosted server cannot add one).
    #[must_use]
    pub fn with_seated_members(mut self, members: u32) -> Self {
        self.seated_members = members;
        self
    }
}

/// The embedding server, as the endpoints and pages see it. The crate never reads the host's
/// tables itself: every user, membership and organization comes through here, and the
/// sponsorship rows, sync state and billing sync connections through [`Host::store`].
///
/// A membership is the core's [`Member`]: its id is the organization user id the cloud knows,
/// its e-mail the user's. Roles and the confirmed status are judged here as the reference
/// server judges its claims: only a **confirmed** Owner, Admin or custom role with Manage Users
/// acts for the organization.
pub trait Host: Send + Sync + 'static {
    /// Sponsorship rows, sync state, sync lock and billing sync connections.
    type Store: BillingConnectionStore;
    /// The host's own failure (a database error). Answered 500 and logged; never shown.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The store.
    fn store(&self) -> &Self::Store;

    /// The cloud client, or `None` when cloud communication is off
    /// (`globalSettings__enableCloudCommunication` is not `true`).
    fn cloud(&self) -> Option<&CloudClient>;

    /// This installation's id (`globalSettings__installation__id`), which a license must name;
    /// by default the cloud client's. A host with cloud communication off still knows it.
    fn installation_id(&self) -> Option<InstallationId> {
        self.cloud().map(|c| c.config().installation_id)
    }

    /// Checks license files (Bitwarden's key; a test cloud's key only when the host says so).
    fn license_verifier(&self) -> &LicenseVerifier;

    /// The time (a test host passes a fixed clock).
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    /// Whose bearer token (or page session token) this is; `None` for an unknown token.
    fn user_by_token(
        &self,
        token: &str,
    ) -> impl Future<Output = Result<Option<User>, Self::Error>> + Send;

    /// The user's membership of the organization, whatever its status.
    fn membership(
        &self,
        user: &User,
        org: OrganizationId,
    ) -> impl Future<Output = Result<Option<Member>, Self::Error>> + Send;

    /// All of the user's memberships (the profile and the Sponsored Families page).
    fn memberships(
        &self,
        user: &User,
    ) -> impl Future<Output = Result<Vec<Member>, Self::Error>> + Send;

    /// An organization.
    fn organization(
        &self,
        org: OrganizationId,
    ) -> impl Future<Output = Result<Option<HostOrganization>, Self::Error>> + Send;

    /// Every organization's id (the daily runner's round; the one-license-per-vault check).
    fn organization_ids(
        &self,
    ) -> impl Future<Output = Result<Vec<OrganizationId>, Self::Error>> + Send;

    /// Stores a verified license and takes the organization's plan, flag and cloud id from it
    /// (the reference server's `UpdateLicenseAsync`).
    fn save_license(
        &self,
        org: OrganizationId,
        license: &OrganizationLicense,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// A confirmed membership with one of `roles`' powers: how the reference server's claims see
/// a member.
pub(crate) fn confirmed(member: Option<&Member>) -> Option<&Member> {
    member.filter(|m| m.status == MemberStatus::Confirmed)
}

/// A confirmed owner.
pub(crate) fn is_owner(member: Option<&Member>) -> bool {
    confirmed(member).is_some_and(|m| m.role == MemberRole::Owner)
}

/// A confirmed Owner, Admin or custom role with Manage Users.
pub(crate) fn manages_users(member: Option<&Member>) -> bool {
    confirmed(member).is_some_and(|m| m.role.can_manage_users())
}
