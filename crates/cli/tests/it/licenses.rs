//! `license import`: only verified licenses are stored; one cloud organization per local
//! organization; a plan change is said out loud. And `billing-sync delete`.

use crate::common::*;

/// A license file of the set-up cloud organization, as the cloud issues it.
fn license_file(s: &Sandbox, cloud: &Cloud, name: &str) -> (std::path::PathBuf, serde_json::Value) {
    let license = cloud
        .emulator()
        .license(cloud.acme, Some(test_support::installation_id()))
        .unwrap();
    let json = serde_json::to_value(&license).unwrap();
    let path = s.path().join(name);
    std::fs::write(&path, json.to_string()).unwrap();
    (path, json)
}

#[test]
fn tampered_untrusted_and_reused_licenses_are_refused_and_change_nothing() {
    let s = Sandbox::new();
    let mut log = String::new();
    let cloud = setup_cloud(&s, false, &[], &mut log);
    let before = s.snapshot_state();

    // The token's claims are what counts: a forged plan in the token breaks its signature.
    let (_, mut json) = license_file(&s, &cloud, "good.json");
    let token = json["token"].as_str().unwrap().to_owned();
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1].insert(4, 'A');
    json["token"] = serde_json::Value::String(parts.join("."));
    let forged = s.path().join("forged.json");
    std::fs::write(&forged, json.to_string()).unwrap();
    let out = s.run(&[
        "license",
        "import",
        "--org",
        "Acme Corp",
        forged.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("Invalid license."), "{err}");

    // Without the reference cloud's key, only Bitwarden's is trusted.
    let (good, _) = license_file(&s, &cloud, "good.json");
    let out = s
        .cmd()
        .env_remove("SPONSORCTL_LICENSE_TRUST_KEY")
        .args([
            "license",
            "import",
            "--org",
            "Acme Corp",
            good.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("does not verify against the licensing key"),
        "{err}"
    );

    assert_eq!(s.snapshot_state(), before, "nothing changed");

    // A second local organization cannot take the same cloud organization's license.
    s.ok(&[
        "org",
        "add",
        "--name",
        "Other",
        "--plan",
        "enterprise-annually",
    ]);
    let out = s.run(&[
        "license",
        "import",
        "--org",
        "Other",
        good.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("License is already in use by another organization vault.")
            && err.contains("Acme Corp"),
        "{err}"
    );
}

#[test]
fn a_license_that_changes_the_plan_says_so() {
    let s = Sandbox::new();
    let mut log = String::new();
    let cloud = setup_cloud(&s, false, &[], &mut log);
    // Another server whose organization is still on Teams.
    let other = Sandbox::new();
    let (good, _) = license_file(&other, &cloud, "good.json");
    other.ok(&[
        "org",
        "add",
        "--name",
        "Acme Corp",
        "--plan",
        "teams-annually",
    ]);
    let out = other.ok(&[
        "license",
        "import",
        "--org",
        "Acme Corp",
        good.to_str().unwrap(),
    ]);
    assert!(
        out.contains("The license changes the plan of Acme Corp from Teams (Annually) to Enterprise (Annually)."),
        "{out}"
    );
    let again = other.ok(&[
        "license",
        "import",
        "--org",
        "Acme Corp",
        good.to_str().unwrap(),
    ]);
    assert!(!again.contains("changes the plan"), "{again}");
}

#[test]
fn billing_sync_delete_removes_the_connection() {
    let s = Sandbox::new();
    let mut log = String::new();
    let _cloud = setup_cloud(&s, false, &[], &mut log);
    let out = s.ok(&["billing-sync", "delete", "--org", "Acme Corp"]);
    assert!(
        out.starts_with("Deleted the billing sync connection of Acme Corp"),
        "{out}"
    );
    assert!(out.contains("--org 'Acme Corp'"), "{out}");
    let shown = s.ok(&["billing-sync", "show", "--org", "Acme Corp"]);
    assert!(shown.contains("Billing sync token:  not set"), "{shown}");
    let again = s.ok(&["billing-sync", "delete", "--org", "Acme Corp"]);
    assert!(again.contains("nothing to delete"), "{again}");
}
