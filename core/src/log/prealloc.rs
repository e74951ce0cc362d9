//! Zeros ahead of the active segment's data, written before the records
//! reach them.
//!
//! An `O_DIRECT` write that extends a file changes its size: the write is
//! handed to a kernel worker thread (it cannot complete without blocking),
//! and the `fdatasync` that follows must write the inode as well as flush
//! the device cache. Overwriting blocks the file already has needs
//! neither. On this machine's ext4 that halves the sync (append +
//! fdatasync p50 ≈ 270 µs, overwrite + fdatasync ≈ 150 µs) and removes a
//! thread switch per write.
//!
//! So after each batch the commit task starts a write of the next [`STEP`]
//! of zeros past the active segment's records once fewer than [`STEP`]/2
//! of them are left (never past `segment_bytes`). The zero write runs in a
//! task of its own, beside the syncs and the next batches: a record write
//! waits for it only if it would reach the bytes being zeroed (a batch
//! larger than the zeros left; the first batch of a segment grows the file
//! itself). Zeros are what the format already has after the last record
//! ("a record length of 0 means no more records"), so recovery and the
//! on-disk format do not change. Each segment file, sealed ones included,
//! may thus run up to 1.5·[`STEP`] past its records until it is deleted. A
//! failed zero write (a full disk) only stops the zeroing for that
//! segment: records are then appended as before.

use std::rc::Rc;

use tracing::warn;

use super::Log;

/// Zeros written at once.
pub(super) const STEP: u64 = 1024 * 1024;

impl Log {
    /// Starts writing the next [`STEP`] of zeros after the active
    /// segment's records when fewer than [`STEP`]/2 remain and no zero
    /// write is in flight.
    pub(super) fn zero_ahead(self: &Rc<Self>) {
        let (seq, file, from, len) = {
            let mut active = self.active.borrow_mut();
            let Some(a) = active.as_mut() else { return };
            if !a.zeroing || a.zero_busy.is_some() {
                return;
            }
            let align = a.file.alignment();
            // Records may have overtaken the zeros.
            a.zeroed = a.zeroed.max(a.end.div_ceil(align) * align);
            let limit = self.cfg.segment_bytes.div_ceil(align) * align;
            if a.zeroed >= limit || a.zeroed >= a.end + STEP / 2 {
                return;
            }
            a.zero_busy = Some(a.zeroed);
            let len = STEP.min(limit - a.zeroed) as usize;
            (a.seq, a.file.clone(), a.zeroed, len)
        };
        let log = self.clone();
        glommio::spawn_local(async move {
            let mut buf = file.alloc_dma_buffer(len);
            buf.as_bytes_mut().fill(0);
            let result = file.write_at(buf, from).await.map_err(|e| e.to_string());
            log.zeros_written(seq, from, len, result);
        })
        .detach();
    }

    /// Records the outcome of a zero write and releases the record writes
    /// waiting for it.
    fn zeros_written(&self, seq: u32, from: u64, len: usize, result: Result<usize, String>) {
        if let Some(a) = self.active.borrow_mut().as_mut().filter(|a| a.seq == seq) {
            a.zero_busy = None;
            match result {
                Ok(n) if n == len => {
                    a.zeroed = a.zeroed.max(from + len as u64);
                    #[cfg(feature = "failpoints")]
                    if super::power::tracking() {
                        let path = self.dir.join(super::segment_name(seq));
                        super::power::wrote(&path, from, vec![0u8; len]);
                    }
                }
                outcome => {
                    a.zeroing = false;
                    let error = match outcome {
                        Ok(n) => format!("short write: {n} of {len}"),
                        Err(e) => e,
                    };
                    warn!(shard = self.shard, seq, %error, "cannot write zeros ahead of the log's records; this segment grows with its records instead (slower syncs)");
                }
            }
        }
        self.zeros_done.notify();
    }

    /// Waits until no zero write in flight lies below `end`, where a record
    /// write is about to reach (rounded up to whole blocks).
    pub(super) async fn clear_of_zeros(&self, end: u64) {
        loop {
            let busy = self.active.borrow().as_ref().and_then(|a| {
                let align = a.file.alignment();
                a.zero_busy
                    .filter(|from| end.div_ceil(align) * align > *from)
            });
            if busy.is_none() {
                return;
            }
            self.zeros_done.wait().await;
        }
    }
}
