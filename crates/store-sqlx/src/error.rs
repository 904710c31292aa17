//! The store's error.

/// The store failed. Messages name the database by its URL without the password, never a
/// stored secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL names no backend this build supports.
    #[error(
        "{url}: not a database URL this store knows: give postgres://USER@HOST/DB or mysql://USER@HOST/DB{}",
        if .compiled.is_empty() { String::new() } else { format!(" (this build supports {})", .compiled) }
    )]
    UnsupportedUrl {
        /// The URL, without its password.
        url: String,
        /// The backends compiled in (the cargo features `postgres`, `mysql`).
        compiled: &'static str,
    },
    /// The database cannot be reached or refused the login: check that the server runs, the
    /// host and port, the user and the password.
    #[error("cannot connect to {database}: {source}")]
    Connect {
        /// The database, without its password.
        database: String,
        /// The driver's error.
        #[source]
        source: sqlx_core::Error,
    },
    /// A query failed (connection lost, deadlock, a constraint): the transaction was rolled
    /// back, so nothing of it is stored.
    #[error("database {database}: {source}")]
    Query {
        /// The database, without its password.
        database: String,
        /// The driver's error.
        #[source]
        source: sqlx_core::Error,
    },
    /// Applying the schema migrations failed (each one runs in its own transaction where the
    /// backend allows it).
    #[error("database {database}: upgrading its schema failed: {source}")]
    Migrate {
        /// The database, without its password.
        database: String,
        /// The migrator's error.
        #[source]
        source: sqlx_core::migrate::MigrateError,
    },
    /// A stored value does not parse (edited by hand, or written by a newer release).
    #[error("database {database}: {message}")]
    Corrupt {
        /// The database, without its password.
        database: String,
        /// What is wrong.
        message: String,
    },
}
