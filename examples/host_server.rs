//! A whole self-hosted host: the web vault's Families-for-Enterprise API under `/api`, the
//! Billing and Sponsored Families pages at `/`, and the daily billing sync, with the reference
//! cloud started in-process and seeded to match.
//!
//! ```text
//! cargo run -p families-sponsorship --example host_server -- --seed examples/host-seed.json --addr 127.0.0.1:8080 [--state host.db]
//! ```
//!
//! The first line it prints is `listening on http://ADDR`, the second `cloud http://ADDR2`.
//! The seed (JSON) is the host's users and organizations:
//!
//! ```json
//! {"users":[{"id":"…","email":"owner@acme.example","name":"Olivia","token":"owner-token"}],
//!  "organizations":[{"id":"…","name":"Acme","planType":20,
//!    "members":[{"id":"…","userId":"…","role":"owner","status":"confirmed"}]}]}
//! ```
//!
//! Roles: `owner`, `admin`, `user`, `custom-manage-users`; statuses: `invited`, `accepted`,
//! `confirmed`, `revoked`. A request carries `Authorization: Bearer <token>`; the pages sign in
//! with the same token. Each Enterprise organization gets a cloud organization in the
//! reference cloud (its id is printed), owned there by the organization's confirmed owners,
//! whose cloud password is their token; its billing sync key is theirs to view through the
//! cloud's owner flow (`sponsorctl cloud token`). The organization's license comes from that
//! cloud at the first start. State lives in `--state` (SQLite; the cloud's next to it as
//! `FILE.cloud.json`), by default in a temporary directory.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a program: its output is the point

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{TimeDelta, Utc};
use cloud_client::runner::{DailyRunner, RunnerEvent};
use cloud_client::{CloudClient, CloudConfig};
use cloud_emulator::client::EmulatorClient;
use cloud_emulator::{EmulatorOptions, RunningEmulator, Seed};
use selfhost_api::models::{ListResponse, MemberMiniDetails};
use selfhost_api::pages::Pages;
use selfhost_api::{Host, HostOrganization, HostTargets, SelfHostedApi, User};
use serde::{Deserialize, Serialize};
use sponsorship_core::ids::{CloudOrganizationId, MemberId, OrganizationId, UserId};
use sponsorship_core::license::{LicenseVerifier, OrganizationLicense};
use sponsorship_core::org::{Member, MemberRole, MemberStatus, OrgRecord, Organization};
use sponsorship_core::plan::{PlanType, ProductTier};
use sponsorship_core::schedule::Schedule;
use sponsorship_core::secret::InstallationKey;
use store_sqlite::SqliteStore;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The installation the in-process cloud knows.
const INSTALLATION_ID: &str = "7e0b3c52-3f4c-4d0e-9e57-aa7a1e5c9a10";
const INSTALLATION_KEY: &str = "AbCdEfGhIj0123456789";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostSeed {
    users: Vec<SeedUser>,
    organizations: Vec<SeedOrganization>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedUser {
    id: UserId,
    email: String,
    #[serde(default)]
    name: Option<String>,
    token: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeedOrganization {
    id: OrganizationId,
    name: String,
    plan_type: PlanType,
    #[serde(default)]
    members: Vec<SeedMember>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeedMember {
    id: MemberId,
    user_id: UserId,
    role: String,
    status: String,
}

/// The host: users and memberships from the seed, organizations, licenses, sponsorships and
/// billing sync in SQLite.
struct ExampleHost {
    store: SqliteStore,
    cloud: CloudClient,
    verifier: LicenseVerifier,
    users: HashMap<String, User>,
    members: Vec<(UserId, Member)>,
}

impl Host for ExampleHost {
    type Store = SqliteStore;
    type Error = store_sqlite::Error;

    fn store(&self) -> &SqliteStore {
        &self.store
    }

    fn cloud(&self) -> Option<&CloudClient> {
        Some(&self.cloud)
    }

    fn license_verifier(&self) -> &LicenseVerifier {
        &self.verifier
    }

    async fn user_by_token(&self, token: &str) -> Result<Option<User>, Self::Error> {
        Ok(self.users.get(token).cloned())
    }

    async fn membership(
        &self,
        user: &User,
        org: OrganizationId,
    ) -> Result<Option<Member>, Self::Error> {
        Ok(self
            .members
            .iter()
            .find(|(u, m)| *u == user.id && m.organization_id == org)
            .map(|(_, m)| m.clone()))
    }

    async fn memberships(&self, user: &User) -> Result<Vec<Member>, Self::Error> {
        Ok(self
            .members
            .iter()
            .filter(|(u, _)| *u == user.id)
            .map(|(_, m)| m.clone())
            .collect())
    }

    async fn organization(
        &self,
        org: OrganizationId,
    ) -> Result<Option<HostOrganization>, Self::Error> {
        let records = self.records()?;
        Ok(records.into_iter().find(|r| r.org.id == org).map(|r| {
            let seats = r
                .license
                .as_ref()
                .and_then(|l| l.other.get("seats"))
                .and_then(serde_json::Value::as_u64)
                .and_then(|s| u32::try_from(s).ok());
            let seated = self
                .members
                .iter()
                .filter(|(_, m)| m.organization_id == org && m.status != MemberStatus::Revoked)
                .count();
            HostOrganization::new(r.org, seats, r.license)
                .with_seated_members(u32::try_from(seated).unwrap_or(u32::MAX))
        }))
    }

    async fn organization_ids(&self) -> Result<Vec<OrganizationId>, Self::Error> {
        Ok(self.records()?.into_iter().map(|r| r.org.id).collect())
    }

    async fn save_license(
        &self,
        org: OrganizationId,
        license: &OrganizationLicense,
    ) -> Result<(), Self::Error> {
        let text = serde_json::to_string(license).unwrap_or_default();
        self.store.write(|tx| tx.save_license(org, license, &text))
    }
}

impl ExampleHost {
    fn records(&self) -> Result<Vec<OrgRecord>, store_sqlite::Error> {
        records(&self.store)
    }
}

/// The organizations the store keeps.
fn records(store: &SqliteStore) -> Result<Vec<OrgRecord>, store_sqlite::Error> {
    #[allow(clippy::redundant_closure_for_method_calls)] // the method's lifetimes need the closure
    store.read(|tx| tx.organizations())
}

fn role(name: &str) -> Result<MemberRole, BoxError> {
    Ok(match name {
        "owner" => MemberRole::Owner,
        "admin" => MemberRole::Admin,
        "user" => MemberRole::User,
        "custom-manage-users" => MemberRole::CustomManageUsers,
        other => {
            return Err(format!(
                "unknown role {other:?}: use owner, admin, user or custom-manage-users"
            )
            .into());
        }
    })
}

fn status(name: &str) -> Result<MemberStatus, BoxError> {
    match name {
        "invited" | "accepted" | "confirmed" | "revoked" => Ok(name.parse()?),
        other => Err(format!(
            "unknown status {other:?}: use invited, accepted, confirmed or revoked"
        )
        .into()),
    }
}

/// The cloud organization of a host organization: a fixed function of its id, so that a
/// restart on the same state finds it again.
fn cloud_org_of(org: OrganizationId) -> CloudOrganizationId {
    CloudOrganizationId::from_uuid(uuid::Uuid::from_u128(
        org.as_uuid().as_u128() ^ 0x0000_0000_0000_4000_8000_00c1_0ed0_0000,
    ))
}

/// A random key of 30 letters and digits (the cloud's billing sync key form).
fn random_key() -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..30)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

struct Args {
    seed: PathBuf,
    addr: SocketAddr,
    state: Option<PathBuf>,
}

fn args() -> Result<Args, BoxError> {
    let usage = "usage: host_server --seed FILE [--addr 127.0.0.1:8080] [--state FILE]";
    let mut seed = None;
    let mut addr: SocketAddr = "127.0.0.1:8080".parse()?;
    let mut state = None;
    let mut it = std::env::args_os().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{} needs a value; {usage}", flag.display()))
        };
        match flag.to_str() {
            Some("--seed") => seed = Some(PathBuf::from(value()?)),
            Some("--addr") => {
                addr = value()?
                    .to_str()
                    .ok_or("--addr is not UTF-8")?
                    .parse()
                    .map_err(|e| format!("--addr: {e}"))?;
            }
            Some("--state") => state = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unknown argument {}; {usage}", flag.display()).into()),
        }
    }
    Ok(Args {
        seed: seed.ok_or_else(|| format!("--seed is required; {usage}"))?,
        addr,
        state,
    })
}

/// The reference cloud for the host's organizations.
async fn start_cloud(seed: &HostSeed, data_file: PathBuf) -> Result<RunningEmulator, BoxError> {
    let mut organizations = Vec::new();
    let mut owners: HashMap<UserId, Vec<CloudOrganizationId>> = HashMap::new();
    for org in &seed.organizations {
        let cloud = cloud_org_of(org.id);
        organizations.push(serde_json::json!({
            "id": cloud, "name": org.name, "planType": org.plan_type.number(),
            "billingSyncKey": random_key(),
        }));
        for m in &org.members {
            if role(&m.role)? == MemberRole::Owner && status(&m.status)? == MemberStatus::Confirmed
            {
                owners.entry(m.user_id).or_default().push(cloud);
            }
        }
    }
    // Only the owners have cloud accounts; recipients register on the redemption page.
    let users: Vec<serde_json::Value> = seed
        .users
        .iter()
        .filter_map(|u| {
            let owns = owners.get(&u.id)?;
            Some(serde_json::json!({"email": u.email, "password": u.token, "ownerOf": owns}))
        })
        .collect();
    let cloud_seed = Seed::from_json(
        &serde_json::json!({
            "region": "US",
            "installations": [{"id": INSTALLATION_ID, "key": INSTALLATION_KEY, "region": "US"}],
            "organizations": organizations,
            "users": users,
            "allowRegistration": true,
        })
        .to_string(),
    )?;
    let mut options = EmulatorOptions::default();
    options.data_file = Some(data_file);
    Ok(cloud_emulator::start(cloud_seed, options).await?)
}

/// The seed's organizations in the store, each with its license from the cloud (the way a
/// self-hosted organization comes to exist: from its license file).
async fn install_organizations(
    seed: &HostSeed,
    store: &SqliteStore,
    cloud: &RunningEmulator,
    verifier: &LicenseVerifier,
) -> Result<(), BoxError> {
    let known: Vec<OrganizationId> = records(store)?.iter().map(|r| r.org.id).collect();
    let emulator = EmulatorClient::new(cloud.base_url().clone())?;
    for org in seed.organizations.iter().filter(|o| !known.contains(&o.id)) {
        let json = emulator
            .license_json(cloud_org_of(org.id), Some(INSTALLATION_ID.parse()?))
            .await?;
        let mut license = OrganizationLicense::parse(&json.to_string())?;
        let checked = verifier.verify(&license, Some(INSTALLATION_ID.parse()?), Utc::now())?;
        checked.apply_to(&mut license);
        let text = serde_json::to_string(&license)?;
        let record = OrgRecord {
            org: Organization {
                id: org.id,
                name: org.name.clone(),
                plan_type: org.plan_type,
                enabled: true,
                use_admin_sponsored_families: license.use_admin_sponsored_families,
            },
            cloud_organization_id: Some(license.id),
            license: None,
        };
        store.write(|tx| {
            tx.insert_organization(&record, Utc::now())?;
            tx.save_license(org.id, &license, &text)
        })?;
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    id: UserId,
    name: Option<String>,
    email: String,
    organizations: Vec<selfhost_api::models::ProfileOrganization>,
    object: &'static str,
}

/// The user of a request's bearer token, or the API's answer for a request without a valid one.
async fn signed_in(
    api: &SelfHostedApi<ExampleHost>,
    headers: &HeaderMap,
) -> Result<User, Response> {
    let mut request = selfhost_api::HttpRequest::new(selfhost_api::Method::Get, "/");
    if let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        request = request.header("authorization", auth);
    }
    api.authenticate(&request)
        .await
        .map_err(|e| reply(e.to_response()))
}

/// A neutral response as axum's, headers included.
fn reply(r: selfhost_api::HttpResponse) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = (status, r.body).into_response();
    for (name, value) in &r.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::try_from(name.as_str()),
            axum::http::HeaderValue::try_from(value.as_str()),
        ) {
            out.headers_mut().append(name, value);
        }
    }
    out
}

/// `GET /api/accounts/profile`: a minimal profile with the H15 members.
async fn profile(
    State(api): State<Arc<SelfHostedApi<ExampleHost>>>,
    headers: HeaderMap,
) -> Response {
    let user = match signed_in(&api, &headers).await {
        Ok(user) => user,
        Err(answer) => return answer,
    };
    match api.profile_organizations(&user).await {
        Ok(organizations) => {
            let body = selfhost_api::models::to_json(&Profile {
                id: user.id,
                name: user.name.clone(),
                email: user.email.clone(),
                organizations,
                object: "profile",
            });
            reply(selfhost_api::HttpResponse::json(200, body))
        }
        Err(e) => reply(e.to_response()),
    }
}

/// `GET /api/organizations/{orgId}/users/mini-details` (H17): the members' e-mails, which the
/// admin dialog refuses as recipients. Confirmed members only.
async fn mini_details(
    State(api): State<Arc<SelfHostedApi<ExampleHost>>>,
    axum::extract::Path(org): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    let user = match signed_in(&api, &headers).await {
        Ok(user) => user,
        Err(answer) => return answer,
    };
    let host = api.host();
    let org: Option<OrganizationId> = org.parse().ok();
    let member = org.and_then(|org| {
        host.members.iter().find(|(u, m)| {
            *u == user.id && m.organization_id == org && m.status == MemberStatus::Confirmed
        })
    });
    let (Some(org), Some(_)) = (org, member) else {
        return reply(selfhost_api::ApiError::not_found().to_response());
    };
    let items: Vec<MemberMiniDetails> = host
        .members
        .iter()
        .filter(|(_, m)| m.organization_id == org)
        .map(|(u, m)| {
            let name = host
                .users
                .values()
                .find(|x| x.id == *u)
                .and_then(|x| x.name.clone());
            MemberMiniDetails::of(m, Some(*u), name)
        })
        .collect();
    let body = selfhost_api::models::to_json(&ListResponse::new(items));
    reply(selfhost_api::HttpResponse::json(200, body))
}

/// The host over the seed's users and memberships and the store.
fn host_of(
    seed: &HostSeed,
    store: SqliteStore,
    cloud: &RunningEmulator,
    verifier: LicenseVerifier,
) -> Result<ExampleHost, BoxError> {
    let mut members = Vec::new();
    for org in &seed.organizations {
        for m in &org.members {
            let user = seed
                .users
                .iter()
                .find(|u| u.id == m.user_id)
                .ok_or_else(|| format!("member {} names an unknown user {}", m.id, m.user_id))?;
            members.push((
                m.user_id,
                Member {
                    id: m.id,
                    organization_id: org.id,
                    email: user.email.clone(),
                    status: status(&m.status)?,
                    role: role(&m.role)?,
                },
            ));
        }
    }
    Ok(ExampleHost {
        store,
        cloud: CloudClient::new(CloudConfig::new(
            INSTALLATION_ID.parse()?,
            InstallationKey::parse(INSTALLATION_KEY)?,
            cloud.base_url().clone(),
            cloud.base_url().clone(),
        ))?,
        verifier,
        users: seed
            .users
            .iter()
            .map(|u| {
                (
                    u.token.clone(),
                    User::new(u.id, u.email.clone(), u.name.clone()),
                )
            })
            .collect(),
        members,
    })
}

/// The daily billing sync of every connected organization, as a host runs it, until `stopped`.
async fn daily_sync(host: Arc<ExampleHost>, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let targets = HostTargets(host.clone());
    let mut seed_jitter = Utc::now().timestamp_subsec_nanos() | 1;
    let jitter = move |max: TimeDelta| {
        seed_jitter ^= seed_jitter << 13;
        seed_jitter ^= seed_jitter >> 17;
        seed_jitter ^= seed_jitter << 5;
        max * i32::try_from(seed_jitter % 1000).unwrap_or(0) / 1000
    };
    let result = DailyRunner::new(&host.cloud, &host.store, &targets, "host_server example")
        .schedule(Schedule::default())
        .recheck_every(Duration::from_mins(1))
        .run(
            jitter,
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
            |event| {
                if let RunnerEvent::Failed { target, error } = event {
                    eprintln!("daily sync of {} failed: {error}", target.name);
                }
            },
        )
        .await;
    if let Err(e) = result {
        eprintln!("the daily sync stopped: {e}");
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HOST_SERVER_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = args()?;
    let seed: HostSeed = serde_json::from_str(
        &std::fs::read_to_string(&args.seed)
            .map_err(|e| format!("reading the seed {}: {e}", args.seed.display()))?,
    )
    .map_err(|e| format!("the seed {}: {e}", args.seed.display()))?;

    let temporary = tempfile::tempdir()?;
    let state = args
        .state
        .clone()
        .unwrap_or_else(|| temporary.path().join("host.db"));
    let store = SqliteStore::open(&state)?;
    let cloud = start_cloud(&seed, state.with_extension("cloud.json")).await?;
    let verifier = LicenseVerifier::default().trusting(cloud_emulator::license_trust_anchor());
    install_organizations(&seed, &store, &cloud, &verifier).await?;

    let host = Arc::new(host_of(&seed, store, &cloud, verifier)?);

    let api = Arc::new(SelfHostedApi::new(host.clone()));
    let app = Router::new()
        .route("/api/accounts/profile", axum::routing::get(profile))
        .route(
            "/api/organizations/{org}/users/mini-details",
            axum::routing::get(mini_details),
        )
        .with_state(api.clone())
        .nest("/api", selfhost_api::axum::api_router(api.clone()))
        .merge(selfhost_api::axum::pages_router(Arc::new(Pages::new(api))));
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    println!("cloud {}", cloud.base_url().as_str().trim_end_matches('/'));
    for org in seed
        .organizations
        .iter()
        .filter(|o| o.plan_type.product_tier() == ProductTier::Enterprise)
    {
        println!(
            "cloud organization of {}: {}",
            org.name,
            cloud_org_of(org.id)
        );
    }
    std::io::stdout().flush()?;

    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = async { if let Some(t) = term.as_mut() { t.recv().await; } else { std::future::pending::<()>().await } } => {}
        }
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(daily_sync(host.clone(), stopped));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop.send(true);
        })
        .await?;
    let _ = runner.await;
    cloud.stop().await?;
    drop(temporary);
    Ok(())
}
