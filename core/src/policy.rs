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
use crate::settings::{Method, OnError, Trigger};

/// What the first two system calls (`fcntl(F_GETFL)`, `fstat`) tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    pub trigger: Trigger,
    /// The byte the call writes (for `ftruncate`, the new size minus one).
    pub offset: i64,
    pub open_flags: i32,
    pub regular: bool,
    /// The set-user-ID or set-group-ID bit is set.
    pub setid: bool,
    /// `st_size` before the call.
    pub size: i64,
    /// `st_blksize`.
    pub blksize: i64,
}

/// A call that passed [`screen`]: the only way to reach [`judge`], so a call is screened
/// once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Screened(Call);

impl Screened {
    pub fn call(&self) -> &Call {
        &self.0
    }
}

/// What is learnt about the file once the call is worth it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct File {
    /// The inode is append-only (`chattr +a`).
    pub append_only: bool,
    /// The inode is immutable (`chattr +i`).
    pub immutable: bool,
    /// The filesystem that holds the data (an overlay's upper layer).
    pub fs: FsKind,
    /// The file is on an overlay (`fs` is then its upper layer's, when found).
    pub overlay: bool,
    /// The filesystem's size in blocks (0: it keeps no data in blocks).
    pub fs_blocks: u64,
    /// Bytes this process may still allocate there.
    pub free: u64,
    pub path_matches: bool,
    /// `RLIMIT_FSIZE` soft limit of the program; None: it could not be read, so the
    /// call may fail for it, and nothing is done before the call.
    pub fsize_limit: Option<u64>,
    /// The filesystem's extent size hint for the file (xfs), 0 where none: allocation
    /// starts at a multiple of it, so that none lands in the program's own hole.
    pub extent_hint: u64,
    /// The file has capabilities (`security.capability`), or may have: it could not be
    /// read.
    pub capabilities: bool,
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
    /// A one-byte `O_DIRECT` write: it fails (EINVAL) or bypasses the page cache; either
    /// way nothing is gained.
    Direct,
    /// A descriptor without `O_LARGEFILE` cannot write past 2 GiB: the call fails (EFBIG).
    NotLargeFile,
    AppendOnlyInode,
    ImmutableInode,
    NoMatch,
    /// A filesystem in `NOSPARSE_SKIP_FS`.
    Filesystem(FsKind),
    /// Not a filesystem the engine acts on (procfs, sysfs, hugetlbfs, FAT, unknown), or
    /// one that keeps no data in blocks: passed through silently.
    NotOnDisk(FsKind),
    /// The new size exceeds RLIMIT_FSIZE: the real call's EFBIG/SIGXFSZ must be the only one.
    FileSizeLimit,
    /// `NOSPARSE_METHOD=zero` where zeros cannot be filled in: a descriptor not open for
    /// reading and writing, or a filesystem where the zero fill does not run.
    CannotZero,
    /// The new range lies within the block that holds the file's end: nothing to allocate.
    NothingToAllocate,
    /// Supervise mode: a call whose effect depends on the calling process (a file with
    /// set-user-ID or set-group-ID bits or capabilities, which only a write by a process
    /// without CAP_FSETID clears): the program makes it itself.
    CallerDependent,
}

impl Skip {
    /// Why, in a few words, for debug lines.
    pub fn reason(self) -> &'static str {
        match self {
            Skip::Disabled => "disabled",
            Skip::TriggerOff(_) => "trigger not in NOSPARSE_TRIGGERS",
            Skip::NegativeOffset => "negative offset or length",
            Skip::OffsetTooLarge => "offset too large",
            Skip::NotRegular => "not a regular file",
            Skip::NotWritable => "not open for writing",
            Skip::Append => "opened O_APPEND",
            Skip::SmallHole => "new hole below NOSPARSE_MIN_SIZE",
            Skip::Direct => "one-byte O_DIRECT write",
            Skip::NotLargeFile => "past 2 GiB without O_LARGEFILE (the call fails with EFBIG)",
            Skip::AppendOnlyInode => "append-only file (chattr +a)",
            Skip::ImmutableInode => "immutable file (chattr +i)",
            Skip::NoMatch => "path does not match NOSPARSE_MATCH",
            Skip::Filesystem(_) => "filesystem in NOSPARSE_SKIP_FS",
            Skip::NotOnDisk(_) => "not a filesystem that keeps data on a disk",
            Skip::FileSizeLimit => "beyond RLIMIT_FSIZE",
            Skip::CannotZero => {
                "NOSPARSE_METHOD=zero needs a descriptor open for reading and writing, on ext, xfs or btrfs; the file stays sparse"
            }
            Skip::NothingToAllocate => "the new range is within the last block",
            Skip::CallerDependent => "set-user-ID, set-group-ID or capable file (the program's own call clears those)",
        }
    }
}

/// What to allocate: the new range, `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The file's size before: where the zero fill starts.
    pub size: i64,
    /// The first whole block (or extent size hint) after the old end: where fallocate
    /// starts, so that the block holding the old end (perhaps the program's own hole)
    /// is not touched.
    pub start: i64,
    /// One past the byte the call writes.
    pub end: i64,
    pub method: Method,
    /// Mark the (empty) file NOCOW first (btrfs).
    pub nocow: bool,
    /// The zero fill may run: a local block filesystem, a descriptor open for reading
    /// and writing (it maps the file).
    pub can_zero: bool,
    /// Fallocate before the real call: under `NOSPARSE_ON_ERROR=fail`, so that a
    /// failure can fail the call; and with `nocow`, because NOCOW can be cleared again
    /// only while the file is empty (btrfs's fallocate takes all of the range or none).
    /// Never for a file with set-user-ID or set-group-ID bits or capabilities.
    pub reserve: bool,
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
pub fn screen(cfg: &Config, c: &Call) -> Result<Screened, Skip> {
    if cfg.disabled {
        return Err(Skip::Disabled);
    }
    if !cfg.triggers.has(c.trigger) {
        return Err(Skip::TriggerOff(c.trigger));
    }
    // ftruncate to 0 (its "byte" at -1) leaves no hole at all.
    if c.offset == -1 && c.trigger == Trigger::Ftruncate {
        return Err(Skip::SmallHole);
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
    let writes = c.trigger != Trigger::Ftruncate;
    if writes && c.open_flags & libc::O_APPEND != 0 {
        // An O_APPEND write lands at the end whatever the offset; ftruncate ignores the flag.
        return Err(Skip::Append);
    }
    let hole = (c.offset + 1).saturating_sub(c.size.max(0));
    if hole <= 0 || (hole as u64) < cfg.min_size {
        return Err(Skip::SmallHole);
    }
    if writes && c.open_flags & libc::O_DIRECT != 0 {
        return Err(Skip::Direct);
    }
    if writes && c.open_flags & O_LARGEFILE == 0 && c.offset >= MAX_NON_LFS {
        return Err(Skip::NotLargeFile);
    }
    Ok(Screened(*c))
}

/// The kernel's `O_LARGEFILE` on x86_64 and i386 (libc's constant is 0 on x86_64,
/// where the C library never needs it, but the kernel still reports it).
const O_LARGEFILE: i32 = 0o100000;
/// The largest offset a descriptor without `O_LARGEFILE` may write at, plus one.
const MAX_NON_LFS: i64 = i32::MAX as i64;

/// The decision for a screened call and its file.
pub fn judge(cfg: &Config, s: &Screened, f: &File) -> Decision {
    let c = s.call();
    let end = c.offset + 1;
    let accmode_rw = c.open_flags & libc::O_ACCMODE == libc::O_RDWR;
    let can_zero = f.fs.zero_fill() && accmode_rw;
    let skip = if !f.fs.known() || f.fs_blocks == 0 {
        Skip::NotOnDisk(f.fs)
    } else if f.append_only {
        Skip::AppendOnlyInode
    } else if f.immutable {
        Skip::ImmutableInode
    } else if !f.path_matches {
        Skip::NoMatch
    } else if cfg.skips(f.fs) {
        Skip::Filesystem(f.fs)
    } else if f.overlay && cfg.skips(FsKind::Overlay) {
        Skip::Filesystem(FsKind::Overlay)
    } else if f.fsize_limit.is_some_and(|limit| end as u64 > limit) {
        Skip::FileSizeLimit
    } else if cfg.method == Method::Zero && !can_zero {
        Skip::CannotZero
    } else {
        let block = c.blksize.clamp(512, 1 << 20).max(f.extent_hint.min(1 << 30) as i64);
        let size = c.size.max(0);
        let start = round_up(size, block).min(end);
        // fallocate, like a write, removes set-user-ID and set-group-ID bits and file
        // capabilities (the kernel's file_remove_privs): done before a call that then
        // failed, it would have removed them where the program removed nothing. Such a
        // file is touched only after the call, which removed them itself; so neither
        // NOCOW (which needs the reservation) nor ON_ERROR=fail's word before the call.
        // Nor before a call whose failure by RLIMIT_FSIZE could not be judged.
        let early = !(c.setid || f.capabilities) && f.fsize_limit.is_some();
        let nocow = f.fs == FsKind::Btrfs && size == 0 && early;
        let plan = Plan {
            size,
            start,
            end,
            method: cfg.method,
            nocow,
            can_zero,
            reserve: nocow || (cfg.on_error == OnError::Fail && cfg.method != Method::Zero && early),
        };
        // Zeros on ext2/ext3 files need an indirect block per 1024 blocks besides the
        // data: counted, so that a fill that passes the check does not stop short of room.
        let needed = match plan.can_zero && cfg.method != Method::Fallocate {
            true => plan.len().saturating_add(plan.len() / ZERO_FILL_OVERHEAD),
            false => plan.len(),
        };
        return if plan.is_empty() {
            Decision::Skip(Skip::NothingToAllocate)
        } else if cfg.method == Method::Off {
            Decision::WouldAllocate(plan)
        } else if needed > f.free {
            Decision::NoRoom { needed, free: f.free }
        } else {
            Decision::Allocate(plan)
        };
    };
    Decision::Skip(skip)
}

/// The zero fill's metadata, at most one part in this many of the data (ext2/ext3's
/// indirect blocks: one 4 KiB block maps 4 MiB, plus the double-indirect ones).
const ZERO_FILL_OVERHEAD: u64 = 256;

/// `v` rounded up to a multiple of `block` (which is positive).
pub fn round_up(v: i64, block: i64) -> i64 {
    match v.checked_rem(block) {
        Some(0) | None => v,
        Some(r) => v.saturating_add(block - r),
    }
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
            open_flags: libc::O_RDWR | O_LARGEFILE,
            regular: true,
            setid: false,
            size: 0,
            blksize: 4096,
        };
        let file = File {
            append_only: false,
            immutable: false,
            fs: FsKind::Ext,
            overlay: false,
            free: 100 << 30,
            fs_blocks: 1 << 30,
            path_matches: true,
            fsize_limit: Some(u64::MAX),
            extent_hint: 0,
            capabilities: false,
        };
        (call, file)
    }

    /// Screen, then judge, as the engine does.
    fn verdict(cfg: &Config, c: &Call, f: &File) -> Decision {
        match screen(cfg, c) {
            Ok(s) => judge(cfg, &s, f),
            Err(skip) => Decision::Skip(skip),
        }
    }

    fn decide(c: Call, f: File) -> Decision {
        verdict(&DEFAULT, &c, &f)
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
    fn an_extent_size_hint_keeps_the_start_off_the_programs_hole() {
        let (c, f) = vmem();
        let p = plan(decide(
            Call { size: 100 * MIB + 1, offset: GIB - 1, ..c },
            File { extent_hint: 16 * MIB as u64, ..f },
        ));
        assert_eq!(p.start, 112 * MIB);
    }

    #[test]
    fn btrfs_gets_nocow_only_while_empty() {
        let (c, f) = vmem();
        let f = File { fs: FsKind::Btrfs, ..f };
        let p = plan(decide(c, f));
        assert!(p.nocow && p.reserve, "NOCOW is set, and the range reserved, before the call");
        let p = plan(decide(Call { size: 4096, ..c }, f));
        assert!(!p.nocow && !p.reserve);
    }

    #[test]
    fn a_privileged_file_is_touched_only_after_the_call() {
        let (c, f) = vmem();
        let fail = Config { on_error: OnError::Fail, ..DEFAULT };
        let btrfs = File { fs: FsKind::Btrfs, ..f };
        for (call, file) in [(Call { setid: true, ..c }, f), (c, File { capabilities: true, ..f })] {
            for (cfg, file) in [(&fail, file), (&DEFAULT, File { fs: FsKind::Btrfs, ..file })] {
                let p = plan(verdict(cfg, &call, &file));
                assert!(!p.reserve && !p.nocow, "{call:?} {file:?}");
            }
        }
        assert!(plan(verdict(&fail, &c, &f)).reserve && plan(decide(c, btrfs)).nocow);
    }

    /// A file-size limit that could not be read may fail the call: nothing before it.
    #[test]
    fn an_unknown_file_size_limit_defers_the_allocation() {
        let (c, f) = vmem();
        let fail = Config { on_error: OnError::Fail, ..DEFAULT };
        for file in [File { fsize_limit: None, ..f }, File { fsize_limit: None, fs: FsKind::Btrfs, ..f }] {
            for cfg in [&fail, &DEFAULT] {
                let p = plan(verdict(cfg, &c, &file));
                assert!(!p.reserve && !p.nocow, "{file:?}");
            }
        }
    }

    #[test]
    fn nothing_to_allocate_within_the_last_block() {
        let (c, f) = vmem();
        let small = Config { min_size: 1024, ..DEFAULT };
        // 100 bytes, then one byte at 2000: the new range ends inside the first block.
        let within = Call { size: 100, offset: 2000, ..c };
        assert_eq!(verdict(&small, &within, &f), Decision::Skip(Skip::NothingToAllocate));
    }

    #[test]
    fn no_room_is_known_before_allocating() {
        let (c, f) = vmem();
        let fallocate = Config { method: Method::Fallocate, ..DEFAULT };
        assert_eq!(
            verdict(&fallocate, &c, &File { free: GIB as u64, ..f }),
            Decision::NoRoom { needed: 3774873600, free: GIB as u64 }
        );
        assert!(matches!(verdict(&fallocate, &c, &File { free: 3774873600, ..f }), Decision::Allocate(_)));
        // Where zeros may be written, their metadata is counted too.
        let needed = 3774873600 + 3774873600 / 256;
        assert_eq!(decide(c, File { free: 3774873600, ..f }), Decision::NoRoom { needed, free: 3774873600 });
        assert!(matches!(decide(c, File { free: needed, ..f }), Decision::Allocate(_)));
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
            (Call { open_flags: libc::O_RDWR | O_LARGEFILE | libc::O_DIRECT, ..c }, Skip::Direct),
            (Call { open_flags: libc::O_RDWR, ..c }, Skip::NotLargeFile),
            (Call { open_flags: libc::O_PATH, ..c }, Skip::NotWritable),
            (Call { open_flags: libc::O_WRONLY | libc::O_APPEND, ..c }, Skip::Append),
            (Call { size: 4 * GIB, ..c }, Skip::SmallHole),
            (Call { size: 3774873600, ..c }, Skip::SmallHole),
        ];
        for (call, why) in calls {
            assert_eq!(decide(call, f), Decision::Skip(why), "{call:?}");
        }
        let files = [
            (File { append_only: true, ..f }, Skip::AppendOnlyInode),
            (File { immutable: true, ..f }, Skip::ImmutableInode),
            (File { path_matches: false, ..f }, Skip::NoMatch),
            (File { fs: FsKind::Tmpfs, ..f }, Skip::Filesystem(FsKind::Tmpfs)),
            (File { fs: FsKind::Ramfs, ..f }, Skip::Filesystem(FsKind::Ramfs)),
            (File { fs: FsKind::Zfs, ..f }, Skip::Filesystem(FsKind::Zfs)),
            (File { fsize_limit: Some(1 << 20), ..f }, Skip::FileSizeLimit),
            (File { fs: FsKind::Other(0x9fa0), ..f }, Skip::NotOnDisk(FsKind::Other(0x9fa0))),
            (File { fs_blocks: 0, ..f }, Skip::NotOnDisk(FsKind::Ext)),
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
        assert!(matches!(decide(c, File { fsize_limit: Some(3774873600), ..f }), Decision::Allocate(_)));
    }

    #[test]
    fn settings_change_the_verdict() {
        let (c, f) = vmem();
        let off = Config { disabled: true, ..DEFAULT };
        assert_eq!(verdict(&off, &c, &f), Decision::Skip(Skip::Disabled));
        let tmpfs_too = Config { skip_fs: 0, ..DEFAULT };
        assert!(matches!(verdict(&tmpfs_too, &c, &File { fs: FsKind::Tmpfs, ..f }), Decision::Allocate(_)));
        let no_overlay = Config { skip_fs: FsKind::Overlay.bit(), ..DEFAULT };
        assert!(matches!(verdict(&no_overlay, &c, &File { fs: FsKind::Overlay, ..f }), Decision::Skip(_)));
        // An overlay is judged by its upper layer, and skipped as an overlay too.
        let on_tmpfs = File { fs: FsKind::Tmpfs, overlay: true, ..f };
        assert_eq!(decide(c, on_tmpfs), Decision::Skip(Skip::Filesystem(FsKind::Tmpfs)));
        let on_ext = File { overlay: true, ..f };
        assert!(matches!(decide(c, on_ext), Decision::Allocate(_)));
        assert_eq!(verdict(&no_overlay, &c, &on_ext), Decision::Skip(Skip::Filesystem(FsKind::Overlay)));
        let zero = Config { method: Method::Zero, ..DEFAULT };
        let write_only = Call { open_flags: libc::O_WRONLY | O_LARGEFILE, ..c };
        assert_eq!(verdict(&zero, &write_only, &f), Decision::Skip(Skip::CannotZero));
        assert!(!plan(decide(write_only, f)).can_zero);
        assert!(plan(decide(c, f)).can_zero);
        assert!(!plan(decide(c, File { fs: FsKind::Nfs, ..f })).can_zero);
        let fail = Config { on_error: OnError::Fail, ..DEFAULT };
        assert!(plan(verdict(&fail, &c, &f)).reserve && !plan(decide(c, f)).reserve);
        let dry = Config { method: Method::Off, ..DEFAULT };
        assert!(matches!(verdict(&dry, &c, &f), Decision::WouldAllocate(Plan { end: 3774873600, .. })));
        let big = Config { min_size: 8 << 30, ..DEFAULT };
        assert_eq!(verdict(&big, &c, &f), Decision::Skip(Skip::SmallHole));
    }

    #[test]
    fn triggers_are_opt_in() {
        let (c, f) = vmem();
        let truncate = Call { trigger: Trigger::Ftruncate, ..c };
        let write = Call { trigger: Trigger::Write, ..c };
        assert_eq!(decide(truncate, f), Decision::Skip(Skip::TriggerOff(Trigger::Ftruncate)));
        assert_eq!(decide(write, f), Decision::Skip(Skip::TriggerOff(Trigger::Write)));
        let all = Config { triggers: parse_triggers(b"write,ftruncate").unwrap(), ..DEFAULT };
        assert!(matches!(verdict(&all, &truncate, &f), Decision::Allocate(_)));
        assert!(matches!(verdict(&all, &write, &f), Decision::Allocate(_)));
        assert_eq!(verdict(&all, &c, &f), Decision::Skip(Skip::TriggerOff(Trigger::Pwrite)));
        // O_APPEND moves writes to the end, but does not change what ftruncate does.
        let append = libc::O_WRONLY | libc::O_APPEND | O_LARGEFILE;
        let p = plan(verdict(&all, &Call { open_flags: append, ..truncate }, &f));
        assert!(!p.can_zero);
        assert_eq!(verdict(&all, &Call { open_flags: append, ..write }, &f), Decision::Skip(Skip::Append));
    }
}
