//! CPU time (user + system) of the harness and of other processes: the
//! figure that stays meaningful on a noisy shared machine, where wall-clock
//! throughput depends on what else runs.
//!
//! The harness reads its own time from CLOCK_PROCESS_CPUTIME_ID
//! (nanoseconds, all threads, including finished ones); other processes
//! are read from `/proc/<pid>/stat` (`utime + stime`, in clock ticks of
//! 1/100 s, the fixed `USER_HZ` of Linux's user ABI).

use std::path::PathBuf;

use rustix::time::{clock_gettime, ClockId};

use crate::error::BenchError;

/// Clock ticks per second in `/proc/<pid>/stat` (Linux's `USER_HZ`).
const USER_HZ: u64 = 100;

/// CPU time of this process so far, nanoseconds.
pub fn self_ns() -> u64 {
    let t = clock_gettime(ClockId::ProcessCPUTime);
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

/// CPU time of process `pid` so far (user + system, all threads),
/// nanoseconds.
///
/// # Errors
/// The process does not exist or its stat file cannot be parsed.
pub fn pid_ns(pid: u32) -> Result<u64, BenchError> {
    let path = PathBuf::from(format!("/proc/{pid}/stat"));
    let text =
        std::fs::read_to_string(&path).map_err(|source| BenchError::Process { pid, source })?;
    parse_stat(&text)
        .map(|ticks| ticks * (1_000_000_000 / USER_HZ))
        .ok_or(BenchError::BadReport {
            path,
            reason: "cannot find utime and stime".into(),
        })
}

/// `utime + stime` in ticks from the text of a `/proc/<pid>/stat` file.
/// The command name (field 2) is in parentheses and may contain spaces,
/// so fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After the name: state(3) ppid pgrp session tty_nr tpgid flags minflt
    // cminflt majflt cmajflt utime(14) stime(15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// A CPU meter over one run: the harness and, when their pids are known,
/// other processes.
#[derive(Debug, Clone)]
pub struct Meter {
    start_self: u64,
    others: Vec<(u32, u64)>,
}

impl Meter {
    /// Starts measuring the harness and `pids`.
    ///
    /// # Errors
    /// A pid whose stat file cannot be read.
    pub fn start(pids: &[u32]) -> Result<Meter, BenchError> {
        let mut others = Vec::with_capacity(pids.len());
        for &pid in pids {
            others.push((pid, pid_ns(pid)?));
        }
        Ok(Meter {
            start_self: self_ns(),
            others,
        })
    }

    /// CPU used since the start: the harness, then each pid in order
    /// (`None` for a process that went away).
    pub fn elapsed(&self) -> (u64, Vec<Option<u64>>) {
        let me = self_ns().saturating_sub(self.start_self);
        let others = self
            .others
            .iter()
            .map(|&(pid, t0)| pid_ns(pid).ok().map(|t| t.saturating_sub(t0)))
            .collect();
        (me, others)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let line =
            "1234 (ringmq shard) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 3 0 1 2 3";
        assert_eq!(parse_stat(line), Some(287));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn reads_own_stat() {
        let pid = std::process::id();
        assert!(pid_ns(pid).is_ok());
        assert!(self_ns() > 0);
        assert!(pid_ns(u32::MAX).is_err());
    }
}
