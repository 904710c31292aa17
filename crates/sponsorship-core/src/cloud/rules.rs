//! The cloud's sync rules (spec §7) and the billing sync key check (§6): pure functions over
//! the rows they are given, returning the effects for a ledger to execute.

use foldhash::{HashSet, HashSetExt};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::email;
use crate::ids::{CloudOrganizationId, MemberId, SponsorshipId};
use crate::plan::{PlanSponsorshipType, PlanType, ProductTier};
use crate::secret::{BillingSyncKey, RawSecret};
use crate::wire::{SponsorshipSyncItem, SponsorshipSyncResponse, SponsorshipSyncResponseItem};

/// A cloud organization disabled longer than this past its expiration gets no new sponsorships.
pub const DISABLED_GRACE: TimeDelta = TimeDelta::days(93);
/// A self-hosted offer not synced for this long can no longer be redeemed (182.5 days).
pub const STALE_OFFER_AGE: TimeDelta = TimeDelta::hours(182 * 24 + 12);
/// How long a redeemed sponsorship runs before renewal (the sponsored plan is annual).
pub const SPONSORED_PERIOD: TimeDelta = TimeDelta::days(365);

/// An organization in the cloud.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudOrganization {
    /// Id (the license's `Id`).
    pub id: CloudOrganizationId,
    /// Display name (used in offer e-mails).
    pub name: String,
    /// Plan.
    pub plan_type: PlanType,
    /// Enabled.
    pub enabled: bool,
    /// Subscription expiration.
    #[serde(default)]
    pub expiration_date: Option<DateTime<Utc>>,
}

impl CloudOrganization {
    /// Disabled beyond the 93-day grace (or disabled with no expiration date).
    pub fn disabled_beyond_grace(&self, now: DateTime<Utc>) -> bool {
        !self.enabled
            && self
                .expiration_date
                .is_none_or(|exp| now - exp > DISABLED_GRACE)
    }
}

/// A sponsorship row in the cloud.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudSponsorship {
    /// Cloud row id (the redemption token refers to it).
    pub id: SponsorshipId,
    /// Sponsoring cloud organization.
    pub sponsoring_organization_id: Option<CloudOrganizationId>,
    /// The self-hosted member id, stored verbatim.
    pub sponsoring_organization_user_id: MemberId,
    /// The Families organization that redeemed it.
    pub sponsored_organization_id: Option<CloudOrganizationId>,
    /// Friendly name.
    pub friendly_name: Option<String>,
    /// Recipient (cleared at redemption).
    pub offered_to_email: Option<String>,
    /// Sponsorship type.
    pub plan_sponsorship_type: Option<PlanSponsorshipType>,
    /// When a sync last touched this row.
    pub last_sync_date: Option<DateTime<Utc>>,
    /// End of the paid period.
    pub valid_until: Option<DateTime<Utc>>,
    /// Revocation requested.
    pub to_delete: bool,
    /// When the cloud last changed the row outside a sync (redeemed, removed, re-offered).
    pub changed_at: DateTime<Utc>,
}

impl CloudSponsorship {
    /// Redeemed.
    pub fn is_redeemed(&self) -> bool {
        self.sponsored_organization_id.is_some()
    }

    /// Changed in the cloud after the self-hosted server last synced it.
    pub fn awaiting_sync(&self) -> bool {
        self.last_sync_date.is_none_or(|s| self.changed_at > s)
    }
}

/// Why the cloud skipped an item (not returned on the wire; reported by the reference cloud).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CloudSkipReason {
    /// The cloud organization is not on an Enterprise plan.
    NotEnterprise,
    /// Revoked before the cloud ever saw it.
    RevokedBeforeFirstSync,
    /// The organization is disabled beyond grace: no new sponsorships.
    OrganizationDisabled,
    /// The member id appeared earlier in the same batch.
    DuplicateInBatch,
}

/// One thing the ledger must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudEffect {
    /// Create a row and e-mail the offer.
    Create {
        /// Member.
        member_id: MemberId,
        /// Friendly name.
        friendly_name: Option<String>,
        /// Recipient.
        offered_to_email: Option<String>,
        /// Type.
        plan_sponsorship_type: PlanSponsorshipType,
    },
    /// Set `last_sync_date` of an existing row.
    Touch(SponsorshipId),
    /// New recipient on an unredeemed row; e-mail the offer.
    Reoffer {
        /// Row.
        id: SponsorshipId,
        /// New friendly name.
        friendly_name: Option<String>,
        /// New recipient.
        offered_to_email: Option<String>,
    },
    /// Mark a redeemed row `to_delete`.
    MarkToDelete(SponsorshipId),
    /// Delete an unredeemed row.
    Delete(SponsorshipId),
}

/// The decision for one sync batch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloudSyncOutcome {
    /// The response body.
    pub response: SponsorshipSyncResponse,
    /// Effects in order.
    pub effects: Vec<CloudEffect>,
    /// Items not returned, and why.
    pub skipped: Vec<(MemberId, CloudSkipReason)>,
}

/// Runs spec §7 step 3 for one batch. `existing` finds the organization's row of a member; it
/// is called at most once per item, in item order.
pub fn process_sync_batch<'a>(
    org: &CloudOrganization,
    mut existing: impl FnMut(MemberId) -> Option<&'a CloudSponsorship>,
    items: &[SponsorshipSyncItem],
    now: DateTime<Utc>,
) -> CloudSyncOutcome {
    let mut response = Vec::with_capacity(items.len());
    let mut effects = Vec::with_capacity(items.len());
    let mut skipped = Vec::new();
    let mut seen: HashSet<MemberId> = HashSet::with_capacity(items.len());
    let enterprise = org.plan_type.product_tier() == ProductTier::Enterprise;
    for item in items {
        let member = item.sponsoring_organization_user_id;
        let sponsoring_tier = item.plan_sponsorship_type.sponsored_plan().sponsoring_tier;
        if !enterprise || sponsoring_tier != ProductTier::Enterprise {
            skipped.push((member, CloudSkipReason::NotEnterprise));
            continue;
        }
        if !seen.insert(member) {
            skipped.push((member, CloudSkipReason::DuplicateInBatch));
            continue;
        }
        let answer = |valid_until, to_delete, removed| SponsorshipSyncResponseItem {
            sponsoring_organization_user_id: member,
            friendly_name: item.friendly_name.clone(),
            offered_to_email: item.offered_to_email.clone(),
            plan_sponsorship_type: item.plan_sponsorship_type,
            last_sync_date: Some(now),
            valid_until,
            to_delete,
            cloud_sponsorship_removed: removed,
            is_admin_initiated: false,
        };
        match existing(member) {
            None => {
                if item.to_delete {
                    if item.last_sync_date.is_none() {
                        skipped.push((member, CloudSkipReason::RevokedBeforeFirstSync));
                    } else {
                        response.push(answer(None, true, true));
                    }
                    continue;
                }
                if org.disabled_beyond_grace(now) {
                    skipped.push((member, CloudSkipReason::OrganizationDisabled));
                    continue;
                }
                effects.push(CloudEffect::Create {
                    member_id: member,
                    friendly_name: item.friendly_name.clone(),
                    offered_to_email: item.offered_to_email.clone(),
                    plan_sponsorship_type: item.plan_sponsorship_type,
                });
                response.push(answer(None, false, false));
            }
            Some(row) => {
                effects.push(CloudEffect::Touch(row.id));
                if item.to_delete {
                    if row.is_redeemed() {
                        effects.push(CloudEffect::MarkToDelete(row.id));
                        response.push(answer(row.valid_until, true, false));
                    } else {
                        effects.push(CloudEffect::Delete(row.id));
                        response.push(answer(row.valid_until, true, true));
                    }
                    continue;
                }
                let new_recipient = match (&row.offered_to_email, &item.offered_to_email) {
                    (Some(old), Some(new)) => !email::same_email(old, new),
                    _ => false,
                };
                if !row.is_redeemed() && new_recipient {
                    effects.push(CloudEffect::Reoffer {
                        id: row.id,
                        friendly_name: item.friendly_name.clone(),
                        offered_to_email: item.offered_to_email.clone(),
                    });
                }
                response.push(answer(row.valid_until, row.to_delete, false));
            }
        }
    }
    CloudSyncOutcome {
        response: SponsorshipSyncResponse {
            sponsorships_batch: response,
        },
        effects,
        skipped,
    }
}

/// Why a sync request is refused before any item is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyncRejection {
    /// Unknown cloud organization.
    #[error("Invalid organization")]
    InvalidOrganization,
    /// Wrong, blank or missing key.
    #[error("Invalid Billing Sync Key")]
    InvalidBillingSyncKey,
}

/// Key check of spec §6, in constant time; a missing stored key is invalid, not a crash.
pub fn check_billing_sync_key(
    stored: Option<&BillingSyncKey>,
    supplied: &RawSecret,
) -> Result<(), SyncRejection> {
    match stored {
        Some(key) if !supplied.is_blank() && key.matches(supplied) => Ok(()),
        _ => Err(SyncRejection::InvalidBillingSyncKey),
    }
}
