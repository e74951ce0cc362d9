//! A small ext4 file system on a loop device, for tests that need a real
//! disk to fill up. Mounting needs root: without it (or without
//! `losetup`, `mkfs.ext4`, `mount`) [`loop_fs_or_skip`] says loudly that
//! the test is skipped. See docs/storage-faults.md.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A loop-mounted ext4 file system in a temporary directory: unmounted,
/// detached and deleted on drop, also when the test panics.
pub struct LoopFs {
    /// Holds the image and the mount point; removed last.
    _dir: tempfile::TempDir,
    image: PathBuf,
    /// Where it is mounted.
    pub mnt: PathBuf,
    /// The loop device, once attached.
    pub dev: Option<String>,
    mounted: bool,
}

/// A loop file system of `bytes`, or `None` after saying loudly why the
/// test is skipped. With `RINGMQ_REQUIRE_LOOP_DEVICE` set, a skip fails.
pub fn loop_fs_or_skip(bytes: u64) -> Option<LoopFs> {
    match LoopFs::create(bytes) {
        Ok(fs) => Some(fs),
        Err(why) => {
            assert!(
                std::env::var_os("RINGMQ_REQUIRE_LOOP_DEVICE").is_none(),
                "RINGMQ_REQUIRE_LOOP_DEVICE is set but no loop device: {why}"
            );
            // Straight to stderr: the test harness captures `eprintln!`
            // of a test that passes, and this must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "\n==========\nSKIPPED: needs root to mount a loop device, with losetup, \
                 mkfs.ext4 and mount ({why}); this test did NOT run\n==========\n"
            );
            None
        }
    }
}

impl LoopFs {
    /// Makes, attaches and mounts an ext4 image of `bytes`.
    ///
    /// # Errors
    /// Why the file system cannot be made (not root, a tool missing).
    pub fn create(bytes: u64) -> Result<LoopFs, String> {
        let uid = run("id", &["-u"])?;
        if uid != "0" {
            return Err(format!("running as uid {uid}"));
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut fs = LoopFs {
            image: dir.path().join("ext4.img"),
            mnt: dir.path().join("mnt"),
            _dir: dir,
            dev: None,
            mounted: false,
        };
        let image = fs
            .image
            .to_str()
            .ok_or("temp path is not UTF-8")?
            .to_owned();
        let mnt = fs.mnt.to_str().ok_or("temp path is not UTF-8")?.to_owned();
        std::fs::File::create(&fs.image)
            .and_then(|f| f.set_len(bytes))
            .map_err(|e| format!("image {image}: {e}"))?;
        // 4 KiB blocks (mkfs picks 1 KiB for a file system this small),
        // nothing reserved for root (the broker runs as root here), few
        // inodes (their tables would take a tenth of the space).
        let opts = ["-q", "-F", "-b", "4096", "-m", "0", "-T", "largefile"];
        run("mkfs.ext4", &[&opts[..], &[image.as_str()]].concat())?;
        fs.dev = Some(run("losetup", &["--find", "--show", &image])?);
        std::fs::create_dir(&fs.mnt).map_err(|e| e.to_string())?;
        let dev = fs.dev.clone().unwrap_or_default();
        run("mount", &["-t", "ext4", &dev, &mnt])?;
        fs.mounted = true;
        Ok(fs)
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        if self.mounted {
            let mnt = self.mnt.to_string_lossy().into_owned();
            if let Err(e) = run("umount", &[&mnt]) {
                // Files still open keep it busy; it goes when they close
                // (at the latest when this process exits).
                let open = open_files_under(&self.mnt);
                eprintln!(
                    "umount {mnt}: {e}; {} files on it are open in this process \
                     (first {:?}); unmounting lazily",
                    open.len(),
                    open.first()
                );
                let _ = run("umount", &["-l", &mnt]);
            }
        }
        if let Some(dev) = &self.dev {
            // On a device still in use this only marks it to go when the
            // last user closes it.
            if let Err(e) = run("losetup", &["-d", dev]) {
                eprintln!("losetup -d {dev}: {e}");
            }
        }
        // The temporary directory (image, mount point) goes after this.
    }
}

/// Files under `dir` this process has open.
pub fn open_files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    fds.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// Runs a command; its trimmed stdout, or what went wrong.
pub fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Writes one block with O_DIRECT in `dir`, as the broker's log does.
///
/// # Errors
/// The open, write or sync fails (O_DIRECT is refused, for one).
pub fn o_direct_write(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let path = dir.join("o_direct_probe");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(&path)?;
    let buf = vec![7u8; 8192];
    let at = buf.as_ptr().align_offset(4096);
    file.write_all_at(&buf[at..at + 4096], 0)?;
    file.sync_data()?;
    drop(file);
    std::fs::remove_file(path)
}
