//! API errors with the reference cloud's body shape (spec §3).

use std::collections::BTreeMap;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sponsorship_core::wire::{ErrorResponse, TokenErrorResponse};

/// An API failure, mapped like the reference cloud's exception filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ApiError {
    /// 400 with a message.
    BadRequest(String),
    /// 400 `The model state is invalid.` with field errors.
    ModelState(&'static str, String),
    /// 404 `Resource not found.`
    NotFound,
    /// Bare 401 (what the JWT middleware answers).
    Unauthorized,
    /// Bare 403 (what an authorization policy answers to a valid token without its scope).
    Forbid,
    /// 400 with a message, answered after the real cloud's deliberate 2 s delay (a wrong
    /// license key).
    DelayedBadRequest(&'static str),
    /// 403 for the inspection surface from a non-loopback peer.
    Forbidden,
    /// 400 from the identity endpoint.
    Token(TokenErrorResponse),
    /// 500 `An unhandled server error has occurred.`
    Internal,
    /// 429 with a message (sign-in attempts throttled).
    TooManyRequests(&'static str),
}

impl ApiError {
    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    pub(crate) fn token(error: &str) -> Self {
        Self::Token(TokenErrorResponse {
            error: error.to_owned(),
            error_description: None,
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::BadRequest(message) => {
                (StatusCode::BAD_REQUEST, Json(ErrorResponse::new(message))).into_response()
            }
            Self::ModelState(field, message) => {
                let mut body = ErrorResponse::new("The model state is invalid.");
                body.validation_errors = Some(BTreeMap::from([(field.to_owned(), vec![message])]));
                (StatusCode::BAD_REQUEST, Json(body)).into_response()
            }
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                Json(ErrorResponse::new("Resource not found.")),
            )
                .into_response(),
            Self::Unauthorized => StatusCode::UNAUTHORIZED.into_response(),
            Self::Forbid => StatusCode::FORBIDDEN.into_response(),
            Self::DelayedBadRequest(message) => {
                (StatusCode::BAD_REQUEST, Json(ErrorResponse::new(message))).into_response()
            }
            Self::Forbidden => (
                StatusCode::FORBIDDEN,
                Json(ErrorResponse::new(
                    "The emulator's inspection surface answers loopback peers only.",
                )),
            )
                .into_response(),
            Self::Token(body) => (StatusCode::BAD_REQUEST, Json(body)).into_response(),
            Self::TooManyRequests(message) => (
                StatusCode::TOO_MANY_REQUESTS,
                Json(ErrorResponse::new(message)),
            )
                .into_response(),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(ErrorResponse::new(
                    "An unhandled server error has occurred.",
                )),
            )
                .into_response(),
        }
    }
}
