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
