//! [`TrustAnchor`]: a public key that license signatures must verify against.

use std::fmt;

use rsa::RsaPublicKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::{DecodePublicKey, EncodePublicKey};
use rsa::signature::Verifier;
use sha2::{Digest, Sha256};

use super::LicenseError;

/// Bitwarden's production licensing key: the public key of the certificate
/// `CN=bitwarden License` (SHA-1 thumbprint B3:48:76:43:9F:CD:A2:84:65:05:B2:EF:BB:A6:C4:A9:51:31:3E:BE,
/// valid 2017–2047) that every self-hosted Bitwarden server verifies licenses with.
const BITWARDEN_LICENSING_KEY: &str = include_str!("bitwarden-licensing.pem");

/// A public RSA key licenses are verified against, with a name for messages.
#[derive(Clone)]
pub struct TrustAnchor {
    name: String,
    key: VerifyingKey<Sha256>,
    fingerprint: String,
}

impl TrustAnchor {
    /// Bitwarden's production licensing key, the default and only anchor of a real
    /// installation.
    ///
    /// # Panics
    ///
    /// Never: the embedded key is checked by a unit test.
    pub fn bitwarden() -> Self {
        #[allow(clippy::expect_used)]
        Self::from_public_key_pem("Bitwarden licensing", BITWARDEN_LICENSING_KEY)
            .expect("the embedded Bitwarden licensing key parses")
    }

    /// A key from an SPKI PEM (`-----BEGIN PUBLIC KEY-----`), such as the reference cloud's.
    pub fn from_public_key_pem(name: &str, pem: &str) -> Result<Self, LicenseError> {
        let key = RsaPublicKey::from_public_key_pem(pem.trim()).map_err(|e| {
            LicenseError::Malformed(format!(
                "the trust anchor {name} is not an RSA public key in PEM form: {e}"
            ))
        })?;
        Ok(Self::from_key(name, key))
    }

    /// A key given as such.
    pub fn from_key(name: &str, key: RsaPublicKey) -> Self {
        let fingerprint = key.to_public_key_der().map_or_else(
            |_| "?".to_owned(),
            |der| {
                Sha256::digest(der.as_bytes()).iter().take(8).fold(
                    String::with_capacity(16),
                    |mut hex, b| {
                        use std::fmt::Write as _;
                        let _ = write!(hex, "{b:02x}");
                        hex
                    },
                )
            },
        );
        Self {
            name: name.to_owned(),
            key: VerifyingKey::new(key),
            fingerprint,
        }
    }

    /// The name given to the key.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The first 8 bytes of the SHA-256 of the key's SPKI DER, in hex.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether `signature` is this key's RSASSA-PKCS1-v1_5 SHA-256 signature of `data`.
    pub(crate) fn verifies(&self, data: &[u8], signature: &[u8]) -> bool {
        Signature::try_from(signature).is_ok_and(|s| self.key.verify(data, &s).is_ok())
    }
}

impl fmt::Debug for TrustAnchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustAnchor")
            .field("name", &self.name)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bitwarden_key_is_embedded_and_named() {
        let anchor = TrustAnchor::bitwarden();
        assert_eq!(anchor.name(), "Bitwarden licensing");
        // SHA-256 of the SPKI DER of Bitwarden's production licensing key.
        assert_eq!(anchor.fingerprint(), "78dcc4fb3f250be7");
        assert!(!anchor.verifies(b"data", &[0; 512]));
        assert!(TrustAnchor::from_public_key_pem("x", "not a key").is_err());
    }
}
