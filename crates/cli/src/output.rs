//! Errors with a category and an exit code, and the two output modes (human, `--json`).

use std::fmt;
use std::io::Write;

use serde::Serialize;
use sponsorship_core::schedule::ErrorCategory;

/// Exit codes.
pub(crate) mod exit {
    /// Success.
    pub(crate) const OK: u8 = 0;
    /// The command failed.
    pub(crate) const FAILURE: u8 = 1;
    /// The command line or its input is wrong.
    pub(crate) const USAGE: u8 = 2;
    /// The sync completed but the cloud skipped items.
    pub(crate) const SKIPPED: u8 = 3;
    /// `status --check`: the last sync of an organization failed.
    pub(crate) const LAST_SYNC_FAILED: u8 = 4;
    /// Standard output was closed before everything was written (`| head`): 128 + SIGPIPE,
    /// what a tool killed by SIGPIPE reports.
    pub(crate) const CLOSED_PIPE: u8 = 141;
}

/// An error the CLI reports with a category (the JSON `category`) and an exit code.
#[derive(Debug)]
pub(crate) struct CliError {
    /// Stable kebab-case category.
    pub(crate) category: &'static str,
    /// What is wrong and what to do.
    pub(crate) message: String,
    /// Process exit code.
    pub(crate) exit: u8,
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl CliError {
    /// Bad input the user typed (exit 2).
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self {
            category: "invalid-input",
            message: message.into(),
            exit: exit::USAGE,
        }
    }

    /// Something named does not exist (exit 2: the input names it).
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self {
            category: "not-found",
            message: message.into(),
            exit: exit::USAGE,
        }
    }

    /// A rule of the domain refuses the request (exit 2: the request is what must change).
    pub(crate) fn refused(message: impl Into<String>) -> Self {
        Self {
            category: "refused",
            message: message.into(),
            exit: exit::USAGE,
        }
    }

    /// A failure of a sync-related category (exit 1).
    pub(crate) fn of(category: ErrorCategory, message: impl Into<String>) -> Self {
        Self {
            category: category.name(),
            message: message.into(),
            exit: exit::FAILURE,
        }
    }

    /// A failure with a CLI-specific category (exit 1).
    pub(crate) fn failure(category: &'static str, message: impl Into<String>) -> Self {
        Self {
            category,
            message: message.into(),
            exit: exit::FAILURE,
        }
    }
}

/// Shorthand for returning a [`CliError`].
pub(crate) fn bail<T>(e: CliError) -> anyhow::Result<T> {
    Err(e.into())
}

/// Maps any error to (category, message, exit code).
pub(crate) fn classify(err: &anyhow::Error) -> (&'static str, String, u8) {
    if let Some(e) = err.downcast_ref::<CliError>() {
        return (e.category, e.message.clone(), e.exit);
    }
    if err.downcast_ref::<store_sqlite::Error>().is_some()
        || err.downcast_ref::<store_sqlx::Error>().is_some()
        || err.downcast_ref::<crate::state::StateError>().is_some()
    {
        return ("store", said_once(err), exit::FAILURE);
    }
    ("failure", said_once(err), exit::FAILURE)
}

/// An error and its causes, each said once: a cause whose text an outer message already
/// contains (many errors name their source in their own message) is not repeated, nor one that
/// only restates the cause before it (SQLite's "Error code 26: file is not a database").
pub(crate) fn said_once(err: &anyhow::Error) -> String {
    let mut text = String::new();
    let mut previous = String::new();
    for cause in err.chain() {
        let cause = cause.to_string();
        let restated = !previous.is_empty() && cause.contains(&previous);
        if !text.contains(&cause) && !restated {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
        previous = cause;
    }
    text
}

/// Prints an error on stderr in the selected mode.
pub(crate) fn print_error(json: bool, err: &anyhow::Error) -> u8 {
    let (category, message, code) = classify(err);
    let mut stderr = std::io::stderr().lock();
    if json {
        let v = serde_json::json!({"error": {"category": category, "message": message}});
        let _ = writeln!(stderr, "{v}");
    } else {
        let _ = writeln!(stderr, "error: {message}");
    }
    code
}

/// How a command talks to the operator: its output mode and its confirmations.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Out {
    /// `--json`.
    pub(crate) json: bool,
    /// `--yes`: confirmations are answered yes (see `confirm`).
    pub(crate) yes: bool,
}

/// Prints a value as pretty JSON on stdout.
pub(crate) fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    println!("{text}");
    Ok(())
}

/// Formats rows as an aligned table with a header.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut push = |cells: &mut dyn Iterator<Item = &str>| {
        let mut line = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths[i].saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    push(&mut headers.iter().copied());
    for row in rows {
        push(&mut row.iter().map(String::as_str));
    }
    out
}

/// `word` as one shell word, so that a suggested command pastes: as it is when it has only
/// characters no shell treats specially, otherwise in single quotes.
pub(crate) fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@+:,/=".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["A", "LONG"],
            &[
                vec!["xyz".into(), "1".into()],
                vec!["q".into(), "22".into()],
            ],
        );
        assert_eq!(t, "A    LONG\nxyz  1\nq    22\n");
    }

    #[test]
    fn shell_words_paste() {
        assert_eq!(shell_word("Acme"), "Acme");
        assert_eq!(shell_word("Big Co"), "'Big Co'");
        assert_eq!(shell_word("O'Brien & Sons"), r"'O'\''Brien & Sons'");
        assert_eq!(shell_word(""), "''");
    }
}
