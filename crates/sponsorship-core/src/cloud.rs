//! The cloud side: the sync algorithm of spec §7, redemption (§8.6, §9), recipient removal
//! (§8.5) and the billing-key status (§10.1), as pure rules plus an in-memory [`CloudLedger`]
//! that executes them. The reference cloud (`cloud-emulator`) runs exactly this code.
//!
//! # Decisions on the spec's quirks (cloud side)
//!
//! * **Duplicate member ids in one batch (14.2):** the first item is processed; later ones are
//!   skipped (not returned) instead of failing the request with a 500.
//! * **E-mail change on an unredeemed row (14.3):** when an item for an existing, unredeemed row
//!   carries a different recipient, the row takes the new recipient and friendly name and a new
//!   offer e-mail goes out (old tokens die, since they are bound to the old address). Our own
//!   self-hosted side withdraws the old offer first, so this also serves reference servers.
//! * **Cloud-side removal reported back (14.4):** the response's `toDelete` is the item's
//!   `toDelete` *or* the cloud row's, so a recipient's removal (C7) shows on the self-hosted side.
//!   The field and its meaning stay wire-compatible: the reference self-hosted server copies it.
//! * **New row + toDelete (14.5):** an item with `toDelete = true` and a `lastSyncDate` but no
//!   cloud row means the row is already gone: nothing is created and the answer is
//!   `cloudSponsorshipRemoved = true`. No orphan offer, no e-mail.
//! * **No key stored (14.9)** is "Invalid Billing Sync Key", not a 500 (see [`check_billing_sync_key`]).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

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

/// The billing key's status in the cloud dialog (spec §10.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "state"
)]
pub enum KeySyncStatus {
    /// No sync yet: nothing is shown.
    NeverSynced,
    /// Synced after the key was (re)generated.
    Synced {
        /// Latest sync.
        last_sync_date: DateTime<Utc>,
    },
    /// The key was rotated after the last sync: "Token rotated N day(s) ago. Update the billing
    /// sync token in your self-hosted organization settings."
    AwaitingSync {
        /// Days since rotation, rounded.
        days_since_rotation: i64,
    },
}

impl KeySyncStatus {
    /// Computes the status from the latest sync and the key's revision date.
    pub fn of(
        last_sync_date: Option<DateTime<Utc>>,
        key_revision_date: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Self {
        match last_sync_date {
            None => Self::NeverSynced,
            Some(s) if s > key_revision_date => Self::Synced { last_sync_date: s },
            Some(_) => {
                let secs = (now - key_revision_date).num_seconds().abs();
                Self::AwaitingSync {
                    days_since_rotation: (secs + 43_200) / 86_400,
                }
            }
        }
    }

    /// The text the cloud dialog shows.
    pub fn message(&self) -> Option<String> {
        match self {
            Self::NeverSynced => None,
            Self::Synced { last_sync_date } => Some(format!(
                "Last sync: {}",
                crate::wire::time::format(last_sync_date)
            )),
            Self::AwaitingSync {
                days_since_rotation,
            } => Some(format!(
                "Token rotated {days_since_rotation} {} ago. Update the billing sync token in your self-hosted organization settings.",
                if *days_since_rotation == 1 {
                    "day"
                } else {
                    "days"
                }
            )),
        }
    }
}

/// All cloud sponsorship rows. Executes [`CloudSyncOutcome`]s, redemptions and removals;
/// serializes as a plain list of rows.
///
/// # Layout
///
/// Rows sit in one vector in creation order (a removal moves the last row into the gap), with two
/// indexes holding positions:
///
/// * by (organization, member), ordered: a sync item costs one lookup, and since items arrive
///   ordered by member, consecutive lookups walk neighbouring index nodes;
/// * by row id, a hash map that only redemption and removal read. It is built on first use and
///   dropped when a sync creates rows, so creating 100,000 rows costs no random writes into a
///   100,000-entry table (that alone made a first sync of 100k rows grow faster than linearly).
///
/// In the common case rows were created by an earlier sync in member order, so a sync also walks
/// the vector front to back. The indexes hold small fixed-size entries, no row data.
#[derive(Debug, Clone, Default)]
pub struct CloudLedger {
    rows: Vec<CloudSponsorship>,
    by_id: OnceLock<HashMap<SponsorshipId, usize>>,
    by_member: BTreeMap<MemberKey, usize>,
}

/// A key of the ledger's member index.
type MemberKey = (CloudOrganizationId, MemberId);

/// A forward walk over the ledger's member index, for lookups that mostly come in key order.
#[derive(Default)]
struct MemberWalk<'l> {
    /// The walk and the previous lookup's key, which it is past; none before the first lookup.
    at: Option<(
        std::iter::Peekable<std::collections::btree_map::Range<'l, MemberKey, usize>>,
        MemberKey,
    )>,
}

impl<'l> MemberWalk<'l> {
    /// How many index entries a lookup walks past before it descends the index instead.
    const SKIP_LIMIT: usize = 16;

    /// The position of `key`'s row: found by walking on when `key` is a little ahead of the
    /// previous lookup, else by a descent (after which the walk goes on from `key`).
    fn position(&mut self, index: &'l BTreeMap<MemberKey, usize>, key: MemberKey) -> Option<usize> {
        if let Some((walk, last)) = &mut self.at
            && key > *last
        {
            *last = key;
            let mut skipped = 0;
            while skipped <= Self::SKIP_LIMIT && walk.next_if(|(k, _)| **k < key).is_some() {
                skipped += 1;
            }
            if skipped <= Self::SKIP_LIMIT {
                return walk.next_if(|(k, _)| **k == key).map(|(_, at)| *at);
            }
        }
        let mut walk = index.range(key..).peekable();
        let found = walk.next_if(|(k, _)| **k == key).map(|(_, at)| *at);
        self.at = Some((walk, key));
        found
    }
}

impl Serialize for CloudLedger {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut rows: Vec<&CloudSponsorship> = self.rows.iter().collect();
        rows.sort_by_key(|r| r.id);
        rows.serialize(s)
    }
}

impl<'de> Deserialize<'de> for CloudLedger {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let rows = Vec::<CloudSponsorship>::deserialize(d)?;
        let mut ledger = Self::default();
        for r in rows {
            ledger.insert(r);
        }
        Ok(ledger)
    }
}

const fn member_key(row: &CloudSponsorship) -> Option<MemberKey> {
    match row.sponsoring_organization_id {
        Some(org) => Some((org, row.sponsoring_organization_user_id)),
        None => None,
    }
}

impl CloudLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id index, built from the rows when missing.
    fn ids(&self) -> &HashMap<SponsorshipId, usize> {
        self.by_id.get_or_init(|| {
            let mut ids = HashMap::with_capacity(self.rows.len());
            for (at, row) in self.rows.iter().enumerate() {
                ids.insert(row.id, at);
            }
            ids
        })
    }

    fn position(&self, id: SponsorshipId) -> Option<usize> {
        self.ids().get(&id).copied()
    }

    /// Adds a row (replacing one with the same id: a hand-written data file may repeat an id).
    fn insert(&mut self, row: CloudSponsorship) {
        if let Some(at) = self.position(row.id) {
            self.unlink_member(at);
            if let Some(key) = member_key(&row) {
                self.by_member.insert(key, at);
            }
            self.rows[at] = row;
            return;
        }
        self.push_new(row);
    }

    /// Adds a row whose id is new (a sync's `new_id`), without reading the id index.
    fn push_new(&mut self, row: CloudSponsorship) {
        let at = self.rows.len();
        if let Some(key) = member_key(&row) {
            self.by_member.insert(key, at);
        }
        self.rows.push(row);
        // Rebuilt on the next lookup by id (see the layout).
        self.by_id.take();
    }

    /// Drops the member index entry of the row at `at` if it points there.
    fn unlink_member(&mut self, at: usize) {
        if let Some(key) = member_key(&self.rows[at])
            && self.by_member.get(&key) == Some(&at)
        {
            self.by_member.remove(&key);
        }
    }

    fn remove(&mut self, id: SponsorshipId) -> Option<CloudSponsorship> {
        let at = self.position(id)?;
        Some(self.remove_at(at))
    }

    /// Removes the row at `at`; the last row moves into the gap and both indexes follow it.
    fn remove_at(&mut self, at: usize) -> CloudSponsorship {
        self.unlink_member(at);
        let row = self.rows.swap_remove(at);
        let from = self.rows.len();
        let moved = self.rows.get(at).map(|m| (m.id, member_key(m)));
        if let Some(ids) = self.by_id.get_mut() {
            ids.remove(&row.id);
            if let Some((moved_id, _)) = moved {
                ids.insert(moved_id, at);
            }
        }
        if let Some((_, Some(key))) = moved
            && self.by_member.get(&key) == Some(&from)
        {
            self.by_member.insert(key, at);
        }
        row
    }

    fn get_mut(&mut self, id: SponsorshipId) -> Option<&mut CloudSponsorship> {
        let at = self.position(id)?;
        self.rows.get_mut(at)
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// A row by id.
    pub fn get(&self, id: SponsorshipId) -> Option<&CloudSponsorship> {
        self.position(id).and_then(|at| self.rows.get(at))
    }

    /// The organization's row for a member.
    pub fn by_member(
        &self,
        org: CloudOrganizationId,
        member: MemberId,
    ) -> Option<&CloudSponsorship> {
        self.by_member
            .get(&(org, member))
            .and_then(|&at| self.rows.get(at))
    }

    fn organization_rows(
        &self,
        org: CloudOrganizationId,
    ) -> impl Iterator<Item = &CloudSponsorship> {
        self.rows
            .iter()
            .filter(move |r| r.sponsoring_organization_id == Some(org))
    }

    /// The organization's rows, ordered by member id (then row id).
    pub fn of_organization(&self, org: CloudOrganizationId) -> Vec<&CloudSponsorship> {
        let mut rows: Vec<&CloudSponsorship> = self.organization_rows(org).collect();
        rows.sort_by_key(|r| (r.sponsoring_organization_user_id, r.id));
        rows
    }

    /// The row a Families organization redeemed.
    pub fn by_sponsored(&self, families_org: CloudOrganizationId) -> Option<&CloudSponsorship> {
        self.rows
            .iter()
            .find(|r| r.sponsored_organization_id == Some(families_org))
    }

    /// Latest `last_sync_date` of the organization's rows (C8 sync-status).
    pub fn latest_sync_date(&self, org: CloudOrganizationId) -> Option<DateTime<Utc>> {
        self.organization_rows(org)
            .filter_map(|r| r.last_sync_date)
            .max()
    }

    /// Processes one sync batch for `org` and executes it; returns the response body, the
    /// offers to e-mail and the skipped items. `new_id` supplies ids for created rows.
    pub fn sync_batch(
        &mut self,
        org: &CloudOrganization,
        items: &[SponsorshipSyncItem],
        now: DateTime<Utc>,
        mut new_id: impl FnMut() -> SponsorshipId,
    ) -> (CloudSyncOutcome, Vec<OfferToSend>) {
        // The rows this batch found, by id: the effects name rows by id, and this small map
        // (one batch) gives their positions without probing the ledger-wide id index.
        let mut found: HashMap<SponsorshipId, usize> = HashMap::with_capacity(items.len());
        // Our self-hosted side sends items in member order, so the member index is walked
        // forward from the first item (one descent per batch) rather than descended once per
        // item; items in another order (the reference server's) fall back to descents.
        let (by_member, rows) = (&self.by_member, &self.rows);
        let mut walk = MemberWalk::default();
        let outcome = process_sync_batch(
            org,
            |m| {
                let at = walk.position(by_member, (org.id, m))?;
                let row = rows.get(at)?;
                found.insert(row.id, at);
                Some(row)
            },
            items,
            now,
        );
        let mut offers = Vec::new();
        // Deletions move rows (see the layout): they run after every other effect.
        let mut deletions = Vec::new();
        for effect in &outcome.effects {
            let found_row = |id: &SponsorshipId| found.get(id).copied();
            match effect {
                CloudEffect::Create {
                    member_id,
                    friendly_name,
                    offered_to_email,
                    plan_sponsorship_type,
                } => {
                    let id = new_id();
                    if let Some(email) = offered_to_email {
                        offers.push(OfferToSend {
                            sponsorship_id: id,
                            email: email.clone(),
                            plan_sponsorship_type: *plan_sponsorship_type,
                        });
                    }
                    self.push_new(CloudSponsorship {
                        id,
                        sponsoring_organization_id: Some(org.id),
                        sponsoring_organization_user_id: *member_id,
                        sponsored_organization_id: None,
                        friendly_name: friendly_name.clone(),
                        offered_to_email: offered_to_email.clone(),
                        plan_sponsorship_type: Some(*plan_sponsorship_type),
                        last_sync_date: Some(now),
                        valid_until: None,
                        to_delete: false,
                        changed_at: now,
                    });
                }
                CloudEffect::Touch(id) => {
                    if let Some(r) = found_row(id).and_then(|at| self.rows.get_mut(at)) {
                        r.last_sync_date = Some(now);
                    }
                }
                CloudEffect::Reoffer {
                    id,
                    friendly_name,
                    offered_to_email,
                } => {
                    if let Some(r) = found_row(id).and_then(|at| self.rows.get_mut(at)) {
                        r.friendly_name.clone_from(friendly_name);
                        r.offered_to_email.clone_from(offered_to_email);
                        if let (Some(email), Some(t)) = (offered_to_email, r.plan_sponsorship_type)
                        {
                            offers.push(OfferToSend {
                                sponsorship_id: *id,
                                email: email.clone(),
                                plan_sponsorship_type: t,
                            });
                        }
                    }
                }
                CloudEffect::MarkToDelete(id) => {
                    if let Some(r) = found_row(id).and_then(|at| self.rows.get_mut(at)) {
                        r.to_delete = true;
                    }
                }
                CloudEffect::Delete(id) => deletions.extend(found_row(id)),
            }
        }
        // Highest position first: a removal moves only the last row, which is then never one
        // still to be removed.
        deletions.sort_unstable_by(|a, b| b.cmp(a));
        deletions.dedup();
        for at in deletions {
            self.remove_at(at);
        }
        (outcome, offers)
    }

    /// Redeems an offer for a Families organization (spec §8.6). `claims` were verified by the
    /// caller's token scheme; `target_owned` says whether the user owns `target`.
    pub fn redeem(
        &mut self,
        claims: &OfferClaims,
        user_email: &str,
        target: &CloudOrganization,
        target_owned: bool,
        now: DateTime<Utc>,
    ) -> Result<&CloudSponsorship, RedeemError> {
        if !target_owned {
            return Err(RedeemError::NotOwner);
        }
        let row = self.get(claims.id);
        if !claims.valid_for(row, user_email) {
            return Err(RedeemError::NoOffer);
        }
        let Some(row) = row else {
            return Err(RedeemError::NoOffer);
        };
        if self.by_sponsored(target.id).is_some() {
            return Err(RedeemError::AlreadySponsored);
        }
        if row.plan_sponsorship_type.is_none() {
            return Err(RedeemError::UnknownType);
        }
        if row
            .last_sync_date
            .is_some_and(|s| now - s > STALE_OFFER_AGE)
        {
            self.remove(claims.id);
            return Err(RedeemError::Expired);
        }
        if target.plan_type.product_tier() != ProductTier::Families {
            return Err(RedeemError::NotFamilies);
        }
        let row = self.get_mut(claims.id).ok_or(RedeemError::NoOffer)?;
        row.sponsored_organization_id = Some(target.id);
        row.offered_to_email = None;
        row.valid_until = Some(now + SPONSORED_PERIOD);
        row.changed_at = now;
        Ok(row)
    }

    /// The owner of a sponsored Families organization gives the sponsorship up (C7).
    pub fn remove_sponsorship(
        &mut self,
        families_org: CloudOrganizationId,
        caller_is_owner: bool,
        now: DateTime<Utc>,
    ) -> Result<(), RemoveError> {
        if !caller_is_owner {
            return Err(RemoveError::NotOwner);
        }
        let id = self
            .rows
            .iter()
            .find(|r| r.sponsored_organization_id == Some(families_org) && !r.to_delete)
            .map(|r| r.id)
            .ok_or(RemoveError::NotSponsored)?;
        if let Some(r) = self.get_mut(id) {
            r.to_delete = true;
            r.changed_at = now;
        }
        Ok(())
    }

    /// Purges rows whose `ValidUntil` is more than 90 days past (the weekly job, spec §8.8).
    pub fn purge_expired(&mut self, now: DateTime<Utc>) -> usize {
        let expired: Vec<usize> = self
            .rows
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.valid_until
                    .is_some_and(|v| v < now - crate::sponsorship::EXPIRED_RETENTION)
            })
            .map(|(at, _)| at)
            .collect();
        // Highest position first (see `sync_batch`).
        for &at in expired.iter().rev() {
            self.remove_at(at);
        }
        expired.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn row(id: u128, org: u128, member: u128) -> CloudSponsorship {
        CloudSponsorship {
            id: SponsorshipId::from_uuid(Uuid::from_u128(id)),
            sponsoring_organization_id: Some(CloudOrganizationId::from_uuid(Uuid::from_u128(org))),
            sponsoring_organization_user_id: MemberId::from_uuid(Uuid::from_u128(member)),
            sponsored_organization_id: None,
            friendly_name: None,
            offered_to_email: Some(format!("r{id}@home.example")),
            plan_sponsorship_type: Some(PlanSponsorshipType::FamiliesForEnterprise),
            last_sync_date: None,
            valid_until: None,
            to_delete: false,
            changed_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    fn org(n: u128) -> CloudOrganizationId {
        CloudOrganizationId::from_uuid(Uuid::from_u128(n))
    }

    fn member(n: u128) -> MemberId {
        MemberId::from_uuid(Uuid::from_u128(n))
    }

    fn sid(n: u128) -> SponsorshipId {
        SponsorshipId::from_uuid(Uuid::from_u128(n))
    }

    /// Removal moves the last row into the gap; both indexes must follow it.
    #[test]
    fn removal_keeps_both_indexes_pointing_at_the_right_rows() {
        let mut ledger = CloudLedger::new();
        for (id, o, m) in [(1, 10, 100), (2, 10, 101), (3, 11, 100), (4, 11, 102)] {
            ledger.insert(row(id, o, m));
        }
        assert_eq!(ledger.remove(sid(1)).map(|r| r.id), Some(sid(1)));
        assert_eq!(ledger.remove(sid(1)), None, "gone once");
        assert_eq!(ledger.len(), 3);
        assert!(ledger.by_member(org(10), member(100)).is_none());
        for (id, o, m) in [(2, 10, 101), (3, 11, 100), (4, 11, 102)] {
            assert_eq!(ledger.get(sid(id)).map(|r| r.id), Some(sid(id)));
            assert_eq!(
                ledger.by_member(org(o), member(m)).map(|r| r.id),
                Some(sid(id))
            );
        }
        // Removing the last row moves nothing.
        ledger.remove(sid(4));
        assert_eq!(
            ledger.by_member(org(11), member(100)).map(|r| r.id),
            Some(sid(3))
        );
        assert!(ledger.get(sid(4)).is_none());
        let ids: Vec<_> = ledger
            .of_organization(org(11))
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, vec![sid(3)]);
    }

    /// A data file naming one id twice keeps the newer row, indexed under its own member.
    #[test]
    fn reinserting_an_id_replaces_the_row_and_its_member_entry() {
        let mut ledger = CloudLedger::new();
        ledger.insert(row(1, 10, 100));
        ledger.insert(row(1, 10, 101));
        assert_eq!(ledger.len(), 1);
        assert!(ledger.by_member(org(10), member(100)).is_none());
        assert_eq!(
            ledger.by_member(org(10), member(101)).map(|r| r.id),
            Some(sid(1))
        );
    }

    /// Deletions in a batch run after the other effects, so a touch of the row that a deletion
    /// moves still lands on it.
    #[test]
    fn a_batch_that_deletes_and_touches_updates_the_right_rows() {
        let o = CloudOrganization {
            id: org(10),
            name: "Acme".into(),
            plan_type: PlanType::EnterpriseAnnually,
            enabled: true,
            expiration_date: None,
        };
        let mut ledger = CloudLedger::new();
        for (id, m) in [(1, 100), (2, 101), (3, 102)] {
            ledger.insert(row(id, 10, m));
        }
        let item = |m: u128, to_delete: bool| SponsorshipSyncItem {
            sponsoring_organization_user_id: member(m),
            friendly_name: None,
            offered_to_email: Some(format!("r{}@home.example", m - 99)),
            plan_sponsorship_type: PlanSponsorshipType::FamiliesForEnterprise,
            last_sync_date: Some(DateTime::<Utc>::UNIX_EPOCH),
            valid_until: None,
            to_delete,
        };
        let now = DateTime::<Utc>::UNIX_EPOCH + TimeDelta::days(1);
        let (outcome, offers) = ledger.sync_batch(
            &o,
            &[item(100, true), item(101, false), item(102, false)],
            now,
            || unreachable!("no row is created"),
        );
        assert!(offers.is_empty());
        assert_eq!(outcome.response.sponsorships_batch.len(), 3);
        assert!(
            ledger.get(sid(1)).is_none(),
            "the unredeemed row is deleted"
        );
        for id in [2, 3] {
            assert_eq!(
                ledger.get(sid(id)).and_then(|r| r.last_sync_date),
                Some(now)
            );
        }
    }
}
