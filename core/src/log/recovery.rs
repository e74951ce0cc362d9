//! Recovery: rebuilding a shard's queues from its segments at start.
//!
//! Each shard scans its own segments (so shards recover in parallel), in
//! order, verifying every record's CRC. A record that fails at the end of a
//! segment is a torn tail (a write cut by a crash): the segment is truncated
//! there and what was cut is logged. A record that fails with valid records
//! after it is corruption: reported loudly and, unless the configuration
//! says to skip it, the broker refuses to start rather than lose data
//! silently.

use std::collections::BTreeMap;

use bytes::Bytes;
use glommio::io::DmaFile;
use rustc_hash::FxHashMap;
use tracing::{error, warn};

use super::error::{io_err, LogError, LogLoc};
use super::record::{DecodeError, Record, HEADER_LEN};
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

/// What a shard's segments hold.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Queue id → message id → message.
    pub queues: FxHashMap<u64, BTreeMap<u64, RecoveredMsg>>,
    /// Records read.
    pub records: u64,
    /// Bytes of records read.
    pub bytes: u64,
    /// Bytes of bodies kept in memory.
    pub resident: u64,
}

impl Recovered {
    /// Messages recovered.
    pub fn message_count(&self) -> usize {
        self.queues.values().map(BTreeMap::len).sum()
    }

    fn apply(&mut self, rec: Record<'_>, loc: LogLoc, budget: u64) {
        match rec {
            // A paged-out copy of a message that must not survive a restart.
            Record::Enqueue {
                transient: true, ..
            } => {}
            Record::Enqueue {
                queue,
                id,
                expires_at,
                exchange,
                routing_key,
                props,
                body,
                transient: false,
            } => {
                let q = self.queues.entry(queue).or_default();
                let redelivered = q.get(&id).is_some_and(|m| m.redelivered);
                if let Some(old) = q.remove(&id) {
                    if let Some(b) = old.body {
                        self.resident -= b.len() as u64;
                    }
                }
                let body_len = body.len() as u32;
                let kept = if self.resident + body.len() as u64 <= budget {
                    self.resident += body.len() as u64;
                    Some(Bytes::copy_from_slice(body))
                } else {
                    None
                };
                q.insert(
                    id,
                    RecoveredMsg {
                        loc,
                        expires_at,
                        redelivered,
                        exchange: exchange.to_owned(),
                        routing_key: routing_key.to_owned(),
                        props: Bytes::copy_from_slice(props),
                        size: body_len,
                        body: kept,
                    },
                );
            }
            Record::Settle { queue, id } => {
                if let Some(q) = self.queues.get_mut(&queue) {
                    if let Some(old) = q.remove(&id) {
                        if let Some(b) = old.body {
                            self.resident -= b.len() as u64;
                        }
                    }
                }
            }
            Record::Delivered { queue, id } => {
                if let Some(m) = self.queues.get_mut(&queue).and_then(|q| q.get_mut(&id)) {
                    m.redelivered = true;
                }
            }
            // Read before the scan (see `scan_segment`'s caller).
            Record::Abandoned { .. } => {}
            Record::QueueDeleted { queue } => {
                if let Some(q) = self.queues.remove(&queue) {
                    for m in q.into_values() {
                        if let Some(b) = m.body {
                            self.resident -= b.len() as u64;
                        }
                    }
                }
            }
        }
    }
}

/// The first offset after `from` where a whole valid record starts.
fn next_valid(data: &[u8], from: usize) -> Option<usize> {
    (from..data.len().saturating_sub(HEADER_LEN)).find(|&at| Record::decode(&data[at..]).is_ok())
}

/// Scans one segment into `rec`; returns the length of its valid prefix
/// (truncating a torn tail on disk).
///
/// # Errors
/// I/O errors; corruption followed by valid records (unless configured to
/// skip it).
pub async fn scan_segment(
    shard: u16,
    seq: u32,
    path: &std::path::Path,
    file: &DmaFile,
    cfg: &StorageConfig,
    rec: &mut Recovered,
) -> Result<u64, LogError> {
    let size = file.file_size().await.map_err(|e| io_err(shard, seq, e))?;
    let data = if size == 0 {
        Vec::new()
    } else {
        let rr = file
            .read_at(0, size as usize)
            .await
            .map_err(|e| io_err(shard, seq, e))?;
        rr[..].to_vec()
    };
    let mut at = 0usize;
    loop {
        match Record::decode(&data[at..]) {
            Ok((r, n)) => {
                let loc = LogLoc {
                    seq,
                    offset: at as u64,
                    len: n as u32,
                };
                rec.apply(r, loc, cfg.memory_budget_bytes);
                rec.records += 1;
                rec.bytes += n as u64;
                at += n;
            }
            Err(DecodeError::End) => break,
            Err(e) => match next_valid(&data, at + 1) {
                Some(valid) => {
                    error!(shard, seq, at, next_valid = valid, error = ?e, "corrupt record in the middle of a segment");
                    if cfg.on_corruption == OnCorruption::Skip {
                        error!(
                            shard,
                            seq,
                            skipped = valid - at,
                            "skipping the corrupt bytes (storage.on_corruption = skip)"
                        );
                        at = valid;
                        continue;
                    }
                    return Err(LogError::Corrupt {
                        shard,
                        seq,
                        at: at as u64,
                    });
                }
                None => {
                    let cut = data[at..]
                        .iter()
                        .rposition(|b| *b != 0)
                        .map_or(0, |p| p + 1);
                    if cut > 0 {
                        warn!(shard, seq, at, bytes_cut = cut, error = ?e, "torn tail truncated");
                    }
                    break;
                }
            },
        }
    }
    if (at as u64) < size {
        // Drop the torn tail and the padding, so the file holds only
        // whole records.
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(at as u64).and_then(|()| f.sync_all()))
            .map_err(|e| io_err(shard, seq, e))?;
    }
    Ok(at as u64)
}
