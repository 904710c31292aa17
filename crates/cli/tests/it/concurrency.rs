//! Two `sync` processes for one organization never run at once.

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{BIN, Cloud, Sandbox, setup_cloud, write_bulk};

fn lock_rows(state: &std::path::Path) -> i64 {
    let db =
        rusqlite::Connection::open_with_flags(state, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.query_row("SELECT count(*) FROM sync_locks", [], |r| r.get(0))
        .unwrap()
}

/// A sandbox whose organization has one offer, and a cloud that holds the first sync request
/// for 5 s, so the first sync process holds the lock meanwhile.
fn one_offer_with_a_slow_first_sync() -> (Sandbox, Cloud) {
    let s = Sandbox::new();
    let mut log = String::new();
    let cloud = setup_cloud(&s, true, &[], &mut log);
    s.alice_offers("Acme Corp");
    cloud.delay_syncs(1, 5000);
    (s, cloud)
}

/// Starts `first` (a sync), waits (bounded) until it holds the lock, checks that a second
/// sync is refused meanwhile, and returns the first one's output.
fn a_second_sync_is_refused_while(s: &Sandbox, first: &mut std::process::Command) -> Output {
    let first = first
        .env("SPONSORCTL_STATE", &s.state)
        .env("SPONSORCTL_ENV_FILE", &s.env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the first sync starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while lock_rows(&s.state) == 0 {
        assert!(
            Instant::now() < deadline,
            "the first sync never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = s.run(&["sync"]);
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(
        err.contains("another sync is running for Acme Corp"),
        "{err}"
    );
    first.wait_with_output().unwrap()
}

#[test]
fn a_second_sync_is_refused_while_the_first_runs() {
    let (s, _cloud) = one_offer_with_a_slow_first_sync();
    let mut first = std::process::Command::new(BIN);
    first.arg("sync");
    let first = a_second_sync_is_refused_while(&s, &mut first);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("sent 1, updated 1"));
    assert_eq!(lock_rows(&s.state), 0, "the lock is released");
    // With the first one done, a sync runs again.
    s.ok(&["sync"]);
}

#[test]
fn the_daemon_persists_its_first_run_and_stops_on_sigterm() {
    let s = Sandbox::new();
    let mut log = String::new();
    let _cloud = setup_cloud(&s, false, &[], &mut log);
    let status = |s: &Sandbox| -> serde_json::Value {
        serde_json::from_str(&s.ok(&["--json", "status"])).unwrap()
    };
    assert!(status(&s)["organizations"][0]["nextDue"].is_null());
    let daemon = std::process::Command::new(BIN)
        .env("SPONSORCTL_STATE", &s.state)
        .env("SPONSORCTL_ENV_FILE", &s.env)
        .args(["sync", "--daemon"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The random first run (within a day) is stored, so a restart keeps it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let due = loop {
        let v = status(&s);
        if let Some(due) = v["organizations"][0]["nextDue"].as_str() {
            break due.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the daemon never scheduled a run"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = daemon.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("next sync: Acme Corp at") && stdout.contains("daemon stopped"),
        "{stdout}"
    );
    assert_eq!(
        status(&s)["organizations"][0]["nextDue"],
        due.as_str(),
        "kept after the restart"
    );
    assert!(
        status(&s)["organizations"][0]["lastAttempt"].is_null(),
        "not due yet: no sync ran"
    );
}

#[test]
fn cloud_serve_prints_its_address_first() {
    use std::io::BufRead;
    let s = Sandbox::new();
    let seed = s.path().join("seed.json");
    std::fs::write(
        &seed,
        r#"{"region":"US","installations":[],"organizations":[],"users":[]}"#,
    )
    .unwrap();
    let mut serve = std::process::Command::new(BIN)
        .args(["cloud", "serve", "--seed", seed.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(serve.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on http://127.0.0.1:")
        .unwrap_or_else(|| panic!("first line: {first}"));
    assert!(addr.parse::<u16>().is_ok(), "{first}");
    // It answers: the identity endpoint refuses an unknown installation.
    std::fs::write(
        &s.env,
        "globalSettings__installation__id=7e0b3c52-3f4c-4d0e-9e57-aa7a1e5c9a10\n\
         globalSettings__installation__key=Q3rT7yU1iO5pA9sD2fG6\n",
    )
    .unwrap();
    let base = format!("http://127.0.0.1:{addr}");
    s.ok(&[
        "env",
        "enable-cloud",
        "--region",
        "custom",
        "--identity-uri",
        &base,
        "--api-uri",
        &base,
    ]);
    // A proxy with credentials: shown redacted, and never used for loopback.
    let out = s
        .cmd()
        .env("HTTPS_PROXY", "http://proxyuser:proxy-secret@127.0.0.1:9")
        .arg("doctor")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("proxy-secret") && !text.contains("proxyuser"),
        "{text}"
    );
    assert!(
        text.contains("HTTPS_PROXY=http://REDACTED:REDACTED@127.0.0.1:9/"),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("[FAIL] token exchange") && text.contains("identity-rejected"),
        "{text}"
    );
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    assert!(serve.wait().unwrap().success());
}

/// A lock holder in another PID namespace (a container sharing the host name and the state
/// volume) cannot be judged from this namespace's `/proc`: its lock is respected until it
/// expires, never taken over as "gone".
#[test]
fn a_holder_in_another_pid_namespace_is_respected() {
    let (s, _cloud) = one_offer_with_a_slow_first_sync();
    // `unshare` needs CAP_SYS_ADMIN: the test machine's CI runs as root.
    let mut first = std::process::Command::new("unshare");
    first.args(["--pid", "--fork", "--mount-proc", BIN, "sync"]);
    let first = a_second_sync_is_refused_while(&s, &mut first);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
}

/// A sandbox with 1,001 offers (two batches: 1,000 and 1) and a cloud that holds the first sync
/// request for `delay_ms`; returns the e-mail of the member whose offer goes in batch 2.
fn two_batches_with_a_slow_first(delay_ms: u64) -> (Sandbox, Cloud, String) {
    let s = Sandbox::new();
    let mut log = String::new();
    let cloud = setup_cloud(&s, true, &[], &mut log);
    let (members, offers) = write_bulk(&s, 1001);
    s.ok(&["member", "import", "--org", "Acme Corp", &members]);
    s.ok(&["sponsorship", "import", "--org", "Acme Corp", &offers]);
    // Items go out in member-id order: the greatest id is the one item of batch 2.
    let list: serde_json::Value =
        serde_json::from_str(&s.ok(&["--json", "member", "list", "--org", "Acme Corp"])).unwrap();
    let late = list["members"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|m| m["id"].as_str().unwrap().to_owned())
        .unwrap()["email"]
        .as_str()
        .unwrap()
        .to_owned();
    cloud.delay_syncs(1, delay_ms);
    (s, cloud, late)
}

/// Spawns `sponsorctl ARGS` on the sandbox and waits (bounded) until it holds the lock and its
/// first request had time to reach the cloud.
fn spawn_holding_the_lock(s: &Sandbox, args: &[&str]) -> std::process::Child {
    let child = s
        .cmd_std()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the sync starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while lock_rows(&s.state) == 0 {
        assert!(Instant::now() < deadline, "the sync never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    child
}

fn signal(child: &std::process::Child, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig}");
}

/// Ctrl-C on a plain `sync` lets the batch on the wire finish, stops before the next one,
/// releases the organization's lock and exits 130, as a tool ended by SIGINT does.
#[test]
fn ctrl_c_on_a_sync_stops_after_the_batch_and_releases_the_lock() {
    let (s, cloud, _) = two_batches_with_a_slow_first(2000);
    let child = spawn_holding_the_lock(&s, &["sync"]);
    signal(&child, "-INT");
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(130), "{stdout}{stderr}");
    assert!(
        stderr.contains("stopping after the batch on the wire"),
        "{stderr}"
    );
    assert!(stdout.contains("stopped before batch 2"), "{stdout}");
    assert_eq!(lock_rows(&s.state), 0, "the lock is released at once");
    // Batch 1 was answered and stored; the next sync sends the rest at once (no lock to wait for).
    assert_eq!(cloud.emulator().sponsorships(cloud.acme).len(), 1000);
    let next = s.ok(&["sync"]);
    assert!(next.contains("sent 1001"), "{next}");
    assert_eq!(cloud.emulator().sponsorships(cloud.acme).len(), 1001);
}

/// A sync stopped (SIGSTOP) past its lock's lifetime while an offer it planned is revoked and
/// another sync takes the organization over: once continued, it sends nothing more from its
/// old plan, so the revoked offer never reaches the cloud and its recipient is never mailed.
#[test]
fn a_sync_stopped_past_its_lock_sends_nothing_more() {
    let (s, cloud, late) = two_batches_with_a_slow_first(4000);
    let stopped = spawn_holding_the_lock(&s, &["sync", "--lock-ttl", "1s"]);
    signal(&stopped, "-STOP");
    // Past the lock's lifetime: the offer of batch 2 is revoked, another sync takes over.
    std::thread::sleep(Duration::from_millis(1500));
    let revoked = s.ok(&[
        "sponsorship",
        "revoke",
        "--org",
        "Acme Corp",
        "--member",
        &late,
    ]);
    assert!(
        revoked.contains("withdraws the offer at the next sync"),
        "{revoked}"
    );
    let other = s.ok(&["sync"]);
    assert!(
        other.contains("sent 1001"),
        "1,000 offers and the withdrawal: {other}"
    );
    assert_eq!(lock_rows(&s.state), 0);
    signal(&stopped, "-CONT");
    let out = stopped.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the sync lock was lost"), "{stderr}");
    let rows = cloud.emulator().sponsorships(cloud.acme);
    assert_eq!(rows.len(), 1000, "no cloud row for the revoked offer");
    let late_recipient = late.replace("member", "family").replace("acme", "home");
    assert!(
        rows.iter()
            .all(|r| r.row.offered_to_email.as_deref() != Some(late_recipient.as_str())),
        "the stale plan re-created the revoked offer"
    );
    assert!(
        cloud
            .emulator()
            .outbox()
            .iter()
            .all(|m| m.to != late_recipient),
        "the revoked offer's recipient was mailed"
    );
}

/// A second `sync --daemon` on the same state file refuses to start, naming the first one,
/// instead of waiting on its locks in a loop; once the first one is gone, a new one starts.
#[test]
fn a_second_daemon_on_one_state_refuses_to_start() {
    let s = Sandbox::new();
    let mut log = String::new();
    let _cloud = setup_cloud(&s, false, &[], &mut log);
    let spawn = || {
        s.cmd_std()
            .args(["sync", "--daemon"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut first = spawn();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(first.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.contains("daemon started"), "{line}");
    let second = s.cmd_std().args(["sync", "--daemon"]).output().unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(
        err.contains("another sponsorctl daemon runs on")
            && err.contains(&format!("sponsorctl pid {}", first.id())),
        "{err}"
    );
    signal(&first, "-TERM");
    assert!(first.wait().unwrap().success());
    // The kernel dropped the first one's lock with the process: a new daemon starts.
    let mut again = spawn();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(again.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.contains("daemon started"), "{line}");
    signal(&again, "-KILL");
    let _ = again.wait();
}
