//! What the log's modules share: where a record lives, positions, and the
//! log's errors.

/// Where a record lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogLoc {
    /// Segment sequence number.
    pub seq: u32,
    /// Byte offset in the segment.
    pub offset: u64,
    /// Record length.
    pub len: u32,
}

/// A position in the log: (segment, offset), ordered.
pub type Pos = (u32, u64);

/// Errors of the log.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// An earlier write or sync failed; the log accepts nothing more.
    #[error("log of shard {shard} is poisoned by an earlier failure: {cause}")]
    Poisoned {
        /// The shard.
        shard: u16,
        /// What failed.
        cause: String,
    },
    /// I/O on a segment.
    #[error("i/o on segment {seq} of shard {shard}: {cause}")]
    Io {
        /// The shard.
        shard: u16,
        /// The segment.
        seq: u32,
        /// The error text.
        cause: String,
    },
    /// A record in the middle of a segment is corrupt.
    #[error("segment {seq} of shard {shard} has a corrupt record at byte {at} followed by valid records")]
    Corrupt {
        /// The shard.
        shard: u16,
        /// The segment.
        seq: u32,
        /// Byte offset of the bad record.
        at: u64,
    },
    /// The data directory was written with another shard count.
    #[error("{0}")]
    Layout(String),
}

pub(super) fn io_err(shard: u16, seq: u32, e: impl std::fmt::Display) -> LogError {
    LogError::Io {
        shard,
        seq,
        cause: e.to_string(),
    }
}
