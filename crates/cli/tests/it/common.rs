//! A sandbox per test: a temp directory with the state file and the env file, and the binary
//! with `SPONSORCTL_STATE` / `SPONSORCTL_ENV_FILE` pointing there.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use tempfile::TempDir;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_sponsorctl");

/// A valid-looking billing sync key (30 alphanumerics) for local tests.
pub(crate) const KEY30: &str = "Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd";

pub(crate) struct Sandbox {
    pub(crate) dir: TempDir,
    pub(crate) state: PathBuf,
    pub(crate) env: PathBuf,
}

impl Sandbox {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("sponsorctl.db");
        let env = dir.path().join("bwdata/env/global.override.env");
        std::fs::create_dir_all(env.parent().unwrap()).unwrap();
        // Licenses of the reference cloud are signed with its test key.
        std::fs::write(
            dir.path().join("license-trust.pem"),
            cloud_emulator::license_signing_key_pem(),
        )
        .unwrap();
        Self { dir, state, env }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The binary with this sandbox's files and no proxy from the environment.
    pub(crate) fn cmd(&self) -> Command {
        Command::from_std(self.cmd_std())
    }

    /// [`Sandbox::cmd`] as a `std` command, for a process the test spawns and signals.
    pub(crate) fn cmd_std(&self) -> std::process::Command {
        let mut c = std::process::Command::new(BIN);
        let (set, removed) = self.environment();
        c.envs(set);
        for v in removed {
            c.env_remove(v);
        }
        c
    }

    /// The variables the sandbox's commands get, and those they must not inherit.
    fn environment(&self) -> (Vec<(&'static str, PathBuf)>, [&'static str; 8]) {
        let set = vec![
            ("SPONSORCTL_STATE", self.state.clone()),
            ("SPONSORCTL_ENV_FILE", self.env.clone()),
            ("NO_COLOR", PathBuf::from("1")),
            (
                "SPONSORCTL_LICENSE_TRUST_KEY",
                self.dir.path().join("license-trust.pem"),
            ),
        ];
        let removed = [
            "RUST_LOG",
            "SPONSORCTL_LOG",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
            "NO_PROXY",
            "no_proxy",
        ];
        (set, removed)
    }

    /// Runs `sponsorctl ARGS` on a pseudo-terminal (stdin, stdout and stderr all on it, as an
    /// operator types): for each `(prompt, answer)`, waits (bounded) until the screen shows
    /// `prompt`, then types `answer` and Enter. Returns the exit code and everything the
    /// terminal showed, echoes included.
    pub(crate) fn run_on_terminal(&self, args: &[&str], script: &[(&str, &str)]) -> (u32, String) {
        use portable_pty::{CommandBuilder, PtySize, native_pty_system};
        use std::io::{Read as _, Write as _};
        use std::sync::{Arc, Mutex};
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: 40,
                cols: 250,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let mut cmd = CommandBuilder::new(BIN);
        cmd.args(args);
        cmd.cwd(self.path());
        let (set, removed) = self.environment();
        for (k, v) in set {
            cmd.env(k, v);
        }
        for k in removed {
            cmd.env_remove(k);
        }
        let mut child = pair.slave.spawn_command(cmd).unwrap();
        drop(pair.slave);
        let screen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = pair.master.try_clone_reader().unwrap();
        let sink = screen.clone();
        let pump = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let mut writer = pair.master.take_writer().unwrap();
        let shown = |screen: &Arc<Mutex<Vec<u8>>>| {
            String::from_utf8_lossy(&screen.lock().unwrap()).into_owned()
        };
        for (prompt, answer) in script {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while !shown(&screen).contains(prompt) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the terminal never showed {prompt:?}:\n{}",
                    shown(&screen)
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            writer.write_all(format!("{answer}\r").as_bytes()).unwrap();
            writer.flush().unwrap();
        }
        let status = child.wait().unwrap();
        drop(writer);
        drop(pair.master);
        let _ = pump.join();
        (status.exit_code(), shown(&screen))
    }

    /// Runs and returns the output, whatever the exit code.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Runs, asserts success, returns stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "sponsorctl {args:?} failed ({:?}):\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs with `input` on stdin, asserts success, returns stdout.
    pub(crate) fn ok_stdin(&self, args: &[&str], input: &str) -> String {
        let out = self.cmd().args(args).write_stdin(input).output().unwrap();
        assert!(
            out.status.success(),
            "sponsorctl {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Everything the store holds, as JSON, for "nothing changed" checks.
    pub(crate) fn snapshot_state(&self) -> String {
        let orgs = self.ok(&["--json", "org", "list"]);
        let rows = self.ok(&["--json", "sponsorship", "list"]);
        let status = self.ok(&["--json", "status"]);
        let mut members = String::new();
        let parsed: serde_json::Value = serde_json::from_str(&orgs).unwrap();
        for o in parsed["organizations"].as_array().unwrap() {
            let id = o["id"].as_str().unwrap();
            members.push_str(&self.ok(&["--json", "member", "list", "--org", id]));
            members.push_str(&self.ok(&["--json", "billing-sync", "show", "--org", id]));
        }
        format!("{orgs}{rows}{status}{members}")
    }

    /// Adds alice (confirmed) to `org` and has her offer a sponsorship to alice@home.example.
    pub(crate) fn alice_offers(&self, org: &str) {
        self.ok(&[
            "member",
            "add",
            "--org",
            org,
            "--email",
            "alice@acme.example",
        ]);
        self.ok(&[
            "sponsorship",
            "offer",
            "--org",
            org,
            "--member",
            "alice@acme.example",
            "--email",
            "alice@home.example",
        ]);
    }

    /// Creates Acme (Enterprise) with alice (confirmed) and bob (invited); returns the org id.
    pub(crate) fn acme(&self) -> String {
        let id = self.ok(&[
            "org",
            "add",
            "--name",
            "Acme",
            "--plan",
            "enterprise-annually",
        ]);
        self.ok(&[
            "member",
            "add",
            "--org",
            "Acme",
            "--email",
            "alice@acme.example",
        ]);
        self.ok(&[
            "member",
            "add",
            "--org",
            "Acme",
            "--email",
            "bob@acme.example",
            "--status",
            "invited",
        ]);
        id.trim().to_owned()
    }
}

/// Snapshot filters: ids, times and temp paths vary per run.
pub(crate) fn filters(sandbox: &Sandbox) -> Vec<(String, String)> {
    vec![
        (
            regex_escape(&sandbox.path().display().to_string()),
            "[TEMP]".into(),
        ),
        (
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}".into(),
            "[UUID]".into(),
        ),
        (
            r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z| UTC)?".into(),
            "[TIME]".into(),
        ),
        (r"\d{4}-\d{2}-\d{2}".into(), "[DATE]".into()),
        (r"127\.0\.0\.1:\d+".into(), "127.0.0.1:[PORT]".into()),
        (r"pid \d+".into(), "pid [PID]".into()),
        ("…[A-Za-z0-9]{4}".into(), "…[LAST4]".into()),
        (r"\d+\.\d s\)".into(), "[SECS] s)".into()),
    ]
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Asserts a snapshot with the sandbox's filters.
#[macro_export]
macro_rules! snap {
    ($sandbox:expr, $name:expr, $value:expr) => {{
        let filters = $crate::common::filters($sandbox);
        let mut settings = insta::Settings::clone_current();
        for (re, with) in &filters {
            settings.add_filter(re, with.as_str());
        }
        settings.set_prepend_module_to_snapshot(false);
        settings.bind(|| insta::assert_snapshot!($name, $value));
    }};
}

/// The reference cloud, in this process, and a sandbox set up through the four steps up to the
/// billing sync token (cloud communication on, Acme Corp with its license and token).
pub(crate) struct Cloud {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) emulator: Option<cloud_emulator::RunningEmulator>,
    pub(crate) base: String,
    pub(crate) installation_key: String,
    pub(crate) billing_key: String,
    pub(crate) acme: sponsorship_core::ids::CloudOrganizationId,
    pub(crate) families: sponsorship_core::ids::CloudOrganizationId,
}

pub(crate) use test_support::INSTALLATION_ID;
pub(crate) const OWNER: (&str, &str) = ("owner@acme.example", "owner-test-password");
pub(crate) const DANA: (&str, &str) = ("dana@home.example", "dana-test-password");

impl Cloud {
    pub(crate) fn emulator(&self) -> &cloud_emulator::RunningEmulator {
        self.emulator.as_ref().unwrap()
    }

    /// Holds the next `count` sync requests `millis` in the cloud (fault injection must be on).
    pub(crate) fn delay_syncs(&self, count: u32, millis: u64) {
        let rule: cloud_emulator::FaultRule = serde_json::from_value(serde_json::json!({
            "path": "/organization/sponsorship/sync", "count": count,
            "fault": {"kind": "delay", "millis": millis}
        }))
        .unwrap();
        assert!(self.emulator().inject_fault(rule));
    }

    pub(crate) fn client(&self) -> cloud_emulator::client::EmulatorClient {
        cloud_emulator::client::EmulatorClient::new(url::Url::parse(&self.base).unwrap()).unwrap()
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        if let Some(e) = self.emulator.take() {
            let _ = self.rt.block_on(e.stop());
        }
    }
}

/// Starts the cloud and runs steps 1 and 2 with the binary. `args_prefix` is put before every
/// command (for example `-vv`); the commands' outputs are appended to `log`.
pub(crate) fn setup_cloud(
    s: &Sandbox,
    fault_injection: bool,
    args_prefix: &[&str],
    log: &mut String,
) -> Cloud {
    setup_cloud_named(s, "Acme Corp", fault_injection, args_prefix, log)
}

/// [`setup_cloud`] for an organization of another name (tests that share a server database
/// give each run's organization a name of its own).
pub(crate) fn setup_cloud_named(
    s: &Sandbox,
    org_name: &str,
    fault_injection: bool,
    args_prefix: &[&str],
    log: &mut String,
) -> Cloud {
    use secrecy::ExposeSecret;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let acme = sponsorship_core::ids::CloudOrganizationId::new_random();
    let families = sponsorship_core::ids::CloudOrganizationId::new_random();
    let installation_key = "Q3rT7yU1iO5pA9sD2fG6".to_owned();
    let seed = serde_json::json!({
        "region": "US",
        "installations": [{"id": INSTALLATION_ID, "key": installation_key, "region": "US"}],
        "organizations": [
            {"id": acme, "name": org_name, "planType": 20},
            {"id": families, "name": "Dana's Family", "planType": 22},
        ],
        "users": [
            {"email": OWNER.0, "password": OWNER.1, "ownerOf": [acme]},
            {"email": DANA.0, "password": DANA.1, "ownerOf": [families]},
        ],
    });
    let seed = cloud_emulator::Seed::from_json(&seed.to_string()).unwrap();
    let mut options = cloud_emulator::EmulatorOptions::default();
    options.fault_injection = fault_injection;
    let emulator = rt.block_on(cloud_emulator::start(seed, options)).unwrap();
    let base = emulator
        .base_url()
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let mut cloud = Cloud {
        rt,
        emulator: Some(emulator),
        base: base.clone(),
        installation_key: installation_key.clone(),
        billing_key: String::new(),
        acme,
        families,
    };

    let run = |args: &[&str], stdin: Option<&str>, log: &mut String| {
        let mut c = s.cmd();
        c.args(args_prefix).args(args);
        if let Some(input) = stdin {
            c.write_stdin(input);
        }
        let out = c.output().unwrap();
        log.push_str(&String::from_utf8_lossy(&out.stdout));
        log.push_str(&String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{args:?} failed: {log}");
        String::from_utf8(out.stdout).unwrap()
    };
    // Step 1: the env file as Setup writes it, then cloud communication for the local cloud.
    std::fs::write(
        &s.env,
        format!(
            "globalSettings__installation__id={INSTALLATION_ID}\nglobalSettings__installation__key={installation_key}\n"
        ),
    )
    .unwrap();
    // Setup writes the file 0600.
    std::fs::set_permissions(&s.env, std::fs::Permissions::from_mode(0o600)).unwrap();
    run(
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
        log,
    );
    // Step 2: the organization, its license, and the owner's token pasted on stdin.
    run(
        &[
            "org",
            "add",
            "--name",
            org_name,
            "--plan",
            "enterprise-annually",
        ],
        None,
        log,
    );
    let license = cloud
        .emulator()
        .license(acme, Some(test_support::installation_id()))
        .unwrap();
    let license_file = s.path().join("license.json");
    std::fs::write(&license_file, serde_json::to_string(&license).unwrap()).unwrap();
    run(
        &[
            "license",
            "import",
            "--org",
            org_name,
            license_file.to_str().unwrap(),
        ],
        None,
        log,
    );
    let client = cloud.client();
    let key = cloud.rt.block_on(async {
        let session = client.login(OWNER.0, OWNER.1).await.unwrap();
        client
            .billing_sync_key(&session, acme, OWNER.1)
            .await
            .unwrap()
    });
    key.api_key
        .expose_secret()
        .clone_into(&mut cloud.billing_key);
    run(
        &["billing-sync", "set-token", "--org", org_name, "--verify"],
        Some(&format!("{}\n", cloud.billing_key)),
        log,
    );
    cloud
}

/// Writes `n` members (`memberNNNN@acme.example`) and one offer each to files for `member
/// import` and `sponsorship import`; returns their paths.
pub(crate) fn write_bulk(s: &Sandbox, n: usize) -> (String, String) {
    let mut members = String::new();
    let mut offers = String::new();
    for i in 0..n {
        members.push_str(&format!("member{i:04}@acme.example\n"));
        offers.push_str(&format!(
            "member{i:04}@acme.example,family{i:04}@home.example\n"
        ));
    }
    let m = s.path().join("members.txt");
    let o = s.path().join("offers.csv");
    std::fs::write(&m, members).unwrap();
    std::fs::write(&o, offers).unwrap();
    (m.display().to_string(), o.display().to_string())
}
