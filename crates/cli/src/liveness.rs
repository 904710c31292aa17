//! Who holds a sync lock, and whether that process still runs.
//!
//! A `sponsorctl sync` killed with SIGKILL cannot release its lock; the lock's expiry (10
//! minutes, renewed per batch) would then block the next sync for that long. The holder string
//! names the process (`sponsorctl pid N on HOST (start T, pidns NS)`, T being the process start
//! time in clock ticks since boot, from `/proc/<pid>/stat`, and NS the inode of its PID namespace,
//! from `/proc/self/ns/pid`), so a lock whose holder ran in this PID namespace on this host and no
//! longer exists (or whose pid now belongs to a process started at another time) can be taken
//! over at once. Only there can liveness be judged: a holder in another PID namespace (a
//! container sharing the host name and the state volume), on another host, or one whose holder
//! string is of another form, is respected until the lock expires.

use std::path::Path;

/// This process as a lock holder.
pub(crate) fn holder() -> String {
    let pid = std::process::id();
    let start = start_ticks(pid).unwrap_or_default();
    format!(
        "sponsorctl pid {pid} on {} (start {start}, pidns {})",
        hostname(),
        pid_namespace().unwrap_or_default()
    )
}

/// True when `holder` names a process of this host that no longer runs.
pub(crate) fn holder_is_gone(holder: &str) -> bool {
    let Some(namespace) = pid_namespace() else {
        return false;
    };
    holder_is_gone_in(holder, &hostname(), namespace, Path::new("/proc"))
}

fn holder_is_gone_in(holder: &str, this_host: &str, this_namespace: u64, proc_root: &Path) -> bool {
    let Some((pid, host, start, namespace)) = parse_holder(holder) else {
        return false;
    };
    // Pids of another namespace mean nothing in this one's /proc.
    if host != this_host || namespace != this_namespace {
        return false;
    }
    match std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")) {
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        Ok(contents) => parse_start(&contents).is_some_and(|now| now != start),
    }
}

fn parse_holder(holder: &str) -> Option<(u32, &str, u64, u64)> {
    let rest = holder.strip_prefix("sponsorctl pid ")?;
    let (pid, rest) = rest.split_once(" on ")?;
    let (host, rest) = rest.rsplit_once(" (start ")?;
    let (start, namespace) = rest.strip_suffix(')')?.split_once(", pidns ")?;
    Some((
        pid.parse().ok()?,
        host,
        start.parse().ok()?,
        namespace.parse().ok()?,
    ))
}

/// The inode of this process's PID namespace (`pid:[4026531836]`).
fn pid_namespace() -> Option<u64> {
    let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let text = link.to_str()?;
    text.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
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
        let (pid, host, _, namespace) = parse_holder(&me).unwrap();
        assert_eq!(pid, std::process::id());
        assert_eq!(host, hostname());
        assert_eq!(Some(namespace), pid_namespace());
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
            "sponsorctl pid 42 on h (start 777, pidns 9)",
            "h",
            9,
            root
        ));
        // Same pid, other start: the pid was reused, the holder is gone.
        assert!(holder_is_gone_in(
            "sponsorctl pid 42 on h (start 1, pidns 9)",
            "h",
            9,
            root
        ));
        // No such process: gone.
        assert!(holder_is_gone_in(
            "sponsorctl pid 43 on h (start 1, pidns 9)",
            "h",
            9,
            root
        ));
        // Another host, or a holder we cannot read: respected.
        assert!(!holder_is_gone_in(
            "sponsorctl pid 43 on other (start 1, pidns 9)",
            "h",
            9,
            root
        ));
        assert!(!holder_is_gone_in("someone else", "h", 9, root));
        // Another PID namespace on this host (a container sharing the host name): respected,
        // though no process 43 exists here.
        assert!(!holder_is_gone_in(
            "sponsorctl pid 43 on h (start 1, pidns 8)",
            "h",
            9,
            root
        ));
        // The form of earlier releases, without the namespace: respected until expiry.
        assert!(!holder_is_gone_in(
            "sponsorctl pid 43 on h (start 1)",
            "h",
            9,
            root
        ));
    }
}
