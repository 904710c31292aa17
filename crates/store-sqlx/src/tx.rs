//! A transaction of the store: what a standalone host (`sponsorctl`) does in one step, such as
//! resolve an organization and a member, check the rules on their rows, write the result.

use chrono::{DateTime, Utc};
use sponsorship_core::ids::{MemberId, OrganizationId};
use sponsorship_core::license::OrganizationLicense;
use sponsorship_core::org::{BillingConnection, Member, MemberStatus, OrgRecord};
use sponsorship_core::schedule::SyncState;
use sponsorship_core::secret::BillingSyncKey;
use sponsorship_core::sponsorship::{RowChange, Sponsorship, StatusCounts};
use sponsorship_core::store::SyncLock;
use sqlx_core::any::Any;
use sqlx_core::transaction::Transaction;

use crate::{Error, SqlxStore};

/// A transaction: everything done through it lands at [`commit`](Self::commit), or not at all
/// (a dropped transaction rolls back).
#[derive(Debug)]
pub struct SqlxTx {
    tx: Transaction<'static, Any>,
    store: SqlxStore,
}

impl SqlxStore {
    /// Starts a transaction.
    pub async fn begin(&self) -> Result<SqlxTx, Error> {
        Ok(SqlxTx {
            tx: self.pool.begin().await.map_err(|e| self.query_error(e))?,
            store: self.clone(),
        })
    }
}

impl SqlxTx {
    /// Makes everything of the transaction durable.
    pub async fn commit(self) -> Result<(), Error> {
        let store = self.store;
        self.tx.commit().await.map_err(|e| store.query_error(e))
    }

    /// All organizations, by name.
    pub async fn organizations(&mut self) -> Result<Vec<OrgRecord>, Error> {
        self.store.organizations_on(&mut self.tx).await
    }

    /// Inserts an organization (its name is unique without regard to case).
    pub async fn insert_organization(
        &mut self,
        rec: &OrgRecord,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.store
            .insert_organization_on(&mut self.tx, rec, now)
            .await
    }

    /// Stores an imported license and what it says about the organization.
    pub async fn save_license(
        &mut self,
        org: OrganizationId,
        license: &OrganizationLicense,
        license_json: &str,
    ) -> Result<(), Error> {
        self.store
            .save_license_on(&mut self.tx, org, license, license_json)
            .await
    }

    /// Members of an organization, by e-mail.
    pub async fn members(&mut self, org: OrganizationId) -> Result<Vec<Member>, Error> {
        self.store.members_on(&mut self.tx, org).await
    }

    /// Inserts a member (the e-mail is unique in the organization without regard to case).
    pub async fn insert_member(&mut self, m: &Member) -> Result<(), Error> {
        self.store.insert_member_on(&mut self.tx, m).await
    }

    /// Changes a member's status; `false` when there is no such member.
    pub async fn set_member_status(
        &mut self,
        id: MemberId,
        status: MemberStatus,
    ) -> Result<bool, Error> {
        self.store
            .set_member_status_on(&mut self.tx, id, status)
            .await
    }

    /// Deletes a member (their sponsorship rows stay).
    pub async fn delete_member(&mut self, id: MemberId) -> Result<(), Error> {
        self.store.delete_member_on(&mut self.tx, id).await
    }

    /// The organization's billing sync connection.
    pub async fn connection(
        &mut self,
        org: OrganizationId,
    ) -> Result<Option<BillingConnection>, Error> {
        self.store.connection_on(&mut self.tx, org).await
    }

    /// Stores (or replaces) the key (see [`SqlxStore::set_key`]).
    pub async fn set_key(
        &mut self,
        org: OrganizationId,
        key: &BillingSyncKey,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.store.set_key_on(&mut self.tx, org, key, now).await
    }

    /// Switches the connection; `false` when there is none.
    pub async fn set_enabled(
        &mut self,
        org: OrganizationId,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        self.store
            .set_enabled_on(&mut self.tx, org, enabled, now)
            .await
    }

    /// Deletes the connection; `false` when there was none.
    pub async fn delete_connection(&mut self, org: OrganizationId) -> Result<bool, Error> {
        self.store.delete_connection_on(&mut self.tx, org).await
    }

    /// Sponsorship rows of an organization (all when `None`), by organization and member.
    pub async fn sponsorships(
        &mut self,
        org: Option<OrganizationId>,
    ) -> Result<Vec<Sponsorship>, Error> {
        match org {
            Some(org) => self.store.load_rows(&mut self.tx, org).await,
            None => self.store.all_rows_on(&mut self.tx).await,
        }
    }

    /// Writes lifecycle changes (offer, revoke, member removal).
    pub async fn write_changes(&mut self, changes: &[RowChange]) -> Result<(), Error> {
        self.store.write_rows(&mut self.tx, changes).await
    }

    /// The organization's sync state (default when none is stored).
    pub async fn sync_state(&mut self, org: OrganizationId) -> Result<SyncState, Error> {
        self.store.load_state(&mut self.tx, org).await
    }

    /// Stores the organization's sync state.
    pub async fn save_sync_state(
        &mut self,
        org: OrganizationId,
        state: &SyncState,
    ) -> Result<(), Error> {
        self.store.store_state(&mut self.tx, org, state).await
    }

    /// Counts the organization's rows per UI status.
    pub async fn status_counts(&mut self, org: OrganizationId) -> Result<StatusCounts, Error> {
        self.store.status_counts_on(&mut self.tx, org).await
    }

    /// The organization's lease as stored.
    pub async fn sync_lock(&mut self, org: OrganizationId) -> Result<Option<SyncLock>, Error> {
        self.store.lock_row_on(&mut self.tx, org).await
    }
}
