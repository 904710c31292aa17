//! The standalone host: organizations, members and licenses, for a server that has no tables
//! of its own for them (`sponsorctl`). See the [crate docs](crate#two-parts).

use chrono::{DateTime, Utc};
use rusqlite::{Row, params};
use sponsorship_core::ids::{MemberId, OrganizationId};
use sponsorship_core::license::OrganizationLicense;
use sponsorship_core::org::{Member, MemberStatus, Organization, UnknownMemberValue};
use sponsorship_core::plan::PlanType;

use crate::codec::{conv, parse_id, ts};
use crate::{Error, Tx};

pub use sponsorship_core::org::OrgRecord;

pub(crate) const ORG_COLUMNS: &str = "id, name, plan_type, enabled, use_admin_sponsored_families, cloud_organization_id, license_json";

pub(crate) fn org_from_row(r: &Row<'_>) -> rusqlite::Result<OrgRecord> {
    let id: String = r.get(0)?;
    let plan: u8 = r.get(2)?;
    let cloud: Option<String> = r.get(5)?;
    let license: Option<String> = r.get(6)?;
    Ok(OrgRecord {
        org: Organization {
            id: conv(parse_id(&id))?,
            name: r.get(1)?,
            plan_type: conv(PlanType::from_number(plan).ok_or(format!("unknown plan {plan}")))?,
            enabled: r.get(3)?,
            use_admin_sponsored_families: r.get(4)?,
        },
        cloud_organization_id: conv(cloud.as_deref().map(parse_id).transpose())?,
        license: conv(
            license
                .as_deref()
                .map(|l| OrganizationLicense::parse(l).map_err(|e| e.to_string()))
                .transpose(),
        )?,
    })
}

pub(crate) fn member_from_row(r: &Row<'_>) -> rusqlite::Result<Member> {
    let id: String = r.get(0)?;
    let org: String = r.get(1)?;
    let status: String = r.get(3)?;
    let role: String = r.get(4)?;
    Ok(Member {
        id: conv(parse_id(&id))?,
        organization_id: conv(parse_id(&org))?,
        email: r.get(2)?,
        status: conv(
            status
                .parse()
                .map_err(|e: UnknownMemberValue| e.to_string()),
        )?,
        role: conv(role.parse().map_err(|e: UnknownMemberValue| e.to_string()))?,
    })
}

impl Tx<'_> {
    /// All organizations, by name.
    pub fn organizations(&self) -> Result<Vec<OrgRecord>, Error> {
        self.run(|tx| {
            let mut st = tx.prepare(&format!(
                "SELECT {ORG_COLUMNS} FROM organizations ORDER BY name COLLATE NOCASE, id"
            ))?;
            st.query_map([], org_from_row)?.collect()
        })
    }

    /// Inserts an organization.
    pub fn insert_organization(&self, rec: &OrgRecord, now: DateTime<Utc>) -> Result<(), Error> {
        self.run(|tx| {
        tx.execute(
            "INSERT INTO organizations (id, name, plan_type, enabled, use_admin_sponsored_families, \
             cloud_organization_id, license_json, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7)",
            params![
                rec.org.id.to_string(),
                rec.org.name,
                rec.org.plan_type.number(),
                rec.org.enabled,
                rec.org.use_admin_sponsored_families,
                rec.cloud_organization_id.map(|c| c.to_string()),
                ts(now),
            ],
        )?;
        Ok(())
        })
    }

    /// Stores an imported license and what it says about the organization.
    pub fn save_license(
        &self,
        org: OrganizationId,
        license: &OrganizationLicense,
        license_json: &str,
    ) -> Result<(), Error> {
        self.run(|tx| {
        tx.execute(
            "UPDATE organizations SET cloud_organization_id = ?2, license_json = ?3, plan_type = ?4, \
             enabled = ?5, use_admin_sponsored_families = ?6 WHERE id = ?1",
            params![
                org.to_string(),
                license.id.to_string(),
                license_json,
                license.plan_type.number(),
                license.enabled,
                license.use_admin_sponsored_families,
            ],
        )?;
        Ok(())
        })
    }

    /// Members of an organization, by e-mail.
    pub fn members(&self, org: OrganizationId) -> Result<Vec<Member>, Error> {
        self.run(|tx| {
            let mut st = tx.prepare(
                "SELECT id, organization_id, email, status, role FROM members \
             WHERE organization_id = ?1 ORDER BY email COLLATE NOCASE",
            )?;
            st.query_map([org.to_string()], member_from_row)?.collect()
        })
    }

    /// Inserts a member.
    pub fn insert_member(&self, m: &Member) -> Result<(), Error> {
        self.run(|tx| {
        tx.execute(
            "INSERT INTO members (id, organization_id, email, status, role) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                m.id.to_string(),
                m.organization_id.to_string(),
                m.email,
                m.status.name(),
                m.role.name()
            ],
        )?;
        Ok(())
        })
    }

    /// Changes a member's status (revoke, restore, confirm); `false` when there is no such
    /// member.
    pub fn set_member_status(&self, id: MemberId, status: MemberStatus) -> Result<bool, Error> {
        self.run(|tx| {
            let n = tx.execute(
                "UPDATE members SET status = ?2 WHERE id = ?1",
                params![id.to_string(), status.name()],
            )?;
            Ok(n > 0)
        })
    }

    /// Deletes a member (their sponsorship rows stay, marked for deletion by the caller).
    pub fn delete_member(&self, id: MemberId) -> Result<(), Error> {
        self.run(|tx| {
            tx.execute("DELETE FROM members WHERE id = ?1", [id.to_string()])?;
            Ok(())
        })
    }
}
