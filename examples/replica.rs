//! One replica of a host server whose replicas share a PostgreSQL or MariaDB database: the
//! daily runner on `store_sqlx::SqlxStore`. Run any number of them on one database: each due
//! organization is synced by one of them, a replica that dies mid-sync leaves its lease to
//! expire and another one takes the organization over.
//!
//! The host's own tables are played by a JSON file of organizations (`REPLICA_ORGS`:
//! `[{"id": …, "cloudOrganizationId": …, "name": …}]`); billing sync connections, sync state
//! and rows are in the store. Configuration comes from the environment:
//! `REPLICA_DATABASE_URL`, `REPLICA_CLOUD_URL` (identity and API), `REPLICA_INSTALLATION_ID`,
//! `REPLICA_INSTALLATION_KEY`, `REPLICA_NAME`, and `REPLICA_LOCK_TTL_SECS` (default 600).
//! Each event is one JSON line on stdout; SIGTERM or Ctrl-C stops it after the batch on the
//! wire. The replica tests (`tests/it/replicas.rs`) run four of these.
//!
//! Run: `cargo run -p families-sponsorship --example replica` with the variables set.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a program: its output is the point
#![allow(clippy::disallowed_methods)] // a program: it reads its configuration from the environment

use std::error::Error;
use std::time::Duration;

use chrono::TimeDelta;
use cloud_client::runner::{DailyRunner, RunnerEvent, SyncTarget, SyncTargets};
use cloud_client::{CloudClient, CloudConfig};
use serde::Deserialize;
use sponsorship_core::ids::{CloudOrganizationId, OrganizationId};
use sponsorship_core::org::BillingSyncConnection;
use sponsorship_core::secret::InstallationKey;
use sponsorship_core::store::SponsorshipStore as _;
use store_sqlx::SqlxStore;

/// One of the host's organizations, as its own tables would give it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HostOrganization {
    id: OrganizationId,
    cloud_organization_id: CloudOrganizationId,
    name: String,
}

/// The host's organizations, each with the connection the store holds for it.
struct Targets<'a> {
    store: &'a SqlxStore,
    organizations: Vec<HostOrganization>,
}

impl SyncTargets for Targets<'_> {
    type Error = store_sqlx::Error;

    async fn sync_targets(&self) -> Result<Vec<SyncTarget>, store_sqlx::Error> {
        let mut targets = Vec::with_capacity(self.organizations.len());
        for org in &self.organizations {
            let connection = self.store.connection(org.id).await?;
            let state = self.store.sync_state(org.id).await?;
            targets.push(SyncTarget {
                organization_id: org.id,
                name: org.name.clone(),
                billing: BillingSyncConnection::readiness(
                    org.id,
                    connection.map(|c| (c.key, c.enabled)),
                    Some(org.cloud_organization_id),
                    state.last_license_sync,
                ),
            });
        }
        Ok(targets)
    }
}

fn var(name: &str) -> Result<String, Box<dyn Error + Send + Sync>> {
    std::env::var(name).map_err(|_| format!("{name} is not set").into())
}

/// The schedule's jitter: a small xorshift seeded from the process id and the clock.
fn jitter() -> impl FnMut(TimeDelta) -> TimeDelta + Send {
    let mut x = (u64::from(std::process::id()) << 32)
        | u64::from(chrono::Utc::now().timestamp_subsec_nanos())
        | 1;
    move |max: TimeDelta| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let ms = max.num_milliseconds();
        if ms <= 0 {
            return TimeDelta::zero();
        }
        TimeDelta::milliseconds(i64::try_from(x % ms.unsigned_abs()).unwrap_or(0))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let name = var("REPLICA_NAME")?;
    let store = SqlxStore::connect(&var("REPLICA_DATABASE_URL")?).await?;
    let organizations: Vec<HostOrganization> =
        serde_json::from_str(&std::fs::read_to_string(var("REPLICA_ORGS")?)?)?;
    let cloud: url::Url = var("REPLICA_CLOUD_URL")?.parse()?;
    let client = CloudClient::new(CloudConfig::new(
        var("REPLICA_INSTALLATION_ID")?.parse()?,
        InstallationKey::parse(&var("REPLICA_INSTALLATION_KEY")?)?,
        cloud.clone(),
        cloud,
    ))?;
    let lock_ttl = std::env::var("REPLICA_LOCK_TTL_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_mins(10), Duration::from_secs);
    let targets = Targets {
        store: &store,
        organizations,
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    let holder = format!("{name} pid {}", std::process::id());
    println!(
        "{}",
        serde_json::json!({"event": "started", "replica": name})
    );
    let on_event = |event: RunnerEvent<'_>| {
        let line = match event {
            RunnerEvent::Synced { target, report } => serde_json::json!({
                "event": "synced", "replica": name, "organization": target.organization_id,
                "sent": report.sent, "updated": report.updated,
            }),
            RunnerEvent::Failed { target, error } => serde_json::json!({
                "event": "failed", "replica": name, "organization": target.organization_id,
                "error": error.to_string(),
            }),
            _ => return,
        };
        println!("{line}");
    };
    DailyRunner::new(&client, &store, &targets, &holder)
        .lock_ttl(lock_ttl)
        .run(jitter(), shutdown, on_event)
        .await?;
    println!(
        "{}",
        serde_json::json!({"event": "stopped", "replica": name})
    );
    Ok(())
}
