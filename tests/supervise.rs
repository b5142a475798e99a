//! `nosparse --supervise` and the launcher's automatic choice of it, judged from outside:
//! programs a preload cannot reach (static C with gcc and musl, Go) create files with
//! raw system calls, once without nosparse and once under the launcher; the program's
//! output (each call's result, errno, size and offset) must be identical, and the files
//! whole with nosparse (st_blocks), sparse without. For this test binary's target:
//! x86_64 programs under a 64-bit supervisor, i386 programs under a 32-bit one.

mod common;

use common::artifacts::{launcher, TARGET};
use common::devlog::{private_dev, DevLog};
use common::{have, require, Scratch, MIB};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

const SIZE: u64 = 128 * MIB;

fn i686() -> bool {
    TARGET.starts_with("i686")
}

fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("supervise-{TARGET}"));
    std::fs::create_dir_all(&dir).expect("create the build directory");
    dir
}

fn source(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(rel)
}

/// Builds once per test binary: `make` writes the program at the path it is given.
fn built(name: &str, make: impl FnOnce(&Path) -> Command) -> PathBuf {
    // Names built by this test binary; a program left by an earlier run may be stale.
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let dest = out_dir().join(name);
    if built.iter().any(|b| b == name) {
        return dest;
    }
    let partial = dest.with_extension(format!("partial-{}", std::process::id()));
    let mut cmd = make(&partial);
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/setup.sh installs it)"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    std::fs::rename(&partial, &dest).expect("rename the built program");
    built.push(name.to_string());
    dest
}

/// tests/c/raw_create.c, linked statically by `cc` (gcc) or `musl-gcc`.
fn raw_create(compiler: &str) -> PathBuf {
    built(&format!("raw_create-{compiler}"), |out| {
        let mut cc = Command::new(compiler);
        cc.args(["-std=gnu11", "-O2", "-Wall", "-Werror", "-static", "-pthread"]);
        if i686() {
            cc.arg("-m32");
        }
        cc.arg("-o").arg(out).arg(source("c/raw_create.c"));
        cc
    })
}

/// tests/go/create.go, built with Go's own toolchain (GOARCH=386 for i686): without cgo
/// a static program; `dynamic`: linked by gcc against libc (it has a loader, but still
/// makes its own system calls).
fn go_create(dynamic: bool) -> PathBuf {
    built(if dynamic { "go-create-dynamic" } else { "go-create" }, |out| {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let mut go = Command::new("go");
        go.arg("build");
        if dynamic {
            go.arg("-ldflags=-linkmode=external").env("CC", if i686() { "gcc -m32" } else { "gcc" });
        }
        go.arg("-o").arg(out).arg(source("go/create.go"));
        go.env("CGO_ENABLED", if dynamic { "1" } else { "0" }).env("GOARCH", if i686() { "386" } else { "amd64" });
        go.env("GOCACHE", tmp.join("go-cache")).env("GOPATH", tmp.join("go-path")).env("GO111MODULE", "off");
        go
    })
}

fn nosparse() -> &'static Path {
    static N: OnceLock<PathBuf> = OnceLock::new();
    N.get_or_init(launcher)
}

fn allocated(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).blocks() * 512
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// Runs `program MODE DIR SIZE`-style arguments without nosparse and under the launcher
/// with `options`; asserts the same status and output, and `files` sparse without,
/// whole with. Returns the launcher's stderr.
fn compare(program: &Path, before: &[&str], options: &[&str], files: &[&str]) -> String {
    let s = Scratch::new(&format!("sup-{}", before.first().copied().unwrap_or("go")));
    let (bare, with) = (s.path("bare"), s.path("with"));
    for d in [&bare, &with] {
        std::fs::create_dir_all(d).unwrap();
    }
    let size = SIZE.to_string();
    let without = output(Command::new(program).args(before).arg(&bare).arg(&size));
    let under =
        output(Command::new(nosparse()).args(options).arg("--").arg(program).args(before).arg(&with).arg(&size));
    let what = format!("{} {before:?}", program.display());
    assert_eq!(without.status.code(), under.status.code(), "{what}: status\n{}", text(&under.stderr));
    assert_eq!(text(&without.stdout), text(&under.stdout), "{what}: output\n{}", text(&under.stderr));
    for f in files {
        let (a, b) = (allocated(&bare.join(f)), allocated(&with.join(f)));
        assert!(a < SIZE / 2, "{what}: {f} without nosparse is not sparse: {a} bytes allocated");
        assert!(b >= SIZE, "{what}: {f} under nosparse is not whole: {b} of {SIZE} bytes\n{}", text(&under.stderr));
    }
    text(&under.stderr)
}

#[test]
fn static_programs_are_supervised_by_the_plain_launcher() {
    let p = raw_create("cc");
    let dry = output(Command::new(nosparse()).args(["--dry-run", "--"]).arg(&p));
    let dry = text(&dry.stdout);
    assert!(dry.contains("mode=supervise") && dry.contains("statically linked"), "{dry}");
    assert!(dry.contains("seccomp=full"), "{dry}");
    let err = compare(&p, &["pwrite"], &["--log", "stderr"], &["p"]);
    assert!(err.contains("nosparse: preallocated") && err.contains("raw_create-cc["), "{err}");
    // A child forked and exec'd; a program under its own seccomp filter; threads at once.
    compare(&p, &["fork"], &[], &["p"]);
    compare(&p, &["filter"], &[], &["s"]);
    let threads: Vec<String> = (0..8).map(|i| format!("t{i}")).collect();
    compare(&p, &["threads"], &[], &threads.iter().map(String::as_str).collect::<Vec<_>>());
    compare(&p, &["ftruncate"], &["--triggers", "pwrite,ftruncate"], &["f"]);
    // --preload: nothing reaches it.
    let s = Scratch::new("sup-preload");
    let out = output(Command::new(nosparse()).args(["--preload", "--"]).arg(&p).arg("pwrite").arg(&s.dir).arg("1000"));
    assert!(text(&out.stderr).contains("nothing can be preloaded"), "{}", text(&out.stderr));
}

/// `--debug` logs the calls left alone, with their reason, as the library does (the
/// sizes are then judged by the supervisor, not by the filter); and changes nothing else.
#[test]
fn debug_logs_the_calls_left_alone() {
    let debug = ["--supervise", "--debug", "--log", "stderr"];
    let err = compare(&raw_create("cc"), &["pwrite"], &[&debug[..], &["--min-size", "1T"]].concat(), &[]);
    let want = format!("(pwrite at {}): left alone: new hole below NOSPARSE_MIN_SIZE", SIZE - 1);
    assert!(err.contains(&want), "{err}");
    compare(&raw_create("cc"), &["errors"], &debug, &[]);
    // Left to the program by the supervisor (its result depends on the caller), with
    // the library's reason.
    let err = compare(&raw_create("cc"), &["direct"], &debug, &[]);
    assert!(err.contains(&format!("(pwrite at {}): left alone: one-byte O_DIRECT write", SIZE - 1)), "{err}");
    let err = compare(&raw_create("cc"), &["pwrite"], &debug, &["p"]);
    assert!(err.contains("preallocated"), "{err}");
}

#[test]
fn failing_calls_fail_as_without_nosparse() {
    // Bad descriptor, read-only, bad buffer, negative offset, O_APPEND, RLIMIT_FSIZE.
    compare(&raw_create("cc"), &["errors"], &["--supervise"], &[]);
}

#[test]
fn a_musl_program_is_supervised() {
    if i686() || !require(have("musl-gcc"), "musl-gcc (musl-tools) is not installed") {
        return;
    }
    compare(&raw_create("musl-gcc"), &["pwrite"], &[], &["p"]);
}

#[test]
fn go_programs_are_supervised() {
    if !require(have("go"), "go (golang-go) is not installed") {
        return;
    }
    for (dynamic, why) in [(false, "statically linked"), (true, "is a Go program")] {
        let p = go_create(dynamic);
        let dry = text(&output(Command::new(nosparse()).args(["--dry-run", "--"]).arg(&p)).stdout);
        assert!(dry.contains("mode=supervise") && dry.contains(why), "{dry}");
        compare(&p, &[], &["--triggers", "pwrite,ftruncate"], &["writeat", "truncate"]);
    }
}

#[test]
fn exit_statuses_and_signals_are_the_programs() {
    let n = nosparse().display().to_string();
    let out = output(Command::new(nosparse()).args(["--supervise", "--", "sh", "-c", "exit 7"]));
    assert_eq!(out.status.code(), Some(7));
    for (sig, status) in [("TERM", "143"), ("KILL", "137"), ("SEGV", "139")] {
        let script = format!("'{n}' --supervise -- sh -c 'kill -{sig} $$' 2>/dev/null; echo $?");
        let out = output(Command::new("sh").arg("-c").arg(&script));
        assert_eq!(text(&out.stdout).trim(), status, "killed by SIG{sig}");
    }
    // A program stopped by job control stops the launcher (the shell sees the job
    // stop); continued, it goes on. The launcher leads a process group of its own, as a
    // shell's job does: its parent (this test) is then outside the group and in its
    // session, so the group is not orphaned, whose members the kernel would not stop
    // by SIGTSTP (this test's own group may be orphaned, run in the background).
    let child = Command::new(nosparse())
        .args(["--supervise", "--", "sh", "-c", "kill -TSTP $$; echo continued"])
        .process_group(0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: pid is our child; status is written.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, libc::WUNTRACED) }, pid);
    assert!(libc::WIFSTOPPED(status), "the launcher did not stop with its program: {status:#x}");
    // SAFETY: a signal to our child.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!((out.status.code(), text(&out.stdout)), (Some(0), "continued\n".to_string()));
}

#[test]
fn a_killed_supervisor_leaves_enosys() {
    let s = Scratch::new("sup-killed");
    let mut child = Command::new(nosparse())
        .arg("--")
        .arg(raw_create("cc"))
        .args(["wait"])
        .arg(&s.dir)
        .arg(SIZE.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let mut stdin = child.stdin.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    // The program lives on; its next candidate call has no one to answer it.
    stdin.write_all(b"go\n").unwrap();
    let after = lines.next().unwrap().unwrap();
    assert!(after.starts_with("after ret=-1 errno=38 "), "{after}");
}

/// Programs nobody here wrote: Debian's static busybox creating files with `truncate -s`
/// (the ftruncate trigger) and `dd ... seek= conv=notrunc` (a one-byte write after a
/// seek: the write trigger). Under the i686 suite a 32-bit supervisor serves this
/// 64-bit program (its buffers above 4 GiB are read through /proc/PID/mem).
#[test]
fn busybox_is_supervised() {
    if !require(have("busybox"), "busybox (busybox-static) is not installed") {
        return;
    }
    let s = Scratch::new("sup-busybox");
    let seek = format!("seek={SIZE}");
    let runs: [(&str, &[&str]); 2] = [
        ("ftruncate", &["truncate", "-s", &SIZE.to_string()]),
        ("write", &["dd", "if=/dev/zero", "bs=1", "count=1", &seek, "conv=notrunc", "status=none"]),
    ];
    for (trigger, args) in runs {
        let (bare, with) = (s.path(&format!("{trigger}-bare")), s.path(&format!("{trigger}-with")));
        let arg = |file: &Path| {
            if trigger == "write" {
                format!("of={}", file.display())
            } else {
                file.display().to_string()
            }
        };
        let out = output(Command::new("busybox").args(args).arg(arg(&bare)));
        assert!(out.status.success(), "busybox {args:?}: {}", text(&out.stderr));
        let out =
            output(Command::new(nosparse()).args(["--triggers", trigger, "--", "busybox"]).args(args).arg(arg(&with)));
        assert!(out.status.success(), "busybox {args:?}: {}", text(&out.stderr));
        let (a, b) = (std::fs::metadata(&bare).unwrap(), std::fs::metadata(&with).unwrap());
        assert_eq!(a.len(), b.len(), "{trigger}: sizes differ");
        assert!(allocated(&bare) < SIZE / 2, "{trigger}: without nosparse not sparse");
        assert!(allocated(&with) >= SIZE, "{trigger}: with nosparse not whole: {}", text(&out.stderr));
    }
}

/// A program that leaves a process running (a daemon): the launcher ends with the
/// program, at once, and a detached helper still serves the one left behind. Its stdio
/// is /dev/null, so a line asked for on stderr goes to syslog (a stand-in `/dev/log`,
/// in a private mount namespace).
#[test]
fn processes_left_running_are_still_served() {
    if !require(common::is_root() && have("unshare"), "a private mount namespace (unshare --mount) needs root") {
        return;
    }
    let s = Scratch::new("sup-daemon");
    let p = raw_create("cc");
    let log = DevLog::new();
    // The daemon creates its file only once the test says so: a launcher that waited
    // for it would never end (output_promptly fails it after its bound).
    let go = s.path("go");
    let script = format!(
        "(while [ ! -e '{}' ]; do sleep 0.05; done; exec '{}' pwrite '{}' {SIZE}) >/dev/null 2>&1 & exit 3",
        go.display(),
        p.display(),
        s.dir.display()
    );
    let launch = format!(
        "{}; exec '{}' --supervise --log stderr -- sh -c \"$0\"",
        private_dev(Some(&log)),
        nosparse().display()
    );
    let out = output_promptly(Command::new("unshare").args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        &launch,
        &script,
    ]));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    std::fs::write(&go, b"").unwrap();
    let file = s.path("p");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0) < SIZE && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(allocated(&file) >= SIZE, "the daemon's file is not whole");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut lines = Vec::new();
    while lines.is_empty() && std::time::Instant::now() < deadline {
        lines.extend(log.take().into_iter().filter(|l| l.contains("nosparse: preallocated")));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(lines.len(), 1, "the daemon's line did not reach syslog");
}

/// Not root: the filter needs no_new_privs, which the child sets; a set-user-ID
/// program would lose its privileges under it, so `--supervise` refuses (125) and the
/// plain launcher runs it without the supervisor, saying why.
#[test]
fn unprivileged_supervision_and_set_user_id_programs() {
    if !require(common::is_root() && have("setpriv"), "needs root (to become nobody) and setpriv") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = PathBuf::from(format!("/tmp/nosparse-sup-{}-{TARGET}", std::process::id()));
    let _gone = common::Cleanup(vec![dir.clone()]);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (n, p, suid) = (dir.join("nosparse"), dir.join("raw_create"), dir.join("raw_create-suid"));
    for (from, to, mode) in
        [(nosparse(), &n, 0o755), (&raw_create("cc"), &p, 0o755), (&raw_create("cc"), &suid, 0o4755)]
    {
        std::fs::copy(from, to).unwrap();
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let nobody = |args: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"]).arg(&n).args(["--skip-fs", "none"]).args(args);
        output(&mut c)
    };
    let size = SIZE.to_string();
    let d = dir.display().to_string();
    let out = nobody(&["--", &p.display().to_string(), "pwrite", &d, &size]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(allocated(&dir.join("p")) >= SIZE, "not whole under an unprivileged supervisor");
    // A program that made itself not dumpable is out of an unprivileged supervisor's
    // reach: its call runs as without nosparse, and the log says why, once.
    let out = nobody(&["--supervise", "--log", "stderr", "--", &p.display().to_string(), "undumpable", &d, &size]);
    let err = text(&out.stderr);
    assert!(out.status.success() && text(&out.stdout) == format!("u ret=1 errno=0 size={SIZE} offset=0\n"), "{err}");
    assert_eq!(err.matches("not dumpable").count(), 1, "{err}");
    // Unless NOSPARSE_MATCH might have left the file out anyway (its path is hidden too).
    let out = nobody(&[
        "--supervise",
        "--log",
        "stderr",
        "--match",
        "*.vmem",
        "--",
        &p.display().to_string(),
        "undumpable",
        &d,
        &size,
    ]);
    assert!(out.status.success() && !text(&out.stderr).contains("dumpable"), "{}", text(&out.stderr));
    assert!(allocated(&dir.join("u")) < SIZE / 2, "allocated by a supervisor that may not reach the file");
    let out = nobody(&["--supervise", "--", &suid.display().to_string(), "pwrite", &d, "1000"]);
    assert!(out.status.code() == Some(125) && text(&out.stderr).contains("set-user-ID"), "{}", text(&out.stderr));
    let out = nobody(&["--", &suid.display().to_string(), "pwrite", &d, "1000"]);
    let err = text(&out.stderr);
    assert!(out.status.success() && err.contains("cannot be supervised") && err.contains("set-user-ID"), "{err}");
}

/// How long a program that should end at once may take on this shared machine.
const PROMPTLY: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits for `child` to end, at most [`PROMPTLY`]; kills it and fails when it hangs.
fn ends_promptly(child: &mut std::process::Child, what: &str) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + PROMPTLY;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {PROMPTLY:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Runs `cmd` with stdout and stderr captured, failing if it does not end promptly.
fn output_promptly(cmd: &mut Command) -> Output {
    let mut child =
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let readers = std::thread::spawn(move || {
        let (mut o, mut e) = (Vec::new(), Vec::new());
        std::io::Read::read_to_end(&mut out, &mut o).unwrap();
        std::io::Read::read_to_end(&mut err, &mut e).unwrap();
        (o, e)
    });
    let status = ends_promptly(&mut child, &format!("{cmd:?}"));
    let (stdout, stderr) = readers.join().unwrap();
    Output { status, stdout, stderr }
}

/// `nosparse --supervise yes | head -1` ends as `yes | head -1` does: PROGRAM starts with
/// SIGPIPE at its default (the launcher, a Rust program, ignores it), so `yes` dies of
/// it, and so does the launcher, silently. PROGRAM's signal mask and ignored signals are
/// the ones the launcher was started with, not the ones the supervisor and Rust's runtime
/// set: /proc/self/status of `grep` says the same with and without the supervisor,
/// started with SIGUSR1 and SIGTERM blocked and SIGPIPE ignored (as a service manager
/// starts a service).
#[test]
fn the_program_starts_with_default_sigpipe_and_the_launchers_mask() {
    use std::os::unix::process::ExitStatusExt;
    let mut child = Command::new(nosparse())
        .args(["--supervise", "--", "yes"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert_eq!(first, "y\n");
    // The reader is dropped: `yes` writes into a pipe nobody reads.
    let status = ends_promptly(&mut child, "nosparse --supervise yes | head -1");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "{status:?}: {err}");
    assert_eq!(err, "", "yes saw EPIPE instead of dying of SIGPIPE");

    let signals = |supervised: bool| {
        let mut c = if supervised { Command::new(nosparse()) } else { Command::new("grep") };
        if supervised {
            c.args(["--supervise", "--", "grep"]);
        }
        c.args(["-E", "^(Sig(Blk|Ign)|ShdPnd):", "/proc/self/status"]);
        common::start_like_a_service(&mut c);
        let out = output_promptly(&mut c);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let bare = signals(false);
    assert!(bare.contains("SigBlk:\t0000000000004200"), "the test's own mask: {bare}");
    assert!(bare.contains("ShdPnd:\t0000000000000200"), "the test's own pending SIGUSR1: {bare}");
    assert!(common::sigpipe_and_sigchld_ignored(&bare), "the test's own ignored signals: {bare}");
    assert_eq!(signals(true), bare, "the supervised program's signal mask or ignored signals differ");
}

/// Signals sent to the launcher (here with kill(2), as a service manager or `kill PID`
/// would) reach the program: its traps write what they saw, and the launcher ends with
/// the program's status. The terminal's signals go to the whole group and are not
/// passed on again (see the pty test below).
#[test]
fn signals_sent_to_the_launcher_reach_the_program() {
    let s = Scratch::new("sup-signals");
    let marker = s.path("marker");
    let rt = libc::SIGRTMIN() + 2;
    // Signals whose default would end the launcher, some of them fault signals sent
    // with kill(2): each must reach PROGRAM, in order.
    let sent = [
        (libc::SIGUSR1, "USR1"),
        (libc::SIGINT, "INT"),
        (libc::SIGHUP, "HUP"),
        (rt, "RT"),
        (libc::SIGABRT, "ABRT"),
        (libc::SIGPWR, "PWR"),
        (libc::SIGPIPE, "PIPE"),
        (libc::SIGSEGV, "SEGV"),
        (libc::SIGXFSZ, "XFSZ"),
        (libc::SIGPROF, "PROF"),
    ];
    let traps: String = sent.iter().map(|(sig, name)| format!("trap 'echo {name} >>\"$m\"' {sig}; ")).collect();
    // The loop ends by itself (after half a minute or more) if the launcher died.
    let script = format!(
        "m='{}'; trap 'echo TERM >>\"$m\"; exit 5' TERM; {traps}\
         echo ready; i=0; while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done",
        marker.display()
    );
    let mut cmd = Command::new(nosparse());
    cmd.args(["--supervise", "--", "sh", "-c", &script]).stdout(Stdio::piped());
    common::default_signals(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let pid = child.id() as libc::pid_t;
    let mut seen = String::new();
    for (sig, name) in sent {
        // SAFETY: a signal to our child, the launcher.
        unsafe { libc::kill(pid, sig) };
        seen.push_str(name);
        seen.push('\n');
        let deadline = std::time::Instant::now() + PROMPTLY;
        while std::fs::read_to_string(&marker).unwrap_or_default() != seen {
            assert!(std::time::Instant::now() < deadline, "the program did not see SIG{name}: {seen:?}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = ends_promptly(&mut child, "the launcher after SIGTERM");
    assert_eq!(status.code(), Some(5), "the launcher's status is not the program's");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), seen + "TERM\n");
}

/// A PROGRAM the kernel would not run fails at once with the shell's statuses, with or
/// without the supervisor: a FIFO (whose open would wait for a writer) and a directory
/// give 126 and say why; a file without execute permission 126; a missing one 127. A
/// file without `#!` that the kernel refuses (ENOEXEC) runs through /bin/sh, as the
/// shell and execvp(3) run it.
#[test]
fn programs_that_are_not_regular_files_or_not_executable() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new("sup-files");
    let fifo = s.path("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o755) }, 0, "mkfifo");
    let dir = s.path("dir");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = s.path("script");
    std::fs::write(&script, "echo \"ran $0 $1\"; exit 9\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let unrunnable = s.path("unrunnable");
    std::fs::write(&unrunnable, "exit 0\n").unwrap();
    std::fs::set_permissions(&unrunnable, std::fs::Permissions::from_mode(0o644)).unwrap();
    for mode in ["--supervise", "--preload"] {
        let run = |p: &Path, args: &[&str]| {
            output_promptly(Command::new(nosparse()).args([mode, "--"]).arg(p).args(args).env("LD_PRELOAD", ""))
        };
        for (p, what) in [(&fifo, "a FIFO, not a regular file"), (&dir, "a directory, not a regular file")] {
            let out = run(p, &[]);
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(126), "{mode} {}: {err}", p.display());
            assert!(err.contains(&format!("cannot run {}: {what}", p.display())), "{mode}: {err}");
        }
        let out = run(&script, &["arg"]);
        assert_eq!(out.status.code(), Some(9), "{mode}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), format!("ran {} arg\n", script.display()), "{mode}");
        let out = run(&unrunnable, &[]);
        let err = text(&out.stderr);
        assert!(out.status.code() == Some(126) && err.contains("Permission denied"), "{mode}: {err}");
        let out = run(&s.path("missing"), &[]);
        assert_eq!(out.status.code(), Some(127), "{mode}: {}", text(&out.stderr));
    }
    // A program found on PATH gets its name as given, as env(1) gives it (the preload's
    // launcher alike: tests/cli.rs).
    let out = output_promptly(Command::new(nosparse()).args(["--supervise", "--", "sh", "-c", "echo \"$0\""]));
    assert_eq!(text(&out.stdout), "sh\n", "argv[0]: {}", text(&out.stderr));
}

/// On a terminal, ^C goes from the kernel to the whole foreground group: the program's
/// trap sees it, and the launcher (which now reads SIGINT to pass on those sent to it
/// alone) does not die of it and ends with the program's status. (Whether the launcher
/// also passed it on is not seen here: a second SIGINT arriving microseconds after the
/// first merges with it before the shell runs its trap.)
#[test]
fn the_terminals_interrupt_reaches_the_program() {
    use std::os::fd::FromRawFd;
    use std::os::unix::process::CommandExt;
    let s = Scratch::new("sup-pty");
    let (marker, stop) = (s.path("marker"), s.path("stop"));
    // SAFETY: plain pty calls; the name is copied before the next call.
    let (master, slave) = unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(m >= 0 && libc::grantpt(m) == 0 && libc::unlockpt(m) == 0, "no pty");
        let name = std::ffi::CStr::from_ptr(libc::ptsname(m)).to_owned();
        (std::fs::File::from_raw_fd(m), name)
    };
    let script = format!(
        "trap 'echo INT >>\"{}\"' INT; echo ready; i=0; while [ ! -e '{}' ] && [ $i -lt 600 ]; do sleep 0.05; \
         i=$((i+1)); done; exit 4",
        marker.display(),
        stop.display()
    );
    let mut cmd = Command::new(nosparse());
    cmd.args(["--supervise", "--", "sh", "-c", &script]);
    common::default_signals(&mut cmd);
    // SAFETY: only system calls between fork and exec: a new session whose controlling
    // terminal is the pty, on stdin, stdout and stderr.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            let fd = libc::open(slave.as_ptr(), libc::O_RDWR);
            if fd < 0 || libc::ioctl(fd, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            for to in 0..3 {
                libc::dup2(fd, to);
            }
            Ok(())
        })
    };
    let mut child = cmd.spawn().unwrap();
    let mut seen = Vec::new();
    let mut master_r = master.try_clone().unwrap();
    while !String::from_utf8_lossy(&seen).contains("ready") {
        let mut b = [0u8; 256];
        let n = std::io::Read::read(&mut master_r, &mut b).unwrap();
        assert!(n > 0, "the pty closed: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&b[..n]);
    }
    (&master).write_all(b"\x03").unwrap();
    let deadline = std::time::Instant::now() + PROMPTLY;
    while std::fs::read_to_string(&marker).unwrap_or_default().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the program did not see ^C");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::fs::write(&stop, "").unwrap();
    let status = ends_promptly(&mut child, "the launcher after ^C");
    assert_eq!(status.code(), Some(4), "the launcher did not end with the program's status");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "INT\n");
}
