//! [`CloudLedger`]: every cloud sponsorship row in memory, executing the rules' effects.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use foldhash::{HashMap, HashMapExt};
use serde::{Deserialize, Serialize};

use super::redemption::{
    OfferClaims, OfferToSend, RedeemError, Redemption, RemoveError, redemption,
};
use super::rules::{
    CloudEffect, CloudOrganization, CloudSponsorship, CloudSyncError, CloudSyncOutcome,
    process_sync_batch,
};
use crate::ids::{CloudOrganizationId, MemberId, SponsorshipId};
use crate::wire::SponsorshipSyncItem;

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
///
/// The real cloud can hold two rows for one member (QUIRK 14.2): the member index then points at
/// one of them and the key is kept in a small set of *shadowed* keys, which makes every later
/// sync of that organization fail as the real cloud's does.
#[derive(Debug, Clone, Default)]
pub struct CloudLedger {
    rows: Vec<CloudSponsorship>,
    by_id: OnceLock<HashMap<SponsorshipId, usize>>,
    by_member: BTreeMap<MemberKey, usize>,
    shadowed: BTreeSet<MemberKey>,
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
            let key = member_key(&row);
            self.rows[at] = row;
            if let Some(key) = key {
                self.link_member(key, at);
            }
            return;
        }
        self.push_new(row);
    }

    /// Adds a row whose id is new (a sync's `new_id`), without reading the id index.
    fn push_new(&mut self, row: CloudSponsorship) {
        let at = self.rows.len();
        let key = member_key(&row);
        self.rows.push(row);
        if let Some(key) = key {
            self.link_member(key, at);
        }
        // Rebuilt on the next lookup by id (see the layout).
        self.by_id.take();
    }

    /// Indexes the row at `at` under `key`, or shadows the key when another row holds it.
    fn link_member(&mut self, key: MemberKey, at: usize) {
        match self.by_member.get(&key) {
            Some(&other) if other != at => {
                self.shadowed.insert(key);
            }
            _ => {
                self.by_member.insert(key, at);
            }
        }
    }

    /// Drops the member index entry of the row at `at` if it points there. When the key was
    /// shadowed, another row of the member takes the entry (found by a scan: shadowed keys are
    /// rare) and the key stays shadowed while more than one such row remains.
    fn unlink_member(&mut self, at: usize) {
        let Some(key) = member_key(&self.rows[at]) else {
            return;
        };
        if self.by_member.get(&key) == Some(&at) {
            self.by_member.remove(&key);
        }
        if self.shadowed.contains(&key) {
            let others: Vec<usize> = (0..self.rows.len())
                .filter(|&p| p != at && member_key(&self.rows[p]) == Some(key))
                .collect();
            if let Some(&first) = others.first() {
                self.by_member.entry(key).or_insert(first);
            }
            if others.len() <= 1 {
                self.shadowed.remove(&key);
            }
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

    /// Whether the organization holds two rows for one member (QUIRK 14.2).
    pub fn has_duplicate_member_rows(&self, org: CloudOrganizationId) -> bool {
        self.shadowed.iter().any(|(o, _)| *o == org)
    }

    /// Processes one sync batch for `org` and executes it; returns the response body, the
    /// offers to e-mail and the skipped items. `new_id` supplies ids for created rows.
    ///
    /// Offers go to every created row with a recipient that is not blank: a mail transport
    /// refuses an empty address, so no e-mail ever reaches one.
    ///
    /// # Errors
    ///
    /// [`CloudSyncError::DuplicateMemberRows`] when the organization holds two rows for one
    /// member; nothing changes.
    pub fn sync_batch(
        &mut self,
        org: &CloudOrganization,
        items: &[SponsorshipSyncItem],
        now: DateTime<Utc>,
        mut new_id: impl FnMut() -> SponsorshipId,
    ) -> Result<(CloudSyncOutcome, Vec<OfferToSend>), CloudSyncError> {
        if self.has_duplicate_member_rows(org.id) {
            return Err(CloudSyncError::DuplicateMemberRows);
        }
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
                    if let Some(email) = offered_to_email.as_ref().filter(|e| !e.trim().is_empty())
                    {
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
        Ok((outcome, offers))
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
        let row = self.get(claims.id);
        let sponsored = self.by_sponsored(target.id).is_some();
        match redemption(
            claims,
            row,
            user_email,
            target,
            target_owned,
            sponsored,
            now,
        )? {
            Redemption::DeleteExpired { id } => {
                self.remove(id);
                Err(RedeemError::Expired)
            }
            Redemption::Redeem {
                id,
                sponsored_organization_id,
                valid_until,
            } => {
                let row = self.get_mut(id).ok_or(RedeemError::NoOffer)?;
                row.sponsored_organization_id = Some(sponsored_organization_id);
                row.offered_to_email = None;
                row.valid_until = Some(valid_until);
                row.changed_at = now;
                Ok(row)
            }
        }
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
    use chrono::TimeDelta;
    use uuid::Uuid;

    use super::*;
    use crate::plan::{PlanSponsorshipType, PlanType};

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
        let (outcome, offers) = ledger
            .sync_batch(
                &o,
                &[item(100, true), item(101, false), item(102, false)],
                now,
                || unreachable!("no row is created"),
            )
            .unwrap();
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
