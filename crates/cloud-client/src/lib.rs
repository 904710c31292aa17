//! # cloud-client
//!
//! The self-hosted side's HTTP client against the cloud (spec §4.1, §5, §11): it gets the
//! installation's identity token, syncs an organization's sponsorships batch by batch through a
//! [`SponsorshipStore`](sponsorship_core::store::SponsorshipStore), checks a billing sync key,
//! and fetches the organization license. It is built on `reqwest` and on the pure rules of
//! `sponsorship-core`; it reads no environment variable, prints nothing and never exits.
//!
//! What it fixes of the reference server (field lessons C2–C4, QUIRKS 14.10, 14.11, 14.16):
//!
//! * **Typed errors.** Every failure is an [`Error`] with a precise [`ErrorKind`] (DNS, connect,
//!   TLS, proxy, timeout, identity rejected, billing key invalid, cloud organization unknown,
//!   rate limited, cloud 5xx, API changed, malformed response, store, busy) that maps onto the
//!   core's [`ErrorCategory`](sponsorship_core::schedule::ErrorCategory), names the host, and
//!   never contains a secret or an e-mail address. There is no silent 24 h back-off: the next
//!   call tries again.
//! * **Tokens** are cached per scope and refreshed *before* they expire (five minutes, or half
//!   the lifetime when shorter), by the monotonic clock; a 401 refreshes once and retries.
//! * **Batch by batch, pipelined.** Batch *k*'s answer is stored (one transaction) while batch
//!   *k+1* is on the wire; batches are sent one at a time, each after the previous was answered,
//!   and stored strictly in order. A failure in batch *k* keeps batches 1..k−1. If storing batch
//!   *k* fails, the cloud may already have processed batch *k+1*; that is harmless because the
//!   cloud side is idempotent, and a re-run converges without duplicate rows or offer e-mails.
//! * **URLs are joined, not glued**: `https://proxy.example/bw` + `connect/token` is
//!   `https://proxy.example/bw/connect/token`.
//! * **Retries** with exponential backoff and jitter (`backon`), only for transient failures,
//!   bounded by count and total time ([`RetryPolicy`]); a 429's `Retry-After` is honoured.
//!   A request body is serialized once and every attempt sends the same bytes.
//! * **Zero sponsorships still talk to the cloud**: one empty batch validates the key, so "last
//!   success" means the cloud accepted a request.
//!
//! The HTTP client is injectable ([`CloudClient::with_http_client`]); the default one
//! ([`default_http_client`]) uses rustls with the ring provider (nothing process-wide is
//! installed), the webpki roots plus an optional extra CA bundle, the configured timeouts, an
//! explicit proxy ([`CloudConfig::proxy`], [`CloudConfig::no_proxy`]; loopback never uses it)
//! and redirects only within the same host.
//!
//! The daily schedule is [`runner::DailyRunner`]: a host runs it in a task of its own, with
//! the organizations it knows ([`runner::SyncTargets`]) and a shutdown future; it persists each
//! due time, syncs, purges expired rows and stops after the current batch on shutdown.
//!
//! The code is split by job: `client` (the client and how it is built), `transport` (the
//! default HTTP client, one request on the wire), `token` (identity tokens), `retry` (one call
//! with its retries), `classify` (answers and transport failures as [`ErrorKind`]s), `sync`,
//! `license` and [`runner`].
//!
//! # Example: a complete sync against an in-memory store
//!
//! A `wiremock` server stands in for the cloud here; against the real cloud use
//! [`CloudConfig::for_region`].
//!
//! ```
//! use chrono::Utc;
//! use cloud_client::{CloudClient, CloudConfig, SyncOptions, SyncOutcome};
//! use sponsorship_core::ids::{MemberId, OrganizationId, SponsorshipId};
//! use sponsorship_core::org::BillingSyncConfig;
//! use sponsorship_core::secret::{BillingSyncKey, InstallationKey};
//! use sponsorship_core::sponsorship::{RowChange, Sponsorship, UiStatus};
//! use sponsorship_core::store::MemoryStore;
//! use wiremock::matchers::{method, path};
//! use wiremock::{Mock, MockServer, ResponseTemplate};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # runtime.block_on(async {
//! // The self-hosted organization has one offer that was never synced.
//! let org = OrganizationId::new_random();
//! let member = MemberId::new_random();
//! let store = MemoryStore::new();
//! let offer = Sponsorship::new_offer(
//!     SponsorshipId::new_random(),
//!     org,
//!     member,
//!     "alice@home.example",
//!     Utc::now(),
//! );
//! store.write(org, RowChange::Upsert(offer));
//!
//! // The cloud: a token, and a sync answer that confirms the offer.
//! let cloud = MockServer::start().await;
//! Mock::given(method("POST")).and(path("/connect/token"))
//!     .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
//!         "access_token": "a.b.c", "expires_in": 86400, "token_type": "Bearer"
//!     })))
//!     .mount(&cloud).await;
//! Mock::given(method("POST")).and(path("/organization/sponsorship/sync"))
//!     .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
//!         "sponsorshipsBatch": [{
//!             "sponsoringOrganizationUserId": member.to_string(),
//!             "friendlyName": "alice@home.example",
//!             "offeredToEmail": "alice@home.example",
//!             "planSponsorshipType": 0,
//!             "lastSyncDate": "2026-11-24T12:00:00.1234567",
//!             "validUntil": null,
//!             "toDelete": false,
//!             "cloudSponsorshipRemoved": false,
//!             "isAdminInitiated": false
//!         }]
//!     })))
//!     .mount(&cloud).await;
//!
//! // The client and the organization's billing sync connection.
//! let config = CloudConfig::new(
//!     "7e0b3c52-3f4c-4d0e-9e57-aa7a1e5c9a10".parse()?,
//!     InstallationKey::parse("AbCdEfGhIj0123456789")?,
//!     cloud.uri().parse()?,
//!     cloud.uri().parse()?,
//! );
//! let client = CloudClient::new(config)?;
//! let billing = BillingSyncConfig {
//!     billing_sync_key: BillingSyncKey::parse("Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd")?,
//!     cloud_organization_id: "0b7c2f0e-1111-2222-3333-444455556666".parse()?,
//!     last_license_sync: None,
//! };
//!
//! let report = client
//!     .sync_organization(&store, org, &billing, SyncOptions::default())
//!     .await?;
//! assert_eq!(report.outcome, SyncOutcome::Completed);
//! assert_eq!((report.sent, report.updated, report.skipped.len()), (1, 1, 0));
//! assert_eq!(store.rows(org)[0].ui_status(), UiStatus::Sent);
//! assert!(store.state(org).last_success.is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```
//!
//! Errors say what to do:
//!
//! ```
//! # use cloud_client::ErrorKind;
//! let kind = ErrorKind::UnsupportedLicenseVersion { version: Some(17) };
//! assert_eq!(
//!     kind.to_string(),
//!     "Version 17 is not supported. Back up bwdata, update the server, then upload the license again"
//! );
//! ```
#![deny(missing_docs)]

mod classify;
mod client;
mod config;
mod error;
mod license;
mod retry;
pub mod runner;
mod sync;
mod token;
mod transport;

pub use client::{Clock, CloudClient, Sleeper};
pub use config::{CloudConfig, RetryPolicy, Timeouts, join_url};
pub use error::{Error, ErrorKind};
pub use license::license_path;
pub use sponsorship_core::wire::Scope;
pub use sync::{BatchReport, SYNC_PATH, SyncOptions, SyncOutcome, SyncProgress, SyncReport};
pub use token::{TOKEN_PATH, TokenInfo};
pub use transport::default_http_client;
