//! The self-hosted side of the sponsorship sync: planning batches and applying each batch's
//! response (spec §5.2), with the reference server's failure modes fixed.
//!
//! * **Batch by batch.** Each batch's response becomes a [`BatchApplication`] that the store
//!   applies in one transaction, in batch order (a client may send batch *k+1* while batch *k*
//!   is being stored), so a failure in batch *k* keeps batches 1..k−1 (QUIRK 14.11). Re-running
//!   converges: the cloud side is idempotent.
//! * **Compare-and-set.** Every change carries the row revision it was computed from; the store
//!   skips a change whose row was edited while the sync ran, and the next sync sends the new
//!   state. A revoke made during a sync is never overwritten by the echo of the old state.
//! * **Nothing silent.** Items the cloud did not return are reported as [`SkippedItem`]s; rows
//!   that share a member id are sent once and the others reported as [`DuplicateMember`] instead of
//!   failing the whole sync (QUIRK 14.2).
//! * **Withdrawn offers.** A row that replaced a synced offer first sends the old offer with
//!   `toDelete = true` in the *withdrawal phase* (all batches of which precede the regular ones),
//!   so the cloud deletes it before the new offer is created and e-mailed (QUIRK 14.3).
//! * **No orphan offers.** Every `toDelete` item goes out without a `lastSyncDate`. The cloud
//!   only reads that field when it has no row for the member, and then a `lastSyncDate` would
//!   make it create a row and e-mail the withdrawn offer again (QUIRK 14.5); without one it
//!   skips the item. A `toDelete` item the cloud does not return therefore means the cloud has
//!   no row: a withdrawal is done, a revoked row is deleted locally.
//! * **Zero rows still sync.** An organization with no rows plans one empty batch, so the key is
//!   validated and "last sync" means the cloud accepted the request (lessons A2, C8).
//! * **Deterministic order.** Items are ordered by member id (then row id), withdrawals first.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{CloudOrganizationId, MemberId, SponsorshipId};
use crate::plan::PlanSponsorshipType;
use crate::secret::RawSecret;
use crate::sponsorship::Sponsorship;
use crate::wire::{SponsorshipSyncItem, SponsorshipSyncRequest, SponsorshipSyncResponse};

/// Items per request, as the reference server sends them.
pub const BATCH_SIZE: usize = 1000;

/// Which phase an item belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ItemKind {
    /// The row's current state.
    Current,
    /// The superseded offer being withdrawn.
    Withdrawal,
}

/// What the self-hosted side remembers about one sent item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentItem {
    /// Local row.
    pub sponsorship_id: SponsorshipId,
    /// Match key.
    pub member_id: MemberId,
    /// Row revision the item was built from.
    pub revision: u64,
    /// Phase.
    pub kind: ItemKind,
    /// Sent with `toDelete = true` (and no `lastSyncDate`).
    pub to_delete: bool,
}

/// One planned request.
#[derive(Debug, Clone)]
pub struct PlannedBatch {
    /// 1-based batch number.
    pub number: usize,
    /// The wire items, in order.
    pub items: Vec<SponsorshipSyncItem>,
    /// What was sent, parallel to `items`.
    pub sent: Vec<SentItem>,
}

impl PlannedBatch {
    /// The request body for this batch (clones the items; use [`PlannedBatch::into_request`] to
    /// move them).
    pub fn request(
        &self,
        billing_sync_key: RawSecret,
        cloud_organization_id: CloudOrganizationId,
    ) -> SponsorshipSyncRequest {
        SponsorshipSyncRequest {
            billing_sync_key,
            sponsoring_organization_cloud_id: cloud_organization_id,
            sponsorships_batch: self.items.clone(),
        }
    }

    /// Splits the batch into its request body and the receipt needed to apply the response.
    pub fn into_request(
        self,
        billing_sync_key: RawSecret,
        cloud_organization_id: CloudOrganizationId,
    ) -> (SponsorshipSyncRequest, BatchReceipt) {
        (
            SponsorshipSyncRequest {
                billing_sync_key,
                sponsoring_organization_cloud_id: cloud_organization_id,
                sponsorships_batch: self.items,
            },
            BatchReceipt {
                number: self.number,
                sent: self.sent,
            },
        )
    }

    /// The receipt (what was sent), keeping the items.
    pub fn receipt(&self) -> BatchReceipt {
        BatchReceipt {
            number: self.number,
            sent: self.sent.clone(),
        }
    }
}

/// What was sent in one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchReceipt {
    /// 1-based batch number.
    pub number: usize,
    /// The items, in order.
    pub sent: Vec<SentItem>,
}

/// A row not sent because another row of the same member was (QUIRK 14.2 decision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DuplicateMember {
    /// The row left out.
    pub sponsorship_id: SponsorshipId,
    /// The member with several rows.
    pub member_id: MemberId,
    /// The row sent instead.
    pub sent_instead: SponsorshipId,
}

fn wire_item(r: &Sponsorship) -> SponsorshipSyncItem {
    SponsorshipSyncItem {
        sponsoring_organization_user_id: r.sponsoring_member_id,
        friendly_name: r.friendly_name.clone(),
        offered_to_email: r.offered_to_email.clone(),
        plan_sponsorship_type: r.plan_sponsorship_type.unwrap_or_default(),
        // Never a `lastSyncDate` with `toDelete` (QUIRK 14.5, see the module docs).
        last_sync_date: if r.to_delete { None } else { r.last_sync_date },
        valid_until: r.valid_until,
        to_delete: r.to_delete,
    }
}

/// The plan of one sync run, made by [`plan`]: its batches are built one at a time, from the
/// rows it borrows, when [`SyncPlan::batches`] reaches them.
///
/// A large organization's items are then never all in memory at once, and each batch's rows are
/// read while the batch is sent and its answer applied, so the rows a batch touches stay in the
/// CPU caches from planning to storing (planning every batch first made a 100,000-row run read
/// every row from main memory twice).
#[derive(Debug, Clone)]
pub struct SyncPlan<'r> {
    /// Rows left out because their member has another row.
    pub duplicates: Vec<DuplicateMember>,
    withdrawals: Vec<&'r Sponsorship>,
    current: Vec<&'r Sponsorship>,
    batch_size: usize,
}

impl SyncPlan<'_> {
    /// Number of batches; at least one (zero rows give one empty batch).
    pub fn batch_count(&self) -> usize {
        (self.withdrawals.len().div_ceil(self.batch_size)
            + self.current.len().div_ceil(self.batch_size))
        .max(1)
    }

    /// Number of items over all batches.
    pub fn item_count(&self) -> usize {
        self.withdrawals.len() + self.current.len()
    }

    /// The batches in order, each built when the iterator reaches it.
    pub fn batches(&self) -> impl Iterator<Item = PlannedBatch> + '_ {
        let withdrawals = self
            .withdrawals
            .chunks(self.batch_size)
            .map(withdrawal_batch);
        let current = self
            .current
            .chunks(self.batch_size)
            .map(|chunk| PlannedBatch {
                number: 0,
                items: chunk.iter().map(|r| wire_item(r)).collect(),
                sent: chunk
                    .iter()
                    .map(|r| sent_item(r, ItemKind::Current))
                    .collect(),
            });
        let empty = (self.item_count() == 0).then(|| PlannedBatch {
            number: 0,
            items: Vec::new(),
            sent: Vec::new(),
        });
        withdrawals
            .chain(current)
            .chain(empty)
            .enumerate()
            .map(|(i, batch)| PlannedBatch {
                number: i + 1,
                ..batch
            })
    }
}

fn sent_item(r: &Sponsorship, kind: ItemKind) -> SentItem {
    SentItem {
        sponsorship_id: r.id,
        member_id: r.sponsoring_member_id,
        revision: r.revision,
        kind,
        to_delete: kind == ItemKind::Withdrawal || r.to_delete,
    }
}

/// The withdrawal items of rows that replaced a synced offer.
fn withdrawal_batch(rows: &[&Sponsorship]) -> PlannedBatch {
    let (items, sent) = rows
        .iter()
        .filter_map(|r| {
            let old = r.superseded_offer.as_ref()?;
            let item = SponsorshipSyncItem {
                sponsoring_organization_user_id: r.sponsoring_member_id,
                friendly_name: old.friendly_name.clone(),
                offered_to_email: old.offered_to_email.clone(),
                plan_sponsorship_type: PlanSponsorshipType::FamiliesForEnterprise,
                // Not the old offer's sync date: with one, a cloud that no longer has the row
                // would create it again and e-mail the old recipient (QUIRK 14.5).
                last_sync_date: None,
                valid_until: None,
                to_delete: true,
            };
            Some((item, sent_item(r, ItemKind::Withdrawal)))
        })
        .unzip();
    PlannedBatch {
        number: 0,
        items,
        sent,
    }
}

/// Plans a sync run over an organization's rows (a slice, or any iterator of row references
/// such as a map's values), at most `batch_size` items per batch (use [`BATCH_SIZE`]). The
/// batches are built lazily (see [`SyncPlan`]).
pub fn plan<'r>(
    rows: impl IntoIterator<Item = &'r Sponsorship>,
    batch_size: usize,
) -> SyncPlan<'r> {
    let triage = triage(rows);
    SyncPlan {
        duplicates: triage.duplicates,
        withdrawals: triage.withdrawals,
        current: triage.current,
        batch_size: batch_size.max(1),
    }
}

/// What planning decides for an organization's rows.
struct Triage<'r> {
    /// Rows left out because their member has another row.
    duplicates: Vec<DuplicateMember>,
    /// Rows that replaced a synced offer (also in `current`).
    withdrawals: Vec<&'r Sponsorship>,
    /// The rows to send, in member order.
    current: Vec<&'r Sponsorship>,
}

/// Sorts the rows by member (member-initiated first within a member, then by id: a deterministic
/// choice of the row sent for a member with several) and sorts them into duplicates,
/// withdrawals and rows to send.
///
/// Each row is read once: its key and its kind are copied next to the reference, so the sort
/// and the triage after it read contiguous memory, not the rows.
fn triage<'r>(rows: impl IntoIterator<Item = &'r Sponsorship>) -> Triage<'r> {
    let mut keyed: Vec<((MemberId, bool, SponsorshipId), bool, &Sponsorship)> = rows
        .into_iter()
        .map(|r| {
            (
                (r.sponsoring_member_id, r.is_admin_initiated, r.id),
                r.superseded_offer.is_some(),
                r,
            )
        })
        .collect();
    keyed.sort_unstable_by_key(|(key, _, _)| *key);

    let mut duplicates = Vec::new();
    let mut withdrawals: Vec<&Sponsorship> = Vec::new();
    let mut current = Vec::with_capacity(keyed.len());
    let mut previous: Option<(MemberId, SponsorshipId)> = None;
    for ((member_id, _, id), withdraws, r) in keyed {
        if let Some((previous_member, sent_instead)) = previous
            && previous_member == member_id
        {
            duplicates.push(DuplicateMember {
                sponsorship_id: id,
                member_id,
                sent_instead,
            });
            continue;
        }
        previous = Some((member_id, id));
        if withdraws {
            withdrawals.push(r);
        }
        current.push(r);
    }
    Triage {
        duplicates,
        withdrawals,
        current,
    }
}

/// A change to one local row, applied only if the row still has `expected_revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncChange {
    /// The row.
    pub sponsorship_id: SponsorshipId,
    /// The row's member: with the id, the key of a store that clusters rows by member (as
    /// `sponsorctl`'s does), so a batch's changes touch neighbouring rows.
    pub member_id: MemberId,
    /// The revision the change was computed from.
    pub expected_revision: u64,
    /// What to do.
    pub action: SyncAction,
}

/// What a [`SyncChange`] does to its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncAction {
    /// Copy the cloud's answer (the reference overwrites exactly these three fields) and clear
    /// `awaiting_sync`.
    Confirm {
        /// Cloud processing time.
        last_sync_date: Option<DateTime<Utc>>,
        /// The cloud row's `ValidUntil`.
        valid_until: Option<DateTime<Utc>>,
        /// As answered.
        to_delete: bool,
    },
    /// The cloud deleted its row: delete the local one.
    Delete,
    /// The cloud withdrew the superseded offer: forget it (the row itself is sent later).
    ForgetSupersededOffer,
    /// The superseded offer had been redeemed before the withdrawal reached the cloud, which
    /// marked it for deletion instead. The row turns back into that redeemed offer, marked
    /// `to_delete` (Revoke when expired); the new offer cannot be made while it lasts.
    RevertToRedeemedOffer {
        /// Cloud processing time.
        last_sync_date: Option<DateTime<Utc>>,
        /// The redeemed offer's `ValidUntil`.
        valid_until: Option<DateTime<Utc>>,
    },
}

/// Why a sent item produced no change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SkipReason {
    /// Sent, not returned: the cloud skipped it (cloud organization not on an Enterprise plan,
    /// disabled beyond its grace period, or the row was revoked before the cloud saw it).
    NotReturnedByCloud,
    /// The offer that was to be replaced had already been redeemed; the new offer was dropped.
    PreviousOfferRedeemed,
}

impl SkipReason {
    /// An operator-facing explanation.
    pub const fn explain(self) -> &'static str {
        match self {
            Self::NotReturnedByCloud => {
                "skipped by the cloud: check that the cloud organization is on an Enterprise plan and enabled"
            }
            Self::PreviousOfferRedeemed => {
                "the previous offer was redeemed before the change reached the cloud: it is now marked for removal at the end of its period; offer again after that"
            }
        }
    }
}

/// A sent item that the cloud skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkippedItem {
    /// Local row.
    pub sponsorship_id: SponsorshipId,
    /// Member.
    pub member_id: MemberId,
    /// Batch it was sent in.
    pub batch_number: usize,
    /// Why.
    pub reason: SkipReason,
}

/// The local effect of one batch's response: apply it atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchApplication {
    /// Batch number (1-based).
    pub batch_number: usize,
    /// Row changes.
    pub changes: Vec<SyncChange>,
    /// Items the cloud skipped.
    pub skipped: Vec<SkippedItem>,
    /// Member ids the cloud returned that were not sent in this batch (ignored, reported).
    pub unexpected: Vec<MemberId>,
}

impl BatchApplication {
    /// Number of rows confirmed (updated from the cloud's answer).
    pub fn confirmed(&self) -> usize {
        self.changes
            .iter()
            .filter(|c| {
                matches!(
                    c.action,
                    SyncAction::Confirm { .. } | SyncAction::RevertToRedeemedOffer { .. }
                )
            })
            .count()
    }

    /// Number of rows deleted.
    pub fn removed(&self) -> usize {
        self.changes
            .iter()
            .filter(|c| c.action == SyncAction::Delete)
            .count()
    }
}

/// Turns one batch's response into local changes (spec §5.2 steps 6–8).
pub fn apply_response(
    receipt: &BatchReceipt,
    response: &SponsorshipSyncResponse,
) -> BatchApplication {
    let mut by_member: HashMap<MemberId, &SentItem> = HashMap::with_capacity(receipt.sent.len());
    for s in &receipt.sent {
        by_member.insert(s.member_id, s);
    }
    let mut answered: HashSet<MemberId> = HashSet::with_capacity(response.sponsorships_batch.len());
    let mut changes = Vec::with_capacity(response.sponsorships_batch.len());
    let mut skipped = Vec::new();
    let mut unexpected = Vec::new();
    for item in &response.sponsorships_batch {
        let member = item.sponsoring_organization_user_id;
        let Some(sent) = by_member.get(&member) else {
            unexpected.push(member);
            continue;
        };
        if !answered.insert(member) {
            unexpected.push(member);
            continue;
        }
        let action = match (sent.kind, item.cloud_sponsorship_removed) {
            (ItemKind::Current, true) => SyncAction::Delete,
            (ItemKind::Current, false) => SyncAction::Confirm {
                last_sync_date: item.last_sync_date,
                valid_until: item.valid_until,
                to_delete: item.to_delete,
            },
            (ItemKind::Withdrawal, false) if item.valid_until.is_some() => {
                skipped.push(SkippedItem {
                    sponsorship_id: sent.sponsorship_id,
                    member_id: member,
                    batch_number: receipt.number,
                    reason: SkipReason::PreviousOfferRedeemed,
                });
                SyncAction::RevertToRedeemedOffer {
                    last_sync_date: item.last_sync_date,
                    valid_until: item.valid_until,
                }
            }
            // Removed; or returned, not removed and not redeemed (a cloud that keeps unredeemed
            // rows): forget it rather than send it forever.
            (ItemKind::Withdrawal, _) => SyncAction::ForgetSupersededOffer,
        };
        changes.push(SyncChange {
            sponsorship_id: sent.sponsorship_id,
            member_id: member,
            expected_revision: sent.revision,
            action,
        });
    }
    for s in &receipt.sent {
        if !answered.contains(&s.member_id) {
            if s.to_delete {
                // Sent without a `lastSyncDate`: not returned means the cloud has no row.
                changes.push(SyncChange {
                    sponsorship_id: s.sponsorship_id,
                    member_id: s.member_id,
                    expected_revision: s.revision,
                    action: match s.kind {
                        ItemKind::Withdrawal => SyncAction::ForgetSupersededOffer,
                        ItemKind::Current => SyncAction::Delete,
                    },
                });
                continue;
            }
            skipped.push(SkippedItem {
                sponsorship_id: s.sponsorship_id,
                member_id: s.member_id,
                batch_number: receipt.number,
                reason: SkipReason::NotReturnedByCloud,
            });
        }
    }
    BatchApplication {
        batch_number: receipt.number,
        changes,
        skipped,
        unexpected,
    }
}

/// Applies one change to a row in memory (the reference semantics every store must follow).
/// Returns `None` when the row is to be deleted. The caller checks the revision first.
pub fn apply_change(row: &Sponsorship, action: &SyncAction) -> Option<Sponsorship> {
    let mut row = row.clone();
    apply_change_in_place(&mut row, action).then_some(row)
}

/// [`apply_change`] without the copy: changes `row` and returns `false` when it is to be deleted.
pub(crate) fn apply_change_in_place(row: &mut Sponsorship, action: &SyncAction) -> bool {
    match action {
        SyncAction::Delete => return false,
        SyncAction::Confirm {
            last_sync_date,
            valid_until,
            to_delete,
        } => {
            row.last_sync_date = *last_sync_date;
            row.valid_until = *valid_until;
            row.to_delete = *to_delete;
            row.awaiting_sync = row.superseded_offer.is_some();
        }
        SyncAction::ForgetSupersededOffer => row.superseded_offer = None,
        SyncAction::RevertToRedeemedOffer {
            last_sync_date,
            valid_until,
        } => {
            if let Some(old) = row.superseded_offer.take() {
                row.friendly_name = old.friendly_name;
                row.offered_to_email = old.offered_to_email;
            }
            row.last_sync_date = *last_sync_date;
            row.valid_until = *valid_until;
            row.to_delete = true;
            row.awaiting_sync = false;
            // A new revision: the new offer's echo in a later batch must not apply.
            row.revision += 1;
        }
    }
    true
}
