//! Error classification: an HTTP answer or a transport failure becomes an [`ErrorKind`].

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use sponsorship_core::wire::{ErrorResponse, TokenErrorResponse, messages};

use crate::client::CloudClient;
use crate::config::redacted_origin;
use crate::error::{ErrorKind, scrub};
use crate::retry::retry_after;
use crate::transport::{Call, Endpoint};

/// Maps the cloud's known error texts to their kinds.
pub(crate) fn known_message(message: &str) -> Option<ErrorKind> {
    if message.eq_ignore_ascii_case(messages::INVALID_BILLING_SYNC_KEY) {
        return Some(ErrorKind::BillingSyncKeyInvalid);
    }
    if message.eq_ignore_ascii_case(messages::INVALID_ORGANIZATION)
        || message.eq_ignore_ascii_case(messages::ORGANIZATION_NOT_FOUND)
    {
        return Some(ErrorKind::CloudOrganizationUnknown {
            message: message.to_owned(),
        });
    }
    let rest = message.trim().strip_prefix("Version ")?;
    let (number, tail) = rest.split_once(' ')?;
    tail.trim_end_matches('.')
        .eq_ignore_ascii_case("is not supported")
        .then(|| ErrorKind::UnsupportedLicenseVersion {
            version: number.parse().ok(),
        })
}

/// Sorts a transport failure into DNS, connect, TLS, proxy or timeout.
pub(crate) fn classify_transport(err: &reqwest::Error, proxy: Option<&str>) -> ErrorKind {
    if let Some(tls) = find_tls_error(err) {
        return ErrorKind::Tls { detail: tls };
    }
    let chain = chain_text(err);
    if chain.contains("tunnel error") && !chain.contains("failed to create underlying connection") {
        return ErrorKind::Proxy {
            proxy: proxy.unwrap_or("proxy").to_owned(),
            detail: format!("the proxy refused the tunnel: {}", innermost(err)),
        };
    }
    if let Some(proxy) = proxy
        && (err.is_connect() || err.is_dns())
    {
        return ErrorKind::Proxy {
            proxy: proxy.to_owned(),
            detail: format!("could not reach the proxy: {}", innermost(err)),
        };
    }
    if err.is_dns() {
        return ErrorKind::Dns;
    }
    if err.is_timeout() {
        if err.is_connect() {
            return ErrorKind::Connect {
                detail: "connection timed out".to_owned(),
            };
        }
        return ErrorKind::Timeout;
    }
    // The request went out and the connection closed before a whole answer came back: not a
    // connection failure, the cloud may have acted.
    if !err.is_connect() && chain.contains("connection closed before message completed") {
        return ErrorKind::ConnectionLost {
            detail: innermost(err),
        };
    }
    if err.is_connect() {
        let refused = io_kind(err) == Some(std::io::ErrorKind::ConnectionRefused);
        return ErrorKind::Connect {
            detail: if refused {
                "connection refused".to_owned()
            } else {
                innermost(err)
            },
        };
    }
    ErrorKind::Connect {
        detail: format!("the connection failed: {}", innermost(err)),
    }
}

pub(crate) fn sources<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    // `io::Error::source` skips the error it wraps; `get_ref` does not (rustls errors arrive
    // wrapped in two `io::Error`s).
    std::iter::successors(Some(err), |e| {
        match e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        }
    })
}

pub(crate) fn find_tls_error(err: &reqwest::Error) -> Option<String> {
    for e in sources(err) {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
    }
    None
}

pub(crate) fn io_kind(err: &reqwest::Error) -> Option<std::io::ErrorKind> {
    sources(err).find_map(|e| e.downcast_ref::<std::io::Error>().map(std::io::Error::kind))
}

pub(crate) fn chain_text(err: &reqwest::Error) -> String {
    sources(err)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

/// The innermost cause's text (reqwest's outer text repeats the URL).
pub(crate) fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    sources(err)
        .last()
        .map(ToString::to_string)
        .unwrap_or_default()
}

impl CloudClient {
    pub(crate) fn classify<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        secrets: &[&str],
    ) -> Result<T, ErrorKind> {
        let code = status.as_u16();
        if status.is_success() {
            return serde_json::from_slice(body).map_err(|e| ErrorKind::MalformedResponse {
                status: code,
                detail: format!(
                    "{}: {}",
                    call.endpoint.what(),
                    scrub(&e.to_string(), secrets)
                ),
            });
        }
        if status.is_redirection() {
            return Err(ErrorKind::Redirected { status: code });
        }
        if call.endpoint == Endpoint::Token
            && matches!(code, 400 | 401)
            && let Ok(err) = serde_json::from_slice::<TokenErrorResponse>(body)
        {
            return Err(ErrorKind::IdentityRejected {
                identity_host: call.base.host_str().unwrap_or("?").to_owned(),
                error: scrub(&err.error, secrets),
            });
        }
        if call.endpoint == Endpoint::Token && code == 401 {
            // A bare 401 from identity itself: the credentials were refused, not a token.
            return Err(ErrorKind::IdentityRejected {
                identity_host: call.base.host_str().unwrap_or("?").to_owned(),
                error: "HTTP 401".to_owned(),
            });
        }
        let message = serde_json::from_slice::<ErrorResponse>(body)
            .ok()
            .map(|e| scrub(e.message.trim(), secrets));
        match code {
            400 | 404 | 403 | 422 => {
                if let Some(kind) = message.as_deref().and_then(known_message) {
                    return Err(kind);
                }
                // Every 404 of the real cloud's API says `Resource not found.`; on the license
                // endpoint it means the cloud organization is unknown (the route itself exists).
                if code == 404
                    && call.endpoint == Endpoint::License
                    && message.as_deref() == Some(messages::RESOURCE_NOT_FOUND)
                {
                    return Err(ErrorKind::CloudOrganizationUnknown {
                        message: messages::RESOURCE_NOT_FOUND.to_owned(),
                    });
                }
                if code == 404 {
                    return Err(ErrorKind::ApiChanged {
                        status: code,
                        path: call.path_shape(),
                    });
                }
                Err(ErrorKind::Rejected {
                    status: code,
                    message: message.unwrap_or_else(|| "no message".to_owned()),
                })
            }
            401 => Err(ErrorKind::TokenRefused),
            405 | 410 => Err(ErrorKind::ApiChanged {
                status: code,
                path: call.path_shape(),
            }),
            407 => Err(ErrorKind::Proxy {
                proxy: self
                    .config
                    .proxy
                    .as_ref()
                    .map_or_else(|| "an unconfigured proxy".to_owned(), redacted_origin),
                detail:
                    "the proxy requires authentication (407): put the credentials in the proxy URL"
                        .to_owned(),
            }),
            408 => Err(ErrorKind::Timeout),
            429 => Err(ErrorKind::RateLimited {
                retry_after: retry_after(headers, (self.clock)()),
            }),
            500 if call.endpoint == Endpoint::SponsorshipSync => {
                Err(ErrorKind::SyncServerError { status: code })
            }
            500..=599 => Err(ErrorKind::CloudUnavailable { status: code }),
            _ => Err(ErrorKind::Rejected {
                status: code,
                message: message.unwrap_or_else(|| "no message".to_owned()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_messages_map_to_kinds() {
        assert!(matches!(
            known_message("Invalid Billing Sync Key"),
            Some(ErrorKind::BillingSyncKeyInvalid)
        ));
        assert!(matches!(
            known_message("Invalid organization"),
            Some(ErrorKind::CloudOrganizationUnknown { .. })
        ));
        assert!(matches!(
            known_message("Version 17 is not supported."),
            Some(ErrorKind::UnsupportedLicenseVersion { version: Some(17) })
        ));
        assert!(known_message("Invalid license key.").is_none());
    }
}
