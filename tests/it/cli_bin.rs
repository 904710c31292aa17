//! The `sponsorctl` binary seen from the root package, and a sandbox seeded in bulk through it.
//!
//! Shared by the crash tests and the benchmarks (`#[path]`-included there): the binary lives
//! next to the running test or bench executable (`<target>/<profile>/deps/…` →
//! `<target>/<profile>/sponsorctl`); it is built once per process with the same profile and
//! target directory when it is missing or older than the sources.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::SystemTime;

use sponsorship_core::ids::CloudOrganizationId;
use tempfile::TempDir;

pub use test_support::{BILLING_KEY, INSTALLATION_ID, INSTALLATION_KEY};
/// The organization's name in the sandbox.
pub const ORG: &str = "Acme Corp";

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The newest modification time of the files at `paths` (relative to the workspace root;
/// a directory counts every file below it), to tell whether a binary built from them is stale.
pub fn newest_modification(paths: &[&str]) -> SystemTime {
    fn walk(path: &Path, newest: &mut SystemTime) {
        if let Ok(entries) = std::fs::read_dir(path) {
            for e in entries.flatten() {
                walk(&e.path(), newest);
            }
        } else if let Ok(m) = std::fs::metadata(path).and_then(|m| m.modified()) {
            *newest = (*newest).max(m);
        }
    }
    let root = workspace_root();
    let mut newest = SystemTime::UNIX_EPOCH;
    for path in paths {
        walk(&root.join(path), &mut newest);
    }
    newest
}

/// The example `name`, next to this test executable (`<target>/<profile>/deps/it-…` →
/// `<target>/<profile>/examples/NAME`), built with the same profile and target directory when
/// it is missing or older than `sources` (`cargo test --all-targets` has built it already).
pub fn example_binary(name: &str, sources: &[&str]) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("executable in <target>/<profile>/deps")
        .to_path_buf();
    let bin = profile_dir.join("examples").join(name);
    let fresh = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .is_ok_and(|built| built >= newest_modification(sources));
    if fresh {
        return bin;
    }
    let mut build = Command::new(env!("CARGO"));
    build.args([
        "build",
        "-p",
        "families-sponsorship",
        "--example",
        name,
        "--target-dir",
    ]);
    build.arg(profile_dir.parent().expect("target dir"));
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    assert!(
        build.status().expect("cargo runs").success(),
        "building the {name} example failed"
    );
    bin
}

/// The newest modification time of the sources `sponsorctl` is built from.
fn newest_source() -> SystemTime {
    let mut paths = Vec::new();
    for krate in [
        "cli",
        "sponsorship-core",
        "cloud-client",
        "cloud-emulator",
        "env-config",
        "store-sqlite",
    ] {
        paths.push(format!("crates/{krate}/src"));
        paths.push(format!("crates/{krate}/Cargo.toml"));
    }
    newest_modification(&paths.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The path of `sponsorctl` for this test or bench executable's profile, built when needed.
pub fn sponsorctl() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("current exe");
        // <target>/<profile>/deps/<exe>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("executable in <target>/<profile>/deps")
            .to_path_buf();
        let bin = profile_dir.join("sponsorctl");
        let fresh = std::fs::metadata(&bin)
            .and_then(|m| m.modified())
            .is_ok_and(|built| built >= newest_source());
        if !fresh {
            let target_dir = profile_dir.parent().expect("target dir");
            let mut cargo = Command::new(env!("CARGO"));
            cargo
                .current_dir(workspace_root())
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "sponsorship-cli",
                    "--bin",
                    "sponsorctl",
                ])
                .arg("--target-dir")
                .arg(target_dir);
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                cargo.arg("--release");
            }
            let status = cargo.status().expect("run cargo build");
            assert!(status.success(), "cargo build -p sponsorship-cli failed");
        }
        assert!(bin.is_file(), "{} is missing", bin.display());
        bin
    })
}

/// A temp directory with a state file and an env file, and `sponsorctl` pointed at them.
pub struct CliSandbox {
    pub dir: TempDir,
    pub state: PathBuf,
    pub env: PathBuf,
    bin: PathBuf,
}

impl CliSandbox {
    pub fn new() -> Self {
        Self::with_binary(sponsorctl())
    }

    /// A sandbox that runs another `sponsorctl` (the bench compares an older build).
    pub fn with_binary(bin: &Path) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = dir.path().join("sponsorctl.db");
        let env = dir.path().join("bwdata/env/global.override.env");
        std::fs::create_dir_all(env.parent().expect("env dir")).expect("create env dir");
        // Licenses of the reference cloud are signed with its test key.
        std::fs::write(
            dir.path().join("license-trust.pem"),
            cloud_emulator::license_signing_key_pem(),
        )
        .expect("write the license trust key");
        Self {
            dir,
            state,
            env,
            bin: bin.to_owned(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `sponsorctl` with this sandbox's files, no proxy and no log filter from the environment.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        self.configure(&mut c);
        c
    }

    /// Gives `c` this sandbox's environment (for running `sponsorctl` under a wrapper).
    pub fn configure(&self, c: &mut Command) {
        c.env("SPONSORCTL_STATE", &self.state)
            .env("SPONSORCTL_ENV_FILE", &self.env)
            .env("NO_COLOR", "1")
            .env(
                "SPONSORCTL_LICENSE_TRUST_KEY",
                self.dir.path().join("license-trust.pem"),
            )
            .env_remove("RUST_LOG")
            .env_remove("SPONSORCTL_LOG")
            .stdin(Stdio::null());
        for v in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
            "NO_PROXY",
            "no_proxy",
        ] {
            c.env_remove(v);
        }
    }

    /// Runs `args` with `stdin`, whatever the exit code.
    pub fn run_with(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = self.cmd();
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        if stdin.is_some() {
            c.stdin(Stdio::piped());
        }
        let mut child = c.spawn().expect("spawn sponsorctl");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        child.wait_with_output().expect("wait for sponsorctl")
    }

    /// Runs `args`, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, None)
    }

    /// Runs `args` with `stdin`, asserts success, returns stdout.
    pub fn ok_with(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run_with(args, stdin);
        assert!(
            out.status.success(),
            "sponsorctl {args:?} failed ({:?}):\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Steps 1 to 3 in bulk: cloud communication towards `base`, the organization with its cloud
    /// id and billing sync token, `n` confirmed members and one offer each (bulk imports).
    pub fn seed(&self, base: &str, cloud_org: CloudOrganizationId, n: usize) {
        std::fs::write(
            &self.env,
            format!(
                "globalSettings__installation__id={INSTALLATION_ID}\nglobalSettings__installation__key={INSTALLATION_KEY}\n"
            ),
        )
        .expect("write env file");
        self.ok(&[
            "env",
            "enable-cloud",
            "--region",
            "custom",
            "--identity-uri",
            base,
            "--api-uri",
            base,
        ]);
        self.ok(&[
            "org",
            "add",
            "--name",
            ORG,
            "--plan",
            "enterprise-annually",
            "--cloud-org-id",
            &cloud_org.to_string(),
        ]);
        self.ok_with(
            &["billing-sync", "set-token", "--org", ORG],
            Some(&format!("{BILLING_KEY}\n")),
        );
        let mut members = String::with_capacity(n * 28);
        let mut offers = String::with_capacity(n * 56);
        for i in 0..n {
            let _ = writeln!(members, "member{i:06}@acme.example");
            let _ = writeln!(
                offers,
                "member{i:06}@acme.example,family{i:06}@home.example"
            );
        }
        let m = self.path().join("members.txt");
        let o = self.path().join("offers.csv");
        std::fs::write(&m, members).expect("write members");
        std::fs::write(&o, offers).expect("write offers");
        self.ok(&["member", "import", "--org", ORG, m.to_str().expect("utf-8")]);
        self.ok(&[
            "sponsorship",
            "import",
            "--org",
            ORG,
            o.to_str().expect("utf-8"),
        ]);
    }

    /// Points the env file's cloud URLs from `old` to `new` (a restarted reference cloud).
    pub fn repoint(&self, old: &str, new: &str) {
        let text = std::fs::read_to_string(&self.env).expect("read env file");
        std::fs::write(&self.env, text.replace(old, new)).expect("write env file");
    }

    /// Copies the state file (and its WAL, if any) to `to`.
    pub fn copy_state_to(&self, to: &Path) {
        copy_db(&self.state, to);
    }

    /// Replaces the state file with the copy at `from`.
    pub fn restore_state_from(&self, from: &Path) {
        copy_db(from, &self.state);
    }
}

fn sidecar(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

fn copy_db(from: &Path, to: &Path) {
    std::fs::copy(from, to).expect("copy state file");
    for suffix in ["-wal", "-shm"] {
        let (src, dst) = (sidecar(from, suffix), sidecar(to, suffix));
        if src.exists() {
            std::fs::copy(&src, &dst).expect("copy state sidecar");
        } else {
            let _ = std::fs::remove_file(&dst);
        }
    }
}

/// The reference cloud's seed: the installation and one Enterprise organization whose billing
/// sync key is [`BILLING_KEY`].
pub fn cloud_seed(cloud_org: CloudOrganizationId) -> cloud_emulator::Seed {
    let mut seed = test_support::seed(INSTALLATION_KEY, ORG);
    seed["organizations"][0]["id"] = serde_json::json!(cloud_org);
    cloud_emulator::Seed::from_json(&seed.to_string()).expect("seed")
}

/// Starts a fresh reference cloud on `rt`; returns it with its base URL (no trailing slash).
pub fn start_cloud(
    rt: &tokio::runtime::Runtime,
    cloud_org: CloudOrganizationId,
) -> (cloud_emulator::RunningEmulator, String) {
    let emulator = rt
        .block_on(cloud_emulator::start(
            cloud_seed(cloud_org),
            cloud_emulator::EmulatorOptions::default(),
        ))
        .expect("start the reference cloud");
    let base = emulator
        .base_url()
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    (emulator, base)
}

/// A runtime for the in-process reference cloud.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}
