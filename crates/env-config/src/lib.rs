//! # env-config
//!
//! Safe, checkable editing of Bitwarden's `bwdata/env/global.override.env`: step 1 of setting
//! up billing sync on a self-hosted server.
//!
//! What it is:
//!
//! - **A lossless document** ([`EnvFile`]). It parses the dialect Bitwarden Setup writes and
//!   docker compose reads (comments, blank lines, `KEY=VALUE`, quoted values, `export `,
//!   CRLF, a UTF-8 BOM, a last line without newline). Rendering an unedited document gives the
//!   input back byte for byte; [`EnvFile::set`] and [`EnvFile::remove`] touch only their line;
//!   a new key is appended with the file's line ending. Duplicate keys, and keys that differ
//!   only in case (the server's configuration binder ignores case), are reported by the checks
//!   and never merged; editing one is refused with [`Error::AmbiguousKey`].
//! - **Typed settings** ([`EnvFile::settings`] → [`CloudSettings`]): the effective
//!   cloud-communication settings with the server's defaults, treating blank, `SECRET` and
//!   `REPLACE` as unset. [`EnvFile::enable_cloud_communication`] writes the keys Bitwarden's
//!   documentation lists for a [`CloudRegion`], the way Setup writes values.
//! - **Checks** ([`EnvFile::checks`] → [`Finding`]) with stable codes ([`CheckCode::as_str`]),
//!   a severity, a line and a fix hint, for the operators' usual mistakes: EU region with US
//!   URLs, swapped installation id and key, placeholders left in, booleans the server
//!   refuses, world-readable files ([`check_file_mode`]). No message contains a secret.
//! - **Atomic writes** ([`EnvFile::save`]): temporary file in the same directory, fsync,
//!   rename; mode and owner kept; new files 0600; symbolic links refused; optional backup; an
//!   edit that changes nothing does not touch the file; [`EnvFile::diff`] shows the change
//!   first. A process killed at the instant of the rename can leave a hidden temporary file
//!   (0600) beside the file; the next save removes it ([`STALE_TEMPORARY_AGE`]).
//!
//! What it is not: a loader (it never sets process variables), nor a general `.env` library.
//! Multi-line quoted values, which Setup never writes, are read as single lines (and reported).
//!
//! After saving, tell the operator to run `./bitwarden.sh restart`: compose re-reads the file
//! then. A later `rebuild`, `update` or `updateconf` makes Setup rewrite the file: it keeps the
//! values but drops comments and blank lines.
//!
//! # Example: enabling the EU region end to end
//!
//! ```
//! use env_config::{CheckCode, EnvFile, Severity};
//! use sponsorship_core::region::CloudRegion;
//!
//! // A file as Bitwarden Setup writes it for an EU installation (abridged).
//! let setup = "\
//! globalSettings__baseServiceUri__vault=https://vault.acme.example
//! globalSettings__baseServiceUri__cloudRegion=EU
//! globalSettings__installation__id=0b8e3f2a-6c1d-4e5f-9a7b-2c3d4e5f6a7b
//! globalSettings__installation__key=Q3rT7yU1iO5pA9sD2fG6
//! globalSettings__mail__smtp__host=REPLACE
//! ";
//! let mut file = EnvFile::parse(setup)?;
//! assert_eq!(file.render(), setup); // lossless
//!
//! // Before: region EU, but the identity and API URLs default to the US cloud.
//! let before = file.checks();
//! assert!(before.iter().any(|f| f.code == CheckCode::RegionUriMismatch));
//!
//! // Enable cloud communication for the EU region.
//! let summary = file.enable_cloud_communication(&CloudRegion::Eu)?;
//! assert_eq!(summary.changed_keys.len(), 4); // cloudRegion was already EU
//!
//! // Show the change before writing. The installation key's value is hidden.
//! let diff = file.diff();
//! println!("{diff}");
//! assert!(diff.contains("+globalSettings__installation__apiUri=https://api.bitwarden.eu"));
//! assert!(diff.contains("+globalSettings__pushRelayBaseUri=https://push.bitwarden.eu"));
//! assert!(!diff.contains("Q3rT7yU1iO5pA9sD2fG6"));
//!
//! // After: no errors or warnings left.
//! let after = file.checks();
//! assert!(after.iter().all(|f| f.severity == Severity::Info), "{after:?}");
//! let settings = file.settings();
//! assert!(settings.cloud_communication);
//! assert_eq!(settings.region, Some(CloudRegion::Eu));
//! assert_eq!(settings.api_uri.url.as_str(), "https://api.bitwarden.eu/");
//!
//! // Writing: `EnvFile::open(path)`, the same edit, then `file.save(&WriteOptions::new())`.
//! # Ok::<(), env_config::Error>(())
//! ```
//!
//! # API at a glance
//!
//! | call | does |
//! |---|---|
//! | [`EnvFile::open`] / [`EnvFile::open_or_new`] / [`EnvFile::parse`] | read a document |
//! | [`EnvFile::get`], [`EnvFile::entry`], [`EnvFile::entries`], [`EnvFile::occurrences`] | read keys |
//! | [`EnvFile::set`], [`EnvFile::remove`] | edit one line |
//! | [`EnvFile::settings`], [`EnvFile::enable_cloud_communication`] | Bitwarden settings |
//! | [`EnvFile::checks`], [`check_file_mode`], [`check_across_files`] | findings |
//! | [`EnvFile::diff`], [`EnvFile::render`], [`EnvFile::is_modified`] | before writing |
//! | [`EnvFile::save`] with [`WriteOptions`] → [`SaveOutcome`] | write atomically |
//!
//! # Limits
//!
//! Files larger than [`MAX_FILE_BYTES`] (16 MiB) are refused with [`Error::TooLarge`]; at most
//! that many bytes are ever read.
//!
//! Parsing keeps the file in one owned buffer and one vector of small line records (byte
//! offsets of the line, its key and its value); nothing is allocated per line. An edit appends
//! the new line text to the same buffer. Measured with `valgrind` on the `alloc_probe` example
//! (open, enable EU, render): 42 heap allocations for a 40-line file and 42 for a
//! 10,000-line file.
//!
//! # Bitwarden Lite
//!
//! A Lite `settings.env` ([`EnvFile::is_lite`]) takes the installation id and key from
//! `BW_INSTALLATION_ID`/`BW_INSTALLATION_KEY`, because its entrypoint exports them over
//! `globalSettings__installation__*`; [`EnvFile::settings`] and the checks follow that rule.

mod checks;
mod diff;
mod document;
mod error;
mod file;
mod settings;

pub use checks::{CheckCode, Finding, Severity, check_across_files, check_file_mode};
pub use document::{Entry, LineEnding, Quote};
pub use error::{Error, Result};
pub use file::{EnvFile, MAX_FILE_BYTES, STALE_TEMPORARY_AGE, SaveOutcome, WriteOptions};
pub use settings::{
    CloudSettings, DEFAULT_API_URI, DEFAULT_IDENTITY_URI, DEFAULT_PUSH_RELAY_URI, EnableSummary,
    PushRelay, PushRelayAction, UriSetting, is_placeholder, keys,
};
pub use sponsorship_core::region::CloudRegion;
