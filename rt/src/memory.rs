//! Memory figures both processes need: how much memory the process may
//! use (cgroup limit included) and amounts of memory as configuration
//! writes them.

/// A memory limit as configured: a fraction of what is available (`0.4`)
/// or an absolute amount (`512MiB`).
#[derive(Debug, Clone, PartialEq)]
pub enum Amount {
    /// A fraction of the memory available to the process.
    Relative(f64),
    /// Bytes.
    Absolute(u64),
}

impl Amount {
    /// `0.4` is a fraction (at most 1), a whole number is bytes, anything
    /// else an amount with a unit (`512MiB`). `1.5` is refused: neither a
    /// fraction nor a number of bytes.
    ///
    /// # Errors
    /// A text that is none of these, naming it.
    pub fn parse(text: &str) -> Result<Amount, String> {
        match text.trim().parse::<f64>() {
            Ok(f) if (0.0..=1.0).contains(&f) => Ok(Amount::Relative(f)),
            Ok(f) if f < 0.0 => Err(format!("'{text}' is negative")),
            Ok(f) if f.fract() != 0.0 => Err(format!(
                "'{text}' is neither a fraction of memory (0 to 1) nor a whole number of bytes"
            )),
            _ => parse_bytes(text).map(Amount::Absolute),
        }
    }

    /// The amount in bytes, given the memory available to the process.
    pub fn bytes(&self, available: u64) -> u64 {
        match self {
            Amount::Relative(f) => (available as f64 * f) as u64,
            Amount::Absolute(n) => *n,
        }
    }
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
    fn a_fraction_is_relative_and_a_unit_absolute() {
        assert_eq!(Amount::parse("0.4"), Ok(Amount::Relative(0.4)));
        assert_eq!(Amount::parse("256MiB"), Ok(Amount::Absolute(256 << 20)));
        assert_eq!(Amount::parse("0.5").unwrap().bytes(1000), 500);
        assert!(Amount::parse("-1").is_err());
        assert!(Amount::parse("1.5").is_err());
        assert_eq!(Amount::parse("2048"), Ok(Amount::Absolute(2048)));
        assert!(Amount::parse("much").is_err());
    }

    #[test]
    fn meminfo_total_is_read_in_bytes() {
        let text = "MemTotal:       24576000 kB\nMemFree: 1 kB\n";
        assert_eq!(meminfo_total(text), Some(24_576_000 * 1024));
        assert!(available().is_some_and(|b| b > 0));
    }
}
