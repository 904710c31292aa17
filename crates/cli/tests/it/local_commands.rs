//! Each local command's human and JSON output, as snapshots.

use std::os::unix::fs::PermissionsExt;

use crate::common::{KEY30, Sandbox};
use crate::snap;

#[test]
fn organizations_members_and_offers() {
    let s = Sandbox::new();
    snap!(&s, "org_list_empty", s.ok(&["org", "list"]));
    let org = s.acme();
    assert_eq!(org.len(), 36, "org add prints the id: {org}");
    s.ok(&[
        "org",
        "add",
        "--name",
        "Home",
        "--plan",
        "22",
        "--cloud-org-id",
        "0b7c2f0e-1111-2222-3333-444455556666",
    ]);
    snap!(&s, "org_list", s.ok(&["org", "list"]));
    snap!(&s, "org_list_json", s.ok(&["--json", "org", "list"]));
    snap!(
        &s,
        "member_list",
        s.ok(&["member", "list", "--org", "Acme"])
    );
    snap!(
        &s,
        "member_list_json",
        s.ok(&["--json", "member", "list", "--org", "acme"])
    );

    snap!(
        &s,
        "offer",
        s.ok(&[
            "sponsorship",
            "offer",
            "--org",
            "Acme",
            "--member",
            "alice@acme.example",
            "--email",
            "alice@home.example"
        ])
    );
    snap!(
        &s,
        "offer_again",
        s.ok(&[
            "sponsorship",
            "offer",
            "--org",
            "Acme",
            "--member",
            "alice@acme.example",
            "--email",
            "alice@home.example"
        ])
    );
    snap!(
        &s,
        "offer_replaced_json",
        s.ok(&[
            "--json",
            "sponsorship",
            "offer",
            "--org",
            org.as_str(),
            "--member",
            "ALICE@acme.example",
            "--email",
            "alice2@home.example",
            "--friendly-name",
            "Alice at home"
        ])
    );
    snap!(&s, "sponsorship_list", s.ok(&["sponsorship", "list"]));
    snap!(
        &s,
        "sponsorship_list_json",
        s.ok(&["--json", "sponsorship", "list", "--org", "Acme"])
    );
    snap!(&s, "status", s.ok(&["status"]));
    snap!(
        &s,
        "status_json",
        s.ok(&["--json", "status", "--org", "Acme"])
    );

    snap!(
        &s,
        "revoke",
        s.ok(&[
            "sponsorship",
            "revoke",
            "--org",
            "Acme",
            "--member",
            "alice@acme.example"
        ])
    );
    snap!(
        &s,
        "sponsorship_list_after_revoke",
        s.ok(&["sponsorship", "list"])
    );
}

#[test]
fn billing_sync_token_from_stdin_and_file() {
    let s = Sandbox::new();
    s.acme();
    // Surrounding whitespace (a pasted newline) is trimmed.
    snap!(
        &s,
        "set_token",
        s.ok_stdin(
            &["billing-sync", "set-token", "--org", "Acme"],
            &format!("  {KEY30}\r\n")
        )
    );
    let show = s.ok(&["billing-sync", "show", "--org", "Acme"]);
    assert!(!show.contains(KEY30) && show.contains("…1bCd"), "{show}");
    snap!(&s, "billing_show", show);
    snap!(
        &s,
        "billing_disable",
        s.ok(&["billing-sync", "disable", "--org", "Acme"])
    );
    snap!(
        &s,
        "billing_show_json",
        s.ok(&["--json", "billing-sync", "show", "--org", "Acme"])
    );
    let file = s.path().join("token.txt");
    std::fs::write(&file, format!("{}\n", "Zz3dEf6hIj9lMn2pQr5tUv8xYz1XyZ")).unwrap();
    // Replacing a stored token is confirmed: off a terminal, only with --yes.
    let refused = s.run(&[
        "--json",
        "billing-sync",
        "set-token",
        "--org",
        "Acme",
        "--token-file",
        file.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(
        err.contains("Acme has the billing sync token …1bCd stored; replace it with …1XyZ?"),
        "{err}"
    );
    assert!(!err.contains(KEY30) && !err.contains("Zz3dEf6hIj9lMn2pQr5tUv8xYz1XyZ"));
    // The same token again needs no confirmation.
    s.ok_stdin(
        &["billing-sync", "set-token", "--org", "Acme"],
        &format!(
            "{KEY30}
"
        ),
    );
    let out = s.ok(&[
        "--json",
        "--yes",
        "billing-sync",
        "set-token",
        "--org",
        "Acme",
        "--token-file",
        file.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["token"], "…1XyZ");
    assert_eq!(v["enabled"], false, "replacing the token keeps the switch");
    s.ok(&["billing-sync", "enable", "--org", "Acme"]);
    snap!(&s, "status_with_token", s.ok(&["status"]));

    // The state file holds the key, so it is private.
    let mode = std::fs::metadata(&s.state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn member_removal_revokes_and_bulk_import() {
    let s = Sandbox::new();
    s.acme();
    let members = s.path().join("members.txt");
    std::fs::write(
        &members,
        "# staff\ncarol@acme.example\n\ndave@acme.example\n",
    )
    .unwrap();
    snap!(
        &s,
        "member_import",
        s.ok(&[
            "member",
            "import",
            "--org",
            "Acme",
            members.to_str().unwrap()
        ])
    );
    let offers = s.path().join("offers.csv");
    std::fs::write(&offers, "carol@acme.example,carol@home.example\ndave@acme.example,dave@home.example,Dave's family\n").unwrap();
    snap!(
        &s,
        "sponsorship_import",
        s.ok(&[
            "sponsorship",
            "import",
            "--org",
            "Acme",
            offers.to_str().unwrap()
        ])
    );
    // Run twice, an import changes nothing and says so.
    let again = s.ok(&[
        "sponsorship",
        "import",
        "--org",
        "Acme",
        offers.to_str().unwrap(),
    ]);
    assert_eq!(
        again, "Nothing changed: all 2 offer(s) exist already.\n",
        "{again}"
    );
    // Removing a member revokes their sponsorship: off a terminal it needs --yes.
    let before = s.snapshot_state();
    let out = s.run(&["member", "remove", "--org", "Acme", "carol@acme.example"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "Removing carol@acme.example revokes their sponsorship (offered to carol@home.example)"
        ) && err.contains("run it again with --yes"),
        "{err}"
    );
    assert_eq!(s.snapshot_state(), before, "nothing changed");
    snap!(
        &s,
        "member_remove",
        s.ok(&[
            "--yes",
            "member",
            "remove",
            "--org",
            "Acme",
            "carol@acme.example"
        ])
    );
    // Never synced, yet the offer may have reached the cloud (a lost answer): it is marked,
    // and the next sync withdraws it before the row goes.
    let list = s.ok(&["sponsorship", "list"]);
    let carol = list
        .lines()
        .find(|l| l.contains("carol@home.example"))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(carol.contains("Removed (awaiting sync)"), "{list}");
    assert!(list.contains("dave@home.example"), "{list}");
}

#[test]
fn env_commands_show_check_and_enable_cloud() {
    let s = Sandbox::new();
    std::fs::write(
        &s.env,
        "globalSettings__baseServiceUri__vault=https://vault.acme.example\n\
         globalSettings__baseServiceUri__cloudRegion=EU\n\
         globalSettings__installation__id=0b8e3f2a-6c1d-4e5f-9a7b-2c3d4e5f6a7b\n\
         globalSettings__installation__key=Q3rT7yU1iO5pA9sD2fG6\n",
    )
    .unwrap();
    // World-readable, so that the mode check has something to say.
    std::fs::set_permissions(&s.env, std::fs::Permissions::from_mode(0o644)).unwrap();
    let show = s.ok(&["env", "show"]);
    assert!(!show.contains("Q3rT7yU1iO5pA9sD2fG6"), "{show}");
    snap!(&s, "env_show", show);
    let check = s.run(&["env", "check"]);
    snap!(&s, "env_check", String::from_utf8(check.stdout).unwrap());
    let before = std::fs::read(&s.env).unwrap();
    let dry = s.ok(&["env", "enable-cloud", "--region", "eu", "--dry-run"]);
    assert_eq!(
        std::fs::read(&s.env).unwrap(),
        before,
        "--dry-run writes nothing"
    );
    snap!(&s, "env_enable_cloud_dry_run", dry);
    let done = s.ok(&["env", "enable-cloud", "--region", "eu"]);
    assert!(
        done.contains("restart the server to apply: ./bitwarden.sh restart"),
        "{done}"
    );
    snap!(&s, "env_enable_cloud", done);
    snap!(&s, "env_show_json", s.ok(&["--json", "env", "show"]));
    snap!(
        &s,
        "env_enable_cloud_again",
        s.ok(&["env", "enable-cloud", "--region", "eu"])
    );
    assert!(s.run(&["env", "check"]).status.success());
}

/// Staged and revoked members, as the reference treats them: only confirmed members offer; a
/// revoked member's sponsorship stays until the member is removed.
#[test]
fn staged_and_revoked_members() {
    let s = Sandbox::new();
    s.acme();
    s.ok(&[
        "member",
        "add",
        "--org",
        "Acme",
        "--email",
        "sam@acme.example",
        "--status",
        "staged",
    ]);
    let offer = [
        "sponsorship",
        "offer",
        "--org",
        "Acme",
        "--member",
        "sam@acme.example",
        "--email",
        "sam@home.example",
    ];
    let out = s.run(&offer);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        err.contains("Only confirmed users can sponsor other organizations."),
        "{err}"
    );
    let list = s.ok(&["member", "list", "--org", "Acme"]);
    assert!(list.contains("staged"), "{list}");

    s.ok(&[
        "member",
        "set-status",
        "--org",
        "Acme",
        "sam@acme.example",
        "--status",
        "confirmed",
    ]);
    s.ok(&offer);
    let revoked = s.ok(&[
        "member",
        "set-status",
        "--org",
        "Acme",
        "sam@acme.example",
        "--status",
        "revoked",
    ]);
    assert!(
        revoked.contains("sam@acme.example is now revoked.")
            && revoked.contains("existing sponsorship stays as it is"),
        "{revoked}"
    );
    let rows = s.ok(&["sponsorship", "list"]);
    assert!(
        rows.contains("sam@home.example") && rows.contains("Requested"),
        "{rows}"
    );
    let again = s.run(&offer);
    assert_ne!(
        again.status.code(),
        Some(0),
        "a revoked member cannot offer"
    );
}
