//! Sponsorship rows: their encoding, loading in member order, lifecycle writes, and a sync
//! batch as one transaction of compare-and-set statements.

use chrono::{DateTime, Utc};
use sponsorship_core::ids::{MemberId, OrganizationId, SponsorshipId};
use sponsorship_core::plan::PlanSponsorshipType;
use sponsorship_core::sponsorship::{RowChange, Sponsorship, SupersededOffer};
use sponsorship_core::store::AppliedBatch;
use sponsorship_core::sync::{BatchApplication, SyncAction, SyncChange, apply_change};
use sqlx_core::any::AnyConnection;
use sqlx_core::any::{Any, AnyArguments, AnyRow};
use sqlx_core::connection::Connection as _;
use sqlx_core::query::Query;
use sqlx_core::row::Row as _;

use crate::{Error, SqlxStore};

/// A query of this crate, before or after its values are bound.
type AnyQuery = Query<'static, Any, AnyArguments>;

/// A time as stored: microseconds since the Unix epoch.
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_micros(store: &SqlxStore, v: i64) -> Result<DateTime<Utc>, Error> {
    DateTime::from_timestamp_micros(v)
        .ok_or_else(|| store.corrupt(format!("time {v} out of range")))
}

pub(crate) fn opt_from_micros(
    store: &SqlxStore,
    v: Option<i64>,
) -> Result<Option<DateTime<Utc>>, Error> {
    v.map(|v| from_micros(store, v)).transpose()
}

pub(crate) fn uuid_of<T: From<uuid::Uuid>>(store: &SqlxStore, text: &str) -> Result<T, Error> {
    uuid::Uuid::parse_str(text)
        .map(T::from)
        .map_err(|e| store.corrupt(format!("id {text:?}: {e}")))
}

fn decode(store: &SqlxStore, r: &AnyRow) -> Result<Sponsorship, Error> {
    let get = |e: sqlx_core::Error| store.query_error(e);
    let id: String = r.try_get(0).map_err(get)?;
    let org: Option<String> = r.try_get(1).map_err(get)?;
    let member: String = r.try_get(2).map_err(get)?;
    let pst: Option<i16> = r.try_get(5).map_err(get)?;
    let revision: i64 = r.try_get(11).map_err(get)?;
    let superseded: Option<String> = r.try_get(13).map_err(get)?;
    let flag = |i: usize| -> Result<bool, Error> { Ok(r.try_get::<i16, _>(i).map_err(get)? != 0) };
    Ok(Sponsorship {
        id: uuid_of(store, &id)?,
        sponsoring_organization_id: org.map(|o| uuid_of(store, &o)).transpose()?,
        sponsoring_member_id: uuid_of(store, &member)?,
        friendly_name: r.try_get(3).map_err(get)?,
        offered_to_email: r.try_get(4).map_err(get)?,
        plan_sponsorship_type: pst
            .map(|n| {
                u8::try_from(n)
                    .ok()
                    .and_then(PlanSponsorshipType::from_number)
                    .ok_or_else(|| store.corrupt(format!("unknown sponsorship type {n}")))
            })
            .transpose()?,
        last_sync_date: opt_from_micros(store, r.try_get(6).map_err(get)?)?,
        valid_until: opt_from_micros(store, r.try_get(7).map_err(get)?)?,
        to_delete: flag(8)?,
        is_admin_initiated: flag(9)?,
        notes: r.try_get(10).map_err(get)?,
        revision: u64::try_from(revision).map_err(|e| store.corrupt(e.to_string()))?,
        awaiting_sync: flag(12)?,
        superseded_offer: superseded
            .map(|s| {
                serde_json::from_str::<Box<SupersededOffer>>(&s)
                    .map_err(|e| store.corrupt(format!("superseded offer: {e}")))
            })
            .transpose()?,
        revision_date: from_micros(store, r.try_get(14).map_err(get)?)?,
    })
}

impl SqlxStore {
    /// The organization's rows, in member order (the order a sync plans them in).
    pub(crate) async fn load_rows(
        &self,
        c: &mut AnyConnection,
        org: OrganizationId,
    ) -> Result<Vec<Sponsorship>, Error> {
        let rows = self
            .sql
            .select_rows
            .query()
            .bind(org.to_string())
            .fetch_all(&mut *c)
            .await
            .map_err(|e| self.query_error(e))?;
        rows.iter().map(|r| decode(self, r)).collect()
    }

    /// Every organization's rows, by organization and member.
    pub(crate) async fn all_rows_on(
        &self,
        c: &mut AnyConnection,
    ) -> Result<Vec<Sponsorship>, Error> {
        let rows = self
            .sql
            .select_all_rows
            .query()
            .fetch_all(&mut *c)
            .await
            .map_err(|e| self.query_error(e))?;
        rows.iter().map(|r| decode(self, r)).collect()
    }

    /// Writes lifecycle changes in one transaction.
    pub(crate) async fn write_rows(
        &self,
        c: &mut AnyConnection,
        changes: &[RowChange],
    ) -> Result<(), Error> {
        let mut tx = c.begin().await.map_err(|e| self.query_error(e))?;
        for change in changes {
            match change {
                RowChange::Upsert(row) => self.upsert(&mut tx, row).await?,
                RowChange::Delete(id) => {
                    self.sql
                        .delete_row
                        .query()
                        .bind(id.to_string())
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.query_error(e))?;
                }
            }
        }
        tx.commit().await.map_err(|e| self.query_error(e))
    }

    async fn upsert(&self, tx: &mut AnyConnection, row: &Sponsorship) -> Result<(), Error> {
        let superseded = row
            .superseded_offer
            .as_ref()
            .map(|s| serde_json::to_string(s).unwrap_or_default());
        self.sql
            .upsert_row
            .query()
            .bind(row.id.to_string())
            .bind(row.sponsoring_organization_id.map(|o| o.to_string()))
            .bind(row.sponsoring_member_id.to_string())
            .bind(row.friendly_name.clone())
            .bind(row.offered_to_email.clone())
            .bind(row.plan_sponsorship_type.map(|p| i16::from(p.number())))
            .bind(row.last_sync_date.map(micros))
            .bind(row.valid_until.map(micros))
            .bind(i16::from(row.to_delete))
            .bind(i16::from(row.is_admin_initiated))
            .bind(row.notes.clone())
            .bind(i64::try_from(row.revision).unwrap_or(i64::MAX))
            .bind(i16::from(row.awaiting_sync))
            .bind(superseded)
            .bind(micros(row.revision_date))
            .execute(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?;
        Ok(())
    }

    /// Applies a batch in one transaction, each change guarded by the row's revision.
    pub(crate) async fn apply(
        &self,
        c: &mut AnyConnection,
        org: OrganizationId,
        batch: &BatchApplication,
    ) -> Result<AppliedBatch, Error> {
        let mut tx = c.begin().await.map_err(|e| self.query_error(e))?;
        let mut out = AppliedBatch::default();
        let org_text = org.to_string();
        for change in &batch.changes {
            // A revision beyond the column's integers matches no stored row.
            let Ok(revision) = i64::try_from(change.expected_revision) else {
                out.stale.push(change.sponsorship_id);
                continue;
            };
            let key = Key {
                member: change.member_id,
                id: change.sponsorship_id,
                org: &org_text,
                revision,
            };
            let changed = match &change.action {
                SyncAction::Confirm {
                    last_sync_date,
                    valid_until,
                    to_delete,
                } => {
                    let q = self
                        .sql
                        .confirm
                        .query()
                        .bind(last_sync_date.map(micros))
                        .bind(valid_until.map(micros))
                        .bind(i16::from(*to_delete));
                    self.guarded(&mut tx, key.bind(q)).await?
                }
                SyncAction::Delete => {
                    let q = key.bind(self.sql.delete_guarded.query());
                    self.guarded(&mut tx, q).await?
                }
                SyncAction::ForgetSupersededOffer => {
                    let q = key.bind(self.sql.forget_guarded.query());
                    self.guarded(&mut tx, q).await?
                }
                SyncAction::RevertToRedeemedOffer { .. } => {
                    self.apply_loaded(&mut tx, change, &key).await?
                }
            };
            if changed {
                out.applied += 1;
            } else {
                out.stale.push(change.sponsorship_id);
            }
        }
        tx.commit().await.map_err(|e| self.query_error(e))?;
        Ok(out)
    }

    /// Runs a guarded statement; `true` when it changed the row.
    ///
    /// MySQL counts only rows whose values changed, unless the connection asks for the rows
    /// found (sqlx's MySQL driver does): a confirmation that writes the values already stored
    /// is still a match.
    async fn guarded(&self, tx: &mut AnyConnection, query: AnyQuery) -> Result<bool, Error> {
        let done = query
            .execute(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?;
        Ok(done.rows_affected() > 0)
    }

    /// The generic path (load, `apply_change`, write) for the rare actions that rewrite more
    /// than the fast paths do. `false` when the row is gone or has another revision.
    async fn apply_loaded(
        &self,
        tx: &mut AnyConnection,
        change: &SyncChange,
        key: &Key<'_>,
    ) -> Result<bool, Error> {
        let found = key
            .bind(self.sql.select_guarded.query())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?;
        let Some(found) = found else {
            return Ok(false);
        };
        let row = decode(self, &found)?;
        match apply_change(&row, &change.action) {
            Some(row) => self.upsert(tx, &row).await?,
            None => {
                self.guarded(tx, key.bind(self.sql.delete_guarded.query()))
                    .await?;
            }
        }
        Ok(true)
    }
}

/// A row's key and guard (member, id, organization, revision), in [`GUARD`]'s order.
struct Key<'a> {
    member: MemberId,
    id: SponsorshipId,
    org: &'a str,
    revision: i64,
}

impl Key<'_> {
    fn bind(&self, q: AnyQuery) -> AnyQuery {
        q.bind(self.member.to_string())
            .bind(self.id.to_string())
            .bind(self.org.to_owned())
            .bind(self.revision)
    }
}
