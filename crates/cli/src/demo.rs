//! `demo`: the whole setup, offline, in a temporary directory, against the reference cloud
//! started in-process on 127.0.0.1. Narrated like the four steps of the setup guide; every step
//! shows the `sponsorctl` command an operator would type and runs the same code.
//!
//! `cloud serve` lives here too: it is the same emulator, as a process.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use cloud_emulator::client::EmulatorClient;
use cloud_emulator::{EmulatorOptions, ScriptedRedeem, Seed};
use rand::distr::{Alphanumeric, SampleString};
use secrecy::ExposeSecret;
use sponsorship_core::ids::{CloudOrganizationId, InstallationId};
use sponsorship_core::org::BillingSyncConfig;
use sponsorship_core::secret::BillingSyncKey;

use crate::cli::{RoleArg, StatusArg};
use crate::envcmd::{RESTART_HINT, enable_cloud};
use crate::license::{import, license_sync};
use crate::output::{Out, exit};
use crate::remote::{client_from_env, cloud_error, open_env};
use crate::synccmd::{RunControl, print_report, sync_one, targets};
use sponsorship_core::license::LicenseVerifier;

const ORG: &str = "Acme Corp";
const OWNER: (&str, &str) = ("owner@acme.example", "owner-demo-password");
const DANA: (&str, &str) = ("dana@home.example", "dana-demo-password");

fn step(n: &str, title: &str) {
    println!();
    println!("== {n} {title}");
}

fn cmd(text: &str) {
    println!("$ sponsorctl {text}");
}

fn note(text: &str) {
    println!("   {text}");
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// `demo`
#[allow(clippy::too_many_lines)] // one narrated script, read top to bottom
pub(crate) async fn demo(keep: bool) -> anyhow::Result<u8> {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("sponsorctl-demo-")
        .tempdir()?;
    let out = Out {
        json: false,
        yes: true,
    };
    let env_path = dir.path().join("bwdata/env/global.override.env");
    let state = dir.path().join("sponsorctl.db");
    std::fs::create_dir_all(env_path.parent().unwrap_or(dir.path()))?;

    println!("sponsorctl demo: Families-for-Enterprise sponsorships from setup to status,");
    println!("against a reference cloud on 127.0.0.1 (nothing leaves this machine).");
    println!(
        "A Families sponsorship lets each member of a company's Enterprise organization give one free"
    );
    println!(
        "Families organization (up to six people) in Bitwarden's cloud to a person of their choice;"
    );
    println!(
        "billing sync is how a self-hosted server tells the cloud who offered one to whom, in batches."
    );
    println!("Working directory: {}", dir.path().display());

    // The cloud side: an installation, the company's Enterprise organization and its owner,
    // and a family that already has a Families organization.
    let installation_id = InstallationId::new_random();
    let installation_key = Alphanumeric.sample_string(&mut rand::rng(), 20);
    let acme = CloudOrganizationId::new_random();
    let dana_family = CloudOrganizationId::new_random();
    let seed = serde_json::json!({
        "region": "US",
        "installations": [{"id": installation_id, "key": installation_key, "region": "US"}],
        "organizations": [
            {"id": acme, "name": ORG, "planType": 20},
            {"id": dana_family, "name": "Dana's Family", "planType": 22},
        ],
        "users": [
            {"email": OWNER.0, "password": OWNER.1, "ownerOf": [acme]},
            {"email": DANA.0, "password": DANA.1, "ownerOf": [dana_family]},
        ],
    });
    let seed = Seed::from_json(&seed.to_string())?;
    let cloud = cloud_emulator::start(seed, EmulatorOptions::default()).await?;
    let base = cloud.base_url().clone();
    let base_text = base.as_str().trim_end_matches('/').to_owned();
    println!("Reference cloud listening on {base_text} (identity and API).");

    step(
        "Step 1.",
        "Enable cloud communication (bwdata/env/global.override.env)",
    );
    note("Bitwarden Setup wrote the installation id and key from bitwarden.com/host:");
    write_private(
        &env_path,
        &format!(
            "globalSettings__baseServiceUri__vault=https://vault.acme.example\n\
             globalSettings__installation__id={installation_id}\n\
             globalSettings__installation__key={installation_key}\n\
             globalSettings__mail__smtp__host=REPLACE\n"
        ),
    )?;
    cmd(&format!(
        "env enable-cloud --region custom --identity-uri {base_text} --api-uri {base_text}"
    ));
    note("(an operator types --region us, eu or gov; the demo's cloud is the local one)");
    let region = crate::envcmd::region_of(&crate::cli::EnableCloudArgs {
        region: crate::cli::RegionArg::Custom,
        identity_uri: Some(base_text.clone()),
        api_uri: Some(base_text.clone()),
        dry_run: false,
    })?;
    let mut env = open_env(&env_path)?;
    let diff = enable_cloud(&mut env, &region, false)?;
    print!("{diff}");
    println!("{RESTART_HINT}");
    cmd("env check");
    crate::envcmd::check(&env_path, out)?;

    step(
        "Step 2.",
        "Create the organization and paste the billing sync token",
    );
    cmd(&format!(
        "org add --name \"{ORG}\" --plan enterprise-annually"
    ));
    let db = crate::open_state(&state)?;
    crate::org::org_add(&db, out, ORG, "enterprise-annually", None)?;
    let members = [
        "alice@acme.example",
        "bob@acme.example",
        "carol@acme.example",
        "dave@acme.example",
        "frank@acme.example",
    ];
    for m in members {
        cmd(&format!("member add --org \"{ORG}\" --email {m}"));
        crate::member::member_add(&db, out, ORG, m, StatusArg::Confirmed, RoleArg::User)?;
    }
    cmd(&format!(
        "member add --org \"{ORG}\" --email erin@acme.example --status invited"
    ));
    crate::member::member_add(
        &db,
        out,
        ORG,
        "erin@acme.example",
        StatusArg::Invited,
        RoleArg::User,
    )?;

    note("The license file (downloaded from the cloud) gives the organization its cloud id:");
    let license = cloud
        .license(acme, Some(installation_id))
        .context("the reference cloud has no license for the organization")?;
    let license_path = dir.path().join("acme-license.json");
    write_private(&license_path, &serde_json::to_string_pretty(&license)?)?;
    note(
        "It is signed; this demo trusts the reference cloud's test key next to Bitwarden's (--trust-license-key):",
    );
    let verifier = LicenseVerifier::default().trusting(cloud_emulator::license_trust_anchor());
    cmd(&format!("license import --org \"{ORG}\" acme-license.json"));
    import(&db, &env_path, &verifier, out, ORG, &license_path)?;

    note("In the cloud, the owner opens Billing > Subscription and generates the token:");
    let owner = EmulatorClient::new(base.clone())?;
    let session = owner.login(OWNER.0, OWNER.1).await?;
    let generated = owner.billing_sync_key(&session, acme, OWNER.1).await?;
    let key = BillingSyncKey::parse(generated.api_key.expose_secret())?;
    note(&format!(
        "token generated ({} characters, ending {}); pasted into a file only the operator can read",
        BillingSyncKey::LENGTH,
        key.last_four()
    ));
    let token_path = dir.path().join("billing-sync-token.txt");
    write_private(&token_path, &format!("{}\n", key.expose_secret()))?;
    cmd(&format!(
        "billing-sync set-token --org \"{ORG}\" --verify --token-file billing-sync-token.txt"
    ));
    let (client, _) = client_from_env(&env_path)?;
    client
        .verify_billing_sync_key(&BillingSyncConfig {
            billing_sync_key: key.clone(),
            cloud_organization_id: acme,
            last_license_sync: None,
        })
        .await
        .map_err(cloud_error)?;
    note("verified: the cloud accepts the token for this organization");
    crate::billing_sync::set_token(&db, out, ORG, Some(&token_path), None)?;
    cmd(&format!("license sync --org \"{ORG}\""));
    license_sync(&db, &env_path, &verifier, out, ORG).await?;

    step("Step 3.", "Members offer Families sponsorships");
    let offers = [
        ("alice@acme.example", "alice@home.example"),
        ("bob@acme.example", DANA.0),
        ("carol@acme.example", "carol@home.example"),
        ("dave@acme.example", "dave@home.example"),
        ("frank@acme.example", "frank@home.example"),
    ];
    for (member, to) in offers {
        cmd(&format!(
            "sponsorship offer --org \"{ORG}\" --member {member} --email {to}"
        ));
        crate::sponsorship::offer(&db, out, ORG, member, to, None)?;
    }
    note("erin was only invited, never confirmed: the next offer is refused on purpose, as the");
    note("server refuses it (only confirmed members may sponsor):");
    cmd(&format!(
        "sponsorship offer --org \"{ORG}\" --member erin@acme.example --email erin@home.example"
    ));
    match crate::sponsorship::offer(
        &db,
        out,
        ORG,
        "erin@acme.example",
        "erin@home.example",
        None,
    ) {
        Ok(()) => {}
        Err(e) => println!("error: {e} (erin has not been confirmed yet)"),
    }

    step("Step 4.", "Sync with the cloud");
    note("Before the first sync, the Billing page says \"Last sync: Never\":");
    cmd(&format!("status --org \"{ORG}\""));
    crate::status::status(&db, out, Some(ORG), false)?;
    let target = targets(&db, Some(ORG))?
        .pop()
        .context("no target")?
        .map_err(anyhow::Error::new)?;
    cmd("sync");
    let report = sync_one(&db, &client, &target, RunControl::quiet())
        .await
        .map_err(cloud_error)?;
    print_report(ORG, &report);
    note("sent: the sponsorships sent to the cloud; updated: the rows its answer confirmed here");
    note(
        "(each gets its Last sync date); removed: rows the cloud says are gone; skipped: items it",
    );
    note("refused, each with its reason.");

    note("The cloud e-mailed each recipient an offer link (its outbox):");
    let mut outbox = cloud.outbox();
    outbox.sort_by(|a, b| a.to.cmp(&b.to));
    for mail in &outbox {
        note(&format!("to {:<22} \"{}\"", mail.to, mail.subject));
    }
    let link_for = |to: &str| {
        outbox
            .iter()
            .find(|m| m.to.eq_ignore_ascii_case(to))
            .map(|m| m.link.clone())
            .with_context(|| format!("no offer e-mail to {to}"))
    };

    note(
        "alice@home.example follows the link, creates an account and a NEW Families organization:",
    );
    let redeem: ScriptedRedeem = serde_json::from_value(serde_json::json!({
        "link": link_for("alice@home.example")?,
        "email": "alice@home.example",
        "password": "alice-demo-password",
        "createUser": true,
        "newOrganizationName": "Alice's Family",
    }))?;
    let done = owner.redeem(&redeem).await?;
    note(&format!(
        "redeemed on \"{}\", sponsored by {}",
        done.organization_name, done.sponsoring_organization_name
    ));
    note(
        "dana@home.example signs in and applies bob's offer to her EXISTING Families organization:",
    );
    let redeem: ScriptedRedeem = serde_json::from_value(serde_json::json!({
        "link": link_for(DANA.0)?,
        "email": DANA.0,
        "password": DANA.1,
        "organizationId": dana_family,
    }))?;
    let done = owner.redeem(&redeem).await?;
    note(&format!(
        "redeemed on \"{}\", sponsored by {}",
        done.organization_name, done.sponsoring_organization_name
    ));

    cmd(&format!(
        "sponsorship revoke --org \"{ORG}\" --member dave@acme.example"
    ));
    crate::sponsorship::revoke(&db, out, ORG, "dave@acme.example")?;

    cmd("sync");
    let report = sync_one(&db, &client, &target, RunControl::quiet())
        .await
        .map_err(cloud_error)?;
    print_report(ORG, &report);

    cmd(&format!(
        "sponsorship revoke --org \"{ORG}\" --member carol@acme.example"
    ));
    crate::sponsorship::revoke(&db, out, ORG, "carol@acme.example")?;

    step(
        "Status.",
        "What the organization's Sponsored Families page shows",
    );
    cmd(&format!("sponsorship list --org \"{ORG}\""));
    let (rows, emails) = db.read(|tx| {
        let org = tx
            .organizations()?
            .into_iter()
            .find(|o| o.org.name == ORG)
            .map(|o| o.org.id);
        let mut emails = HashMap::new();
        if let Some(org) = org {
            for m in tx.members(org)? {
                emails.insert(m.id, m.email);
            }
        }
        Ok::<_, anyhow::Error>((tx.sponsorships(org)?, emails))
    })?;
    crate::sponsorship::print_rows(out, &rows, &emails)?;
    cmd("status");
    crate::status::status(&db, out, None, false)?;

    drop(db);
    cloud.stop().await?;
    println!();
    println!(
        "Done in {:.2} s. alice and bob's sponsorships are Active, frank's offer is Sent,",
        started.elapsed().as_secs_f64()
    );
    println!("dave's offer was withdrawn, carol's removal reaches the cloud at the next sync.");
    if keep {
        let kept: PathBuf = dir.keep();
        println!("Kept {} (state file and env file).", kept.display());
        println!(
            "Try: SPONSORCTL_STATE={0}/sponsorctl.db SPONSORCTL_ENV_FILE={0}/bwdata/env/global.override.env sponsorctl status",
            kept.display()
        );
    }
    Ok(exit::OK)
}
