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
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use cloud_emulator::{Fault, FaultRule, RunningEmulator};
use sponsorship_core::ids::OrganizationId;
use sponsorship_core::store::SponsorshipStore as _;
use store_sqlx::SqlxStore;

use crate::replica_support::{
    Host, LOCK_TTL_SECS, ORGS, ROWS_PER_ORG, Replica, cloud, connect_host, database_url, host,
    prepare_round, spawn_replicas, wait_all_synced,
};

const REPLICAS: usize = 4;

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
    connect_host(&store, &host).await;

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
