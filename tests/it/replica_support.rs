//! Replicas of a host server on one server database, as the replica test and the replica
//! benchmark run them: the host's organizations, a reference cloud that knows them, and
//! processes of `examples/replica.rs`.
//!
//! Shared by `tests/it/replicas.rs` and `benches/server_db.rs` (`#[path]`-included there, with
//! `cli_bin.rs`).

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use cloud_emulator::{EmulatorOptions, RunningEmulator, Seed};
use sponsorship_core::ids::{CloudOrganizationId, MemberId, OrganizationId, SponsorshipId};
use sponsorship_core::sponsorship::{RowChange, Sponsorship};
use sponsorship_core::store::SponsorshipStore as _;
use store_sqlx::SqlxStore;
use test_support::{BILLING_KEY, INSTALLATION_ID, INSTALLATION_KEY};

/// Organizations of the host.
pub const ORGS: usize = 50;
/// Offers per organization in a first round.
pub const ROWS_PER_ORG: usize = 100;
/// The lease of the replicas: short, so that a killed replica's organization is taken over
/// within the test.
pub const LOCK_TTL_SECS: u64 = 3;

/// The replica example, next to this test executable (`<target>/<profile>/deps/it-…` →
/// `<target>/<profile>/examples/replica`), built with the same profile and target directory.
pub fn replica_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(build_replica).clone()
}

/// Builds the example when it is missing or older than its sources (one built before a new
/// migration would refuse the database); `cargo test --all-targets` has built it already.
fn build_replica() -> PathBuf {
    crate::cli_bin::example_binary(
        "replica",
        &[
            "examples/replica.rs",
            "crates/store-sqlx/src",
            "crates/store-sqlx/migrations",
            "crates/cloud-client/src",
            "crates/sponsorship-core/src",
        ],
    )
}

#[allow(clippy::disallowed_methods)] // the test servers are found through the environment
pub fn database_url(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!(
            "{variable} is not set: start the test servers with `eval \"$(scripts/databases.sh start)\"` \
             (scripts/test.sh does it), then run the tests in that shell"
        )
    })
}

/// The host: its organizations (local id → cloud id), the file the replicas read them from.
pub struct Host {
    _dir: tempfile::TempDir,
    pub orgs_file: PathBuf,
    pub orgs: Vec<(OrganizationId, CloudOrganizationId)>,
}

pub fn host() -> Host {
    let dir = tempfile::tempdir().unwrap();
    let orgs: Vec<_> = (0..ORGS)
        .map(|_| {
            (
                OrganizationId::new_random(),
                CloudOrganizationId::new_random(),
            )
        })
        .collect();
    let json: Vec<_> = orgs
        .iter()
        .enumerate()
        .map(|(i, (id, cloud))| serde_json::json!({"id": id, "cloudOrganizationId": cloud, "name": format!("Org {i:02}")}))
        .collect();
    let orgs_file = dir.path().join("organizations.json");
    std::fs::write(&orgs_file, serde_json::to_string(&json).unwrap()).unwrap();
    Host {
        _dir: dir,
        orgs_file,
        orgs,
    }
}

pub async fn cloud(host: &Host) -> RunningEmulator {
    let organizations: Vec<_> = host
        .orgs
        .iter()
        .enumerate()
        .map(|(i, (_, cloud))| serde_json::json!({"id": cloud, "name": format!("Org {i:02}"), "planType": 20, "billingSyncKey": BILLING_KEY}))
        .collect();
    let seed = serde_json::json!({
        "region": "US",
        "installations": [{"id": INSTALLATION_ID, "key": INSTALLATION_KEY, "region": "US"}],
        "organizations": organizations,
    });
    let mut options = EmulatorOptions::default();
    options.fault_injection = true;
    cloud_emulator::start(Seed::from_json(&seed.to_string()).unwrap(), options)
        .await
        .unwrap()
}

pub fn offer(org: OrganizationId, n: usize, now: DateTime<Utc>) -> Sponsorship {
    Sponsorship::new_offer(
        SponsorshipId::new_random(),
        org,
        MemberId::new_random(),
        &format!("family{n:05}@{}.example", org.as_uuid().simple()),
        now,
    )
}

/// Stores the billing sync connection of every organization of the host.
pub async fn connect_host(store: &SqlxStore, host: &Host) {
    let now = Utc::now();
    for (org, _) in &host.orgs {
        store
            .set_key(*org, &test_support::billing_key(), now)
            .await
            .unwrap();
    }
}

/// Adds `rows` offers to every organization and makes every one due `at`.
pub async fn prepare_round(store: &SqlxStore, host: &Host, rows: usize, at: DateTime<Utc>) {
    let now = Utc::now();
    for (org, _) in &host.orgs {
        let changes: Vec<_> = (0..rows)
            .map(|n| RowChange::Upsert(offer(*org, n, now)))
            .collect();
        store.write_changes(*org, &changes).await.unwrap();
        store.save_next_due(*org, at).await.unwrap();
    }
}

/// One replica process and the JSON lines it printed so far.
pub struct Replica {
    pub name: String,
    pub child: Child,
    pub lines: Arc<Mutex<Vec<serde_json::Value>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

pub fn spawn_replicas(url: &str, host: &Host, emu: &RunningEmulator, n: usize) -> Vec<Replica> {
    let bin = replica_binary();
    (0..n)
        .map(|i| {
            let name = format!("replica-{i}");
            let mut child = Command::new(&bin)
                .env("REPLICA_NAME", &name)
                .env("REPLICA_DATABASE_URL", url)
                .env("REPLICA_ORGS", &host.orgs_file)
                .env("REPLICA_CLOUD_URL", emu.base_url().as_str())
                .env("REPLICA_INSTALLATION_ID", INSTALLATION_ID)
                .env("REPLICA_INSTALLATION_KEY", INSTALLATION_KEY)
                .env("REPLICA_LOCK_TTL_SECS", LOCK_TTL_SECS.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            let lines = Arc::new(Mutex::new(Vec::new()));
            let sink = lines.clone();
            let stdout = child.stdout.take().unwrap();
            let reader = std::thread::spawn(move || {
                for line in std::io::BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                {
                    if let Ok(v) = serde_json::from_str(&line) {
                        sink.lock().unwrap().push(v);
                    }
                }
            });
            Replica {
                name,
                child,
                lines,
                reader: Some(reader),
            }
        })
        .collect()
}

impl Replica {
    /// SIGTERM, then the exit; the replica must stop cleanly.
    pub fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait().unwrap();
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        assert!(status.success(), "{} exited with {status}", self.name);
    }

    pub fn synced(&self) -> Vec<OrganizationId> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l["event"] == "synced")
            .map(|l| l["organization"].as_str().unwrap().parse().unwrap())
            .collect()
    }
}

/// Waits (bounded) until every organization's last success is after `since`.
pub async fn wait_all_synced(store: &SqlxStore, host: &Host, since: DateTime<Utc>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut left = 0;
        for (org, _) in &host.orgs {
            let state = store.sync_state(*org).await.unwrap();
            if state.last_success.is_none_or(|t| t < since) {
                left += 1;
            }
        }
        if left == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {left} organization(s) never synced"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
