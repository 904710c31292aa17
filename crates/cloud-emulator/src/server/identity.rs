//! Identity and server-to-server: the installation's token, the sponsorship sync and the
//! license (spec §4, §7, §11).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Form, Path as UrlPath, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sponsorship_core::secret::RawSecret;
use sponsorship_core::wire::Scope;

use super::{Shared, Shr, bearer, binding};
use crate::problem::ApiError;

/// How long the real cloud waits before it answers a wrong license key (spec §4.1 S3).
const LICENSE_KEY_DELAY: std::time::Duration = std::time::Duration::from_secs(2);

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/connect/token", post(token))
        .route("/organization/sponsorship/sync", post(sync))
        .route("/licenses/organization/{id}", get(license))
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<RawSecret>,
}

async fn token(
    State(shared): Shr,
    form: Result<Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return ApiError::token("invalid_request").into_response();
    };
    let lifetime = shared.options.token_lifetime_seconds;
    let result = shared.read(|s, now| {
        s.issue_token(
            form.grant_type.as_deref().unwrap_or_default(),
            form.scope.as_deref().unwrap_or_default(),
            form.client_id.as_deref().unwrap_or_default(),
            &form.client_secret.unwrap_or_else(|| RawSecret::new("")),
            now,
            lifetime,
        )
    });
    match result {
        Ok(body) => Json(body).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn sync(State(shared): Shr, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    shared.read(|s, now| s.authorize(bearer(&headers), Scope::Installation, now))?;
    let request = binding::sync_body(&body)?;
    let response = shared.write(|s, now| s.sync(&request, now))?;
    drop(request);
    // Serialized after the state lock is released, into a buffer sized for the usual item
    // (about 150 bytes), so it does not grow by doubling.
    let mut out = Vec::with_capacity(64 + response.sponsorships_batch.len() * 160);
    serde_json::to_writer(&mut out, &response).map_err(|_| ApiError::Internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        out,
    )
        .into_response())
}

async fn license(
    State(shared): Shr,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let claims = shared.read(|s, now| s.authorize(bearer(&headers), Scope::Licensing, now))?;
    // `new Guid(id)` throws on a malformed id: a 500 in the real cloud.
    let org = id.parse().map_err(|_| ApiError::Internal)?;
    let request = binding::license_body(&body)?;
    match shared.read(|s, now| s.license(org, &request, claims.client_sub, now)) {
        Ok(license) => Ok(Json(license).into_response()),
        Err(e @ ApiError::DelayedBadRequest(_)) => {
            tokio::time::sleep(LICENSE_KEY_DELAY).await;
            Err(e)
        }
        Err(e) => Err(e),
    }
}
