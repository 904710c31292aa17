//! Several replicas of a host server on one server database (issue #13, item 3): four
//! processes of the daily runner (`examples/replica.rs`, on `store_sqlx`) against one
//! PostgreSQL (and one MariaDB) and one reference cloud, with 50 organizations due at once.
//!
//! Round 1: every organization is synced exactly once, no cloud row is duplicated or lost, no
//! offer is mailed twice. Round 2: one replica is killed with SIGKILL while it holds an
//! organization's lease in the middle of a sync; the lease expires, another replica takes the
//! organization over, and the result converges.
//!
//! The servers come from `scripts/databases.sh` (`scripts/test.sh` starts them).

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use cloud_emulator::{EmulatorOptions, Fault, FaultRule, RunningEmulator, Seed};
use sponsorship_core::ids::{CloudOrganizationId, MemberId, OrganizationId, SponsorshipId};
use sponsorship_core::sponsorship::{RowChange, Sponsorship};
use sponsorship_core::store::SponsorshipStore as _;
use store_sqlx::SqlxStore;
use test_support::{BILLING_KEY, INSTALLATION_ID, INSTALLATION_KEY};

const ORGS: usize = 50;
const REPLICAS: usize = 4;
const ROWS_PER_ORG: usize = 100;
/// The lease of the replicas: short, so that a killed replica's organization is taken over
/// within the test.
const LOCK_TTL_SECS: u64 = 3;

/// The replica example, next to this test executable (`<target>/<profile>/deps/it-…` →
/// `<target>/<profile>/examples/replica`); built when missing (`cargo test --all-targets`
/// builds it anyway).
fn replica_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let bin = profile_dir.join("examples").join("replica");
    if !bin.exists() {
        let mut build = Command::new(env!("CARGO"));
        build.args([
            "build",
            "-p",
            "families-sponsorship",
            "--example",
            "replica",
            "--target-dir",
        ]);
        build.arg(profile_dir.parent().unwrap());
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        assert!(
            build.status().unwrap().success(),
            "building the replica example failed"
        );
    }
    bin
}

#[allow(clippy::disallowed_methods)] // the test servers are found through the environment
fn database_url(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!(
            "{variable} is not set: start the test servers with `eval \"$(scripts/databases.sh start)\"` \
             (scripts/test.sh does it), then run the tests in that shell"
        )
    })
}

/// The host: its organizations (local id → cloud id), the file the replicas read them from.
struct Host {
    _dir: tempfile::TempDir,
    orgs_file: PathBuf,
    orgs: Vec<(OrganizationId, CloudOrganizationId)>,
}

fn host() -> Host {
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

async fn cloud(host: &Host) -> RunningEmulator {
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

fn offer(org: OrganizationId, n: usize, now: DateTime<Utc>) -> Sponsorship {
    Sponsorship::new_offer(
        SponsorshipId::new_random(),
        org,
        MemberId::new_random(),
        &format!("family{n:05}@{}.example", org.as_uuid().simple()),
        now,
    )
}

/// Adds `rows` offers to every organization and makes every one due `at`.
async fn prepare_round(store: &SqlxStore, host: &Host, rows: usize, at: DateTime<Utc>) {
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
struct Replica {
    name: String,
    child: Child,
    lines: Arc<Mutex<Vec<serde_json::Value>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

fn spawn_replicas(url: &str, host: &Host, emu: &RunningEmulator, n: usize) -> Vec<Replica> {
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
    fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait().unwrap();
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        assert!(status.success(), "{} exited with {status}", self.name);
    }

    fn synced(&self) -> Vec<OrganizationId> {
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
async fn wait_all_synced(store: &SqlxStore, host: &Host, since: DateTime<Utc>, what: &str) {
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

/// Every cloud organization holds exactly the local rows, one per member, each mailed once.
async fn assert_converged(store: &SqlxStore, host: &Host, emu: &RunningEmulator, rows: usize) {
    for (org, cloud) in &host.orgs {
        let cloud_rows = emu.sponsorships(*cloud);
        let members: BTreeSet<_> = cloud_rows
            .iter()
            .map(|r| r.row.sponsoring_organization_user_id)
            .collect();
        assert_eq!(
            members.len(),
            cloud_rows.len(),
            "{org}: a cloud row is duplicated"
        );
        assert_eq!(cloud_rows.len(), rows, "{org}: cloud rows lost or extra");
        let local = store.sponsorships(*org).await.unwrap();
        assert_eq!(local.len(), rows);
        assert!(
            local.iter().all(|r| r.last_sync_date.is_some()),
            "{org}: a local row was never confirmed"
        );
        let local_members: BTreeSet<_> = local.iter().map(|r| r.sponsoring_member_id).collect();
        assert_eq!(local_members, members, "{org}: the two sides differ");
    }
    assert_eq!(
        emu.outbox().len(),
        ORGS * rows,
        "an offer was mailed twice or never"
    );
}

fn synced_per_org(replicas: &[Replica]) -> BTreeMap<OrganizationId, usize> {
    let mut per_org = BTreeMap::new();
    for r in replicas {
        for org in r.synced() {
            *per_org.entry(org).or_insert(0) += 1;
        }
    }
    per_org
}

#[allow(clippy::print_stdout)] // the figures go to the test's output
async fn four_replicas_on_one_database(variable: &str) {
    let url = database_url(variable);
    let store = SqlxStore::connect(&url).await.unwrap();
    let host = host();
    let emu = cloud(&host).await;
    let now = Utc::now();
    for (org, _) in &host.orgs {
        store
            .set_key(*org, &test_support::billing_key(), now)
            .await
            .unwrap();
    }

    // Round 1: 50 organizations due at the same instant, four replicas.
    let due = Utc::now() + TimeDelta::seconds(2);
    prepare_round(&store, &host, ROWS_PER_ORG, due).await;
    let started = Instant::now();
    let mut replicas = spawn_replicas(&url, &host, &emu, REPLICAS);
    wait_all_synced(&store, &host, due - TimeDelta::seconds(1), "round 1").await;
    let took = started.elapsed();
    for r in &mut replicas {
        r.stop();
    }
    let per_org = synced_per_org(&replicas);
    assert_eq!(per_org.len(), ORGS, "{per_org:?}");
    assert!(
        per_org.values().all(|n| *n == 1),
        "an organization was synced more than once for one due time: {per_org:?}"
    );
    let shares: Vec<usize> = replicas.iter().map(|r| r.synced().len()).collect();
    assert_converged(&store, &host, &emu, ROWS_PER_ORG).await;
    println!(
        "{variable}: {ORGS} organizations x {ROWS_PER_ORG} rows by {REPLICAS} replicas in {:.1} s (from start, 2 s of it waiting for the due time); syncs per replica {shares:?}",
        took.as_secs_f64()
    );

    round_two_with_a_kill(variable, &url, &store, &host, &emu).await;
    emu.stop().await.unwrap();
}

/// Round 2: one more offer each; every sync request is held 1.5 s by the cloud, and one
/// replica is killed while it holds an organization's lease.
#[allow(clippy::print_stdout)] // the figures go to the test's output
async fn round_two_with_a_kill(
    variable: &str,
    url: &str,
    store: &SqlxStore,
    host: &Host,
    emu: &RunningEmulator,
) {
    let due = Utc::now() + TimeDelta::seconds(2);
    prepare_round(store, host, 1, due).await;
    assert!(emu.inject_fault(FaultRule {
        path: "/organization/sponsorship/sync".into(),
        count: 8,
        fault: Fault::Delay { millis: 1500 },
    }));
    let mut replicas = spawn_replicas(url, host, emu, REPLICAS);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (victim, victim_org) = 'found: loop {
        for (org, _) in &host.orgs {
            if let Some(lock) = store.sync_lock(*org).await.unwrap()
                && let Some(i) = replicas
                    .iter()
                    .position(|r| lock.holder.starts_with(&format!("{} pid", r.name)))
            {
                break 'found (i, *org);
            }
        }
        assert!(Instant::now() < deadline, "no replica ever held a lease");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut killed = replicas.remove(victim);
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    wait_all_synced(store, host, due - TimeDelta::seconds(1), "round 2").await;
    for r in &mut replicas {
        r.stop();
    }
    assert!(
        !killed.synced().contains(&victim_org),
        "the killed replica finished the organization after all"
    );
    let per_org = synced_per_org(&replicas);
    assert_eq!(
        per_org.get(&victim_org),
        Some(&1),
        "another replica took the killed one's organization over once"
    );
    assert_converged(store, host, emu, ROWS_PER_ORG + 1).await;
    println!(
        "{variable}: killed {} holding {victim_org}; taken over after its {LOCK_TTL_SECS} s lease; converged",
        killed.name
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_replicas_on_one_postgres_database() {
    four_replicas_on_one_database("SPONSORSHIP_TEST_POSTGRES_URL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_replicas_on_one_mariadb_database() {
    four_replicas_on_one_database("SPONSORSHIP_TEST_MYSQL_URL").await;
}
