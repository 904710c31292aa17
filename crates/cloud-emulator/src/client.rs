//! A small typed HTTP helper for scripts, demos and tests: drives an emulator (in-process or
//! `sponsorctl cloud serve`) through its owner endpoints and its `/_emulator/` surface.
//! The self-hosted side's own calls (token, sync, license) belong to the `cloud-client` crate.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sponsorship_core::ids::{CloudOrganizationId, InstallationId};
use sponsorship_core::secret::RawSecret;
use sponsorship_core::wire::ErrorResponse;
use url::Url;

use crate::{
    ApiKeyResponse, BillingSyncStatus, CloudRow, FaultRule, Redeemed, ScriptedRedeem, SentEmail,
};

/// What went wrong talking to an emulator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The request did not complete: is the emulator running at that URL?
    #[error("request to {url} failed: {message}")]
    Transport {
        /// The URL (no secrets: the emulator's paths carry none).
        url: String,
        /// The cause.
        message: String,
    },
    /// The emulator answered with an error; `message` is its error text.
    #[error("{url} answered HTTP {status}: {message}")]
    Status {
        /// The URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The error body's message (or the raw body).
        message: String,
    },
    /// The answer was not the expected JSON.
    #[error("{url} answered with unexpected JSON: {message}")]
    Decode {
        /// The URL.
        url: String,
        /// The parser's message.
        message: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// A signed-in user's session.
#[derive(Debug, Clone)]
pub struct Session {
    token: RawSecret,
}

/// Talks to one emulator.
#[derive(Debug, Clone)]
pub struct EmulatorClient {
    http: reqwest::Client,
    base: Url,
}

/// A `reqwest::Client` for plain-HTTP emulators: rustls with the `ring` provider and no trusted
/// roots (the emulator speaks `http` on loopback). Pass your own client for anything else.
pub fn default_http_client() -> Result<reqwest::Client, ClientError> {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ClientError::Build(e.to_string()))?
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| ClientError::Build(e.to_string()))
}

impl EmulatorClient {
    /// A client for the emulator at `base` with [`default_http_client`].
    pub fn new(base: Url) -> Result<Self, ClientError> {
        Ok(Self::with_http_client(base, default_http_client()?))
    }

    /// A client using the caller's `reqwest::Client`.
    pub fn with_http_client(base: Url, http: reqwest::Client) -> Self {
        Self { http, base }
    }

    /// The emulator's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        session: Option<&Session>,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, ClientError> {
        let url = self
            .base
            .join(path)
            .map_err(|e| ClientError::Build(e.to_string()))?;
        let shown = url.to_string();
        let mut req = self
            .http
            .request(method, url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(s) = session {
            req = req.bearer_auth(s.token.expose_secret());
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| ClientError::Transport {
            url: shown.clone(),
            message: e.to_string(),
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| ClientError::Transport {
            url: shown.clone(),
            message: e.to_string(),
        })?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorResponse>(&bytes).map_or_else(
                |_| String::from_utf8_lossy(&bytes).chars().take(500).collect(),
                |e| e.message,
            );
            return Err(ClientError::Status {
                url: shown,
                status: status.as_u16(),
                message,
            });
        }
        let bytes = if status == StatusCode::NO_CONTENT || bytes.is_empty() {
            axum::body::Bytes::from_static(b"null")
        } else {
            bytes
        };
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            url: shown,
            message: e.to_string(),
        })
    }

    /// Signs a user in.
    pub async fn login(&self, email: &str, password: &str) -> Result<Session, ClientError> {
        #[derive(Serialize)]
        struct Body<'a> {
            email: &'a str,
            password: &'a str,
        }
        let s: crate::SessionResponse = self
            .call(
                Method::POST,
                "accounts/login",
                None,
                Some(&Body { email, password }),
            )
            .await?;
        Ok(Session {
            token: s.access_token,
        })
    }

    async fn key(
        &self,
        path: &str,
        session: &Session,
        password: &str,
    ) -> Result<ApiKeyResponse, ClientError> {
        let body = serde_json::json!({"type": 1, "masterPasswordHash": password});
        self.call(Method::POST, path, Some(session), Some(&body))
            .await
    }

    /// Returns the organization's billing sync key, generating it when there is none.
    pub async fn billing_sync_key(
        &self,
        session: &Session,
        org: CloudOrganizationId,
        password: &str,
    ) -> Result<ApiKeyResponse, ClientError> {
        self.key(&format!("organizations/{org}/api-key"), session, password)
            .await
    }

    /// Replaces the organization's billing sync key; the old one stops working at once.
    pub async fn rotate_billing_sync_key(
        &self,
        session: &Session,
        org: CloudOrganizationId,
        password: &str,
    ) -> Result<ApiKeyResponse, ClientError> {
        self.key(
            &format!("organizations/{org}/rotate-api-key"),
            session,
            password,
        )
        .await
    }

    /// `lastSyncDate` of the organization (C8).
    pub async fn sync_status(
        &self,
        session: &Session,
        org: CloudOrganizationId,
    ) -> Result<Option<DateTime<Utc>>, ClientError> {
        let v: serde_json::Value = self
            .call(
                Method::GET,
                &format!("organization/sponsorship/{org}/sync-status"),
                Some(session),
                None::<&()>,
            )
            .await?;
        Ok(v.get("lastSyncDate")
            .and_then(|d| d.as_str())
            .and_then(sponsorship_core::wire::time::parse))
    }

    /// The billing sync dialog's status and message.
    pub async fn billing_sync_status(
        &self,
        session: &Session,
        org: CloudOrganizationId,
    ) -> Result<BillingSyncStatus, ClientError> {
        self.call(
            Method::GET,
            &format!("organizations/{org}/billing-sync-status"),
            Some(session),
            None::<&()>,
        )
        .await
    }

    /// The e-mails sent so far.
    pub async fn outbox(&self) -> Result<Vec<SentEmail>, ClientError> {
        self.call(Method::GET, "_emulator/outbox", None, None::<&()>)
            .await
    }

    /// The cloud sponsorship rows of an organization.
    pub async fn sponsorships(
        &self,
        org: CloudOrganizationId,
    ) -> Result<Vec<CloudRow>, ClientError> {
        self.call(
            Method::GET,
            &format!("_emulator/organizations/{org}/sponsorships"),
            None,
            None::<&()>,
        )
        .await
    }

    /// Redeems an offer as a user (see [`ScriptedRedeem`]).
    pub async fn redeem(&self, request: &ScriptedRedeem) -> Result<Redeemed, ClientError> {
        self.call(Method::POST, "_emulator/redeem", None, Some(request))
            .await
    }

    /// The organization's license JSON, as a file for `sponsorctl license import`.
    pub async fn license_json(
        &self,
        org: CloudOrganizationId,
        installation: Option<InstallationId>,
    ) -> Result<serde_json::Value, ClientError> {
        let path = match installation {
            Some(i) => format!("_emulator/organizations/{org}/license?installationId={i}"),
            None => format!("_emulator/organizations/{org}/license"),
        };
        self.call(Method::GET, &path, None, None::<&()>).await
    }

    /// Sets the license file version the emulator serves.
    pub async fn set_license_version(&self, version: u32) -> Result<(), ClientError> {
        let _: serde_json::Value = self
            .call(
                Method::PUT,
                "_emulator/license-version",
                None,
                Some(&serde_json::json!({ "version": version })),
            )
            .await?;
        Ok(())
    }

    /// Moves the emulator's clock; returns its new "now".
    pub async fn advance_clock(&self, seconds: i64) -> Result<DateTime<Utc>, ClientError> {
        let v: serde_json::Value = self
            .call(
                Method::POST,
                "_emulator/clock",
                None,
                Some(&serde_json::json!({ "advanceSeconds": seconds })),
            )
            .await?;
        v.get("now")
            .and_then(|n| n.as_str())
            .and_then(sponsorship_core::wire::time::parse)
            .ok_or_else(|| ClientError::Decode {
                url: "_emulator/clock".to_owned(),
                message: "no `now` in the answer".to_owned(),
            })
    }

    /// Arms a fault (the emulator must run with fault injection enabled).
    pub async fn inject_fault(&self, rule: &FaultRule) -> Result<(), ClientError> {
        let _: serde_json::Value = self
            .call(Method::POST, "_emulator/faults", None, Some(rule))
            .await?;
        Ok(())
    }
}
