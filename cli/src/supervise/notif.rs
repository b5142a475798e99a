//! One notification: which call it is (from its registers only), the program's file
//! (a duplicate of its descriptor), whether nosparse acts on it, and the answer.
//!
//! The real call first, allocation after: for a call the engine acts on, the supervisor
//! makes the program's call itself, on the duplicated descriptor — the same open file
//! description, so the same file, offset, flags and size rules — then the engine
//! allocates what the successful call made a hole, and the answer is the call's own
//! result. Nothing is ever allocated before the call, so a failed call leaves nothing
//! to undo: the file is exactly as the failed call left it. Every other candidate is
//! answered CONTINUE and runs in the program's own context, exactly as it made it.
//!
//! An emulated call differs from the program's own only where the kernel looks at the
//! calling task rather than the file: an LSM's label and fanotify/audit see the
//! supervisor; the page cache it dirties is charged to the supervisor's cgroup; and as
//! root it may use a filesystem's reserved blocks (a full disk) where a program that
//! dropped privileges would get ENOSPC. Calls where the caller's identity changes the
//! result are not emulated: RLIMIT_FSIZE (the program's and the supervisor's own),
//! O_DIRECT, 32-bit descriptors without O_LARGEFILE, set-user-ID/set-group-ID files and
//! files with file capabilities (a write by a task without CAP_FSETID strips them).
//!
//! Races: the descriptor number is looked up while the program's thread waits in its
//! call, so the call acts on the file that number named at a moment during the call,
//! as the kernel's own lookup would; the byte is read from the program's memory at
//! such a moment too. `SECCOMP_IOCTL_NOTIF_ID_VALID` is asked after the lookups and
//! before acting: if the thread died (or the notification was otherwise cancelled),
//! its pid and descriptor numbers may name something else by now, and nothing is done.

use super::adapter::{self, Prepared, Target};
use crate::seccomp::{self, nr, Answer, Data, Notif, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64};
use nosparse_core::config::{Config, Programs};
use nosparse_core::engine::Space;
use nosparse_core::error::Errno;
use nosparse_core::log;
use nosparse_core::policy::Skip;
use nosparse_core::settings::Trigger;
use nosparse_core::sys;
use std::io::Read;

/// A candidate call, decoded from its registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Pwrite { fd: i32, buf: u64, offset: i64 },
    Ftruncate { fd: i32, len: i64 },
    Write { fd: i32, buf: u64 },
}

impl Op {
    fn fd(self) -> i32 {
        match self {
            Op::Pwrite { fd, .. } | Op::Ftruncate { fd, .. } | Op::Write { fd, .. } => fd,
        }
    }
}

/// The call in `d`, and whether it is a 32-bit (i386) one.
pub fn decode(d: &Data) -> Option<(Op, bool)> {
    let a = d.args;
    let fd = a[0] as u32 as i32;
    let pair = |lo: u64, hi: u64| (u64::from(lo as u32) | (u64::from(hi as u32) << 32)) as i64;
    let op = match (d.arch, d.nr as u32) {
        (AUDIT_ARCH_X86_64, nr::X86_64_PWRITE64) => Op::Pwrite { fd, buf: a[1], offset: a[3] as i64 },
        (AUDIT_ARCH_X86_64, nr::X86_64_FTRUNCATE) => Op::Ftruncate { fd, len: a[1] as i64 },
        (AUDIT_ARCH_X86_64, nr::X86_64_WRITE) => Op::Write { fd, buf: a[1] },
        (AUDIT_ARCH_I386, nr::I386_PWRITE64) => Op::Pwrite { fd, buf: a[1] as u32 as u64, offset: pair(a[3], a[4]) },
        (AUDIT_ARCH_I386, nr::I386_FTRUNCATE) => Op::Ftruncate { fd, len: i64::from(a[1] as u32 as i32) },
        (AUDIT_ARCH_I386, nr::I386_FTRUNCATE64) => Op::Ftruncate { fd, len: pair(a[1], a[2]) },
        (AUDIT_ARCH_I386, nr::I386_WRITE) => Op::Write { fd, buf: a[1] as u32 as u64 },
        _ => return None,
    };
    Some((op, d.arch == AUDIT_ARCH_I386))
}

/// What the supervisor knows for every notification.
pub struct Supervisor {
    pub listener: i32,
    /// The filter has WAIT_KILLABLE_RECV: calls may be emulated. Without it a signal
    /// could interrupt the program's wait after the supervisor made its call, so every
    /// call is continued and nothing allocated.
    pub emulate: bool,
    pub cfg: Config,
    /// The engine's scratch memory (tens of KiB), one for every notification.
    pub space: Box<Space>,
    /// Processes whose descriptors this supervisor may not take, already logged.
    pub unreachable: Vec<u32>,
}

impl Supervisor {
    /// Logs, once per process, that `tgid`'s calls are left alone because its
    /// descriptors are out of reach.
    fn out_of_reach(&mut self, tgid: u32) {
        if self.cfg.disabled || self.unreachable.contains(&tgid) {
            return;
        }
        if self.unreachable.len() >= 256 {
            self.unreachable.clear();
        }
        self.unreachable.push(tgid);
        let name = comm(tgid);
        let mut buf = [0u8; log::LINE_MAX];
        log::Line::new(&mut buf, self.cfg.log, log::Level::Warning, log::Ident::Of { name: &name, pid: tgid })
            .lit("left alone: the program made itself not dumpable, and only a root supervisor may reach its files")
            .emit();
    }
}

/// The answer to `n`; None when the calling thread is gone (nothing to answer).
pub fn handle(s: &mut Supervisor, n: &Notif) -> Option<Answer> {
    let Some((op, compat)) = decode(&n.data) else { return Some(Answer::Continue) };
    if !s.emulate {
        return Some(Answer::Continue);
    }
    let tid = n.pid;
    let Some(tgid) = tgid_of(tid) else { return Some(Answer::Continue) };
    let Ok(pidfd) = seccomp::pidfd_open(tgid) else { return Some(Answer::Continue) };
    // A program the settings leave out is left alone before anything else (one that made
    // itself not dumpable hides its /proc/PID/exe: taken as left out).
    if s.cfg.programs != Programs::Every {
        let exe = std::fs::read_link(format!("/proc/{tgid}/exe")).ok();
        let exe = exe.as_ref().map(|p| std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()));
        if !s.cfg.allows_program(exe) {
            return Some(Answer::Continue);
        }
    }
    let dup = match seccomp::pidfd_getfd(pidfd.0, op.fd()) {
        Ok(dup) => dup,
        Err(e) => {
            // EPERM: a program that made itself not dumpable, under a supervisor that
            // is not root (said once, unless NOSPARSE_MATCH might have left the file out:
            // its path is hidden too). EBADF: the program's own call says so.
            if e.0 == libc::EPERM && !s.cfg.matcher.is_set() {
                s.out_of_reach(tgid);
            }
            return Some(Answer::Continue);
        }
    };
    let (trigger, offset, end) = match op {
        Op::Pwrite { offset, .. } => (Trigger::Pwrite, offset, offset.checked_add(1)),
        Op::Ftruncate { len, .. } => (Trigger::Ftruncate, len.saturating_sub(1), Some(len)),
        Op::Write { .. } => match sys::lseek(dup.0, 0, libc::SEEK_CUR) {
            Ok(at) => (Trigger::Write, at, at.checked_add(1)),
            // A pipe, socket or terminal.
            Err(_) => return Some(Answer::Continue),
        },
    };
    let Some(end) = end.filter(|&e| e > 0) else { return Some(Answer::Continue) };
    let Some(fsize_limit) = fsize_limit_of(tid) else { return Some(Answer::Continue) };
    let name = comm(tgid);
    let target = Target { fd: dup.0, program_fd: op.fd(), name: &name, pid: tgid };
    if let Some(why) = inexact(dup.0, op, compat, end as u64, fsize_limit) {
        if s.cfg.debug {
            adapter::left_alone(&target, &s.cfg, trigger, offset, why, &mut s.space);
        }
        return Some(Answer::Continue);
    }
    let byte = match op {
        Op::Pwrite { buf, .. } | Op::Write { buf, .. } => match read_byte(tid, buf) {
            Some(b) => Some(b),
            // Unreadable: the program's own call gives EFAULT.
            None => return Some(Answer::Continue),
        },
        Op::Ftruncate { .. } => None,
    };
    // The lookups so far (tid, tgid, fd) are the program's only while its thread still
    // waits in the call: checked before the engine acts on the file, and again below.
    if !seccomp::id_valid(s.listener, n.id) {
        return None;
    }
    let prepared = adapter::prepare(&target, &s.cfg, trigger, offset, &mut s.space);
    if matches!(prepared, Prepared::Untouched) {
        return Some(Answer::Continue);
    }
    // Everything above was looked up by numbers (tid, tgid, fd) that are the program's
    // only while its thread still waits in the call.
    if !seccomp::id_valid(s.listener, n.id) {
        return None;
    }
    match prepared {
        Prepared::Untouched => Some(Answer::Continue),
        Prepared::Fail(e) => Some(Answer::Done(Err(e))),
        Prepared::Act(work) => {
            let result = make_call(dup.0, op, byte.unwrap_or(0));
            adapter::finish(&target, &s.cfg, &work, result.unwrap_or_else(|e| -i64::from(e.0)), &mut s.space);
            Some(Answer::Done(result))
        }
    }
}

/// The kernel's O_LARGEFILE as F_GETFL reports it on x86 (libc's is 0 for 64-bit
/// programs, which always have it).
const KERNEL_O_LARGEFILE: i32 = 0o100_000;

/// Why the supervisor's call on `fd` might not give exactly what the program's would (a
/// rule that depends on the calling task applies); None: it gives the same.
fn inexact(fd: i32, op: Op, compat: bool, end: u64, fsize_limit: u64) -> Option<Skip> {
    let (Ok(flags), Ok(st)) = (sys::getfl(fd), sys::fstat(fd)) else { return Some(Skip::NotRegular) };
    // A one-byte O_DIRECT write fails (EINVAL) in the program; not ours to decide how.
    let direct = flags & libc::O_DIRECT != 0 && !matches!(op, Op::Ftruncate { .. });
    // A 32-bit program's descriptor without O_LARGEFILE stops at 2 GiB - 1 (EFBIG).
    let small = compat && flags & KERNEL_O_LARGEFILE == 0 && end > i32::MAX as u64;
    // RLIMIT_FSIZE: the program's (its SIGXFSZ is its own) and ours.
    let limit = end > fsize_limit || sys::fsize_limit(0).map_or(true, |ours| end > ours);
    // A write by a task without CAP_FSETID clears these; ours might not.
    let privileged = st.mode & (libc::S_ISUID | libc::S_ISGID) != 0 || has_file_caps(fd);
    [
        (!st.is_regular(), Skip::NotRegular),
        (direct, Skip::Direct),
        (small, Skip::NotLargeFile),
        (limit, Skip::FileSizeLimit),
        (privileged, Skip::CallerDependent),
    ]
    .into_iter()
    .find_map(|(applies, why)| applies.then_some(why))
}

/// Whether the file has a `security.capability` extended attribute.
fn has_file_caps(fd: i32) -> bool {
    // SAFETY: a size query: no buffer.
    let r = unsafe { libc::fgetxattr(fd, c"security.capability".as_ptr(), std::ptr::null_mut(), 0) };
    if r >= 0 {
        return true;
    }
    let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    // Unknown: take it as present and let the program make its own call.
    !(e == libc::ENODATA || e == libc::EOPNOTSUPP)
}

/// The program's call, made on the duplicated descriptor.
fn make_call(fd: i32, op: Op, byte: u8) -> Result<i64, Errno> {
    let b = [byte];
    let iov = [libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: 1 }];
    match op {
        Op::Pwrite { offset, .. } => sys::pwritev(fd, &iov, offset).map(|n| n as i64),
        Op::Ftruncate { len, .. } => sys::ftruncate(fd, len).map(|()| 0),
        Op::Write { .. } => {
            // SAFETY: b is one readable byte.
            let r = unsafe { libc::write(fd, b.as_ptr().cast(), 1) };
            if r < 0 {
                Err(Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)))
            } else {
                Ok(r as i64)
            }
        }
    }
}

/// Process `tgid`'s short name, for its log lines (empty when it cannot be read).
fn comm(tgid: u32) -> Vec<u8> {
    let mut name = std::fs::read(format!("/proc/{tgid}/comm")).unwrap_or_default();
    if name.last() == Some(&b'\n') {
        name.pop();
    }
    name
}

/// The thread group (process) of thread `tid`, from `/proc/TID/status`.
fn tgid_of(tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("Tgid:")).and_then(|v| v.trim().parse().ok())
}

/// The soft RLIMIT_FSIZE of `pid`'s process.
fn fsize_limit_of(pid: u32) -> Option<u64> {
    let mut old = libc::rlimit64 { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: old is a struct rlimit64 the kernel writes; no new limit is set.
    let r = unsafe { libc::prlimit64(pid as libc::pid_t, libc::RLIMIT_FSIZE, std::ptr::null(), &mut old) };
    (r == 0).then_some(old.rlim_cur)
}

/// The byte at `addr` in thread `tid`'s memory; None when it cannot be read there.
fn read_byte(tid: u32, addr: u64) -> Option<u8> {
    let mut b = [0u8];
    if let Ok(remote) = usize::try_from(addr) {
        let local = libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: 1 };
        let remote = libc::iovec { iov_base: remote as *mut libc::c_void, iov_len: 1 };
        // SAFETY: local is one writable byte; remote is only read by the kernel.
        let r = unsafe { libc::process_vm_readv(tid as libc::pid_t, &local, 1, &remote, 1, 0) };
        return (r == 1).then_some(b[0]);
    }
    // A 32-bit supervisor and an address above 4 GiB: through /proc/TID/mem.
    let mut f = std::fs::File::open(format!("/proc/{tid}/mem")).ok()?;
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(addr)).ok()?;
    (f.read(&mut b).ok()? == 1).then_some(b[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(arch: u32, nr: u32, args: [u64; 6]) -> Data {
        Data { nr: nr as i32, arch, ip: 0, args }
    }

    #[test]
    fn calls_are_decoded_from_their_registers() {
        let x = |nr, args| decode(&data(AUDIT_ARCH_X86_64, nr, args));
        let i = |nr, args| decode(&data(AUDIT_ARCH_I386, nr, args));
        assert_eq!(
            x(nr::X86_64_PWRITE64, [0xffff_ffff_0000_0003, 0x7f00_0000_1000, 1, 1 << 40, 0, 0]),
            Some((Op::Pwrite { fd: 3, buf: 0x7f00_0000_1000, offset: 1 << 40 }, false))
        );
        assert_eq!(
            i(nr::I386_PWRITE64, [4, 0x0804_1000, 1, 0xffff_ffff, 1, 0]),
            Some((Op::Pwrite { fd: 4, buf: 0x0804_1000, offset: (1 << 33) - 1 }, true))
        );
        assert_eq!(i(nr::I386_FTRUNCATE, [4, 0xffff_ffff, 0, 0, 0, 0]), Some((Op::Ftruncate { fd: 4, len: -1 }, true)));
        assert_eq!(i(nr::I386_FTRUNCATE64, [4, 0, 3, 0, 0, 0]), Some((Op::Ftruncate { fd: 4, len: 3 << 32 }, true)));
        assert_eq!(x(nr::X86_64_WRITE, [1, 8, 1, 0, 0, 0]), Some((Op::Write { fd: 1, buf: 8 }, false)));
        assert_eq!(x(nr::I386_PWRITE64, [0; 6]), None);
        assert_eq!(decode(&data(0xc000_00b7, nr::X86_64_PWRITE64, [0; 6])), None);
    }
}
