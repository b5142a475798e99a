//! The interposed symbols' behaviour: every call that is not a one-byte write (or a
//! growing `ftruncate`) goes straight to the real function; a candidate takes the
//! engine's straight line ([`crate::engine`]) around the real call.
//!
//! The slow path is a guest in the program's thread, which may be a signal handler, a
//! vfork child or a thread about to be cancelled. It makes only system calls (no libc
//! function but `pthread_setcancelstate`), takes no lock, allocates nothing, keeps no
//! descriptor, and uses under 4 KiB of stack: its buffers live in scratch memory mapped
//! for the call and unmapped before the real call. Cancellation is disabled around its
//! own work and restored before the real call, which stays the cancellation point: a
//! thread cancelled there leaves the file as the call left it, sparse.

use crate::config;
use crate::engine::{self, Prepared, Target};
use crate::error::set_errno;
use crate::policy;
use crate::real;
use crate::scratch::{NoCancel, Scratch};
use crate::settings::{self, Trigger};
use crate::state::{self, PWRITE_THRESHOLD, TRUNCATE_THRESHOLD, WRITE_THRESHOLD};
use crate::sys;
use core::ffi::{c_int, c_void};
use core::sync::atomic::Ordering;
use libc::{size_t, ssize_t};

/// `pwrite64(fd, buf, nbyte, offset)` and `write(fd, buf, nbyte)` are hooked in
/// assembly (`src/lib.rs`): compare, branch, jump. A one-byte call goes to
/// [`candidate`] or [`write_one`] with the caller's arguments in place; any other to the
/// real function.
/// `ftruncate64(fd, len)`: growing a file is looked at when the `ftruncate` trigger is on.
///
/// # Safety
/// ftruncate's contract (none beyond a valid fd, which is checked).
#[inline(always)]
pub unsafe fn ftruncate(fd: c_int, len: i64) -> c_int {
    if len >= TRUNCATE_THRESHOLD.load(Ordering::Relaxed) {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { truncate_one(fd, len) };
    }
    // SAFETY: the caller's arguments, passed on to the function it meant to call.
    unsafe { real::ftruncate64()(fd, len) }
}

/// The library's constructor: resolves the real functions (no system call), and when
/// the environment asks for stderr logging, notes what fd 2 is. Nothing else happens
/// at load: the settings are read at the first candidate call.
pub fn init() {
    real::resolve_all();
    if !sys::secure_execution() && config::env_var(settings::LOG.name) == Some(b"stderr") {
        crate::log::remember_stderr();
    }
}

/// The slow path of a one-byte `pwrite64`. It has pwrite64's C signature so that the
/// hook can jump to it with the caller's own arguments in place.
///
/// # Safety
/// The caller's arguments, with pwrite64's contract.
#[cold]
#[inline(never)]
pub unsafe extern "C" fn candidate(fd: c_int, buf: *const c_void, nbyte: size_t, offset: i64) -> ssize_t {
    // SAFETY: the caller's arguments, passed on.
    let mut call = || unsafe { real::pwrite64()(fd, buf, nbyte, offset) } as i64;
    if offset < PWRITE_THRESHOLD.load(Ordering::Relaxed) {
        return call() as ssize_t;
    }
    around(fd, Trigger::Pwrite, offset, &mut call) as ssize_t
}

/// `pwrite` with a 32-bit `off_t` (i686), for its hook: the offset is sign-extended, as
/// glibc does, and the call judged as a `pwrite64`.
///
/// # Safety
/// As for [`candidate`].
#[cold]
#[inline(never)]
pub unsafe extern "C" fn candidate32(fd: c_int, buf: *const c_void, nbyte: size_t, offset: i32) -> ssize_t {
    // SAFETY: the caller's arguments, passed on.
    unsafe { candidate(fd, buf, nbyte, i64::from(offset)) }
}

/// The slow path of a one-byte `write`: judged as a `pwrite` at the current offset.
/// While the trigger is off (once the settings are read) it costs no system call.
///
/// # Safety
/// The caller's arguments, with write's contract.
#[cold]
#[inline(never)]
pub unsafe extern "C" fn write_one(fd: c_int, buf: *const c_void, nbyte: size_t) -> ssize_t {
    // SAFETY: the caller's arguments, passed on.
    let mut call = || unsafe { real::write()(fd, buf, nbyte) } as i64;
    if WRITE_THRESHOLD.load(Ordering::Relaxed) == i64::MAX {
        return call() as ssize_t;
    }
    around(fd, Trigger::Write, 0, &mut call) as ssize_t
}

/// The slow path of `ftruncate`: judged as a `pwrite` of the byte at `len - 1`.
#[cold]
#[inline(never)]
unsafe extern "C" fn truncate_one(fd: c_int, len: i64) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    let mut call = || i64::from(unsafe { real::ftruncate64()(fd, len) });
    around(fd, Trigger::Ftruncate, len.saturating_sub(1), &mut call) as c_int
}

/// Prepares the file for a call that may create it sparse, makes the call, and
/// allocates after it if it succeeded. The caller's errno is the real call's own.
fn around(fd: c_int, trigger: Trigger, offset: i64, call: &mut dyn FnMut() -> i64) -> i64 {
    let me = Target::own(fd);
    // Once the settings are read, most calls (a file growing block by block) are
    // settled by two system calls, before any memory is mapped.
    let screened = match state::ready() {
        Some(cfg) if !cfg.debug => {
            if !cfg.triggers.has(trigger) || cfg.disabled {
                return call();
            }
            let Some(facts) = engine::facts(fd, trigger, offset) else { return call() };
            match policy::screen(cfg, &facts) {
                Ok(s) => Some(s),
                Err(_) => return call(),
            }
        }
        _ => None,
    };
    let (prepared, cfg) = {
        let _quiet = NoCancel::new();
        let Some(mut s) = Scratch::map() else { return call() };
        let m = &mut *s;
        let Some(cfg) = state::settings(&mut m.cfg, &mut m.io, &mut m.exe) else { return call() };
        let screened = match screened {
            Some(s) => s,
            None => {
                if cfg.disabled || !cfg.triggers.has(trigger) {
                    return call();
                }
                let Some(facts) = engine::facts(fd, trigger, offset) else { return call() };
                match policy::screen(cfg, &facts) {
                    Ok(s) => s,
                    Err(why) => {
                        engine::skipped(&me, cfg, &facts, why, &mut m.engine);
                        return call();
                    }
                }
            }
        };
        // The settings outlive the scratch memory only when they are the process's.
        (engine::prepare(&me, cfg, screened, &mut m.engine), state::ready())
    };
    match prepared {
        Prepared::Untouched => call(),
        Prepared::Fail(errno) => {
            set_errno(errno.0);
            -1
        }
        Prepared::Act(work) => {
            // If the thread is cancelled in the real call, no code of ours runs after it:
            // the file stays as the call left it.
            let ret = call();
            let _quiet = NoCancel::new();
            if let Some(mut s) = Scratch::map() {
                let m = &mut *s;
                let cfg = match cfg {
                    Some(cfg) => Some(cfg),
                    None => state::settings(&mut m.cfg, &mut m.io, &mut m.exe),
                };
                if let Some(cfg) = cfg {
                    engine::finish(&me, cfg, &work, ret, &mut m.engine);
                }
            }
            ret
        }
    }
}
