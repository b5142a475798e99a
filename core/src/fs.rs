//! Which filesystem a file lives on, from `fstatfs`'s magic number.

use std::fmt;

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

    /// The kind of the filesystem holding `fd`.
    pub fn of_fd(fd: libc::c_int) -> crate::error::Result<Self> {
        Ok(Self::from_magic(crate::sys::fstatfs(fd)?.f_type as u32))
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
    pub fn bit(self) -> u32 {
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
    fn btrfs_magic_survives_a_signed_f_type() {
        // i686's statfs reports f_type as a signed 32-bit word.
        let signed = BTRFS_MAGIC as i32;
        assert_eq!(FsKind::from_magic(signed as u32), FsKind::Btrfs);
    }
}
