//! The whole setup against the reference cloud, with the binary, as an operator runs it.

use crate::common::{DANA, Sandbox, setup_cloud, write_bulk};
use crate::snap;

/// The prefix of every HS256 JWT the reference cloud issues as an access token.
const JWT_HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

#[test]
fn setup_to_status_with_2500_sponsorships_in_three_batches() {
    let s = Sandbox::new();
    let mut log = String::new();
    let cloud = setup_cloud(&s, false, &["-vv"], &mut log);
    let (members, offers) = write_bulk(&s, 2500);
    s.ok(&["member", "import", "--org", "Acme Corp", &members]);
    s.ok(&["sponsorship", "import", "--org", "Acme Corp", &offers]);

    // Step 4: the first sync sends 2,500 items in three batches (1000 + 1000 + 500).
    let out = s.cmd().args(["-vv", "--json", "sync"]).output().unwrap();
    log.push_str(&String::from_utf8_lossy(&out.stdout));
    log.push_str(&String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{log}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let org = &v["organizations"][0];
    assert_eq!(org["batches"], 3, "{v}");
    assert_eq!(org["sent"], 2500);
    assert_eq!(org["updated"], 2500);
    assert_eq!(org["skipped"], 0);
    assert_eq!(
        cloud.emulator().outbox().len(),
        2500,
        "one offer e-mail per sponsorship"
    );

    // A recipient redeems on a new Families organization; Dana's offer goes to her existing one.
    let replace = [
        "sponsorship",
        "offer",
        "--org",
        "Acme Corp",
        "--member",
        "member0001@acme.example",
        "--email",
        DANA.0,
    ];
    // The member's offer was e-mailed: replacing it is confirmed (off a terminal, with --yes).
    let refused = s.run(&replace);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(
        err.contains("member0001@acme.example has an offer to family0001@home.example that the cloud has e-mailed"),
        "{err}"
    );
    s.ok(&[&["--yes"], replace.as_slice()].concat());
    let human = s.ok(&["sync"]);
    snap!(&s, "e2e_second_sync", human);
    let outbox = cloud.emulator().outbox();
    let link = |to: &str| {
        outbox
            .iter()
            .rev()
            .find(|m| m.to == to)
            .unwrap()
            .link
            .clone()
    };
    let client = cloud.client();
    let new_family: cloud_emulator::ScriptedRedeem = serde_json::from_value(serde_json::json!({
        "link": link("family0000@home.example"), "email": "family0000@home.example",
        "password": "pw-0000", "createUser": true, "newOrganizationName": "Family 0000",
    }))
    .unwrap();
    let existing: cloud_emulator::ScriptedRedeem = serde_json::from_value(serde_json::json!({
        "link": link(DANA.0), "email": DANA.0, "password": DANA.1, "organizationId": cloud.families,
    }))
    .unwrap();
    cloud.rt.block_on(async {
        client.redeem(&new_family).await.unwrap();
        client.redeem(&existing).await.unwrap();
    });
    s.ok(&[
        "sponsorship",
        "revoke",
        "--org",
        "Acme Corp",
        "--member",
        "member0002@acme.example",
    ]);
    let out = s.cmd().args(["-vv", "sync"]).output().unwrap();
    log.push_str(&String::from_utf8_lossy(&out.stdout));
    log.push_str(&String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{log}");

    let out = s
        .cmd()
        .args(["-vv", "license", "sync", "--org", "Acme Corp"])
        .output()
        .unwrap();
    log.push_str(&String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{log}");

    let status: serde_json::Value = serde_json::from_str(&s.ok(&["--json", "status"])).unwrap();
    let o = &status["organizations"][0];
    assert_eq!(o["counts"]["active"], 2, "{o}");
    assert_eq!(o["counts"]["sent"], 2497, "{o}");
    assert_eq!(o["counts"]["removedAwaitingSync"], 0, "{o}");
    assert_eq!(o["awaitingSync"], 0, "{o}");
    assert!(
        o["lastSync"].is_string() && o["lastLicenseSync"].is_string(),
        "{o}"
    );
    assert!(o["lastError"].is_null(), "{o}");
    let text = s.ok(&["status"]);
    assert!(
        text.contains("2 Active") && !text.contains("Never"),
        "{text}"
    );

    // doctor against the local cloud: every check passes; secrets are redacted.
    let out = s.cmd().args(["-vv", "doctor"]).output().unwrap();
    let doctor = String::from_utf8(out.stdout).unwrap();
    log.push_str(&doctor);
    log.push_str(&String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{doctor}");
    assert!(
        doctor.contains("[ok  ] token exchange")
            && doctor.contains("[ok  ] billing sync key of Acme Corp"),
        "{doctor}"
    );
    snap!(&s, "doctor", doctor);

    // Nothing secret in any of the -vv output of the whole run.
    assert!(log.contains("DEBUG"), "-vv logs at debug level");
    assert!(!log.contains(&cloud.billing_key), "billing key leaked");
    assert!(
        !log.contains(&cloud.installation_key),
        "installation key leaked"
    );
    assert!(!log.contains(JWT_HEADER), "access token leaked");

    // An import that replaces an e-mailed offer is confirmed the same way.
    let file = s.path().join("replace.csv");
    std::fs::write(
        &file,
        "member0005@acme.example,someone@home.example\nmember0003@acme.example,family0003@home.example\n",
    )
    .unwrap();
    let import = [
        "sponsorship",
        "import",
        "--org",
        "Acme Corp",
        file.to_str().unwrap(),
    ];
    let before = s.ok(&["--json", "sponsorship", "list"]);
    let refused = s.run(&import);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "{err}{}\n{before}",
        String::from_utf8_lossy(&refused.stdout)
    );
    assert!(
        err.contains("The file replaces 1 offer(s) the cloud has e-mailed: member0005@acme.example (to family0005@home.example, line 1)"),
        "{err}"
    );
    assert_eq!(
        s.ok(&["--json", "sponsorship", "list"]),
        before,
        "nothing changed"
    );
    let done = s.ok(&[&["-y"], import.as_slice()].concat());
    assert!(
        done.contains(
            "Offered 1 sponsorship(s), replacing 1 offer(s) the cloud had e-mailed (1 unchanged)"
        ),
        "{done}"
    );
}

#[test]
fn rotated_key_is_reported_and_nothing_applied() {
    let s = Sandbox::new();
    let mut log = String::new();
    let cloud = setup_cloud(&s, false, &[], &mut log);
    s.alice_offers("Acme Corp");

    // The owner rotates the token in the cloud: the stored one is refused, and status says so.
    let client = cloud.client();
    cloud.rt.block_on(async {
        let session = client
            .login(crate::common::OWNER.0, crate::common::OWNER.1)
            .await
            .unwrap();
        client
            .rotate_billing_sync_key(&session, cloud.acme, crate::common::OWNER.1)
            .await
            .unwrap();
    });
    let out = s.run(&["--json", "sync"]);
    assert_eq!(out.status.code(), Some(1));
    // The error names the command that fixes it, quoted to paste.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("with sponsorctl: `sponsorctl billing-sync set-token --org 'Acme Corp'`"),
        "{err}"
    );
    let status: serde_json::Value = serde_json::from_str(&s.ok(&["--json", "status"])).unwrap();
    let err = &status["organizations"][0]["lastError"];
    assert_eq!(err["category"], "billing-key-invalid", "{status}");
    assert_eq!(
        status["organizations"][0]["counts"]["requested"], 1,
        "nothing applied"
    );
    snap!(&s, "status_after_bad_key", s.ok(&["status"]));
}

#[test]
fn items_the_cloud_skips_give_exit_3() {
    // A cloud organization on a Teams plan has a billing sync key but cannot sponsor: the cloud
    // accepts the request and skips every item.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let teams = sponsorship_core::ids::CloudOrganizationId::new_random();
    let key = "Tm3dEf6hIj9lMn2pQr5tUv8xYz1bCd";
    let seed = serde_json::json!({
        "region": "US",
        "installations": [{"id": crate::common::INSTALLATION_ID, "key": "Q3rT7yU1iO5pA9sD2fG6", "region": "US"}],
        "organizations": [{"id": teams, "name": "Teamish", "planType": 18, "billingSyncKey": key}],
        "users": [],
    });
    let emulator = rt
        .block_on(cloud_emulator::start(
            cloud_emulator::Seed::from_json(&seed.to_string()).unwrap(),
            cloud_emulator::EmulatorOptions::default(),
        ))
        .unwrap();
    let base = emulator
        .base_url()
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let s = Sandbox::new();
    std::fs::write(
        &s.env,
        format!("globalSettings__installation__id={}\nglobalSettings__installation__key=Q3rT7yU1iO5pA9sD2fG6\n", crate::common::INSTALLATION_ID),
    )
    .unwrap();
    s.ok(&[
        "env",
        "enable-cloud",
        "--region",
        "custom",
        "--identity-uri",
        &base,
        "--api-uri",
        &base,
    ]);
    s.ok(&[
        "org",
        "add",
        "--name",
        "Acme",
        "--plan",
        "enterprise-annually",
        "--cloud-org-id",
        &teams.to_string(),
    ]);
    s.ok_stdin(&["billing-sync", "set-token", "--org", "Acme"], key);
    s.ok(&[
        "member",
        "add",
        "--org",
        "Acme",
        "--email",
        "alice@acme.example",
    ]);
    s.ok(&[
        "sponsorship",
        "offer",
        "--org",
        "Acme",
        "--member",
        "alice@acme.example",
        "--email",
        "alice@home.example",
    ]);
    let out = s.run(&["sync"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    snap!(&s, "sync_skipped", text);
    rt.block_on(emulator.stop()).unwrap();
}

#[test]
fn demo_runs_offline_from_nothing() {
    let s = Sandbox::new();
    // No state file, no env file: the demo brings its own, in a temp directory.
    let out = s.cmd().arg("demo").current_dir(s.path()).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "== Step 1.",
        "== Step 2.",
        "== Step 3.",
        "== Step 4.",
        "Active",
        "Sent",
        "Removed (awaiting sync)",
        "restart the server to apply: ./bitwarden.sh restart",
        "A Families sponsorship lets each member",
        "the next offer is refused on purpose",
        "sent: the sponsorships sent to the cloud; updated:",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    // "Last sync: Never" before the first sync, in the help page's words.
    let first_sync = text.find("$ sponsorctl sync").unwrap();
    assert!(
        text[..first_sync].contains("Last sync:           Never"),
        "{text}"
    );
    assert!(!s.state.exists(), "the demo leaves the current state alone");
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\S*sponsorctl-demo-[A-Za-z0-9]+", "[DEMO_DIR]");
    settings.add_filter(r"Done in \d+\.\d+ s", "Done in [SECS] s");
    settings.bind(|| snap!(&s, "demo", text));
}

/// `doctor` against a cloud whose sync endpoint hangs: the key check gives up within its own
/// budget (20 s per cloud call) and says why, instead of waiting out the sync's 2 minutes per
/// request (it once took 210 s).
#[test]
fn doctor_against_a_hung_cloud_ends_within_its_budget() {
    let s = Sandbox::new();
    let mut log = String::new();
    let cloud = setup_cloud(&s, true, &[], &mut log);
    cloud.delay_syncs(10, 300_000);
    let started = std::time::Instant::now();
    let out = s.run(&["doctor"]);
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.contains("billing sync key of Acme Corp"))
        .unwrap_or_else(|| panic!("no key check: {stdout}"));
    assert!(line.contains("timed out"), "{line}");
    // Twice the budget: the bound is what is asserted, not a speed.
    assert!(
        took < std::time::Duration::from_secs(40),
        "doctor took {took:?}"
    );
}

/// A newcomer tries the whole flow against `sponsorctl cloud serve` with `sponsorctl` alone:
/// the example seed, the owner's token and license, the signing key to trust; no curl, no
/// reading of the emulator's source.
#[test]
fn the_reference_cloud_flow_with_sponsorctl_alone() {
    use std::io::BufRead as _;
    let s = Sandbox::new();
    let seed_text = s.ok(&["cloud", "serve", "--example-seed"]);
    let seed: serde_json::Value = serde_json::from_str(&seed_text).unwrap();
    let seed_file = s.path().join("seed.json");
    std::fs::write(&seed_file, &seed_text).unwrap();
    let mut serve = s
        .cmd_std()
        .args(["cloud", "serve", "--seed", seed_file.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(serve.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    let installation = seed["installations"][0]["id"].as_str().unwrap();
    let acme = seed["organizations"][0]["id"].as_str().unwrap();
    let owner = seed["users"][0]["email"].as_str().unwrap();
    let password = s.path().join("owner-password.txt");
    std::fs::write(&password, seed["users"][0]["password"].as_str().unwrap()).unwrap();

    std::fs::write(
        &s.env,
        format!(
            "globalSettings__installation__id={installation}\nglobalSettings__installation__key={}\n",
            seed["installations"][0]["key"].as_str().unwrap()
        ),
    )
    .unwrap();
    s.ok(&[
        "env",
        "enable-cloud",
        "--region",
        "custom",
        "--identity-uri",
        &url,
        "--api-uri",
        &url,
    ]);
    let trust = s.path().join("reference-cloud.pem");
    s.ok(&["cloud", "signing-key", "--out", trust.to_str().unwrap()]);
    s.ok(&[
        "org",
        "add",
        "--name",
        "Acme Corp",
        "--plan",
        "enterprise-annually",
    ]);
    let license = s.path().join("acme-license.json");
    s.ok(&[
        "cloud",
        "license",
        "--url",
        &url,
        "--org",
        acme,
        "--installation",
        installation,
        "--out",
        license.to_str().unwrap(),
    ]);
    let imported = s
        .cmd()
        .env("SPONSORCTL_LICENSE_TRUST_KEY", &trust)
        .args([
            "license",
            "import",
            "--org",
            "Acme Corp",
            license.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );

    let token_args = [
        "cloud",
        "token",
        "--url",
        &url,
        "--org",
        acme,
        "--email",
        owner,
        "--password-file",
        password.to_str().unwrap(),
    ];
    // Never on a terminal: the token would land in the scrollback.
    let (code, screen) = s.run_on_terminal(&token_args, &[]);
    assert_eq!(code, 2, "{screen}");
    assert!(screen.contains("would show on the terminal"), "{screen}");
    // Piped into set-token, as an operator would.
    let token = s.ok(&token_args);
    assert_eq!(token.trim().len(), 30, "one 30-character token on stdout");
    assert!(!screen.contains(token.trim()));
    s.ok_stdin(
        &[
            "billing-sync",
            "set-token",
            "--org",
            "Acme Corp",
            "--verify",
        ],
        &token,
    );
    s.alice_offers("Acme Corp");
    let synced = s.ok(&["sync"]);
    assert!(synced.contains("Acme Corp: sent 1, updated 1"), "{synced}");
    // Rotating in the cloud makes the stored token fail, and sync names the fix.
    let rotated = s.path().join("rotated.txt");
    s.ok(&[
        &token_args[..],
        &["--rotate", "--out", rotated.to_str().unwrap()],
    ]
    .concat());
    let failed = s.run(&["sync"]);
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        err.contains("`sponsorctl billing-sync set-token --org 'Acme Corp'`"),
        "{err}"
    );
    s.ok(&[
        "-y",
        "billing-sync",
        "set-token",
        "--org",
        "Acme Corp",
        "--token-file",
        rotated.to_str().unwrap(),
    ]);
    assert!(s.ok(&["sync"]).contains("Acme Corp: sent 1"));
    let _ = serve.kill();
    let _ = serve.wait();
}
