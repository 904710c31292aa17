//! Integration tests of store-sqlx on real servers: the whole conformance kit on PostgreSQL
//! and on MariaDB, and what only a server database adds (many replicas taking one lock).
//!
//! The servers come from `scripts/databases.sh` (`scripts/test.sh` starts them); a test that
//! cannot reach its server fails and says how to start it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod conformance;
mod connections;
mod host;
mod servers;
