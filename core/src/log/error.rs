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
    /// The definitions file to load at boot (`load_definitions`) cannot be
    /// read or applied.
    #[error("definitions file {path}: {reason}; refusing to start")]
    Definitions {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong, naming the item.
        reason: String,
    },
    /// A segment holds bad bytes where a torn write cannot be.
    #[error("segment {seq} of shard {shard} is corrupt at byte {at}: {reason}; refusing to start (storage.on_corruption = \"skip\" drops the bad bytes and what they held)")]
    Corrupt {
        /// The shard.
        shard: u16,
        /// The segment.
        seq: u32,
        /// Byte offset of the bad record.
        at: u64,
        /// Why it is corruption and not a torn tail.
        reason: &'static str,
    },
    /// The metadata op log has a bad op where a torn write cannot be.
    #[error("metadata op log {} has a bad op at byte {at} ({reason}), not a torn final op; refusing to start, since every change from there on would be lost (storage.meta_on_corruption = \"truncate\" drops them)", path.display())]
    MetaCorrupt {
        /// The op log.
        path: std::path::PathBuf,
        /// Byte offset of the bad op.
        at: u64,
        /// Why it is corruption and not a torn tail.
        reason: &'static str,
    },
    /// A shard's log holds messages of a queue the metadata cannot account
    /// for (see `Shard::restore`).
    #[error("the log of shard {shard} holds {messages} message(s) of queue {queue}, which {reason}; refusing to start rather than delete them (restore the metadata directory that declared the queue)")]
    UnknownQueue {
        /// The shard.
        shard: u16,
        /// The queue id.
        queue: u64,
        /// Messages recovered for it.
        messages: usize,
        /// Why the metadata cannot account for it.
        reason: String,
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
