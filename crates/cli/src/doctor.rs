//! `doctor`: checks configuration and connectivity, one named line per check, secrets
//! redacted, so the output can be pasted into a bug report.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cloud_client::{CloudClient, Scope};
use env_config::Severity;
use serde::Serialize;
use sponsorship_core::schedule::{Schedule, display_time};
use url::Url;

use crate::envcmd::egress;
use crate::output::{Out, exit, print_json};
use crate::remote::{ProxyEnv, cloud_config, cloud_error, open_env, redact_url};
use crate::synccmd::targets;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
enum Status {
    Ok,
    Warn,
    Fail,
    Skip,
}

#[derive(Debug, Serialize)]
struct Check {
    name: String,
    status: Status,
    detail: String,
}

#[derive(Default)]
struct Report {
    checks: Vec<Check>,
}

impl Report {
    fn add(&mut self, name: impl Into<String>, status: Status, detail: impl Into<String>) {
        let c = Check {
            name: name.into(),
            status,
            detail: detail.into(),
        };
        tracing::debug!(check = %c.name, status = ?c.status, "doctor check");
        self.checks.push(c);
    }
}

const TIMEOUT: Duration = Duration::from_secs(5);
/// The time budget of each of `doctor`'s cloud calls (token exchange, key checks).
const DOCTOR_BUDGET: Duration = Duration::from_secs(20);

/// DNS and TCP straight to the host. When requests go through a proxy, a direct failure is
/// expected (many networks only let the proxy out), so it is a warning, not a failure.
async fn probe_host(report: &mut Report, role: &str, url: &Url, via_proxy: bool) {
    let fail = if via_proxy {
        Status::Warn
    } else {
        Status::Fail
    };
    let proxied = if via_proxy {
        " (requests go through the proxy, so this direct check may fail harmlessly)"
    } else {
        ""
    };
    let Some(host) = url.host_str().map(str::to_owned) else {
        report.add(
            format!("{role} URL"),
            Status::Fail,
            format!("{url} has no host"),
        );
        return;
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs =
        match tokio::time::timeout(TIMEOUT, tokio::net::lookup_host((host.as_str(), port))).await {
            Ok(Ok(a)) => a.collect::<Vec<_>>(),
            Ok(Err(e)) => {
                report.add(
                    format!("{role} DNS ({host})"),
                    fail,
                    format!("does not resolve: {e}{proxied}"),
                );
                return;
            }
            Err(_) => {
                report.add(
                    format!("{role} DNS ({host})"),
                    fail,
                    format!("timed out after 5 s{proxied}"),
                );
                return;
            }
        };
    let shown: Vec<String> = addrs.iter().take(3).map(|a| a.ip().to_string()).collect();
    report.add(format!("{role} DNS ({host})"), Status::Ok, shown.join(", "));
    let Some(first) = addrs.first() else { return };
    match tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(first)).await {
        Ok(Ok(_)) => report.add(
            format!("{role} TCP ({host}:{port})"),
            Status::Ok,
            format!("connected to {first}"),
        ),
        Ok(Err(e)) => report.add(
            format!("{role} TCP ({host}:{port})"),
            fail,
            format!("{e}: allow outbound connections to {host}:{port} in the firewall{proxied}"),
        ),
        Err(_) => report.add(
            format!("{role} TCP ({host}:{port})"),
            fail,
            format!(
                "timed out after 5 s: allow outbound connections to {host}:{port} in the firewall{proxied}"
            ),
        ),
    }
}

/// GETs the base URL through the client's own HTTP stack (proxy, TLS roots): proves TLS and
/// returns the `Date` header.
async fn probe_tls(
    report: &mut Report,
    http: &reqwest::Client,
    role: &str,
    url: &Url,
) -> Option<DateTime<Utc>> {
    let host = url.host_str().unwrap_or("?");
    let name = if url.scheme() == "https" {
        format!("{role} TLS ({host})")
    } else {
        format!("{role} HTTP ({host})")
    };
    match tokio::time::timeout(TIMEOUT * 2, http.get(url.clone()).send()).await {
        Ok(Ok(resp)) => {
            let detail = if url.scheme() == "https" {
                format!(
                    "handshake and certificate OK (HTTP {})",
                    resp.status().as_u16()
                )
            } else {
                format!("plain http on loopback (HTTP {})", resp.status().as_u16())
            };
            report.add(name, Status::Ok, detail);
            resp.headers()
                .get(reqwest::header::DATE)
                .and_then(|d| d.to_str().ok())
                .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
                .map(|d| d.with_timezone(&Utc))
        }
        Ok(Err(e)) => {
            let mut detail = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                detail = format!("{detail}: {s}");
                source = s.source();
            }
            report.add(name, Status::Fail, detail);
            None
        }
        Err(_) => {
            report.add(name, Status::Fail, "timed out after 10 s");
            None
        }
    }
}

/// A server database: reachable, and at the schema version this release knows. It is named
/// by its URL without the password.
fn database(report: &mut Report, url: &Path) {
    let db = match crate::open_state(url) {
        Ok(db) => db,
        Err(e) => {
            report.add("database", Status::Fail, crate::output::said_once(&e));
            return;
        }
    };
    let Some(server) = db.server() else {
        return;
    };
    let name = format!(
        "{} at {}",
        server.store.backend().name(),
        server.store.label()
    );
    match server.schema_version() {
        Ok((applied, known)) if applied == known => report.add(
            "database",
            Status::Ok,
            format!("{name}: connected; schema version {applied} (current)"),
        ),
        Ok((applied, known)) => report.add(
            "database",
            Status::Warn,
            format!(
                "{name}: connected; schema version {applied}, this release knows {known}: a newer release migrated it"
            ),
        ),
        Err(e) => report.add(
            "database",
            Status::Fail,
            format!("{name}: {}", crate::output::said_once(&e)),
        ),
    }
}

fn file_mode(report: &mut Report, what: &str, path: &Path) {
    match std::fs::metadata(path) {
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            if mode.trailing_zeros() >= 6 {
                report.add(
                    format!("{what} mode"),
                    Status::Ok,
                    format!("{mode:04o} {}", path.display()),
                );
            } else {
                report.add(
                    format!("{what} mode"),
                    Status::Warn,
                    format!(
                        "{mode:04o} {}: others can read secrets; chmod 600 it",
                        path.display()
                    ),
                );
            }
        }
        Err(e) => report.add(
            format!("{what} mode"),
            Status::Skip,
            format!("{}: {e}", path.display()),
        ),
    }
}

/// `doctor`
#[allow(clippy::too_many_lines)] // one check after the other, in the order printed
pub(crate) async fn doctor(state: &Path, env_file: &Path, out: Out) -> anyhow::Result<u8> {
    let mut report = Report::default();
    let proxy = ProxyEnv::from_process();
    let settings = match open_env(env_file) {
        Ok(env) => {
            report.add("env file", Status::Ok, env_file.display().to_string());
            for f in env.checks() {
                let status = match f.severity {
                    Severity::Error => Status::Fail,
                    Severity::Warning => Status::Warn,
                    Severity::Info => Status::Ok,
                };
                report.add(
                    format!("env check {}", f.code.as_str()),
                    status,
                    f.to_string(),
                );
            }
            Some(env.settings())
        }
        Err(e) => {
            report.add("env file", Status::Fail, crate::output::said_once(&e));
            None
        }
    };
    file_mode(&mut report, "env file", env_file);
    if crate::state::is_server(state) {
        database(&mut report, state);
    } else {
        file_mode(&mut report, "state file", state);
    }

    if let Some(s) = &settings {
        report.add(
            "cloud region",
            Status::Ok,
            format!(
                "{} (identity {}, api {}); egress allowlist: {}",
                s.region.as_ref().map_or("not set", |r| r.name()),
                s.identity_uri.url,
                s.api_uri.url,
                egress(s).join(", ")
            ),
        );
        report.add(
            "installation",
            if s.installation_id.is_some() && s.installation_key.is_some() {
                Status::Ok
            } else {
                Status::Fail
            },
            format!(
                "id {}, key {}",
                s.installation_id
                    .map_or_else(|| "not set".to_owned(), |i| i.to_string()),
                if s.installation_key.is_some() {
                    "[REDACTED]"
                } else {
                    "not set"
                }
            ),
        );
        match proxy.proxy_url() {
            Ok(Some(p)) => report.add(
                "proxy",
                Status::Ok,
                format!(
                    "HTTPS_PROXY={} NO_PROXY={} (loopback hosts never use it)",
                    redact_url(&p),
                    proxy.no_proxy.as_deref().unwrap_or("-")
                ),
            ),
            Ok(None) => report.add("proxy", Status::Ok, "none (HTTPS_PROXY not set)"),
            Err(e) => report.add("proxy", Status::Fail, crate::output::said_once(&e)),
        }
        let via_proxy =
            |url: &Url| cloud_config(s, &proxy).is_ok_and(|c| c.proxy_for(url).is_some());
        probe_host(
            &mut report,
            "identity",
            &s.identity_uri.url,
            via_proxy(&s.identity_uri.url),
        )
        .await;
        probe_host(
            &mut report,
            "api",
            &s.api_uri.url,
            via_proxy(&s.api_uri.url),
        )
        .await;
        match cloud_config(s, &proxy) {
            Err(e) => report.add("token exchange", Status::Skip, crate::output::said_once(&e)),
            Ok(config) => match cloud_client::default_http_client(&config) {
                Err(e) => report.add("http client", Status::Fail, e.to_string()),
                Ok(http) => {
                    probe_tls(&mut report, &http, "identity", &config.identity_url).await;
                    let date = probe_tls(&mut report, &http, "api", &config.api_url).await;
                    match date {
                        Some(cloud_now) => {
                            let skew = Utc::now() - cloud_now;
                            let secs = skew.num_seconds();
                            let status = if secs.abs() > 300 {
                                Status::Warn
                            } else {
                                Status::Ok
                            };
                            report.add(
                                "clock skew",
                                status,
                                format!("local clock is {secs:+} s from the cloud's Date header"),
                            );
                        }
                        None => {
                            report.add("clock skew", Status::Skip, "no Date header from the API");
                        }
                    }
                    // A diagnosis answers in seconds: each cloud call of `doctor` gets 20 s
                    // (the sync's budget is 2 minutes per request).
                    let mut config = config;
                    config.retry.max_total = DOCTOR_BUDGET;
                    config.timeouts.request = config.timeouts.request.min(DOCTOR_BUDGET);
                    match CloudClient::with_http_client(config, http) {
                        Ok(client) => check_cloud(&mut report, &client, state).await,
                        Err(e) => report.add("cloud client", Status::Fail, e.to_string()),
                    }
                }
            },
        }
    }

    let failed = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .count();
    let warned = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Warn)
        .count();
    if out.json {
        print_json(
            &serde_json::json!({"checks": report.checks, "failed": failed, "warnings": warned}),
        )?;
    } else {
        for c in &report.checks {
            let tag = match c.status {
                Status::Ok => "ok  ",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
                Status::Skip => "skip",
            };
            println!("[{tag}] {}: {}", c.name, c.detail);
        }
        println!(
            "{failed} failed, {warned} warning(s). Secrets are redacted: this output is safe to paste."
        );
    }
    Ok(if failed > 0 { exit::FAILURE } else { exit::OK })
}

async fn check_cloud(report: &mut Report, client: &CloudClient, state: &Path) {
    match client.check_identity(Scope::Installation).await {
        Ok(info) => report.add(
            "token exchange",
            Status::Ok,
            format!(
                "installation accepted; token valid until {}",
                display_time(Some(info.expires_at))
            ),
        ),
        Err(e) => {
            report.add(
                "token exchange",
                Status::Fail,
                crate::output::said_once(&cloud_error(e)),
            );
            return;
        }
    }
    if !crate::state::is_server(state) && !state.exists() {
        report.add("billing sync", Status::Skip, "no state file yet");
        return;
    }
    let db = match crate::open_state(state) {
        Ok(db) => db,
        Err(e) => {
            report.add("state file", Status::Fail, e.to_string());
            return;
        }
    };
    let Ok(list) = targets(&db, None) else {
        report.add(
            "billing sync",
            Status::Skip,
            "no organization has billing sync enabled",
        );
        return;
    };
    for t in list {
        match t {
            Err(e) => report.add("billing sync", Status::Fail, e.message),
            Ok(t) => {
                let name = format!("billing sync key of {}", t.rec.org.name);
                match client.verify_billing_sync_key(&t.billing).await {
                    Ok(()) => report.add(
                        name,
                        Status::Ok,
                        format!(
                            "{} accepted for cloud organization {}",
                            t.billing.billing_sync_key.last_four(),
                            t.billing.cloud_organization_id
                        ),
                    ),
                    Err(e) => report.add(
                        name,
                        Status::Fail,
                        crate::output::said_once(&cloud_error(e)),
                    ),
                }
                if let Ok(s) = db.read(|tx| tx.sync_state(t.rec.org.id)) {
                    let warning = Schedule::default().stale_warning(&s, Utc::now());
                    let detail = match (&s.last_error, warning) {
                        (_, Some(w)) => (Status::Warn, w),
                        (Some(e), None) => (
                            Status::Warn,
                            format!("last error [{}] {}", e.category.name(), e.message),
                        ),
                        (None, None) => (
                            Status::Ok,
                            format!("last sync {}", display_time(s.last_success)),
                        ),
                    };
                    report.add(
                        format!("sync state of {}", t.rec.org.name),
                        detail.0,
                        detail.1,
                    );
                }
            }
        }
    }
}
