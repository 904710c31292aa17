//! `examples/host_server.rs` runs as its docs say: the two address lines, the web vault's API
//! under `/api` with the profile's H15 members, the pages' sign-in and their CSRF protection,
//! and its state kept across a restart.

use reqwest::Method;

use crate::host_support::*;

fn profile_org(body: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["object"], "profile");
    v["organizations"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_host_serves_api_profile_and_pages_and_keeps_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("host.db");
    let host = HostProcess::start(&state);
    assert_eq!(host.base.host_str(), Some("127.0.0.1"));
    assert_ne!(host.base.port(), host.cloud.port());

    let (status, body) = host
        .api(Method::GET, "/accounts/profile", ALICE_TOKEN, None)
        .await;
    assert_eq!(status, 200, "{body}");
    let org = profile_org(&body);
    assert_eq!(org["id"], ORG);
    assert_eq!(org["object"], "profileOrganization");
    assert_eq!(org["familySponsorshipAvailable"], true);
    assert!(org["familySponsorshipFriendlyName"].is_null());
    assert_eq!(
        host.api(Method::GET, "/accounts/profile", "wrong", None)
            .await
            .0,
        401
    );

    // H17: the members, for the admin dialog's check; a member of the organization only.
    let (status, body) = host
        .api(
            Method::GET,
            &format!("/organizations/{ORG}/users/mini-details"),
            OWNER_TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with(r#"{"data":[{"id":"33333333-0000-4000-8000-000000000001","userId":"11111111-0000-4000-8000-000000000001","type":0,"status":2,"name":"Olivia","email":"olivia@acme.example","object":"organizationUserUserMiniDetails"}"#),
        "{body}"
    );
    assert!(
        body.ends_with(r#""continuationToken":null,"object":"list"}"#),
        "{body}"
    );
    assert_eq!(
        host.api(
            Method::GET,
            &format!("/organizations/{ORG}/users/mini-details"),
            IVAN_TOKEN,
            None
        )
        .await
        .0,
        404
    );

    // The pages: sign-in with the API's token, a strict session cookie.
    let browser = HostProcess::client(false);
    let root = browser.get(host.url("/")).send().await.unwrap();
    assert_eq!(root.status(), 303);
    assert_eq!(root.headers()["location"], "/sign-in");
    let signed_in = browser
        .post(host.url("/sign-in"))
        .form(&[("token", ALICE_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    let page = browser
        .get(host.url("/sponsored-families"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"<label for="email-22222222-0000-4000-8000-000000000001">"#),
        "{html}"
    );

    // A form without its CSRF token, or from another site, changes nothing.
    for (origin, csrf) in [(None, None), (Some("http://evil.example"), Some("x"))] {
        let mut form = vec![("organization", ORG), ("email", "kid@home.example")];
        if let Some(csrf) = csrf {
            form.push(("csrf", csrf));
        }
        let mut request = browser
            .post(host.url("/sponsored-families/offer"))
            .header("cookie", &session)
            .form(&form);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        assert_eq!(request.send().await.unwrap().status(), 403);
    }
    let body = host
        .api(Method::GET, "/accounts/profile", ALICE_TOKEN, None)
        .await
        .1;
    assert!(
        profile_org(&body)["familySponsorshipFriendlyName"].is_null(),
        "no offer was made"
    );

    // The web vault's offer, and an invited member's refusal.
    let create = format!("/organization/sponsorship/self-hosted/{ORG}/families-for-enterprise");
    let offer = r#"{"sponsoredEmail":"kid@home.example","planSponsorshipType":0,"friendlyName":"kid@home.example"}"#;
    assert_eq!(
        host.api(Method::POST, &create, ALICE_TOKEN, Some(offer))
            .await,
        (200, String::new())
    );
    let (status, body) = host
        .api(Method::POST, &create, IVAN_TOKEN, Some(offer))
        .await;
    assert_eq!(status, 400);
    assert!(
        body.contains("Only confirmed users can sponsor other organizations."),
        "{body}"
    );

    // A restart on the same state keeps the offer, the organization and its cloud.
    let cloud_org = host.cloud_org.clone();
    drop(host);
    let again = HostProcess::start(&state);
    assert_eq!(again.cloud_org, cloud_org);
    let body = again
        .api(Method::GET, "/accounts/profile", ALICE_TOKEN, None)
        .await
        .1;
    assert_eq!(
        profile_org(&body)["familySponsorshipFriendlyName"],
        "kid@home.example"
    );
}
