//! What the templates show, computed from the API's operations.

use serde::Serialize;
use sponsorship_core::ids::OrganizationId;
use sponsorship_core::org::MemberStatus;
use sponsorship_core::plan::ProductTier;
use sponsorship_core::schedule::display_time;
use sponsorship_core::sponsorship::UiStatus;

use crate::api::SelfHostedApi;
use crate::host::{Host, User, is_owner};
use crate::json::ApiError;

#[derive(Serialize)]
pub(super) struct UserView {
    email: String,
}

impl UserView {
    pub(super) fn of(user: &User) -> Self {
        Self {
            email: user.email.clone(),
        }
    }
}

#[derive(Serialize)]
pub(super) struct OrgLink {
    id: OrganizationId,
    name: String,
}

#[derive(Serialize)]
pub(super) struct SponsorshipView {
    recipient: String,
    status: String,
    awaiting_sync: bool,
    last_sync: String,
    revocable: bool,
    hint: Option<&'static str>,
}

#[derive(Serialize)]
pub(super) struct MembershipView {
    id: OrganizationId,
    name: String,
    sponsorship: Option<SponsorshipView>,
    can_offer: bool,
    why_not: Option<&'static str>,
}

pub(super) struct FamiliesPage {
    pub(super) owned: Vec<OrgLink>,
    pub(super) organizations: Vec<MembershipView>,
}

/// The organizations the user owns, for the navigation (no rows loaded).
async fn owned_organizations<H: Host>(
    api: &SelfHostedApi<H>,
    user: &User,
) -> Result<Vec<OrgLink>, ApiError> {
    let mut owned = Vec::new();
    for member in api.memberships(user).await? {
        if !is_owner(Some(&member)) {
            continue;
        }
        if let Some(found) = api.find_organization(member.organization_id).await? {
            owned.push(OrgLink {
                id: found.organization.id,
                name: found.organization.name,
            });
        }
    }
    Ok(owned)
}

/// The member's organizations, each with the member's sponsorship and whether an offer can
/// be made.
pub(super) async fn sponsored_families<H: Host>(
    api: &SelfHostedApi<H>,
    user: &User,
) -> Result<FamiliesPage, ApiError> {
    let memberships = api.memberships(user).await?;
    let mut page = FamiliesPage {
        owned: Vec::new(),
        organizations: Vec::new(),
    };
    for member in memberships {
        let Some(found) = api.find_organization(member.organization_id).await? else {
            continue;
        };
        let org = found.organization;
        if is_owner(Some(&member)) {
            page.owned.push(OrgLink {
                id: org.id,
                name: org.name.clone(),
            });
        }
        if org.plan_type.product_tier() != ProductTier::Enterprise {
            continue;
        }
        let rows = api.rows(org.id).await?;
        let fields = crate::profile::family_sponsorship_fields(&org, &member, &rows);
        let row = rows.iter().find(|r| {
            r.sponsoring_member_id == member.id && r.sponsoring_organization_id == Some(org.id)
        });
        let confirmed = member.status == MemberStatus::Confirmed;
        let sponsorship = row.map(|r| {
            let status = r.ui_status();
            SponsorshipView {
                recipient: r
                    .offered_to_email
                    .clone()
                    .or_else(|| r.friendly_name.clone())
                    .unwrap_or_default(),
                status: match (status, r.valid_until) {
                    (UiStatus::RevokeWhenExpired, Some(until)) => {
                        format!("{} {}", status.label(), until.format("%m/%d/%Y"))
                    }
                    _ => status.label().to_owned(),
                },
                awaiting_sync: r.awaiting_sync,
                last_sync: display_time(r.last_sync_date),
                revocable: !r.to_delete && !r.is_admin_initiated,
                hint: Some(match status {
                    UiStatus::Requested => "The cloud e-mails the offer at the next sync.",
                    UiStatus::Sent => {
                        "The cloud e-mailed the offer. Once it is redeemed, it shows Active after the next sync."
                    }
                    UiStatus::Active => "Redeemed: the family organization is sponsored.",
                    UiStatus::RemovedAwaitingSync => "Withdrawn from the cloud at the next sync.",
                    UiStatus::RevokeWhenExpired => {
                        "The family keeps the plan until the date shown, then it ends."
                    }
                }),
            }
        });
        let can_offer = confirmed && org.enabled && fields.family_sponsorship_available;
        let why_not = if can_offer || sponsorship.is_some() {
            None
        } else if !confirmed {
            Some(
                "Only confirmed members can sponsor: an admin of the organization confirms you first.",
            )
        } else {
            Some("This organization cannot sponsor Families organizations now.")
        };
        page.organizations.push(MembershipView {
            id: org.id,
            name: org.name,
            sponsorship,
            can_offer,
            why_not,
        });
    }
    Ok(page)
}

#[derive(Serialize)]
pub(super) struct OrgView {
    id: OrganizationId,
    name: String,
    plan: String,
    expiration: String,
    cloud_organization: String,
}

#[derive(Serialize)]
#[allow(clippy::struct_excessive_bools)] // flags the template reads
pub(super) struct SyncView {
    cloud_communication: bool,
    has_connection: bool,
    enabled: bool,
    ready: bool,
    connection: String,
    last_success: String,
    last_attempt: String,
    last_error: String,
    next_due: String,
    last_license_sync: String,
}

pub(super) struct SubscriptionPage {
    pub(super) owned: Vec<OrgLink>,
    pub(super) org: OrgView,
    pub(super) sync: SyncView,
}

/// The organization's subscription and billing sync (owners only: 404 otherwise).
pub(super) async fn subscription<H: Host>(
    api: &SelfHostedApi<H>,
    user: &User,
    org: OrganizationId,
) -> Result<SubscriptionPage, ApiError> {
    let sub = api.subscription(user, org).await?;
    let overview = api.billing_sync_overview(user, org).await?;
    let found = api.organization_of(org).await?;
    let owned = owned_organizations(api, user).await?;
    let state = &overview.state;
    let connection = overview.connection.as_ref();
    let enabled = connection.is_some_and(|c| c.enabled);
    Ok(SubscriptionPage {
        owned,
        org: OrgView {
            id: org,
            name: found.organization.name.clone(),
            plan: sub.plan.name.clone(),
            expiration: display_time(sub.expiration),
            cloud_organization: overview
                .cloud_organization_id
                .map_or_else(|| "No license yet".to_owned(), |c| c.to_string()),
        },
        sync: SyncView {
            cloud_communication: overview.cloud_communication,
            has_connection: connection.is_some(),
            enabled,
            ready: overview.cloud_communication
                && enabled
                && overview.cloud_organization_id.is_some(),
            connection: connection.map_or_else(
                || "Not set up".to_owned(),
                |c| {
                    format!(
                        "Token ending in {}, {}",
                        c.key.last_four(),
                        if c.enabled { "on" } else { "off" }
                    )
                },
            ),
            last_success: display_time(state.last_success),
            last_attempt: display_time(state.last_attempt),
            last_error: state.last_error.as_ref().map_or_else(
                || "None".to_owned(),
                |e| format!("{} ({})", e.message, display_time(Some(e.at))),
            ),
            next_due: display_time(state.next_due),
            last_license_sync: display_time(state.last_license_sync),
        },
    })
}
