//! A simulated power loss for tests, in the spirit of LazyFS: the segment
//! log reports every write, `fdatasync`, creation, truncation and removal
//! of a segment file here, and this layer keeps, per file, the bytes a
//! successful sync made durable. [`cut`] is the moment the power goes:
//! later syncs fail (nothing more is confirmed) and later writes do not
//! count. [`restore`] then puts every tracked file back to what a disk
//! would hold after the loss — the durable bytes, and optionally a random
//! part of the writes no sync covered, torn at sector boundaries, as a
//! disk with a volatile cache may leave them.
//!
//! `kill -9` keeps the page cache, so it never tests `fdatasync`; this
//! does. Compiled only with the `failpoints` feature. Only segment files
//! (under `shard-*/`) are tracked: the metadata store syncs every change
//! before it is acknowledged and is not modelled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Bytes a sector holds: the unit a torn write keeps or loses.
const SECTOR: usize = 512;

#[derive(Default)]
struct Tracked {
    /// What a sync made durable.
    durable: Vec<u8>,
    /// Writes since, in order: (offset, bytes).
    unsynced: Vec<(u64, Vec<u8>)>,
}

struct State {
    root: PathBuf,
    files: BTreeMap<PathBuf, Tracked>,
    /// The power is gone.
    cut: bool,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn with<T>(path: &Path, f: impl FnOnce(&mut State, PathBuf) -> T) -> Option<T> {
    let mut guard = STATE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let state = guard.as_mut()?;
    let in_shard = path.strip_prefix(&state.root).ok().is_some_and(|rel| {
        rel.components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .is_some_and(|d| d.starts_with("shard-"))
    });
    in_shard.then(|| f(state, path.to_owned()))
}

/// Starts tracking the segment files under the data directory `root`:
/// what they hold now counts as durable.
///
/// # Panics
/// A file that cannot be read.
pub fn track(root: &Path) {
    let mut files = BTreeMap::new();
    for path in segment_files(root) {
        let durable = std::fs::read(&path).expect("read a segment to track");
        files.insert(
            path,
            Tracked {
                durable,
                unsynced: Vec::new(),
            },
        );
    }
    *STATE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(State {
        root: root.to_owned(),
        files,
        cut: false,
    });
}

/// True while a data directory is tracked (writers copy their bytes for
/// [`wrote`] only then).
pub fn tracking() -> bool {
    STATE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .is_some()
}

/// `bytes` were written at `offset` of `path`.
pub fn wrote(path: &Path, offset: u64, bytes: Vec<u8>) {
    with(path, |s, p| {
        if !s.cut {
            s.files.entry(p).or_default().unsynced.push((offset, bytes));
        }
    });
}

/// A sync of `path` starts: it will cover the writes recorded so far.
pub fn sync_started(path: &Path) -> usize {
    with(path, |s, p| s.files.get(&p).map_or(0, |f| f.unsynced.len())).unwrap_or(0)
}

/// A sync of `path` that started at `mark` succeeded; false when the
/// power is gone (the caller reports the sync as failed).
pub fn synced(path: &Path, mark: usize) -> bool {
    with(path, |s, p| {
        if s.cut {
            return false;
        }
        let f = s.files.entry(p).or_default();
        let done: Vec<_> = f.unsynced.drain(..mark.min(f.unsynced.len())).collect();
        for (offset, bytes) in done {
            apply(&mut f.durable, offset, &bytes);
        }
        true
    })
    .unwrap_or(true)
}

/// `path` was created empty and its directory synced.
pub fn created(path: &Path) {
    with(path, |s, p| {
        if !s.cut {
            s.files.insert(p, Tracked::default());
        }
    });
}

/// `path` was cut to `len` bytes and synced.
pub fn truncated(path: &Path, len: u64) {
    with(path, |s, p| {
        if !s.cut {
            if let Some(f) = s.files.get_mut(&p) {
                f.durable.truncate(len as usize);
            }
        }
    });
}

/// `path` was deleted (its directory is synced before anything depends on
/// that).
pub fn removed(path: &Path) {
    with(path, |s, p| {
        if !s.cut {
            s.files.remove(&p);
        }
    });
}

/// The power goes: later syncs fail, later writes and removals are lost.
pub fn cut() {
    if let Some(s) = STATE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_mut()
    {
        s.cut = true;
    }
}

/// What survives of the writes no sync covered.
#[derive(Debug, Clone, Copy)]
pub enum Unsynced {
    /// Nothing (LazyFS's default model).
    Lost,
    /// Each write, independently: nothing, all of it, or a random run of
    /// its sectors from the start; chosen from `seed`.
    Torn {
        /// Seed of the choices.
        seed: u64,
    },
}

/// After [`cut`] and once the broker stopped: puts every tracked segment
/// file back to what the disk holds after the power loss, removes segment
/// files created after the last durable point, stops tracking. Returns the
/// bytes of unsynced writes lost (wholly or in part).
///
/// # Panics
/// A file that cannot be written.
pub fn restore(unsynced: Unsynced) -> u64 {
    let Some(state) = STATE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
    else {
        return 0;
    };
    let mut rng = match unsynced {
        Unsynced::Torn { seed } => seed | 1,
        Unsynced::Lost => 0,
    };
    let mut lost = 0u64;
    for path in segment_files(&state.root) {
        if !state.files.contains_key(&path) {
            std::fs::remove_file(&path).expect("remove a segment created after the cut");
        }
    }
    for (path, f) in state.files {
        let mut bytes = f.durable;
        for (offset, w) in f.unsynced {
            let keep = if rng == 0 || w.is_empty() {
                0
            } else {
                match next(&mut rng) % 3 {
                    0 => 0,
                    1 => w.len(),
                    _ => (next(&mut rng) as usize % w.len().div_ceil(SECTOR)) * SECTOR,
                }
            };
            let keep = keep.min(w.len());
            lost += (w.len() - keep) as u64;
            apply(&mut bytes, offset, &w[..keep]);
        }
        std::fs::write(&path, &bytes).expect("restore a segment");
    }
    lost
}

/// The segment files under `root` (in its `shard-*` directories).
fn segment_files(root: &Path) -> Vec<PathBuf> {
    let shards = std::fs::read_dir(root).into_iter().flatten().flatten();
    shards
        .filter(|d| d.file_name().to_string_lossy().starts_with("shard-"))
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .map(|f| f.path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect()
}

fn apply(image: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let at = offset as usize;
    if image.len() < at + bytes.len() {
        image.resize(at + bytes.len(), 0);
    }
    image[at..at + bytes.len()].copy_from_slice(bytes);
}

/// xorshift64: enough randomness for choosing what a crash keeps.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_count_only_once_synced() {
        let mut image = Vec::new();
        apply(&mut image, 4, b"ab");
        assert_eq!(image, [0, 0, 0, 0, b'a', b'b']);
        apply(&mut image, 0, b"xyz");
        assert_eq!(&image[..3], b"xyz");
    }
}
