//! What the interposed symbols do: a two-comparison test for every call and, for the
//! rare candidate, a straight line — gather the facts, judge once, act, log one line.
//!
//! The slow path is a guest in the program's thread, which may be a signal handler, a
//! vfork child or a thread about to be cancelled. It makes only system calls (no libc
//! function but `pthread_setcancelstate`), takes no lock, allocates nothing, keeps no
//! descriptor, and uses under 4 KiB of stack: its buffers live in scratch memory mapped
//! for the call and unmapped before the real call. Cancellation is disabled around its
//! own work and restored before the real call, which stays the cancellation point.

use crate::config::{self, BadList, Config, FileState, Source};
use crate::error::{set_errno, Errno};
use crate::extents::{self, Fiemap};
use crate::fs;
use crate::log::{Level, Line, LINE_MAX};
use crate::policy::{self, Call, Decision, File, Skip};
use crate::prealloc::{self, Done};
use crate::real;
use crate::settings::{OnError, Sink, Trigger};
use crate::sys;
use core::cell::UnsafeCell;
use core::ffi::{c_int, c_void};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use libc::{size_t, ssize_t};

/// The smallest offset a one-byte `pwrite` needs to be looked at: `NOSPARSE_MIN_SIZE - 1`,
/// or `i64::MAX` when off. Zero until the settings are read, so that early calls take
/// the slow path, which reads them.
static PWRITE_THRESHOLD: AtomicI64 = AtomicI64::new(0);
/// The same for a one-byte `write` at the current file offset.
static WRITE_THRESHOLD: AtomicI64 = AtomicI64::new(0);
/// The smallest length an `ftruncate` needs to be looked at: `NOSPARSE_MIN_SIZE`.
static TRUNCATE_THRESHOLD: AtomicI64 = AtomicI64::new(0);

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

/// [`pwrite`] with the C calling convention, for the i686 assembly hooks, which jump
/// to it with the caller's arguments still in place.
///
/// # Safety
/// As for [`pwrite`].
pub unsafe extern "C" fn pwrite_c(fd: c_int, buf: *const c_void, nbyte: size_t, offset: i64) -> ssize_t {
    // SAFETY: the caller's arguments, passed on.
    unsafe { pwrite(fd, buf, nbyte, offset) }
}

/// `pwrite` with a 32-bit `off_t` (i686), for the assembly hook: the offset is
/// sign-extended, as glibc does, and the call judged as a `pwrite64`.
///
/// # Safety
/// As for [`pwrite`].
pub unsafe extern "C" fn pwrite32_c(fd: c_int, buf: *const c_void, nbyte: size_t, offset: i32) -> ssize_t {
    // SAFETY: the caller's arguments, passed on.
    unsafe { pwrite(fd, buf, nbyte, i64::from(offset)) }
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
    if !sys::secure_execution() && config::env_var("NOSPARSE_LOG") == Some(b"stderr") {
        crate::log::remember_stderr();
    }
}

/// The slow path of `pwrite`. It has pwrite64's C signature so that the hook can jump
/// to it with the caller's own arguments in place.
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
    // Reads the offset without moving it; fails (ESPIPE) on pipes, sockets and terminals.
    let offset = sys::lseek(fd, 0, libc::SEEK_CUR).unwrap_or(-1);
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

/// What the preparation left for the real call.
enum Prepared {
    /// Nothing changed: call through.
    Untouched,
    /// The range was allocated: call through, and undo if the real call fails.
    Allocated(Done),
    /// Preallocation failed under `NOSPARSE_ON_ERROR=fail`: return -1 with this errno.
    Fail(Errno),
}

/// Prepares the file for a call that may create it sparse, makes the call, and undoes
/// the preparation if the call fails. The caller's errno is the real call's own.
fn around(fd: c_int, trigger: Trigger, offset: i64, call: impl FnOnce() -> i64) -> i64 {
    // The facts the call itself gives: two system calls, which settle most calls (a file
    // growing block by block) before anything else is done.
    let (Ok(open_flags), Ok(st)) = (sys::getfl(fd), sys::fstat(fd)) else {
        return call();
    };
    let facts = Call { trigger, offset, open_flags, regular: st.is_regular(), size: st.size, blksize: st.blksize };
    if let Some(cfg) = settings_if_read() {
        if !cfg.debug && policy::screen(cfg, &facts).is_err() {
            return call();
        }
    }
    let prepared = {
        let _quiet = NoCancel::new();
        match Scratch::map() {
            Some(mut s) => prepare(fd, &facts, st.blocks, &mut s),
            None => Prepared::Untouched,
        }
    };
    match prepared {
        Prepared::Untouched => call(),
        Prepared::Fail(errno) => {
            set_errno(errno.0);
            -1
        }
        Prepared::Allocated(done) => {
            // If the thread is cancelled in the real call, the blocks allocated past the
            // end of the file stay (the size is untouched): no code of ours runs then.
            let ret = call();
            if ret < 0 {
                // Without the library the failed call would have left the file as it was.
                let _quiet = NoCancel::new();
                if let Some(mut s) = Scratch::map() {
                    let ScratchSpace { path, exe, line, io, cfg, .. } = &mut *s;
                    let cfg = config(cfg, io, exe);
                    give_back(fd, &done, "the call itself failed", cfg, fd_path(fd, path), line, io);
                }
            }
            ret
        }
    }
}

/// Gather the rest of the facts → judge → act → log. `blocks` is the file's
/// `st_blocks` before.
fn prepare(fd: c_int, call: &Call, blocks: i64, s: &mut ScratchSpace) -> Prepared {
    let ScratchSpace { path, exe, line, io, fiemap, cfg } = s;
    let cfg = config(cfg, io, exe);
    let (trigger, offset) = (call.trigger, call.offset);
    // The path is read once, for NOSPARSE_MATCH and the log lines; not for calls the
    // screen already settles.
    let mut name: &[u8] = b"";
    let decision = match policy::screen(cfg, call) {
        Err(skip) => Decision::Skip(skip),
        Ok(()) => {
            name = fd_path(fd, path);
            let Ok(data) = fs::data_fs(fd, io) else { return Prepared::Untouched };
            let file = File {
                // Filesystems without inode flags (ENOTTY) have neither append-only nor immutable.
                inode_flags: sys::inode_flags(fd).unwrap_or(0),
                fs: data.kind,
                overlay: data.overlay,
                free: data.statfs.free_bytes(sys::is_root()),
                path_matches: cfg.matcher.matches(name),
                fsize_limit: sys::fsize_limit(),
            };
            policy::judge(cfg, call, &file)
        }
    };
    let plan = match decision {
        Decision::Allocate(plan) => plan,
        Decision::Skip(why) => {
            if cfg.debug && why != Skip::Disabled {
                let mut l = Line::new(line, cfg.log, Level::Debug);
                l.s("fd ").n(fd as u64).s(" (").s(trigger.name()).s(" at ").n(offset as u64).s("): left alone: ");
                match why {
                    Skip::Filesystem(fs) => l.s(fs.name()).s(" is in NOSPARSE_SKIP_FS"),
                    _ => l.s(why.reason()),
                };
                l.emit();
            }
            return Prepared::Untouched;
        }
        Decision::WouldAllocate(plan) => {
            let mut l = Line::new(line, cfg.log, Level::Info);
            l.s("would preallocate ").text(name).s(": ").bytes(plan.len());
            l.s(" (NOSPARSE_METHOD=off)").emit();
            return Prepared::Untouched;
        }
        Decision::NoRoom { needed, free } => {
            let mut l = Line::new(line, cfg.log, Level::Warning);
            l.s("could not preallocate ").text(name).s(": not enough room (ENOSPC): needs ").bytes(needed).s(", ");
            l.bytes(free).s(" free; ").s(outcome(cfg)).emit();
            return failed(cfg, Errno(libc::ENOSPC));
        }
    };
    let started = sys::monotonic_ns();
    match prealloc::allocate(fd, plan, blocks) {
        Ok(done) => {
            if cfg.log != Sink::None {
                let ms = sys::monotonic_ns().saturating_sub(started) / 1_000_000;
                let frags = extents::layout_in(fd, plan.end as u64, fiemap).ok().filter(|l| !l.pending);
                let mut l = Line::new(line, cfg.log, Level::Info);
                l.s("preallocated ").text(name).s(": ").bytes(plan.len()).s(" by ").s(done.how.name());
                l.s(" in ").n(ms).s(" ms (on ").s(trigger.name()).s("), fragments: ");
                match frags {
                    Some(layout) => l.n(layout.fragments),
                    None => l.s("pending writeback"),
                };
                l.emit();
            }
            Prepared::Allocated(done)
        }
        Err((e, done)) => {
            give_back(fd, &done, "preallocation failed", cfg, name, line, io);
            let mut l = Line::new(line, cfg.log, Level::Warning);
            l.s("could not preallocate ").text(name).s(" (").bytes(plan.len()).s(" by ");
            l.s(done.how.name()).s("): ").errno(e).s("; ").s(outcome(cfg)).emit();
            failed(cfg, e)
        }
    }
}

/// What a failed preallocation leads to, in words.
fn outcome(cfg: &Config) -> &'static str {
    match cfg.on_error {
        OnError::Passthrough => "the file stays sparse",
        OnError::Fail => "failing the call (NOSPARSE_ON_ERROR=fail)",
    }
}

fn failed(cfg: &Config, e: Errno) -> Prepared {
    match cfg.on_error {
        OnError::Passthrough => Prepared::Untouched,
        OnError::Fail => Prepared::Fail(e),
    }
}

/// Undoes an allocation, and says what is left if that fails too.
fn give_back(fd: c_int, done: &Done, why: &str, cfg: &Config, name: &[u8], line: &mut LineBuf, io: &mut [u8]) {
    if let Err(left) = prealloc::undo(fd, done, io) {
        let mut l = Line::new(line, cfg.log, Level::Warning);
        l.s("could not give back all of the preallocation of ").text(name).s(" (").s(why).s("): ");
        if let Some(e) = left.errno {
            l.errno(e).s("; ");
        }
        if left.bytes > 0 {
            l.bytes(left.bytes).s(" stay allocated; ");
        }
        if left.nocow {
            l.s("the NOCOW attribute stays; ");
        }
        l.s("the file's size and data are as the program left them").emit();
    }
}

/// `PATH_MAX`, plus room for the NUL.
const PATH_BUF: usize = 4096 + 16;
type PathBuf = [u8; PATH_BUF];
type LineBuf = [u8; LINE_MAX];
/// Room for the settings file (at most 64 KiB), pieces of `/proc/self/mountinfo`, and
/// read-back.
const IO_BUF: usize = config::CONFIG_FILE_MAX + 1;

/// The path `fd` was opened with, as the kernel knows it now, without " (deleted)" for
/// an unlinked file; "(unknown path)" when it cannot be read.
fn fd_path(fd: c_int, buf: &mut PathBuf) -> &[u8] {
    let mut link = [0u8; 32];
    let n = fs::proc_path(&mut link, b"/proc/self/fd/", fd);
    let len = match sys::readlink(link.get(..n).unwrap_or(&[]), buf) {
        Ok(len) if len < buf.len() => len,
        _ => return b"(unknown path)",
    };
    let path = buf.get(..len).unwrap_or(&[]);
    path.strip_suffix(b" (deleted)").unwrap_or(path)
}

/// The slow path's scratch memory, mapped for one call and unmapped when dropped.
#[repr(C)]
struct ScratchSpace {
    path: PathBuf,
    exe: PathBuf,
    line: LineBuf,
    io: [u8; IO_BUF],
    fiemap: Fiemap,
    cfg: MaybeUninit<Config>,
}

/// The slow path's scratch memory: a mapped [`ScratchSpace`], unmapped when dropped.
struct Scratch(*mut ScratchSpace);

impl Scratch {
    const SIZE: usize = core::mem::size_of::<ScratchSpace>();

    fn map() -> Option<Scratch> {
        sys::map_anonymous(Self::SIZE).ok().map(|p| Scratch(p.cast()))
    }
}

impl core::ops::Deref for Scratch {
    type Target = ScratchSpace;
    fn deref(&self) -> &ScratchSpace {
        // SAFETY: a fresh, zero-filled, page-aligned mapping of the struct's size, owned
        // by this value; every field is valid when zeroed (bytes, a FIEMAP header, a
        // MaybeUninit).
        unsafe { &*self.0 }
    }
}

impl core::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut ScratchSpace {
        // SAFETY: as in deref, and borrowed mutably through this value only.
        unsafe { &mut *self.0 }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`; its borrows end with this value.
        unsafe { sys::unmap(self.0.cast(), Scratch::SIZE) }
    }
}

/// Cancellation disabled for the library's own work, restored when dropped.
struct NoCancel(c_int);

extern "C" {
    /// In libc (GLIBC_2.0 on i386, 2.2.5 on x86_64); async-signal-safe in practice: it
    /// only flips bits in the thread's own descriptor.
    fn pthread_setcancelstate(state: c_int, old: *mut c_int) -> c_int;
}
const PTHREAD_CANCEL_DISABLE: c_int = 1;

impl NoCancel {
    fn new() -> Self {
        let mut old = 0;
        // SAFETY: old is a valid int to write.
        unsafe { pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &mut old) };
        NoCancel(old)
    }
}

impl Drop for NoCancel {
    fn drop(&mut self) {
        let mut ignored = 0;
        // SAFETY: as above; restores the program's own state.
        unsafe { pthread_setcancelstate(self.0, &mut ignored) };
    }
}

/// The settings, once read: written once by the thread that wins [`STATE`], then only
/// read.
struct Settings(UnsafeCell<MaybeUninit<Config>>);
// SAFETY: written only by the one thread that moves STATE from UNREAD to READING, and
// read only after STATE is READY (release/acquire).
unsafe impl Sync for Settings {}
static SETTINGS: Settings = Settings(UnsafeCell::new(MaybeUninit::uninit()));
static STATE: AtomicU8 = AtomicU8::new(UNREAD);
const UNREAD: u8 = 0;
const READING: u8 = 1;
const READY: u8 = 2;

/// The settings, if they have been read.
fn settings_if_read() -> Option<&'static Config> {
    (STATE.load(Ordering::Acquire) == READY).then(|| {
        // SAFETY: READY means the cell was fully written (release store in `config`).
        unsafe { (*SETTINGS.0.get()).assume_init_ref() }
    })
}

/// The settings, read on first use. No lock: a caller that finds them being read by
/// another thread (or by the code its signal handler interrupted) reads its own copy
/// into `spare`, silently.
fn config<'a>(spare: &'a mut MaybeUninit<Config>, io: &mut [u8], exe: &mut PathBuf) -> &'a Config {
    match STATE.compare_exchange(UNREAD, READING, Ordering::Acquire, Ordering::Acquire) {
        Err(READY) => {
            // SAFETY: READY means the cell was fully written (release store below).
            unsafe { (*SETTINGS.0.get()).assume_init_ref() }
        }
        Ok(_) => {
            // SAFETY: this thread alone moved STATE to READING: no one else touches the cell.
            let cell = unsafe { &mut *SETTINGS.0.get() };
            let cfg = cell.write(config::DEFAULT);
            load(cfg, io, exe, true);
            arm(cfg);
            STATE.store(READY, Ordering::Release);
            cfg
        }
        Err(_) => {
            let cfg = spare.write(config::DEFAULT);
            load(cfg, io, exe, false);
            cfg
        }
    }
}

/// Sets the hooks' thresholds from the settings.
fn arm(cfg: &Config) {
    let at = |trigger: Trigger, v: u64| {
        if cfg.disabled || !cfg.triggers.has(trigger) {
            i64::MAX
        } else {
            v.min(i64::MAX as u64) as i64
        }
    };
    PWRITE_THRESHOLD.store(at(Trigger::Pwrite, cfg.min_size.saturating_sub(1)), Ordering::Relaxed);
    WRITE_THRESHOLD.store(at(Trigger::Write, cfg.min_size.saturating_sub(1)), Ordering::Relaxed);
    TRUNCATE_THRESHOLD.store(at(Trigger::Ftruncate, cfg.min_size), Ordering::Relaxed);
}

/// Reads the settings file and the environment into `cfg`; with `report`, logs what
/// was wrong with them (once per process).
fn load(cfg: &mut Config, io: &mut [u8], exe: &mut PathBuf, report: bool) {
    let secure = sys::secure_execution();
    let (state, text) = config::read_file(io);
    let mut bad = BadList::new();
    if let FileState::Untrusted(_) = state {
        cfg.disabled = true;
        return;
    }
    cfg.apply_file(text, &mut bad);
    if !secure {
        // A closure, not the function: it lets the 'static values shorten to the file's.
        #[allow(clippy::redundant_closure)]
        cfg.apply_env(|name| config::env_var(name), &mut bad);
    }
    if cfg.programs != config::Programs::Every {
        let exe_path = match sys::readlink(b"/proc/self/exe\0", exe) {
            Ok(n) if n < exe.len() => exe.get(..n),
            _ => None,
        };
        if !cfg.allows_program(exe_path) {
            // Not a program the library is for, or a bad list: inert and silent, since
            // with /etc/ld.so.preload that is every other process on the host.
            cfg.disabled = true;
            return;
        }
    }
    if !report {
        return;
    }
    let mut line = [0u8; 256];
    for b in bad.iter() {
        let mut l = Line::new(&mut line, cfg.log, Level::Warning);
        l.s("ignoring ");
        match b.name {
            [] => l.s("the line"),
            name => l.text(name),
        };
        l.s("=\"").text(b.value).s("\" (");
        match b.source {
            Source::Environment => l.s("environment"),
            Source::File(n) => l.s(config::CONFIG_FILE).s(":").n(u64::from(n)),
        };
        l.s("): ").s(b.why).s("; keeping the default").emit();
    }
    if bad.more > 0 {
        Line::new(&mut line, cfg.log, Level::Warning).s("more bad settings not shown: ").n(u64::from(bad.more)).emit();
    }
    if secure && config::env_has_settings() {
        let mut l = Line::new(&mut line, cfg.log, Level::Info);
        l.s("secure-execution program: NOSPARSE_* settings from the environment ignored").emit();
    }
}
