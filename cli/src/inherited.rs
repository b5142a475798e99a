//! What the launcher was started with, for PROGRAM to start with too: the signal mask,
//! and whether SIGPIPE and SIGCHLD were ignored (a service manager ignores SIGPIPE in
//! every service it starts; `nohup` and some shells block or ignore others). Rust's
//! runtime ignores SIGPIPE before `main`, `std::process::Command` empties the mask and
//! sets SIGPIPE to its default in the child, and the supervisor needs SIGCHLD at its
//! default to see PROGRAM end; so all three are recorded by the binary's constructor
//! (`main.rs`, before the runtime starts) and put back just before exec.

use std::sync::OnceLock;

#[derive(Clone, Copy)]
struct Inherited {
    mask: libc::sigset_t,
    sigpipe_ignored: bool,
    sigchld_ignored: bool,
}

static INHERITED: OnceLock<Inherited> = OnceLock::new();

/// Whether `sig`'s action is SIG_IGN; None when it cannot be asked.
fn ignored(sig: libc::c_int) -> Option<bool> {
    // SAFETY: sigaction is plain data; zero is a valid value.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a query only (no new action); the kernel writes act.
    (unsafe { libc::sigaction(sig, std::ptr::null(), &mut act) } == 0).then_some(act.sa_sigaction == libc::SIG_IGN)
}

/// Records the signal mask and the SIGPIPE and SIGCHLD actions this process was started
/// with. Called once, before `main`; later calls change nothing.
pub fn record() {
    // SAFETY: sigset_t is plain data; zero is a valid value.
    let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: a query only (no new mask); the kernel writes mask.
    let masked = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask) } == 0;
    if let (true, Some(sigpipe_ignored), Some(sigchld_ignored)) =
        (masked, ignored(libc::SIGPIPE), ignored(libc::SIGCHLD))
    {
        let _ = INHERITED.set(Inherited { mask, sigpipe_ignored, sigchld_ignored });
    }
}

/// SIGCHLD at its default action in this process, for the supervisor: ignored, the
/// kernel would reap PROGRAM itself and send no SIGCHLD, and nobody would see it end.
pub fn sigchld_default() {
    // SAFETY: one signal's action set to its default.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
}

/// In the process about to exec PROGRAM: the recorded mask, SIGPIPE and SIGCHLD
/// actions (not recorded: an empty mask and both at their default, as `Command` leaves
/// them). Only system calls: safe between fork and exec.
pub fn restore() {
    let (mask, pipe, chld) = match INHERITED.get() {
        Some(i) => (i.mask, i.sigpipe_ignored, i.sigchld_ignored),
        // SAFETY: as in record.
        None => (unsafe { std::mem::zeroed() }, false, false),
    };
    let action = |ignored: bool| if ignored { libc::SIG_IGN } else { libc::SIG_DFL };
    // SAFETY: setting this thread's mask and two signals' actions to plain values.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &mask, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, action(pipe));
        libc::signal(libc::SIGCHLD, action(chld));
    }
}
