//! The redemption page in a real headless Chromium, driven over WebDriver with fantoccini
//! through a `chromedriver` this test spawns on a free loopback port (`test_support::browser`).

use reqwest::Method;
use test_support::browser::Browser;

use crate::fixture::*;

async fn offer(emu: &cloud_emulator::RunningEmulator, member: &str, email: &str) -> String {
    let t = token(emu, "api.installation").await;
    let (status, body) = call(
        emu,
        Method::POST,
        "organization/sponsorship/sync",
        Some(&t),
        Some(&sync_body(KEY, vec![item(member, email)])),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    emu.outbox()
        .into_iter()
        .rev()
        .find(|m| m.to == email)
        .expect("an offer e-mail")
        .link
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipient_redeems_on_new_and_existing_families_organizations_in_chromium() {
    let emu = emulator().await;
    let browser = Browser::launch().await;

    // 1. A recipient without an account: register, then redeem on a NEW Families organization.
    let link = offer(
        &emu,
        "9e1d0000-0000-4000-8000-00000000000a",
        "newkid@home.example",
    )
    .await;
    assert!(link.contains("register=true"));
    browser.goto(&link).await;
    assert!(browser.exists("#register-form").await);
    browser.type_into("#register-password", "newkid-pass").await;
    browser.click("#register-submit").await;
    browser.text_containing("#sponsor", "Acme").await;
    browser.type_into("#new-name", "The Newkids").await;
    browser.click("#redeem-submit").await;
    let done = browser.text_containing("#success", "The Newkids").await;
    assert!(done.contains("is now sponsored by Acme"), "{done}");
    browser
        .text_containing("#awaiting-sync", "Awaiting sync")
        .await;
    browser.screenshot("redeem-new.png").await;
    let rows = emu.sponsorships(acme());
    assert!(rows[0].row.is_redeemed() && rows[0].awaiting_sync);
    // Single use: the page says the link was redeemed, and where (the API still answers C3
    // with the real cloud's `false`).
    browser.goto(&link).await;
    browser
        .text_containing(
            "#offer-error",
            "This offer was already redeemed, on The Newkids: each offer can be redeemed once.",
        )
        .await;
    // An offer for someone else is refused, and the page says which account it is for.
    let link = offer(&emu, "9e1d0000-0000-4000-8000-00000000000b", KID).await;
    browser.goto(&link).await;
    browser
        .text_containing("#error", "This offer was sent to kid@home.example")
        .await;
    browser
        .text_containing("#offer-error", "The sponsorship offer has expired.")
        .await;
    browser.delete_cookies().await;

    // 2. An existing user: sign in, redeem on the Families organization they already own.
    browser.goto(&link).await;
    browser.type_into("#password", KID_PASSWORD).await;
    browser.click("#login-submit").await;
    browser.text_containing("#sponsor", "Acme").await;
    browser.screenshot("redeem-offer.png").await;
    browser.click(&format!("#target-{HOME}")).await;
    browser.click("#redeem-submit").await;
    browser.text_containing("#success", "Kid's family").await;
    browser.screenshot("redeem.png").await;

    // 3. A second offer to the same person cannot go to the already sponsored organization:
    //    the C4 error is shown on the page.
    let link = offer(&emu, "9e1d0000-0000-4000-8000-00000000000c", KID).await;
    browser.goto(&link).await;
    browser.text_containing("#sponsor", "Acme").await;
    browser.click(&format!("#target-{HOME}")).await;
    browser.click("#redeem-submit").await;
    browser
        .text_containing(
            "#error",
            "Cannot redeem a sponsorship offer for an organization that is already sponsored. Revoke existing sponsorship first.",
        )
        .await;
    browser.screenshot("redeem-error.png").await;

    // 4. The recipient removes the sponsorship (C7); the cloud row is marked and awaits sync.
    browser
        .goto(
            emu.base_url()
                .join(&format!("web/organizations/{HOME}"))
                .unwrap()
                .as_str(),
        )
        .await;
    browser
        .text_containing("#sponsorship", "Awaiting sync")
        .await;
    browser.click("#remove-sponsorship").await;
    browser
        .text_containing("#sponsorship", "removal requested")
        .await;
    let removed = emu
        .sponsorships(acme())
        .into_iter()
        .find(|r| r.row.sponsored_organization_id == Some(home()))
        .unwrap();
    assert!(removed.row.to_delete && removed.awaiting_sync);

    browser.quit().await;
    emu.stop().await.unwrap();
}
