//! Threads and processes that act while the creation call runs (--threads,
//! --concurrent, --fork, --spawn), and the signal storm (--signal-storm).

use crate::opts::{Call, OpenMode, Opts};
use crate::rng::Rng;
use crate::sys::{self, cstr, errno};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// How long a child may take before it is killed.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// How a child process ended, printed as its exit status, `signal N`, `timeout` or
/// `waitpid errno N`.
pub enum Ended {
    Exited(i32),
    Signaled(i32),
    TimedOut,
    WaitFailed(i32),
    SpawnFailed(i32),
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Ended::Exited(status) => write!(f, "{status}"),
            Ended::Signaled(signal) => write!(f, "signal {signal}"),
            Ended::TimedOut => f.write_str("timeout"),
            Ended::WaitFailed(e) => write!(f, "waitpid errno {e}"),
            Ended::SpawnFailed(e) => write!(f, "posix_spawn errno {e}"),
        }
    }
}

/// What one helper found.
enum Found {
    ThreadOk(bool),
    ConcurrentRet(isize),
    Child(Ended),
    Spawn(Ended),
}

/// What all helpers found, each `None` when that helper was not asked for.
#[derive(Default)]
pub struct Findings {
    pub threads_ok: Option<u32>,
    pub concurrent_ret: Option<isize>,
    pub child_status: Option<Ended>,
    pub spawn_status: Option<Ended>,
}

impl Findings {
    pub fn print(&self) {
        let show = |key: &str, value: Option<&dyn fmt::Display>| {
            if let Some(v) = value {
                println!("{key}={v}");
            }
        };
        show("concurrent_ret", self.concurrent_ret.as_ref().map(|v| v as _));
        show("child_status", self.child_status.as_ref().map(|v| v as _));
        show("spawn_status", self.spawn_status.as_ref().map(|v| v as _));
        show("threads_ok", self.threads_ok.as_ref().map(|v| v as _));
    }
}

type Job = Box<dyn FnOnce() -> Found + Send>;

/// The helpers, started. Each waits on a barrier with the main thread, so they start
/// together with the call.
pub struct Helpers {
    handles: Vec<std::thread::JoinHandle<Found>>,
}

impl Helpers {
    pub fn start(o: &Opts, offset: i64) -> Helpers {
        let path = o.path.clone().unwrap_or_default();
        let mut jobs: Vec<Job> = Vec::new();
        for t in 0..o.threads {
            let (file, seed) = (format!("{path}.t{t}"), o.seed + t as u64 + 1);
            jobs.push(Box::new(move || Found::ThreadOk(writer_thread(&file, seed))));
        }
        if let Some(file) = &o.concurrent {
            let call = o.call;
            let fd = sys::open_file(file, o.open);
            jobs.push(Box::new(move || Found::ConcurrentRet(sys::create(fd, call, &[0], offset))));
        }
        if o.fork {
            let (file, call, open) = (format!("{path}.child"), o.call, o.open);
            jobs.push(Box::new(move || Found::Child(fork_child(&file, call, open, offset))));
        }
        if o.spawn {
            jobs.push(Box::new(|| Found::Spawn(spawn_true())));
        }
        let barrier = Arc::new(Barrier::new(jobs.len() + 1));
        let handles = jobs
            .into_iter()
            .map(|job| {
                let b = barrier.clone();
                std::thread::spawn(move || {
                    b.wait();
                    job()
                })
            })
            .collect();
        barrier.wait();
        Helpers { handles }
    }

    pub fn finish(self) -> Findings {
        let mut out = Findings::default();
        for h in self.handles {
            match h.join().unwrap_or_else(|_| crate::die("a helper thread panicked")) {
                Found::ThreadOk(ok) => *out.threads_ok.get_or_insert(0) += u32::from(ok),
                Found::ConcurrentRet(ret) => out.concurrent_ret = Some(ret),
                Found::Child(ended) => out.child_status = Some(ended),
                Found::Spawn(ended) => out.spawn_status = Some(ended),
            }
        }
        out
    }
}

/// 512 writes of 4 KiB at random offsets of its own file, then reads them back.
fn writer_thread(file: &str, seed: u64) -> bool {
    const PIECE: usize = 4096;
    const WRITES: usize = 512;
    const SLOTS: u64 = 2048;
    let fd = sys::open_file(file, OpenMode::Rdwr);
    let mut rng = Rng(seed | 1);
    let mut buf = [0u8; PIECE];
    let offsets: Vec<u64> = (0..WRITES).map(|_| (rng.next() % SLOTS) * PIECE as u64).collect();
    for &at in &offsets {
        crate::guest::fill(&mut buf, seed, at);
        if sys::pwrite_all(fd, &buf, at).is_err() {
            return false;
        }
    }
    let mut back = [0u8; PIECE];
    let ok = offsets.iter().all(|&at| {
        crate::guest::fill(&mut buf, seed, at);
        // SAFETY: back is valid for PIECE bytes.
        let n = unsafe { libc::pread64(fd, back.as_mut_ptr().cast(), PIECE, at as i64) };
        n == PIECE as isize && back == buf
    });
    // SAFETY: the fd is ours.
    unsafe { libc::close(fd) };
    ok
}

/// Forks; the child makes its own creation call on `file` and exits 0 if it returned 1.
fn fork_child(file: &str, call: Call, open: OpenMode, offset: i64) -> Ended {
    let path = cstr(file);
    std::thread::sleep(Duration::from_micros(200));
    // SAFETY: the child only makes async-signal-safe calls (open, pwrite, _exit).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let flags = if open == OpenMode::Rdwr { libc::O_RDWR | libc::O_CREAT } else { libc::O_WRONLY | libc::O_CREAT };
        // SAFETY: as above.
        unsafe {
            let fd = libc::open64(path.as_ptr(), flags, 0o600);
            let byte = 0u8;
            let ret = match call {
                Call::Pwrite => libc::pwrite(fd, (&byte as *const u8).cast(), 1, offset as libc::off_t),
                _ => libc::pwrite64(fd, (&byte as *const u8).cast(), 1, offset),
            };
            libc::_exit(if ret == 1 { 0 } else { 1 });
        }
    }
    wait_for(pid)
}

/// Waits up to CHILD_TIMEOUT for `pid`, then kills it.
fn wait_for(pid: libc::pid_t) -> Ended {
    let deadline = Instant::now() + CHILD_TIMEOUT;
    loop {
        let mut status = 0;
        // SAFETY: status is writable.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return if libc::WIFEXITED(status) {
                Ended::Exited(libc::WEXITSTATUS(status))
            } else {
                Ended::Signaled(libc::WTERMSIG(status))
            };
        }
        if r < 0 && errno() != libc::EINTR {
            return Ended::WaitFailed(errno());
        }
        if Instant::now() > deadline {
            // SAFETY: pid is our child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return Ended::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// posix_spawn (vfork + exec) of /bin/true.
fn spawn_true() -> Ended {
    let prog = cstr("/bin/true");
    let argv = [prog.as_ptr() as *mut libc::c_char, std::ptr::null_mut()];
    let mut pid = 0;
    // SAFETY: argv is NULL-terminated; envp is this process's environment.
    let r = unsafe {
        libc::posix_spawn(&mut pid, prog.as_ptr(), std::ptr::null(), std::ptr::null(), argv.as_ptr(), environ())
    };
    if r != 0 {
        return Ended::SpawnFailed(r);
    }
    wait_for(pid)
}

fn environ() -> *const *mut libc::c_char {
    extern "C" {
        static environ: *const *mut libc::c_char;
    }
    // SAFETY: reading libc's environ pointer.
    unsafe { environ }
}

static SIGNALS: AtomicU64 = AtomicU64::new(0);

extern "C" fn count_signal(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::Relaxed);
}

/// SIGALRM every STORM_PERIOD, delivered to a handler installed without SA_RESTART, so
/// that interruptible calls fail with EINTR.
pub struct Storm;

/// Microseconds between two SIGALRMs of the storm.
const STORM_PERIOD_US: libc::suseconds_t = 50;

impl Storm {
    pub fn start() -> Storm {
        // SAFETY: a zeroed sigaction with a valid handler and an empty mask.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = count_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut());
        }
        Storm::timer(STORM_PERIOD_US);
        Storm
    }

    fn timer(us: libc::suseconds_t) {
        let t = libc::timeval { tv_sec: 0, tv_usec: us };
        let it = libc::itimerval { it_interval: t, it_value: t };
        // SAFETY: it is a valid itimerval.
        unsafe { libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut()) };
    }

    /// Stops the storm; the signals received.
    pub fn stop(self) -> u64 {
        Storm::timer(0);
        SIGNALS.load(Ordering::Relaxed)
    }
}
