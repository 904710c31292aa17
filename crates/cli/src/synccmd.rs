//! `sync`: once, or `--daemon` on the library's daily runner.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use cloud_client::runner::{
    DailyRunner, RunnerError, RunnerEvent, SHUTDOWN_GRACE, SyncTarget, SyncTargets,
};
use cloud_client::{CloudClient, ErrorKind, SyncOptions, SyncOutcome, SyncProgress, SyncReport};
use serde_json::json;
use sponsorship_core::ids::OrganizationId;
use sponsorship_core::org::OrgRecord;
use sponsorship_core::org::{BillingSyncConfig, BillingSyncConnection, ConnectionError};
use sponsorship_core::schedule::{ErrorCategory, Schedule, display_time};

use crate::state::State;

use crate::cli::SyncArgs;
use crate::output::{CliError, Out, exit, print_json, shell_word};
use crate::remote::client_from_env;
use crate::resolve::resolve_org;

/// An organization ready to sync.
pub(crate) struct Target {
    pub(crate) rec: OrgRecord,
    pub(crate) billing: BillingSyncConfig,
}

/// Why an organization cannot sync: the core's reference text and hint, then the command that
/// fixes it.
fn not_ready(rec: &OrgRecord, e: &ConnectionError) -> CliError {
    let org = shell_word(&rec.org.name);
    let fix = match e {
        ConnectionError::Disabled(_) => format!("sponsorctl billing-sync enable --org {org}"),
        ConnectionError::NoCloudOrganization(_) => {
            format!("sponsorctl license import --org {org} FILE")
        }
        _ => format!("sponsorctl billing-sync set-token --org {org}"),
    };
    CliError::of(
        ErrorCategory::Config,
        format!(
            "{}: {e}: {}; with sponsorctl: `{fix}`",
            rec.org.name,
            e.hint()
        ),
    )
}

pub(crate) fn target_of(db: &State, rec: OrgRecord) -> anyhow::Result<Result<Target, CliError>> {
    let (conn, state) = db.read(|tx| {
        Ok::<_, anyhow::Error>((tx.connection(rec.org.id)?, tx.sync_state(rec.org.id)?))
    })?;
    let ready = BillingSyncConnection::readiness(
        rec.org.id,
        conn.map(|c| (c.key, c.enabled)),
        rec.cloud_organization_id,
        state.last_license_sync,
    );
    Ok(match ready {
        Ok(billing) => Ok(Target { rec, billing }),
        Err(e) => Err(not_ready(&rec, &e)),
    })
}

/// The organizations a `sync` covers: the named one, or every one with billing sync enabled.
pub(crate) fn targets(
    db: &State,
    org: Option<&str>,
) -> anyhow::Result<Vec<Result<Target, CliError>>> {
    if let Some(ident) = org {
        let rec = db.read(|tx| resolve_org(tx, ident))?;
        return Ok(vec![target_of(db, rec)?]);
    }
    let mut out = Vec::new();
    for rec in db.read(|tx| {
        // (a closure: the method path is not general enough over the transaction lifetime)
        tx.organizations()
    })? {
        let enabled = db
            .read(|tx| tx.connection(rec.org.id))?
            .is_some_and(|c| c.enabled);
        if enabled {
            out.push(target_of(db, rec)?);
        }
    }
    if out.is_empty() {
        return Err(CliError::of(
            ErrorCategory::Config,
            "no organization has billing sync enabled: set a token with `sponsorctl billing-sync set-token --org ORG`",
        )
        .into());
    }
    Ok(out)
}

fn holder() -> String {
    crate::liveness::holder()
}

/// How one sync runs: progress on a terminal, a stop flag, the lock's lifetime.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RunControl<'a> {
    /// Show a progress line (only on a terminal).
    pub(crate) show_progress: bool,
    /// Set by a signal: the run stops after the batch on the wire.
    pub(crate) stop: Option<&'a AtomicBool>,
    /// How long the organization's lock outlives a run that stops renewing it.
    pub(crate) lock_ttl: Duration,
}

impl RunControl<'_> {
    /// No progress, no stop flag, the default lock lifetime (the demo).
    pub(crate) fn quiet() -> Self {
        Self {
            show_progress: false,
            stop: None,
            lock_ttl: SyncOptions::default().lock_ttl,
        }
    }
}

/// Syncs one organization. On a terminal a progress line shows from the start (a slow cloud
/// answers its first batch after seconds), and a bar once a run has more than one batch.
pub(crate) async fn sync_one(
    db: &State,
    client: &CloudClient,
    target: &Target,
    control: RunControl<'_>,
) -> Result<SyncReport, cloud_client::Error> {
    let bar = control.show_progress.then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_message(format!("syncing {}", target.rec.org.name));
        b.enable_steady_tick(Duration::from_millis(120));
        b
    });
    let on_progress = |p: &SyncProgress| {
        let Some(b) = &bar else { return };
        if p.batches < 2 {
            return;
        }
        if b.length().is_none() {
            b.set_length(p.items_total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} items")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
        }
        b.set_position(p.items_sent as u64);
    };
    if let Err(e) = db.prepare_for_sync() {
        tracing::warn!(error = %e, "could not enlarge the page cache for the sync");
    }
    let holder = holder();
    let options = SyncOptions {
        holder: &holder,
        progress: Some(&on_progress),
        stop: control.stop,
        lock_ttl: control.lock_ttl,
        ..SyncOptions::default()
    };
    let result = client
        .sync_organization(db, target.rec.org.id, &target.billing, options)
        .await;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    // The store checkpoints its WAL only every 64 MiB; copy this sync's writes back now. A
    // failure here loses nothing (the WAL stays valid), so it is logged, not reported.
    if let Err(e) = db.checkpoint() {
        tracing::warn!(error = %e, "WAL checkpoint after the sync failed");
    }
    result
}

fn report_json(id: OrganizationId, name: &str, r: &SyncReport) -> serde_json::Value {
    json!({
        "id": id,
        "name": name,
        "outcome": match r.outcome {
            SyncOutcome::Completed => "completed",
            SyncOutcome::Stopped { .. } => "stopped",
            SyncOutcome::AlreadyRun => "already-run",
        },
        "batches": r.batches.len(),
        "sent": r.sent,
        "updated": r.updated,
        "removed": r.removed,
        "skipped": r.skipped.len(),
        "skippedItems": r.skipped,
        "duplicates": r.duplicates,
        "stale": r.stale.len(),
        "durationMs": u64::try_from(r.duration.as_millis()).unwrap_or(u64::MAX),
        "error": null,
    })
}

/// Prints the summary of one run (human form).
pub(crate) fn print_report(name: &str, r: &SyncReport) {
    let removed = r.removed;
    println!(
        "{name}: sent {}, updated {}, removed {removed}, skipped {} ({} batch{}, {:.1} s)",
        r.sent,
        r.updated,
        r.skipped.len(),
        r.batches.len(),
        if r.batches.len() == 1 { "" } else { "es" },
        r.duration.as_secs_f64()
    );
    if let SyncOutcome::Stopped { next_batch } = r.outcome {
        println!("  stopped before batch {next_batch}: the next run sends everything again");
    }
    for s in r.skipped.iter().take(10) {
        println!("  skipped member {}: {}", s.member_id, s.reason.explain());
    }
    if r.skipped.len() > 10 {
        println!("  … and {} more skipped", r.skipped.len() - 10);
    }
    for d in &r.duplicates {
        println!(
            "  member {} has several sponsorships; sent {} only",
            d.member_id, d.sent_instead
        );
    }
    if !r.stale.is_empty() {
        println!(
            "  {} row(s) changed during the sync: they are sent at the next sync",
            r.stale.len()
        );
    }
}

/// What a failed sync of `name` says: the library's message, and the `sponsorctl` command that
/// fixes it where there is one.
fn failure_message(name: &str, e: &cloud_client::Error) -> String {
    let org = shell_word(name);
    match e.kind() {
        ErrorKind::Busy { holder, since } => format!(
            "another sync is running for {name} ({holder}, since {}): wait for it to finish",
            display_time(Some(*since))
        ),
        ErrorKind::BillingSyncKeyInvalid => {
            format!("{name}: {e}; with sponsorctl: `sponsorctl billing-sync set-token --org {org}`")
        }
        ErrorKind::CloudOrganizationUnknown { .. } => {
            format!("{name}: {e}; with sponsorctl: `sponsorctl license import --org {org} FILE`")
        }
        _ => format!("{name}: {e}"),
    }
}

/// Records a failure that happened before the client ran (configuration), so `status` shows it.
fn record_config_failure(db: &State, target: &OrgRecord, message: &str) -> anyhow::Result<()> {
    let now = Utc::now();
    db.write(|tx| {
        let state = tx.sync_state(target.org.id)?;
        let next = Schedule::default().record_run(
            &state,
            now,
            now,
            Err((ErrorCategory::Config, message.to_owned())),
        );
        tx.save_sync_state(target.org.id, &next)
    })?;
    Ok(())
}

/// The client the env file describes; when it cannot be built, the failure is recorded for
/// every ready target (so `status` shows it) and returned.
fn client_for(
    db: &State,
    env_file: &Path,
    targets: &[Result<Target, CliError>],
) -> anyhow::Result<CloudClient> {
    match client_from_env(env_file) {
        Ok((client, _)) => Ok(client),
        Err(e) => {
            let msg = crate::output::said_once(&e);
            for t in targets.iter().flatten() {
                record_config_failure(db, &t.rec, &msg)?;
            }
            Err(e)
        }
    }
}

/// `sync` (once). The first SIGINT or SIGTERM stops the run after the batch on the wire (the
/// lock is released and the attempt recorded), waiting [`SHUTDOWN_GRACE`] at most; a second
/// one ends the process at once. Either way the exit code is 128 + the signal's number.
pub(crate) async fn sync_cmd(
    db: &State,
    env_file: &Path,
    out: Out,
    args: &SyncArgs,
) -> anyhow::Result<u8> {
    let targets = targets(db, args.org.as_deref())?;
    let client = client_for(db, env_file, &targets)?;
    let interrupt = Interrupt::listen(!out.json)?;
    let control = RunControl {
        show_progress: !out.json && std::io::stderr().is_terminal(),
        stop: Some(&interrupt.stop),
        lock_ttl: args.lock_ttl,
    };
    let mut code = exit::OK;
    let mut results = Vec::new();
    let mut last_error = None;
    for t in targets {
        if interrupt.stop.load(Ordering::SeqCst) {
            break;
        }
        let t = match t {
            Ok(t) => t,
            Err(e) => {
                results.push(json!({"error": {"category": e.category, "message": e.message}}));
                if !out.json {
                    eprintln!("error: {}", e.message);
                }
                code = exit::FAILURE;
                last_error = Some(e);
                continue;
            }
        };
        let Some(result) = interrupt.run(sync_one(db, &client, &t, control)).await else {
            let message = format!(
                "{}: the batch on the wire was not answered within {} s: abandoned; the lock expires on its own (at most {}) and the next run sends the batch again",
                t.rec.org.name,
                SHUTDOWN_GRACE.as_secs(),
                humantime::format_duration(args.lock_ttl)
            );
            if out.json {
                results.push(json!({"id": t.rec.org.id, "name": t.rec.org.name,
                    "error": {"category": "interrupted", "message": message}}));
                last_error = Some(CliError::failure("interrupted", message));
            } else {
                eprintln!("{message}");
            }
            break;
        };
        match result {
            Ok(r) => {
                if !r.skipped.is_empty() && code == exit::OK {
                    code = exit::SKIPPED;
                }
                if out.json {
                    results.push(report_json(t.rec.org.id, &t.rec.org.name, &r));
                } else {
                    print_report(&t.rec.org.name, &r);
                }
            }
            Err(e) => {
                let message = failure_message(&t.rec.org.name, &e);
                let category = e.category();
                results.push(json!({"id": t.rec.org.id, "name": t.rec.org.name,
                    "error": {"category": category.name(), "message": message}}));
                if !out.json {
                    eprintln!("error: {message}");
                }
                code = exit::FAILURE;
                last_error = Some(CliError::of(category, message));
            }
        }
    }
    if out.json {
        print_json(&json!({ "organizations": results }))?;
        if let Some(e) = &last_error {
            eprintln!(
                "{}",
                json!({"error": {"category": e.category, "message": e.message}})
            );
        }
    }
    Ok(interrupt.exit_code().unwrap_or(code))
}

/// SIGINT and SIGTERM for a plain `sync`: the first sets the stop flag, a second ends the
/// process at once.
struct Interrupt {
    stop: Arc<AtomicBool>,
    /// The first signal's number, 0 until one came.
    signal: Arc<AtomicU8>,
    fired: tokio::sync::watch::Receiver<bool>,
}

impl Interrupt {
    /// `say`: tell the operator on stderr what the signal does (not in `--json` mode).
    fn listen(say: bool) -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let stop = Arc::new(AtomicBool::new(false));
        let number = Arc::new(AtomicU8::new(0));
        let (tx, fired) = tokio::sync::watch::channel(false);
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let (flag, first) = (stop.clone(), number.clone());
        tokio::spawn(async move {
            let mut count = 0;
            loop {
                let n: u8 = tokio::select! {
                    _ = int.recv() => 2,
                    _ = term.recv() => 15,
                };
                count += 1;
                if count > 1 {
                    if say {
                        eprintln!("second signal: stopping now; the lock expires on its own");
                    }
                    std::process::exit(128 + i32::from(n));
                }
                first.store(n, Ordering::SeqCst);
                flag.store(true, Ordering::SeqCst);
                if say {
                    eprintln!(
                        "stopping after the batch on the wire (at most {} s); press Ctrl-C again to stop now",
                        SHUTDOWN_GRACE.as_secs()
                    );
                }
                let _ = tx.send(true);
            }
        });
        Ok(Self {
            stop,
            signal: number,
            fired,
        })
    }

    /// Runs `sync` to its end, or, once a signal came, for [`SHUTDOWN_GRACE`] more at most
    /// (`None`: abandoned).
    async fn run<T>(&self, sync: impl Future<Output = T>) -> Option<T> {
        let mut sync = std::pin::pin!(sync);
        let mut fired = self.fired.clone();
        tokio::select! {
            result = &mut sync => Some(result),
            _ = fired.wait_for(|f| *f) => {
                tokio::time::timeout(SHUTDOWN_GRACE, &mut sync).await.ok()
            }
        }
    }

    /// 128 + the signal's number once one came.
    fn exit_code(&self) -> Option<u8> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            n => Some(128 + n),
        }
    }
}

fn jitter(max: TimeDelta) -> TimeDelta {
    let ms = max.num_milliseconds();
    if ms <= 0 {
        return TimeDelta::zero();
    }
    TimeDelta::milliseconds(rand::random_range(0..ms))
}

/// `sync --daemon`: the library's daily runner (random first run within a day, then daily,
/// catch-up after downtime, back-off after failures, `next_due` persisted, expired rows
/// purged); SIGINT/SIGTERM finish the current batch and stop. Organizations are synced one at
/// a time.
pub(crate) async fn daemon(
    (db, state): (&State, &Path),
    env_file: &Path,
    out: Out,
    args: &SyncArgs,
) -> anyhow::Result<u8> {
    let org = args.org.as_deref();
    // One daemon per state file: a second one would only wait on the first one's locks. On a
    // server database any number of replicas share the organizations (each takes one's lease).
    let _only_daemon = if db.server().is_none() {
        Some(daemon_lock(state)?)
    } else {
        None
    };
    // Refused at once, as a plain `sync` is, when nothing can sync or the env file is broken.
    let first = targets(db, org)?;
    let client = client_for(db, env_file, &first)?;
    let (signalled, received) = tokio::sync::oneshot::channel::<()>();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("signal received: finishing the current batch, then stopping");
        let _ = signalled.send(());
    });
    let shutdown = async {
        let _ = received.await;
    };
    if let Err(e) = db.prepare_for_sync() {
        tracing::warn!(error = %e, "could not enlarge the page cache for the syncs");
    }
    let say = |text: String| {
        if out.json {
            println!("{}", json!({"event": text}));
        } else {
            println!("{text}");
        }
    };
    let holder = holder();
    say(format!(
        "sponsorctl daemon started ({holder}); stop with Ctrl-C or SIGTERM"
    ));
    let source = StateTargets { db, org };
    let on_event = |event: RunnerEvent<'_>| match event {
        RunnerEvent::Idle { .. } => {
            say("no organization is ready to sync; checking again in an hour".to_owned());
        }
        RunnerEvent::Waiting { target, due } => {
            say(format!(
                "next sync: {} at {}",
                target.name,
                display_time(Some(due))
            ));
        }
        RunnerEvent::Synced { target, report } => {
            if out.json {
                println!(
                    "{}",
                    report_json(target.organization_id, &target.name, report)
                );
            } else {
                print_report(&target.name, report);
            }
            // See `sync_one`: this sync's writes go back into the database file now.
            if let Err(e) = db.checkpoint() {
                tracing::warn!(error = %e, "WAL checkpoint after the sync failed");
            }
        }
        RunnerEvent::Failed { target, error } => {
            say(failure_message(&target.name, error));
            // Batches stored before the failure go back into the database file too.
            if let Err(e) = db.checkpoint() {
                tracing::warn!(error = %e, "WAL checkpoint after the sync failed");
            }
        }
        RunnerEvent::Purged { target, rows } => say(format!(
            "{}: purged {rows} sponsorship(s) whose paid period ended more than 90 days ago",
            target.name
        )),
        _ => {}
    };
    DailyRunner::new(&client, db, &source, &holder)
        .lock_ttl(args.lock_ttl)
        .run(jitter, shutdown, on_event)
        .await
        .map_err(|e| match e {
            RunnerError::Targets(inner) => match inner.downcast::<TargetsError>() {
                Ok(targets) => targets.0,
                Err(other) => anyhow::anyhow!(other),
            },
            RunnerError::Store(inner) => match inner.downcast::<crate::state::StateError>() {
                // The store's own error, so that the exit code and category say "store".
                Ok(store) => anyhow::Error::new(*store),
                Err(other) => anyhow::anyhow!(other),
            },
            other => anyhow::Error::new(other),
        })?;
    say("sponsorctl daemon stopped".to_owned());
    Ok(exit::OK)
}

/// Takes `STATE.daemon.lock` (an advisory lock the kernel drops when the process ends, however
/// it ends) and writes this process's holder string into it, for the refusal a second daemon
/// gets.
fn daemon_lock(state: &Path) -> anyhow::Result<std::fs::File> {
    use std::io::{Read as _, Seek as _, Write as _};
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut name = state.as_os_str().to_owned();
    name.push(".daemon.lock");
    let path = std::path::PathBuf::from(name);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| {
            CliError::failure(
                "store",
                format!("cannot open the daemon lock {}: {e}", path.display()),
            )
        })?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = std::io::Read::by_ref(&mut file)
                .take(512)
                .read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(CliError::failure(
                "busy",
                format!(
                    "another sponsorctl daemon runs on {} ({}): stop it first; one daemon per state file syncs every organization",
                    state.display(),
                    if holder.is_empty() { "holder unknown" } else { holder }
                ),
            )
            .into());
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(
                CliError::failure("store", format!("cannot lock {}: {e}", path.display())).into(),
            );
        }
    }
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", holder()));
    if let Err(e) = written {
        tracing::warn!(error = %e, "could not write the daemon lock's holder");
    }
    Ok(file)
}

/// The organizations of the state file, for the daily runner: the named one, or every one with
/// billing sync enabled.
struct StateTargets<'a> {
    db: &'a State,
    org: Option<&'a str>,
}

/// Listing the organizations failed (the CLI error inside keeps its exit code).
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
struct TargetsError(anyhow::Error);

impl SyncTargets for StateTargets<'_> {
    type Error = TargetsError;

    async fn sync_targets(&self) -> Result<Vec<SyncTarget>, TargetsError> {
        Ok(targets(self.db, self.org)
            .map_err(TargetsError)?
            .into_iter()
            .filter_map(Result::ok)
            .map(|t| SyncTarget {
                organization_id: t.rec.org.id,
                name: t.rec.org.name,
                billing: Ok(t.billing),
            })
            .collect())
    }
}
