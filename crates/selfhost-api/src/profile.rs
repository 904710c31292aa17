//! H15 and H17: the values the host puts into its own `/sync`, `/accounts/profile` and
//! member list responses.

use sponsorship_core::ids::OrganizationId;
use sponsorship_core::org::{Member, Organization};
use sponsorship_core::plan::ProductTier;
use sponsorship_core::sponsorship::Sponsorship;
use sponsorship_core::store::SponsorshipStore;

use crate::api::SelfHostedApi;
use crate::host::{Host, User};
use crate::json::{ApiError, internal};
use crate::models::{FamilySponsorshipFields, ProfileOrganization};

/// The `familySponsorship*` members of a member's `profileOrganization`, from the
/// organization's rows: the member's own row, as the reference's view joins it on the
/// sponsoring organization user.
pub fn family_sponsorship_fields(
    organization: &Organization,
    member: &Member,
    rows: &[Sponsorship],
) -> FamilySponsorshipFields {
    let row = rows.iter().find(|r| {
        r.sponsoring_member_id == member.id && r.sponsoring_organization_id == Some(organization.id)
    });
    let enterprise = organization.plan_type.product_tier() == ProductTier::Enterprise;
    let friendly_name = row.and_then(|r| r.friendly_name.clone());
    let admin_initiated = row.is_some_and(|r| r.is_admin_initiated);
    FamilySponsorshipFields {
        family_sponsorship_available: (friendly_name.is_none() || admin_initiated) && enterprise,
        family_sponsorship_friendly_name: friendly_name,
        family_sponsorship_last_sync_date: row.and_then(|r| r.last_sync_date),
        family_sponsorship_valid_until: row.and_then(|r| r.valid_until),
        family_sponsorship_to_delete: row.map(|r| r.to_delete),
        is_admin_initiated: admin_initiated,
    }
}

impl<H: Host> SelfHostedApi<H> {
    /// The `profileOrganization`s of a user's memberships (H15), for the host's `/sync` and
    /// `/accounts/profile`.
    pub async fn profile_organizations(
        &self,
        user: &User,
    ) -> Result<Vec<ProfileOrganization>, ApiError> {
        let memberships = self
            .host()
            .memberships(user)
            .await
            .map_err(|e| internal("loading the memberships", &e))?;
        let mut out = Vec::with_capacity(memberships.len());
        for member in memberships {
            let Some(found) = self
                .host()
                .organization(member.organization_id)
                .await
                .map_err(|e| internal("loading the organization", &e))?
            else {
                continue;
            };
            let rows = self
                .host()
                .store()
                .sponsorships(member.organization_id)
                .await
                .map_err(|e| internal("loading the sponsorships", &e))?;
            let fields = family_sponsorship_fields(&found.organization, &member, &rows);
            out.push(ProfileOrganization::of(
                &found.organization,
                &member,
                fields,
            ));
        }
        Ok(out)
    }

    /// H15 for one membership: loads the organization and its rows and gives the fields the
    /// host's `profileOrganization` carries. `None` for an organization the host no longer has.
    pub async fn family_sponsorship(
        &self,
        member: &Member,
    ) -> Result<Option<FamilySponsorshipFields>, ApiError> {
        let org: OrganizationId = member.organization_id;
        let Some(found) = self
            .host()
            .organization(org)
            .await
            .map_err(|e| internal("loading the organization", &e))?
        else {
            return Ok(None);
        };
        let rows = self
            .host()
            .store()
            .sponsorships(org)
            .await
            .map_err(|e| internal("loading the sponsorships", &e))?;
        Ok(Some(family_sponsorship_fields(
            &found.organization,
            member,
            &rows,
        )))
    }
}
