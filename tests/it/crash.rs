//! Crash safety: `sponsorctl sync` and `sponsorctl env enable-cloud` killed with SIGKILL at
//! random points (delays from a seeded generator, within the measured length of an uninterrupted
//! run). After every kill the store opens, passes `PRAGMA integrity_check`, holds every seeded
//! sponsorship exactly once, and a final run converges to the state of an uninterrupted run; the
//! env file is always the old or the new content, byte for byte.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sponsorship_core::ids::CloudOrganizationId;

use crate::cli_bin::{CliSandbox, ORG, runtime, start_cloud};

const SPONSORSHIPS: usize = 10_000;
const KILLS: usize = 20;
/// Upper bound for any single run (a hung process fails the test instead of hanging CI).
const RUN_LIMIT: Duration = Duration::from_mins(5);

/// SplitMix64: a small seeded generator, so a failing kill schedule can be replayed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A delay in `[0, max]`.
    fn delay(&mut self, max: Duration) -> Duration {
        let micros = u64::try_from(max.as_micros()).unwrap_or(u64::MAX).max(1);
        Duration::from_micros(self.next() % (micros + 1))
    }
}

/// `SPONSOR_CRASH_SEED` replays another kill schedule (a test knob, not library configuration).
#[allow(clippy::disallowed_methods)]
fn seed_from_env(default: u64) -> u64 {
    std::env::var("SPONSOR_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Waits for `child` at most [`RUN_LIMIT`]; kills it and panics beyond.
fn wait_bounded(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + RUN_LIMIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `sponsorctl args` to the end (at most [`RUN_LIMIT`]), its output discarded.
fn run_bounded(s: &CliSandbox, args: &[&str], what: &str) -> ExitStatus {
    let mut child = s.cmd().args(args).stdout(Stdio::null()).spawn().unwrap();
    wait_bounded(&mut child, what)
}

/// Spawns `args`, sleeps `delay`, sends SIGKILL. Returns whether the SIGKILL ended the process
/// (false: it had already finished).
fn kill_after(s: &CliSandbox, args: &[&str], delay: Duration) -> bool {
    let mut child = s
        .cmd()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    // `Child::kill` sends SIGKILL on unix (it may find the process already finished).
    child.kill().unwrap();
    let status = child.wait().unwrap();
    match status.signal() {
        Some(9) => true,
        None => false,
        Some(other) => panic!("ended by signal {other}, not SIGKILL: {status:?}"),
    }
}

/// One sponsorship row as it matters for convergence (no ids, no times).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct RowView {
    member: String,
    offered_to: Option<String>,
    friendly_name: Option<String>,
    plan: Option<i64>,
    to_delete: bool,
    awaiting_sync: bool,
    synced: bool,
    superseded: Option<String>,
}

/// Opens the store as SQLite would after a crash, checks its integrity and reads every row.
fn inspect_store(path: &Path) -> Vec<RowView> {
    let conn = rusqlite::Connection::open(path).expect("the store opens after SIGKILL");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "integrity_check");
    let mut stmt = conn
        .prepare(
            "SELECT sponsoring_member_id, offered_to_email, friendly_name, plan_sponsorship_type, \
             to_delete, awaiting_sync, last_sync_date IS NOT NULL, superseded_offer FROM sponsorships",
        )
        .unwrap();
    let mut rows: Vec<RowView> = stmt
        .query_map([], |r| {
            Ok(RowView {
                member: r.get(0)?,
                offered_to: r.get(1)?,
                friendly_name: r.get(2)?,
                plan: r.get(3)?,
                to_delete: r.get(4)?,
                awaiting_sync: r.get(5)?,
                synced: r.get(6)?,
                superseded: r.get(7)?,
            })
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows.sort();
    rows
}

/// The member ids of the organization's members.
fn member_ids(path: &Path) -> BTreeSet<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn.prepare("SELECT id FROM members").unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The sync lock rows left in the store: (holder, expires in the future).
fn lock_rows(path: &Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT holder, expires_at FROM sync_locks")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn synced_count(rows: &[RowView]) -> usize {
    rows.iter().filter(|r| r.synced && !r.awaiting_sync).count()
}

fn sent_count(s: &CliSandbox) -> u64 {
    let status: serde_json::Value = serde_json::from_str(&s.ok(&["--json", "status"])).unwrap();
    status["organizations"][0]["counts"]["sent"]
        .as_u64()
        .unwrap_or(0)
}

/// The cloud's rows, normalized: (member id, offered to, to delete).
fn cloud_rows(
    emulator: &cloud_emulator::RunningEmulator,
    org: CloudOrganizationId,
) -> Vec<(String, Option<String>, bool)> {
    let mut rows: Vec<_> = emulator
        .sponsorships(org)
        .into_iter()
        .map(|r| {
            (
                r.row.sponsoring_organization_user_id.to_string(),
                r.row.offered_to_email,
                r.row.to_delete,
            )
        })
        .collect();
    rows.sort();
    rows
}

#[test]
#[allow(clippy::too_many_lines)] // one scenario, told in order
fn sigkilled_sync_keeps_the_store_whole_and_a_rerun_converges() {
    let started = Instant::now();
    let rt = runtime();
    let cloud_org = CloudOrganizationId::new_random();

    // Seed once through the CLI's bulk commands, then keep a pristine copy.
    let (seed_cloud, seed_base) = start_cloud(&rt, cloud_org);
    let s = CliSandbox::new();
    s.seed(&seed_base, cloud_org, SPONSORSHIPS);
    rt.block_on(seed_cloud.stop()).unwrap();
    let pristine = s.path().join("pristine.db");
    s.copy_state_to(&pristine);
    let seeded_rows = inspect_store(&s.state);
    let members = member_ids(&s.state);
    assert_eq!(seeded_rows.len(), SPONSORSHIPS);
    assert_eq!(members.len(), SPONSORSHIPS);
    let seeded_time = started.elapsed();

    // The reference: an uninterrupted run on a copy, against its own fresh cloud; it also gives
    // the window in which the kills fall.
    let (ref_cloud, ref_base) = start_cloud(&rt, cloud_org);
    s.repoint(&seed_base, &ref_base);
    let t0 = Instant::now();
    let status = run_bounded(&s, &["sync"], "uninterrupted sync");
    let window = t0.elapsed().min(RUN_LIMIT / 10);
    assert!(status.success(), "uninterrupted sync: {status:?}");
    let reference_rows = inspect_store(&s.state);
    let reference_cloud = cloud_rows(&ref_cloud, cloud_org);
    assert_eq!(synced_count(&reference_rows), SPONSORSHIPS);
    assert_eq!(reference_cloud.len(), SPONSORSHIPS);
    rt.block_on(ref_cloud.stop()).unwrap();

    // The kills, on the pristine store, against a fresh cloud.
    s.restore_state_from(&pristine);
    let (cloud, base) = start_cloud(&rt, cloud_org);
    s.repoint(&ref_base, &base);
    let seed = seed_from_env(0x5EED_C0DE);
    let mut rng = SplitMix(seed);
    let mut killed_running = 0;
    let mut stale_locks = 0;
    let mut log = format!(
        "seed {seed:#x}; uninterrupted sync of {SPONSORSHIPS}: {:.0} ms (seeding took {:.1} s)\n\
         kill | delay ms | running | rows synced | stale lock | next sync\n",
        window.as_secs_f64() * 1e3,
        seeded_time.as_secs_f64(),
    );
    for i in 0..KILLS {
        let delay = rng.delay(window);
        let running = kill_after(&s, &["sync"], delay);
        killed_running += usize::from(running);

        let rows = inspect_store(&s.state);
        assert_eq!(
            rows.len(),
            SPONSORSHIPS,
            "kill {i}: a row was lost or added"
        );
        let row_members: BTreeSet<String> = rows.iter().map(|r| r.member.clone()).collect();
        assert_eq!(
            row_members, members,
            "kill {i}: same member ids as seeded, one row each"
        );
        for (r, seeded) in rows.iter().zip(&seeded_rows) {
            assert_eq!(
                (&r.member, &r.offered_to, r.to_delete),
                (&seeded.member, &seeded.offered_to, seeded.to_delete),
                "kill {i}: a row changed its offer"
            );
        }

        // A lock left by the killed process must not block the next sync for long.
        let locks = lock_rows(&s.state);
        let stale = !locks.is_empty();
        let mut next = "-";
        if stale {
            stale_locks += 1;
            assert!(
                locks
                    .iter()
                    .all(|(holder, _)| holder.starts_with("sponsorctl pid ")),
                "{locks:?}"
            );
            // The holder no longer runs: the next sync takes the lock over at once instead of
            // waiting for it to expire.
            let out = s.run_with(&["--json", "sync"], None);
            assert!(
                out.status.success(),
                "kill {i}: the sync after a killed one did not proceed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            next = "proceeded";
        }
        let _ = writeln!(
            log,
            "{i:>4} | {:>8.1} | {:>7} | {:>11} | {:>10} | {next}",
            delay.as_secs_f64() * 1e3,
            running,
            synced_count(&rows),
            stale,
        );
    }

    // The final run converges: exit 0, every row Sent, the cloud holds each sponsorship once, and
    // both sides match the uninterrupted run.
    let status = run_bounded(&s, &["sync"], "final sync");
    assert!(status.success(), "final sync: {status:?}\n{log}");
    let final_rows = inspect_store(&s.state);
    assert_eq!(
        final_rows, reference_rows,
        "same local state as uninterrupted\n{log}"
    );
    assert_eq!(sent_count(&s), SPONSORSHIPS as u64, "all Sent\n{log}");
    assert_eq!(
        cloud_rows(&cloud, cloud_org),
        reference_cloud,
        "the cloud holds exactly the {SPONSORSHIPS} rows of an uninterrupted run\n{log}"
    );
    assert!(
        lock_rows(&s.state).is_empty(),
        "the final run released its lock"
    );
    rt.block_on(cloud.stop()).unwrap();

    let _ = writeln!(
        log,
        "killed while running: {killed_running}/{KILLS}; stale locks left and taken over: \
         {stale_locks}; total {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("{log}");
    assert!(killed_running > 0, "no kill struck a running sync\n{log}");
}

/// Kills between which members revoke and re-offer (issue #16, item 1): a batch that reached the
/// cloud with its answer lost leaves rows the cloud may hold without a local `lastSyncDate`. After
/// the kills and two clean syncs, every live offer in the (faithful) reference cloud is one the
/// self-hosted side holds, to the same recipient, and no revoke is left pending.
#[test]
fn sigkilled_syncs_with_revokes_and_reoffers_leave_no_orphan_cloud_offer() {
    const ROWS: usize = 10_000;
    const ROUNDS: usize = 10;
    let rt = runtime();
    let cloud_org = CloudOrganizationId::new_random();
    let (cloud, base) = start_cloud(&rt, cloud_org);
    let s = CliSandbox::new();
    s.seed(&base, cloud_org, ROWS);
    // The window of one uninterrupted sync, measured on a copy against its own cloud.
    let pristine = s.path().join("pristine.db");
    s.copy_state_to(&pristine);
    let (ref_cloud, ref_base) = start_cloud(&rt, cloud_org);
    s.repoint(&base, &ref_base);
    let t0 = Instant::now();
    assert!(run_bounded(&s, &["sync"], "uninterrupted sync").success());
    let window = t0.elapsed().min(RUN_LIMIT / 10);
    rt.block_on(ref_cloud.stop()).unwrap();
    s.restore_state_from(&pristine);
    s.repoint(&ref_base, &base);

    let seed = seed_from_env(0x0DD_0FFE);
    let mut rng = SplitMix(seed);
    let mut log = format!(
        "seed {seed:#x}; window {:.0} ms\n",
        window.as_secs_f64() * 1e3
    );
    let member = |n: u64| format!("member{:06}@acme.example", n % ROWS as u64);
    let (mut revokes, mut reoffers, mut killed_running) = (0, 0, 0);
    for round in 0..ROUNDS {
        let delay = rng.delay(window);
        killed_running += usize::from(kill_after(&s, &["sync"], delay));
        for _ in 0..3 {
            let m = member(rng.next());
            let out = s.run_with(
                &["sponsorship", "revoke", "--org", ORG, "--member", &m],
                None,
            );
            revokes += usize::from(out.status.success());
            let m = member(rng.next());
            let email = format!("again{round}-{}@home.example", rng.next() % 1000);
            let out = s.run_with(
                &[
                    "sponsorship",
                    "offer",
                    "--org",
                    ORG,
                    "--member",
                    &m,
                    "--email",
                    &email,
                ],
                None,
            );
            reoffers += usize::from(out.status.success());
        }
        // Some syncs get through now and then; locks of killed holders are taken over.
        if round % 3 == 2 {
            let _ = s.run_with(&["sync"], None);
        }
    }
    for _ in 0..2 {
        assert!(run_bounded(&s, &["sync"], "clean sync").success(), "{log}");
    }
    let local: BTreeSet<(String, Option<String>)> = inspect_store(&s.state)
        .into_iter()
        .inspect(|r| assert!(!r.to_delete, "a revoke is still pending: {r:?}"))
        .map(|r| (r.member, r.offered_to))
        .collect();
    let live_in_cloud: BTreeSet<(String, Option<String>)> = cloud_rows(&cloud, cloud_org)
        .into_iter()
        .filter(|(_, _, to_delete)| !to_delete)
        .map(|(member, email, _)| (member, email))
        .collect();
    let orphans: Vec<_> = live_in_cloud.difference(&local).collect();
    let _ = writeln!(
        log,
        "killed while running {killed_running}/{ROUNDS}; revokes {revokes}, re-offers {reoffers}; \
         local rows {}, live cloud offers {}, orphans {}",
        local.len(),
        live_in_cloud.len(),
        orphans.len()
    );
    println!("{log}");
    assert!(
        orphans.is_empty(),
        "live cloud offers the self-hosted side does not hold: {orphans:?}\n{log}"
    );
    assert_eq!(
        live_in_cloud, local,
        "both sides hold the same offers\n{log}"
    );
    assert!(killed_running > 0, "no kill struck a running sync\n{log}");
    rt.block_on(cloud.stop()).unwrap();
}

#[test]
fn sigkilled_enable_cloud_leaves_the_old_or_the_new_env_file() {
    let s = CliSandbox::new();
    // A large file (the settings plus many comment lines), so the write takes measurable time.
    let mut old = format!(
        "globalSettings__installation__id={}\nglobalSettings__installation__key={}\n",
        crate::cli_bin::INSTALLATION_ID,
        crate::cli_bin::INSTALLATION_KEY
    );
    for i in 0..100_000 {
        let _ = writeln!(old, "# padding line {i:06}: settings managed by Setup");
    }
    let args = ["env", "enable-cloud", "--region", "eu"];
    let env_dir = s.env.parent().unwrap().to_path_buf();
    let backup = env_dir.join("global.override.env.bak");
    let reset = || {
        std::fs::write(&s.env, &old).unwrap();
        // Setup writes the file 0600 (it holds the installation key).
        std::fs::set_permissions(&s.env, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let _ = std::fs::remove_file(&backup);
    };

    // Build or find the binary and warm the page cache outside the measured run.
    crate::cli_bin::sponsorctl();
    reset();
    s.ok(&args);
    reset();
    let t0 = Instant::now();
    s.ok(&args);
    let window = t0.elapsed().min(RUN_LIMIT / 10);
    let new = std::fs::read(&s.env).unwrap();
    assert_ne!(new, old.as_bytes());
    assert_eq!(std::fs::read(&backup).unwrap(), old.as_bytes());

    let seed = seed_from_env(0xE4F_C0DE);
    let mut rng = SplitMix(seed);
    let (mut saw_old, mut saw_new, mut killed_running) = (0, 0, 0);
    let mut leftovers = Vec::new();
    for i in 0..KILLS {
        reset();
        let delay = rng.delay(window);
        killed_running += usize::from(kill_after(&s, &args, delay));
        let now = std::fs::read(&s.env).unwrap();
        if now == old.as_bytes() {
            saw_old += 1;
        } else if now == new {
            saw_new += 1;
        } else {
            panic!(
                "kill {i} after {delay:?}: the env file is neither the old nor the new content ({} bytes)",
                now.len()
            );
        }
        if let Ok(b) = std::fs::read(&backup) {
            assert_eq!(
                b,
                old.as_bytes(),
                "kill {i}: a backup holds the old content"
            );
        }
        // Temporary files a writer killed at the instant of its rename leaves behind (not the
        // file itself or its backup): never readable by others. They stay for the sweep below.
        for e in std::fs::read_dir(&env_dir).unwrap().flatten() {
            let p = e.path();
            if p != s.env && p != backup {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = e.metadata().unwrap().permissions().mode() & 0o777;
                assert_eq!(mode & 0o077, 0, "kill {i}: {} is {mode:o}", p.display());
                let name = format!("{} ({mode:o})", p.file_name().unwrap().to_string_lossy());
                if !leftovers.contains(&name) {
                    leftovers.push(name);
                }
            }
        }
    }
    println!(
        "env enable-cloud (seed {seed:#x}, uninterrupted {:.1} ms): {KILLS} kills, {killed_running} while running; \
         old content {saw_old}, new content {saw_new}; temporary files left behind (mode 0600 or stricter): {leftovers:?}",
        window.as_secs_f64() * 1e3
    );
    assert!(killed_running > 0, "no kill struck a running process");

    // Writes go through an unnamed temporary file (O_TMPFILE), linked under a hidden name only
    // an instant before the rename, so leftovers are rare. Whatever is left, the next save
    // removes once it is old enough not to belong to a save still running. Plant one, so this
    // part is checked on every run, then age everything and save once more, uninterrupted.
    let planted = env_dir.join(".global.override.env.Kil1ed");
    std::fs::write(&planted, &old).unwrap();
    let aged =
        std::time::SystemTime::now() - env_config::STALE_TEMPORARY_AGE - Duration::from_secs(1);
    let mut left = Vec::new();
    for e in std::fs::read_dir(&env_dir).unwrap().flatten() {
        if e.path() != s.env && e.path() != backup {
            std::fs::File::open(e.path())
                .unwrap()
                .set_modified(aged)
                .unwrap();
            left.push(e.file_name());
        }
    }
    assert!(left.len() > leftovers.len(), "the planted file is there");
    reset();
    s.ok(&args);
    let after: Vec<_> = std::fs::read_dir(&env_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| *n != *s.env.file_name().unwrap() && *n != *backup.file_name().unwrap())
        .collect();
    assert!(
        after.is_empty(),
        "a completed enable-cloud removes stale temporary files; left: {after:?}"
    );
}
