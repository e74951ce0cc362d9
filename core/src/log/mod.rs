//! A shard's durable log: append-only segment files written through
//! io_uring with O_DIRECT (glommio DMA files), with group commit.
//!
//! Records (see [`record`]) are appended to an in-memory batch by the shard
//! synchronously; the commit task ([`writer`]) writes the batch and issues
//! one `fdatasync` for all of it, then reports the durable position so the
//! shard can send the confirms waiting on it. A record never spans two
//! segments; a new segment starts at every broker start and whenever the
//! active one reaches `segment_bytes`.
//!
//! # Invariants
//! - `committed <= appended`; only records below `committed` are confirmed
//!   to publishers.
//! - The bytes of every record not yet known durable stay in memory (in
//!   the pending batch or the written-but-unsynced chunks) until a sync
//!   covers them, so a failed write or sync loses nothing: the writer
//!   abandons the segment, rewrites those bytes into a new one and reads
//!   of their old locations follow a redirect (see [`writer`]).
//! - Only the oldest segment is ever deleted (or compacted), so a settle
//!   record never outlives the enqueue record it settles.

mod error;
#[cfg(feature = "failpoints")]
pub mod fault;
pub mod meta_store;
#[cfg(feature = "failpoints")]
pub mod power;
mod prealloc;
pub mod record;
pub mod recovery;
mod writer;

use self::error::io_err;
pub use self::error::{LogError, LogLoc, Pos};
pub use self::writer::LogEvent;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use glommio::io::DmaFile;
use tracing::{info, warn};

use self::record::Record;
use crate::config::StorageConfig;
use ringmq_rt::local::Notify;

struct Segment {
    path: PathBuf,
    /// Read (and, for the active one, write) handle; `None` until the
    /// writer creates the file.
    file: Option<Rc<DmaFile>>,
    /// Bytes of records in the segment.
    size: u64,
    /// Enqueue records not yet settled, and stream records retention has
    /// not dropped.
    live: u64,
    /// Their bytes.
    live_bytes: u64,
    /// Compaction copied live records out of it, up to this position: it
    /// may go only once that is durable.
    copied_until: Option<Pos>,
}

impl Segment {
    fn new(path: PathBuf) -> Segment {
        Segment {
            path,
            file: None,
            size: 0,
            live: 0,
            live_bytes: 0,
            copied_until: None,
        }
    }
}

/// The active segment's writer state.
struct Active {
    seq: u32,
    file: Rc<DmaFile>,
    /// Bytes of records written to the file.
    end: u64,
    /// The bytes of the last, partly filled block (rewritten with the next
    /// write: O_DIRECT writes whole blocks).
    tail: Vec<u8>,
    /// The file holds written zeros (or records) up to here
    /// ([`prealloc`]).
    zeroed: u64,
    /// Zeros are still written ahead in this segment.
    zeroing: bool,
    /// A zero write in flight, from this offset.
    zero_busy: Option<u64>,
}

/// Encoded records at a place in the log, not yet known durable.
struct Chunk {
    seq: u32,
    offset: u64,
    bytes: Vec<u8>,
}

impl Chunk {
    fn end(&self) -> Pos {
        (self.seq, self.offset + self.bytes.len() as u64)
    }
}

/// Records that were written again elsewhere after a failure: offsets
/// `[from, until)` of segment `seq` now live at `to_offset..` of `to_seq`.
#[derive(Debug, Clone, Copy)]
struct Redirect {
    seq: u32,
    from: u64,
    until: u64,
    to_seq: u32,
    to_offset: u64,
}

/// Most bytes [`Log::read_many`] reads at once.
pub const READ_SPAN_MAX: u64 = 256 * 1024;

/// Largest gap between two records [`Log::read_many`] reads over.
const READ_GAP_MAX: u64 = 4096;

/// A shard's log.
pub struct Log {
    shard: u16,
    dir: PathBuf,
    cfg: StorageConfig,
    segments: RefCell<BTreeMap<u32, Segment>>,
    /// Where the next record goes.
    next: Cell<Pos>,
    /// Records appended, not yet handed to the writer.
    pending: RefCell<Vec<Chunk>>,
    /// Records written, waiting for a sync to cover them.
    unsynced: RefCell<VecDeque<Chunk>>,
    /// Where records written again after a failure went.
    redirects: RefCell<Vec<Redirect>>,
    committed: Cell<Pos>,
    /// The last write or sync failed and the log has not written
    /// successfully since: what failed.
    failing: RefCell<Option<String>>,
    /// Failures so far (a waiter can tell one happened while it waited).
    failures: Cell<u64>,
    wake: Notify,
    /// Set after each commit and each failure.
    pub committed_notify: Notify,
    /// A zero write ended ([`prealloc`]).
    zeros_done: Notify,
    active: RefCell<Option<Active>>,
    /// Shut down: the commit task stops, the files are closed.
    closed: Cell<bool>,
    /// The durable position the last `Synced` record vouched for.
    vouched: Cell<Pos>,
}

/// glommio decides per device and thread whether reads may use the
/// iopoll ring by reading the first block of the first O_DIRECT file
/// opened; on an empty file that read "succeeds" and later reads fail with
/// EOPNOTSUPP on devices without iopoll. Opening a file that has a real
/// block first makes the probe tell the truth.
async fn probe_device(shard: u16, dir: &Path) -> Result<(), LogError> {
    let path = dir.join(".probe");
    std::fs::write(&path, vec![0u8; 4096]).map_err(|e| io_err(shard, 0, e))?;
    let file = DmaFile::open(&path)
        .await
        .map_err(|e| io_err(shard, 0, e))?;
    let _ = file.close().await;
    let _ = std::fs::remove_file(&path);
    Ok(())
}

fn segment_name(seq: u32) -> String {
    format!("{seq:010}.seg")
}

impl Log {
    /// Opens the log of `shard` under `dir` (created if needed), recovering
    /// what earlier runs wrote, and starts a new active segment.
    ///
    /// # Errors
    /// I/O errors, or a corrupt record in the middle of a segment (unless
    /// configured to skip it).
    pub async fn open(
        shard: u16,
        dir: &Path,
        cfg: &StorageConfig,
    ) -> Result<(Rc<Log>, recovery::Recovered), LogError> {
        std::fs::create_dir_all(dir).map_err(|e| io_err(shard, 0, e))?;
        probe_device(shard, dir).await?;
        let mut seqs: Vec<u32> = std::fs::read_dir(dir)
            .map_err(|e| io_err(shard, 0, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".seg")?.parse::<u32>().ok()
            })
            .collect();
        seqs.sort_unstable();
        let started = std::time::Instant::now();
        let mut rec = recovery::Recovered::default();
        let mut segments = BTreeMap::new();
        for &seq in &seqs {
            let path = dir.join(segment_name(seq));
            let file = DmaFile::open(&path)
                .await
                .map_err(|e| io_err(shard, seq, e))?;
            let size = recovery::scan_segment(shard, seq, &path, &file, cfg, &mut rec).await?;
            let mut segment = Segment::new(path);
            segment.file = Some(Rc::new(file));
            segment.size = size;
            segments.insert(seq, segment);
        }
        let streamed = rec.streams.values().flat_map(|s| s.entries.values());
        let locs = rec
            .queues
            .values()
            .flat_map(|msgs| msgs.values().map(|m| m.loc))
            .chain(streamed.map(|(loc, _)| *loc));
        for loc in locs {
            if let Some(s) = segments.get_mut(&loc.seq) {
                s.live += 1;
                s.live_bytes += u64::from(loc.len);
            }
        }
        if !seqs.is_empty() {
            info!(
                shard,
                segments = seqs.len(),
                records = rec.records,
                bytes = rec.bytes,
                messages = rec.message_count(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "log recovered"
            );
        }
        let seq = seqs.last().map_or(1, |s| s + 1);
        let log = Rc::new(Log {
            shard,
            dir: dir.to_owned(),
            cfg: cfg.clone(),
            segments: RefCell::new(segments),
            next: Cell::new((seq, 0)),
            pending: RefCell::new(Vec::new()),
            unsynced: RefCell::new(VecDeque::new()),
            redirects: RefCell::new(Vec::new()),
            committed: Cell::new((seq, 0)),
            failing: RefCell::new(None),
            failures: Cell::new(0),
            wake: Notify::new(),
            committed_notify: Notify::new(),
            zeros_done: Notify::new(),
            active: RefCell::new(None),
            closed: Cell::new(false),
            vouched: Cell::new((seq, 0)),
        });
        log.create_segment(seq).await?;
        Ok((log, rec))
    }

    /// The shard this log belongs to.
    pub fn shard(&self) -> u16 {
        self.shard
    }

    /// What failed, while the log is failing: a write or sync failed and
    /// none has succeeded since. Records appended meanwhile wait in memory.
    pub fn failing(&self) -> Option<String> {
        self.failing.borrow().clone()
    }

    /// Appends a record to the current batch; it becomes durable at the
    /// next commit that succeeds. Never fails: while the disk fails, the
    /// record waits in memory and is written when writes succeed again.
    pub fn append(&self, rec: &Record<'_>) -> LogLoc {
        let len = rec.encoded_len() as u64;
        let (mut seq, mut offset) = self.next.get();
        if offset > 0 && offset + len > self.cfg.segment_bytes {
            seq += 1;
            offset = 0;
        }
        let mut pending = self.pending.borrow_mut();
        match pending.last_mut() {
            Some(c) if c.seq == seq => rec.encode(&mut c.bytes),
            _ => {
                let mut bytes = Vec::with_capacity(64 * 1024);
                rec.encode(&mut bytes);
                pending.push(Chunk { seq, offset, bytes });
            }
        }
        drop(pending);
        self.next.set((seq, offset + len));
        if let Record::Enqueue { .. } | Record::StreamAppend { .. } = rec {
            self.count_live(seq, len);
        }
        self.wake.notify();
        LogLoc {
            seq,
            offset,
            len: len as u32,
        }
    }

    /// Counts an enqueue record of `len` bytes in segment `seq`. The
    /// segment file may not exist yet (the commit task creates it); its
    /// entry does, so the counts are right from the start.
    fn count_live(&self, seq: u32, len: u64) {
        let mut segs = self.segments.borrow_mut();
        let s = segs
            .entry(seq)
            .or_insert_with(|| Segment::new(self.dir.join(segment_name(seq))));
        s.live += 1;
        s.live_bytes += len;
    }

    /// Where a record lives now: records written again after a failure
    /// moved to another segment.
    fn resolve(&self, mut loc: LogLoc) -> LogLoc {
        for r in self.redirects.borrow().iter() {
            if r.seq == loc.seq && r.from <= loc.offset && loc.offset < r.until {
                loc.seq = r.to_seq;
                loc.offset = r.to_offset + (loc.offset - r.from);
            }
        }
        loc
    }

    /// The position up to which records are durable.
    pub fn committed(&self) -> Pos {
        self.committed.get()
    }

    /// The position the next record will take.
    pub fn appended(&self) -> Pos {
        self.next.get()
    }

    /// A message left its queue: its segment has one live record less.
    /// Counted against the record's original segment even when a failure
    /// moved it (see `writer.rs`).
    pub fn release(&self, loc: LogLoc) {
        if let Some(s) = self.segments.borrow_mut().get_mut(&loc.seq) {
            s.live = s.live.saturating_sub(1);
            s.live_bytes = s.live_bytes.saturating_sub(u64::from(loc.len));
        }
    }

    /// Reads a record back (page-in). Waits until it is committed.
    ///
    /// # Errors
    /// I/O errors, a missing segment.
    pub async fn read(&self, loc: LogLoc) -> Result<Bytes, LogError> {
        let mut got = self.read_many(&[loc]).await?;
        got.pop()
            .ok_or_else(|| io_err(self.shard, loc.seq, "nothing read"))
    }

    /// Reads the records at `locs`, in order, once they are committed.
    /// Records that lie close together in one segment (as a queue's
    /// paged-out messages do) are read with one read of at most
    /// [`READ_SPAN_MAX`] bytes, and share its buffer.
    ///
    /// # Errors
    /// As [`Log::read`].
    pub async fn read_many(&self, locs: &[LogLoc]) -> Result<Vec<Bytes>, LogError> {
        let mut out = Vec::with_capacity(locs.len());
        let mut i = 0;
        while i < locs.len() {
            let failures = self.failures.get();
            let first = self.resolve(locs[i]);
            let mut end = first.offset + u64::from(first.len);
            let mut j = i + 1;
            while let Some(next) = locs.get(j).map(|l| self.resolve(*l)) {
                let next_end = next.offset + u64::from(next.len);
                let close = next.seq == first.seq
                    && next.offset >= end
                    && next.offset - end <= READ_GAP_MAX
                    && next_end - first.offset <= READ_SPAN_MAX;
                if !close {
                    break;
                }
                end = next_end;
                j += 1;
            }
            if !self.wait_committed((first.seq, end), failures).await {
                // A failure moved records that were not yet durable:
                // look them up again.
                continue;
            }
            let span = self
                .read_at(first.seq, first.offset, end - first.offset)
                .await?;
            for loc in &locs[i..j] {
                let loc = self.resolve(*loc);
                let at = (loc.offset - first.offset) as usize;
                out.push(span.slice(at..at + loc.len as usize));
            }
            i = j;
        }
        Ok(out)
    }

    /// Waits until `pos` is committed: true; false when a failure happened
    /// after `failures` were counted (records may have moved).
    async fn wait_committed(&self, pos: Pos, failures: u64) -> bool {
        loop {
            if self.failures.get() != failures {
                return false;
            }
            if self.committed.get() >= pos {
                return true;
            }
            self.committed_notify.wait().await;
        }
    }

    /// Reads `len` committed bytes at `offset` of segment `seq`.
    async fn read_at(&self, seq: u32, offset: u64, len: u64) -> Result<Bytes, LogError> {
        let file = self
            .segments
            .borrow()
            .get(&seq)
            .and_then(|s| s.file.clone())
            .ok_or_else(|| io_err(self.shard, seq, "segment is gone"))?;
        let rr = file
            .read_at(offset, len as usize)
            .await
            .map_err(|e| io_err(self.shard, seq, e))?;
        if rr.len() < len as usize {
            return Err(io_err(self.shard, seq, "short read"));
        }
        Ok(Bytes::copy_from_slice(&rr[..len as usize]))
    }

    /// The oldest sealed segment, if it can be reclaimed: `Some(true)` when
    /// it holds no live record (delete it), `Some(false)` when it is mostly
    /// dead (compact it).
    ///
    /// A segment whose messages are all settled may go even while the log
    /// is failing (that is how space comes back on a full disk): its
    /// records are needed by nothing, whether or not the settle records
    /// are durable yet — without the enqueue records a crash cannot bring
    /// the messages back. One that compaction copied records out of waits
    /// until the copies are durable. Compaction itself waits for a
    /// healthy log.
    pub fn reclaimable(&self) -> Option<(u32, bool)> {
        // Segments below the one taking appends are sealed or abandoned.
        let writing = match self.active.borrow().as_ref() {
            Some(a) => a.seq.min(self.next.get().0),
            None => self.next.get().0,
        };
        let segs = self.segments.borrow();
        let (&seq, s) = segs.iter().next()?;
        if seq >= writing {
            return None;
        }
        if s.live == 0 {
            let copies_durable = s.copied_until.is_none_or(|p| self.committed.get() >= p);
            return copies_durable.then_some((seq, true));
        }
        if self.failing.borrow().is_some() {
            return None;
        }
        let dead = s.size.saturating_sub(s.live_bytes);
        (s.size > 0
            && (s.live_bytes as f64) < (s.size as f64) * self.cfg.compact_below
            && dead >= self.cfg.segment_bytes / 4)
            .then_some((seq, false))
    }

    /// Deletes a segment with no live records.
    ///
    /// # Errors
    /// I/O errors removing the file.
    pub async fn delete_segment(&self, seq: u32) -> Result<(), LogError> {
        let seg = self.segments.borrow_mut().remove(&seq);
        if let Some(seg) = seg {
            if let Some(f) = seg.file {
                if let Ok(f) = Rc::try_unwrap(f) {
                    let _ = f.close().await;
                }
            }
            match std::fs::remove_file(&seg.path) {
                Ok(()) => {}
                // Never created: its records were all written elsewhere.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(self.shard, seq, e)),
            }
            #[cfg(feature = "failpoints")]
            power::removed(&seg.path);
            self.redirects.borrow_mut().retain(|r| r.seq != seq);
            info!(
                shard = self.shard,
                seq, "segment deleted: every message in it was settled"
            );
        }
        Ok(())
    }

    /// Compaction copied live records out of segment `seq`: it may be
    /// deleted once everything appended so far is durable.
    pub fn copied_out(&self, seq: u32) {
        let until = self.next.get();
        if let Some(s) = self.segments.borrow_mut().get_mut(&seq) {
            s.copied_until = Some(until);
        }
    }

    /// Live bytes and total bytes of a segment (for tests and metrics).
    pub fn segment_usage(&self, seq: u32) -> Option<(u64, u64)> {
        self.segments
            .borrow()
            .get(&seq)
            .map(|s| (s.live_bytes, s.size))
    }

    /// Sequence numbers of the segments on disk.
    pub fn segment_seqs(&self) -> Vec<u32> {
        self.segments.borrow().keys().copied().collect()
    }

    /// Waits until everything appended so far is committed: true; false
    /// as soon as the log is failing (shutdown and compaction must not
    /// wait for a disk that may never come back).
    pub async fn sync_all(&self) -> bool {
        let target = self.next.get();
        loop {
            if self.committed.get() >= target {
                return true;
            }
            if let Some(cause) = self.failing() {
                warn!(shard = self.shard, cause = %cause, "log is failing: not everything appended is durable");
                return false;
            }
            self.committed_notify.wait().await;
        }
    }

    /// Shutdown, after [`Log::sync_all`]: stops the commit task and closes
    /// every segment file, so a broker stopped inside a process (tests,
    /// embedding) leaves no descriptor open — nor the space of deleted
    /// segments held.
    pub async fn close(&self) {
        // A clean stop vouches for the whole tail: damage found there at
        // the next start is corruption, not a torn write.
        if self.failing().is_none() && self.committed.get() == self.next.get() {
            self.vouch();
            self.sync_all().await;
        }
        self.closed.set(true);
        self.wake.notify();
        self.active.borrow_mut().take();
        let files: Vec<Rc<DmaFile>> = self
            .segments
            .borrow_mut()
            .values_mut()
            .filter_map(|s| s.file.take())
            .collect();
        for f in files {
            if let Ok(f) = Rc::try_unwrap(f) {
                let _ = f.close().await;
            }
        }
    }
}
