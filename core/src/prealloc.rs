//! The action: allocate a plan's new range, and — beside it — give back exactly what
//! was added when anything fails.
//!
//! - `fallocate(FALLOC_FL_KEEP_SIZE)` over `[start, end)`: blocks past the end of the
//!   file, which no one else can have written (a write there would have moved the end),
//!   and the size left to the real call. Undo gives back what is still past the end.
//! - Zeros, where the filesystem has no fallocate: written into `[size, end - 1)` in
//!   chunks of at most 1 MiB, each written only where it is still a hole at that moment
//!   (checked with SEEK_DATA through a private open file description, so the caller's
//!   file offset never moves). Like glibc's posix_fallocate emulation, this cannot be
//!   complete against a concurrent writer: data written into a chunk between its check
//!   and its write is overwritten with zeros. The file's size grows as the zeros go in.
//!   Undo truncates back to the old size, but never below the last non-zero byte
//!   (someone else's data) found past it.

use crate::error::{Errno, Result};
use crate::policy::Plan;
use crate::settings::Method;
use crate::sys;
use core::sync::atomic::{AtomicU64, Ordering};

const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
const FALLOC_FL_PUNCH_HOLE: i32 = 0x02;

/// The zero buffer: 64 KiB in .bss, stored into by the library itself (see
/// [`zero_buffer`]), so it costs no memory until a process zero-fills.
const ZERO_BUF: usize = 64 << 10;
/// Bytes per write, and per hole check: at most 1 MiB, so that a concurrent writer's
/// data is overwritten only if it lands in the chunk being written.
const ZERO_CHUNK: usize = 1 << 20;
const IOVECS: usize = ZERO_CHUNK / ZERO_BUF;
const PAGE: usize = 4096;

/// Atomics so that every zero fill may store into it, from any thread, with no lock.
#[repr(C, align(4096))]
struct Zeros([AtomicU64; ZERO_BUF / 8]);
static ZEROS: Zeros = Zeros([const { AtomicU64::new(0) }; ZERO_BUF / 8]);
const _: () = assert!(core::mem::align_of::<Zeros>() == PAGE && ZERO_CHUNK % ZERO_BUF == 0);

/// The zero buffer, each page stored into first. A never-written buffer would cost no
/// memory (its pages map the kernel's shared zero page), but writes from such pages
/// fragment files on ext3, which has no delayed allocation: measured on a 128 MiB file,
/// 145-1548 fragments instead of 8.
fn zero_buffer() -> *const u8 {
    for page in ZEROS.0.chunks(PAGE / 8) {
        if let Some(first) = page.first() {
            first.store(0, Ordering::Relaxed);
        }
    }
    ZEROS.0.as_ptr().cast()
}

/// How the range was allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    Fallocate,
    /// Zeros written; the count of bytes written.
    Zeros(u64),
}

impl How {
    pub fn name(self) -> &'static str {
        match self {
            How::Fallocate => "fallocate",
            How::Zeros(_) => "zero fill",
        }
    }
}

/// What an allocation changed: what its undo gives back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Done {
    pub plan: Plan,
    pub how: How,
    /// The library set NOCOW on the file.
    pub nocow_set: bool,
    /// `st_blocks` before, to check the undo.
    pub blocks_before: i64,
}

/// What an undo could not give back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Left {
    /// Bytes still allocated beyond what the file had (0 when unknown).
    pub bytes: u64,
    pub errno: Option<Errno>,
    /// NOCOW could not be cleared.
    pub nocow: bool,
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

/// Allocates the plan's range of `fd` (whose `st_blocks` is `blocks_before`). On
/// failure returns the errno and what was done so far, for [`undo`].
pub fn allocate(fd: i32, plan: Plan, blocks_before: i64) -> core::result::Result<Done, (Errno, Done)> {
    let mut done = Done { plan, how: How::Fallocate, nocow_set: false, blocks_before };
    if plan.nocow {
        // Without NOCOW the file still gets its blocks; btrfs may fragment it later.
        done.nocow_set = set_nocow(fd).unwrap_or(false);
    }
    let fallocate = || sys::fallocate(fd, FALLOC_FL_KEEP_SIZE, plan.start, plan.end - plan.start);
    let result = match plan.method {
        Method::Fallocate => fallocate(),
        Method::Zero => zeros(fd, &mut done),
        Method::Auto => match fallocate() {
            Err(e) if e.0 == libc::EOPNOTSUPP && plan.can_zero => zeros(fd, &mut done),
            other => other,
        },
        Method::Off => Err(Errno(libc::EINVAL)),
    };
    match result {
        Ok(()) => Ok(done),
        Err(e) => Err((e, done)),
    }
}

/// Gives back what [`allocate`] added, and checks that it did. `io` is scratch space
/// for reading the file back (zero path).
pub fn undo(fd: i32, done: &Done, io: &mut [u8]) -> core::result::Result<(), Left> {
    let mut left = Left { bytes: 0, errno: None, nocow: false };
    let result = match done.how {
        How::Fallocate => give_back_past_end(fd, &done.plan, done.blocks_before),
        How::Zeros(_) => truncate_zeros(fd, &done.plan, io),
    };
    left.errno = result.err();
    let now = sys::fstat(fd);
    if done.nocow_set && now.is_ok_and(|st| st.size == 0) {
        let cleared = sys::inode_flags(fd).and_then(|f| sys::set_inode_flags(fd, f & !sys::FS_NOCOW_FL));
        left.nocow = cleared.is_err();
    }
    if let Ok(st) = now {
        if st.size == done.plan.size && st.blocks > done.blocks_before {
            left.bytes = (st.blocks - done.blocks_before) as u64 * 512;
        }
    }
    if left.errno.is_none() && left.bytes == 0 && !left.nocow {
        Ok(())
    } else {
        Err(left)
    }
}

/// Gives back the part of `[start, end)` that is still past the end of the file: punched
/// out where the filesystem punches there (xfs, btrfs); ext4 ignores a punch past the
/// end, and frees blocks past it on a truncate to the size it already has, so when
/// blocks are still over, the file is truncated to the size just read. That truncate
/// is no change of size, but it does update the file's times, and a write that extends
/// the file between the read and the truncate (microseconds) would be cut back.
fn give_back_past_end(fd: i32, plan: &Plan, blocks_before: i64) -> Result<()> {
    punch_past_end(fd, plan)?;
    let st = sys::fstat(fd)?;
    if st.blocks > blocks_before && st.size <= plan.start {
        sys::ftruncate(fd, st.size)?;
    }
    Ok(())
}

/// Punches out the part of `[start, end)` that is still past the end of the file.
fn punch_past_end(fd: i32, plan: &Plan) -> Result<()> {
    let st = sys::fstat(fd)?;
    let block = st.blksize.clamp(512, 1 << 20);
    let eof = match st.size.checked_rem(block) {
        Some(0) | None => st.size,
        Some(r) => st.size.saturating_add(block - r),
    };
    let from = plan.start.max(eof);
    if from >= plan.end {
        return Ok(());
    }
    sys::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, from, plan.end - from)
}

/// A private open file description of the caller's file, for finding holes and reading
/// without moving the caller's offset.
fn private(fd: i32) -> Result<sys::Fd> {
    let mut path = [0u8; 32];
    let n = crate::fs::proc_path(&mut path, b"/proc/self/fd/", fd);
    sys::open(path.get(..n).unwrap_or(&[]), libc::O_RDONLY)
}

/// The zero path: fills `[size, end - 1)`, chunk by chunk, where it is still a hole.
/// Past the file's current end everything is a hole; below it (another writer extended
/// the file meanwhile) holes are found with SEEK_DATA through a private open file
/// description — or, where the file cannot be opened again for reading (a write-only
/// descriptor of a file this user may not read), that part is left as it is.
fn zeros(fd: i32, done: &mut Done) -> Result<()> {
    let plan = done.plan;
    done.how = How::Zeros(0);
    let own = private(fd).ok();
    let zero_end = plan.end - 1;
    let mut pos = plan.size;
    let mut written = 0u64;
    while pos < zero_end {
        let chunk_end = zero_end.min(pos.saturating_add(ZERO_CHUNK as i64));
        let eof = sys::fstat(fd)?.size;
        let data = if pos >= eof {
            chunk_end
        } else {
            match &own {
                Some(own) => match sys::lseek(own.0, pos, libc::SEEK_DATA) {
                    Err(e) if e.0 == libc::ENXIO => chunk_end,
                    other => other?.min(chunk_end),
                },
                // Cannot look: treat what lies below the end as data.
                None => pos,
            }
        };
        if data > pos {
            zero_range(fd, pos, data)?;
            written += (data - pos) as u64;
            done.how = How::Zeros(written);
            // Start writing the chunk out now: with delayed allocation (ext4, xfs) its
            // blocks are placed when it is written back, and placed in order here they
            // stay together; left dirty, they would be placed later among other writers'
            // data. Best effort: the zeros are in the file either way.
            let _ = sys::start_writeback(fd, pos, data - pos);
        }
        pos = if data >= chunk_end {
            chunk_end
        } else {
            // Someone's data (or, unseen, the part below the end): step over it.
            match &own {
                Some(own) => match sys::lseek(own.0, data, libc::SEEK_HOLE) {
                    Err(e) if e.0 == libc::ENXIO => zero_end,
                    other => other?.max(data + 1),
                },
                None => eof.clamp(data + 1, zero_end),
            }
        };
    }
    Ok(())
}

/// Writes zeros over `[start, end)` with `pwritev` (a system call, not a hooked libc
/// function) of the zero buffer repeated, retrying EINTR and short writes.
fn zero_range(fd: i32, mut start: i64, end: i64) -> Result<()> {
    let buf = zero_buffer();
    let mut iov = [libc::iovec { iov_base: buf as *mut _, iov_len: ZERO_BUF }; IOVECS];
    while start < end {
        let n = ((end - start) as u64).min(ZERO_CHUNK as u64) as usize;
        let (full, rest) = (n / ZERO_BUF, n % ZERO_BUF);
        let count = (full + usize::from(rest > 0)).min(IOVECS);
        for (i, v) in iov.iter_mut().enumerate().take(count) {
            v.iov_len = if i < full { ZERO_BUF } else { rest };
        }
        match sys::pwritev(fd, iov.get(..count).unwrap_or(&[]), start) {
            Err(e) if e.0 == libc::EINTR => continue,
            Err(e) => return Err(e),
            Ok(0) => return Err(Errno(libc::EIO)),
            Ok(n) => start += n as i64,
        }
    }
    Ok(())
}

/// Undo of the zero path: truncates to the old size, or just past the last non-zero
/// byte beyond it (another writer's), read back through `io`.
fn truncate_zeros(fd: i32, plan: &Plan, io: &mut [u8]) -> Result<()> {
    let st = sys::fstat(fd)?;
    if st.size <= plan.size || io.is_empty() {
        return Ok(());
    }
    let own = private(fd)?;
    let mut keep = plan.size;
    let mut at = st.size;
    'scan: while at > plan.size {
        let from = plan.size.max(at - io.len() as i64);
        let want = (at - from) as usize;
        let Some(piece) = io.get_mut(..want) else { break };
        let got = loop {
            match sys::pread(own.0, piece, from) {
                Err(e) if e.0 == libc::EINTR => {}
                other => break other?,
            }
        };
        if let Some(last) = piece.get(..got).and_then(|p| p.iter().rposition(|&b| b != 0)) {
            keep = from + last as i64 + 1;
            break 'scan;
        }
        at = from;
    }
    if keep < st.size {
        sys::ftruncate(fd, keep)?;
    }
    Ok(())
}
