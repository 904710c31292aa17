//! [`CloudClient`]: one cloud region for one installation, and how it is built.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sponsorship_core::wire::Scope;

use crate::config::CloudConfig;
use crate::error::Error;
use crate::token::CachedToken;
use crate::transport::default_http_client;

/// The wall clock used for timestamps stored in the sync state.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// How the client waits between attempts (tests inject one that records and returns at once).
pub type Sleeper = Arc<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The client of one cloud region for one installation.
///
/// Cheap to share behind an `Arc`; all methods take `&self`. Tokens are cached per scope.
pub struct CloudClient {
    pub(crate) http: reqwest::Client,
    pub(crate) config: CloudConfig,
    pub(crate) tokens: tokio::sync::Mutex<HashMap<Scope, CachedToken>>,
    pub(crate) clock: Clock,
    pub(crate) sleeper: Sleeper,
}

impl fmt::Debug for CloudClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl CloudClient {
    /// A client with the default HTTP client (see [`default_http_client`]).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) when the identity or API URL is not
    /// https (plain http only to a loopback host), as `env check` refuses it: the installation
    /// key would go out in clear text. Nothing is sent.
    pub fn new(config: CloudConfig) -> Result<Self, Error> {
        let http = default_http_client(&config)?;
        Self::with_http_client(config, http)
    }

    /// A client that uses the caller's `reqwest::Client` (its TLS, proxy, DNS and timeout policy;
    /// the config's proxy and CA settings are then not used).
    ///
    /// # Errors
    ///
    /// As [`CloudClient::new`]: the URLs must be https (http only to a loopback host).
    pub fn with_http_client(config: CloudConfig, http: reqwest::Client) -> Result<Self, Error> {
        check_endpoints(&config)?;
        Ok(Self {
            http,
            config,
            tokens: tokio::sync::Mutex::new(HashMap::new()),
            clock: Arc::new(Utc::now),
            sleeper: Arc::new(|d| Box::pin(tokio::time::sleep(d))),
        })
    }

    /// Replaces the wall clock (timestamps in the sync state). Durations always use `Instant`.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Replaces how the client waits between attempts (default: `tokio::time::sleep`).
    #[must_use]
    pub fn with_sleeper(mut self, sleeper: Sleeper) -> Self {
        self.sleeper = sleeper;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &CloudConfig {
        &self.config
    }
}

/// The transport's own check of the endpoints, with the message `env check` gives.
fn check_endpoints(config: &CloudConfig) -> Result<(), Error> {
    for (role, url) in [("identity", &config.identity_url), ("API", &config.api_url)] {
        sponsorship_core::region::validate_endpoint(role, url.as_str()).map_err(|e| {
            Error::new(crate::error::ErrorKind::Config {
                reason: format!("{e}: the installation key must not go out in clear text"),
            })
        })?;
    }
    Ok(())
}
