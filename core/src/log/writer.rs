//! The commit task: writes each batch of appended records, syncs once for
//! all of it (group commit), reports what is durable — and survives a disk
//! that fails.
//!
//! # Failures
//! After a failed write or sync nothing after the last committed position
//! is trusted, and no record is written to the segment again (after a
//! failed `fdatasync` the kernel may have dropped the dirty pages it could
//! not write; a later sync could succeed without them; a zero write
//! already in flight past the records may still land, harmlessly: the
//! Abandoned record fences off everything after the durable end). The
//! writer:
//! 1. reports [`LogEvent::Failed`]: the shard nacks the confirms waiting
//!    and raises the storage alarm;
//! 2. marks the segment with an [`Abandoned`](Record::Abandoned) record
//!    (its durable length) at the start of a new segment, deletes segment
//!    files that hold nothing durable, and copies every record not yet
//!    durable — kept in memory for this — after the marker, recording a
//!    [`Redirect`] so reads of the old locations find them;
//! 3. retries with a growing pause until a write and sync succeed, then
//!    reports [`LogEvent::Recovered`] and carries on.
//!
//! Segment accounting stays with a record's original segment: a segment
//! that records were moved out of is older than the one they moved to, and
//! only the oldest segment is ever deleted.

use std::rc::Rc;
use std::time::Duration;

use glommio::io::DmaFile;
use glommio::task::JoinHandle;
use tracing::{error, info};

use super::error::io_err;
use super::record::Record;
use super::{segment_name, Active, Chunk, Log, LogError, Pos, Redirect, Segment};
use crate::config::SyncPolicy;

/// What the commit task reports to its shard.
#[derive(Debug)]
pub enum LogEvent {
    /// Everything up to this position is durable.
    Committed(Pos),
    /// A write or sync failed: nothing after [`Log::committed`] is known
    /// durable. Those records are being written again.
    Failed(LogError),
    /// A write and sync succeeded after a failure.
    Recovered,
}

/// First pause before writing again after a failure.
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest pause between two attempts.
const RETRY_MAX: Duration = Duration::from_secs(2);

type SyncTask = JoinHandle<Result<(), LogError>>;

impl Log {
    /// Runs the group-commit loop: writes each batch, syncs once, reports
    /// through `on_event`.
    pub async fn run(self: Rc<Self>, on_event: impl Fn(LogEvent)) {
        // The sync of one batch overlaps the write of the next: a batch
        // waits for its own write and sync, not for the previous sync too.
        let mut in_flight: Option<(Pos, SyncTask)> = None;
        let mut pause = RETRY_FIRST;
        loop {
            if self.closed.get() {
                return;
            }
            if self.failing.borrow().is_some() {
                glommio::timer::sleep(pause).await;
                pause = (pause * 2).min(RETRY_MAX);
            } else {
                pause = RETRY_FIRST;
            }
            if self.pending.borrow().is_empty() {
                match in_flight.take() {
                    Some((target, sync)) => {
                        if let Err(e) = self.finish_sync(target, sync, &on_event).await {
                            self.abandon(e, &on_event).await;
                        }
                    }
                    None => self.idle().await,
                }
                continue;
            }
            self.vouch();
            let batch = std::mem::take(&mut *self.pending.borrow_mut());
            let target = self.next.get();
            let result = match self.write_batch(batch).await {
                Ok(sync) => match in_flight.replace((target, sync)) {
                    Some((prev, prev_sync)) => self.finish_sync(prev, prev_sync, &on_event).await,
                    None => Ok(()),
                },
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                in_flight = None;
                self.abandon(e, &on_event).await;
            }
            // In a task of its own, beside the syncs and the next batches.
            self.zero_ahead();
        }
    }

    /// Ends the batch about to be written with a `Synced` record when the
    /// segment it lands in has durable bytes no such record vouched for
    /// yet: after a crash, recovery then knows which bytes of the tail
    /// segment were durable (damage there is corruption) and which were
    /// not (a torn write).
    pub(super) fn vouch(&self) {
        let committed = self.committed.get();
        let rec = Record::Synced { end: committed.1 };
        let (mut seq, offset) = self.next.get();
        if offset > 0 && offset + rec.encoded_len() as u64 > self.cfg.segment_bytes {
            seq += 1;
        }
        if seq != committed.0 || committed.1 == 0 || committed <= self.vouched.get() {
            return;
        }
        self.vouched.set(committed);
        self.append(&rec);
    }

    /// Waits for records to write.
    async fn idle(&self) {
        self.wake.wait().await;
        if let SyncPolicy::Interval = self.cfg.sync {
            glommio::timer::sleep(Duration::from_millis(self.cfg.sync_interval_ms)).await;
        }
    }

    /// Waits for a batch's sync; on success, `target` is durable.
    async fn finish_sync(
        &self,
        target: Pos,
        sync: SyncTask,
        on_event: &impl Fn(LogEvent),
    ) -> Result<(), LogError> {
        sync.await
            .unwrap_or_else(|| Err(io_err(self.shard, target.0, "sync task lost")))?;
        if self.committed.get() < target {
            self.committed.set(target);
        }
        self.unsynced.borrow_mut().retain(|c| c.end() > target);
        if let Some(cause) = self.failing.borrow_mut().take() {
            info!(shard = self.shard, earlier = %cause, "log writes succeed again");
            on_event(LogEvent::Recovered);
        }
        on_event(LogEvent::Committed(target));
        self.committed_notify.notify();
        Ok(())
    }

    /// A write or sync failed: see the module documentation.
    async fn abandon(&self, e: LogError, on_event: &impl Fn(LogEvent)) {
        error!(shard = self.shard, error = %e, "log write or sync failed: persistent publishes waiting are nacked; what is not durable is written again to a new segment");
        *self.failing.borrow_mut() = Some(e.to_string());
        self.failures.set(self.failures.get() + 1);
        self.active.borrow_mut().take();
        let mut chunks: Vec<Chunk> = self.unsynced.borrow_mut().drain(..).collect();
        chunks.append(&mut self.pending.borrow_mut());
        let (from_seq, durable) = self.committed.get();
        let last = chunks
            .iter()
            .map(|c| c.seq)
            .chain([self.next.get().0, from_seq])
            .max()
            .unwrap_or(from_seq);
        let to_seq = last + 1;
        let mut bytes =
            Vec::with_capacity(chunks.iter().map(|c| c.bytes.len()).sum::<usize>() + 64);
        for seq in from_seq..=last {
            let end = if seq == from_seq { durable } else { 0 };
            // A file that holds nothing durable goes; one that cannot be
            // deleted is fenced off like any other.
            if end > 0 || !self.drop_file(seq).await {
                Record::Abandoned { seq, end }.encode(&mut bytes);
            }
        }
        let mut redirects = self.redirects.borrow_mut();
        for mut c in chunks {
            // A Synced record speaks of the segment that holds it: moved,
            // it must vouch for nothing.
            forget_synced(&mut c.bytes);
            redirects.push(Redirect {
                seq: c.seq,
                from: c.offset,
                until: c.offset + c.bytes.len() as u64,
                to_seq,
                to_offset: bytes.len() as u64,
            });
            bytes.extend_from_slice(&c.bytes);
        }
        drop(redirects);
        self.next.set((to_seq, bytes.len() as u64));
        self.segments
            .borrow_mut()
            .entry(to_seq)
            .or_insert_with(|| Segment::new(self.dir.join(segment_name(to_seq))));
        self.pending.borrow_mut().push(Chunk {
            seq: to_seq,
            offset: 0,
            bytes,
        });
        on_event(LogEvent::Failed(e));
        self.committed_notify.notify();
    }

    /// Deletes the file of a segment that holds nothing durable (its
    /// records are being written elsewhere); its entry stays for the
    /// accounting. False when the file is still there.
    async fn drop_file(&self, seq: u32) -> bool {
        let Some((path, file)) = self
            .segments
            .borrow_mut()
            .get_mut(&seq)
            .and_then(|s| Some((s.path.clone(), s.file.take()?)))
        else {
            return true;
        };
        if let Ok(f) = Rc::try_unwrap(file) {
            let _ = f.close().await;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                error!(shard = self.shard, seq, error = %e, "cannot delete a segment that holds nothing durable: an Abandoned record fences it off");
                return false;
            }
        }
        #[cfg(feature = "failpoints")]
        super::power::removed(&path);
        true
    }

    /// Writes a batch (rolling segments as needed) and starts the sync
    /// that makes it durable. The batch's bytes stay in memory until a
    /// sync covers them, also when this fails.
    async fn write_batch(&self, batch: Vec<Chunk>) -> Result<SyncTask, LogError> {
        let mut result = Ok(());
        for chunk in &batch {
            result = self.write_chunk(chunk).await;
            if result.is_err() {
                break;
            }
        }
        self.unsynced.borrow_mut().extend(batch);
        result?;
        let file = self
            .active
            .borrow()
            .as_ref()
            .map(|a| (a.seq, a.file.clone()));
        let shard = self.shard;
        let path = file
            .as_ref()
            .map(|(seq, _)| self.dir.join(segment_name(*seq)));
        Ok(glommio::spawn_local(async move {
            let (Some((seq, file)), Some(path)) = (file, path) else {
                return Ok(());
            };
            sync(shard, seq, &file, &path).await
        })
        .detach())
    }

    /// Writes one chunk, first sealing the active segment and creating
    /// the chunk's when it belongs to another.
    async fn write_chunk(&self, chunk: &Chunk) -> Result<(), LogError> {
        #[cfg(feature = "failpoints")]
        if super::fault::writes_fail(self.shard) {
            return Err(io_err(
                self.shard,
                chunk.seq,
                "injected write failure (fault injection)",
            ));
        }
        let active_seq = self.active.borrow().as_ref().map(|a| a.seq);
        if active_seq != Some(chunk.seq) {
            // Seal the full segment: sync it before moving on.
            let sealed = self.active.borrow_mut().take();
            if let Some(a) = sealed {
                let path = self.dir.join(segment_name(a.seq));
                sync(self.shard, a.seq, &a.file, &path).await?;
                info!(
                    shard = self.shard,
                    seq = a.seq,
                    bytes = a.end,
                    "segment sealed"
                );
            }
            self.create_segment(chunk.seq).await?;
        }
        self.write_active(&chunk.bytes).await
    }

    /// Creates segment `seq`'s file, makes its directory entry durable and
    /// makes it the active segment.
    pub(super) async fn create_segment(&self, seq: u32) -> Result<(), LogError> {
        let path = self.dir.join(segment_name(seq));
        let file: Rc<DmaFile> = Rc::new(
            glommio::io::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .dma_open(&path)
                .await
                .map_err(|e| io_err(self.shard, seq, e))?,
        );
        let dir = glommio::io::Directory::open(&self.dir)
            .await
            .map_err(|e| io_err(self.shard, seq, e))?;
        dir.sync().await.map_err(|e| io_err(self.shard, seq, e))?;
        let _ = dir.close().await;
        #[cfg(feature = "failpoints")]
        super::power::created(&path);
        self.segments
            .borrow_mut()
            .entry(seq)
            .or_insert_with(|| Segment::new(path))
            .file = Some(file.clone());
        *self.active.borrow_mut() = Some(Active {
            seq,
            file,
            end: 0,
            tail: Vec::new(),
            zeroed: 0,
            zeroing: self.cfg.zero_ahead,
            zero_busy: None,
        });
        Ok(())
    }

    async fn write_active(&self, bytes: &[u8]) -> Result<(), LogError> {
        let end = self.active.borrow().as_ref().map_or(0, |a| a.end) + bytes.len() as u64;
        self.clear_of_zeros(end).await;
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
            #[cfg(feature = "failpoints")]
            let dst_len = dst.len();
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
            #[cfg(feature = "failpoints")]
            let copy = super::power::tracking().then(|| buf.as_bytes()[..dst_len].to_vec());
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
            #[cfg(feature = "failpoints")]
            if let Some(copy) = copy {
                super::power::wrote(&self.dir.join(segment_name(seq)), pos, copy);
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
}

/// Rewrites every `Synced` record in `bytes` (whole records) as one that
/// vouches for nothing, in place.
fn forget_synced(bytes: &mut [u8]) {
    let mut at = 0;
    while at < bytes.len() {
        let n = match Record::decode(&bytes[at..]) {
            Ok((Record::Synced { .. }, n)) => {
                let mut zero = Vec::with_capacity(n);
                Record::Synced { end: 0 }.encode(&mut zero);
                bytes[at..at + n].copy_from_slice(&zero);
                n
            }
            Ok((_, n)) => n,
            Err(_) => return,
        };
        at += n;
    }
}

/// `fdatasync` of a segment (with the test-only fault hooks).
async fn sync(
    shard: u16,
    seq: u32,
    file: &DmaFile,
    path: &std::path::Path,
) -> Result<(), LogError> {
    #[cfg(feature = "failpoints")]
    if super::fault::syncs_fail(shard) {
        return Err(io_err(
            shard,
            seq,
            "injected sync failure (fault injection)",
        ));
    }
    #[cfg(feature = "failpoints")]
    let mark = super::power::sync_started(path);
    file.fdatasync().await.map_err(|e| io_err(shard, seq, e))?;
    #[cfg(feature = "failpoints")]
    if !super::power::synced(path, mark) {
        return Err(io_err(shard, seq, "power cut (simulated)"));
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = path;
    Ok(())
}
