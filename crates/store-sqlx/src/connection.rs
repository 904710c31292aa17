//! The billing sync connection of an organization: its key and on/off switch.

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret as _;
use sponsorship_core::ids::OrganizationId;
use sponsorship_core::org::BillingConnection;
use sponsorship_core::secret::BillingSyncKey;
use sqlx_core::any::AnyConnection;
use sqlx_core::connection::Connection as _;
use sqlx_core::row::Row as _;

use crate::rows::{from_micros, micros};
use crate::{Error, SqlxStore};

impl SqlxStore {
    /// The organization's billing sync connection.
    pub async fn connection(
        &self,
        org: OrganizationId,
    ) -> Result<Option<BillingConnection>, Error> {
        self.connection_on(&mut *self.acquire().await?, org).await
    }

    /// Stores (or replaces) the key; a new connection starts enabled, a replaced key keeps the
    /// switch as it was.
    pub async fn set_key(
        &self,
        org: OrganizationId,
        key: &BillingSyncKey,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.set_key_on(&mut *self.acquire().await?, org, key, now)
            .await
    }

    /// Switches the connection; `false` when there is none.
    pub async fn set_enabled(
        &self,
        org: OrganizationId,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        self.set_enabled_on(&mut *self.acquire().await?, org, enabled, now)
            .await
    }

    /// Deletes the connection (the reference UI's Delete); `false` when there was none. The
    /// organization's sponsorships and sync history stay.
    pub async fn delete_connection(&self, org: OrganizationId) -> Result<bool, Error> {
        self.delete_connection_on(&mut *self.acquire().await?, org)
            .await
    }

    /// The organization's billing sync connection.
    pub(crate) async fn connection_on(
        &self,
        c: &mut AnyConnection,
        org: OrganizationId,
    ) -> Result<Option<BillingConnection>, Error> {
        let Some(r) = self
            .sql
            .select_connection
            .query()
            .bind(org.to_string())
            .fetch_optional(&mut *c)
            .await
            .map_err(|e| self.query_error(e))?
        else {
            return Ok(None);
        };
        let get = |e: sqlx_core::Error| self.query_error(e);
        let key: String = r.try_get(0).map_err(get)?;
        let enabled: i16 = r.try_get(1).map_err(get)?;
        // The key's own message, never the stored value.
        let key = BillingSyncKey::parse(&key)
            .map_err(|e| self.corrupt(format!("the billing sync key of {org}: {e}")))?;
        Ok(Some(BillingConnection::new(
            key,
            enabled != 0,
            from_micros(self, r.try_get(2).map_err(get)?)?,
        )))
    }

    /// Stores (or replaces) the key; a new connection starts enabled, a replaced key keeps the
    /// switch as it was.
    pub(crate) async fn set_key_on(
        &self,
        c: &mut AnyConnection,
        org: OrganizationId,
        key: &BillingSyncKey,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let mut tx = c.begin().await.map_err(|e| self.query_error(e))?;
        let updated = self
            .sql
            .update_connection_key
            .query()
            .bind(key.expose_secret().to_owned())
            .bind(micros(now))
            .bind(org.to_string())
            .execute(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?;
        if updated.rows_affected() == 0 {
            self.sql
                .insert_connection
                .query()
                .bind(org.to_string())
                .bind(key.expose_secret().to_owned())
                .bind(micros(now))
                .execute(&mut *tx)
                .await
                .map_err(|e| self.query_error(e))?;
        }
        tx.commit().await.map_err(|e| self.query_error(e))
    }

    /// Switches the connection; `false` when there is none.
    pub(crate) async fn set_enabled_on(
        &self,
        c: &mut AnyConnection,
        org: OrganizationId,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let done = self
            .sql
            .enable_connection
            .query()
            .bind(i16::from(enabled))
            .bind(micros(now))
            .bind(org.to_string())
            .execute(&mut *c)
            .await
            .map_err(|e| self.query_error(e))?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes the connection (the reference UI's Delete); `false` when there was none. The
    /// organization's sponsorships and sync history stay.
    pub(crate) async fn delete_connection_on(
        &self,
        c: &mut AnyConnection,
        org: OrganizationId,
    ) -> Result<bool, Error> {
        let done = self
            .sql
            .delete_connection
            .query()
            .bind(org.to_string())
            .execute(&mut *c)
            .await
            .map_err(|e| self.query_error(e))?;
        Ok(done.rows_affected() > 0)
    }
}
