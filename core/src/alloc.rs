//! The action: allocate a plan's new range — after the real call has succeeded, so that
//! nothing ever needs undoing.
//!
//! - `fallocate(FALLOC_FL_KEEP_SIZE)` over `[start, min(end, size now))`: it allocates
//!   only where the file has holes, never touches a byte, and never changes the size.
//! - The zero fill, where the filesystem has no fallocate (ext2/ext3 files) or
//!   `NOSPARSE_METHOD=zero`: the holes FIEMAP finds in the range are mapped shared and
//!   `madvise(MADV_POPULATE_WRITE)`d, which makes the kernel allocate each page's block
//!   as if it were written, and write back whatever the page holds — zeros for a hole,
//!   or the data another thread or process put there meanwhile. The library never
//!   stores a byte into the file, so a concurrent writer's data cannot be overwritten,
//!   and a process killed at any moment leaves the size the real call gave it.
//! - Under `NOSPARSE_ON_ERROR=fail` the range is reserved before the real call instead
//!   ([`reserve`]), so that a failure can fail the call; blocks past the end that a
//!   failing call then leaves are not given back (no one can prove another writer did
//!   not reach them meanwhile): the log line says how much stays.

use crate::error::{Errno, Result};
use crate::extents::{self, Fiemap};
use crate::policy::{round_up, Plan};
use crate::settings::Method;
use crate::sys;

const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
const PAGE: i64 = 4096;
/// The zero fill's mapping onto the file, at most this long at a time.
const WINDOW: i64 = 8 << 20;
/// A huge page (a PMD's span, on x86 under a 64-bit kernel): made present at once, it
/// counts in the program's resident memory until released, right after.
const HUGE: i64 = 2 << 20;
/// Pages made present, released again and written back per step, page by page.
const PIECE: i64 = 256 << 10;
const MADV_DONTNEED: i32 = 4;
const MADV_DONTFORK: i32 = 10;
const MADV_NOHUGEPAGE: i32 = 15;
/// Linux 5.14. Older kernels answer EINVAL.
const MADV_POPULATE_WRITE: i32 = 23;

/// How the range was allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    Fallocate,
    Zeros,
}

impl How {
    pub fn name(self) -> &'static str {
        match self {
            How::Fallocate => "fallocate",
            How::Zeros => "zero fill",
        }
    }
}

/// Why an allocation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// A system call's error (fallocate's ENOSPC, EDQUOT, EIO...).
    Errno(Errno),
    /// The zero fill could not allocate a page: no room, a quota, or an I/O error (the
    /// kernel reports them all as the fault a store there would have taken).
    NoBlock,
    /// The zero fill needs `MADV_POPULATE_WRITE` (Linux 5.14).
    OldKernel,
    /// No fallocate here, and zeros cannot be filled in (the descriptor is not open
    /// for reading and writing, or the filesystem is not a local one).
    NoZeros,
}

/// Marks an empty file NOCOW (btrfs then overwrites it in place; it must be set before
/// the file has data). Returns whether the library set it.
pub fn set_nocow(fd: i32) -> Result<bool> {
    let flags = sys::inode_flags(fd)?;
    if flags & sys::FS_NOCOW_FL != 0 {
        return Ok(false);
    }
    sys::set_inode_flags(fd, flags | sys::FS_NOCOW_FL).map(|()| true)
}

/// Clears the NOCOW attribute the library set, when the real call failed and the file
/// is still empty (btrfs itself ignores the change on a file with data).
pub fn clear_nocow(fd: i32) {
    if sys::fstat(fd).is_ok_and(|st| st.size == 0) {
        if let Ok(flags) = sys::inode_flags(fd) {
            let _ = sys::set_inode_flags(fd, flags & !sys::FS_NOCOW_FL);
        }
    }
}

/// Fallocates the plan's whole range before the real call (`NOSPARSE_ON_ERROR=fail`;
/// btrfs's NOCOW), past the file's end and without changing its size.
pub fn reserve(fd: i32, plan: &Plan) -> Result<()> {
    sys::fallocate(fd, FALLOC_FL_KEEP_SIZE, plan.start, plan.end - plan.start)
}

/// After the real call: allocates the holes of the plan's range that lie within the
/// file's size now. `reserved`: [`reserve`] already did it (the zero method still
/// writes its zeros, into the reserved blocks). `map` is scratch space for FIEMAP.
pub fn fill(fd: i32, plan: &Plan, reserved: bool, map: &mut Fiemap) -> core::result::Result<How, (Stop, How)> {
    let Ok(st) = sys::fstat(fd) else { return Err((Stop::Errno(Errno(libc::EBADF)), How::Fallocate)) };
    let end = plan.end.min(st.size);
    // Reserved before the call: by fallocate, whatever the method (with zeros that is
    // btrfs's empty file, NOCOW and all or nothing under a qgroup; the zero fill would
    // find no hole in it).
    if end <= plan.start || reserved {
        return Ok(How::Fallocate);
    }
    let mut zeros = |from: i64| match plan.can_zero {
        true => zero_fill(fd, from, end, map).map(|()| How::Zeros).map_err(|s| (s, How::Zeros)),
        false => Err((Stop::NoZeros, How::Zeros)),
    };
    match plan.method {
        Method::Zero => zeros(plan.start),
        Method::Off => Ok(How::Fallocate),
        Method::Fallocate | Method::Auto => {
            match sys::fallocate(fd, FALLOC_FL_KEEP_SIZE, plan.start, end - plan.start) {
                Ok(()) => Ok(How::Fallocate),
                Err(e) if e.0 == libc::EOPNOTSUPP && plan.method == Method::Auto => zeros(plan.start),
                Err(e) => Err((Stop::Errno(e), How::Fallocate)),
            }
        }
    }
}

/// The zero fill: every hole of `[from, to)` (found with FIEMAP on the caller's own
/// descriptor, which moves no file offset) is made present through a shared mapping.
/// `from` is rounded up to a page: the page holding the old end is not the library's.
fn zero_fill(fd: i32, from: i64, to: i64, map: &mut Fiemap) -> core::result::Result<(), Stop> {
    let from = round_up(from, PAGE);
    let mut pos = from;
    let mut stop = None;
    let walked = extents::for_each_from(fd, from as u64, map, |e| {
        let (start, end) = (e.logical as i64, e.logical.saturating_add(e.length) as i64);
        if stop.is_some() || start >= to {
            return false;
        }
        if start > pos {
            stop = populate(fd, pos, start.min(to)).err();
        }
        pos = pos.max(end);
        stop.is_none() && pos < to
    });
    if let Some(s) = stop {
        return Err(s);
    }
    match walked {
        Ok(()) if pos < to => populate(fd, pos, to),
        Ok(()) => Ok(()),
        Err(e) => Err(Stop::Errno(e)),
    }
}

/// Makes the pages of `[from, to)` present and dirty through shared mappings of `fd`.
/// The part made of whole, aligned huge pages goes a huge page at a time: the kernel
/// can then make each one present (a large folio of the page cache, one page-table
/// entry) with one fault, several times faster than page by page. The pages before and
/// after it go page by page, so that no folio reaches outside the range.
fn populate(fd: i32, from: i64, to: i64) -> core::result::Result<(), Stop> {
    let from = from - from % PAGE;
    let to = round_up(to, PAGE);
    let body = round_up(from, HUGE).min(to);
    let tail = body.max(to - to % HUGE);
    fill_range(fd, from, body, Grain::Page)?;
    fill_range(fd, body, tail, Grain::Huge)?;
    fill_range(fd, tail, to, Grain::Page)
}

/// How a window is made present.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Grain {
    /// Page by page (`MADV_NOHUGEPAGE`), `PIECE` at a time.
    Page,
    /// A huge page at a time, the window's address aligned to one.
    Huge,
}

/// `[from, to)` a window at a time, each piece released again as soon as it is present
/// and its writeback started (so that delayed allocation places the blocks in order).
fn fill_range(fd: i32, from: i64, to: i64, grain: Grain) -> core::result::Result<(), Stop> {
    let piece = match grain {
        Grain::Page => PIECE,
        Grain::Huge => HUGE,
    };
    let mut at = from;
    while at < to {
        let len = (to - at).min(WINDOW);
        let window = Window::map(fd, at, len as usize, grain).map_err(Stop::Errno)?;
        let mut done = 0;
        while done < len {
            let n = (len - done).min(piece);
            window.populate(done as usize, n as usize)?;
            let _ = sys::start_writeback(fd, at + done, n);
            done += n;
        }
        at += len;
    }
    Ok(())
}

/// A shared mapping of part of the file, not inherited by a child forked meanwhile
/// (`MADV_DONTFORK`), unmapped when dropped.
struct Window {
    base: *mut u8,
    len: usize,
}

impl Window {
    fn map(fd: i32, offset: i64, len: usize, grain: Grain) -> Result<Window> {
        let align = match grain {
            Grain::Page => 0,
            Grain::Huge => HUGE as usize,
        };
        let base = sys::map_shared(fd, len, offset, align)?;
        let w = Window { base, len };
        // SAFETY: the mapping just made, whole.
        let _ = unsafe { sys::madvise(w.base, w.len, MADV_DONTFORK) };
        if grain == Grain::Page {
            // Page by page: no large folio of the page cache reaching past the range.
            // SAFETY: as above.
            let _ = unsafe { sys::madvise(w.base, w.len, MADV_NOHUGEPAGE) };
        }
        Ok(w)
    }

    /// Makes `[at, at + n)` of the window present and writable, then releases the
    /// pages from this mapping (they stay in the page cache, dirty).
    fn populate(&self, at: usize, n: usize) -> core::result::Result<(), Stop> {
        if at.checked_add(n).map_or(true, |end| end > self.len) {
            return Err(Stop::Errno(Errno(libc::EINVAL)));
        }
        // SAFETY: within the mapping (checked above); the pages stay valid file pages.
        let p = unsafe { self.base.add(at) };
        loop {
            // SAFETY: as above; populating writes nothing into the pages.
            match unsafe { sys::madvise(p, n, MADV_POPULATE_WRITE) } {
                Ok(()) => break,
                Err(e) if e.0 == libc::EINTR => {}
                Err(e) if e.0 == libc::EINVAL => return Err(Stop::OldKernel),
                Err(e) if e.0 == libc::EFAULT => return Err(Stop::NoBlock),
                Err(e) => return Err(Stop::Errno(e)),
            }
        }
        // SAFETY: as above; for a shared file mapping this only drops the page table
        // entries, and the dirty pages stay in the page cache.
        let _ = unsafe { sys::madvise(p, n, MADV_DONTNEED) };
        Ok(())
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`; nothing refers to it any more.
        unsafe { sys::unmap(self.base, self.len) }
    }
}
