//! Who holds a sync lock, and whether that process still runs.
//!
//! A `sponsorctl sync` killed with SIGKILL cannot release its lock; the lock's expiry (10
//! minutes, renewed per batch) would then block the next sync for that long. The holder string
//! names the process (`sponsorctl pid N on HOST (start T)`, T being the process start time in
//! clock ticks since boot, from `/proc/<pid>/stat`), so a lock whose holder ran on this host and no
//! longer exists (or whose pid now belongs to a process started at another time) can be taken
//! over at once. A holder on another host, or one that cannot be judged, is respected until the
//! lock expires.

use std::path::Path;

/// This process as a lock holder.
pub(crate) fn holder() -> String {
    let pid = std::process::id();
    let start = start_ticks(pid).unwrap_or_default();
    format!("sponsorctl pid {pid} on {} (start {start})", hostname())
}

/// True when `holder` names a process of this host that no longer runs.
pub(crate) fn holder_is_gone(holder: &str) -> bool {
    holder_is_gone_in(holder, &hostname(), Path::new("/proc"))
}

fn holder_is_gone_in(holder: &str, this_host: &str, proc_root: &Path) -> bool {
    let Some((pid, host, start)) = parse_holder(holder) else {
        return false;
    };
    if host != this_host {
        return false;
    }
    match std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")) {
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        Ok(contents) => parse_start(&contents).is_some_and(|now| now != start),
    }
}

fn parse_holder(holder: &str) -> Option<(u32, &str, u64)> {
    let rest = holder.strip_prefix("sponsorctl pid ")?;
    let (pid, rest) = rest.split_once(" on ")?;
    let (host, rest) = rest.rsplit_once(" (start ")?;
    let start = rest.strip_suffix(')')?;
    Some((pid.parse().ok()?, host, start.parse().ok()?))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "unknown-host".to_owned(), |h| h.trim().to_owned())
}

fn start_ticks(pid: u32) -> Option<u64> {
    parse_start(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Field 22 of `/proc/<pid>/stat` (the process start time); the command name in field 2 may
/// contain spaces and parentheses, so count from the last `)`.
fn parse_start(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_parses_back() {
        let me = holder();
        let (pid, host, _) = parse_holder(&me).unwrap();
        assert_eq!(pid, std::process::id());
        assert_eq!(host, hostname());
        assert!(!holder_is_gone(&me));
    }

    #[test]
    fn dead_reused_and_foreign_holders() {
        let dir = tempfile::tempdir().unwrap();
        let stat = |start: u64| {
            format!(
                "42 (odd (name) x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 {start} 20 21"
            )
        };
        assert_eq!(parse_start(&stat(777)), Some(777));
        std::fs::create_dir(dir.path().join("42")).unwrap();
        std::fs::write(dir.path().join("42/stat"), stat(777)).unwrap();
        let root = dir.path();
        // Same pid, same start: alive.
        assert!(!holder_is_gone_in(
            "sponsorctl pid 42 on h (start 777)",
            "h",
            root
        ));
        // Same pid, other start: the pid was reused, the holder is gone.
        assert!(holder_is_gone_in(
            "sponsorctl pid 42 on h (start 1)",
            "h",
            root
        ));
        // No such process: gone.
        assert!(holder_is_gone_in(
            "sponsorctl pid 43 on h (start 1)",
            "h",
            root
        ));
        // Another host, or a holder we cannot read: respected.
        assert!(!holder_is_gone_in(
            "sponsorctl pid 43 on other (start 1)",
            "h",
            root
        ));
        assert!(!holder_is_gone_in("someone else", "h", root));
    }
}
