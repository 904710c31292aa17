//! What the handlers take from a request besides its body: the signed-in user of a bearer
//! session, and the layer that keeps the inspection routes to loopback peers.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sponsorship_core::ids::UserId;

use super::{Shared, bearer};
use crate::problem::ApiError;

/// The signed-in user of the request's bearer session; a request without a valid one is
/// refused with 401 before the handler runs.
pub(crate) struct SignedIn(pub(crate) UserId);

impl FromRequestParts<Arc<Shared>> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        shared: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or(ApiError::Unauthorized)?;
        shared
            .read(|s, _| s.session_user(token).map(|u| u.id))
            .map(SignedIn)
            .ok_or(ApiError::Unauthorized)
    }
}

/// Whether a peer may use the inspection routes.
fn is_loopback(peer: SocketAddr) -> Result<(), ApiError> {
    if peer.ip().is_loopback() {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// The layer of the inspection routes: 403 for a peer that is not on loopback.
pub(crate) async fn loopback_only(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    match is_loopback(peer) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspection_answers_loopback_peers_only() {
        assert!(is_loopback("127.0.0.1:5000".parse().unwrap()).is_ok());
        assert!(is_loopback("[::1]:5000".parse().unwrap()).is_ok());
        assert_eq!(
            is_loopback("10.1.2.3:5000".parse().unwrap()),
            Err(ApiError::Forbidden)
        );
    }
}
