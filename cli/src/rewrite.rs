//! `nosparse rewrite FILE`: the manual fix for a file that is already fragmented (a
//! suspended guest's `.vmem`): a preallocated copy, made beside it and renamed over it,
//! with its owner, mode, times and extended attributes. It refuses while another process
//! has the file open, and when the file changes during the copy; the original is
//! untouched until the rename, which is atomic. "Open" is settled by a write lease
//! ([`Lease`]) where the file's owner (or root) can take one, else by looking through
//! /proc. A signal removes the copy at once, whatever the copy is doing (see
//! [`Cleanup`]).

use crate::args::Rewrite;
use crate::check::{self, NotOpened, Verdict};
use crate::exit_codes::Status;
use crate::human;
use nosparse_core::error::Errno;
use nosparse_core::fs::FsKind;
use nosparse_core::{alloc, sys};
use std::ffi::{CString, OsStr};
use std::fs::{self, File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::time::{Duration, Instant};

/// Bytes copied per read and write, and per page-cache drop.
const CHUNK: usize = 8 << 20;
/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// The signals that stop a rewrite. SIGPIPE too: its progress and messages go to stderr,
/// and a reader of stderr that went away ends the command (main restores its default).
const STOP_SIGNALS: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGPIPE];

/// The copy's path, as a C string, while it may exist; null otherwise.
static COPY: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());
/// The line printed when a signal stops the rewrite (ending the progress line first),
/// NUL-terminated; null when none.
static STOPPED: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn on_signal(sig: libc::c_int) {
    let p = COPY.load(Ordering::SeqCst);
    if !p.is_null() {
        // SAFETY: p is a NUL-terminated path that is never freed while armed; unlink is
        // async-signal-safe.
        unsafe { libc::unlink(p) };
    }
    let m = STOPPED.load(Ordering::SeqCst);
    if !m.is_null() {
        // SAFETY: m is a NUL-terminated string that is never freed while armed; strlen
        // and write are async-signal-safe. Nothing can be done if the write fails.
        unsafe { libc::write(libc::STDERR_FILENO, m.cast(), libc::strlen(m)) };
    }
    // SA_RESETHAND put the default action back; the signal is blocked until this
    // handler returns, and then ends the process as it would have without a handler.
    // SAFETY: raise is async-signal-safe.
    unsafe { libc::raise(sig) };
}

/// While alive, a stopping signal removes the copy before ending the process, so the
/// copy never outlives an interrupted rewrite, even in the middle of a long fsync.
struct Cleanup {
    path: *mut libc::c_char,
    stopped: *mut libc::c_char,
}

impl Cleanup {
    fn arm(copy: &Path, original: &Path) -> Cleanup {
        let path = CString::new(copy.as_os_str().as_bytes()).expect("a path has no NUL").into_raw();
        let line = format!("\nnosparse: rewrite: interrupted: copy removed, {} untouched\n", original.display());
        let stopped = CString::new(line).expect("a path has no NUL").into_raw();
        STOPPED.store(stopped, Ordering::SeqCst);
        COPY.store(path, Ordering::SeqCst);
        // SAFETY: a zeroed sigaction is valid; the handler only calls unlink and raise.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESETHAND;
        for sig in STOP_SIGNALS {
            // SAFETY: sa is a valid sigaction; the old action is not needed.
            unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) };
        }
        Cleanup { path, stopped }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for sig in STOP_SIGNALS {
            // SAFETY: restoring the default action.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
        COPY.store(std::ptr::null_mut(), Ordering::SeqCst);
        STOPPED.store(std::ptr::null_mut(), Ordering::SeqCst);
        // SAFETY: from into_raw above; no handler can see them any more.
        drop(unsafe { CString::from_raw(self.path) });
        // SAFETY: as above.
        drop(unsafe { CString::from_raw(self.stopped) });
    }
}

/// A write lease on the original (`fcntl(F_SETLEASE, F_WRLCK)`): the kernel grants it
/// only while no other open file description of the file exists (no reader, no writer,
/// no mapping), and breaks it when anyone opens the file during the copy. The opener
/// then waits (up to /proc/sys/fs/lease-break-time) until the lease is released, which
/// happens as soon as the copy sees it broken, after at most one chunk. SIGIO, the
/// break's signal, is ignored meanwhile: the lease's state is read, not signalled.
struct Lease {
    fd: libc::c_int,
    old_sigio: libc::sighandler_t,
}

/// Why no lease was taken.
enum NoLease {
    /// Another process has the file open or mapped.
    InUse,
    /// Not the owner without CAP_LEASE (EACCES), or a filesystem without leases.
    Unavailable,
}

/// How long to wait between tries for a lease refused because the file is open: an
/// open that lasts an instant (a file scanner's, a child between fork and exec holding
/// its parent's descriptors) is waited out; one that lasts a second is a user.
const LEASE_RETRIES: [Duration; 5] = [
    Duration::from_millis(20),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
];

impl Lease {
    /// The lease, tried again after each of [`LEASE_RETRIES`] while the file is in use.
    fn take(f: &File) -> Result<Lease, NoLease> {
        let mut waits = LEASE_RETRIES.iter();
        loop {
            match Lease::try_take(f) {
                Err(NoLease::InUse) => match waits.next() {
                    Some(wait) => std::thread::sleep(*wait),
                    None => return Err(NoLease::InUse),
                },
                taken => return taken,
            }
        }
    }

    fn try_take(f: &File) -> Result<Lease, NoLease> {
        let fd = f.as_raw_fd();
        // SAFETY: ignoring SIGIO; the previous action is put back on drop.
        let old_sigio = unsafe { libc::signal(libc::SIGIO, libc::SIG_IGN) };
        // SAFETY: fcntl on an fd we own, with an integer argument.
        if unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_WRLCK) } == 0 {
            return Ok(Lease { fd, old_sigio });
        }
        let e = io::Error::last_os_error();
        // SAFETY: as above.
        unsafe { libc::signal(libc::SIGIO, old_sigio) };
        match e.raw_os_error() {
            Some(libc::EAGAIN | libc::EBUSY) => Err(NoLease::InUse),
            _ => Err(NoLease::Unavailable),
        }
    }

    /// Whether someone opened the file since the lease was granted.
    fn broken(&self) -> bool {
        // SAFETY: fcntl on an fd we own.
        unsafe { libc::fcntl(self.fd, libc::F_GETLEASE) != libc::F_WRLCK }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // SAFETY: as in take; the fd is still open (the lease is dropped before the file).
        unsafe {
            libc::fcntl(self.fd, libc::F_SETLEASE, libc::F_UNLCK);
            libc::signal(libc::SIGIO, self.old_sigio);
        }
    }
}

/// What to do about a file in use, beyond waiting: the in-place defragmenter of its
/// filesystem, which works on a file that is open.
fn in_place_tool(f: &File, path: &Path) -> String {
    let quoted = path.display();
    match FsKind::of_fd(f.as_raw_fd()).ok() {
        Some(FsKind::Ext) => format!("or defragment it in place while it is in use: e4defrag {quoted}"),
        Some(FsKind::Xfs) => format!("or defragment it in place while it is in use: xfs_fsr {quoted}"),
        Some(FsKind::Btrfs) => {
            format!("or defragment it in place while it is in use: btrfs filesystem defragment {quoted}")
        }
        _ => "or defragment it in place while it is in use (e4defrag on ext4, xfs_fsr on xfs)".to_string(),
    }
}

/// Why the file was not rewritten.
enum Stop {
    Refused(String),
    Failed(String),
}

fn failed(what: &str, e: io::Error) -> Stop {
    Stop::Failed(format!("{what}: {}", human::os_error(&e)))
}

fn os_error(what: &str) -> Stop {
    failed(what, io::Error::last_os_error())
}

/// A failed system call of core's.
fn sys_failed(what: &str, e: Errno) -> Stop {
    failed(what, io::Error::from_raw_os_error(e.0))
}

/// Rewrites the file; prints what it did and returns the exit status.
pub fn run(r: &Rewrite) -> Status {
    match rewrite(r) {
        Ok(status) => status,
        Err(Stop::Refused(why)) => {
            human::say("rewrite", &format!("{}: refusing: {why}", r.file.display()));
            Status::Refused
        }
        Err(Stop::Failed(why)) => {
            human::say("rewrite", &format!("{}: {why}; the file is as it was", r.file.display()));
            Status::Trouble
        }
    }
}

/// Bytes free for an unprivileged writer on the filesystem holding `fd`.
fn free_bytes(fd: libc::c_int) -> Result<u64, Stop> {
    let st = sys::fstatfs(fd).map_err(|e| sys_failed("statfs", e))?;
    Ok(st.bavail.saturating_mul(st.frsize))
}

/// Rewrites the file; Ok with the exit status: success, or refused when the result is
/// still over the limit (though better than before).
fn rewrite(r: &Rewrite) -> Result<Status, Stop> {
    let path = fs::canonicalize(&r.file).map_err(|e| failed("cannot resolve the path", e))?;
    let (src, meta) = check::open_regular(&path).map_err(|e| match e {
        NotOpened::Special(why) => Stop::Refused(why),
        NotOpened::Failed(why) => Stop::Failed(why),
    })?;
    // The copy's rename would fail on such a file: said before anything is copied.
    match sys::inode_flags(src.as_raw_fd()) {
        Ok(flags) if flags & sys::FS_IMMUTABLE_FL != 0 => {
            return Err(Stop::Refused(format!(
                "it is immutable (chattr +i), so no copy can take its name; chattr -i {} first",
                path.display()
            )));
        }
        Ok(flags) if flags & sys::FS_APPEND_FL != 0 => {
            return Err(Stop::Refused(format!(
                "it is append-only (chattr +a), so no copy can take its name; chattr -a {} first",
                path.display()
            )));
        }
        _ => {}
    }
    remove_stale_copies(&path, &src);
    let before = check::measure_file(&src, &meta).map_err(Stop::Failed)?;
    if before.verdict(r.max_fragments) == Verdict::Whole && !r.force {
        outln!(
            "{}: already whole: {} fragments, at most {} for this size; left alone (--force rewrites it)",
            path.display(),
            before.layout.fragments,
            before.allowed(r.max_fragments)
        );
        return Ok(Status::Success);
    }
    if meta.nlink() > 1 {
        return Err(Stop::Refused(format!(
            "it has {} hard links; a copy renamed over this one would leave the others on the old file",
            meta.nlink()
        )));
    }
    let lease = match Lease::take(&src) {
        Ok(lease) => Some(lease),
        Err(NoLease::InUse) => {
            let who = user(&meta, true).ok().flatten().unwrap_or_else(|| "another process has it open".into());
            return Err(Stop::Refused(format!(
                "{who}; stop it (suspend the guest) first, {}",
                in_place_tool(&src, &path)
            )));
        }
        Err(NoLease::Unavailable) => {
            if let Some(who) = user(&meta, false)? {
                return Err(Stop::Refused(format!(
                    "{who}; stop it (suspend the guest) first, {}",
                    in_place_tool(&src, &path)
                )));
            }
            None
        }
    };
    let dir = path.parent().ok_or_else(|| Stop::Refused("no parent directory".into()))?;
    let free = free_bytes(src.as_raw_fd())?;
    if free < meta.len() {
        return Err(Stop::Refused(format!(
            "the copy needs {} and {} is free",
            human::bytes(meta.len()),
            human::bytes(free)
        )));
    }
    let started = Instant::now();
    let tmp = temp_name(&path);
    let cleanup = Cleanup::arm(&tmp, &path);
    let dst = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(|e| failed(&format!("cannot create {}", tmp.display()), e))?;
    let progress = r.progress.unwrap_or_else(|| io::stderr().is_terminal());
    let result = fill(&src, &dst, &meta, progress, lease.as_ref()).and_then(|()| {
        // The source must be the file it was at the start, unchanged, with no writer.
        let now = src.metadata().map_err(|e| failed("stat", e))?;
        if (now.len(), now.mtime(), now.mtime_nsec(), now.ctime(), now.ctime_nsec())
            != (meta.len(), meta.mtime(), meta.mtime_nsec(), meta.ctime(), meta.ctime_nsec())
        {
            return Err(Stop::Refused("it changed while it was being copied".into()));
        }
        match &lease {
            Some(l) if l.broken() => return Err(opened_during_copy()),
            Some(_) => {}
            None => {
                if let Some(who) = user(&meta, false)? {
                    return Err(Stop::Refused(format!("{who} (it started during the copy)")));
                }
            }
        }
        dst.sync_all().map_err(|e| failed("fsync of the copy", e))?;
        // Never a copy that is worse than the original: free space can be more broken
        // up than the file was.
        let dst_meta = dst.metadata().map_err(|e| failed("stat of the copy", e))?;
        let copy = check::measure_file(&dst, &dst_meta).map_err(Stop::Failed)?;
        if copy.layout.fragments > before.layout.fragments {
            return Err(Stop::Refused(format!(
                "the copy came out in {} fragments, more than the original's {} (the free space is broken up): \
                 removed the copy, kept the original",
                copy.layout.fragments, before.layout.fragments
            )));
        }
        fs::rename(&tmp, &path).map_err(|e| failed("rename over the original", e))
    });
    drop(lease);
    if let Err(stop) = result {
        let _ = fs::remove_file(&tmp);
        return Err(stop);
    }
    drop(cleanup);
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    let took = started.elapsed();
    let after = check::measure(&path).map_err(Stop::Failed)?;
    outln!(
        "{}: rewrote {} in {} ({}): {} fragments before, {} after (at most {} for this size)",
        path.display(),
        human::bytes(meta.len()),
        human::elapsed(took),
        human::rate(meta.len(), took),
        before.layout.fragments,
        after.layout.fragments,
        after.allowed(r.max_fragments)
    );
    if after.verdict(r.max_fragments) == Verdict::Whole {
        return Ok(Status::Success);
    }
    let than_before = if after.layout.fragments < before.layout.fragments { "better" } else { "no worse" };
    let line = format!(
        "{}: still over the limit ({} fragments, at most {}), though {than_before} than \
         before ({}): kept the copy; the free space on this filesystem is too broken up for a whole copy",
        path.display(),
        after.layout.fragments,
        after.allowed(r.max_fragments),
        before.layout.fragments
    );
    human::say("rewrite", &line);
    Ok(Status::Refused)
}

/// `.NAME.nosparse-` beside the file: its copies' names, before the PID.
fn temp_prefix(path: &Path) -> String {
    let name = path.file_name().map(OsStr::to_string_lossy).unwrap_or_default();
    format!(".{name}.nosparse-")
}

/// `.NAME.nosparse-PID` beside the file.
fn temp_name(path: &Path) -> PathBuf {
    path.with_file_name(format!("{}{}", temp_prefix(path), std::process::id()))
}

/// Whether process `pid` of this PID namespace exists (EPERM: it does, another user's).
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    pid <= 0 || unsafe { libc::kill(pid, 0) } == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Removes the copies of `path` that a rewrite which died without its cleanup (SIGKILL,
/// a crash, the power) left beside it: regular files `.NAME.nosparse-PID` whose PID is
/// gone. Only on a filesystem that is local: on a shared one the PID may be another
/// host's. A copy that cannot be removed is only said.
fn remove_stale_copies(path: &Path, f: &File) {
    let local = matches!(
        FsKind::of_fd(f.as_raw_fd()),
        Ok(FsKind::Ext | FsKind::Xfs | FsKind::Btrfs | FsKind::Tmpfs | FsKind::Ramfs | FsKind::Zfs | FsKind::Overlay)
    );
    let (Some(dir), true) = (path.parent(), local) else { return };
    let prefix = temp_prefix(path);
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.as_bytes().strip_prefix(prefix.as_bytes()) else { continue };
        let pid = match std::str::from_utf8(pid).ok().filter(|p| p.bytes().all(|b| b.is_ascii_digit())) {
            Some(p) => p.parse::<i32>().unwrap_or(0),
            None => continue,
        };
        if alive(pid) || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let stale = entry.path();
        let shown = human::path(&stale);
        match fs::remove_file(&stale) {
            Ok(()) => human::say("rewrite", &format!("removed {shown}, a copy left by process {pid}, which is gone")),
            Err(e) => human::warn(&format!(
                "{shown}: a copy left by process {pid}, which is gone, cannot be removed: {}",
                human::os_error(&e)
            )),
        }
    }
}

fn opened_during_copy() -> Stop {
    Stop::Refused("a process opened it during the copy: removed the copy; try again once nothing uses it".into())
}

/// Makes `dst` a preallocated copy of `src`, with its metadata; stops when `lease` is
/// broken.
fn fill(src: &File, dst: &File, meta: &fs::Metadata, progress: bool, lease: Option<&Lease>) -> Result<(), Stop> {
    let dfd = dst.as_raw_fd();
    let len = meta.len() as i64;
    if FsKind::of_fd(dfd) == Ok(FsKind::Btrfs) {
        // As the library does: while empty, so that overwrites stay in place.
        let _ = alloc::set_nocow(dfd);
    }
    // Where the filesystem cannot preallocate, every byte is written, holes included.
    let mut preallocated = true;
    if len > 0 {
        match sys::fallocate(dfd, 0, 0, len) {
            Ok(()) => {}
            Err(e) if e.0 == libc::EOPNOTSUPP => preallocated = false,
            Err(e) => return Err(sys_failed("cannot preallocate the copy", e)),
        }
    }
    copy_data(src, dst, len, preallocated, progress, lease)?;
    copy_xattrs(src, dst)?;
    // Owner before mode: chown clears the set-user-ID and set-group-ID bits. The owner
    // rewriting their own file gives the copy what it already has, which needs no
    // privilege: no call then.
    let made = dst.metadata().map_err(|e| failed("stat of the copy", e))?;
    if (made.uid(), made.gid()) != (meta.uid(), meta.gid()) {
        std::os::unix::fs::fchown(dst, Some(meta.uid()), Some(meta.gid()))
            .map_err(|e| failed(&format!("cannot give the copy owner {}:{}", meta.uid(), meta.gid()), e))?;
    }
    dst.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777)).map_err(|e| failed("chmod", e))?;
    let times = [
        libc::timespec { tv_sec: meta.atime() as libc::time_t, tv_nsec: meta.atime_nsec() as _ },
        libc::timespec { tv_sec: meta.mtime() as libc::time_t, tv_nsec: meta.mtime_nsec() as _ },
    ];
    // SAFETY: times points to two timespecs.
    if unsafe { libc::futimens(dfd, times.as_ptr()) } != 0 {
        return Err(os_error("futimens"));
    }
    Ok(())
}

/// The next data region at or after `at`: `(start, end)`, or None past the last one.
fn next_data(fd: libc::c_int, at: i64, len: i64) -> Result<Option<(i64, i64)>, Stop> {
    // Our own descriptor (a private open file description): its offset is ours to move.
    let data = match sys::lseek(fd, at, libc::SEEK_DATA) {
        Ok(data) => data,
        Err(e) if e.0 == libc::ENXIO => return Ok(None),
        Err(e) => return Err(sys_failed("SEEK_DATA", e)),
    };
    let hole = sys::lseek(fd, data, libc::SEEK_HOLE).map_err(|e| sys_failed("SEEK_HOLE", e))?;
    Ok(Some((data, hole.min(len))))
}

/// Drops a copied range from the page cache: the source's pages at once (they are
/// clean), the copy's once written back, so the copy never fills memory with pages
/// nobody will read.
struct CacheDropper {
    src: libc::c_int,
    dst: libc::c_int,
    /// The copy's range whose write-back was started and not yet waited for.
    pending: Option<(i64, i64)>,
}

impl CacheDropper {
    fn copied(&mut self, at: i64, n: i64) {
        // A failure only means the pages stay cached.
        let _ = sys::fadvise(self.src, at, n, libc::POSIX_FADV_DONTNEED);
        let _ = sys::start_writeback(self.dst, at, n);
        self.finish();
        self.pending = Some((at, n));
    }

    /// Waits for the pending range's write-back and drops it.
    fn finish(&mut self) {
        if let Some((at, n)) = self.pending.take() {
            let wait =
                libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER;
            let _ = sys::sync_file_range(self.dst, at, n, wait);
            let _ = sys::fadvise(self.dst, at, n, libc::POSIX_FADV_DONTNEED);
        }
    }
}

/// The progress line on stderr.
struct Progress {
    on: bool,
    started: Instant,
    shown: Option<Instant>,
    total: u64,
}

impl Progress {
    fn update(&mut self, pos: u64) {
        if !self.on || self.shown.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
            return;
        }
        self.shown = Some(Instant::now());
        // Bytes of the file (holes included) per second, as the summary counts them.
        let took = self.started.elapsed();
        let per_second = pos as f64 / took.as_secs_f64().max(1e-3);
        let left = if per_second > 0.0 {
            Duration::from_secs_f64(self.total.saturating_sub(pos) as f64 / per_second)
        } else {
            Duration::ZERO
        };
        let pct = (pos * 100).checked_div(self.total).unwrap_or(100);
        let _ = write!(
            io::stderr(),
            "\r{pct:3}%  {} of {}  {}  {} left   ",
            human::bytes(pos),
            human::bytes(self.total),
            human::rate(pos, took),
            human::duration(left)
        );
    }

    fn done(&self) {
        if self.on && self.shown.is_some() {
            let _ = write!(io::stderr(), "\r{:70}\r", "");
        }
    }
}

/// Copies `src` into `dst`: its data regions (holes read as zero, and the copy is
/// preallocated), or every byte when it could not be preallocated.
fn copy_data(
    src: &File,
    dst: &File,
    len: i64,
    preallocated: bool,
    progress: bool,
    lease: Option<&Lease>,
) -> Result<(), Stop> {
    let fd = src.as_raw_fd();
    let mut buf = vec![0u8; CHUNK];
    let mut cache = CacheDropper { src: fd, dst: dst.as_raw_fd(), pending: None };
    let mut shown = Progress { on: progress, started: Instant::now(), shown: None, total: len as u64 };
    let mut at = 0i64;
    while at < len {
        let (start, end) = if preallocated {
            match next_data(fd, at, len)? {
                Some(region) => region,
                None => break,
            }
        } else {
            (at, len)
        };
        let mut pos = start;
        while pos < end {
            let n = ((end - pos) as usize).min(CHUNK);
            src.read_exact_at(&mut buf[..n], pos as u64).map_err(|e| failed("read", e))?;
            dst.write_all_at(&buf[..n], pos as u64).map_err(|e| failed("write to the copy", e))?;
            cache.copied(pos, n as i64);
            pos += n as i64;
            shown.update(pos as u64);
            if lease.is_some_and(Lease::broken) {
                shown.done();
                return Err(opened_during_copy());
            }
        }
        at = end;
    }
    cache.finish();
    shown.done();
    Ok(())
}

/// Copies every extended attribute (ACLs, security labels, user attributes).
fn copy_xattrs(src: &File, dst: &File) -> Result<(), Stop> {
    let (sfd, dfd) = (src.as_raw_fd(), dst.as_raw_fd());
    // SAFETY: the buffer is writable for n bytes.
    let list = match xattr_buf(|p, n| unsafe { libc::flistxattr(sfd, p.cast(), n) }) {
        Ok(l) => l,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(()),
        Err(e) => return Err(failed("listing extended attributes", e)),
    };
    for name in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let c = CString::new(name).expect("split at NUL");
        // SAFETY: c is NUL-terminated; the buffer is writable for n bytes.
        let value = xattr_buf(|p, n| unsafe { libc::fgetxattr(sfd, c.as_ptr(), p.cast(), n) })
            .map_err(|e| failed(&format!("reading attribute {}", c.to_string_lossy()), e))?;
        // SAFETY: c is NUL-terminated; value is readable for its length.
        if unsafe { libc::fsetxattr(dfd, c.as_ptr(), value.as_ptr().cast(), value.len(), 0) } != 0 {
            let e = io::Error::last_os_error();
            return Err(failed(&format!("copying attribute {}", c.to_string_lossy()), e));
        }
    }
    Ok(())
}

/// Calls a size-then-fill xattr function until its answer fits.
fn xattr_buf(call: impl Fn(*mut u8, usize) -> isize) -> io::Result<Vec<u8>> {
    loop {
        let n = call(std::ptr::null_mut(), 0);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; n as usize];
        let m = call(buf.as_mut_ptr(), buf.len());
        if m >= 0 {
            buf.truncate(m as usize);
            return Ok(buf);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ERANGE) {
            return Err(e);
        }
    }
}

/// A process other than this one that has the file open for writing, or mapped shared
/// and writable (with `readers`, open or mapped at all), described; None if there is
/// none. Refuses when some processes could not be looked at (not root).
fn user(meta: &fs::Metadata, readers: bool) -> Result<Option<String>, Stop> {
    let me = std::process::id();
    let (dev, ino) = (meta.dev(), meta.ino());
    let map_dev = format!("{:02x}:{:02x}", libc::major(dev), libc::minor(dev));
    let mut hidden = 0;
    let procs = fs::read_dir("/proc").map_err(|e| failed("reading /proc", e))?;
    for entry in procs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let base = entry.path();
        let describe = |how: &str| {
            let comm = fs::read_to_string(base.join("comm")).unwrap_or_default();
            format!("process {pid} ({}) has it {how}", comm.trim())
        };
        let fds = match fs::read_dir(base.join("fd")) {
            Ok(fds) => fds,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                hidden += 1;
                continue;
            }
            Err(_) => continue, // exited meanwhile
        };
        for fd in fds.flatten() {
            let Ok(m) = fs::metadata(fd.path()) else { continue };
            if (m.dev(), m.ino()) != (dev, ino) {
                continue;
            }
            let info = fs::read_to_string(base.join("fdinfo").join(fd.file_name())).unwrap_or_default();
            let flags = info.lines().find_map(|l| l.strip_prefix("flags:")).map(str::trim);
            let flags = flags.and_then(|f| i32::from_str_radix(f, 8).ok()).unwrap_or(libc::O_RDWR);
            if flags & libc::O_ACCMODE != libc::O_RDONLY {
                return Ok(Some(describe("open for writing")));
            }
            if readers {
                return Ok(Some(describe("open")));
            }
        }
        let maps = fs::read_to_string(base.join("maps")).unwrap_or_default();
        let mapped = maps.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let writable = f.len() >= 2 && f[1].starts_with("rw") && f[1].ends_with('s');
            f.len() >= 5 && (writable || readers) && f[3] == map_dev && f[4] == ino.to_string()
        });
        if mapped {
            return Ok(Some(describe(if readers { "mapped" } else { "mapped for writing" })));
        }
    }
    if hidden > 0 {
        return Err(Stop::Refused(format!(
            "{hidden} processes could not be looked at, so one of them may be writing it; run as root"
        )));
    }
    Ok(None)
}
