//! Sync state and the sync lock of an organization.
//!
//! The lock is a row (holder, token, expiry) per organization, so two processes never sync one
//! organization at once; a crashed holder's lock expires, and one whose holder is known to be
//! gone is taken over at once (see [`SqliteStore::take_over_gone_holders`](crate::SqliteStore::take_over_gone_holders)).

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use sponsorship_core::ids::OrganizationId;
use sponsorship_core::schedule::{ErrorCategory, SyncErrorRecord, SyncState};
use sponsorship_core::store::{LockOutcome, SyncLock};

use crate::codec::{conv, opt_ts, parse_opt_ts, parse_ts, ts};
use crate::{Error, Tx};

impl Tx<'_> {
    /// The organization's sync state (default when none is stored).
    pub fn sync_state(&self, org: OrganizationId) -> Result<SyncState, Error> {
        self.run(|tx| {
            tx.query_row(
                "SELECT last_attempt, last_success, last_error_category, last_error_message, \
                 last_error_at, next_due, consecutive_failures, last_license_sync \
                 FROM sync_state WHERE organization_id = ?1",
                [org.to_string()],
                |r| {
                    let category: Option<String> = r.get(2)?;
                    let message: Option<String> = r.get(3)?;
                    let at: Option<String> = r.get(4)?;
                    let last_error = match (category, message, at) {
                        (Some(c), Some(m), Some(at)) => Some(SyncErrorRecord {
                            // The category's one string form (`ErrorCategory::name`).
                            category: conv(c.parse::<ErrorCategory>().map_err(|e| e.to_string()))?,
                            message: m,
                            at: conv(parse_ts(&at))?,
                        }),
                        _ => None,
                    };
                    // (`SyncState` is non-exhaustive: its fields are set one by one)
                    let mut state = SyncState::default();
                    state.last_attempt = conv(parse_opt_ts(r.get(0)?))?;
                    state.last_success = conv(parse_opt_ts(r.get(1)?))?;
                    state.last_error = last_error;
                    state.next_due = conv(parse_opt_ts(r.get(5)?))?;
                    state.consecutive_failures = r.get(6)?;
                    state.last_license_sync = conv(parse_opt_ts(r.get(7)?))?;
                    Ok(state)
                },
            )
            .optional()
            .map(Option::unwrap_or_default)
        })
    }

    /// Stores the organization's sync state.
    pub fn save_sync_state(&self, org: OrganizationId, s: &SyncState) -> Result<(), Error> {
        self.run(|tx| {
        let category = s.last_error.as_ref().map(|e| e.category.name());
        tx.execute(
            "INSERT OR REPLACE INTO sync_state (organization_id, last_attempt, last_success, \
             last_error_category, last_error_message, last_error_at, next_due, consecutive_failures, \
             last_license_sync) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                org.to_string(),
                opt_ts(s.last_attempt),
                opt_ts(s.last_success),
                category,
                s.last_error.as_ref().map(|e| e.message.clone()),
                s.last_error.as_ref().map(|e| ts(e.at)),
                opt_ts(s.next_due),
                s.consecutive_failures,
                opt_ts(s.last_license_sync),
            ],
        )?;
        Ok(())
        })
    }

    /// Stores the next due time alone (see [`SponsorshipStore::save_next_due`]).
    ///
    /// [`SponsorshipStore::save_next_due`]: sponsorship_core::store::SponsorshipStore::save_next_due
    pub fn save_next_due(&self, org: OrganizationId, next_due: DateTime<Utc>) -> Result<(), Error> {
        self.run(|tx| {
            tx.execute(
                "INSERT INTO sync_state (organization_id, next_due) VALUES (?1, ?2) \
                 ON CONFLICT (organization_id) DO UPDATE SET next_due = excluded.next_due",
                params![org.to_string(), ts(next_due)],
            )?;
            Ok(())
        })
    }

    /// The lock row of an organization.
    pub fn lock(&self, org: OrganizationId) -> Result<Option<SyncLock>, Error> {
        self.run(|tx| {
        tx
            .query_row(
                "SELECT holder, token, acquired_at, expires_at FROM sync_locks WHERE organization_id = ?1",
                [org.to_string()],
                |r| {
                    let acquired: String = r.get(2)?;
                    let expires: String = r.get(3)?;
                    Ok(SyncLock {
                        holder: r.get(0)?,
                        token: r.get(1)?,
                        acquired_at: conv(parse_ts(&acquired))?,
                        expires_at: conv(parse_ts(&expires))?,
                    })
                },
            )
            .optional()
        })
    }

    /// Takes (or renews) the lock: granted unless someone else holds it unexpired and
    /// `is_gone` (when given) does not say that holder is gone.
    pub(crate) fn try_lock(
        &self,
        org: OrganizationId,
        lock: &SyncLock,
        now: DateTime<Utc>,
        is_gone: Option<&(dyn Fn(&str) -> bool + Send + Sync)>,
    ) -> Result<LockOutcome, Error> {
        if let Some(held) = self.lock(org)?
            && held.excludes(&lock.token, now)
        {
            if is_gone.is_some_and(|gone| gone(&held.holder)) {
                tracing::warn!(
                    holder = %held.holder,
                    "taking over the sync lock of a holder that no longer runs"
                );
                return self.write_lock(org, lock);
            }
            return Ok(LockOutcome::HeldBy {
                holder: held.holder,
                since: held.acquired_at,
            });
        }
        self.write_lock(org, lock)
    }

    fn write_lock(&self, org: OrganizationId, lock: &SyncLock) -> Result<LockOutcome, Error> {
        self.run(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO sync_locks (organization_id, holder, token, acquired_at, \
                 expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    org.to_string(),
                    lock.holder,
                    lock.token,
                    ts(lock.acquired_at),
                    ts(lock.expires_at)
                ],
            )?;
            Ok(LockOutcome::Acquired)
        })
    }

    /// Compare-and-set renewal on the holder's token (see `SponsorshipStore::renew_sync_lock`).
    pub(crate) fn renew_lock(&self, org: OrganizationId, lock: &SyncLock) -> Result<bool, Error> {
        self.run(|tx| {
            let n = tx.execute(
                "UPDATE sync_locks SET expires_at = ?3 WHERE organization_id = ?1 AND token = ?2",
                params![org.to_string(), lock.token, ts(lock.expires_at)],
            )?;
            Ok(n > 0)
        })
    }

    /// Releases the lock if `token` holds it.
    pub(crate) fn unlock(&self, org: OrganizationId, token: &str) -> Result<(), Error> {
        self.run(|tx| {
            tx.execute(
                "DELETE FROM sync_locks WHERE organization_id = ?1 AND token = ?2",
                params![org.to_string(), token],
            )?;
            Ok(())
        })
    }
}
