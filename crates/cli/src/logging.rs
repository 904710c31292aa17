//! Logging on stderr: plain off a terminal, coloured on one (unless `NO_COLOR`), journald's
//! priority prefixes when systemd connects stderr to the journal.

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Logs go to stderr. `SPONSORCTL_LOG` (else `RUST_LOG`) sets the filter, in `tracing`'s
/// syntax; otherwise `-v`/`-vv` raise our crates' level. In `--json` mode without `-v` or a
/// filter, stderr carries the JSON error alone. Colour only when stderr is a terminal and
/// `NO_COLOR` is not set.
#[allow(clippy::disallowed_methods)] // the binary is the one place that reads the environment
pub(crate) fn init(verbose: u8, json: bool) {
    use std::io::IsTerminal;
    let from_env = ["SPONSORCTL_LOG", "RUST_LOG"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()));
    let filter = from_env.unwrap_or_else(|| {
        if json && verbose == 0 {
            return "off".to_owned();
        }
        let ours = match verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        };
        // Only our crates get more verbose: HTTP internals stay at warn whatever -v says.
        format!(
            "warn,sponsorctl={ours},sponsorship_core={ours},cloud_client={ours},env_config={ours},store_sqlite={ours},cloud_emulator={ours}"
        )
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    if stderr_is_the_journal() {
        let _ = builder
            .with_ansi(false)
            .event_format(JournalLine)
            .try_init();
        return;
    }
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = builder
        .with_ansi(colour)
        .with_target(verbose >= 2)
        .try_init();
}

/// Whether stderr is the journal stream systemd connected (`JOURNAL_STREAM` names its device
/// and inode, see systemd.exec(5)); a child that inherited the variable but writes elsewhere
/// (a pipe, a file) is not.
#[allow(clippy::disallowed_methods)] // the binary is the one place that reads the environment
fn stderr_is_the_journal() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let Some(stream) = std::env::var("JOURNAL_STREAM").ok() else {
        return false;
    };
    let Some((dev, ino)) = stream.split_once(':') else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

/// One log line as journald reads a service's stderr: a `<N>` syslog priority prefix
/// (sd-daemon(3)) so that `journalctl -p warning` filters, then the message and its fields; no
/// timestamp (journald adds its own) and no colour.
struct JournalLine;

impl<S, N> FormatEvent<S, N> for JournalLine
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let priority = match *event.metadata().level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            _ => 7,
        };
        write!(writer, "<{priority}>")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
