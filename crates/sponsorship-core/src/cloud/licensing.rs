//! The cloud side of licenses: [`LicenseSigner`] issues a license as the real cloud does
//! (`GetCloudOrganizationLicenseQuery`): the legacy `hash` and `signature`, then the signed
//! claims `token` (RS256, issuer `bitwarden`, audience `organization:{id}`, one year).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, TimeDelta, Utc};
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer};
use rsa::{RsaPrivateKey, RsaPublicKey};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::license::{
    LicenseError, OrganizationLicense, TOKEN_AUDIENCE_PREFIX, TOKEN_ISSUER, TrustAnchor,
    legacy_signature_data,
};

/// How long a license token is valid (the license's own expiry is a claim).
pub const TOKEN_LIFETIME: TimeDelta = TimeDelta::days(365);

/// Signs licenses with a private RSA key. `Debug` never shows the key.
pub struct LicenseSigner {
    key: SigningKey<Sha256>,
    public: RsaPublicKey,
}

impl std::fmt::Debug for LicenseSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LicenseSigner").finish_non_exhaustive()
    }
}

/// The .NET invariant date form of the token's date claims.
fn claim_date(t: DateTime<Utc>) -> String {
    t.format("%m/%d/%Y %H:%M:%S").to_string()
}

fn flag(b: bool) -> Value {
    Value::String(if b { "True" } else { "False" }.to_owned())
}

impl LicenseSigner {
    /// A signer from a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, LicenseError> {
        let private = RsaPrivateKey::from_pkcs8_pem(pem.trim()).map_err(|_| {
            LicenseError::Malformed("the license signing key is not a PKCS#8 RSA key".to_owned())
        })?;
        let public = private.to_public_key();
        Ok(Self {
            key: SigningKey::new(private),
            public,
        })
    }

    /// The public key as an SPKI PEM, for a verifier to trust explicitly.
    pub fn public_key_pem(&self) -> String {
        self.public
            .to_public_key_pem(LineEnding::LF)
            .unwrap_or_default()
    }

    /// The trust anchor of this signer's key, named `name`.
    pub fn trust_anchor(&self, name: &str) -> TrustAnchor {
        TrustAnchor::from_key(name, self.public.clone())
    }

    /// Fills `license`'s `hash`, `signature` and `token` as the real cloud issues them at `now`.
    ///
    /// # Errors
    ///
    /// [`LicenseError::UnsupportedVersion`] when the license's version cannot be signed.
    pub fn sign(
        &self,
        license: &mut OrganizationLicense,
        now: DateTime<Utc>,
    ) -> Result<(), LicenseError> {
        license.token = None;
        license.signature = None;
        let hash = Sha256::digest(legacy_signature_data(license, true)?.as_bytes());
        license.other.retain(|k, _| !k.eq_ignore_ascii_case("hash"));
        license
            .other
            .insert("hash".to_owned(), Value::String(STANDARD.encode(hash)));
        let data = legacy_signature_data(license, false)?;
        license.signature = Some(STANDARD.encode(self.key.sign(data.as_bytes()).to_bytes()));
        license.token = Some(self.token(license, now));
        Ok(())
    }

    fn token(&self, license: &OrganizationLicense, now: DateTime<Utc>) -> String {
        let mut claims = Map::new();
        claims.insert("LicenseType".into(), "Organization".into());
        claims.insert("Id".into(), license.id.to_string().into());
        if let Some(i) = license.installation_id {
            claims.insert("InstallationId".into(), i.to_string().into());
        }
        claims.insert("Name".into(), license.name.clone().into());
        claims.insert(
            "LicenseKey".into(),
            license.license_key.expose_secret().to_owned().into(),
        );
        claims.insert(
            "PlanType".into(),
            license.plan_type.number().to_string().into(),
        );
        claims.insert("Enabled".into(), flag(license.enabled));
        claims.insert("SelfHost".into(), flag(license.self_host));
        claims.insert(
            "UseAdminSponsoredFamilies".into(),
            flag(license.use_admin_sponsored_families),
        );
        if let Some(issued) = license.issued {
            claims.insert("Issued".into(), claim_date(issued).into());
        }
        if let Some(expires) = license.expires {
            claims.insert("Expires".into(), claim_date(expires).into());
        }
        let t = now.timestamp();
        claims.insert("iss".into(), TOKEN_ISSUER.into());
        claims.insert(
            "aud".into(),
            format!("{TOKEN_AUDIENCE_PREFIX}{}", license.id).into(),
        );
        claims.insert("nbf".into(), t.into());
        claims.insert("iat".into(), t.into());
        claims.insert("exp".into(), (now + TOKEN_LIFETIME).timestamp().into());
        // A token id unique per license and time, without a random source in the core.
        let digest = Sha256::digest(format!("{}|{}|{t}", license.id, license.version));
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        claims.insert(
            "jti".into(),
            uuid::Builder::from_random_bytes(id)
                .into_uuid()
                .to_string()
                .into(),
        );
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(Value::Object(claims).to_string());
        let signed = format!("{header}.{payload}");
        let signature = URL_SAFE_NO_PAD.encode(self.key.sign(signed.as_bytes()).to_bytes());
        format!("{signed}.{signature}")
    }
}
