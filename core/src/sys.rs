//! The system calls the engine makes, made directly (no libc wrapper), each returning a
//! `Result`. Made this way they leave `errno` alone, are not cancellation points, take
//! no lock, and tie the library to no glibc symbol version; they cannot re-enter the
//! hooks either. Numbers and structures are libc's, which are the kernel's for x86_64
//! and i386.
//! <https://man7.org/linux/man-pages/man2/syscall.2.html>

use crate::error::{Errno, Result};

/// System call numbers, from `libc` for each architecture.
#[cfg(target_arch = "x86_64")]
mod nr {
    pub const READ: usize = libc::SYS_read as usize;
    pub const WRITE: usize = libc::SYS_write as usize;
    pub const CLOSE: usize = libc::SYS_close as usize;
    pub const FSTAT: usize = libc::SYS_fstat as usize;
    pub const LSEEK: usize = libc::SYS_lseek as usize;
    pub const MMAP: usize = libc::SYS_mmap as usize;
    pub const MADVISE: usize = libc::SYS_madvise as usize;
    pub const MUNMAP: usize = libc::SYS_munmap as usize;
    pub const IOCTL: usize = libc::SYS_ioctl as usize;
    pub const PREAD64: usize = libc::SYS_pread64 as usize;
    pub const GETPID: usize = libc::SYS_getpid as usize;
    pub const SOCKET: usize = libc::SYS_socket as usize;
    pub const SENDTO: usize = libc::SYS_sendto as usize;
    pub const FCNTL: usize = libc::SYS_fcntl as usize;
    pub const FTRUNCATE: usize = libc::SYS_ftruncate as usize;
    pub const GETEUID: usize = libc::SYS_geteuid as usize;
    pub const FSTATFS: usize = libc::SYS_fstatfs as usize;
    pub const STATFS: usize = libc::SYS_statfs as usize;
    pub const FADVISE64: usize = libc::SYS_fadvise64 as usize;
    pub const CLOCK_GETTIME: usize = libc::SYS_clock_gettime as usize;
    pub const OPENAT: usize = libc::SYS_openat as usize;
    pub const SYNC_FILE_RANGE: usize = libc::SYS_sync_file_range as usize;
    pub const READLINKAT: usize = libc::SYS_readlinkat as usize;
    pub const FALLOCATE: usize = libc::SYS_fallocate as usize;
    pub const PWRITEV: usize = libc::SYS_pwritev as usize;
    pub const PRLIMIT64: usize = libc::SYS_prlimit64 as usize;
    pub const FGETXATTR: usize = libc::SYS_fgetxattr as usize;
}

/// System call numbers, from `libc` for each architecture.
#[cfg(target_arch = "x86")]
mod nr {
    pub const READ: usize = libc::SYS_read as usize;
    pub const WRITE: usize = libc::SYS_write as usize;
    pub const CLOSE: usize = libc::SYS_close as usize;
    pub const GETPID: usize = libc::SYS_getpid as usize;
    pub const IOCTL: usize = libc::SYS_ioctl as usize;
    pub const MUNMAP: usize = libc::SYS_munmap as usize;
    pub const MADVISE: usize = libc::SYS_madvise as usize;
    pub const SOCKETCALL: usize = libc::SYS_socketcall as usize;
    pub const LLSEEK: usize = libc::SYS__llseek as usize;
    pub const PREAD64: usize = libc::SYS_pread64 as usize;
    pub const MMAP2: usize = libc::SYS_mmap2 as usize;
    pub const FTRUNCATE64: usize = libc::SYS_ftruncate64 as usize;
    pub const FSTAT64: usize = libc::SYS_fstat64 as usize;
    pub const GETEUID32: usize = libc::SYS_geteuid32 as usize;
    pub const FCNTL64: usize = libc::SYS_fcntl64 as usize;
    pub const CLOCK_GETTIME: usize = libc::SYS_clock_gettime as usize;
    pub const FSTATFS64: usize = libc::SYS_fstatfs64 as usize;
    pub const STATFS64: usize = libc::SYS_statfs64 as usize;
    pub const FADVISE64_64: usize = libc::SYS_fadvise64_64 as usize;
    pub const OPENAT: usize = libc::SYS_openat as usize;
    pub const READLINKAT: usize = libc::SYS_readlinkat as usize;
    pub const SYNC_FILE_RANGE: usize = libc::SYS_sync_file_range as usize;
    pub const FALLOCATE: usize = libc::SYS_fallocate as usize;
    pub const PWRITEV: usize = libc::SYS_pwritev as usize;
    pub const PRLIMIT64: usize = libc::SYS_prlimit64 as usize;
    pub const FGETXATTR: usize = libc::SYS_fgetxattr as usize;
}

/// `syscall(nr, a...)`, six arguments (unused ones are ignored by the kernel).
///
/// # Safety
/// The arguments must be valid for that system call (pointers to memory of the sizes
/// it reads or writes).
#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn syscall6(nr: usize, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the x86_64 system call convention; rcx and r11 are clobbered by `syscall`.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2], in("r10") a[3], in("r8") a[4], in("r9") a[5],
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// As for x86_64. The six arguments go through memory: LLVM reserves ebx, esi and ebp
/// on i686, so the assembly saves them, loads them from the array and restores them.
///
/// # Safety
/// As for the x86_64 version.
#[cfg(target_arch = "x86")]
#[inline]
unsafe fn syscall6(nr: usize, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: `int $0x80` with ebx, ecx, edx, esi, edi, ebp as arguments 1-6; every
    // register it changes is saved and restored or declared.
    unsafe {
        core::arch::asm!(
            "push ebp",
            "push ebx",
            "push esi",
            "push edi",
            "mov ebx, [ecx]",
            "mov edx, [ecx + 8]",
            "mov esi, [ecx + 12]",
            "mov edi, [ecx + 16]",
            "mov ebp, [ecx + 20]",
            "mov ecx, [ecx + 4]",
            "int 0x80",
            "pop edi",
            "pop esi",
            "pop ebx",
            "pop ebp",
            inlateout("eax") nr as isize => ret,
            inlateout("ecx") a.as_ptr() => _,
            lateout("edx") _,
        );
    }
    ret
}

/// A raw return value as a `Result`: -4095..-1 are negated errno values.
fn cvt(ret: isize) -> Result<usize> {
    if (-4095..0).contains(&ret) {
        Err(Errno(-ret as i32))
    } else {
        Ok(ret as usize)
    }
}

/// # Safety
/// As for [`syscall6`].
unsafe fn call(nr: usize, a: [usize; 6]) -> Result<usize> {
    // SAFETY: the caller's promise.
    cvt(unsafe { syscall6(nr, a) })
}

/// A 64-bit value as the two words i386 passes it in (low first).
#[cfg(target_arch = "x86")]
fn split(v: i64) -> (usize, usize) {
    (v as u64 as u32 as usize, ((v as u64) >> 32) as u32 as usize)
}

/// `fcntl(fd, F_GETFL)` — the file status flags and access mode.
/// <https://man7.org/linux/man-pages/man2/fcntl.2.html>
pub fn getfl(fd: i32) -> Result<i32> {
    #[cfg(target_arch = "x86_64")]
    let n = nr::FCNTL;
    #[cfg(target_arch = "x86")]
    let n = nr::FCNTL64;
    // SAFETY: F_GETFL takes no argument and touches no memory.
    unsafe { call(n, [fd as usize, libc::F_GETFL as usize, 0, 0, 0, 0]) }.map(|f| f as i32)
}

/// What [`fstat`] reports that the engine uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub uid: u32,
    pub size: i64,
    pub blksize: i64,
    /// 512-byte units.
    pub blocks: i64,
}

impl Stat {
    pub fn is_regular(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
}

/// `fstat(fd)` — type, size and allocated blocks.
/// <https://man7.org/linux/man-pages/man2/fstat.2.html>
// The fields' types differ between the architectures: a cast is a no-op on one of them.
#[allow(clippy::unnecessary_cast)]
pub fn fstat(fd: i32) -> Result<Stat> {
    #[cfg(target_arch = "x86_64")]
    let (n, mut st) = (nr::FSTAT, core::mem::MaybeUninit::<libc::stat>::zeroed());
    #[cfg(target_arch = "x86")]
    let (n, mut st) = (nr::FSTAT64, core::mem::MaybeUninit::<libc::stat64>::zeroed());
    // SAFETY: the kernel's struct stat (x86_64) or stat64 (i386), which libc's match.
    unsafe { call(n, [fd as usize, st.as_mut_ptr() as usize, 0, 0, 0, 0]) }?;
    // SAFETY: zero-initialised, then filled in by the kernel.
    let st = unsafe { st.assume_init() };
    Ok(Stat {
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
        mode: st.st_mode as u32,
        uid: st.st_uid as u32,
        size: st.st_size as i64,
        blksize: st.st_blksize as i64,
        blocks: st.st_blocks as i64,
    })
}

/// What [`fstatfs`] and [`statfs`] report that the project uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatFs {
    /// The filesystem's magic number.
    pub kind: u32,
    pub bsize: u64,
    /// The fragment size (`f_frsize`); the kernel makes it `bsize` where the filesystem
    /// does not say.
    pub frsize: u64,
    /// Blocks in all (0 for filesystems that keep no data in blocks: procfs, sysfs...).
    pub blocks: u64,
    /// Free blocks, root's reserve included.
    pub bfree: u64,
    /// Free blocks for unprivileged users.
    pub bavail: u64,
}

impl StatFs {
    /// Free bytes this process may allocate (root may use the reserve).
    pub fn free_bytes(&self, root: bool) -> u64 {
        let blocks = if root { self.bfree } else { self.bavail };
        blocks.saturating_mul(self.bsize)
    }
}

/// `fstatfs(fd)` — the filesystem's type and free space.
/// <https://man7.org/linux/man-pages/man2/fstatfs.2.html>
pub fn fstatfs(fd: i32) -> Result<StatFs> {
    #[cfg(target_arch = "x86_64")]
    let n = nr::FSTATFS;
    #[cfg(target_arch = "x86")]
    let n = nr::FSTATFS64;
    // SAFETY: a descriptor is no pointer.
    unsafe { statfs_call(n, fd as usize) }
}

/// `statfs(path)` — as [`fstatfs`], for the file at `path` (which ends with a NUL),
/// symbolic links followed. <https://man7.org/linux/man-pages/man2/statfs.2.html>
pub fn statfs(path: &[u8]) -> Result<StatFs> {
    if path.last() != Some(&0) {
        return Err(Errno(libc::EINVAL));
    }
    #[cfg(target_arch = "x86_64")]
    let n = nr::STATFS;
    #[cfg(target_arch = "x86")]
    let n = nr::STATFS64;
    // SAFETY: path is NUL-terminated.
    unsafe { statfs_call(n, path.as_ptr() as usize) }
}

/// The statfs call `n` on `target`, a descriptor or a path.
///
/// # Safety
/// A path `target` points to a NUL-terminated string.
// The fields' types differ between the architectures: a cast is a no-op on one of them.
#[allow(clippy::unnecessary_cast)]
unsafe fn statfs_call(n: usize, target: usize) -> Result<StatFs> {
    #[cfg(target_arch = "x86_64")]
    let mut st = core::mem::MaybeUninit::<libc::statfs>::zeroed();
    #[cfg(target_arch = "x86_64")]
    let a = [target, st.as_mut_ptr() as usize, 0, 0, 0, 0];
    #[cfg(target_arch = "x86")]
    let mut st = core::mem::MaybeUninit::<libc::statfs64>::zeroed();
    // i386's statfs64 calls take the structure's size before it.
    #[cfg(target_arch = "x86")]
    let a = [target, core::mem::size_of::<libc::statfs64>(), st.as_mut_ptr() as usize, 0, 0, 0];
    // SAFETY: the kernel's struct statfs (x86_64) or statfs64 (i386), which libc's
    // match; for a path, the caller's promise.
    unsafe { call(n, a) }?;
    // SAFETY: zero-initialised, then filled in by the kernel.
    let st = unsafe { st.assume_init() };
    Ok(StatFs {
        // Compared as 32 bits: i686 reports it signed.
        kind: st.f_type as u32,
        bsize: st.f_bsize as u64,
        frsize: st.f_frsize as u64,
        blocks: st.f_blocks as u64,
        bfree: st.f_bfree as u64,
        bavail: st.f_bavail as u64,
    })
}

/// `fallocate(fd, mode, offset, len)` — allocates (or with PUNCH_HOLE frees) a range.
/// <https://man7.org/linux/man-pages/man2/fallocate.2.html>
pub fn fallocate(fd: i32, mode: i32, offset: i64, len: i64) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    let a = [fd as usize, mode as usize, offset as usize, len as usize, 0, 0];
    #[cfg(target_arch = "x86")]
    let a = {
        let ((ol, oh), (ll, lh)) = (split(offset), split(len));
        [fd as usize, mode as usize, ol, oh, ll, lh]
    };
    // SAFETY: integer arguments only.
    unsafe { call(nr::FALLOCATE, a) }.map(drop)
}

/// `ftruncate(fd, len)` — sets the file's size.
/// <https://man7.org/linux/man-pages/man2/ftruncate.2.html>
pub fn ftruncate(fd: i32, len: i64) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: integer arguments only.
    let r = unsafe { call(nr::FTRUNCATE, [fd as usize, len as usize, 0, 0, 0, 0]) };
    #[cfg(target_arch = "x86")]
    let r = {
        let (lo, hi) = split(len);
        // SAFETY: integer arguments only.
        unsafe { call(nr::FTRUNCATE64, [fd as usize, lo, hi, 0, 0, 0]) }
    };
    r.map(drop)
}

/// `lseek(fd, offset, whence)` — moves (or with `SEEK_CUR` and 0, reads) the offset;
/// SEEK_DATA / SEEK_HOLE find data. The engine seeks only its own descriptors, and
/// reads the caller's offset with `SEEK_CUR`, 0, which does not move it.
/// <https://man7.org/linux/man-pages/man2/lseek.2.html>
pub fn lseek(fd: i32, offset: i64, whence: i32) -> Result<i64> {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: integer arguments only.
        unsafe { call(nr::LSEEK, [fd as usize, offset as usize, whence as usize, 0, 0, 0]) }.map(|o| o as i64)
    }
    #[cfg(target_arch = "x86")]
    {
        let (lo, hi) = split(offset);
        let mut result: i64 = 0;
        // SAFETY: _llseek(fd, high, low, &result, whence) writes an loff_t to result.
        unsafe {
            call(nr::LLSEEK, [fd as usize, hi, lo, core::ptr::addr_of_mut!(result) as usize, whence as usize, 0])
        }?;
        Ok(result)
    }
}

/// `pwritev(fd, iov, count, offset)` — writes at an offset without moving the file
/// offset. <https://man7.org/linux/man-pages/man2/pwritev.2.html>
pub fn pwritev(fd: i32, iov: &[libc::iovec], offset: i64) -> Result<usize> {
    #[cfg(target_arch = "x86_64")]
    let (lo, hi) = (offset as usize, 0);
    #[cfg(target_arch = "x86")]
    let (lo, hi) = split(offset);
    // SAFETY: the iovecs describe memory the caller owns; count is the slice's length.
    unsafe { call(nr::PWRITEV, [fd as usize, iov.as_ptr() as usize, iov.len(), lo, hi, 0]) }
}

/// `sync_file_range(fd, offset, len, flags)` — writes a range back, waiting before or
/// after as `flags` say. <https://man7.org/linux/man-pages/man2/sync_file_range.2.html>
pub fn sync_file_range(fd: i32, offset: i64, len: i64, flags: u32) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    let a = [fd as usize, offset as usize, len as usize, flags as usize, 0, 0];
    #[cfg(target_arch = "x86")]
    let a = {
        let ((ol, oh), (ll, lh)) = (split(offset), split(len));
        [fd as usize, ol, oh, ll, lh, flags as usize]
    };
    // SAFETY: integer arguments only.
    unsafe { call(nr::SYNC_FILE_RANGE, a) }.map(drop)
}

/// Starts writeback of a range without waiting for it.
pub fn start_writeback(fd: i32, offset: i64, len: i64) -> Result<()> {
    sync_file_range(fd, offset, len, libc::SYNC_FILE_RANGE_WRITE)
}

/// `posix_fadvise(fd, offset, len, advice)` — how the range will be used
/// (`POSIX_FADV_DONTNEED`: its clean pages may be dropped from the cache).
/// <https://man7.org/linux/man-pages/man2/posix_fadvise.2.html>
pub fn fadvise(fd: i32, offset: i64, len: i64, advice: i32) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    let (n, a) = (nr::FADVISE64, [fd as usize, offset as usize, len as usize, advice as usize, 0, 0]);
    #[cfg(target_arch = "x86")]
    let (n, a) = {
        let ((ol, oh), (ll, lh)) = (split(offset), split(len));
        (nr::FADVISE64_64, [fd as usize, ol, oh, ll, lh, advice as usize])
    };
    // SAFETY: integer arguments only.
    unsafe { call(n, a) }.map(drop)
}

/// `pread64(fd, buf, offset)` — reads at an offset without moving the file offset.
/// <https://man7.org/linux/man-pages/man2/pread.2.html>
pub fn pread(fd: i32, buf: &mut [u8], offset: i64) -> Result<usize> {
    #[cfg(target_arch = "x86_64")]
    let a = [fd as usize, buf.as_mut_ptr() as usize, buf.len(), offset as usize, 0, 0];
    #[cfg(target_arch = "x86")]
    let a = {
        let (lo, hi) = split(offset);
        [fd as usize, buf.as_mut_ptr() as usize, buf.len(), lo, hi, 0]
    };
    // SAFETY: buf is writable for its length.
    unsafe { call(nr::PREAD64, a) }
}

/// `read(fd, buf)`. <https://man7.org/linux/man-pages/man2/read.2.html>
pub fn read(fd: i32, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: buf is writable for its length.
    unsafe { call(nr::READ, [fd as usize, buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0]) }
}

/// `read(fd, buf)` until end of file or `buf` is full, retrying EINTR; returns the
/// length read.
pub fn read_all(fd: i32, buf: &mut [u8]) -> Result<usize> {
    let mut len = 0;
    while let Some(rest) = buf.get_mut(len..).filter(|r| !r.is_empty()) {
        match read(fd, rest) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.0 == libc::EINTR => {}
            Err(e) => return Err(e),
        }
    }
    Ok(len)
}

/// `write(fd, buf)` until all is written, retrying EINTR and short writes (for log
/// lines: the engine never writes to the caller's files with it).
/// <https://man7.org/linux/man-pages/man2/write.2.html>
pub fn write_all(fd: i32, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        // SAFETY: buf is readable for its length.
        match unsafe { call(nr::WRITE, [fd as usize, buf.as_ptr() as usize, buf.len(), 0, 0, 0]) } {
            Ok(0) => return Err(Errno(libc::EIO)),
            Ok(n) => buf = buf.get(n..).unwrap_or(&[]),
            Err(e) if e.0 == libc::EINTR => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `openat(AT_FDCWD, path, flags | O_CLOEXEC)`; `path` ends with a NUL.
/// <https://man7.org/linux/man-pages/man2/open.2.html>
pub fn open(path: &[u8], flags: i32) -> Result<Fd> {
    if path.last() != Some(&0) {
        return Err(Errno(libc::EINVAL));
    }
    let flags = flags | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_LARGEFILE;
    // SAFETY: path is NUL-terminated.
    let fd = unsafe { call(nr::OPENAT, [libc::AT_FDCWD as usize, path.as_ptr() as usize, flags as usize, 0, 0, 0]) }?;
    Ok(Fd(fd as i32))
}

/// A descriptor the engine opened itself, closed when dropped: the library keeps none.
pub struct Fd(pub i32);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours; close(2) touches no memory.
        let _ = unsafe { call(nr::CLOSE, [self.0 as usize, 0, 0, 0, 0, 0]) };
    }
}

/// `readlinkat(AT_FDCWD, link, buf)`; `link` ends with a NUL. Returns the length read.
/// <https://man7.org/linux/man-pages/man2/readlink.2.html>
pub fn readlink(link: &[u8], buf: &mut [u8]) -> Result<usize> {
    if link.last() != Some(&0) {
        return Err(Errno(libc::EINVAL));
    }
    // SAFETY: link is NUL-terminated; buf is writable for its length.
    unsafe {
        call(
            nr::READLINKAT,
            [libc::AT_FDCWD as usize, link.as_ptr() as usize, buf.as_mut_ptr() as usize, buf.len(), 0, 0],
        )
    }
}

/// `ioctl(fd, request, arg)` with a pointer argument.
///
/// # Safety
/// `arg` must point to what `request` reads or writes.
pub unsafe fn ioctl(fd: i32, request: u32, arg: *mut core::ffi::c_void) -> Result<usize> {
    // SAFETY: the caller's promise.
    unsafe { call(nr::IOCTL, [fd as usize, request as usize, arg as usize, 0, 0, 0]) }
}

/// `FS_IOC_GETFLAGS` / `FS_IOC_SETFLAGS`: `_IOR('f', 1, long)` and `_IOW('f', 2, long)`,
/// so they differ with the size of a long; the kernel reads and writes an int either way.
#[cfg(target_arch = "x86_64")]
const FS_IOC_GETFLAGS: u32 = 0x8008_6601;
#[cfg(target_arch = "x86_64")]
const FS_IOC_SETFLAGS: u32 = 0x4008_6602;
#[cfg(target_arch = "x86")]
const FS_IOC_GETFLAGS: u32 = 0x8004_6601;
#[cfg(target_arch = "x86")]
const FS_IOC_SETFLAGS: u32 = 0x4004_6602;

/// `FS_NOCOW_FL` from `<linux/fs.h>`: btrfs overwrites such a file in place.
pub const FS_NOCOW_FL: i32 = 0x0080_0000;
/// `FS_APPEND_FL`: writes may only append (`chattr +a`).
pub const FS_APPEND_FL: i32 = 0x0000_0020;
/// `FS_IMMUTABLE_FL`: no change at all (`chattr +i`).
pub const FS_IMMUTABLE_FL: i32 = 0x0000_0010;
/// `FS_EXTENT_FL`: the inode maps its blocks with extents (ext4; ext2/3 map them
/// through indirect blocks).
pub const FS_EXTENT_FL: i32 = 0x0008_0000;

/// `ioctl(fd, FS_IOC_GETFLAGS)` — the inode flags (chattr's attributes).
/// <https://man7.org/linux/man-pages/man2/ioctl_iflags.2.html>
pub fn inode_flags(fd: i32) -> Result<i32> {
    let mut flags: i32 = 0;
    // SAFETY: the kernel writes an int through the pointer.
    unsafe { ioctl(fd, FS_IOC_GETFLAGS, core::ptr::addr_of_mut!(flags).cast()) }?;
    Ok(flags)
}

/// `ioctl(fd, FS_IOC_SETFLAGS)` — sets the inode flags.
pub fn set_inode_flags(fd: i32, flags: i32) -> Result<()> {
    let mut flags = flags;
    // SAFETY: the kernel reads an int through the pointer.
    unsafe { ioctl(fd, FS_IOC_SETFLAGS, core::ptr::addr_of_mut!(flags).cast()) }.map(drop)
}

/// `fgetxattr(fd, name, NULL, 0)` — whether the file has the extended attribute `name`
/// (NUL-terminated): only the value's size is asked for. A filesystem without
/// extended attributes (EOPNOTSUPP) has none.
/// <https://man7.org/linux/man-pages/man2/fgetxattr.2.html>
pub fn has_xattr(fd: i32, name: &[u8]) -> Result<bool> {
    if name.last() != Some(&0) {
        return Err(Errno(libc::EINVAL));
    }
    // SAFETY: name is NUL-terminated; a NULL buffer of size 0 asks for the size alone.
    match unsafe { call(nr::FGETXATTR, [fd as usize, name.as_ptr() as usize, 0, 0, 0, 0]) } {
        Ok(_) => Ok(true),
        Err(e) if e.0 == libc::ENODATA || e.0 == libc::EOPNOTSUPP => Ok(false),
        Err(e) => Err(e),
    }
}

/// The soft `RLIMIT_FSIZE` of process `pid` (0: this one): the largest file it may
/// write; None when it cannot be read.
/// <https://man7.org/linux/man-pages/man2/getrlimit.2.html>
pub fn fsize_limit(pid: u32) -> Option<u64> {
    let mut lim = [0u64; 2];
    // SAFETY: prlimit64(pid, RLIMIT_FSIZE, NULL, &old) writes two u64s.
    let r =
        unsafe { call(nr::PRLIMIT64, [pid as usize, libc::RLIMIT_FSIZE as usize, 0, lim.as_mut_ptr() as usize, 0, 0]) };
    r.ok().map(|_| lim[0])
}

/// The process id. <https://man7.org/linux/man-pages/man2/getpid.2.html>
pub fn getpid() -> u32 {
    // SAFETY: no arguments.
    unsafe { syscall6(nr::GETPID, [0; 6]) as u32 }
}

/// Whether the effective user is root. <https://man7.org/linux/man-pages/man2/geteuid.2.html>
pub fn is_root() -> bool {
    #[cfg(target_arch = "x86_64")]
    let n = nr::GETEUID;
    #[cfg(target_arch = "x86")]
    let n = nr::GETEUID32;
    // SAFETY: no arguments.
    unsafe { syscall6(n, [0; 6]) == 0 }
}

/// CLOCK_MONOTONIC in nanoseconds (0 if unavailable).
/// <https://man7.org/linux/man-pages/man2/clock_gettime.2.html>
pub fn monotonic_ns() -> u64 {
    // The kernel's struct timespec: two longs.
    let mut ts = [0usize; 2];
    // SAFETY: ts has room for a struct timespec of this architecture.
    match unsafe { call(nr::CLOCK_GETTIME, [libc::CLOCK_MONOTONIC as usize, ts.as_mut_ptr() as usize, 0, 0, 0, 0]) } {
        Ok(_) => (ts[0] as u64).saturating_mul(1_000_000_000).saturating_add(ts[1] as u64),
        Err(_) => 0,
    }
}

/// Anonymous private memory of `len` bytes, zero-filled: the slow path's scratch space,
/// so that it fits in a small stack. <https://man7.org/linux/man-pages/man2/mmap.2.html>
pub fn map_anonymous(len: usize) -> Result<*mut u8> {
    let prot = (libc::PROT_READ | libc::PROT_WRITE) as usize;
    let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as usize;
    #[cfg(target_arch = "x86_64")]
    let n = nr::MMAP;
    #[cfg(target_arch = "x86")]
    let n = nr::MMAP2;
    // SAFETY: a new anonymous mapping touches no existing memory.
    unsafe { call(n, [0, len, prot, flags, usize::MAX, 0]) }.map(|p| p as *mut u8)
}

/// Unmaps what [`map_anonymous`] returned.
///
/// # Safety
/// `p` and `len` are a mapping from `map_anonymous` that nothing refers to any more.
pub unsafe fn unmap(p: *mut u8, len: usize) {
    // SAFETY: the caller's promise.
    let _ = unsafe { call(nr::MUNMAP, [p as usize, len, 0, 0, 0, 0]) };
}

/// A shared, writable mapping of `len` bytes of `fd` from `offset` (a multiple of the
/// page size): the zero fill's window onto the file. Its address is a multiple of
/// `align` (a power of two, 0 for any): where `offset` is one too, the kernel may map a
/// large folio of the file with one page-table entry. The space is reserved first
/// (inaccessible, `align` longer) and the file mapped over its aligned part, so no other
/// mapping of the process is ever touched.
/// <https://man7.org/linux/man-pages/man2/mmap.2.html>
pub fn map_shared(fd: i32, len: usize, offset: i64, align: usize) -> Result<*mut u8> {
    let prot = (libc::PROT_READ | libc::PROT_WRITE) as usize;
    #[cfg(target_arch = "x86_64")]
    let (n, off) = (nr::MMAP, offset as usize);
    #[cfg(target_arch = "x86")]
    let (n, off) = (nr::MMAP2, (offset / 4096) as usize);
    if align == 0 {
        // SAFETY: a new mapping, placed by the kernel, touches no existing memory.
        return unsafe { call(n, [0, len, prot, libc::MAP_SHARED as usize, fd as usize, off]) }.map(|p| p as *mut u8);
    }
    let span = len.checked_add(align).ok_or(Errno(libc::ENOMEM))?;
    let reserve = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE) as usize;
    // SAFETY: as above.
    let r = unsafe { call(n, [0, span, libc::PROT_NONE as usize, reserve, usize::MAX, 0]) }?;
    let at = (r + align - 1) & !(align - 1);
    let fixed = (libc::MAP_SHARED | libc::MAP_FIXED) as usize;
    // SAFETY: `[at, at + len)` lies within the reservation just made, which is ours.
    let mapped = unsafe { call(n, [at, len, prot, fixed, fd as usize, off]) };
    // SAFETY: the reservation's parts before and after the file's mapping (or all of it,
    // when that failed), which nothing refers to.
    unsafe {
        match mapped {
            Ok(_) => {
                if at > r {
                    unmap(r as *mut u8, at - r);
                }
                if r + span > at + len {
                    unmap((at + len) as *mut u8, r + span - (at + len));
                }
            }
            Err(_) => unmap(r as *mut u8, span),
        }
    }
    mapped.map(|p| p as *mut u8)
}

/// `madvise(p, len, advice)`. <https://man7.org/linux/man-pages/man2/madvise.2.html>
///
/// # Safety
/// `[p, p + len)` is a mapping of the caller's own, and the advice does not invalidate
/// memory anyone still uses.
pub unsafe fn madvise(p: *mut u8, len: usize, advice: i32) -> Result<()> {
    // SAFETY: the caller's promise.
    unsafe { call(nr::MADVISE, [p as usize, len, advice as usize, 0, 0, 0]) }.map(drop)
}

/// `ioctl(fd, FS_IOC_FSGETXATTR)`'s extent size hint (xfs), in bytes; 0 where none.
/// <https://man7.org/linux/man-pages/man2/ioctl_xfs_fsgetxattr.2.html>
pub fn extent_size_hint(fd: i32) -> u64 {
    /// `_IOR('X', 31, struct fsxattr)`; the struct is 28 bytes on both architectures.
    const FS_IOC_FSGETXATTR: u32 = 0x801C_581F;
    let mut fsx = [0u32; 7];
    // SAFETY: the kernel writes a struct fsxattr (28 bytes) through the pointer.
    match unsafe { ioctl(fd, FS_IOC_FSGETXATTR, fsx.as_mut_ptr().cast()) } {
        Ok(_) => u64::from(fsx[1]),
        Err(_) => 0,
    }
}

/// One datagram to the AF_UNIX socket at `path` (e.g. `/dev/log`), from a socket opened
/// for it and closed at once. Never blocks: a full or absent log socket drops the line.
pub fn send_datagram(path: &[u8], msg: &[u8]) -> Result<()> {
    // struct sockaddr_un: sa_family_t, then up to 108 bytes of path.
    let mut addr = [0u8; 110];
    let family = (libc::AF_UNIX as u16).to_ne_bytes();
    addr[0] = family[0];
    addr[1] = family[1];
    let n = path.len().min(addr.len() - 3);
    for (d, s) in addr[2..].iter_mut().zip(path.iter().take(n)) {
        *d = *s;
    }
    let addr_len = 2 + n + 1;
    let kind = (libc::SOCK_DGRAM | libc::SOCK_CLOEXEC) as usize;
    let flags = (libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) as usize;
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: integer arguments.
        let fd = Fd(unsafe { call(nr::SOCKET, [libc::AF_UNIX as usize, kind, 0, 0, 0, 0]) }? as i32);
        // SAFETY: msg and addr are readable for the lengths given.
        unsafe {
            call(nr::SENDTO, [fd.0 as usize, msg.as_ptr() as usize, msg.len(), flags, addr.as_ptr() as usize, addr_len])
        }
        .map(drop)
    }
    #[cfg(target_arch = "x86")]
    {
        // socketcall(2): i386 kernels before 4.3 have no separate socket system calls.
        const SYS_SOCKET: usize = 1;
        const SYS_SENDTO: usize = 11;
        let args = [libc::AF_UNIX as usize, kind, 0];
        // SAFETY: socketcall reads three words of arguments.
        let fd = Fd(unsafe { call(nr::SOCKETCALL, [SYS_SOCKET, args.as_ptr() as usize, 0, 0, 0, 0]) }? as i32);
        let args = [fd.0 as usize, msg.as_ptr() as usize, msg.len(), flags, addr.as_ptr() as usize, addr_len];
        // SAFETY: socketcall reads six words; msg and addr are readable for their lengths.
        unsafe { call(nr::SOCKETCALL, [SYS_SENDTO, args.as_ptr() as usize, 0, 0, 0, 0]) }.map(drop)
    }
}

/// Whether the kernel started this process in secure-execution mode (setuid, setgid,
/// file capabilities): then the environment is not to be trusted. Reads the auxiliary
/// vector; no system call.
/// <https://man7.org/linux/man-pages/man3/getauxval.3.html>
pub fn secure_execution() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector (GLIBC_2.16).
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::io::AsRawFd;

    #[test]
    fn libc_structures_are_the_kernels() {
        #[cfg(target_arch = "x86_64")]
        assert_eq!((core::mem::size_of::<libc::stat>(), core::mem::size_of::<libc::statfs>()), (144, 120));
        #[cfg(target_arch = "x86")]
        assert_eq!((core::mem::size_of::<libc::stat64>(), core::mem::size_of::<libc::statfs64>()), (96, 84));
    }

    #[test]
    fn fstat_and_fstatfs_agree_with_std() {
        let f = std::fs::File::open("/proc/self/exe").unwrap();
        let (ours, theirs) = (fstat(f.as_raw_fd()).unwrap(), f.metadata().unwrap());
        assert_eq!(
            (ours.dev, ours.ino, ours.size, ours.blocks),
            (theirs.dev(), theirs.ino(), theirs.size() as i64, theirs.blocks() as i64)
        );
        assert_eq!((ours.mode, ours.uid), (theirs.mode(), theirs.uid()));
        let fs = fstatfs(f.as_raw_fd()).unwrap();
        assert!(fs.bsize > 0 && fs.blocks > 0 && fs.bfree >= fs.bavail);
        let by_path = statfs(b"/proc/self/exe\0").unwrap();
        assert_eq!(
            (by_path.kind, by_path.bsize, by_path.frsize, by_path.blocks),
            (fs.kind, fs.bsize, fs.frsize, fs.blocks)
        );
        assert_eq!(statfs(b"/proc/self/exe").unwrap_err().0, libc::EINVAL);
        assert_eq!(getfl(f.as_raw_fd()).unwrap() & libc::O_ACCMODE, libc::O_RDONLY);
    }

    #[test]
    fn writeback_and_advice_take_64_bit_ranges() {
        use std::os::unix::fs::FileExt;
        let path = std::env::temp_dir().join(format!("nosparse-sys-test-{}", std::process::id()));
        let f = std::fs::File::options().read(true).write(true).create_new(true).open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let (fd, at) = (f.as_raw_fd(), 1_i64 << 32);
        f.write_all_at(&[1; 8192], at as u64).unwrap();
        let wait = libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        assert_eq!(sync_file_range(fd, at, 8192, wait), Ok(()));
        assert_eq!(start_writeback(fd, at, 8192), Ok(()));
        assert_eq!(fadvise(fd, at, 8192, libc::POSIX_FADV_DONTNEED), Ok(()));
        assert_eq!(sync_file_range(fd, -1, 8192, wait), Err(Errno(libc::EINVAL)));
        assert_eq!(fadvise(fd, at, -1, libc::POSIX_FADV_DONTNEED), Err(Errno(libc::EINVAL)));
        assert_eq!(fadvise(fd, at, 8192, 999), Err(Errno(libc::EINVAL)));
    }
}
