//! The test servers: their URLs, and a store on each.

use store_sqlx::SqlxStore;

/// The URL of a test server, from the variable `scripts/databases.sh start` prints.
#[allow(clippy::disallowed_methods)] // the test servers are found through the environment
pub(crate) fn url(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!(
            "{variable} is not set: start the test servers with `eval \"$(scripts/databases.sh start)\"` \
             (scripts/test.sh does it), then run the tests in that shell"
        )
    })
}

pub(crate) async fn store(variable: &str) -> SqlxStore {
    let url = url(variable);
    SqlxStore::connect(&url).await.unwrap_or_else(|e| {
        panic!(
            "cannot open the test database of {variable} ({e}): is it running? \
             `eval \"$(scripts/databases.sh start)\"` starts it"
        )
    })
}

pub(crate) const POSTGRES: &str = "SPONSORSHIP_TEST_POSTGRES_URL";
pub(crate) const MYSQL: &str = "SPONSORSHIP_TEST_MYSQL_URL";
