//! The benchmark: nosparse against the alternatives, side by side, in one run on the
//! same disk, written to BENCHMARKS.md with its figures.
//!
//! ```sh
//! sudo cargo run --release --example bench -- --quick   # a few minutes
//! sudo cargo run --release --example bench              # the default run (~15 min)
//! sudo cargo run --release --example bench -- --full    # 16 GiB files, 1 GiB guests
//! ```
//!
//! Needs root: every measurement is made on a filesystem created for it in an image
//! file and loop-mounted, and cold reads need the page cache dropped. One file per
//! benchmark; report.rs writes the report and svg.rs the figures.

#[path = "../../tests/common/artifacts.rs"]
mod artifacts;
#[path = "../../tests/common/compare.rs"]
mod compare;
#[path = "../../tests/common/loopfs.rs"]
mod loopfs;
#[path = "../../tests/common/outside.rs"]
#[allow(dead_code)]
mod outside;
#[path = "../../tests/common/qemu.rs"]
#[allow(dead_code)]
mod qemu;

mod creation;
mod fulldisk;
mod hypervisor;
mod layout;
mod report;
mod startup;
mod svg;
mod util;

use std::path::PathBuf;
use std::process::exit;
use std::time::Instant;
use util::*;

const USAGE: &str = "\
usage: cargo run --release --example bench -- [options]   (as root)

  --quick            a quick look, a few minutes: 1 GiB creations, 256 MiB guests, one
                     run of each measurement
  --full             the long run: 1, 4 and 16 GiB creations, 1 GiB guests
  --runs N           runs of each measurement, reported as median and range (default 3)
  --sizes LIST       creation sizes in GiB, comma-separated (default 1,4)
  --out FILE         the report (default BENCHMARKS.md)
  --figures DIR      where the SVG figures go (default docs)
  --dir DIR          where the filesystem images go (default /var/tmp)
";

/// Which run the options asked for, named in the report.
#[derive(Clone, Copy, PartialEq)]
pub enum Mode {
    Quick,
    Default,
    Full,
}

impl Mode {
    pub fn flag(self) -> &'static str {
        match self {
            Mode::Quick => " -- --quick",
            Mode::Default => "",
            Mode::Full => " -- --full",
        }
    }
}

pub struct Opts {
    pub mode: Mode,
    pub runs: usize,
    pub sizes: Vec<u64>,
    /// The guest memory file of the layout benchmark, and its guest writes.
    pub guest: u64,
    pub writes: u64,
    pub startup_rounds: usize,
    pub startup_execs: usize,
    pub qemu_runs: usize,
    pub out: PathBuf,
    pub figures: PathBuf,
    pub dir: PathBuf,
}

fn die(msg: &str) -> ! {
    eprintln!("bench: {msg}");
    exit(2)
}

impl Opts {
    fn for_mode(mode: Mode) -> Opts {
        let (runs, sizes, guest, writes, rounds, qemu_runs) = match mode {
            Mode::Quick => (1, vec![1], 256 * MIB, 256, 15, 1),
            Mode::Default => (3, vec![1, 4], 512 * MIB, 512, 30, 2),
            Mode::Full => (3, vec![1, 4, 16], GIB, 1024, 40, 3),
        };
        Opts {
            mode,
            runs,
            sizes,
            guest,
            writes,
            startup_rounds: rounds,
            startup_execs: 40,
            qemu_runs,
            out: "BENCHMARKS.md".into(),
            figures: "docs".into(),
            dir: "/var/tmp".into(),
        }
    }

    fn parse() -> Opts {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mode = if args.iter().any(|a| a == "--quick") {
            Mode::Quick
        } else if args.iter().any(|a| a == "--full") {
            Mode::Full
        } else {
            Mode::Default
        };
        let mut o = Opts::for_mode(mode);
        let mut args = args.into_iter();
        while let Some(a) = args.next() {
            let mut value = || args.next().unwrap_or_else(|| die(&format!("{a} needs a value\n{USAGE}")));
            match a.as_str() {
                "--quick" | "--full" => {}
                "--runs" => o.runs = value().parse().unwrap_or_else(|_| die("--runs: not a number")),
                "--sizes" => {
                    o.sizes = value()
                        .split(',')
                        .map(|s| s.trim().parse().unwrap_or_else(|_| die("--sizes: numbers")))
                        .collect()
                }
                "--out" => o.out = value().into(),
                "--figures" => o.figures = value().into(),
                "--dir" => o.dir = value().into(),
                "--help" | "-h" => {
                    print!("{USAGE}");
                    exit(0)
                }
                other => die(&format!("unknown option {other}\n{USAGE}")),
            }
        }
        o.runs = o.runs.max(1);
        o
    }
}

/// Everything one run measured.
pub struct Results {
    pub creation: Vec<creation::Size>,
    pub layout: Vec<layout::Fs>,
    pub overhead: String,
    pub startup: Vec<startup::Arch>,
    pub hypervisor: hypervisor::Hypervisor,
    pub fulldisk: Vec<fulldisk::Case>,
    pub secs: u64,
}

const TOOLS: [&str; 11] = [
    "mkfs.ext4",
    "mkfs.ext3",
    "mkfs.xfs",
    "fallocate",
    "fstrim",
    "valgrind",
    "strace",
    "filefrag",
    "gcc",
    "cpio",
    "qemu-system-x86_64",
];

fn run(o: &Opts) -> Result<()> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("needs root: it makes loop-mounted filesystems and drops the page cache \
                    (sudo cargo run --release --example bench)"
            .into());
    }
    if let Some(tool) = TOOLS.iter().find(|t| sh(&format!("command -v {t}")).is_err()) {
        return Err(format!("{tool} is missing: run scripts/setup.sh"));
    }
    eprintln!("bench: building libnosparse.so and fake_vmx for x86_64 and i686 ...");
    let a = artifacts::build();
    let a32 = artifacts::build_for("i686-unknown-linux-gnu");
    let started = Instant::now();
    let creation = creation::bench(&a, o)?;
    let layout = layout::bench(&a, o)?;
    eprintln!("bench: pass-through overhead (scripts/overhead.sh) ...");
    let overhead = sh(&format!("bash {}/scripts/overhead.sh", env!("CARGO_MANIFEST_DIR")))?;
    let startup = startup::bench(o, [("x86_64", &a.lib), ("i686", &a32.lib)])?;
    let hypervisor = hypervisor::bench(&a.lib, o)?;
    let fulldisk = fulldisk::bench([("x86_64", &a), ("i686", &a32)], o)?;
    let results =
        Results { creation, layout, overhead, startup, hypervisor, fulldisk, secs: started.elapsed().as_secs() };
    report::write(o, &results).map_err(|e| format!("{}: {e}", o.out.display()))?;
    report::figures(o, &results).map_err(|e| format!("{}: {e}", o.figures.display()))?;
    eprintln!("bench: wrote {} and the figures in {}", o.out.display(), o.figures.display());
    Ok(())
}

fn main() {
    let mut o = Opts::parse();
    // A directory of this run's own, so that its images and mount points never meet
    // another run's.
    o.dir = o.dir.join(format!("nosparse-bench-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&o.dir) {
        die(&format!("{}: {e}", o.dir.display()));
    }
    let result = run(&o);
    let _ = std::fs::remove_dir_all(&o.dir);
    if let Err(e) = result {
        die(&e);
    }
}
