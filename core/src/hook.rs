//! What the interposed symbols do: a two-comparison test for every call, and for the
//! rare candidate, the facts, the decision, the allocation and one log line.

use crate::config::{Config, FileState, OnError, Trigger};
use crate::error::{get_errno, set_errno, Errno};
use crate::extents;
use crate::fs::FsKind;
use crate::log::{self, Bytes, Level};
use crate::policy::{self, Decision, Facts};
use crate::prealloc::{self, Before};
use crate::real;
use crate::sys;
use libc::{c_int, c_void, size_t, ssize_t};
use std::ffi::CStr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// The smallest offset a one-byte `pwrite` needs to be looked at: `NOSPARSE_MIN_SIZE - 1`,
/// or `i64::MAX` when disabled. Zero until the settings are read, so that early calls
/// take the slow path, which reads them.
static PWRITE_THRESHOLD: AtomicI64 = AtomicI64::new(0);
/// The same for a one-byte `write` at the current file offset.
static WRITE_THRESHOLD: AtomicI64 = AtomicI64::new(0);
/// The smallest length an `ftruncate` needs to be looked at: `NOSPARSE_MIN_SIZE`.
static TRUNCATE_THRESHOLD: AtomicI64 = AtomicI64::new(0);
static CONFIG: OnceLock<Config> = OnceLock::new();

/// `pwrite64(fd, buf, nbyte, offset)`, with sparse creations preallocated first.
///
/// # Safety
/// The arguments are the caller's, with pwrite64's contract.
#[inline(always)]
pub unsafe fn pwrite(fd: c_int, buf: *const c_void, nbyte: size_t, offset: i64) -> ssize_t {
    if nbyte == 1 && offset >= PWRITE_THRESHOLD.load(Ordering::Relaxed) {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { candidate(fd, buf, nbyte, offset) };
    }
    // SAFETY: the caller's arguments, passed on to the function it meant to call.
    unsafe { real::pwrite64()(fd, buf, nbyte, offset) }
}

/// `write(fd, buf, nbyte)`: a one-byte write is looked at when the `write` trigger is on.
///
/// # Safety
/// The arguments are the caller's, with write's contract.
#[inline(always)]
pub unsafe fn write(fd: c_int, buf: *const c_void, nbyte: size_t) -> ssize_t {
    if nbyte == 1 {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { write_one(fd, buf, nbyte) };
    }
    // SAFETY: the caller's arguments, passed on to the function it meant to call.
    unsafe { real::write()(fd, buf, nbyte) }
}

/// [`write`] with the C calling convention, for the i686 assembly hook.
///
/// # Safety
/// As for [`write`].
pub unsafe extern "C" fn write_c(fd: c_int, buf: *const c_void, nbyte: size_t) -> ssize_t {
    // SAFETY: the caller's arguments, passed on.
    unsafe { write(fd, buf, nbyte) }
}

/// `ftruncate64(fd, len)`: growing a file past `NOSPARSE_MIN_SIZE` is looked at when the
/// `ftruncate` trigger is on.
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

/// [`pwrite`] with the C calling convention, for hooks that jump to it with the
/// caller's arguments still in place (the i686 assembly hook).
///
/// # Safety
/// As for [`pwrite`].
pub unsafe extern "C" fn pwrite_c(fd: c_int, buf: *const c_void, nbyte: size_t, offset: i64) -> ssize_t {
    // SAFETY: the caller's arguments, passed on.
    unsafe { pwrite(fd, buf, nbyte, offset) }
}

/// Reads the settings and resolves the real functions; the library's constructor calls it.
pub fn init() {
    let _ = catch_unwind(|| {
        config();
        real::resolve_all();
    });
}

/// The settings, read on first use.
pub fn config() -> &'static Config {
    CONFIG.get_or_init(|| {
        let loaded = Config::for_process();
        let mut cfg = loaded.cfg;
        let mut exe_buf = [0u8; sys::PATH_BUF];
        let exe = sys::exe_path(&mut exe_buf).ok().map(|p| {
            // SAFETY: exe_path leaves a NUL after the bytes it returns.
            unsafe { CStr::from_ptr(p.as_ptr().cast()) }
        });
        if !cfg.programs.allows(exe) {
            // Not a program the library is for (NOSPARSE_PROGRAMS): inert, and silent,
            // since with /etc/ld.so.preload that is every other process on the host.
            cfg.disabled = true;
        } else {
            report(&cfg, &loaded.bad, &loaded.file, loaded.env_ignored);
        }
        let threshold = |trigger: Trigger, at: u64| {
            if cfg.disabled || !cfg.triggers.has(trigger) {
                i64::MAX
            } else {
                at as i64
            }
        };
        PWRITE_THRESHOLD.store(threshold(Trigger::Pwrite, cfg.min_size.saturating_sub(1)), Ordering::Relaxed);
        WRITE_THRESHOLD.store(threshold(Trigger::Write, cfg.min_size.saturating_sub(1)), Ordering::Relaxed);
        TRUNCATE_THRESHOLD.store(threshold(Trigger::Ftruncate, cfg.min_size), Ordering::Relaxed);
        cfg
    })
}

/// Logs, once per process, what was wrong with the settings.
fn report(cfg: &Config, bad: &[crate::config::BadSetting], file: &FileState, env_ignored: bool) {
    for b in bad {
        log::emit(
            cfg.log,
            Level::Warning,
            format_args!("{}: ignoring {}={:?}: {}; keeping the default", b.source, b.name, b.value, b.why),
        );
    }
    if let FileState::Ignored(why) = file {
        let path = crate::config::CONFIG_FILE;
        log::emit(cfg.log, Level::Warning, format_args!("not reading {path}: {why}"));
    }
    if env_ignored {
        log::emit(
            cfg.log,
            Level::Info,
            format_args!("secure-execution program: NOSPARSE_* settings from the environment ignored"),
        );
    }
}

/// What the preparation left for the real call to do.
enum Prepared {
    /// Nothing changed: call through.
    Untouched,
    /// The file was allocated: call through, and undo if the real call fails.
    Allocated(Before),
    /// Allocation failed under `NOSPARSE_ON_ERROR=fail`: return -1 with this errno.
    Fail(Errno),
}

/// The slow path of `pwrite`. It has pwrite64's C signature so that the hook can jump
/// to it with the caller's own arguments in place (a tail call, also on i686), and it
/// cannot unwind, so the hook needs no landing pad.
#[cold]
#[inline(never)]
unsafe extern "C" fn candidate(fd: c_int, buf: *const c_void, nbyte: size_t, offset: i64) -> ssize_t {
    // SAFETY: the caller's arguments, passed on.
    around(fd, Trigger::Pwrite, offset, || unsafe { real::pwrite64()(fd, buf, nbyte, offset) } as i64) as ssize_t
}

/// The slow path of a one-byte `write`: judged as a `pwrite` at the current offset.
#[cold]
#[inline(never)]
unsafe extern "C" fn write_one(fd: c_int, buf: *const c_void, nbyte: size_t) -> ssize_t {
    // SAFETY: the caller's arguments, passed on.
    let call = || unsafe { real::write()(fd, buf, nbyte) } as i64;
    let threshold = WRITE_THRESHOLD.load(Ordering::Relaxed);
    if threshold == i64::MAX {
        return call() as ssize_t;
    }
    let saved_errno = get_errno();
    // Fails (ESPIPE) on pipes, sockets and terminals, which are left alone.
    let offset = sys::lseek(fd, 0, libc::SEEK_CUR).unwrap_or(-1);
    set_errno(saved_errno);
    if offset < threshold {
        return call() as ssize_t;
    }
    around(fd, Trigger::Write, offset, call) as ssize_t
}

/// The slow path of `ftruncate`: judged as a `pwrite` of the byte at `len - 1`.
#[cold]
#[inline(never)]
unsafe extern "C" fn truncate_one(fd: c_int, len: i64) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    let call = || i64::from(unsafe { real::ftruncate64()(fd, len) });
    around(fd, Trigger::Ftruncate, len.saturating_sub(1), call) as c_int
}

/// Prepares the file for a call that may create it sparse, makes the call, and undoes
/// the preparation if the call fails. errno is the call's own.
fn around(fd: c_int, trigger: Trigger, offset: i64, call: impl FnOnce() -> i64) -> i64 {
    let saved_errno = get_errno();
    let prepared = catch_unwind(|| prepare(fd, trigger, offset)).unwrap_or(Prepared::Untouched);
    let before = match prepared {
        Prepared::Fail(errno) => {
            set_errno(errno.0);
            return -1;
        }
        Prepared::Untouched => None,
        Prepared::Allocated(before) => Some(before),
    };
    set_errno(saved_errno);
    let ret = call();
    if let (true, Some(before)) = (ret < 0, before) {
        // Without the library the failed call would have left the file as it was.
        let errno = get_errno();
        let _ = catch_unwind(AssertUnwindSafe(|| undo(fd, before, "the call itself failed")));
        set_errno(errno);
    }
    ret
}

fn prepare(fd: c_int, trigger: Trigger, offset: i64) -> Prepared {
    let cfg = config();
    if policy::is_candidate(cfg, trigger, 1, offset).is_err() {
        // Only calls made before the settings were read get here.
        return Prepared::Untouched;
    }
    let mut path_buf = [0u8; sys::PATH_BUF];
    let path = match sys::fd_path(fd, &mut path_buf) {
        // SAFETY: fd_path leaves a NUL after the bytes it returns.
        Ok(p) => unsafe { CStr::from_ptr(p.as_ptr().cast()) },
        Err(_) => c"(unknown path)",
    };
    let path_text = log::Lossy(path.to_bytes());
    let (facts, before) = match gather(fd, trigger, offset, cfg, path) {
        Ok(found) => found,
        Err(e) => {
            if cfg.debug {
                log::emit(cfg.log, Level::Debug, format_args!("fd {fd}: left alone: {e}"));
            }
            return Prepared::Untouched;
        }
    };
    let (len, method, nocow) = match policy::judge(cfg, &facts) {
        Decision::Skip(why) => {
            if cfg.debug {
                log::emit(cfg.log, Level::Debug, format_args!("{path_text}: left alone: {why}"));
            }
            return Prepared::Untouched;
        }
        Decision::WouldAllocate { len } => {
            log::emit(
                cfg.log,
                Level::Info,
                format_args!("{path_text}: would preallocate {} (NOSPARSE_METHOD=off)", Bytes(len as u64)),
            );
            return Prepared::Untouched;
        }
        Decision::Allocate { len, method, nocow } => (len, method, nocow),
    };
    let started = Instant::now();
    if nocow {
        if let Err(e) = prealloc::set_nocow(fd) {
            log::emit(
                cfg.log,
                Level::Warning,
                format_args!("{path_text}: could not set NOCOW ({e}); btrfs may fragment it"),
            );
        }
    }
    match prealloc::allocate(fd, before, len, method, facts.open_flags) {
        Ok(how) => {
            let ms = started.elapsed().as_millis();
            // Counting fragments walks the extent map: only for a line that is written.
            let frags = match cfg.log {
                log::Sink::None => None,
                _ => extents::layout(fd, len as u64).ok().filter(|l| !l.pending).map(|l| l.fragments),
            };
            log::emit(
                cfg.log,
                Level::Info,
                format_args!(
                    "preallocated {path_text}: {} on {} by {how} in {ms} ms (on {trigger}), fragments: {}",
                    Bytes(len as u64),
                    facts.fs,
                    log::OrPending(frags)
                ),
            );
            Prepared::Allocated(before)
        }
        Err(e) => {
            undo(fd, before, "preallocation failed");
            let outcome = match cfg.on_error {
                OnError::Passthrough => "the file stays sparse",
                OnError::Fail => "failing the write (NOSPARSE_ON_ERROR=fail)",
            };
            log::emit(
                cfg.log,
                Level::Warning,
                format_args!(
                    "could not preallocate {path_text} ({} on {}): {e}; {outcome}",
                    Bytes(len as u64),
                    facts.fs
                ),
            );
            match cfg.on_error {
                OnError::Passthrough => Prepared::Untouched,
                OnError::Fail => Prepared::Fail(e.errno),
            }
        }
    }
}

/// Collects the facts the decision needs: four syscalls, on candidates only.
fn gather(
    fd: c_int,
    trigger: Trigger,
    offset: i64,
    cfg: &Config,
    path: &CStr,
) -> crate::error::Result<(Facts, Before)> {
    let open_flags = sys::getfl(fd)?;
    let st = sys::fstat(fd)?;
    let regular = st.st_mode & libc::S_IFMT == libc::S_IFREG;
    // Only regular files need to know their filesystem.
    let fs = if regular { FsKind::of_fd(fd)? } else { FsKind::Other(0) };
    let facts = Facts {
        trigger,
        nbyte: 1,
        offset,
        open_flags,
        regular,
        size: st.st_size,
        fs,
        path_matches: cfg.matcher.matches(path),
        fsize_limit: sys::fsize_limit(),
    };
    Ok((facts, Before { size: st.st_size, blocks: st.st_blocks as i64 }))
}

/// Rolls the file back, and says so if that fails too.
fn undo(fd: c_int, before: Before, why: &str) {
    if let Err(e) = prealloc::rollback(fd, before) {
        let cfg = config();
        log::emit(
            cfg.log,
            Level::Warning,
            format_args!("fd {fd}: {why}, and restoring the size {} failed: {e}", before.size),
        );
    }
}
