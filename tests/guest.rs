//! The library as an invisible guest (issue 10): no file descriptor, lock, unwinding or
//! start-up cost left in the host process. Each test runs a program (tests/c/guest.c,
//! true.c, fake_vmx) in the situation that exposed a trace, and judges from outside:
//! the program's own files, exit status and signals, what reached a `/dev/log` the test
//! binds (in a private mount namespace), strace, objdump.

mod common;

use common::devlog::{private_dev, DevLog};
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Bound on a program that might hang: it is killed after this, and the test fails.
const HANG_BOUND_S: u32 = 30;
const SIZE: u64 = 128 * MIB;

fn guest(mode: &str, dir: &Path) -> Vmx {
    c_program("guest").arg("--mode", mode).arg("--dir", dir.display()).arg("--size", SIZE).timeout(HANG_BOUND_S)
}

/// Log lines of the library among `lines` (stderr lines or datagrams).
fn nosparse_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    lines.into_iter().filter(|l| l.contains("nosparse:")).collect()
}

/// Whether the test may make a private mount namespace (for its own `/dev/log`).
fn can_mount() -> bool {
    require(is_root(), "a private mount namespace (unshare --mount) needs root")
}

/// Asserts the run ended by itself with status 0, not by a signal or the hang bound.
fn assert_exited_0(o: &Outcome, what: &str) {
    let how = match o.signal {
        Some(libc::SIGKILL) => "hung: killed at the time bound".to_string(),
        Some(sig) => format!("killed by signal {sig}"),
        None => format!("exit status {}", o.status),
    };
    assert!(o.status == 0 && o.signal.is_none(), "{what}: {how}\n{}", o.stderr);
}

#[test]
fn a_program_closing_every_fd_after_a_logged_creation_keeps_its_own_files() {
    if !can_mount() {
        return;
    }
    let s = Scratch::new("guest-closefds");
    let cases = [("creation in the program", false), ("creation in a vfork child", true)];
    every_case(cases.map(|(w, v)| (w.to_string(), v)), |what, vfork| {
        let dir = s.path(if vfork { "vfork" } else { "plain" });
        std::fs::create_dir_all(&dir).unwrap();
        let log = DevLog::new();
        let mut run = guest("closefds", &dir).env("NOSPARSE_LOG", "syslog").private_mounts(&private_dev(Some(&log)));
        if vfork {
            run = run.flag("--vfork");
        }
        let out = run.run_raw();
        assert_exited_0(&out, what);
        for i in 0..8 {
            let own = std::fs::read_to_string(dir.join(format!("own-{i}"))).unwrap();
            assert_eq!(own, format!("own file {i}\n"), "{what}: the program's own file {i} lost its line");
        }
        let datagrams = log.take();
        assert_eq!(
            nosparse_lines(datagrams.iter().map(String::as_str)).len(),
            2,
            "{what}: both creation calls should be logged: {datagrams:?}"
        );
        assert_eq!(out.get("fds_after"), out.get("fds_before"), "{what}: the library kept a file descriptor");
        assert_eq!(out.get("second_ret"), 1, "{what}");
    });
}

/// `<PRI>` and, where the sender adds one, an RFC 3164 timestamp (`Mmm dd hh:mm:ss `):
/// what comes after it.
fn after_priority(datagram: &str) -> Option<&str> {
    let rest = datagram.strip_prefix('<')?;
    let (pri, rest) = rest.split_once('>')?;
    let pri: u32 = pri.parse().ok()?;
    const PRI_MAX: u32 = 191;
    if pri > PRI_MAX {
        return None;
    }
    let b = rest.as_bytes();
    let stamped = b.len() > 16 && b[3] == b' ' && b[6] == b' ' && b[9] == b':' && b[12] == b':' && b[15] == b' ';
    Some(if stamped { &rest[16..] } else { rest })
}

#[test]
fn each_log_line_is_one_syslog_datagram_from_a_socket_opened_and_closed_for_it() {
    if !can_mount() || !require(have("strace"), "strace (scripts/setup.sh installs it)") {
        return;
    }
    let s = Scratch::new("guest-format");
    let trace = s.path("trace");
    let log = DevLog::new();
    let out = guest("closefds", &s.dir)
        .env("NOSPARSE_LOG", "syslog")
        .private_mounts(&private_dev(Some(&log)))
        .strace(&format!("-f -qq -e trace=socket,close -o {}", trace.display()))
        .run_raw();
    assert_exited_0(&out, "closefds under strace");
    let pid = out.get("pid");
    let datagrams = log.take();
    let lines = nosparse_lines(datagrams.iter().map(String::as_str));
    assert_eq!(lines.len(), 2, "{datagrams:?}");
    for d in &lines {
        let tagged = after_priority(d).unwrap_or_else(|| panic!("no <PRI> at the start: {d:?}"));
        assert!(
            tagged.starts_with(&format!("guest[{pid}]: nosparse: ")),
            "not `<PRI>progname[pid]: nosparse: ...`: {d:?}"
        );
        assert!(!d.trim_end_matches('\n').contains(['\n', '\0']), "more than one line in a datagram: {d:?}");
    }
    // Every AF_UNIX socket the program made (none of its own) is close-on-exec, and
    // closed again.
    let trace = std::fs::read_to_string(&trace).unwrap();
    let mut open = Vec::new();
    for line in trace.lines() {
        let call = line.split_once(' ').map_or(line, |(_, c)| c);
        if call.starts_with("socket(AF_UNIX") {
            assert!(call.contains("SOCK_CLOEXEC"), "a log socket without SOCK_CLOEXEC: {call}");
            open.push(call.rsplit("= ").next().unwrap().trim().to_string());
        } else if let Some(fd) = call.strip_prefix("close(").and_then(|c| c.split(')').next()) {
            open.retain(|o| o != fd);
        }
    }
    assert!(trace.contains("socket(AF_UNIX"), "no log socket in the trace:\n{trace}");
    assert!(open.is_empty(), "log sockets left open: {open:?}");
}

#[test]
fn without_dev_log_the_lines_are_dropped_silently() {
    if !can_mount() {
        return;
    }
    let s = Scratch::new("guest-nolog");
    let out = guest("closefds", &s.dir).env("NOSPARSE_LOG", "syslog").private_mounts(&private_dev(None)).run_raw();
    assert_exited_0(&out, "no /dev/log");
    assert_eq!(out.get("fds_after"), out.get("fds_before"), "the library kept a file descriptor");
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    assert_whole(&measure(&s.path("second.vmem")), "created without /dev/log");
}

#[test]
fn creation_calls_from_a_signal_handler_interrupting_syslog_or_malloc_never_hang() {
    if !can_mount() {
        return;
    }
    let s = Scratch::new("guest-signal");
    let took = std::sync::Mutex::new(Vec::new());
    every_case(["syslog", "malloc"].map(|r| (format!("interrupting {r}"), r)), |what, race| {
        let log = DevLog::new();
        let started = std::time::Instant::now();
        // 2 MiB files, one every millisecond, 300 times.
        let out = c_program("guest")
            .arg("--mode", "signal")
            .arg("--race", race)
            .arg("--dir", s.dir.display())
            .arg("--size", 2 * MIB)
            .arg("--count", 300)
            .env("NOSPARSE_MIN_SIZE", "1M")
            .env("NOSPARSE_LOG", "syslog")
            .private_mounts(&private_dev(Some(&log)))
            .timeout(HANG_BOUND_S)
            .run_raw();
        assert_exited_0(&out, what);
        assert_eq!(out.get("signal_ok"), out.get("signal_calls"), "{race}: creation calls failed");
        let logged = nosparse_lines(log.take().iter().map(String::as_str)).len();
        assert!(logged > 0, "{race}: nothing was logged, so the slow path's logging was not raced");
        let secs = started.elapsed().as_secs_f64();
        took.lock().unwrap().push(format!("{race}: {} calls in {secs:.1} s, {logged} logged", out.get("signal_calls")));
    });
    eprintln!("SUMMARY signal handlers: {}", took.lock().unwrap().join("; "));
}

#[test]
fn a_thread_cancelled_at_a_creation_call_is_cancelled_and_the_process_exits_0() {
    let s = Scratch::new("guest-cancel");
    let rounds = 5;
    let mut sizes = Vec::new();
    for preload in [false, true] {
        let dir = s.path(if preload { "with" } else { "without" });
        std::fs::create_dir_all(&dir).unwrap();
        let mut run = guest("cancel", &dir).arg("--rounds", rounds);
        if !preload {
            run = run.without_library();
        }
        let out = run.run_raw();
        let what = if preload { "with the library" } else { "without the library" };
        assert_exited_0(&out, what);
        assert!(!out.stderr.contains("FATAL"), "{what}: {}", out.stderr);
        assert_eq!(out.get("cancelled"), rounds, "{what}: threads not cancelled");
        sizes.push(
            (0..rounds)
                .map(|r| std::fs::metadata(dir.join(format!("cancel-{r}.vmem"))).unwrap().len())
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(sizes[0], sizes[1], "the cancelled calls left files of other sizes with the library");
}

#[test]
fn creation_calls_fit_a_16_kib_thread_stack_and_an_8_kib_signal_stack() {
    if !can_mount() {
        return;
    }
    let s = Scratch::new("guest-stack");
    let cases = [("thread", "auto"), ("thread", "zero"), ("signal", "auto"), ("signal", "zero")];
    every_case(
        cases.map(|(o, m)| (format!("on a small {o} stack, NOSPARSE_METHOD={m}"), (o, m))),
        |what, (on, method)| {
            let dir = s.path(&format!("{on}-{method}"));
            std::fs::create_dir_all(&dir).unwrap();
            let log = DevLog::new();
            let run = guest("stack", &dir)
                .arg("--on", on)
                .env("NOSPARSE_METHOD", method)
                .env("NOSPARSE_LOG", "syslog")
                .private_mounts(&private_dev(Some(&log)));
            // The program itself fits, so a crash is the library's.
            assert_exited_0(&run.clone().without_library().run_raw(), &format!("{what}, without the library"));
            let out = run.run_raw();
            assert_exited_0(&out, what);
            assert_eq!(out.get("ret"), 1, "{what}");
            assert_whole(&measure(&dir.join("stack.vmem")), what);
            assert_eq!(nosparse_lines(log.take().iter().map(String::as_str)).len(), 1, "{what}: not logged");
        },
    );
}

#[test]
fn nosparse_log_stderr_writes_only_to_the_stderr_the_program_started_with() {
    let s = Scratch::new("guest-stderr");
    // (fd 2 at the creation call, shell run first)
    let cases = [("closed", Some("exec 2>&-")), ("dup2", None), ("keep", None)];
    every_case(cases.map(|(f, sh)| (format!("fd 2 {f}"), (f, sh))), |what, (fd2, shell)| {
        let dir = s.path(fd2);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(bare_path(&dir)).unwrap();
        let mut run = guest("stderr", &dir).arg("--fd2", fd2).env("NOSPARSE_LOG", "stderr");
        if let Some(shell) = shell {
            run = run.shell(shell);
        }
        let with = run.run();
        let mut bare = run.without_library();
        let i = bare.args_mut().iter().position(|a| a == "--dir").unwrap() + 1;
        bare.args_mut()[i] = bare_path(&dir).display().to_string();
        let without = bare.run();
        for k in ["fd", "ret", "offset_after"] {
            assert_eq!(without.get(k), with.get(k), "{what}: {k} differs");
        }
        assert_eq!(with.get("offset_after"), 123, "{what}: the program's file offset moved");
        assert_same_content(&dir.join("stderr.vmem"), &bare_path(&dir).join("stderr.vmem"));
        let logged = nosparse_lines(with.stderr.lines()).len();
        // With fd 2 as it was at start-up, the line goes there: the sink works.
        assert_eq!(logged, usize::from(fd2 == "keep"), "{what}: {}", with.stderr);
    });
}

#[test]
fn control_characters_in_a_file_name_give_one_escaped_log_line() {
    if !can_mount() {
        return;
    }
    let s = Scratch::new("guest-newline");
    let path = s.path("evil\nnosparse: preallocated forged.vmem\t\x1b[31m.vmem");
    let out = vmx(&path).arg("--size", SIZE).run();
    assert_eq!(out.get("create_ret"), 1);
    let lines = nosparse_lines(out.stderr.lines());
    assert_eq!(lines.len(), 1, "stderr: {:?}", out.stderr);
    let log = DevLog::new();
    let path = s.path("second\nnosparse: forged.vmem");
    let out =
        vmx(&path).arg("--size", SIZE).env("NOSPARSE_LOG", "syslog").private_mounts(&private_dev(Some(&log))).run();
    assert_eq!(out.get("create_ret"), 1);
    let datagrams = log.take();
    assert_eq!(datagrams.len(), 1, "{datagrams:?}");
    for line in lines.iter().copied().chain(datagrams.iter().map(|d| d.trim_end_matches('\n'))) {
        assert!(!line.chars().any(|c| c.is_control()), "a control character in the log line: {line:?}");
    }
}

/// Writes a file into an overlay's upper layer with the given mode and owner.
fn put(upper: &Path, name: &str, text: &str, mode: u32, uid: u32) {
    let p = upper.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    std::os::unix::fs::chown(&p, Some(uid), Some(0)).unwrap();
}

#[test]
fn an_untrusted_or_bad_settings_file_makes_the_library_act_nowhere_and_say_nothing() {
    if !can_mount() {
        return;
    }
    const NOBODY: u32 = 65534;
    let s = Scratch::new("guest-system");
    let lib = artifacts().lib.display().to_string();
    // (what, settings file, its mode, its owner, acts?)
    let cases = [
        ("trusted, listing fake_vmx", "NOSPARSE_PROGRAMS=fake_vmx\n", 0o644, 0, true),
        ("group-writable", "NOSPARSE_PROGRAMS=fake_vmx\n", 0o664, 0, false),
        ("not root's", "NOSPARSE_PROGRAMS=fake_vmx\n", 0o644, NOBODY, false),
        ("a bad NOSPARSE_PROGRAMS", "NOSPARSE_PROGRAMS=fake_vmx::\n", 0o644, 0, false),
    ];
    let numbered = cases.into_iter().enumerate().map(|(i, c)| (c.0.to_string(), (i, c)));
    every_case(numbered, |what, (i, (_, text, mode, uid, acts))| {
        // /etc in the namespace is an overlay of the host's: the files go in its upper
        // layer, and the host's /etc is never written.
        let [upper, work] = ["upper", "work"].map(|d| s.path(&format!("etc-{i}-{d}")));
        std::fs::create_dir_all(&upper).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        put(&upper, "ld.so.preload", &format!("{lib}\n"), 0o644, 0);
        put(&upper, "nosparse.conf", text, mode, uid);
        let log = DevLog::new();
        // /etc last: every program started after it (mount, mknod) would load the library.
        let etc = format!(
            "{}; mount -t overlay nosparse-test-etc -o lowerdir=/etc,upperdir={},workdir={} /etc",
            private_dev(Some(&log)),
            upper.display(),
            work.display()
        );
        let path = s.path(&format!("system-{i}.vmem"));
        // No LD_PRELOAD: only /etc/ld.so.preload loads the library, as on a host.
        let vmx_out =
            vmx(&path).arg("--size", SIZE).without_library().env("NOSPARSE_LOG", "stderr").private_mounts(&etc).run();
        let other = c_program("true").without_library().private_mounts(&etc).run_raw();
        assert_eq!(other.status, 0, "{what}: {}", other.stderr);
        let m = measure(&path);
        let datagrams = log.take();
        let logged = nosparse_lines(
            vmx_out.stderr.lines().chain(other.stderr.lines()).chain(datagrams.iter().map(String::as_str)),
        );
        if acts {
            assert_whole(&m, &format!("{what}: the control case, so the library is loaded this way"));
            assert_eq!(logged.len(), 1, "{what}: {logged:?}");
        } else {
            assert!(m.allocated < m.size / 2, "{what}: the library acted: {m:?}\n{}", vmx_out.stderr);
            assert!(logged.is_empty(), "{what}: the library spoke: {logged:?}");
        }
        assert!(!other.stderr.contains("ld.so"), "{what}: the loader complained: {}", other.stderr);
    });
}

/// The calls in an strace log (`-o`), without the loader's mapping of `lib` (from its
/// `openat` to its `close`) and without `mprotect`, which the loader makes once per
/// library with read-only relocations, a choice of the linker.
fn syscalls_without_mapping(trace: &str, lib: &Path) -> Vec<String> {
    let name = lib.display().to_string();
    let mut calls = Vec::new();
    let mut mapping_fd: Option<String> = None;
    for line in trace.lines() {
        let call = line.trim_start_matches(|c: char| c.is_ascii_digit()).trim_start();
        let syscall = call.split('(').next().unwrap_or("").to_string();
        if call.contains(&format!("\"{name}\"")) && syscall.starts_with("open") {
            mapping_fd = call.rsplit("= ").next().map(|fd| fd.trim().to_string());
            continue;
        }
        if let Some(fd) = &mapping_fd {
            if call.starts_with(&format!("close({fd})")) {
                mapping_fd = None;
            }
            continue;
        }
        if syscall != "mprotect" {
            calls.push(syscall);
        }
    }
    calls
}

#[test]
fn a_debuggers_one_byte_write_to_proc_pid_mem_is_left_alone_silently() {
    // Every breakpoint gdb sets is such a write: procfs keeps no data on a disk.
    let run = c_program("procmem").env("NOSPARSE_ON_ERROR", "fail").timeout(HANG_BOUND_S);
    let (with, without) = (run.run(), run.clone().without_library().run());
    assert_eq!(with.get("address_above_64m"), 1, "the test's address is below the threshold");
    for key in ["ret", "errno", "byte"] {
        assert_eq!(with.get(key), without.get(key), "{key}\n{}", with.stderr);
    }
    assert_eq!((with.get("ret"), with.get("byte")), (1, 0xcc));
    assert_eq!(nosparse_lines(with.stderr.lines()).len(), 0, "{}", with.stderr);
}

#[test]
fn the_programs_own_write_lease_survives_a_creation_with_each_method() {
    let s = Scratch::new("guest-lease");
    for method in ["fallocate", "zero"] {
        let path = s.path(&format!("leased-{method}"));
        let out = c_program("lease")
            .arg("--path", path.display())
            .arg("--size", SIZE)
            .env("NOSPARSE_METHOD", method)
            .timeout(HANG_BOUND_S)
            .run();
        assert_eq!(out.get("ret"), 1, "{method}: {}", out.stderr);
        // The library never opens the file again: the lease is neither broken nor lost.
        assert_eq!((out.get("lease"), out.get("breaks")), (1, 0), "{method}: {}", out.stderr);
        assert!(out.get("allocated") >= SIZE as i64, "{method}: not preallocated: {:?}\n{}", out.kv, out.stderr);
    }
}

#[test]
fn settings_that_cannot_be_read_for_want_of_a_descriptor_are_read_at_the_next_call() {
    let s = Scratch::new("guest-emfile");
    let out = c_program("emfile").arg("--dir", s.dir.display()).arg("--size", SIZE).timeout(HANG_BOUND_S).run();
    assert_eq!(out.get("emfile"), 1, "the test did not use up the descriptors\n{}", out.stderr);
    assert_eq!((out.get("first_ret"), out.get("second_ret")), (1, 1), "{}", out.stderr);
    // The first creation came while no descriptor was free: left alone. The second found
    // the settings readable again, and was allocated: the library did not stay off.
    assert!(out.get("first_allocated") < (SIZE / 2) as i64, "{:?}", out.kv);
    assert!(
        out.get("second_allocated") >= SIZE as i64,
        "the library stayed off after EMFILE: {:?}\n{}",
        out.kv,
        out.stderr
    );
    assert_eq!(nosparse_lines(out.stderr.lines()).len(), 1, "{}", out.stderr);
}

#[test]
fn the_constructor_makes_no_syscall() {
    if !require(have("strace"), "strace (scripts/setup.sh installs it)") {
        return;
    }
    let s = Scratch::new("guest-startup");
    let empty = common::cprog::shared_library("empty");
    let lib = artifacts().lib.clone();
    // The default log sink: with NOSPARSE_LOG=stderr in the environment the constructor
    // makes one fstat of fd 2 (checked below), to know later whether fd 2 is still the
    // stderr the program started with.
    let trace_with = |preload: &Path, name: &str, log: &str| {
        let trace = s.path(name);
        let out = c_program("true")
            .without_library()
            .strace(&format!("-qq -o {}", trace.display()))
            .env("NOSPARSE_LOG", log)
            .env("TEST_LATE_PRELOAD", &preload.display().to_string());
        let out = out.run_raw();
        assert_eq!(out.status, 0, "{}", out.stderr);
        syscalls_without_mapping(&std::fs::read_to_string(&trace).unwrap(), preload)
    };
    let trace_of = |preload: &Path, name: &str| trace_with(preload, name, "syslog");
    let baseline = trace_of(&empty, "empty.trace");
    let ours = trace_of(&lib, "nosparse.trace");
    let with_stderr = trace_with(&lib, "stderr.trace", "stderr");
    let extra: Vec<_> = with_stderr.iter().filter(|c| !baseline.contains(c)).collect();
    assert!(
        with_stderr.len() == baseline.len() + 1 && extra.iter().all(|c| c.starts_with("fstat")),
        "NOSPARSE_LOG=stderr should add one fstat of fd 2 at load: {extra:?}"
    );
    let first = ours.iter().zip(&baseline).position(|(a, b)| a != b).unwrap_or(ours.len().min(baseline.len()));
    let around = |v: &[String]| v[first.saturating_sub(3)..(first + 6).min(v.len())].join(" ");
    assert!(
        ours == baseline,
        "a trivial program makes {} syscalls with libnosparse.so preloaded, {} with an empty library; \
         from call {first}: [{}] instead of [{}]",
        ours.len(),
        baseline.len(),
        around(&ours),
        around(&baseline)
    );
}

#[test]
fn the_library_needs_no_glibc_above_2_17_nor_libgcc_s_and_is_small() {
    if !require(have("objdump") && have("strip"), "objdump and strip (binutils)") {
        return;
    }
    let lib = artifacts().lib.display().to_string();
    let symbols = sh(&format!("objdump -T {lib}"));
    let mut newest = (2, 0);
    for v in symbols.split("GLIBC_").skip(1) {
        let v: String = v.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        newest = newest.max(version);
    }
    assert!(newest <= (2, 17), "needs GLIBC_{}.{}:\n{symbols}", newest.0, newest.1);
    let dynamic = sh(&format!("objdump -p {lib}"));
    assert!(!dynamic.contains("libgcc_s"), "NEEDED libgcc_s:\n{dynamic}");
    let s = Scratch::new("guest-size");
    let stripped = s.path("stripped.so");
    sh(&format!("strip -o {} {lib}", stripped.display()));
    let size = std::fs::metadata(&stripped).unwrap().len();
    const SIZE_MAX: u64 = 64 * 1024;
    eprintln!("SUMMARY library: stripped {size} bytes, newest symbol version GLIBC_{}.{}", newest.0, newest.1);
    assert!(size <= SIZE_MAX, "stripped library is {size} bytes, over {SIZE_MAX}");
}
