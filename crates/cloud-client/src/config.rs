//! The client's configuration: a plain struct. The library reads no environment variable; the
//! CLI maps the env file (and `HTTPS_PROXY` / `NO_PROXY`) onto it.

use std::fmt;
use std::time::Duration;

use sponsorship_core::ids::InstallationId;
use sponsorship_core::region::CloudRegion;
use sponsorship_core::secret::InstallationKey;
use url::Url;

/// Timeouts of one HTTP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect (and TLS handshake through the connector).
    pub connect: Duration,
    /// The whole request, from connecting until the response body is read (100 s by default,
    /// as the reference server's HTTP client).
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(100),
        }
    }
}

/// Bounds of the retries of one request. Only transient failures are retried (DNS, connect,
/// timeout, 429, 5xx); the delays grow exponentially with jitter, and a 429's `Retry-After` is
/// honoured as long as it fits in [`RetryPolicy::max_total`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included (1 = never retry).
    pub max_attempts: u32,
    /// Time budget per request, waits included: no retry starts after it.
    pub max_total: Duration,
    /// First delay; doubles per retry (plus jitter).
    pub base_delay: Duration,
    /// Longest single delay between two attempts (except a `Retry-After` within the budget).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            max_total: Duration::from_mins(2),
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub const fn never() -> Self {
        Self {
            max_attempts: 1,
            max_total: Duration::ZERO,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        }
    }
}

/// Everything the client needs to talk to one cloud region.
///
/// `Debug` never shows the installation key or a proxy password.
#[derive(Clone)]
pub struct CloudConfig {
    /// The installation id (`client_id = installation.<id>`).
    pub installation_id: InstallationId,
    /// The installation key (`client_secret`).
    pub installation_key: InstallationKey,
    /// Identity base URL (`https://identity.bitwarden.com`); `connect/token` is joined to it.
    pub identity_url: Url,
    /// API base URL (`https://api.bitwarden.com`); API paths are joined to it.
    pub api_url: Url,
    /// Request timeouts.
    pub timeouts: Timeouts,
    /// Retry bounds.
    pub retry: RetryPolicy,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Proxy for every non-loopback host not matched by [`CloudConfig::no_proxy`]
    /// (`http://user:pass@proxy:3128`). Used only by the default HTTP client.
    pub proxy: Option<Url>,
    /// Hosts that bypass the proxy, comma-separated (`NO_PROXY` syntax: `example.com`,
    /// `.example.com`, `*`, IP addresses). Loopback never uses the proxy.
    pub no_proxy: Option<String>,
    /// Extra trusted CA certificates, PEM (for TLS-intercepting proxies). Used only by the
    /// default HTTP client.
    pub extra_ca_pem: Option<Vec<u8>>,
}

impl CloudConfig {
    /// A configuration with default timeouts, retries and user agent.
    pub fn new(
        installation_id: InstallationId,
        installation_key: InstallationKey,
        identity_url: Url,
        api_url: Url,
    ) -> Self {
        Self {
            installation_id,
            installation_key,
            identity_url,
            api_url,
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
            user_agent: concat!("cloud-client/", env!("CARGO_PKG_VERSION")).to_owned(),
            proxy: None,
            no_proxy: None,
            extra_ca_pem: None,
        }
    }

    /// A configuration for one of the named regions (or custom endpoints).
    pub fn for_region(
        region: &CloudRegion,
        installation_id: InstallationId,
        installation_key: InstallationKey,
    ) -> Self {
        Self::new(
            installation_id,
            installation_key,
            region.identity_uri(),
            region.api_uri(),
        )
    }

    /// The proxy to use for `url`, if any: none for loopback hosts and hosts matched by
    /// `no_proxy`.
    pub fn proxy_for(&self, url: &Url) -> Option<&Url> {
        let proxy = self.proxy.as_ref()?;
        if sponsorship_core::region::is_loopback_url(url) {
            return None;
        }
        let host = url
            .host_str()?
            .trim_start_matches('[')
            .trim_end_matches(']');
        let bypass = self.no_proxy.as_deref().is_some_and(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .any(|entry| no_proxy_matches(entry, host))
        });
        (!bypass).then_some(proxy)
    }
}

/// One `NO_PROXY` entry against a host: `*`, an exact host or IP, or a domain suffix
/// (`example.com` and `.example.com` both match `api.example.com`).
fn no_proxy_matches(entry: &str, host: &str) -> bool {
    if entry == "*" {
        return true;
    }
    let entry = entry.trim_start_matches("*.").trim_start_matches('.');
    // Drop a port in the entry (`example.com:443`), but keep IPv6 literals whole.
    let entry = match entry.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => entry,
    };
    let entry = entry.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case(entry)
        || (host.len() > entry.len()
            && host[host.len() - entry.len()..].eq_ignore_ascii_case(entry)
            && host.as_bytes()[host.len() - entry.len() - 1] == b'.')
}

/// A URL for logs and errors: scheme, host and port only, no credentials.
pub(crate) fn redacted_origin(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

impl fmt::Debug for CloudConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudConfig")
            .field("installation_id", &self.installation_id)
            .field("installation_key", &self.installation_key)
            .field("identity_url", &self.identity_url.as_str())
            .field("api_url", &self.api_url.as_str())
            .field("timeouts", &self.timeouts)
            .field("retry", &self.retry)
            .field("user_agent", &self.user_agent)
            .field("proxy", &self.proxy.as_ref().map(redacted_origin))
            .field("no_proxy", &self.no_proxy)
            .field(
                "extra_ca_pem",
                &self
                    .extra_ca_pem
                    .as_ref()
                    .map(|p| format!("{} bytes", p.len())),
            )
            .finish()
    }
}

/// Joins a relative path (`connect/token`) to a base URL so that a base with a path keeps it:
/// `https://proxy.example/bw` + `connect/token` = `https://proxy.example/bw/connect/token`
/// (the reference server glues strings, QUIRK 14.16).
pub fn join_url(base: &Url, relative: &str) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty();
        for part in relative.split('/').filter(|p| !p.is_empty()) {
            segments.push(part);
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn join_keeps_a_base_path_with_or_without_slash() {
        assert_eq!(
            join_url(&u("https://proxy.example/bw"), "connect/token").as_str(),
            "https://proxy.example/bw/connect/token"
        );
        assert_eq!(
            join_url(&u("https://proxy.example/bw/"), "/connect/token").as_str(),
            "https://proxy.example/bw/connect/token"
        );
        assert_eq!(
            join_url(
                &u("https://api.bitwarden.com"),
                "organization/sponsorship/sync"
            )
            .as_str(),
            "https://api.bitwarden.com/organization/sponsorship/sync"
        );
        assert_eq!(
            join_url(&u("http://127.0.0.1:8080/"), "licenses/organization/x").as_str(),
            "http://127.0.0.1:8080/licenses/organization/x"
        );
    }

    #[test]
    fn proxy_skips_loopback_and_no_proxy_hosts() {
        let mut cfg = CloudConfig::new(
            InstallationId::new_random(),
            InstallationKey::parse("AbCdEfGhIj0123456789").unwrap(),
            u("https://identity.bitwarden.com"),
            u("https://api.bitwarden.com"),
        );
        cfg.proxy = Some(u("http://user:pw1234@proxy.corp:3128"));
        cfg.no_proxy = Some("identity.bitwarden.com, .corp.example,10.0.0.1".into());
        assert!(cfg.proxy_for(&u("https://api.bitwarden.com/x")).is_some());
        assert!(
            cfg.proxy_for(&u("https://identity.bitwarden.com/"))
                .is_none()
        );
        assert!(cfg.proxy_for(&u("https://a.corp.example/")).is_none());
        assert!(cfg.proxy_for(&u("https://notcorp.example/")).is_some());
        assert!(cfg.proxy_for(&u("http://127.0.0.1:9/")).is_none());
        assert!(cfg.proxy_for(&u("http://localhost:9/")).is_none());
        assert!(cfg.proxy_for(&u("http://10.0.0.1/")).is_none());
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("pw1234") && !dbg.contains("AbCdEf"), "{dbg}");
        cfg.no_proxy = Some("*".into());
        assert!(cfg.proxy_for(&u("https://api.bitwarden.com/x")).is_none());
    }
}
