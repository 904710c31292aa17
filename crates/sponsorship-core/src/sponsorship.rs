//! The self-hosted sponsorship row, its UI status, and the lifecycle rules (spec §8).
//!
//! Every rule is a pure function: it takes the rows it needs and `now`, and returns the row
//! changes ([`RowChange`]) for the caller's store to write, or a typed error whose `Display` is
//! the reference server's user-facing text where the spec gives one.
//!
//! # Decisions on the spec's quirks
//!
//! * **Replacing a synced offer (QUIRK 14.3).** The real cloud copies nothing from an existing
//!   row, so a new e-mail on an already-synced, unredeemed offer would never reach the new
//!   recipient. When such an offer is replaced, the row remembers the offer the cloud knows as a
//!   [`SupersededOffer`]. The next sync first sends that old offer with `toDelete = true` (the
//!   cloud deletes it), then, in a later batch of the same run, the new offer with no
//!   `lastSyncDate` (the cloud creates it and e-mails the new recipient). See [`crate::sync`].
//!   An offer that was sent but never confirmed (its answer lost) may be in the cloud too, so
//!   every replaced offer is withdrawn; a withdrawal the cloud has no row for is skipped.
//! * **Member removed (QUIRK 14.6) and revoked offers.** Rows are marked `to_delete`, never
//!   hard-deleted, so the removal reaches the cloud. That holds for rows never confirmed by a
//!   sync too: a batch can reach the cloud while its answer is lost, and a row deleted locally
//!   would leave a live, redeemable cloud offer behind. The next sync sends the row with
//!   `toDelete` and no `lastSyncDate`; the cloud deletes its row (or skips the item when it has
//!   none) and the local row goes with it (see [`crate::sync`]).
//! * **Admin-initiated offers (QUIRK 14.2).** The real cloud keys a sync batch and its own rows
//!   by member, so a self-hosted server can sync one sponsorship per member. An admin may make
//!   an admin-initiated offer for a member (themselves included) who has none; a second offer of
//!   the same kind replaces it like a member's own, and an offer of the other kind is refused
//!   ([`OfferError::OnePerMember`]) until the first is revoked. (The real self-hosted server
//!   allows several and its sync then fails.)
//! * **Friendly-name idempotency (QUIRK 14.13).** Offering again with the same friendly name and
//!   e-mail returns the existing row and says so ([`OfferKind::AlreadyOffered`]); a friendly name
//!   already used by *another* member's row is refused instead of silently returning that row.
//! * **Expiry clean-up and clock skew (lesson C14).** A row is purged when its `ValidUntil` is more
//!   than 90 days past *by the cloud's clock*: the last sync date (cloud time) must be later than
//!   `ValidUntil + 90 days`. A local clock that runs ahead can then never delete a sponsorship the
//!   cloud still renews.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::email::{self, EmailError};
use crate::ids::{MemberId, OrganizationId, SponsorshipId};
use crate::org::{Member, MemberStatus, Organization};
use crate::plan::PlanSponsorshipType;

/// Maximum length of a friendly name or an e-mail address.
pub const MAX_NAME_LEN: usize = 256;
/// Maximum length of an (encrypted) admin note.
pub const MAX_NOTES_LEN: usize = 512;
/// Rows whose `ValidUntil` lies this far in the past are purged (spec §8.8).
pub const EXPIRED_RETENTION: TimeDelta = TimeDelta::days(90);

/// A sponsorship row on the self-hosted server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sponsorship {
    /// Local id (never sent).
    pub id: SponsorshipId,
    /// The sponsoring self-hosted organization (`None` once it is deleted).
    pub sponsoring_organization_id: Option<OrganizationId>,
    /// The sponsoring member: the key that links this row to its cloud row.
    pub sponsoring_member_id: MemberId,
    /// Display label; the web flow sets it to the recipient's e-mail.
    pub friendly_name: Option<String>,
    /// The recipient's e-mail.
    pub offered_to_email: Option<String>,
    /// The sponsorship type (`None` is sent as 0).
    pub plan_sponsorship_type: Option<PlanSponsorshipType>,
    /// When the last sync that covered this row ran (cloud time); `None` = never synced.
    pub last_sync_date: Option<DateTime<Utc>>,
    /// End of the sponsored subscription's paid period; `None` = not redeemed (as far as we know).
    pub valid_until: Option<DateTime<Utc>>,
    /// Revocation requested.
    pub to_delete: bool,
    /// Created by an admin for the organization (not sent on the wire).
    pub is_admin_initiated: bool,
    /// Encrypted admin note (not sent on the wire).
    pub notes: Option<String>,
    /// Bumped by every local change; sync results are applied only to the revision they were
    /// computed from, so a change made while a sync runs is never overwritten.
    pub revision: u64,
    /// Changed locally since the cloud last confirmed this row.
    pub awaiting_sync: bool,
    /// An offer the cloud knows that this row replaced; it is withdrawn in the next sync.
    /// Boxed: rare, and inline it made every row a quarter larger (sync passes stream rows).
    pub superseded_offer: Option<Box<SupersededOffer>>,
    /// When the row was last changed locally (local clock; informational).
    pub revision_date: DateTime<Utc>,
}

/// The unredeemed offer that a new offer replaced, which the cloud may know (see the module
/// decision on QUIRK 14.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupersededOffer {
    /// Its friendly name.
    pub friendly_name: Option<String>,
    /// Its recipient.
    pub offered_to_email: Option<String>,
    /// Its last sync date; none when it was never confirmed by a sync (it may still have
    /// reached the cloud, if the answer was lost).
    #[serde(default)]
    pub last_sync_date: Option<DateTime<Utc>>,
}

/// The status a sponsorship shows in the UI (spec §8.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UiStatus {
    /// Created, not yet synced.
    Requested,
    /// Synced; the offer e-mail went out; not redeemed.
    Sent,
    /// Redeemed.
    Active,
    /// Revoked; the cloud has not been told yet.
    RemovedAwaitingSync,
    /// Revoked after redemption: the recipient keeps the plan until `ValidUntil`.
    RevokeWhenExpired,
}

impl UiStatus {
    /// The status from the three facts that decide it (a store can count rows by these columns
    /// without loading them): revocation requested, `ValidUntil` known, synced at least once.
    pub const fn from_flags(to_delete: bool, has_valid_until: bool, synced: bool) -> Self {
        match (to_delete, has_valid_until, synced) {
            (false, true, _) => Self::Active,
            (false, false, true) => Self::Sent,
            (false, false, false) => Self::Requested,
            (true, false, _) => Self::RemovedAwaitingSync,
            (true, true, _) => Self::RevokeWhenExpired,
        }
    }

    /// The label the web vault shows.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Requested => "Requested",
            Self::Sent => "Sent",
            Self::Active => "Active",
            Self::RemovedAwaitingSync => "Removed (awaiting sync)",
            Self::RevokeWhenExpired => "Revoke when expired",
        }
    }
}

impl Sponsorship {
    /// A new offer of `member` (of `organization`) to `offered_to_email`, never synced, as
    /// [`offer`] creates it once the rules allow it: revision 1, awaiting sync, the recipient's
    /// e-mail as friendly name (what the web vault sends), changed at `now`. A store or a test
    /// that needs a row in this state starts from here.
    pub fn new_offer(
        id: SponsorshipId,
        organization: OrganizationId,
        member: MemberId,
        offered_to_email: &str,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            sponsoring_organization_id: Some(organization),
            sponsoring_member_id: member,
            friendly_name: Some(offered_to_email.to_owned()),
            offered_to_email: Some(offered_to_email.to_owned()),
            plan_sponsorship_type: Some(PlanSponsorshipType::FamiliesForEnterprise),
            last_sync_date: None,
            valid_until: None,
            to_delete: false,
            is_admin_initiated: false,
            notes: None,
            revision: 1,
            awaiting_sync: true,
            superseded_offer: None,
            revision_date: now,
        }
    }

    /// The UI status of this row.
    pub fn ui_status(&self) -> UiStatus {
        UiStatus::from_flags(
            self.to_delete,
            self.valid_until.is_some(),
            self.last_sync_date.is_some(),
        )
    }

    /// True for a row that blocks a new member-initiated offer: redeemed and not expired away.
    pub fn is_redeemed(&self) -> bool {
        self.valid_until.is_some()
    }

    fn touched(mut self, now: DateTime<Utc>) -> Self {
        self.revision += 1;
        self.awaiting_sync = true;
        self.revision_date = now;
        self
    }
}

/// A change to write to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // short-lived values; boxing would only add an allocation
pub enum RowChange {
    /// Insert or replace this row (by id).
    Upsert(Sponsorship),
    /// Delete the row with this id.
    Delete(SponsorshipId),
}

/// What an offer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OfferKind {
    /// A new row.
    Created,
    /// The member's unredeemed offer was replaced.
    Replaced,
    /// The same offer exists already; nothing changed.
    AlreadyOffered,
}

/// Result of [`offer`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OfferOutcome {
    /// What happened.
    pub kind: OfferKind,
    /// The row as it now is (write it unless `kind` is `AlreadyOffered`).
    pub sponsorship: Sponsorship,
}

/// The input of an offer.
#[derive(Debug, Clone, Copy)]
pub struct OfferRequest<'a> {
    /// The sponsoring member's own account e-mail.
    pub sponsor_email: &'a str,
    /// The recipient.
    pub offered_to_email: &'a str,
    /// The label; defaults to the recipient e-mail, as the web vault does.
    pub friendly_name: Option<&'a str>,
    /// An admin sponsoring on behalf of the organization.
    pub admin_initiated: bool,
    /// Encrypted admin note.
    pub notes: Option<&'a str>,
}

/// Why an offer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OfferError {
    /// The recipient is the sponsor.
    #[error(
        "Cannot offer a Families Organization Sponsorship to yourself. Choose a different email."
    )]
    SelfSponsorship,
    /// The organization is not on an Enterprise plan (or is disabled).
    #[error("Specified Organization cannot sponsor other organizations.")]
    OrganizationCannotSponsor,
    /// The member is not confirmed.
    #[error("Only confirmed users can sponsor other organizations.")]
    MemberNotConfirmed,
    /// The member belongs to another organization.
    #[error("the member does not belong to this organization")]
    MemberNotInOrganization,
    /// The member's sponsorship was redeemed: revoke it first.
    #[error("Can only sponsor one organization per Organization User.")]
    AlreadySponsoring,
    /// The recipient address is not accepted.
    #[error("{text} ({reason})", text = email::INVALID_EMAIL_TEXT)]
    InvalidEmail {
        /// The rule it broke.
        reason: EmailError,
    },
    /// Friendly name or notes too long.
    #[error("the {field} is longer than {max} characters")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// The limit.
        max: usize,
    },
    /// Another member's sponsorship already uses the friendly name (QUIRK 14.13 decision).
    #[error(
        "the friendly name is already used by another member's sponsorship in this organization: choose a different friendly name"
    )]
    FriendlyNameTaken,
    /// Admin-initiated without the permission.
    #[error("You do not have permissions to send sponsorships on behalf of the organization")]
    AdminNotPermitted,
    /// Admin-initiated sponsorships are not licensed.
    #[error("Sponsoring organization cannot send admin-initiated sponsorship invitations")]
    AdminSponsorshipsNotEnabled,
    /// The member already has a sponsorship of the other kind (own or admin-initiated): a
    /// self-hosted server syncs one per member (QUIRK 14.2 decision).
    #[error(
        "this member already has a sponsorship ({existing}): the cloud keys self-hosted sponsorships by member, so a self-hosted server syncs one per member; revoke it (and let a sync withdraw it) before offering another"
    )]
    OnePerMember {
        /// The existing row's recipient.
        existing: String,
    },
}

/// Creates, replaces or confirms a member's offer (spec §8.1).
///
/// `rows` are the organization's current rows; `new_id` is used when a new row is created.
pub fn offer(
    org: &Organization,
    member: &Member,
    rows: &[Sponsorship],
    request: &OfferRequest<'_>,
    new_id: SponsorshipId,
    now: DateTime<Utc>,
) -> Result<OfferOutcome, OfferError> {
    let friendly_name = validate_offer(org, member, request)?;

    let live = |r: &&Sponsorship| r.sponsoring_organization_id == Some(org.id);
    if let Some(same_name) = rows
        .iter()
        .filter(live)
        .find(|r| r.friendly_name.as_deref() == Some(friendly_name))
    {
        let mine = same_name.sponsoring_member_id == member.id;
        let same_recipient = same_name
            .offered_to_email
            .as_deref()
            .is_some_and(|e| email::same_email(e, request.offered_to_email));
        if !mine {
            return Err(OfferError::FriendlyNameTaken);
        }
        if same_recipient && !same_name.to_delete {
            return Ok(OfferOutcome {
                kind: OfferKind::AlreadyOffered,
                sponsorship: same_name.clone(),
            });
        }
    }
    validate_admin(org, member, request)?;

    let fresh = Sponsorship {
        friendly_name: Some(friendly_name.to_owned()),
        is_admin_initiated: request.admin_initiated,
        notes: request.notes.map(str::to_owned),
        ..Sponsorship::new_offer(new_id, org.id, member.id, request.offered_to_email, now)
    };

    // The real cloud keys a sync batch and its own rows by member (QUIRK 14.2): a second row
    // of one member could never sync (and two in one batch would break the cloud
    // organization). So a member has one sponsorship on a self-hosted server, whichever kind;
    // an admin-initiated one is replaced like a member's own.
    if let Some(other) = rows.iter().filter(live).find(|r| {
        r.sponsoring_member_id == member.id && r.is_admin_initiated != request.admin_initiated
    }) {
        return Err(OfferError::OnePerMember {
            existing: other
                .offered_to_email
                .clone()
                .or_else(|| other.friendly_name.clone())
                .unwrap_or_default(),
        });
    }

    let existing = rows.iter().filter(live).find(|r| {
        r.sponsoring_member_id == member.id && r.is_admin_initiated == request.admin_initiated
    });
    match existing {
        None => Ok(OfferOutcome {
            kind: OfferKind::Created,
            sponsorship: fresh,
        }),
        Some(old) if old.is_redeemed() => Err(OfferError::AlreadySponsoring),
        Some(old) => {
            // Keep the oldest offer the cloud may know: the one already remembered, else the old
            // row itself (synced, or sent with its answer lost: withdrawing it is harmless when
            // the cloud never saw it).
            let superseded = old.superseded_offer.clone().or_else(|| {
                Some(Box::new(SupersededOffer {
                    friendly_name: old.friendly_name.clone(),
                    offered_to_email: old.offered_to_email.clone(),
                    last_sync_date: old.last_sync_date,
                }))
            });
            let replaced = Sponsorship {
                id: old.id,
                revision: old.revision,
                superseded_offer: superseded,
                ..fresh
            };
            Ok(OfferOutcome {
                kind: OfferKind::Replaced,
                sponsorship: replaced.touched(now),
            })
        }
    }
}

/// The checks of spec §8.1 steps 1–3 plus field validation; returns the friendly name. Step 5
/// (the admin's permission) runs after step 4, the same-name match: [`validate_admin`].
fn validate_offer<'a>(
    org: &Organization,
    member: &Member,
    request: &OfferRequest<'a>,
) -> Result<&'a str, OfferError> {
    if member.organization_id != org.id {
        return Err(OfferError::MemberNotInOrganization);
    }
    if email::same_email(request.sponsor_email, request.offered_to_email) {
        return Err(OfferError::SelfSponsorship);
    }
    if !org.plan_type.can_sponsor() || !org.enabled {
        return Err(OfferError::OrganizationCannotSponsor);
    }
    if member.status != MemberStatus::Confirmed {
        return Err(OfferError::MemberNotConfirmed);
    }
    email::validate_strict_email(request.offered_to_email)
        .map_err(|reason| OfferError::InvalidEmail { reason })?;
    let friendly_name = request.friendly_name.unwrap_or(request.offered_to_email);
    if friendly_name.chars().count() > MAX_NAME_LEN {
        return Err(OfferError::TooLong {
            field: "friendly name",
            max: MAX_NAME_LEN,
        });
    }
    if request
        .notes
        .is_some_and(|n| n.chars().count() > MAX_NOTES_LEN)
    {
        return Err(OfferError::TooLong {
            field: "notes",
            max: MAX_NOTES_LEN,
        });
    }
    Ok(friendly_name)
}

/// Spec §8.1 step 5: an admin-initiated offer needs a member who manages users and an
/// organization whose license grants admin-initiated sponsorships.
fn validate_admin(
    org: &Organization,
    member: &Member,
    request: &OfferRequest<'_>,
) -> Result<(), OfferError> {
    if request.admin_initiated {
        if !member.role.can_manage_users() {
            return Err(OfferError::AdminNotPermitted);
        }
        if !org.use_admin_sponsored_families {
            return Err(OfferError::AdminSponsorshipsNotEnabled);
        }
    }
    Ok(())
}

/// Why a revoke was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RevokeError {
    /// The member has no sponsorship.
    #[error("You are not currently sponsoring an organization.")]
    NotSponsoring,
    /// No sponsorship of the organization has the friendly name an admin revokes.
    #[error(
        "The specified sponsored organization could not be found under the given sponsoring organization."
    )]
    FriendlyNameNotFound,
}

/// The member revokes their own (member-initiated) sponsorship (spec §8.4).
///
/// The row is marked `to_delete` and the next sync tells the cloud, which deletes its row (or
/// skips the item when it never had one); the local row is deleted then. A never-synced
/// replacement of an earlier offer turns back into that offer, marked for deletion, so the
/// cloud still withdraws it.
pub fn revoke(
    member: MemberId,
    rows: &[Sponsorship],
    now: DateTime<Utc>,
) -> Result<RowChange, RevokeError> {
    let row = rows
        .iter()
        .find(|r| r.sponsoring_member_id == member && !r.is_admin_initiated)
        .ok_or(RevokeError::NotSponsoring)?;
    Ok(mark_for_deletion(row, now))
}

/// An admin revokes a sponsorship of the organization by its friendly name (spec H3): the first
/// row of `org`, of either kind, whose friendly name equals `friendly_name` ignoring case, is
/// revoked as by [`revoke`].
pub fn revoke_by_friendly_name(
    org: OrganizationId,
    friendly_name: &str,
    rows: &[Sponsorship],
    now: DateTime<Utc>,
) -> Result<RowChange, RevokeError> {
    let wanted = friendly_name.to_lowercase();
    let row = rows
        .iter()
        .filter(|r| r.sponsoring_organization_id == Some(org))
        .find(|r| {
            r.friendly_name
                .as_deref()
                .is_some_and(|n| n == friendly_name || n.to_lowercase() == wanted)
        })
        .ok_or(RevokeError::FriendlyNameNotFound)?;
    Ok(mark_for_deletion(row, now))
}

/// The changes when a member is removed from the organization: every row of that member is
/// revoked as by [`revoke`] (QUIRK 14.6 decision: the cloud must learn about it).
pub fn member_removed(
    member: MemberId,
    rows: &[Sponsorship],
    now: DateTime<Utc>,
) -> Vec<RowChange> {
    rows.iter()
        .filter(|r| r.sponsoring_member_id == member)
        .map(|r| mark_for_deletion(r, now))
        .collect()
}

fn mark_for_deletion(row: &Sponsorship, now: DateTime<Utc>) -> RowChange {
    if row.to_delete {
        return RowChange::Upsert(row.clone());
    }
    // The cloud deletes by member, so whichever of the offers reached it is withdrawn.
    let withdrawn = match (&row.last_sync_date, &row.superseded_offer) {
        (None, Some(old)) => Sponsorship {
            friendly_name: old.friendly_name.clone(),
            offered_to_email: old.offered_to_email.clone(),
            last_sync_date: old.last_sync_date,
            to_delete: true,
            superseded_offer: None,
            ..row.clone()
        },
        _ => Sponsorship {
            to_delete: true,
            ..row.clone()
        },
    };
    RowChange::Upsert(withdrawn.touched(now))
}

/// Rows to purge because their paid period ended more than 90 days ago by the cloud's clock
/// (see the crate decision on clock skew).
pub fn expired(rows: &[Sponsorship]) -> Vec<SponsorshipId> {
    rows.iter()
        .filter(|r| match (r.valid_until, r.last_sync_date) {
            (Some(valid_until), Some(last_sync)) => last_sync > valid_until + EXPIRED_RETENTION,
            _ => false,
        })
        .map(|r| r.id)
        .collect()
}

/// Counts of rows per UI status, plus those awaiting sync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct StatusCounts {
    /// Requested.
    pub requested: usize,
    /// Sent.
    pub sent: usize,
    /// Active.
    pub active: usize,
    /// Removed (awaiting sync).
    pub removed_awaiting_sync: usize,
    /// Revoke when expired.
    pub revoke_when_expired: usize,
    /// Rows changed since their last sync.
    pub awaiting_sync: usize,
}

impl StatusCounts {
    /// Counts the rows.
    pub fn of<'a>(rows: impl IntoIterator<Item = &'a Sponsorship>) -> Self {
        let mut c = Self::default();
        for r in rows {
            c.add(r.ui_status(), r.awaiting_sync, 1);
        }
        c
    }

    /// Adds `n` rows of one status (for stores that count with a query).
    pub fn add(&mut self, status: UiStatus, awaiting_sync: bool, n: usize) {
        match status {
            UiStatus::Requested => self.requested += n,
            UiStatus::Sent => self.sent += n,
            UiStatus::Active => self.active += n,
            UiStatus::RemovedAwaitingSync => self.removed_awaiting_sync += n,
            UiStatus::RevokeWhenExpired => self.revoke_when_expired += n,
        }
        if awaiting_sync {
            self.awaiting_sync += n;
        }
    }
}
