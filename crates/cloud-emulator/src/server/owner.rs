//! The cloud organization's owner: sign-in, the billing sync key (generate, rotate, its
//! information) and the sync status the cloud dialog shows (spec §10.1). Every route but the
//! sign-in takes the signed-in user ([`SignedIn`]).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sponsorship_core::cloud::KeySyncStatus;
use sponsorship_core::ids::UserId;
use sponsorship_core::secret::RawSecret;

use super::extract::SignedIn;
use super::{Shared, Shr, json_body, parse_org};
use crate::problem::ApiError;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/accounts/login", post(login))
        .route("/organizations/{id}/api-key", post(api_key))
        .route("/organizations/{id}/rotate-api-key", post(rotate_api_key))
        .route(
            "/organizations/{id}/api-key-information",
            get(api_key_information),
        )
        .route(
            "/organizations/{id}/api-key-information/{type}",
            get(api_key_information_typed),
        )
        .route(
            "/organizations/{id}/billing-sync-status",
            get(billing_sync_status),
        )
        .route(
            "/organization/sponsorship/{id}/sync-status",
            get(sync_status),
        )
}

#[derive(Deserialize)]
struct LoginBody {
    email: String,
    password: String,
}

/// A signed-in session.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionResponse {
    /// Bearer token for the owner and recipient endpoints (redacted in `Debug`).
    pub access_token: RawSecret,
    /// `Bearer`.
    pub token_type: String,
    /// The user.
    pub user_id: UserId,
}

async fn login(State(shared): Shr, body: Bytes) -> Result<Response, ApiError> {
    let body: LoginBody = json_body(&body)?;
    let (token, user_id) = shared
        .write_volatile_at(|s, now| s.login_at(&body.email, &body.password, now))
        .map_err(|throttled| {
            if throttled {
                ApiError::TooManyRequests(crate::web::THROTTLED_TEXT)
            } else {
                ApiError::bad("Username or password is incorrect. Try again.")
            }
        })?;
    Ok(Json(SessionResponse {
        access_token: RawSecret::new(token),
        token_type: "Bearer".to_owned(),
        user_id,
    })
    .into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiKeyBody {
    #[serde(rename = "type", alias = "Type")]
    key_type: u8,
    #[serde(default, alias = "MasterPasswordHash")]
    master_password_hash: Option<String>,
}

/// The answer of `api-key` and `rotate-api-key` (spec §10.1).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyResponse {
    /// `apiKey`.
    pub object: String,
    /// The 30-character billing sync key.
    pub api_key: RawSecret,
    /// When it was (re)generated.
    #[serde(with = "sponsorship_core::wire::time")]
    pub revision_date: DateTime<Utc>,
}

fn api_key_common(
    shared: &Shared,
    user: UserId,
    id: &str,
    body: &Bytes,
    rotate: bool,
) -> Result<Response, ApiError> {
    let org = parse_org(id)?;
    let body: ApiKeyBody = json_body(body)?;
    let password = body.master_password_hash.unwrap_or_default();
    let key = shared.write(|s, now| s.api_key(user, org, body.key_type, &password, rotate, now))?;
    Ok(Json(ApiKeyResponse {
        object: "apiKey".to_owned(),
        api_key: key.key.to_raw(),
        revision_date: key.revision_date,
    })
    .into_response())
}

async fn api_key(
    State(shared): Shr,
    SignedIn(user): SignedIn,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    api_key_common(&shared, user, &id, &body, false)
}

async fn rotate_api_key(
    State(shared): Shr,
    SignedIn(user): SignedIn,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    api_key_common(&shared, user, &id, &body, true)
}

fn key_information(shared: &Shared, user: UserId, id: &str) -> Result<Response, ApiError> {
    let org = parse_org(id)?;
    let data = shared.read(|s, _| {
        s.owned_org(user, org).map(|r| {
            r.billing_sync_key
                .iter()
                .map(|k| {
                    serde_json::json!({
                        "object": "keyInformation",
                        "keyType": 1,
                        "revisionDate": sponsorship_core::wire::time::format(&k.revision_date),
                    })
                })
                .collect::<Vec<_>>()
        })
    })?;
    Ok(
        Json(serde_json::json!({"object":"list","data":data,"continuationToken":null}))
            .into_response(),
    )
}

async fn api_key_information(
    State(shared): Shr,
    SignedIn(user): SignedIn,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    key_information(&shared, user, &id)
}

/// The path is read first (a type that is no number is refused before the session is
/// looked at), and a key type other than 1 lists nothing without asking for a session.
async fn api_key_information_typed(
    State(shared): Shr,
    UrlPath((id, key_type)): UrlPath<(String, u8)>,
    signed_in: Result<SignedIn, ApiError>,
) -> Result<Response, ApiError> {
    if key_type != 1 {
        return Ok(
            Json(serde_json::json!({"object":"list","data":[],"continuationToken":null}))
                .into_response(),
        );
    }
    let SignedIn(user) = signed_in?;
    key_information(&shared, user, &id)
}

async fn sync_status(
    State(shared): Shr,
    SignedIn(user): SignedIn,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let org = parse_org(&id)?;
    let last = shared.read(|s, _| {
        s.owned_org(user, org)
            .map(|_| s.ledger.latest_sync_date(org))
    })?;
    Ok(Json(serde_json::json!({
        "object": "syncStatus",
        "lastSyncDate": last.map(|t| sponsorship_core::wire::time::format(&t)),
    }))
    .into_response())
}

/// The billing-key status the cloud dialog shows (spec §10.1), as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillingSyncStatus {
    /// Latest sync of any of the organization's rows.
    #[serde(with = "sponsorship_core::wire::time::option")]
    pub last_sync_date: Option<DateTime<Utc>>,
    /// When the key was last generated or rotated (`null`: no key).
    #[serde(with = "sponsorship_core::wire::time::option")]
    pub key_revision_date: Option<DateTime<Utc>>,
    /// The status (`null`: no key).
    pub status: Option<KeySyncStatus>,
    /// The dialog's text, such as "Token rotated 3 days ago. …".
    pub message: Option<String>,
}

async fn billing_sync_status(
    State(shared): Shr,
    SignedIn(user): SignedIn,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let org = parse_org(&id)?;
    let status = shared.read(|s, now| {
        s.owned_org(user, org).map(|r| {
            let status = s.key_status(org, now);
            BillingSyncStatus {
                last_sync_date: s.ledger.latest_sync_date(org),
                key_revision_date: r.billing_sync_key.as_ref().map(|k| k.revision_date),
                message: status.as_ref().and_then(KeySyncStatus::message),
                status,
            }
        })
    })?;
    Ok(Json(status).into_response())
}
