//! The pages through `Pages::handle`, without a browser: sign-in, the forms' CSRF token, each
//! status a member's row can show, and who sees which page. (The whole flow in Chromium is the
//! workspace's `tests/it/host_pages.rs`.)

use selfhost_api::pages::{Pages, SESSION_COOKIE};
use selfhost_api::{HttpRequest, HttpResponse, Method};

use crate::fixture::*;

struct Browser<'a> {
    pages: &'a Pages<TestHost>,
    cookie: String,
}

impl Browser<'_> {
    async fn get(&self, path: &str) -> HttpResponse {
        let request = HttpRequest::new(Method::Get, path).header("Cookie", &self.cookie);
        self.pages.handle(&request).await
    }

    /// Posts a form with the page's CSRF token, as the page's own form does.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> HttpResponse {
        let page = self.get("/sponsored-families").await.text();
        let csrf = page
            .split(r#"name="csrf" value=""#)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_owned();
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("csrf", &csrf);
        for (k, v) in fields {
            form.append_pair(k, v);
        }
        self.pages.handle(&self.form(path, form.finish())).await
    }

    fn form(&self, path: &str, body: String) -> HttpRequest {
        HttpRequest::new(Method::Post, path)
            .header("Cookie", &self.cookie)
            .header("Host", "vault.acme.example")
            .header("Origin", "https://vault.acme.example")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
    }
}

async fn sign_in<'a>(pages: &'a Pages<TestHost>, token: &str) -> Browser<'a> {
    let request = HttpRequest::new(Method::Post, "/sign-in")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"));
    let response = pages.handle(&request).await;
    assert_eq!(response.status, 303, "{}", response.text());
    let cookie = response.header_value("set-cookie").unwrap();
    assert!(cookie.starts_with(&format!("{SESSION_COOKIE}={token};")));
    Browser {
        pages,
        cookie: cookie.split(';').next().unwrap().to_owned(),
    }
}

fn row_status(html: &str) -> String {
    let start =
        html.find(r#"<span class="status">"#).expect("a row") + r#"<span class="status">"#.len();
    html[start..].split('<').next().unwrap().to_owned()
}

#[tokio::test]
async fn sign_in_forms_and_every_row_status() {
    let w = World::new(false).await;
    let pages = Pages::new(w.api.clone());
    let org = w.org.to_string();

    // Unknown tokens and signed-out requests.
    let bad = pages
        .handle(
            &HttpRequest::new(Method::Post, "/sign-in")
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body("token=nobody"),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("This token is not known"));
    let out = pages
        .handle(&HttpRequest::new(Method::Get, "/sponsored-families"))
        .await;
    assert_eq!(
        (out.status, out.header_value("location")),
        (303, Some("/sign-in"))
    );

    let alice = sign_in(&pages, ALICE).await;
    let page = alice.get("/sponsored-families").await;
    assert_eq!(page.status, 200);
    assert!(
        page.text()
            .contains(&format!(r#"<label for="email-{org}">"#))
    );

    // A form without the token, or with another session's, changes nothing.
    let forged = alice
        .pages
        .handle(&alice.form(
            "/sponsored-families/offer",
            format!("organization={org}&email=kid%40home.example&csrf=forged"),
        ))
        .await;
    assert_eq!(forged.status, 403);
    let bob = sign_in(&pages, BOB).await;
    let bobs_page = bob.get("/sponsored-families").await.text();
    let bobs_csrf = bobs_page
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let stolen = alice
        .pages
        .handle(&alice.form(
            "/sponsored-families/offer",
            format!("organization={org}&email=kid%40home.example&csrf={bobs_csrf}"),
        ))
        .await;
    assert_eq!(stolen.status, 403);
    assert!(
        !alice
            .get("/sponsored-families")
            .await
            .text()
            .contains("class=\"status\"")
    );

    // Offer: Requested, awaiting sync; the reference's refusal shown on the page.
    let offered = alice
        .post(
            "/sponsored-families/offer",
            &[("organization", &org), ("email", "kid@home.example")],
        )
        .await;
    assert_eq!(
        offered.header_value("location"),
        Some("/sponsored-families?notice=offered")
    );
    let html = alice.get("/sponsored-families?notice=offered").await.text();
    assert_eq!(row_status(&html), "Requested");
    assert!(html.contains("Awaiting sync") && html.contains("Offered. The cloud e-mails"));
    let refused = alice
        .post(
            "/sponsored-families/offer",
            &[("organization", &org), ("email", "alice@acme.example")],
        )
        .await;
    assert_eq!(refused.status, 400);
    assert!(
        refused
            .text()
            .contains("Cannot offer a Families Organization Sponsorship to yourself.")
    );

    // Revoked before any sync: Removed (awaiting sync).
    alice
        .post("/sponsored-families/revoke", &[("organization", &org)])
        .await;
    let html = alice.get("/sponsored-families").await.text();
    assert_eq!(row_status(&html), "Removed (awaiting sync)");

    // Sent after a sync; an invited member is told why they cannot offer.
    w.connect().await;
    bob.post(
        "/sponsored-families/offer",
        &[("organization", &org), ("email", "bobs-kid@home.example")],
    )
    .await;
    assert_eq!(w.sync().await.0, 200);
    let html = bob.get("/sponsored-families").await.text();
    assert_eq!(row_status(&html), "Sent");
    assert!(!html.contains(r#"class="badge awaiting""#));
    assert!(
        !alice
            .get("/sponsored-families")
            .await
            .text()
            .contains("class=\"status\""),
        "withdrawn, gone"
    );
    let invited = sign_in(&pages, INVITED).await;
    assert!(
        invited
            .get("/sponsored-families")
            .await
            .text()
            .contains("Only confirmed members can sponsor")
    );

    // Billing → Subscription is the owners' page; others get the not-found page.
    let billing = format!("/organizations/{org}/billing/subscription");
    assert_eq!(alice.get(&billing).await.status, 404);
    assert_eq!(sign_in(&pages, ADMIN).await.get(&billing).await.status, 404);
    let owner = sign_in(&pages, OWNER).await;
    let html = owner.get(&billing).await.text();
    assert!(
        html.contains(r#"<dd id="last-sync">20"#),
        "synced once: {html}"
    );
    assert!(html.contains(r#"<dd id="last-error">None</dd>"#));
    assert!(
        !html.contains(test_support::BILLING_KEY),
        "the key is never shown back"
    );
    // A bad token is refused with the reason, nothing saved over the good one.
    let bad_key = owner
        .post(
            &format!("/organizations/{org}/billing/billing-sync"),
            &[("token", "short"), ("enabled", "on")],
        )
        .await;
    assert_eq!(bad_key.status, 400);
    assert!(
        bad_key
            .text()
            .contains("The billing sync token is not valid")
    );
    assert!(owner.get(&billing).await.text().contains(&format!(
        "Token ending in …{}, on",
        &test_support::BILLING_KEY[26..]
    )));
    // Switched off: the page says so and "Sync now" is disabled.
    let off = owner
        .post(
            &format!("/organizations/{org}/billing/billing-sync"),
            &[("token", test_support::BILLING_KEY)],
        )
        .await;
    assert_eq!(off.status, 303);
    let html = owner.get(&billing).await.text();
    assert!(
        html.contains(", off</dd>") && html.contains(r#"id="sync-now" disabled"#),
        "{html}"
    );

    // Signing out ends the cookie.
    let signed_out = owner.post("/sign-out", &[]).await;
    assert!(
        signed_out
            .header_value("set-cookie")
            .unwrap()
            .contains("Max-Age=0")
    );
}

#[tokio::test]
async fn cloud_communication_off_is_said_on_the_billing_page() {
    let w = World::new(true).await;
    let pages = Pages::new(w.api.clone());
    let owner = sign_in(&pages, OWNER).await;
    let html = owner
        .get(&format!("/organizations/{}/billing/subscription", w.org))
        .await
        .text();
    assert!(
        html.contains(r#"id="cloud-off""#)
            && html.contains("globalSettings__enableCloudCommunication=true")
    );
    assert!(html.contains(r#"<dd id="last-sync">Never</dd>"#));
}
