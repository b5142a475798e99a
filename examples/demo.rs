//! The README's first command: `cargo run --release --example demo`.
//!
//! Runs fake_vmx — which creates a guest memory file the way vmware-vmx does and then
//! writes pages back in random order while a second writer competes for the disk —
//! once without and once with libnosparse.so, in a temporary directory on a real
//! disk, and prints what each run left behind, side by side.

#[path = "../tests/common/artifacts.rs"]
mod artifacts;
#[path = "../tests/common/compare.rs"]
mod compare;

use nosparse_core::extents;
use nosparse_core::fs::FsKind;
use nosparse_core::log::Bytes;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{exit, Command};

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
    println!("then writes {writes} random 1 MiB pages back with fdatasync while a second writer competes for space.");
    println!("directory: {} ({fs})\n", work.display());
    if fs == FsKind::Tmpfs {
        println!("note: only tmpfs was found; files there live in RAM and nosparse skips tmpfs by default,");
        println!("      so both columns will look alike. Pass --dir on a disk-backed filesystem.\n");
    }
    let without = run(&a, &work, "without", size, writes, false);
    let with = run(&a, &work, "with", size, writes, true);
    let same =
        compare::first_difference(&work.join("without.vmem"), &work.join("with.vmem")).is_ok_and(|d| d.is_none());
    let _ = std::fs::remove_dir_all(&work);

    println!("{:<40}{:>20}{:>20}", "", "without nosparse", "with nosparse");
    let row = |what: &str, a: String, b: String| println!("{what:<40}{a:>20}{b:>20}");
    row("allocated right after creation", short(without.allocated_after_create), short(with.allocated_after_create));
    row("creation call took", format!("{:.2} ms", without.create_ms), format!("{:.2} ms", with.create_ms));
    row("fragments after the guest's run", without.fragments.to_string(), with.fragments.to_string());
    row("contents identical", if same { "yes" } else { "NO" }.into(), String::new());
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

/// `1.0 GiB`, from the log module's formatting.
fn short(n: u64) -> String {
    let s = Bytes(n).to_string();
    match (s.find('('), s.rfind(')')) {
        (Some(i), Some(j)) => s[i + 1..j].to_string(),
        _ => s,
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
    let f = std::fs::File::open(&path).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
    // The run's writes are on disk (fdatasync), so FIEMAP shows their final places.
    let layout = extents::layout(f.as_raw_fd(), size).unwrap_or_else(|e| fail(&format!("FIEMAP: {e}")));
    Run {
        allocated_after_create: get("allocated_after_create"),
        create_ms: get("create_ns") as f64 / 1e6,
        fragments: layout.fragments,
        log: String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("nosparse:"))
            .map(String::from)
            .collect(),
    }
}
