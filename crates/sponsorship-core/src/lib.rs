//! # sponsorship-core
//!
//! The pure domain of Families-for-Enterprise sponsorships and of both sides of the billing
//! sync between a self-hosted server and the cloud. No I/O, no async runtime, no environment and
//! no clock: every function that needs the time takes `now`.
//!
//! What lives here, and only here:
//!
//! | module | what |
//! |---|---|
//! | [`ids`] | id newtypes |
//! | [`plan`] | plan types, product tiers, the sponsored-plan catalogue |
//! | [`region`] | cloud regions and their canonical URLs |
//! | [`secret`] | `BillingSyncKey`, `InstallationKey`: validated, never printed |
//! | [`org`] | organizations, members, the billing sync connection |
//! | [`sponsorship`] | the self-hosted row, UI status, offer / revoke / removal / expiry rules |
//! | [`wire`] | JSON of the sync, token, license and error bodies |
//! | [`sync`] | self-hosted side: batch planning and applying responses |
//! | [`cloud`] | cloud side: the sync algorithm, redemption, removal, key status, a ledger |
//! | [`schedule`] | sync state, error categories, the daily schedule with catch-up |
//! | [`store`] | the storage trait an embedding server implements, and an in-memory store |
//! | [`license`] | organization licenses and the supported-version check |
//! | `conformance` | the store conformance kit (feature `test-util`) |
//!
//! Each module's docs record the decisions taken on the reference server's quirks.
//!
//! # Decisions on the spec's QUIRK and UNSURE points
//!
//! | spec | decision | where |
//! |---|---|---|
//! | 14.1 full-state sync; zero rows never call the cloud | full state is kept (wire-compatible); zero rows still send one empty batch so the key is validated | [`sync`] |
//! | 14.2 duplicate member ids crash both sides | self-hosted sends one row per member and reports the others, so no batch holds a member twice; the cloud rules reproduce the crash | [`sync`], [`cloud`] |
//! | 14.3 offer changes never reach the cloud | withdraw the synced offer, then send the new one, in one run (the cloud rules keep the old recipient, as the real cloud does) | [`sponsorship`], [`sync`], [`cloud`] |
//! | 14.4 cloud-side `ToDelete` not reported | reproduced by the cloud rules; a recipient's removal is not visible on the self-hosted side | [`cloud`] |
//! | 14.5 new row + `toDelete` creates an orphan offer | reproduced by the cloud rules; the self-hosted side sends every `toDelete` item without a `lastSyncDate`, which the cloud cannot turn into a new row | [`sync`], [`cloud`] |
//! | 14.6 EF backends hard-delete on member removal | never hard-delete a row the cloud knows | [`sponsorship`] |
//! | 14.7 renewal validation is a no-op | not modelled: the reference cloud has no billing; a revoked redeemed row stays "Revoke when expired" until purged | [`cloud`] |
//! | 14.8 key created before the password check | the reference cloud verifies first | `cloud-emulator` |
//! | 14.9 no stored key gives 500 | reproduced; the client reports a persistent 500 with the hint that the cloud organization may have no billing sync token | [`cloud::check_billing_sync_key`], `cloud-client` |
//! | 14.10 token refresh after expiry | refresh before expiry on a monotonic clock | `cloud-client` |
//! | 14.11 batches not atomic, progress lost | each batch applied in its own transaction before the next is sent | [`sync`], [`store`] |
//! | 14.12 member id trusted by the cloud | inherent to the wire protocol: possession of the key authorizes, as in the reference | [`cloud`] |
//! | 14.13 friendly-name idempotency returns another member's row | refused with a clear error; same member and recipient is reported as already offered | [`sponsorship`] |
//! | 14.16 URL string concatenation | URLs are joined, a base path is kept | `cloud-client` |
//! | C14 local clock deletes expired rows | expiry judged by the cloud's clock (last sync date) | [`sponsorship::expired`] |
//! | §3 timestamps with and without offset | both accepted, offset-less is UTC; written as RFC 3339 with `Z` | [`wire::time`] |
//!
//! # Example: what an embedding server writes
//!
//! One member's offer made through the rules and stored, synced, redeemed in the cloud, synced
//! again, and the status the web vault shows. The sync loop below is what
//! `cloud_client::CloudClient::sync_organization` runs over HTTP; here the cloud's own rules
//! ([`cloud::CloudLedger`], which the reference cloud runs) answer in memory.
//!
//! ```
//! use chrono::{DateTime, TimeDelta, TimeZone, Utc};
//! use sponsorship_core::cloud::{CloudLedger, CloudOrganization, OfferClaims, OfferToSend};
//! use sponsorship_core::ids::*;
//! use sponsorship_core::org::*;
//! use sponsorship_core::plan::PlanType;
//! use sponsorship_core::sponsorship::{OfferRequest, RowChange, StatusCounts, UiStatus, offer};
//! use sponsorship_core::store::{MemoryStore, SponsorshipStore};
//! use sponsorship_core::sync::{BATCH_SIZE, apply_response, plan};
//!
//! /// One sync run: plan, let the cloud process each batch, store each answer before the next.
//! async fn sync(
//!     store: &MemoryStore,
//!     org: OrganizationId,
//!     cloud: &mut CloudLedger,
//!     cloud_org: &CloudOrganization,
//!     at: DateTime<Utc>,
//! ) -> Result<Vec<OfferToSend>, Box<dyn std::error::Error>> {
//!     let rows = store.sponsorships(org).await?;
//!     let plan = plan(&rows, BATCH_SIZE);
//!     let mut mailed = Vec::new();
//!     for batch in plan.batches() {
//!         let (outcome, offers) =
//!             cloud.sync_batch(cloud_org, &batch.items, at, SponsorshipId::new_random)?;
//!         mailed.extend(offers);
//!         store.apply_batch(org, &apply_response(&batch.receipt(), &outcome.response)).await?;
//!     }
//!     Ok(mailed)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
//! let org = Organization {
//!     id: OrganizationId::new_random(),
//!     name: "Acme".into(),
//!     plan_type: PlanType::EnterpriseAnnually,
//!     enabled: true,
//!     use_admin_sponsored_families: false,
//! };
//! let alice = Member {
//!     id: MemberId::new_random(),
//!     organization_id: org.id,
//!     email: "alice@acme.example".into(),
//!     status: MemberStatus::Confirmed,
//!     role: MemberRole::User,
//! };
//! let store = MemoryStore::new();
//!
//! // 1. Alice offers her sponsorship; the rule checks it against her rows; it stays local.
//! let request = OfferRequest {
//!     sponsor_email: &alice.email,
//!     offered_to_email: "alice@home.example",
//!     friendly_name: None,
//!     admin_initiated: false,
//!     notes: None,
//! };
//! let rows = store.sponsorships(org.id).await?;
//! let made = offer(&org, &alice, &rows, &request, SponsorshipId::new_random(), now)?;
//! store.write_changes(org.id, &[RowChange::Upsert(made.sponsorship)]).await?;
//! let status = |rows: &[_]| StatusCounts::of(rows);
//! assert_eq!(status(&store.sponsorships(org.id).await?).requested, 1);
//!
//! // 2. Sync: the cloud creates the offer and e-mails it ("Sent").
//! let cloud_org = CloudOrganization {
//!     id: CloudOrganizationId::new_random(),
//!     name: "Acme".into(),
//!     plan_type: PlanType::EnterpriseAnnually,
//!     enabled: true,
//!     expiration_date: None,
//! };
//! let mut cloud = CloudLedger::new();
//! let mailed = sync(&store, org.id, &mut cloud, &cloud_org, now).await?;
//! assert_eq!(mailed.len(), 1, "the cloud e-mails the new offer");
//! assert_eq!(store.sponsorships(org.id).await?[0].ui_status(), UiStatus::Sent);
//!
//! // 3. The recipient redeems it on a Families organization; the next sync shows "Active".
//! let families = CloudOrganization {
//!     id: CloudOrganizationId::new_random(),
//!     name: "Home".into(),
//!     plan_type: PlanType::FamiliesAnnually,
//!     enabled: true,
//!     expiration_date: None,
//! };
//! let claims = OfferClaims::for_offer(&mailed[0]);
//! cloud.redeem(&claims, "alice@home.example", &families, true, now + TimeDelta::hours(1))?;
//! sync(&store, org.id, &mut cloud, &cloud_org, now + TimeDelta::days(1)).await?;
//! assert_eq!(status(&store.sponsorships(org.id).await?).active, 1);
//! # Ok(())
//! # }
//! ```

pub mod cloud;
#[cfg(feature = "test-util")]
pub mod conformance;
pub mod email;
pub mod ids;
pub mod license;
pub mod org;
pub mod plan;
pub mod region;
pub mod schedule;
pub mod secret;
pub mod sponsorship;
pub mod store;
pub mod sync;
pub mod wire;

/// A string is not a valid id of the named kind. The input is not echoed (it might be a
/// secret pasted into the wrong field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a valid {kind}: expected a GUID such as 0b7c2f0e-1111-2222-3333-444455556666 (got {input_len} characters)"
)]
pub struct ParseIdError {
    /// Which id type.
    pub kind: &'static str,
    /// Length of what was given.
    pub input_len: usize,
}
