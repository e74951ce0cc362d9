//! The scan of one segment's bytes, pure: the caller reads the file,
//! applies the records, logs the outcome and truncates.
//!
//! A record that fails to decode is a torn tail only where a torn write
//! can be: in a segment allowed to end torn (`Rules::torn_ok`), at or
//! after the durable length its `Synced` records vouch for. Valid records
//! after it there are writes no sync covered (a disk may keep some of
//! them and lose earlier ones): never confirmed, dropped with the tail.
//! A zero length is the end of the data only when nothing but zeros
//! follows it. Anything else is corruption.

use super::resync::{next_valid, RangeCrc};
use crate::log::record::{DecodeError, Record};

/// How a scan treats a record that fails.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rules {
    /// The segment may end in a torn record: it is the log's tail, or
    /// after it and without any valid record.
    pub torn_ok: bool,
    /// Skip corrupt bytes (`storage.on_corruption = "skip"`) instead of
    /// refusing them.
    pub skip: bool,
}

/// What a scan found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Scanned {
    /// Bytes to keep (whole records, and any skipped bytes between them).
    pub keep: usize,
    /// Corrupt ranges skipped: (offset, length).
    pub skipped: Vec<(usize, usize)>,
    /// A torn tail cut at this offset: (offset, non-zero bytes cut).
    pub torn: Option<(usize, usize)>,
    /// The torn tail held valid records (unsynced writes that reached the
    /// disk out of order).
    pub torn_valid: bool,
}

/// Corrupt bytes that the rules do not let the scan drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Corrupt {
    /// Offset of the first bad byte.
    pub at: usize,
    /// Why it is corruption and not a torn tail.
    pub reason: &'static str,
    /// What decoding said.
    pub error: DecodeError,
}

/// Scans `data` (a segment up to its trusted length), calling `apply`
/// with each valid record, its offset and its length, in order.
///
/// # Errors
/// Corruption the rules refuse.
pub(super) fn scan<'a>(
    data: &'a [u8],
    rules: Rules,
    mut apply: impl FnMut(Record<'a>, usize, usize),
) -> Result<Scanned, Corrupt> {
    let mut crc = RangeCrc::new(data);
    let mut out = Scanned::default();
    let mut at = 0;
    // Bytes below this were durable (the largest `Synced` seen), and what
    // the Synced records after the first bad record say (looked up once:
    // the ones between two bad records are seen by the scan as well).
    let mut vouched = 0usize;
    let mut vouched_after = None;
    loop {
        let error = match Record::decode(&data[at..]) {
            Ok((r, n)) => {
                if let Record::Synced { end } = r {
                    vouched = vouched.max(end as usize);
                }
                apply(r, at, n);
                at += n;
                continue;
            }
            Err(DecodeError::End) if is_zero(&data[at..]) => {
                out.keep = at;
                return Ok(out);
            }
            Err(e) => e,
        };
        let next = next_valid(&mut crc, at + 1);
        let torn = rules.torn_ok
            && match next {
                None => true,
                Some(valid) => {
                    let after = *vouched_after.get_or_insert_with(|| vouched_from(&mut crc, valid));
                    at >= vouched.max(after)
                }
            };
        match next {
            _ if torn => {
                out.torn = Some((at, nonzero_len(&data[at..])));
                out.torn_valid = next.is_some();
                out.keep = at;
                return Ok(out);
            }
            _ if !rules.skip => {
                let reason = if next.is_some() {
                    "a bad record followed by valid records (below what a Synced record says was durable, or not in the tail segment)"
                } else {
                    "a bad record at the end of a segment that is not the log's tail (only the tail may end in a torn write)"
                };
                return Err(Corrupt { at, reason, error });
            }
            None => {
                out.skipped.push((at, data.len() - at));
                out.keep = data.len();
                return Ok(out);
            }
            Some(valid) => {
                out.skipped.push((at, valid - at));
                at = valid;
            }
        }
    }
}

/// The largest durable length the valid `Synced` records from `at` on
/// vouch for (0: none).
fn vouched_from(crc: &mut RangeCrc<'_>, mut at: usize) -> usize {
    let data = crc.data;
    let mut vouched = 0;
    while at < data.len() {
        match Record::decode(&data[at..]) {
            Ok((r, n)) => {
                if let Record::Synced { end } = r {
                    vouched = vouched.max(end as usize);
                }
                at += n;
            }
            Err(_) => match next_valid(crc, at + 1) {
                Some(next) => at = next,
                None => break,
            },
        }
    }
    vouched
}

fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| *b == 0)
}

/// Length up to the last non-zero byte.
fn nonzero_len(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1)
}
