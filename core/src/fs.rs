//! Which filesystem a file lives on, from `fstatfs`'s magic number; for overlay
//! (containers), the filesystem of its upper layer, which holds the data written.
//!
//! The engine acts only on the kinds named here — an allow-list, each for a reason:
//! - ext2/3/4, xfs, btrfs: file data in blocks on a local disk, where a sparse file
//!   fragments and can run out of room later; the zero fill may run there (their
//!   FIEMAP shows holes, and a shared mapping allocates a page's block when written);
//! - nfs, fuse: data on a disk elsewhere; fallocate where the server supports it, never
//!   zeros (a mapping's page written back whole could overwrite another client's data);
//! - tmpfs, ramfs: RAM (preallocating pins it), zfs: copy-on-write (its fallocate only
//!   reserves) — skipped by `NOSPARSE_SKIP_FS`'s default;
//! - overlay: judged by its upper layer.
//!
//! Everything else is passed through, silently: procfs (`/proc/PID/mem` is how
//! debuggers write breakpoints), sysfs, hugetlbfs, FAT (no holes: the kernel writes the
//! zeros itself), and any magic number not listed.

use crate::sys;
use core::fmt;

/// Filesystems the policy tells apart. ext2, ext3 and ext4 share one magic number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsKind {
    Ext,
    Xfs,
    Btrfs,
    Tmpfs,
    Ramfs,
    Zfs,
    Nfs,
    /// overlayfs; the policy judges its upper layer's filesystem instead where it can.
    Overlay,
    Fuse,
    Other(u32),
}

/// Magic numbers from `<linux/magic.h>` (and ZFS's own).
const EXT_MAGIC: u32 = 0xEF53;
const XFS_MAGIC: u32 = 0x5846_5342;
const BTRFS_MAGIC: u32 = 0x9123_683E;
const TMPFS_MAGIC: u32 = 0x0102_1994;
const RAMFS_MAGIC: u32 = 0x8584_58F6;
const ZFS_MAGIC: u32 = 0x2FC1_2FC1;
const NFS_MAGIC: u32 = 0x6969;
const OVERLAY_MAGIC: u32 = 0x794C_7630;
const FUSE_MAGIC: u32 = 0x6573_5546;

impl FsKind {
    /// Every kind that has a settings name.
    pub const NAMED: [FsKind; 9] = [
        FsKind::Ext,
        FsKind::Xfs,
        FsKind::Btrfs,
        FsKind::Tmpfs,
        FsKind::Ramfs,
        FsKind::Zfs,
        FsKind::Nfs,
        FsKind::Overlay,
        FsKind::Fuse,
    ];

    /// The kind for an `f_type` value (compared as 32 bits: i686 reports it signed).
    pub fn from_magic(magic: u32) -> Self {
        match magic {
            EXT_MAGIC => FsKind::Ext,
            XFS_MAGIC => FsKind::Xfs,
            BTRFS_MAGIC => FsKind::Btrfs,
            TMPFS_MAGIC => FsKind::Tmpfs,
            RAMFS_MAGIC => FsKind::Ramfs,
            ZFS_MAGIC => FsKind::Zfs,
            NFS_MAGIC => FsKind::Nfs,
            OVERLAY_MAGIC => FsKind::Overlay,
            FUSE_MAGIC => FsKind::Fuse,
            other => FsKind::Other(other),
        }
    }

    /// The kind of the filesystem holding `fd` (for an overlay: overlay; see [`data_fs`]).
    pub fn of_fd(fd: i32) -> crate::error::Result<Self> {
        Ok(Self::from_magic(sys::fstatfs(fd)?.kind))
    }

    /// The kind of the filesystem holding the file at `path`, which ends with a NUL.
    pub fn of_path(path: &[u8]) -> crate::error::Result<Self> {
        Ok(Self::from_magic(sys::statfs(path)?.kind))
    }

    /// Whether the engine may act on this filesystem at all (see the module's list).
    pub fn known(self) -> bool {
        !matches!(self, FsKind::Other(_))
    }

    /// Whether the zero fill may run here: local block filesystems only.
    pub fn zero_fill(self) -> bool {
        matches!(self, FsKind::Ext | FsKind::Xfs | FsKind::Btrfs)
    }

    /// The name used in settings (`NOSPARSE_SKIP_FS`) and log lines.
    pub fn name(self) -> &'static str {
        match self {
            FsKind::Ext => "ext",
            FsKind::Xfs => "xfs",
            FsKind::Btrfs => "btrfs",
            FsKind::Tmpfs => "tmpfs",
            FsKind::Ramfs => "ramfs",
            FsKind::Zfs => "zfs",
            FsKind::Nfs => "nfs",
            FsKind::Overlay => "overlay",
            FsKind::Fuse => "fuse",
            FsKind::Other(_) => "other",
        }
    }

    /// The kind a settings name stands for; `other` cannot be named.
    pub fn from_name(name: &[u8]) -> Option<Self> {
        Self::NAMED.into_iter().find(|k| k.name().as_bytes() == name)
    }

    /// A bit for sets of kinds; all unnamed filesystems share one.
    pub const fn bit(self) -> u32 {
        match self {
            FsKind::Ext => 1,
            FsKind::Xfs => 1 << 1,
            FsKind::Btrfs => 1 << 2,
            FsKind::Tmpfs => 1 << 3,
            FsKind::Ramfs => 1 << 4,
            FsKind::Zfs => 1 << 5,
            FsKind::Nfs => 1 << 6,
            FsKind::Overlay => 1 << 7,
            FsKind::Fuse => 1 << 8,
            FsKind::Other(_) => 1 << 9,
        }
    }
}

impl fmt::Display for FsKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsKind::Other(magic) => write!(f, "fs 0x{magic:x}"),
            kind => f.write_str(kind.name()),
        }
    }
}

/// Where a file's data goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataFs {
    /// The filesystem that holds the data (an overlay's upper layer, when found).
    pub kind: FsKind,
    /// The file is on an overlay.
    pub overlay: bool,
    pub statfs: sys::StatFs,
}

/// The filesystem that will hold `fd`'s data, and its free space: `fstatfs(fd)`, or for
/// an overlay, `statfs` of its upper directory. `buf` is scratch space for reading
/// `/proc/self/mountinfo`. An overlay whose upper layer cannot be found stays overlay.
pub fn data_fs(fd: i32, buf: &mut [u8]) -> crate::error::Result<DataFs> {
    let st = sys::fstatfs(fd)?;
    let kind = FsKind::from_magic(st.kind);
    if kind != FsKind::Overlay {
        return Ok(DataFs { kind, overlay: false, statfs: st });
    }
    Ok(match upper_fs(fd, buf) {
        Some(upper) => DataFs { kind: FsKind::from_magic(upper.kind), overlay: true, statfs: upper },
        None => DataFs { kind, overlay: true, statfs: st },
    })
}

/// `statfs` of the upper directory of the overlay mount holding `fd`: its mount id from
/// `/proc/self/fdinfo/N`, then that mount's `upperdir=` in `/proc/self/mountinfo`.
fn upper_fs(fd: i32, buf: &mut [u8]) -> Option<sys::StatFs> {
    let mut path = [0u8; 40];
    let n = proc_path(&mut path, b"/proc/self/fdinfo/", fd);
    let fdinfo = read_small(path.get(..n)?, buf)?;
    let mnt_id = field(fdinfo, b"mnt_id:")?;
    let mut id_text = [0u8; 24];
    let id_len = mnt_id.len().min(id_text.len() - 1);
    id_text.get_mut(..id_len)?.copy_from_slice(mnt_id.get(..id_len)?);
    let id = id_text.get(..id_len)?;
    let mut upper = [0u8; 512];
    let upper_len = find_upperdir(id, buf, &mut upper)?;
    let dir = sys::open(upper.get(..upper_len + 1)?, libc::O_PATH | libc::O_DIRECTORY).ok()?;
    sys::fstatfs(dir.0).ok()
}

/// Writes `prefix` and `fd` in decimal, then a NUL, into `out`; returns the length
/// with the NUL.
pub fn proc_path(out: &mut [u8], prefix: &[u8], fd: i32) -> usize {
    let mut digits = [0u8; 20];
    let number = crate::num::decimal(u64::from(fd.unsigned_abs()), &mut digits);
    let mut len = 0;
    for &c in prefix.iter().chain(number).chain(&[0u8]) {
        if let Some(slot) = out.get_mut(len) {
            *slot = c;
            len += 1;
        }
    }
    len
}

/// Writes `/proc/PID/fd/N` and a NUL into `out`; returns the length with the NUL.
pub fn proc_pid_path(out: &mut [u8], pid: u32, fd: i32) -> usize {
    let mut digits = [0u8; 20];
    let mut prefix = [0u8; 32];
    let mut len = 0;
    for &c in b"/proc/".iter().chain(crate::num::decimal(u64::from(pid), &mut digits)).chain(b"/fd/") {
        if let Some(slot) = prefix.get_mut(len) {
            *slot = c;
            len += 1;
        }
    }
    proc_path(out, prefix.get(..len).unwrap_or(&[]), fd)
}

/// Reads a small file (`path` ends with a NUL) into `buf`, whole or cut at its size.
fn read_small<'a>(path: &[u8], buf: &'a mut [u8]) -> Option<&'a [u8]> {
    let f = sys::open(path, libc::O_RDONLY).ok()?;
    let len = sys::read_all(f.0, buf).ok()?;
    buf.get(..len)
}

/// The value after `key` on its line of `text`, spaces and tabs trimmed.
fn field<'a>(text: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let line = text.split(|&b| b == b'\n').find(|l| l.starts_with(key))?;
    let v = line.get(key.len()..)?;
    let start = v.iter().position(|&b| b != b' ' && b != b'\t')?;
    v.get(start..)
}

/// Finds the line of `/proc/self/mountinfo` for mount `id` and copies the `upperdir=`
/// of its super options, unescaped and NUL-terminated, into `out`; returns its length.
/// The file is read in pieces through `buf`, so its size does not matter.
fn find_upperdir(id: &[u8], buf: &mut [u8], out: &mut [u8]) -> Option<usize> {
    let f = sys::open(b"/proc/self/mountinfo\0", libc::O_RDONLY).ok()?;
    let mut have = 0;
    loop {
        let rest = buf.get_mut(have..)?;
        let n = loop {
            match sys::read(f.0, rest) {
                Err(e) if e.0 == libc::EINTR => {}
                other => break other.ok()?,
            }
        };
        let filled = have + n;
        let text = buf.get(..filled)?;
        // Whole lines only; a partial last line waits for the next read.
        let complete = if n == 0 { filled } else { text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) };
        for line in text.get(..complete)?.split(|&b| b == b'\n') {
            if line.split(|&b| b == b' ').next() == Some(id) {
                return upperdir_of(line, out);
            }
        }
        if n == 0 || (complete == 0 && filled == buf.len()) {
            return None;
        }
        buf.copy_within(complete..filled, 0);
        have = filled - complete;
    }
}

/// The `upperdir=` super option of a mountinfo line, unescaped (`\040` is a space),
/// NUL-terminated in `out`.
fn upperdir_of(line: &[u8], out: &mut [u8]) -> Option<usize> {
    let opts = line.rsplit(|&b| b == b' ').next()?;
    let value = opts.split(|&b| b == b',').find_map(|o| o.strip_prefix(b"upperdir="))?;
    let (mut i, mut len) = (0, 0);
    while let Some(&c) = value.get(i) {
        let octal = value.get(i + 1..i + 4).filter(|d| c == b'\\' && d.iter().all(|x| (b'0'..=b'7').contains(x)));
        let (byte, step) = match octal {
            Some(d) => (d.iter().fold(0u8, |a, x| a.wrapping_mul(8).wrapping_add(x - b'0')), 4),
            None => (c, 1),
        };
        *out.get_mut(len)? = byte;
        len += 1;
        i += step;
    }
    *out.get_mut(len)? = 0;
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bits_are_distinct() {
        let mut seen = 0;
        for k in FsKind::NAMED {
            assert_eq!(FsKind::from_name(k.name().as_bytes()), Some(k));
            assert_eq!(seen & k.bit(), 0);
            seen |= k.bit();
        }
        assert_eq!(FsKind::from_name(b"other"), None);
    }

    #[test]
    fn mountinfo_upperdir() {
        let line = b"52 31 0:45 / /merged rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/up\\040dir,workdir=/w";
        let mut out = [0u8; 64];
        let n = upperdir_of(line, &mut out).unwrap();
        assert_eq!(&out[..n + 1], b"/up dir\0");
        let mut p = [0u8; 40];
        let n = proc_path(&mut p, b"/proc/self/fdinfo/", 1234);
        assert_eq!(&p[..n], b"/proc/self/fdinfo/1234\0");
    }

    #[test]
    fn btrfs_magic_survives_a_signed_f_type() {
        // i686's statfs reports f_type as a signed 32-bit word.
        let signed = BTRFS_MAGIC as i32;
        assert_eq!(FsKind::from_magic(signed as u32), FsKind::Btrfs);
    }
}
