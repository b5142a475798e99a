//! Deployment, judged from outside: scripts/install.sh and uninstall.sh (under a scratch
//! prefix, then /usr), the VMware wrapper in front of a set-user-ID root fake vmx started
//! by `nobody` (status, repair after a VMware upgrade, the name it runs under),
//! system-wide mode through /etc/ld.so.preload and /etc/nosparse.conf, `nosparse doctor`
//! on a sound and a broken setup, the Debian packages (lintian, dpkg -i, the wrapper,
//! dpkg -i again: the .vmem still comes out whole; removal refused while in use; purge)
//! and the RPM packages (rpm -qlp, installed into a scratch root).
//!
//! /etc/ld.so.preload and /etc/nosparse.conf are only ever bind-mounted in a private
//! mount namespace, so no other process on the host sees them. The scenarios that change
//! the host (/usr, /etc, /opt, the dpkg database) take turns, each sets up what it needs
//! and puts it back when it ends, passed or failed (tests/deploy/host.rs). The launcher,
//! check and rewrite are tested without root by tests/cli.rs. Needs root; under CI=true
//! a missing tool or privilege is a failure. No sleeps.
//!
//! Every scenario installs both classes' builds, whichever target this test is built
//! for: the i686 test run would repeat the x86_64 one, so only the x86_64 one has them.

#![cfg(target_arch = "x86_64")]

mod common;
#[path = "deploy/host.rs"]
mod host;

use host::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The size of the `.vmem` files the VMware scenarios make.
const VMEM_MIB: u64 = 256;

fn installed_lib(lib_dir: &str) -> String {
    format!("/usr/{lib_dir}/libnosparse.so")
}

/// The lines of `readelf -h` name this class.
fn assert_class(file: &Path, class: &str, what: &str) {
    let r = cmd(argv!["readelf", "-h", file]).ok();
    assert!(has_line(&r.stdout, &format!("Class:.*{class}")), "{what}: {} is not {class}: {r}", file.display());
}

#[test]
fn install_under_a_prefix() {
    let Some(t) = start("deploy-prefix", &["readelf"]) else { return };
    let p = t.path("prefix");
    cmd(argv!["scripts/install.sh", "--prefix", p, "--no-build"]).ok();
    let lib64 = format!("{}/libnosparse.so", t.lib64);
    let lib32 = format!("{}/libnosparse.so", t.lib32);
    for f in ["bin/nosparse", "sbin/nosparse-vmware", lib64.as_str(), lib32.as_str()] {
        assert!(p.join(f).is_file(), "{} was not installed", p.join(f).display());
    }
    assert_class(&p.join(&lib64), "ELF64", "the 64-bit library");
    assert_class(&p.join(&lib32), "ELF32", "the 32-bit library");
    for page in ["man1/nosparse.1", "man5/nosparse.conf.5", "man8/nosparse-vmware.8"] {
        assert!(p.join("share/man").join(page).is_file(), "{page} was not installed");
    }
    assert!(p.join("share/bash-completion/completions/nosparse").is_file(), "no bash completion");
    let manifest = fs::read_to_string(p.join("share/nosparse/installed-files")).expect("the list of installed files");
    let files = manifest.lines().filter(|l| !l.ends_with('/')).count();
    assert_eq!(files, 13, "the list of installed files names {files} files, not 13:\n{manifest}");
    let r = cmd(argv![p.join("bin/nosparse"), "--dry-run", "--", builds().vmx32]).ok();
    let library = format!("library={}", p.join(&lib32).display());
    assert!(r.stdout.lines().any(|l| l == library), "the dry run does not say {library}: {r}");
}

#[test]
fn uninstall_under_a_prefix() {
    let Some(t) = start("deploy-unprefix", &[]) else { return };
    let p = t.path("prefix");
    cmd(argv!["scripts/install.sh", "--prefix", p, "--no-build"]).ok();
    cmd(argv!["scripts/uninstall.sh", "--prefix", p]).ok();
    // Nothing left, not even the directories install.sh made.
    assert!(!p.exists(), "left behind:\n{}", tree(&p));
    // DESTDIR stages the same files; the list names them as installed.
    let stage = t.path("stage");
    let staged = stage.join("opt/nosparse-stage");
    cmd(argv!["scripts/install.sh", "--prefix", "/opt/nosparse-stage", "--no-build"]).env("DESTDIR", &stage).ok();
    assert!(staged.join("bin/nosparse").is_file(), "DESTDIR: no bin/nosparse staged:\n{}", tree(&stage));
    assert!(!Path::new("/opt/nosparse-stage").exists(), "DESTDIR: /opt/nosparse-stage was installed, not staged");
    let list = fs::read_to_string(staged.join("share/nosparse/installed-files")).expect("the staged list");
    assert!(list.lines().any(|l| l == "/opt/nosparse-stage/bin/nosparse"), "DESTDIR's list:\n{list}");
    cmd(argv!["scripts/uninstall.sh", "--prefix", "/opt/nosparse-stage"]).env("DESTDIR", &stage).ok();
    let left = fs::read_dir(&stage).map_or(0, Iterator::count);
    assert_eq!(left, 0, "left in DESTDIR:\n{}", tree(&stage));
}

#[test]
fn install_under_usr() {
    let Some(t) = start("deploy-usr", &[]) else { return };
    let _host = host();
    let _usr = usr_install(&t);
    for lib in [installed_lib(&t.lib64), installed_lib(&t.lib32)] {
        assert!(Path::new(&lib).is_file(), "{lib} is missing");
    }
    let r = cmd(argv![NOSPARSE, "--dry-run", "--", builds().vmx32]).ok();
    assert!(r.stdout.lines().any(|l| l == "trusted_dir=1"), "/usr/{} is not trusted by the loader: {r}", t.lib32);
}

#[test]
fn uninstall_under_usr() {
    let Some(t) = start("deploy-unusr", &[]) else { return };
    let _host = host();
    let _usr = usr_install(&t);
    cmd(argv!["scripts/uninstall.sh"]).ok();
    let libs = [installed_lib(&t.lib64), installed_lib(&t.lib32)];
    for f in [NOSPARSE, NOSPARSE_VMWARE, libs[0].as_str(), libs[1].as_str(), "/usr/share/nosparse"] {
        assert!(!Path::new(f).exists(), "{f} left behind");
    }
}

/// `nosparse vmware STEP ARGS` prints `unchanged` and exits 0: the step was done already.
fn assert_unchanged(t: &Deploy, step: Vec<std::ffi::OsString>, what: &str) {
    let mut a = argv![NOSPARSE, "vmware"];
    a.extend(step);
    let r = t.sys(a).raw();
    assert!(r.ok() && r.out() == "unchanged", "{what}: not `unchanged`: {r}");
}

/// `dpkg-statoverride --list` (which exits 1 when there is none).
fn statoverrides() -> String {
    cmd(argv!["dpkg-statoverride", "--list"]).raw().stdout
}

fn diversions() -> String {
    cmd(argv!["dpkg-divert", "--list"]).raw().stdout
}

#[test]
fn vmware_wrapper_end_to_end() {
    let Some(t) = start("deploy-vmware", &["setpriv", "unshare", "dpkg-divert", "dpkg-statoverride"]) else { return };
    let _host = host();
    let _usr = usr_install(&t);
    let _etc = placeholders();
    let _tree = VmwareTree::new();
    t.vmx_conf();
    let b = builds();
    let state = t.path("vmware.state");
    let size = mib(VMEM_MIB);
    for (bits, lib_dir) in [(32, &t.lib32), (64, &t.lib64)] {
        let vmx = PathBuf::from(format!("{V}/bin{bits}/vmware-vmx"));
        let real = PathBuf::from(format!("{V}/bin{bits}/nosparse-real/vmware-vmx"));
        let vmem = |name: &str| PathBuf::from(format!("{V}/vm/{name}{bits}.vmem"));
        let wrapper_dir = t.path(&format!("etc-vmware{bits}"));
        // Control: the set-user-ID program started by nobody, no wrapper: sparse.
        t.sys(as_nobody(argv![vmx, "--path", vmem("bare"), "--size", size])).ok();
        assert_sparse(&vmem("bare"));
        let owner = fs::metadata(vmem("bare")).expect("stat the .vmem").uid();
        assert_eq!(owner, 0, "fake vmx did not run set-user-ID root: its file is uid {owner}'s");
        let install = argv!["install", "--vmx", vmx, "--wrapper-dir", wrapper_dir, "--state", state];
        let mut check = argv![NOSPARSE, "vmware", "install", "--check"];
        check.extend(install[1..].iter().cloned());
        let r = t.sys(check).raw();
        assert_eq!(r.code(), Some(2), "install --check: exit status: {r}");
        assert!(has_line(&r.stdout, "^would change: "), "install --check: no `would change:` line: {r}");
        assert!(!is_link(&vmx), "install --check changed {}: it is a link now", vmx.display());
        let mut a = argv![NOSPARSE_VMWARE];
        a.extend(install.iter().cloned());
        let took = Instant::now();
        t.sys(a).ok();
        println!("time: install ({bits}-bit vmx): {:?}", took.elapsed());
        assert!(is_link(&vmx), "{} is not a link to the wrapper", vmx.display());
        assert!(setuid(&real), "not diverted to {}: no set-user-ID program there", real.display());
        // Each step twice: the second changes nothing, and --check agrees.
        assert_unchanged(&t, install.clone(), "install twice");
        let took = Instant::now();
        assert_unchanged(&t, argv!["repair", "--vmx", vmx, "--state", state], "repair of a sound install");
        println!("time: repair of a sound install ({bits}-bit vmx): {:?}", took.elapsed());
        let r = t.sys(argv![NOSPARSE, "vmware", "repair", "--check", "--state", state]).raw();
        assert!(r.ok(), "repair --check of a sound install: {r}");
        assert!(setuid(installed_lib(lib_dir)), "{} is not set-user-ID", installed_lib(lib_dir));
        assert!(statoverrides().contains("libnosparse"), "no statoverride for the library:\n{}", statoverrides());
        // Unprivileged user, wrapper, set-user-ID root program: whole, with ftruncate too.
        t.sys(as_nobody(argv![vmx, "--path", vmem("guest"), "--size", size, "--writes", "16"])).ok();
        assert_whole(&vmem("guest"));
        t.sys(as_nobody(argv![vmx, "--path", vmem("trunc"), "--size", size, "--call", "ftruncate"])).ok();
        assert_whole(&vmem("trunc"));
        // Only vmx: the same program under another name is left alone.
        let other = format!("{V}/other{bits}");
        cmd(argv!["cp", real, other]).ok();
        let renamed = argv!["env", "LD_PRELOAD=libnosparse.so", other, "--path", vmem("other"), "--size", size];
        t.sys(as_nobody(renamed)).ok();
        assert_sparse(&vmem("other"));
        let r = t.sys(argv![NOSPARSE_VMWARE, "status", "--vmx", vmx, "--state", state]).raw();
        assert!(r.ok(), "status: {r}");
    }
    let took = Instant::now();
    let r = t.sys(argv![NOSPARSE_VMWARE, "status", "--state", state]).raw();
    println!("time: status (two wrapped programs): {:?}", took.elapsed());
    assert!(r.ok(), "status: {r}");
    println!("{}", r.stdout);
    let r = t.sys(argv![NOSPARSE, "vmware", "status", "--json", "--state", state]).raw();
    assert!(r.ok(), "status --json: {r}");
    let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("status --json: {e}: {r}"));
    assert_eq!(json["ok"], true, "status --json is not ok: {r}");
    assert_eq!(json["wrapped"].as_array().map(Vec::len), Some(2), "status --json: not 2 wrapped: {r}");
    for (bits, built) in [(32, &b.vmx32), (64, &b.vmx64)] {
        let vmx = PathBuf::from(format!("{V}/bin{bits}/vmware-vmx"));
        t.sys(argv![NOSPARSE_VMWARE, "uninstall", "--vmx", vmx, "--state", state]).ok();
        assert_unchanged(&t, argv!["uninstall", "--vmx", vmx, "--state", state], "uninstall twice");
        assert!(!is_link(&vmx), "not restored: {} is still a link", vmx.display());
        let real_dir = format!("{V}/bin{bits}/nosparse-real");
        assert!(!Path::new(&real_dir).exists(), "not restored: {real_dir} is still there");
        assert!(setuid(&vmx), "not restored: {} is not set-user-ID", vmx.display());
        assert!(same_bytes(&vmx, built), "the restored program differs from {}", built.display());
        let wrapper_dir = t.path(&format!("etc-vmware{bits}"));
        assert!(
            !wrapper_dir.exists(),
            "uninstall left {}, which install made:\n{}",
            wrapper_dir.display(),
            tree(&wrapper_dir)
        );
        let after = PathBuf::from(format!("{V}/vm/after{bits}.vmem"));
        t.sys(as_nobody(argv![vmx, "--path", after, "--size", size])).ok();
        assert_sparse(&after);
    }
    for lib in [installed_lib(&t.lib32), installed_lib(&t.lib64)] {
        assert!(!setuid(&lib), "set-user-ID bit left on {lib}");
    }
    assert!(!statoverrides().contains("libnosparse"), "statoverride left:\n{}", statoverrides());
    assert!(!state.exists(), "state left: {}", fs::read_to_string(&state).unwrap_or_default());
    // Repair repairs only what was installed: with nothing recorded, nothing.
    assert_unchanged(&t, argv!["repair", "--state", state], "repair with nothing recorded");
    assert!(!is_link(format!("{V}/bin64/vmware-vmx")), "repair with nothing recorded installed the wrapper");
    // ... nor do repair and uninstall make a state directory where none is.
    let no_state = t.path("no-state");
    for step in ["repair", "uninstall"] {
        assert_unchanged(
            &t,
            argv![step, "--state", no_state.join("vmware")],
            &format!("{step} with no state directory"),
        );
        assert!(!no_state.exists(), "{step} with nothing recorded made {}", no_state.display());
    }
    assert!(!diversions().contains(V), "diversion left:\n{}", diversions());
    let launched =
        argv![NOSPARSE, "--", format!("{V}/bin32/vmware-vmx"), "--path", format!("{V}/vm/x.vmem"), "--size", mib(1)];
    let r = t.sys(as_nobody(launched)).ok();
    assert!(r.stderr.contains("set-user-ID bit"), "no warning for a set-user-ID program: {r}");
}

/// `nosparse-vmware status ARGS` fails, saying a line that matches `pattern`.
fn assert_broken(t: &Deploy, args: Vec<std::ffi::OsString>, pattern: &str, what: &str) -> String {
    let mut a = argv![NOSPARSE_VMWARE, "status"];
    a.extend(args);
    let r = t.sys(a).raw();
    assert!(!r.ok(), "status passed {what}: {r}");
    assert!(has_line(&r.stdout, pattern), "status {what}: no line `{pattern}`: {r}");
    r.stdout
}

/// `nosparse-vmware status ARGS` passes.
fn assert_status_ok(t: &Deploy, args: Vec<std::ffi::OsString>, what: &str) -> String {
    let mut a = argv![NOSPARSE_VMWARE, "status"];
    a.extend(args);
    let r = t.sys(a).raw();
    assert!(r.ok(), "status {what}: {r}");
    r.stdout
}

/// A long-running set-user-ID stand-in (sleep) behind the wrapper: the name it runs
/// under, which processes status sees with the library, the library losing its bit, and
/// a VMware upgrade replacing vmware-vmx; repair puts each right.
#[test]
fn vmware_status_and_repair() {
    let tools = ["setpriv", "unshare", "dpkg-divert", "dpkg-statoverride", "stat"];
    let Some(t) = start("deploy-repair", &tools) else { return };
    let _host = host();
    let _usr = usr_install(&t);
    let _etc = placeholders();
    let _tree = VmwareTree::new();
    t.vmx_conf();
    let state = t.path("vmware.state");
    let vmx = PathBuf::from(format!("{V}/bin64/vmware-vmx"));
    let real = PathBuf::from(format!("{V}/bin64/nosparse-real/vmware-vmx"));
    let lib = fs::canonicalize(installed_lib(&t.lib64)).expect("the installed library");
    let sleep = Path::new("/usr/bin/sleep");
    install_program(sleep, &vmx, 0o4755);
    // A wrapper directory that was there before install (as /etc/vmware is on a host
    // with VMware) stays after uninstall.
    let wrapper_dir = t.path("etc-vmware");
    fs::create_dir(&wrapper_dir).expect("mkdir etc-vmware");
    t.sys(argv![NOSPARSE_VMWARE, "install", "--vmx", vmx, "--wrapper-dir", wrapper_dir, "--state", state]).ok();
    // setpriv, then the wrapper, then vmx: one process.
    let mut running = t.sys(as_nobody(argv![vmx, "600"])).spawn();
    running.wait_loaded(&real);
    let pid = running.pid();
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_eq!(comm.trim_end(), "vmware-vmx", "vmx runs as {comm}");
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    assert_eq!(argv0, vmx.as_os_str().as_encoded_bytes(), "argv[0]: {}", String::from_utf8_lossy(&cmdline));
    let status = assert_status_ok(&t, argv!["--state", state], "with vmx running");
    let with_library = format!("^ok: running vmx {pid} has the library");
    assert!(has_line(&status, &with_library), "status does not see the library in vmx {pid}:\n{status}");
    running.stop();
    // The bit lost (as a reinstall without dpkg would): status says so, repair restores it.
    let mode = fs::metadata(&lib).expect("stat the library").mode();
    chmod(&lib, mode & 0o7777 & !0o4000);
    assert_broken(
        &t,
        argv!["--state", state],
        &format!("^BROKEN: {} has lost its set-user-ID bit", lib.display()),
        "without the bit",
    );
    let r = t.sys(argv![NOSPARSE, "vmware", "repair", "--check", "--state", state]).raw();
    assert_eq!(r.code(), Some(2), "repair --check: exit status: {r}");
    let change = format!("would change: set the set-user-ID bit on {}", lib.display());
    assert!(r.stdout.lines().any(|l| l == change), "repair --check does not say `{change}`: {r}");
    assert!(!setuid(&lib), "repair --check set the bit on {}", lib.display());
    let mut running = t.sys(as_nobody(argv![vmx, "600"])).spawn();
    running.wait_loaded(&real);
    let pid = running.pid();
    let without = format!("^BROKEN: running vmx {pid} does not have the library");
    assert_broken(&t, argv!["--state", state], &without, "with vmx running without the library");
    running.stop();
    t.sys(argv![NOSPARSE_VMWARE, "repair", "--state", state]).ok();
    assert_status_ok(&t, argv!["--state", state], "after repair");
    // Settings that keep the library from acting on vmx's .vmem files: status and doctor
    // name the setting and the fix, and fail.
    let fs_type = cmd(argv!["stat", "-f", "-c", "%T", format!("{V}/vm")]).ok().out().to_string();
    let fs_name = match fs_type.as_str() {
        "ext2/ext3" => "ext",
        "overlayfs" => "overlay",
        other => other,
    };
    let skip_fs = format!("NOSPARSE_SKIP_FS={fs_name}");
    let settings = [
        "NOSPARSE_DISABLE=1",
        "NOSPARSE_METHOD=off",
        "NOSPARSE_MATCH=*.vmdk",
        "NOSPARSE_MIN_SIZE=1T",
        &skip_fs,
        "NOSPARSE_PROGRAMS=vmware-vmx* # vmx only",
    ];
    let mut status = String::new();
    for setting in settings {
        t.conf(&format!("NOSPARSE_PROGRAMS=vmware-vmx*\nNOSPARSE_TRIGGERS=pwrite,ftruncate\n{setting}\n"), 0o644);
        let name = setting.split('=').next().unwrap();
        let args = argv!["--state", state, "--vm-dir", format!("{V}/vm")];
        let pattern = format!("^BROKEN: /etc/nosparse.conf: .*{name}.*; fix: ");
        status = assert_broken(&t, args, &pattern, &format!("with {setting}"));
        let r = t.sys(argv![NOSPARSE, "doctor", "--vm-dir", format!("{V}/vm")]).raw();
        assert!(!r.ok(), "doctor passed with {setting}: {r}");
        let pattern = format!("^PROBLEM: /etc/nosparse.conf: .*{name}.*; fix: ");
        assert!(has_line(&r.stdout, &pattern), "doctor with {setting}: no line `{pattern}`: {r}");
    }
    let comment = "includes the comment after it.*fix: put the comment on a line of its own";
    assert!(has_line(&status, comment), "status does not point out the inline comment:\n{status}");
    assert!(!status.contains("add vmware-vmx"), "status suggests adding what is there:\n{status}");
    t.vmx_conf();
    assert_status_ok(&t, argv!["--state", state, "--vm-dir", format!("{V}/vm")], "with the example settings");
    // A VMware upgrade: a new vmware-vmx replaces the link.
    fs::remove_file(&vmx).expect("rm vmware-vmx");
    install_program(sleep, &vmx, 0o4755);
    let again = format!("^BROKEN: {} is a program again", vmx.display());
    assert_broken(&t, argv!["--state", state], &again, "after the upgrade");
    let took = Instant::now();
    t.sys(argv![NOSPARSE_VMWARE, "repair", "--state", state]).ok();
    println!("time: repair after a VMware upgrade: {:?}", took.elapsed());
    assert_status_ok(&t, argv!["--state", state], "after repair");
    assert!(is_link(&vmx), "repair did not wrap the new program: {} is not a link", vmx.display());
    assert!(setuid(&real), "repair did not wrap the new program: {} is not set-user-ID", real.display());
    // A VMware upgrade that copies its new vmware-vmx to the link's name: cp writes
    // through the link, over the wrapper; the installer then sets the bits through it.
    let wrapper = t.path("etc-vmware/nosparse-vmware-vmx");
    let sleep_bytes = fs::read(sleep).expect("read sleep");
    for v in [2, 3] {
        fs::write(t.path(&format!("vmx-v{v}")), [&sleep_bytes[..], format!("version {v}\n").as_bytes()].concat())
            .expect("write a new vmx");
    }
    cmd(argv!["cp", t.path("vmx-v2"), vmx]).ok();
    cmd(argv!["chmod", "4755", vmx]).ok();
    let copied = format!("^BROKEN: {} is not the wrapper but another program", wrapper.display());
    assert_broken(&t, argv!["--state", state], &copied, "with vmx copied over the wrapper");
    t.sys(argv![NOSPARSE_VMWARE, "repair", "--state", state]).ok();
    assert_status_ok(&t, argv!["--state", state], "after repair");
    assert!(same_bytes(&real, t.path("vmx-v2")), "repair did not make the copied program the real one");
    let m = fs::metadata(&real).expect("stat the real program");
    assert!(
        m.mode() & 0o4000 != 0 && m.uid() == 0,
        "the new program lost its bits: mode {:o}, uid {}",
        m.mode(),
        m.uid()
    );
    assert!(is_link(&vmx), "repair did not write the wrapper again: {} is not a link", vmx.display());
    let text = fs::read_to_string(&wrapper).unwrap_or_default();
    assert!(text.contains("nosparse"), "repair did not write the wrapper again: {}:\n{text}", wrapper.display());
    // ... and uninstall after such an upgrade keeps the new program.
    cmd(argv!["cp", t.path("vmx-v3"), vmx]).ok();
    // status of a program that is not wrapped names it; uninstall without --vmx acts on
    // the one wrapped program, and dpkg-divert gives no warning (--no-rename is given).
    let unwrapped = format!(
        "^BROKEN: /bin/true has no wrapper recorded in {}: nosparse-vmware install --vmx /bin/true (wrapped: {})",
        state.display(),
        vmx.display()
    );
    assert_broken(&t, argv!["--vmx", "/bin/true", "--state", state], &unwrapped, "of /bin/true");
    let r = t.sys(argv![NOSPARSE_VMWARE, "uninstall", "--state", state]).raw();
    assert!(r.ok(), "uninstall: {r}");
    assert!(!r.stderr.to_lowercase().contains("warning"), "uninstall warned: {r}");
    assert!(vmx.is_file() && !is_link(&vmx), "uninstall left no program at {}", vmx.display());
    assert!(same_bytes(&vmx, t.path("vmx-v3")), "uninstall did not keep the new program");
    assert!(!real.exists(), "uninstall after the copy left {}", real.display());
    assert!(!wrapper.exists(), "uninstall after the copy left {}", wrapper.display());
    assert!(wrapper_dir.is_dir(), "uninstall removed {}, which install did not make", wrapper_dir.display());
    assert!(!setuid(&lib), "uninstall after the copy left the set-user-ID bit on {}", lib.display());
    let vmx_name = vmx.display().to_string();
    assert!(!diversions().contains(&vmx_name), "diversion left:\n{}", diversions());
}

#[test]
fn system_wide_mode() {
    let Some(t) = start("deploy-system", &["setpriv", "unshare", "python3"]) else { return };
    let _host = host();
    let _usr = usr_install(&t);
    let _etc = placeholders();
    let _tree = VmwareTree::new();
    let b = builds();
    t.preload("/usr/$LIB/libnosparse.so\n");
    t.conf("NOSPARSE_PROGRAMS=fake_vmx:vmware-vmx\nNOSPARSE_LOG=stderr\n", 0o644);
    for (bits, vmx) in [(64, &b.vmx64), (32, &b.vmx32)] {
        // On the list: whole, in both classes, with no LD_PRELOAD at all.
        let file = t.path(&format!("sys{bits}.vmem"));
        let r = t.sys(argv!["env", "-u", "LD_PRELOAD", vmx, "--path", file, "--size", mib(128)]).ok();
        assert_whole(&file);
        assert!(!r.stderr.to_lowercase().contains("error"), "loader or library complained: {r}");
    }
    // Not on the list: inert and silent (Python's os.pwrite is the same creation call).
    let img = t.path("py.img");
    let script = format!(
        "import os; fd = os.open('{}', os.O_RDWR | os.O_CREAT); os.pwrite(fd, b'\\0', {})",
        img.display(),
        128 * common::MIB - 1
    );
    let r = t.sys(argv!["python3", "-c", script]).ok();
    assert_sparse(&img);
    assert!(r.stderr.is_empty(), "an unlisted program printed: {r}");
    // The loader of a 32-bit program finds its own build: no message from any process.
    let script = format!("'{}' --help >/dev/null; ls / >/dev/null", b.vmx32.display());
    let r = t.sys(argv!["sh", "-c", script]).ok();
    assert!(r.stderr.is_empty(), "stderr: {r}");
    // The file is trusted in a set-user-ID program, the environment is not.
    let vmx32 = format!("{V}/bin32/vmware-vmx");
    t.conf("NOSPARSE_PROGRAMS=vmware-vmx\nNOSPARSE_MIN_SIZE=1G\n", 0o644);
    let min = format!("{V}/vm/min.vmem");
    t.sys(as_nobody(argv!["env", "NOSPARSE_MIN_SIZE=1M", vmx32, "--path", min, "--size", mib(256)])).ok();
    assert_sparse(Path::new(&min));
    t.conf("NOSPARSE_PROGRAMS=vmware-vmx\nNOSPARSE_MIN_SIZE=128M\n", 0o644);
    let on = format!("{V}/vm/on.vmem");
    t.sys(as_nobody(argv!["env", "NOSPARSE_DISABLE=1", vmx32, "--path", on, "--size", mib(256)])).ok();
    assert_whole(Path::new(&on));
    // A file others can write is not trusted: the library acts in no program (fail
    // closed) and says nothing (nosparse doctor does).
    t.conf("NOSPARSE_PROGRAMS=*\nNOSPARSE_LOG=stderr\n", 0o666);
    let file = t.path("untrusted.vmem");
    let vmx = argv!["env", "-u", "LD_PRELOAD", "NOSPARSE_LOG=stderr", b.vmx64, "--path", file, "--size", mib(128)];
    let r = t.sys(vmx).ok();
    assert_sparse(&file);
    assert!(r.stderr.is_empty(), "an untrusted settings file made noise: {r}");
}

#[test]
fn doctor_sound_and_broken() {
    let Some(t) = start("deploy-doctor", &["unshare"]) else { return };
    let _host = host();
    let _usr = usr_install(&t);
    let _etc = placeholders();
    t.vmx_conf();
    t.preload("/usr/$LIB/libnosparse.so\n");
    let r = t.sys(argv![NOSPARSE, "doctor"]).raw();
    assert!(r.ok(), "doctor on a sound setup: {r}");
    println!("{}", r.stdout);
    // A preload entry without $LIB, a settings file others can write.
    t.preload(&format!("/usr/{}/libnosparse.so\n", t.lib64));
    chmod(&t.path("nosparse.conf"), 0o666);
    let r = t.sys(argv![NOSPARSE, "doctor"]).raw();
    assert!(!r.ok(), "doctor passed a broken setup: {r}");
    println!("{}", r.stdout);
    let preload = "^PROBLEM: /etc/ld.so.preload: .* for 32-bit programs: .* is not a 32-bit library";
    assert!(has_line(&r.stdout, preload), "doctor does not name /etc/ld.so.preload: {r}");
    let settings = "^PROBLEM: /etc/nosparse.conf: not trusted (writable by group or others.*fix: sudo chown root:root";
    assert!(has_line(&r.stdout, settings), "doctor does not name /etc/nosparse.conf: {r}");
    chmod(&t.path("nosparse.conf"), 0o644);
    // A commented-out entry is none, for doctor as for glibc's loader ('#' to the end
    // of the line); not even a broken one.
    t.preload(&format!("# was: /usr/{}/libnosparse.so\n", t.lib64));
    let r = t.sys(argv![NOSPARSE, "doctor"]).raw();
    assert!(r.ok(), "doctor with a commented-out entry: {r}");
    let none = "^ok: /etc/ld.so.preload does not name the library";
    assert!(has_line(&r.stdout, none), "doctor with a commented-out entry does not say `{none}`: {r}");
    t.preload("");
}

/// `dpkg-deb -f DEB FIELD`.
fn control(deb: &Path, field: &str) -> String {
    cmd(argv!["dpkg-deb", "-f", deb, field]).ok().out().to_string()
}

/// What the packages must hold, and lintian's verdict.
#[test]
fn debian_packages_are_sound() {
    let tools = ["dpkg-deb", "lintian", "readelf", "objdump"];
    let Some(t) = start("deploy-debs", &tools) else { return };
    let d = debs();
    let lib_amd64 = one(d, "libnosparse0_", "_amd64.deb");
    let tools_amd64 = one(d, "nosparse_", "_amd64.deb");
    let tools_i386 = one(d, "nosparse_", "_i386.deb");
    let contents = |deb: &Path| cmd(argv!["dpkg-deb", "-c", deb]).ok().stdout;
    let list = contents(&lib_amd64);
    for entry in [
        " ./usr/lib/x86_64-linux-gnu/libnosparse.so.0$",
        " ./usr/lib/x86_64-linux-gnu/libnosparse.so -> libnosparse.so.0$",
    ] {
        assert!(has_line(&list, entry), "libnosparse0 has no `{entry}`:\n{list}");
    }
    let list = contents(&one(d, "lib32nosparse0_", "_amd64.deb"));
    assert!(has_line(&list, " ./usr/lib32/libnosparse.so.0$"), "lib32nosparse0 lacks its library:\n{list}");
    let list = contents(&one(d, "libnosparse0_", "_i386.deb"));
    let i386 = " ./usr/lib/i386-linux-gnu/libnosparse.so.0$";
    assert!(has_line(&list, i386), "the i386 libnosparse0 lacks its library:\n{list}");
    let list = contents(&tools_amd64);
    for f in [
        "./usr/bin/nosparse",
        "./usr/sbin/nosparse-vmware",
        "./usr/share/man/man1/nosparse.1.gz",
        "./usr/share/man/man5/nosparse.conf.5.gz",
        "./usr/share/man/man8/nosparse-vmware.8.gz",
        "./usr/share/bash-completion/completions/nosparse",
    ] {
        assert!(has_line(&list, &format!(" {f}$")), "{f} not in the tools package:\n{list}");
    }
    assert!(!list.contains("libnosparse"), "the tools package carries the library:\n{list}");
    assert_eq!(control(&lib_amd64, "Multi-Arch"), "same", "libnosparse0's Multi-Arch");
    assert_eq!(control(&lib_amd64, "Section"), "libs", "libnosparse0's Section");
    assert_eq!(control(&tools_amd64, "Multi-Arch"), "foreign", "nosparse's Multi-Arch");
    let depends = control(&tools_amd64, "Depends");
    let version = control(&lib_amd64, "Version");
    let same_library = format!("libnosparse0 (= {version})");
    assert!(depends.contains(&same_library), "the tools do not depend on {same_library}: {depends}");
    assert_eq!(control(&tools_amd64, "Suggests"), format!("lib32nosparse0 (= {version})"), "amd64 tools' Suggests");
    assert_eq!(control(&tools_amd64, "Recommends"), "", "the amd64 tools' Recommends");
    assert_eq!(control(&tools_i386, "Suggests"), "", "the i386 tools' Suggests");
    assert_eq!(control(&tools_amd64, "Homepage"), control(&lib_amd64, "Homepage"), "the packages' Homepage");
    for deb in matching(d, "", ".deb") {
        let r = cmd(argv!["dpkg-deb", "-I", deb, "md5sums"]).raw();
        assert!(r.ok(), "{} has no md5sums: {r}", deb.display());
    }
    let triggers = cmd(argv!["dpkg-deb", "-I", lib_amd64, "triggers"]).ok();
    assert_eq!(triggers.out(), "activate-noawait ldconfig", "libnosparse0's triggers");
    assert!(!matching(d, "nosparse-dbgsym_", "_amd64.ddeb").is_empty(), "no nosparse-dbgsym .ddeb in {}", d.display());
    let (root_i386, root_amd64) = (t.path("i386"), t.path("amd64"));
    cmd(argv!["dpkg-deb", "-x", tools_i386, root_i386]).ok();
    assert_class(&root_i386.join("usr/bin/nosparse"), "ELF32", "the i386 launcher");
    // The tools are linked statically: no loader, no library, no glibc symbol version,
    // so they run on glibc 2.17 hosts and older; their Depends name no C library.
    cmd(argv!["dpkg-deb", "-x", tools_amd64, root_amd64]).ok();
    for bin in [root_amd64.join("usr/bin/nosparse"), root_i386.join("usr/bin/nosparse")] {
        let headers = cmd(argv!["readelf", "-l", bin]).raw().stdout;
        assert!(!headers.contains("INTERP"), "{} has a loader:\n{headers}", bin.display());
        let dynamic = cmd(argv!["readelf", "-d", bin]).raw().stdout;
        assert!(!dynamic.contains("(NEEDED)"), "{} needs libraries:\n{dynamic}", bin.display());
        let symbols = cmd(argv!["objdump", "-T", bin]).raw().stdout;
        assert!(!symbols.contains("GLIBC_"), "{} has glibc symbol versions", bin.display());
        let r = cmd(argv![bin, "--version"]).raw();
        assert!(r.ok(), "{} does not run: {r}", bin.display());
    }
    assert!(!depends.contains("libc6"), "the static tools depend on a C library: {depends}");
    let mut lintian = argv!["lintian", "--fail-on", "error,warning"];
    lintian.extend(matching(d, "", ".deb").into_iter().map(Into::into));
    let r = cmd(lintian).raw();
    assert!(r.ok(), "lintian: {r}");
    println!("{}", r.all());
}

/// Install the packages, wrap a set-user-ID vmx, install the packages again (what an
/// upgrade does to the library's mode), and the .vmem still comes out whole.
#[test]
fn debian_upgrade_keeps_the_wrapper() {
    let Some(t) = start("deploy-upgrade", &["dpkg", "setpriv", "unshare"]) else { return };
    let _host = host();
    assert!(!Path::new(VMWARE_STATE).exists(), "a wrapper is installed on this host: not touching it");
    assert!(!Path::new(NOSPARSE).exists(), "nosparse is installed on this host: not touching it");
    let d = debs();
    let _purge = debian_packages_purged_after();
    let _etc = placeholders();
    let _tree = VmwareTree::new();
    t.vmx_conf();
    let lib32_deb = one(d, "lib32nosparse0_", "_amd64.deb");
    let mut dpkg_i = argv!["dpkg", "-i", one(d, "libnosparse0_", "_amd64.deb"), lib32_deb];
    dpkg_i.push(one(d, "nosparse_", "_amd64.deb").into());
    let vmx = |bits: u32| PathBuf::from(format!("{V}/bin{bits}/vmware-vmx"));
    let run_vmx = |bits: u32, name: &str| {
        let vmem = PathBuf::from(format!("{V}/vm/{name}{bits}.vmem"));
        t.sys(as_nobody(argv![vmx(bits), "--path", vmem, "--size", mib(VMEM_MIB)])).ok();
        assert_whole(&vmem);
    };
    t.sys(dpkg_i.clone()).ok();
    for bits in [32, 64] {
        let wrapper_dir = t.path(&format!("etc-vmware{bits}"));
        t.sys(argv![NOSPARSE_VMWARE, "install", "--vmx", vmx(bits), "--wrapper-dir", wrapper_dir]).ok();
        run_vmx(bits, "deb");
    }
    t.sys(dpkg_i).ok();
    for lib in [format!("/usr/{}/libnosparse.so.0", t.lib64), format!("/usr/{}/libnosparse.so.0", t.lib32)] {
        assert!(setuid(&lib), "the upgrade cleared the set-user-ID bit of {lib}");
    }
    for bits in [32, 64] {
        run_vmx(bits, "again");
    }
    let r = t.sys(argv![NOSPARSE_VMWARE, "status"]).raw();
    assert!(r.ok(), "status after the upgrade: {r}");
    // Removal is refused while the wrapper uses the library, saying how to undo it.
    // (--force-depends: it is the library's own prerm that must refuse, not dpkg.)
    let r = t.sys(argv!["dpkg", "-r", "--force-depends", "libnosparse0"]).raw();
    assert!(!r.ok(), "libnosparse0 removed under the wrapper: {r}");
    let why = "the VMware wrapper is installed: run 'nosparse-vmware uninstall' first";
    assert!(r.all().contains(why), "removing libnosparse0 under the wrapper does not say `{why}`: {r}");
    let r = t.sys(argv!["dpkg", "-r", "nosparse"]).raw();
    assert!(!r.ok(), "nosparse removed under the wrapper: {r}");
    assert!(r.all().contains("nosparse-vmware uninstall"), "removing nosparse under the wrapper says no fix: {r}");
    for bits in [32, 64] {
        t.sys(argv![NOSPARSE_VMWARE, "uninstall", "--vmx", vmx(bits)]).ok();
    }
    // Purging a library package (here one removed before the wrapper was installed, so
    // its prerm had nothing to refuse) leaves the wrapper's state alone.
    t.sys(argv!["dpkg", "-r", "lib32nosparse0"]).ok();
    t.sys(argv![NOSPARSE_VMWARE, "install", "--vmx", vmx(64), "--wrapper-dir", t.path("etc-vmware64")]).ok();
    t.sys(argv!["dpkg", "--purge", "lib32nosparse0"]).ok();
    let state_len = fs::metadata(VMWARE_STATE).map_or(0, |m| m.len());
    assert!(state_len > 0, "purging lib32nosparse0 removed the wrapper's state");
    let r = t.sys(argv![NOSPARSE_VMWARE, "status", "--vmx", vmx(64)]).raw();
    assert!(r.ok(), "status after the purge: {r}");
    t.sys(argv![NOSPARSE_VMWARE, "uninstall", "--vmx", vmx(64)]).ok();
    assert!(!is_link(vmx(64)), "uninstall after the purge left {} a link", vmx(64).display());
    assert!(setuid(vmx(64)), "uninstall after the purge: {} is not set-user-ID", vmx(64).display());
    t.sys(argv!["dpkg", "-i", one(d, "lib32nosparse0_", "_amd64.deb")]).ok();
    // ... and while /etc/ld.so.preload names it.
    t.preload("/usr/$LIB/libnosparse.so\n");
    let r = t.sys(argv!["dpkg", "-r", "--force-depends", "libnosparse0"]).raw();
    assert!(!r.ok(), "libnosparse0 removed while preloaded: {r}");
    let why = "ld.so.preload names the library";
    assert!(r.all().contains(why), "removing libnosparse0 while preloaded does not say `{why}`: {r}");
    // A commented-out line is no entry (glibc's loader ignores it): removal goes ahead.
    t.preload("# was: /usr/$LIB/libnosparse.so\n");
    t.sys(argv!["dpkg", "-r", "nosparse", "libnosparse0", "lib32nosparse0"]).ok();
    for f in [NOSPARSE.to_string(), format!("/usr/{}/libnosparse.so.0", t.lib64), installed_lib(&t.lib32)] {
        assert!(!Path::new(&f).exists(), "dpkg -r left {f}");
    }
    assert!(!statoverrides().contains("libnosparse"), "statoverride left:\n{}", statoverrides());
    fs::create_dir_all("/var/lib/nosparse").expect("mkdir /var/lib/nosparse");
    t.sys(argv!["dpkg", "--purge", "nosparse", "libnosparse0", "lib32nosparse0"]).ok();
    assert!(!Path::new("/var/lib/nosparse").exists(), "purge left /var/lib/nosparse");
}

#[test]
fn rpm_packages() {
    let Some(t) = start("deploy-rpm", &["rpm", "unshare", "readelf"]) else { return };
    let _host = host();
    let _etc = placeholders();
    t.vmx_conf();
    // scripts/package-rpm.sh packages the build scripts/package.sh made.
    debs();
    let r = t.path("rpms");
    cmd(argv!["bash", "scripts/package-rpm.sh", r]).ok();
    let query = |args: Vec<std::ffi::OsString>| {
        let mut a = argv!["rpm", "-qp"];
        a.extend(args);
        cmd(a).ok().stdout
    };
    let libs_x86_64 = one(&r, "nosparse-libs-", ".x86_64.rpm");
    let v = query(argv!["--qf", "%{VERSION}-%{RELEASE}", libs_x86_64]);
    let rpm = |name: &str, arch: &str| r.join(format!("{name}-{v}.{arch}.rpm"));
    for (arch, lib) in [("x86_64", "/usr/lib64/libnosparse.so"), ("i686", "/usr/lib/libnosparse.so")] {
        let list = query(argv!["-l", rpm("nosparse-libs", arch)]);
        let libs: Vec<&str> = list.lines().filter(|l| l.contains("libnosparse")).collect();
        assert_eq!(libs.join("\n"), lib, "the {arch} library package's library:\n{list}");
    }
    let list = query(argv!["-l", rpm("nosparse", "x86_64")]);
    for f in [
        "/usr/bin/nosparse",
        "/usr/sbin/nosparse-vmware",
        "/usr/share/man/man1/nosparse.1.gz",
        "/usr/share/man/man8/nosparse-vmware.8.gz",
    ] {
        assert!(list.lines().any(|l| l == f), "{f} not in the tools package:\n{list}");
    }
    let cargo_toml = fs::read_to_string(Path::new(ROOT).join("cli/Cargo.toml")).expect("cli/Cargo.toml");
    let homepage = cargo_toml.lines().find_map(|l| l.strip_prefix("homepage = \"")?.strip_suffix('"'));
    let url = query(argv!["--qf", "%{URL}", rpm("nosparse", "x86_64")]);
    assert_eq!(Some(url.trim_end_matches('\n')), homepage, "the tools' URL and cli/Cargo.toml's homepage");
    let posttrans = query(argv!["--qf", "%{POSTTRANS}", rpm("nosparse-libs", "x86_64")]);
    assert!(posttrans.contains("nosparse vmware repair"), "no %posttrans repair:\n{posttrans}");
    let requires = query(argv!["--requires", rpm("nosparse", "x86_64")]);
    let same = format!("nosparse-libs(x86-64) = {v}");
    assert!(requires.lines().any(|l| l == same), "the tools do not require `{same}`:\n{requires}");
    let requires = query(argv!["--requires", rpm("nosparse", "i686")]);
    let same = format!("nosparse-libs(x86-32) = {v}");
    assert!(requires.lines().any(|l| l == same), "the i686 tools do not require `{same}`:\n{requires}");
    let provides = query(argv!["--provides", rpm("nosparse-libs", "i686")]);
    assert!(provides.lines().any(|l| l == same), "the i686 library does not provide `{same}`:\n{provides}");
    // The library's removal script refuses while /etc/ld.so.preload names it, and not
    // for a commented-out line (run here in the private mount namespace).
    let preun = t.path("preun");
    fs::write(&preun, query(argv!["--qf", "%{PREUN}", rpm("nosparse-libs", "x86_64")])).expect("write preun");
    t.preload("/usr/$LIB/libnosparse.so\n");
    let out = t.sys(argv!["sh", preun, "0"]).raw();
    assert!(!out.ok(), "preun let the library go while preloaded: {out}");
    assert!(out.stderr.contains("ld.so.preload names the library"), "preun does not say why: {out}");
    t.preload("# was: /usr/$LIB/libnosparse.so\n");
    let out = t.sys(argv!["sh", preun, "0"]).raw();
    assert!(out.ok(), "preun refused for a commented-out line: {out}");
    t.preload("");
    let root = t.path("rpmroot");
    cmd(argv!["rpm", "--root", root, "--initdb"]).ok();
    // A scratch root has no C library to satisfy the requirements, nor a shell for scripts.
    let mut install = argv!["rpm", "--root", root, "-i", "--nodeps", "--noscripts"];
    install.extend(argv![rpm("nosparse-libs", "x86_64"), rpm("nosparse-libs", "i686"), rpm("nosparse", "x86_64")]);
    cmd(install).ok();
    assert_class(&root.join("usr/lib64/libnosparse.so"), "ELF64", "lib64");
    assert_class(&root.join("usr/lib/libnosparse.so"), "ELF32", "lib");
    for tool in ["usr/bin/nosparse", "usr/sbin/nosparse-vmware"] {
        assert!(executable(root.join(tool)), "{tool} is not installed executable");
    }
    let all = cmd(argv!["rpm", "--root", root, "-qa"]).ok().stdout;
    assert_eq!(all.lines().filter(|l| l.starts_with("nosparse")).count(), 3, "installed:\n{all}");
    cmd(argv![
        "rpm",
        "--root",
        root,
        "-e",
        "--nodeps",
        "--noscripts",
        "nosparse",
        "nosparse-libs.x86_64",
        "nosparse-libs.i686"
    ])
    .ok();
    for f in ["usr/lib64/libnosparse.so", "usr/bin/nosparse"] {
        assert!(!root.join(f).exists(), "rpm -e left {f}");
    }
}
