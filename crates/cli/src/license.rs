//! `license import|sync`: the organization's license, checked before it is stored; "Sync
//! license" fetches it from the cloud.

use std::path::Path;

use crate::state::State;
use chrono::Utc;
use serde_json::json;
use sponsorship_core::license::{
    LicenseError, LicenseVerifier, OrganizationLicense, TrustAnchor, VerifiedLicense,
};
use sponsorship_core::plan::PlanType;
use sponsorship_core::schedule::{ErrorCategory, display_time};

use crate::input::{LICENSE_LIMIT, read_text};
use crate::output::{CliError, Out, exit, print_json};
use crate::remote::{UNSUPPORTED_VERSION, client_from_env, cloud_error, open_env};
use crate::resolve::resolve_org;
use crate::synccmd::target_of;

/// The verifier: Bitwarden's licensing key, plus the key of `--trust-license-key` when given.
pub(crate) fn verifier(trust_key: Option<&Path>) -> anyhow::Result<LicenseVerifier> {
    let verifier = LicenseVerifier::default();
    let Some(path) = trust_key else {
        return Ok(verifier);
    };
    let pem = read_text(path, LICENSE_LIMIT, "the license trust key")?;
    let anchor = TrustAnchor::from_public_key_pem(&path.display().to_string(), &pem)
        .map_err(|e| CliError::invalid(format!("{e}; give an SPKI PEM public key")))?;
    Ok(verifier.trusting(anchor))
}

/// Refuses a verified license another local organization uses, and returns the license with
/// its verified values.
fn apply_verified(
    tx: &dyn crate::state::Tx,
    org: &OrgRecordRef<'_>,
    mut license: OrganizationLicense,
    checked: &VerifiedLicense,
) -> anyhow::Result<OrganizationLicense> {
    for other in tx.organizations()? {
        if other.org.id != org.id
            && other.cloud_organization_id == Some(checked.cloud_organization_id)
        {
            return Err(CliError::refused(format!(
                "License is already in use by another organization vault. ({} uses the license of cloud organization {}; one cloud organization per local organization)",
                other.org.name, checked.cloud_organization_id
            ))
            .into());
        }
    }
    checked.apply_to(&mut license);
    Ok(license)
}

/// The organization a license is applied to.
struct OrgRecordRef<'a> {
    id: sponsorship_core::ids::OrganizationId,
    name: &'a str,
    plan: PlanType,
}

/// Says a plan change out loud (a license can change the organization's plan).
fn plan_change(org: &OrgRecordRef<'_>, new: PlanType) -> Option<String> {
    (org.plan != new).then(|| {
        format!(
            "The license changes the plan of {} from {} to {}.",
            org.name,
            org.plan.display_name(),
            new.display_name()
        )
    })
}

fn license_refused(e: &LicenseError) -> anyhow::Error {
    match e {
        LicenseError::UnsupportedVersion { .. } => CliError::of(
            ErrorCategory::UnsupportedVersion,
            format!("{UNSUPPORTED_VERSION} ({e})"),
        )
        .into(),
        LicenseError::Malformed(_) => CliError::invalid(e.to_string()).into(),
        _ => CliError::refused(e.to_string()).into(),
    }
}

/// `license import`: checks the file, then stores it; the organization takes its cloud id and
/// plan from it. Nothing changes when the check fails.
pub(crate) fn import(
    db: &State,
    env_file: &Path,
    verifier: &LicenseVerifier,
    out: Out,
    org: &str,
    file: &Path,
) -> anyhow::Result<u8> {
    let text = read_text(file, LICENSE_LIMIT, "the license file")?;
    let license = OrganizationLicense::parse(&text).map_err(|e| license_refused(&e))?;
    // The installation id, when the env file has one, must match the license's.
    let installation = open_env(env_file)
        .ok()
        .and_then(|env| env.settings().installation_id);
    let checked = verifier
        .verify(&license, installation, Utc::now())
        .map_err(|e| license_refused(&e))?;
    let (rec, license, change) = db.write(|tx| {
        let rec = resolve_org(tx, org)?;
        let target = OrgRecordRef {
            id: rec.org.id,
            name: &rec.org.name,
            plan: rec.org.plan_type,
        };
        let license = apply_verified(tx, &target, license, &checked)?;
        let change = plan_change(&target, checked.plan_type);
        let stored = serde_json::to_string(&license)?;
        tx.save_license(rec.org.id, &license, &stored)?;
        Ok::<_, anyhow::Error>((rec, license, change))
    })?;
    if out.json {
        print_json(&json!({
            "organizationId": rec.org.id,
            "cloudOrganizationId": license.id,
            "version": license.version,
            "plan": license.plan_type.kebab_name(),
            "planChange": change,
        }))?;
    } else {
        println!(
            "Imported the license of {} (version {}, plan {}): cloud organization id {}.",
            rec.org.name,
            license.version,
            license.plan_type.kebab_name(),
            license.id
        );
        if let Some(change) = &change {
            println!("{change}");
        }
        if rec.cloud_organization_id.is_some_and(|c| c != license.id) {
            println!(
                "Note: the cloud organization id changed from {}: a billing sync token of the old organization will be refused.",
                rec.cloud_organization_id
                    .map(|c| c.to_string())
                    .unwrap_or_default()
            );
        }
    }
    Ok(exit::OK)
}

/// `license sync`: the "Sync license" button.
pub(crate) async fn license_sync(
    db: &State,
    env_file: &Path,
    verifier: &LicenseVerifier,
    out: Out,
    org: &str,
) -> anyhow::Result<u8> {
    let rec = db.read(|tx| resolve_org(tx, org))?;
    let Some(current) = rec.license.clone() else {
        return Err(CliError::of(
            ErrorCategory::Config,
            format!(
                "{} has no license yet: import one first (`sponsorctl license import --org {} FILE`)",
                rec.org.name,
                crate::output::shell_word(&rec.org.name)
            ),
        )
        .into());
    };
    let target = match target_of(db, rec)? {
        Ok(t) => t,
        Err(e) => return Err(e.into()),
    };
    let (client, _) = client_from_env(env_file)?;
    let (license, checked) = client
        .fetch_license(&target.billing, &current.license_key, verifier)
        .await
        .map_err(cloud_error)?;
    let now = Utc::now();
    let (license, change) = db.write(|tx| {
        let org = OrgRecordRef {
            id: target.rec.org.id,
            name: &target.rec.org.name,
            plan: target.rec.org.plan_type,
        };
        let license = apply_verified(tx, &org, license, &checked)?;
        let change = plan_change(&org, checked.plan_type);
        let text = serde_json::to_string(&license)?;
        tx.save_license(target.rec.org.id, &license, &text)?;
        let mut state = tx.sync_state(target.rec.org.id)?;
        state.last_license_sync = Some(now);
        tx.save_sync_state(target.rec.org.id, &state)?;
        Ok::<_, anyhow::Error>((license, change))
    })?;
    if out.json {
        print_json(&json!({
            "organizationId": target.rec.org.id,
            "version": license.version,
            "lastLicenseSync": now,
            "planChange": change,
        }))?;
    } else {
        println!(
            "Synced the license of {} (version {}); last license sync {}.",
            target.rec.org.name,
            license.version,
            display_time(Some(now))
        );
        if let Some(change) = &change {
            println!("{change}");
        }
    }
    Ok(exit::OK)
}
