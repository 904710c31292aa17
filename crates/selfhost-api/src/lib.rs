//! # selfhost-api
//!
//! The self-hosted server's side of Families for Enterprise, as the Bitwarden web vault calls
//! it: the sponsorship endpoints, the billing sync connection, "Sync license", and the two
//! pages a person uses (Billing → Subscription, Sponsored Families). A Vaultwarden-like host
//! implements [`Host`] over its own tables and mounts the routes; everything else (the rules,
//! the store, the cloud client, the daily runner) comes from the workspace's libraries.
//!
//! | module | what |
//! |---|---|
//! | [`SelfHostedApi`] | one operation per endpoint (H1–H14 of the spec), and [`SelfHostedApi::handle`] that routes a request to them |
//! | [`Host`] | what the host provides: users by token, memberships, organizations, licenses, the store, the cloud client |
//! | [`models`] | the response bodies, member for member |
//! | [`profile`] | H15 (`familySponsorship*` in the host's `/sync` and `/accounts/profile`) and H17's items |
//! | [`pages`] | the server-rendered pages and their sign-in |
//! | [`HostTargets`] | the host's organizations for the daily runner |
//! | `axum` | the axum adapter (feature `axum`) |
//!
//! The neutral layer knows no framework: a request is an [`HttpRequest`] (method, path
//! relative to the mount, query, headers, body), the answer an [`HttpResponse`].
//!
//! # What the web vault needs, and what this crate does about it
//!
//! * Success is **HTTP 200 only** (a 204 is an error to the client): every success is a 200,
//!   with an empty body or JSON.
//! * **401 and 403 log the user out**: they are answered only where the reference server does
//!   (a bad bearer token; H4, H6 for a member who may not manage users; H1 admin-initiated and
//!   H5 for a non-manager, as `Unauthorized.`). A non-member gets the reference's 400/404/500.
//! * JSON in: member names in any case, numbers also as strings. JSON out: camelCase, nulls
//!   written, enums as numbers, the reference's date forms and its encoder's `\uXXXX`
//!   escapes. Errors: `{"object":"error","message":…,"validationErrors":…,…}`.
//! * Routes: literals ignoring case, duplicate and trailing slashes ignored, route values
//!   percent-decoded (the web vault undoes the encoding of a friendly name).
//!
//! Decisions where the reference is silent or loses data (each covered by a test):
//!
//! * The billing sync connection's id is the organization's id: one connection per
//!   organization, so the id carries nothing else.
//! * H9/H10 check the token's format before saving (the reference saves a blank key and fails
//!   at the first sync), and keep the last license sync time (the reference's full replace
//!   clears it).
//! * H2 keeps a never-synced row, marked for deletion, until a sync has withdrawn it (a lost
//!   answer may have let it reach the cloud); the row shows "Removed (awaiting sync)".
//! * "Sync now" (`POST /organization/sponsorship/self-hosted/{orgId}/sync`, owners) runs one
//!   sync through the cloud client; the reference has only the daily job.
//! * "Sync license" records its time under the organization's sync lock, so that a sync's
//!   record of its run and the license time never undo each other; while a sync runs, it
//!   stores nothing and says to try again.
//! * Pages behind a reverse proxy: a form's `Origin` must name the site, taken from
//!   `X-Forwarded-Host`, `Host`, or [`pages::Pages::public_site`].
//! * Offers and revokes of one process are serialized, so two requests of one member never
//!   create two rows. Replicas on one database share the stores' transactions only; a host
//!   with replicas routes a member's writes to one of them or accepts that rare race (the
//!   sync sends one row per member and reports the other).
//!
//! # Example: a host
//!
//! A host with its users in memory and the sponsorship rows in the core's `MemoryStore`; a real
//! host reads its own tables and uses `store_sqlite::SqliteStore` or `store_sqlx::SqlxStore`.
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//!
//! use cloud_client::CloudClient;
//! use selfhost_api::{Host, HostOrganization, HttpRequest, Method, SelfHostedApi, User};
//! use sponsorship_core::ids::{MemberId, OrganizationId, UserId};
//! use sponsorship_core::license::{LicenseVerifier, OrganizationLicense};
//! use sponsorship_core::org::{Member, MemberRole, MemberStatus, Organization};
//! use sponsorship_core::plan::PlanType;
//! use sponsorship_core::store::MemoryStore;
//!
//! struct MyServer {
//!     store: MemoryStore,
//!     verifier: LicenseVerifier,
//!     alice: User,
//!     membership: Member,
//!     org: Organization,
//! }
//!
//! impl Host for MyServer {
//!     type Store = MemoryStore;
//!     type Error = Infallible;
//!
//!     fn store(&self) -> &MemoryStore { &self.store }
//!     fn cloud(&self) -> Option<&CloudClient> { None } // cloud communication off
//!     fn license_verifier(&self) -> &LicenseVerifier { &self.verifier }
//!     async fn user_by_token(&self, token: &str) -> Result<Option<User>, Infallible> {
//!         Ok((token == "alice-token").then(|| self.alice.clone()))
//!     }
//!     async fn membership(&self, user: &User, org: OrganizationId) -> Result<Option<Member>, Infallible> {
//!         Ok((user.id == self.alice.id && org == self.org.id).then(|| self.membership.clone()))
//!     }
//!     async fn memberships(&self, user: &User) -> Result<Vec<Member>, Infallible> {
//!         Ok(if user.id == self.alice.id { vec![self.membership.clone()] } else { vec![] })
//!     }
//!     async fn organization(&self, org: OrganizationId) -> Result<Option<HostOrganization>, Infallible> {
//!         Ok((org == self.org.id).then(|| HostOrganization::new(self.org.clone(), Some(50), None)))
//!     }
//!     async fn organization_ids(&self) -> Result<Vec<OrganizationId>, Infallible> {
//!         Ok(vec![self.org.id])
//!     }
//!     async fn save_license(&self, _: OrganizationId, _: &OrganizationLicense) -> Result<(), Infallible> {
//!         Ok(()) // a real host writes the file and updates the organization
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let org = Organization {
//!     id: OrganizationId::new_random(),
//!     name: "Acme".into(),
//!     plan_type: PlanType::EnterpriseAnnually,
//!     enabled: true,
//!     use_admin_sponsored_families: false,
//! };
//! let alice = User::new(UserId::new_random(), "alice@acme.example", None);
//! let membership = Member {
//!     id: MemberId::new_random(),
//!     organization_id: org.id,
//!     email: alice.email.clone(),
//!     status: MemberStatus::Confirmed,
//!     role: MemberRole::User,
//! };
//! let org_id = org.id;
//! let api = Arc::new(SelfHostedApi::new(Arc::new(MyServer {
//!     store: MemoryStore::new(),
//!     verifier: LicenseVerifier::default(),
//!     alice,
//!     membership,
//!     org,
//! })));
//!
//! // What the member page sends; an adapter builds this from its framework's request.
//! let offer = HttpRequest::new(
//!     Method::Post,
//!     &format!("/organization/sponsorship/self-hosted/{org_id}/families-for-enterprise"),
//! )
//! .header("Authorization", "Bearer alice-token")
//! .body(r#"{"sponsoredEmail":"kid@home.example","planSponsorshipType":0,"friendlyName":"kid@home.example"}"#);
//! let response = api.handle(&offer).await;
//! assert_eq!((response.status, response.body.len()), (200, 0));
//!
//! // Cloud communication is off: the web vault greys out "Automatic sync".
//! let enabled = HttpRequest::new(Method::Get, "/organizations/connections/enabled")
//!     .header("Authorization", "Bearer alice-token");
//! assert_eq!(api.handle(&enabled).await.text(), "false");
//! # }
//! ```
//!
//! With the `axum` feature, mounting is two lines (`axum` module docs):
//!
//! ```text
//! Router::new()
//!     .nest("/api", selfhost_api::axum::api_router(api.clone()))
//!     .merge(selfhost_api::axum::pages_router(Arc::new(Pages::new(api))))
//! ```
//!
//! `examples/host_server.rs` in the workspace is a whole host: seed, SQLite state, the
//! reference cloud in-process, the daily runner.
//!
//! # Rocket (Vaultwarden)
//!
//! Rocket 0.5 calls the same neutral handler from one catch-all route per method; the guard
//! below copies what the handler needs out of Rocket's request. (This crate does not depend on
//! Rocket, so the snippet is not compiled here; `MyHost` is the host's [`Host`].)
//!
//! ```ignore
//! use rocket::data::{Data, ToByteUnit};
//! use rocket::http::Status;
//! use rocket::request::{FromRequest, Outcome, Request};
//! use selfhost_api::{HttpRequest, HttpResponse, Method, SelfHostedApi};
//!
//! struct Neutral(HttpRequest);
//!
//! #[rocket::async_trait]
//! impl<'r> FromRequest<'r> for Neutral {
//!     type Error = ();
//!     async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ()> {
//!         // Rocket mounts the routes under "/api": strip it, keep the rest as sent.
//!         let path = req.uri().path().as_str().trim_start_matches("/api");
//!         let mut neutral = HttpRequest::new(Method::parse(req.method().as_str()), path);
//!         neutral.query = req.uri().query().map(|q| q.as_str().to_owned());
//!         for h in req.headers().iter() {
//!             neutral = neutral.header(h.name().as_str(), &h.value());
//!         }
//!         Outcome::Success(Neutral(neutral))
//!     }
//! }
//!
//! struct Reply(HttpResponse);
//!
//! impl<'r> rocket::response::Responder<'r, 'static> for Reply {
//!     fn respond_to(self, _: &'r Request<'_>) -> rocket::response::Result<'static> {
//!         let mut out = rocket::Response::build();
//!         out.status(Status::new(self.0.status));
//!         for (name, value) in self.0.headers {
//!             out.raw_header(name, value);
//!         }
//!         out.sized_body(self.0.body.len(), std::io::Cursor::new(self.0.body));
//!         out.ok()
//!     }
//! }
//!
//! #[rocket::post("/<_..>", data = "<data>")]
//! async fn post(req: Neutral, data: Data<'_>, api: &rocket::State<Arc<SelfHostedApi<MyHost>>>) -> Reply {
//!     let body = data.open(256.kibibytes()).into_bytes().await.map(|b| b.into_inner()).unwrap_or_default();
//!     Reply(api.handle(&req.0.body(body)).await)
//! }
//! // …the same for get, put and delete, then:
//! // rocket::build().manage(api).mount("/api", rocket::routes![get, post, put, delete])
//! ```
//!
//! Vaultwarden's own `/sync` and `/accounts/profile` add the H15 members with
//! [`SelfHostedApi::family_sponsorship`] (or [`profile::family_sponsorship_fields`] when it has
//! the rows at hand), flattened into each `profileOrganization`.

#![forbid(unsafe_code)]

mod api;
#[cfg(feature = "axum")]
pub mod axum;
mod connections;
mod host;
mod http;
mod input;
mod json;
mod licenses;
pub mod models;
pub mod pages;
pub mod profile;
mod sponsorships;
mod targets;

pub use api::SelfHostedApi;
pub use connections::{BillingSyncOverview, ConnectionRequest, ConnectionType};
pub use host::{Host, HostOrganization, User};
pub use http::{HttpRequest, HttpResponse, Method};
pub use json::ApiError;
pub use licenses::LICENSE_UPLOAD_LIMIT;
pub use sponsorships::CreateSponsorship;
pub use targets::{HostTargets, TargetsError};
