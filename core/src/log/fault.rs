//! Fault injection for tests: make a shard's log writes or syncs fail, as
//! a failing disk would. Compiled only with the `failpoints` feature, which
//! only the crate's own tests enable: release binaries carry no hook.

use std::sync::atomic::{AtomicU32, Ordering};

/// Shard whose writes fail, plus one; 0 = none.
static WRITES: AtomicU32 = AtomicU32::new(0);
/// Shard whose syncs fail, plus one; 0 = none.
static SYNCS: AtomicU32 = AtomicU32::new(0);
/// Metadata store writes fail (1) or not (0).
static META: AtomicU32 = AtomicU32::new(0);

/// Makes every later write of the metadata store fail.
pub fn fail_meta_writes() {
    META.store(1, Ordering::SeqCst);
}

pub(super) fn meta_writes_fail() -> bool {
    META.load(Ordering::Relaxed) == 1
}

/// Makes every later write of `shard`'s log fail.
pub fn fail_writes(shard: u16) {
    WRITES.store(u32::from(shard) + 1, Ordering::SeqCst);
}

/// Makes every later `fdatasync` of `shard`'s log fail (the writes
/// themselves succeed).
pub fn fail_syncs(shard: u16) {
    SYNCS.store(u32::from(shard) + 1, Ordering::SeqCst);
}

/// Stops injecting failures: the disk is healthy again.
pub fn clear() {
    WRITES.store(0, Ordering::SeqCst);
    SYNCS.store(0, Ordering::SeqCst);
    META.store(0, Ordering::SeqCst);
}

pub(super) fn writes_fail(shard: u16) -> bool {
    WRITES.load(Ordering::Relaxed) == u32::from(shard) + 1
}

pub(super) fn syncs_fail(shard: u16) -> bool {
    SYNCS.load(Ordering::Relaxed) == u32::from(shard) + 1
}
