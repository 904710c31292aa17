//! `examples/host_server.rs` as a process: its seed, its two address lines, and a client that
//! speaks to it as the web vault and a browser do.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cloud_emulator::client::EmulatorClient;
use url::Url;

pub const ORG: &str = "22222222-0000-4000-8000-000000000001";
pub const OWNER_TOKEN: &str = "olivia-token";
pub const ALICE_TOKEN: &str = "alice-token";
pub const IVAN_TOKEN: &str = "ivan-token";
pub const OWNER_EMAIL: &str = "olivia@acme.example";

/// The example's own seed (`examples/host-seed.json`): Olivia owns Acme, Alice is a confirmed
/// user, Ivan is invited.
pub fn seed_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/host-seed.json")
}

pub fn host_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            crate::cli_bin::example_binary(
                "host_server",
                &[
                    "examples/host_server.rs",
                    "crates/selfhost-api/src",
                    "crates/store-sqlite/src",
                    "crates/cloud-client/src",
                    "crates/cloud-emulator/src",
                    "crates/sponsorship-core/src",
                ],
            )
        })
        .clone()
}

/// A running host; killed when dropped.
pub struct HostProcess {
    child: Child,
    pub base: Url,
    pub cloud: Url,
    pub cloud_org: String,
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl HostProcess {
    /// Starts the host on `state` with the example's seed.
    pub fn start(state: &Path) -> Self {
        Self::start_with(&seed_file(), state)
    }

    /// Starts the host on `state` with the seed in `seed`.
    pub fn start_with(seed: &Path, state: &Path) -> Self {
        let mut child = Command::new(host_binary())
            .args(["--seed"])
            .arg(seed)
            .args(["--addr", "127.0.0.1:0", "--state"])
            .arg(state)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_mins(1);
        let mut lines = Vec::new();
        while lines.len() < 3 {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(e) => panic!("host_server printed {lines:?}, then {e}"),
            }
        }
        let base = lines[0]
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("the first line says where it listens: {:?}", lines[0]));
        let cloud = lines[1]
            .strip_prefix("cloud ")
            .unwrap_or_else(|| panic!("the second line names the cloud: {:?}", lines[1]));
        let cloud_org = lines[2].rsplit(' ').next().unwrap().to_owned();
        Self {
            child,
            base: Url::parse(&format!("{base}/")).unwrap(),
            cloud: Url::parse(&format!("{cloud}/")).unwrap(),
            cloud_org,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base.as_str().trim_end_matches('/'), path)
    }

    pub fn emulator(&self) -> EmulatorClient {
        EmulatorClient::new(self.cloud.clone()).unwrap()
    }

    /// The billing sync key, as the cloud organization's owner views it through the cloud's
    /// owner flow (their cloud password is their host token).
    pub async fn billing_key(&self) -> String {
        let emulator = self.emulator();
        let session = emulator.login(OWNER_EMAIL, OWNER_TOKEN).await.unwrap();
        let key = emulator
            .billing_sync_key(&session, self.cloud_org.parse().unwrap(), OWNER_TOKEN)
            .await
            .unwrap();
        secrecy::ExposeSecret::expose_secret(&key.api_key).to_owned()
    }

    /// An HTTP client (no redirects followed when `follow` is false).
    pub fn client(follow: bool) -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let policy = if follow {
            reqwest::redirect::Policy::default()
        } else {
            reqwest::redirect::Policy::none()
        };
        reqwest::Client::builder().redirect(policy).build().unwrap()
    }

    /// A web-vault call: (status, body).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&str>,
    ) -> (u16, String) {
        let mut request = Self::client(true)
            .request(method, self.url(&format!("/api{path}")))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json; charset=utf-8")
                .body(body.to_owned());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }
}
