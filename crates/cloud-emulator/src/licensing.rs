//! The reference cloud's license signing key. It is a test key, published with the source: a
//! self-hosted verifier trusts it only when told to (tests, the demo, `sponsorctl cloud
//! serve`); by default only Bitwarden's licensing key is trusted.

use std::sync::OnceLock;

use sponsorship_core::cloud::LicenseSigner;
use sponsorship_core::license::TrustAnchor;

const KEY: &str = include_str!("licensing-key.pem");

/// The signer of every license this cloud issues.
pub(crate) fn signer() -> &'static LicenseSigner {
    static SIGNER: OnceLock<LicenseSigner> = OnceLock::new();
    SIGNER.get_or_init(|| {
        #[allow(clippy::expect_used)]
        LicenseSigner::from_pkcs8_pem(KEY).expect("the embedded license signing key parses")
    })
}

/// The public key licenses of the reference cloud are signed with, as an SPKI PEM (what
/// `sponsorctl --trust-license-key` reads).
pub fn license_signing_key_pem() -> String {
    signer().public_key_pem()
}

/// The reference cloud's key as a trust anchor for [`sponsorship_core::license::LicenseVerifier`].
pub fn license_trust_anchor() -> TrustAnchor {
    signer().trust_anchor("reference cloud (test key)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_parses_and_is_never_bitwardens() {
        assert!(license_signing_key_pem().starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_ne!(
            license_trust_anchor().fingerprint(),
            TrustAnchor::bitwarden().fingerprint()
        );
    }
}
