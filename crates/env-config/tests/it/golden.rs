//! Golden files as Bitwarden Setup writes them (US and EU), with and without the
//! cloud-communication keys.

use std::fs;

use env_config::{CheckCode, CloudRegion, EnvFile, PushRelay, PushRelayAction, Severity, keys};
use sponsorship_core::region::CustomEndpoints;

use crate::fixture;

fn read(name: &str) -> String {
    fs::read_to_string(fixture(name)).unwrap()
}

fn codes(file: &EnvFile) -> Vec<(&'static str, Option<usize>)> {
    file.checks()
        .iter()
        .map(|f| (f.code.as_str(), f.line))
        .collect()
}

#[test]
fn setup_files_render_byte_identical() {
    for name in [
        "setup-us.env",
        "setup-eu.env",
        "setup-us-enabled.env",
        "setup-eu-enabled.env",
    ] {
        let file = EnvFile::open(fixture(name)).unwrap();
        assert_eq!(file.render(), read(name), "{name}");
        assert!(!file.is_modified());
    }
}

#[test]
fn enabling_each_region_gives_the_golden_file() {
    for (region, base, enabled) in [
        (CloudRegion::Us, "setup-us.env", "setup-us-enabled.env"),
        (CloudRegion::Eu, "setup-eu.env", "setup-eu-enabled.env"),
    ] {
        let mut file = EnvFile::parse(read(base)).unwrap();
        let summary = file.enable_cloud_communication(&region).unwrap();
        assert_eq!(summary.push_relay, PushRelayAction::Set);
        assert_eq!(
            summary.changed_keys,
            [
                keys::ENABLE_CLOUD_COMMUNICATION,
                keys::IDENTITY_URI,
                keys::API_URI,
                keys::PUSH_RELAY_BASE_URI
            ]
        );
        assert_eq!(file.render(), read(enabled), "{region}");
        // Idempotent: a second run changes nothing.
        let again = file.enable_cloud_communication(&region).unwrap();
        assert!(!again.changed());
    }
}

#[test]
fn checks_before_and_after_enabling() {
    // US as Setup writes it: nothing wrong, cloud communication simply off.
    let us = EnvFile::parse(read("setup-us.env")).unwrap();
    assert_eq!(codes(&us), [("cloud-communication-disabled", None)]);

    // EU as Setup writes it: region EU, but every URL is the US default. The top mistake.
    let eu = EnvFile::parse(read("setup-eu.env")).unwrap();
    let findings = eu.checks();
    let mismatches: Vec<_> = findings
        .iter()
        .filter(|f| f.code == CheckCode::RegionUriMismatch)
        .collect();
    assert_eq!(mismatches.len(), 3, "{findings:#?}");
    assert!(
        mismatches
            .iter()
            .all(|f| f.severity == Severity::Error && f.line == Some(2))
    );
    let identity = mismatches
        .iter()
        .find(|f| f.key.as_deref() == Some(keys::IDENTITY_URI))
        .unwrap();
    assert_eq!(
        identity.message,
        "globalSettings__baseServiceUri__cloudRegion is EU but the identity URL is https://identity.bitwarden.com (region US) (the default, because globalSettings__installation__identityUri is not set): the installation will authenticate against the wrong region and sync fails"
    );
    assert_eq!(
        identity.fix,
        "set globalSettings__installation__identityUri=https://identity.bitwarden.eu (or run enable-cloud for region EU)"
    );

    for name in ["setup-us-enabled.env", "setup-eu-enabled.env"] {
        let file = EnvFile::parse(read(name)).unwrap();
        assert_eq!(codes(&file), [], "{name}");
    }
}

#[test]
fn settings_of_the_enabled_eu_file() {
    let file = EnvFile::parse(read("setup-eu-enabled.env")).unwrap();
    let s = file.settings();
    assert!(s.cloud_communication);
    assert_eq!(s.region, Some(CloudRegion::Eu));
    assert_eq!(s.region_of_endpoints(), Some(CloudRegion::Eu));
    assert_eq!(
        s.installation_id.unwrap().to_string(),
        "0b8e3f2a-6c1d-4e5f-9a7b-2c3d4e5f6a7b"
    );
    let key = s.installation_key.as_ref().unwrap();
    assert_eq!(key.last_four(), "…2fG6");
    assert!(!format!("{s:?}").contains("Q3rT7yU1iO5pA9sD2fG6"));
    assert!(!s.identity_uri.is_default);
    assert_eq!(s.identity_uri.line, Some(22));
    assert_eq!(
        s.push_relay,
        PushRelay::Uri("https://push.bitwarden.eu".parse().unwrap())
    );
}

#[test]
fn switching_a_us_file_to_eu_changes_the_region_too() {
    let mut file = EnvFile::parse(read("setup-us-enabled.env")).unwrap();
    let summary = file.enable_cloud_communication(&CloudRegion::Eu).unwrap();
    assert_eq!(summary.changed_keys.len(), 4);
    assert!(
        !summary
            .changed_keys
            .contains(&keys::ENABLE_CLOUD_COMMUNICATION)
    );
    let diff = file.diff();
    assert!(diff.contains("-globalSettings__baseServiceUri__cloudRegion=US\n+globalSettings__baseServiceUri__cloudRegion=EU\n"), "{diff}");
    assert!(!diff.contains("Hj4kL8mN2bV6cX0zQ9wE"), "{diff}");
    assert_eq!(file.line_count(), 24);
}

#[test]
fn push_disabled_with_replace_is_left_alone() {
    let text = read("setup-eu.env") + "globalSettings__pushRelayBaseUri=REPLACE\n";
    let mut file = EnvFile::parse(text).unwrap();
    let summary = file.enable_cloud_communication(&CloudRegion::Eu).unwrap();
    assert_eq!(summary.push_relay, PushRelayAction::LeftDisabled);
    assert_eq!(
        file.get(keys::PUSH_RELAY_BASE_URI).as_deref(),
        Some("REPLACE")
    );
    assert_eq!(file.settings().push_relay, PushRelay::Disabled);
    assert_eq!(codes(&file), []);
}

#[test]
fn gov_has_no_push_relay_so_the_inherited_us_relay_is_reported() {
    let mut file = EnvFile::parse(read("setup-us.env")).unwrap();
    let summary = file.enable_cloud_communication(&CloudRegion::Gov).unwrap();
    assert_eq!(summary.push_relay, PushRelayAction::NoRelayForRegion);
    assert_eq!(file.get(keys::PUSH_RELAY_BASE_URI), None);
    let findings = file.checks();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].code, CheckCode::RegionUriMismatch);
    assert_eq!(findings[0].key.as_deref(), Some(keys::PUSH_RELAY_BASE_URI));
    assert!(findings[0].fix.contains("REPLACE"), "{}", findings[0].fix);
}

#[test]
fn a_custom_loopback_region_round_trips() {
    let custom = CustomEndpoints::new(
        "http://127.0.0.1:8080/identity/",
        "http://127.0.0.1:8080/api",
        None,
        None,
    )
    .unwrap();
    let region = CloudRegion::Custom(Box::new(custom));
    let mut file = EnvFile::parse(read("setup-us.env")).unwrap();
    let summary = file.enable_cloud_communication(&region).unwrap();
    assert_eq!(summary.push_relay, PushRelayAction::NoRelayForRegion);
    assert_eq!(file.get(keys::CLOUD_REGION).as_deref(), Some("Custom"));
    assert_eq!(
        file.get(keys::IDENTITY_URI).as_deref(),
        Some("http://127.0.0.1:8080/identity")
    );
    let s = file.settings();
    assert!(matches!(s.region, Some(CloudRegion::Custom(_))));
    assert_eq!(codes(&file), []);
}

#[test]
fn enabling_changes_nothing_when_one_key_is_ambiguous() {
    let text = read("setup-eu.env")
        + "globalsettings__installation__apiuri=https://api.bitwarden.eu\nGLOBALSETTINGS__INSTALLATION__APIURI=https://api.bitwarden.eu\n";
    let mut file = EnvFile::parse(text.clone()).unwrap();
    let err = file
        .enable_cloud_communication(&CloudRegion::Eu)
        .unwrap_err();
    assert!(
        matches!(err, env_config::Error::AmbiguousKey { ref lines, .. } if *lines == [21, 22]),
        "{err}"
    );
    assert_eq!(file.render(), text);
    assert!(!file.is_modified());
}
