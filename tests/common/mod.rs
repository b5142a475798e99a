//! The harness's tools: run fake_vmx with and without the library, and measure the
//! file it made from outside — size, allocation (stat), holes and fragments (filefrag),
//! bytes, and the syscalls it made (strace).

#![allow(dead_code)]

pub mod artifacts;
pub mod compare;
pub mod cprog;
pub mod devlog;
pub mod loopfs;
pub mod outside;
pub mod qemu;

use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;
/// ext4's largest extent is 32768 blocks of 4 KiB.
pub const EXT4_MAX_EXTENT: u64 = 128 * MIB;

pub fn artifacts() -> &'static artifacts::Artifacts {
    static A: OnceLock<artifacts::Artifacts> = OnceLock::new();
    A.get_or_init(artifacts::build)
}

/// Whether this run must not skip anything (CI sets CI=true).
pub fn strict() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Returns true when the test may go on. Otherwise: under CI=true a failure, else a
/// loud skip.
pub fn require(ok: bool, what: &str) -> bool {
    if !ok {
        assert!(!strict(), "CI=true and this test cannot run: {what}");
        eprintln!("SKIPPED (not CI): {what}");
    }
    ok
}

/// Starts `cmd` as a service manager starts a service: SIGPIPE ignored; and here also
/// SIGCHLD ignored (as some programs leave it for those they start), SIGUSR1 and SIGTERM
/// blocked, and SIGUSR1 pending, so that a launcher that does not pass on the signal
/// state it was given shows in the program's /proc/self/status.
pub fn start_like_a_service(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only sigprocmask and signal between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR1);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            libc::signal(libc::SIGCHLD, libc::SIG_IGN);
            libc::kill(libc::getpid(), libc::SIGUSR1);
            Ok(())
        })
    };
}

/// Starts `cmd` with every signal at its default action and none blocked, whatever the
/// test runner was given: a suite started in the background of a script runs with
/// SIGINT and SIGQUIT ignored, and a test that sends a signal must not depend on that.
pub fn default_signals(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only signal and sigprocmask between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            for sig in 1..=libc::SIGRTMAX() {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            Ok(())
        })
    };
}

/// Whether the `SigIgn:` line of a /proc/PID/status text has SIGPIPE and SIGCHLD.
pub fn sigpipe_and_sigchld_ignored(status: &str) -> bool {
    let ign = status.lines().find_map(|l| l.strip_prefix("SigIgn:")).expect("a SigIgn: line");
    let both = 1 << (libc::SIGPIPE - 1) | 1 << (libc::SIGCHLD - 1);
    u64::from_str_radix(ign.trim(), 16).expect("hex") & both == both
}

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

pub fn have(tool: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success())
        || ["/sbin", "/usr/sbin"].iter().any(|d| Path::new(d).join(tool).exists())
}

/// A directory for one test, on the disk that holds the build (not tmpfs), removed
/// when dropped.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let dir = base.join(format!("{name}-{}-{}", artifacts::TARGET, std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes the files (or directories) it holds when dropped, even when the test fails.
pub struct Cleanup(pub Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p).or_else(|_| std::fs::remove_dir_all(p));
        }
    }
}

/// One run of fake_vmx.
#[derive(Clone)]
pub struct Vmx {
    args: Vec<String>,
    env: Vec<(String, String)>,
    preload: bool,
    /// Shell commands run before fake_vmx is exec'd (ulimit, trap).
    shell: Option<String>,
    /// Another example to run instead of fake_vmx.
    program: Option<PathBuf>,
    /// Extra libraries preloaded after libnosparse.so.
    also_preload: Vec<PathBuf>,
    /// Killed (SIGKILL) after this many seconds: a hang fails the test, not the suite.
    timeout: Option<u32>,
    /// Killed (SIGKILL) after this many milliseconds, on purpose.
    kill_after_ms: Option<u64>,
    /// Shell commands run first in a private mount namespace (`unshare --mount`).
    mounts: Option<String>,
    /// strace's options, to run the program under strace.
    strace: Option<String>,
    /// Traces the preallocation syscalls into [`Outcome::trace`] (see [`Vmx::traced`]).
    trace_method: bool,
}

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Outcome {
    pub kv: HashMap<String, String>,
    pub stdout: String,
    pub stderr: String,
    /// Exit status, or -1 when killed by a signal.
    pub status: i32,
    pub signal: Option<i32>,
    /// What strace logged, for runs made with [`Vmx::strace`].
    pub trace: String,
}

impl Outcome {
    pub fn get(&self, key: &str) -> i64 {
        self.kv
            .get(key)
            .unwrap_or_else(|| panic!("fake_vmx printed no {key}: {:?}\n{}", self.kv, self.stderr))
            .parse()
            .expect("a number")
    }

    /// The observable results of the creation call, for comparing two runs.
    pub fn observed(&self) -> [(&'static str, i64); 5] {
        ["create_ret", "create_errno", "offset_after", "size_after_create", "final_size"].map(|k| (k, self.get(k)))
    }
}

pub fn vmx(path: &Path) -> Vmx {
    Vmx {
        args: vec!["--path".into(), path.display().to_string()],
        env: Vec::new(),
        preload: true,
        shell: None,
        program: None,
        also_preload: Vec::new(),
        timeout: None,
        kill_after_ms: None,
        mounts: None,
        strace: None,
        trace_method: false,
    }
}

/// A run of another example program (built by [`artifacts::build`] beside fake_vmx).
pub fn example(name: &str) -> Vmx {
    let program = artifacts().fake_vmx.with_file_name(name);
    Vmx { args: Vec::new(), program: Some(program), ..vmx(Path::new("")) }
}

/// A run of the C program tests/c/`name`.c, compiled for this target.
pub fn c_program(name: &str) -> Vmx {
    Vmx { program: Some(cprog::program(name)), ..example(name) }
}

impl Vmx {
    pub fn arg(mut self, flag: &str, value: impl ToString) -> Self {
        self.args.push(flag.into());
        self.args.push(value.to_string());
        self
    }

    /// A flag without a value, such as `--fork`.
    pub fn flag(mut self, flag: &str) -> Self {
        self.args.push(flag.into());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn without_library(mut self) -> Self {
        self.preload = false;
        self
    }

    /// Runs `prefix` in sh before exec'ing the program, e.g. `ulimit -f 1024`.
    pub fn shell(mut self, prefix: &str) -> Self {
        self.shell = Some(prefix.into());
        self
    }

    /// Kills the run after `seconds`.
    pub fn timeout(mut self, seconds: u32) -> Self {
        self.timeout = Some(seconds);
        self
    }

    /// Kills the program (SIGKILL) after `ms` milliseconds.
    pub fn kill_after_ms(mut self, ms: u64) -> Self {
        self.kill_after_ms = Some(ms);
        self
    }

    /// Runs `setup` (shell commands, e.g. mounts) in a private mount namespace, then the
    /// program there: what is mounted is seen by the program and nothing else.
    pub fn private_mounts(mut self, setup: &str) -> Self {
        self.mounts = Some(setup.into());
        self
    }

    /// Runs the program under `strace` with these options (e.g. `-f -o FILE`); the
    /// library is preloaded into the program, not into strace.
    pub fn strace(mut self, options: &str) -> Self {
        self.strace = Some(options.into());
        self
    }

    /// Preloads `lib` too, after libnosparse.so.
    pub fn also_preload(mut self, lib: &Path) -> Self {
        self.also_preload.push(lib.into());
        self
    }

    /// Traces the preallocation syscalls (fallocate, madvise) with strace, into
    /// [`Outcome::trace`], for [`outside::method`] to judge.
    pub fn traced(mut self) -> Self {
        self.trace_method = true;
        self
    }

    /// The file this run creates.
    pub fn path(&self) -> PathBuf {
        let i = self.args.iter().position(|a| a == "--path").expect("--path");
        PathBuf::from(&self.args[i + 1])
    }

    /// Runs and returns the outcome; panics unless the program exited 0.
    pub fn run(&self) -> Outcome {
        let o = self.run_raw();
        assert_eq!(o.status, 0, "{:?} failed ({:?}): {}", self.args, o.signal, o.stderr);
        o
    }

    /// Runs and returns the outcome, however it ended.
    pub fn run_raw(&self) -> Outcome {
        let a = artifacts();
        let program = self.program.as_deref().unwrap_or(&a.fake_vmx);
        let trace_file = tempfile_path("strace");
        let strace = match (&self.strace, self.trace_method) {
            (Some(options), _) => Some(options.clone()),
            (None, true) => {
                assert!(require(have("strace"), "strace is not installed (scripts/setup.sh installs it)"));
                Some(format!("-f -qq -e trace=fallocate,madvise -o {}", trace_file.display()))
            }
            (None, false) => None,
        };
        let mut argv: Vec<std::ffi::OsString> = Vec::new();
        if let Some(seconds) = self.timeout {
            argv.extend(["timeout", "--signal=KILL", &seconds.to_string()].map(Into::into));
        }
        if let Some(ms) = self.kill_after_ms {
            argv.extend(["timeout", "--signal=KILL", &format!("{}.{:03}", ms / 1000, ms % 1000)].map(Into::into));
        }
        if self.mounts.is_some() {
            argv.extend(["unshare", "--mount", "--propagation", "private"].map(Into::into));
        }
        // Wrapped runs go through sh, which sets LD_PRELOAD for the program alone: the
        // wrappers are the host's 64-bit programs, into which an i686 library cannot load.
        let late_preload = !argv.is_empty() || self.shell.is_some() || strace.is_some();
        if late_preload {
            let steps: Vec<&str> = [self.mounts.as_deref(), self.shell.as_deref()].into_iter().flatten().collect();
            let exec = match &strace {
                Some(options) => format!("exec strace {options} -E LD_PRELOAD=\"$TEST_LATE_PRELOAD\" \"$0\" \"$@\""),
                None => "LD_PRELOAD=\"$TEST_LATE_PRELOAD\" exec \"$0\" \"$@\"".into(),
            };
            let script = format!(
                "{}{}{exec}",
                if self.mounts.is_some() { "set -e; " } else { "" },
                steps.iter().map(|s| format!("{s}; ")).collect::<String>()
            );
            argv.extend(["sh".into(), "-c".into(), script.into()]);
        }
        let mut cmd = match argv.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(program);
                c
            }
            None => Command::new(program),
        };
        cmd.args(&self.args);
        for (k, _) in std::env::vars_os() {
            if k.as_bytes().starts_with(b"NOSPARSE_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("NOSPARSE_LOG", "stderr");
        cmd.env_remove("LD_PRELOAD");
        let mut preload: Vec<&Path> = Vec::new();
        if self.preload {
            preload.push(&a.lib);
        }
        preload.extend(self.also_preload.iter().map(PathBuf::as_path));
        if !preload.is_empty() {
            let list: Vec<String> = preload.iter().map(|p| p.display().to_string()).collect();
            cmd.env(if late_preload { "TEST_LATE_PRELOAD" } else { "LD_PRELOAD" }, list.join(" "));
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let out = cmd.output().expect("run the program");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let kv =
            stdout.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let trace = std::fs::read_to_string(&trace_file).unwrap_or_default();
        let _ = std::fs::remove_file(&trace_file);
        use std::os::unix::process::ExitStatusExt;
        Outcome {
            kv,
            stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            status: out.status.code().unwrap_or(-1),
            signal: out.status.signal(),
            trace,
        }
    }

    /// The arguments, to vary a run.
    pub fn args_mut(&mut self) -> &mut Vec<String> {
        &mut self.args
    }

    /// Runs without, then with, the library, on `path` and a sibling with `.bare`
    /// appended, and returns (without, with).
    pub fn both(&self, with_path: &Path) -> (Outcome, Outcome) {
        let bare = bare_path(with_path);
        let mut without = self.clone();
        without.preload = false;
        let i = without.args.iter().position(|a| a == "--path").expect("--path");
        without.args[i + 1] = bare.display().to_string();
        (without.run(), self.run())
    }
}

/// The file a run without the library made, beside the one made with it.
pub fn bare_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".bare");
    PathBuf::from(s)
}

/// A unique path in the build's temporary directory.
fn tempfile_path(what: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{what}-{}-{}-{n}", artifacts::TARGET, std::process::id()))
}

/// Where a file's bytes are, as seen from outside.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Physically contiguous runs, as `filefrag` counts them.
    pub fragments: u64,
    /// Bytes of `[0, size)` that no extent covers.
    pub hole_bytes: u64,
}

/// A file measured from outside.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub size: u64,
    /// st_blocks * 512.
    pub allocated: u64,
    pub layout: Layout,
}

/// st_blocks * 512 of `path`: what works on every filesystem, FIEMAP or not.
pub fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display())).blocks() * 512
}

/// Size and allocation (stat), holes and fragments (filefrag -v) of `path`, its data
/// first written out so that every extent has its place.
pub fn measure(path: &Path) -> Measured {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.sync_all().unwrap_or_else(|e| panic!("fsync {}: {e}", path.display()));
    let meta = f.metadata().expect("stat");
    use std::os::unix::fs::MetadataExt;
    let map = outside::filefrag(path).unwrap_or_else(|e| panic!("{e}"));
    let layout = Layout { fragments: map.fragments, hole_bytes: map.hole_bytes() };
    Measured { size: meta.len(), allocated: meta.blocks() * 512, layout }
}

/// Asserts `m` is allocated whole: every byte backed, no holes.
pub fn assert_whole(m: &Measured, what: &str) {
    assert!(m.allocated >= m.size, "{what}: {} of {} bytes allocated", m.allocated, m.size);
    assert_eq!(m.layout.hole_bytes, 0, "{what}: holes left: {m:?}");
}

/// Asserts the program saw the same results with and without the library.
pub fn assert_same(without: &Outcome, with: &Outcome, what: &str) {
    assert_eq!(without.observed(), with.observed(), "{what}: the program saw different results\n{}", with.stderr);
}

/// Asserts the library left the call alone: the same results, and the same allocation
/// right after the creation call (nothing added, or what was added undone).
pub fn assert_untouched(without: &Outcome, with: &Outcome, what: &str) {
    assert_same(without, with, what);
    let key = "allocated_after_create";
    assert_eq!(without.get(key), with.get(key), "{what}: allocation differs\n{}", with.stderr);
}

/// `ceil(size / 128 MiB)`: the fewest extents ext4 can hold a file in.
pub fn ext4_min_extents(size: u64) -> u64 {
    size.div_ceil(EXT4_MAX_EXTENT)
}

/// Asserts the two files hold the same bytes.
pub fn assert_same_content(a: &Path, b: &Path) {
    match compare::first_difference(a, b).expect("read the files") {
        None => {}
        Some(at) => panic!("{} and {} differ at byte {at}", a.display(), b.display()),
    }
}

/// Free bytes on the filesystem holding `path`, for everyone (f_bfree).
pub fn free_bytes(path: &Path) -> u64 {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: zeroed statvfs is a valid out-parameter.
    let mut st: libc::statvfs64 = unsafe { std::mem::zeroed() };
    // SAFETY: c is NUL-terminated, st writable.
    assert_eq!(unsafe { libc::statvfs64(c.as_ptr(), &mut st) }, 0, "statvfs {}", path.display());
    st.f_bfree * st.f_frsize as u64
}

pub use loopfs::LoopFs;

/// Makes and mounts a `kind` filesystem of `size` bytes in the scratch directory.
/// None (a loud skip) where that is impossible outside CI; under CI=true, a failure.
pub fn mount(scratch: &Scratch, kind: &str, size: u64) -> Option<LoopFs> {
    if !require(is_root(), "loop-mounted filesystems need root") {
        return None;
    }
    let mkfs = format!("mkfs.{kind}");
    if kind != "tmpfs" && !require(have(&mkfs), &format!("{mkfs} is not installed (scripts/setup.sh installs it)")) {
        return None;
    }
    Some(LoopFs::new(&scratch.dir, kind, size).unwrap_or_else(|e| panic!("{e}")))
}

/// Runs a shell command; panics with its output if it fails.
pub fn sh(cmd: &str) -> String {
    loopfs::sh(cmd).unwrap_or_else(|e| panic!("{e}"))
}

/// `FS_NOCOW_FL` from `<linux/fs.h>`: btrfs overwrites such a file in place.
pub const FS_NOCOW_FL: u32 = 0x0080_0000;

/// The inode attributes of `path` (what `lsattr` shows), from `FS_IOC_GETFLAGS`.
pub fn inode_flags(path: &Path) -> u32 {
    // _IOR('f', 1, long): the size field differs between x86_64 and i686; ext4, xfs and
    // btrfs read an int through either.
    const FS_IOC_GETFLAGS: libc::Ioctl = (2 << 30 | (std::mem::size_of::<libc::c_long>() << 16) | 0x66 << 8 | 1) as _;
    use std::os::unix::io::AsRawFd;
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut flags: libc::c_int = 0;
    // SAFETY: flags is a writable int, which is what the ioctl fills.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_GETFLAGS, &mut flags) };
    assert_eq!(r, 0, "FS_IOC_GETFLAGS {}: {}", path.display(), std::io::Error::last_os_error());
    flags as u32
}

/// The block of 4 KiB tagged `tag`, as the C programs write it (tests/c/common.h):
/// never zero, so it cannot be mistaken for a hole or a zero fill.
pub fn pattern(tag: u64) -> Vec<u8> {
    (0..4096u64).map(|j| (1 + (tag * 31 + j) % 251) as u8).collect()
}

/// Runs `check` on every case, going on after one fails, then fails naming each that did
/// (their own messages are printed as they happen): one run tells every broken case.
pub fn every_case<T>(cases: impl IntoIterator<Item = (String, T)>, check: impl Fn(&str, T)) {
    let (mut failed, mut n) = (Vec::new(), 0);
    for (name, case) in cases {
        n += 1;
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&name, case))).is_err() {
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "{} of {n} cases failed: {}", failed.len(), failed.join("; "));
}
