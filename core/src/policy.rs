//! The decision: is this call the creation of a sparse file, and what to allocate.
//! A pure function of plain facts, so tests drive it directly.
//!
//! A call creates a file sparse when it would leave a big new hole: the range from the
//! file's current end to the byte written, `[size, offset + 1)`, is at least
//! `NOSPARSE_MIN_SIZE`. vmx's call on an empty file is judged by the file's size, as
//! before; a file growing block by block never is. Every trigger is judged as the
//! one-byte write it amounts to: `ftruncate(fd, len)` as a write of the byte at
//! `len - 1`, `write` as one at the current file offset.

use crate::config::Config;
use crate::fs::FsKind;
use crate::settings::{Method, Trigger};
use crate::sys::{FS_APPEND_FL, FS_IMMUTABLE_FL};

/// What the first two system calls (`fcntl(F_GETFL)`, `fstat`) tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    pub trigger: Trigger,
    /// The byte the call writes (for `ftruncate`, the new size minus one).
    pub offset: i64,
    pub open_flags: i32,
    pub regular: bool,
    /// `st_size` before the call.
    pub size: i64,
    /// `st_blksize`.
    pub blksize: i64,
}

/// What is learnt about the file once the call is worth it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct File {
    /// `FS_IOC_GETFLAGS` (0 where the filesystem has none).
    pub inode_flags: i32,
    /// The filesystem that holds the data (an overlay's upper layer).
    pub fs: FsKind,
    /// The file is on an overlay (`fs` is then its upper layer's, when found).
    pub overlay: bool,
    /// Bytes this process may still allocate there.
    pub free: u64,
    pub path_matches: bool,
    /// `RLIMIT_FSIZE` soft limit.
    pub fsize_limit: u64,
}

/// Why a call is left alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    Disabled,
    /// The call is not in `NOSPARSE_TRIGGERS`.
    TriggerOff(Trigger),
    NegativeOffset,
    /// `offset + 1` does not fit in an `off_t`.
    OffsetTooLarge,
    NotRegular,
    NotWritable,
    Append,
    /// The new hole is smaller than `NOSPARSE_MIN_SIZE` (also: the byte is inside the file).
    SmallHole,
    AppendOnlyInode,
    ImmutableInode,
    NoMatch,
    Filesystem(FsKind),
    /// The new size exceeds RLIMIT_FSIZE: the real call's EFBIG/SIGXFSZ must be the only one.
    FileSizeLimit,
    /// Zeros cannot be written through an `O_DIRECT` or `O_APPEND` descriptor into an
    /// arbitrary range.
    CannotZero,
    /// The new range lies within the block that holds the file's end: nothing to allocate.
    NothingToAllocate,
}

impl Skip {
    /// Why, in a few words, for debug lines.
    pub fn reason(self) -> &'static str {
        match self {
            Skip::Disabled => "disabled",
            Skip::TriggerOff(_) => "trigger not in NOSPARSE_TRIGGERS",
            Skip::NegativeOffset => "negative offset",
            Skip::OffsetTooLarge => "offset too large",
            Skip::NotRegular => "not a regular file",
            Skip::NotWritable => "not open for writing",
            Skip::Append => "opened O_APPEND",
            Skip::SmallHole => "new hole below NOSPARSE_MIN_SIZE",
            Skip::AppendOnlyInode => "append-only file (chattr +a)",
            Skip::ImmutableInode => "immutable file (chattr +i)",
            Skip::NoMatch => "path does not match NOSPARSE_MATCH",
            Skip::Filesystem(_) => "filesystem in NOSPARSE_SKIP_FS",
            Skip::FileSizeLimit => "beyond RLIMIT_FSIZE",
            Skip::CannotZero => "O_DIRECT or O_APPEND descriptor and NOSPARSE_METHOD=zero",
            Skip::NothingToAllocate => "the new range is within the last block",
        }
    }
}

/// What to allocate: the new range, `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The file's size before: where the zero fill starts.
    pub size: i64,
    /// The first whole block after the old end: where fallocate starts, so that the
    /// block holding the old end (perhaps the program's own hole) is not touched.
    pub start: i64,
    /// One past the byte the call writes.
    pub end: i64,
    pub method: Method,
    /// Mark the (empty) file NOCOW first (btrfs).
    pub nocow: bool,
    /// Zeros may be written through this descriptor (not O_DIRECT or O_APPEND).
    pub can_zero: bool,
}

impl Plan {
    /// Bytes the allocation needs.
    pub fn len(&self) -> u64 {
        (self.end - self.start).max(0) as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Skip(Skip),
    Allocate(Plan),
    /// `NOSPARSE_METHOD=off`: this would be allocated.
    WouldAllocate(Plan),
    /// A creation, but the filesystem lacks the room: passed through at once, before
    /// taking any space.
    NoRoom {
        needed: u64,
        free: u64,
    },
}

/// The verdict from the call alone (no file facts yet): `Err` when the call is not a
/// creation whatever the file. The hooks make the cheapest part of this test inline.
pub fn screen(cfg: &Config, c: &Call) -> Result<(), Skip> {
    if cfg.disabled {
        return Err(Skip::Disabled);
    }
    if !cfg.triggers.has(c.trigger) {
        return Err(Skip::TriggerOff(c.trigger));
    }
    if c.offset < 0 {
        return Err(Skip::NegativeOffset);
    }
    if c.offset == i64::MAX {
        return Err(Skip::OffsetTooLarge);
    }
    if !c.regular {
        return Err(Skip::NotRegular);
    }
    if c.open_flags & libc::O_ACCMODE == libc::O_RDONLY || c.open_flags & libc::O_PATH != 0 {
        return Err(Skip::NotWritable);
    }
    if c.open_flags & libc::O_APPEND != 0 && c.trigger != Trigger::Ftruncate {
        // An O_APPEND write lands at the end whatever the offset; ftruncate ignores the flag.
        return Err(Skip::Append);
    }
    let hole = (c.offset + 1).saturating_sub(c.size.max(0));
    if hole <= 0 || (hole as u64) < cfg.min_size {
        return Err(Skip::SmallHole);
    }
    Ok(())
}

/// The decision for a call and its file.
pub fn judge(cfg: &Config, c: &Call, f: &File) -> Decision {
    if let Err(skip) = screen(cfg, c) {
        return Decision::Skip(skip);
    }
    let end = c.offset + 1;
    let skip = if f.inode_flags & FS_APPEND_FL != 0 {
        Skip::AppendOnlyInode
    } else if f.inode_flags & FS_IMMUTABLE_FL != 0 {
        Skip::ImmutableInode
    } else if !f.path_matches {
        Skip::NoMatch
    } else if cfg.skips(f.fs) {
        Skip::Filesystem(f.fs)
    } else if f.overlay && cfg.skips(FsKind::Overlay) {
        Skip::Filesystem(FsKind::Overlay)
    } else if end as u64 > f.fsize_limit {
        Skip::FileSizeLimit
    } else if cfg.method == Method::Zero && !can_zero(c.open_flags) {
        Skip::CannotZero
    } else {
        let block = c.blksize.clamp(512, 1 << 20);
        let size = c.size.max(0);
        let start = round_up(size, block).min(end);
        let plan = Plan {
            size,
            start,
            end,
            method: cfg.method,
            nocow: f.fs == FsKind::Btrfs && size == 0,
            can_zero: can_zero(c.open_flags),
        };
        return if plan.is_empty() {
            Decision::Skip(Skip::NothingToAllocate)
        } else if cfg.method == Method::Off {
            Decision::WouldAllocate(plan)
        } else if plan.len() > f.free {
            Decision::NoRoom { needed: plan.len(), free: f.free }
        } else {
            Decision::Allocate(plan)
        };
    };
    Decision::Skip(skip)
}

/// `v` rounded up to a multiple of `block` (which is positive).
fn round_up(v: i64, block: i64) -> i64 {
    match v.checked_rem(block) {
        Some(0) | None => v,
        Some(r) => v.saturating_add(block - r),
    }
}

fn can_zero(open_flags: i32) -> bool {
    open_flags & (libc::O_DIRECT | libc::O_APPEND) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT;
    use crate::settings::parse_triggers;

    const GIB: i64 = 1 << 30;
    const MIB: i64 = 1 << 20;

    fn vmem() -> (Call, File) {
        let call = Call {
            trigger: Trigger::Pwrite,
            offset: 3774873599,
            open_flags: libc::O_RDWR,
            regular: true,
            size: 0,
            blksize: 4096,
        };
        let file = File {
            inode_flags: 0,
            fs: FsKind::Ext,
            overlay: false,
            free: 100 << 30,
            path_matches: true,
            fsize_limit: u64::MAX,
        };
        (call, file)
    }

    fn decide(c: Call, f: File) -> Decision {
        judge(&DEFAULT, &c, &f)
    }

    fn plan(d: Decision) -> Plan {
        match d {
            Decision::Allocate(p) => p,
            other => panic!("not an allocation: {other:?}"),
        }
    }

    #[test]
    fn the_vmx_call_allocates_the_whole_file() {
        let (c, f) = vmem();
        let p = plan(decide(c, f));
        assert_eq!((p.size, p.start, p.end, p.method, p.nocow), (0, 0, 3774873600, Method::Auto, false));
    }

    #[test]
    fn only_the_new_range_from_the_next_whole_block() {
        let (c, f) = vmem();
        let p = plan(decide(Call { size: GIB + 1, offset: 2 * GIB - 1, ..c }, f));
        assert_eq!((p.size, p.start, p.end), (GIB + 1, GIB + 4096, 2 * GIB));
        // An ext4 file system with 1 KiB blocks.
        let p = plan(decide(Call { size: 100, blksize: 1024, ..c }, f));
        assert_eq!(p.start, 1024);
    }

    #[test]
    fn growth_block_by_block_is_not_creation() {
        let (c, f) = vmem();
        for size in [100 * MIB, 100 * MIB + 4096, 3 * GIB] {
            let grow = Call { size, offset: size + 4095, ..c };
            assert_eq!(decide(grow, f), Decision::Skip(Skip::SmallHole));
        }
        // The hole, not the offset, must reach NOSPARSE_MIN_SIZE.
        assert_eq!(decide(Call { size: GIB, offset: GIB + 64 * MIB - 2, ..c }, f), Decision::Skip(Skip::SmallHole));
        assert!(matches!(decide(Call { size: GIB, offset: GIB + 64 * MIB - 1, ..c }, f), Decision::Allocate(_)));
    }

    #[test]
    fn btrfs_gets_nocow_only_while_empty() {
        let (c, f) = vmem();
        let f = File { fs: FsKind::Btrfs, ..f };
        assert!(plan(decide(c, f)).nocow);
        assert!(!plan(decide(Call { size: 4096, ..c }, f)).nocow);
    }

    #[test]
    fn nothing_to_allocate_within_the_last_block() {
        let (c, f) = vmem();
        let small = Config { min_size: 1024, ..DEFAULT };
        // 100 bytes, then one byte at 2000: the new range ends inside the first block.
        let within = Call { size: 100, offset: 2000, ..c };
        assert_eq!(judge(&small, &within, &f), Decision::Skip(Skip::NothingToAllocate));
    }

    #[test]
    fn no_room_is_known_before_allocating() {
        let (c, f) = vmem();
        assert_eq!(
            decide(c, File { free: GIB as u64, ..f }),
            Decision::NoRoom { needed: 3774873600, free: GIB as u64 }
        );
        assert!(matches!(decide(c, File { free: 3774873600, ..f }), Decision::Allocate(_)));
    }

    #[test]
    fn everything_else_is_left_alone() {
        let (c, f) = vmem();
        let calls = [
            (Call { offset: 64 * MIB - 2, ..c }, Skip::SmallHole),
            (Call { offset: -1, ..c }, Skip::NegativeOffset),
            (Call { offset: i64::MIN, ..c }, Skip::NegativeOffset),
            (Call { offset: i64::MAX, ..c }, Skip::OffsetTooLarge),
            (Call { regular: false, ..c }, Skip::NotRegular),
            (Call { open_flags: libc::O_RDONLY, ..c }, Skip::NotWritable),
            (Call { open_flags: libc::O_PATH, ..c }, Skip::NotWritable),
            (Call { open_flags: libc::O_WRONLY | libc::O_APPEND, ..c }, Skip::Append),
            (Call { size: 4 * GIB, ..c }, Skip::SmallHole),
            (Call { size: 3774873600, ..c }, Skip::SmallHole),
        ];
        for (call, why) in calls {
            assert_eq!(decide(call, f), Decision::Skip(why), "{call:?}");
        }
        let files = [
            (File { inode_flags: FS_APPEND_FL, ..f }, Skip::AppendOnlyInode),
            (File { inode_flags: FS_IMMUTABLE_FL, ..f }, Skip::ImmutableInode),
            (File { path_matches: false, ..f }, Skip::NoMatch),
            (File { fs: FsKind::Tmpfs, ..f }, Skip::Filesystem(FsKind::Tmpfs)),
            (File { fs: FsKind::Ramfs, ..f }, Skip::Filesystem(FsKind::Ramfs)),
            (File { fs: FsKind::Zfs, ..f }, Skip::Filesystem(FsKind::Zfs)),
            (File { fsize_limit: 1 << 20, ..f }, Skip::FileSizeLimit),
        ];
        for (file, why) in files {
            assert_eq!(decide(c, file), Decision::Skip(why), "{file:?}");
        }
    }

    #[test]
    fn boundaries() {
        let (c, f) = vmem();
        assert!(matches!(decide(Call { offset: 64 * MIB - 1, ..c }, f), Decision::Allocate(_)));
        let roomy = File { free: u64::MAX, ..f };
        assert!(matches!(decide(Call { offset: i64::MAX - 1, ..c }, roomy), Decision::Allocate(_)));
        assert!(matches!(decide(c, File { fsize_limit: 3774873600, ..f }), Decision::Allocate(_)));
    }

    #[test]
    fn settings_change_the_verdict() {
        let (c, f) = vmem();
        let off = Config { disabled: true, ..DEFAULT };
        assert_eq!(judge(&off, &c, &f), Decision::Skip(Skip::Disabled));
        let tmpfs_too = Config { skip_fs: 0, ..DEFAULT };
        assert!(matches!(judge(&tmpfs_too, &c, &File { fs: FsKind::Tmpfs, ..f }), Decision::Allocate(_)));
        let no_overlay = Config { skip_fs: FsKind::Overlay.bit(), ..DEFAULT };
        assert!(matches!(judge(&no_overlay, &c, &File { fs: FsKind::Overlay, ..f }), Decision::Skip(_)));
        // An overlay is judged by its upper layer, and skipped as an overlay too.
        let on_tmpfs = File { fs: FsKind::Tmpfs, overlay: true, ..f };
        assert_eq!(decide(c, on_tmpfs), Decision::Skip(Skip::Filesystem(FsKind::Tmpfs)));
        let on_ext = File { overlay: true, ..f };
        assert!(matches!(decide(c, on_ext), Decision::Allocate(_)));
        assert_eq!(judge(&no_overlay, &c, &on_ext), Decision::Skip(Skip::Filesystem(FsKind::Overlay)));
        let zero = Config { method: Method::Zero, ..DEFAULT };
        let direct = Call { open_flags: libc::O_RDWR | libc::O_DIRECT, ..c };
        assert_eq!(judge(&zero, &direct, &f), Decision::Skip(Skip::CannotZero));
        assert!(!plan(decide(direct, f)).can_zero);
        let dry = Config { method: Method::Off, ..DEFAULT };
        assert!(matches!(judge(&dry, &c, &f), Decision::WouldAllocate(Plan { end: 3774873600, .. })));
        let big = Config { min_size: 8 << 30, ..DEFAULT };
        assert_eq!(judge(&big, &c, &f), Decision::Skip(Skip::SmallHole));
    }

    #[test]
    fn triggers_are_opt_in() {
        let (c, f) = vmem();
        let truncate = Call { trigger: Trigger::Ftruncate, ..c };
        let write = Call { trigger: Trigger::Write, ..c };
        assert_eq!(decide(truncate, f), Decision::Skip(Skip::TriggerOff(Trigger::Ftruncate)));
        assert_eq!(decide(write, f), Decision::Skip(Skip::TriggerOff(Trigger::Write)));
        let all = Config { triggers: parse_triggers(b"write,ftruncate").unwrap(), ..DEFAULT };
        assert!(matches!(judge(&all, &truncate, &f), Decision::Allocate(_)));
        assert!(matches!(judge(&all, &write, &f), Decision::Allocate(_)));
        assert_eq!(judge(&all, &c, &f), Decision::Skip(Skip::TriggerOff(Trigger::Pwrite)));
        // O_APPEND moves writes to the end, but does not change what ftruncate does.
        let append = libc::O_WRONLY | libc::O_APPEND;
        let p = plan(judge(&all, &Call { open_flags: append, ..truncate }, &f));
        assert!(!p.can_zero);
        assert_eq!(judge(&all, &Call { open_flags: append, ..write }, &f), Decision::Skip(Skip::Append));
    }
}
