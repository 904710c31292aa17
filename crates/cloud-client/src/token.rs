//! Identity tokens: requested with the installation's credentials, cached per scope, and
//! refreshed before they expire.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::Method;
use secrecy::ExposeSecret;
use sponsorship_core::secret::RawSecret;
use sponsorship_core::wire::{Scope, TokenResponse};

use crate::client::CloudClient;
use crate::error::Error;
use crate::transport::{Call, Endpoint};

/// Path of the token endpoint, relative to the identity URL.
pub const TOKEN_PATH: &str = "connect/token";

/// A token is refreshed this long before it expires (or at half its lifetime when shorter).
const REFRESH_MARGIN: Duration = Duration::from_mins(5);

/// A cached access token.
pub(crate) struct CachedToken {
    pub(crate) token: RawSecret,
    pub(crate) obtained: Instant,
    pub(crate) refresh_at: Instant,
    pub(crate) lifetime: Duration,
}

/// What [`CloudClient::check_identity`] learned; the token itself stays inside the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenInfo {
    /// The scope asked for.
    pub scope: Scope,
    /// The lifetime the identity server granted (`expires_in`).
    pub lifetime: Duration,
    /// When the token expires (wall clock, for display).
    pub expires_at: DateTime<Utc>,
}

impl CloudClient {
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
    pub(crate) async fn token(
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

    pub(crate) async fn request_token(&self, scope: Scope) -> Result<CachedToken, Error> {
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
}
