//! The repository keeps its promises to a newcomer: the README names exactly the two set-up
//! commands, and CI runs the same test command.
use std::path::Path;

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn readme_has_the_main_job_and_the_test_command() {
    let readme = read("README.md");
    let setup = readme
        .split("## Set up")
        .nth(1)
        .and_then(|s| s.split("```sh").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("README has a `## Set up` section with a sh block");
    let commands: Vec<&str> = setup
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        commands,
        vec![
            "cargo run --release -p sponsorship-cli -- demo",
            "scripts/test.sh"
        ]
    );
}

#[test]
fn ci_runs_the_readme_test_command_and_the_static_checks() {
    let ci = read(".ci/run");
    for needed in [
        "scripts/test.sh",
        "cargo fmt --all -- --check",
        "cargo clippy --workspace --all-targets",
        "-D warnings",
        "cargo doc --workspace --no-deps",
    ] {
        assert!(ci.contains(needed), ".ci/run lacks {needed:?}");
    }
    assert!(read("scripts/test.sh").contains("cargo test --workspace"));
}
