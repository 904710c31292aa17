//! Server-to-server endpoints over HTTP.

use reqwest::Method;
use serde_json::json;

use crate::fixture::*;
use cloud_emulator::{Fault, FaultRule, ScriptedRedeem};

const MEMBER: &str = "9e1d0000-0000-4000-8000-000000000001";

#[tokio::test]
async fn token_is_refused_for_every_bad_client_with_invalid_client() {
    let emu = emulator().await;
    let (status, body) = token_raw(&emu, INSTALLATION, INSTALLATION_KEY, "api.installation").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 86_400, "tokens live 24 h");
    assert_eq!(body["access_token"].as_str().unwrap().split('.').count(), 3);
    for (id, key) in [
        (INSTALLATION, "WRONGkeyWRONGkey0000"),
        ("00000000-0000-0000-0000-000000000000", INSTALLATION_KEY),
        (DISABLED_INSTALLATION, INSTALLATION_KEY),
        (EU_INSTALLATION, INSTALLATION_KEY),
    ] {
        let (status, body) = token_raw(&emu, id, key, "api.installation").await;
        assert_eq!(
            (status, body),
            (400, json!({"error": "invalid_client"})),
            "{id}"
        );
    }
    let (status, body) = token_raw(&emu, INSTALLATION, INSTALLATION_KEY, "api.admin").await;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_scope")));
    emu.stop().await.unwrap();
}

#[tokio::test]
async fn sync_checks_token_scope_organization_and_key() {
    let emu = emulator().await;
    let body = sync_body(KEY, vec![item(MEMBER, KID)]);
    let (status, _) = call(
        &emu,
        Method::POST,
        "organization/sponsorship/sync",
        None,
        Some(&body),
    )
    .await;
    assert_eq!(status, 401);
    let licensing = token(&emu, "api.licensing").await;
    let (status, _) = call(
        &emu,
        Method::POST,
        "organization/sponsorship/sync",
        Some(&licensing),
        Some(&body),
    )
    .await;
    assert_eq!(status, 403, "a licensing token may not sync");
    let t = token(&emu, "api.installation").await;
    let mut unknown = body.clone();
    unknown["sponsoringOrganizationCloudId"] = json!("00000000-0000-4000-8000-000000000000");
    let (status, err) = call(
        &emu,
        Method::POST,
        "organization/sponsorship/sync",
        Some(&t),
        Some(&unknown),
    )
    .await;
    assert_eq!(
        (status, err["message"].as_str()),
        (400, Some("Invalid organization"))
    );
    let wrong = sync_body("Zb3dEf6hIj9lMn2pQr5tUv8xYz1bCd", vec![item(MEMBER, KID)]);
    let (status, err) = call(
        &emu,
        Method::POST,
        "organization/sponsorship/sync",
        Some(&t),
        Some(&wrong),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        err,
        json!({"object":"error","message":"Invalid Billing Sync Key","validationErrors":null,
               "exceptionMessage":null,"exceptionStackTrace":null,"innerExceptionMessage":null})
    );
    // A missing key binds to null: the same 400, not a model-state error.
    let mut keyless = body.clone();
    keyless.as_object_mut().unwrap().remove("billingSyncKey");
    let (status, err) = call(
        &emu,
        Method::POST,
        "organization/sponsorship/sync",
        Some(&t),
        Some(&keyless),
    )
    .await;
    assert_eq!(
        (status, err["message"].as_str()),
        (400, Some("Invalid Billing Sync Key"))
    );
    // Member names bind case-insensitively; a missing batch is a 500 once the key is valid.
    let pascal = json!({"BillingSyncKey": KEY, "SponsoringOrganizationCloudId": body["sponsoringOrganizationCloudId"]});
    let (status, err) = call(
        &emu,
        Method::POST,
        "organization/sponsorship/sync",
        Some(&t),
        Some(&pascal),
    )
    .await;
    assert_eq!(
        (status, err["message"].as_str()),
        (500, Some("An unhandled server error has occurred."))
    );
    assert!(emu.outbox().is_empty());
    emu.stop().await.unwrap();
}

#[tokio::test]
async fn sync_offer_redeem_and_sync_again() {
    let emu = emulator().await;
    let t = token(&emu, "api.installation").await;
    let (status, resp) = call(
        &emu,
        Method::POST,
        "organization/sponsorship/sync",
        Some(&t),
        Some(&sync_body(
            KEY,
            vec![item(MEMBER, "new.person@home.example")],
        )),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    let first = &resp["sponsorshipsBatch"][0];
    assert_eq!(first["sponsoringOrganizationUserId"], MEMBER);
    assert!(first["lastSyncDate"].is_string());
    assert!(first["validUntil"].is_null());
    assert_eq!(first["cloudSponsorshipRemoved"], false);

    let c = client(&emu);
    let outbox = c.outbox().await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].to, "new.person@home.example");
    assert_eq!(outbox[0].subject, "Accept your Sponsored Families Plan");
    let link = url::Url::parse(&outbox[0].link).unwrap();
    assert_eq!(link.path(), "/redeem");
    let q: std::collections::HashMap<_, _> = link.query_pairs().into_owned().collect();
    assert!(q["token"].starts_with("BWOrganizationSponsorship_"));
    assert_eq!(q["email"], "new.person@home.example");
    assert_eq!(q["register"], "true", "no account exists for this address");

    // Someone else cannot redeem it, even with the link.
    let err = c
        .redeem(&ScriptedRedeem {
            link: Some(outbox[0].link.clone()),
            token: None,
            email: KID.into(),
            password: Some(KID_PASSWORD.into()),
            create_user: false,
            organization_id: Some(home()),
            new_organization_name: None,
        })
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("No unredeemed sponsorship offer exists for you."),
        "{err}"
    );

    let redeemed = c
        .redeem(&ScriptedRedeem {
            link: Some(outbox[0].link.clone()),
            token: None,
            email: "new.person@home.example".into(),
            password: Some("pw".into()),
            create_user: true,
            organization_id: None,
            new_organization_name: Some("New family".into()),
        })
        .await
        .unwrap();
    assert_eq!(redeemed.organization_name, "New family");
    assert_eq!(redeemed.sponsoring_organization_name, "Acme");
    let valid_until = redeemed.valid_until.unwrap();
    assert!(valid_until - emu.now() > chrono::TimeDelta::days(364));

    let rows = c.sponsorships(acme()).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].awaiting_sync);
    assert_eq!(rows[0].row.offered_to_email, None);
    assert_eq!(
        rows[0].row.sponsored_organization_id,
        Some(redeemed.sponsored_organization_id)
    );

    // Single use: the same link is dead now.
    let again = c
        .redeem(&ScriptedRedeem {
            link: Some(outbox[0].link.clone()),
            token: None,
            email: "new.person@home.example".into(),
            password: None,
            create_user: false,
            organization_id: None,
            new_organization_name: None,
        })
        .await
        .unwrap_err();
    assert!(
        again
            .to_string()
            .contains("No unredeemed sponsorship offer"),
        "{again}"
    );

    emu.advance_clock(chrono::TimeDelta::minutes(1));
    let mut second = item(MEMBER, "new.person@home.example");
    second["lastSyncDate"] = first["lastSyncDate"].clone();
    let (_, resp) = call(
        &emu,
        Method::POST,
        "organization/sponsorship/sync",
        Some(&t),
        Some(&sync_body(KEY, vec![second])),
    )
    .await;
    assert_eq!(
        sponsorship_core::wire::time::parse(
            resp["sponsorshipsBatch"][0]["validUntil"].as_str().unwrap()
        ),
        Some(valid_until)
    );
    assert!(!c.sponsorships(acme()).await.unwrap()[0].awaiting_sync);
    assert_eq!(emu.outbox().len(), 1, "no new e-mail for an existing row");
    emu.stop().await.unwrap();
}

#[tokio::test]
async fn a_thousand_item_batch_fits_the_body_limit() {
    let emu = emulator().await;
    let t = token(&emu, "api.installation").await;
    let items = (0..1000)
        .map(|i| {
            item(
                &format!("9e1d0000-0000-4000-8000-{i:012}"),
                &format!("p{i}@home.example"),
            )
        })
        .collect();
    let (status, resp) = call(
        &emu,
        Method::POST,
        "organization/sponsorship/sync",
        Some(&t),
        Some(&sync_body(KEY, items)),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(resp["sponsorshipsBatch"].as_array().unwrap().len(), 1000);
    assert_eq!(emu.outbox().len(), 1000);
    emu.stop().await.unwrap();
}

#[tokio::test]
async fn license_endpoint_checks_and_serves_the_configured_version() {
    let emu = emulator().await;
    let t = token(&emu, "api.licensing").await;
    let license_key = emu.license(acme(), None).unwrap();
    let key = secrecy::ExposeSecret::expose_secret(&license_key.license_key).to_owned();
    let body = json!({"licenseKey": key, "billingSyncKey": KEY});
    let path = format!("licenses/organization/{ACME}");
    let (status, lic) = call(&emu, Method::GET, &path, Some(&t), Some(&body)).await;
    assert_eq!(status, 200, "{lic}");
    assert_eq!(lic["version"], 15);
    assert_eq!(lic["id"], ACME);
    assert_eq!(lic["installationId"], INSTALLATION);
    // Signed with the key the inspection surface publishes, which verifies it.
    let pem = http()
        .get(
            emu.base_url()
                .join("_emulator/license-signing-key")
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let anchor =
        sponsorship_core::license::TrustAnchor::from_public_key_pem("served", &pem).unwrap();
    let served = sponsorship_core::license::OrganizationLicense::parse(&lic.to_string()).unwrap();
    let verified = sponsorship_core::license::LicenseVerifier::with_anchors(vec![anchor])
        .verify(&served, Some(installation()), chrono::Utc::now())
        .unwrap();
    assert_eq!(
        verified.signed_by,
        sponsorship_core::license::SignedBy::Token
    );

    emu.set_license_version(17);
    let (_, lic) = call(&emu, Method::GET, &path, Some(&t), Some(&body)).await;
    assert_eq!(lic["version"], 17);
    let parsed = sponsorship_core::license::OrganizationLicense::parse(&lic.to_string()).unwrap();
    assert_eq!(
        sponsorship_core::license::LicenseVerifier::default()
            .verify(&parsed, Some(installation()), chrono::Utc::now())
            .unwrap_err()
            .to_string(),
        "Version 17 is not supported."
    );

    // The license key is checked before the billing sync key, and answered after 2 s.
    let bad_license = json!({"licenseKey": "nope", "billingSyncKey": "x"});
    let started = std::time::Instant::now();
    let (status, err) = call(&emu, Method::GET, &path, Some(&t), Some(&bad_license)).await;
    assert_eq!(
        (status, err["message"].as_str()),
        (400, Some("Invalid license key."))
    );
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
    let bad_key = json!({"licenseKey": key, "billingSyncKey": "x"});
    let (status, err) = call(&emu, Method::GET, &path, Some(&t), Some(&bad_key)).await;
    assert_eq!(
        (status, err["message"].as_str()),
        (400, Some("Invalid Billing Sync Key"))
    );
    let (status, err) = call(
        &emu,
        Method::GET,
        "licenses/organization/00000000-0000-4000-8000-000000000000",
        Some(&t),
        Some(&body),
    )
    .await;
    assert_eq!(
        (status, err["message"].as_str()),
        (404, Some("Resource not found."))
    );
    let sync_token = token(&emu, "api.installation").await;
    let (status, _) = call(&emu, Method::GET, &path, Some(&sync_token), Some(&body)).await;
    assert_eq!(status, 403, "a valid token without the licensing scope");
    let (status, _) = call(&emu, Method::GET, &path, None, Some(&body)).await;
    assert_eq!(status, 401);
    emu.stop().await.unwrap();
}

#[tokio::test]
async fn faults_fail_the_next_requests_then_stop() {
    let emu = emulator().await;
    let c = client(&emu);
    c.inject_fault(&FaultRule {
        path: "/connect/token".into(),
        count: 1,
        fault: Fault::Status {
            status: 503,
            retry_after: Some(7),
        },
    })
    .await
    .unwrap();
    let resp = http()
        .post(emu.base_url().join("connect/token").unwrap())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()["retry-after"], "7");

    assert!(emu.inject_fault(FaultRule {
        path: "/connect/token".into(),
        count: 1,
        fault: Fault::Drop
    }));
    let dropped = async {
        let resp = http()
            .post(emu.base_url().join("connect/token").unwrap())
            .send()
            .await?;
        resp.bytes().await
    }
    .await;
    assert!(
        dropped.is_err(),
        "a dropped connection is a transport error"
    );

    assert!(emu.inject_fault(FaultRule {
        path: "/connect/token".into(),
        count: 1,
        fault: Fault::Malformed
    }));
    let resp = http()
        .post(emu.base_url().join("connect/token").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.json::<serde_json::Value>().await.is_err());

    assert!(emu.inject_fault(FaultRule {
        path: "/connect/token".into(),
        count: 1,
        fault: Fault::Truncated
    }));
    let truncated = async {
        http()
            .post(emu.base_url().join("connect/token").unwrap())
            .send()
            .await?
            .bytes()
            .await
    }
    .await;
    assert!(truncated.is_err());

    // A delay answers normally, late.
    assert!(emu.inject_fault(FaultRule {
        path: "/connect/token".into(),
        count: 1,
        fault: Fault::Delay { millis: 20 },
    }));
    let (status, _) = token_raw(&emu, INSTALLATION, INSTALLATION_KEY, "api.installation").await;
    assert_eq!(status, 200);

    // Used up: the next request is answered normally.
    let (status, _) = token_raw(&emu, INSTALLATION, INSTALLATION_KEY, "api.installation").await;
    assert_eq!(status, 200);
    emu.stop().await.unwrap();
}

#[tokio::test]
async fn faults_are_off_unless_enabled() {
    let emu = emulator_with(cloud_emulator::EmulatorOptions::default()).await;
    assert!(!emu.inject_fault(FaultRule {
        path: "/connect/token".into(),
        count: 1,
        fault: Fault::Drop
    }));
    let err = client(&emu)
        .inject_fault(&FaultRule {
            path: "/connect/token".into(),
            count: 1,
            fault: Fault::Drop,
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Fault injection is off"), "{err}");
    emu.stop().await.unwrap();
}

#[tokio::test]
async fn state_persists_in_a_private_data_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cloud.json");
    let mut options = cloud_emulator::EmulatorOptions::default();
    options.data_file = Some(file.clone());
    let emu = emulator_with(options.clone()).await;
    let t = token(&emu, "api.installation").await;
    let (status, _) = call(
        &emu,
        Method::POST,
        "organization/sponsorship/sync",
        Some(&t),
        Some(&sync_body(KEY, vec![item(MEMBER, KID)])),
    )
    .await;
    assert_eq!(status, 200);
    let link = emu.outbox()[0].link.clone();
    emu.stop().await.unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // A new run reads the file (the seed is ignored) and still accepts the old offer link.
    let emu = cloud_emulator::start(
        cloud_emulator::Seed::from_json(r#"{"region":"US"}"#).unwrap(),
        options,
    )
    .await
    .unwrap();
    assert_eq!(emu.outbox().len(), 1);
    let redeemed = client(&emu)
        .redeem(&ScriptedRedeem {
            link: Some(link),
            token: None,
            email: KID.into(),
            password: Some(KID_PASSWORD.into()),
            create_user: false,
            organization_id: Some(home()),
            new_organization_name: None,
        })
        .await
        .unwrap();
    assert_eq!(redeemed.sponsored_organization_id, home());
    emu.stop().await.unwrap();
}

async fn offer_link(emu: &cloud_emulator::RunningEmulator, member: &str, email: &str) -> String {
    let t = token(emu, "api.installation").await;
    let (status, _) = call(
        emu,
        Method::POST,
        "organization/sponsorship/sync",
        Some(&t),
        Some(&sync_body(KEY, vec![item(member, email)])),
    )
    .await;
    assert_eq!(status, 200);
    emu.outbox().last().unwrap().link.clone()
}

fn token_in(link: &str) -> String {
    url::Url::parse(link)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "token")
        .unwrap()
        .1
        .into_owned()
}

#[tokio::test]
async fn recipient_json_endpoints_validate_redeem_and_remove() {
    let emu = emulator().await;
    let link = offer_link(&emu, MEMBER, KID).await;
    let offer = token_in(&link);
    let (_, login) = call(
        &emu,
        Method::POST,
        "accounts/login",
        None,
        Some(&json!({"email": KID, "password": KID_PASSWORD})),
    )
    .await;
    let kid = login["accessToken"].as_str().unwrap().to_owned();

    // C3
    let q = url::form_urlencoded::byte_serialize(offer.as_bytes()).collect::<String>();
    let (status, v) = call(
        &emu,
        Method::POST,
        &format!("organization/sponsorship/validate-token?sponsorshipToken={q}"),
        Some(&kid),
        None,
    )
    .await;
    assert_eq!((status, &v["isTokenValid"]), (200, &json!(true)));
    let (_, v) = call(
        &emu,
        Method::POST,
        "organization/sponsorship/validate-token?sponsorshipToken=BWOrganizationSponsorship_x.y",
        Some(&kid),
        None,
    )
    .await;
    assert_eq!(v["isTokenValid"], false);

    // C4: not the owner of the target, then a good redemption.
    let redeem_path = format!("organization/sponsorship/redeem?sponsorshipToken={q}");
    let (status, err) = call(
        &emu,
        Method::POST,
        &redeem_path,
        Some(&kid),
        Some(&json!({"planSponsorshipType": 0, "sponsoredOrganizationId": ACME})),
    )
    .await;
    assert_eq!(
        (status, err["message"].as_str()),
        (
            400,
            Some("Can only redeem sponsorship for an organization you own.")
        )
    );
    let (status, _) = call(
        &emu,
        Method::POST,
        &redeem_path,
        Some(&kid),
        Some(&json!({"planSponsorshipType": 0, "sponsoredOrganizationId": HOME})),
    )
    .await;
    assert_eq!(status, 200);

    // C7: only the owner of the Families organization may remove it, once.
    let (_, login) = call(
        &emu,
        Method::POST,
        "accounts/login",
        None,
        Some(&json!({"email": OWNER, "password": OWNER_PASSWORD})),
    )
    .await;
    let owner = login["accessToken"].as_str().unwrap().to_owned();
    let remove = format!("organization/sponsorship/sponsored/{HOME}");
    let (status, err) = call(&emu, Method::DELETE, &remove, Some(&owner), None).await;
    assert_eq!(
        (status, err["message"].as_str()),
        (
            400,
            Some("Only the owner of an organization can remove sponsorship.")
        )
    );
    let (status, _) = call(&emu, Method::DELETE, &remove, Some(&kid), None).await;
    assert_eq!(status, 200);
    let (status, err) = call(&emu, Method::DELETE, &remove, Some(&kid), None).await;
    assert_eq!(
        (status, err["message"].as_str()),
        (
            400,
            Some("The requested organization is not currently being sponsored.")
        )
    );
    let rows = emu.sponsorships(acme());
    assert!(rows[0].row.to_delete && rows[0].awaiting_sync);

    // The next sync does not report the cloud-side removal back: the answer echoes the item's
    // `toDelete` (QUIRK 14.4).
    let t = token(&emu, "api.installation").await;
    let mut again = item(MEMBER, KID);
    again["lastSyncDate"] = json!("2026-01-01T00:00:00Z");
    let (_, resp) = call(
        &emu,
        Method::POST,
        "organization/sponsorship/sync",
        Some(&t),
        Some(&sync_body(KEY, vec![again])),
    )
    .await;
    assert_eq!(resp["sponsorshipsBatch"][0]["toDelete"], false);
    assert!(emu.sponsorships(acme())[0].row.to_delete);
    emu.stop().await.unwrap();
}

#[tokio::test]
async fn an_offer_not_synced_for_half_a_year_expires_at_redemption() {
    let emu = emulator().await;
    let link = offer_link(&emu, MEMBER, KID).await;
    emu.advance_clock(chrono::TimeDelta::days(183));
    let err = client(&emu)
        .redeem(&ScriptedRedeem {
            link: Some(link),
            token: None,
            email: KID.into(),
            password: None,
            create_user: false,
            organization_id: Some(home()),
            new_organization_name: None,
        })
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("This sponsorship offer is more than 6 months old and has expired."),
        "{err}"
    );
    assert!(
        emu.sponsorships(acme()).is_empty(),
        "the stale cloud row is deleted"
    );
    emu.stop().await.unwrap();
}

#[tokio::test]
async fn bodies_above_the_limit_are_refused() {
    let emu = emulator().await;
    let t = token(&emu, "api.installation").await;
    let huge = vec![b' '; cloud_emulator::BODY_LIMIT + 1];
    let resp = http()
        .post(
            emu.base_url()
                .join("organization/sponsorship/sync")
                .unwrap(),
        )
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    emu.stop().await.unwrap();
}

#[tokio::test]
async fn queued_offer_mails_read_as_they_were_sent() {
    // Sync only queues the mails; reading them later must give the mail of the moment of
    // sending: its time, and the register flag as the accounts were then.
    let emu = emulator().await;
    let t = token(&emu, "api.installation").await;
    let sent_at = emu.now();
    let items = vec![
        item(MEMBER, "Later.Person@home.example"),
        item("9e1d0000-0000-4000-8000-000000000002", "KID@Home.Example"),
    ];
    let (status, resp) = call(
        &emu,
        Method::POST,
        "organization/sponsorship/sync",
        Some(&t),
        Some(&sync_body(KEY, items)),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    // Before anyone reads the outbox, the first recipient creates an account (on the web
    // page) and the clock moves on.
    let created = http()
        .post(emu.base_url().join("register").unwrap())
        .form(&[
            ("email", "later.person@home.example"),
            ("password", "pw"),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert!(
        created.status().is_success() || created.status().is_redirection(),
        "{}",
        created.status()
    );
    emu.advance_clock(chrono::TimeDelta::hours(2));

    let c = client(&emu);
    let outbox = c.outbox().await.unwrap();
    assert_eq!(outbox, emu.outbox(), "HTTP and in-process readers agree");
    assert_eq!(outbox.len(), 2);
    let rows = c.sponsorships(acme()).await.unwrap();
    for (mail, to) in outbox
        .iter()
        .zip(["Later.Person@home.example", "KID@Home.Example"])
    {
        assert_eq!(mail.to, to);
        assert_eq!(mail.subject, "Accept your Sponsored Families Plan");
        assert!(
            mail.sent_at >= sent_at && mail.sent_at + chrono::TimeDelta::hours(1) < emu.now(),
            "{mail:?}"
        );
        let row = rows
            .iter()
            .find(|r| r.row.id == mail.sponsorship_id)
            .expect("a cloud row per mail");
        assert_eq!(row.row.id.as_uuid().get_version_num(), 4, "random v4 ids");
    }
    assert_ne!(outbox[0].sponsorship_id, outbox[1].sponsorship_id);
    let query = |i: usize| -> std::collections::HashMap<String, String> {
        url::Url::parse(&outbox[i].link)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect()
    };
    // "later.person" has an account now, but had none when the mail went out.
    assert_eq!(query(0)["register"], "true");
    assert_eq!(query(0)["email"], "Later.Person@home.example");
    assert!(
        !query(1).contains_key("register"),
        "KID@Home.Example is the kid's account, case aside"
    );
    // Both links redeem for their recipients.
    let redeemed = c
        .redeem(&ScriptedRedeem {
            link: Some(outbox[0].link.clone()),
            token: None,
            email: "later.person@home.example".into(),
            password: Some("pw".into()),
            create_user: false,
            organization_id: None,
            new_organization_name: Some("Later family".into()),
        })
        .await
        .unwrap();
    assert_eq!(redeemed.sponsorship_id, outbox[0].sponsorship_id);
    let redeemed = c
        .redeem(&ScriptedRedeem {
            link: Some(outbox[1].link.clone()),
            token: None,
            email: KID.into(),
            password: Some(KID_PASSWORD.into()),
            create_user: false,
            organization_id: Some(home()),
            new_organization_name: None,
        })
        .await
        .unwrap();
    assert_eq!(redeemed.sponsorship_id, outbox[1].sponsorship_id);
    emu.stop().await.unwrap();
}

#[tokio::test]
async fn queued_offer_mails_are_saved_rendered_in_the_data_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cloud.json");
    let mut options = cloud_emulator::EmulatorOptions::default();
    options.data_file = Some(file.clone());
    let emu = emulator_with(options.clone()).await;
    let t = token(&emu, "api.installation").await;
    let (status, _) = call(
        &emu,
        Method::POST,
        "organization/sponsorship/sync",
        Some(&t),
        Some(&sync_body(KEY, vec![item(MEMBER, KID)])),
    )
    .await;
    assert_eq!(status, 200);
    // Nobody read the outbox in this run: the file must hold the rendered mail all the same.
    emu.stop().await.unwrap();
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let mails: Vec<cloud_emulator::SentEmail> =
        serde_json::from_value(saved["outbox"].clone()).unwrap();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, KID);
    assert!(token_in(&mails[0].link).starts_with(cloud_emulator::OFFER_TOKEN_PREFIX));

    let emu = cloud_emulator::start(
        cloud_emulator::Seed::from_json(r#"{"region":"US"}"#).unwrap(),
        options,
    )
    .await
    .unwrap();
    assert_eq!(emu.outbox(), mails, "loaded as saved");
    let redeemed = client(&emu)
        .redeem(&ScriptedRedeem {
            link: Some(mails[0].link.clone()),
            token: None,
            email: KID.into(),
            password: Some(KID_PASSWORD.into()),
            create_user: false,
            organization_id: Some(home()),
            new_organization_name: None,
        })
        .await
        .unwrap();
    assert_eq!(redeemed.sponsorship_id, mails[0].sponsorship_id);
    emu.stop().await.unwrap();
}

/// `cloud serve` as a shipped server (issue #16, item 8): registration only where the seed
/// allows it, no data-file write when it fails, and sign-ins throttled after 5 failures.
#[tokio::test]
async fn registration_is_gated_writes_nothing_on_failure_and_logins_are_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cloud.json");
    let mut options = cloud_emulator::EmulatorOptions::default();
    options.data_file = Some(file.clone());
    // A seed without allowRegistration.
    let closed = cloud_emulator::start(
        cloud_emulator::Seed::from_json(r#"{"region":"US"}"#).unwrap(),
        options.clone(),
    )
    .await
    .unwrap();
    let register = |emu: &cloud_emulator::RunningEmulator, email: &str| {
        http()
            .post(emu.base_url().join("register").unwrap())
            .form(&[("email", email), ("password", "pw-1234"), ("next", "/")])
            .send()
    };
    let written = std::fs::read(&file).ok();
    let resp = register(&closed, "someone@home.example").await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("Registration is closed")
    );
    assert_eq!(
        std::fs::read(&file).ok(),
        written,
        "a refused registration wrote the data file"
    );
    closed.stop().await.unwrap();
    std::fs::remove_file(&file).ok();

    // Allowed: a failing registration (an invalid address) still writes nothing.
    let emu = emulator_with(options).await;
    let written = std::fs::read(&file).ok();
    let resp = register(&emu, "not an address").await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(std::fs::read(&file).ok(), written);

    // Five wrong passwords, then even the right one is refused for a while.
    for _ in 0..5 {
        let (status, _) = call(
            &emu,
            Method::POST,
            "accounts/login",
            None,
            Some(&json!({"email": OWNER, "password": "wrong"})),
        )
        .await;
        assert_eq!(status, 400);
    }
    let (status, body) = call(
        &emu,
        Method::POST,
        "accounts/login",
        None,
        Some(&json!({"email": OWNER, "password": OWNER_PASSWORD})),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert!(body["message"].as_str().unwrap().contains("Wait a minute"));
    // Another account is not affected.
    let (status, _) = call(
        &emu,
        Method::POST,
        "accounts/login",
        None,
        Some(&json!({"email": KID, "password": KID_PASSWORD})),
    )
    .await;
    assert_eq!(status, 200);
    emu.stop().await.unwrap();
}

/// Idle connections are closed after the header-read timeout, and connections beyond the cap
/// are closed at once while the server keeps answering (issue #16, item 8).
#[tokio::test]
async fn idle_connections_time_out_and_the_connection_count_is_capped() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut options = cloud_emulator::EmulatorOptions::default();
    options.header_read_timeout = std::time::Duration::from_millis(300);
    options.max_connections = 3;
    let emu = emulator_with(options).await;
    let addr = emu.base_url().socket_addrs(|| None).unwrap()[0];
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    // A fourth connection is closed without an answer.
    let mut extra = tokio::net::TcpStream::connect(addr).await.unwrap();
    extra
        .write_all(b"GET /_emulator/outbox HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .ok();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        extra.read_to_end(&mut buf),
    )
    .await
    .expect("the connection over the cap is closed at once");
    assert!(
        read.is_err() || buf.is_empty(),
        "answered over the cap: {buf:?}"
    );
    // The idle ones are closed after the header-read timeout ...
    for mut stream in idle {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            stream.read_to_end(&mut buf),
        )
        .await
        .expect("an idle connection is closed after the header-read timeout");
        assert!(n.is_err() || !buf.starts_with(b"HTTP/1.1 200"), "{buf:?}");
    }
    // ... and the server answers again.
    let (status, _) = call(&emu, Method::GET, "_emulator/outbox", None, None).await;
    assert_eq!(status, 200);
    // A kept-alive connection that goes idle after a request is closed too.
    let mut kept = tokio::net::TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /_emulator/outbox HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let done = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        kept.read_to_end(&mut buf),
    )
    .await
    .expect("an idle kept-alive connection is closed after the header-read timeout");
    assert!(done.is_ok() && buf.starts_with(b"HTTP/1.1 200"), "{buf:?}");
    emu.stop().await.unwrap();
}
