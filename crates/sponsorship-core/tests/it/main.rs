//! Integration tests of sponsorship-core: lifecycle rules, both sides of the sync, properties.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod conformance;
mod fixtures;
mod licenses;
mod props;
mod rules;
mod sync_flow;
mod walks;
mod wire_json;
