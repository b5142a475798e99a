//! What the launcher was started with, for PROGRAM to start with too: the signal mask
//! and whether SIGPIPE was ignored (a service manager ignores it in every service it
//! starts; `nohup` and some shells block or ignore others). Rust's runtime ignores
//! SIGPIPE before `main`, and `std::process::Command` empties the mask and sets SIGPIPE
//! to its default in the child, so both are recorded by the binary's constructor
//! (`main.rs`, before the runtime starts) and put back just before exec.

use std::sync::OnceLock;

#[derive(Clone, Copy)]
struct Inherited {
    mask: libc::sigset_t,
    sigpipe_ignored: bool,
}

static INHERITED: OnceLock<Inherited> = OnceLock::new();

/// Records the signal mask and SIGPIPE's action this process was started with. Called
/// once, before `main`; later calls change nothing.
pub fn record() {
    // SAFETY: sigset_t and sigaction are plain data; zero is a valid value of each.
    let (mut mask, mut pipe): (libc::sigset_t, libc::sigaction) = unsafe { std::mem::zeroed() };
    // SAFETY: queries only (no new mask, no new action); the kernel writes the out-values.
    let asked = unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask) == 0
            && libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut pipe) == 0
    };
    if asked {
        let _ = INHERITED.set(Inherited { mask, sigpipe_ignored: pipe.sa_sigaction == libc::SIG_IGN });
    }
}

/// In the process about to exec PROGRAM: the recorded mask and SIGPIPE action (not
/// recorded: an empty mask and SIGPIPE at its default, as `Command` leaves them). Only
/// system calls: safe between fork and exec.
pub fn restore() {
    let (mask, ignored) = match INHERITED.get() {
        Some(i) => (i.mask, i.sigpipe_ignored),
        // SAFETY: as in record.
        None => (unsafe { std::mem::zeroed() }, false),
    };
    // SAFETY: setting this thread's mask and one signal's action to plain values.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &mask, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, if ignored { libc::SIG_IGN } else { libc::SIG_DFL });
    }
}
