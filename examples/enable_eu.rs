//! Enabling cloud communication for the EU region in an env file, the way an operator would:
//! read `global.override.env`, see what is wrong, edit it for the EU, preview the diff (the
//! installation key stays hidden), save atomically with a backup, and check the result.
//!
//! The file lives in a temporary directory; nothing outside it is touched.
//!
//! Run: `cargo run -p families-sponsorship --example enable_eu` (offline).
#![allow(clippy::print_stdout, clippy::print_stderr)] // a program: its output is the point

use std::error::Error;

use env_config::{CloudRegion, EnvFile, SaveOutcome, Severity, WriteOptions, check_file_mode};

/// An env file as Bitwarden Setup writes it for an installation created in the EU region,
/// before anyone turned cloud communication on (abridged).
const SETUP_FILE: &str = "\
# Managed by Bitwarden Setup.
globalSettings__baseServiceUri__vault=https://vault.acme.example
globalSettings__baseServiceUri__cloudRegion=EU
globalSettings__installation__id=0b8e3f2a-6c1d-4e5f-9a7b-2c3d4e5f6a7b
globalSettings__installation__key=Q3rT7yU1iO5pA9sD2fG6
globalSettings__enableCloudCommunication=false
globalSettings__mail__smtp__host=smtp.acme.example
adminSettings__admins=
";

fn print_checks(title: &str, file: &EnvFile) -> usize {
    let findings = file.checks();
    println!("{title}: {} finding(s)", findings.len());
    for finding in &findings {
        println!("  {finding}");
    }
    findings
        .iter()
        .filter(|f| f.severity != Severity::Info)
        .count()
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("global.override.env");
    std::fs::write(&path, SETUP_FILE)?;
    // Setup writes the file 0600 (it holds the installation key).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }

    let mut file = EnvFile::open(&path)?;
    println!("{}", path.display());
    let problems_before = print_checks("before", &file);

    let summary = file.enable_cloud_communication(&CloudRegion::Eu)?;
    println!(
        "\nenable cloud communication (EU): {} key(s) changed: {}; push relay: {:?}",
        summary.changed_keys.len(),
        summary.changed_keys.join(", "),
        summary.push_relay
    );
    let diff = file.diff();
    println!("\npreview:\n{diff}");
    if diff.contains("Q3rT7yU1iO5pA9sD2fG6") {
        return Err("the diff shows the installation key".into());
    }

    let outcome = file.save(&WriteOptions::new().backup(true))?;
    match &outcome {
        SaveOutcome::Written { backup } => println!(
            "saved atomically; backup: {}",
            backup
                .as_ref()
                .map_or_else(|| "none".to_owned(), |b| b.display().to_string())
        ),
        other => println!("saved: {other:?}"),
    }

    // Read it back from disk, as the server will.
    let saved = EnvFile::open(&path)?;
    let problems_after = print_checks("\nafter", &saved);
    let settings = saved.settings();
    println!(
        "cloud communication: {}; region: {:?}; identity: {}; api: {}",
        settings.cloud_communication,
        settings.region,
        settings.identity_uri.url,
        settings.api_uri.url
    );
    match check_file_mode(&path)? {
        Some(finding) => println!("file mode: {finding}"),
        None => println!("file mode: ok"),
    }
    println!("next: ./bitwarden.sh restart");

    if problems_before == 0 || problems_after != 0 || !settings.cloud_communication {
        return Err(format!(
            "unexpected: {problems_before} problem(s) before, {problems_after} after"
        )
        .into());
    }
    Ok(())
}
