//! The conformance kit, on each backend.

use sponsorship_core::conformance;

use crate::servers::{MYSQL, POSTGRES, store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_conformance_kit() {
    let store = store(POSTGRES).await;
    conformance::run_all(&store).await;
    conformance::check_billing_connections(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_passes_the_conformance_kit() {
    let store = store(MYSQL).await;
    conformance::run_all(&store).await;
    conformance::check_billing_connections(&store).await;
}

/// Opening a database again applies nothing and reports the schema this release knows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_is_a_no_op_and_the_schema_version_is_current() {
    for variable in [POSTGRES, MYSQL] {
        let first = store(variable).await;
        let again = store(variable).await;
        let (applied, known) = again.schema_version().await.unwrap();
        assert_eq!(applied, known, "{variable}");
        assert!(known >= 1);
        assert_eq!(first.schema_version().await.unwrap(), (applied, known));
        assert!(
            !first.label().contains("test-"),
            "the password is in {}",
            first.label()
        );
    }
}
