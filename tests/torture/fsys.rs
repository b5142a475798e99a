//! The filesystems, made once per test run and reused (a fresh file per scenario): loop
//! images of ext4, ext3, xfs, btrfs and vfat, a tmpfs and a hugetlbfs; and the file
//! that makes one nearly full.

use crate::common::{self, LoopFs, Scratch};
use crate::gen::{Fs, MIB};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Each image (sparse): xfs needs 300 MiB; room for the largest scenario file many
/// times over, and small enough to make
/// in a moment.
const IMAGE_SIZE: u64 = 512 * MIB;

/// A mount the common harness does not make (vfat, hugetlbfs); unmounted when dropped.
struct OwnMount {
    mnt: PathBuf,
    image: Option<PathBuf>,
}

impl Drop for OwnMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.mnt).status();
        if let Some(i) = &self.image {
            let _ = std::fs::remove_file(i);
        }
        let _ = std::fs::remove_dir(&self.mnt);
    }
}

enum Mounted {
    Loop(LoopFs),
    Own(OwnMount),
    Proc,
}

pub struct Filesystems {
    mounts: HashMap<Fs, Mounted>,
}

impl Filesystems {
    /// Mounts every filesystem this machine can make. Under CI=true a missing tool or
    /// root is a failure (common::require); else what cannot be made is left out.
    pub fn new(s: &Scratch) -> Filesystems {
        let mut mounts = HashMap::new();
        mounts.insert(Fs::Procfs, Mounted::Proc);
        if !common::require(common::is_root(), "the torture test's filesystems need root") {
            return Filesystems { mounts };
        }
        for fs in [Fs::Ext4, Fs::Ext3, Fs::Xfs, Fs::Btrfs, Fs::Tmpfs] {
            if let Some(m) = common::mount(s, fs.name(), IMAGE_SIZE) {
                mounts.insert(fs, Mounted::Loop(m));
            }
        }
        let kernel_has = |fs: &str| {
            std::fs::read_to_string("/proc/filesystems")
                .is_ok_and(|f| f.lines().any(|l| l.ends_with(&format!("\t{fs}"))))
        };
        // A kernel built without vfat is not this machine's fault: said, not failed.
        if !kernel_has("vfat") {
            eprintln!("torture: the kernel has no vfat; scenarios on it are left out");
        } else if common::require(
            common::have("mkfs.vfat"),
            "mkfs.vfat is not installed (scripts/setup.sh installs dosfstools)",
        ) {
            let mnt = s.path("mnt-vfat");
            let image = s.path("vfat.img");
            std::fs::create_dir_all(&mnt).expect("mkdir");
            std::fs::File::create(&image).and_then(|f| f.set_len(IMAGE_SIZE / 2)).expect("vfat image");
            common::sh(&format!("mkfs.vfat -F 32 {} >/dev/null", image.display()));
            common::sh(&format!("mount -o loop {} {}", image.display(), mnt.display()));
            mounts.insert(Fs::Vfat, Mounted::Own(OwnMount { mnt, image: Some(image) }));
        }
        if common::require(kernel_has("hugetlbfs"), "the kernel has no hugetlbfs") {
            let mnt = s.path("mnt-hugetlbfs");
            std::fs::create_dir_all(&mnt).expect("mkdir");
            common::sh(&format!("mount -t hugetlbfs nosparse-torture {}", mnt.display()));
            mounts.insert(Fs::Hugetlbfs, Mounted::Own(OwnMount { mnt, image: None }));
        }
        Filesystems { mounts }
    }

    pub fn available(&self) -> Vec<Fs> {
        Fs::ALL.iter().copied().filter(|f| self.mounts.contains_key(f)).collect()
    }

    /// Where `fs` is mounted (None for procfs).
    pub fn mnt(&self, fs: Fs) -> Option<&Path> {
        match self.mounts.get(&fs)? {
            Mounted::Loop(l) => Some(&l.mnt),
            Mounted::Own(o) => Some(&o.mnt),
            Mounted::Proc => None,
        }
    }
}

/// Writes out and commits everything on the filesystem holding `dir` (freed extents
/// of a deleted file included), so that its free space can be compared.
pub fn syncfs(dir: &Path) {
    let d = std::fs::File::open(dir).expect("open the mount point");
    use std::os::unix::io::AsRawFd;
    // SAFETY: a valid fd.
    unsafe { libc::syncfs(d.as_raw_fd()) };
}

/// Free bytes of the filesystem at `dir`, after a sync.
pub fn free(dir: &Path) -> u64 {
    syncfs(dir);
    common::free_bytes(dir)
}

/// Bytes of the filesystem at `dir` available to unprivileged users (f_bavail): what a
/// careful room check counts.
fn available(dir: &Path) -> u64 {
    syncfs(dir);
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).expect("no NUL");
    // SAFETY: zeroed statvfs is a valid out-parameter; c is NUL-terminated.
    let mut st: libc::statvfs64 = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::statvfs64(c.as_ptr(), &mut st) }, 0, "statvfs {}", dir.display());
    st.f_bavail * st.f_frsize as u64
}

/// A file that takes all but `leave` bytes of the filesystem at `dir`: of what is
/// available to everyone (f_bavail), or with `even_reserved`, of what root can take
/// (f_bfree); removed when dropped.
pub struct Filler(PathBuf);

impl Filler {
    pub fn new(dir: &Path, leave: u64, even_reserved: bool) -> Filler {
        let path = dir.join("filler");
        let f = std::fs::File::create(&path).expect("create the filler");
        let room = || if even_reserved { free(dir) } else { available(dir) };
        // In steps, smaller ones where the filesystem's own metadata takes the last bytes.
        let (mut at, mut step) = (0u64, 64 * MIB);
        while step >= 64 * 1024 {
            let take = room().saturating_sub(leave).min(step);
            if take == 0 {
                break;
            }
            use std::os::unix::io::AsRawFd;
            // SAFETY: a valid fd; the filesystem is ext4 or xfs, which have fallocate.
            if unsafe { libc::fallocate64(f.as_raw_fd(), 0, at as i64, take as i64) } == 0 {
                at += take;
            } else {
                let e = std::io::Error::last_os_error();
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "fallocate the filler: {e}");
                step /= 2;
            }
        }
        Filler(path)
    }
}

impl Drop for Filler {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Bytes of `before` not free again on the filesystem at `dir`, waiting up to a
/// second for what a deleted file held to be given back (xfs and btrfs free it in the
/// background).
pub fn leaked(dir: &Path, before: u64, slack: u64) -> u64 {
    let mut leaked = 0;
    for _ in 0..20 {
        leaked = before.saturating_sub(free(dir));
        if leaked <= slack {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    leaked
}
