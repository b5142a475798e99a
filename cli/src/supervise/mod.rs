//! `nosparse --supervise -- PROGRAM`: PROGRAM runs under a seccomp filter that sends
//! only candidate calls to this process (the supervisor), which acts on them with the
//! engine (see `notif`) and answers; every other call is decided in the kernel.
//!
//! Start: fork; the child sets no_new_privs (unless root), installs the filter with a
//! listener, tells the parent the listener's number and waits; the parent takes it
//! (`pidfd_getfd`) and lets the child close its copy and exec PROGRAM. The filter is
//! inherited across fork, clone and exec: the whole tree is covered.
//!
//! Lifecycle: the supervisor is PROGRAM's parent and stays in the launcher's place, in
//! the foreground process group. PROGRAM starts with the launcher's signal mask and
//! SIGPIPE at its default. The supervisor passes the signals sent to it on to PROGRAM,
//! except those the terminal sent to the whole group (PROGRAM got them itself), stops
//! itself when PROGRAM is stopped by job control (so the shell sees the job stop, and
//! `fg` continues both), reaps PROGRAM and ends as PROGRAM ended: the same exit
//! status, or killed by the same signal.
//! Processes PROGRAM left running (daemons) keep the filter: a detached helper serves
//! them until the last of them is gone, with its stdio on /dev/null. If the supervisor
//! is killed anyway, the kernel answers the program's next candidate call with ENOSYS.

mod adapter;
mod notif;

use crate::exit_codes::{Failure, Status};
use crate::seccomp::{self, Picks};
use nosparse_core::config::Config;
use nosparse_core::engine::Space;
use nosparse_core::settings::{Sink, Trigger};
use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What the child reports on the pipe: a kind and two numbers.
const MSG_LISTENER: u32 = 1;
const MSG_NO_NEW_PRIVS: u32 = 2;
const MSG_SECCOMP: u32 = 3;
const MSG_EXEC: u32 = 4;

/// What runs a program file the kernel does not recognise (`_PATH_BSHELL`).
const SHELL: &std::ffi::CStr = c"/bin/sh";

/// Job control's stops: the terminal sends them to PROGRAM itself; the supervisor
/// ignores them and mirrors PROGRAM's stop instead (see `reap`).
const STOP_SIGNALS: [i32; 3] = [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU];

/// Every signal the supervisor passes on: all a process can be sent, but SIGKILL and
/// SIGSTOP (which cannot be caught), SIGCHLD (PROGRAM's own news to its parent) and
/// job control's stops (the terminal sends them to PROGRAM itself). Fault signals
/// (SIGSEGV, SIGBUS, ...) too: blocked, they still kill the supervisor when it faults
/// itself, and one sent with kill(2) goes on like any other.
fn passed_on() -> impl Iterator<Item = i32> {
    (1..=libc::SIGRTMAX())
        .filter(|&s| !matches!(s, libc::SIGKILL | libc::SIGSTOP | libc::SIGCHLD) && !STOP_SIGNALS.contains(&s))
        // The signals glibc keeps for itself (between 31 and SIGRTMIN) are not sent to
        // programs.
        .filter(|&s| s < 32 || s >= libc::SIGRTMIN())
}

/// Whether the signal in `info`, read by the supervisor of `pid`, goes on to PROGRAM:
/// not one the kernel sent (the terminal's ^C, hangup or resize go to the whole
/// foreground group: PROGRAM has it already), not one from PROGRAM itself, not one the
/// supervisor caused (its own write to a closed pipe or past RLIMIT_FSIZE: the call
/// fails with EPIPE or EFBIG and the signal stays pending, from this process).
fn goes_on(info: &libc::signalfd_siginfo, pid: libc::pid_t) -> bool {
    // SAFETY: getpid cannot fail.
    let own = unsafe { libc::getpid() };
    info.ssi_signo != libc::SIGCHLD as u32
        && info.ssi_code != libc::SI_KERNEL
        && info.ssi_pid != pid as u32
        && info.ssi_pid != own as u32
}

/// The calls the filter sends to the supervisor under `cfg`. Under `NOSPARSE_DEBUG`
/// the sizes are not judged in the kernel: every one-byte pwrite and every ftruncate
/// comes up, so that the calls left alone are logged with their reason, as the
/// library logs them.
pub fn picks(cfg: &Config) -> Picks {
    let on = |t: Trigger| !cfg.disabled && cfg.triggers.has(t);
    let from = |least: u64| if cfg.debug { 0 } else { least };
    Picks {
        pwrite_from: on(Trigger::Pwrite).then(|| from(cfg.min_size.saturating_sub(1))),
        ftruncate_from: on(Trigger::Ftruncate).then(|| from(cfg.min_size)),
        write: on(Trigger::Write),
    }
}

/// Whether seccomp user notification works here, and how well.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Support {
    /// Everything, WAIT_KILLABLE_RECV included (5.19).
    Full,
    /// Notification and pidfd_getfd, but not WAIT_KILLABLE_RECV (5.6 to 5.18): the
    /// supervisor would continue every call and allocate nothing.
    NoKillable,
    /// Not at all, and why.
    Unavailable(String),
}

/// What `errno` from installing a listener filter means.
fn why_not(stage: u32, errno: i32) -> String {
    let e = std::io::Error::from_raw_os_error(errno);
    match (stage, errno) {
        (MSG_NO_NEW_PRIVS, _) => format!("prctl(PR_SET_NO_NEW_PRIVS) failed: {e}"),
        (_, libc::ENOSYS) => "the kernel has no seccomp filters".into(),
        (_, libc::EINVAL) => "the kernel has no seccomp user notification (Linux 5.0; 5.6 for pidfd_getfd)".into(),
        (_, libc::EBUSY) => {
            "this process already runs under a seccomp supervisor (nosparse --supervise, or a container's)".into()
        }
        (_, libc::EPERM | libc::EACCES) => format!("seccomp(2) is forbidden here (a container's policy?): {e}"),
        _ => format!("seccomp(2) failed: {e}"),
    }
}

/// Tries, in a child, what supervising needs: a listener filter and `pidfd_getfd` of it.
pub fn probe() -> Support {
    let prog = seccomp::allow_all();
    let Ok((report, go)) = pipes() else { return Support::Unavailable("cannot make a pipe".into()) };
    // SAFETY: the child only makes system calls before _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Support::Unavailable("cannot fork".into());
    }
    if pid == 0 {
        child_setup(&prog, &report, &go);
        // SAFETY: the child ends here, without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    drop((report.1, go.0));
    let result = match read_msg(report.0 .0) {
        Some([MSG_LISTENER, fd, killable]) => match seccomp::pidfd_open(pid as u32)
            .and_then(|p| seccomp::pidfd_getfd(p.0, fd as i32))
        {
            Ok(_) if killable == 1 => Support::Full,
            Ok(_) => Support::NoKillable,
            Err(e) if e.0 == libc::ENOSYS => Support::Unavailable("the kernel has no pidfd_getfd (Linux 5.6)".into()),
            Err(e) => Support::Unavailable(format!(
                "pidfd_getfd is refused ({}): ptrace restrictions (kernel.yama.ptrace_scope)?",
                std::io::Error::from_raw_os_error(e.0)
            )),
        },
        Some([stage, errno, _]) => Support::Unavailable(why_not(stage, errno as i32)),
        None => {
            Support::Unavailable("seccomp(2) is forbidden here: this process runs under a filter that kills it".into())
        }
    };
    drop(go.1);
    let mut status = 0;
    // SAFETY: pid is our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    result
}

type Pipe = (seccomp::Owned, seccomp::Owned);

fn pipe() -> Result<Pipe, Failure> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(Failure::new(Status::LauncherFailed, format!("pipe: {}", std::io::Error::last_os_error())));
    }
    Ok((seccomp::Owned(fds[0]), seccomp::Owned(fds[1])))
}

/// The child's report pipe and the parent's go-ahead pipe.
fn pipes() -> Result<(Pipe, Pipe), Failure> {
    Ok((pipe()?, pipe()?))
}

fn write_msg(fd: i32, msg: [u32; 3]) {
    let mut b = [0u8; 12];
    for (i, w) in msg.iter().enumerate() {
        b[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
    }
    // SAFETY: b is readable; a pipe write of 12 bytes is atomic.
    unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
}

/// A message from the child; None at end of file (the child exec'd or died).
fn read_msg(fd: i32) -> Option<[u32; 3]> {
    let mut b = [0u8; 12];
    loop {
        // SAFETY: b is writable.
        let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), b.len()) };
        if n == 12 {
            let w = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
            return Some([w(0), w(4), w(8)]);
        }
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return None;
    }
}

/// In the forked child: no_new_privs, the filter, the listener's number to the parent,
/// and wait for the parent to have taken it. Only system calls (async-signal-safe).
fn child_setup(prog: &[libc::sock_filter], report: &Pipe, go: &Pipe) {
    // SAFETY: the parent's ends; the go-ahead is the parent closing its write end, which
    // the child would otherwise hold open itself.
    unsafe {
        libc::close(report.0 .0);
        libc::close(go.1 .0);
    }
    // SAFETY: no arguments.
    if unsafe { libc::geteuid() } != 0 {
        if let Err(e) = seccomp::no_new_privs() {
            write_msg(report.1 .0, [MSG_NO_NEW_PRIVS, e.0 as u32, 0]);
            // SAFETY: ends the child.
            unsafe { libc::_exit(Status::LauncherFailed.code().into()) };
        }
    }
    match seccomp::install(prog, true) {
        Ok(i) => {
            write_msg(report.1 .0, [MSG_LISTENER, i.fd as u32, u32::from(i.killable)]);
            let mut b = [0u8];
            // SAFETY: b is writable. Returns at the go-ahead or when the parent is gone.
            unsafe { libc::read(go.0 .0, b.as_mut_ptr().cast(), 1) };
            // SAFETY: the parent has its own duplicate now; PROGRAM must not hold one.
            unsafe { libc::close(i.fd) };
        }
        Err(e) => {
            write_msg(report.1 .0, [MSG_SECCOMP, e.0 as u32, 0]);
            // SAFETY: ends the child.
            unsafe { libc::_exit(Status::LauncherFailed.code().into()) };
        }
    }
}

fn cstring(s: &OsStr) -> Result<CString, Failure> {
    CString::new(s.as_bytes()).map_err(|_| Failure::new(Status::CannotRun, format!("{s:?} contains a NUL byte")))
}

/// Runs `program` (named `argv0`) with `args` under the supervisor; returns PROGRAM's
/// exit status (or ends by PROGRAM's signal).
pub fn run(
    program: &Path,
    argv0: &OsStr,
    args: &[OsString],
    settings: &[(&'static str, String)],
) -> Result<u8, Failure> {
    let cfg = adapter::settings(settings);
    let prog = seccomp::filter(&picks(&cfg));
    crate::inherited::sigchld_default();
    // Everything the child needs is made before the fork: after it, no allocation.
    let path = cstring(program.as_os_str())?;
    let argv: Vec<CString> =
        std::iter::once(argv0).chain(args.iter().map(OsString::as_os_str)).map(cstring).collect::<Result<_, _>>()?;
    let mut env: Vec<(OsString, OsString)> =
        std::env::vars_os().filter(|(k, _)| !settings.iter().any(|(n, _)| OsStr::new(n) == k)).collect();
    env.extend(settings.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))));
    let envp: Vec<CString> = env
        .iter()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).map_err(|_| Failure::new(Status::CannotRun, "the environment contains a NUL byte"))
        })
        .collect::<Result<_, _>>()?;
    let argv_p: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).chain([std::ptr::null()]).collect();
    let envp_p: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).chain([std::ptr::null()]).collect();
    // A file the kernel will not run (ENOEXEC: a script without `#!`) runs as
    // `/bin/sh PROGRAM ARGS...`, as execvp(3) and the shell run it.
    let sh_argv_p: Vec<*const libc::c_char> =
        [SHELL.as_ptr(), path.as_ptr()].into_iter().chain(argv_p[1..].iter().copied()).collect();
    let (report, go) = pipes()?;

    // Signals pending at start (blocked in the mask the launcher was given) are PROGRAM's:
    // a fork does not pass them on, so the child raises each again before exec, under
    // that same mask, and the supervisor takes its own copies out unanswered.
    let pending = pending_signals();
    // The signals the supervisor will treat differently are blocked across the fork, so
    // none is lost or acted on between; the child restores the mask before exec.
    let mut watched = sigset(&[libc::SIGCHLD]);
    add(&mut watched, &passed_on().collect::<Vec<_>>());
    let mut all = watched;
    add(&mut all, &STOP_SIGNALS);
    // SAFETY: blocking more signals; the child's mask comes from inherited::restore.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &all, std::ptr::null_mut()) };
    // SAFETY: the child only makes system calls until exec or _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Failure::new(Status::LauncherFailed, format!("fork: {}", std::io::Error::last_os_error())));
    }
    if pid == 0 {
        // PROGRAM gets the mask and SIGPIPE action the launcher was started with (Rust
        // ignores SIGPIPE in this process; an ignored signal stays ignored across exec,
        // and `yes | head -1` would never end).
        crate::inherited::restore();
        for &sig in &pending {
            // SAFETY: a signal to this process, blocked here as it was in the launcher.
            unsafe { libc::kill(libc::getpid(), sig) };
        }
        child_setup(&prog, &report, &go);
        // SAFETY: path, argv and envp are NUL-terminated arrays made before the fork.
        unsafe { libc::execve(path.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
        let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOEXEC);
        if e == libc::ENOEXEC {
            // SAFETY: as above; on failure the first error is the one reported.
            unsafe { libc::execve(SHELL.as_ptr(), sh_argv_p.as_ptr(), envp_p.as_ptr()) };
        }
        write_msg(report.1 .0, [MSG_EXEC, e as u32, 0]);
        // SAFETY: ends the child.
        unsafe { libc::_exit(if e == libc::ENOENT { Status::NotFound } else { Status::CannotRun }.code().into()) };
    }
    drop((report.1, go.0));
    take_out(&pending);
    let reap = || {
        let mut status = 0;
        // SAFETY: pid is our child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    };
    let listener = match read_msg(report.0 .0) {
        Some([MSG_LISTENER, fd, killable]) => {
            let taken = seccomp::pidfd_open(pid as u32).and_then(|p| seccomp::pidfd_getfd(p.0, fd as i32));
            match taken {
                Ok(l) => (l, killable == 1),
                Err(e) => {
                    drop(go.1);
                    reap();
                    let e = std::io::Error::from_raw_os_error(e.0);
                    return Err(Failure::new(
                        Status::LauncherFailed,
                        format!("cannot take the child's seccomp listener: {e}"),
                    ));
                }
            }
        }
        Some([stage, errno, _]) => {
            reap();
            return Err(Failure::new(
                Status::LauncherFailed,
                format!("cannot supervise: {}", why_not(stage, errno as i32)),
            ));
        }
        None => {
            reap();
            return Err(Failure::new(Status::LauncherFailed, "cannot supervise: the child died before exec"));
        }
    };
    drop(go.1);
    if let Some([MSG_EXEC, errno, _]) = read_msg(report.0 .0) {
        reap();
        let status = if errno as i32 == libc::ENOENT { Status::NotFound } else { Status::CannotRun };
        let e = std::io::Error::from_raw_os_error(errno as i32);
        return Err(Failure::new(status, format!("cannot run {}: {e}", program.display())));
    }
    drop(report.0);
    for s in STOP_SIGNALS {
        // SAFETY: ignoring a signal.
        unsafe { libc::signal(s, libc::SIG_IGN) };
    }
    // SAFETY: now ignored, the stops may be unblocked; SIGCHLD and the signals passed
    // on stay blocked and are read from the signalfd.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &watched, std::ptr::null_mut()) };
    // SAFETY: watched is a valid set.
    let sigfd = unsafe { libc::signalfd(-1, &watched, libc::SFD_CLOEXEC) };
    if sigfd < 0 {
        return Err(Failure::new(Status::LauncherFailed, format!("signalfd: {}", std::io::Error::last_os_error())));
    }
    let sigfd = seccomp::Owned(sigfd);
    let mut s = notif::Supervisor {
        listener: listener.0 .0,
        emulate: listener.1,
        cfg,
        space: Box::new(Space::new()),
        unreachable: Vec::new(),
    };
    let status = serve(&mut s, pid, sigfd.0);
    drop(sigfd);
    if !hung_up(s.listener, 0) {
        serve_the_rest_detached(&mut s);
    }
    Ok(end_like(status))
}

/// The signals pending for this process.
fn pending_signals() -> Vec<i32> {
    let mut set = sigset(&[]);
    // SAFETY: set is a sigset_t the kernel writes.
    unsafe { libc::sigpending(&mut set) };
    // SAFETY: set is initialised; each s is a signal number.
    (1..=libc::SIGRTMAX()).filter(|&s| unsafe { libc::sigismember(&set, s) } == 1).collect()
}

/// Accepts, without acting on them, every pending instance of `signals` (all blocked).
fn take_out(signals: &[i32]) {
    let set = sigset(signals);
    let now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: set and now are initialised; no siginfo is asked for.
    while unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &now) } > 0 {}
}

fn sigset(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::sigemptyset(&mut set) };
    add(&mut set, signals);
    set
}

fn add(set: &mut libc::sigset_t, signals: &[i32]) {
    for &s in signals {
        // SAFETY: set is initialised; s is a signal number.
        unsafe { libc::sigaddset(set, s) };
    }
}

/// Whether every process holding the filter is gone (the listener hangs up), waiting
/// up to `ms` milliseconds.
fn hung_up(listener: i32, ms: i32) -> bool {
    let mut p = libc::pollfd { fd: listener, events: libc::POLLIN, revents: 0 };
    // SAFETY: one pollfd.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    n > 0 && p.revents & (libc::POLLHUP | libc::POLLERR) != 0 && p.revents & libc::POLLIN == 0
}

/// Answers one waiting notification, if any.
fn answer_one(s: &mut notif::Supervisor) {
    if let Ok(Some(n)) = seccomp::recv(s.listener) {
        if let Some(a) = notif::handle(s, &n) {
            // A failure here is the program's death (ENOENT, handled in send).
            let _ = seccomp::send(s.listener, n.id, a);
        }
    }
}

/// Serves notifications until PROGRAM (`pid`) ends; its wait status.
fn serve(s: &mut notif::Supervisor, pid: libc::pid_t, sigfd: i32) -> i32 {
    let mut fds = [
        libc::pollfd { fd: s.listener, events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: sigfd, events: libc::POLLIN, revents: 0 },
    ];
    loop {
        // Once every holder of the filter is gone the listener only hangs up: stop
        // polling it (a negative fd is skipped).
        // SAFETY: two pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            continue;
        }
        if fds[0].revents & libc::POLLIN != 0 {
            answer_one(s);
        } else if fds[0].revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            fds[0].fd = -1;
        }
        if fds[1].revents & libc::POLLIN != 0 {
            // SAFETY: signalfd_siginfo is plain data the kernel fills.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: info has room for one record.
            let r = unsafe { libc::read(sigfd, (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
            if r == size as isize && goes_on(&info, pid) {
                // SAFETY: pid is our child, not yet reaped. (Sent by us: PROGRAM sees
                // the supervisor as the sender, and no sigqueue(3) value.)
                unsafe { libc::kill(pid, info.ssi_signo as i32) };
            }
            if let Some(status) = reap(pid) {
                return status;
            }
        }
    }
}

/// Looks at PROGRAM after a SIGCHLD: its wait status once it has ended; when the
/// terminal stopped it, stops the supervisor too, and continues PROGRAM when continued.
fn reap(pid: libc::pid_t) -> Option<i32> {
    loop {
        let mut status = 0;
        // SAFETY: pid is our child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG | libc::WUNTRACED) };
        if r != pid {
            return None;
        }
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            return Some(status);
        }
        let by_terminal = [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU].contains(&libc::WSTOPSIG(status));
        if libc::WIFSTOPPED(status) && by_terminal {
            // Job control: the shell waits for this process, and sees the job stop only
            // if we do; its `fg`/`bg` continue the whole process group. (A SIGSTOP sent
            // to PROGRAM alone is not mirrored: nobody might continue us.)
            // SAFETY: signals to ourselves and our child.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGSTOP);
                libc::kill(pid, libc::SIGCONT);
            }
        }
    }
}

/// PROGRAM has ended, but processes it started still hold the filter: a detached child
/// serves them until the last is gone, so that the launcher ends now, as PROGRAM did.
fn serve_the_rest_detached(s: &mut notif::Supervisor) {
    // SAFETY: this process is single-threaded; the child only serves and exits.
    if unsafe { libc::fork() } != 0 {
        return;
    }
    // Its stdio goes to /dev/null (a pipe held open here would keep `$(nosparse ...)`
    // waiting for processes that closed theirs): lines asked for on stderr go to syslog.
    if s.cfg.log == Sink::Stderr {
        s.cfg.log = Sink::Syslog;
    }
    // SAFETY: setsid and dup2 onto our own stdio.
    unsafe {
        libc::setsid();
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
    }
    let mut p = libc::pollfd { fd: s.listener, events: libc::POLLIN, revents: 0 };
    loop {
        // SAFETY: one pollfd.
        if unsafe { libc::poll(&mut p, 1, -1) } < 0 {
            continue;
        }
        if p.revents & libc::POLLIN != 0 {
            answer_one(s);
        } else if p.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            // SAFETY: ends the helper.
            unsafe { libc::_exit(0) };
        }
    }
}

/// Ends as PROGRAM ended: returns its exit status, or kills this process with the
/// signal that killed it (no core dump of ours), so the shell sees the same.
fn end_like(status: i32) -> u8 {
    if libc::WIFEXITED(status) {
        return libc::WEXITSTATUS(status) as u8;
    }
    let sig = libc::WTERMSIG(status);
    let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: restoring the default action and raising the signal on ourselves.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::signal(sig, libc::SIG_DFL);
        let set = sigset(&[sig]);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::kill(libc::getpid(), sig);
    }
    // A signal whose default is not to end a process: as the shell would report it.
    128u8.wrapping_add(sig as u8)
}
