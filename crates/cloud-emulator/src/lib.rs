//! # cloud-emulator
//!
//! A reference cloud for Families-for-Enterprise sponsorships that runs on `127.0.0.1`: the
//! offline peer for end-to-end tests, `sponsorctl demo` and operators trying their setup.
//! One server answers identity (`/connect/token`) and API paths, so a self-hosted server uses
//! the emulator's base URL as both its identity and its API URI.
//!
//! It executes the cloud-side rules of [`sponsorship_core::cloud`] (sync algorithm, key check,
//! redemption, removal, key status); it has no rules of its own. What it adds:
//!
//! * the server-to-server endpoints, wire-compatible with the real cloud:
//!   `POST /connect/token`, `POST /organization/sponsorship/sync`,
//!   `GET /licenses/organization/{id}` (a GET with a JSON body);
//! * owner flows: `POST /accounts/login` (an emulator shortcut for the real login), `POST
//!   /organizations/{id}/api-key`, `POST /organizations/{id}/rotate-api-key`,
//!   `GET /organizations/{id}/api-key-information`,
//!   `GET /organization/sponsorship/{id}/sync-status`, and
//!   `GET /organizations/{id}/billing-sync-status` (the dialog's "token rotated" warning);
//! * the recipient's **redemption web page** at `/redeem?token=…&email=…[&register=true]`
//!   (offer links point there instead of the real vault's `/#/accept-families-for-enterprise`),
//!   plus the JSON forms `POST /organization/sponsorship/validate-token`, `…/redeem` and
//!   `DELETE /organization/sponsorship/sponsored/{id}`;
//! * an inspection surface under `/_emulator/` for loopback peers only (outbox, cloud rows,
//!   license JSON, the license signing key, scripted redemption, license version, clock, fault
//!   injection).
//!
//! Licenses are signed as the real cloud signs them (claims token and legacy signature), with
//! the reference cloud's own test key ([`license_signing_key_pem`]): a self-hosted verifier
//! trusts it only when told to.
//!
//! # Faithful to the real cloud
//!
//! The reference cloud stands in for Bitwarden's cloud, so it behaves as the real one does,
//! quirks included (bitwarden/server; spec sections in brackets). Fixes for these belong on the
//! self-hosted side, and `tests/it/real_cloud.rs` shows each.
//!
//! | behaviour | spec |
//! |---|---|
//! | two items of one new member in a batch create two rows and two offers; every later sync of the organization answers 500 | 14.2 |
//! | a new recipient or friendly name on an existing row is ignored; nobody is e-mailed | 14.3, §7 c |
//! | the answer's `toDelete` echoes the item; a recipient's removal (C7) is never reported back | 14.4 |
//! | `toDelete` + `lastSyncDate` without a cloud row creates the row, e-mails it, answers `cloudSponsorshipRemoved` | 14.5 |
//! | a cloud organization without a billing sync key answers 500 (a blank key is 400 first) | 14.9, §6 |
//! | a missing `billingSyncKey` is `400 Invalid Billing Sync Key`; a missing `sponsorshipsBatch` is 500 | §5.3, §6 |
//! | request members bind case-insensitively; missing members are defaults | §3 |
//! | error bodies: `object`, `message`, `validationErrors` and three `null` exception members | §3 |
//! | 404 bodies say `Resource not found.` (license sync of an unknown organization too) | §17 (4.1 S3) |
//! | a bare 401 for a missing or bad token, a bare 403 for a token without the endpoint's scope | §17 (3, 4.1) |
//! | license sync checks organization, license key (answered after 2 s), billing key, installation, in that order | §17 (4.1 S3) |
//! | sync accepts any valid installation token (no installation check) | §6 |
//! | access tokens live 24 h | §4.1 S1 |
//! | licenses carry a signed claims token and a legacy signature | §11 |
//! | blank recipients get a row but no e-mail (a mail transport refuses the address) | §7 |
//!
//! Kinder than the real cloud, on purpose and by name only: [`EmulatorOptions::fault_injection`]
//! (tests), the `/_emulator/` inspection surface (loopback only), and the redemption page
//! standing in for the web vault's. Stricter, because `sponsorctl cloud serve` ships it:
//! registration works only when the seed sets `allowRegistration`, a refused change writes
//! nothing to the data file, sign-ins are refused for a minute after 5 failures for one
//! account, and `cloud serve` listens on a non-loopback address only with `--allow-remote`.
//!
//! State comes from a [`Seed`] and can persist to a data file between runs.
//!
//! # Example
//!
//! ```
//! use cloud_emulator::{EmulatorOptions, Seed, start};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let seed = Seed::from_json(r#"{"region":"US","installations":[],"organizations":[],"users":[]}"#)?;
//! let emulator = start(seed, EmulatorOptions::default()).await?;
//! assert!(emulator.base_url().as_str().starts_with("http://127.0.0.1:"));
//! assert!(emulator.outbox().is_empty());
//! emulator.stop().await?;
//! # Ok(())
//! # }
//! ```

mod error;
mod fault;
mod licensing;
mod listen;
mod outbox;
mod problem;
mod seed;
mod server;
mod state;
mod tokens;
mod web;

pub mod client;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use sponsorship_core::ids::CloudOrganizationId;
use sponsorship_core::license::{CURRENT_LICENSE_VERSION, OrganizationLicense};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use url::Url;

pub use error::Error;
pub use fault::{Fault, FaultRule};
pub use licensing::{license_signing_key_pem, license_trust_anchor};
pub use listen::{HEADER_READ_TIMEOUT, MAX_CONNECTIONS};
pub use seed::{Seed, SeedInstallation, SeedOrganization, SeedUser};
pub use server::{
    ApiKeyResponse, BODY_LIMIT, BillingSyncStatus, CloudRow, ScriptedRedeem, SessionResponse,
};
pub use state::{OFFER_SUBJECT, Redeemed, SentEmail};
pub use tokens::OFFER_TOKEN_PREFIX;

/// A clock: returns "now". Tests pass a fixed or stepping clock; the default is the system's.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// How to run an emulator. Start from [`EmulatorOptions::default`] and change fields.
#[derive(Clone)]
#[non_exhaustive]
pub struct EmulatorOptions {
    /// Address to listen on; default `127.0.0.1:0` (a free port).
    pub bind: SocketAddr,
    /// Keep the state in this file between runs (written atomically, mode `0600`). When the
    /// file exists it is loaded and the seed is ignored.
    pub data_file: Option<PathBuf>,
    /// The base URL put into offer links; default `http://<bound address>/` (with `127.0.0.1`
    /// when listening on all interfaces).
    pub public_base_url: Option<Url>,
    /// Lifetime of installation access tokens, in seconds; default 86,400 (24 h, as the real
    /// identity server issues them).
    pub token_lifetime_seconds: u64,
    /// License file version served; default [`CURRENT_LICENSE_VERSION`]. Ignored when a data
    /// file is loaded (it keeps its own; change it with [`RunningEmulator::set_license_version`]).
    pub license_version: u32,
    /// Enables fault injection (admin endpoint and [`RunningEmulator::inject_fault`]).
    pub fault_injection: bool,
    /// How long a client may take to send a request's headers, or stay idle between
    /// requests; default [`HEADER_READ_TIMEOUT`].
    pub header_read_timeout: std::time::Duration,
    /// Connections served at once (more are closed at once); default [`MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// The clock; default the system clock.
    pub clock: Option<Clock>,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            data_file: None,
            public_base_url: None,
            token_lifetime_seconds: 86_400,
            license_version: CURRENT_LICENSE_VERSION,
            fault_injection: false,
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            clock: None,
        }
    }
}

impl fmt::Debug for EmulatorOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorOptions")
            .field("bind", &self.bind)
            .field("data_file", &self.data_file)
            .field("public_base_url", &self.public_base_url)
            .field("token_lifetime_seconds", &self.token_lifetime_seconds)
            .field("license_version", &self.license_version)
            .field("fault_injection", &self.fault_injection)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("max_connections", &self.max_connections)
            .field("clock", &self.clock.as_ref().map(|_| "custom"))
            .finish()
    }
}

/// A running emulator. Dropping it stops the server too; [`RunningEmulator::stop`] waits for
/// the server to finish.
pub struct RunningEmulator {
    addr: SocketAddr,
    base_url: Url,
    shared: Arc<server::Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl fmt::Debug for RunningEmulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningEmulator")
            .field("base_url", &self.base_url.as_str())
            .finish_non_exhaustive()
    }
}

/// Starts an emulator on `options.bind` (default `127.0.0.1:0`) and returns once it listens.
pub async fn start(seed: Seed, options: EmulatorOptions) -> Result<RunningEmulator, Error> {
    let state = match &options.data_file {
        Some(path) => server::load(path)?,
        None => None,
    };
    let fresh = state.is_none();
    let state = state.unwrap_or_else(|| state::State::from_seed(seed, options.license_version));
    if fresh && let Some(path) = &options.data_file {
        server::save(path, &state)?;
    }
    let listener = tokio::net::TcpListener::bind(options.bind)
        .await
        .map_err(|source| Error::Bind {
            addr: options.bind,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: options.bind,
        source,
    })?;
    let base_url = if let Some(u) = &options.public_base_url {
        u.clone()
    } else {
        // Listening on all interfaces: links still need a host a browser can open.
        let mut shown = addr;
        if shown.ip().is_unspecified() {
            shown.set_ip(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        Url::parse(&format!("http://{shown}/")).map_err(|e| Error::Server(e.to_string()))?
    };
    let limits = listen::Limits {
        header_read_timeout: options.header_read_timeout,
        max_connections: options.max_connections,
    };
    let shared = Arc::new(server::Shared::new(state, base_url.clone(), options));
    let app = server::router(shared.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        listen::serve(listener, app, limits, rx).await;
        Ok::<(), std::io::Error>(())
    });
    tracing::info!(%addr, "cloud emulator listening");
    Ok(RunningEmulator {
        addr,
        base_url,
        shared,
        shutdown: Some(tx),
        task: Some(task),
    })
}

/// The entry for `sponsorctl cloud serve`: listens on `addr`, keeping state in `data_file`.
/// The caller prints `listening on http://{local_addr}` and waits (for example for Ctrl-C)
/// before calling [`RunningEmulator::stop`].
pub async fn serve(
    seed: Seed,
    addr: SocketAddr,
    data_file: Option<PathBuf>,
) -> Result<RunningEmulator, Error> {
    let options = EmulatorOptions {
        bind: addr,
        data_file,
        ..EmulatorOptions::default()
    };
    start(seed, options).await
}

impl RunningEmulator {
    /// The base URL, such as `http://127.0.0.1:41234/`: identity URI = API URI = this.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and waits until it has finished.
    pub async fn stop(mut self) -> Result<(), Error> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.wait().await
    }

    /// Waits until the server ends (it ends only when stopped or on an error).
    pub async fn wait(mut self) -> Result<(), Error> {
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(Error::Server(e.to_string())),
                Err(e) => return Err(Error::Server(e.to_string())),
            }
        }
        Ok(())
    }

    /// Arms a fault (see [`Fault`]). Returns `false`, and arms nothing, when fault injection
    /// is off in the options.
    pub fn inject_fault(&self, rule: FaultRule) -> bool {
        if !self.shared.fault_injection {
            return false;
        }
        self.shared.faults().push(rule);
        true
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        self.shared.faults().clear();
    }

    /// The license file version served from now on.
    pub fn set_license_version(&self, version: u32) {
        self.shared.write(|s, _| s.license_version = version);
    }

    /// Moves the emulator's clock forward (or back, with a negative delta).
    pub fn advance_clock(&self, by: TimeDelta) {
        self.shared.write(|s, _| {
            s.clock_offset_seconds = s.clock_offset_seconds.saturating_add(by.num_seconds());
        });
    }

    /// The emulator's current time.
    pub fn now(&self) -> DateTime<Utc> {
        self.shared.read(|_, now| now)
    }

    /// The e-mails sent so far, oldest first (sync requests only queue them; reading renders
    /// the queued ones).
    pub fn outbox(&self) -> Vec<SentEmail> {
        self.shared.outbox()
    }

    /// The cloud sponsorship rows of an organization.
    pub fn sponsorships(&self, org: CloudOrganizationId) -> Vec<CloudRow> {
        self.shared.read(|s, _| {
            s.ledger
                .of_organization(org)
                .into_iter()
                .map(CloudRow::of)
                .collect()
        })
    }

    /// The license the cloud issues for the organization now (for `sponsorctl license import`).
    pub fn license(
        &self,
        org: CloudOrganizationId,
        installation: Option<sponsorship_core::ids::InstallationId>,
    ) -> Option<OrganizationLicense> {
        self.shared
            .read(|s, now| s.license_of(org, installation, now))
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
