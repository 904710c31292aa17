//! The cloud's sync rules (spec §7) and the billing sync key check (§6): pure functions over
//! the rows they are given, returning the effects for a ledger to execute.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

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
    /// Revoked before the cloud ever saw it (`toDelete` with no `lastSyncDate`, no cloud row).
    RevokedBeforeFirstSync,
    /// The organization is disabled beyond grace: no new sponsorships.
    OrganizationDisabled,
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

/// Runs spec §7 step 3 for one batch, as the real cloud does, quirks included (see the module
/// docs). `existing` finds the organization's row of a member *as it was before the batch*: the
/// real cloud looks items up in a dictionary built before the loop, so a member's second item
/// in one batch does not see the row its first item created. It is called once per item that
/// passes the tier check, in item order.
pub fn process_sync_batch<'a>(
    org: &CloudOrganization,
    mut existing: impl FnMut(MemberId) -> Option<&'a CloudSponsorship>,
    items: &[SponsorshipSyncItem],
    now: DateTime<Utc>,
) -> CloudSyncOutcome {
    let mut response = Vec::with_capacity(items.len());
    let mut effects = Vec::with_capacity(items.len());
    let mut skipped = Vec::new();
    let enterprise = org.plan_type.product_tier() == ProductTier::Enterprise;
    for item in items {
        let member = item.sponsoring_organization_user_id;
        let sponsoring_tier = item.plan_sponsorship_type.sponsored_plan().sponsoring_tier;
        if !enterprise || sponsoring_tier != ProductTier::Enterprise {
            skipped.push((member, CloudSkipReason::NotEnterprise));
            continue;
        }
        // The answer echoes the item, with the cloud's time, the cloud row's `ValidUntil` and
        // whether the cloud deleted its row; `toDelete` is the item's own (QUIRK 14.4).
        let answer = |valid_until, removed| SponsorshipSyncResponseItem {
            sponsoring_organization_user_id: member,
            friendly_name: item.friendly_name.clone(),
            offered_to_email: item.offered_to_email.clone(),
            plan_sponsorship_type: item.plan_sponsorship_type,
            last_sync_date: Some(now),
            valid_until,
            to_delete: item.to_delete,
            cloud_sponsorship_removed: removed,
            is_admin_initiated: false,
        };
        match existing(member) {
            None => {
                if item.to_delete && item.last_sync_date.is_none() {
                    skipped.push((member, CloudSkipReason::RevokedBeforeFirstSync));
                    continue;
                }
                if org.disabled_beyond_grace(now) {
                    skipped.push((member, CloudSkipReason::OrganizationDisabled));
                    continue;
                }
                // A new row, e-mailed. With `toDelete` (QUIRK 14.5) the real cloud schedules
                // the not-yet-saved row's empty id for deletion, which deletes nothing: the
                // row stays, its offer goes out, and the answer says it was removed.
                effects.push(CloudEffect::Create {
                    member_id: member,
                    friendly_name: item.friendly_name.clone(),
                    offered_to_email: item.offered_to_email.clone(),
                    plan_sponsorship_type: item.plan_sponsorship_type,
                });
                response.push(answer(None, item.to_delete));
            }
            Some(row) => {
                // Only the sync time changes: a new recipient or friendly name never reaches
                // the cloud row (QUIRK 14.3).
                effects.push(CloudEffect::Touch(row.id));
                if item.to_delete {
                    if row.is_redeemed() {
                        effects.push(CloudEffect::MarkToDelete(row.id));
                        response.push(answer(row.valid_until, false));
                    } else {
                        effects.push(CloudEffect::Delete(row.id));
                        response.push(answer(row.valid_until, true));
                    }
                    continue;
                }
                response.push(answer(row.valid_until, false));
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
    /// The cloud organization has no billing sync key at all. The real cloud dereferences the
    /// missing key and answers HTTP 500 (QUIRK 14.9); only a non-blank supplied key gets here.
    #[error("the cloud organization has no billing sync key")]
    NoKeyStored,
}

/// Why the cloud fails a whole sync request with HTTP 500 after the key check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloudSyncError {
    /// The cloud holds two rows for one member of the organization (made by two items for one
    /// member in one batch, QUIRK 14.2): building its member dictionary throws, on every sync of
    /// the organization from then on.
    #[error("the cloud organization has two sponsorship rows for one member")]
    DuplicateMemberRows,
}

/// Key check of spec §6, in the real cloud's order: a blank supplied key is invalid, then a
/// missing stored key is [`SyncRejection::NoKeyStored`] (a 500), then the keys are compared
/// (exactly, in constant time).
pub fn check_billing_sync_key(
    stored: Option<&BillingSyncKey>,
    supplied: &RawSecret,
) -> Result<(), SyncRejection> {
    if supplied.is_blank() {
        return Err(SyncRejection::InvalidBillingSyncKey);
    }
    match stored {
        None => Err(SyncRejection::NoKeyStored),
        Some(key) if key.matches(supplied) => Ok(()),
        Some(_) => Err(SyncRejection::InvalidBillingSyncKey),
    }
}
