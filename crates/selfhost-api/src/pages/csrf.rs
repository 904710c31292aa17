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

/// A POST from another site: its `Origin` (or, without one, its `Referer`) names a host other
/// than the request's `Host`. A request with neither passes on to the token check.
pub(crate) fn cross_site(request: &HttpRequest) -> bool {
    let Some(host) = request.header_value("host") else {
        return false;
    };
    let origin = request
        .header_value("origin")
        .or_else(|| request.header_value("referer"));
    match origin {
        None => false,
        Some("null") => true,
        Some(origin) => url::Url::parse(origin).map_or(true, |u| {
            let authority = match (u.host_str(), u.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_owned(),
                _ => return true,
            };
            !authority.eq_ignore_ascii_case(host)
        }),
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
        assert!(!cross_site(&post("http://127.0.0.1:8080")));
        assert!(cross_site(&post("http://evil.example")));
        assert!(cross_site(&post("null")));
    }
}
