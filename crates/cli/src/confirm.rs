//! Confirmation before a command replaces something that reached the cloud or a stored
//! secret: `--yes` answers for the operator; on a terminal the operator is asked; otherwise the
//! command is refused and nothing changes.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use crate::output::{CliError, Out};

/// A question the command must have answered before it writes; returned from inside a write
/// transaction, which then rolls back.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Needed(pub(crate) String);

/// Runs `attempt(confirmed)`: with `--yes` confirmed at once; when it returns [`Needed`], asks
/// (or refuses) and, once confirmed, runs it again.
pub(crate) fn confirmed<T>(
    out: Out,
    mut attempt: impl FnMut(bool) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    match attempt(out.yes) {
        Err(e) => match e.downcast::<Needed>() {
            Ok(Needed(question)) => {
                ask(out, &question)?;
                attempt(true)
            }
            Err(e) => Err(e),
        },
        done => done,
    }
}

/// Asks `question` (it ends with `?`) on the terminal; off a terminal, or with `--json`, the
/// answer must come from `--yes`.
fn ask(out: Out, question: &str) -> Result<(), CliError> {
    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if out.json || !terminal {
        return Err(CliError::invalid(format!(
            "{question} Not confirmed: nothing changed; run it again with --yes to confirm"
        )));
    }
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "{question} [y/N] ");
    let _ = stderr.flush();
    drop(stderr);
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::failure("cancelled", format!("reading the answer: {e}")))?;
    if matches!(answer.trim().to_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(CliError::failure(
            "cancelled",
            "Cancelled: nothing changed.",
        ))
    }
}
