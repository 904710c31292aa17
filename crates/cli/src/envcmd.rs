//! `env show|check|enable-cloud`: step 1 of the setup, through `env-config`.

use std::fmt::Write;
use std::path::Path;

use env_config::{CheckCode, CloudSettings, EnvFile, Finding, PushRelay, Severity, WriteOptions};
use serde_json::json;
use sponsorship_core::region::{CloudRegion, CustomEndpoints};

use crate::cli::{EnableCloudArgs, RegionArg};
use crate::output::{CliError, Out, exit, print_json};
use crate::remote::open_env;

/// The line printed after every change of the env file.
pub(crate) const RESTART_HINT: &str = "restart the server to apply: ./bitwarden.sh restart";

fn settings_json(s: &CloudSettings) -> serde_json::Value {
    json!({
        "cloudCommunication": s.cloud_communication,
        "region": s.region.as_ref().map(CloudRegion::name),
        "installationId": s.installation_id,
        "installationKey": if s.installation_key.is_some() { "[REDACTED]" } else { "[not set]" },
        "identityUri": s.identity_uri.url.as_str(),
        "identityUriIsDefault": s.identity_uri.is_default,
        "apiUri": s.api_uri.url.as_str(),
        "apiUriIsDefault": s.api_uri.is_default,
        "pushRelay": push_text(&s.push_relay),
        "egressHosts": egress(s),
    })
}

fn push_text(p: &PushRelay) -> String {
    match p {
        PushRelay::Inherited => {
            "default (https://push.bitwarden.com, from docker/global.env)".into()
        }
        PushRelay::Disabled => "disabled".into(),
        PushRelay::Uri(u) => u.to_string(),
        _ => "invalid (see `sponsorctl env check`)".into(),
    }
}

/// The hosts outbound HTTPS must reach: the region's, or those of the configured URLs.
pub(crate) fn egress(s: &CloudSettings) -> Vec<String> {
    let hosts = |u: &url::Url| {
        u.host_str()
            .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(443)))
    };
    match &s.region {
        Some(r) if !matches!(r, CloudRegion::Custom(_)) => r.egress_hosts(),
        _ => [&s.identity_uri.url, &s.api_uri.url]
            .into_iter()
            .filter_map(hosts)
            .collect(),
    }
}

/// Renders the settings for people; secrets are never shown.
pub(crate) fn settings_text(s: &CloudSettings) -> String {
    let default = |d: bool| if d { " (default)" } else { "" };
    let mut t = String::new();
    let _ = writeln!(
        t,
        "Cloud communication:  {}",
        if s.cloud_communication {
            "enabled"
        } else {
            "disabled"
        }
    );
    let _ = writeln!(
        t,
        "Cloud region:         {}",
        s.region.as_ref().map_or("not set", CloudRegion::name)
    );
    let _ = writeln!(
        t,
        "Installation id:      {}",
        s.installation_id
            .map_or_else(|| "not set".to_owned(), |i| i.to_string())
    );
    let _ = writeln!(
        t,
        "Installation key:     {}",
        if s.installation_key.is_some() {
            "[REDACTED]"
        } else {
            "not set"
        }
    );
    let _ = writeln!(
        t,
        "Identity URI:         {}{}",
        s.identity_uri.url,
        default(s.identity_uri.is_default)
    );
    let _ = writeln!(
        t,
        "API URI:              {}{}",
        s.api_uri.url,
        default(s.api_uri.is_default)
    );
    let _ = writeln!(t, "Push relay:           {}", push_text(&s.push_relay));
    let _ = writeln!(t, "Egress allowlist:     {}", egress(s).join(", "));
    t
}

/// `env show`
pub(crate) fn show(env_file: &Path, out: Out) -> anyhow::Result<u8> {
    let env = open_env(env_file)?;
    let s = env.settings();
    if out.json {
        print_json(
            &json!({"file": env_file.display().to_string(), "settings": settings_json(&s)}),
        )?;
    } else {
        println!("Env file:             {}", env_file.display());
        print!("{}", settings_text(&s));
    }
    Ok(exit::OK)
}

pub(crate) fn finding_json(f: &Finding) -> serde_json::Value {
    json!({
        "code": f.code.as_str(),
        "severity": f.severity.to_string(),
        "line": f.line,
        "key": f.key,
        "message": f.message,
        "fix": f.fix,
    })
}

/// `env check`: exit 1 when a finding is an error.
pub(crate) fn check(env_file: &Path, out: Out) -> anyhow::Result<u8> {
    let env = open_env(env_file)?;
    let findings = env.checks();
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    if out.json {
        let v: Vec<_> = findings.iter().map(finding_json).collect();
        print_json(
            &json!({"file": env_file.display().to_string(), "findings": v, "errors": errors}),
        )?;
    } else if findings.is_empty() {
        println!("{}: no problems found.", env_file.display());
    } else {
        for f in &findings {
            println!("{f}");
        }
        println!("{} finding(s), {errors} error(s).", findings.len());
    }
    Ok(if errors > 0 { exit::FAILURE } else { exit::OK })
}

/// The region an `enable-cloud` names.
pub(crate) fn region_of(args: &EnableCloudArgs) -> anyhow::Result<CloudRegion> {
    Ok(match args.region {
        RegionArg::Us => CloudRegion::Us,
        RegionArg::Eu => CloudRegion::Eu,
        RegionArg::Gov => CloudRegion::Gov,
        RegionArg::Custom => {
            let (Some(identity), Some(api)) = (&args.identity_uri, &args.api_uri) else {
                return Err(CliError::invalid(
                    "--region custom needs --identity-uri URL and --api-uri URL",
                )
                .into());
            };
            let endpoints = CustomEndpoints::new(identity, api, None, None)
                .map_err(|e| CliError::invalid(e.to_string()))?;
            CloudRegion::Custom(Box::new(endpoints))
        }
    })
}

/// `env enable-cloud` on an open file; returns the diff (empty when nothing changes).
pub(crate) fn enable_cloud(
    env: &mut EnvFile,
    region: &CloudRegion,
    dry_run: bool,
) -> anyhow::Result<String> {
    env.enable_cloud_communication(region)
        .map_err(|e| CliError::failure("config", e.to_string()))?;
    let diff = env.diff();
    if !dry_run && !diff.is_empty() {
        env.save(&WriteOptions::new().backup(true))
            .map_err(|e| CliError::failure("config", e.to_string()))?;
    }
    Ok(diff)
}

/// `env enable-cloud`
pub(crate) fn enable_cloud_cmd(
    env_file: &Path,
    out: Out,
    args: &EnableCloudArgs,
) -> anyhow::Result<u8> {
    if args.region != RegionArg::Custom && (args.identity_uri.is_some() || args.api_uri.is_some()) {
        return Err(CliError::invalid(
            "--identity-uri and --api-uri are for --region custom only: the named regions have fixed URLs",
        )
        .into());
    }
    let region = region_of(args)?;
    let mut env = open_env(env_file)?;
    let diff = enable_cloud(&mut env, &region, args.dry_run)?;
    let remaining: Vec<_> = env
        .checks()
        .into_iter()
        .filter(|f| {
            f.severity == Severity::Error && f.code != CheckCode::CloudCommunicationDisabled
        })
        .collect();
    if out.json {
        print_json(&json!({
            "file": env_file.display().to_string(),
            "changed": !diff.is_empty(),
            "dryRun": args.dry_run,
            "diff": diff,
            "egressHosts": region.egress_hosts(),
            "errors": remaining.iter().map(finding_json).collect::<Vec<_>>(),
        }))?;
        return Ok(exit::OK);
    }
    if diff.is_empty() {
        println!(
            "{}: cloud communication is already enabled for {}; nothing to change.",
            env_file.display(),
            region.name()
        );
        return Ok(exit::OK);
    }
    print!("{diff}");
    if !diff.ends_with('\n') {
        println!();
    }
    if args.dry_run {
        println!("Dry run: {} was not changed.", env_file.display());
    } else {
        println!("Saved {} (previous version in .bak).", env_file.display());
        println!("{RESTART_HINT}");
    }
    println!(
        "Allow outbound HTTPS to: {}",
        region.egress_hosts().join(", ")
    );
    for f in &remaining {
        println!("{f}");
    }
    Ok(exit::OK)
}
