//! Concurrency and load: 20 installations sync 1,000 sponsorships each against ONE reference
//! cloud at the same time (20 tokio tasks, 20 in-memory stores, 20 cloud organizations). No
//! errors, no lost rows: every row Sent, the cloud holds 20,000 rows, 20,000 offers went out.
//! And two `sponsorctl sync --daemon` on one store never sync the same organization at once.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use cloud_client::{SyncOptions, SyncOutcome};
use cloud_emulator::{Fault, FaultRule};
use sponsorship_core::sponsorship::UiStatus;

use crate::support::{
    Proxy, Waits, billing, billing_key, check_store, client, cloud_org, config, emulator,
    installation_id, installation_key, local_org, store_with,
};

const INSTALLATIONS: usize = 20;
const ROWS: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_installations_sync_a_thousand_each_at_once() {
    let emu = emulator(INSTALLATIONS).await;
    let base = emu.base_url().clone();
    let started = Instant::now();
    let tasks: Vec<_> = (0..INSTALLATIONS)
        .map(|i| {
            let base = base.clone();
            tokio::spawn(async move {
                let store = store_with(i, ROWS);
                let waits = Waits::default();
                let client = client(
                    config(&base, i, &installation_key(i), Duration::from_mins(1)),
                    &waits,
                );
                let report = client
                    .sync_organization(&store, local_org(i), &billing(i), SyncOptions::default())
                    .await;
                (i, store, report, waits.take())
            })
        })
        .collect();
    let mut retries = 0;
    let mut stores = Vec::new();
    for task in tasks {
        let (i, store, report, waits) = task.await.unwrap();
        let report = report.unwrap_or_else(|e| panic!("installation {i}: {e}"));
        assert_eq!(report.outcome, SyncOutcome::Completed);
        assert_eq!(
            (report.sent, report.updated),
            (ROWS, ROWS),
            "installation {i}"
        );
        assert!(report.skipped.is_empty() && report.stale.is_empty());
        retries += waits.len();
        stores.push((i, store));
    }
    let wall = started.elapsed();

    for (i, store) in &stores {
        assert_eq!(check_store(store, *i, ROWS), ROWS, "installation {i}");
        assert!(
            store
                .rows(local_org(*i))
                .iter()
                .all(|r| r.ui_status() == UiStatus::Sent)
        );
        assert!(store.state(local_org(*i)).last_success.is_some());
        let cloud = emu.sponsorships(cloud_org(*i));
        assert_eq!(cloud.len(), ROWS, "cloud rows of installation {i}");
    }
    let outbox = emu.outbox();
    assert_eq!(outbox.len(), INSTALLATIONS * ROWS);
    let mut recipients: Vec<_> = outbox.iter().map(|m| m.to.as_str()).collect();
    recipients.sort_unstable();
    recipients.dedup();
    assert_eq!(
        recipients.len(),
        INSTALLATIONS * ROWS,
        "an offer went out twice"
    );
    println!(
        "load: {INSTALLATIONS} installations x {ROWS} sponsorships synced at once in {:.2} s \
         ({} rows in the cloud, {} offers, {retries} retries)",
        wall.as_secs_f64(),
        INSTALLATIONS * ROWS,
        outbox.len()
    );
    emu.stop().await.unwrap();
}

/// `sponsorctl`, next to this test executable (`<target>/<profile>/deps/it-…` →
/// `<target>/<profile>/sponsorctl`); built with the same profile and target directory when
/// missing (`cargo test --workspace` builds it anyway).
fn sponsorctl() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let bin = profile_dir.join("sponsorctl");
    if !bin.exists() {
        let target_dir = profile_dir.parent().unwrap();
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "-p", "sponsorship-cli", "--target-dir"]);
        build.arg(target_dir);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().unwrap();
        assert!(status.success(), "building sponsorctl failed");
    }
    assert!(bin.exists(), "{} missing", bin.display());
    bin
}

struct Sandbox {
    _dir: tempfile::TempDir,
    state: PathBuf,
    env: PathBuf,
    bin: PathBuf,
}

impl Sandbox {
    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.env("SPONSORCTL_STATE", &self.state)
            .env("SPONSORCTL_ENV_FILE", &self.env)
            .env(
                "SPONSORCTL_LICENSE_TRUST_KEY",
                self.state.with_file_name("license-trust.pem"),
            )
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG");
        for v in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            c.env_remove(v);
        }
        c
    }

    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut c = self.cmd();
        c.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        {
            let mut input = child.stdin.take().unwrap();
            if let Some(text) = stdin {
                input.write_all(text.as_bytes()).unwrap();
            }
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "sponsorctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn sql<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> T) -> T {
        let db = rusqlite::Connection::open(&self.state).unwrap();
        db.busy_timeout(Duration::from_secs(10)).unwrap();
        f(&db)
    }
}

/// Daemon processes of one round; stopped with SIGTERM (their graceful stop), killed if the
/// test fails before.
struct Daemons(Vec<std::process::Child>);

impl Daemons {
    /// SIGTERM to each, then their exit codes and output.
    fn stop(&mut self) -> String {
        let mut outputs = String::new();
        for d in self.0.drain(..) {
            let pid = d.id().to_string();
            let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
            let out = d.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(kill.success());
            assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
            outputs.push_str(&stdout);
            outputs.push_str(&stderr);
        }
        outputs
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        for d in &mut self.0 {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

const DAEMON_ROWS: usize = 300;
const ROUNDS: usize = 3;

/// A sandbox for `sponsorctl` whose organization "Acme Corp" is connected, through `proxy`,
/// to the cloud organization of installation 0, with `DAEMON_ROWS` offers.
fn daemon_sandbox(emu: &cloud_emulator::RunningEmulator, proxy: &Proxy) -> Sandbox {
    let dir = tempfile::tempdir().unwrap();
    let s = Sandbox {
        state: dir.path().join("sponsorctl.db"),
        env: dir.path().join("global.override.env"),
        bin: sponsorctl(),
        _dir: dir,
    };
    std::fs::write(
        &s.env,
        format!(
            "globalSettings__installation__id={}\nglobalSettings__installation__key={}\n",
            installation_id(0),
            installation_key(0)
        ),
    )
    .unwrap();
    std::fs::set_permissions(&s.env, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(
        s.state.with_file_name("license-trust.pem"),
        cloud_emulator::license_signing_key_pem(),
    )
    .unwrap();
    let base = proxy.url.as_str().trim_end_matches('/').to_owned();
    s.ok(
        &[
            "env",
            "enable-cloud",
            "--region",
            "custom",
            "--identity-uri",
            &base,
            "--api-uri",
            &base,
        ],
        None,
    );
    s.ok(
        &[
            "org",
            "add",
            "--name",
            "Acme Corp",
            "--plan",
            "enterprise-annually",
        ],
        None,
    );
    let license = emu.license(cloud_org(0), Some(installation_id(0))).unwrap();
    let license_file = s.state.with_file_name("license.json");
    std::fs::write(&license_file, serde_json::to_string(&license).unwrap()).unwrap();
    s.ok(
        &[
            "license",
            "import",
            "--org",
            "Acme Corp",
            license_file.to_str().unwrap(),
        ],
        None,
    );
    s.ok(
        &["billing-sync", "set-token", "--org", "Acme Corp"],
        Some(&format!("{}\n", billing_key(0))),
    );
    let mut members = String::new();
    let mut offers = String::new();
    for n in 0..DAEMON_ROWS {
        writeln!(members, "member{n}@acme.example").unwrap();
        writeln!(offers, "member{n}@acme.example,family{n}@home.example").unwrap();
    }
    let members_file = s.state.with_file_name("members.txt");
    let offers_file = s.state.with_file_name("offers.csv");
    std::fs::write(&members_file, members).unwrap();
    std::fs::write(&offers_file, offers).unwrap();
    s.ok(
        &[
            "member",
            "import",
            "--org",
            "Acme Corp",
            members_file.to_str().unwrap(),
        ],
        None,
    );
    s.ok(
        &[
            "sponsorship",
            "import",
            "--org",
            "Acme Corp",
            offers_file.to_str().unwrap(),
        ],
        None,
    );
    s
}

/// A `sponsorctl sync --daemon` and an operator's `sponsorctl sync` on one store, both at the
/// daemon's due instant, in several rounds: the cloud never sees two sync requests at once (an
/// observing proxy counts them in flight), the loser is told another sync runs, and nothing is
/// lost or sent twice. (A second daemon on one state file refuses to start: the CLI's tests.)
///
/// The daemon sleeps until the persisted due time and must then sync, not move the time on
/// (a past `next_due` within the catch-up spread is due: `Schedule::next_run`).
#[test]
#[allow(clippy::too_many_lines)] // one scenario, read top to bottom
fn a_daemon_and_a_manual_sync_never_sync_the_same_organization_at_once() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let emu = rt.block_on(emulator(1));
    let proxy = rt.block_on(Proxy::start(emu.base_url()));
    let s = daemon_sandbox(&emu, &proxy);
    let mut busy_messages = 0;
    let mut syncs = 0;
    let started = Instant::now();
    for round in 0..ROUNDS {
        // The cloud holds the first sync request of the round, widening the window in which
        // the second daemon wakes up.
        assert!(emu.inject_fault(FaultRule {
            path: "/organization/sponsorship/sync".into(),
            count: 1,
            fault: Fault::Delay { millis: 800 },
        }));
        // Both daemons will read the same due time, 1.5 s from now.
        let due = Utc::now() + chrono::TimeDelta::milliseconds(1500);
        let due_text = due.to_rfc3339_opts(SecondsFormat::Micros, true);
        let before: Option<String> = s.sql(|db| {
            db.execute(
                "INSERT INTO sync_state (organization_id, next_due) \
                 SELECT id, ?1 FROM organizations WHERE true \
                 ON CONFLICT (organization_id) DO UPDATE SET next_due = ?1",
                [&due_text],
            )
            .unwrap();
            db.query_row("SELECT last_success FROM sync_state", [], |r| r.get(0))
                .unwrap()
        });
        let mut daemons = Daemons(vec![
            s.cmd()
                .args(["sync", "--daemon"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        ]);
        // The operator's sync starts at the due instant, alternately just before and just
        // after it, so that each side wins some rounds.
        let offset = if round % 2 == 0 { -50 } else { 50 };
        let start = due + chrono::TimeDelta::milliseconds(offset);
        if let Ok(wait) = (start - Utc::now()).to_std() {
            std::thread::sleep(wait);
        }
        let manual = s.cmd().arg("sync").stdin(Stdio::null()).output().unwrap();
        let manual_output = format!(
            "{}{}",
            String::from_utf8_lossy(&manual.stdout),
            String::from_utf8_lossy(&manual.stderr)
        );
        assert!(
            matches!(manual.status.code(), Some(0 | 1)),
            "round {round}: {manual_output}"
        );
        // Wait (bounded) for a successful sync of this round and the lock to be free again.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (now, locks): (Option<String>, i64) = s.sql(|db| {
                (
                    db.query_row("SELECT last_success FROM sync_state", [], |r| r.get(0))
                        .unwrap(),
                    db.query_row("SELECT count(*) FROM sync_locks", [], |r| r.get(0))
                        .unwrap(),
                )
            });
            if now.is_some() && now != before && locks == 0 {
                break;
            }
            assert!(
                Instant::now() <= deadline,
                "round {round}: no sync completed:\n{}",
                daemons.stop()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let outputs = daemons.stop() + &manual_output;
        busy_messages += outputs.matches("another sync is running").count();
        syncs += outputs.matches("sent ").count();
        assert_eq!(proxy.max_syncs_in_flight(), 1, "round {round}: {outputs}");
    }
    let wall = started.elapsed();

    // Nothing lost, nothing sent twice.
    assert_eq!(proxy.max_syncs_in_flight(), 1);
    assert_eq!(emu.sponsorships(cloud_org(0)).len(), DAEMON_ROWS);
    let outbox = emu.outbox();
    assert_eq!(outbox.len(), DAEMON_ROWS, "an offer went out twice");
    let synced: i64 = s.sql(|db| {
        db.query_row(
            "SELECT count(*) FROM sponsorships WHERE last_sync_date IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap()
    });
    assert_eq!(usize::try_from(synced).unwrap(), DAEMON_ROWS);
    assert!(
        busy_messages >= 1,
        "neither side ever met the other one's lock"
    );
    println!(
        "daemon and manual sync: {ROUNDS} rounds on one store in {:.1} s: \
         {syncs} sync(s), {busy_messages} refused as busy, at most {} sync request in flight",
        wall.as_secs_f64(),
        proxy.max_syncs_in_flight()
    );
    drop(proxy);
    rt.block_on(emu.stop()).unwrap();
}

/// Two `sponsorctl sync` processes on one store started at the same instant, in several rounds:
/// the cloud never sees two sync requests at once, the one that finds the lock taken says so
/// and exits 1, and nothing is lost or sent twice.
#[test]
fn two_syncs_on_one_store_never_sync_the_same_organization_at_once() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let emu = rt.block_on(emulator(1));
    let proxy = rt.block_on(Proxy::start(emu.base_url()));
    let s = daemon_sandbox(&emu, &proxy);
    let mut refused = 0;
    let mut completed = 0;
    for round in 0..ROUNDS {
        // The cloud holds the first sync request of the round: the lock is held meanwhile.
        assert!(emu.inject_fault(FaultRule {
            path: "/organization/sponsorship/sync".into(),
            count: 1,
            fault: Fault::Delay { millis: 1500 },
        }));
        let children: Vec<_> = (0..2)
            .map(|_| {
                s.cmd()
                    .arg("sync")
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            match out.status.code() {
                Some(0) => completed += 1,
                Some(1) if text.contains("another sync is running") => refused += 1,
                other => panic!("round {round}: exit {other:?}: {text}"),
            }
        }
        assert_eq!(proxy.max_syncs_in_flight(), 1, "round {round}");
    }
    assert_eq!(emu.sponsorships(cloud_org(0)).len(), DAEMON_ROWS);
    assert_eq!(emu.outbox().len(), DAEMON_ROWS, "an offer went out twice");
    let synced: i64 = s.sql(|db| {
        db.query_row(
            "SELECT count(*) FROM sponsorships WHERE last_sync_date IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap()
    });
    assert_eq!(usize::try_from(synced).unwrap(), DAEMON_ROWS);
    assert!(completed >= ROUNDS && refused >= 1, "{completed} {refused}");
    println!(
        "two syncs at once: {ROUNDS} rounds, {completed} completed, {refused} refused as busy, \
         at most {} sync request in flight",
        proxy.max_syncs_in_flight()
    );
    drop(proxy);
    rt.block_on(emu.stop()).unwrap();
}
