//! The client: HTTP setup, identity tokens, and one request with its retries.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use sponsorship_core::secret::RawSecret;
use sponsorship_core::wire::{ErrorResponse, Scope, TokenErrorResponse, TokenResponse, messages};
use tracing::Instrument;
use url::Url;

use crate::config::{CloudConfig, join_url, redacted_origin};
use crate::error::{Error, ErrorKind, scrub};

/// The wall clock used for timestamps stored in the sync state.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// How the client waits between attempts (tests inject one that records and returns at once).
pub type Sleeper = Arc<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Path of the token endpoint, relative to the identity URL.
pub const TOKEN_PATH: &str = "connect/token";

/// Largest response body read (a 1000-item sync response is a few hundred KiB).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// A token is refreshed this long before it expires (or at half its lifetime when shorter).
const REFRESH_MARGIN: Duration = Duration::from_mins(5);

/// A cached access token.
struct CachedToken {
    token: RawSecret,
    obtained: Instant,
    refresh_at: Instant,
    lifetime: Duration,
}

/// What [`CloudClient::check_identity`] learned; the token itself stays inside the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenInfo {
    /// The scope asked for.
    pub scope: Scope,
    /// The lifetime the identity server granted (`expires_in`).
    pub lifetime: Duration,
    /// When the token expires (wall clock, for display).
    pub expires_at: DateTime<Utc>,
}

/// The client of one cloud region for one installation.
///
/// Cheap to share behind an `Arc`; all methods take `&self`. Tokens are cached per scope.
pub struct CloudClient {
    pub(crate) http: reqwest::Client,
    pub(crate) config: CloudConfig,
    tokens: tokio::sync::Mutex<HashMap<Scope, CachedToken>>,
    pub(crate) clock: Clock,
    sleeper: Sleeper,
}

impl fmt::Debug for CloudClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Builds the default HTTP client for a configuration: rustls with the ring provider (no
/// process-wide provider is installed), the webpki roots plus the optional extra CA bundle, the
/// configured timeouts, user agent and proxy, and redirects only within the same host.
pub fn default_http_client(config: &CloudConfig) -> Result<reqwest::Client, Error> {
    let config_error = |reason: String| Error::new(ErrorKind::Config { reason });
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = &config.extra_ca_pem {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut added = 0_usize;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert
                .map_err(|e| config_error(format!("the extra CA bundle is not valid PEM: {e}")))?;
            roots.add(cert).map_err(|e| {
                config_error(format!(
                    "a certificate of the extra CA bundle is refused: {e}"
                ))
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(config_error(
                "the extra CA bundle holds no PEM certificate".to_owned(),
            ));
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| config_error(format!("TLS setup: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();

    let redirect = reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt.previous().first().is_some_and(|first| {
            first.host_str() == attempt.url().host_str()
                && first.port_or_known_default() == attempt.url().port_or_known_default()
                && (first.scheme() == attempt.url().scheme() || attempt.url().scheme() == "https")
        });
        if same_origin && attempt.previous().len() < 5 {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });

    // `no_proxy()` first: it turns off reqwest's own reading of the proxy environment variables.
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .connect_timeout(config.timeouts.connect)
        .timeout(config.timeouts.request)
        .user_agent(config.user_agent.clone())
        .redirect(redirect);
    if let Some(proxy) = &config.proxy {
        if !matches!(proxy.scheme(), "http" | "https") || proxy.host_str().is_none() {
            return Err(config_error(format!(
                "the proxy URL {} is not an http(s) URL with a host",
                redacted_origin(proxy)
            )));
        }
        let decider = config.clone();
        builder = builder.proxy(reqwest::Proxy::custom(move |url| {
            decider.proxy_for(url).cloned()
        }));
    }
    builder
        .build()
        .map_err(|e| config_error(format!("HTTP client setup: {}", innermost(&e))))
}

impl CloudClient {
    /// A client with the default HTTP client (see [`default_http_client`]).
    pub fn new(config: CloudConfig) -> Result<Self, Error> {
        let http = default_http_client(&config)?;
        Ok(Self::with_http_client(config, http))
    }

    /// A client that uses the caller's `reqwest::Client` (its TLS, proxy, DNS and timeout policy;
    /// the config's proxy and CA settings are then not used).
    pub fn with_http_client(config: CloudConfig, http: reqwest::Client) -> Self {
        Self {
            http,
            config,
            tokens: tokio::sync::Mutex::new(HashMap::new()),
            clock: Arc::new(Utc::now),
            sleeper: Arc::new(|d| Box::pin(tokio::time::sleep(d))),
        }
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

    /// Asks the identity server for a fresh token of `scope` (and caches it). For `doctor`: it
    /// proves the installation id/key are accepted, and says until when, without exposing the
    /// token.
    pub async fn check_identity(&self, scope: Scope) -> Result<TokenInfo, Error> {
        let mut tokens = self.tokens.lock().await;
        let fresh = self.request_token(scope).await?;
        let info = TokenInfo {
            scope,
            lifetime: fresh.lifetime,
            expires_at: (self.clock)()
                + chrono::TimeDelta::from_std(fresh.lifetime).unwrap_or(chrono::TimeDelta::MAX),
        };
        tokens.insert(scope, fresh);
        Ok(info)
    }

    /// Forgets every cached token (after the installation key changed).
    pub async fn forget_tokens(&self) {
        self.tokens.lock().await.clear();
    }

    /// A valid token for `scope`: the cached one unless it is due for refresh, or was obtained
    /// at or before `stale` (the API refused it).
    async fn token(
        &self,
        scope: Scope,
        stale: Option<Instant>,
    ) -> Result<(RawSecret, Instant), Error> {
        let mut tokens = self.tokens.lock().await;
        if let Some(t) = tokens.get(&scope) {
            let refused = stale.is_some_and(|s| t.obtained <= s);
            if !refused && Instant::now() < t.refresh_at {
                return Ok((t.token.clone(), t.obtained));
            }
        }
        let fresh = self.request_token(scope).await?;
        let out = (fresh.token.clone(), fresh.obtained);
        tokens.insert(scope, fresh);
        Ok(out)
    }

    async fn request_token(&self, scope: Scope) -> Result<CachedToken, Error> {
        let client_id = format!("installation.{}", self.config.installation_id);
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("scope", scope.as_str())
            .append_pair("client_id", &client_id)
            .append_pair(
                "client_secret",
                self.config.installation_key.expose_secret(),
            )
            .finish()
            .into_bytes();
        let call = Call {
            method: Method::POST,
            base: &self.config.identity_url,
            path: TOKEN_PATH.to_owned(),
            content_type: "application/x-www-form-urlencoded",
            body: Some(body),
            bearer: None,
            batch: None,
            endpoint: Endpoint::Token,
        };
        let started = Instant::now();
        // The token request itself sends no token (and must not ask for one: no recursion).
        let response: TokenResponse = self
            .execute_with(&call, &[], |_| std::future::ready(Ok(None)))
            .await?;
        let lifetime = Duration::from_secs(response.expires_in);
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        tracing::debug!(
            scope = scope.as_str(),
            lifetime_s = lifetime.as_secs(),
            "obtained an access token"
        );
        Ok(CachedToken {
            token: response.access_token,
            obtained: started,
            refresh_at: started + lifetime.saturating_sub(margin),
            lifetime,
        })
    }

    /// Sends one request with retries and the 401 refresh, and parses a 2xx body as `T`.
    pub(crate) async fn execute<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
        extra_secrets: &[&str],
    ) -> Result<T, Error> {
        let scope = call.bearer;
        self.execute_with(call, extra_secrets, move |stale| async move {
            match scope {
                Some(scope) => self.token(scope, stale).await.map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    async fn execute_with<T, F, Fut>(
        &self,
        call: &Call<'_>,
        extra_secrets: &[&str],
        get_token: F,
    ) -> Result<T, Error>
    where
        T: DeserializeOwned,
        F: Fn(Option<Instant>) -> Fut,
        Fut: Future<Output = Result<Option<(RawSecret, Instant)>, Error>>,
    {
        let url = join_url(call.base, &call.path);
        let host = url.host_str().unwrap_or("?").to_owned();
        let span = tracing::info_span!(
            "cloud_request",
            host = %host,
            path = %url.path(),
            method = %call.method,
            batch = call.batch,
        );
        self.execute_inner(call, &url, extra_secrets, get_token)
            .instrument(span)
            .await
            .map_err(|e| e.with_host(host))
    }

    async fn execute_inner<T, F, Fut>(
        &self,
        call: &Call<'_>,
        url: &Url,
        extra_secrets: &[&str],
        get_token: F,
    ) -> Result<T, Error>
    where
        T: DeserializeOwned,
        F: Fn(Option<Instant>) -> Fut,
        Fut: Future<Output = Result<Option<(RawSecret, Instant)>, Error>>,
    {
        let policy = self.config.retry;
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(policy.base_delay)
            .with_max_delay(policy.max_delay.max(policy.base_delay))
            .with_max_times(usize::try_from(policy.max_attempts.saturating_sub(1)).unwrap_or(0))
            .with_jitter()
            .build();
        let started = Instant::now();
        let mut slept = Duration::ZERO;
        let mut attempts = 0_u32;
        let mut refused_token: Option<Instant> = None;
        let mut refreshed_once = false;
        loop {
            attempts += 1;
            let token = get_token(refused_token).await.map_err(|e| {
                // The token request counts its own attempts; keep the larger count.
                let tries = e.attempts().max(attempts);
                e.with_attempts(tries, started.elapsed().max(slept))
            })?;
            let mut secrets: Vec<&str> = vec![self.config.installation_key.expose_secret()];
            secrets.extend_from_slice(extra_secrets);
            if let Some((t, _)) = &token {
                secrets.push(t.expose_secret());
            }
            let attempt_started = Instant::now();
            let outcome = self
                .send_once(call, url, token.as_ref().map(|t| &t.0))
                .await;
            let duration_ms =
                u64::try_from(attempt_started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let result = match outcome {
                Ok((status, headers, body)) => {
                    tracing::info!(
                        status = status.as_u16(),
                        duration_ms,
                        attempt = attempts,
                        "cloud response"
                    );
                    if status == StatusCode::UNAUTHORIZED
                        && call.bearer.is_some()
                        && !refreshed_once
                    {
                        // The token was refused (expired early, revoked, clock skew): refresh
                        // once and send again without waiting.
                        refreshed_once = true;
                        refused_token = token.as_ref().map(|t| t.1);
                        tracing::info!("access token refused; refreshing it once");
                        continue;
                    }
                    self.classify::<T>(call, status, &headers, &body, &secrets)
                }
                Err(kind) => {
                    tracing::warn!(
                        duration_ms,
                        attempt = attempts,
                        category = kind.category().name(),
                        "request failed: {kind}"
                    );
                    Err(kind)
                }
            };
            let kind = match result {
                Ok(value) => return Ok(value),
                Err(kind) => kind,
            };
            let spent = started.elapsed().max(slept);
            let fail = |kind: ErrorKind| Err(Error::new(kind).with_attempts(attempts, spent));
            if !kind.is_retryable() || attempts >= policy.max_attempts {
                return fail(kind);
            }
            let Some(mut delay) = backoff.next() else {
                return fail(kind);
            };
            if let ErrorKind::RateLimited {
                retry_after: Some(after),
            } = &kind
            {
                delay = *after;
            }
            if spent + delay > policy.max_total {
                tracing::warn!(
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "not retrying: the wait would exceed the retry time budget"
                );
                return fail(kind);
            }
            tracing::info!(
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                attempt = attempts,
                category = kind.category().name(),
                "retrying after a transient failure"
            );
            (self.sleeper)(delay).await;
            slept += delay;
        }
    }

    async fn send_once(
        &self,
        call: &Call<'_>,
        url: &Url,
        token: Option<&RawSecret>,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), ErrorKind> {
        let mut request = self
            .http
            .request(call.method.clone(), url.clone())
            .header(ACCEPT, "application/json");
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, call.content_type)
                .body(body.clone());
        }
        if let Some(token) = token {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
                .map_err(|_| ErrorKind::MalformedResponse {
                    status: 200,
                    detail: "the identity server issued an access token that is not a valid header value".to_owned(),
                })?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        let proxy = self.config.proxy_for(url).map(redacted_origin);
        let mut response = request
            .send()
            .await
            .map_err(|e| classify_transport(&e, proxy.as_deref()))?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_BODY {
                        return Err(ErrorKind::MalformedResponse {
                            status: status.as_u16(),
                            detail: format!("the response is larger than {MAX_BODY} bytes"),
                        });
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(classify_transport(&e, proxy.as_deref())),
            }
        }
        Ok((status, headers, body))
    }

    fn classify<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        secrets: &[&str],
    ) -> Result<T, ErrorKind> {
        let code = status.as_u16();
        if status.is_success() {
            return serde_json::from_slice(body).map_err(|e| ErrorKind::MalformedResponse {
                status: code,
                detail: format!(
                    "{}: {}",
                    call.endpoint.what(),
                    scrub(&e.to_string(), secrets)
                ),
            });
        }
        if status.is_redirection() {
            return Err(ErrorKind::Redirected { status: code });
        }
        if call.endpoint == Endpoint::Token
            && matches!(code, 400 | 401)
            && let Ok(err) = serde_json::from_slice::<TokenErrorResponse>(body)
        {
            return Err(ErrorKind::IdentityRejected {
                identity_host: call.base.host_str().unwrap_or("?").to_owned(),
                error: scrub(&err.error, secrets),
            });
        }
        if call.endpoint == Endpoint::Token && code == 401 {
            // A bare 401 from identity itself: the credentials were refused, not a token.
            return Err(ErrorKind::IdentityRejected {
                identity_host: call.base.host_str().unwrap_or("?").to_owned(),
                error: "HTTP 401".to_owned(),
            });
        }
        let message = serde_json::from_slice::<ErrorResponse>(body)
            .ok()
            .map(|e| scrub(e.message.trim(), secrets));
        match code {
            400 | 404 | 403 | 422 => {
                if let Some(kind) = message.as_deref().and_then(known_message) {
                    return Err(kind);
                }
                if code == 404 {
                    return Err(ErrorKind::ApiChanged {
                        status: code,
                        path: call.path_shape(),
                    });
                }
                Err(ErrorKind::Rejected {
                    status: code,
                    message: message.unwrap_or_else(|| "no message".to_owned()),
                })
            }
            401 => Err(ErrorKind::TokenRefused),
            405 | 410 => Err(ErrorKind::ApiChanged {
                status: code,
                path: call.path_shape(),
            }),
            407 => Err(ErrorKind::Proxy {
                proxy: self
                    .config
                    .proxy
                    .as_ref()
                    .map_or_else(|| "an unconfigured proxy".to_owned(), redacted_origin),
                detail:
                    "the proxy requires authentication (407): put the credentials in the proxy URL"
                        .to_owned(),
            }),
            408 => Err(ErrorKind::Timeout),
            429 => Err(ErrorKind::RateLimited {
                retry_after: retry_after(headers, (self.clock)()),
            }),
            500..=599 => Err(ErrorKind::CloudUnavailable { status: code }),
            _ => Err(ErrorKind::Rejected {
                status: code,
                message: message.unwrap_or_else(|| "no message".to_owned()),
            }),
        }
    }
}

/// Maps the cloud's known error texts to their kinds.
fn known_message(message: &str) -> Option<ErrorKind> {
    if message.eq_ignore_ascii_case(messages::INVALID_BILLING_SYNC_KEY) {
        return Some(ErrorKind::BillingSyncKeyInvalid);
    }
    if message.eq_ignore_ascii_case(messages::INVALID_ORGANIZATION)
        || message.eq_ignore_ascii_case(messages::ORGANIZATION_NOT_FOUND)
    {
        return Some(ErrorKind::CloudOrganizationUnknown {
            message: message.to_owned(),
        });
    }
    let rest = message.trim().strip_prefix("Version ")?;
    let (number, tail) = rest.split_once(' ')?;
    tail.trim_end_matches('.')
        .eq_ignore_ascii_case("is not supported")
        .then(|| ErrorKind::UnsupportedLicenseVersion {
            version: number.parse().ok(),
        })
}

/// Parses `Retry-After`: delay seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(raw).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// Which endpoint a call goes to (for error mapping and messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Token,
    SponsorshipSync,
    License,
}

impl Endpoint {
    fn what(self) -> &'static str {
        match self {
            Self::Token => "token response",
            Self::SponsorshipSync => "sponsorship sync response",
            Self::License => "organization license",
        }
    }
}

/// One request, ready to send (the body is serialized once and reused by every attempt).
pub(crate) struct Call<'a> {
    pub(crate) method: Method,
    pub(crate) base: &'a Url,
    pub(crate) path: String,
    pub(crate) content_type: &'static str,
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) bearer: Option<Scope>,
    pub(crate) batch: Option<usize>,
    pub(crate) endpoint: Endpoint,
}

impl Call<'_> {
    /// The path with ids replaced by `{id}`, for errors.
    fn path_shape(&self) -> String {
        match self.endpoint {
            Endpoint::Token => format!("/{TOKEN_PATH}"),
            Endpoint::SponsorshipSync => format!("/{}", crate::sync::SYNC_PATH),
            Endpoint::License => "/licenses/organization/{id}".to_owned(),
        }
    }
}

/// Sorts a transport failure into DNS, connect, TLS, proxy or timeout.
fn classify_transport(err: &reqwest::Error, proxy: Option<&str>) -> ErrorKind {
    if let Some(tls) = find_tls_error(err) {
        return ErrorKind::Tls { detail: tls };
    }
    let chain = chain_text(err);
    if chain.contains("tunnel error") && !chain.contains("failed to create underlying connection") {
        return ErrorKind::Proxy {
            proxy: proxy.unwrap_or("proxy").to_owned(),
            detail: format!("the proxy refused the tunnel: {}", innermost(err)),
        };
    }
    if let Some(proxy) = proxy
        && (err.is_connect() || err.is_dns())
    {
        return ErrorKind::Proxy {
            proxy: proxy.to_owned(),
            detail: format!("could not reach the proxy: {}", innermost(err)),
        };
    }
    if err.is_dns() {
        return ErrorKind::Dns;
    }
    if err.is_timeout() {
        if err.is_connect() {
            return ErrorKind::Connect {
                detail: "connection timed out".to_owned(),
            };
        }
        return ErrorKind::Timeout;
    }
    if err.is_connect() {
        let refused = io_kind(err) == Some(std::io::ErrorKind::ConnectionRefused);
        return ErrorKind::Connect {
            detail: if refused {
                "connection refused".to_owned()
            } else {
                innermost(err)
            },
        };
    }
    ErrorKind::Connect {
        detail: format!("the connection failed: {}", innermost(err)),
    }
}

fn sources<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    // `io::Error::source` skips the error it wraps; `get_ref` does not (rustls errors arrive
    // wrapped in two `io::Error`s).
    std::iter::successors(Some(err), |e| {
        match e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        }
    })
}

fn find_tls_error(err: &reqwest::Error) -> Option<String> {
    for e in sources(err) {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
    }
    None
}

fn io_kind(err: &reqwest::Error) -> Option<std::io::ErrorKind> {
    sources(err).find_map(|e| e.downcast_ref::<std::io::Error>().map(std::io::Error::kind))
}

fn chain_text(err: &reqwest::Error) -> String {
    sources(err)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

/// The innermost cause's text (reqwest's outer text repeats the URL).
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    sources(err)
        .last()
        .map(ToString::to_string)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_http_date() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:30 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn known_messages_map_to_kinds() {
        assert!(matches!(
            known_message("Invalid Billing Sync Key"),
            Some(ErrorKind::BillingSyncKeyInvalid)
        ));
        assert!(matches!(
            known_message("Invalid organization"),
            Some(ErrorKind::CloudOrganizationUnknown { .. })
        ));
        assert!(matches!(
            known_message("Version 17 is not supported."),
            Some(ErrorKind::UnsupportedLicenseVersion { version: Some(17) })
        ));
        assert!(known_message("Invalid license key.").is_none());
    }
}
