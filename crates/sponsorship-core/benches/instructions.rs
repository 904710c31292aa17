//! How the *work* of a sync grows with the organization: instructions executed and last-level
//! cache misses of one run at 10k and at 100k sponsorships, counted by valgrind's cachegrind.
//!
//! The `sync` benchmark times the same runs. Its growth from 10k to 100k mixes two things: the
//! work, which a linear algorithm multiplies by 10, and the memory hierarchy. A 10k run's data
//! (about 8 MB) stays in this machine's 32 MiB last-level cache from one phase to the next,
//! while a 100k run's (60–80 MB) is read from memory again in each phase. Counting
//! instructions separates the two, and does not depend on the machine or its load.
//!
//! `cargo bench -p sponsorship-core --bench instructions` prints, for each case and size, the
//! instructions and simulated last-level (32 MiB, 16-way) misses of one run, and the growth
//! from 10k to 100k. Each figure is the difference between a process that prepares the state
//! and then runs, and one that only prepares it. Without valgrind it says so and measures
//! nothing; run as a test (`cargo test --benches`) it only checks that one run works.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a program: its output is the point
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::hint::black_box;
use std::process::Command;

use sponsorship_core::cloud::CloudLedger;

use common::{cloud_org, rows, run, synced};

// The same allocator as the timed benchmark.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SIZES: [usize; 2] = [10_000, 100_000];
const CASES: [&str; 2] = ["first_sync", "resync"];
/// The simulated last-level cache: this machine's size, 16-way, 64-byte lines.
const LAST_LEVEL: &str = "--LL=33554432,16,64";

/// Prepares the state of `case` at `n` rows and, if `measured`, runs one sync. Returns the
/// number of offers queued.
fn prepare_and_run(n: usize, case: &str, measured: bool) -> usize {
    let org = cloud_org();
    let mut sh = rows(n);
    let mut ledger = CloudLedger::new();
    let mut next = 1u128 << 64;
    if case == "resync" {
        sh = synced(&sh, &mut ledger, &org, &mut next);
    }
    let offers = if measured {
        let mut changes = 0;
        let offers = run(&sh, &mut ledger, &org, &mut next, |app| {
            changes += app.changes.len();
        });
        black_box(changes);
        offers
    } else {
        0
    };
    black_box((&sh, &ledger));
    offers
}

/// What cachegrind counted for one process.
#[derive(Debug, Clone, Copy)]
struct Counts {
    instructions: u64,
    last_level_misses: u64,
}

/// The number after `label` (`==123== I   refs:   1,234,567`) in cachegrind's summary; blanks
/// in `label` match any run of blanks.
fn count_after(summary: &str, label: &str) -> Option<u64> {
    let label: Vec<&str> = label.split_whitespace().collect();
    summary.lines().find_map(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words
            .windows(label.len())
            .position(|w| w == label.as_slice())?;
        let number = words.get(at + label.len())?;
        number.replace(',', "").parse().ok()
    })
}

fn cachegrind(n: usize, case: &str, measured: bool) -> Result<Counts, String> {
    let me = std::env::current_exe().map_err(|e| format!("locating this benchmark: {e}"))?;
    let output = Command::new("valgrind")
        .args([
            "--tool=cachegrind",
            "--cache-sim=yes",
            LAST_LEVEL,
            "--cachegrind-out-file=/dev/null",
        ])
        .arg(me)
        .args([
            "child",
            &n.to_string(),
            case,
            if measured { "1" } else { "0" },
        ])
        .output()
        .map_err(|e| format!("running valgrind: {e}"))?;
    let summary = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!("valgrind failed ({}):\n{summary}", output.status));
    }
    Ok(Counts {
        instructions: count_after(&summary, "I refs:")
            .ok_or_else(|| format!("no instruction count in:\n{summary}"))?,
        last_level_misses: count_after(&summary, "LL misses:")
            .ok_or_else(|| format!("no last-level miss count in:\n{summary}"))?,
    })
}

/// One run's counts: a process that prepares and runs, minus one that only prepares.
fn one_run(n: usize, case: &str) -> Result<Counts, String> {
    let with = cachegrind(n, case, true)?;
    let without = cachegrind(n, case, false)?;
    Ok(Counts {
        instructions: with.instructions.saturating_sub(without.instructions),
        last_level_misses: with
            .last_level_misses
            .saturating_sub(without.last_level_misses),
    })
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn ratio(big: u64, small: u64) -> f64 {
    big as f64 / small.max(1) as f64
}

fn measure() -> Result<(), String> {
    if Command::new("valgrind").arg("--version").output().is_err() {
        println!(
            "instructions: valgrind is not installed, nothing measured \
             (Debian/Ubuntu: apt-get install valgrind)"
        );
        return Ok(());
    }
    println!("one sync run, counted by cachegrind (last level simulated as 32 MiB, 16-way)");
    for case in CASES {
        let [small, big] = [one_run(SIZES[0], case)?, one_run(SIZES[1], case)?];
        for (n, c) in SIZES.iter().zip([small, big]) {
            println!(
                "{case}/{n}: {} instructions ({:.0} per sponsorship), {} last-level misses",
                c.instructions,
                ratio(c.instructions, *n as u64),
                c.last_level_misses
            );
        }
        println!(
            "{case} 100k/10k: instructions {:.2}x, last-level misses {:.1}x",
            ratio(big.instructions, small.instructions),
            ratio(big.last_level_misses, small.last_level_misses)
        );
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        // The process valgrind runs: exit without dropping the state (not part of a run).
        Some("child") => {
            let n = args[1].parse().unwrap();
            black_box(prepare_and_run(n, &args[2], args[3] == "1"));
            std::process::exit(0);
        }
        _ if args.iter().any(|a| a == "--bench") => {
            if let Err(e) = measure() {
                eprintln!("instructions: {e}");
                std::process::exit(1);
            }
        }
        // `cargo test --benches`: one small run of each case, nothing counted.
        _ => {
            assert_eq!(prepare_and_run(1_000, "first_sync", true), 1_000);
            assert_eq!(prepare_and_run(1_000, "resync", true), 0);
            let summary = "==7== I   refs:      53,777,648\n==7== LL misses:        169,378  (     6,124 rd   +    163,254 wr)\n";
            assert_eq!(count_after(summary, "I refs:"), Some(53_777_648));
            assert_eq!(count_after(summary, "LL misses:"), Some(169_378));
            println!("instructions: one run of each case works; `cargo bench` counts them");
        }
    }
}
