//! Shared fixtures of the fault-matrix and load tests: a seeded reference cloud with N
//! installations and organizations, deterministic sponsorship rows, fast-retrying clients, an
//! observing proxy (counts requests, can drop items from sync answers) and normalized snapshots
//! for "converges to the same state" comparisons.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, TimeZone, Utc};
use cloud_client::{CloudClient, CloudConfig, RetryPolicy, Sleeper, Timeouts};
use cloud_emulator::{EmulatorOptions, RunningEmulator, Seed};
use sponsorship_core::ids::SponsorshipId;
use sponsorship_core::ids::{CloudOrganizationId, InstallationId, MemberId, OrganizationId};
use sponsorship_core::org::BillingSyncConfig;
use sponsorship_core::secret::{BillingSyncKey, InstallationKey};
use sponsorship_core::sponsorship::{RowChange, Sponsorship, UiStatus};
use sponsorship_core::store::MemoryStore;
use url::Url;

pub const OWNER_PASSWORD: &str = "owner-pass";

/// A deterministic UUID: `kind` (1 installation, 2 cloud org, 3 local org, 4 member,
/// 5 sponsorship), installation number `i`, row number `n`.
fn uuid(kind: u128, i: usize, n: usize) -> uuid::Uuid {
    uuid::Uuid::from_u128((0xF00D_u128 << 112) | (kind << 96) | ((i as u128) << 48) | n as u128)
}

pub fn installation_id(i: usize) -> InstallationId {
    InstallationId::from_uuid(uuid(1, i, 0))
}

pub fn installation_key(i: usize) -> String {
    format!("InstKey{i:013}")
}

pub fn cloud_org(i: usize) -> CloudOrganizationId {
    CloudOrganizationId::from_uuid(uuid(2, i, 0))
}

pub fn local_org(i: usize) -> OrganizationId {
    OrganizationId::from_uuid(uuid(3, i, 0))
}

pub fn billing_key(i: usize) -> String {
    format!("BillingKey{i:020}")
}

pub fn owner_email(i: usize) -> String {
    format!("owner{i}@acme.example")
}

/// A seed with `n` US installations, each with its own Enterprise organization (with a billing
/// sync key) and owner.
pub fn seed(n: usize) -> Seed {
    let installations: Vec<_> = (0..n)
        .map(|i| {
            serde_json::json!({"id": installation_id(i).to_string(), "key": installation_key(i),
                "region": "US", "enabled": true})
        })
        .collect();
    let organizations: Vec<_> = (0..n)
        .map(|i| {
            serde_json::json!({"id": cloud_org(i).to_string(), "name": format!("Acme {i}"),
                "planType": 20, "enabled": true, "billingSyncKey": billing_key(i)})
        })
        .collect();
    let users: Vec<_> = (0..n)
        .map(|i| {
            serde_json::json!({"email": owner_email(i), "password": OWNER_PASSWORD,
                "ownerOf": [cloud_org(i).to_string()]})
        })
        .collect();
    let json = serde_json::json!({"region": "US", "installations": installations,
        "organizations": organizations, "users": users});
    Seed::from_json(&json.to_string()).unwrap()
}

pub async fn emulator(installations: usize) -> RunningEmulator {
    let mut options = EmulatorOptions::default();
    options.fault_injection = true;
    cloud_emulator::start(seed(installations), options)
        .await
        .unwrap()
}

pub fn fixed_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
}

/// Row `n` of installation `i`: a new offer, never synced. Same ids on every call.
pub fn row(i: usize, n: usize) -> Sponsorship {
    Sponsorship::new_offer(
        SponsorshipId::from_uuid(uuid(5, i, n)),
        local_org(i),
        MemberId::from_uuid(uuid(4, i, n)),
        &format!("kid{n}.i{i}@home.example"),
        fixed_now(),
    )
}

/// A memory store holding `n` new offers of installation `i`.
pub fn store_with(i: usize, n: usize) -> MemoryStore {
    let store = MemoryStore::new();
    for k in 0..n {
        store.write(local_org(i), RowChange::Upsert(row(i, k)));
    }
    store
}

pub fn billing(i: usize) -> BillingSyncConfig {
    billing_with_key(i, &billing_key(i))
}

pub fn billing_with_key(i: usize, key: &str) -> BillingSyncConfig {
    BillingSyncConfig {
        billing_sync_key: BillingSyncKey::parse(key).unwrap(),
        cloud_organization_id: cloud_org(i),
        last_license_sync: None,
    }
}

/// Three attempts, a millisecond apart; `Retry-After` up to a few seconds fits the budget
/// (the waits go through a recording sleeper that returns at once).
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        max_total: Duration::from_secs(5),
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
    }
}

pub fn config(base: &Url, i: usize, key: &str, request_timeout: Duration) -> CloudConfig {
    let mut cfg = CloudConfig::new(
        installation_id(i),
        InstallationKey::parse(key).unwrap(),
        base.clone(),
        base.clone(),
    );
    cfg.retry = fast_retry();
    cfg.timeouts = Timeouts {
        connect: Duration::from_secs(5),
        request: request_timeout,
    };
    cfg
}

/// Records the waits the client asks for and returns at once.
#[derive(Clone, Default)]
pub struct Waits(Arc<Mutex<Vec<Duration>>>);

impl Waits {
    pub fn sleeper(&self) -> Sleeper {
        let waits = self.0.clone();
        Arc::new(move |d| {
            waits.lock().unwrap().push(d);
            Box::pin(std::future::ready(()))
        })
    }

    pub fn take(&self) -> Vec<Duration> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

pub fn client(cfg: CloudConfig, waits: &Waits) -> CloudClient {
    CloudClient::new(cfg).unwrap().with_sleeper(waits.sleeper())
}

/// A reverse proxy in front of the reference cloud on 127.0.0.1: counts requests per path and,
/// when armed, removes the last items of the next sync answers ("response missing items").
/// Upstream failures (dropped connection, truncated body) are passed on as a broken body.
pub struct Proxy {
    pub url: Url,
    state: Arc<ProxyState>,
    _server: tokio::task::JoinHandle<()>,
}

struct ProxyState {
    upstream: Url,
    http: reqwest::Client,
    counts: Mutex<HashMap<String, u32>>,
    /// (answers to strip, items removed from each).
    strip: Mutex<(u32, usize)>,
    /// Sync answers to lose: the request reaches the cloud, which applies it; the answer breaks.
    lose: AtomicU32,
    stripped: AtomicU32,
    /// Sync requests in flight now, and the most ever at once.
    syncs_in_flight: AtomicU32,
    max_syncs_in_flight: AtomicU32,
    /// Holds the n-th sync request (since the counts were reset) until the test releases it.
    hold: Mutex<Option<(u32, HeldRequest)>>,
}

/// The proxy's side of [`Proxy::hold_sync_request`].
struct HeldRequest {
    reached: tokio::sync::oneshot::Sender<()>,
    release: tokio::sync::oneshot::Receiver<()>,
}

/// The test's side of [`Proxy::hold_sync_request`].
pub struct Hold {
    /// Resolves when the held request arrived at the proxy (it is not forwarded yet).
    pub reached: tokio::sync::oneshot::Receiver<()>,
    /// Send to forward it.
    pub release: tokio::sync::oneshot::Sender<()>,
}

impl Proxy {
    pub async fn start(upstream: &Url) -> Self {
        let state = Arc::new(ProxyState {
            upstream: upstream.clone(),
            http: cloud_emulator::client::default_http_client().unwrap(),
            counts: Mutex::new(HashMap::new()),
            strip: Mutex::new((0, 0)),
            lose: AtomicU32::new(0),
            stripped: AtomicU32::new(0),
            syncs_in_flight: AtomicU32::new(0),
            max_syncs_in_flight: AtomicU32::new(0),
            hold: Mutex::new(None),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            state,
            _server: server,
        }
    }

    /// Requests seen on `path` since the last reset.
    pub fn count(&self, path: &str) -> u32 {
        self.state
            .counts
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    pub fn reset_counts(&self) {
        self.state.counts.lock().unwrap().clear();
    }

    /// Holds the `n`-th sync request (counted from the last [`Proxy::reset_counts`]) at the proxy
    /// until the test releases it: a fault armed meanwhile strikes exactly that request, however
    /// the client overlaps its work.
    pub fn hold_sync_request(&self, n: u32) -> Hold {
        let (reached_tx, reached_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel();
        *self.state.hold.lock().unwrap() = Some((
            n,
            HeldRequest {
                reached: reached_tx,
                release: release_rx,
            },
        ));
        Hold {
            reached: reached_rx,
            release: release_tx,
        }
    }

    /// The next `answers` successful sync answers lose their last `items` items.
    pub fn strip_items(&self, answers: u32, items: usize) {
        *self.state.strip.lock().unwrap() = (answers, items);
    }

    /// The next `answers` sync requests reach the cloud and are applied there, but their answers
    /// break on the way back (a kill, a timeout, a dropped connection after the cloud acted).
    pub fn lose_answers(&self, answers: u32) {
        self.state.lose.store(answers, Ordering::SeqCst);
    }

    pub fn clear(&self) {
        *self.state.strip.lock().unwrap() = (0, 0);
        self.state.lose.store(0, Ordering::SeqCst);
    }

    /// The most sync requests that were ever in flight at once.
    pub fn max_syncs_in_flight(&self) -> u32 {
        self.state.max_syncs_in_flight.load(Ordering::SeqCst)
    }

    /// Items removed from answers so far.
    pub fn stripped(&self) -> u32 {
        self.state.stripped.load(Ordering::SeqCst)
    }
}

fn broken() -> Response {
    let items: Vec<Result<Bytes, std::io::Error>> =
        vec![Err(std::io::Error::other("upstream connection broke"))];
    Response::new(Body::from_stream(futures_util::stream::iter(items)))
}

/// Counts a sync request in flight while it lives.
struct InFlight<'a>(&'a ProxyState);

impl<'a> InFlight<'a> {
    fn new(p: &'a ProxyState) -> Self {
        let now = p.syncs_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        p.max_syncs_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(p)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.syncs_in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn forward(State(p): State<Arc<ProxyState>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let count = {
        let mut counts = p.counts.lock().unwrap();
        let count = counts.entry(path.clone()).or_default();
        *count += 1;
        *count
    };
    if path.trim_start_matches('/') == cloud_client::SYNC_PATH {
        let held = {
            let mut slot = p.hold.lock().unwrap();
            match slot.take() {
                Some((n, held)) if n == count => Some(held),
                other => {
                    *slot = other;
                    None
                }
            }
        };
        if let Some(held) = held {
            let _ = held.reached.send(());
            let _ = held.release.await;
        }
    }
    let _in_flight =
        (path.trim_start_matches('/') == cloud_client::SYNC_PATH).then(|| InFlight::new(&p));
    let mut url = p.upstream.join(path.trim_start_matches('/')).unwrap();
    url.set_query(req.uri().query());
    let method = req.method().clone();
    let mut headers = HeaderMap::new();
    for name in [header::CONTENT_TYPE, header::AUTHORIZATION, header::ACCEPT] {
        if let Some(v) = req.headers().get(&name) {
            headers.insert(name, v.clone());
        }
    }
    let Ok(body) = axum::body::to_bytes(req.into_body(), 64 << 20).await else {
        return broken();
    };
    let Ok(resp) = p
        .http
        .request(method, url)
        .headers(headers)
        .body(body)
        .send()
        .await
    else {
        return broken();
    };
    let status = resp.status();
    let mut out_headers = HeaderMap::new();
    for name in [header::CONTENT_TYPE, header::RETRY_AFTER] {
        if let Some(v) = resp.headers().get(&name) {
            out_headers.insert(name, v.clone());
        }
    }
    let Ok(mut bytes) = resp.bytes().await else {
        return broken();
    };
    if path.trim_start_matches('/') == cloud_client::SYNC_PATH
        && p.lose
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    {
        return broken();
    }
    if path.trim_start_matches('/') == cloud_client::SYNC_PATH && status == StatusCode::OK {
        let mut strip = p.strip.lock().unwrap();
        if strip.0 > 0
            && let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&bytes)
            && let Some(items) = v["sponsorshipsBatch"].as_array_mut()
        {
            strip.0 -= 1;
            let keep = items.len().saturating_sub(strip.1);
            let removed = items.len() - keep;
            items.truncate(keep);
            p.stripped
                .fetch_add(u32::try_from(removed).unwrap(), Ordering::SeqCst);
            bytes = Bytes::from(serde_json::to_vec(&v).unwrap());
        }
    }
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = out_headers;
    response
}

/// The state of one installation after a run, without timestamps or random cloud ids: the local
/// rows, the cloud rows of its organization, and the offer e-mails sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub local: Vec<(SponsorshipId, MemberId, Option<String>, UiStatus, bool, u64)>,
    pub cloud: Vec<(MemberId, Option<String>, bool, bool, bool)>,
    pub outbox: Vec<String>,
}

impl Snapshot {
    pub fn take(i: usize, store: &MemoryStore, emu: &RunningEmulator) -> Self {
        let mut local: Vec<_> = store
            .rows(local_org(i))
            .into_iter()
            .map(|r| {
                (
                    r.id,
                    r.sponsoring_member_id,
                    r.offered_to_email.clone(),
                    r.ui_status(),
                    r.awaiting_sync,
                    r.revision,
                )
            })
            .collect();
        local.sort_by_key(|r| r.0);
        let mut cloud: Vec<_> = emu
            .sponsorships(cloud_org(i))
            .into_iter()
            .map(|c| {
                (
                    c.row.sponsoring_organization_user_id,
                    c.row.offered_to_email.clone(),
                    c.row.to_delete,
                    c.row.valid_until.is_some(),
                    c.awaiting_sync,
                )
            })
            .collect();
        cloud.sort();
        let mut outbox: Vec<_> = emu.outbox().into_iter().map(|m| m.to).collect();
        outbox.sort();
        Self {
            local,
            cloud,
            outbox,
        }
    }
}

/// No row lost, none duplicated (one row per member), the number of rows the cloud confirmed.
pub fn check_store(store: &MemoryStore, i: usize, expected_rows: usize) -> usize {
    let rows = store.rows(local_org(i));
    assert_eq!(rows.len(), expected_rows, "rows lost or added");
    let mut members: Vec<_> = rows.iter().map(|r| r.sponsoring_member_id).collect();
    members.sort();
    members.dedup();
    assert_eq!(members.len(), expected_rows, "a member has two rows");
    for r in &rows {
        let sent = r.ui_status() == UiStatus::Sent;
        assert_eq!(sent, !r.awaiting_sync, "row {} half-applied: {r:?}", r.id);
        assert!(
            matches!(r.ui_status(), UiStatus::Sent | UiStatus::Requested),
            "{r:?}"
        );
    }
    rows.iter()
        .filter(|r| r.ui_status() == UiStatus::Sent)
        .count()
}
