//! Input files read by the import commands.

use std::path::Path;

use crate::output::CliError;

pub(crate) fn read_lines(file: &Path) -> anyhow::Result<Vec<(usize, String)>> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::invalid(format!("cannot read {}: {e}", file.display())))?;
    Ok(text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim().to_owned()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .collect())
}

/// Reads a small text file: refuses anything but a regular file (a FIFO would block) and
/// anything longer than `limit` bytes.
pub(crate) fn read_text(file: &Path, limit: u64) -> std::io::Result<String> {
    use std::io::Read as _;
    let meta = std::fs::metadata(file)?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut text = String::new();
    std::fs::File::open(file)?
        .take(limit + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(text)
}
