//! One sync batch as one transaction of compare-and-set statements.
//!
//! Each change applies only if its row still has the revision the batch was planned from, with
//! the semantics of the core's [`apply_change`]: Confirm, Delete and
//! ForgetSupersededOffer are one `UPDATE`/`DELETE` each, addressed by the primary key (member,
//! id) and guarded by organization and revision (no row changed = stale); the rare
//! RevertToRedeemedOffer loads the row and goes through `apply_change` itself.

use rusqlite::{OptionalExtension, ToSql, Transaction, params};
use sponsorship_core::ids::OrganizationId;
use sponsorship_core::store::AppliedBatch;
use sponsorship_core::sync::{BatchApplication, SyncAction, SyncChange, apply_change};

use crate::codec::{IdText, TsText};
use crate::rows::{ROW_COLUMNS, sponsorship_from_row, update_synced_fields};
use crate::{Error, Tx};

/// Confirm (`apply_change`'s `Confirm` arm) as one compare-and-set: the row is
/// addressed by its primary key, must still belong to the organization and have the revision the
/// batch was planned from; no row changed means stale. The revision stays as it is.
pub(crate) const CONFIRM_SQL: &str = "UPDATE sponsorships SET last_sync_date = ?5, valid_until = ?6, \
     to_delete = ?7, awaiting_sync = (superseded_offer IS NOT NULL) \
     WHERE sponsoring_member_id = ?1 AND id = ?2 AND sponsoring_organization_id = ?3 \
     AND revision = ?4";
/// Delete as one compare-and-set (same addressing as [`CONFIRM_SQL`]).
pub(crate) const DELETE_SQL: &str = "DELETE FROM sponsorships \
     WHERE sponsoring_member_id = ?1 AND id = ?2 AND sponsoring_organization_id = ?3 \
     AND revision = ?4";
/// ForgetSupersededOffer as one compare-and-set (same addressing as [`CONFIRM_SQL`]).
pub(crate) const FORGET_SQL: &str = "UPDATE sponsorships SET superseded_offer = NULL \
     WHERE sponsoring_member_id = ?1 AND id = ?2 AND sponsoring_organization_id = ?3 \
     AND revision = ?4";

impl Tx<'_> {
    /// Applies a batch's changes in this transaction, each with compare-and-set.
    pub(crate) fn apply_batch(
        &self,
        org: OrganizationId,
        batch: &BatchApplication,
    ) -> Result<AppliedBatch, Error> {
        self.run(|tx| {
            let mut out = AppliedBatch::default();
            let org_text = IdText::new(org.as_uuid());
            let mut confirm = tx.prepare_cached(CONFIRM_SQL)?;
            let mut delete = tx.prepare_cached(DELETE_SQL)?;
            let mut forget = tx.prepare_cached(FORGET_SQL)?;
            for change in &batch.changes {
                // A revision beyond SQLite's integers matches no stored row.
                let Ok(revision) = i64::try_from(change.expected_revision) else {
                    out.stale.push(change.sponsorship_id);
                    continue;
                };
                let member = IdText::new(change.member_id.as_uuid());
                let id = IdText::new(change.sponsorship_id.as_uuid());
                let key = params![member, id, org_text, revision];
                let changed = match &change.action {
                    SyncAction::Confirm {
                        last_sync_date,
                        valid_until,
                        to_delete,
                    } => confirm.execute(params![
                        member,
                        id,
                        org_text,
                        revision,
                        last_sync_date.map(TsText::new),
                        valid_until.map(TsText::new),
                        to_delete,
                    ])?,
                    SyncAction::Delete => delete.execute(key)?,
                    SyncAction::ForgetSupersededOffer => forget.execute(key)?,
                    SyncAction::RevertToRedeemedOffer { .. } => {
                        usize::from(apply_loaded(tx, change, key)?)
                    }
                };
                if changed > 0 {
                    out.applied += 1;
                } else {
                    out.stale.push(change.sponsorship_id);
                }
            }
            Ok(out)
        })
    }
}

/// The generic path (load, `apply_change`, write) for the rare actions that rewrite
/// more than the SQL fast paths do; `key` is (member, id, organization, revision) as in
/// [`CONFIRM_SQL`]. `false` when the row is gone or has another revision (stale).
fn apply_loaded(
    tx: &Transaction<'_>,
    change: &SyncChange,
    key: &[&dyn ToSql],
) -> rusqlite::Result<bool> {
    let row = tx
        .prepare_cached(&format!(
            "SELECT {ROW_COLUMNS} FROM sponsorships WHERE sponsoring_member_id = ?1 AND id = ?2 \
             AND sponsoring_organization_id = ?3 AND revision = ?4"
        ))?
        .query_row(key, sponsorship_from_row)
        .optional()?;
    let Some(row) = row else {
        return Ok(false);
    };
    match apply_change(&row, &change.action) {
        Some(row) => update_synced_fields(tx, &row)?,
        None => {
            tx.prepare_cached(DELETE_SQL)?.execute(key)?;
        }
    }
    Ok(true)
}
