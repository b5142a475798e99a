//! Secure execution: a setuid-root copy of fake_vmx, started by an unprivileged user
//! with the library preloaded the only way the loader allows for such programs (a bare
//! name, from a standard library directory, with the set-user-ID bit on the library).
//! The NOSPARSE_* environment must be ignored there, and honoured in a plain copy.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The loader's standard directory for this architecture's libraries on this host.
fn system_lib_dir() -> &'static str {
    if cfg!(target_arch = "x86") {
        "/usr/lib32"
    } else {
        "/usr/lib/x86_64-linux-gnu"
    }
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn run_as_nobody(program: &Path, preload: &str, file: &Path) -> (i32, String, String) {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg("env")
        .arg("-i")
        .arg(format!("LD_PRELOAD={preload}"))
        .args(["NOSPARSE_DISABLE=1", "NOSPARSE_LOG=stderr", "NOSPARSE_DEBUG=1"])
        .arg(program)
        .arg("--path")
        .arg(file)
        .args(["--size", &(128 * MIB).to_string()])
        .output()
        .expect("run setpriv");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn a_setuid_program_ignores_nosparse_settings_from_the_environment() {
    if !require(is_root(), "making a setuid-root program needs root")
        || !require(have("setpriv"), "setpriv (util-linux)")
    {
        return;
    }
    let a = artifacts();
    let tag = format!("{}-{}", artifacts::TARGET, std::process::id());
    // Outside the build tree, whose parents an unprivileged user may not be able to enter.
    let dir = PathBuf::from(format!("/tmp/nosparse-secure-{tag}"));
    let lib_name = format!("libnosparse-securetest-{tag}.so");
    let lib = Path::new(system_lib_dir()).join(&lib_name);
    let _cleanup = Cleanup(vec![lib.clone(), dir.clone()]);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    chmod(&dir, 0o755);
    chmod(&dir.join("data"), 0o777);
    std::fs::copy(&a.lib, &lib).unwrap();
    chmod(&lib, 0o4755);
    let suid = dir.join("fake_vmx_suid");
    let plain = dir.join("fake_vmx_plain");
    std::fs::copy(&a.fake_vmx, &suid).unwrap();
    std::fs::copy(&a.fake_vmx, &plain).unwrap();
    chmod(&suid, 0o4755);
    chmod(&plain, 0o755);

    // setuid: the environment's NOSPARSE_DISABLE=1 and NOSPARSE_LOG=stderr are ignored,
    // so the file is allocated and the log goes to syslog, not stderr.
    let file = dir.join("data/suid.vmem");
    let (status, stdout, stderr) = run_as_nobody(&suid, &lib_name, &file);
    assert_eq!(status, 0, "{stdout}{stderr}");
    assert!(stdout.contains("create_ret=1"), "{stdout}");
    let m = measure(&file);
    assert!(
        m.allocated >= m.size,
        "setuid run: not allocated, so the environment was obeyed or the library not loaded: {m:?}\n{stderr}"
    );
    assert!(!stderr.contains("nosparse"), "setuid run logged to stderr, as the environment asked: {stderr}");

    // The same program without the setuid bit obeys the environment: disabled, sparse.
    let file = dir.join("data/plain.vmem");
    let (status, stdout, stderr) = run_as_nobody(&plain, &lib.display().to_string(), &file);
    assert_eq!(status, 0, "{stdout}{stderr}");
    let m = measure(&file);
    assert!(m.allocated < m.size / 2, "plain run: NOSPARSE_DISABLE=1 was not obeyed: {m:?}\n{stderr}");
}
