//! The README's first command: `cargo run --release --example demo`.
//!
//! Runs fake_vmx — which creates a guest memory file the way vmware-vmx does and then
//! writes pages back in random order, as vmx does (1 MiB regions mapped, written and
//! msync'ed), while a second writer competes for the disk — once without and once
//! with libnosparse.so, in a temporary directory on a real disk, and prints what each
//! run left behind, side by side. As root it also fills a small loop-mounted disk
//! under a running guest, with and without the library.

#[path = "../tests/common/artifacts.rs"]
mod artifacts;
#[path = "../tests/common/compare.rs"]
mod compare;
#[path = "../tests/common/loopfs.rs"]
mod loopfs;
#[path = "../tests/common/outside.rs"]
#[allow(dead_code)]
mod outside;

use nosparse_core::fs::FsKind;
use std::os::unix::io::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{exit, Command};

const MIB: u64 = 1 << 20;
/// The full-disk case: a guest of this size (the library's default threshold) on a
/// filesystem of twice that.
const FULL_DISK_GUEST: u64 = 64 * MIB;
const FULL_DISK_WRITES: u64 = 192;

const USAGE: &str = "\
usage: cargo run --release --example demo -- [--size BYTES] [--writes N] [--dir DIR]

  --size BYTES   size of the guest memory file (default 1073741824)
  --writes N     random 1 MiB guest writes after creation (default 512)
  --dir DIR      where to make the temporary directory (default $TMPDIR, then /var/tmp)
";

struct Run {
    allocated_after_create: u64,
    create_ms: f64,
    fragments: u64,
    log: Vec<String>,
}

fn main() {
    let (mut size, mut writes, mut dir) = (1u64 << 30, 512u64, None::<PathBuf>);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| fail(&format!("{a} needs a value\n{USAGE}")));
        match a.as_str() {
            "--size" => size = value().parse().unwrap_or_else(|_| fail("--size: not a number")),
            "--writes" => writes = value().parse().unwrap_or_else(|_| fail("--writes: not a number")),
            "--dir" => dir = Some(value().into()),
            "--help" | "-h" => {
                print!("{USAGE}");
                return;
            }
            other => fail(&format!("unknown option {other}\n{USAGE}")),
        }
    }
    eprintln!("demo: building libnosparse.so and fake_vmx ...");
    let a = artifacts::build();
    let (base, fs) = pick_dir(dir);
    let work = base.join(format!("nosparse-demo-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", work.display())));
    println!(
        "fake_vmx creates a {} guest memory file with vmware-vmx's call, pwrite64(fd, \"\\0\", 1, size - 1),",
        short(size)
    );
    println!("then writes {writes} random 1 MiB regions as vmx does (mapped, written, msync'ed) while a second");
    println!("writer competes for space.");
    println!("directory: {} ({fs})\n", work.display());
    if fs == FsKind::Tmpfs {
        println!("note: only tmpfs was found; files there live in RAM and nosparse skips tmpfs by default,");
        println!("      so both columns will look alike. Pass --dir on a disk-backed filesystem.\n");
    }
    let without = run(&a, &work, "without", size, writes, false);
    let with = run(&a, &work, "with", size, writes, true);
    let same =
        compare::first_difference(&work.join("without.vmem"), &work.join("with.vmem")).is_ok_and(|d| d.is_none());
    let full_disk = full_disk(&a, &work);
    let _ = std::fs::remove_dir_all(&work);

    println!("{:<40}{:>20}{:>20}", "", "without nosparse", "with nosparse");
    let row = |what: &str, a: String, b: String| println!("{what:<40}{a:>20}{b:>20}");
    row("allocated right after creation", short(without.allocated_after_create), short(with.allocated_after_create));
    row("creation call took", format!("{:.2} ms", without.create_ms), format!("{:.2} ms", with.create_ms));
    row("fragments after the guest's run", without.fragments.to_string(), with.fragments.to_string());
    row("contents identical", if same { "yes" } else { "NO" }.into(), String::new());
    match &full_disk {
        Some((without, with)) => row("guest after the disk fills", without.clone(), with.clone()),
        None => row("guest after the disk fills", "(run as root)".into(), "(run as root)".into()),
    }
    println!();
    for line in &with.log {
        println!("library log: {line}");
    }
    if !same {
        exit(1);
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("demo: {msg}");
    exit(2)
}

/// `1.0 GiB`, `4.0 KiB`: one decimal, rounded down.
fn short(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    match UNITS.iter().enumerate().rev().find(|(i, _)| n >= 1 << (10 * (i + 1))) {
        Some((i, unit)) => {
            let tenths = (u128::from(n) * 10) >> (10 * (i + 1));
            format!("{}.{} {unit}", tenths / 10, tenths % 10)
        }
        None => format!("{n} bytes"),
    }
}

/// The first candidate directory that is not tmpfs, or the first that exists.
fn pick_dir(asked: Option<PathBuf>) -> (PathBuf, FsKind) {
    let mut candidates: Vec<PathBuf> = asked.into_iter().collect();
    if candidates.is_empty() {
        candidates.extend(std::env::var_os("TMPDIR").map(PathBuf::from));
        candidates.push("/var/tmp".into());
        candidates.push(std::env::current_dir().unwrap_or_else(|_| ".".into()).join("target"));
    }
    let kinds: Vec<(PathBuf, FsKind)> = candidates.into_iter().filter_map(|d| fs_kind(&d).map(|k| (d, k))).collect();
    kinds
        .iter()
        .find(|(_, k)| *k != FsKind::Tmpfs)
        .or(kinds.first())
        .cloned()
        .unwrap_or_else(|| fail("no usable directory: pass --dir"))
}

fn fs_kind(dir: &Path) -> Option<FsKind> {
    let f = std::fs::File::open(dir).ok()?;
    FsKind::of_fd(f.as_raw_fd()).ok()
}

fn run(a: &artifacts::Artifacts, work: &Path, name: &str, size: u64, writes: u64, preload: bool) -> Run {
    let path = work.join(format!("{name}.vmem"));
    let mut cmd = Command::new(&a.fake_vmx);
    cmd.arg("--path").arg(&path).arg("--size").arg(size.to_string()).arg("--writes").arg(writes.to_string());
    cmd.arg("--write-back").arg("mmap");
    cmd.arg("--competitor").arg(work.join(format!("{name}.rival")));
    cmd.env_remove("LD_PRELOAD").env("NOSPARSE_LOG", "stderr");
    if preload {
        cmd.env("LD_PRELOAD", &a.lib);
    }
    let out = cmd.output().unwrap_or_else(|e| fail(&format!("cannot run fake_vmx: {e}")));
    if !out.status.success() {
        fail(&format!("fake_vmx failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let get = |key: &str| -> u64 {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| fail(&format!("fake_vmx printed no {key}")))
    };
    // The run's writes are on disk (msync, fdatasync), so filefrag shows their places.
    let map = outside::filefrag(&path).unwrap_or_else(|e| fail(&e));
    Run {
        allocated_after_create: get("allocated_after_create"),
        create_ms: get("create_ns") as f64 / 1e6,
        fragments: map.fragments,
        log: String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("nosparse:"))
            .map(String::from)
            .collect(),
    }
}

/// A guest whose memory file was created on an empty disk, which another writer then
/// fills; then the guest writes its memory. What became of it without and with the
/// library, or None when not root (a small loop-mounted filesystem is needed: filling
/// the real disk is not a demo).
fn full_disk(a: &artifacts::Artifacts, work: &Path) -> Option<(String, String)> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let fate = |preload: bool| -> String {
        let fs = loopfs::LoopFs::new(work, "ext4", 2 * FULL_DISK_GUEST).unwrap_or_else(|e| fail(&e));
        let mut cmd = Command::new(&a.fake_vmx);
        cmd.arg("--path").arg(fs.path("guest.vmem")).arg("--size").arg(FULL_DISK_GUEST.to_string());
        cmd.arg("--fill-disk").arg(fs.path("other-writer"));
        cmd.args(["--write-back", "mmap", "--writes", &FULL_DISK_WRITES.to_string()]);
        cmd.env_remove("LD_PRELOAD").env("NOSPARSE_LOG", "none");
        if preload {
            cmd.env("LD_PRELOAD", &a.lib);
        }
        let status = cmd.output().unwrap_or_else(|e| fail(&format!("cannot run fake_vmx: {e}"))).status;
        match (status.code(), status.signal()) {
            (Some(0), _) => "lives on".into(),
            (_, Some(libc::SIGBUS)) => "dies (SIGBUS)".into(),
            (Some(code), _) => format!("dies (exit {code})"),
            (None, Some(signal)) => format!("dies (signal {signal})"),
            (None, None) => "?".into(),
        }
    };
    Some((fate(false), fate(true)))
}
