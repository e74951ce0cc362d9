//! Memory accounting: what the broker holds, counted where it is held.
//!
//! Messages count themselves: creating one adds its footprint to the
//! counter of the thread it is created on, dropping it subtracts from the
//! thread it is dropped on (a message published on one shard may die on
//! another). One thread's count can therefore go negative; the sum over
//! every shard is what is held. Each shard adds what else it holds
//! (queue index entries, connection buffers) and publishes its total in
//! [`crate::resources::Resources`], where the memory alarm sums them.
//! A plain thread-local add on the hot path, no atomics.

use std::cell::Cell;

thread_local! {
    static MESSAGES: Cell<i64> = const { Cell::new(0) };
}

/// Counts `bytes` of message memory as held on this thread.
pub fn hold(bytes: u64) {
    MESSAGES.with(|m| m.set(m.get().wrapping_add(bytes as i64)));
}

/// Counts `bytes` of message memory as released on this thread.
pub fn release(bytes: u64) {
    MESSAGES.with(|m| m.set(m.get().wrapping_sub(bytes as i64)));
}

/// Message memory created minus released on this thread.
pub fn messages_here() -> i64 {
    MESSAGES.with(Cell::get)
}

/// Memory the process may use: the cgroup limit when there is one,
/// otherwise the machine's total memory. `None` when neither can be read.
pub fn available() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| meminfo_total(&t));
    let cgroup = cgroup_limit();
    match (total, cgroup) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    }
}

/// `MemTotal` from `/proc/meminfo`, bytes.
fn meminfo_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The memory limit of this process's cgroup (v2 `memory.max`, or v1
/// `memory.limit_in_bytes`), if it sets one.
fn cgroup_limit() -> Option<u64> {
    let v2 = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|t| {
            let path = t.lines().find_map(|l| l.strip_prefix("0::"))?.to_owned();
            std::fs::read_to_string(format!("/sys/fs/cgroup{path}/memory.max")).ok()
        })
        .or_else(|| std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok());
    let v1 = || std::fs::read_to_string("/sys/fs/cgroup/memory/memory.limit_in_bytes").ok();
    let text = v2.or_else(v1)?;
    let n: u64 = text.trim().parse().ok()?;
    // v1 reports "no limit" as a number near u64::MAX.
    (n < 1 << 60).then_some(n)
}

/// A memory amount in configuration: bytes with an optional binary or
/// decimal unit (`512MiB`, `2GB`, `1073741824`).
///
/// # Errors
/// A text that is no amount, naming what is wrong.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{text}' is not an amount of memory"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "tib" | "t" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => return Err(format!("unknown unit '{other}' in '{text}'")),
    };
    Ok((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_with_units() {
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("5 parsecs").is_err());
    }

    #[test]
    fn meminfo_is_read() {
        let text = "MemTotal:       24576000 kB\nMemFree:  1 kB\n";
        assert_eq!(meminfo_total(text), Some(24_576_000 * 1024));
        assert!(available().is_some_and(|b| b > 1 << 20));
    }

    #[test]
    fn counts_follow_holds_and_releases() {
        let before = messages_here();
        hold(100);
        release(40);
        assert_eq!(messages_here() - before, 60);
        release(60);
    }
}
