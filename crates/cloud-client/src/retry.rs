//! One call with its retries: exponential back-off with jitter within a count and a time
//! budget, `Retry-After` honoured, and a refused token refreshed once.

use std::future::Future;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use sponsorship_core::secret::RawSecret;
use tracing::Instrument;
use url::Url;

use crate::client::CloudClient;
use crate::config::join_url;
use crate::error::{Error, ErrorKind};
use crate::transport::Call;

/// Parses `Retry-After`: delay seconds or an HTTP date.
impl CloudClient {
    /// One attempt, given at most `left` (a timeout past it).
    async fn send_within(
        &self,
        left: Duration,
        call: &Call<'_>,
        url: &Url,
        token: Option<&RawSecret>,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), ErrorKind> {
        tokio::time::timeout(
            left.max(Duration::from_millis(1)),
            self.send_once(call, url, token),
        )
        .await
        .unwrap_or(Err(ErrorKind::Timeout))
    }
}

pub(crate) fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(raw).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

impl CloudClient {
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

    pub(crate) async fn execute_with<T, F, Fut>(
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
        // A failure of the token request already names the identity host: keep it.
        self.execute_inner(call, &url, extra_secrets, get_token)
            .instrument(span)
            .await
            .map_err(|e| {
                if e.host().is_some() {
                    e
                } else {
                    e.with_host(host)
                }
            })
    }

    pub(crate) async fn execute_inner<T, F, Fut>(
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
            // The attempt gets what is left of the request's budget (connect, body and earlier
            // attempts and waits included), so one hung request costs `max_total`, not
            // attempts × the per-request timeout.
            let left = policy.max_total.saturating_sub(started.elapsed());
            let outcome = self
                .send_within(left, call, url, token.as_ref().map(|t| &t.0))
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
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderValue, RETRY_AFTER};

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
}
