//! Bad input: a clear message, the right exit code and category, and nothing changed.

use crate::common::{BIN, KEY30, Sandbox};

fn json_error(out: &std::process::Output) -> (String, String) {
    let text = String::from_utf8_lossy(&out.stderr);
    let v: serde_json::Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("stderr is not one JSON error ({e}): {text}"));
    (
        v["error"]["category"].as_str().unwrap().to_owned(),
        v["error"]["message"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn unknown_org_bad_email_and_short_token_change_nothing() {
    let s = Sandbox::new();
    s.acme();
    s.ok_stdin(&["billing-sync", "set-token", "--org", "Acme"], KEY30);
    s.ok(&[
        "sponsorship",
        "offer",
        "--org",
        "Acme",
        "--member",
        "alice@acme.example",
        "--email",
        "a@home.example",
    ]);
    let before = s.snapshot_state();

    let out = s.run(&[
        "--json",
        "sponsorship",
        "offer",
        "--org",
        "Nope",
        "--member",
        "alice@acme.example",
        "--email",
        "x@home.example",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let (cat, msg) = json_error(&out);
    assert_eq!(cat, "not-found");
    assert!(
        msg.contains("unknown organization \"Nope\"") && msg.contains("org list"),
        "{msg}"
    );

    let out = s.run(&[
        "sponsorship",
        "offer",
        "--org",
        "Acme",
        "--member",
        "alice@acme.example",
        "--email",
        "not-an-address",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: ") && err.contains('@'), "{err}");

    let out = s.run(&[
        "--json",
        "member",
        "add",
        "--org",
        "Acme",
        "--email",
        "bad@@acme.example",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json_error(&out).0, "invalid-input");

    let out = s
        .cmd()
        .args(["--json", "billing-sync", "set-token", "--org", "Acme"])
        .write_stdin("Ab3dEf6hIj9l\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let (cat, msg) = json_error(&out);
    assert_eq!(cat, "invalid-input");
    assert!(msg.contains("12 characters, expected 30"), "{msg}");
    assert!(
        !msg.contains("Ab3dEf6hIj9l"),
        "the value is never echoed: {msg}"
    );

    // A domain refusal: bob is only invited.
    let out = s.run(&[
        "--json",
        "sponsorship",
        "offer",
        "--org",
        "Acme",
        "--member",
        "bob@acme.example",
        "--email",
        "b@home.example",
    ]);
    assert_eq!(out.status.code(), Some(2), "a rule's refusal is bad input");
    assert_eq!(
        json_error(&out),
        (
            "refused".to_owned(),
            "Only confirmed users can sponsor other organizations.".to_owned()
        )
    );

    // A bulk import with one bad line adds nothing.
    let file = s.path().join("m.txt");
    std::fs::write(&file, "ok1@acme.example\nbroken\n").unwrap();
    let out = s.run(&["member", "import", "--org", "Acme", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));

    // Usage errors from clap are exit 2, JSON under --json.
    let out = s.run(&["--json", "org", "add", "--name", "X"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json_error(&out).0, "usage");
    let out = s.run(&["org", "add", "--name", "X", "--plan", "platinum"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("enterprise-annually"));

    assert_eq!(
        s.snapshot_state(),
        before,
        "a failed command changes nothing"
    );
}

#[test]
fn missing_env_file_and_unsupported_license() {
    let s = Sandbox::new();
    s.acme();
    let before = s.snapshot_state();
    for args in [
        &["env", "show"][..],
        &["env", "enable-cloud", "--region", "us"],
        &["sync"],
    ] {
        let out = s.run(&[&["--json"][..], args].concat());
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let (cat, msg) = json_error(&out);
        assert!(cat == "config", "{args:?}: {cat} {msg}");
        if args[0] == "env" {
            assert!(
                msg.contains("no such file") && msg.contains("SPONSORCTL_ENV_FILE"),
                "{msg}"
            );
        }
    }
    assert!(
        !s.env.exists(),
        "enable-cloud does not create a missing env file"
    );

    let license = s.path().join("license.json");
    std::fs::write(
        &license,
        r#"{"id":"0b7c2f0e-1111-2222-3333-444455556666","name":"Acme","planType":20,"version":17,"licenseKey":"LK","selfHost":true}"#,
    )
    .unwrap();
    let out = s.run(&[
        "license",
        "import",
        "--org",
        "Acme",
        license.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "unsupported version: back up bwdata, update the server, then upload the license again"
        ),
        "{err}"
    );
    assert_eq!(s.snapshot_state(), before);

    // Custom region needs both URLs; plain http is refused off loopback.
    std::fs::write(
        &s.env,
        "globalSettings__installation__id=0b8e3f2a-6c1d-4e5f-9a7b-2c3d4e5f6a7b\n",
    )
    .unwrap();
    let out = s.run(&[
        "env",
        "enable-cloud",
        "--region",
        "custom",
        "--identity-uri",
        "http://cloud.example",
        "--api-uri",
        "http://cloud.example",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("https"));
    assert_eq!(
        std::fs::read_to_string(&s.env).unwrap(),
        "globalSettings__installation__id=0b8e3f2a-6c1d-4e5f-9a7b-2c3d4e5f6a7b\n"
    );
}

/// Someone else's data is left alone: a read-only command creates no state file, and a state
/// path that names another application's SQLite file is refused without a write.
#[test]
fn read_only_commands_create_nothing_and_foreign_files_are_refused() {
    let s = Sandbox::new();
    let out = s.run(&["status"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!s.state.exists(), "status created the state file");
    s.ok(&["org", "list"]);
    s.ok(&["sponsorship", "list"]);
    assert!(!s.state.exists());

    {
        let conn = rusqlite::Connection::open(&s.state).unwrap();
        conn.execute_batch("CREATE TABLE accounts (id INTEGER PRIMARY KEY);")
            .unwrap();
    }
    let before = std::fs::read(&s.state).unwrap();
    for args in [
        &["status"][..],
        &["org", "add", "--name", "X", "--plan", "20"],
    ] {
        let out = s.run(args);
        let err = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_ne!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.contains("is not a sponsorship state database"), "{err}");
        assert!(err.contains("accounts"), "{err}");
    }
    assert_eq!(
        std::fs::read(&s.state).unwrap(),
        before,
        "the foreign file changed"
    );
}

/// A user who may write the env file but does not own it cannot edit it: the new file would be
/// theirs, and the server's user could lose access to it (issue #16, item 4). Nothing changes.
#[test]
fn a_non_owner_cannot_take_the_env_file_over() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let env = dir.path().join("global.override.env");
    let text = "globalSettings__installation__id=7e0b3c52-3f4c-4d0e-9e57-aa7a1e5c9a10\nglobalSettings__installation__key=AbCdEfGhIj0123456789\n";
    std::fs::write(&env, text).unwrap();
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::os::unix::fs::chown(&env, Some(1001), Some(1001)).unwrap();
    // `setpriv` (util-linux) runs the edit as uid 1000; the test machine's CI runs as root.
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=1000", "--regid=1000", "--clear-groups", BIN])
        .arg("--env-file")
        .arg(&env)
        .arg("--state")
        .arg(dir.path().join("s.db"))
        .args(["env", "enable-cloud", "--region", "us"])
        .output()
        .expect("setpriv runs sponsorctl as another user");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("is owned by uid 1001 gid 1001"), "{err}");
    assert_eq!(std::fs::read_to_string(&env).unwrap(), text);
    let meta = std::fs::metadata(&env).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1001, 1001));
}

/// `cloud serve` does not listen beyond loopback unless told to (issue #16, item 8).
#[test]
fn cloud_serve_refuses_a_non_loopback_address_without_the_flag() {
    let s = Sandbox::new();
    let seed = s.path().join("seed.json");
    std::fs::write(
        &seed,
        r#"{"region":"US","installations":[],"organizations":[],"users":[]}"#,
    )
    .unwrap();
    let out = s.run(&[
        "cloud",
        "serve",
        "--seed",
        seed.to_str().unwrap(),
        "--addr",
        "0.0.0.0:0",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("not a loopback address") && err.contains("--allow-remote"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "it must not listen");
}

/// Runs `sponsorctl ARGS` and fails the test (instead of hanging) if it does not end in 20 s.
fn run_bounded(s: &Sandbox, args: &[&str]) -> std::process::Output {
    use std::time::{Duration, Instant};
    let mut child = s
        .cmd_std()
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sponsorctl {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn mkfifo(path: &std::path::Path) {
    assert!(
        std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap()
            .success()
    );
}

/// A FIFO, a device, an oversized or non-UTF-8 file given where a file is read: a usage error
/// naming the file, at once, and nothing changed (each of these once hung or grew without end).
#[test]
fn fifos_devices_and_oversized_files_are_refused_at_once() {
    let s = Sandbox::new();
    s.acme();
    let before = s.snapshot_state();
    let fifo = s.path().join("input.fifo");
    mkfifo(&fifo);
    let fifo = fifo.to_str().unwrap();
    let big = s.path().join("big.csv");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(16 * 1024 * 1024 + 1)
        .unwrap();
    let latin1 = s.path().join("latin1.csv");
    std::fs::write(
        &latin1,
        b"alice@acme.example,alice@home.example\nb\xe9@x.example\n",
    )
    .unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["member", "import", "--org", "Acme", fifo],
            "it is a FIFO, not a regular file",
        ),
        (
            vec!["sponsorship", "import", "--org", "Acme", fifo],
            "it is a FIFO, not a regular file",
        ),
        (
            vec![
                "billing-sync",
                "set-token",
                "--org",
                "Acme",
                "--token-file",
                fifo,
            ],
            "it is a FIFO, not a regular file",
        ),
        (
            vec![
                "billing-sync",
                "set-token",
                "--org",
                "Acme",
                "--token-file",
                "/dev/zero",
            ],
            "it is a device, not a regular file",
        ),
        (
            vec!["license", "import", "--org", "Acme", fifo],
            "it is a FIFO, not a regular file",
        ),
        (
            vec![
                "sponsorship",
                "import",
                "--org",
                "Acme",
                big.to_str().unwrap(),
            ],
            "it is larger than 16777216 bytes",
        ),
        (
            vec![
                "sponsorship",
                "import",
                "--org",
                "Acme",
                latin1.to_str().unwrap(),
            ],
            "line 2 is not UTF-8 text",
        ),
    ];
    for (args, expected) in cases {
        let out = run_bounded(&s, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(
            err.contains("cannot read the "),
            "{args:?} names what it read: {err}"
        );
    }
    // The env file as a FIFO: every command that reads it says so and ends.
    for args in [vec!["env", "show"], vec!["env", "check"], vec!["doctor"]] {
        let out = run_bounded(&s, &[&["--env-file", fifo], args.as_slice()].concat());
        let err = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_ne!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(
            err.contains("is a FIFO, not a regular file"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(s.snapshot_state(), before, "nothing changed");
}

/// Names with control characters (an escape sequence would reach terminals and pages) or
/// nothing in them are refused; names with spaces and quotes are fine, and every command
/// suggested with them pastes into a shell.
#[test]
fn names_with_control_characters_are_refused_and_odd_names_are_quoted() {
    let s = Sandbox::new();
    for (name, expected) in [
        (
            "Evil\u{1b}[2JCorp",
            "contains a control character (U+001B at character 5)",
        ),
        ("   ", "the organization name is empty"),
        ("Line\nbreak", "contains a control character (U+000A"),
    ] {
        let out = s.run(&[
            "org",
            "add",
            "--name",
            name,
            "--plan",
            "enterprise-annually",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name:?}: {err}");
        assert!(err.contains(expected), "{name:?}: {err}");
    }
    assert!(
        s.ok(&["--json", "org", "list"]).contains("[]"),
        "nothing added"
    );

    let odd = "Bob's \"Big\" Co";
    s.ok(&["org", "add", "--name", odd, "--plan", "enterprise-annually"]);
    s.ok(&[
        "member",
        "add",
        "--org",
        odd,
        "--email",
        "alice@acme.example",
    ]);
    let out = s.run(&[
        "sponsorship",
        "offer",
        "--org",
        odd,
        "--member",
        "alice@acme.example",
        "--email",
        "alice@home.example",
        "--friendly-name",
        "Alice\u{7}",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--friendly-name contains a control character (U+0007"),
        "{err}"
    );

    // `sync` names the fix with the name quoted for a shell.
    std::fs::write(
        &s.env,
        format!(
            "globalSettings__installation__id={}\nglobalSettings__installation__key=Q3rT7yU1iO5pA9sD2fG6\n",
            crate::common::INSTALLATION_ID
        ),
    )
    .unwrap();
    s.ok(&["env", "enable-cloud", "--region", "us"]);
    let out = s.run(&["sync", "--org", odd]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let quoted = r#"--org 'Bob'\''s "Big" Co'"#;
    assert!(err.contains(quoted), "{err}");
    // The suggested command runs as pasted into sh.
    let suggested = err
        .split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("no command suggested: {err}"))
        .replace("sponsorctl ", &format!("{} ", crate::common::BIN));
    // Pasted into sh, it reaches the organization: what it misses is only the token.
    let sh = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{suggested} < /dev/null"))
        .env("SPONSORCTL_STATE", &s.state)
        .output()
        .unwrap();
    let sh_err = String::from_utf8_lossy(&sh.stderr);
    assert!(
        sh_err.contains("the billing sync key is empty"),
        "{suggested}: {sh_err}"
    );
}

/// A damaged state file: each cause is said once (SQLite's and the store's messages used to
/// repeat it three times), in words, with the file named.
#[test]
fn a_damaged_state_file_says_each_cause_once() {
    let s = Sandbox::new();
    std::fs::write(&s.state, "not a database, just text\n".repeat(200)).unwrap();
    for args in [
        vec!["status"],
        vec!["org", "add", "--name", "A", "--plan", "enterprise-annually"],
    ] {
        let out = s.run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        let line = err
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("{err}"));
        assert_eq!(line.matches("file is not a database").count(), 1, "{line}");
        assert!(line.contains(&s.state.display().to_string()), "{line}");
        assert!(!line.contains("Error code"), "{line}");
    }
}

/// Read-only commands work on a state file its reader cannot write (a read-only directory, a
/// read-only file, another user): they open it read-only ("attempt to write a readonly
/// database" was the error before).
#[test]
fn read_only_commands_work_on_a_read_only_state() {
    use std::os::unix::fs::PermissionsExt as _;
    let s = Sandbox::new();
    s.acme();
    s.ok(&[
        "sponsorship",
        "offer",
        "--org",
        "Acme",
        "--member",
        "alice@acme.example",
        "--email",
        "alice@home.example",
    ]);
    let before = std::fs::read(&s.state).unwrap();
    // Readable by everyone (the directories too), writable by nobody but root.
    std::fs::set_permissions(&s.state, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(s.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    // As an unprivileged user (the tests run as root, which may write anything).
    for args in [
        vec!["status"],
        vec!["org", "list"],
        vec!["member", "list", "--org", "Acme"],
        vec!["sponsorship", "list"],
        vec!["billing-sync", "show", "--org", "Acme"],
    ] {
        let out = std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                crate::common::BIN,
            ])
            .arg("--state")
            .arg(&s.state)
            .args(&args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("readonly"), "{args:?}: {err}");
    }
    std::fs::set_permissions(s.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(
        std::fs::read(&s.state).unwrap(),
        before,
        "nothing was written"
    );
}

/// With billing sync switched off, `sync` names the switch, not a new token.
#[test]
fn a_disabled_billing_sync_names_the_switch() {
    let s = Sandbox::new();
    s.acme();
    s.ok_stdin(
        &["billing-sync", "set-token", "--org", "Acme"],
        &format!("{KEY30}\n"),
    );
    s.ok(&["billing-sync", "disable", "--org", "Acme"]);
    std::fs::write(
        &s.env,
        format!(
            "globalSettings__installation__id={}\nglobalSettings__installation__key=Q3rT7yU1iO5pA9sD2fG6\n",
            crate::common::INSTALLATION_ID
        ),
    )
    .unwrap();
    s.ok(&["env", "enable-cloud", "--region", "us"]);
    let out = s.run(&["sync", "--org", "Acme"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`sponsorctl billing-sync enable --org Acme`"),
        "{err}"
    );
    assert!(!err.contains("set-token"), "{err}");
}
