//! `nosparse rewrite FILE`: the manual fix for a file that is already fragmented (a
//! suspended guest's `.vmem`): a preallocated copy, made beside it and renamed over it,
//! with its owner, mode, times and extended attributes. It refuses while another process
//! has the file open for writing or mapped writable, and when the file changes during
//! the copy; the original is untouched until the rename, which is atomic.

use crate::check;
use nosparse_core::fs::FsKind;
use nosparse_core::log::Bytes;
use nosparse_core::prealloc;
use nosparse_core::sys;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Exit statuses: rewritten; refused (in use, hard links, no room, changed); failed.
pub const EXIT_DONE: i32 = 0;
pub const EXIT_REFUSED: i32 = 1;
pub const EXIT_FAILED: i32 = 2;

/// Bytes copied per read and write.
const CHUNK: usize = 8 << 20;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Why the file was not rewritten.
enum Stop {
    Refused(String),
    Failed(String),
}

fn failed(what: &str, e: impl std::fmt::Display) -> Stop {
    Stop::Failed(format!("{what}: {e}"))
}

/// Rewrites `file`; prints what it did and returns the exit status.
pub fn run(file: &Path) -> i32 {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t) };
    }
    match rewrite(file) {
        Ok(()) => EXIT_DONE,
        Err(Stop::Refused(why)) => {
            eprintln!("nosparse rewrite: {}: refusing: {why}", file.display());
            EXIT_REFUSED
        }
        Err(Stop::Failed(why)) => {
            eprintln!("nosparse rewrite: {}: {why}; the file is as it was", file.display());
            EXIT_FAILED
        }
    }
}

fn rewrite(file: &Path) -> Result<(), Stop> {
    let path = fs::canonicalize(file).map_err(|e| failed("cannot resolve the path", e))?;
    let src = File::open(&path).map_err(|e| failed("cannot open it", e))?;
    let meta = src.metadata().map_err(|e| failed("stat", e))?;
    if !meta.is_file() {
        return Err(Stop::Refused("not a regular file".into()));
    }
    if meta.nlink() > 1 {
        return Err(Stop::Refused(format!(
            "it has {} hard links; a copy renamed over this one would leave the others on the old file",
            meta.nlink()
        )));
    }
    if let Some(who) = writer(&meta)? {
        return Err(Stop::Refused(format!("{who}; stop it (suspend the guest) first")));
    }
    let dir = path.parent().ok_or_else(|| Stop::Refused("no parent directory".into()))?;
    let free = sys::fstatfs(src.as_raw_fd()).map_err(|e| failed("statfs", e))?.free_bytes(sys::is_root());
    if free < meta.len() {
        return Err(Stop::Refused(format!("the copy needs {} and {} is free", Bytes(meta.len()), Bytes(free))));
    }
    let before = check::measure(&path).map_err(Stop::Failed)?;
    let started = Instant::now();

    let tmp = temp_name(&path);
    let dst = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(|e| failed(&format!("cannot create {}", tmp.display()), e))?;
    let result = fill(&src, &dst, &meta).and_then(|()| {
        // The source must be the file it was at the start, unchanged, with no writer.
        let now = src.metadata().map_err(|e| failed("stat", e))?;
        if (now.len(), now.mtime(), now.mtime_nsec(), now.ctime(), now.ctime_nsec())
            != (meta.len(), meta.mtime(), meta.mtime_nsec(), meta.ctime(), meta.ctime_nsec())
        {
            return Err(Stop::Refused("it changed while it was being copied".into()));
        }
        if let Some(who) = writer(&meta)? {
            return Err(Stop::Refused(format!("{who} (it started during the copy)")));
        }
        dst.sync_all().map_err(|e| failed("fsync of the copy", e))?;
        fs::rename(&tmp, &path).map_err(|e| failed("rename over the original", e))
    });
    if let Err(stop) = result {
        let _ = fs::remove_file(&tmp);
        return Err(stop);
    }
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    let after = check::measure(&path).map_err(Stop::Failed)?;
    println!(
        "{}: rewrote {} in {:.1} s: {} fragments ({} extents) before, {} after",
        path.display(),
        Bytes(meta.len()),
        started.elapsed().as_secs_f64(),
        before.layout.fragments,
        before.layout.extents,
        after.layout.fragments
    );
    Ok(())
}

/// `.NAME.nosparse-PID` beside the file.
fn temp_name(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.nosparse-{}", std::process::id()))
}

/// Makes `dst` a preallocated copy of `src`, with its metadata.
fn fill(src: &File, dst: &File, meta: &fs::Metadata) -> Result<(), Stop> {
    let dfd = dst.as_raw_fd();
    let len = meta.len() as i64;
    if FsKind::of_fd(dfd).is_ok_and(|k| k == FsKind::Btrfs) {
        // As the library does: while empty, so that overwrites stay in place.
        let _ = prealloc::set_nocow(dfd);
    }
    if len > 0 {
        // Same as the library's fallocate, and no fallback: a filesystem without
        // fallocate gets the copy written as it is.
        match sys::fallocate(dfd, 0, 0, len) {
            Err(e) if e.0 == libc::EOPNOTSUPP => {}
            other => other.map_err(|e| failed("cannot preallocate the copy", e))?,
        }
    }
    copy_data(src, dst, len)?;
    copy_xattrs(src, dst)?;
    // Owner before mode: chown clears the set-user-ID and set-group-ID bits.
    // SAFETY: plain integer arguments on an fd we own.
    if unsafe { libc::fchown(dfd, meta.uid(), meta.gid()) } != 0 {
        return Err(failed(
            &format!("cannot give the copy owner {}:{}", meta.uid(), meta.gid()),
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: as above.
    if unsafe { libc::fchmod(dfd, meta.mode() & 0o7777) } != 0 {
        return Err(failed("chmod", io::Error::last_os_error()));
    }
    let times = [
        libc::timespec { tv_sec: meta.atime() as libc::time_t, tv_nsec: meta.atime_nsec() as _ },
        libc::timespec { tv_sec: meta.mtime() as libc::time_t, tv_nsec: meta.mtime_nsec() as _ },
    ];
    // SAFETY: times points to two timespecs.
    if unsafe { libc::futimens(dfd, times.as_ptr()) } != 0 {
        return Err(failed("futimens", io::Error::last_os_error()));
    }
    Ok(())
}

/// Copies the data regions of `src` (holes read as zero, and the copy is preallocated).
fn copy_data(src: &File, dst: &File, len: i64) -> Result<(), Stop> {
    let fd = src.as_raw_fd();
    let mut buf = vec![0u8; CHUNK];
    let mut at = 0i64;
    while at < len {
        let data = match sys::lseek(fd, at, libc::SEEK_DATA) {
            Ok(d) => d,
            Err(e) if e.0 == libc::ENXIO => break,
            Err(e) => return Err(failed("SEEK_DATA", e)),
        };
        let hole = sys::lseek(fd, data, libc::SEEK_HOLE).map_err(|e| failed("SEEK_HOLE", e))?.min(len);
        let mut pos = data;
        while pos < hole {
            if INTERRUPTED.load(Ordering::Relaxed) {
                return Err(Stop::Failed("interrupted".into()));
            }
            let n = ((hole - pos) as usize).min(CHUNK);
            src.read_exact_at(&mut buf[..n], pos as u64).map_err(|e| failed("read", e))?;
            dst.write_all_at(&buf[..n], pos as u64).map_err(|e| failed("write to the copy", e))?;
            pos += n as i64;
        }
        at = hole;
    }
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
/// and writable, described; None if there is none. Refuses when some processes could
/// not be looked at (not root).
fn writer(meta: &fs::Metadata) -> Result<Option<String>, Stop> {
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
        }
        let maps = fs::read_to_string(base.join("maps")).unwrap_or_default();
        let mapped = maps.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 5 && f[1].starts_with("rw") && f[1].ends_with('s') && f[3] == map_dev && f[4] == ino.to_string()
        });
        if mapped {
            return Ok(Some(describe("mapped for writing")));
        }
    }
    if hidden > 0 {
        return Err(Stop::Refused(format!(
            "{hidden} processes could not be looked at, so one of them may be writing it; run as root"
        )));
    }
    Ok(None)
}
