//! The kernel's seccomp user notification, as the supervisor uses it: the BPF filter
//! that lets every call through except the candidates, installing it with a listener,
//! receiving and answering notifications, and the pidfd calls that reach the program's
//! descriptors. Modelled on the kernel's `samples/seccomp/user-trap.c`.
//! <https://man7.org/linux/man-pages/man2/seccomp_unotify.2.html>

use nosparse_core::error::Errno;
use std::io;

/// `seccomp(2)`'s number: the same call on both architectures the CLI is built for.
#[cfg(target_arch = "x86_64")]
const SYS_SECCOMP: libc::c_long = 317;
#[cfg(target_arch = "x86")]
const SYS_SECCOMP: libc::c_long = 354;
/// `pidfd_open(2)` (5.3) and `pidfd_getfd(2)` (5.6): the same numbers on both.
const SYS_PIDFD_OPEN: libc::c_long = 434;
const SYS_PIDFD_GETFD: libc::c_long = 438;

const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
/// Returns a listener fd for the filter's notifications (5.0).
const FLAG_NEW_LISTENER: libc::c_ulong = 1 << 3;
/// Once the supervisor has received a notification, only a fatal signal interrupts the
/// waiting program (5.19): an emulated call is never also interrupted.
const FLAG_WAIT_KILLABLE_RECV: libc::c_ulong = 1 << 5;

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
/// Answer: run the call as the program made it (5.5).
const USER_NOTIF_FLAG_CONTINUE: u32 = 1;

/// `_IOWR('!', 0, struct seccomp_notif)`, `_IOWR('!', 1, struct seccomp_notif_resp)`,
/// `_IOW('!', 2, __u64)`.
const IOCTL_NOTIF_RECV: libc::c_ulong = 0xc050_2100;
const IOCTL_NOTIF_SEND: libc::c_ulong = 0xc018_2101;
const IOCTL_NOTIF_ID_VALID: libc::c_ulong = 0x4008_2102;

/// `seccomp_data.arch` of the two ABIs the filter looks at.
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// x32 system calls have this bit in their number (and x86_64's arch).
#[cfg(test)]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The system calls the filter picks out, by ABI.
pub mod nr {
    pub const X86_64_WRITE: u32 = 1;
    pub const X86_64_PWRITE64: u32 = 18;
    pub const X86_64_FTRUNCATE: u32 = 77;
    pub const I386_WRITE: u32 = 4;
    pub const I386_FTRUNCATE: u32 = 93;
    pub const I386_PWRITE64: u32 = 181;
    pub const I386_FTRUNCATE64: u32 = 194;
}

/// `struct seccomp_data`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Data {
    pub nr: i32,
    pub arch: u32,
    pub ip: u64,
    pub args: [u64; 6],
}

/// `struct seccomp_notif`: one call waiting for the supervisor's answer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Notif {
    pub id: u64,
    /// The calling thread's id, in the supervisor's pid namespace.
    pub pid: u32,
    pub flags: u32,
    pub data: Data,
}

/// `struct seccomp_notif_resp`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct Resp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

/// The supervisor's answer to a notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Run the call in the program, as it made it.
    Continue,
    /// The call was made for the program: this is its result (`Err`: its errno).
    Done(Result<i64, Errno>),
}

/// The calls the filter sends to the supervisor, and from where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Picks {
    /// A one-byte `pwrite64` at or past this offset (`NOSPARSE_MIN_SIZE - 1`); None: off.
    pub pwrite_from: Option<u64>,
    /// `ftruncate`/`ftruncate64` to at least this length (`NOSPARSE_MIN_SIZE`); None: off.
    pub ftruncate_from: Option<u64>,
    /// Every one-byte `write` (the offset is not in a register).
    pub write: bool,
}

/// A label in the filter: where a jump lands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum L {
    Next,
    Allow,
    Notify,
    X86_64,
    I386,
    Pwrite64,
    Ftruncate64,
    Write64,
    Pwrite32,
    Ftruncate32,
    FtruncateLarge32,
    Write32,
}

const LD_ABS_W: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGT: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JSET: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// Offsets in `struct seccomp_data` (little-endian: an argument's low word first).
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
fn arg_lo(i: u32) -> u32 {
    16 + 8 * i
}
fn arg_hi(i: u32) -> u32 {
    16 + 8 * i + 4
}

/// A filter being written with labels, resolved to relative jumps at the end.
#[derive(Default)]
struct Asm {
    code: Vec<(u16, u32, L, L)>,
    labels: Vec<(L, usize)>,
}

impl Asm {
    fn label(&mut self, l: L) {
        self.labels.push((l, self.code.len()));
    }
    fn ld(&mut self, off: u32) {
        self.code.push((LD_ABS_W, off, L::Next, L::Next));
    }
    fn jump(&mut self, op: u16, k: u32, t: L, f: L) {
        self.code.push((op, k, t, f));
    }
    fn ret(&mut self, k: u32) {
        self.code.push((RET_K, k, L::Next, L::Next));
    }
    /// The 64-bit value in the words at `lo`, `hi`, as a signed offset: to `Notify` when
    /// it is at least `from`, else to `Allow` (a negative one fails in the program).
    fn at_least(&mut self, lo: u32, hi: u32, from: u64) {
        let (from_lo, from_hi) = (from as u32, (from >> 32) as u32);
        self.ld(hi);
        self.jump(JSET, 0x8000_0000, L::Allow, L::Next);
        self.jump(JGT, from_hi, L::Notify, L::Next);
        self.jump(JEQ, from_hi, L::Next, L::Allow);
        self.ld(lo);
        self.jump(JGE, from_lo, L::Notify, L::Allow);
    }
    fn finish(self) -> Vec<libc::sock_filter> {
        let at = |l: L, i: usize| -> u8 {
            if l == L::Next {
                return 0;
            }
            let (_, pos) = self.labels.iter().find(|(x, _)| *x == l).copied().expect("every label is placed");
            u8::try_from(pos - i - 1).expect("the filter is short and jumps only forward")
        };
        self.code
            .iter()
            .enumerate()
            .map(|(i, &(code, k, t, f))| libc::sock_filter { code, jt: at(t, i), jf: at(f, i), k })
            .collect()
    }
}

/// The filter: every call is allowed in the kernel except the candidates of `picks`,
/// for x86_64 and i386 programs (x32 and any other ABI: allowed).
pub fn filter(picks: &Picks) -> Vec<libc::sock_filter> {
    let mut a = Asm::default();
    a.ld(OFF_ARCH);
    a.jump(JEQ, AUDIT_ARCH_X86_64, L::X86_64, L::Next);
    a.jump(JEQ, AUDIT_ARCH_I386, L::I386, L::Allow);

    a.label(L::X86_64);
    // x32 calls (X32_SYSCALL_BIT set) never equal these numbers, so they are allowed.
    a.ld(OFF_NR);
    if picks.pwrite_from.is_some() {
        a.jump(JEQ, nr::X86_64_PWRITE64, L::Pwrite64, L::Next);
    }
    if picks.ftruncate_from.is_some() {
        a.jump(JEQ, nr::X86_64_FTRUNCATE, L::Ftruncate64, L::Next);
    }
    if picks.write {
        a.jump(JEQ, nr::X86_64_WRITE, L::Write64, L::Next);
    }
    a.ret(RET_ALLOW);
    if let Some(from) = picks.pwrite_from {
        // pwrite64(fd, buf, count, offset): count == 1, offset >= from.
        // The low word first: it settles nearly every pwrite64.
        a.label(L::Pwrite64);
        a.ld(arg_lo(2));
        a.jump(JEQ, 1, L::Next, L::Allow);
        a.ld(arg_hi(2));
        a.jump(JEQ, 0, L::Next, L::Allow);
        a.at_least(arg_lo(3), arg_hi(3), from);
    }
    if let Some(from) = picks.ftruncate_from {
        // ftruncate(fd, length): length >= from.
        a.label(L::Ftruncate64);
        a.at_least(arg_lo(1), arg_hi(1), from);
    }
    if picks.write {
        // write(fd, buf, count): count == 1.
        a.label(L::Write64);
        a.ld(arg_lo(2));
        a.jump(JEQ, 1, L::Next, L::Allow);
        a.ld(arg_hi(2));
        a.jump(JEQ, 0, L::Notify, L::Allow);
    }

    // i386: 32-bit registers; a 64-bit offset comes in two of them, low word first.
    a.label(L::I386);
    a.ld(OFF_NR);
    if picks.pwrite_from.is_some() {
        a.jump(JEQ, nr::I386_PWRITE64, L::Pwrite32, L::Next);
    }
    if picks.ftruncate_from.is_some() {
        a.jump(JEQ, nr::I386_FTRUNCATE, L::Ftruncate32, L::Next);
        a.jump(JEQ, nr::I386_FTRUNCATE64, L::FtruncateLarge32, L::Next);
    }
    if picks.write {
        a.jump(JEQ, nr::I386_WRITE, L::Write32, L::Next);
    }
    a.ret(RET_ALLOW);
    if let Some(from) = picks.pwrite_from {
        // pwrite64(fd, buf, count, offset_lo, offset_hi).
        a.label(L::Pwrite32);
        a.ld(arg_lo(2));
        a.jump(JEQ, 1, L::Next, L::Allow);
        a.at_least(arg_lo(3), arg_lo(4), from);
    }
    if let Some(from) = picks.ftruncate_from {
        // ftruncate(fd, length): a signed 32-bit length.
        a.label(L::Ftruncate32);
        a.ld(arg_lo(1));
        a.jump(JSET, 0x8000_0000, L::Allow, L::Next);
        match u32::try_from(from) {
            Ok(from) => a.jump(JGE, from, L::Notify, L::Allow),
            // No 32-bit length reaches it.
            Err(_) => a.jump(JEQ, 0, L::Allow, L::Allow),
        }
        // ftruncate64(fd, length_lo, length_hi).
        a.label(L::FtruncateLarge32);
        a.at_least(arg_lo(1), arg_lo(2), from);
    }
    if picks.write {
        a.label(L::Write32);
        a.ld(arg_lo(2));
        a.jump(JEQ, 1, L::Notify, L::Allow);
    }
    a.label(L::Allow);
    a.ret(RET_ALLOW);
    a.label(L::Notify);
    a.ret(RET_USER_NOTIF);
    a.finish()
}

/// The one-instruction filter that allows everything, for the benchmark's reference.
pub fn allow_all() -> Vec<libc::sock_filter> {
    vec![libc::sock_filter { code: RET_K, jt: 0, jf: 0, k: RET_ALLOW }]
}

/// How the listener was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Installed {
    pub fd: i32,
    /// SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV was accepted (5.19).
    pub killable: bool,
}

/// Installs `prog` on the calling thread with a listener. Async-signal-safe (it runs in
/// the forked child): only system calls.
pub fn install(prog: &[libc::sock_filter], listener: bool) -> Result<Installed, Errno> {
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr().cast_mut() };
    let with = |flags: libc::c_ulong| {
        // SAFETY: fprog points at prog, which lives through the call.
        let r =
            unsafe { libc::syscall(SYS_SECCOMP, SECCOMP_SET_MODE_FILTER, flags, &fprog as *const libc::sock_fprog) };
        if r < 0 {
            Err(Errno(errno()))
        } else {
            Ok(r as i32)
        }
    };
    if !listener {
        return with(0).map(|_| Installed { fd: -1, killable: false });
    }
    match with(FLAG_NEW_LISTENER | FLAG_WAIT_KILLABLE_RECV) {
        Ok(fd) => Ok(Installed { fd, killable: true }),
        Err(e) if e.0 == libc::EINVAL => with(FLAG_NEW_LISTENER).map(|fd| Installed { fd, killable: false }),
        Err(e) => Err(e),
    }
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`: required for an unprivileged filter.
pub fn no_new_privs() -> Result<(), Errno> {
    // SAFETY: integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } < 0 {
        return Err(Errno(errno()));
    }
    Ok(())
}

/// Waits for a notification. `Ok(None)`: the one that woke us is gone (ENOENT), or a
/// signal interrupted the wait.
pub fn recv(listener: i32) -> Result<Option<Notif>, Errno> {
    // The kernel requires a zeroed buffer.
    let mut n = Notif::default();
    // SAFETY: n is a struct seccomp_notif the kernel fills.
    if unsafe { libc::ioctl(listener, IOCTL_NOTIF_RECV as _, &mut n as *mut Notif) } < 0 {
        return match errno() {
            libc::ENOENT | libc::EINTR => Ok(None),
            e => Err(Errno(e)),
        };
    }
    Ok(Some(n))
}

/// Whether the notification `id` is still waiting (its thread has not died or been
/// interrupted): what was looked up about its process still refers to it.
pub fn id_valid(listener: i32, id: u64) -> bool {
    // SAFETY: id is a u64 the kernel reads.
    unsafe { libc::ioctl(listener, IOCTL_NOTIF_ID_VALID as _, &id as *const u64) == 0 }
}

/// Answers notification `id`. A program that died meanwhile (ENOENT) is no error.
pub fn send(listener: i32, id: u64, answer: Answer) -> Result<(), Errno> {
    let mut r = Resp { id, ..Resp::default() };
    match answer {
        Answer::Continue => r.flags = USER_NOTIF_FLAG_CONTINUE,
        Answer::Done(Ok(v)) => r.val = v,
        Answer::Done(Err(e)) => r.error = -e.0,
    }
    // SAFETY: r is a struct seccomp_notif_resp the kernel reads.
    if unsafe { libc::ioctl(listener, IOCTL_NOTIF_SEND as _, &mut r as *mut Resp) } < 0 {
        return match errno() {
            libc::ENOENT => Ok(()),
            e => Err(Errno(e)),
        };
    }
    Ok(())
}

/// An owned descriptor, closed when dropped.
#[derive(Debug)]
pub struct Owned(pub i32);

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: this descriptor is ours alone.
        unsafe { libc::close(self.0) };
    }
}

/// `pidfd_open(pid, 0)`: a descriptor for the process `pid` (a thread group leader).
pub fn pidfd_open(pid: u32) -> Result<Owned, Errno> {
    // SAFETY: integer arguments only.
    let r = unsafe { libc::syscall(SYS_PIDFD_OPEN, pid as libc::c_int, 0) };
    if r < 0 {
        Err(Errno(errno()))
    } else {
        Ok(Owned(r as i32))
    }
}

/// `pidfd_getfd(pidfd, fd, 0)`: a duplicate of that process's `fd` in this one (the same
/// open file description: offset, flags and file), close-on-exec.
pub fn pidfd_getfd(pidfd: i32, fd: i32) -> Result<Owned, Errno> {
    // SAFETY: integer arguments only.
    let r = unsafe { libc::syscall(SYS_PIDFD_GETFD, pidfd, fd, 0) };
    if r < 0 {
        Err(Errno(errno()))
    } else {
        Ok(Owned(r as i32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the filter on one call, as the kernel's BPF interpreter would.
    fn run(prog: &[libc::sock_filter], d: &Data) -> u32 {
        // SAFETY: Data is plain old data.
        let bytes: &[u8] =
            unsafe { std::slice::from_raw_parts((d as *const Data).cast::<u8>(), std::mem::size_of::<Data>()) };
        let word = |off: u32| {
            let o = off as usize;
            u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]])
        };
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code {
                LD_ABS_W => acc = word(i.k),
                RET_K => return i.k,
                op => {
                    let taken = match op {
                        JEQ => acc == i.k,
                        JGT => acc > i.k,
                        JGE => acc >= i.k,
                        JSET => acc & i.k != 0,
                        _ => panic!("unknown instruction {op:#x}"),
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
            }
        }
    }

    fn call(arch: u32, nr: u32, args: [u64; 6]) -> Data {
        Data { nr: nr as i32, arch, ip: 0, args }
    }

    const T: u64 = (64 << 20) - 1;
    const ALL: Picks = Picks { pwrite_from: Some(T), ftruncate_from: Some(T + 1), write: true };
    const DEFAULT: Picks = Picks { pwrite_from: Some(T), ftruncate_from: None, write: false };

    #[test]
    fn only_candidates_reach_the_supervisor() {
        for picks in [ALL, DEFAULT] {
            let p = filter(&picks);
            let x = |nr, args| run(&p, &call(AUDIT_ARCH_X86_64, nr, args));
            let i = |nr, args| run(&p, &call(AUDIT_ARCH_I386, nr, args));
            // x86_64 pwrite64.
            assert_eq!(x(nr::X86_64_PWRITE64, [3, 0, 1, T, 0, 0]), RET_USER_NOTIF);
            assert_eq!(x(nr::X86_64_PWRITE64, [3, 0, 1, 5 << 40, 0, 0]), RET_USER_NOTIF);
            assert_eq!(x(nr::X86_64_PWRITE64, [3, 0, 1, T - 1, 0, 0]), RET_ALLOW);
            assert_eq!(x(nr::X86_64_PWRITE64, [3, 0, 2, T, 0, 0]), RET_ALLOW);
            assert_eq!(x(nr::X86_64_PWRITE64, [3, 0, 1 | 1 << 32, T, 0, 0]), RET_ALLOW);
            assert_eq!(x(nr::X86_64_PWRITE64, [3, 0, 1, u64::MAX, 0, 0]), RET_ALLOW);
            assert_eq!(x(nr::X86_64_PWRITE64, [3, 0, 1, 1 << 32, 0, 0]), RET_USER_NOTIF);
            // i386 pwrite64: the offset in two words.
            assert_eq!(i(nr::I386_PWRITE64, [3, 0, 1, T, 0, 0]), RET_USER_NOTIF);
            assert_eq!(i(nr::I386_PWRITE64, [3, 0, 1, 0, 1, 0]), RET_USER_NOTIF);
            assert_eq!(i(nr::I386_PWRITE64, [3, 0, 1, 5, 0, 0]), RET_ALLOW);
            assert_eq!(i(nr::I386_PWRITE64, [3, 0, 1, 0, 0x8000_0000, 0]), RET_ALLOW);
            assert_eq!(i(nr::I386_PWRITE64, [3, 0, 16, T, 0, 0]), RET_ALLOW);
            // The same numbers in the other ABI are other calls.
            assert_eq!(i(nr::X86_64_PWRITE64, [3, 0, 1, T, 0, 0]), RET_ALLOW);
            assert_eq!(x(nr::I386_PWRITE64, [3, 0, 1, T, 0, 0]), RET_ALLOW);
            // x32 and other architectures.
            assert_eq!(x(nr::X86_64_PWRITE64 | X32_SYSCALL_BIT, [3, 0, 1, T, 0, 0]), RET_ALLOW);
            assert_eq!(run(&p, &call(0xc000_00b7, nr::X86_64_PWRITE64, [3, 0, 1, T, 0, 0])), RET_ALLOW);
            // Other calls.
            assert_eq!(x(0, [3, 0, 1, T, 0, 0]), RET_ALLOW);
            assert_eq!(i(3, [3, 0, 1, T, 0, 0]), RET_ALLOW);
        }
        let p = filter(&ALL);
        let x = |nr, args| run(&p, &call(AUDIT_ARCH_X86_64, nr, args));
        let i = |nr, args| run(&p, &call(AUDIT_ARCH_I386, nr, args));
        assert_eq!(x(nr::X86_64_FTRUNCATE, [3, T + 1, 0, 0, 0, 0]), RET_USER_NOTIF);
        assert_eq!(x(nr::X86_64_FTRUNCATE, [3, T, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(x(nr::X86_64_FTRUNCATE, [3, u64::MAX, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(i(nr::I386_FTRUNCATE, [3, T + 1, 0, 0, 0, 0]), RET_USER_NOTIF);
        assert_eq!(i(nr::I386_FTRUNCATE, [3, T, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(i(nr::I386_FTRUNCATE, [3, 0xffff_fff0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(i(nr::I386_FTRUNCATE64, [3, 0, 2, 0, 0, 0]), RET_USER_NOTIF);
        assert_eq!(i(nr::I386_FTRUNCATE64, [3, 5, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(x(nr::X86_64_WRITE, [1, 0, 1, 0, 0, 0]), RET_USER_NOTIF);
        assert_eq!(x(nr::X86_64_WRITE, [1, 0, 2, 0, 0, 0]), RET_ALLOW);
        assert_eq!(i(nr::I386_WRITE, [1, 0, 1, 0, 0, 0]), RET_USER_NOTIF);
        let p = filter(&DEFAULT);
        assert_eq!(run(&p, &call(AUDIT_ARCH_X86_64, nr::X86_64_FTRUNCATE, [3, 1 << 40, 0, 0, 0, 0])), RET_ALLOW);
        assert_eq!(run(&p, &call(AUDIT_ARCH_X86_64, nr::X86_64_WRITE, [1, 0, 1, 0, 0, 0])), RET_ALLOW);
        // A threshold beyond 4 GiB: the high word decides.
        let p = filter(&Picks { pwrite_from: Some((5 << 32) + 7), ftruncate_from: Some(5 << 32), write: false });
        let x = |nr, args| run(&p, &call(AUDIT_ARCH_X86_64, nr, args));
        assert_eq!(x(nr::X86_64_PWRITE64, [3, 0, 1, (5 << 32) + 7, 0, 0]), RET_USER_NOTIF);
        assert_eq!(x(nr::X86_64_PWRITE64, [3, 0, 1, (5 << 32) + 6, 0, 0]), RET_ALLOW);
        assert_eq!(x(nr::X86_64_PWRITE64, [3, 0, 1, 6 << 32, 0, 0]), RET_USER_NOTIF);
        assert_eq!(x(nr::X86_64_PWRITE64, [3, 0, 1, (4 << 32) + 9, 0, 0]), RET_ALLOW);
        assert_eq!(run(&p, &call(AUDIT_ARCH_I386, nr::I386_FTRUNCATE, [3, 0x7fff_ffff, 0, 0, 0, 0])), RET_ALLOW);
    }
}
