//! Cross-crate proof: repository promises, the fault matrix, crash safety, concurrency and load.
//! One test binary; each concern is a module.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::too_many_lines,
    missing_docs,
    unreachable_pub
)]

mod cli_bin;
mod crash;
mod faults;
mod host_pages;
mod host_server;
mod host_support;
mod load;
mod replica_support;
mod replicas;
mod repository;
mod support;
