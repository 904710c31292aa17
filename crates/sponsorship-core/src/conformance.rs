//! The conformance kit: checks every [`SponsorshipStore`] implementation runs in its own tests
//! (feature `test-util`).
//!
//! In the manner of object_store's integration suite: public async functions that take a store,
//! exercise one part of the [contract](crate::store#contract) and panic with a message naming
//! what broke. They are not a stable part of the public API; they grow as the contract does.
//! Each check works on organizations of its own (random ids), so all of them can share one store
//! and run in any order. [`run_all`] runs every check; a host runs it on a fresh store:
//!
//! ```
//! # async fn example() {
//! use sponsorship_core::store::MemoryStore;
//!
//! sponsorship_core::conformance::run_all(&MemoryStore::new()).await;
//! # }
//! ```
//!
//! Timestamps in the checks carry microseconds, the precision the contract asks a store to
//! keep.
//!
//! # Panics
//!
//! Every check panics when the store breaks the part of the contract it checks, or when a store
//! call fails: that is how a check reports.

// Each check's panics are its report (see the module docs), not a misuse to document per item.
#![allow(clippy::missing_panics_doc)]

use std::collections::BTreeMap;
use std::fmt::Debug;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use crate::ids::{MemberId, OrganizationId, SponsorshipId};
use crate::plan::PlanSponsorshipType;
use crate::schedule::{ErrorCategory, SyncErrorRecord, SyncState};
use crate::sponsorship::{RowChange, Sponsorship, SupersededOffer};
use crate::store::{AppliedBatch, BillingConnectionStore, LockOutcome, SponsorshipStore, SyncLock};
use crate::sync::{BATCH_SIZE, BatchApplication, SyncAction, SyncChange, apply_change};

/// Runs every check of the kit against `store`.
pub async fn run_all<S: SponsorshipStore>(store: &S) {
    rows_round_trip(store).await;
    compare_and_set(store).await;
    each_action_stores_the_reference_row(store).await;
    mixed_batch_matches_the_reference_rule(store).await;
    batch_is_one_step_for_readers(store).await;
    write_changes_is_one_step_for_readers(store).await;
    sync_state_round_trips(store).await;
    lock_exclusion_renewal_expiry_takeover(store).await;
    lock_renewal_is_compare_and_set(store).await;
    large_organization(store, 10_000).await;
}

/// The fixed instant the checks start from (with microseconds).
fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
        + TimeDelta::microseconds(123_456)
}

/// A row of `org` as a sync finds it: synced once, `superseded` when a new offer replaced the
/// synced one, with every optional field set so that a store dropping one is caught.
pub fn synced_row(org: OrganizationId, member: MemberId, superseded: bool) -> Sponsorship {
    let now = base_time();
    Sponsorship {
        id: SponsorshipId::new_random(),
        sponsoring_organization_id: Some(org),
        sponsoring_member_id: member,
        friendly_name: Some("new@family.example".into()),
        offered_to_email: Some("new@family.example".into()),
        plan_sponsorship_type: Some(PlanSponsorshipType::FamiliesForEnterprise),
        last_sync_date: Some(now - TimeDelta::days(3)),
        valid_until: (!superseded).then(|| now + TimeDelta::days(300)),
        to_delete: false,
        is_admin_initiated: false,
        notes: Some("kept as it is".into()),
        revision: 7,
        awaiting_sync: true,
        superseded_offer: superseded.then(|| {
            Box::new(SupersededOffer {
                friendly_name: Some("old@family.example".into()),
                offered_to_email: Some("old@family.example".into()),
                last_sync_date: Some(now - TimeDelta::days(40)),
            })
        }),
        revision_date: now - TimeDelta::days(1),
    }
}

/// A new offer of `org`'s member `n` that the cloud has not seen yet.
pub fn new_row(org: OrganizationId, n: usize) -> Sponsorship {
    Sponsorship {
        plan_sponsorship_type: None,
        is_admin_initiated: n.is_multiple_of(7),
        ..Sponsorship::new_offer(
            SponsorshipId::new_random(),
            org,
            MemberId::new_random(),
            &format!("family{n}@home.example"),
            base_time(),
        )
    }
}

/// Every action a sync can take, with the variants of their fields that a store must keep
/// apart (a `None` next to a `Some`, `to_delete` both ways).
pub fn every_action() -> Vec<SyncAction> {
    let at = base_time() + TimeDelta::microseconds(654_321);
    vec![
        SyncAction::Confirm {
            last_sync_date: Some(at),
            valid_until: Some(at + TimeDelta::days(365)),
            to_delete: false,
        },
        SyncAction::Confirm {
            last_sync_date: Some(at),
            valid_until: None,
            to_delete: true,
        },
        SyncAction::Confirm {
            last_sync_date: None,
            valid_until: None,
            to_delete: false,
        },
        SyncAction::Delete,
        SyncAction::ForgetSupersededOffer,
        SyncAction::RevertToRedeemedOffer {
            last_sync_date: Some(at),
            valid_until: Some(at + TimeDelta::days(30)),
        },
        SyncAction::RevertToRedeemedOffer {
            last_sync_date: None,
            valid_until: None,
        },
    ]
}

fn batch_of(changes: Vec<SyncChange>) -> BatchApplication {
    BatchApplication {
        batch_number: 1,
        changes,
        skipped: Vec::new(),
        unexpected: Vec::new(),
    }
}

fn change_of(row: &Sponsorship, action: SyncAction) -> SyncChange {
    SyncChange {
        sponsorship_id: row.id,
        member_id: row.sponsoring_member_id,
        expected_revision: row.revision,
        action,
    }
}

fn sorted(mut rows: Vec<Sponsorship>) -> Vec<Sponsorship> {
    rows.sort_by_key(|r| (r.sponsoring_member_id, r.id));
    rows
}

fn ok<T, E: Debug>(what: &str, r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("conformance: {what} failed: {e:?}"),
    }
}

async fn rows_of<S: SponsorshipStore>(store: &S, org: OrganizationId) -> Vec<Sponsorship> {
    sorted(ok("sponsorships", store.sponsorships(org).await))
}

async fn write<S: SponsorshipStore>(store: &S, org: OrganizationId, changes: &[RowChange]) {
    ok("write_changes", store.write_changes(org, changes).await);
}

async fn stored<S: SponsorshipStore>(
    store: &S,
    org: OrganizationId,
    id: SponsorshipId,
) -> Option<Sponsorship> {
    rows_of(store, org).await.into_iter().find(|r| r.id == id)
}

/// Rows come back exactly as written, field by field, and only in their own organization; an
/// upsert replaces the row with the same id, a delete removes it, and an organization nobody
/// wrote to has no rows.
pub async fn rows_round_trip<S: SponsorshipStore>(store: &S) {
    let org = OrganizationId::new_random();
    let other = OrganizationId::new_random();
    assert_eq!(
        rows_of(store, org).await,
        vec![],
        "a new organization has no rows"
    );
    let member = MemberId::new_random();
    let mut mine = vec![
        synced_row(org, member, true),
        synced_row(org, member, false),
        new_row(org, 1),
        new_row(org, 7),
    ];
    let theirs = vec![synced_row(other, member, false), new_row(other, 2)];
    let changes: Vec<RowChange> = mine.iter().cloned().map(RowChange::Upsert).collect();
    write(store, org, &changes).await;
    assert_eq!(
        rows_of(store, org).await,
        sorted(mine.clone()),
        "rows read back as written"
    );
    let changes: Vec<RowChange> = theirs.iter().cloned().map(RowChange::Upsert).collect();
    write(store, other, &changes).await;
    assert_eq!(
        (rows_of(store, org).await, rows_of(store, other).await),
        (sorted(mine.clone()), sorted(theirs)),
        "each organization sees only its rows"
    );

    // An upsert of an existing id replaces the row; a delete removes it.
    mine[0].offered_to_email = Some("changed@family.example".into());
    mine[0].revision += 1;
    mine[0].superseded_offer = None;
    let gone = mine.remove(1);
    write(
        store,
        org,
        &[
            RowChange::Upsert(mine[0].clone()),
            RowChange::Delete(gone.id),
        ],
    )
    .await;
    assert_eq!(
        rows_of(store, org).await,
        sorted(mine.clone()),
        "upsert replaced the row with its id, delete removed one"
    );

    // A row given to another member is still one row.
    mine[0].sponsoring_member_id = MemberId::new_random();
    mine[0].revision += 1;
    write(store, org, &[RowChange::Upsert(mine[0].clone())]).await;
    assert_eq!(
        rows_of(store, org).await,
        sorted(mine),
        "an upsert replaces the row with the same id even when its member changed"
    );
}

/// A change applies only to the row it names with the revision it expects, in the
/// organization the batch is for; any mismatch (older or newer revision, another organization,
/// another member, an unknown row) is reported stale and changes nothing.
pub async fn compare_and_set<S: SponsorshipStore>(store: &S) {
    let org = OrganizationId::new_random();
    let other_org = OrganizationId::new_random();
    for action in every_action() {
        let row = synced_row(org, MemberId::new_random(), true);
        write(store, org, &[RowChange::Upsert(row.clone())]).await;
        let with = |member_id, expected_revision| SyncChange {
            sponsorship_id: row.id,
            member_id,
            expected_revision,
            action: action.clone(),
        };
        let member = row.sponsoring_member_id;
        let cases = [
            (org, with(member, row.revision - 1)),
            (org, with(member, row.revision + 1)),
            (org, with(member, u64::MAX)),
            (other_org, with(member, row.revision)),
            (org, with(MemberId::new_random(), row.revision)),
            (
                org,
                SyncChange {
                    sponsorship_id: SponsorshipId::new_random(),
                    ..with(member, row.revision)
                },
            ),
        ];
        for (in_org, change) in cases {
            let out = ok(
                "apply_batch",
                store
                    .apply_batch(in_org, &batch_of(vec![change.clone()]))
                    .await,
            );
            assert_eq!(
                out,
                AppliedBatch {
                    applied: 0,
                    stale: vec![change.sponsorship_id],
                },
                "a mismatched change is stale: {change:?} in {in_org}"
            );
            assert_eq!(
                stored(store, org, row.id).await.as_ref(),
                Some(&row),
                "a stale change leaves the row alone: {change:?}"
            );
        }
        let out = ok(
            "apply_batch",
            store
                .apply_batch(org, &batch_of(vec![change_of(&row, action.clone())]))
                .await,
        );
        assert_eq!(out.applied, 1, "the matching change applies: {action:?}");
        assert_eq!(out.stale, vec![], "{action:?}");
    }
}

/// Every sync action leaves exactly the row the core's rule ([`apply_change`]) makes, on rows
/// with and without a superseded offer, and the untouched neighbour of the same member stays as
/// it was.
pub async fn each_action_stores_the_reference_row<S: SponsorshipStore>(store: &S) {
    let org = OrganizationId::new_random();
    for superseded in [false, true] {
        for action in every_action() {
            let member = MemberId::new_random();
            let row = synced_row(org, member, superseded);
            let neighbour = synced_row(org, member, !superseded);
            write(
                store,
                org,
                &[
                    RowChange::Upsert(row.clone()),
                    RowChange::Upsert(neighbour.clone()),
                ],
            )
            .await;
            let out = ok(
                "apply_batch",
                store
                    .apply_batch(org, &batch_of(vec![change_of(&row, action.clone())]))
                    .await,
            );
            assert_eq!(
                out,
                AppliedBatch {
                    applied: 1,
                    stale: vec![],
                },
                "{action:?}"
            );
            assert_eq!(
                stored(store, org, row.id).await,
                apply_change(&row, &action),
                "{action:?} on a row with a superseded offer: {superseded}"
            );
            assert_eq!(
                stored(store, org, neighbour.id).await,
                Some(neighbour),
                "the neighbour of {action:?} is untouched"
            );
        }
    }
}

/// One batch mixing every action with stale changes among them (and two changes of one row,
/// the second of which is stale after the first) counts and applies each change on its own, as
/// the reference rule does in memory.
pub async fn mixed_batch_matches_the_reference_rule<S: SponsorshipStore>(store: &S) {
    let org = OrganizationId::new_random();
    let mut reference = BTreeMap::new();
    let mut changes = Vec::new();
    for (i, action) in every_action().into_iter().enumerate() {
        let row = synced_row(org, MemberId::new_random(), i % 2 == 0);
        let stale = i % 3 == 0;
        changes.push(SyncChange {
            expected_revision: if stale {
                row.revision + 1
            } else {
                row.revision
            },
            ..change_of(&row, action)
        });
        reference.insert(row.id, row);
    }
    // Row 1 again: a second change deletes it, so a third change of it is stale.
    let repeated = changes[1].clone();
    changes.push(SyncChange {
        action: SyncAction::Delete,
        ..repeated.clone()
    });
    changes.push(repeated);
    let rows: Vec<RowChange> = reference.values().cloned().map(RowChange::Upsert).collect();
    write(store, org, &rows).await;
    let batch = batch_of(changes);
    let mut expected = AppliedBatch::default();
    for change in &batch.changes {
        match reference.get_mut(&change.sponsorship_id) {
            Some(row)
                if row.revision == change.expected_revision
                    && row.sponsoring_member_id == change.member_id =>
            {
                match apply_change(row, &change.action) {
                    Some(next) => *row = next,
                    None => {
                        reference.remove(&change.sponsorship_id);
                    }
                }
                expected.applied += 1;
            }
            _ => expected.stale.push(change.sponsorship_id),
        }
    }
    assert!(expected.applied > 0 && !expected.stale.is_empty());
    assert_eq!(
        ok("apply_batch", store.apply_batch(org, &batch).await),
        expected,
        "a mixed batch counts as the reference rule does"
    );
    assert_eq!(
        rows_of(store, org).await,
        sorted(reference.into_values().collect()),
        "a mixed batch leaves the rows the reference rule makes"
    );
}

/// A batch lands as one step: reads made while it is applied (polled alongside it on the same
/// task, so an async store that yields between changes is caught) see all of its changes or
/// none.
pub async fn batch_is_one_step_for_readers<S: SponsorshipStore>(store: &S) {
    let org = OrganizationId::new_random();
    let rows: Vec<Sponsorship> = (0..BATCH_SIZE).map(|n| new_row(org, n)).collect();
    let upserts: Vec<RowChange> = rows.iter().cloned().map(RowChange::Upsert).collect();
    write(store, org, &upserts).await;
    let at = base_time();
    let batch = batch_of(
        rows.iter()
            .map(|r| {
                change_of(
                    r,
                    SyncAction::Confirm {
                        last_sync_date: Some(at),
                        valid_until: None,
                        to_delete: false,
                    },
                )
            })
            .collect(),
    );
    let (applied, seen) = read_alongside(store, org, store.apply_batch(org, &batch), |rows| {
        rows.iter().filter(|r| r.last_sync_date.is_some()).count()
    })
    .await;
    let applied = ok("apply_batch", applied);
    assert_eq!(applied.applied, BATCH_SIZE);
    for confirmed in seen {
        assert!(
            confirmed == 0 || confirmed == BATCH_SIZE,
            "a reader saw {confirmed} of the batch's {BATCH_SIZE} changes: a batch must land as one transaction"
        );
    }
    let after = rows_of(store, org).await;
    assert!(after.iter().all(|r| r.last_sync_date == Some(at)));
}

/// Lifecycle changes land as one step: reads made while a thousand offers are written (polled
/// alongside on the same task) see all of them or none.
pub async fn write_changes_is_one_step_for_readers<S: SponsorshipStore>(store: &S) {
    let org = OrganizationId::new_random();
    let upserts: Vec<RowChange> = (0..BATCH_SIZE)
        .map(|n| RowChange::Upsert(new_row(org, n)))
        .collect();
    let (written, seen) = read_alongside(
        store,
        org,
        store.write_changes(org, &upserts),
        <[Sponsorship]>::len,
    )
    .await;
    ok("write_changes", written);
    for rows in seen {
        assert!(
            rows == 0 || rows == BATCH_SIZE,
            "a reader saw {rows} of {BATCH_SIZE} rows being written: write_changes must be one transaction"
        );
    }
    assert_eq!(rows_of(store, org).await.len(), BATCH_SIZE);
}

/// Runs `write` while the organization's rows are read 8 times on the same task (so a store
/// that yields inside the write lets the reads in), and gives what `count` saw each time.
async fn read_alongside<S: SponsorshipStore, W: std::future::Future>(
    store: &S,
    org: OrganizationId,
    write: W,
    count: impl Fn(&[Sponsorship]) -> usize,
) -> (W::Output, Vec<usize>) {
    let read = async {
        let mut seen = Vec::new();
        for _ in 0..8 {
            seen.push(count(&ok("sponsorships", store.sponsorships(org).await)));
        }
        seen
    };
    futures_util::future::join(write, read).await
}

/// The default state until one is saved; a saved state comes back field by field, per
/// organization, and a later save replaces it; `save_next_due` changes the due time alone.
pub async fn sync_state_round_trips<S: SponsorshipStore>(store: &S) {
    let org = OrganizationId::new_random();
    let other = OrganizationId::new_random();
    assert_eq!(
        ok("sync_state", store.sync_state(org).await),
        SyncState::default(),
        "no state saved yet gives the default"
    );
    let now = base_time();
    let failed = SyncState {
        last_attempt: Some(now),
        last_success: Some(now - TimeDelta::days(1)),
        last_error: Some(SyncErrorRecord {
            category: ErrorCategory::IdentityRejected,
            message: "Identity rejected the installation id or key".into(),
            at: now + TimeDelta::microseconds(1),
        }),
        next_due: Some(now + TimeDelta::hours(1)),
        consecutive_failures: 2,
        last_license_sync: Some(now - TimeDelta::days(30)),
    };
    ok("save_sync_state", store.save_sync_state(org, &failed).await);
    assert_eq!(ok("sync_state", store.sync_state(org).await), failed);
    // The due time alone changes, the rest stays; for an organization without a state it is
    // the default state with that due time.
    let later = now + TimeDelta::hours(5);
    ok("save_next_due", store.save_next_due(org, later).await);
    let mut moved = failed.clone();
    moved.next_due = Some(later);
    assert_eq!(
        ok("sync_state", store.sync_state(org).await),
        moved,
        "save_next_due changes the due time only"
    );
    ok(
        "save_next_due",
        store.save_next_due(org, now + TimeDelta::hours(1)).await,
    );
    let fresh = OrganizationId::new_random();
    ok("save_next_due", store.save_next_due(fresh, later).await);
    let due_only = SyncState {
        next_due: Some(later),
        ..SyncState::default()
    };
    assert_eq!(ok("sync_state", store.sync_state(fresh).await), due_only);
    assert_eq!(
        ok("sync_state", store.sync_state(other).await),
        SyncState::default(),
        "state is per organization"
    );
    let cleared = SyncState {
        last_error: None,
        consecutive_failures: 0,
        last_license_sync: None,
        ..failed
    };
    ok(
        "save_sync_state",
        store.save_sync_state(org, &cleared).await,
    );
    assert_eq!(
        ok("sync_state", store.sync_state(org).await),
        cleared,
        "a later save replaces every field, cleared ones too"
    );
    for category in [
        ErrorCategory::Config,
        ErrorCategory::BillingKeyInvalid,
        ErrorCategory::CloudOrganizationUnknown,
        ErrorCategory::Busy,
    ] {
        let state = SyncState {
            last_error: Some(SyncErrorRecord {
                category,
                message: category.name().into(),
                at: now,
            }),
            ..SyncState::default()
        };
        ok(
            "save_sync_state",
            store.save_sync_state(other, &state).await,
        );
        assert_eq!(ok("sync_state", store.sync_state(other).await), state);
    }
}

/// At most one holder per organization: another token is kept out until the lock expires or is
/// released; the holder renews with its token; an expired lock is taken over; unlocking with a
/// token that does not hold the lock changes nothing; locks of two organizations are apart.
pub async fn lock_exclusion_renewal_expiry_takeover<S: SponsorshipStore>(store: &S) {
    let org = OrganizationId::new_random();
    let other_org = OrganizationId::new_random();
    let now = base_time();
    let lock = |token: &str, at: DateTime<Utc>| SyncLock {
        holder: format!("conformance {token}"),
        token: token.into(),
        acquired_at: at,
        expires_at: at + TimeDelta::minutes(10),
    };
    let try_lock = |token: &'static str, at: DateTime<Utc>, when: DateTime<Utc>| async move {
        ok(
            "try_lock_sync",
            store.try_lock_sync(org, &lock(token, at), when).await,
        )
    };
    assert_eq!(try_lock("a", now, now).await, LockOutcome::Acquired);
    assert_eq!(
        try_lock("b", now, now + TimeDelta::minutes(1)).await,
        LockOutcome::HeldBy {
            holder: "conformance a".into(),
            since: now,
        },
        "another token is kept out while the lock is held"
    );
    assert_eq!(
        ok(
            "try_lock_sync",
            store.try_lock_sync(other_org, &lock("b", now), now).await
        ),
        LockOutcome::Acquired,
        "another organization's lock is apart"
    );
    // Renewal by the holder pushes the expiry out.
    let renewed_at = now + TimeDelta::minutes(8);
    assert_eq!(
        try_lock("a", renewed_at, renewed_at).await,
        LockOutcome::Acquired,
        "the holder renews with its token"
    );
    assert!(
        matches!(
            try_lock("b", now, now + TimeDelta::minutes(12)).await,
            LockOutcome::HeldBy { .. }
        ),
        "a renewed lock holds past its first expiry"
    );
    // A token that does not hold the lock cannot release it.
    ok("unlock_sync", store.unlock_sync(org, "b").await);
    assert!(
        matches!(
            try_lock("b", now, now + TimeDelta::minutes(12)).await,
            LockOutcome::HeldBy { .. }
        ),
        "unlock with another token leaves the lock"
    );
    // Expiry lets another take over; then the old holder is the one kept out.
    let later = renewed_at + TimeDelta::minutes(11);
    assert_eq!(
        try_lock("b", later, later).await,
        LockOutcome::Acquired,
        "an expired lock is taken over"
    );
    assert_eq!(
        try_lock("a", later, later).await,
        LockOutcome::HeldBy {
            holder: "conformance b".into(),
            since: later,
        },
        "after a takeover the old holder is kept out"
    );
    // Release by the holder frees the lock at once.
    ok("unlock_sync", store.unlock_sync(org, "b").await);
    assert_eq!(
        try_lock("a", later, later).await,
        LockOutcome::Acquired,
        "a released lock is free"
    );
    ok("unlock_sync", store.unlock_sync(org, "a").await);
    ok("unlock_sync", store.unlock_sync(other_org, "b").await);
}

/// Renewal is compare-and-set on the holder's own token: it extends a lock that still carries
/// the token (expired or not), and is refused for a lock that is missing (taken over and
/// released by another sync meanwhile) or carries another token. A refused renewal changes
/// nothing.
pub async fn lock_renewal_is_compare_and_set<S: SponsorshipStore>(store: &S) {
    let org = OrganizationId::new_random();
    let now = base_time();
    let lock = |token: &str, at: DateTime<Utc>| SyncLock {
        holder: format!("conformance {token}"),
        token: token.into(),
        acquired_at: now,
        expires_at: at + TimeDelta::minutes(10),
    };
    let renew = |token: &'static str, at: DateTime<Utc>| async move {
        ok(
            "renew_sync_lock",
            store.renew_sync_lock(org, &lock(token, at)).await,
        )
    };
    assert!(
        !renew("a", now).await,
        "a missing lock is not granted by a renewal"
    );
    assert_eq!(
        ok(
            "try_lock_sync",
            store.try_lock_sync(org, &lock("a", now), now).await
        ),
        LockOutcome::Acquired
    );
    // Past its expiry, nobody took it: the holder may still renew.
    let late = now + TimeDelta::minutes(15);
    assert!(renew("a", late).await, "the holder renews its own lock");
    assert!(
        matches!(
            ok(
                "try_lock_sync",
                store
                    .try_lock_sync(org, &lock("b", late), late + TimeDelta::minutes(5))
                    .await
            ),
            LockOutcome::HeldBy { .. }
        ),
        "a renewal extends the expiry"
    );
    assert!(!renew("b", late).await, "another token cannot renew");
    // Suspended past the expiry: another sync takes the lock over and releases it.
    let much_later = late + TimeDelta::minutes(30);
    assert_eq!(
        ok(
            "try_lock_sync",
            store
                .try_lock_sync(org, &lock("b", much_later), much_later)
                .await
        ),
        LockOutcome::Acquired
    );
    assert!(!renew("a", much_later).await, "a lock taken over is lost");
    ok("unlock_sync", store.unlock_sync(org, "b").await);
    assert!(
        !renew("a", much_later).await,
        "a lost lock stays lost after the other holder released it"
    );
    assert_eq!(
        ok(
            "try_lock_sync",
            store
                .try_lock_sync(org, &lock("c", much_later), much_later)
                .await
        ),
        LockOutcome::Acquired,
        "a refused renewal left no lock behind"
    );
    ok("unlock_sync", store.unlock_sync(org, "c").await);
}

/// An organization of `rows` rows (the kit runs 10,000) stores, loads and takes a whole sync:
/// every row confirmed in batches of [`BATCH_SIZE`], then every row revoked by the cloud.
pub async fn large_organization<S: SponsorshipStore>(store: &S, rows: usize) {
    let org = OrganizationId::new_random();
    let made: Vec<Sponsorship> = (0..rows).map(|n| new_row(org, n)).collect();
    for chunk in made.chunks(BATCH_SIZE) {
        let upserts: Vec<RowChange> = chunk.iter().cloned().map(RowChange::Upsert).collect();
        write(store, org, &upserts).await;
    }
    let loaded = rows_of(store, org).await;
    assert_eq!(loaded.len(), rows);
    assert_eq!(loaded, sorted(made), "{rows} rows read back as written");

    let at = base_time() + TimeDelta::days(1);
    let confirm = SyncAction::Confirm {
        last_sync_date: Some(at),
        valid_until: Some(at + TimeDelta::days(365)),
        to_delete: false,
    };
    for (number, chunk) in loaded.chunks(BATCH_SIZE).enumerate() {
        let batch = BatchApplication {
            batch_number: number + 1,
            ..batch_of(
                chunk
                    .iter()
                    .map(|r| change_of(r, confirm.clone()))
                    .collect(),
            )
        };
        let out = ok("apply_batch", store.apply_batch(org, &batch).await);
        assert_eq!(out.applied, chunk.len(), "batch {}", number + 1);
    }
    let confirmed = rows_of(store, org).await;
    let want: Vec<Sponsorship> = loaded
        .iter()
        .filter_map(|r| apply_change(r, &confirm))
        .collect();
    assert_eq!(confirmed, want, "every row confirmed as the rule says");

    for chunk in confirmed.chunks(BATCH_SIZE) {
        let batch = batch_of(
            chunk
                .iter()
                .map(|r| change_of(r, SyncAction::Delete))
                .collect(),
        );
        let out = ok("apply_batch", store.apply_batch(org, &batch).await);
        assert_eq!(out.applied, chunk.len());
    }
    assert_eq!(rows_of(store, org).await, vec![], "every row deleted");
}

/// Billing connections ([`BillingConnectionStore`]): none until saved; a save stores key and
/// switch whole and replaces both; connections are per organization; a delete says whether
/// there was one and leaves the organization's rows alone.
pub async fn check_billing_connections<S: BillingConnectionStore>(store: &S) {
    use crate::secret::BillingSyncKey;
    let key = |s: &str| BillingSyncKey::parse(s).unwrap_or_else(|e| panic!("fixture key: {e}"));
    let (first, second) = (
        key("Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd"),
        key("Zz9yXx8wVv7uTt6sRr5qPp4oNn3mLl"),
    );
    let (org, other) = (OrganizationId::new_random(), OrganizationId::new_random());
    let now = base_time();
    let get = async |org| {
        store
            .billing_connection(org)
            .await
            .unwrap_or_else(|e| panic!("billing_connection failed: {e}"))
    };
    assert!(
        get(org).await.is_none(),
        "a new organization has no connection"
    );

    let row = synced_row(org, MemberId::new_random(), false);
    write(store, org, &[RowChange::Upsert(row.clone())]).await;
    store
        .save_billing_connection(org, &first, true, now)
        .await
        .unwrap_or_else(|e| panic!("save_billing_connection failed: {e}"));
    let saved = get(org)
        .await
        .unwrap_or_else(|| panic!("the saved connection is read back"));
    assert!(saved.key.matches(&first.to_raw()), "the key is stored");
    assert!(saved.enabled, "the switch is stored");
    assert_eq!(saved.updated_at, now, "the time of the change is stored");
    assert!(
        get(other).await.is_none(),
        "connections are per organization"
    );

    let later = now + TimeDelta::minutes(5);
    store
        .save_billing_connection(org, &second, false, later)
        .await
        .unwrap_or_else(|e| panic!("save_billing_connection failed: {e}"));
    let replaced = get(org)
        .await
        .unwrap_or_else(|| panic!("the replaced connection is read back"));
    assert!(
        replaced.key.matches(&second.to_raw()),
        "a save replaces the key"
    );
    assert!(!replaced.enabled, "a save replaces the switch");
    assert_eq!(replaced.updated_at, later);

    let deleted = store.delete_billing_connection(org).await;
    assert!(
        deleted.is_ok_and(|d| d),
        "deleting a saved connection says so"
    );
    assert!(get(org).await.is_none(), "a deleted connection is gone");
    let again = store.delete_billing_connection(org).await;
    assert!(
        again.is_ok_and(|d| !d),
        "deleting twice says there was none"
    );
    assert_eq!(
        rows_of(store, org).await,
        vec![row],
        "deleting the connection leaves the rows"
    );
}
