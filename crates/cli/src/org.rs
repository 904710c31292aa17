//! `org add` and `org list`.

use chrono::Utc;
use serde::Serialize;
use sponsorship_core::ids::{CloudOrganizationId, OrganizationId};
use sponsorship_core::org::OrgRecord;
use sponsorship_core::org::Organization;
use sponsorship_core::plan::PlanType;

use crate::state::State;

use crate::output::{CliError, Out, bail, print_json, table};

/// `org add`
pub(crate) fn org_add(
    db: &State,
    out: Out,
    name: &str,
    plan: &str,
    cloud_org_id: Option<&str>,
) -> anyhow::Result<()> {
    let name = crate::input::name(name, "the organization name", 256)?;
    let plan_type: PlanType = plan
        .parse()
        .map_err(|e: sponsorship_core::plan::UnknownPlan| CliError::invalid(e.to_string()))?;
    let cloud = cloud_org_id
        .map(|c| {
            c.parse::<CloudOrganizationId>()
                .map_err(|e| CliError::invalid(format!("--cloud-org-id: {e}")))
        })
        .transpose()?;
    let rec = OrgRecord {
        org: Organization {
            id: OrganizationId::new_random(),
            name: name.to_owned(),
            plan_type,
            enabled: true,
            use_admin_sponsored_families: false,
        },
        cloud_organization_id: cloud,
        license: None,
    };
    db.write(|tx| {
        if tx
            .organizations()?
            .iter()
            .any(|o| o.org.name.eq_ignore_ascii_case(name))
        {
            return bail(CliError::invalid(format!(
                "an organization named {name:?} exists already: choose another name"
            )));
        }
        tx.insert_organization(&rec, Utc::now())
    })?;
    tracing::info!(org = %rec.org.id, plan = %plan_type, "organization created");
    if out.json {
        print_json(&serde_json::json!({"id": rec.org.id}))
    } else {
        println!("{}", rec.org.id);
        Ok(())
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrgJson {
    id: OrganizationId,
    name: String,
    plan: &'static str,
    plan_type: u8,
    enabled: bool,
    cloud_organization_id: Option<CloudOrganizationId>,
    billing_sync_enabled: bool,
    license_version: Option<u32>,
}

/// `org list`
pub(crate) fn org_list(db: &State, out: Out) -> anyhow::Result<()> {
    let orgs = db.read(|tx| -> anyhow::Result<_> {
        let mut v = Vec::new();
        for o in tx.organizations()? {
            let conn = tx.connection(o.org.id)?;
            v.push(OrgJson {
                id: o.org.id,
                name: o.org.name.clone(),
                plan: o.org.plan_type.kebab_name(),
                plan_type: o.org.plan_type.number(),
                enabled: o.org.enabled,
                cloud_organization_id: o.cloud_organization_id,
                billing_sync_enabled: conn.is_some_and(|c| c.enabled),
                license_version: o.license.as_ref().map(|l| l.version),
            });
        }
        Ok(v)
    })?;
    if out.json {
        return print_json(&serde_json::json!({ "organizations": orgs }));
    }
    if orgs.is_empty() {
        println!(
            "No organizations. Create one with `sponsorctl org add --name NAME --plan enterprise-annually`."
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = orgs
        .iter()
        .map(|o| {
            vec![
                o.id.to_string(),
                o.name.clone(),
                o.plan.to_owned(),
                o.cloud_organization_id
                    .map_or_else(|| "-".to_owned(), |c| c.to_string()),
                if o.billing_sync_enabled {
                    "enabled"
                } else {
                    "off"
                }
                .to_owned(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["ID", "NAME", "PLAN", "CLOUD ORGANIZATION", "BILLING SYNC"],
            &rows
        )
    );
    Ok(())
}
