//! Sponsorship rows: how a [`Sponsorship`] is stored, loaded in member order, written by the
//! lifecycle rules (offer, revoke, member removal), and counted per UI status.

use rusqlite::{Connection, Row, params};
use sponsorship_core::ids::OrganizationId;
use sponsorship_core::plan::PlanSponsorshipType;
use sponsorship_core::sponsorship::{
    RowChange, Sponsorship, StatusCounts, SupersededOffer, UiStatus,
};

use crate::codec::{IdText, TsText, conv, id_from, opt_ts, required_text_at, text_at, ts, ts_from};
use crate::{Error, Tx};

pub(crate) const ROW_COLUMNS: &str = "id, sponsoring_organization_id, sponsoring_member_id, friendly_name, \
    offered_to_email, plan_sponsorship_type, last_sync_date, valid_until, to_delete, \
    is_admin_initiated, notes, revision, awaiting_sync, superseded_offer, revision_date";

/// Reads one row; ids and timestamps are parsed from the column bytes (no `String` each), and
/// timestamps in the stored form skip chrono's general RFC 3339 parser (loading 100,000 rows
/// before a sync is on the operator's clock).
pub(crate) fn sponsorship_from_row(r: &Row<'_>) -> rusqlite::Result<Sponsorship> {
    let pst: Option<u8> = r.get(5)?;
    let revision: i64 = r.get(11)?;
    Ok(Sponsorship {
        id: conv(id_from(required_text_at(r, 0)?))?,
        sponsoring_organization_id: conv(text_at(r, 1)?.map(id_from).transpose())?,
        sponsoring_member_id: conv(id_from(required_text_at(r, 2)?))?,
        friendly_name: r.get(3)?,
        offered_to_email: r.get(4)?,
        plan_sponsorship_type: conv(
            pst.map(|n| {
                // (`ok_or_else`: no message is formatted for the rows that parse)
                PlanSponsorshipType::from_number(n)
                    .ok_or_else(|| format!("unknown sponsorship type {n}"))
            })
            .transpose(),
        )?,
        last_sync_date: conv(text_at(r, 6)?.map(ts_from).transpose())?,
        valid_until: conv(text_at(r, 7)?.map(ts_from).transpose())?,
        to_delete: r.get(8)?,
        is_admin_initiated: r.get(9)?,
        notes: r.get(10)?,
        revision: conv(u64::try_from(revision).map_err(|e| e.to_string()))?,
        awaiting_sync: r.get(12)?,
        superseded_offer: conv(
            text_at(r, 13)?
                .map(|s| {
                    serde_json::from_slice::<Box<SupersededOffer>>(s).map_err(|e| e.to_string())
                })
                .transpose(),
        )?,
        revision_date: conv(ts_from(required_text_at(r, 14)?))?,
    })
}

pub(crate) fn upsert_sponsorship(tx: &Connection, row: &Sponsorship) -> rusqlite::Result<()> {
    let superseded = row
        .superseded_offer
        .as_ref()
        .map(|s| serde_json::to_string(s).unwrap_or_default());
    let revision = i64::try_from(row.revision).unwrap_or(i64::MAX);
    tx.prepare_cached(&format!(
        "INSERT OR REPLACE INTO sponsorships ({ROW_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
    ))?
    .execute(params![
        row.id.to_string(),
        row.sponsoring_organization_id.map(|o| o.to_string()),
        row.sponsoring_member_id.to_string(),
        row.friendly_name,
        row.offered_to_email,
        row.plan_sponsorship_type.map(PlanSponsorshipType::number),
        opt_ts(row.last_sync_date),
        opt_ts(row.valid_until),
        row.to_delete,
        row.is_admin_initiated,
        row.notes,
        revision,
        row.awaiting_sync,
        superseded,
        ts(row.revision_date),
    ])?;
    Ok(())
}

/// Writes the fields a sync may change (see `sync::apply_change`) in place: an
/// `UPDATE` keeps the row where it is, so only the changed pages are written. The row is
/// addressed by its primary key (member, id).
pub(crate) fn update_synced_fields(tx: &Connection, row: &Sponsorship) -> rusqlite::Result<()> {
    let superseded = row
        .superseded_offer
        .as_ref()
        .map(|s| serde_json::to_string(s).unwrap_or_default());
    let revision = i64::try_from(row.revision).unwrap_or(i64::MAX);
    tx.prepare_cached(
        "UPDATE sponsorships SET friendly_name = ?3, offered_to_email = ?4, last_sync_date = ?5, \
         valid_until = ?6, to_delete = ?7, revision = ?8, awaiting_sync = ?9, superseded_offer = ?10 \
         WHERE sponsoring_member_id = ?1 AND id = ?2",
    )?
    .execute(params![
        IdText::new(row.sponsoring_member_id.as_uuid()),
        IdText::new(row.id.as_uuid()),
        row.friendly_name,
        row.offered_to_email,
        row.last_sync_date.map(TsText::new),
        row.valid_until.map(TsText::new),
        row.to_delete,
        revision,
        row.awaiting_sync,
        superseded,
    ])?;
    Ok(())
}

impl Tx<'_> {
    /// Counts the organization's rows per UI status with one grouped query (no row is loaded,
    /// so `status` stays fast on large organizations).
    pub fn status_counts(&self, org: OrganizationId) -> Result<StatusCounts, Error> {
        self.run(|tx| {
            let mut st = tx.prepare_cached(
            // Answered from the covering index `sponsorships_status` (migration 3).
            "SELECT to_delete, valid_until IS NOT NULL, last_sync_date IS NOT NULL, awaiting_sync, \
             COUNT(*) FROM sponsorships WHERE sponsoring_organization_id = ?1 GROUP BY 1, 2, 3, 4",
        )?;
            let groups = st.query_map([org.to_string()], |r| {
                Ok((
                    r.get::<_, bool>(0)?,
                    r.get::<_, bool>(1)?,
                    r.get::<_, bool>(2)?,
                    r.get::<_, bool>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })?;
            let mut counts = StatusCounts::default();
            for group in groups {
                let (to_delete, redeemed, synced, awaiting, n) = group?;
                counts.add(
                    UiStatus::from_flags(to_delete, redeemed, synced),
                    awaiting,
                    usize::try_from(n).unwrap_or(0),
                );
            }
            Ok(counts)
        })
    }
    /// Sponsorship rows of an organization (all when `None`), ordered by organization and member.
    pub fn sponsorships(&self, org: Option<OrganizationId>) -> Result<Vec<Sponsorship>, Error> {
        self.run(|tx| {
            if let Some(org) = org {
                // One pass over the table in primary-key order (member, id), which is the order
                // asked for: the unary `+` keeps SQLite from going through `sponsorships_status`
                // instead, which costs a key lookup per row and a sort. Rows of other organizations
                // are skipped on the way (a server has few organizations).
                let mut st = tx.prepare(&format!(
                    "SELECT {ROW_COLUMNS} FROM sponsorships WHERE +sponsoring_organization_id = ?1 \
                 ORDER BY sponsoring_member_id, id"
                ))?;
                st.query_map([IdText::new(org.as_uuid())], sponsorship_from_row)?
                    .collect()
            } else {
                let mut st = tx.prepare(&format!(
                    "SELECT {ROW_COLUMNS} FROM sponsorships \
                 ORDER BY sponsoring_organization_id, sponsoring_member_id, id"
                ))?;
                st.query_map([], sponsorship_from_row)?.collect()
            }
        })
    }

    /// Writes lifecycle changes (offer, revoke, member removal).
    pub fn write_changes(&self, changes: &[RowChange]) -> Result<(), Error> {
        self.run(|tx| {
            for change in changes {
                match change {
                    RowChange::Upsert(row) => upsert_sponsorship(tx, row)?,
                    RowChange::Delete(id) => {
                        tx.execute("DELETE FROM sponsorships WHERE id = ?1", [id.to_string()])?;
                    }
                }
            }
            Ok(())
        })
    }
}
