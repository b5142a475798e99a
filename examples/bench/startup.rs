//! Start-up cost per exec: a program that does nothing, started many times with no
//! preload, with an empty preloaded C library (the floor for any LD_PRELOAD library),
//! with libeatmydata (Debian's libeatmydata1, a C preload library of the same kind) and
//! with nosparse; for x86_64 and i686. Rounds are interleaved so that the machine's
//! drifts touch every variant alike; medians over rounds. The CPU time the children
//! used (user + system, from getrusage) is the measure: on a busy machine the wall
//! time also holds the time spent waiting for a core.

use crate::util::*;
use crate::Opts;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

#[derive(Clone, Copy, PartialEq)]
pub enum Preload {
    Nothing,
    EmptyC,
    Eatmydata,
    Nosparse,
}

impl Preload {
    pub const ALL: [Preload; 4] = [Preload::Nothing, Preload::EmptyC, Preload::Eatmydata, Preload::Nosparse];

    pub fn name(self) -> &'static str {
        match self {
            Preload::Nothing => "no preload",
            Preload::EmptyC => "empty C library",
            Preload::Eatmydata => "libeatmydata (Debian)",
            Preload::Nosparse => "nosparse",
        }
    }
}

/// Microseconds per exec: CPU time (user + system) and wall time.
#[derive(Clone, Copy)]
pub struct Cost {
    pub cpu: Stats,
    pub wall: Stats,
}

/// One architecture's rows, or why a variant was not measured.
pub struct Arch {
    pub name: &'static str,
    pub rows: Vec<(Preload, std::result::Result<Cost, String>)>,
}

impl Arch {
    pub fn cost(&self, p: Preload) -> Option<Cost> {
        self.rows.iter().find(|(q, _)| *q == p).and_then(|(_, r)| r.as_ref().ok()).copied()
    }
}

/// Debian's libeatmydata1 for each architecture.
const EATMYDATA: [(&str, &str); 2] =
    [("x86_64", "/usr/lib/x86_64-linux-gnu/libeatmydata.so.1"), ("i686", EATMYDATA_I386)];
/// Unpacked by scripts/setup.sh from libeatmydata1:i386, which is not installed.
const EATMYDATA_I386: &str = "/var/cache/nosparse-test/i386/libeatmydata.so.1";

/// Builds the do-nothing program and the empty library for `arch` with gcc.
fn build(dir: &Path, arch: &str, m32: bool) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (prog, lib) = (dir.join(format!("true-{arch}")), dir.join(format!("libempty-{arch}.so")));
    std::fs::write(dir.join("true.c"), "int main(void) { return 0; }\n").map_err(|e| e.to_string())?;
    std::fs::write(dir.join("empty.c"), "void nosparse_bench_empty(void) {}\n").map_err(|e| e.to_string())?;
    let m = if m32 { "-m32" } else { "" };
    let d = dir.display();
    sh(&format!("gcc {m} -O2 -o {} {d}/true.c", prog.display()))?;
    sh(&format!("gcc {m} -O2 -shared -fPIC -o {} {d}/empty.c", lib.display()))?;
    Ok((prog, lib))
}

/// User + system CPU time of the children reaped so far, in microseconds.
fn children_cpu_us() -> f64 {
    // SAFETY: a zeroed rusage is a valid out-parameter.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: ru is writable.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

/// CPU and wall microseconds per exec of `prog` with `preload`, over `execs` runs.
fn time(prog: &Path, preload: Option<&Path>, execs: usize) -> Result<(f64, f64)> {
    let cpu = children_cpu_us();
    let t = Instant::now();
    for _ in 0..execs {
        let mut c = Command::new(prog);
        c.env_remove("LD_PRELOAD").stdout(Stdio::null()).stderr(Stdio::null());
        if let Some(lib) = preload {
            c.env("LD_PRELOAD", lib);
        }
        let status = c.status().map_err(|e| format!("{}: {e}", prog.display()))?;
        if !status.success() {
            return Err(format!("{} with LD_PRELOAD={preload:?} failed", prog.display()));
        }
    }
    let wall = t.elapsed().as_secs_f64() * 1e6;
    Ok(((children_cpu_us() - cpu) / execs as f64, wall / execs as f64))
}

/// `libs`: the nosparse build for each architecture, x86_64 first.
pub fn bench(o: &Opts, libs: [(&'static str, &Path); 2]) -> Result<Vec<Arch>> {
    let dir = o.dir.join("startup");
    let mut result = Vec::new();
    for (i, (arch, nosparse)) in libs.into_iter().enumerate() {
        let (prog, empty) = build(&dir, arch, i == 1)?;
        let eatmydata = Path::new(EATMYDATA[i].1);
        let lib = |p: Preload| -> std::result::Result<Option<&Path>, String> {
            match p {
                Preload::Nothing => Ok(None),
                Preload::EmptyC => Ok(Some(&empty)),
                Preload::Nosparse => Ok(Some(nosparse)),
                Preload::Eatmydata if eatmydata.exists() => Ok(Some(eatmydata)),
                Preload::Eatmydata => Err(format!("not measured: {} is not installed", eatmydata.display())),
            }
        };
        let mut samples: Vec<(Vec<f64>, Vec<f64>)> = vec![Default::default(); Preload::ALL.len()];
        for round in 0..o.startup_rounds {
            // Each round starts with a different variant.
            for k in 0..Preload::ALL.len() {
                let j = (round + k) % Preload::ALL.len();
                if let Ok(l) = lib(Preload::ALL[j]) {
                    let (cpu, wall) = time(&prog, l, o.startup_execs)?;
                    samples[j].0.push(cpu);
                    samples[j].1.push(wall);
                }
            }
        }
        let rows = Preload::ALL
            .iter()
            .zip(samples)
            .map(|(p, (cpu, wall))| (*p, lib(*p).map(|_| Cost { cpu: Stats::of(cpu), wall: Stats::of(wall) })))
            .collect();
        let a = Arch { name: arch, rows };
        for (p, r) in &a.rows {
            let shown = r.as_ref().map_or_else(|e| e.clone(), |c| format!("{} µs CPU", c.cpu.show(1)));
            eprintln!("bench: start-up {arch}, {}: {shown}", p.name());
        }
        result.push(a);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(result)
}
