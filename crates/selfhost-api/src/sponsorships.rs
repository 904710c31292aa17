//! H1–H6: the member's and the admin's sponsorships.

use sponsorship_core::email::validate_strict_email;
use sponsorship_core::ids::{OrganizationId, SponsorshipId};
use sponsorship_core::plan::PlanSponsorshipType;
use sponsorship_core::sponsorship::{
    self, MAX_NAME_LEN, MAX_NOTES_LEN, OfferError, OfferKind, OfferRequest, RevokeError, RowChange,
};
use sponsorship_core::store::SponsorshipStore;

use crate::api::SelfHostedApi;
use crate::host::{Host, HostOrganization, User, manages_users};
use crate::input::{Body, required, too_long};
use crate::json::{ApiError, internal};
use crate::models::{ListResponse, SponsorshipInvite};

/// H1's request (`OrganizationSponsorshipCreateRequestModel`), validated as its attributes say.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CreateSponsorship {
    /// `planSponsorshipType`.
    pub plan_sponsorship_type: PlanSponsorshipType,
    /// `sponsoredEmail`.
    pub sponsored_email: String,
    /// `friendlyName`.
    pub friendly_name: Option<String>,
    /// `isAdminInitiated`.
    pub is_admin_initiated: bool,
    /// `notes` (an encrypted string).
    pub notes: Option<String>,
}

impl CreateSponsorship {
    /// A member's offer to `email`, as the member page sends it (the friendly name is the
    /// e-mail).
    pub fn member_offer(email: &str) -> Self {
        Self {
            plan_sponsorship_type: PlanSponsorshipType::FamiliesForEnterprise,
            sponsored_email: email.to_owned(),
            friendly_name: Some(email.to_owned()),
            is_admin_initiated: false,
            notes: None,
        }
    }

    /// Binds and validates a JSON body (member names in any case).
    pub fn from_json(bytes: &[u8]) -> Result<Self, ApiError> {
        let body = Body::parse(bytes)?;
        let plan = body
            .integer("planSponsorshipType", "PlanSponsorshipType")?
            .unwrap_or(0);
        let plan_sponsorship_type = u8::try_from(plan)
            .ok()
            .and_then(PlanSponsorshipType::from_number)
            .ok_or_else(|| {
                ApiError::invalid_model(
                    "PlanSponsorshipType",
                    format!("The value '{plan}' is not a sponsorship type."),
                )
            })?;
        let email = body
            .string("sponsoredEmail", "SponsoredEmail")?
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .ok_or_else(|| required("SponsoredEmail"))?;
        if email.chars().count() > MAX_NAME_LEN {
            return Err(too_long("SponsoredEmail", MAX_NAME_LEN));
        }
        if validate_strict_email(email).is_err() {
            return Err(ApiError::invalid_model(
                "SponsoredEmail",
                sponsorship_core::email::INVALID_EMAIL_TEXT,
            ));
        }
        let friendly_name = body.string("friendlyName", "FriendlyName")?;
        if friendly_name.is_some_and(|n| n.chars().count() > MAX_NAME_LEN) {
            return Err(too_long("FriendlyName", MAX_NAME_LEN));
        }
        let notes = body.string("notes", "Notes")?;
        if notes.is_some_and(|n| n.chars().count() > MAX_NOTES_LEN) {
            return Err(ApiError::invalid_model(
                "Notes",
                format!(
                    "The field Notes exceeds the maximum encrypted value length of {MAX_NOTES_LEN} characters."
                ),
            ));
        }
        Ok(Self {
            plan_sponsorship_type,
            sponsored_email: email.to_owned(),
            friendly_name: friendly_name.map(str::to_owned),
            is_admin_initiated: body
                .bool("isAdminInitiated", "IsAdminInitiated")?
                .unwrap_or(false),
            notes: notes.map(str::to_owned),
        })
    }
}

/// Spec §8.1 step 8: a new admin-initiated sponsorship takes a seat; with every seat taken, a
/// self-hosted server cannot add one.
fn seat_for_admin_offer(
    organization: &HostOrganization,
    rows: &[sponsorship_core::sponsorship::Sponsorship],
) -> Result<(), ApiError> {
    let Some(seats) = organization.seats else {
        return Ok(());
    };
    let org = organization.organization.id;
    let admin_offers = rows
        .iter()
        .filter(|r| {
            r.is_admin_initiated && !r.to_delete && r.sponsoring_organization_id == Some(org)
        })
        .count();
    let occupied = u64::from(organization.seated_members) + admin_offers as u64;
    if occupied >= u64::from(seats) {
        return Err(ApiError::bad_request(
            "Cannot autoscale on self-hosted instance.",
        ));
    }
    Ok(())
}

impl<H: Host> SelfHostedApi<H> {
    /// H1: a member's (or, `isAdminInitiated`, an admin's) offer. `Ok` is the 200 with an
    /// empty body; nothing is e-mailed until the next sync.
    pub async fn create_sponsorship(
        &self,
        user: &User,
        org: OrganizationId,
        request: &CreateSponsorship,
    ) -> Result<OfferKind, ApiError> {
        let host = self.host();
        let organization = self
            .find_organization(org)
            .await?
            // The reference server fails with a null reference here, as for a non-member.
            .ok_or_else(ApiError::internal)?;
        let member = self
            .membership(user, org)
            .await?
            // The reference server fails with a null reference here.
            .ok_or_else(ApiError::internal)?;
        let _write = self.writes.lock().await;
        let store = host.store();
        let rows = self.rows(org).await?;
        let offer = OfferRequest {
            sponsor_email: &user.email,
            offered_to_email: &request.sponsored_email,
            friendly_name: request.friendly_name.as_deref(),
            admin_initiated: request.is_admin_initiated,
            notes: request.notes.as_deref(),
        };
        let made = sponsorship::offer(
            &organization.organization,
            &member,
            &rows,
            &offer,
            SponsorshipId::new_random(),
            host.now(),
        )
        .map_err(|e| match e {
            OfferError::AdminNotPermitted => ApiError::unauthorized(),
            OfferError::MemberNotInOrganization => ApiError::internal(),
            other => ApiError::bad_request(other.to_string()),
        })?;
        if made.kind == OfferKind::Created && request.is_admin_initiated {
            seat_for_admin_offer(&organization, &rows)?;
        }
        if made.kind != OfferKind::AlreadyOffered {
            store
                .write_changes(org, &[RowChange::Upsert(made.sponsorship)])
                .await
                .map_err(|e| internal("storing the offer", &e))?;
        }
        Ok(made.kind)
    }

    /// H2 (and its alias H3): the member revokes their own sponsorship. It is withdrawn from
    /// the cloud at the next sync; until then the row shows "Removed (awaiting sync)".
    pub async fn revoke_own_sponsorship(
        &self,
        user: &User,
        org: OrganizationId,
    ) -> Result<(), ApiError> {
        let host = self.host();
        let member = self
            .membership(user, org)
            .await?
            .ok_or_else(|| ApiError::bad_request("Unknown Organization User"))?;
        let _write = self.writes.lock().await;
        let rows = self.rows(org).await?;
        let change = sponsorship::revoke(member.id, &rows, host.now())
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        host.store()
            .write_changes(org, &[change])
            .await
            .map_err(|e| internal("storing the revoke", &e))
    }

    /// H4: an Owner, Admin or Manage Users member revokes a sponsorship of the organization by
    /// its friendly name (any kind, ignoring case). Anyone else gets a bare 403.
    pub async fn revoke_by_friendly_name(
        &self,
        user: &User,
        org: OrganizationId,
        friendly_name: &str,
    ) -> Result<(), ApiError> {
        let host = self.host();
        let member = self.membership(user, org).await?;
        if !manages_users(member.as_ref()) {
            return Err(ApiError::bare(403));
        }
        let _write = self.writes.lock().await;
        let rows = self.rows(org).await?;
        let change = sponsorship::revoke_by_friendly_name(org, friendly_name, &rows, host.now())
            .map_err(|e: RevokeError| ApiError::bad_request(e.to_string()))?;
        host.store()
            .write_changes(org, &[change])
            .await
            .map_err(|e| internal("storing the revoke", &e))
    }

    /// H5: the organization's admin-initiated sponsorships.
    pub async fn admin_sponsorships(
        &self,
        user: &User,
        org: OrganizationId,
    ) -> Result<ListResponse<SponsorshipInvite>, ApiError> {
        self.find_organization(org)
            .await?
            .ok_or_else(ApiError::not_found)?;
        let member = self.membership(user, org).await?;
        if !manages_users(member.as_ref()) {
            return Err(ApiError::unauthorized());
        }
        let rows = self.rows(org).await?;
        Ok(ListResponse::new(
            rows.iter()
                .filter(|r| r.is_admin_initiated && r.sponsoring_organization_id == Some(org))
                .map(SponsorshipInvite::of)
                .collect(),
        ))
    }

    /// H6: "Resend invitation" on a self-hosted server: the cloud e-mails offers, so the
    /// reference answers 400 (a bare 403 for a member who may not manage users).
    pub async fn resend_offer(&self, user: &User, org: OrganizationId) -> Result<(), ApiError> {
        let member = self.membership(user, org).await?;
        if !manages_users(member.as_ref()) {
            return Err(ApiError::bare(403));
        }
        Err(ApiError::bad_request("Only allowed when not self hosted."))
    }
}
