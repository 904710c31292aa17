//! Two `sync` processes for one organization never run at once.

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{BIN, Cloud, Sandbox, setup_cloud};

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
    s.ok(&[
        "member",
        "add",
        "--org",
        "Acme Corp",
        "--email",
        "alice@acme.example",
    ]);
    s.ok(&[
        "sponsorship",
        "offer",
        "--org",
        "Acme Corp",
        "--member",
        "alice@acme.example",
        "--email",
        "alice@home.example",
    ]);
    let rule: cloud_emulator::FaultRule = serde_json::from_value(serde_json::json!({
        "path": "/organization/sponsorship/sync", "count": 1, "fault": {"kind": "delay", "millis": 5000}
    }))
    .unwrap();
    assert!(cloud.emulator().inject_fault(rule));
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
