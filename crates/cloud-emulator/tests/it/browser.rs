//! The redemption page in a real headless Chromium, driven over WebDriver (W3C JSON protocol)
//! with a `chromedriver` this test spawns on a free loopback port.
//!
//! The WebDriver calls are a few lines of reqwest rather than a WebDriver crate: the maintained
//! crates (fantoccini, thirtyfour) bring their own hyper client and TLS stack, which this
//! workspace's TLS-free loopback test does not need.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::fixture::*;

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
    "--window-size=1000,820",
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
        "`{program}` is not installed: run scripts/ensure-chromium.sh (installs Debian's chromium and chromium-driver; CI runs it first)"
    );
}

fn chromium_binary() -> Option<&'static str> {
    ["/usr/bin/chromium", "/usr/lib/chromium/chromium"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

/// A WebDriver session on a chromedriver child process. chromedriver runs in its own process
/// group, which Chromium inherits; dropping the `Browser` (also when an assertion panics)
/// ends that group, so no browser outlives the test.
struct Browser {
    http: reqwest::Client,
    session: String,
    base: String,
    process_group: Option<u32>,
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(pgid) = self.process_group {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Browser {
    async fn launch() -> Self {
        require("chromedriver");
        require("chromium");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let process_group = driver.id();
        let base = format!("http://127.0.0.1:{port}");
        let http = http();
        // chromedriver needs a moment to listen; poll its status (bounded: 30 s on a busy CI machine).
        let mut ready = false;
        for _ in 0..600 {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready, "chromedriver did not become ready on port {port}");
        let profile = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| (*s).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut options = json!({ "args": args });
        if let Some(bin) = chromium_binary() {
            options["binary"] = json!(bin);
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": options,
        }}});
        let resp: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {resp}"))
            .to_owned();
        Self {
            http,
            session,
            base,
            process_group,
            _driver: driver,
            _profile: profile,
        }
    }

    async fn cmd(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let resp = self.raw(method, path, body).await;
        if resp["value"].get("error").is_some() {
            let source = self.raw(Method::GET, "/source", None).await;
            panic!(
                "WebDriver {path}: {}\n--- page source ---\n{}",
                resp["value"]["message"],
                source["value"].as_str().unwrap_or_default()
            );
        }
        resp["value"].clone()
    }

    async fn raw(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap().json().await.unwrap()
    }

    async fn goto(&self, url: &str) {
        self.cmd(Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Finds an element, waiting (bounded) for a page that is still loading after a submit.
    async fn find(&self, css: &str) -> String {
        let body = json!({"using": "css selector", "value": css});
        for _ in 0..400 {
            let v = self.raw(Method::POST, "/element", Some(body.clone())).await;
            if let Some(id) = v["value"]
                .as_object()
                .filter(|o| !o.contains_key("error"))
                .and_then(|o| o.values().next())
                .and_then(Value::as_str)
            {
                return id.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Fails with the page source.
        self.cmd(Method::POST, "/element", Some(body)).await;
        unreachable!()
    }

    async fn exists(&self, css: &str) -> bool {
        let v = self
            .cmd(
                Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array().is_some_and(|a| !a.is_empty())
    }

    /// The text of an element once it contains `needle` (waits, bounded, for navigation).
    async fn text_containing(&self, css: &str, needle: &str) -> String {
        let mut last = String::new();
        for _ in 0..400 {
            let id = self.find(css).await;
            let v = self
                .raw(Method::GET, &format!("/element/{id}/text"), None)
                .await;
            if let Some(t) = v["value"].as_str() {
                if t.contains(needle) {
                    return t.to_owned();
                }
                t.clone_into(&mut last);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{css} never contained {needle:?}; last text {last:?}");
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.cmd(
            Method::POST,
            &format!("/element/{id}/clear"),
            Some(json!({})),
        )
        .await;
        self.cmd(
            Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.cmd(
            Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn sign_out(&self) {
        self.cmd(Method::DELETE, "/cookie", None).await;
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.cmd(Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG screenshot");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    async fn quit(self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = self.http.delete(url).send().await;
    }
}

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
    browser.sign_out().await;

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
