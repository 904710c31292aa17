//! The fault matrix: every fault the reference cloud can inject × where it strikes (the token
//! request, batch 1, batch 2 of 3). For each cell the fault is armed for as many requests as the
//! client may attempt ("persistent"), and the test asserts the error category, whether the
//! client retried (its attempts and the requests an observing proxy saw), that the local store
//! is consistent (no row lost or duplicated, the batches before the fault stored, nothing
//! half-applied), and that a re-run after the fault clears converges to the state of a run
//! without fault (a control run on a fresh cloud and store with the same seed and ids). A
//! second, "single hit" run arms the fault once: transient faults are then absorbed by the
//! retries within the run.
//!
//! The matrix is printed (`--nocapture`) and written to `target/fault-matrix.txt`.

use std::fmt::Write as _;
use std::time::Duration;

use cloud_client::{Error, SyncOptions, SyncReport};
use cloud_emulator::client::EmulatorClient;
use cloud_emulator::{Fault, FaultRule, RunningEmulator};
use secrecy::ExposeSecret;
use sponsorship_core::schedule::ErrorCategory;
use sponsorship_core::store::MemoryStore;

use crate::support::{
    OWNER_PASSWORD, Proxy, Snapshot, Waits, billing, billing_with_key, check_store, client, config,
    emulator, installation_key, local_org, owner_email, store_with,
};

/// Rows per run and per batch: three batches (100, 100, 50).
const ROWS: usize = 250;
const BATCH: usize = 100;
/// The client's request timeout in the timeout cells, and the cloud's delay there.
const SHORT_TIMEOUT: Duration = Duration::from_millis(500);
const DELAY: Duration = Duration::from_millis(1500);
const NORMAL_TIMEOUT: Duration = Duration::from_secs(20);
/// Items the "response missing items" fault removes from one answer.
const MISSING: usize = 10;
const TOKEN: &str = "/connect/token";
const SYNC: &str = "/organization/sponsorship/sync";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Token,
    Batch1,
    Batch2,
}

impl At {
    fn label(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Batch1 => "batch 1",
            Self::Batch2 => "batch 2/3",
        }
    }

    /// Rows the cloud confirmed before the fault struck.
    fn stored_before(self) -> usize {
        match self {
            Self::Token | Self::Batch1 => 0,
            Self::Batch2 => BATCH,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Http500,
    Http502,
    Http503,
    Http429,
    Timeout,
    Dropped,
    Malformed,
    Truncated,
    Unauthorized,
    InvalidClient,
    InvalidBillingKey,
    MissingItems,
    Http404,
    Http405,
}

const KINDS: [Kind; 14] = [
    Kind::Http500,
    Kind::Http502,
    Kind::Http503,
    Kind::Http429,
    Kind::Timeout,
    Kind::Dropped,
    Kind::Malformed,
    Kind::Truncated,
    Kind::Unauthorized,
    Kind::InvalidClient,
    Kind::InvalidBillingKey,
    Kind::MissingItems,
    Kind::Http404,
    Kind::Http405,
];

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Self::Http500 => "HTTP 500",
            Self::Http502 => "HTTP 502",
            Self::Http503 => "HTTP 503",
            Self::Http429 => "HTTP 429 + Retry-After 1",
            Self::Timeout => "timeout (delay > client timeout)",
            Self::Dropped => "dropped connection",
            Self::Malformed => "malformed JSON",
            Self::Truncated => "truncated body",
            Self::Unauthorized => "HTTP 401 mid-run",
            Self::InvalidClient => "invalid_client",
            Self::InvalidBillingKey => "invalid billing sync key",
            Self::MissingItems => "response missing items",
            Self::Http404 => "HTTP 404 (API changed)",
            Self::Http405 => "HTTP 405 (API changed)",
        }
    }

    /// The reference cloud's injectable fault, for the kinds it injects directly.
    fn emulator_fault(self) -> Option<Fault> {
        let status = |status| Fault::Status {
            status,
            retry_after: None,
        };
        Some(match self {
            Self::Http500 => status(500),
            Self::Http502 => status(502),
            Self::Http503 => status(503),
            Self::Http429 => Fault::Status {
                status: 429,
                retry_after: Some(1),
            },
            Self::Timeout => Fault::Delay {
                millis: u64::try_from(DELAY.as_millis()).unwrap(),
            },
            Self::Dropped => Fault::Drop,
            Self::Malformed => Fault::Malformed,
            Self::Truncated => Fault::Truncated,
            Self::Unauthorized => status(401),
            Self::Http404 => status(404),
            Self::Http405 => status(405),
            Self::InvalidClient | Self::InvalidBillingKey | Self::MissingItems => return None,
        })
    }

    /// Why the cell is not meaningful, if it is not.
    fn not_applicable(self, at: At) -> Option<&'static str> {
        match (self, at) {
            (Self::InvalidClient, At::Batch1 | At::Batch2) => {
                Some("the token is fetched once, before batch 1, and cached for the run")
            }
            (Self::InvalidBillingKey | Self::MissingItems, At::Token) => {
                Some("the token request carries no billing key and no items")
            }
            _ => None,
        }
    }

    /// The category the persistent fault must end the run with (`None`: the run succeeds).
    fn expected_category(self, at: At) -> Option<ErrorCategory> {
        Some(match self {
            Self::Http500 | Self::Http502 | Self::Http503 => ErrorCategory::CloudUnavailable,
            Self::Http429 => ErrorCategory::RateLimited,
            Self::Timeout => ErrorCategory::Timeout,
            Self::Dropped | Self::Truncated => ErrorCategory::Connect,
            Self::Malformed => ErrorCategory::MalformedResponse,
            Self::Unauthorized | Self::InvalidClient => ErrorCategory::IdentityRejected,
            Self::InvalidBillingKey => ErrorCategory::BillingKeyInvalid,
            Self::Http404 | Self::Http405 => ErrorCategory::ApiChanged,
            Self::MissingItems => {
                let _ = at;
                return None;
            }
        })
    }

    /// Attempts the client makes on the struck request under the persistent fault.
    fn expected_attempts(self, at: At) -> u32 {
        match self {
            Self::Http500
            | Self::Http502
            | Self::Http503
            | Self::Http429
            | Self::Timeout
            | Self::Dropped
            | Self::Truncated => 3,
            // A 401 on an API call refreshes the token once and sends again; the token
            // request itself is never refreshed.
            Self::Unauthorized if at != At::Token => 2,
            _ => 1,
        }
    }

    /// Whether one hit of the fault is absorbed within the run.
    fn single_hit_recovers(self, at: At) -> bool {
        self.expected_attempts(at) > 1
    }
}

/// What one run of a cell saw.
struct RunResult {
    result: Result<SyncReport, Error>,
    token_requests: u32,
    sync_requests: u32,
    waits: Vec<Duration>,
}

struct Cell<'a> {
    emu: &'a RunningEmulator,
    proxy: &'a Proxy,
    store: &'a MemoryStore,
    waits: Waits,
}

impl Cell<'_> {
    /// One sync with the fault armed `count` times at `at`.
    async fn run_with_fault(&self, kind: Kind, at: At, count: u32) -> RunResult {
        let timeout = if kind == Kind::Timeout {
            SHORT_TIMEOUT
        } else {
            NORMAL_TIMEOUT
        };
        let key = if kind == Kind::InvalidClient {
            "WrongKey000000000000".to_owned()
        } else {
            installation_key(0)
        };
        let client = client(config(&self.proxy.url, 0, &key, timeout), &self.waits);
        let mut billing = billing(0);
        if kind == Kind::InvalidBillingKey && at == At::Batch1 {
            billing = billing_with_key(0, "WrongBillingKey000000000000000");
        }
        let rule = kind.emulator_fault().map(|fault| FaultRule {
            path: if at == At::Token { TOKEN } else { SYNC }.to_owned(),
            count,
            fault,
        });
        let arm = || {
            if let Some(rule) = &rule {
                assert!(self.emu.inject_fault(rule.clone()));
            }
            if kind == Kind::MissingItems {
                self.proxy.strip_items(1, MISSING);
            }
        };
        if at != At::Batch2 {
            arm();
        }
        let emu_client = EmulatorClient::new(self.emu.base_url().clone()).unwrap();
        self.proxy.reset_counts();
        // Batch 2: the proxy holds the second sync request while the fault is armed (the
        // client pipelines, so batch 2 may be sent before batch 1 is stored).
        let hold = (at == At::Batch2).then(|| self.proxy.hold_sync_request(2));
        let arm_batch_2 = async {
            let Some(hold) = hold else { return };
            if hold.reached.await.is_err() {
                return; // the run ended before batch 2
            }
            arm();
            if kind == Kind::InvalidBillingKey {
                // The owner rotates the key in the cloud while the sync runs.
                let session = emu_client
                    .login(&owner_email(0), OWNER_PASSWORD)
                    .await
                    .unwrap();
                emu_client
                    .rotate_billing_sync_key(&session, crate::support::cloud_org(0), OWNER_PASSWORD)
                    .await
                    .unwrap();
            }
            let _ = hold.release.send(());
        };
        let options = SyncOptions {
            batch_size: BATCH,
            ..SyncOptions::default()
        };
        let (result, ()) = tokio::join!(
            client.sync_organization(self.store, local_org(0), &billing, options),
            arm_batch_2
        );
        if kind == Kind::Timeout {
            // The cloud's delay is real time: let it finish the requests the client gave up
            // on before the state is compared.
            tokio::time::sleep(DELAY).await;
        }
        RunResult {
            result,
            token_requests: self.proxy.count(TOKEN),
            sync_requests: self.proxy.count(SYNC),
            waits: self.waits.take(),
        }
    }

    /// The re-run after the fault cleared: what the operator does (the right installation key,
    /// the billing key the cloud shows now).
    async fn rerun(&self) -> SyncReport {
        self.emu.clear_faults();
        self.proxy.clear();
        let key = current_billing_key(self.emu).await;
        let client = client(
            config(&self.proxy.url, 0, &installation_key(0), NORMAL_TIMEOUT),
            &self.waits,
        );
        let options = SyncOptions {
            batch_size: BATCH,
            ..SyncOptions::default()
        };
        let report = client
            .sync_organization(
                self.store,
                local_org(0),
                &billing_with_key(0, &key),
                options,
            )
            .await
            .unwrap_or_else(|e| panic!("re-run after the fault cleared failed: {e}"));
        self.waits.take();
        report
    }
}

async fn current_billing_key(emu: &RunningEmulator) -> String {
    let c = EmulatorClient::new(emu.base_url().clone()).unwrap();
    let session = c.login(&owner_email(0), OWNER_PASSWORD).await.unwrap();
    let key = c
        .billing_sync_key(&session, crate::support::cloud_org(0), OWNER_PASSWORD)
        .await
        .unwrap();
    key.api_key.expose_secret().to_owned()
}

fn requests(r: &RunResult) -> String {
    format!("tok {} / sync {}", r.token_requests, r.sync_requests)
}

/// The persistent run's error (category, attempts, recorded state) or, for missing items, its
/// report; returns the category text and the attempts for the table.
fn check_outcome(
    run: &RunResult,
    kind: Kind,
    at: At,
    store: &MemoryStore,
    proxy: &Proxy,
    what: &str,
) -> (String, u32) {
    match (&run.result, kind.expected_category(at)) {
        (Err(e), Some(expected)) => {
            assert_eq!(e.category(), expected, "{what}: {e}");
            // At the token position the error carries the token request's own attempts.
            assert_eq!(
                e.attempts(),
                kind.expected_attempts(at),
                "{what}: attempts; {e}"
            );
            let stored = store.state(local_org(0));
            assert_eq!(
                stored.last_error.as_ref().map(|r| r.category),
                Some(expected),
                "{what}: the sync state records the category"
            );
            if at != At::Token {
                let n = if at == At::Batch1 { 1 } else { 2 };
                assert_eq!(e.batch(), Some((n, 3)), "{what}: {e}");
            }
            (e.category().name().to_owned(), e.attempts())
        }
        (Ok(report), None) => {
            assert_eq!(report.skipped.len(), MISSING, "{what}");
            assert_eq!(proxy.stripped(), u32::try_from(MISSING).unwrap());
            (format!("none; {MISSING} skipped"), 1)
        }
        (other, expected) => panic!(
            "{what}: expected {expected:?}, got {:?}",
            other.as_ref().map(|r| r.sent).map_err(ToString::to_string)
        ),
    }
}

/// Runs one cell; returns its table line.
async fn cell(kind: Kind, at: At, control: &Snapshot) -> String {
    let what = format!("{kind:?} at {}", at.label());
    // Persistent: armed for every attempt the client may make.
    let emu = emulator(1).await;
    let proxy = Proxy::start(emu.base_url()).await;
    let store = store_with(0, ROWS);
    let c = Cell {
        emu: &emu,
        proxy: &proxy,
        store: &store,
        waits: Waits::default(),
    };
    let run = c.run_with_fault(kind, at, 3).await;
    let (category, attempts) = check_outcome(&run, kind, at, &store, &proxy, &what);
    if kind == Kind::Http429 {
        assert!(
            run.waits.iter().all(|w| *w == Duration::from_secs(1)) && run.waits.len() == 2,
            "{what}: Retry-After honoured: {:?}",
            run.waits
        );
    } else {
        assert_eq!(
            run.waits.len(),
            usize::try_from(kind.expected_attempts(at)).unwrap()
                - 1
                - usize::from(kind == Kind::Unauthorized && at != At::Token),
            "{what}: waits {:?}",
            run.waits
        );
    }
    // Requests seen on the struck path: one per attempt (plus the batch before, at batch 2).
    let struck = match at {
        At::Token => run.token_requests,
        At::Batch1 => run.sync_requests,
        At::Batch2 => run.sync_requests - 1,
    };
    if run.result.is_err() {
        assert_eq!(
            struck,
            kind.expected_attempts(at),
            "{what}: {}",
            requests(&run)
        );
    }
    // The store: nothing lost or duplicated; the batches before the fault are stored.
    let sent = check_store(&store, 0, ROWS);
    let expected_sent = if kind == Kind::MissingItems {
        ROWS - MISSING
    } else {
        at.stored_before()
    };
    assert_eq!(
        sent, expected_sent,
        "{what}: rows confirmed after the fault"
    );
    // The re-run converges to the control state.
    c.rerun().await;
    assert_eq!(check_store(&store, 0, ROWS), ROWS);
    let converged = Snapshot::take(0, &store, &emu) == *control;
    assert!(converged, "{what}: the re-run did not converge");
    drop(c);
    emu.stop().await.unwrap();

    let single = single_hit(kind, at, control).await;
    format!(
        "| {:<32} | {:<9} | {:<26} | {:>12} | {:<15} | {:>11} | {:<9} | {:<37} |",
        kind.label(),
        at.label(),
        category,
        attempts,
        requests(&run),
        format!("{sent}/{ROWS}"),
        if converged { "yes" } else { "NO" },
        single,
    )
}

/// The fault armed for one request only: transient faults are absorbed within the run.
async fn single_hit(kind: Kind, at: At, control: &Snapshot) -> String {
    let what = format!("{kind:?} at {}", at.label());
    if kind.emulator_fault().is_some() {
        let emu = emulator(1).await;
        let proxy = Proxy::start(emu.base_url()).await;
        let store = store_with(0, ROWS);
        let c = Cell {
            emu: &emu,
            proxy: &proxy,
            store: &store,
            waits: Waits::default(),
        };
        let run = c.run_with_fault(kind, at, 1).await;
        let text = match &run.result {
            Ok(report) => {
                assert!(kind.single_hit_recovers(at), "{what}: single hit succeeded");
                assert_eq!(report.sent, ROWS);
                assert_eq!(
                    Snapshot::take(0, &store, &emu),
                    *control,
                    "{what}: single hit"
                );
                format!("recovered in-run ({})", requests(&run))
            }
            Err(e) => {
                assert!(!kind.single_hit_recovers(at), "{what}: single hit: {e}");
                assert_eq!(Some(e.category()), kind.expected_category(at));
                assert_eq!(check_store(&store, 0, ROWS), at.stored_before());
                c.rerun().await;
                assert_eq!(Snapshot::take(0, &store, &emu), *control);
                "fails, re-run converges".to_owned()
            }
        };
        drop(c);
        emu.stop().await.unwrap();
        text
    } else {
        "n/a".to_owned()
    }
}

/// A run without fault on a fresh cloud and store: the state every re-run must reach.
async fn control() -> Snapshot {
    let emu = emulator(1).await;
    let store = store_with(0, ROWS);
    let waits = Waits::default();
    let client = client(
        config(emu.base_url(), 0, &installation_key(0), NORMAL_TIMEOUT),
        &waits,
    );
    let options = SyncOptions {
        batch_size: BATCH,
        ..SyncOptions::default()
    };
    let report = client
        .sync_organization(&store, local_org(0), &billing(0), options)
        .await
        .unwrap();
    assert_eq!((report.sent, report.batches.len()), (ROWS, 3));
    assert_eq!(check_store(&store, 0, ROWS), ROWS);
    let snapshot = Snapshot::take(0, &store, &emu);
    assert_eq!(snapshot.cloud.len(), ROWS);
    assert_eq!(snapshot.outbox.len(), ROWS);
    emu.stop().await.unwrap();
    snapshot
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix() {
    let control = control().await;
    let mut table = String::new();
    writeln!(
        table,
        "| {:<32} | {:<9} | {:<26} | {:>12} | {:<15} | {:>11} | {:<9} | {:<37} |",
        "fault",
        "strikes",
        "error category",
        "err attempts",
        "requests",
        "stored/rows",
        "converges",
        "single hit"
    )
    .unwrap();
    writeln!(
        table,
        "|{}|{}|{}|{}|{}|{}|{}|{}|",
        "-".repeat(34),
        "-".repeat(11),
        "-".repeat(28),
        "-".repeat(14),
        "-".repeat(17),
        "-".repeat(13),
        "-".repeat(11),
        "-".repeat(39)
    )
    .unwrap();
    let mut cells = 0;
    for kind in KINDS {
        for at in [At::Token, At::Batch1, At::Batch2] {
            if let Some(why) = kind.not_applicable(at) {
                writeln!(
                    table,
                    "| {:<32} | {:<9} | n/a: {why}",
                    kind.label(),
                    at.label()
                )
                .unwrap();
                continue;
            }
            let line = cell(kind, at, &control).await;
            table.push_str(&line);
            table.push('\n');
            cells += 1;
        }
    }
    println!("\nFault matrix ({ROWS} sponsorships, batches of {BATCH}; 3 attempts per request):\n");
    println!("{table}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("fault-matrix.txt"), &table).unwrap();
    assert_eq!(cells, 14 * 3 - 4);
}

/// Issue #16, item 1: the batch reaches the cloud, which creates and e-mails the offers, but
/// every answer is lost; the rows stay without a `lastSyncDate`. A revoke must still reach the
/// cloud: after the next sync no offer the self-hosted side revoked is live in the cloud.
#[tokio::test]
async fn a_revoke_after_a_lost_answer_withdraws_the_cloud_offer() {
    let emu = emulator(1).await;
    let proxy = Proxy::start(emu.base_url()).await;
    let waits = Waits::default();
    let sync_client = client(
        config(&proxy.url, 0, &installation_key(0), NORMAL_TIMEOUT),
        &waits,
    );
    let store = store_with(0, 3);
    let org = local_org(0);
    proxy.lose_answers(10);
    let err = sync_client
        .sync_organization(&store, org, &billing(0), SyncOptions::default())
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    proxy.clear();
    let cloud_org = crate::support::cloud_org(0);
    assert_eq!(
        emu.sponsorships(cloud_org).len(),
        3,
        "the cloud applied the batch"
    );
    assert!(store.rows(org).iter().all(|r| r.last_sync_date.is_none()));

    // Every member revokes before any answer confirmed their offer.
    for row in store.rows(org) {
        let change = sponsorship_core::sponsorship::revoke(
            row.sponsoring_member_id,
            &store.rows(org),
            crate::support::fixed_now(),
        )
        .unwrap();
        store.write(org, change);
    }
    assert_eq!(store.rows(org).len(), 3, "kept until the cloud is told");
    sync_client
        .sync_organization(&store, org, &billing(0), SyncOptions::default())
        .await
        .unwrap();
    assert!(
        emu.sponsorships(cloud_org).is_empty(),
        "a revoked offer stayed live in the cloud"
    );
    assert!(
        store.rows(org).is_empty(),
        "the revoked rows are gone once the cloud confirmed"
    );
    // And a sync of nothing stays quiet: nothing re-created, no new e-mail.
    let mailed = emu.outbox().len();
    sync_client
        .sync_organization(&store, org, &billing(0), SyncOptions::default())
        .await
        .unwrap();
    assert!(emu.sponsorships(cloud_org).is_empty());
    assert_eq!(emu.outbox().len(), mailed);
    emu.stop().await.unwrap();
}
