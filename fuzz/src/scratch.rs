//! Scratch directories for the targets that write files.
//!
//! They live under `$RINGMQ_FUZZ_TMP`, else `/dev/shm` (tmpfs: `fsync`
//! costs nothing there, and it takes O_DIRECT), else the system temp
//! directory, named after the process. libFuzzer leaves with `exit`, which
//! drops no Rust value, so a directory outlives its process; each new
//! process removes those of processes that are gone.

use std::path::{Path, PathBuf};

/// Prefix of every scratch directory's name.
const PREFIX: &str = "ringmq-fuzz-";

/// The directory scratch directories go in.
pub fn base() -> PathBuf {
    if let Some(dir) = std::env::var_os("RINGMQ_FUZZ_TMP") {
        return PathBuf::from(dir);
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() && tempfile::tempdir_in(shm).is_ok() {
        return shm.to_owned();
    }
    std::env::temp_dir()
}

/// A fresh, empty directory `name` of this process (created; emptied if
/// it existed).
///
/// # Panics
/// The directory cannot be created.
pub fn dir(name: &str) -> PathBuf {
    let base = base();
    remove_stale(&base);
    let dir = base.join(format!("{PREFIX}{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// Removes the scratch directories of processes that no longer run.
fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Empties `dir`, keeping the directory.
pub fn clear(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(&p);
            } else {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
}
