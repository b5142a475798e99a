//! Filesystems made in image files and loop-mounted (root only), for the tests and the
//! benchmark.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};

/// A mounted filesystem; unmounted, and its image removed, when dropped.
pub struct LoopFs {
    pub mnt: PathBuf,
    image: PathBuf,
}

/// Mounting is serialised: loop devices are a shared resource.
static MOUNTS: Mutex<()> = Mutex::new(());

fn mounts() -> MutexGuard<'static, ()> {
    MOUNTS.lock().unwrap_or_else(|e| e.into_inner())
}

impl LoopFs {
    /// Makes a `kind` filesystem (an mkfs suffix: ext4, ext3, xfs, btrfs; or tmpfs) of
    /// `size` bytes in an image file under `dir`, and mounts it there.
    pub fn new(dir: &Path, kind: &str, size: u64) -> Result<LoopFs, String> {
        static SERIAL: AtomicU32 = AtomicU32::new(0);
        let n = SERIAL.fetch_add(1, Ordering::Relaxed);
        let mnt = dir.join(format!("mnt-{kind}-{n}"));
        let image = dir.join(format!("{kind}-{n}.img"));
        std::fs::create_dir_all(&mnt).map_err(|e| format!("mkdir {}: {e}", mnt.display()))?;
        let _serial = mounts();
        if kind == "tmpfs" {
            sh(&format!("mount -t tmpfs -o size={size} nosparse-test {}", mnt.display()))?;
        } else {
            File::create(&image)
                .and_then(|f| f.set_len(size))
                .map_err(|e| format!("image {}: {e}", image.display()))?;
            let force = if matches!(kind, "xfs" | "btrfs") { "-q -f" } else { "-q -F" };
            sh(&format!("mkfs.{kind} {force} {}", image.display()))?;
            sh(&format!("mount -o loop {} {}", image.display(), mnt.display()))?;
        }
        Ok(LoopFs { mnt, image })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.mnt.join(name)
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _serial = mounts();
        let _ = Command::new("umount").arg(&self.mnt).status();
        let _ = std::fs::remove_file(&self.image);
        let _ = std::fs::remove_dir(&self.mnt);
    }
}

/// Runs a shell command; its stdout, or an error with its output.
pub fn sh(cmd: &str) -> Result<String, String> {
    let out = Command::new("sh").arg("-c").arg(cmd).output().map_err(|e| format!("sh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{cmd}` failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
