//! Licenses verified as the real self-hosted server verifies them: the signed claims token, the
//! legacy signature, and the refusals with the real server's texts.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use sponsorship_core::cloud::LicenseSigner;
use sponsorship_core::ids::InstallationId;
use sponsorship_core::license::{
    LicenseError, LicenseVerifier, OrganizationLicense, SignedBy, TrustAnchor,
};
use sponsorship_core::plan::PlanType;

/// The reference cloud's own signing key (a test key; never trusted by default).
const KEY: &str = include_str!("../../../cloud-emulator/src/licensing-key.pem");

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap()
}

fn installation() -> InstallationId {
    "7e0b3c52-3f4c-4d0e-9e57-aa7a1e5c9a10".parse().unwrap()
}

fn unsigned(plan: PlanType) -> OrganizationLicense {
    let mut l = OrganizationLicense::parse(
        r#"{"id":"0b7c2f0e-1111-2222-3333-444455556666","name":"Acme","planType":20,"version":15,
            "licenseKey":"LK-acme","installationId":"7e0b3c52-3f4c-4d0e-9e57-aa7a1e5c9a10",
            "selfHost":true,"enabled":true,"seats":50,"licenseType":1,"useAdminSponsoredFamilies":true}"#,
    )
    .unwrap();
    l.plan_type = plan;
    l.issued = Some(now() - TimeDelta::days(1));
    l.expires = Some(now() + TimeDelta::days(365));
    l
}

fn signer() -> LicenseSigner {
    LicenseSigner::from_pkcs8_pem(KEY).unwrap()
}

fn signed() -> OrganizationLicense {
    let mut l = unsigned(PlanType::EnterpriseAnnually);
    signer().sign(&mut l, now() - TimeDelta::hours(1)).unwrap();
    l
}

fn verifier() -> LicenseVerifier {
    LicenseVerifier::default().trusting(signer().trust_anchor("reference cloud"))
}

fn reasons(e: LicenseError) -> Vec<String> {
    match e {
        LicenseError::Invalid { reasons } => reasons,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn a_signed_license_verifies_and_its_values_come_from_the_claims() {
    let mut license = signed();
    // The unsigned JSON says something else: the claims win.
    license.plan_type = PlanType::FamiliesAnnually;
    license.use_admin_sponsored_families = false;
    let v = verifier()
        .verify(&license, Some(installation()), now())
        .unwrap();
    assert_eq!(v.signed_by, SignedBy::Token);
    assert_eq!(v.anchor, "reference cloud");
    assert_eq!(v.plan_type, PlanType::EnterpriseAnnually);
    assert!(v.use_admin_sponsored_families);
    assert_eq!(v.installation_id, Some(installation()));
    assert_eq!(
        v.expires.map(|e| e.timestamp()),
        Some((now() + TimeDelta::days(365)).timestamp())
    );
}

#[test]
fn only_bitwarden_is_trusted_by_default() {
    let e = LicenseVerifier::default()
        .verify(&signed(), Some(installation()), now())
        .unwrap_err();
    let text = e.to_string();
    assert!(text.starts_with("Invalid license. "), "{text}");
    assert!(text.contains("does not verify"), "{text}");
    assert_eq!(
        format!("{:?}", TrustAnchor::bitwarden()),
        r#"TrustAnchor { name: "Bitwarden licensing", fingerprint: "78dcc4fb3f250be7", .. }"#
    );
}

#[test]
fn a_tampered_token_or_an_unsigned_license_is_refused() {
    let mut license = signed();
    let token = license.token.clone().unwrap();
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = {
        use base64::Engine as _;
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let claims = String::from_utf8(e.decode(parts[1]).unwrap()).unwrap();
        e.encode(claims.replace(r#""PlanType":"20""#, r#""PlanType":"2""#))
    };
    parts[1] = &forged;
    license.token = Some(parts.join("."));
    assert!(
        reasons(verifier().verify(&license, None, now()).unwrap_err())[0].contains("signature")
    );

    let mut bare = unsigned(PlanType::EnterpriseAnnually);
    bare.token = None;
    bare.signature = None;
    assert_eq!(
        reasons(verifier().verify(&bare, None, now()).unwrap_err()),
        ["The license verification failed."]
    );
}

#[test]
fn expiry_installation_self_host_and_enabled_are_checked_with_the_real_texts() {
    let late = now() + TimeDelta::days(366);
    let text = verifier()
        .verify(&signed(), None, late)
        .unwrap_err()
        .to_string();
    assert!(text.contains("IDX10223"), "{text}");

    let other: InstallationId = "11111111-3f4c-4d0e-9e57-aa7a1e5c9a10".parse().unwrap();
    let mut disabled = unsigned(PlanType::EnterpriseAnnually);
    disabled.enabled = false;
    disabled.self_host = false;
    signer().sign(&mut disabled, now()).unwrap();
    assert_eq!(
        reasons(
            verifier()
                .verify(&disabled, Some(other), now())
                .unwrap_err()
        ),
        [
            "Your cloud-hosted organization is currently disabled.",
            "The installation ID does not match the current installation.",
            "The license does not allow for on-premise hosting of organizations.",
        ]
    );

    let mut future = signed();
    future.version = 17;
    assert_eq!(
        verifier().verify(&future, None, now()).unwrap_err(),
        LicenseError::UnsupportedVersion { version: 17 }
    );
}

/// A license without a token is checked by its legacy signature over the JSON values.
#[test]
fn the_legacy_signature_covers_the_json_values() {
    let mut license = signed();
    license.token = None;
    let v = verifier().verify(&license, None, now()).unwrap();
    assert_eq!(v.signed_by, SignedBy::LegacySignature);
    assert_eq!(v.plan_type, PlanType::EnterpriseAnnually);

    let mut tampered = license.clone();
    tampered
        .other
        .insert("seats".to_owned(), serde_json::json!(5000));
    assert_eq!(
        reasons(verifier().verify(&tampered, None, now()).unwrap_err()),
        ["The license verification failed."]
    );

    let expired = now() + TimeDelta::days(400);
    assert_eq!(
        reasons(verifier().verify(&license, None, expired).unwrap_err()),
        ["The license has expired."]
    );
}
