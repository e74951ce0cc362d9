//! The file system alone, without the broker: a write+fdatasync loop
//! shaped like the broker's log writer, a plain O_DIRECT read of the
//! broker's segment files, the page-cache drop between them, and which
//! file system a directory is on.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::driver::new_histogram;
use crate::error::BenchError;

/// Alignment of O_DIRECT buffers, offsets and lengths: the largest
/// logical block size in common use.
pub const ALIGN: usize = 4096;

/// Bytes per read of [`read_direct`].
pub const READ_CHUNK: usize = 1024 * 1024;

/// A zeroed buffer of `len` bytes whose start is [`ALIGN`]ed, inside a
/// larger allocation (no `unsafe` needed).
struct Aligned {
    buf: Vec<u8>,
    at: usize,
    len: usize,
}

impl Aligned {
    fn new(len: usize) -> Aligned {
        let buf = vec![0u8; len + ALIGN];
        let at = buf.as_ptr().align_offset(ALIGN);
        Aligned { buf, at, len }
    }

    fn bytes(&mut self) -> &mut [u8] {
        &mut self.buf[self.at..self.at + self.len]
    }
}

fn open_direct(path: &Path, write: bool) -> Result<File, BenchError> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .create(write)
        .truncate(write)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(path)
        .map_err(|source| BenchError::File {
            path: path.to_owned(),
            source,
        })
}

/// What the write+fdatasync loop measured.
#[derive(Debug)]
pub struct SyncRun {
    /// Latency of one write+fdatasync, ns.
    pub latency: Histogram<u64>,
    /// Wall time of the loop.
    pub elapsed: Duration,
}

/// Appends `block` bytes with O_DIRECT and fdatasyncs, again and again for
/// `length`, to a new file in `dir`: the broker's log writer does the same
/// (O_DIRECT appends to a growing segment, then fdatasync), so each sync
/// also commits the file's new size. The file is removed afterwards.
///
/// # Errors
/// The file cannot be created (O_DIRECT unsupported: tmpfs), written or
/// synced; `block` is not a multiple of [`ALIGN`].
pub fn fdatasync_loop(dir: &Path, block: usize, length: Duration) -> Result<SyncRun, BenchError> {
    if block == 0 || !block.is_multiple_of(ALIGN) {
        return Err(BenchError::BadOption {
            key: "block",
            reason: format!("a multiple of {ALIGN} bytes (O_DIRECT)"),
        });
    }
    let path = dir.join("fdatasync-probe");
    let file = open_direct(&path, true)?;
    let failed = |source| BenchError::File {
        path: path.clone(),
        source,
    };
    let mut buf = Aligned::new(block);
    buf.bytes().fill(0x5a);
    let mut latency = new_histogram();
    let start = Instant::now();
    let mut at = 0u64;
    while start.elapsed() < length {
        let t = Instant::now();
        file.write_all_at(buf.bytes(), at).map_err(failed)?;
        file.sync_data().map_err(failed)?;
        latency.saturating_record((t.elapsed().as_nanos() as u64).max(1));
        at += block as u64;
    }
    let elapsed = start.elapsed();
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok(SyncRun { latency, elapsed })
}

/// Reads `files` whole, one after the other, with O_DIRECT in
/// [`READ_CHUNK`] reads; returns the bytes read and the time taken.
///
/// # Errors
/// A file cannot be opened with O_DIRECT or read.
pub fn read_direct(files: &[PathBuf]) -> Result<(u64, Duration), BenchError> {
    let mut buf = Aligned::new(READ_CHUNK);
    let start = Instant::now();
    let mut total = 0u64;
    for path in files {
        let file = open_direct(path, false)?;
        let mut at = 0u64;
        loop {
            let n = file
                .read_at(buf.bytes(), at)
                .map_err(|source| BenchError::File {
                    path: path.clone(),
                    source,
                })?;
            if n == 0 {
                break;
            }
            at += n as u64;
        }
        total += at;
    }
    Ok((total, start.elapsed()))
}

/// The broker's segment files under its data directory (`shard-N/*.seg`),
/// by shard and sequence number, with their sizes.
///
/// # Errors
/// The data directory cannot be listed.
pub fn segments(data_dir: &Path) -> Result<Vec<(PathBuf, u64)>, BenchError> {
    let list = |dir: &Path| {
        std::fs::read_dir(dir).map_err(|source| BenchError::File {
            path: dir.to_owned(),
            source,
        })
    };
    let mut out = Vec::new();
    for shard in list(data_dir)?.flatten() {
        let name = shard.file_name();
        if !name.to_string_lossy().starts_with("shard-") {
            continue;
        }
        for seg in list(&shard.path())?.flatten() {
            let path = seg.path();
            if path.extension().is_some_and(|e| e == "seg") {
                // A segment reclaimed meanwhile is simply not counted.
                if let Ok(meta) = seg.metadata() {
                    out.push((path, meta.len()));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Total bytes of the segment files under `data_dir` (0 before the broker
/// created any).
pub fn segment_bytes(data_dir: &Path) -> u64 {
    segments(data_dir).map_or(0, |s| s.iter().map(|(_, len)| len).sum())
}

/// Writes dirty pages back (`sync`) and drops the page cache (`echo 3 >
/// /proc/sys/vm/drop_caches`), so that what is read next comes from the
/// device.
///
/// # Errors
/// Why the cache could not be dropped (not root, a read-only /proc).
pub fn drop_page_cache() -> Result<(), String> {
    rustix::fs::sync();
    std::fs::write("/proc/sys/vm/drop_caches", "3")
        .map_err(|e| format!("cannot write /proc/sys/vm/drop_caches: {e}"))
}

/// The file system a directory is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// Mount point.
    pub point: String,
    /// File system type (`ext4`, `xfs`, ...).
    pub fs_type: String,
    /// Device or source.
    pub source: String,
}

impl Mount {
    /// The mount of `path` (canonicalized) in this process's mount table.
    pub fn of(path: &Path) -> Option<Mount> {
        let path = path.canonicalize().ok()?;
        let table = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        mount_of(&table, &path)
    }
}

/// The entry of a `/proc/self/mountinfo` table whose mount point is the
/// longest prefix of `path` (the last one mounted, on a tie).
pub fn mount_of(mountinfo: &str, path: &Path) -> Option<Mount> {
    let mut best: Option<Mount> = None;
    for line in mountinfo.lines() {
        // id parent major:minor root point options [optional...] - type source super
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(point), Some(fs_type), Some(source)) =
            (fields.get(4), fields.get(dash + 1), fields.get(dash + 2))
        else {
            continue;
        };
        let point = point.replace("\\040", " ");
        if !path.starts_with(&point) {
            continue;
        }
        if best.as_ref().is_some_and(|b| b.point.len() > point.len()) {
            continue;
        }
        best = Some(Mount {
            point,
            fs_type: (*fs_type).to_owned(),
            source: (*source).to_owned(),
        });
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 1 252:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
35 22 0:30 / /tmp rw,nosuid shared:15 - tmpfs tmpfs rw,size=100k
36 22 0:31 / /data\\040disk rw - xfs /dev/vdb1 rw
";

    #[test]
    fn the_longest_mount_point_wins() {
        let m = mount_of(TABLE, Path::new("/tmp/x/data")).unwrap();
        assert_eq!((m.point.as_str(), m.fs_type.as_str()), ("/tmp", "tmpfs"));
        let m = mount_of(TABLE, Path::new("/work/main")).unwrap();
        assert_eq!(
            (m.fs_type.as_str(), m.source.as_str()),
            ("ext4", "/dev/vda")
        );
        let m = mount_of(TABLE, Path::new("/data disk/q")).unwrap();
        assert_eq!(m.fs_type, "xfs");
        // A prefix of a name is not a parent directory.
        assert_eq!(mount_of(TABLE, Path::new("/tmpx")).unwrap().point, "/");
    }

    #[test]
    fn aligned_buffers_are_aligned() {
        let mut b = Aligned::new(READ_CHUNK);
        assert_eq!(b.bytes().as_ptr() as usize % ALIGN, 0);
        assert_eq!(b.bytes().len(), READ_CHUNK);
    }
}
