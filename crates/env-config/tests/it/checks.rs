//! Each check code on a small file that triggers it, and secrets never in messages.

use env_config::{CheckCode, EnvFile, Finding, Severity};

const KEY: &str = "Q3rT7yU1iO5pA9sD2fG6";
const ID: &str = "0b8e3f2a-6c1d-4e5f-9a7b-2c3d4e5f6a7b";

fn findings(text: &str) -> Vec<Finding> {
    EnvFile::parse(text).unwrap().checks()
}

fn has(findings: &[Finding], code: CheckCode, line: Option<usize>) -> bool {
    findings.iter().any(|f| f.code == code && f.line == line)
}

fn enabled(extra: &str) -> String {
    format!(
        "globalSettings__enableCloudCommunication=true\n\
         globalSettings__baseServiceUri__cloudRegion=US\n{extra}"
    )
}

#[test]
fn swapped_id_and_key_are_one_finding_and_never_show_the_key() {
    let f = findings(&enabled(&format!(
        "globalSettings__installation__id={KEY}\nglobalSettings__installation__key={ID}\n"
    )));
    assert!(
        has(&f, CheckCode::InstallationIdKeySwapped, Some(3)),
        "{f:#?}"
    );
    assert!(!has(&f, CheckCode::InstallationIdNotGuid, Some(3)));
    for finding in &f {
        assert!(!finding.to_string().contains(KEY), "{finding}");
    }
}

#[test]
fn id_not_guid_nil_id_and_key_format() {
    let f = findings(&enabled(
        "globalSettings__installation__id=not-a-guid\nglobalSettings__installation__key=short1\n",
    ));
    assert!(has(&f, CheckCode::InstallationIdNotGuid, Some(3)), "{f:#?}");
    let key = f
        .iter()
        .find(|x| x.code == CheckCode::InstallationKeyFormat)
        .unwrap();
    assert_eq!(key.line, Some(4));
    assert!(key.message.contains("6 characters"), "{}", key.message);
    assert!(!key.message.contains("short1"));

    let f = findings(&enabled(&format!(
        "globalSettings__installation__id=00000000-0000-0000-0000-000000000000\nglobalSettings__installation__key={KEY}\n"
    )));
    assert!(has(&f, CheckCode::InstallationIdNil, Some(3)), "{f:#?}");
}

#[test]
fn placeholders_and_missing_installation() {
    let f = findings(&enabled(
        "globalSettings__installation__id=SECRET\nglobalSettings__installation__key=\n",
    ));
    assert!(has(&f, CheckCode::PlaceholderValue, Some(3)), "{f:#?}");
    assert!(has(&f, CheckCode::PlaceholderValue, Some(4)), "{f:#?}");
    assert!(
        f.iter()
            .all(|x| x.code != CheckCode::PlaceholderValue || x.severity == Severity::Error)
    );
    let f = findings(&enabled(""));
    assert_eq!(
        f.iter()
            .filter(|x| x.code == CheckCode::InstallationMissing)
            .count(),
        2
    );
}

#[test]
fn booleans_are_true_or_false_only() {
    let f =
        findings("globalSettings__enableCloudCommunication=1\nglobalSettings__selfHosted=TRUE\n");
    assert!(has(&f, CheckCode::BadBoolean, Some(1)), "{f:#?}");
    assert!(!has(&f, CheckCode::BadBoolean, Some(2)));
    assert!(has(&f, CheckCode::CloudCommunicationDisabled, Some(1)));
}

#[test]
fn dialect_problems() {
    let text = "export A=1\nB = 2\nC=3 # note\nD=\"open\nE=has space\nF=\"${HOME}\"\nG='x'\n1H=2\njust words\n";
    let f = findings(text);
    for (code, line) in [
        (CheckCode::ExportPrefix, 1),
        (CheckCode::BlanksAroundEquals, 2),
        (CheckCode::InlineComment, 3),
        (CheckCode::UnterminatedQuote, 4),
        (CheckCode::UnsafeValueChars, 5),
        (CheckCode::UnsafeValueChars, 6),
        (CheckCode::UnsafeValueChars, 7),
        (CheckCode::InvalidKeyName, 8),
        (CheckCode::NotAnAssignment, 9),
    ] {
        assert!(has(&f, code, Some(line)), "{code} on line {line}: {f:#?}");
    }
    // The connection string as Setup writes it is fine.
    let f = findings(
        "globalSettings__sqlServer__connectionString=\"Data Source=tcp:mssql,1433;Password=a\\\"b\"\n",
    );
    assert!(
        !f.iter().any(|x| x.code == CheckCode::UnsafeValueChars),
        "{f:#?}"
    );
}

#[test]
fn duplicates_exact_and_by_case() {
    let f = findings("A=1\nB=1\nA=2\nb=3\n");
    assert!(has(&f, CheckCode::DuplicateKey, Some(3)), "{f:#?}");
    assert!(has(&f, CheckCode::DuplicateKeyCase, Some(4)), "{f:#?}");
    assert!(!has(&f, CheckCode::DuplicateKey, Some(1)));
}

#[test]
fn region_mismatch_on_an_explicit_uri_and_without_a_region() {
    let f = findings(&enabled(
        "globalSettings__installation__apiUri=https://api.bitwarden.eu\n",
    ));
    let m: Vec<_> = f
        .iter()
        .filter(|x| x.code == CheckCode::RegionUriMismatch)
        .collect();
    assert_eq!(m.len(), 1, "{f:#?}");
    assert_eq!(m[0].line, Some(3));
    assert!(
        m[0].fix.contains("https://api.bitwarden.com"),
        "{}",
        m[0].fix
    );

    // No cloudRegion: the identity URL is the reference.
    let f = findings("globalSettings__installation__identityUri=https://identity.bitwarden.eu\n");
    assert!(
        f.iter().any(|x| x.code == CheckCode::RegionUriMismatch
            && x.key.as_deref() == Some("globalSettings__installation__apiUri")),
        "{f:#?}"
    );
}

#[test]
fn unknown_region_and_insecure_uri() {
    let f = findings(
        "globalSettings__baseServiceUri__cloudRegion=Europe\nglobalSettings__installation__apiUri=http://api.example\n",
    );
    assert!(has(&f, CheckCode::UnknownRegion, Some(1)), "{f:#?}");
    assert!(has(&f, CheckCode::InvalidUri, Some(2)), "{f:#?}");
}

#[test]
fn codes_are_stable_strings_and_findings_display_with_fix() {
    assert_eq!(CheckCode::RegionUriMismatch.as_str(), "region-uri-mismatch");
    assert_eq!(
        CheckCode::InstallationIdKeySwapped.to_string(),
        "installation-id-key-swapped"
    );
    assert_eq!(CheckCode::FileModeTooOpen.as_str(), "file-mode-too-open");
    let f = findings("globalSettings__enableCloudCommunication=yes\n");
    let shown = f[0].to_string();
    assert!(shown.starts_with("error [bad-boolean] line 1: "), "{shown}");
    assert!(
        shown.contains("(fix: write globalSettings__enableCloudCommunication=true"),
        "{shown}"
    );
}

#[test]
fn lite_settings_take_the_installation_from_bw_keys() {
    let text = format!(
        "BW_DOMAIN=bw.acme.example\nBW_INSTALLATION_ID={ID}\nBW_INSTALLATION_KEY={KEY}\n\
         globalSettings__installation__id=5d2c7e1f-8a3b-4c6d-b9e0-1f2a3b4c5d6e\n\
         globalSettings__enableCloudCommunication=true\n"
    );
    let file = EnvFile::parse(text).unwrap();
    assert!(file.is_lite());
    let s = file.settings();
    assert_eq!(s.installation_id.unwrap().to_string(), ID);
    assert!(s.installation_key.is_some());
    let f = file.checks();
    assert!(
        has(&f, CheckCode::LiteInstallationOverride, Some(4)),
        "{f:#?}"
    );
    assert!(
        !f.iter().any(|x| x.code == CheckCode::InstallationMissing),
        "{f:#?}"
    );

    let f = findings("BW_INSTALLATION_ID=\nglobalSettings__enableCloudCommunication=true\n");
    assert!(has(&f, CheckCode::PlaceholderValue, Some(1)), "{f:#?}");
    assert!(
        f.iter().any(|x| x.code == CheckCode::InstallationMissing
            && x.key.as_deref() == Some("BW_INSTALLATION_KEY")),
        "{f:#?}"
    );
}

#[test]
fn case_variants_across_files_are_reported_but_plain_overrides_are_not() {
    let global = EnvFile::parse(
        "globalSettings__selfHosted=true\nglobalSettings__pushRelayBaseUri=https://push.bitwarden.com\n",
    )
    .unwrap()
    .with_path("docker/global.env");
    let over = EnvFile::parse(
        "globalSettings__pushRelayBaseUri=https://push.bitwarden.eu\nglobalsettings__selfhosted=true\n",
    )
    .unwrap()
    .with_path("env/global.override.env");
    let f = env_config::check_across_files(&[&global, &over]);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].code, CheckCode::DuplicateKeyCaseAcrossFiles);
    assert_eq!(f[0].line, Some(2));
    assert!(
        f[0].message.contains("env/global.override.env line 2"),
        "{}",
        f[0].message
    );
    assert!(
        f[0].message.contains("docker/global.env line 1"),
        "{}",
        f[0].message
    );
}
