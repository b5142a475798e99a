//! The opt-in triggers (`NOSPARSE_TRIGGERS`): `ftruncate`/`ftruncate64` growing a file and
//! a one-byte `write` after `lseek`, through fake_vmx on both architectures, and through
//! the real programs that create files that way (`truncate`, `dd`, `qemu-img`, Python's
//! `os.pwrite`). Those are the machine's own 64-bit programs, so they run in the x86_64
//! suite only; the i686 suite covers the same symbols through its own fake_vmx.

mod common;

use common::*;

const SIZE: u64 = 256 * MIB;

#[test]
fn each_trigger_is_off_by_default_and_whole_when_on() {
    let s = Scratch::new("triggers");
    for (call, trigger) in [("ftruncate", "ftruncate"), ("ftruncate64", "ftruncate"), ("write", "write")] {
        let off_path = s.path(&format!("{call}-off.vmem"));
        let run = vmx(&off_path).arg("--size", SIZE).arg("--call", call).arg("--seek", 777).arg("--writes", 16);
        let (without, with) = run.both(&off_path);
        assert_untouched(&without, &with, &format!("{call} with the default triggers"));
        assert!(measure(&off_path).layout.hole_bytes > SIZE / 2, "{call}: preallocated though not asked");

        let on_path = s.path(&format!("{call}-on.vmem"));
        let mut run = run.env("NOSPARSE_TRIGGERS", trigger);
        let i = run.args_mut().iter().position(|a| a == "--path").unwrap() + 1;
        run.args_mut()[i] = on_path.display().to_string();
        let (without, with) = run.both(&on_path);
        assert_same(&without, &with, call);
        assert_eq!(with.get("size_after_create"), SIZE as i64, "{call}");
        assert!(with.get("allocated_after_create") >= SIZE as i64, "{call}: not allocated at creation: {:?}", with.kv);
        assert_whole(&measure(&on_path), call);
        assert_same_content(&on_path, &bare_path(&on_path));
        assert!(with.stderr.contains(&format!("(on {trigger})")), "{call}: {}", with.stderr);
    }
}

#[test]
fn triggers_leave_other_calls_alone() {
    let s = Scratch::new("triggers-alone");
    let all = "pwrite,ftruncate,write";
    let cases: Vec<(&str, Vmx)> = vec![
        (
            "shrinking ftruncate",
            vmx(&s.path("shrink")).arg("--size", MIB).arg("--prefill", SIZE).arg("--call", "ftruncate64"),
        ),
        ("ftruncate below the threshold", vmx(&s.path("small")).arg("--size", 32 * MIB).arg("--call", "ftruncate")),
        ("write of two bytes", vmx(&s.path("two")).arg("--size", SIZE).arg("--call", "write").arg("--nbyte", 2)),
        ("O_APPEND write", vmx(&s.path("append")).arg("--size", SIZE).arg("--call", "write").arg("--open", "append")),
        ("write to a pipe", vmx(&s.path("pipe")).arg("--size", SIZE).arg("--call", "write").arg("--target", "pipe")),
        (
            "read-only ftruncate",
            vmx(&s.path("ro")).arg("--size", SIZE).arg("--call", "ftruncate").arg("--open", "rdonly"),
        ),
    ];
    for (what, run) in cases {
        let run = run.env("NOSPARSE_TRIGGERS", all);
        let path = run.path();
        let (without, with) = run.both(&path);
        assert_untouched(&without, &with, what);
        assert!(!with.stderr.contains("preallocated"), "{what}: {}", with.stderr);
    }
}

/// The machine's own programs: 64-bit, so only the x86_64 build can be preloaded into them.
#[cfg(target_arch = "x86_64")]
mod real_programs {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    /// Runs `program args` with the library preloaded (or not), and the given settings.
    fn run_tool(program: &str, args: &[&str], preload: bool, settings: &[(&str, &str)]) -> std::process::Output {
        let mut cmd = Command::new(program);
        cmd.args(args).env_remove("LD_PRELOAD").env("NOSPARSE_LOG", "stderr");
        for (k, _) in std::env::vars() {
            if k.starts_with("NOSPARSE_") {
                cmd.env_remove(k);
            }
        }
        if preload {
            cmd.env("LD_PRELOAD", &artifacts().lib);
        }
        cmd.envs(settings.iter().copied());
        let out = cmd.output().unwrap_or_else(|e| panic!("run {program}: {e}"));
        assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    }

    /// Makes `name` with `make(path)` without and with the library (and `settings`), and
    /// checks the two files: the same size and bytes, sparse without, whole with.
    fn compare_tool(s: &Scratch, name: &str, settings: &[(&str, &str)], make: impl Fn(&Path, bool, &[(&str, &str)])) {
        let (bare, with) = (s.path(&format!("{name}.bare")), s.path(name));
        make(&bare, false, &[]);
        make(&with, true, settings);
        let (b, w) = (measure(&bare), measure(&with));
        assert_eq!(b.size, w.size, "{name}: sizes differ");
        assert!(b.layout.hole_bytes > b.size / 2, "{name}: the bare run was not sparse: {b:?}");
        assert_whole(&w, name);
        assert_same_content(&bare, &with);
    }

    #[test]
    fn real_programs_that_create_sparse_files() {
        assert!(require(have("truncate") && have("dd"), "coreutils"));
        let qemu = require(have("qemu-img"), "qemu-img is not installed (scripts/setup.sh installs qemu-utils)");
        let python = require(have("python3"), "python3 is not installed");
        let s = Scratch::new("real-programs");
        let size = SIZE.to_string();
        let last = (SIZE - 1).to_string();
        let ftruncate = [("NOSPARSE_TRIGGERS", "ftruncate")];
        let write = [("NOSPARSE_TRIGGERS", "write")];
        let both = [("NOSPARSE_TRIGGERS", "write,ftruncate")];

        compare_tool(&s, "truncate.img", &ftruncate, |p, pre, set| {
            run_tool("truncate", &["-s", &size, &p.display().to_string()], pre, set);
        });
        // dd truncates the output to seek= first (ftruncate to size - 1), which makes the
        // hole, then writes the byte: the ftruncate trigger sees it. With conv=notrunc the
        // one-byte write past the end makes the hole itself.
        for (name, extra, set) in [("dd.img", None, &both[..]), ("dd-notrunc.img", Some("conv=notrunc"), &write[..])] {
            compare_tool(&s, name, set, |p, pre, set| {
                let of = format!("of={}", p.display());
                let seek = format!("seek={last}");
                let mut args = vec!["if=/dev/zero", &of, "bs=1", "count=1", &seek, "status=none"];
                args.extend(extra);
                run_tool("dd", &args, pre, set);
            });
        }
        if qemu {
            compare_tool(&s, "qemu.raw", &ftruncate, |p, pre, set| {
                run_tool("qemu-img", &["create", "-q", "-f", "raw", &p.display().to_string(), &size], pre, set);
            });
        }
        if python {
            // The default trigger: Python's os.pwrite is pwrite64.
            compare_tool(&s, "python.img", &[], |p, pre, set| {
                let code = format!(
                    "import os\nfd = os.open({:?}, os.O_RDWR | os.O_CREAT, 0o644)\nassert os.pwrite(fd, b'\\0', {last}) == 1",
                    p.display().to_string()
                );
                run_tool("python3", &["-c", &code], pre, set);
            });
        }
        // Without the trigger asked for, truncate(1) makes its file sparse as usual.
        let plain = s.path("plain.img");
        let out = run_tool("truncate", &["-s", &size, &plain.display().to_string()], true, &[]);
        assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(measure(&plain).layout.hole_bytes == SIZE, "truncate without the trigger was preallocated");
    }
}
