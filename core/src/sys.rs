//! Thin wrappers over the system calls the engine makes, each returning a `Result`.
//!
//! Those that `libnosparse.so` also exports (write, ftruncate) go through
//! [`crate::real`]; calling libc's symbol would re-enter the hooks.

use crate::error::{cvt, Result};
use libc::c_int;
use std::mem::MaybeUninit;

/// Longest path `/proc/self/fd/N` can name, plus its terminating NUL.
pub const PATH_BUF: usize = libc::PATH_MAX as usize;

/// `FS_NOCOW_FL` from `<linux/fs.h>`: btrfs overwrites such a file in place.
pub const FS_NOCOW_FL: c_int = 0x0080_0000;

/// `fcntl(fd, F_GETFL)` — the file status flags and access mode.
/// <https://man7.org/linux/man-pages/man2/fcntl.2.html>
pub fn getfl(fd: c_int) -> Result<c_int> {
    // SAFETY: F_GETFL takes no argument and touches no memory.
    cvt("fcntl(F_GETFL)", unsafe { libc::fcntl(fd, libc::F_GETFL) })
}

/// `fstat(fd)` — type, size and allocated blocks.
/// <https://man7.org/linux/man-pages/man2/fstat.2.html>
pub fn fstat(fd: c_int) -> Result<libc::stat64> {
    let mut st = MaybeUninit::<libc::stat64>::uninit();
    // SAFETY: st points to writable memory of the right type.
    cvt("fstat", unsafe { libc::fstat64(fd, st.as_mut_ptr()) })?;
    // SAFETY: fstat64 succeeded, so it filled st.
    Ok(unsafe { st.assume_init() })
}

/// `fstatfs(fd)` — the filesystem's type and geometry.
/// <https://man7.org/linux/man-pages/man2/fstatfs.2.html>
pub fn fstatfs(fd: c_int) -> Result<libc::statfs64> {
    let mut st = MaybeUninit::<libc::statfs64>::uninit();
    // SAFETY: st points to writable memory of the right type.
    cvt("fstatfs", unsafe { libc::fstatfs64(fd, st.as_mut_ptr()) })?;
    // SAFETY: fstatfs64 succeeded, so it filled st.
    Ok(unsafe { st.assume_init() })
}

/// Free bytes on the filesystem of `fd` for this process (root may use the reserve).
/// <https://man7.org/linux/man-pages/man2/statfs.2.html>
pub fn free_bytes(fd: c_int) -> Result<u64> {
    let st = fstatfs(fd)?;
    // SAFETY: geteuid cannot fail.
    let blocks = if unsafe { libc::geteuid() } == 0 { st.f_bfree } else { st.f_bavail };
    Ok(blocks.saturating_mul(st.f_bsize as u64))
}

/// `fallocate(fd, mode, offset, len)` — allocates blocks for a byte range.
/// <https://man7.org/linux/man-pages/man2/fallocate.2.html>
pub fn fallocate(fd: c_int, mode: c_int, offset: i64, len: i64) -> Result<()> {
    // SAFETY: plain integer arguments.
    cvt("fallocate", unsafe { libc::fallocate64(fd, mode, offset, len) }).map(drop)
}

/// `ftruncate(fd, len)` — sets the file's size.
/// <https://man7.org/linux/man-pages/man2/ftruncate.2.html>
pub fn ftruncate(fd: c_int, len: i64) -> Result<()> {
    // SAFETY: plain integer arguments; the real function, not the hook of that name.
    cvt("ftruncate", unsafe { crate::real::ftruncate64()(fd, len) }).map(drop)
}

/// `lseek(fd, offset, whence)` — moves the file offset (also SEEK_DATA / SEEK_HOLE).
/// <https://man7.org/linux/man-pages/man2/lseek.2.html>
pub fn lseek(fd: c_int, offset: i64, whence: c_int) -> Result<i64> {
    // SAFETY: plain integer arguments.
    cvt("lseek", unsafe { libc::lseek64(fd, offset, whence) })
}

/// `getrlimit(RLIMIT_FSIZE)` — the largest file this process may write, soft limit.
/// <https://man7.org/linux/man-pages/man2/getrlimit.2.html>
pub fn fsize_limit() -> u64 {
    let mut lim = libc::rlimit64 { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: lim is a valid rlimit64 to fill.
    match cvt("getrlimit", unsafe { libc::getrlimit64(libc::RLIMIT_FSIZE, &mut lim) }) {
        Ok(_) => lim.rlim_cur,
        Err(_) => u64::MAX,
    }
}

/// `ioctl(fd, FS_IOC_GETFLAGS)` — the inode flags (chattr's attributes).
/// <https://man7.org/linux/man-pages/man2/ioctl_iflags.2.html>
pub fn inode_flags(fd: c_int) -> Result<c_int> {
    let mut flags: c_int = 0;
    // SAFETY: the kernel writes an int through the pointer, as the man page says,
    // whatever the ioctl number's nominal size.
    cvt("ioctl(FS_IOC_GETFLAGS)", unsafe { libc::ioctl(fd, libc::FS_IOC_GETFLAGS, &mut flags) })?;
    Ok(flags)
}

/// `ioctl(fd, FS_IOC_SETFLAGS)` — sets the inode flags.
pub fn set_inode_flags(fd: c_int, flags: c_int) -> Result<()> {
    // SAFETY: the kernel reads an int through the pointer.
    cvt("ioctl(FS_IOC_SETFLAGS)", unsafe { libc::ioctl(fd, libc::FS_IOC_SETFLAGS, &flags) }).map(drop)
}

/// `readlink("/proc/self/fd/N")` into `buf` — the path the fd was opened with, as the
/// kernel knows it now. Returns the bytes, without NUL; `buf` keeps a NUL after them.
pub fn fd_path(fd: c_int, buf: &mut [u8; PATH_BUF]) -> Result<&[u8]> {
    let mut link = [0u8; 32];
    let mut w = crate::log::StackBuf::new(&mut link);
    // The buffer is large enough for any int; a failed write would only shorten it.
    let _ = std::fmt::Write::write_fmt(&mut w, format_args!("/proc/self/fd/{fd}\0"));
    readlink(&link, buf)
}

/// `readlink("/proc/self/exe")` into `buf` — the running program's path. As [`fd_path`].
pub fn exe_path(buf: &mut [u8; PATH_BUF]) -> Result<&[u8]> {
    readlink(b"/proc/self/exe\0", buf)
}

/// `readlink(link, buf)`, NUL-terminating what it reads. `link` holds a NUL.
/// <https://man7.org/linux/man-pages/man2/readlink.2.html>
fn readlink<'a>(link: &[u8], buf: &'a mut [u8; PATH_BUF]) -> Result<&'a [u8]> {
    assert!(link.contains(&0), "link is NUL-terminated");
    // SAFETY: link holds a NUL-terminated path; buf has room for PATH_BUF - 1 bytes.
    let n = cvt("readlink", unsafe { libc::readlink(link.as_ptr().cast(), buf.as_mut_ptr().cast(), PATH_BUF - 1) })?;
    let n = n as usize;
    buf[n] = 0;
    Ok(&buf[..n])
}

/// Whether the kernel started this process in secure-execution mode (setuid, setgid,
/// file capabilities): then the environment is not to be trusted.
/// <https://man7.org/linux/man-pages/man3/getauxval.3.html>
pub fn secure_execution() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}
