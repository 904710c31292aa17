//! The core's conformance kit against the SQLite store.

use sponsorship_core::conformance;
use store_sqlite::SqliteStore;
use store_sqlite::rusqlite::Connection;

#[tokio::test]
async fn a_file_store_passes_the_kit() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
    conformance::run_all(&store).await;
    conformance::check_billing_connections(&store).await;
}

#[tokio::test]
async fn a_store_on_a_hosts_connection_passes_the_kit() {
    let store =
        SqliteStore::from_connection(Connection::open_in_memory().unwrap(), "memory").unwrap();
    conformance::run_all(&store).await;
    conformance::check_billing_connections(&store).await;
}
