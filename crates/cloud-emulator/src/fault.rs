//! Fault injection: make the next N requests to a path fail in a chosen way. Off unless
//! [`crate::EmulatorOptions::fault_injection`] is set; the admin endpoint answers loopback
//! peers only.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::server::Shared;

/// How a request fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", deny_unknown_fields)]
#[non_exhaustive]
pub enum Fault {
    /// Answer with this HTTP status (and an error body), optionally with `Retry-After` seconds.
    #[serde(rename_all = "camelCase")]
    Status {
        /// The status code, such as 429 or 503.
        status: u16,
        /// `Retry-After` header value in seconds.
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// Wait this long, then answer normally.
    #[serde(rename_all = "camelCase")]
    Delay {
        /// Milliseconds.
        millis: u64,
    },
    /// Close the connection without an answer.
    Drop,
    /// Answer 200 with a body that is not valid JSON.
    Malformed,
    /// Start a 200 answer, then break the connection in the middle of the body.
    Truncated,
}

/// One armed fault: the next `count` requests whose path is `path` fail with `fault`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRule {
    /// Exact request path, such as `/organization/sponsorship/sync`.
    pub path: String,
    /// How many requests fail (each one uses one).
    #[serde(default = "one")]
    pub count: u32,
    /// How they fail.
    pub fault: Fault,
}

fn one() -> u32 {
    1
}

/// Takes one use of the first rule armed for `path`.
pub(crate) fn take(rules: &mut Vec<FaultRule>, path: &str) -> Option<Fault> {
    let i = rules.iter().position(|r| r.path == path && r.count > 0)?;
    let rule = &mut rules[i];
    rule.count -= 1;
    let fault = rule.fault.clone();
    if rule.count == 0 {
        rules.remove(i);
    }
    Some(fault)
}

fn broken_body(prefix: &'static [u8]) -> Body {
    let items: Vec<Result<Bytes, std::io::Error>> = if prefix.is_empty() {
        vec![Err(std::io::Error::other(
            "injected fault: connection dropped",
        ))]
    } else {
        vec![
            Ok(Bytes::from_static(prefix)),
            Err(std::io::Error::other("injected fault: body truncated")),
        ]
    };
    Body::from_stream(futures_util::stream::iter(items))
}

/// The middleware: applies an armed fault, or passes the request on.
pub(crate) async fn layer(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let fault = if shared.fault_injection && !path.starts_with("/_emulator/") {
        take(&mut shared.faults(), path)
    } else {
        None
    };
    let Some(fault) = fault else {
        return next.run(req).await;
    };
    tracing::info!(path = req.uri().path(), ?fault, "injecting fault");
    match fault {
        Fault::Delay { millis } => {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            next.run(req).await
        }
        Fault::Status {
            status,
            retry_after,
        } => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let mut resp = (
                code,
                axum::Json(sponsorship_core::wire::ErrorResponse::new(format!(
                    "Injected fault: HTTP {status}."
                ))),
            )
                .into_response();
            if let Some(secs) = retry_after
                && let Ok(v) = HeaderValue::from_str(&secs.to_string())
            {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
        Fault::Drop => Response::new(broken_body(b"")),
        Fault::Malformed => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"sponsorshipsBatch":[{"sponsoringOrganizationUserId": 42,,"#,
        )
            .into_response(),
        Fault::Truncated => {
            let mut resp =
                Response::new(broken_body(br#"{"sponsorshipsBatch":[{"sponsoringOrgani"#));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_used_up_in_order() {
        let mut rules = vec![FaultRule {
            path: "/a".into(),
            count: 2,
            fault: Fault::Drop,
        }];
        assert_eq!(take(&mut rules, "/b"), None);
        assert_eq!(take(&mut rules, "/a"), Some(Fault::Drop));
        assert_eq!(take(&mut rules, "/a"), Some(Fault::Drop));
        assert_eq!(take(&mut rules, "/a"), None);
        assert!(rules.is_empty());
    }

    #[test]
    fn rule_json_shape() {
        let r: FaultRule = serde_json::from_str(
            r#"{"path":"/connect/token","count":3,"fault":{"kind":"status","status":503,"retryAfter":7}}"#,
        )
        .unwrap();
        assert_eq!(
            r.fault,
            Fault::Status {
                status: 503,
                retry_after: Some(7)
            }
        );
    }
}
