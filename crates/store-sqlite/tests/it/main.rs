//! Integration tests of store-sqlite: the conformance kit on a file and on a host's
//! connection, and what only this store promises (rollback of a failed batch, member order,
//! lock takeover of a gone holder, the connection and standalone tables).
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod conformance;
mod sqlite;
