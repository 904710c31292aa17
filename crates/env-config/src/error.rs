//! The crate's one error type.

use std::io;
use std::path::{Path, PathBuf};

/// What went wrong reading, editing or writing an env file.
///
/// Every variant names the file (and the line where there is one) and says what the operator can
/// do. None ever contains a value read from the file: values may be secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file does not exist. Check the path: Bitwarden keeps it at
    /// `bwdata/env/global.override.env`; [`crate::EnvFile::open_or_new`] starts an empty one.
    #[error(
        "{}: no such file: check the path (Bitwarden keeps it at bwdata/env/global.override.env)",
        .path.display()
    )]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The path is a directory. Give the path of the env file inside it.
    #[error(
        "{}: is a directory, not an env file: give the path of global.override.env inside it",
        .path.display()
    )]
    IsDirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The path is not a regular file (a FIFO, a socket, a device): reading it could block or
    /// never end. Give the path of the env file itself.
    #[error(
        "{}: is a {kind}, not a regular file: give the path of the env file (global.override.env)",
        .path.display()
    )]
    NotARegularFile {
        /// The path given (a link's target when a link was followed).
        path: PathBuf,
        /// What it is instead: `FIFO`, `socket`, `device`.
        kind: &'static str,
    },
    /// The file read (a symbolic link is followed to its target when the file is opened)
    /// became a symbolic link before it was saved: replacing it would replace the link, so it
    /// is refused. Open the file again.
    #[error(
        "{}: became a symbolic link to {} after it was read: refusing to replace the link; open it again",
        .path.display(), .target.display()
    )]
    Symlink {
        /// The link.
        path: PathBuf,
        /// What the link points to (as stored in the link).
        target: PathBuf,
    },
    /// The file belongs to another user or group than this process can give the new file:
    /// writing it would change its owner, and the server's user could lose access to it. Run
    /// the command as the file's owner (or root).
    #[error(
        "{}: is owned by uid {uid} gid {gid}, which this process cannot give the new file: writing it would change its owner; run as that user (or root)",
        .path.display()
    )]
    OwnerNotKept {
        /// The file.
        path: PathBuf,
        /// Its owner.
        uid: u32,
        /// Its group.
        gid: u32,
    },
    /// An extended attribute (a POSIX ACL lives in one) of the file could not be kept on the
    /// new file: nothing was replaced. Run the command as the file's owner (or root).
    #[error(
        "{}: cannot keep its extended attribute {name} ({reason}); nothing was replaced: run as the file's owner (or root)",
        .path.display()
    )]
    AttributeNotKept {
        /// The file.
        path: PathBuf,
        /// The attribute.
        name: String,
        /// Why.
        reason: String,
    },
    /// The file is not UTF-8. Env files hold ASCII keys and values: re-save it as UTF-8.
    #[error(
        "{}: line {line}, byte {column}: not valid UTF-8: re-save the file as UTF-8 (env files hold ASCII keys and values)",
        .path.display()
    )]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// 1-based line of the first invalid byte.
        line: usize,
        /// 1-based byte offset of that byte within its line.
        column: usize,
    },
    /// The file is larger than [`crate::MAX_FILE_BYTES`]: it is almost certainly not an env
    /// file. Check the path.
    #[error(
        "{}: is larger than the {limit}-byte limit for an env file ({size} bytes or more): check that this is the right file",
        .path.display()
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size (or the number of bytes read before giving up).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The operating system refused access. Run as the file's owner (the `bitwarden` user) or
    /// with sudo.
    #[error(
        "{}: permission denied while {action}: run as the file's owner (the bitwarden user) or with sudo",
        .path.display()
    )]
    PermissionDenied {
        /// The file (or its directory).
        path: PathBuf,
        /// What was being done ("reading", "writing", ...).
        action: &'static str,
    },
    /// Any other I/O failure. The original file is unchanged; the message says what failed.
    #[error("{}: {action} failed: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A key that is not a valid environment variable name. Use letters, digits and `_`, not
    /// starting with a digit.
    #[error(
        "{}: {key:?} is not a valid environment variable name ({reason}): use A-Z, a-z, 0-9 and _, not starting with a digit",
        .path.display()
    )]
    InvalidKey {
        /// The file being edited.
        path: PathBuf,
        /// The key given (at most 64 characters of it).
        key: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A value that Bitwarden Setup and docker compose would read differently (or not at
    /// all). It is not written; the value itself is not shown because it may be a secret.
    #[error(
        "{}: the value for {key} {reason}: Setup and docker compose read such values differently, so it is not written",
        .path.display()
    )]
    UnsafeValue {
        /// The file being edited.
        path: PathBuf,
        /// The key.
        key: String,
        /// What is wrong, without the value.
        reason: String,
    },
    /// The key occurs more than once (keys that differ only in case count: the server's
    /// configuration binder ignores case). Remove all but one, then retry.
    #[error(
        "{}: {key} is set on more than one line ({}); keys that differ only in case are the same key for the server: remove all but one, then retry",
        .path.display(), lines_list(.lines)
    )]
    AmbiguousKey {
        /// The file.
        path: PathBuf,
        /// The key asked for.
        key: String,
        /// 1-based lines where it (or a case variant) occurs.
        lines: Vec<usize>,
    },
    /// The file on disk changed after it was read. Nothing was written: open it again and
    /// re-apply the edit.
    #[error(
        "{}: changed on disk since it was read; nothing was written: open it again and re-apply the edit",
        .path.display()
    )]
    ChangedOnDisk {
        /// The file.
        path: PathBuf,
    },
    /// The document was parsed from memory and has no file to save to. Use
    /// [`crate::EnvFile::with_path`] first.
    #[error("{}: this document was not read from a file: give it a path to save to", .path.display())]
    NoPath {
        /// The label the document carries.
        path: PathBuf,
    },
}

fn lines_list(lines: &[usize]) -> String {
    let shown: Vec<String> = lines.iter().map(|l| format!("line {l}")).collect();
    shown.join(", ")
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Maps an I/O error to the most helpful variant.
pub(crate) fn from_io(path: &Path, action: &'static str, source: io::Error) -> Error {
    match source.kind() {
        io::ErrorKind::NotFound => Error::NotFound {
            path: path.to_path_buf(),
        },
        io::ErrorKind::PermissionDenied => Error::PermissionDenied {
            path: path.to_path_buf(),
            action,
        },
        io::ErrorKind::IsADirectory => Error::IsDirectory {
            path: path.to_path_buf(),
        },
        _ => Error::Io {
            path: path.to_path_buf(),
            action,
            source,
        },
    }
}
