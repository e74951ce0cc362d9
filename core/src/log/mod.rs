//! A shard's durable log: append-only segment files written through
//! io_uring with O_DIRECT (glommio DMA files), with group commit.
//!
//! Records (see [`record`]) are appended to an in-memory batch by the shard
//! synchronously; the commit task writes the batch and issues one
//! `fdatasync` for all of it, then reports the durable position so the
//! shard can send the confirms waiting on it. A record never spans two
//! segments; a new segment starts at every broker start and whenever the
//! active one reaches `segment_bytes`.
//!
//! # Invariants
//! - `committed <= appended`; only records below `committed` are confirmed
//!   to publishers.
//! - Only the oldest segment is ever deleted (or compacted), so a settle
//!   record never outlives the enqueue record it settles.
//! - After a failed write or sync the log is poisoned: every later append
//!   fails, and nothing more is confirmed.

mod error;
pub mod meta_store;
pub mod record;
pub mod recovery;

use self::error::io_err;
pub use self::error::{LogError, LogLoc, Pos};

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use glommio::io::DmaFile;
use tracing::{error, info, warn};

use self::record::Record;
use crate::config::{StorageConfig, SyncPolicy};
use ringmq_rt::local::Notify;

struct Segment {
    path: PathBuf,
    /// Read (and, for the active one, write) handle.
    file: Option<Rc<DmaFile>>,
    /// Bytes of records in the segment.
    size: u64,
    /// Enqueue records not yet settled.
    live: u64,
    /// Their bytes.
    live_bytes: u64,
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
    /// Records appended, not yet handed to the writer, by segment.
    pending: RefCell<Vec<(u32, Vec<u8>)>>,
    committed: Cell<Pos>,
    poisoned: RefCell<Option<String>>,
    wake: Notify,
    /// Set after each commit.
    pub committed_notify: Notify,
    active: RefCell<Option<Active>>,
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
            segments.insert(
                seq,
                Segment {
                    path,
                    file: Some(Rc::new(file)),
                    size,
                    live: 0,
                    live_bytes: 0,
                },
            );
        }
        for msgs in rec.queues.values() {
            for m in msgs.values() {
                if let Some(s) = segments.get_mut(&m.loc.seq) {
                    s.live += 1;
                    s.live_bytes += u64::from(m.loc.len);
                }
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
            committed: Cell::new((seq, 0)),
            poisoned: RefCell::new(None),
            wake: Notify::new(),
            committed_notify: Notify::new(),
            active: RefCell::new(None),
        });
        log.create_segment(seq).await?;
        Ok((log, rec))
    }

    async fn create_segment(&self, seq: u32) -> Result<(), LogError> {
        let path = self.dir.join(segment_name(seq));
        let file = Rc::new(
            glommio::io::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .dma_open(&path)
                .await
                .map_err(|e| io_err(self.shard, seq, e))?,
        );
        // Make the new file's directory entry durable.
        let dir = glommio::io::Directory::open(&self.dir)
            .await
            .map_err(|e| io_err(self.shard, seq, e))?;
        dir.sync().await.map_err(|e| io_err(self.shard, seq, e))?;
        let _ = dir.close().await;
        self.segments
            .borrow_mut()
            .entry(seq)
            .or_insert_with(|| Segment {
                path,
                file: None,
                size: 0,
                live: 0,
                live_bytes: 0,
            })
            .file = Some(file.clone());
        *self.active.borrow_mut() = Some(Active {
            seq,
            file,
            end: 0,
            tail: Vec::new(),
        });
        Ok(())
    }

    /// The shard this log belongs to.
    pub fn shard(&self) -> u16 {
        self.shard
    }

    /// The error that poisoned the log, if any.
    pub fn poisoned(&self) -> Option<String> {
        self.poisoned.borrow().clone()
    }

    /// Appends a record to the current batch; it becomes durable at the
    /// next commit.
    ///
    /// # Errors
    /// [`LogError::Poisoned`].
    pub fn append(&self, rec: &Record<'_>) -> Result<LogLoc, LogError> {
        if let Some(cause) = self.poisoned.borrow().clone() {
            return Err(LogError::Poisoned {
                shard: self.shard,
                cause,
            });
        }
        let len = rec.encoded_len() as u64;
        let (mut seq, mut offset) = self.next.get();
        if offset > 0 && offset + len > self.cfg.segment_bytes {
            seq += 1;
            offset = 0;
        }
        let mut pending = self.pending.borrow_mut();
        match pending.last_mut() {
            Some((s, buf)) if *s == seq => rec.encode(buf),
            _ => {
                let mut buf = Vec::with_capacity(64 * 1024);
                rec.encode(&mut buf);
                pending.push((seq, buf));
            }
        }
        self.next.set((seq, offset + len));
        if let Record::Enqueue { .. } = rec {
            // The segment file may not exist yet (the commit task creates
            // it); its entry does, so the counts are right from the start.
            let mut segs = self.segments.borrow_mut();
            let s = segs.entry(seq).or_insert_with(|| Segment {
                path: self.dir.join(segment_name(seq)),
                file: None,
                size: 0,
                live: 0,
                live_bytes: 0,
            });
            s.live += 1;
            s.live_bytes += len;
        }
        drop(pending);
        self.wake.notify();
        Ok(LogLoc {
            seq,
            offset,
            len: len as u32,
        })
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
    pub fn release(&self, loc: LogLoc) {
        if let Some(s) = self.segments.borrow_mut().get_mut(&loc.seq) {
            s.live = s.live.saturating_sub(1);
            s.live_bytes = s.live_bytes.saturating_sub(u64::from(loc.len));
        }
    }

    /// Runs the group-commit loop: writes each batch, syncs once, reports
    /// the durable position through `on_commit`.
    pub async fn run(self: Rc<Self>, on_commit: impl Fn(Result<Pos, LogError>)) {
        // The sync of one batch overlaps the write of the next: a batch
        // waits for its own write and sync, not for the previous sync too.
        let mut in_flight: Option<(Pos, glommio::task::JoinHandle<Result<(), LogError>>)> = None;
        loop {
            let nothing_pending = self.pending.borrow().is_empty();
            if nothing_pending {
                match in_flight.take() {
                    Some((target, sync)) => {
                        if !self.finish_sync(target, sync, &on_commit).await {
                            return;
                        }
                        continue;
                    }
                    None => {
                        self.wake.wait().await;
                        if let SyncPolicy::Interval = self.cfg.sync {
                            glommio::timer::sleep(Duration::from_millis(self.cfg.sync_interval_ms))
                                .await;
                        }
                        continue;
                    }
                }
            }
            let batch = std::mem::take(&mut *self.pending.borrow_mut());
            let target = self.next.get();
            let sync = match self.write_batch(batch).await {
                Ok(sync) => sync,
                Err(e) => {
                    self.poison(e, &on_commit);
                    return;
                }
            };
            if let Some((prev, prev_sync)) = in_flight.replace((target, sync)) {
                if !self.finish_sync(prev, prev_sync, &on_commit).await {
                    return;
                }
            }
        }
    }

    fn poison(&self, e: LogError, on_commit: &impl Fn(Result<Pos, LogError>)) {
        error!(shard = self.shard, error = %e, "log write failed; log poisoned, persistent publishes will be nacked");
        *self.poisoned.borrow_mut() = Some(e.to_string());
        on_commit(Err(e));
        self.committed_notify.notify();
    }

    /// Waits for a batch's sync and reports it. False when it failed.
    async fn finish_sync(
        &self,
        target: Pos,
        sync: glommio::task::JoinHandle<Result<(), LogError>>,
        on_commit: &impl Fn(Result<Pos, LogError>),
    ) -> bool {
        let result = sync
            .await
            .unwrap_or_else(|| Err(io_err(self.shard, target.0, "sync task lost")));
        match result {
            Ok(()) => {
                if self.committed.get() < target {
                    self.committed.set(target);
                }
                on_commit(Ok(target));
                self.committed_notify.notify();
                true
            }
            Err(e) => {
                self.poison(e, on_commit);
                false
            }
        }
    }

    /// Writes a batch (rolling segments as needed) and starts the sync
    /// that makes it durable.
    async fn write_batch(
        &self,
        batch: Vec<(u32, Vec<u8>)>,
    ) -> Result<glommio::task::JoinHandle<Result<(), LogError>>, LogError> {
        #[cfg(feature = "failpoints")]
        if fault::write_fails(self.shard) {
            return Err(io_err(
                self.shard,
                self.next.get().0,
                "injected write failure (fault injection)",
            ));
        }
        for (seq, bytes) in batch {
            let active_seq = self.active.borrow().as_ref().map(|a| a.seq);
            if active_seq != Some(seq) {
                // Seal the full segment: sync it before moving on.
                let sealed = self.active.borrow_mut().take();
                if let Some(a) = sealed {
                    a.file
                        .fdatasync()
                        .await
                        .map_err(|e| io_err(self.shard, a.seq, e))?;
                    info!(
                        shard = self.shard,
                        seq = a.seq,
                        bytes = a.end,
                        "segment sealed"
                    );
                }
                self.create_segment(seq).await?;
            }
            self.write_active(&bytes).await?;
        }
        let file = self
            .active
            .borrow()
            .as_ref()
            .map(|a| (a.seq, a.file.clone()));
        let shard = self.shard;
        Ok(glommio::spawn_local(async move {
            match file {
                Some((seq, file)) => file.fdatasync().await.map_err(|e| io_err(shard, seq, e)),
                None => Ok(()),
            }
        })
        .detach())
    }

    async fn write_active(&self, bytes: &[u8]) -> Result<(), LogError> {
        let (seq, file, start, tail) = {
            let mut active = self.active.borrow_mut();
            let Some(a) = active.as_mut() else {
                return Err(io_err(self.shard, 0, "no active segment"));
            };
            (
                a.seq,
                a.file.clone(),
                a.file.align_down(a.end),
                std::mem::take(&mut a.tail),
            )
        };
        // The partly written last block, then the new bytes, straight into
        // DMA buffers of at most CHUNK bytes each.
        const CHUNK: usize = 1024 * 1024;
        let align = file.alignment() as usize;
        let total = tail.len() + bytes.len();
        let mut pos = start;
        let mut done = 0usize;
        while done < total {
            let len = (total - done).min(CHUNK);
            let size = len.div_ceil(align) * align;
            let mut buf = file.alloc_dma_buffer(size);
            let dst = buf.as_bytes_mut();
            let mut filled = 0;
            if done < tail.len() {
                let n = (tail.len() - done).min(len);
                dst[..n].copy_from_slice(&tail[done..done + n]);
                filled = n;
            }
            let from = done + filled - tail.len();
            let n = len - filled;
            dst[filled..filled + n].copy_from_slice(&bytes[from..from + n]);
            dst[len..].fill(0);
            let written = file
                .write_at(buf, pos)
                .await
                .map_err(|e| io_err(self.shard, seq, e))?;
            if written < len {
                return Err(io_err(
                    self.shard,
                    seq,
                    format!("short write: {written} of {len}"),
                ));
            }
            pos += size as u64;
            done += len;
        }
        // Keep the bytes of the new last, partly filled block.
        let keep_from = total / align * align;
        let new_tail = if keep_from >= tail.len() {
            bytes[keep_from - tail.len()..].to_vec()
        } else {
            let mut t = tail[keep_from..].to_vec();
            t.extend_from_slice(bytes);
            t
        };
        let mut active = self.active.borrow_mut();
        if let Some(a) = active.as_mut() {
            a.end += bytes.len() as u64;
            a.tail = new_tail;
        }
        if let Some(s) = self.segments.borrow_mut().get_mut(&seq) {
            s.size += bytes.len() as u64;
        }
        Ok(())
    }

    /// Reads a record back (page-in). Waits until it is committed.
    ///
    /// # Errors
    /// I/O errors, a missing segment, a record that no longer decodes.
    pub async fn read(&self, loc: LogLoc) -> Result<Bytes, LogError> {
        self.read_span(loc.seq, loc.offset, u64::from(loc.len))
            .await
    }

    /// Reads the records at `locs`, in order. Records that lie close
    /// together in one segment (as a queue's paged-out messages do) are
    /// read with one read of at most [`READ_SPAN_MAX`] bytes, and share
    /// its buffer.
    ///
    /// # Errors
    /// As [`Log::read`].
    pub async fn read_many(&self, locs: &[LogLoc]) -> Result<Vec<Bytes>, LogError> {
        let mut out = Vec::with_capacity(locs.len());
        let mut i = 0;
        while i < locs.len() {
            let first = locs[i];
            let mut end = first.offset + u64::from(first.len);
            let mut j = i + 1;
            while let Some(next) = locs.get(j) {
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
            let span = self
                .read_span(first.seq, first.offset, end - first.offset)
                .await?;
            for loc in &locs[i..j] {
                let at = (loc.offset - first.offset) as usize;
                out.push(span.slice(at..at + loc.len as usize));
            }
            i = j;
        }
        Ok(out)
    }

    /// Reads `len` bytes at `offset` of segment `seq` once they are
    /// committed.
    async fn read_span(&self, seq: u32, offset: u64, len: u64) -> Result<Bytes, LogError> {
        let loc = LogLoc {
            seq,
            offset,
            len: len as u32,
        };
        while self.committed.get() < (loc.seq, loc.offset + u64::from(loc.len)) {
            if self.poisoned.borrow().is_some() {
                return Err(LogError::Poisoned {
                    shard: self.shard,
                    cause: "record was never committed".into(),
                });
            }
            self.committed_notify.wait().await;
        }
        let file = self
            .segments
            .borrow()
            .get(&loc.seq)
            .and_then(|s| s.file.clone())
            .ok_or_else(|| io_err(self.shard, loc.seq, "segment is gone"))?;
        let rr = file
            .read_at(loc.offset, loc.len as usize)
            .await
            .map_err(|e| io_err(self.shard, loc.seq, e))?;
        if rr.len() < loc.len as usize {
            return Err(io_err(self.shard, loc.seq, "short read"));
        }
        Ok(Bytes::copy_from_slice(&rr[..loc.len as usize]))
    }

    /// The oldest sealed segment, if it can be reclaimed: `Some(true)` when
    /// it holds no live record (delete it), `Some(false)` when it is mostly
    /// dead (compact it).
    pub fn reclaimable(&self) -> Option<(u32, bool)> {
        let active = self.active.borrow().as_ref().map(|a| a.seq)?;
        let segs = self.segments.borrow();
        let (&seq, s) = segs.iter().next()?;
        if seq >= active {
            return None;
        }
        if s.live == 0 {
            return Some((seq, true));
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
            std::fs::remove_file(&seg.path).map_err(|e| io_err(self.shard, seq, e))?;
            info!(
                shard = self.shard,
                seq, "segment deleted: every message in it was settled"
            );
        }
        Ok(())
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

    /// Waits until everything appended so far is committed (shutdown).
    pub async fn sync_all(&self) {
        let target = self.next.get();
        while self.committed.get() < target && self.poisoned.borrow().is_none() {
            self.committed_notify.wait().await;
        }
        let _ = warn_if_poisoned(self);
    }
}

/// Fault injection for tests: make a shard's next log writes fail, as a
/// failing disk would. Compiled only with the `failpoints` feature, which
/// only the crate's own tests enable: release binaries carry no hook.
#[cfg(feature = "failpoints")]
pub mod fault {
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Shard whose writes fail, plus one; 0 = none.
    static FAILING: AtomicU32 = AtomicU32::new(0);

    /// Makes every later commit of `shard`'s log fail.
    pub fn fail_writes(shard: u16) {
        FAILING.store(u32::from(shard) + 1, Ordering::SeqCst);
    }

    /// Stops injecting failures.
    pub fn clear() {
        FAILING.store(0, Ordering::SeqCst);
    }

    pub(super) fn write_fails(shard: u16) -> bool {
        FAILING.load(Ordering::Relaxed) == u32::from(shard) + 1
    }
}

fn warn_if_poisoned(log: &Log) -> Option<()> {
    let p = log.poisoned.borrow().clone()?;
    warn!(shard = log.shard, cause = %p, "log poisoned at shutdown");
    Some(())
}
