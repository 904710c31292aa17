//! The emulator's error type.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the emulator could not start, load its seed or save its data file. Never contains a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The seed JSON is invalid. `path` names the offending field (such as
    /// `organizations[0].planType`); fix that field, or remove it when it is unknown.
    #[error("invalid seed at {path}: {message}")]
    Seed {
        /// Where in the document (`.` when the document itself is wrong).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read or written: check that the path exists and is accessible.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// `read`, `write`, …
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The data file exists but does not hold a state this emulator wrote: delete it to start
    /// again from the seed.
    #[error("the data file {path} is not a valid emulator state: {message}")]
    DataFile {
        /// The file.
        path: PathBuf,
        /// What is wrong (no secret values).
        message: String,
    },
    /// The listening socket could not be bound: pick another address or port, or stop what
    /// holds it.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The server task ended with an error; start a new emulator.
    #[error("the emulator server failed: {0}")]
    Server(String),
}
