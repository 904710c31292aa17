//! # test-support
//!
//! The fixtures the workspace's tests share, so that the same installation, organization,
//! keys and clock are not written out again in every crate's tests: a test names
//! `test_support::BILLING_KEY` where it used to spell the key.
//!
//! Not for production code (the crate is not published) and not for `sponsorship-core`'s own
//! tests: this crate depends on the core, so the core's tests would see a second copy of its
//! types (they have `tests/it/fixtures.rs`, and the store kit has its own rows).
//!
//! ```
//! let seed = test_support::seed(test_support::INSTALLATION_KEY, "Acme");
//! assert_eq!(seed["organizations"][0]["billingSyncKey"], test_support::BILLING_KEY);
//! assert_eq!(test_support::installation_id().to_string(), test_support::INSTALLATION_ID);
//! ```

#![forbid(unsafe_code)]
// Fixtures are constants: a panic here is a typo in this file, found by any test that uses it.
#![allow(clippy::missing_panics_doc)]

#[cfg(feature = "browser")]
pub mod browser;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use sponsorship_core::ids::{CloudOrganizationId, InstallationId};
use sponsorship_core::secret::BillingSyncKey;

/// The installation the reference cloud knows (`globalSettings__installation__id`).
pub const INSTALLATION_ID: &str = "7e0b3c52-3f4c-4d0e-9e57-aa7a1e5c9a10";
/// An installation key (20 alphanumerics) the reference cloud accepts for it.
pub const INSTALLATION_KEY: &str = "AbCdEfGhIj0123456789";
/// The cloud organization (Enterprise) the self-hosted organization syncs with.
pub const CLOUD_ORG_ID: &str = "0b7c2f0e-1111-2222-3333-444455556666";
/// Its billing sync key (30 alphanumerics).
pub const BILLING_KEY: &str = "Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd";

/// [`INSTALLATION_ID`] as an id.
pub fn installation_id() -> InstallationId {
    parse(INSTALLATION_ID)
}

/// [`CLOUD_ORG_ID`] as an id.
pub fn cloud_org_id() -> CloudOrganizationId {
    parse(CLOUD_ORG_ID)
}

/// [`BILLING_KEY`] as a key.
pub fn billing_key() -> BillingSyncKey {
    match BillingSyncKey::parse(BILLING_KEY) {
        Ok(key) => key,
        Err(e) => panic!("the fixture key is valid: {e}"),
    }
}

/// The instant the tests' fixed clocks stand at: 2026-11-24 12:00:00 UTC.
pub fn fixed_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// A reference-cloud seed (the JSON `cloud_emulator::Seed::from_json` reads): the US
/// installation [`INSTALLATION_ID`] with `installation_key`, and one enabled Enterprise
/// organization [`CLOUD_ORG_ID`] named `org_name` with [`BILLING_KEY`]; no users. Tests add
/// what else they need to the value.
pub fn seed(installation_key: &str, org_name: &str) -> Value {
    json!({
        "region": "US",
        "installations": [
            {"id": INSTALLATION_ID, "key": installation_key, "region": "US", "enabled": true}
        ],
        "organizations": [{
            "id": CLOUD_ORG_ID,
            "name": org_name,
            "planType": 20,
            "enabled": true,
            "billingSyncKey": BILLING_KEY,
        }],
        "users": [],
    })
}

fn parse<T: std::str::FromStr>(text: &str) -> T
where
    T::Err: std::fmt::Display,
{
    match text.parse() {
        Ok(v) => v,
        Err(e) => panic!("the fixture id {text} parses: {e}"),
    }
}
