//! The decision: is this call the creation of a sparse file, and what to do.
//! A pure function of plain facts, so tests drive it directly.
//!
//! Every trigger is judged as the one-byte write it amounts to: `ftruncate(fd, len)`
//! as a write of the byte at `len - 1`, `write` as one at the current file offset.

use crate::config::{Config, Method, Trigger};
use crate::fs::FsKind;
use std::fmt;

/// What is known about a write and its fd when the decision is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    pub trigger: Trigger,
    pub nbyte: usize,
    pub offset: i64,
    /// `fcntl(F_GETFL)`.
    pub open_flags: i32,
    pub regular: bool,
    /// `st_size` before the call.
    pub size: i64,
    pub fs: FsKind,
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
    NotOneByte,
    BelowMinSize,
    NegativeOffset,
    /// `offset + 1` does not fit in an `off_t`.
    OffsetTooLarge,
    NotRegular,
    NotWritable,
    Append,
    InsideFile,
    NoMatch,
    Filesystem(FsKind),
    /// The new size exceeds RLIMIT_FSIZE: the real call's EFBIG/SIGXFSZ must be the only one.
    FileSizeLimit,
    /// Zeros cannot be written through an `O_DIRECT` fd from an arbitrary range.
    DirectIo,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::Disabled => f.write_str("disabled"),
            Skip::TriggerOff(t) => write!(f, "{t} is not in NOSPARSE_TRIGGERS"),
            Skip::NotOneByte => f.write_str("not a one-byte write"),
            Skip::BelowMinSize => f.write_str("below NOSPARSE_MIN_SIZE"),
            Skip::NegativeOffset => f.write_str("negative offset"),
            Skip::OffsetTooLarge => f.write_str("offset too large"),
            Skip::NotRegular => f.write_str("not a regular file"),
            Skip::NotWritable => f.write_str("not open for writing"),
            Skip::Append => f.write_str("opened O_APPEND"),
            Skip::InsideFile => f.write_str("offset inside the file"),
            Skip::NoMatch => f.write_str("path does not match NOSPARSE_MATCH"),
            Skip::Filesystem(fs) => write!(f, "{fs} is in NOSPARSE_SKIP_FS"),
            Skip::FileSizeLimit => f.write_str("beyond RLIMIT_FSIZE"),
            Skip::DirectIo => f.write_str("opened O_DIRECT and NOSPARSE_METHOD=zero"),
        }
    }
}

/// The verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Skip(Skip),
    /// Allocate `[0, len)`; with `nocow`, mark the (empty) file NOCOW first.
    Allocate {
        len: i64,
        method: Method,
        nocow: bool,
    },
    /// `NOSPARSE_METHOD=off`: it would allocate `[0, len)`.
    WouldAllocate {
        len: i64,
    },
}

/// Whether a call is worth a closer look, from its arguments alone. The hooks check
/// the same condition inline, before any syscall.
pub fn is_candidate(cfg: &Config, trigger: Trigger, nbyte: usize, offset: i64) -> Result<(), Skip> {
    if cfg.disabled {
        return Err(Skip::Disabled);
    }
    if !cfg.triggers.has(trigger) {
        return Err(Skip::TriggerOff(trigger));
    }
    if nbyte != 1 {
        return Err(Skip::NotOneByte);
    }
    if offset < 0 {
        return Err(Skip::NegativeOffset);
    }
    if offset == i64::MAX {
        return Err(Skip::OffsetTooLarge);
    }
    if (offset as u64) + 1 < cfg.min_size {
        return Err(Skip::BelowMinSize);
    }
    Ok(())
}

/// The decision for a write with these facts.
pub fn judge(cfg: &Config, f: &Facts) -> Decision {
    if let Err(skip) = is_candidate(cfg, f.trigger, f.nbyte, f.offset) {
        return Decision::Skip(skip);
    }
    let len = f.offset + 1;
    let skip = if !f.regular {
        Skip::NotRegular
    } else if f.open_flags & libc::O_ACCMODE == libc::O_RDONLY || f.open_flags & libc::O_PATH != 0 {
        Skip::NotWritable
    } else if f.open_flags & libc::O_APPEND != 0 && f.trigger != Trigger::Ftruncate {
        // An O_APPEND write lands at the end whatever the offset; ftruncate ignores the flag.
        Skip::Append
    } else if f.offset < f.size {
        Skip::InsideFile
    } else if !f.path_matches {
        Skip::NoMatch
    } else if cfg.skips(f.fs) {
        Skip::Filesystem(f.fs)
    } else if len as u64 > f.fsize_limit {
        Skip::FileSizeLimit
    } else if cfg.method == Method::Zero && f.open_flags & libc::O_DIRECT != 0 {
        Skip::DirectIo
    } else if cfg.method == Method::Off {
        return Decision::WouldAllocate { len };
    } else {
        let nocow = f.fs == FsKind::Btrfs && f.size == 0;
        return Decision::Allocate { len, method: cfg.method, nocow };
    };
    Decision::Skip(skip)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: i64 = 1 << 30;

    fn vmem() -> Facts {
        Facts {
            trigger: Trigger::Pwrite,
            nbyte: 1,
            offset: 3774873599,
            open_flags: libc::O_RDWR,
            regular: true,
            size: 0,
            fs: FsKind::Ext,
            path_matches: true,
            fsize_limit: u64::MAX,
        }
    }

    fn decide(f: Facts) -> Decision {
        judge(&Config::default(), &f)
    }

    #[test]
    fn the_vmx_call_allocates_the_whole_file() {
        assert_eq!(decide(vmem()), Decision::Allocate { len: 3774873600, method: Method::Auto, nocow: false });
    }

    #[test]
    fn btrfs_gets_nocow_only_while_empty() {
        let f = Facts { fs: FsKind::Btrfs, ..vmem() };
        assert!(matches!(decide(f), Decision::Allocate { nocow: true, .. }));
        let f = Facts { size: 4096, ..f };
        assert!(matches!(decide(f), Decision::Allocate { nocow: false, .. }));
    }

    #[test]
    fn everything_else_is_left_alone() {
        let cases = [
            (Facts { nbyte: 2, ..vmem() }, Skip::NotOneByte),
            (Facts { nbyte: 0, ..vmem() }, Skip::NotOneByte),
            (Facts { offset: (64 << 20) - 2, ..vmem() }, Skip::BelowMinSize),
            (Facts { offset: -1, ..vmem() }, Skip::NegativeOffset),
            (Facts { offset: i64::MIN, ..vmem() }, Skip::NegativeOffset),
            (Facts { offset: i64::MAX, ..vmem() }, Skip::OffsetTooLarge),
            (Facts { regular: false, ..vmem() }, Skip::NotRegular),
            (Facts { open_flags: libc::O_RDONLY, ..vmem() }, Skip::NotWritable),
            (Facts { open_flags: libc::O_PATH, ..vmem() }, Skip::NotWritable),
            (Facts { open_flags: libc::O_WRONLY | libc::O_APPEND, ..vmem() }, Skip::Append),
            (Facts { size: 4 * GIB, ..vmem() }, Skip::InsideFile),
            (Facts { path_matches: false, ..vmem() }, Skip::NoMatch),
            (Facts { fs: FsKind::Tmpfs, ..vmem() }, Skip::Filesystem(FsKind::Tmpfs)),
            (Facts { fs: FsKind::Ramfs, ..vmem() }, Skip::Filesystem(FsKind::Ramfs)),
            (Facts { fs: FsKind::Zfs, ..vmem() }, Skip::Filesystem(FsKind::Zfs)),
            (Facts { fsize_limit: 1 << 20, ..vmem() }, Skip::FileSizeLimit),
        ];
        for (facts, why) in cases {
            assert_eq!(decide(facts), Decision::Skip(why), "{facts:?}");
        }
    }

    #[test]
    fn boundaries() {
        // offset + 1 == min size is a creation; the last byte of an existing file is not.
        assert!(matches!(decide(Facts { offset: (64 << 20) - 1, ..vmem() }), Decision::Allocate { .. }));
        assert!(matches!(decide(Facts { size: 3774873599, ..vmem() }), Decision::Allocate { .. }));
        assert_eq!(decide(Facts { size: 3774873600, ..vmem() }), Decision::Skip(Skip::InsideFile));
        assert!(matches!(decide(Facts { offset: i64::MAX - 1, ..vmem() }), Decision::Allocate { .. }));
        assert!(matches!(decide(Facts { fsize_limit: 3774873600, ..vmem() }), Decision::Allocate { .. }));
    }

    #[test]
    fn settings_change_the_verdict() {
        let off = Config { disabled: true, ..Config::default() };
        assert_eq!(judge(&off, &vmem()), Decision::Skip(Skip::Disabled));
        let tmpfs_too = Config { skip_fs: 0, ..Config::default() };
        assert!(matches!(judge(&tmpfs_too, &Facts { fs: FsKind::Tmpfs, ..vmem() }), Decision::Allocate { .. }));
        let zero = Config { method: Method::Zero, ..Config::default() };
        let direct = Facts { open_flags: libc::O_RDWR | libc::O_DIRECT, ..vmem() };
        assert_eq!(judge(&zero, &direct), Decision::Skip(Skip::DirectIo));
        assert!(matches!(decide(direct), Decision::Allocate { .. }));
        let off = Config { method: Method::Off, ..Config::default() };
        assert_eq!(judge(&off, &vmem()), Decision::WouldAllocate { len: 3774873600 });
        let big = Config { min_size: 8 << 30, ..Config::default() };
        assert_eq!(judge(&big, &vmem()), Decision::Skip(Skip::BelowMinSize));
    }

    #[test]
    fn triggers_are_opt_in() {
        let truncate = Facts { trigger: Trigger::Ftruncate, ..vmem() };
        let write = Facts { trigger: Trigger::Write, ..vmem() };
        assert_eq!(decide(truncate), Decision::Skip(Skip::TriggerOff(Trigger::Ftruncate)));
        assert_eq!(decide(write), Decision::Skip(Skip::TriggerOff(Trigger::Write)));
        let all = Config { triggers: crate::config::parse_triggers("write,ftruncate").unwrap(), ..Config::default() };
        assert!(matches!(judge(&all, &truncate), Decision::Allocate { len: 3774873600, .. }));
        assert!(matches!(judge(&all, &write), Decision::Allocate { len: 3774873600, .. }));
        assert_eq!(judge(&all, &vmem()), Decision::Skip(Skip::TriggerOff(Trigger::Pwrite)));
        // O_APPEND moves writes to the end, but does not change what ftruncate does.
        let append = libc::O_WRONLY | libc::O_APPEND;
        assert!(matches!(judge(&all, &Facts { open_flags: append, ..truncate }), Decision::Allocate { .. }));
        assert_eq!(judge(&all, &Facts { open_flags: append, ..write }), Decision::Skip(Skip::Append));
    }
}
