//! The Billing → Subscription and Sponsored Families pages of `examples/host_server.rs` in a
//! real headless Chromium, driven with fantoccini (WebDriver) through a chromedriver this test
//! spawns (`test_support::browser`): the whole flow clicked through against the reference
//! cloud, with screenshots kept in `target/screenshots/` as test artifacts.

use fantoccini::Locator;
use fantoccini::key::Key;
use test_support::browser::Browser;

use crate::host_support::*;

/// Signs in with the keyboard: the field has the focus when the page opens; the token is
/// typed, then Enter.
async fn sign_in(b: &Browser, host: &HostProcess, token: &str) {
    b.goto(&host.url("/sign-in")).await;
    assert_eq!(b.focused().await, "token", "the token field has the focus");
    b.keys(&(token.to_owned() + &Key::Enter.to_string())).await;
    b.find("#sign-out").await;
}

async fn sign_out(b: &Browser) {
    b.click("#sign-out").await;
    b.find("#sign-in").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_and_sponsored_families_clicked_through_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let host = HostProcess::start(&dir.path().join("host.db"));
    let c = Browser::launch().await;
    let row = format!("#row-{ORG}");
    let billing = format!("/organizations/{ORG}/billing/subscription");

    // The owner: Billing → Subscription, "Last sync: Never", the token pasted and saved.
    sign_in(&c, &host, OWNER_TOKEN).await;
    c.client
        .find(Locator::LinkText("Acme: Billing"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(c.text("#last-sync").await, "Never");
    assert_eq!(c.text("#connection").await, "Not set up");
    let key = host.billing_key().await;
    c.type_into("#billing-sync-token", &key).await;
    c.click("#save-billing-sync").await;
    assert_eq!(c.text("#notice").await, "Billing sync token saved.");
    let connection = c.text("#connection").await;
    assert_eq!(connection, format!("Token ending in …{}, on", &key[26..]));
    assert!(
        !c.source().await.contains(&key),
        "the token is never shown back"
    );
    c.screenshot("host-billing-saved.png").await;
    sign_out(&c).await;

    // A member offers with the keyboard: the e-mail typed into its labelled field, Tab to the
    // button, Enter.
    sign_in(&c, &host, ALICE_TOKEN).await;
    assert_eq!(
        c.text(&format!("label[for='email-{ORG}']")).await,
        "Family member's e-mail"
    );
    c.type_into(
        &format!("#email-{ORG}"),
        &("kid@home.example".to_owned() + &Key::Tab.to_string()),
    )
    .await;
    assert_eq!(c.focused().await, format!("offer-{ORG}"));
    c.keys(&Key::Enter.to_string()).await;
    // Requested, awaiting sync.
    assert!(c.text("#notice").await.starts_with("Offered."));
    let requested = c.text(&row).await;
    assert!(
        requested.contains("kid@home.example")
            && requested.contains("Requested")
            && requested.contains("Awaiting sync"),
        "{requested}"
    );
    c.screenshot("host-families-requested.png").await;
    sign_out(&c).await;

    // The owner syncs now: "Last sync" is set; Sync license works too.
    sign_in(&c, &host, OWNER_TOKEN).await;
    c.goto(&host.url(&billing)).await;
    c.click("#sync-now").await;
    assert_eq!(
        c.text("#notice").await,
        "Synced: 1 sent, 1 updated, 0 removed."
    );
    assert_ne!(c.text("#last-sync").await, "Never");
    assert_eq!(c.text("#last-error").await, "None");
    c.click("#sync-license").await;
    // The page before had a notice too: wait for the new one.
    let notice = c.text_containing("#notice", "License").await;
    assert_eq!(notice, "License synced.");
    assert_ne!(c.text("#last-license-sync").await, "Never");
    c.screenshot("host-billing-synced.png").await;
    sign_out(&c).await;

    sign_in(&c, &host, ALICE_TOKEN).await;
    let sent = c.text(&row).await;
    assert!(
        sent.contains("Sent") && !sent.contains("Awaiting sync"),
        "{sent}"
    );
    sign_out(&c).await;

    // The recipient redeems on the reference cloud's page.
    let outbox = host.emulator().outbox().await.unwrap();
    let mail = outbox
        .iter()
        .find(|m| m.to == "kid@home.example")
        .expect("the offer was mailed");
    c.goto(&mail.link).await;
    c.type_into("#register-password", "kid-password-1").await;
    c.click("#register-submit").await;
    c.type_into("#new-name", "The Kids").await;
    c.click("#redeem-submit").await;
    assert!(c.text("#success").await.contains("The Kids"));

    // The next sync makes it Active; the member revokes: "Revoke when expired", awaiting sync.
    sign_in(&c, &host, OWNER_TOKEN).await;
    c.goto(&host.url(&billing)).await;
    c.click("#sync-now").await;
    assert!(c.text("#notice").await.starts_with("Synced:"));
    sign_out(&c).await;
    sign_in(&c, &host, ALICE_TOKEN).await;
    let active = c.text(&row).await;
    assert!(
        active.contains("Active") && !active.contains("Awaiting sync"),
        "{active}"
    );
    c.screenshot("host-families-active.png").await;
    c.click(&format!("#revoke-{ORG}")).await;
    assert!(c.text("#notice").await.starts_with("Revoked."));
    let revoked = c.text(&row).await;
    assert!(
        revoked.contains("Revoke when expired") && revoked.contains("Awaiting sync"),
        "{revoked}"
    );
    c.screenshot("host-families-revoked.png").await;
    sign_out(&c).await;

    // An invited member sees why they cannot offer; the owner's page is not theirs.
    sign_in(&c, &host, IVAN_TOKEN).await;
    assert!(
        c.text("#main")
            .await
            .contains("Only confirmed members can sponsor")
    );
    c.goto(&host.url(&billing)).await;
    assert_eq!(c.text("h1").await, "Not found");
    c.quit().await;
}
