//! `sponsorctl` in scripts: a closed pipe, colour and log settings, JSON-only stderr, usage
//! errors in full (issue #15, item 1).

use std::io::Read;
use std::process::Stdio;

use crate::common::{BIN, Sandbox};

/// The binary as a plain process (to hold its pipes), with the sandbox's files.
fn process(s: &Sandbox) -> std::process::Command {
    let mut c = std::process::Command::new(BIN);
    c.env("SPONSORCTL_STATE", &s.state)
        .env("SPONSORCTL_ENV_FILE", &s.env)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("SPONSORCTL_LOG")
        .stdin(Stdio::null());
    c
}

/// Acme with 2,000 members and an offer each: every listing is far larger than a pipe buffer.
fn big_sandbox() -> Sandbox {
    let s = Sandbox::new();
    s.acme();
    let mut members = String::new();
    let mut offers = String::new();
    for i in 0..2_000 {
        members.push_str(&format!("m{i:05}@acme.example\n"));
        offers.push_str(&format!("m{i:05}@acme.example,family{i:05}@home.example\n"));
    }
    let m = s.path().join("members.txt");
    let o = s.path().join("offers.csv");
    std::fs::write(&m, members).unwrap();
    std::fs::write(&o, offers).unwrap();
    s.ok(&["member", "import", "--org", "Acme", m.to_str().unwrap()]);
    s.ok(&[
        "sponsorship",
        "import",
        "--org",
        "Acme",
        o.to_str().unwrap(),
    ]);
    s
}

/// Every listing, human and `--json`, whose reader goes away after a few bytes (`| head -1`)
/// ends quietly with the SIGPIPE convention, 141: no panic, nothing on stderr.
#[test]
fn a_closed_pipe_ends_every_listing_quietly() {
    let s = big_sandbox();
    for args in [
        &["sponsorship", "list"][..],
        &["--json", "sponsorship", "list"],
        &["member", "list", "--org", "Acme"],
        &["--json", "member", "list", "--org", "Acme"],
        &["org", "list"],
        &["status"],
    ] {
        let mut child = process(&s)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0_u8; 16];
        let mut stdout = child.stdout.take().unwrap();
        let _ = stdout.read(&mut first).unwrap();
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            matches!(out.status.code(), Some(0 | 141)),
            "{args:?}: {:?} {stderr}",
            out.status
        );
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
    // The big listings cannot fit the pipe: those get 141.
    let mut child = process(&s)
        .args(["sponsorship", "list"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    assert_eq!(child.wait().unwrap().code(), Some(141));
}

/// Logs on a stderr that is not a terminal carry no colour codes, even without `NO_COLOR`;
/// `SPONSORCTL_LOG` sets the filter.
#[test]
fn logs_are_plain_off_a_terminal_and_follow_sponsorctl_log() {
    let s = Sandbox::new();
    std::fs::write(&s.env, "globalSettings__selfHosted=true\n").unwrap();
    let out = s
        .cmd()
        .env_remove("NO_COLOR")
        .args(["-vv", "env", "show"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DEBUG"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes off a terminal: {stderr:?}"
    );

    let quiet = s.run(&["env", "show"]);
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("DEBUG"));
    let out = s
        .cmd()
        .env("SPONSORCTL_LOG", "env_config=debug")
        .args(["env", "show"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("DEBUG") && stderr.contains("env file read"),
        "{stderr}"
    );
}

/// Run by systemd (stderr is the stream `JOURNAL_STREAM` names), log lines carry journald's
/// `<N>` priority prefix, no timestamp of their own and no colour; the same variable inherited
/// by a process whose stderr goes elsewhere changes nothing.
#[test]
fn logs_take_journald_form_when_stderr_is_the_journal() {
    use std::os::unix::fs::MetadataExt as _;
    let s = Sandbox::new();
    std::fs::write(&s.env, "globalSettings__selfHosted=true\n").unwrap();
    let log = s.path().join("journal-stream");
    let file = std::fs::File::create(&log).unwrap();
    let meta = file.metadata().unwrap();
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    let out = s
        .cmd_std()
        .env_remove("NO_COLOR")
        .env("JOURNAL_STREAM", &stream)
        .env("SPONSORCTL_LOG", "env_config=debug")
        .args(["env", "show"])
        .stderr(file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let journal = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = journal.lines().collect();
    assert!(!lines.is_empty(), "nothing logged");
    for line in &lines {
        assert!(
            line.starts_with("<7>"),
            "a debug line has priority 7: {line:?}"
        );
        assert!(
            !line.contains('\u{1b}') && !line.contains("DEBUG"),
            "{line:?}"
        );
        assert!(
            !line[3..].starts_with(|c: char| c.is_ascii_digit()),
            "no timestamp of its own: {line:?}"
        );
    }
    assert!(journal.contains("<7>env file read"), "{journal}");

    // Inherited, but stderr is a pipe: the usual format.
    let out = s
        .cmd()
        .env("JOURNAL_STREAM", &stream)
        .env("SPONSORCTL_LOG", "env_config=debug")
        .args(["env", "show"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("DEBUG") && !stderr.contains("<7>"),
        "{stderr}"
    );
}

/// In `--json` mode a usage error names what is missing, and a failing command's stderr is
/// its JSON error alone.
#[test]
fn json_errors_are_whole_and_alone() {
    let s = Sandbox::new();
    let out = s.run(&["--json", "org", "add"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v: serde_json::Value = serde_json::from_str(stderr.trim()).unwrap();
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("--name") && message.contains("--plan"),
        "{message}"
    );

    let out = s.run(&["--json", "sync"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.trim().is_empty());
    for line in stderr.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON on stderr ({e}): {line}"));
        assert!(v["error"]["category"].is_string(), "{line}");
    }
}

/// An argument that is not UTF-8 is a usage error (exit 2), in human and JSON mode, never a
/// panic; a state path that is not UTF-8 is a path like any other.
#[test]
fn arguments_that_are_not_utf8_are_usage_errors() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let s = Sandbox::new();
    let name = OsStr::from_bytes(b"Acme \xff Corp");
    for json in [false, true] {
        let mut c = process(&s);
        if json {
            c.arg("--json");
        }
        let out = c
            .args(["org", "add", "--plan", "enterprise-annually", "--name"])
            .arg(name)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("invalid UTF-8"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let state = s.path().join(OsStr::from_bytes(b"state-\xff.db"));
    for args in [
        &["org", "list"][..],
        &["org", "add", "--name", "Acme", "--plan", "20"],
    ] {
        let out = process(&s)
            .arg("--state")
            .arg(&state)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        state.exists(),
        "a path that is not UTF-8 works as a state file"
    );
}

/// `completions` prints a script for each shell clap knows, naming the subcommands, and ends
/// quietly on a closed pipe; `man --out DIR` writes a roff page for the command and each
/// subcommand.
#[test]
fn completions_and_man_pages() {
    let s = Sandbox::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = s.ok(&["completions", shell]);
        assert!(
            script.contains("sponsorctl") && script.contains("billing-sync"),
            "{shell}: {}",
            &script[..script.len().min(200)]
        );
    }
    let mut child = process(&s)
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(141));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = s.path().join("man");
    let listed: serde_json::Value =
        serde_json::from_str(&s.ok(&["--json", "man", "--out", dir.to_str().unwrap()])).unwrap();
    let pages: Vec<&str> = listed["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    for page in [
        "sponsorctl.1",
        "sponsorctl-sync.1",
        "sponsorctl-billing-sync-set-token.1",
    ] {
        assert!(pages.contains(&page), "{pages:?}");
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page}: not roff"
        );
    }
    assert!(!pages.iter().any(|p| p.contains("-help")), "{pages:?}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), pages.len());
}

/// The systemd unit runs the daemon with the hardening a process holding secrets needs.
#[test]
fn the_systemd_unit_runs_the_daemon_hardened() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../dist/systemd/sponsorctl-sync.service"
    ))
    .unwrap();
    let directives: Vec<&str> = unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .collect();
    for wanted in [
        "ExecStart=/usr/local/bin/sponsorctl sync --daemon",
        "KillSignal=SIGTERM",
        "NoNewPrivileges=yes",
        "UMask=0077",
        "ProtectSystem=strict",
        "PrivateDevices=yes",
        "CapabilityBoundingSet=",
        "SystemCallFilter=@system-service",
    ] {
        assert!(directives.contains(&wanted), "missing {wanted}");
    }
    for line in &directives {
        assert!(line.contains('='), "not a directive: {line}");
    }
}

/// `member import` run twice adds nothing the second time and says so; a file that names one
/// address twice is refused with both lines.
#[test]
fn member_import_can_run_again() {
    let s = Sandbox::new();
    s.acme();
    let file = s.path().join("members.txt");
    std::fs::write(
        &file,
        "carol@acme.example\nALICE@acme.example\ndave@acme.example\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let first: serde_json::Value =
        serde_json::from_str(&s.ok(&["--json", "member", "import", "--org", "Acme", path]))
            .unwrap();
    assert_eq!(
        (first["added"].as_u64(), first["unchanged"].as_u64()),
        (Some(2), Some(1))
    );
    let before = s.snapshot_state();
    let again = s.ok(&["member", "import", "--org", "Acme", path]);
    assert!(
        again.contains("Added 0 member(s); 3 were members already"),
        "{again}"
    );
    assert_eq!(
        s.snapshot_state(),
        before,
        "the second import changed nothing"
    );

    std::fs::write(
        &file,
        "erin@acme.example\nfrank@acme.example\nErin@acme.example\n",
    )
    .unwrap();
    let out = s.run(&["member", "import", "--org", "Acme", path]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 3") && stderr.contains("line 1"),
        "{stderr}"
    );
    assert_eq!(s.snapshot_state(), before, "a refused import adds nothing");
}

/// `status --check` for monitoring: 0 while no last sync failed, 4 (naming the organization
/// on stderr) once the last sync of an organization with billing sync enabled failed; plain
/// `status` still exits 0.
#[test]
fn status_check_reports_a_failed_last_sync() {
    let s = Sandbox::new();
    s.ok(&[
        "org",
        "add",
        "--name",
        "Acme",
        "--plan",
        "enterprise-annually",
        "--cloud-org-id",
        test_support::CLOUD_ORG_ID,
    ]);
    s.ok_stdin(
        &["billing-sync", "set-token", "--org", "Acme"],
        &format!("{}\n", test_support::BILLING_KEY),
    );
    assert_eq!(s.run(&["status", "--check"]).status.code(), Some(0));
    // No env file: the sync fails before it reaches a cloud, and the failure is recorded.
    assert_eq!(s.run(&["sync"]).status.code(), Some(1));
    assert_eq!(s.run(&["status"]).status.code(), Some(0));
    let out = s.run(&["status", "--check"]);
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Acme: the last sync failed (config)"),
        "{stderr}"
    );
    let out = s.run(&["--json", "status", "--check"]);
    assert_eq!(out.status.code(), Some(4));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["organizations"][0]["lastError"]["category"], "config");
    // Switched off, the organization is no longer watched.
    s.ok(&["billing-sync", "disable", "--org", "Acme"]);
    assert_eq!(s.run(&["status", "--check"]).status.code(), Some(0));
}
