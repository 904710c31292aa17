//! H15 and H17: the values the host puts into its own `/sync`, `/accounts/profile` and
//! member list responses.

use sponsorship_core::ids::OrganizationId;
use sponsorship_core::org::{Member, Organization};
use sponsorship_core::plan::ProductTier;
use sponsorship_core::sponsorship::Sponsorship;

use crate::api::SelfHostedApi;
use crate::host::{Host, User};
use crate::json::ApiError;
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
        let memberships = self.memberships(user).await?;
        let mut out = Vec::with_capacity(memberships.len());
        for member in memberships {
            let Some(found) = self.find_organization(member.organization_id).await? else {
                continue;
            };
            let rows = self.rows(member.organization_id).await?;
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
        let Some(found) = self.find_organization(org).await? else {
            return Ok(None);
        };
        let rows = self.rows(org).await?;
        Ok(Some(family_sponsorship_fields(
            &found.organization,
            member,
            &rows,
        )))
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use sponsorship_core::ids::{MemberId, SponsorshipId};
    use sponsorship_core::org::{MemberRole, MemberStatus};
    use sponsorship_core::plan::PlanType;

    use super::*;
    use crate::models::{ListResponse, MemberMiniDetails};

    fn acme() -> (Organization, Member) {
        let org = Organization {
            id: "22222222-0000-4000-8000-000000000001".parse().unwrap(),
            name: "Acme".into(),
            plan_type: PlanType::EnterpriseAnnually,
            enabled: true,
            use_admin_sponsored_families: false,
        };
        let member = Member {
            id: "33333333-0000-4000-8000-000000000002".parse().unwrap(),
            organization_id: org.id,
            email: "alice@acme.example".into(),
            status: MemberStatus::Confirmed,
            role: MemberRole::User,
        };
        (org, member)
    }

    #[test]
    fn profile_organization_carries_the_h15_members() {
        let (org, member) = acme();
        let none = family_sponsorship_fields(&org, &member, &[]);
        assert_eq!(
            String::from_utf8(crate::json::to_vec(&ProfileOrganization::of(
                &org, &member, none
            )))
            .unwrap(),
            r#"{"id":"22222222-0000-4000-8000-000000000001","name":"Acme","status":2,"type":2,"enabled":true,"productTierType":3,"useAdminSponsoredFamilies":false,"familySponsorshipFriendlyName":null,"familySponsorshipAvailable":true,"familySponsorshipLastSyncDate":null,"familySponsorshipValidUntil":null,"familySponsorshipToDelete":null,"isAdminInitiated":false,"object":"profileOrganization"}"#
        );
        let at = Utc.with_ymd_and_hms(2026, 12, 2, 8, 0, 0).unwrap();
        let mut row = Sponsorship::new_offer(
            SponsorshipId::new_random(),
            org.id,
            member.id,
            "kid@home.example",
            at,
        );
        row.last_sync_date = Some(at);
        row.valid_until = Some(at + chrono::TimeDelta::days(365));
        let active = family_sponsorship_fields(&org, &member, &[row.clone()]);
        assert_eq!(
            String::from_utf8(crate::json::to_vec(&active.clone())).unwrap(),
            r#"{"familySponsorshipFriendlyName":"kid@home.example","familySponsorshipAvailable":false,"familySponsorshipLastSyncDate":"2026-12-02T08:00:00","familySponsorshipValidUntil":"2027-12-02T08:00:00","familySponsorshipToDelete":false,"isAdminInitiated":false}"#
        );
        let flattened = crate::json::to_vec(&ProfileOrganization::of(&org, &member, active));
        assert!(
            String::from_utf8(flattened).unwrap().contains(r#""familySponsorshipAvailable":false,"familySponsorshipLastSyncDate":"2026-12-02T08:00:00","familySponsorshipValidUntil":"2027-12-02T08:00:00","familySponsorshipToDelete":false,"isAdminInitiated":false,"object":"profileOrganization"}"#)
        );
        // Another member's row is not this member's; a Teams organization offers nothing.
        let other = Member {
            id: MemberId::new_random(),
            ..member.clone()
        };
        assert!(family_sponsorship_fields(&org, &other, &[row]).family_sponsorship_available);
        let teams = Organization {
            plan_type: PlanType::TeamsAnnually,
            ..org
        };
        assert!(!family_sponsorship_fields(&teams, &member, &[]).family_sponsorship_available);
    }

    #[test]
    fn mini_details_are_a_list_of_the_reference_items() {
        let (_, member) = acme();
        let user = "11111111-0000-4000-8000-000000000002".parse().ok();
        let list = ListResponse::new(vec![MemberMiniDetails::of(
            &member,
            user,
            Some("Alice".into()),
        )]);
        assert_eq!(
            String::from_utf8(crate::json::to_vec(&list)).unwrap(),
            r#"{"data":[{"id":"33333333-0000-4000-8000-000000000002","userId":"11111111-0000-4000-8000-000000000002","type":2,"status":2,"name":"Alice","email":"alice@acme.example","object":"organizationUserUserMiniDetails"}],"continuationToken":null,"object":"list"}"#
        );
    }
}
