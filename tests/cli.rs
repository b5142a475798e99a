//! The `nosparse` command, run from outside as a user would, without root: the launcher
//! on 32- and 64-bit programs (and with a loader too old to say where `$LIB` points),
//! its options and exit statuses, `check` against filefrag, `rewrite`, and `doctor`.
//! Judged by exit statuses, st_blocks, FIEMAP, bytes and inode numbers.
//!
//! `cargo test` builds no binaries of other packages for a workspace test, so the
//! command and both classes' builds of the library are built here, as
//! tests/common/artifacts.rs does for the library.

mod common;

use common::{artifacts, assert_same_content, have, is_root, require, Scratch, MIB};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const HOST: &str = "x86_64-unknown-linux-gnu";
const I686: &str = "i686-unknown-linux-gnu";
/// How long a command that must not block may take before the test calls it blocked.
const NO_BLOCK_LIMIT: Duration = Duration::from_secs(20);

/// Where cargo put this test's own build, and the other class's.
struct Builds {
    nosparse: PathBuf,
    lib64: PathBuf,
    lib32: PathBuf,
    vmx64: PathBuf,
    vmx32: PathBuf,
}

/// Runs `cargo build` for `target` with this test's profile; returns the profile dir.
fn cargo_build(target: &str, what: &[&str]) -> PathBuf {
    // The library artifacts tell where the target dir is: target/[triple/]profile/.
    let own = artifacts().lib.parent().expect("profile dir").to_path_buf();
    let profile = own.file_name().expect("profile name").to_string_lossy().into_owned();
    let above = own.parent().expect("above the profile dir");
    let target_dir = if above.file_name().is_some_and(|n| n == common::artifacts::TARGET) {
        above.parent().expect("target dir")
    } else {
        above
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build").arg("--quiet").args(what).arg("--target-dir").arg(target_dir);
    // The host build goes to target/profile (the contract's path), without --target.
    if target != HOST {
        cmd.args(["--target", target]);
    }
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let out = cmd.current_dir(env!("CARGO_MANIFEST_DIR")).output().expect("run cargo");
    assert!(out.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let mut dir = target_dir.to_path_buf();
    if target != HOST {
        dir.push(target);
    }
    dir.join(profile)
}

fn builds() -> &'static Builds {
    static B: OnceLock<Builds> = OnceLock::new();
    B.get_or_init(|| {
        let own = common::artifacts::TARGET;
        let nosparse = cargo_build(own, &["-p", "nosparse-cli", "--bin", "nosparse"]).join("nosparse");
        let lib = ["-p", "nosparse", "--lib", "--example", "fake_vmx"];
        let (d64, d32) = (cargo_build(HOST, &lib), cargo_build(I686, &lib));
        Builds {
            nosparse,
            lib64: d64.join("libnosparse.so"),
            lib32: d32.join("libnosparse.so"),
            vmx64: d64.join("examples/fake_vmx"),
            vmx32: d32.join("examples/fake_vmx"),
        }
    })
}

/// `$LIB` for each class, as this host's loaders expand it.
fn dst_lib(loader: &str) -> String {
    let out = Command::new(loader).arg("--list-diagnostics").output().expect("run the loader");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find_map(|l| l.strip_prefix("dl_dst_lib=")).expect("dl_dst_lib");
    line.trim_matches('"').to_string()
}

/// An install prefix in the scratch dir: bin/nosparse and the builds under $LIB.
struct Prefix {
    dir: PathBuf,
    bin: PathBuf,
}

fn prefix(s: &Scratch, name: &str, with32: bool) -> Prefix {
    let b = builds();
    let dir = s.path(name);
    let put = |from: &Path, to: PathBuf| {
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
    };
    put(&b.nosparse, dir.join("bin/nosparse"));
    put(&b.lib64, dir.join(dst_lib("/lib64/ld-linux-x86-64.so.2")).join("libnosparse.so"));
    if with32 {
        put(&b.lib32, dir.join(dst_lib("/lib/ld-linux.so.2")).join("libnosparse.so"));
    }
    let bin = dir.join("bin/nosparse");
    Prefix { dir, bin }
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `cmd` and fails the test if it has not ended within [`NO_BLOCK_LIMIT`].
fn run_unblocked(cmd: &mut Command) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > NO_BLOCK_LIMIT {
            let _ = child.kill();
            panic!("{cmd:?} blocked");
        }
        std::thread::yield_now();
    }
    child.wait_with_output().expect("output")
}

fn whole(path: &Path) -> bool {
    let m = fs::metadata(path).unwrap();
    m.blocks() * 512 >= m.len()
}

fn fifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: c is NUL-terminated.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Physical fragments as filefrag counts them ("N extents found").
fn filefrag(path: &Path) -> u64 {
    let out = run(Command::new("filefrag").arg(path));
    let t = text(&out.stdout);
    let n = t.rsplit(": ").next().and_then(|s| s.split_whitespace().next()).expect("filefrag output");
    n.parse().unwrap_or_else(|_| panic!("filefrag said {t}"))
}

/// A file of `size` bytes, all written, in many pieces: its 1 MiB chunks are written
/// in turn with another file's, each made durable before the next.
fn fragmented(path: &Path, size: u64) {
    let other = path.with_extension("other");
    let (mut a, mut b) = (fs::File::create(path).unwrap(), fs::File::create(&other).unwrap());
    let chunk: Vec<u8> = (0..MIB).map(|i| (i * 7 % 251) as u8).collect();
    for _ in 0..size / MIB {
        a.write_all(&chunk).unwrap();
        a.sync_data().unwrap();
        b.write_all(&chunk).unwrap();
        b.sync_data().unwrap();
    }
    fs::remove_file(other).unwrap();
}

/// PROGRAM starts with the signal mask and ignored signals the launcher was started
/// with (here as a service manager starts a service: SIGPIPE ignored, two signals
/// blocked), not the ones Rust's runtime and `std::process::Command` would give it.
#[test]
fn the_program_starts_with_the_launchers_signal_state() {
    let s = Scratch::new("cli-signal-state");
    let p = prefix(&s, "prefix", false);
    let status = |launched: bool| {
        let mut c = Command::new(if launched { p.bin.as_path() } else { Path::new("grep") });
        if launched {
            c.args(["--preload", "--", "grep"]);
        }
        c.args(["-E", "^(Sig(Blk|Ign)|ShdPnd):", "/proc/self/status"]);
        common::start_like_a_service(&mut c);
        let out = run(&mut c);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let bare = status(false);
    assert!(bare.contains("SigBlk:\t0000000000004200") && common::sigpipe_and_sigchld_ignored(&bare), "{bare}");
    assert!(bare.contains("ShdPnd:\t0000000000000200"), "{bare}");
    assert_eq!(status(true), bare, "the program's signal mask or ignored signals differ under the launcher");
}

/// A program this user may run but not read (mode 711, as nobody): the launcher cannot
/// look at its ELF header, takes it as dynamically linked, and the library preallocates.
#[test]
fn an_execute_only_program_gets_the_preload() {
    if !require(is_root() && have("setpriv"), "needs root (to become nobody) and setpriv") {
        return;
    }
    let s = Scratch::new("cli-execute-only");
    fs::set_permissions(&s.dir, fs::Permissions::from_mode(0o777)).unwrap();
    let p = prefix(&s, "prefix", false);
    let vmx = s.path("vmx");
    fs::copy(&builds().vmx64, &vmx).unwrap();
    fs::set_permissions(&vmx, fs::Permissions::from_mode(0o711)).unwrap();
    let file = s.path("xo.vmem");
    let out = run(Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(&p.bin)
        .args(["--log", "stderr", "--"])
        .arg(&vmx)
        .arg("--path")
        .arg(&file));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(whole(&file), "an execute-only program's file is not whole: {}", text(&out.stderr));
}

#[test]
fn the_launcher_gives_each_class_its_build() {
    let s = Scratch::new("cli-launch");
    let p = prefix(&s, "prefix", true);
    let b = builds();
    for (bits, vmx) in [(64, &b.vmx64), (32, &b.vmx32)] {
        let file = s.path(&format!("l{bits}.vmem"));
        let out = run(Command::new(&p.bin).args(["--log", "stderr", "--"]).arg(vmx).arg("--path").arg(&file));
        assert!(out.status.success(), "{bits}-bit: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("nosparse: preallocated"), "{bits}-bit: {}", text(&out.stderr));
        assert!(whole(&file), "{bits}-bit file is not whole");
    }
    // A 64-bit shell starting a 32-bit program: $LIB gives each its own build.
    let file = s.path("via-sh.vmem");
    let script = format!("exec '{}' --path '{}' --size {}", b.vmx32.display(), file.display(), 128 * MIB);
    let out = run(Command::new(&p.bin).args(["--", "sh", "-c", &script]));
    assert!(whole(&file) && !text(&out.stderr).contains("ELF class"), "{}", text(&out.stderr));
    let out = run(Command::new(&p.bin).arg("--dry-run").arg("--").arg(&b.vmx32));
    let dry = text(&out.stdout);
    assert!(dry.lines().any(|l| l == format!("LD_PRELOAD={}/$LIB/libnosparse.so", p.dir.display())), "{dry}");
    let lib32 = p.dir.join(dst_lib("/lib/ld-linux.so.2")).join("libnosparse.so");
    assert!(dry.lines().any(|l| l == format!("library={}", lib32.display())), "{dry}");
    assert!(dry.contains("lib_dir_from=loader"), "{dry}");
    // PROGRAM's status is the launcher's; its arguments are its own, options and all.
    let out = run(Command::new(&p.bin).args(["--", "sh", "-c", "exit 7"]));
    assert_eq!(out.status.code(), Some(7));
    let out = run(Command::new(&p.bin).args(["echo", "--help", "--", "-n"]));
    assert_eq!(text(&out.stdout), "--help -- -n\n");
}

#[test]
fn the_launchers_errors_have_envs_statuses() {
    let s = Scratch::new("cli-errors");
    let p = prefix(&s, "prefix", true);
    let status = |args: &[&str]| {
        let out = run(Command::new(&p.bin).args(args));
        (out.status.code().unwrap_or(-1), text(&out.stderr))
    };
    let (code, err) = status(&["--min-size", "1X", "--", "true"]);
    assert!(code == 125 && err.contains("--min-size: bad value"), "{code}: {err}");
    for bad in [
        &["--frobnicate", "true"][..],
        &["--max-fragmentsXYZ", "3", "true"],
        &["--debug=1", "true"],
        &["--min", "1G", "true"],
    ] {
        let (code, err) = status(bad);
        assert!(code == 125 && err.contains("Try 'nosparse --help'"), "{bad:?}: {code}: {err}");
    }
    assert_eq!(status(&["--", "no-such-program-here"]).0, 127);
    assert_eq!(status(&["--", "/nonexistent"]).0, 127);
    assert_eq!(status(&["--", "/etc/passwd"]).0, 126);
    let out = run(Command::new(&p.bin).arg("-nV"));
    assert_eq!(text(&out.stdout), format!("nosparse {}\n", env!("CARGO_PKG_VERSION")));
    let out = run(Command::new(&p.bin).arg("--help"));
    assert!(out.status.success() && text(&out.stdout).contains("nosparse COMMAND --help"));
    let out = run(Command::new(&p.bin).args(["check", "--help"]));
    assert!(out.status.success() && text(&out.stdout).starts_with("usage: nosparse check "));
    // A prefix with only the 64-bit build: a 32-bit program is refused, with the path.
    let only64 = prefix(&s, "only64", false);
    let file = s.path("x.vmem");
    let out = run(Command::new(&only64.bin).arg("--").arg(&builds().vmx32).arg("--path").arg(&file));
    let err = text(&out.stderr);
    assert!(
        out.status.code() == Some(125) && err.contains("32-bit") && err.contains(&dst_lib("/lib/ld-linux.so.2")),
        "{err}"
    );
    assert!(!file.exists(), "the program ran anyway");
}

/// A loader older than glibc 2.33 does not know `--list-diagnostics`: the launcher works
/// out `$LIB` from the program's class and the directories that hold a C library.
#[test]
fn the_launcher_works_with_a_loader_that_cannot_say_where_lib_points() {
    let s = Scratch::new("cli-oldld");
    let p = prefix(&s, "prefix", true);
    let b = builds();
    // PT_INTERP can only be patched in place: the stand-in's path must fit.
    let old_ld = PathBuf::from(format!("/tmp/nsp-ld-{}", std::process::id()));
    fs::write(&old_ld, "#!/bin/sh\necho \"$0: unrecognized option '$1'\" >&2\nexit 127\n").unwrap();
    fs::set_permissions(&old_ld, fs::Permissions::from_mode(0o755)).unwrap();
    for (vmx, loader, real_ld) in [
        (&b.vmx64, "/lib64/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2"),
        (&b.vmx32, "/lib/ld-linux.so.2", "/lib/ld-linux.so.2"),
    ] {
        let mut elf = fs::read(vmx).unwrap();
        let at =
            elf.windows(real_ld.len() + 1).position(|w| w == format!("{real_ld}\0").as_bytes()).expect("PT_INTERP");
        let new = old_ld.as_os_str().as_encoded_bytes();
        assert!(new.len() <= real_ld.len());
        elf[at..at + real_ld.len()].fill(0);
        elf[at..at + new.len()].copy_from_slice(new);
        let program = s.path("old-vmx");
        fs::write(&program, &elf).unwrap();
        fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
        let out = run(Command::new(&p.bin).arg("--dry-run").arg("--").arg(&program));
        let dry = text(&out.stdout);
        let lib = p.dir.join(dst_lib(loader)).join("libnosparse.so");
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(dry.contains("lib_dir_from=guess") && dry.contains(&format!("library={}", lib.display())), "{dry}");
    }
    let _ = fs::remove_file(&old_ld);
}

#[test]
fn check_counts_like_filefrag_and_judges_by_the_filesystems_best() {
    if !require(have("filefrag"), "filefrag (e2fsprogs) is not installed") {
        return;
    }
    let s = Scratch::new("cli-check");
    let p = prefix(&s, "prefix", false);
    let whole_file = s.path("whole.vmem");
    let out =
        run(Command::new(&p.bin).arg("--").arg(&builds().vmx64).arg("--path").arg(&whole_file).args(["--writes", "8"]));
    assert!(out.status.success());
    let check =
        |args: &[&str], paths: &[&Path]| run_unblocked(Command::new(&p.bin).arg("check").args(args).args(paths));
    let out = check(&[], &[&whole_file]);
    let line = text(&out.stdout);
    // The library asks for the file whole, but on a disk other tests are filling at the
    // same time the free space may come in more pieces than the filesystem's best allows
    // (4 for 256 MiB on ext4): check must then say fragmented, and whole otherwise.
    let allowed: u64 = line.split("(at most ").nth(1).and_then(|r| r.split(' ').next()?.parse().ok()).expect(&line);
    let expected = if filefrag(&whole_file) <= allowed { (0, ": whole: ") } else { (1, ": fragmented: ") };
    assert!(out.status.code() == Some(expected.0) && line.contains(expected.1), "{line}");
    assert!(
        line.contains(&format!(
            " {} fragment{}",
            filefrag(&whole_file),
            if filefrag(&whole_file) == 1 { " " } else { "s " }
        )),
        "filefrag says {}: {line}",
        filefrag(&whole_file)
    );
    // A file in pieces: the verdict follows the count and the filesystem's best.
    let pieces = s.path("pieces.img");
    fragmented(&pieces, 64 * MIB);
    let out = check(&["--json"], &[&pieces]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    let file = &json["files"][0];
    let field = |name: &str| -> u64 { file[name].as_u64().unwrap_or_else(|| panic!("{name} in {json}")) };
    assert_eq!(field("fragments"), filefrag(&pieces), "{json}");
    let verdict = if field("fragments") > field("allowed") { "fragmented" } else { "whole" };
    assert_eq!(file["verdict"], verdict, "{json}");
    assert_eq!(json["summary"]["files"], 1, "{json}");
    assert_eq!(out.status.code(), Some(if verdict == "whole" { 0 } else { 1 }), "{json}");
    eprintln!(
        "a 64 MiB file written in turns with another: {} fragments, {} allowed",
        field("fragments"),
        field("allowed")
    );
    let out = check(&["--max-fragments", "0"], &[&whole_file]);
    assert!(out.status.code() == Some(1) && text(&out.stdout).contains(": fragmented: "));
    // Sparse, missing, quiet, special files, directories.
    let sparse = s.path("sparse.vmem");
    fs::File::create(&sparse).unwrap().set_len(300 * MIB).unwrap();
    let out = check(&[], &[&sparse]);
    assert!(out.status.code() == Some(1) && text(&out.stdout).contains(": sparse: "));
    assert_eq!(check(&[], &[&whole_file, &s.path("missing")]).status.code(), Some(2));
    let out = check(&["--quiet", "--max-fragments", "100000"], &[&whole_file]);
    assert!(out.status.code() == Some(0) && out.stdout.is_empty());
    let f = s.path("fifo");
    fifo(&f);
    let out = check(&[], &[&f]);
    assert!(out.status.code() == Some(2) && text(&out.stderr).contains("a FIFO, not a regular file"));
    let out = check(&["--format", "ndjson", "--pattern", "*.vmem"], &[&s.dir]);
    let lines: Vec<serde_json::Value> =
        text(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("one JSON object a line")).collect();
    let paths: Vec<&str> = lines.iter().filter_map(|l| l["path"].as_str()).collect();
    assert_eq!(paths.len(), 2, "{lines:?}");
    assert!(paths[0].ends_with("sparse.vmem") && paths[1].ends_with("whole.vmem"), "{paths:?}");
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!((summary["files"].as_u64(), summary["sparse"].as_u64()), (Some(2), Some(1)), "{summary}");
    assert_eq!(out.status.code(), Some(1));
}

/// A Python interpreter with prometheus_client, if there is one.
fn prometheus_python() -> Option<&'static str> {
    ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|py| Command::new(py).args(["-c", "import prometheus_client"]).output().is_ok_and(|o| o.status.success()))
}

/// The Prometheus output as prometheus_client's parser reads it: (name, labels, value)
/// per sample, sorted.
fn parse_prometheus(python: &str, exposition: &[u8]) -> Vec<(String, String, f64)> {
    let script = "import sys, json\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        out = []\n\
        for f in text_string_to_metric_families(sys.stdin.read()):\n\
        \x20   assert f.type == 'gauge', f.name\n\
        \x20   for s in f.samples:\n\
        \x20       out.append([s.name, json.dumps(s.labels, sort_keys=True), s.value])\n\
        print(json.dumps(sorted(out)))\n";
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().unwrap().write_all(exposition).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "prometheus_client refused the output:\n{}", text(exposition));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `check --format prometheus`, read by the Prometheus client's own parser; blocks past
/// the end; a directory with nothing to check; a pattern with '/' against absolute paths.
#[test]
fn check_speaks_prometheus_and_sees_past_the_end() {
    let s = Scratch::new("cli-check-formats");
    let p = prefix(&s, "prefix", false);
    let dir = s.path("vms");
    fs::create_dir_all(dir.join("a")).unwrap();
    let sparse = dir.join("a/guest \"1\".vmem");
    fs::File::create(&sparse).unwrap().set_len(300 * MIB).unwrap();
    // Preallocated past its end, as a failed call under NOSPARSE_ON_ERROR=fail leaves it.
    let past = dir.join("a/past.vmem");
    let f = fs::File::create(&past).unwrap();
    f.write_all_at(&[1u8; 4096], 0).unwrap();
    // SAFETY: plain integer arguments on an open fd.
    let ok = unsafe { libc::fallocate(f.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, 8 * MIB as libc::off_t) } == 0;
    drop(f);
    let out = run(Command::new(&p.bin).args(["check", "--format", "json"]).arg(&past));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    if ok {
        assert_eq!(json["files"][0]["beyond_eof"], 8 * MIB - 4096, "{json}");
        let out = run(Command::new(&p.bin).arg("check").arg(&past));
        assert!(text(&out.stdout).contains("allocated past the end 7.9 MiB"), "{}", text(&out.stdout));
    }
    if require(prometheus_python().is_some(), "python3 with prometheus_client (python3-prometheus-client)") {
        let out = run(Command::new(&p.bin).args(["check", "--format", "prometheus"]).arg(&dir));
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let samples = parse_prometheus(prometheus_python().unwrap(), &out.stdout);
        let value = |name: &str, labels: &str| {
            samples.iter().find(|(n, l, _)| n == name && l == labels).map(|s| s.2).unwrap_or_else(|| {
                panic!("no {name} {labels} in {samples:?}");
            })
        };
        let label = |path: &Path| serde_json::to_string(&path.to_str().unwrap()).unwrap();
        let sparse_label = format!("{{\"path\": {}}}", label(&sparse));
        assert_eq!(value("nosparse_file_hole_bytes", &sparse_label), (300 * MIB) as f64);
        assert_eq!(value("nosparse_file_fragments", &sparse_label), 0.0);
        let verdict = format!("{{\"path\": {}, \"verdict\": \"sparse\"}}", label(&sparse));
        assert_eq!(value("nosparse_file_verdict", &verdict), 1.0);
        if ok {
            let past_label = format!("{{\"path\": {}}}", label(&past));
            assert_eq!(value("nosparse_file_beyond_eof_bytes", &past_label), (8 * MIB - 4096) as f64);
        }
        assert_eq!(value("nosparse_check_files", "{\"verdict\": \"sparse\"}"), 1.0);
    }
    // A directory with nothing in it is what a pattern matching nothing is: exit 1.
    let empty = s.path("empty");
    fs::create_dir_all(&empty).unwrap();
    let out = run(Command::new(&p.bin).arg("check").arg(&empty));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("empty: no regular file in it"), "{}", text(&out.stderr));
    // A glob with '/' is matched against the absolute path, from wherever the search
    // starts.
    let glob = format!("{}/*/past.vmem", dir.display());
    let out =
        run(Command::new(&p.bin).args(["check", "--format", "ndjson", "--pattern", &glob, "."]).current_dir(&dir));
    let first: serde_json::Value = serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(first["path"], "./a/past.vmem", "{}", text(&out.stdout));
}

/// The page cache pages of `path` that are resident.
fn cached_pages(path: &Path) -> (usize, usize) {
    let f = fs::File::open(path).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    use std::os::unix::io::AsRawFd;
    // SAFETY: a read-only shared mapping of a file we opened; unmapped below.
    let map = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 0) };
    assert_ne!(map, libc::MAP_FAILED);
    let pages = len.div_ceil(4096);
    let mut vec = vec![0u8; pages];
    // SAFETY: vec has one byte per page of the mapping.
    assert_eq!(unsafe { libc::mincore(map, len, vec.as_mut_ptr()) }, 0);
    // SAFETY: map is the mapping made above.
    unsafe { libc::munmap(map, len) };
    (vec.iter().filter(|&&b| b & 1 != 0).count(), pages)
}

#[test]
fn rewrite_leaves_whole_files_alone_and_makes_the_rest_whole() {
    let s = Scratch::new("cli-rewrite");
    let p = prefix(&s, "prefix", false);
    let rewrite = |args: &[&str], file: &Path| run_unblocked(Command::new(&p.bin).arg("rewrite").args(args).arg(file));
    // Already whole: left alone (same inode) unless --force.
    let whole_file = s.path("whole.img");
    let f = fs::File::create(&whole_file).unwrap();
    // SAFETY: fallocate on an fd we own.
    assert_eq!(unsafe { libc::fallocate64(std::os::unix::io::AsRawFd::as_raw_fd(&f), 0, 0, 64 << 20) }, 0);
    drop(f);
    let ino = fs::metadata(&whole_file).unwrap().ino();
    let out = rewrite(&[], &whole_file);
    assert!(out.status.success() && text(&out.stdout).contains("already whole"), "{}", text(&out.stderr));
    assert_eq!(fs::metadata(&whole_file).unwrap().ino(), ino);
    // Special files are refused at once.
    let f = s.path("fifo");
    fifo(&f);
    let out = rewrite(&[], &f);
    assert!(out.status.code() == Some(1) && text(&out.stderr).contains("a FIFO"), "{}", text(&out.stderr));
    if !is_root() {
        // The file's owner takes a write lease: no need to look at other users' processes.
        let out = rewrite(&["--force"], &whole_file);
        assert!(out.status.success(), "{}", text(&out.stderr));
        return;
    }
    let pieces = s.path("pieces.img");
    fragmented(&pieces, 64 * MIB);
    // Refused while another process (this one) has it open, even only for reading (the
    // write lease is not granted), naming it and the in-place defragmenters.
    let reader = fs::File::open(&pieces).unwrap();
    let out = rewrite(&["--force"], &pieces);
    drop(reader);
    let stderr = text(&out.stderr);
    assert!(out.status.code() == Some(1) && stderr.contains(") has it open; stop it"), "{stderr}");
    assert!(stderr.contains("e4defrag") || stderr.contains("xfs_fsr") || stderr.contains("defragment"), "{stderr}");
    // Refused while another process (this one) has it open for writing, or with a
    // second hard link; the file stays as it was.
    let ino = fs::metadata(&pieces).unwrap().ino();
    let writer = fs::OpenOptions::new().write(true).open(&pieces).unwrap();
    let out = rewrite(&["--force"], &pieces);
    drop(writer);
    assert!(out.status.code() == Some(1) && text(&out.stderr).contains("has it open"), "{}", text(&out.stderr));
    let link = s.path("link");
    fs::hard_link(&pieces, &link).unwrap();
    let out = rewrite(&["--force"], &pieces);
    fs::remove_file(&link).unwrap();
    assert!(out.status.code() == Some(1) && text(&out.stderr).contains("hard links"), "{}", text(&out.stderr));
    assert_eq!(fs::metadata(&pieces).unwrap().ino(), ino);
    let copy = s.path("pieces.orig");
    fs::copy(&pieces, &copy).unwrap();
    fs::set_permissions(&pieces, fs::Permissions::from_mode(0o640)).unwrap();
    let before = fs::metadata(&pieces).unwrap();
    let out = rewrite(&["--force", "--progress"], &pieces);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains(": rewrote 64.0 MiB in ") && stdout.contains("fragments before"), "{stdout}");
    assert!(stderr.contains('%') && stderr.contains("left"), "no progress shown: {stderr:?}");
    let after = fs::metadata(&pieces).unwrap();
    assert_ne!(after.ino(), before.ino());
    assert_eq!((after.mode(), after.mtime(), after.mtime_nsec()), (before.mode(), before.mtime(), before.mtime_nsec()));
    // Before anything reads it: the copy's pages were dropped as it was written.
    let (cached, pages) = cached_pages(&pieces);
    assert!(cached * 4 < pages, "the copy stayed in the page cache: {cached} of {pages} pages");
    assert!(whole(&pieces));
    assert_same_content(&pieces, &copy);
    assert!(fs::read_dir(&s.dir).unwrap().flatten().all(|e| !e.file_name().to_string_lossy().contains(".nosparse-")));
    // The file's owner, not root, rewrites it under a write lease: no /proc to look at.
    let nobody = s.path("nobody");
    fs::create_dir(&nobody).unwrap();
    let theirs = nobody.join("pieces.img");
    fragmented(&theirs, 16 * MIB);
    for p in [&nobody, &theirs] {
        std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let out = run_unblocked(std::os::unix::process::CommandExt::gid(
        std::os::unix::process::CommandExt::uid(Command::new(&p.bin).args(["rewrite", "--force"]).arg(&theirs), NOBODY),
        NOBODY,
    ));
    assert!(out.status.success(), "the owner could not rewrite: {}", text(&out.stderr));
    let m = fs::metadata(&theirs).unwrap();
    assert_eq!((m.uid(), m.gid()), (NOBODY, NOBODY));
}

/// What rewrite can tell before copying is said before copying: a file it cannot open
/// (exit 2), an immutable or append-only one (refused, exit 1, the file as it was). The
/// copies a rewrite that was killed left beside the file are removed when their
/// process is gone, and only then.
#[test]
fn rewrite_says_at_once_what_it_cannot_do_and_removes_dead_copies() {
    let s = Scratch::new("cli-rewrite-early");
    let p = prefix(&s, "prefix", false);
    let file = s.path("f.img");
    fs::write(&file, vec![3u8; 1 << 16]).unwrap();
    // A process that is gone, this one (alive), and a name that is not a copy's.
    let mut gone = Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    let dead = s.path(&format!(".f.img.nosparse-{gone_pid}"));
    let living = s.path(&format!(".f.img.nosparse-{}", std::process::id()));
    let other = s.path(".f.img.nosparse-12x");
    for f in [&dead, &living, &other] {
        fs::write(f, b"partial copy").unwrap();
    }
    let out = run_unblocked(Command::new(&p.bin).arg("rewrite").arg(&file));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let said =
        format!("nosparse: rewrite: removed {}, a copy left by process {gone_pid}, which is gone\n", dead.display());
    assert_eq!(stderr, said);
    assert!(!dead.exists(), "the dead process's copy is still there");
    assert!(living.exists() && other.exists(), "a copy of a live process, or another file, was removed");
    // A file that cannot be opened: exit 2, the reason named.
    let ino = fs::metadata(&file).unwrap().ino();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o000)).unwrap();
    let mut cmd = Command::new(&p.bin);
    cmd.args(["rewrite", "--force"]).arg(&file);
    if is_root() {
        std::os::unix::process::CommandExt::uid(&mut cmd, NOBODY);
    }
    let out = run_unblocked(&mut cmd);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(": cannot open it: Permission denied"), "{stderr}");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    if !require(is_root() && have("chattr"), "chattr +i and +a need root and chattr") {
        return;
    }
    for (flag, what) in [("+i", "immutable"), ("+a", "append-only")] {
        let set = run(Command::new("chattr").arg(flag).arg(&file));
        if !require(set.status.success(), "the scratch filesystem has no inode flags") {
            return;
        }
        let out = run_unblocked(Command::new(&p.bin).args(["rewrite", "--force"]).arg(&file));
        run(Command::new("chattr").arg(flag.replace('+', "-")).arg(&file));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flag}: {stderr}");
        assert!(stderr.contains(&format!("refusing: it is {what} (chattr {flag})")), "{stderr}");
        assert_eq!(fs::metadata(&file).unwrap().ino(), ino, "{flag}: the file was replaced");
    }
}

/// A rewrite whose progress cannot be written (stderr's reader went away) ends by
/// SIGPIPE, as a stopping signal: the copy removed, the file untouched.
#[test]
fn a_rewrite_that_loses_its_stderr_removes_its_copy() {
    let s = Scratch::new("cli-rewrite-sigpipe");
    let p = prefix(&s, "prefix", false);
    let file = s.path("big.img");
    let chunk = vec![0x5au8; MIB as usize];
    let mut f = fs::File::create(&file).unwrap();
    for _ in 0..64 {
        f.write_all(&chunk).unwrap();
    }
    drop(f);
    let ino = fs::metadata(&file).unwrap().ino();
    let out = run(Command::new(&p.bin).args(["rewrite", "--force", "--progress"]).arg(&file).stderr(closed_pipe()));
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}: {}", out.status, text(&out.stdout));
    assert_eq!(fs::metadata(&file).unwrap().ino(), ino, "the original was replaced");
    let left: Vec<_> = fs::read_dir(&s.dir).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.iter().all(|n| !n.to_string_lossy().contains(".nosparse-")), "copy left: {left:?}");
}

/// nobody's and nogroup's number.
const NOBODY: u32 = 65534;

/// A copy in more fragments than the original (free space broken up) never replaces
/// it; a copy still over the limit, but better, does, with exit 1 and a line saying so.
#[test]
fn rewrite_never_puts_a_worse_copy_in_place() {
    let s = Scratch::new("cli-rewrite-worse");
    let p = prefix(&s, "prefix", false);
    let Some(fs) = common::mount(&s, "ext4", 256 * MIB) else { return };
    let rewrite = |args: &[&str], file: &Path| run_unblocked(Command::new(&p.bin).arg("rewrite").args(args).arg(file));
    let no_copy_left =
        || fs::read_dir(&fs.mnt).unwrap().flatten().all(|e| !e.file_name().to_string_lossy().contains(".nosparse-"));
    // Over the limit (none allowed), better than before: replaced, exit 1.
    let pieces = fs.path("pieces.img");
    fragmented(&pieces, 16 * MIB);
    let before = filefrag(&pieces);
    assert!(before > 4, "the test file came out in {before} fragments");
    let ino = fs::metadata(&pieces).unwrap().ino();
    let out = rewrite(&["--max-fragments", "0"], &pieces);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("still over the limit") && stderr.contains("better than before"), "{stderr}");
    assert_ne!(fs::metadata(&pieces).unwrap().ino(), ino, "the better copy was not kept");
    assert!(filefrag(&pieces) < before);
    // A contiguous file, and free space in 1 MiB pieces: the copy would be worse.
    let whole_file = fs.path("whole.img");
    let f = fs::File::create(&whole_file).unwrap();
    // SAFETY: fallocate on an fd we own.
    assert_eq!(unsafe { libc::fallocate64(std::os::unix::io::AsRawFd::as_raw_fd(&f), 0, 0, 32 << 20) }, 0);
    drop(f);
    let chunk = vec![7u8; MIB as usize];
    let mut fillers = Vec::new();
    loop {
        let name = fs.path(&format!("fill{}", fillers.len()));
        let mut f = fs::File::create(&name).unwrap();
        let full = f.write_all(&chunk).and_then(|()| f.sync_all()).is_err();
        fillers.push(name);
        if full {
            break;
        }
    }
    for name in fillers.iter().step_by(2) {
        fs::remove_file(name).unwrap();
    }
    let frags = filefrag(&whole_file);
    let ino = fs::metadata(&whole_file).unwrap().ino();
    let out = rewrite(&["--force"], &whole_file);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("more than the original's") && stderr.contains("kept the original"), "{stderr}");
    assert_eq!(fs::metadata(&whole_file).unwrap().ino(), ino, "a worse copy replaced the original");
    assert_eq!(filefrag(&whole_file), frags);
    assert!(no_copy_left());
}

#[test]
fn an_interrupted_rewrite_removes_its_copy() {
    let s = Scratch::new("cli-interrupt");
    if !require(is_root(), "rewrite looks at every process's open files: it needs root") {
        return;
    }
    let p = prefix(&s, "prefix", false);
    let file = s.path("big.img");
    // Data, not preallocated space: the copy has every byte to read and write.
    let chunk = vec![0x5au8; MIB as usize];
    let mut f = fs::File::create(&file).unwrap();
    for _ in 0..512 {
        f.write_all(&chunk).unwrap();
    }
    f.sync_all().unwrap();
    drop(f);
    let ino = fs::metadata(&file).unwrap().ino();
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let mut cmd = Command::new(&p.bin);
        cmd.args(["rewrite", "--force", "--no-progress"]).arg(&file).stderr(Stdio::piped());
        common::default_signals(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let tmp = s.path(&format!(".big.img.nosparse-{}", child.id()));
        // As soon as the copy exists, stop the rewrite.
        let started = Instant::now();
        while !tmp.exists() {
            assert!(child.try_wait().unwrap().is_none(), "rewrite ended before it made its copy");
            assert!(started.elapsed() < NO_BLOCK_LIMIT, "no copy appeared");
            std::thread::yield_now();
        }
        // SAFETY: a signal to our own child.
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.signal(), Some(sig), "{:?}", out.status);
        // The last line says what became of the copy and the file.
        let said = format!(
            "nosparse: rewrite: interrupted: copy removed, {} untouched\n",
            fs::canonicalize(&file).unwrap().display()
        );
        assert!(text(&out.stderr).ends_with(&said), "{:?}", text(&out.stderr));
        assert!(!tmp.exists(), "the copy was left behind after signal {sig}");
        assert_eq!(fs::metadata(&file).unwrap().ino(), ino, "the original was replaced");
    }
}

/// The writing end of a pipe whose reader is already closed.
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both are ours, just made; the reader is closed at once.
    let (reader, writer) = unsafe {
        use std::os::fd::FromRawFd;
        (std::os::fd::OwnedFd::from_raw_fd(fds[0]), std::os::fd::OwnedFd::from_raw_fd(fds[1]))
    };
    drop(reader);
    Stdio::from(writer)
}

/// A program found on PATH gets its name as given (argv[0]), as env(1) and the shell
/// give it, not the path it was found at.
#[test]
fn the_program_gets_its_name_as_given() {
    let s = Scratch::new("cli-argv0");
    let p = prefix(&s, "prefix", false);
    let out = run(Command::new(&p.bin).args(["--", "sh", "-c", "echo \"$0\""]));
    assert_eq!((out.status.code(), text(&out.stdout)), (Some(0), "sh\n".to_string()), "{}", text(&out.stderr));
}

/// Output that cannot be written is a failure said once on stderr (exit 2), not a
/// panic; a reader that went away ends the command by SIGPIPE, silently, as `| head`
/// expects.
#[test]
fn check_output_that_cannot_be_written() {
    let s = Scratch::new("cli-check-stdout");
    let p = prefix(&s, "prefix", false);
    let dir = s.path("files");
    fs::create_dir_all(&dir).unwrap();
    for i in 0..3 {
        fs::write(dir.join(format!("f{i}")), vec![1u8; 8192]).unwrap();
    }
    for format in ["text", "prometheus"] {
        let full = fs::File::options().write(true).open("/dev/full").unwrap();
        let out = run(Command::new(&p.bin).args(["check", "--format", format]).arg(&dir).stdout(full));
        assert_eq!(out.status.code(), Some(2), "--format {format}: {:?} {}", out.status, text(&out.stderr));
        assert_eq!(
            text(&out.stderr),
            "nosparse: cannot write to standard output: No space left on device\n",
            "--format {format}"
        );
    }
    let out = run(Command::new(&p.bin).arg("check").arg(&dir).stdout(closed_pipe()));
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}: {}", out.status, text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "a closed pipe was not quiet");
    // The launcher's dry run alike.
    let full = fs::File::options().write(true).open("/dev/full").unwrap();
    let out = run(Command::new(&p.bin).args(["--dry-run", "--", "/bin/true"]).stdout(full));
    assert_eq!(out.status.code(), Some(2), "--dry-run: {:?} {}", out.status, text(&out.stderr));
    // Messages that cannot be written are dropped; the exit status still tells.
    let full = fs::File::options().write(true).open("/dev/full").unwrap();
    let out = run(Command::new(&p.bin).arg("check").arg(s.path("nowhere")).stderr(full));
    assert_eq!(out.status.code(), Some(2), "a message to a full stderr: {:?}", out.status);
}

/// A name with a newline, a terminal escape or bytes that are not UTF-8 is shown on
/// one line, those bytes as `\xNN`, in the text and in Prometheus label values.
#[test]
fn check_shows_odd_names_escaped() {
    use std::os::unix::ffi::OsStrExt;
    let s = Scratch::new("cli-check-names");
    let p = prefix(&s, "prefix", false);
    let dir = s.path("files");
    fs::create_dir_all(&dir).unwrap();
    for name in [&b"a\nb\x1b[2J.img"[..], b"c\\d\".img", b"e\xff.img"] {
        fs::write(dir.join(std::ffi::OsStr::from_bytes(name)), vec![1u8; 8192]).unwrap();
    }
    let out = run(Command::new(&p.bin).arg("check").arg(&dir));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let shown = [r"a\x0ab\x1b[2J.img", r#"c\x5cd".img"#, r"e\xff.img"];
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    for (line, name) in lines.iter().zip(shown) {
        assert!(line.starts_with(&format!("{}/{name}: whole: ", dir.display())), "{line:?}");
    }
    assert!(!stdout.contains('\u{1b}'), "{stdout:?}");
    let out = run(Command::new(&p.bin).args(["check", "--format", "prometheus"]).arg(&dir));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for label in [r"a\\x0ab\\x1b[2J.img", r#"c\\x5cd\".img"#, r"e\\xff.img"] {
        let line = format!("nosparse_file_hole_bytes{{path=\"{}/{label}\"}} 0", dir.display());
        assert!(stdout.lines().any(|l| l == line), "no line {line:?} in\n{stdout}");
    }
}

/// A directory that cannot be listed, and one listed whose entries cannot be looked at,
/// are errors (exit 2), each named: files check cannot see never pass for none. An
/// option lacking its value says so, rather than taking `--` for it.
#[test]
fn check_counts_what_it_cannot_read_as_errors() {
    let s = Scratch::new("cli-check-unreadable");
    let p = prefix(&s, "prefix", false);
    let top = s.path("vms");
    for (dir, file) in [("ok", "f"), ("locked", "g"), ("listed", "h")] {
        fs::create_dir_all(top.join(dir)).unwrap();
        fs::write(top.join(dir).join(file), vec![1u8; 8192]).unwrap();
    }
    // Root reads every directory: the check runs as nobody, on directories of root's.
    let (locked, listed) = if is_root() { (0o700, 0o744) } else { (0o000, 0o644) };
    fs::set_permissions(top.join("locked"), fs::Permissions::from_mode(locked)).unwrap();
    fs::set_permissions(top.join("listed"), fs::Permissions::from_mode(listed)).unwrap();
    let mut cmd = Command::new(&p.bin);
    cmd.arg("check").arg(&top);
    if is_root() {
        std::os::unix::process::CommandExt::uid(&mut cmd, NOBODY);
    }
    let out = run(&mut cmd);
    for d in ["locked", "listed"] {
        fs::set_permissions(top.join(d), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    let said = [
        format!("nosparse: check: {}/listed/h: cannot look at it: Permission denied\n", top.display()),
        format!("nosparse: check: {}/locked: cannot read the directory: Permission denied\n", top.display()),
    ];
    assert_eq!(stderr, said.concat());
    assert!(stdout.starts_with(&format!("{}/ok/f: whole: ", top.display())), "{stdout}");
    assert!(stdout.ends_with(", 2 unreadable\n"), "{stdout}");
    let out = run(Command::new(&p.bin).args(["check", "--pattern", "--"]).arg(&top));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("nosparse: check: --pattern needs a value\n"), "{}", text(&out.stderr));
}

/// A pattern that matches nothing, and a file on tmpfs, are said to be so.
#[test]
fn check_says_when_there_is_nothing_to_check() {
    let s = Scratch::new("cli-check-nothing");
    let p = prefix(&s, "prefix", false);
    let dir = s.path("vms");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("guest.vmem"), b"x").unwrap();
    let out = run(Command::new(&p.bin).args(["check", "--pattern", "*.vmme"]).arg(&dir));
    assert_eq!(out.status.code(), Some(1), "a pattern that matches nothing passed");
    assert!(text(&out.stderr).contains("no file matches --pattern *.vmme"), "{}", text(&out.stderr));
    let shm = Path::new("/dev/shm");
    if require(
        shm.is_dir() && run(Command::new("stat").args(["-f", "-c", "%T"]).arg(shm)).stdout == b"tmpfs\n",
        "/dev/shm is not a tmpfs",
    ) {
        let f = shm.join(format!("nosparse-check-{}", std::process::id()));
        fs::write(&f, vec![1u8; 4096]).unwrap();
        let out = run(Command::new(&p.bin).arg("check").arg(&f));
        fs::remove_file(&f).unwrap();
        assert!(text(&out.stderr).contains("tmpfs keeps no extent map"), "{}", text(&out.stderr));
    }
}

#[test]
fn doctor_names_the_file_and_the_fix() {
    let s = Scratch::new("cli-doctor");
    let p = prefix(&s, "prefix", true);
    let doctor = |config: &Path| run(Command::new(&p.bin).arg("doctor").arg("--config").arg(config));
    let conf = s.path("nosparse.conf");
    fs::write(&conf, "# vmx only\nNOSPARSE_PROGRAMS=vmware-vmx\nNOSPARSE_TRIGGERS=pwrite,ftruncate\n").unwrap();
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o644)).unwrap();
    let out = doctor(&conf);
    let report = text(&out.stdout);
    assert!(report.contains("ok: 64-bit build: ") && report.contains("ok: 32-bit build: "), "{report}");
    if is_root() {
        assert!(report.contains("trusted, 2 settings, the library acts only in vmware-vmx"), "{report}");
        let preload = fs::read_to_string("/etc/ld.so.preload").unwrap_or_default();
        if !preload.contains("nosparse") {
            assert_eq!(out.status.code(), Some(0), "{report}");
            assert!(report.ends_with("nosparse doctor: all is well\n"), "{report}");
        }
    } else {
        assert!(report.contains("not root") && out.status.code() == Some(1), "{report}");
    }
    // Writable by others: not trusted; a bad line: named with its number and the fix.
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o666)).unwrap();
    let out = doctor(&conf);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        report.contains(&format!("PROBLEM: {}: not trusted (writable by group or others", conf.display())),
        "{report}"
    );
    assert!(report.contains("fix: sudo chown root:root"), "{report}");
    if is_root() {
        fs::set_permissions(&conf, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&conf, "NOSPARSE_PROGRAMS=vmware-vmx::\nNOSPARSE_MIN_SIZE=64MB\n").unwrap();
        let out = doctor(&conf);
        let report = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{report}");
        assert!(report.contains(&format!("PROBLEM: {}:1: NOSPARSE_PROGRAMS=", conf.display())), "{report}");
        assert!(report.contains("the library acts in no program"), "{report}");
        assert!(report.contains(&format!("PROBLEM: {}:2: NOSPARSE_MIN_SIZE=64MB", conf.display())), "{report}");
        assert!(report.contains("nosparse doctor: 2 problems found"), "{report}");
    }
    // A --config that is not there is a problem, not the defaults; one that is not a
    // regular file is named as such, with no chown to suggest.
    let settings_only = |config: &Path| {
        let out = run(Command::new(&p.bin).args(["doctor", "--settings-only", "--config"]).arg(config));
        (out.status.code(), text(&out.stdout))
    };
    let missing = s.path("missing.conf");
    let (code, report) = settings_only(&missing);
    assert_eq!(code, Some(1), "{report}");
    assert!(report.starts_with(&format!("PROBLEM: {}: does not exist; fix: ", missing.display())), "{report}");
    let dir = s.path("conf.d");
    fs::create_dir(&dir).unwrap();
    let (code, report) = settings_only(&dir);
    assert_eq!(code, Some(1), "{report}");
    assert!(report.starts_with(&format!("PROBLEM: {}: a directory, not a regular file", dir.display())), "{report}");
    assert!(!report.contains("chown") && !report.contains("chmod"), "{report}");
    let help = text(&run(Command::new(&p.bin).args(["doctor", "--help"])).stdout);
    let usage: String = help.split("\n\n").next().unwrap_or_default().into();
    assert!(usage.starts_with("usage: nosparse doctor") && usage.contains("[--settings-only]"), "{help}");
    // A set-user-ID vmx that is there and not wrapped: one line, the program and the fix.
    let vmx = s.path("vmware-vmx");
    fs::copy(&builds().vmx64, &vmx).unwrap();
    fs::set_permissions(&vmx, fs::Permissions::from_mode(0o4755)).unwrap();
    let out = run(Command::new(&p.bin).arg("doctor").arg("--program").arg(&vmx));
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let line = format!("PROBLEM: {}: set-user-ID and not wrapped", vmx.display());
    let fix = format!("; fix: sudo nosparse vmware install --vmx {}\n", vmx.display());
    assert!(report.lines().any(|l| l.starts_with(&line) && format!("{l}\n").ends_with(&fix)), "{report}");
    fs::set_permissions(&vmx, fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(Command::new(&p.bin).arg("doctor").arg("--program").arg(&vmx));
    assert!(text(&out.stdout).contains(&format!("ok: {} is not set-user-ID", vmx.display())));
    // A missing build is a problem, with the path and the fix.
    let only64 = prefix(&s, "only64", false);
    let out = run(Command::new(&only64.bin).arg("doctor"));
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("libnosparse.so: missing: 32-bit programs get no library")
            && report.contains("fix: install the 32-bit build"),
        "{report}"
    );
}

/// The man pages render without a warning.
#[test]
fn the_man_pages_render_cleanly() {
    if !require(have("man"), "man (man-db) is not installed") {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/man");
    for page in ["nosparse.1", "nosparse.conf.5", "nosparse-vmware.8"] {
        let out = run(Command::new("man")
            .args(["--warnings", "-E", "UTF-8", "-l", "-Tutf8"])
            .arg(dir.join(page))
            .env("MANWIDTH", "80"));
        assert!(out.status.success() && out.stderr.is_empty(), "{page}: {}", text(&out.stderr));
        assert!(out.stdout.len() > 1000, "{page} rendered to almost nothing");
    }
}

/// The bash completion offers a file name with a space as one word.
#[test]
fn the_completion_keeps_file_names_whole() {
    let s = Scratch::new("cli-completion");
    fs::create_dir_all(s.path("a dir")).unwrap();
    fs::write(s.path("a dir/my guest.vmem"), b"").unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/bash-completion/nosparse");
    let out = run(Command::new("bash").current_dir(&s.dir).arg("-c").arg(format!(
        "source '{}'; COMP_WORDS=(nosparse check 'a dir/my'); COMP_CWORD=2; _nosparse; printf '[%s]\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    )));
    assert_eq!(text(&out.stdout), "[a dir/my guest.vmem]\n", "{}", text(&out.stderr));
}
