//! Errors that say what happened: which host, which category, what to do. Never a secret, never
//! an e-mail address.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sponsorship_core::license::LicenseError;
use sponsorship_core::schedule::ErrorCategory;

/// A failed cloud call.
///
/// [`Error::category`] maps it onto the core's [`ErrorCategory`] (stored in the sync state and
/// shown by the CLI); [`Error::kind`] says exactly what happened. `Display` names the host and
/// the category.
#[derive(Debug)]
pub struct Error {
    kind: Box<ErrorKind>,
    host: Option<String>,
    attempts: u32,
    elapsed: Duration,
    batch: Option<(usize, usize)>,
}

/// What went wrong. Each variant says what the operator can do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration cannot be used (bad URL, unreadable CA bundle, bad proxy URL). Fix the
    /// named setting.
    #[error("configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// The host name did not resolve. Check the URL, the DNS servers and that the host is
    /// allowed through the firewall.
    #[error("could not resolve the host name: check DNS and the configured URL")]
    Dns,
    /// The TCP connection was refused or could not be made. Check the firewall allows outbound
    /// HTTPS to the host, and that the host and port are right.
    #[error("could not connect: {detail}")]
    Connect {
        /// Refused, unreachable, timed out…
        detail: String,
    },
    /// The connection broke while the answer was being read: the cloud may have applied the
    /// request. Retried; a sync that stops here converges when it runs again.
    #[error(
        "the connection broke before the answer was complete ({detail}): the cloud may have applied the request"
    )]
    ConnectionLost {
        /// The transport's reason.
        detail: String,
    },
    /// The TLS handshake or the certificate check failed. A TLS-intercepting proxy needs its CA
    /// configured as an extra CA bundle; an `http` server cannot be reached with `https`.
    #[error("TLS failure: {detail}")]
    Tls {
        /// The TLS library's reason.
        detail: String,
    },
    /// The configured proxy could not be reached or refused the request (407 = proxy
    /// credentials needed). Check the proxy URL and credentials, or add the host to `NO_PROXY`.
    #[error("proxy error ({proxy}): {detail}")]
    Proxy {
        /// The proxy, without credentials.
        proxy: String,
        /// What happened.
        detail: String,
    },
    /// The request did not complete in time. Retry later; raise the timeout on slow links.
    #[error("the request timed out")]
    Timeout,
    /// The identity server refused the installation id/key (`invalid_client`). The id and key
    /// belong to one region: check both, and that the identity URL is that region's.
    #[error(
        "installation id/key rejected by {identity_host} ({error}); created for another region? Check the installation id and key and the identity URL"
    )]
    IdentityRejected {
        /// The identity host.
        identity_host: String,
        /// The OAuth error code (`invalid_client`, `invalid_scope`, …).
        error: String,
    },
    /// The API refused a freshly issued token (401 twice). Identity and API URLs probably point
    /// to different regions.
    #[error(
        "the API refused a fresh access token twice: do the identity URL and the API URL belong to the same region?"
    )]
    TokenRefused,
    /// The cloud refused the billing sync key. It was probably rotated in the cloud: generate
    /// or view it there (Billing → Subscription → billing sync) and paste the new token.
    #[error(
        "the cloud refused the billing sync key (Invalid Billing Sync Key): it was probably rotated in the cloud; an owner of the cloud organization views it there (Billing → Subscription → Manage billing sync), then it is saved here again"
    )]
    BillingSyncKeyInvalid,
    /// The cloud does not know the cloud organization. Upload the organization's current
    /// license, and check that the key and license come from this region.
    #[error(
        "the cloud does not know this cloud organization ({message}): upload the current license and check the region"
    )]
    CloudOrganizationUnknown {
        /// The cloud's message.
        message: String,
    },
    /// The cloud asked us to slow down (429). Retry after the given time.
    #[error("rate limited by the cloud{}", retry_after_text(.retry_after.as_ref()))]
    RateLimited {
        /// The cloud's `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// The cloud failed (5xx). Retry later.
    #[error("the cloud answered HTTP {status}: a server error on its side; retry later")]
    CloudUnavailable {
        /// The status code.
        status: u16,
    },
    /// The sponsorship sync answered HTTP 500 on every attempt although the token exchange
    /// worked. The real cloud fails this way when the cloud organization has no billing sync
    /// token at all (QUIRK 14.9): an owner of the cloud organization generates one (Billing →
    /// Subscription → Manage billing sync, with the master password), then it is pasted here.
    #[error(
        "the cloud answered HTTP {status} to the sponsorship sync on every attempt: the cloud organization may have no billing sync token; an owner of the cloud organization generates one in the cloud (Billing → Subscription → Manage billing sync), then paste it here"
    )]
    SyncServerError {
        /// The status code (500).
        status: u16,
    },
    /// A known endpoint answered 404, 405 or 410: the cloud API changed, or the URL points to
    /// the wrong service. Check the URL; update this tool.
    #[error(
        "HTTP {status} on {path}: the cloud API changed or the URL is wrong; check the configured URL and update this tool"
    )]
    ApiChanged {
        /// The status code.
        status: u16,
        /// The request path.
        path: String,
    },
    /// A redirect to another host or to plain http was refused. Configure the final URL.
    #[error("refused to follow a redirect (HTTP {status}) away from the configured host")]
    Redirected {
        /// The status code.
        status: u16,
    },
    /// The response could not be understood. Check the URL points to the cloud; update this
    /// tool if it does.
    #[error("malformed response (HTTP {status}): {detail}")]
    MalformedResponse {
        /// The status code.
        status: u16,
        /// What did not parse.
        detail: String,
    },
    /// The cloud refused the request for another reason; its message says why.
    #[error("the cloud refused the request (HTTP {status}): {message}")]
    Rejected {
        /// The status code.
        status: u16,
        /// The cloud's message (secrets and e-mail addresses removed).
        message: String,
    },
    /// The license is of a file version this release does not understand. Back up `bwdata`,
    /// update the server, then upload the license again.
    #[error(
        "Version {} is not supported. Back up bwdata, update the server, then upload the license again",
        version_text(*.version)
    )]
    UnsupportedLicenseVersion {
        /// The version, when known.
        version: Option<u32>,
    },
    /// The license was fetched but cannot be used here (not for self-hosting, another
    /// installation). Check the installation id and the cloud organization.
    #[error("the cloud's license cannot be used: {0}")]
    LicenseRefused(LicenseError),
    /// The local store failed. See the store's message.
    #[error("the local store failed: {0}")]
    Store(Box<dyn std::error::Error + Send + Sync>),
    /// The run's sync lock was lost before a batch: the run was suspended (stopped process,
    /// paused machine, clock jump) past the lock's expiry and another sync took the
    /// organization over. It stopped before sending anything more; the next sync sends the
    /// current state.
    #[error(
        "the sync lock was lost (this run was suspended past its expiry and another sync took over): stopped before the next batch; the next sync sends the current state"
    )]
    LockLost,
    /// Another sync for this organization is running. Wait for it to finish; a crashed holder's
    /// lock expires on its own.
    #[error("another sync of this organization is running ({holder}, since {since})")]
    Busy {
        /// Who holds the lock.
        holder: String,
        /// Since when.
        since: DateTime<Utc>,
    },
}

fn retry_after_text(d: Option<&Duration>) -> String {
    d.map_or_else(
        || ": retry later".to_owned(),
        |d| format!(": retry after {} s", d.as_secs()),
    )
}

fn version_text(v: Option<u32>) -> String {
    v.map_or_else(|| "of this license".to_owned(), |v| v.to_string())
}

impl ErrorKind {
    /// The core category of this kind.
    pub fn category(&self) -> ErrorCategory {
        match self {
            Self::Config { .. } => ErrorCategory::Config,
            Self::Dns => ErrorCategory::Dns,
            Self::Connect { .. } | Self::ConnectionLost { .. } => ErrorCategory::Connect,
            Self::Tls { .. } => ErrorCategory::Tls,
            Self::Proxy { .. } => ErrorCategory::Proxy,
            Self::Timeout => ErrorCategory::Timeout,
            Self::IdentityRejected { .. } | Self::TokenRefused => ErrorCategory::IdentityRejected,
            Self::BillingSyncKeyInvalid => ErrorCategory::BillingKeyInvalid,
            Self::CloudOrganizationUnknown { .. } => ErrorCategory::CloudOrganizationUnknown,
            Self::RateLimited { .. } => ErrorCategory::RateLimited,
            Self::CloudUnavailable { .. } | Self::SyncServerError { .. } => {
                ErrorCategory::CloudUnavailable
            }
            Self::ApiChanged { .. } | Self::Redirected { .. } => ErrorCategory::ApiChanged,
            Self::MalformedResponse { .. } => ErrorCategory::MalformedResponse,
            Self::Rejected { .. } | Self::LicenseRefused(_) => ErrorCategory::Rejected,
            Self::UnsupportedLicenseVersion { .. } => ErrorCategory::UnsupportedVersion,
            Self::Store(_) => ErrorCategory::Store,
            Self::Busy { .. } | Self::LockLost => ErrorCategory::Busy,
        }
    }

    /// Whether the same request may be retried at once (within the retry policy).
    pub(crate) fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Dns
                | Self::Connect { .. }
                | Self::ConnectionLost { .. }
                | Self::Timeout
                | Self::RateLimited { .. }
                | Self::CloudUnavailable { .. }
                | Self::SyncServerError { .. }
        )
    }
}

impl Error {
    pub(crate) fn new(kind: ErrorKind) -> Self {
        Self {
            kind: Box::new(kind),
            host: None,
            attempts: 0,
            elapsed: Duration::ZERO,
            batch: None,
        }
    }

    pub(crate) fn with_host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    pub(crate) fn with_attempts(mut self, attempts: u32, elapsed: Duration) -> Self {
        self.attempts = attempts;
        self.elapsed = elapsed;
        self
    }

    pub(crate) fn with_batch(mut self, number: usize, of: usize) -> Self {
        self.batch = Some((number, of));
        self
    }

    pub(crate) fn store(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::new(ErrorKind::Store(Box::new(err)))
    }

    /// What happened.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The core category (stored in the sync state).
    pub fn category(&self) -> ErrorCategory {
        self.kind.category()
    }

    /// The host the failing request went to, when there was one.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// Attempts made (0 when no request was sent).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Time spent on the failing request, retries and waits included.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// The batch that failed and the number of batches, for sync errors.
    pub fn batch(&self) -> Option<(usize, usize)> {
        self.batch
    }

    /// Whether a later run may succeed without a change by the operator.
    pub fn is_transient(&self) -> bool {
        self.category().is_transient()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        write!(f, " [category {}", self.category().name())?;
        if let Some(host) = &self.host {
            write!(f, ", host {host}")?;
        }
        if let Some((n, of)) = self.batch {
            write!(f, ", batch {n} of {of}")?;
            if n > 1 {
                write!(f, "; batches 1..{} were stored", n - 1)?;
            }
        }
        if self.attempts > 1 {
            write!(
                f,
                ", {} attempts in {:.1} s",
                self.attempts,
                self.elapsed.as_secs_f64()
            )?;
        }
        f.write_str("]")
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.kind {
            ErrorKind::Store(e) => Some(&**e),
            ErrorKind::LicenseRefused(e) => Some(e),
            _ => None,
        }
    }
}

/// Removes e-mail-like words and the given secrets from a text that came from the network.
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out: String = text
        .split_inclusive(char::is_whitespace)
        .map(|word| {
            if word.contains('@') {
                let trailing: String = word
                    .chars()
                    .rev()
                    .take_while(|c| c.is_whitespace())
                    .collect();
                format!("[e-mail]{trailing}")
            } else {
                word.to_owned()
            }
        })
        .collect();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s, "[REDACTED]");
    }
    // Text from the cloud reaches terminals, logs and the stored sync state: no control
    // characters (an escape sequence could clear a screen or forge lines), at most 300 of them.
    out.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hostile endpoint's message cannot drive the terminal or forge lines.
    #[test]
    fn cloud_text_loses_control_characters_and_is_capped() {
        let hostile = format!(
            "bad\u{1b}[2J\u{1b}[1;1Hfine\r\nFAKE: ok\u{7}{}",
            "x".repeat(1000)
        );
        let clean = scrub(&hostile, &[]);
        assert!(!clean.chars().any(char::is_control), "{clean:?}");
        assert!(
            clean.starts_with("bad [2J [1;1Hfine  FAKE: ok "),
            "{clean:?}"
        );
        assert_eq!(clean.chars().count(), 300);
    }

    #[test]
    fn display_names_category_host_and_batch() {
        let e = Error::new(ErrorKind::CloudUnavailable { status: 503 })
            .with_host("api.bitwarden.com")
            .with_batch(2, 3)
            .with_attempts(4, Duration::from_millis(1500));
        assert_eq!(
            e.to_string(),
            "the cloud answered HTTP 503: a server error on its side; retry later [category cloud-unavailable, host api.bitwarden.com, batch 2 of 3; batches 1..1 were stored, 4 attempts in 1.5 s]"
        );
        assert!(e.is_transient());
    }

    #[test]
    fn scrub_removes_emails_and_secrets() {
        let t = scrub("bad alice@acme.example key Ab3dEf6h here", &["Ab3dEf6h"]);
        assert_eq!(t, "bad [e-mail] key [REDACTED] here");
    }

    #[test]
    fn unsupported_version_tells_what_to_do() {
        let e = ErrorKind::UnsupportedLicenseVersion { version: Some(17) };
        assert_eq!(
            e.to_string(),
            "Version 17 is not supported. Back up bwdata, update the server, then upload the license again"
        );
    }
}
