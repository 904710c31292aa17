//! The axum adapter (feature `axum`): every route on a [`Router`], to nest under the host's
//! API prefix, and the pages on another.
//!
//! ```
//! use std::sync::Arc;
//!
//! use selfhost_api::pages::Pages;
//! use selfhost_api::{Host, SelfHostedApi};
//!
//! /// The host's own router gets the web vault's endpoints under `/api` and the pages at `/`.
//! fn mount<H: Host>(host: Arc<H>) -> axum::Router {
//!     let api = Arc::new(SelfHostedApi::new(host));
//!     axum::Router::new()
//!         .nest("/api", selfhost_api::axum::api_router(api.clone()))
//!         .merge(selfhost_api::axum::pages_router(Arc::new(Pages::new(api))))
//! }
//! ```

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::api::SelfHostedApi;
use crate::host::Host;
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::pages::Pages;

/// The largest body read (license uploads are far smaller; the reference reads 51 200 bytes).
const BODY_LIMIT: usize = 256 * 1024;

/// The API's routes: nest it under the prefix the web vault calls (`/api`).
pub fn api_router<H: Host>(api: Arc<SelfHostedApi<H>>) -> Router {
    Router::new().fallback(serve_api::<H>).with_state(api)
}

/// The pages' routes; merge it where [`Pages::mounted_at`] says.
pub fn pages_router<H: Host>(pages: Arc<Pages<H>>) -> Router {
    Router::new().fallback(serve_pages::<H>).with_state(pages)
}

async fn serve_api<H: Host>(
    State(api): State<Arc<SelfHostedApi<H>>>,
    request: Request,
) -> Response {
    match neutral(request).await {
        Ok(request) => framework(api.handle(&request).await),
        Err(response) => response,
    }
}

async fn serve_pages<H: Host>(State(pages): State<Arc<Pages<H>>>, request: Request) -> Response {
    match neutral(request).await {
        Ok(request) => framework(pages.handle(&request).await),
        Err(response) => response,
    }
}

/// axum's request as the neutral one (the path is the nested router's, prefix removed).
async fn neutral(request: Request) -> Result<HttpRequest, Response> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE.into_response())?;
    let mut neutral = HttpRequest::new(Method::parse(parts.method.as_str()), parts.uri.path());
    neutral.query = parts.uri.query().map(str::to_owned);
    for (name, value) in &parts.headers {
        if let Ok(value) = value.to_str() {
            neutral = neutral.header(name.as_str(), value);
        }
    }
    Ok(neutral.body(body.to_vec()))
}

/// The neutral response as axum's.
fn framework(response: HttpResponse) -> Response {
    let mut out = Response::new(Body::from(response.body));
    *out.status_mut() =
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in response.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            out.headers_mut().append(name, value);
        }
    }
    out
}
