//! What the root benchmarks share besides `tests/it/cli_bin.rs`.

/// The sizes a benchmark runs: `SPONSOR_BENCH_SIZES` (comma-separated, `_` allowed; a bench
/// knob, not library configuration), else `under_bench` when `cargo bench` runs it (it passes
/// `--bench`), else `1000`: in test mode (`cargo test --benches` or `--all-targets`) one small
/// size proves the bench runs.
#[allow(clippy::disallowed_methods)]
pub(crate) fn bench_sizes(under_bench: &str) -> Vec<usize> {
    let default = if std::env::args().any(|a| a == "--bench") {
        under_bench
    } else {
        "1000"
    };
    std::env::var("SPONSOR_BENCH_SIZES")
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .filter_map(|s| s.trim().replace('_', "").parse().ok())
        .collect()
}

/// An older `sponsorctl` to time beside this build (`SPONSOR_BENCH_BEFORE`), if any.
#[allow(clippy::disallowed_methods, dead_code)] // a bench knob, like the sizes; e2e only
pub(crate) fn before_binary() -> Option<std::path::PathBuf> {
    std::env::var_os("SPONSOR_BENCH_BEFORE").map(std::path::PathBuf::from)
}
