//! The action: allocate `[0, len)` of a file, and undo it when anything fails.

use crate::config::Method;
use crate::error::{Error, Result};
use crate::sys;
use libc::{c_int, c_void};
use std::sync::atomic::{AtomicU64, Ordering};

/// The zero buffer: 64 KiB, written to by the library itself (see [`zero_buffer`]), so it
/// costs at most 64 KiB of RSS, and only in a process that zero-fills.
const ZERO_BUF: usize = 64 << 10;
/// Bytes per write: `pwritev` of the buffer repeated, as large as `dd bs=8M`.
const ZERO_CHUNK: usize = 8 << 20;
const IOVECS: usize = ZERO_CHUNK / ZERO_BUF;
const PAGE: usize = 4096;

/// Atomics so that every zero fill may store into it, from any thread, with no lock.
#[repr(C, align(4096))]
struct Zeros([AtomicU64; ZERO_BUF / 8]);
static ZEROS: Zeros = Zeros([const { AtomicU64::new(0) }; ZERO_BUF / 8]);
const _: () = assert!(std::mem::align_of::<Zeros>() == PAGE && ZERO_CHUNK % ZERO_BUF == 0);

/// The zero buffer, each page stored into first. A never-written buffer would cost no
/// memory (its pages map the kernel's shared zero page), but writes from such pages
/// fragment files on ext3, which has no delayed allocation: measured on a 128 MiB file,
/// 145-1548 fragments instead of 8, when the kernel's copy from not-yet-faulted pages
/// comes up short and the filesystem frees and reallocates the blocks.
fn zero_buffer() -> *const c_void {
    for page in ZEROS.0.chunks(PAGE / 8) {
        page[0].store(0, Ordering::Relaxed);
    }
    ZEROS.0.as_ptr().cast()
}

/// How the file was allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    Fallocate,
    /// Zeros written into the holes; the count of bytes written.
    Zeros(u64),
}

impl std::fmt::Display for How {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            How::Fallocate => f.write_str("fallocate"),
            How::Zeros(n) => write!(f, "zero fill of {}", crate::log::Bytes(*n)),
        }
    }
}

/// The file as it was before: what a rollback restores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Before {
    pub size: i64,
    pub blocks: i64,
}

/// Marks an empty file NOCOW (btrfs then overwrites it in place; it must be set
/// before the file has data).
pub fn set_nocow(fd: c_int) -> Result<()> {
    let flags = sys::inode_flags(fd)?;
    if flags & sys::FS_NOCOW_FL == 0 {
        sys::set_inode_flags(fd, flags | sys::FS_NOCOW_FL)?;
    }
    Ok(())
}

/// Allocates `[0, len)` of `fd` with `method` (not `Off`). On error nothing is undone
/// yet: the caller calls [`rollback`].
pub fn allocate(fd: c_int, before: Before, len: i64, method: Method, open_flags: c_int) -> Result<How> {
    let fallocate = || sys::fallocate(fd, 0, 0, len).map(|()| How::Fallocate);
    let zeros = || write_zeros(fd, before.size, len, open_flags).map(How::Zeros);
    match method {
        Method::Fallocate => fallocate(),
        Method::Zero => zeros(),
        Method::Auto => match fallocate() {
            Err(e) if e.errno.0 == libc::EOPNOTSUPP => zeros(),
            other => other,
        },
        Method::Off => Err(Error::new("allocate(NOSPARSE_METHOD=off)", libc::EINVAL)),
    }
}

/// Puts the file back to its size before, releasing blocks allocated past it. Does
/// nothing when neither size nor allocation changed.
pub fn rollback(fd: c_int, before: Before) -> Result<()> {
    let now = sys::fstat(fd)?;
    if now.st_size == before.size && now.st_blocks as i64 == before.blocks {
        return Ok(());
    }
    sys::ftruncate(fd, before.size)
}

/// Writes zeros into the holes of `[0, len)` — never over data — and returns the bytes
/// written. The caller's file offset is kept.
fn write_zeros(fd: c_int, size: i64, len: i64, open_flags: c_int) -> Result<u64> {
    if open_flags & libc::O_DIRECT != 0 {
        // Hole bounds and the file's end are not aligned for direct I/O.
        return Err(Error::new("zero fill through an O_DIRECT fd", libc::EINVAL));
    }
    let mut needed = (len - size) as u64;
    for_each_hole(fd, size, |start, end| {
        needed += (end - start) as u64;
        Ok(())
    })?;
    let free = sys::free_bytes(fd)?;
    if needed > free {
        return Err(Error::new("free space check", libc::ENOSPC));
    }
    for_each_hole(fd, size, |start, end| zero_range(fd, start, end))?;
    zero_range(fd, size, len)?;
    Ok(needed)
}

/// Calls `f(start, end)` for each hole in `[0, end)`, found with SEEK_HOLE/SEEK_DATA.
/// lseek moves the file offset: it is put back before returning.
fn for_each_hole(fd: c_int, end: i64, mut f: impl FnMut(i64, i64) -> Result<()>) -> Result<()> {
    if end == 0 {
        return Ok(());
    }
    let saved = sys::lseek(fd, 0, libc::SEEK_CUR)?;
    let mut scan = || -> Result<()> {
        let mut pos = 0;
        while pos < end {
            let hole = match sys::lseek(fd, pos, libc::SEEK_HOLE) {
                Err(e) if e.errno.0 == libc::ENXIO => return Ok(()),
                other => other?,
            };
            if hole >= end {
                return Ok(());
            }
            let data = match sys::lseek(fd, hole, libc::SEEK_DATA) {
                Err(e) if e.errno.0 == libc::ENXIO => end,
                other => other?.min(end),
            };
            f(hole, data)?;
            pos = data;
        }
        Ok(())
    };
    let result = scan();
    let restored = sys::lseek(fd, saved, libc::SEEK_SET);
    result.and(restored.map(drop))
}

/// Writes zeros over `[start, end)` with `pwritev` (which the library does not hook) of
/// the zero buffer repeated, retrying EINTR and short writes.
fn zero_range(fd: c_int, mut start: i64, end: i64) -> Result<()> {
    let buf = zero_buffer();
    let mut iov = [libc::iovec { iov_base: buf.cast_mut(), iov_len: ZERO_BUF }; IOVECS];
    while start < end {
        let n = ((end - start) as u64).min(ZERO_CHUNK as u64) as usize;
        let (full, rest) = (n / ZERO_BUF, n % ZERO_BUF);
        let count = full + usize::from(rest > 0);
        for (i, v) in iov.iter_mut().enumerate().take(count) {
            v.iov_len = if i < full { ZERO_BUF } else { rest };
        }
        // SAFETY: the iovecs point into ZEROS, which holds ZERO_BUF bytes; count <= IOVECS.
        let ret = unsafe { libc::pwritev64(fd, iov.as_ptr(), count as c_int, start) };
        match ret {
            -1 if crate::error::get_errno() == libc::EINTR => continue,
            -1 => return Err(Error::last("pwritev (zero fill)")),
            0 => return Err(Error::new("pwritev (zero fill) wrote nothing", libc::EIO)),
            n => start += n as i64,
        }
    }
    Ok(())
}
