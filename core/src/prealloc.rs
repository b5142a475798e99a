//! The action: allocate `[0, len)` of a file, and undo it when anything fails.

use crate::config::Method;
use crate::error::{Error, Result};
use crate::sys;
use libc::c_int;

/// Bytes per zero write: as large as `dd bs=8M`, which streams at disk speed and lets
/// filesystems without delayed allocation (ext3) allocate in long runs.
const ZERO_CHUNK: usize = 8 << 20;
/// Alignment of the zero buffer, for filesystems that like aligned user buffers.
const PAGE: usize = 4096;

/// The zero buffer. Interior mutability puts it in .bss rather than .rodata: never
/// written, its pages all map the kernel's shared zero page, so it adds nothing to the
/// library's file size or to the process's RSS (a .rodata copy would add 4 MiB to both).
#[repr(C, align(4096))]
struct Zeros(std::cell::UnsafeCell<[u8; ZERO_CHUNK]>);
// SAFETY: nothing ever writes through the cell; it is only read.
unsafe impl Sync for Zeros {}
static ZEROS: Zeros = Zeros(std::cell::UnsafeCell::new([0; ZERO_CHUNK]));
const _: () = assert!(std::mem::align_of::<Zeros>() == PAGE);

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

/// Writes zeros over `[start, end)` with the real pwrite64, retrying EINTR and short writes.
fn zero_range(fd: c_int, mut start: i64, end: i64) -> Result<()> {
    let pwrite = crate::real::pwrite64();
    while start < end {
        let n = ((end - start) as u64).min(ZERO_CHUNK as u64) as usize;
        // SAFETY: ZEROS is a static buffer of at least n bytes that nothing writes.
        let ret = unsafe { pwrite(fd, ZEROS.0.get().cast_const().cast(), n, start) };
        match ret {
            -1 if crate::error::get_errno() == libc::EINTR => continue,
            -1 => return Err(Error::last("pwrite64 (zero fill)")),
            0 => return Err(Error::new("pwrite64 (zero fill) wrote nothing", libc::EIO)),
            n => start += n as i64,
        }
    }
    Ok(())
}
