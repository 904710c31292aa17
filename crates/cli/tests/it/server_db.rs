//! `sponsorctl --state postgres://…` and `--state mysql://…`: the whole operator flow on a
//! server database (issue #13, item 4). The servers come from `scripts/databases.sh`
//! (`scripts/test.sh` starts them); without them these tests fail and say how to start them.

use crate::common::{Sandbox, setup_cloud_named};

#[allow(clippy::disallowed_methods)] // the test servers are found through the environment
fn database_url(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!(
            "{variable} is not set: start the test servers with `eval \"$(scripts/databases.sh start)\"` \
             (scripts/test.sh does it), then run the tests in that shell"
        )
    })
}

/// Setup, offers, sync, revoke, status and doctor on one backend; no command shows the
/// database password.
fn operator_flow(variable: &str) {
    let url = database_url(variable);
    let password = url::Url::parse(&url)
        .unwrap()
        .password()
        .unwrap()
        .to_owned();
    let mut s = Sandbox::new();
    s.state = url.clone().into();
    // Organization names are unique in the database: this run's is its own.
    let org = format!("Acme {}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut log = String::new();
    let cloud = setup_cloud_named(&s, &org, false, &["-v"], &mut log);
    let status = s.ok(&["status", "--org", &org]);
    assert!(status.contains("Last sync:           Never"), "{status}");
    s.ok(&[
        "member",
        "add",
        "--org",
        &org,
        "--email",
        "alice@acme.example",
    ]);
    s.ok(&[
        "member",
        "add",
        "--org",
        &org,
        "--email",
        "bob@acme.example",
    ]);
    for (member, to) in [("alice", "alice@home.example"), ("bob", "bob@home.example")] {
        s.ok(&[
            "sponsorship",
            "offer",
            "--org",
            &org,
            "--member",
            &format!("{member}@acme.example"),
            "--email",
            to,
        ]);
    }
    let synced = s.ok(&["sync", "--org", &org]);
    assert!(
        synced.contains(&format!("{org}: sent 2, updated 2")),
        "{synced}"
    );
    assert_eq!(cloud.emulator().sponsorships(cloud.acme).len(), 2);
    let revoked = s.ok(&[
        "sponsorship",
        "revoke",
        "--org",
        &org,
        "--member",
        "bob@acme.example",
    ]);
    assert!(
        revoked.contains("withdraws the offer at the next sync"),
        "{revoked}"
    );
    let synced = s.ok(&["sync", "--org", &org]);
    assert!(synced.contains("removed 1"), "{synced}");
    let status: serde_json::Value =
        serde_json::from_str(&s.ok(&["--json", "status", "--org", &org])).unwrap();
    let o = &status["organizations"][0];
    assert!(o["lastSync"].is_string(), "{status}");
    assert_eq!(o["counts"]["sent"], 1, "{status}");
    let list = s.ok(&["sponsorship", "list", "--org", &org]);
    assert!(
        list.contains("alice@home.example") && !list.contains("bob@home.example"),
        "{list}"
    );

    let doctor = s.run(&["doctor"]);
    let report = String::from_utf8_lossy(&doctor.stdout);
    let line = report
        .lines()
        .find(|l| l.contains("database"))
        .unwrap_or_else(|| panic!("no database check: {report}"));
    assert!(
        line.starts_with("[ok  ] database") && line.contains("schema version"),
        "{line}"
    );
    assert!(line.contains(":***@"), "{line}");

    // The password is never on screen: not in -v logs, not in doctor, not in --help (clap
    // would print the variable's value).
    let help = s.ok(&["--help"]);
    for (what, text) in [("log", log.as_str()), ("doctor", &report), ("help", &help)] {
        assert!(
            !text.contains(&password),
            "the database password is in the {what}"
        );
    }
}

#[test]
fn the_operator_flow_on_postgres() {
    operator_flow("SPONSORSHIP_TEST_POSTGRES_URL");
}

#[test]
fn the_operator_flow_on_mariadb() {
    operator_flow("SPONSORSHIP_TEST_MYSQL_URL");
}

/// A server database that cannot be reached fails with a message that names it without its
/// password, and exits 1 with the store's category.
#[test]
fn an_unreachable_database_is_named_without_its_password() {
    let mut s = Sandbox::new();
    s.state = "postgres://app:Sup3rSecret@127.0.0.1:1/none".into();
    let out = s.run(&["--json", "org", "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("Sup3rSecret"), "{err}");
    assert!(err.contains("postgres://app:***@127.0.0.1:1/none"), "{err}");
    assert!(err.contains("\"category\":\"store\""), "{err}");
}
