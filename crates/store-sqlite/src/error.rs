//! The store's error.

/// The store failed. Messages name the database (its path, or the label a host gave its own
/// connection), never a stored secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// SQLite reported an error (file not writable, disk full, locked for too long): check the
    /// file's permissions and free space, or wait for the other process.
    #[error("state database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored value does not parse (the file was edited by hand or is from a newer release):
    /// restore a backup, or open it with the release that wrote it.
    #[error("state database {path}: {message}")]
    Corrupt {
        /// The database file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The database is another application's (another `application_id`, or tables this store
    /// did not create): nothing was written to it. Point the store at its own file.
    #[error(
        "{path} is not a sponsorship state database ({reason}); nothing was written to it: give the path of this tool's own state file, or of a new one"
    )]
    NotOurs {
        /// The database file.
        path: String,
        /// What gave it away.
        reason: String,
    },
    /// A migration failed (its transaction rolled back: the file is as it was). The message
    /// says why in SQLite's words, never the migration's SQL text.
    #[error(
        "state database {path}: upgrading its schema to version {version} failed: {reason}; nothing was changed: check that the file is this tool's own and not damaged (or restore a backup)"
    )]
    Migration {
        /// The database file.
        path: String,
        /// The schema version the failed migration leads to.
        version: usize,
        /// SQLite's reason, without the SQL text.
        reason: String,
    },
    /// The file could not be created: check that its directory exists and is writable.
    #[error("cannot create the state database {path}: {source}")]
    Create {
        /// The database file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A failed migration to `version`: SQLite's reason without the statement's text (an
    /// input error's `Display` quotes the whole migration).
    pub(crate) fn migration(path: &str, version: usize, source: &rusqlite::Error) -> Self {
        let reason = match source {
            rusqlite::Error::SqlInputError { msg, offset, .. } => {
                format!("{msg} (at byte {offset} of the migration)")
            }
            other => other.to_string(),
        };
        Self::Migration {
            path: path.to_owned(),
            version,
            reason,
        }
    }

    /// Maps a rusqlite error of the database named `path`: a value that does not convert is
    /// [`Error::Corrupt`], anything else [`Error::Sqlite`].
    pub(crate) fn of(path: &str, source: rusqlite::Error) -> Self {
        match source {
            rusqlite::Error::FromSqlConversionFailure(_, _, e) => Self::Corrupt {
                path: path.to_owned(),
                message: e.to_string(),
            },
            source => Self::Sqlite {
                path: path.to_owned(),
                source,
            },
        }
    }
}
