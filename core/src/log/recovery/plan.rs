//! What recovery must know before it scans any segment, since later
//! segments decide it: how far each segment can be trusted, and which one
//! is the tail.
//!
//! - After a failed write or sync of segment N whose durable length was X,
//!   the writer starts a new segment whose first records are
//!   `Abandoned { seq: N, end: X }` (one per abandoned segment; repeated if
//!   that segment failed too). Only the leading records of a segment count,
//!   only those that name an older segment, and only below the trusted
//!   length of the segment that holds them. Segment N is then scanned only
//!   below X (the smallest X, if several).
//! - The tail is the highest-numbered segment that holds at least one
//!   valid record below its trusted length. Only the tail, and the
//!   segments after it (which hold no valid record at all: created, then
//!   torn before anything in them was synced), may end in a torn write.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::resync::{next_valid, RangeCrc};
use crate::log::error::{io_err, LogError};
use crate::log::record::Record;

/// Bytes read at a time while looking at the start of a segment.
const CHUNK: u64 = 64 * 1024;

/// The log-wide facts a segment's scan depends on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    /// Segment → the length its Abandoned records vouch for.
    limits: BTreeMap<u32, u64>,
    /// The highest-numbered segment with a valid record.
    tail: Option<u32>,
}

impl Plan {
    /// Reads the start of every segment in `dir`, newest first.
    ///
    /// # Errors
    /// I/O errors.
    pub(super) fn read(shard: u16, dir: &Path) -> Result<Plan, LogError> {
        let mut plan = Plan::default();
        for (seq, path) in segments(dir).map_err(|e| io_err(shard, 0, e))?.iter().rev() {
            let seq = *seq;
            let file = File::open(path).map_err(|e| io_err(shard, seq, e))?;
            let size = file.metadata().map_err(|e| io_err(shard, seq, e))?.len();
            let limit = plan.limits.get(&seq).map_or(size, |l| (*l).min(size));
            let leading = leading_abandoned(&file, limit).map_err(|e| io_err(shard, seq, e))?;
            for &(old, end) in leading.iter().filter(|(old, _)| *old < seq) {
                let l = plan.limits.entry(old).or_insert(end);
                *l = (*l).min(end);
            }
            if plan.tail.is_none()
                && (!leading.is_empty()
                    || has_valid(&file, limit).map_err(|e| io_err(shard, seq, e))?)
            {
                plan.tail = Some(seq);
            }
        }
        Ok(plan)
    }

    /// The length of segment `seq` that its Abandoned records vouch for,
    /// if any: the bytes after it are not scanned.
    pub(super) fn limit(&self, seq: u32) -> Option<u64> {
        self.limits.get(&seq).copied()
    }

    /// Segment `seq` may end in a torn record.
    pub(super) fn torn_ok(&self, seq: u32) -> bool {
        self.tail.is_none_or(|t| seq >= t)
    }

    /// The tail segment, if any segment holds a valid record.
    #[cfg(test)]
    pub(super) fn tail(&self) -> Option<u32> {
        self.tail
    }
}

/// The segment files of `dir` by sequence number, oldest first.
fn segments(dir: &Path) -> std::io::Result<Vec<(u32, PathBuf)>> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let seq = name.strip_suffix(".seg")?.parse::<u32>().ok()?;
            Some((seq, e.path()))
        })
        .collect();
    found.sort_unstable();
    Ok(found)
}

/// Up to `len` bytes of `file` from `at` (fewer at its end).
fn read_at(file: &File, at: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], at + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(done);
    Ok(buf)
}

/// The valid Abandoned records at the start of a segment, below `limit`:
/// (abandoned segment, its trusted length).
fn leading_abandoned(file: &File, limit: u64) -> std::io::Result<Vec<(u32, u64)>> {
    let mut found = Vec::new();
    let mut at = 0u64;
    loop {
        let want = limit.saturating_sub(at).min(CHUNK);
        let buf = read_at(file, at, want)?;
        let mut i = 0;
        while let Ok((Record::Abandoned { seq, end }, n)) = Record::decode(&buf[i..]) {
            found.push((seq, end));
            i += n;
        }
        // Stopped at another record, or at the end of what there is.
        let rest = Record::Abandoned { seq: 0, end: 0 }.encoded_len();
        if i == 0 || buf.len() - i >= rest || (buf.len() as u64) < want {
            return Ok(found);
        }
        at += i as u64;
    }
}

/// Whether a segment holds a valid record below `limit` (usually its
/// first record; otherwise the whole segment is searched).
fn has_valid(file: &File, limit: u64) -> std::io::Result<bool> {
    let head = read_at(file, 0, limit.min(CHUNK))?;
    let first = match head.get(..4) {
        Some(b) => u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        None => return Ok(false),
    };
    let first_ok = if first > head.len() as u64 && first <= limit {
        Record::decode(&read_at(file, 0, first)?).is_ok()
    } else {
        Record::decode(&head).is_ok()
    };
    if first_ok {
        return Ok(true);
    }
    // A bad first record: the segment counts only if a Synced record in it
    // says some of its bytes were durable. Otherwise its start never
    // reached the disk, and what follows are unsynced writes (and a first
    // recovery that cuts them must not make the next one see another
    // tail).
    let all = read_at(file, 0, limit)?;
    let mut crc = RangeCrc::new(&all);
    let mut at = next_valid(&mut crc, 0);
    while let Some(pos) = at {
        match Record::decode(&all[pos..]) {
            Ok((Record::Synced { end }, _)) if end > 0 => return Ok(true),
            Ok((_, n)) => at = Some(pos + n).filter(|p| *p < all.len()),
            Err(_) => at = next_valid(&mut crc, pos + 1),
        }
    }
    Ok(false)
}
