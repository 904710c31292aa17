//! The Billing → Subscription and Sponsored Families pages of `examples/host_server.rs` in a
//! real headless Chromium, driven with fantoccini (WebDriver) through a chromedriver this test
//! spawns: the whole flow clicked through against the reference cloud, with screenshots kept
//! in `target/screenshots/` as test artifacts.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator, key::Key};

use crate::host_support::*;

const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1100,900",
];

fn require(program: &str) {
    let found = std::process::Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "`{program}` is not installed: run scripts/ensure-chromium.sh (installs Debian's chromium and chromium-driver; scripts/test.sh runs it first)"
    );
}

/// chromedriver on a free port, in its own process group (Chromium joins it), ended on drop.
struct Driver {
    child: std::process::Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser() -> (Driver, Client) {
    require("chromedriver");
    require("chromium");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("setsid")
        .args(["chromedriver", &format!("--port={port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let profile = tempfile::tempdir().unwrap();
    let driver = Driver {
        child,
        port,
        profile,
    };
    let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| (*s).to_owned()).collect();
    args.push(format!(
        "--user-data-dir={}",
        driver.profile.path().display()
    ));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({"args": args, "binary": chromium_binary()}),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let mut last = None;
    for _ in 0..100 {
        match ClientBuilder::new(connector.clone())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
        {
            Ok(client) => return (driver, client),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start a session: {last:?}");
}

fn chromium_binary() -> &'static str {
    ["/usr/bin/chromium", "/usr/lib/chromium/chromium"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("chromium")
}

async fn text(c: &Client, css: &str) -> String {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

async fn type_into(c: &Client, css: &str, value: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .send_keys(value)
        .await
        .unwrap();
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

/// The id of the element that has the keyboard focus.
async fn focused(c: &Client) -> String {
    c.active_element()
        .await
        .unwrap()
        .attr("id")
        .await
        .unwrap()
        .unwrap_or_default()
}

/// Signs in with the keyboard: the field has the focus when the page opens; the token is
/// typed, then Enter.
async fn sign_in(c: &Client, host: &HostProcess, token: &str) {
    c.goto(&host.url("/sign-in")).await.unwrap();
    assert_eq!(focused(c).await, "token", "the token field has the focus");
    c.active_element()
        .await
        .unwrap()
        .send_keys(&(token.to_owned() + &Key::Enter.to_string()))
        .await
        .unwrap();
    text(c, "#sign-out").await;
}

async fn sign_out(c: &Client) {
    click(c, "#sign-out").await;
    text(c, "#sign-in").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_and_sponsored_families_clicked_through_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let host = HostProcess::start(&dir.path().join("host.db"));
    let (_driver, c) = browser().await;
    let row = format!("#row-{ORG}");
    let billing = format!("/organizations/{ORG}/billing/subscription");

    // The owner: Billing → Subscription, "Last sync: Never", the token pasted and saved.
    sign_in(&c, &host, OWNER_TOKEN).await;
    c.find(Locator::LinkText("Acme: Billing"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(text(&c, "#last-sync").await, "Never");
    assert_eq!(text(&c, "#connection").await, "Not set up");
    let key = host.billing_key().await;
    type_into(&c, "#billing-sync-token", &key).await;
    click(&c, "#save-billing-sync").await;
    assert_eq!(text(&c, "#notice").await, "Billing sync token saved.");
    let connection = text(&c, "#connection").await;
    assert_eq!(connection, format!("Token ending in …{}, on", &key[26..]));
    assert!(
        !c.source().await.unwrap().contains(&key),
        "the token is never shown back"
    );
    screenshot(&c, "host-billing-saved.png").await;
    sign_out(&c).await;

    // A member offers, with the keyboard: Requested, awaiting sync.
    sign_in(&c, &host, ALICE_TOKEN).await;
    type_into(
        &c,
        &format!("#email-{ORG}"),
        &("kid@home.example".to_owned() + &Key::Enter.to_string()),
    )
    .await;
    assert!(text(&c, "#notice").await.starts_with("Offered."));
    let requested = text(&c, &row).await;
    assert!(
        requested.contains("kid@home.example")
            && requested.contains("Requested")
            && requested.contains("Awaiting sync"),
        "{requested}"
    );
    screenshot(&c, "host-families-requested.png").await;
    sign_out(&c).await;

    // The owner syncs now: "Last sync" is set; Sync license works too.
    sign_in(&c, &host, OWNER_TOKEN).await;
    c.goto(&host.url(&billing)).await.unwrap();
    click(&c, "#sync-now").await;
    assert_eq!(
        text(&c, "#notice").await,
        "Synced: 1 sent, 1 updated, 0 removed."
    );
    assert_ne!(text(&c, "#last-sync").await, "Never");
    assert_eq!(text(&c, "#last-error").await, "None");
    click(&c, "#sync-license").await;
    assert_eq!(text(&c, "#notice").await, "License synced.");
    assert_ne!(text(&c, "#last-license-sync").await, "Never");
    screenshot(&c, "host-billing-synced.png").await;
    sign_out(&c).await;

    sign_in(&c, &host, ALICE_TOKEN).await;
    let sent = text(&c, &row).await;
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
    c.goto(&mail.link).await.unwrap();
    type_into(&c, "#register-password", "kid-password-1").await;
    click(&c, "#register-submit").await;
    type_into(&c, "#new-name", "The Kids").await;
    click(&c, "#redeem-submit").await;
    assert!(text(&c, "#success").await.contains("The Kids"));

    // The next sync makes it Active; the member revokes: "Revoke when expired", awaiting sync.
    sign_in(&c, &host, OWNER_TOKEN).await;
    c.goto(&host.url(&billing)).await.unwrap();
    click(&c, "#sync-now").await;
    assert!(text(&c, "#notice").await.starts_with("Synced:"));
    sign_out(&c).await;
    sign_in(&c, &host, ALICE_TOKEN).await;
    let active = text(&c, &row).await;
    assert!(
        active.contains("Active") && !active.contains("Awaiting sync"),
        "{active}"
    );
    screenshot(&c, "host-families-active.png").await;
    click(&c, &format!("#revoke-{ORG}")).await;
    assert!(text(&c, "#notice").await.starts_with("Revoked."));
    let revoked = text(&c, &row).await;
    assert!(
        revoked.contains("Revoke when expired") && revoked.contains("Awaiting sync"),
        "{revoked}"
    );
    screenshot(&c, "host-families-revoked.png").await;
    sign_out(&c).await;

    // An invited member sees why they cannot offer; the owner's page is not theirs.
    sign_in(&c, &host, IVAN_TOKEN).await;
    assert!(
        text(&c, "#main")
            .await
            .contains("Only confirmed members can sponsor")
    );
    c.goto(&host.url(&billing)).await.unwrap();
    assert_eq!(text(&c, "h1").await, "Not found");
    c.close().await.unwrap();
}
