//! The slow path as one straight line — facts, judge, act, report — for a process the
//! engine is told about (a [`Target`]): the library's own (the caller's descriptor) or,
//! for the supervisor, another's (a duplicate of the program's descriptor). The real
//! call is made between [`prepare`] and [`finish`] by whoever holds the call: so the
//! same rules serve both.
//!
//! The order is the design: the real call first, the allocation after it succeeded. A
//! call that fails leaves everything as it would be without the library, so there is
//! no undo; a process killed at any moment leaves the size the real call gave the file.
//! Only `NOSPARSE_ON_ERROR=fail` reserves before the call (see [`crate::alloc`]).

use crate::alloc;
use crate::config::Config;
use crate::error::Errno;
use crate::extents::{self, Fiemap};
use crate::fs;
use crate::log::{Ident, Level, Line, LINE_MAX};
use crate::policy::{self, Call, Decision, File, Plan, Screened, Skip};
use crate::report::Outcome;
use crate::settings::{Sink, Trigger};
use crate::sys;

/// The process a call is judged for.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// A descriptor, in this process, of the program's open file description.
    pub fd: i32,
    /// The program's fd number: the file's path is read from `/proc/PID/fd/N`.
    pub program_fd: i32,
    /// The program's pid (0: this process).
    pub pid: u32,
    /// Whose log line it is.
    pub ident: Ident<'a>,
}

impl Target<'_> {
    /// The library's own target: the caller's descriptor in this process.
    pub fn own(fd: i32) -> Target<'static> {
        Target { fd, program_fd: fd, pid: 0, ident: Ident::Own }
    }
}

/// `PATH_MAX`, plus room for the NUL.
pub const PATH_BUF: usize = 4096 + 16;
/// Room for pieces of `/proc/self/mountinfo` (overlay).
const IO_BUF: usize = 16 << 10;

/// The engine's scratch memory (about 30 KiB): the library maps it per call, so that
/// the slow path fits in a small stack.
#[repr(C)]
pub struct Space {
    path: [u8; PATH_BUF],
    line: [u8; LINE_MAX],
    io: [u8; IO_BUF],
    fiemap: Fiemap,
}

impl Space {
    /// A zeroed space, for callers that keep one (the supervisor, tests).
    pub fn new() -> Space {
        Space { path: [0; PATH_BUF], line: [0; LINE_MAX], io: [0; IO_BUF], fiemap: Fiemap::EMPTY }
    }
}

impl Default for Space {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`prepare`] leaves for the real call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prepared {
    /// Nothing to do: make the call as the program made it.
    Untouched,
    /// `NOSPARSE_ON_ERROR=fail`: do not make the call; it fails with this errno.
    Fail(Errno),
    /// Make the call, then give its result to [`finish`].
    Act(Work),
}

/// What is left to do after the real call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Work {
    kind: Kind,
    trigger: Trigger,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Allocate {
        plan: Plan,
        nocow_set: bool,
        reserved: bool,
        blocks_before: i64,
        reserve_ms: u64,
    },
    /// `NOSPARSE_METHOD=off`.
    Dry {
        len: u64,
    },
    NoRoom {
        needed: u64,
        free: u64,
    },
}

/// The facts the call gives with two system calls (for `write`, a third: the file
/// offset, read without moving it). `None`: the descriptor cannot be looked at.
pub fn facts(fd: i32, trigger: Trigger, offset: i64) -> Option<Call> {
    let offset = match trigger {
        // Fails (ESPIPE) on pipes, sockets and terminals.
        Trigger::Write => sys::lseek(fd, 0, libc::SEEK_CUR).ok()?,
        _ => offset,
    };
    let (Ok(open_flags), Ok(st)) = (sys::getfl(fd), sys::fstat(fd)) else { return None };
    let setid = st.mode & (libc::S_ISUID | libc::S_ISGID) != 0;
    Some(Call { trigger, offset, open_flags, regular: st.is_regular(), setid, size: st.size, blksize: st.blksize })
}

/// A debug line for a call the screen left alone.
pub fn skipped(t: &Target, cfg: &Config, call: &Call, why: Skip, s: &mut Space) {
    if cfg.debug && why != Skip::Disabled {
        let o = Outcome::Skipped { fd: t.program_fd, trigger: call.trigger, offset: call.offset, why };
        emit(t, cfg, &o, b"", &mut s.line);
    }
}

/// The rest of the facts, the judgement, and what must happen before the real call.
pub fn prepare(t: &Target, cfg: &Config, screened: Screened, s: &mut Space) -> Prepared {
    let call = *screened.call();
    let fd = t.fd;
    let name = path(t, &mut s.path);
    let Ok(data) = fs::data_fs(fd, &mut s.io) else { return Prepared::Untouched };
    // Filesystems without inode flags (ENOTTY) have neither append-only nor immutable.
    let inode_flags = sys::inode_flags(fd).unwrap_or(0);
    let file = File {
        append_only: inode_flags & sys::FS_APPEND_FL != 0,
        immutable: inode_flags & sys::FS_IMMUTABLE_FL != 0,
        fs: data.kind,
        overlay: data.overlay,
        fs_blocks: data.statfs.blocks,
        free: data.statfs.free_bytes(sys::is_root()),
        path_matches: cfg.matches(name),
        fsize_limit: sys::fsize_limit(t.pid),
        extent_hint: match data.kind {
            fs::FsKind::Xfs => sys::extent_size_hint(fd),
            _ => 0,
        },
        // Read only where the plan may act before the call (see `Plan::reserve`).
        // Unreadable (EACCES from a security module): as if present, which only defers
        // the allocation until after the call.
        capabilities: (cfg.fails() || data.kind == fs::FsKind::Btrfs)
            && sys::has_xattr(fd, b"security.capability\0").unwrap_or(true),
    };
    let work = |kind| Prepared::Act(Work { kind, trigger: call.trigger });
    let plan = match policy::judge(cfg, &screened, &file) {
        Decision::Allocate(plan) => plan,
        Decision::Skip(why) => {
            let o = Outcome::Skipped { fd: t.program_fd, trigger: call.trigger, offset: call.offset, why };
            if cfg.debug || o.level().is_some() {
                emit(t, cfg, &o, name, &mut s.line);
            }
            return Prepared::Untouched;
        }
        Decision::WouldAllocate(plan) => return work(Kind::Dry { len: plan.len() }),
        Decision::NoRoom { needed, free } => {
            if cfg.fails() {
                emit(t, cfg, &Outcome::NoRoom { needed, free, fail: true }, name, &mut s.line);
                return Prepared::Fail(Errno(libc::ENOSPC));
            }
            return work(Kind::NoRoom { needed, free });
        }
    };
    // btrfs: NOCOW can only be set while the file is empty, so before the call. Without
    // it the file still gets its blocks; btrfs may fragment it later.
    let nocow_set = plan.nocow && alloc::set_nocow(fd).unwrap_or(false);
    // What a reservation then a failing call leave past the end is measured from here.
    let blocks_before = if plan.reserve { sys::fstat(fd).map_or(0, |st| st.blocks) } else { 0 };
    let mut reserved = false;
    let started = sys::monotonic_ns();
    if plan.reserve {
        match alloc::reserve(fd, &plan) {
            Ok(()) => reserved = true,
            // No fallocate here: the zero fill after the call, whose failure is a warning.
            Err(e) if e.0 == libc::EOPNOTSUPP => {}
            Err(errno) => {
                if nocow_set {
                    alloc::clear_nocow(fd);
                }
                let (left, fail) = (past_end(fd, blocks_before), cfg.fails());
                emit(t, cfg, &Outcome::ReserveFailed { len: plan.len(), errno, left, fail }, name, &mut s.line);
                return if fail { Prepared::Fail(errno) } else { Prepared::Untouched };
            }
        }
    }
    let reserve_ms = ms_since(started);
    work(Kind::Allocate { plan, nocow_set, reserved, blocks_before, reserve_ms })
}

/// After the real call, whose result was `ret` (negative: it failed): the allocation,
/// and the one log line.
pub fn finish(t: &Target, cfg: &Config, work: &Work, ret: i64, s: &mut Space) {
    let fd = t.fd;
    let outcome = match work.kind {
        Kind::Allocate { nocow_set, reserved, blocks_before, .. } if ret < 0 => {
            if nocow_set {
                alloc::clear_nocow(fd);
            }
            match reserved {
                true => Outcome::CallFailed { left: past_end(fd, blocks_before) },
                false => Outcome::CallFailedUntouched,
            }
        }
        Kind::Allocate { plan, reserved, reserve_ms, .. } => {
            let started = sys::monotonic_ns();
            match alloc::fill(fd, &plan, reserved, &mut s.fiemap) {
                Ok(how) => {
                    let ms = reserve_ms + ms_since(started);
                    let fragments = match cfg.log {
                        Sink::None => None,
                        _ => extents::layout_in(fd, plan.end as u64, &mut s.fiemap).ok().filter(|l| !l.pending),
                    };
                    Outcome::Allocated {
                        len: plan.len(),
                        how,
                        ms,
                        trigger: work.trigger,
                        fragments: fragments.map(|l| l.fragments),
                    }
                }
                Err((stop, how)) => Outcome::Stopped { len: plan.len(), how, stop },
            }
        }
        _ if ret < 0 => Outcome::CallFailedUntouched,
        Kind::Dry { len } => Outcome::WouldAllocate { len },
        Kind::NoRoom { needed, free } => Outcome::NoRoom { needed, free, fail: false },
    };
    if outcome.level().is_some() || cfg.debug {
        let name = path(t, &mut s.path);
        emit(t, cfg, &outcome, name, &mut s.line);
    }
}

/// Sends the outcome's line (debug level where the outcome has none).
fn emit(t: &Target, cfg: &Config, o: &Outcome, name: &[u8], line: &mut [u8; LINE_MAX]) {
    if cfg.log == Sink::None {
        return;
    }
    let level = o.level().unwrap_or(Level::Debug);
    let mut l = Line::new(line, cfg.log, level, t.ident);
    o.words(name, &mut l);
    l.emit();
}

/// Bytes allocated since `blocks_before` that the file's size does not cover: what a
/// failed call leaves past its end.
fn past_end(fd: i32, blocks_before: i64) -> u64 {
    sys::fstat(fd).map_or(0, |st| (st.blocks - blocks_before).max(0) as u64 * 512)
}

fn ms_since(started: u64) -> u64 {
    sys::monotonic_ns().saturating_sub(started) / 1_000_000
}

/// The path the program's descriptor was opened with, as the kernel knows it now,
/// without " (deleted)" for an unlinked file; "(unknown path)" when it cannot be read
/// (a path longer than `PATH_MAX` among them).
fn path<'a>(t: &Target, buf: &'a mut [u8; PATH_BUF]) -> &'a [u8] {
    let mut link = [0u8; 48];
    let n = match t.pid {
        0 => fs::proc_path(&mut link, b"/proc/self/fd/", t.program_fd),
        pid => fs::proc_pid_path(&mut link, pid, t.program_fd),
    };
    let len = match sys::readlink(link.get(..n).unwrap_or(&[]), buf) {
        Ok(len) if len < buf.len() => len,
        _ => return b"(unknown path)",
    };
    let path = buf.get(..len).unwrap_or(&[]);
    path.strip_suffix(b" (deleted)").unwrap_or(path)
}
