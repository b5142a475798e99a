//! A stand-in for VMware's `vmware-vmx`: creates a guest memory file the way vmx does,
//! `pwrite64(fd, "\0", 1, size - 1)`, then simulates the guest's life by writing
//! regions back in random order with `fdatasync`, optionally while a second writer
//! competes for the same filesystem. Uses libc only (never the engine), so that what
//! it observes is what any program would. Results are printed as `key=value` lines.
//!
//! Run `fake_vmx --help` for the options.

#[path = "shared/rng.rs"]
mod rng;

use rng::Rng;
use std::ffi::CString;
use std::process::exit;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Instant;

const USAGE: &str = "\
usage: fake_vmx --path FILE [options]

Creates FILE like vmware-vmx creates a .vmem, then writes guest pages into it.

options:
  --size BYTES         size of the file (default 268435456)
  --call NAME          symbol that makes the creation call: pwrite64, pwrite, __pwrite64,
                       write (after lseek to the offset), ftruncate, ftruncate64 (to
                       offset + nbyte; they return 0)
                       (default pwrite64)
  --open MODE          rdwr, wronly, append, rdonly, direct, rdwr-nolfs (open(2)
                       without O_LARGEFILE) (default rdwr)
  --target KIND        file, pipe, socket: what the fd is (default file)
  --prefill BYTES      write a pattern over the first BYTES before the creation call
  --seek OFFSET        move the fd's file offset here before the creation call
  --offset N           the creation call's offset (default size - 1)
  --nbyte N            the creation call's byte count (default 1)
  --writes N           guest writes after creation (default 0)
  --chunk BYTES        bytes per guest write (default 1048576)
  --sync-every N       fdatasync after every N guest writes (default 1)
  --seed N             seed of the write order and contents (default 1)
  --competitor FILE    a second thread appends to FILE while the guest writes
  --second FILE        after the first, create FILE the same way in the same process
  --concurrent FILE    create FILE from a second thread at the same moment as the first
  --threads N          N threads each make 512 4 KiB pwrites into FILE.tI around the
                       creation call, then read them back
  --fork               fork during the creation call: the child creates FILE.child the
                       same way and exits; the parent waits up to 60 s for it
  --spawn              posix_spawn /bin/true during the creation call
  --signal-storm       SIGALRM every 50 us (a handler without SA_RESTART) during the
                       creation call
  --report-memory      print the process's peak and current RSS at the end
  --help               this text

output (stdout), one key=value per line:
  create_ret, create_errno   what the creation call returned
  offset_before, offset_after  the fd's file offset around the creation call
  create_ns                  time taken by the creation call
  size_after_create, allocated_after_create  st_size and st_blocks * 512 right after
  second_ret, concurrent_ret the creation calls of --second and --concurrent
  threads_ok                 --threads whose files read back as written
  child_status, spawn_status exit status of the --fork child and the --spawn child
  signals                    SIGALRMs received during --signal-storm
  vm_hwm_kib, vm_rss_kib     --report-memory
  writes, run_ns, final_size  the simulated run
";

struct Opts {
    path: Option<String>,
    size: u64,
    call: String,
    open: String,
    target: String,
    prefill: u64,
    seek: Option<i64>,
    offset: Option<i64>,
    nbyte: usize,
    writes: u64,
    chunk: u64,
    sync_every: u64,
    seed: u64,
    competitor: Option<String>,
    second: Option<String>,
    concurrent: Option<String>,
    threads: usize,
    fork: bool,
    spawn: bool,
    signal_storm: bool,
    report_memory: bool,
}

fn die(msg: &str) -> ! {
    eprintln!("fake_vmx: {msg}");
    exit(2)
}

fn parse_args() -> Opts {
    let mut o = Opts {
        path: None,
        size: 256 << 20,
        call: "pwrite64".into(),
        open: "rdwr".into(),
        target: "file".into(),
        prefill: 0,
        seek: None,
        offset: None,
        nbyte: 1,
        writes: 0,
        chunk: 1 << 20,
        sync_every: 1,
        seed: 1,
        competitor: None,
        second: None,
        concurrent: None,
        threads: 0,
        fork: false,
        spawn: false,
        signal_storm: false,
        report_memory: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--help" | "-h" => {
                print!("{USAGE}");
                exit(0);
            }
            "--fork" => o.fork = true,
            "--spawn" => o.spawn = true,
            "--signal-storm" => o.signal_storm = true,
            "--report-memory" => o.report_memory = true,
            _ => {}
        }
        if ["--fork", "--spawn", "--signal-storm", "--report-memory"].contains(&flag.as_str()) {
            continue;
        }
        let value = args.next().unwrap_or_else(|| die(&format!("{flag} needs a value (see --help)")));
        let num = |v: &str| -> u64 { v.parse().unwrap_or_else(|_| die(&format!("{flag}: not a number: {v}"))) };
        let signed = |v: &str| -> i64 { v.parse().unwrap_or_else(|_| die(&format!("{flag}: not a number: {v}"))) };
        match flag.as_str() {
            "--path" => o.path = Some(value),
            "--size" => o.size = num(&value),
            "--call" => o.call = value,
            "--open" => o.open = value,
            "--target" => o.target = value,
            "--prefill" => o.prefill = num(&value),
            "--seek" => o.seek = Some(signed(&value)),
            "--offset" => o.offset = Some(signed(&value)),
            "--nbyte" => o.nbyte = num(&value) as usize,
            "--writes" => o.writes = num(&value),
            "--chunk" => o.chunk = num(&value).max(1),
            "--sync-every" => o.sync_every = num(&value).max(1),
            "--seed" => o.seed = num(&value),
            "--competitor" => o.competitor = Some(value),
            "--second" => o.second = Some(value),
            "--concurrent" => o.concurrent = Some(value),
            "--threads" => o.threads = num(&value) as usize,
            _ => die(&format!("unknown option {flag} (see --help)")),
        }
    }
    o
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap_or_else(|_| die("path has a NUL byte"))
}

/// Deterministic contents for a write at `offset`.
fn fill(buf: &mut [u8], seed: u64, offset: u64) {
    let mut r = Rng(seed ^ offset.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    for b in buf.chunks_mut(8) {
        let v = r.next().to_le_bytes();
        b.copy_from_slice(&v[..b.len()]);
    }
}

fn open_file(path: &str, mode: &str) -> i32 {
    let flags = match mode {
        "rdwr" => libc::O_RDWR | libc::O_CREAT,
        "wronly" => libc::O_WRONLY | libc::O_CREAT,
        "append" => libc::O_RDWR | libc::O_CREAT | libc::O_APPEND,
        "rdonly" => libc::O_RDONLY | libc::O_CREAT,
        "direct" => libc::O_RDWR | libc::O_CREAT | libc::O_DIRECT,
        // open(2) rather than open64: without O_LARGEFILE a 32-bit process cannot write
        // past 2 GiB (64-bit kernels set it for 64-bit processes anyway).
        "rdwr-nolfs" => {
            // SAFETY: a valid NUL-terminated path.
            let fd = unsafe { libc::open(cstr(path).as_ptr(), libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC, 0o600) };
            if fd < 0 {
                die(&format!("open {path}: {}", std::io::Error::last_os_error()));
            }
            return fd;
        }
        other => die(&format!("--open: unknown mode {other}")),
    };
    // SAFETY: a valid NUL-terminated path.
    let fd = unsafe { libc::open64(cstr(path).as_ptr(), flags | libc::O_CLOEXEC, 0o600) };
    if fd < 0 {
        die(&format!("open {path}: {}", std::io::Error::last_os_error()));
    }
    fd
}

fn open_target(o: &Opts) -> i32 {
    let mut pair = [0i32; 2];
    match o.target.as_str() {
        "file" => open_file(o.path.as_deref().unwrap_or_else(|| die("--path is required (see --help)")), &o.open),
        // SAFETY: pair has room for two fds.
        "pipe" if unsafe { libc::pipe(pair.as_mut_ptr()) } == 0 => pair[1],
        // SAFETY: as above.
        "socket" if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, pair.as_mut_ptr()) } == 0 => pair[1],
        other => die(&format!("--target {other}: unknown, or could not be made")),
    }
}

extern "C" {
    fn __pwrite64(fd: i32, buf: *const libc::c_void, n: libc::size_t, off: libc::off64_t) -> libc::ssize_t;
}

/// The creation call, through the symbol asked for.
fn create(fd: i32, call: &str, byte: &[u8], offset: i64) -> isize {
    let (p, n) = (byte.as_ptr().cast(), byte.len());
    // SAFETY: byte is valid for n bytes; the fd and offset are the experiment.
    unsafe {
        match call {
            "pwrite64" => libc::pwrite64(fd, p, n, offset),
            "__pwrite64" => __pwrite64(fd, p, n, offset),
            "pwrite" => match libc::off_t::try_from(offset) {
                Ok(off) => libc::pwrite(fd, p, n, off),
                Err(_) => die("--call pwrite: the offset does not fit this architecture's off_t"),
            },
            // dd's way: lseek beyond the end, then a one-byte write.
            "write" => {
                if libc::lseek64(fd, offset, libc::SEEK_SET) < 0 {
                    return -1;
                }
                libc::write(fd, p, n)
            }
            // QEMU's and truncate(1)'s way: the size set directly (returns 0, not n).
            "ftruncate64" => libc::ftruncate64(fd, offset + n as i64) as isize,
            "ftruncate" => match libc::off_t::try_from(offset + n as i64) {
                Ok(len) => libc::ftruncate(fd, len) as isize,
                Err(_) => die("--call ftruncate: the size does not fit this architecture's off_t"),
            },
            other => die(&format!("--call: unknown symbol {other}")),
        }
    }
}

fn stat(fd: i32) -> libc::stat64 {
    // SAFETY: an all-zero stat64 is a valid value to overwrite.
    let mut st: libc::stat64 = unsafe { std::mem::zeroed() };
    // SAFETY: st is writable.
    unsafe { libc::fstat64(fd, &mut st) };
    st
}

/// The second writer: appends 1 MiB pieces to its own file until told to stop.
fn competitor(path: String, stop: Arc<AtomicBool>, limit: u64) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let fd = open_file(&path, "rdwr");
        let buf = vec![0x5Au8; 1 << 20];
        let mut off = 0u64;
        while !stop.load(Ordering::Relaxed) && off < limit {
            // SAFETY: buf is valid for its length.
            if unsafe { libc::pwrite64(fd, buf.as_ptr().cast(), buf.len(), off as i64) } <= 0 {
                break;
            }
            off += buf.len() as u64;
            // SAFETY: a plain fd.
            unsafe { libc::fdatasync(fd) };
        }
        // SAFETY: the fd is ours.
        unsafe { libc::close(fd) };
    })
}

fn main() {
    let o = parse_args();
    let fd = open_target(&o);
    if o.prefill > 0 {
        let mut buf = vec![0u8; o.prefill as usize];
        fill(&mut buf, o.seed, 0);
        // SAFETY: buf is valid for its length.
        if unsafe { libc::pwrite64(fd, buf.as_ptr().cast(), buf.len(), 0) } != buf.len() as isize {
            die(&format!("prefill: {}", std::io::Error::last_os_error()));
        }
    }
    if let Some(pos) = o.seek {
        // SAFETY: a plain fd.
        unsafe { libc::lseek64(fd, pos, libc::SEEK_SET) };
    }
    let offset = o.offset.unwrap_or(o.size as i64 - 1);
    let byte = vec![0u8; o.nbyte];
    // SAFETY: a plain fd; -1 (ESPIPE) for pipes and sockets is reported as is.
    let offset_before = unsafe { libc::lseek64(fd, 0, libc::SEEK_CUR) };
    let helpers = Helpers::start(&o, offset);
    let storm = o.signal_storm.then(Storm::start);
    // SAFETY: errno is this thread's.
    unsafe { *libc::__errno_location() = 0 };
    let started = Instant::now();
    let ret = create(fd, &o.call, &byte, offset);
    let create_errno = if ret < 0 { errno() } else { 0 };
    let create_ns = started.elapsed().as_nanos();
    // SAFETY: as above.
    let offset_after = unsafe { libc::lseek64(fd, 0, libc::SEEK_CUR) };
    let st = stat(fd);
    println!("create_ret={ret}");
    println!("create_errno={create_errno}");
    println!("offset_before={offset_before}");
    println!("offset_after={offset_after}");
    println!("create_ns={create_ns}");
    println!("size_after_create={}", st.st_size);
    println!("allocated_after_create={}", st.st_blocks as u64 * 512);
    if let Some(storm) = storm {
        println!("signals={}", storm.stop());
    }
    for (key, value) in helpers.finish() {
        println!("{key}={value}");
    }
    if let Some(second) = &o.second {
        let fd2 = open_file(second, &o.open);
        println!("second_ret={}", create(fd2, &o.call, &byte, offset));
        // SAFETY: the fd is ours.
        unsafe { libc::close(fd2) };
    }

    let stop = Arc::new(AtomicBool::new(false));
    let rival = o.competitor.clone().map(|p| competitor(p, stop.clone(), o.size));
    let slots = (o.size / o.chunk).max(1);
    let mut rng = Rng(o.seed | 1);
    let mut buf = vec![0u8; o.chunk as usize];
    let started = Instant::now();
    let mut done = 0;
    for i in 0..o.writes {
        let at = (rng.next() % slots) * o.chunk;
        let len = o.chunk.min(o.size - at) as usize;
        fill(&mut buf[..len], o.seed, at);
        // SAFETY: buf is valid for len bytes.
        if unsafe { libc::pwrite64(fd, buf.as_ptr().cast(), len, at as i64) } != len as isize {
            eprintln!("fake_vmx: guest write at {at}: {}", std::io::Error::last_os_error());
            break;
        }
        done += 1;
        if (i + 1) % o.sync_every == 0 {
            // SAFETY: a plain fd.
            unsafe { libc::fdatasync(fd) };
        }
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(t) = rival {
        let _ = t.join();
    }
    println!("writes={done}");
    println!("run_ns={}", started.elapsed().as_nanos());
    println!("final_size={}", stat(fd).st_size);
    if o.report_memory {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        for (field, key) in [("VmHWM:", "vm_hwm_kib"), ("VmRSS:", "vm_rss_kib")] {
            let kib = status.lines().find_map(|l| l.strip_prefix(field)).map(|v| v.trim().trim_end_matches(" kB"));
            println!("{key}={}", kib.unwrap_or("0"));
        }
    }
}

/// What a helper reports: `key=value` lines.
type Report = Vec<(String, String)>;
type Job = Box<dyn FnOnce() -> Report + Send>;

/// Threads and processes that act while the creation call runs. Each waits on a
/// barrier with the main thread, so they start together with the call.
struct Helpers {
    handles: Vec<std::thread::JoinHandle<Report>>,
}

impl Helpers {
    fn start(o: &Opts, offset: i64) -> Helpers {
        let path = o.path.clone().unwrap_or_default();
        let mut jobs: Vec<Job> = Vec::new();
        for t in 0..o.threads {
            let (file, seed) = (format!("{path}.t{t}"), o.seed + t as u64 + 1);
            jobs.push(Box::new(move || vec![("thread_ok".into(), (writer_thread(&file, seed) as u8).to_string())]));
        }
        if let Some(file) = o.concurrent.clone() {
            let (call, open) = (o.call.clone(), o.open.clone());
            let fd = open_file(&file, &open);
            jobs.push(Box::new(move || vec![("concurrent_ret".into(), create(fd, &call, &[0], offset).to_string())]));
        }
        if o.fork {
            let (file, call, open) = (format!("{path}.child"), o.call.clone(), o.open.clone());
            jobs.push(Box::new(move || vec![("child_status".into(), fork_child(&file, &call, &open, offset))]));
        }
        if o.spawn {
            jobs.push(Box::new(|| vec![("spawn_status".into(), spawn_true())]));
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

    fn finish(self) -> Report {
        let mut out = Report::new();
        let mut threads_ok = None;
        for h in self.handles {
            for (k, v) in h.join().expect("helper thread") {
                if k == "thread_ok" {
                    *threads_ok.get_or_insert(0) += v.parse::<u32>().unwrap_or(0);
                } else {
                    out.push((k, v));
                }
            }
        }
        out.extend(threads_ok.map(|n| ("threads_ok".to_string(), n.to_string())));
        out
    }
}

/// 512 writes of 4 KiB at random offsets of its own file, then reads them back.
fn writer_thread(file: &str, seed: u64) -> bool {
    const PIECE: usize = 4096;
    let fd = open_file(file, "rdwr");
    let mut rng = Rng(seed | 1);
    let mut buf = [0u8; PIECE];
    let offsets: Vec<u64> = (0..512).map(|_| (rng.next() % 2048) * PIECE as u64).collect();
    for &at in &offsets {
        fill(&mut buf, seed, at);
        // SAFETY: buf is valid for PIECE bytes.
        if unsafe { libc::pwrite64(fd, buf.as_ptr().cast(), PIECE, at as i64) } != PIECE as isize {
            return false;
        }
    }
    let mut back = [0u8; PIECE];
    let ok = offsets.iter().all(|&at| {
        fill(&mut buf, seed, at);
        // SAFETY: back is valid for PIECE bytes.
        let n = unsafe { libc::pread64(fd, back.as_mut_ptr().cast(), PIECE, at as i64) };
        n == PIECE as isize && back == buf
    });
    // SAFETY: the fd is ours.
    unsafe { libc::close(fd) };
    ok
}

/// Forks; the child makes its own creation call on `file` and exits 0 if it returned 1.
/// Returns the child's exit status, or `timeout` if it hung (it is then killed).
fn fork_child(file: &str, call: &str, open: &str, offset: i64) -> String {
    let path = cstr(file);
    std::thread::sleep(std::time::Duration::from_micros(200));
    // SAFETY: the child only makes async-signal-safe calls (open, pwrite, _exit).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let flags = if open == "rdwr" { libc::O_RDWR | libc::O_CREAT } else { libc::O_WRONLY | libc::O_CREAT };
        // SAFETY: as above.
        unsafe {
            let fd = libc::open64(path.as_ptr(), flags, 0o600);
            let byte = 0u8;
            let ret = match call {
                "pwrite" => libc::pwrite(fd, (&byte as *const u8).cast(), 1, offset as libc::off_t),
                _ => libc::pwrite64(fd, (&byte as *const u8).cast(), 1, offset),
            };
            libc::_exit(if ret == 1 { 0 } else { 1 });
        }
    }
    wait_for(pid)
}

/// Waits up to 60 s for `pid`; its exit status, `signal N`, or `timeout`.
fn wait_for(pid: libc::pid_t) -> String {
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let mut status = 0;
        // SAFETY: status is writable.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status).to_string()
            } else {
                format!("signal {}", libc::WTERMSIG(status))
            };
        }
        if r < 0 && errno() != libc::EINTR {
            return format!("waitpid errno {}", errno());
        }
        if Instant::now() > deadline {
            // SAFETY: pid is our child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return "timeout".into();
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// posix_spawn (vfork + exec) of /bin/true; its exit status.
fn spawn_true() -> String {
    let prog = cstr("/bin/true");
    let argv = [prog.as_ptr() as *mut libc::c_char, std::ptr::null_mut()];
    let mut pid = 0;
    // SAFETY: argv is NULL-terminated; envp is this process's environment.
    let r = unsafe {
        libc::posix_spawn(&mut pid, prog.as_ptr(), std::ptr::null(), std::ptr::null(), argv.as_ptr(), environ())
    };
    if r != 0 {
        return format!("posix_spawn errno {r}");
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

/// SIGALRM every 50 us, delivered to a handler installed without SA_RESTART, so that
/// interruptible calls fail with EINTR.
struct Storm;

impl Storm {
    fn start() -> Storm {
        // SAFETY: a zeroed sigaction with a valid handler and an empty mask.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = count_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut());
        }
        Storm::timer(50);
        Storm
    }

    fn timer(us: libc::suseconds_t) {
        let t = libc::timeval { tv_sec: 0, tv_usec: us };
        let it = libc::itimerval { it_interval: t, it_value: t };
        // SAFETY: it is a valid itimerval.
        unsafe { libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut()) };
    }

    fn stop(self) -> u64 {
        Storm::timer(0);
        SIGNALS.load(Ordering::Relaxed)
    }
}
