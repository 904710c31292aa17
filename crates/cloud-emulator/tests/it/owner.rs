//! Owner flows: login, billing sync key generation and rotation, sync status and the
//! "token rotated" warning.

use reqwest::Method;
use serde_json::json;

use crate::fixture::*;

const MEMBER: &str = "9e1d0000-0000-4000-8000-000000000001";

#[tokio::test]
async fn only_owners_with_their_password_get_the_key_and_rotation_kills_the_old_one() {
    let emu = emulator().await;
    let c = client(&emu);
    assert!(c.login(OWNER, "wrong").await.is_err());
    let owner = c.login(OWNER, OWNER_PASSWORD).await.unwrap();
    let kid = c.login(KID, KID_PASSWORD).await.unwrap();

    // Not the owner: 404, whatever the password.
    let err = c
        .billing_sync_key(&kid, acme(), KID_PASSWORD)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("HTTP 404"), "{err}");

    // Wrong password: the model-state error, and nothing is created or changed.
    let (status, body) = {
        let login = call(
            &emu,
            Method::POST,
            "accounts/login",
            None,
            Some(&json!({"email": OWNER, "password": OWNER_PASSWORD})),
        )
        .await
        .1;
        let session = login["accessToken"].as_str().unwrap().to_owned();
        call(
            &emu,
            Method::POST,
            &format!("organizations/{ACME}/rotate-api-key"),
            Some(&session),
            Some(&json!({"type": 1, "masterPasswordHash": "nope"})),
        )
        .await
    };
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"object":"error","message":"The model state is invalid.",
               "validationErrors":{"MasterPasswordHash":["Invalid password."]},
               "exceptionMessage":null,"exceptionStackTrace":null,"innerExceptionMessage":null})
    );

    // The seeded key is returned as it is.
    let key = c
        .billing_sync_key(&owner, acme(), OWNER_PASSWORD)
        .await
        .unwrap();
    assert_eq!(secrecy::ExposeSecret::expose_secret(&key.api_key), KEY);
    assert_eq!(key.object, "apiKey");

    // A sync with it works; sync-status shows it.
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
    let last = c.sync_status(&owner, acme()).await.unwrap().unwrap();
    let status = c.billing_sync_status(&owner, acme()).await.unwrap();
    assert!(status.message.unwrap().starts_with("Last sync: "));

    // Rotation: a new 30-character key; the old one fails at once.
    emu.advance_clock(chrono::TimeDelta::days(3));
    let rotated = c
        .rotate_billing_sync_key(&owner, acme(), OWNER_PASSWORD)
        .await
        .unwrap();
    let new_key = secrecy::ExposeSecret::expose_secret(&rotated.api_key).to_owned();
    assert_eq!(new_key.len(), 30);
    assert!(new_key.chars().all(|ch| ch.is_ascii_alphanumeric()));
    assert_ne!(new_key, KEY);
    assert!(rotated.revision_date > last);
    let (status, _) = call(
        &emu,
        Method::POST,
        "organization/sponsorship/sync",
        Some(&t),
        Some(&sync_body(KEY, vec![item(MEMBER, KID)])),
    )
    .await;
    assert_eq!(
        status, 401,
        "three days later the one-hour access token has expired"
    );
    let t = token(&emu, "api.installation").await;
    let (status, err) = call(
        &emu,
        Method::POST,
        "organization/sponsorship/sync",
        Some(&t),
        Some(&sync_body(KEY, vec![item(MEMBER, KID)])),
    )
    .await;
    assert_eq!(
        (status, err["message"].as_str()),
        (400, Some("Invalid Billing Sync Key"))
    );

    // The dialog warns until the self-hosted server syncs with the new key.
    emu.advance_clock(chrono::TimeDelta::days(2));
    let t = token(&emu, "api.installation").await;
    let status = c.billing_sync_status(&owner, acme()).await.unwrap();
    assert_eq!(
        status.message.as_deref(),
        Some(
            "Token rotated 2 days ago. Update the billing sync token in your self-hosted organization settings."
        )
    );
    assert_eq!(
        serde_json::to_value(status.status).unwrap(),
        json!({"state": "awaitingSync", "daysSinceRotation": 2})
    );
    let (status, _) = call(
        &emu,
        Method::POST,
        "organization/sponsorship/sync",
        Some(&t),
        Some(&sync_body(&new_key, vec![item(MEMBER, KID)])),
    )
    .await;
    assert_eq!(status, 200);
    let status = c.billing_sync_status(&owner, acme()).await.unwrap();
    assert!(status.message.unwrap().starts_with("Last sync: "));

    // Key information never shows the secret.
    let login = call(
        &emu,
        Method::POST,
        "accounts/login",
        None,
        Some(&json!({"email": OWNER, "password": OWNER_PASSWORD})),
    )
    .await
    .1;
    let (status, info) = call(
        &emu,
        Method::GET,
        &format!("organizations/{ACME}/api-key-information"),
        login["accessToken"].as_str(),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(info["data"][0]["keyType"], 1);
    assert!(!info.to_string().contains(&new_key));
    emu.stop().await.unwrap();
}

#[tokio::test]
async fn a_teams_or_families_org_without_a_key_is_handled() {
    let emu = emulator().await;
    let c = client(&emu);
    let kid = c.login(KID, KID_PASSWORD).await.unwrap();
    // Families organizations may not generate a billing sync key (404, like the cloud).
    let err = c
        .billing_sync_key(&kid, home(), KID_PASSWORD)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("HTTP 404"), "{err}");
    // Sync against an organization with no key stored is a 500, as in the real cloud (QUIRK 14.9).
    let t = token(&emu, "api.installation").await;
    let mut body = sync_body(KEY, vec![item(MEMBER, KID)]);
    body["sponsoringOrganizationCloudId"] = json!(HOME);
    let (status, err) = call(
        &emu,
        Method::POST,
        "organization/sponsorship/sync",
        Some(&t),
        Some(&body),
    )
    .await;
    assert_eq!(
        (status, err["message"].as_str()),
        (500, Some("An unhandled server error has occurred."))
    );
    emu.stop().await.unwrap();
}

#[tokio::test]
async fn owner_page_shows_key_status_and_awaiting_sync_rows() {
    let emu = emulator().await;
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
    cloud_emulator::client::EmulatorClient::new(emu.base_url().clone())
        .unwrap()
        .redeem(&cloud_emulator::ScriptedRedeem {
            link: Some(emu.outbox()[0].link.clone()),
            token: None,
            email: KID.into(),
            password: None,
            create_user: false,
            organization_id: Some(home()),
            new_organization_name: None,
        })
        .await
        .unwrap();

    // Sign in through the web form (no redirects followed: read the session cookie).
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tls_backend_preconfigured(
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        )
        .build()
        .unwrap();
    let resp = http
        .post(emu.base_url().join("login").unwrap())
        .form(&[
            ("email", OWNER),
            ("password", OWNER_PASSWORD),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    let session = cookie.split(';').next().unwrap().to_owned();
    let page = http
        .get(
            emu.base_url()
                .join(&format!("web/organizations/{ACME}"))
                .unwrap(),
        )
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Last sync: "), "{page}");
    assert!(
        page.contains("Redeemed") && page.contains("Awaiting sync"),
        "{page}"
    );
    // Another user's organization is "not found" for this owner.
    let other = http
        .get(
            emu.base_url()
                .join(&format!("web/organizations/{HOME}"))
                .unwrap(),
        )
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 404);
    emu.stop().await.unwrap();
}
