//! Cross-site request forgery protection of the pages' forms: each form carries an HMAC of
//! the session under a key of the process (or the host's, for replicas), checked in constant
//! time; the session cookie is `SameSite=Strict`; a POST whose `Origin` names another site is
//! refused before anything else.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::http::HttpRequest;

/// The key forms are signed with.
#[derive(Clone)]
pub(crate) struct CsrfKey([u8; 32]);

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey(…)")
    }
}

impl CsrfKey {
    pub(crate) fn random() -> Self {
        Self(rand::random())
    }

    pub(crate) const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The token of a session.
    pub(crate) fn token(&self, session: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(b"families-sponsorship pages csrf\0");
        mac.update(session.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether `given` is the token of `session`.
    pub(crate) fn check(&self, session: &str, given: Option<&str>) -> bool {
        let Some(given) = given else {
            return false;
        };
        let expected = self.token(session);
        expected.as_bytes().ct_eq(given.as_bytes()).into()
    }
}

/// A POST from another site: its `Origin` (or, without one, its `Referer`) names a site other
/// than this one. This site is `public` when the host configured it (the URL people open, for
/// a server behind a reverse proxy that rewrites `Host`), else the request's
/// `X-Forwarded-Host` or `Host`. A request with neither `Origin` nor `Referer` passes on to the
/// token check. Returns the two names when they differ, for the log.
pub(crate) fn cross_site(request: &HttpRequest, public: Option<&str>) -> Option<(String, String)> {
    let origin = request
        .header_value("origin")
        .or_else(|| request.header_value("referer"))?;
    let from = url::Url::parse(origin).ok().and_then(|u| {
        let host = u.host_str()?.to_owned();
        Some(u.port().map_or(host.clone(), |p| format!("{host}:{p}")))
    });
    let site = match public {
        Some(public) => public.to_owned(),
        None => request
            .header_value("x-forwarded-host")
            .or_else(|| request.header_value("host"))
            .unwrap_or_default()
            .split(',')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned(),
    };
    match from {
        Some(from) if from.eq_ignore_ascii_case(&site) => None,
        Some(from) => Some((from, site)),
        None => Some((origin.chars().take(100).collect(), site)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    #[test]
    fn tokens_belong_to_their_session_and_key() {
        let key = CsrfKey::random();
        let token = key.token("session-a");
        assert!(key.check("session-a", Some(&token)));
        assert!(!key.check("session-b", Some(&token)));
        assert!(!key.check("session-a", None));
        assert!(!CsrfKey::random().check("session-a", Some(&token)));
    }

    #[test]
    fn another_sites_origin_is_cross_site() {
        let post = |origin: &str| {
            HttpRequest::new(Method::Post, "/x")
                .header("Host", "127.0.0.1:8080")
                .header("Origin", origin)
        };
        assert_eq!(cross_site(&post("http://127.0.0.1:8080"), None), None);
        assert!(cross_site(&post("http://evil.example"), None).is_some());
        assert!(cross_site(&post("null"), None).is_some());
        // Behind a proxy that rewrites Host: the forwarded host, or the configured site.
        let proxied =
            post("https://vault.acme.example").header("X-Forwarded-Host", "vault.acme.example");
        assert_eq!(cross_site(&proxied, None), None);
        let configured = post("https://vault.acme.example");
        assert_eq!(cross_site(&configured, Some("vault.acme.example")), None);
        assert!(cross_site(&configured, None).is_some());
    }
}
