//! A seeded emulator and raw HTTP helpers.

use cloud_emulator::client::{EmulatorClient, default_http_client};
use cloud_emulator::{EmulatorOptions, RunningEmulator, Seed, start};
use serde_json::Value;
use sponsorship_core::ids::{CloudOrganizationId, InstallationId};

pub(crate) use test_support::{
    BILLING_KEY as KEY, CLOUD_ORG_ID as ACME, INSTALLATION_ID as INSTALLATION, INSTALLATION_KEY,
};
pub(crate) const EU_INSTALLATION: &str = "8e0b3c52-3f4c-4d0e-9e57-aa7a1e5c9a10";
pub(crate) const DISABLED_INSTALLATION: &str = "9e0b3c52-3f4c-4d0e-9e57-aa7a1e5c9a10";
pub(crate) const HOME: &str = "0b7c2f0e-1111-2222-3333-777788889999";
pub(crate) const OWNER: &str = "owner@acme.example";
pub(crate) const OWNER_PASSWORD: &str = "owner-pass";
pub(crate) const KID: &str = "kid@home.example";
pub(crate) const KID_PASSWORD: &str = "kid-pass";

pub(crate) fn seed_json() -> String {
    format!(
        r#"{{"region":"US","allowRegistration":true,
  "installations":[
    {{"id":"{INSTALLATION}","key":"{INSTALLATION_KEY}","region":"US","enabled":true}},
    {{"id":"{EU_INSTALLATION}","key":"{INSTALLATION_KEY}","region":"EU","enabled":true}},
    {{"id":"{DISABLED_INSTALLATION}","key":"{INSTALLATION_KEY}","region":"US","enabled":false}}],
  "organizations":[
    {{"id":"{ACME}","name":"Acme","planType":20,"enabled":true,"billingSyncKey":"{KEY}"}},
    {{"id":"{HOME}","name":"Kid's family","planType":22,"enabled":true}}],
  "users":[
    {{"email":"{OWNER}","password":"{OWNER_PASSWORD}","ownerOf":["{ACME}"]}},
    {{"email":"{KID}","password":"{KID_PASSWORD}","ownerOf":["{HOME}"]}}]}}"#
    )
}

pub(crate) fn acme() -> CloudOrganizationId {
    test_support::cloud_org_id()
}

pub(crate) fn home() -> CloudOrganizationId {
    HOME.parse().unwrap()
}

pub(crate) fn installation() -> InstallationId {
    test_support::installation_id()
}

pub(crate) async fn emulator_with(options: EmulatorOptions) -> RunningEmulator {
    start(Seed::from_json(&seed_json()).unwrap(), options)
        .await
        .unwrap()
}

pub(crate) async fn emulator() -> RunningEmulator {
    let mut options = EmulatorOptions::default();
    options.fault_injection = true;
    emulator_with(options).await
}

pub(crate) fn http() -> reqwest::Client {
    default_http_client().unwrap()
}

pub(crate) fn client(emu: &RunningEmulator) -> EmulatorClient {
    EmulatorClient::new(emu.base_url().clone()).unwrap()
}

/// `POST /connect/token`; returns (status, body).
pub(crate) async fn token_raw(
    emu: &RunningEmulator,
    id: &str,
    key: &str,
    scope: &str,
) -> (u16, Value) {
    let resp = http()
        .post(emu.base_url().join("connect/token").unwrap())
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("client_id", &format!("installation.{id}")),
            ("client_secret", key),
        ])
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

pub(crate) async fn token(emu: &RunningEmulator, scope: &str) -> String {
    let (status, body) = token_raw(emu, INSTALLATION, INSTALLATION_KEY, scope).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// A request with a bearer token and JSON body; returns (status, body or Null).
pub(crate) async fn call(
    emu: &RunningEmulator,
    method: reqwest::Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut req = http().request(method, emu.base_url().join(path).unwrap());
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

pub(crate) fn item(member: &str, email: &str) -> Value {
    serde_json::json!({
        "sponsoringOrganizationUserId": member,
        "friendlyName": email,
        "offeredToEmail": email,
        "planSponsorshipType": 0,
        "lastSyncDate": null,
        "validUntil": null,
        "toDelete": false
    })
}

pub(crate) fn sync_body(key: &str, items: Vec<Value>) -> Value {
    serde_json::json!({
        "billingSyncKey": key,
        "sponsoringOrganizationCloudId": ACME,
        "sponsorshipsBatch": Value::Array(items),
    })
}
