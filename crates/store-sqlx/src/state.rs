//! Sync state and the sync lock.
//!
//! The lock is a lease row per organization (holder, token, expiry), taken in a transaction
//! that locks the row (`SELECT … FOR UPDATE`) and renewed before each batch with
//! compare-and-set on the holder's token. A lease, not the database's advisory locks: it
//! outlives a lost connection of a live holder and is fenced by its token, so a holder
//! suspended past its expiry finds it lost instead of holding it forever; it works the same on
//! both backends and through connection poolers in transaction mode.

use chrono::{DateTime, Utc};
use sponsorship_core::ids::OrganizationId;
use sponsorship_core::schedule::{ErrorCategory, SyncErrorRecord, SyncState};
use sponsorship_core::store::{LockOutcome, SyncLock};
use sqlx_core::any::AnyConnection;
use sqlx_core::connection::Connection as _;
use sqlx_core::row::Row as _;

use crate::rows::{from_micros, micros, opt_from_micros};
use crate::{Error, SqlxStore};

impl SqlxStore {
    pub(crate) async fn load_state(
        &self,
        c: &mut AnyConnection,
        org: OrganizationId,
    ) -> Result<SyncState, Error> {
        let Some(r) = self
            .sql
            .select_state
            .query()
            .bind(org.to_string())
            .fetch_optional(&mut *c)
            .await
            .map_err(|e| self.query_error(e))?
        else {
            return Ok(SyncState::default());
        };
        let get = |e: sqlx_core::Error| self.query_error(e);
        let category: Option<String> = r.try_get(2).map_err(get)?;
        let message: Option<String> = r.try_get(3).map_err(get)?;
        let at: Option<i64> = r.try_get(4).map_err(get)?;
        let last_error = match (category, message, at) {
            (Some(c), Some(message), Some(at)) => Some(SyncErrorRecord {
                category: c
                    .parse::<ErrorCategory>()
                    .map_err(|e| self.corrupt(e.to_string()))?,
                message,
                at: from_micros(self, at)?,
            }),
            _ => None,
        };
        let failures: i64 = r.try_get(6).map_err(get)?;
        // (`SyncState` is non-exhaustive: its fields are set one by one)
        let mut state = SyncState::default();
        state.last_attempt = opt_from_micros(self, r.try_get(0).map_err(get)?)?;
        state.last_success = opt_from_micros(self, r.try_get(1).map_err(get)?)?;
        state.last_error = last_error;
        state.next_due = opt_from_micros(self, r.try_get(5).map_err(get)?)?;
        state.consecutive_failures = u32::try_from(failures).unwrap_or(u32::MAX);
        state.last_license_sync = opt_from_micros(self, r.try_get(7).map_err(get)?)?;
        Ok(state)
    }

    pub(crate) async fn store_state(
        &self,
        c: &mut AnyConnection,
        org: OrganizationId,
        s: &SyncState,
    ) -> Result<(), Error> {
        self.sql
            .upsert_state
            .query()
            .bind(org.to_string())
            .bind(s.last_attempt.map(micros))
            .bind(s.last_success.map(micros))
            .bind(s.last_error.as_ref().map(|e| e.category.name().to_owned()))
            .bind(s.last_error.as_ref().map(|e| e.message.clone()))
            .bind(s.last_error.as_ref().map(|e| micros(e.at)))
            .bind(s.next_due.map(micros))
            .bind(i64::from(s.consecutive_failures))
            .bind(s.last_license_sync.map(micros))
            .execute(&mut *c)
            .await
            .map_err(|e| self.query_error(e))?;
        Ok(())
    }

    pub(crate) async fn store_next_due(
        &self,
        c: &mut AnyConnection,
        org: OrganizationId,
        next_due: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.sql
            .upsert_next_due
            .query()
            .bind(org.to_string())
            .bind(micros(next_due))
            .execute(&mut *c)
            .await
            .map_err(|e| self.query_error(e))?;
        Ok(())
    }

    /// Takes the lease in one transaction: the row (when there is one) is locked while it is
    /// judged, so two replicas never both see it free. When two replicas insert the first
    /// lease of an organization at once, the loser's insert fails on the key and it reports
    /// the winner.
    pub(crate) async fn take_lock(
        &self,
        c: &mut AnyConnection,
        org: OrganizationId,
        lock: &SyncLock,
        now: DateTime<Utc>,
    ) -> Result<LockOutcome, Error> {
        let mut tx = c.begin().await.map_err(|e| self.query_error(e))?;
        let found = self
            .sql
            .lock_select
            .query()
            .bind(org.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?;
        if let Some(r) = found {
            let held = self.lock_from(&r)?;
            if held.excludes(&lock.token, now) {
                tx.rollback().await.map_err(|e| self.query_error(e))?;
                return Ok(LockOutcome::HeldBy {
                    holder: held.holder,
                    since: held.acquired_at,
                });
            }
            self.sql
                .lock_update
                .query()
                .bind(lock.holder.clone())
                .bind(lock.token.clone())
                .bind(micros(lock.acquired_at))
                .bind(micros(lock.expires_at))
                .bind(org.to_string())
                .execute(&mut *tx)
                .await
                .map_err(|e| self.query_error(e))?;
        } else {
            let inserted = self
                .sql
                .lock_insert
                .query()
                .bind(org.to_string())
                .bind(lock.holder.clone())
                .bind(lock.token.clone())
                .bind(micros(lock.acquired_at))
                .bind(micros(lock.expires_at))
                .execute(&mut *tx)
                .await;
            if let Err(e) = inserted {
                let unique = e
                    .as_database_error()
                    .is_some_and(sqlx_core::error::DatabaseError::is_unique_violation);
                drop(tx);
                if unique {
                    return self.holder_of(c, org, now).await;
                }
                return Err(self.query_error(e));
            }
        }
        tx.commit().await.map_err(|e| self.query_error(e))?;
        Ok(LockOutcome::Acquired)
    }

    /// The organization's lease as stored (held or expired), for a status page or a test.
    pub async fn sync_lock(&self, org: OrganizationId) -> Result<Option<SyncLock>, Error> {
        self.lock_row_on(&mut *self.acquire().await?, org).await
    }

    pub(crate) async fn lock_row_on(
        &self,
        c: &mut AnyConnection,
        org: OrganizationId,
    ) -> Result<Option<SyncLock>, Error> {
        let Some(r) = self
            .sql
            .lock_read
            .query()
            .bind(org.to_string())
            .fetch_optional(&mut *c)
            .await
            .map_err(|e| self.query_error(e))?
        else {
            return Ok(None);
        };
        self.lock_from(&r).map(Some)
    }

    /// A lease row (holder, token, acquired_at, expires_at).
    fn lock_from(&self, r: &sqlx_core::any::AnyRow) -> Result<SyncLock, Error> {
        let get = |e: sqlx_core::Error| self.query_error(e);
        Ok(SyncLock {
            holder: r.try_get(0).map_err(get)?,
            token: r.try_get(1).map_err(get)?,
            acquired_at: from_micros(self, r.try_get(2).map_err(get)?)?,
            expires_at: from_micros(self, r.try_get(3).map_err(get)?)?,
        })
    }

    /// Who holds the lease another replica has just taken.
    async fn holder_of(
        &self,
        c: &mut AnyConnection,
        org: OrganizationId,
        now: DateTime<Utc>,
    ) -> Result<LockOutcome, Error> {
        let r = self
            .sql
            .lock_holder
            .query()
            .bind(org.to_string())
            .fetch_optional(&mut *c)
            .await
            .map_err(|e| self.query_error(e))?;
        let Some(r) = r else {
            // Taken and released again meanwhile: report it as held; the caller retries.
            return Ok(LockOutcome::HeldBy {
                holder: "another replica".to_owned(),
                since: now,
            });
        };
        let get = |e: sqlx_core::Error| self.query_error(e);
        Ok(LockOutcome::HeldBy {
            holder: r.try_get(0).map_err(get)?,
            since: from_micros(self, r.try_get(1).map_err(get)?)?,
        })
    }

    /// Compare-and-set on the holder's token. A renewal that writes the expiry already
    /// stored still holds the lock: the token is read back when no row was counted.
    pub(crate) async fn renew(
        &self,
        c: &mut AnyConnection,
        org: OrganizationId,
        lock: &SyncLock,
    ) -> Result<bool, Error> {
        let done = self
            .sql
            .renew
            .query()
            .bind(micros(lock.expires_at))
            .bind(org.to_string())
            .bind(lock.token.clone())
            .execute(&mut *c)
            .await
            .map_err(|e| self.query_error(e))?;
        if done.rows_affected() > 0 {
            return Ok(true);
        }
        let n: i64 = self
            .sql
            .renew_check
            .query()
            .bind(org.to_string())
            .bind(lock.token.clone())
            .fetch_one(&mut *c)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| self.query_error(e))?;
        Ok(n > 0)
    }

    pub(crate) async fn unlock(
        &self,
        c: &mut AnyConnection,
        org: OrganizationId,
        token: &str,
    ) -> Result<(), Error> {
        self.sql
            .unlock
            .query()
            .bind(org.to_string())
            .bind(token.to_owned())
            .execute(&mut *c)
            .await
            .map_err(|e| self.query_error(e))?;
        Ok(())
    }
}
