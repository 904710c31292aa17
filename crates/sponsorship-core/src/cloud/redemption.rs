//! Offer tokens' claims (spec §9) and the redemption rule (§8.6), returning its effect.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::rules::{CloudOrganization, CloudSponsorship, SPONSORED_PERIOD, STALE_OFFER_AGE};
use crate::email;
use crate::ids::{CloudOrganizationId, SponsorshipId};
use crate::plan::{PlanSponsorshipType, ProductTier};

/// An offer e-mail to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfferToSend {
    /// The cloud row.
    pub sponsorship_id: SponsorshipId,
    /// Recipient.
    pub email: String,
    /// Type (bound into the token).
    pub plan_sponsorship_type: PlanSponsorshipType,
}

/// Why a redemption was refused (texts of spec §4.2 C4 and §8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedeemError {
    /// The token does not parse or verify.
    #[error("Failed to parse sponsorship token.")]
    BadToken,
    /// The offer does not exist for this user (or the token is stale).
    #[error("No unredeemed sponsorship offer exists for you.")]
    NoOffer,
    /// The caller does not own the target organization.
    #[error("Can only redeem sponsorship for an organization you own.")]
    NotOwner,
    /// The target already has a sponsorship.
    #[error(
        "Cannot redeem a sponsorship offer for an organization that is already sponsored. Revoke existing sponsorship first."
    )]
    AlreadySponsored,
    /// No plan type.
    #[error("Cannot set up sponsorship without a known sponsorship type.")]
    UnknownType,
    /// The self-hosted server stopped syncing more than 182.5 days ago; the row is deleted.
    #[error("This sponsorship offer is more than 6 months old and has expired.")]
    Expired,
    /// The target is not a Families organization.
    #[error("Can only redeem sponsorship offer on families organizations.")]
    NotFamilies,
}

/// The pre-validation shown on the redemption page (C3).
pub const OFFER_EXPIRED_TEXT: &str = "The sponsorship offer has expired.";

/// Why a recipient's removal was refused (C7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoveError {
    /// Only the Families organization's owner may remove it.
    #[error("Only the owner of an organization can remove sponsorship.")]
    NotOwner,
    /// Nothing to remove.
    #[error("The requested organization is not currently being sponsored.")]
    NotSponsored,
}

/// What a redemption token claims (spec §9); the token's cryptography is the emulator's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OfferClaims {
    /// `OrganizationSponsorshipOfferToken`.
    pub identifier: String,
    /// Cloud row id.
    pub id: SponsorshipId,
    /// Plan sponsorship type.
    pub sponsorship_type: PlanSponsorshipType,
    /// Recipient at issue time.
    pub email: String,
}

impl OfferClaims {
    /// The identifier every offer token carries.
    pub const IDENTIFIER: &'static str = "OrganizationSponsorshipOfferToken";

    /// Claims for an offer.
    pub fn for_offer(offer: &OfferToSend) -> Self {
        Self {
            identifier: Self::IDENTIFIER.to_owned(),
            id: offer.sponsorship_id,
            sponsorship_type: offer.plan_sponsorship_type,
            email: offer.email.clone(),
        }
    }

    /// Spec §9 validity for the signed-in user: the row exists with this id and type, still has
    /// a recipient, and the token's e-mail equals both the row's and the user's (case-insensitive).
    pub fn valid_for(&self, row: Option<&CloudSponsorship>, user_email: &str) -> bool {
        let Some(row) = row else { return false };
        self.identifier == Self::IDENTIFIER
            && !self.email.trim().is_empty()
            && row.id == self.id
            && row.plan_sponsorship_type == Some(self.sponsorship_type)
            && row
                .offered_to_email
                .as_deref()
                .is_some_and(|e| !e.trim().is_empty() && email::same_email(e, &self.email))
            && email::same_email(&self.email, user_email)
    }
}

/// What a redemption does to the cloud's rows (see [`redemption`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Redemption {
    /// The offer becomes the Families organization's sponsorship: the row takes the sponsored
    /// organization, loses its recipient, and is paid until `valid_until`.
    Redeem {
        /// The cloud row.
        id: SponsorshipId,
        /// The Families organization.
        sponsored_organization_id: CloudOrganizationId,
        /// End of the sponsored period.
        valid_until: DateTime<Utc>,
    },
    /// The offer was not synced for more than 182.5 days: the row is deleted, and the
    /// redemption refused with [`RedeemError::Expired`].
    DeleteExpired {
        /// The cloud row.
        id: SponsorshipId,
    },
}

/// The redemption rule (spec §8.6): `row` is the cloud row the token's claims name (if any),
/// `target` the Families organization the signed-in user picked, `target_owned` whether they
/// own it, `target_sponsored` whether it already has a sponsorship. The checks run in the
/// reference's order, each with its text.
pub fn redemption(
    claims: &OfferClaims,
    row: Option<&CloudSponsorship>,
    user_email: &str,
    target: &CloudOrganization,
    target_owned: bool,
    target_sponsored: bool,
    now: DateTime<Utc>,
) -> Result<Redemption, RedeemError> {
    if !target_owned {
        return Err(RedeemError::NotOwner);
    }
    if !claims.valid_for(row, user_email) {
        return Err(RedeemError::NoOffer);
    }
    let Some(row) = row else {
        return Err(RedeemError::NoOffer);
    };
    if target_sponsored {
        return Err(RedeemError::AlreadySponsored);
    }
    if row.plan_sponsorship_type.is_none() {
        return Err(RedeemError::UnknownType);
    }
    if row
        .last_sync_date
        .is_some_and(|s| now - s > STALE_OFFER_AGE)
    {
        return Ok(Redemption::DeleteExpired { id: row.id });
    }
    if target.plan_type.product_tier() != ProductTier::Families {
        return Err(RedeemError::NotFamilies);
    }
    Ok(Redemption::Redeem {
        id: row.id,
        sponsored_organization_id: target.id,
        valid_until: now + SPONSORED_PERIOD,
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone};

    use super::*;
    use crate::ids::MemberId;
    use crate::plan::PlanType;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
    }

    fn offer(last_sync: DateTime<Utc>) -> CloudSponsorship {
        CloudSponsorship {
            id: SponsorshipId::new_random(),
            sponsoring_organization_id: Some(CloudOrganizationId::new_random()),
            sponsoring_organization_user_id: MemberId::new_random(),
            sponsored_organization_id: None,
            friendly_name: None,
            offered_to_email: Some("kid@home.example".into()),
            plan_sponsorship_type: Some(PlanSponsorshipType::FamiliesForEnterprise),
            last_sync_date: Some(last_sync),
            valid_until: None,
            to_delete: false,
            changed_at: last_sync,
        }
    }

    fn families() -> CloudOrganization {
        CloudOrganization {
            id: CloudOrganizationId::new_random(),
            name: "Home".into(),
            plan_type: PlanType::FamiliesAnnually,
            enabled: true,
            expiration_date: None,
        }
    }

    fn claims(row: &CloudSponsorship) -> OfferClaims {
        OfferClaims::for_offer(&OfferToSend {
            sponsorship_id: row.id,
            email: "kid@home.example".into(),
            plan_sponsorship_type: PlanSponsorshipType::FamiliesForEnterprise,
        })
    }

    /// The rule returns its effect; it changes nothing itself. An offer the self-hosted side
    /// stopped syncing is to be deleted, a fresh one redeemed for a year.
    #[test]
    fn redemption_returns_its_effect() {
        let target = families();
        let fresh = offer(now() - TimeDelta::days(1));
        let redeem = |row: &CloudSponsorship, owned, sponsored| {
            redemption(
                &claims(row),
                Some(row),
                "KID@home.example",
                &target,
                owned,
                sponsored,
                now(),
            )
        };
        assert_eq!(
            redeem(&fresh, true, false),
            Ok(Redemption::Redeem {
                id: fresh.id,
                sponsored_organization_id: target.id,
                valid_until: now() + SPONSORED_PERIOD,
            })
        );
        let stale = offer(now() - STALE_OFFER_AGE - TimeDelta::minutes(1));
        assert_eq!(
            redeem(&stale, true, false),
            Ok(Redemption::DeleteExpired { id: stale.id })
        );
        assert_eq!(redeem(&fresh, false, false), Err(RedeemError::NotOwner));
        assert_eq!(
            redeem(&fresh, true, true),
            Err(RedeemError::AlreadySponsored)
        );
        let other_user = redemption(
            &claims(&fresh),
            Some(&fresh),
            "someone@else.example",
            &target,
            true,
            false,
            now(),
        );
        assert_eq!(other_user, Err(RedeemError::NoOffer));
    }
}
