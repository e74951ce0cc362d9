//! Log records: the byte format of everything a shard's segment log holds.
//! Pure: encode into a buffer, decode from a slice.
//!
//! ```text
//! header (12 bytes, little endian)
//!   len   u32   whole record, header included; 0 = no more records (padding)
//!   crc   u32   CRC32C of bytes [8, len)
//!   kind  u8    1 enqueue, 2 settle, 3 delivered, 4 queue deleted,
//!               5 paged out, 6 abandoned, 7 synced, 8 stream append,
//!               9 stream truncated
//!   flags u8    reserved, 0
//!   rsv   u16   reserved, 0
//! ```
//! A record decodes only if its reserved bytes are 0 and its length fits
//! its kind; the same checks, before the CRC, let recovery search garbage
//! for the next record cheaply.
//! The kind's payload follows from byte 12:
//! - enqueue: queue u64, id u64, expires_at u64 (ms since the epoch, 0 =
//!   none), exchange (u8 length + bytes), routing key (u8 length + bytes),
//!   properties (u32 length + a FlatBuffers `Properties` table, 0 = none),
//!   body (u32 length + bytes);
//! - paged out: as enqueue; a transient message (or one in a non-durable
//!   queue) kept only in the log while it waits, never recovered;
//! - settle, delivered: queue u64, id u64;
//! - queue deleted: queue u64;
//! - abandoned: seq u64, end u64: segment `seq` holds trustworthy records
//!   only below offset `end`; a write or sync of the bytes after it failed
//!   and the records there were written again after this record. Written
//!   only at the start of a segment;
//! - synced: end u64: when this record was written, the bytes of this
//!   segment below `end` were durable (a sync had covered them). Recovery
//!   uses it to tell damaged durable bytes (corruption) from a torn write
//!   in the tail segment;
//! - stream append: as enqueue, with the message's offset in the stream
//!   in place of the id and its timestamp (ms since the epoch) in place
//!   of `expires_at`: a message appended to a stream (`x-queue-type:
//!   stream`), persistent or not;
//! - stream truncated: queue u64, first u64: retention dropped every
//!   message of the stream below offset `first`.
//!
//! See `docs/storage-format.md`.

use bytes::BufMut;

/// Bytes before a record's payload.
pub const HEADER_LEN: usize = 12;

/// Largest record accepted when reading (a 512 MiB body plus headers);
/// anything larger is corruption.
pub const MAX_RECORD: u32 = 512 * 1024 * 1024 + 64 * 1024;

/// Record kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A persistent message entered a durable queue.
    Enqueue = 1,
    /// A message left its queue for good (ack, drop, expiry…).
    Settle = 2,
    /// A message was delivered (it comes back redelivered after a crash).
    Delivered = 3,
    /// A queue and all its messages were deleted.
    QueueDeleted = 4,
    /// A message that must not survive a restart was paged out to the log
    /// (payload as [`Kind::Enqueue`]); recovery skips it.
    PagedOut = 5,
    /// A segment is valid only up to an offset (see [`Record::Abandoned`]).
    Abandoned = 6,
    /// How much of this segment was durable (see [`Record::Synced`]).
    Synced = 7,
    /// A message appended to a stream (see [`Record::StreamAppend`]).
    StreamAppend = 8,
    /// Retention dropped the start of a stream (see
    /// [`Record::StreamTruncated`]).
    StreamTruncated = 9,
}

/// A decoded record, borrowing from the segment bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    /// See [`Kind::Enqueue`].
    Enqueue {
        /// Queue id.
        queue: u64,
        /// Message id in the queue.
        id: u64,
        /// Expiry, ms since the epoch; 0 = none.
        expires_at: u64,
        /// Exchange published to.
        exchange: &'a str,
        /// Routing key.
        routing_key: &'a str,
        /// FlatBuffers `Properties`, empty when none.
        props: &'a [u8],
        /// Body.
        body: &'a [u8],
        /// Not to be recovered: a paged-out copy ([`Kind::PagedOut`]).
        transient: bool,
    },
    /// See [`Kind::Settle`].
    Settle {
        /// Queue id.
        queue: u64,
        /// Message id.
        id: u64,
    },
    /// See [`Kind::Delivered`].
    Delivered {
        /// Queue id.
        queue: u64,
        /// Message id.
        id: u64,
    },
    /// See [`Kind::QueueDeleted`].
    QueueDeleted {
        /// Queue id.
        queue: u64,
    },
    /// After a failed write or sync, segment `seq` is trusted only below
    /// `end`: the records after it were rewritten after this record, in a
    /// new segment that starts with it.
    Abandoned {
        /// The abandoned segment.
        seq: u32,
        /// Its durable length.
        end: u64,
    },
    /// When this record was written, the bytes of its own segment below
    /// `end` were durable.
    Synced {
        /// The durable length of the segment holding this record.
        end: u64,
    },
    /// A message appended to a stream: kept until retention drops it,
    /// whatever its delivery mode.
    StreamAppend {
        /// Queue id of the stream.
        queue: u64,
        /// The message's offset in the stream.
        offset: u64,
        /// When it was appended, ms since the epoch.
        timestamp: u64,
        /// Exchange published to.
        exchange: &'a str,
        /// Routing key.
        routing_key: &'a str,
        /// FlatBuffers `Properties`, empty when none.
        props: &'a [u8],
        /// Body.
        body: &'a [u8],
    },
    /// Retention dropped every message of a stream below `first`.
    StreamTruncated {
        /// Queue id of the stream.
        queue: u64,
        /// The stream's first offset from now on.
        first: u64,
    },
}

/// Why bytes are not a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the header or the announced length (torn tail).
    Truncated,
    /// The length field is 0: padding, the end of the written data.
    End,
    /// The length is impossible.
    BadLength(u32),
    /// The checksum does not match.
    BadCrc,
    /// Checksum fine but the content is malformed (unknown kind, bad
    /// lengths, invalid UTF-8).
    Malformed(&'static str),
}

impl Record<'_> {
    /// Encoded size.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Record::Enqueue {
                    exchange,
                    routing_key,
                    props,
                    body,
                    ..
                }
                | Record::StreamAppend {
                    exchange,
                    routing_key,
                    props,
                    body,
                    ..
                } => {
                    24 + 1
                        + exchange.len().min(255)
                        + 1
                        + routing_key.len().min(255)
                        + 4
                        + props.len()
                        + 4
                        + body.len()
                }
                Record::Settle { .. }
                | Record::Delivered { .. }
                | Record::StreamTruncated { .. } => 16,
                Record::QueueDeleted { .. } => 8,
                Record::Abandoned { .. } => 16,
                Record::Synced { .. } => 8,
            }
    }

    /// Appends the record to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.reserve(self.encoded_len());
        out.put_u32_le(0);
        out.put_u32_le(0);
        let kind = match self {
            Record::Enqueue {
                transient: true, ..
            } => Kind::PagedOut,
            Record::Enqueue { .. } => Kind::Enqueue,
            Record::Settle { .. } => Kind::Settle,
            Record::Delivered { .. } => Kind::Delivered,
            Record::QueueDeleted { .. } => Kind::QueueDeleted,
            Record::Abandoned { .. } => Kind::Abandoned,
            Record::Synced { .. } => Kind::Synced,
            Record::StreamAppend { .. } => Kind::StreamAppend,
            Record::StreamTruncated { .. } => Kind::StreamTruncated,
        };
        out.put_u8(kind as u8);
        out.put_u8(0);
        out.put_u16_le(0);
        match self {
            Record::Enqueue {
                queue,
                id,
                expires_at,
                exchange,
                routing_key,
                props,
                body,
                transient: _,
            } => {
                out.put_u64_le(*queue);
                out.put_u64_le(*id);
                out.put_u64_le(*expires_at);
                put_short(out, exchange);
                put_short(out, routing_key);
                out.put_u32_le(props.len() as u32);
                out.put_slice(props);
                out.put_u32_le(body.len() as u32);
                out.put_slice(body);
            }
            Record::StreamAppend {
                queue,
                offset,
                timestamp,
                exchange,
                routing_key,
                props,
                body,
            } => {
                out.put_u64_le(*queue);
                out.put_u64_le(*offset);
                out.put_u64_le(*timestamp);
                put_short(out, exchange);
                put_short(out, routing_key);
                out.put_u32_le(props.len() as u32);
                out.put_slice(props);
                out.put_u32_le(body.len() as u32);
                out.put_slice(body);
            }
            Record::Settle { queue, id } | Record::Delivered { queue, id } => {
                out.put_u64_le(*queue);
                out.put_u64_le(*id);
            }
            Record::StreamTruncated { queue, first } => {
                out.put_u64_le(*queue);
                out.put_u64_le(*first);
            }
            Record::QueueDeleted { queue } => out.put_u64_le(*queue),
            Record::Abandoned { seq, end } => {
                out.put_u64_le(u64::from(*seq));
                out.put_u64_le(*end);
            }
            Record::Synced { end } => out.put_u64_le(*end),
        }
        let len = (out.len() - start) as u32;
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
        let crc = crc32c::crc32c(&out[start + 8..]);
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    }

    /// Decodes the record at the start of `buf`; returns it and its length.
    ///
    /// # Errors
    /// See [`DecodeError`].
    pub fn decode(buf: &[u8]) -> Result<(Record<'_>, usize), DecodeError> {
        let len = Record::check_header(buf)?;
        if crc32c::crc32c(&buf[8..len]) != stored_crc(buf) {
            return Err(DecodeError::BadCrc);
        }
        Ok((Record::parse(&buf[..len])?, len))
    }

    /// The length of the record at the start of `buf` when its header is
    /// one this version writes (a plausible length for a known kind,
    /// reserved bytes zero) and `buf` holds the whole record. The checksum
    /// is not checked: a cheap filter before it.
    ///
    /// # Errors
    /// `End`, `Truncated`, `BadLength` or `Malformed`.
    pub(crate) fn check_header(buf: &[u8]) -> Result<usize, DecodeError> {
        if buf.len() < 4 {
            return Err(if buf.iter().all(|b| *b == 0) {
                DecodeError::End
            } else {
                DecodeError::Truncated
            });
        }
        let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if len == 0 {
            return Err(DecodeError::End);
        }
        if (len as usize) < HEADER_LEN + 8 || len > MAX_RECORD {
            return Err(DecodeError::BadLength(len));
        }
        let n = len as usize;
        if buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        if buf[9..HEADER_LEN].iter().any(|b| *b != 0) {
            return Err(DecodeError::Malformed("reserved header bytes are not zero"));
        }
        let fits = match buf[8] {
            1 | 5 | 8 => n >= HEADER_LEN + 34,
            2 | 3 | 6 | 9 => n == HEADER_LEN + 16,
            4 | 7 => n == HEADER_LEN + 8,
            _ => return Err(DecodeError::Malformed("unknown record kind")),
        };
        if !fits {
            return Err(DecodeError::BadLength(len));
        }
        Ok(n)
    }

    /// Parses a whole record (`buf` is exactly its bytes) whose header
    /// passed [`Record::check_header`]; checking its checksum is the
    /// caller's business.
    ///
    /// # Errors
    /// `Malformed`.
    pub(crate) fn parse(buf: &[u8]) -> Result<Record<'_>, DecodeError> {
        let mut r = Reader {
            buf: &buf[HEADER_LEN..],
        };
        let rec = match buf[8] {
            kind @ (1 | 5) => Record::Enqueue {
                queue: r.u64()?,
                id: r.u64()?,
                expires_at: r.u64()?,
                exchange: r.short()?,
                routing_key: r.short()?,
                props: r.long()?,
                body: r.long()?,
                transient: kind == 5,
            },
            2 => Record::Settle {
                queue: r.u64()?,
                id: r.u64()?,
            },
            3 => Record::Delivered {
                queue: r.u64()?,
                id: r.u64()?,
            },
            4 => Record::QueueDeleted { queue: r.u64()? },
            6 => Record::Abandoned {
                seq: u32::try_from(r.u64()?)
                    .map_err(|_| DecodeError::Malformed("segment number too large"))?,
                end: r.u64()?,
            },
            7 => Record::Synced { end: r.u64()? },
            8 => Record::StreamAppend {
                queue: r.u64()?,
                offset: r.u64()?,
                timestamp: r.u64()?,
                exchange: r.short()?,
                routing_key: r.short()?,
                props: r.long()?,
                body: r.long()?,
            },
            9 => Record::StreamTruncated {
                queue: r.u64()?,
                first: r.u64()?,
            },
            _ => return Err(DecodeError::Malformed("unknown record kind")),
        };
        if !r.buf.is_empty() {
            return Err(DecodeError::Malformed("trailing bytes in record"));
        }
        Ok(rec)
    }
}

/// The checksum stored in the header at the start of `buf` (at least a
/// header long).
pub(crate) fn stored_crc(buf: &[u8]) -> u32 {
    u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]])
}

fn put_short(out: &mut Vec<u8>, s: &str) {
    let mut n = s.len().min(255);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    out.put_u8(n as u8);
    out.put_slice(&s.as_bytes()[..n]);
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Malformed("field runs past the record"));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn short(&mut self) -> Result<&'a str, DecodeError> {
        let n = self.take(1)?[0] as usize;
        std::str::from_utf8(self.take(n)?).map_err(|_| DecodeError::Malformed("name is not UTF-8"))
    }

    fn long(&mut self) -> Result<&'a [u8], DecodeError> {
        let b = self.take(4)?;
        let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<Record<'static>> {
        vec![
            Record::Enqueue {
                queue: 7,
                id: 1,
                expires_at: 0,
                exchange: "",
                routing_key: "q",
                props: b"",
                body: b"hello",
                transient: false,
            },
            Record::Enqueue {
                queue: 7,
                id: 2,
                expires_at: 9,
                exchange: "x",
                routing_key: "q",
                props: b"",
                body: b"paged",
                transient: true,
            },
            Record::Delivered { queue: 7, id: 1 },
            Record::Settle { queue: 7, id: 1 },
            Record::QueueDeleted { queue: 7 },
            Record::Abandoned { seq: 3, end: 4096 },
            Record::Synced { end: 8192 },
            Record::StreamAppend {
                queue: 8,
                offset: 41,
                timestamp: 1_700_000_000_000,
                exchange: "x",
                routing_key: "s",
                props: b"p",
                body: b"streamed",
            },
            Record::StreamTruncated {
                queue: 8,
                first: 40,
            },
        ]
    }

    #[test]
    fn round_trip_and_end_marker() {
        let mut buf = Vec::new();
        for r in sample() {
            r.encode(&mut buf);
        }
        buf.extend_from_slice(&[0u8; 100]);
        let mut at = 0;
        let mut got = Vec::new();
        loop {
            match Record::decode(&buf[at..]) {
                Ok((r, n)) => {
                    assert_eq!(n, r.encoded_len());
                    got.push(r);
                    at += n;
                }
                Err(DecodeError::End) => break,
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(got, sample());
    }

    #[test]
    fn flipped_bytes_fail_the_crc() {
        let mut buf = Vec::new();
        sample()[0].encode(&mut buf);
        for i in 8..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert!(Record::decode(&bad).is_err(), "flip at {i}");
        }
    }

    proptest! {
        /// A log cut at any byte decodes to a prefix of what was written,
        /// then reports a truncated (torn) tail, never a wrong record.
        #[test]
        fn cut_anywhere_recovers_a_prefix(bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..20), cut_frac in 0.0f64..1.0) {
            let mut buf = Vec::new();
            let mut ends = Vec::new();
            for (i, b) in bodies.iter().enumerate() {
                Record::Enqueue { queue: 1, id: i as u64, expires_at: 0, exchange: "x", routing_key: "k", props: b"", body: b, transient: false }.encode(&mut buf);
                ends.push(buf.len());
            }
            let cut = (buf.len() as f64 * cut_frac) as usize;
            let data = &buf[..cut];
            let mut at = 0;
            let mut n = 0;
            loop {
                match Record::decode(&data[at..]) {
                    Ok((Record::Enqueue { id, body, .. }, len)) => {
                        prop_assert_eq!(id, n as u64);
                        prop_assert_eq!(body, &bodies[n][..]);
                        at += len;
                        n += 1;
                    }
                    Ok(_) => prop_assert!(false, "wrong kind"),
                    Err(_) => break,
                }
            }
            let whole = ends.iter().filter(|e| **e <= cut).count();
            prop_assert_eq!(n, whole);
        }
    }
}
