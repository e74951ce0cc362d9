//! Recovery: rebuilding a shard's queues from its segments at start.
//!
//! Each shard scans its own segments (so shards recover in parallel), in
//! order, verifying every record's CRC. Before the first segment is
//! scanned, the start of every segment is read ([`plan`]): the Abandoned
//! records there say how much of an older segment can be trusted (the
//! bytes after that are ignored), and the newest segment holding a valid
//! record is the tail. Then each segment is scanned ([`scan`]):
//!
//! - A zero length ends the data only when nothing but zeros follows it.
//! - A bad record in the tail (or after it) with no valid record after it
//!   is a torn tail (a write cut by a crash): the segment is truncated
//!   there, synced, and what was cut is logged.
//! - Any other bad record is corruption: reported loudly and, unless the
//!   configuration says to skip it, the broker refuses to start rather
//!   than lose data silently.

mod plan;
mod resync;
mod scan;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use glommio::io::DmaFile;
use rustc_hash::FxHashMap;
use tracing::{error, info, warn};

pub(crate) use self::resync::RangeCrc;

use self::plan::Plan;
use self::scan::{Corrupt, Rules, Scanned};
use super::error::{io_err, LogError, LogLoc};
use super::record::{DecodeError, Record};
use crate::config::{OnCorruption, StorageConfig};

/// A message found in the log, not settled.
#[derive(Debug, Clone)]
pub struct RecoveredMsg {
    /// Where its enqueue record is.
    pub loc: LogLoc,
    /// Expiry, ms since the epoch; 0 = none.
    pub expires_at: u64,
    /// It was delivered before the restart.
    pub redelivered: bool,
    /// Exchange it was published to.
    pub exchange: String,
    /// Routing key.
    pub routing_key: String,
    /// FlatBuffers properties (empty: none).
    pub props: Bytes,
    /// The body, if it fits the memory budget (else read back on demand).
    pub body: Option<Bytes>,
    /// Body length.
    pub size: u32,
}

/// A stream found in the log: where each retained message's record is.
/// Bodies stay in the log (a stream reads them back for its consumers).
#[derive(Debug, Default)]
pub struct RecoveredStream {
    /// Retention dropped every offset below this (`StreamTruncated`).
    pub first: u64,
    /// Offset → its `StreamAppend` record and when it was appended (ms
    /// since the epoch).
    pub entries: BTreeMap<u64, (LogLoc, u64)>,
}

/// What a shard's segments hold.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Queue id → message id → message.
    pub queues: FxHashMap<u64, BTreeMap<u64, RecoveredMsg>>,
    /// Stream (queue id) → its retained messages.
    pub streams: FxHashMap<u64, RecoveredStream>,
    /// Records read.
    pub records: u64,
    /// Bytes of records read.
    pub bytes: u64,
    /// Bytes of bodies kept in memory.
    pub resident: u64,
    /// What the whole log says about each segment, read by the first
    /// [`scan_segment`].
    plan: Option<Plan>,
}

impl Recovered {
    /// Messages recovered.
    pub fn message_count(&self) -> usize {
        let streamed: usize = self.streams.values().map(|s| s.entries.len()).sum();
        self.queues.values().map(BTreeMap::len).sum::<usize>() + streamed
    }

    fn apply(&mut self, rec: Record<'_>, loc: LogLoc, budget: u64) {
        match rec {
            // A paged-out copy of a message that must not survive a
            // restart; and markers (read by the plan and by the scan).
            Record::Enqueue {
                transient: true, ..
            }
            | Record::Abandoned { .. }
            | Record::Synced { .. } => {}
            Record::Enqueue { .. } => self.enqueue(&rec, loc, budget),
            Record::Settle { queue, id } => {
                if let Some(old) = self.queues.get_mut(&queue).and_then(|q| q.remove(&id)) {
                    self.forget(old);
                }
            }
            Record::Delivered { queue, id } => {
                if let Some(m) = self.queues.get_mut(&queue).and_then(|q| q.get_mut(&id)) {
                    m.redelivered = true;
                }
            }
            Record::StreamAppend {
                queue,
                offset,
                timestamp,
                ..
            } => {
                // A compacted copy replaces the original; a copy of an
                // offset retention dropped stays dropped.
                let s = self.streams.entry(queue).or_default();
                if offset >= s.first {
                    s.entries.insert(offset, (loc, timestamp));
                }
            }
            Record::StreamTruncated { queue, first } => {
                let s = self.streams.entry(queue).or_default();
                s.first = s.first.max(first);
                s.entries = s.entries.split_off(&s.first);
            }
            Record::QueueDeleted { queue } => {
                self.streams.remove(&queue);
                for m in self
                    .queues
                    .remove(&queue)
                    .into_iter()
                    .flat_map(BTreeMap::into_values)
                {
                    self.forget(m);
                }
            }
        }
    }

    /// Inserts (or replaces: a compacted copy) an enqueued message, its
    /// body kept in memory while it fits `budget`.
    fn enqueue(&mut self, rec: &Record<'_>, loc: LogLoc, budget: u64) {
        let Record::Enqueue {
            queue,
            id,
            expires_at,
            exchange,
            routing_key,
            props,
            body,
            ..
        } = *rec
        else {
            return;
        };
        let old = self.queues.entry(queue).or_default().remove(&id);
        let redelivered = old.as_ref().is_some_and(|m| m.redelivered);
        if let Some(old) = old {
            self.forget(old);
        }
        let kept = (self.resident + body.len() as u64 <= budget).then(|| {
            self.resident += body.len() as u64;
            Bytes::copy_from_slice(body)
        });
        let msg = RecoveredMsg {
            loc,
            expires_at,
            redelivered,
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
            props: Bytes::copy_from_slice(props),
            size: body.len() as u32,
            body: kept,
        };
        self.queues.entry(queue).or_default().insert(id, msg);
    }

    /// A message left: its body no longer counts as resident.
    fn forget(&mut self, m: RecoveredMsg) {
        if let Some(b) = m.body {
            self.resident -= b.len() as u64;
        }
    }
}

/// Scans one segment into `rec`; returns the length of its valid prefix
/// (truncating, on disk, a torn tail and the bytes an Abandoned record
/// disowns). The first call also reads the plan of the whole log in the
/// directory of `path`, so the segments of one log must be scanned with
/// one `rec`, oldest first.
///
/// # Errors
/// I/O errors; corruption (unless configured to skip it).
pub async fn scan_segment(
    shard: u16,
    seq: u32,
    path: &Path,
    file: &DmaFile,
    cfg: &StorageConfig,
    rec: &mut Recovered,
) -> Result<u64, LogError> {
    if rec.plan.is_none() {
        let dir = path.parent().unwrap_or(Path::new("."));
        rec.plan = Some(Plan::read(shard, dir)?);
    }
    let (limit, torn_ok) = rec
        .plan
        .as_ref()
        .map_or((None, true), |p| (p.limit(seq), p.torn_ok(seq)));
    let size = file.file_size().await.map_err(|e| io_err(shard, seq, e))?;
    let data = read_all(file, limit.map_or(size, |l| l.min(size)))
        .await
        .map_err(|e| io_err(shard, seq, e))?;
    let rules = Rules {
        torn_ok,
        skip: cfg.on_corruption == OnCorruption::Skip,
    };
    let budget = cfg.memory_budget_bytes;
    let scanned = scan::scan(&data, rules, |r, at, n| {
        let loc = LogLoc {
            seq,
            offset: at as u64,
            len: n as u32,
        };
        rec.apply(r, loc, budget);
        rec.records += 1;
        rec.bytes += n as u64;
    })
    .map_err(|c| refused(shard, seq, &c))?;
    report(shard, seq, &scanned);
    if let Some(end) = limit {
        check_trusted(shard, seq, end, size, rules.skip)?;
    }
    let keep = scanned.keep as u64;
    if keep < size {
        truncate(path, keep).map_err(|e| io_err(shard, seq, e))?;
    }
    Ok(keep)
}

async fn read_all(file: &DmaFile, len: u64) -> Result<Vec<u8>, glommio::GlommioError<()>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    Ok(file.read_at(0, len as usize).await?[..].to_vec())
}

/// An abandoned segment of `size` bytes, trusted up to `end`: the bytes
/// after `end` were written again elsewhere; bytes missing below it were
/// made durable by a sync and are lost.
fn check_trusted(shard: u16, seq: u32, end: u64, size: u64, skip: bool) -> Result<(), LogError> {
    if end < size {
        info!(
            shard,
            seq,
            trusted = end,
            ignored = size - end,
            "abandoned segment: the bytes after its trusted length were written again elsewhere"
        );
    } else if end > size {
        let c = Corrupt {
            at: size as usize,
            reason: "the file ends before the length an Abandoned record vouches for",
            error: DecodeError::Truncated,
        };
        if !skip {
            return Err(refused(shard, seq, &c));
        }
        error!(shard, seq, size, trusted = end, "segment shorter than its trusted length: the missing bytes are lost (storage.on_corruption = skip)");
    }
    Ok(())
}

/// Logs what a scan dropped.
fn report(shard: u16, seq: u32, scanned: &Scanned) {
    if let Some((at, cut)) = scanned.torn.filter(|(_, cut)| *cut > 0) {
        if scanned.torn_valid {
            warn!(shard, seq, at, bytes_cut = cut, "torn tail truncated; it held valid records written after the last sync that reached the disk out of order (never confirmed)");
        } else {
            warn!(shard, seq, at, bytes_cut = cut, "torn tail truncated");
        }
    }
    if !scanned.skipped.is_empty() {
        let bytes: usize = scanned.skipped.iter().map(|(_, n)| n).sum();
        let offsets: Vec<usize> = scanned.skipped.iter().map(|(at, _)| *at).collect();
        error!(
            shard,
            seq,
            ranges = scanned.skipped.len(),
            bytes,
            ?offsets,
            "corrupt bytes skipped (storage.on_corruption = skip): the records they held are lost"
        );
    }
}

fn refused(shard: u16, seq: u32, c: &Corrupt) -> LogError {
    error!(shard, seq, at = c.at, error = ?c.error, reason = c.reason, "corrupt segment: refusing to start (storage.on_corruption = refuse)");
    LogError::Corrupt {
        shard,
        seq,
        at: c.at as u64,
        reason: c.reason,
    }
}

/// Cuts a segment file to `len` bytes, durably.
fn truncate(path: &Path, len: u64) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.set_len(len)?;
    f.sync_all()?;
    #[cfg(feature = "failpoints")]
    super::power::truncated(path, len);
    Ok(())
}
