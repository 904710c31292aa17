//! The standalone host's tables (organizations with their license, members) for a server that
//! has none of its own (`sponsorctl`), and what its pages count.

use chrono::{DateTime, Utc};
use sponsorship_core::ids::{MemberId, OrganizationId};
use sponsorship_core::license::OrganizationLicense;
use sponsorship_core::org::{Member, MemberStatus, OrgRecord, Organization};
use sponsorship_core::plan::PlanType;
use sponsorship_core::sponsorship::{StatusCounts, UiStatus};
use sqlx_core::any::{AnyConnection, AnyRow};
use sqlx_core::row::Row as _;

use crate::rows::{micros, uuid_of};
use crate::{Error, SqlxStore};

fn org_from(store: &SqlxStore, r: &AnyRow) -> Result<OrgRecord, Error> {
    let get = |e: sqlx_core::Error| store.query_error(e);
    let id: String = r.try_get(0).map_err(get)?;
    let plan: i16 = r.try_get(2).map_err(get)?;
    let cloud: Option<String> = r.try_get(5).map_err(get)?;
    let license: Option<String> = r.try_get(6).map_err(get)?;
    Ok(OrgRecord {
        org: Organization {
            id: uuid_of(store, &id)?,
            name: r.try_get(1).map_err(get)?,
            plan_type: u8::try_from(plan)
                .ok()
                .and_then(PlanType::from_number)
                .ok_or_else(|| store.corrupt(format!("unknown plan {plan}")))?,
            enabled: r.try_get::<i16, _>(3).map_err(get)? != 0,
            use_admin_sponsored_families: r.try_get::<i16, _>(4).map_err(get)? != 0,
        },
        cloud_organization_id: cloud.map(|c| uuid_of(store, &c)).transpose()?,
        license: license
            .map(|l| OrganizationLicense::parse(&l).map_err(|e| store.corrupt(e.to_string())))
            .transpose()?,
    })
}

fn member_from(store: &SqlxStore, r: &AnyRow) -> Result<Member, Error> {
    let get = |e: sqlx_core::Error| store.query_error(e);
    let id: String = r.try_get(0).map_err(get)?;
    let org: String = r.try_get(1).map_err(get)?;
    let status: String = r.try_get(3).map_err(get)?;
    let role: String = r.try_get(4).map_err(get)?;
    Ok(Member {
        id: uuid_of(store, &id)?,
        organization_id: uuid_of(store, &org)?,
        email: r.try_get(2).map_err(get)?,
        status: status
            .parse()
            .map_err(|e: sponsorship_core::org::UnknownMemberValue| store.corrupt(e.to_string()))?,
        role: role
            .parse()
            .map_err(|e: sponsorship_core::org::UnknownMemberValue| store.corrupt(e.to_string()))?,
    })
}

impl SqlxStore {
    pub(crate) async fn organizations_on(
        &self,
        c: &mut AnyConnection,
    ) -> Result<Vec<OrgRecord>, Error> {
        let rows = self
            .sql
            .select_organizations
            .query()
            .fetch_all(&mut *c)
            .await
            .map_err(|e| self.query_error(e))?;
        rows.iter().map(|r| org_from(self, r)).collect()
    }

    pub(crate) async fn insert_organization_on(
        &self,
        c: &mut AnyConnection,
        rec: &OrgRecord,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.sql
            .insert_organization
            .query()
            .bind(rec.org.id.to_string())
            .bind(rec.org.name.clone())
            .bind(rec.org.name.to_lowercase())
            .bind(i16::from(rec.org.plan_type.number()))
            .bind(i16::from(rec.org.enabled))
            .bind(i16::from(rec.org.use_admin_sponsored_families))
            .bind(rec.cloud_organization_id.map(|c| c.to_string()))
            .bind(micros(now))
            .execute(&mut *c)
            .await
            .map_err(|e| self.query_error(e))?;
        Ok(())
    }

    pub(crate) async fn save_license_on(
        &self,
        c: &mut AnyConnection,
        org: OrganizationId,
        license: &OrganizationLicense,
        license_json: &str,
    ) -> Result<(), Error> {
        self.sql
            .save_license
            .query()
            .bind(license.id.to_string())
            .bind(license_json.to_owned())
            .bind(i16::from(license.plan_type.number()))
            .bind(i16::from(license.enabled))
            .bind(i16::from(license.use_admin_sponsored_families))
            .bind(org.to_string())
            .execute(&mut *c)
            .await
            .map_err(|e| self.query_error(e))?;
        Ok(())
    }

    pub(crate) async fn members_on(
        &self,
        c: &mut AnyConnection,
        org: OrganizationId,
    ) -> Result<Vec<Member>, Error> {
        let rows = self
            .sql
            .select_members
            .query()
            .bind(org.to_string())
            .fetch_all(&mut *c)
            .await
            .map_err(|e| self.query_error(e))?;
        rows.iter().map(|r| member_from(self, r)).collect()
    }

    pub(crate) async fn insert_member_on(
        &self,
        c: &mut AnyConnection,
        m: &Member,
    ) -> Result<(), Error> {
        self.sql
            .insert_member
            .query()
            .bind(m.id.to_string())
            .bind(m.organization_id.to_string())
            .bind(m.email.clone())
            .bind(m.email.to_lowercase())
            .bind(m.status.name().to_owned())
            .bind(m.role.name().to_owned())
            .execute(&mut *c)
            .await
            .map_err(|e| self.query_error(e))?;
        Ok(())
    }

    pub(crate) async fn set_member_status_on(
        &self,
        c: &mut AnyConnection,
        id: MemberId,
        status: MemberStatus,
    ) -> Result<bool, Error> {
        let done = self
            .sql
            .set_member_status
            .query()
            .bind(status.name().to_owned())
            .bind(id.to_string())
            .execute(&mut *c)
            .await
            .map_err(|e| self.query_error(e))?;
        Ok(done.rows_affected() > 0)
    }

    pub(crate) async fn delete_member_on(
        &self,
        c: &mut AnyConnection,
        id: MemberId,
    ) -> Result<(), Error> {
        self.sql
            .delete_member
            .query()
            .bind(id.to_string())
            .execute(&mut *c)
            .await
            .map_err(|e| self.query_error(e))?;
        Ok(())
    }

    /// Counts the organization's rows per UI status with one grouped query.
    pub(crate) async fn status_counts_on(
        &self,
        c: &mut AnyConnection,
        org: OrganizationId,
    ) -> Result<StatusCounts, Error> {
        let rows = self
            .sql
            .status_counts
            .query()
            .bind(org.to_string())
            .fetch_all(&mut *c)
            .await
            .map_err(|e| self.query_error(e))?;
        let mut counts = StatusCounts::default();
        for r in &rows {
            let get = |e: sqlx_core::Error| self.query_error(e);
            let flag =
                |i: usize| -> Result<bool, Error> { Ok(r.try_get::<i16, _>(i).map_err(get)? != 0) };
            let n: i64 = r.try_get(4).map_err(get)?;
            counts.add(
                UiStatus::from_flags(flag(0)?, flag(1)?, flag(2)?),
                flag(3)?,
                usize::try_from(n).unwrap_or(0),
            );
        }
        Ok(counts)
    }
}
