//! The transport: the default HTTP client (TLS roots, proxy, timeouts, redirects) and one
//! request on the wire, its body bounded.

use std::sync::Arc;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use sponsorship_core::secret::RawSecret;
use sponsorship_core::wire::Scope;
use url::Url;

use crate::classify::{classify_transport, innermost};
use crate::client::CloudClient;
use crate::config::{CloudConfig, redacted_origin};
use crate::error::{Error, ErrorKind};
use crate::token::TOKEN_PATH;

/// Largest response body read (a 1000-item sync response is a few hundred KiB).
pub(crate) const MAX_BODY: usize = 16 * 1024 * 1024;

/// Builds the default HTTP client for a configuration: rustls with the ring provider (no
/// process-wide provider is installed), the webpki roots plus the optional extra CA bundle, the
/// configured timeouts, user agent and proxy, and redirects only within the same host.
pub fn default_http_client(config: &CloudConfig) -> Result<reqwest::Client, Error> {
    let config_error = |reason: String| Error::new(ErrorKind::Config { reason });
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = &config.extra_ca_pem {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut added = 0_usize;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert
                .map_err(|e| config_error(format!("the extra CA bundle is not valid PEM: {e}")))?;
            roots.add(cert).map_err(|e| {
                config_error(format!(
                    "a certificate of the extra CA bundle is refused: {e}"
                ))
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(config_error(
                "the extra CA bundle holds no PEM certificate".to_owned(),
            ));
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| config_error(format!("TLS setup: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();

    let redirect = reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt.previous().first().is_some_and(|first| {
            first.host_str() == attempt.url().host_str()
                && first.port_or_known_default() == attempt.url().port_or_known_default()
                && (first.scheme() == attempt.url().scheme() || attempt.url().scheme() == "https")
        });
        if same_origin && attempt.previous().len() < 5 {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });

    // `no_proxy()` first: it turns off reqwest's own reading of the proxy environment variables.
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .connect_timeout(config.timeouts.connect)
        .timeout(config.timeouts.request)
        .user_agent(config.user_agent.clone())
        .redirect(redirect);
    if let Some(proxy) = &config.proxy {
        if !matches!(proxy.scheme(), "http" | "https") || proxy.host_str().is_none() {
            return Err(config_error(format!(
                "the proxy URL {} is not an http(s) URL with a host",
                redacted_origin(proxy)
            )));
        }
        let decider = config.clone();
        builder = builder.proxy(reqwest::Proxy::custom(move |url| {
            decider.proxy_for(url).cloned()
        }));
    }
    builder
        .build()
        .map_err(|e| config_error(format!("HTTP client setup: {}", innermost(&e))))
}

/// Which endpoint a call goes to (for error mapping and messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Token,
    SponsorshipSync,
    License,
}

impl Endpoint {
    pub(crate) fn what(self) -> &'static str {
        match self {
            Self::Token => "token response",
            Self::SponsorshipSync => "sponsorship sync response",
            Self::License => "organization license",
        }
    }
}

/// One request, ready to send (the body is serialized once and reused by every attempt).
pub(crate) struct Call<'a> {
    pub(crate) method: Method,
    pub(crate) base: &'a Url,
    pub(crate) path: String,
    pub(crate) content_type: &'static str,
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) bearer: Option<Scope>,
    pub(crate) batch: Option<usize>,
    pub(crate) endpoint: Endpoint,
}

impl Call<'_> {
    /// The path with ids replaced by `{id}`, for errors.
    pub(crate) fn path_shape(&self) -> String {
        match self.endpoint {
            Endpoint::Token => format!("/{TOKEN_PATH}"),
            Endpoint::SponsorshipSync => format!("/{}", crate::sync::SYNC_PATH),
            Endpoint::License => "/licenses/organization/{id}".to_owned(),
        }
    }
}

impl CloudClient {
    pub(crate) async fn send_once(
        &self,
        call: &Call<'_>,
        url: &Url,
        token: Option<&RawSecret>,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), ErrorKind> {
        let mut request = self
            .http
            .request(call.method.clone(), url.clone())
            .header(ACCEPT, "application/json");
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, call.content_type)
                .body(body.clone());
        }
        if let Some(token) = token {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
                .map_err(|_| ErrorKind::MalformedResponse {
                    status: 200,
                    detail: "the identity server issued an access token that is not a valid header value".to_owned(),
                })?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        let proxy = self.config.proxy_for(url).map(redacted_origin);
        let mut response = request
            .send()
            .await
            .map_err(|e| classify_transport(&e, proxy.as_deref()))?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_BODY {
                        return Err(ErrorKind::MalformedResponse {
                            status: status.as_u16(),
                            detail: format!("the response is larger than {MAX_BODY} bytes"),
                        });
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                // The answer had begun: the cloud may have acted on the request.
                Err(e) if e.is_timeout() => return Err(ErrorKind::Timeout),
                Err(e) => {
                    return Err(ErrorKind::ConnectionLost {
                        detail: format!("HTTP {status} begun: {}", crate::classify::innermost(&e)),
                    });
                }
            }
        }
        Ok((status, headers, body))
    }
}
