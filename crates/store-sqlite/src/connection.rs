//! The billing sync connection of an organization: its key and on/off switch.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use secrecy::ExposeSecret;
use sponsorship_core::ids::OrganizationId;
use sponsorship_core::secret::BillingSyncKey;

use crate::codec::{conv, parse_ts, ts};
use crate::{Error, Tx};

pub use sponsorship_core::org::BillingConnection;

impl Tx<'_> {
    /// The organization's billing sync connection.
    pub fn connection(&self, org: OrganizationId) -> Result<Option<BillingConnection>, Error> {
        self.run(|tx| {
            tx.query_row(
                "SELECT billing_sync_key, enabled, updated_at FROM billing_sync_connections \
                 WHERE organization_id = ?1",
                [org.to_string()],
                |r| {
                    let key: String = r.get(0)?;
                    let updated: String = r.get(2)?;
                    Ok(BillingConnection::new(
                        conv(BillingSyncKey::parse(&key).map_err(|e| e.to_string()))?,
                        r.get(1)?,
                        conv(parse_ts(&updated))?,
                    ))
                },
            )
            .optional()
        })
    }

    /// Stores (or replaces) the key; a new connection starts enabled, a replaced key keeps the
    /// switch as it was.
    pub fn set_key(
        &self,
        org: OrganizationId,
        key: &BillingSyncKey,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.run(|tx| {
        tx.execute(
            "INSERT INTO billing_sync_connections (organization_id, billing_sync_key, enabled, updated_at) \
             VALUES (?1, ?2, 1, ?3) ON CONFLICT (organization_id) DO UPDATE SET \
             billing_sync_key = excluded.billing_sync_key, updated_at = excluded.updated_at",
            params![org.to_string(), key.expose_secret(), ts(now)],
        )?;
        Ok(())
        })
    }

    /// Deletes the connection (the reference UI's Delete, spec §10.3); `false` when there was
    /// none. The organization's sponsorships and sync history stay; without a connection it is
    /// not synced until a token is saved again.
    pub fn delete_connection(&self, org: OrganizationId) -> Result<bool, Error> {
        self.run(|tx| {
            let n = tx.execute(
                "DELETE FROM billing_sync_connections WHERE organization_id = ?1",
                [org.to_string()],
            )?;
            Ok(n > 0)
        })
    }

    /// Switches the connection; `false` when there is none.
    pub fn set_enabled(
        &self,
        org: OrganizationId,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        self.run(|tx| {
        let n = tx.execute(
            "UPDATE billing_sync_connections SET enabled = ?2, updated_at = ?3 WHERE organization_id = ?1",
            params![org.to_string(), enabled, ts(now)],
        )?;
        Ok(n > 0)
        })
    }
}
