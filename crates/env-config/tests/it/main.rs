//! Integration tests of env-config: properties of the document, golden Setup files, checks,
//! and the file system behaviour of open/save.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod checks;
mod files;
mod golden;
mod properties;

use std::path::PathBuf;

/// Path of a fixture file.
pub(crate) fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}
