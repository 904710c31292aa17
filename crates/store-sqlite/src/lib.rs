//! # store-sqlite
//!
//! A SQLite implementation of the core's [`SponsorshipStore`]: sponsorship rows, sync state,
//! the sync lock and billing sync connections, in one file with versioned migrations. For hosts
//! that do not link diesel's `libsqlite3-sys` (this crate links rusqlite's, bundled), and for
//! `sponsorctl`. Hosts on diesel implement the trait on their own models instead and prove it
//! with the core's conformance kit, as do hosts on PostgreSQL or MariaDB.
//!
//! # Example: a host keeps its rows here
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use sponsorship_core::ids::{MemberId, OrganizationId, SponsorshipId};
//! use sponsorship_core::org::{Member, MemberRole, MemberStatus, Organization};
//! use sponsorship_core::plan::PlanType;
//! use sponsorship_core::sponsorship::{OfferRequest, RowChange, offer};
//! use store_sqlite::{SqliteStore, rusqlite::Connection};
//!
//! // A file with `SqliteStore::open(path)`; here the host hands over a connection of its own.
//! let store = SqliteStore::from_connection(Connection::open_in_memory()?, "example")?;
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
//! let request = OfferRequest {
//!     sponsor_email: &alice.email,
//!     offered_to_email: "alice@home.example",
//!     friendly_name: None,
//!     admin_initiated: false,
//!     notes: None,
//! };
//! // The rule decides against the rows stored now; the write is one transaction.
//! store.write(|tx| {
//!     let rows = tx.sponsorships(Some(org.id))?;
//!     let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
//!     let made = offer(&org, &alice, &rows, &request, SponsorshipId::new_random(), now)
//!         .expect("Alice may offer");
//!     tx.write_changes(&[RowChange::Upsert(made.sponsorship)])
//! })?;
//! let counts = store.read(|tx| tx.status_counts(org.id))?;
//! assert_eq!(counts.requested, 1, "offered, not synced yet");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A sync then runs through `cloud_client::CloudClient::sync_organization` (or the daily
//! runner) with `&store` as its store.
//!
//! # Two parts
//!
//! * **The sync store** (every host): sponsorship rows ([`Tx::sponsorships`],
//!   [`Tx::write_changes`], [`Tx::status_counts`]), each batch of a sync in one transaction with
//!   compare-and-set on the row revision, the sync state, the sync lock, and the billing sync
//!   connection ([`Tx::connection`], [`Tx::set_key`], [`Tx::set_enabled`]). None of its tables
//!   refers to another: a host that keeps organizations and members in its own database uses
//!   only this part.
//! * **The standalone host** (a server with no tables of its own for them, such as
//!   `sponsorctl`): organizations with their license ([`OrgRecord`], [`Tx::organizations`],
//!   [`Tx::insert_organization`], [`Tx::save_license`]) and members ([`Tx::members`],
//!   [`Tx::insert_member`], [`Tx::delete_member`]). They live here, in the same file and
//!   migrations, so that a command changes an organization's members and its sponsorships in one
//!   transaction; a host that embeds the store leaves these tables empty.
//!
//! # Decisions
//!
//! * The file is created with mode `0600` (it holds billing sync keys and licenses).
//! * WAL journal and a 10 s busy timeout, so a `status` reads while a `sync` writes, and two
//!   processes wait for each other instead of failing with "database is locked".
//! * Versioned migrations through `PRAGMA user_version`; a file from a newer release is refused.
//! * Rows are clustered by member (`PRIMARY KEY (sponsoring_member_id, id) WITHOUT ROWID`): a sync
//!   batch covers consecutive member ids, so its commit writes a few dozen pages instead of one
//!   per row. `status` counts from a covering index alone.
//! * Tuned for syncs of 100,000 rows: 32 MiB page cache during a sync
//!   ([`SqliteStore::prepare_for_sync`]), WAL checkpoints every 64 MiB and after each sync
//!   ([`SqliteStore::checkpoint`]).
//! * Timestamps are stored as RFC 3339 in UTC with microseconds, ids as lowercase hyphenated
//!   text; both are read from the column bytes without a `String` per value.

#![forbid(unsafe_code)]

mod batch;
mod codec;
mod connection;
mod error;
mod rows;
mod schema;
mod standalone;
mod state;
mod store;

pub use connection::BillingConnection;
pub use error::Error;
pub use standalone::OrgRecord;
pub use store::{SqliteStore, Tx};

/// The rusqlite this crate is built with, for [`SqliteStore::from_connection`].
pub use rusqlite;

#[doc(no_inline)]
pub use sponsorship_core::store::SponsorshipStore;
