//! Signed tokens: redemption offers (spec §9) and installation access tokens (spec §5.1).
//!
//! Both are authenticated with HMAC-SHA256 under keys derived from one random server secret.
//! An offer token is `BWOrganizationSponsorship_` + base64url(JSON claims) + `.` +
//! base64url(tag); an access token is an HS256 JWT whose `exp` the client may read.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sponsorship_core::cloud::OfferClaims;
use sponsorship_core::ids::InstallationId;

type HmacSha256 = Hmac<Sha256>;

/// The literal prefix of every offer token.
pub const OFFER_TOKEN_PREFIX: &str = "BWOrganizationSponsorship_";

/// Claims of an installation access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AccessClaims {
    pub(crate) client_id: String,
    pub(crate) client_sub: InstallationId,
    pub(crate) scope: Vec<String>,
    pub(crate) iat: i64,
    pub(crate) nbf: i64,
    pub(crate) exp: i64,
}

impl AccessClaims {
    pub(crate) fn has_scope(&self, scope: &str) -> bool {
        self.scope.iter().any(|s| s == scope)
    }
}

/// Signs and verifies tokens with keys derived from the server secret.
pub(crate) struct Signer {
    offer_key: [u8; 32],
    access_key: [u8; 32],
}

fn derive(secret: &[u8], label: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so new_from_slice cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(label);
    mac.finalize().into_bytes().into()
}

fn tag(key: &[u8; 32], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn verify_tag(key: &[u8; 32], data: &[u8], tag: &[u8]) -> bool {
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.verify_slice(tag).is_ok()
}

impl Signer {
    pub(crate) fn new(secret: &[u8]) -> Self {
        Self {
            offer_key: derive(secret, b"cloud-emulator offer token v1"),
            access_key: derive(secret, b"cloud-emulator access token v1"),
        }
    }

    /// An offer token for the claims.
    pub(crate) fn offer_token(&self, claims: &OfferClaims) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let sig = URL_SAFE_NO_PAD.encode(tag(&self.offer_key, payload.as_bytes()));
        format!("{OFFER_TOKEN_PREFIX}{payload}.{sig}")
    }

    /// The claims of a genuine offer token; `None` for anything else (spec §9: any failure is
    /// "invalid").
    pub(crate) fn verify_offer(&self, token: &str) -> Option<OfferClaims> {
        let rest = token.trim().strip_prefix(OFFER_TOKEN_PREFIX)?;
        let (payload, sig) = rest.split_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        if !verify_tag(&self.offer_key, payload.as_bytes(), &sig) {
            return None;
        }
        let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let claims: OfferClaims = serde_json::from_slice(&json).ok()?;
        (claims.identifier == OfferClaims::IDENTIFIER && !claims.email.trim().is_empty())
            .then_some(claims)
    }

    /// An HS256 JWT carrying the claims.
    pub(crate) fn access_token(&self, claims: &AccessClaims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signed = format!("{header}.{body}");
        let sig = URL_SAFE_NO_PAD.encode(tag(&self.access_key, signed.as_bytes()));
        format!("{signed}.{sig}")
    }

    /// The claims of a genuine, unexpired access token.
    pub(crate) fn verify_access(&self, token: &str, now: DateTime<Utc>) -> Option<AccessClaims> {
        let (signed, sig) = token.trim().rsplit_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        if !verify_tag(&self.access_key, signed.as_bytes(), &sig) {
            return None;
        }
        let (_, body) = signed.split_once('.')?;
        let claims: AccessClaims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        let t = now.timestamp();
        (claims.nbf <= t && t < claims.exp).then_some(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sponsorship_core::ids::SponsorshipId;
    use sponsorship_core::plan::PlanSponsorshipType;

    fn claims() -> OfferClaims {
        OfferClaims {
            identifier: OfferClaims::IDENTIFIER.to_owned(),
            id: SponsorshipId::new_random(),
            sponsorship_type: PlanSponsorshipType::FamiliesForEnterprise,
            email: "kid@home.example".to_owned(),
        }
    }

    #[test]
    fn offer_token_round_trips_and_detects_tampering() {
        let signer = Signer::new(b"secret one");
        let c = claims();
        let token = signer.offer_token(&c);
        assert!(token.starts_with(OFFER_TOKEN_PREFIX));
        assert!(
            token
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "_-.".contains(ch))
        );
        assert_eq!(signer.verify_offer(&token), Some(c.clone()));
        assert_eq!(Signer::new(b"secret two").verify_offer(&token), None);
        let mut forged = c;
        forged.email = "thief@evil.example".to_owned();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let sig = token.rsplit_once('.').unwrap().1;
        assert_eq!(
            signer.verify_offer(&format!("{OFFER_TOKEN_PREFIX}{forged_payload}.{sig}")),
            None
        );
        assert_eq!(signer.verify_offer("garbage"), None);
    }

    #[test]
    fn access_token_expires() {
        let signer = Signer::new(b"k");
        let now = Utc::now();
        let c = AccessClaims {
            client_id: "installation.x".into(),
            client_sub: InstallationId::new_random(),
            scope: vec!["api.installation".into()],
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: now.timestamp() + 60,
        };
        let t = signer.access_token(&c);
        assert_eq!(t.split('.').count(), 3);
        assert_eq!(signer.verify_access(&t, now), Some(c));
        assert_eq!(
            signer.verify_access(&t, now + chrono::TimeDelta::seconds(61)),
            None
        );
        assert_eq!(Signer::new(b"other").verify_access(&t, now), None);
    }
}
