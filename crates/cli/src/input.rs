//! Input files (imports, the token file, licenses, trust keys): only regular files, each with a
//! size limit, so that a FIFO, a device or a huge file is an error instead of a hang.

use std::path::Path;

use crate::output::CliError;

/// The largest import file (`member import`, `sponsorship import`): 16 MiB, about 200,000 lines.
pub(crate) const IMPORT_LIMIT: u64 = 16 * 1024 * 1024;
/// The largest token file: a billing sync token is 30 characters.
pub(crate) const TOKEN_LIMIT: u64 = 4 * 1024;
/// The largest license file or trust key.
pub(crate) const LICENSE_LIMIT: u64 = 1024 * 1024;

/// The non-empty, non-comment lines of an import file, trimmed, with their line numbers.
pub(crate) fn read_lines(file: &Path) -> Result<Vec<(usize, String)>, CliError> {
    let text = read_text(file, IMPORT_LIMIT, "the import file")?;
    Ok(text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim().to_owned()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .collect())
}

/// Reads `what` (for the error: "the token file") from `file`: refuses anything but a regular
/// file (a FIFO would block, a device never end), more than `limit` bytes, and text that is not
/// UTF-8, each with a usage error that names the file.
pub(crate) fn read_text(file: &Path, limit: u64, what: &str) -> Result<String, CliError> {
    use std::io::Read as _;
    use std::os::unix::fs::FileTypeExt as _;
    let fail =
        |why: String| CliError::invalid(format!("cannot read {what} {}: {why}", file.display()));
    let meta = std::fs::metadata(file).map_err(|e| fail(e.to_string()))?;
    let kind = meta.file_type();
    let special = if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_socket() {
        Some("a socket")
    } else if kind.is_char_device() || kind.is_block_device() {
        Some("a device")
    } else {
        None
    };
    if let Some(special) = special {
        return Err(fail(format!("it is {special}, not a regular file")));
    }
    if meta.len() > limit {
        return Err(fail(format!("it is larger than {limit} bytes")));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > limit {
        return Err(fail(format!("it is larger than {limit} bytes")));
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = std::str::from_utf8(valid).map_or(1, |t| t.matches('\n').count() + 1);
        fail(format!("line {line} is not UTF-8 text"))
    })
}

/// A name an operator gives (an organization's, a sponsorship's friendly name): trimmed, not
/// empty, at most `max` characters, and free of control characters, which would reach
/// terminals and pages (an escape sequence can clear a screen or forge a line).
pub(crate) fn name<'a>(text: &'a str, what: &str, max: usize) -> Result<&'a str, CliError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(CliError::invalid(format!("{what} is empty: give a name")));
    }
    if let Some((at, c)) = text.chars().enumerate().find(|(_, c)| c.is_control()) {
        return Err(CliError::invalid(format!(
            "{what} contains a control character (U+{:04X} at character {}): names are shown on terminals and pages; remove it",
            u32::from(c),
            at + 1
        )));
    }
    let count = text.chars().count();
    if count > max {
        return Err(CliError::invalid(format!(
            "{what} is {count} characters long; at most {max} are allowed"
        )));
    }
    Ok(text)
}
