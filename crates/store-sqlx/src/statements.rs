//! Every statement of the store, in its backend's form, built once per store from the
//! constant SQL of this crate (nothing in them comes from input: values are bound).

use std::sync::Arc;

use sqlx_core::any::{Any, AnyArguments};
use sqlx_core::query::Query;
use sqlx_core::sql_str::AssertSqlSafe;

use crate::Backend;

pub(crate) const ROW_COLUMNS: [&str; 15] = [
    "id",
    "sponsoring_organization_id",
    "sponsoring_member_id",
    "friendly_name",
    "offered_to_email",
    "plan_sponsorship_type",
    "last_sync_date",
    "valid_until",
    "to_delete",
    "is_admin_initiated",
    "notes",
    "revision",
    "awaiting_sync",
    "superseded_offer",
    "revision_date",
];

pub(crate) const STATE_COLUMNS: [&str; 9] = [
    "organization_id",
    "last_attempt",
    "last_success",
    "last_error_category",
    "last_error_message",
    "last_error_at",
    "next_due",
    "consecutive_failures",
    "last_license_sync",
];

/// A row's key and guard, as every compare-and-set statement of a batch ends.
const GUARD: &str = "sponsoring_member_id = ? AND id = ? AND sponsoring_organization_id = ? \
     AND revision = ?";

/// One statement's text.
#[derive(Debug, Clone)]
pub(crate) struct Sql(Arc<str>);

impl Sql {
    /// A query of this statement (sqlx caches its preparation per connection).
    pub(crate) fn query(&self) -> Query<'static, Any, AnyArguments> {
        // The text is this crate's constant SQL with placeholders: see the module docs.
        sqlx_core::query::query(AssertSqlSafe(self.0.clone()))
    }
}

/// The store's statements.
#[derive(Debug, Clone)]
pub(crate) struct Statements {
    pub(crate) select_rows: Sql,
    pub(crate) upsert_row: Sql,
    pub(crate) delete_row: Sql,
    pub(crate) confirm: Sql,
    pub(crate) delete_guarded: Sql,
    pub(crate) forget_guarded: Sql,
    pub(crate) select_guarded: Sql,
    pub(crate) select_state: Sql,
    pub(crate) upsert_state: Sql,
    pub(crate) upsert_next_due: Sql,
    pub(crate) lock_select: Sql,
    pub(crate) lock_read: Sql,
    pub(crate) lock_update: Sql,
    pub(crate) lock_insert: Sql,
    pub(crate) lock_holder: Sql,
    pub(crate) renew: Sql,
    pub(crate) renew_check: Sql,
    pub(crate) unlock: Sql,
    pub(crate) schema_version: Sql,
    pub(crate) select_connection: Sql,
    pub(crate) update_connection_key: Sql,
    pub(crate) insert_connection: Sql,
    pub(crate) enable_connection: Sql,
    pub(crate) delete_connection: Sql,
    pub(crate) select_all_rows: Sql,
    pub(crate) select_organizations: Sql,
    pub(crate) insert_organization: Sql,
    pub(crate) save_license: Sql,
    pub(crate) select_members: Sql,
    pub(crate) insert_member: Sql,
    pub(crate) set_member_status: Sql,
    pub(crate) delete_member: Sql,
    pub(crate) status_counts: Sql,
}

impl Statements {
    #[allow(clippy::too_many_lines)] // one table of statements, read top to bottom
    pub(crate) fn new(backend: Backend) -> Self {
        let sql = |text: &str| Sql(Arc::from(backend.sql(text).as_ref()));
        let rows = ROW_COLUMNS.join(", ");
        Self {
            select_rows: sql(&format!(
                "SELECT {rows} FROM sponsorships WHERE sponsoring_organization_id = ? \
                 ORDER BY sponsoring_member_id, id"
            )),
            upsert_row: sql(&backend.upsert("sponsorships", &ROW_COLUMNS)),
            delete_row: sql("DELETE FROM sponsorships WHERE id = ?"),
            confirm: sql(&format!(
                "UPDATE sponsorships SET last_sync_date = ?, valid_until = ?, to_delete = ?, \
                 awaiting_sync = CASE WHEN superseded_offer IS NULL THEN 0 ELSE 1 END \
                 WHERE {GUARD}"
            )),
            delete_guarded: sql(&format!("DELETE FROM sponsorships WHERE {GUARD}")),
            forget_guarded: sql(&format!(
                "UPDATE sponsorships SET superseded_offer = NULL WHERE {GUARD}"
            )),
            select_guarded: sql(&format!("SELECT {rows} FROM sponsorships WHERE {GUARD}")),
            select_state: sql(&format!(
                "SELECT {} FROM sync_state WHERE organization_id = ?",
                STATE_COLUMNS[1..].join(", ")
            )),
            upsert_state: sql(&backend.upsert("sync_state", &STATE_COLUMNS)),
            upsert_next_due: sql(&backend.upsert("sync_state", &["organization_id", "next_due"])),
            lock_select: sql(
                "SELECT holder, token, acquired_at, expires_at FROM sync_locks \
                 WHERE organization_id = ? FOR UPDATE",
            ),
            lock_read: sql(
                "SELECT holder, token, acquired_at, expires_at FROM sync_locks \
                 WHERE organization_id = ?",
            ),
            lock_update: sql(
                "UPDATE sync_locks SET holder = ?, token = ?, acquired_at = ?, expires_at = ? \
                 WHERE organization_id = ?",
            ),
            lock_insert: sql(
                "INSERT INTO sync_locks (organization_id, holder, token, acquired_at, expires_at) \
                 VALUES (?, ?, ?, ?, ?)",
            ),
            lock_holder: sql(
                "SELECT holder, acquired_at FROM sync_locks WHERE organization_id = ?",
            ),
            renew: sql(
                "UPDATE sync_locks SET expires_at = ? WHERE organization_id = ? AND token = ?",
            ),
            renew_check: sql(
                "SELECT COUNT(*) FROM sync_locks WHERE organization_id = ? AND token = ?",
            ),
            unlock: sql("DELETE FROM sync_locks WHERE organization_id = ? AND token = ?"),
            schema_version: sql("SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE"),
            select_connection: sql(
                "SELECT billing_sync_key, enabled, updated_at FROM billing_sync_connections \
                 WHERE organization_id = ?",
            ),
            update_connection_key: sql(
                "UPDATE billing_sync_connections SET billing_sync_key = ?, updated_at = ? \
                 WHERE organization_id = ?",
            ),
            insert_connection: sql("INSERT INTO billing_sync_connections \
                 (organization_id, billing_sync_key, enabled, updated_at) VALUES (?, ?, 1, ?)"),
            enable_connection: sql(
                "UPDATE billing_sync_connections SET enabled = ?, updated_at = ? \
                 WHERE organization_id = ?",
            ),
            delete_connection: sql(
                "DELETE FROM billing_sync_connections WHERE organization_id = ?",
            ),
            select_all_rows: sql(&format!(
                "SELECT {rows} FROM sponsorships \
                 ORDER BY sponsoring_organization_id, sponsoring_member_id, id"
            )),
            select_organizations: sql(
                "SELECT id, name, plan_type, enabled, use_admin_sponsored_families, \
                 cloud_organization_id, license_json FROM organizations ORDER BY name_key, id",
            ),
            insert_organization: sql(
                "INSERT INTO organizations (id, name, name_key, plan_type, enabled, \
                 use_admin_sponsored_families, cloud_organization_id, license_json, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)",
            ),
            save_license: sql(
                "UPDATE organizations SET cloud_organization_id = ?, license_json = ?, \
                 plan_type = ?, enabled = ?, use_admin_sponsored_families = ? WHERE id = ?",
            ),
            select_members: sql(
                "SELECT id, organization_id, email, status, role FROM members \
                 WHERE organization_id = ? ORDER BY email_key",
            ),
            insert_member: sql(
                "INSERT INTO members (id, organization_id, email, email_key, status, role) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            ),
            set_member_status: sql("UPDATE members SET status = ? WHERE id = ?"),
            delete_member: sql("DELETE FROM members WHERE id = ?"),
            status_counts: sql(
                "SELECT to_delete, CASE WHEN valid_until IS NULL THEN 0 ELSE 1 END, \
                 CASE WHEN last_sync_date IS NULL THEN 0 ELSE 1 END, awaiting_sync, COUNT(*) \
                 FROM sponsorships WHERE sponsoring_organization_id = ? GROUP BY 1, 2, 3, 4",
            ),
        }
    }
}
