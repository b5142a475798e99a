//! The libc calls fake_vmx makes, each as a small function: opening the file, the
//! creation call through the symbol asked for, fstat.

use crate::die;
use crate::opts::{Call, OpenMode, Opts, Target};
use std::ffi::CString;

pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

pub fn cstr(s: &str) -> CString {
    CString::new(s).unwrap_or_else(|_| die("path has a NUL byte"))
}

pub fn open_file(path: &str, mode: OpenMode) -> i32 {
    let c = cstr(path);
    let (flags, large) = match mode {
        OpenMode::Rdwr => (libc::O_RDWR, true),
        OpenMode::Wronly => (libc::O_WRONLY, true),
        OpenMode::Append => (libc::O_RDWR | libc::O_APPEND, true),
        OpenMode::Rdonly => (libc::O_RDONLY, true),
        OpenMode::Direct => (libc::O_RDWR | libc::O_DIRECT, true),
        OpenMode::RdwrNoLfs => (libc::O_RDWR, false),
    };
    let flags = flags | libc::O_CREAT | libc::O_CLOEXEC;
    // SAFETY: a valid NUL-terminated path.
    let fd = unsafe {
        if large {
            libc::open64(c.as_ptr(), flags, 0o600)
        } else {
            libc::open(c.as_ptr(), flags, 0o600)
        }
    };
    if fd < 0 {
        die(&format!("open {path}: {}", std::io::Error::last_os_error()));
    }
    fd
}

/// The fd the creation call is made on: the file, or one end of a pipe or socket pair.
pub fn open_target(o: &Opts) -> i32 {
    let mut pair = [0i32; 2];
    match o.target {
        Target::File => open_file(o.file_path(), o.open),
        // SAFETY: pair has room for two fds.
        Target::Pipe if unsafe { libc::pipe(pair.as_mut_ptr()) } == 0 => pair[1],
        // SAFETY: as above.
        Target::Socket if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, pair.as_mut_ptr()) } == 0 => {
            pair[1]
        }
        other => die(&format!("--target {other:?}: could not be made: {}", std::io::Error::last_os_error())),
    }
}

extern "C" {
    fn __pwrite64(fd: i32, buf: *const libc::c_void, n: libc::size_t, off: libc::off64_t) -> libc::ssize_t;
}

/// The creation call, through the symbol asked for.
pub fn create(fd: i32, call: Call, byte: &[u8], offset: i64) -> isize {
    let (p, n) = (byte.as_ptr().cast(), byte.len());
    // SAFETY: byte is valid for n bytes; the fd and offset are the experiment.
    unsafe {
        match call {
            Call::Pwrite64 => libc::pwrite64(fd, p, n, offset),
            Call::UnderPwrite64 => __pwrite64(fd, p, n, offset),
            Call::Pwrite => match libc::off_t::try_from(offset) {
                Ok(off) => libc::pwrite(fd, p, n, off),
                Err(_) => die("--call pwrite: the offset does not fit this architecture's off_t"),
            },
            Call::Write => {
                if libc::lseek64(fd, offset, libc::SEEK_SET) < 0 {
                    return -1;
                }
                libc::write(fd, p, n)
            }
            Call::Ftruncate64 => libc::ftruncate64(fd, offset + n as i64) as isize,
            Call::Ftruncate => match libc::off_t::try_from(offset + n as i64) {
                Ok(len) => libc::ftruncate(fd, len) as isize,
                Err(_) => die("--call ftruncate: the size does not fit this architecture's off_t"),
            },
        }
    }
}

/// st_size and st_blocks * 512.
pub struct Stat {
    pub size: i64,
    pub allocated: u64,
}

pub fn stat(fd: i32) -> Stat {
    // SAFETY: an all-zero stat64 is a valid value to overwrite.
    let mut st: libc::stat64 = unsafe { std::mem::zeroed() };
    // SAFETY: st is writable.
    unsafe { libc::fstat64(fd, &mut st) };
    Stat { size: st.st_size, allocated: st.st_blocks as u64 * 512 }
}

/// The fd's file offset (-1 with ESPIPE for pipes and sockets).
pub fn offset(fd: i32) -> i64 {
    // SAFETY: a plain fd.
    unsafe { libc::lseek64(fd, 0, libc::SEEK_CUR) }
}

/// Bytes free for this (root) process on the filesystem holding `fd` (f_bfree).
pub fn free_bytes(fd: i32) -> u64 {
    // SAFETY: zeroed statvfs64 is a valid out-parameter.
    let mut st: libc::statvfs64 = unsafe { std::mem::zeroed() };
    // SAFETY: st is writable.
    if unsafe { libc::fstatvfs64(fd, &mut st) } != 0 {
        die(&format!("fstatvfs: {}", std::io::Error::last_os_error()));
    }
    st.f_bfree * st.f_frsize as u64
}

/// pwrite64 of the whole buffer; the errno of the first failure.
pub fn pwrite_all(fd: i32, buf: &[u8], at: u64) -> Result<(), i32> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &buf[done..];
        // SAFETY: rest is valid for its length.
        let n = unsafe { libc::pwrite64(fd, rest.as_ptr().cast(), rest.len(), (at + done as u64) as i64) };
        match n {
            n if n > 0 => done += n as usize,
            0 => return Err(libc::ENOSPC),
            _ if errno() == libc::EINTR => {}
            _ => return Err(errno()),
        }
    }
    Ok(())
}
