//! What every benchmark uses: medians, shell commands, the page cache, fake_vmx runs.

use crate::artifacts::Artifacts;
use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;

/// A benchmark's failure: what could not be done.
pub type Result<T> = std::result::Result<T, String>;

/// Median and range of several runs.
#[derive(Clone, Copy, Default, Debug)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(mut v: Vec<f64>) -> Stats {
        if v.is_empty() {
            return Stats::default();
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Stats { median, min: v[0], max: v[n - 1] }
    }

    /// `median (min–max)`, or the median alone when all runs agreed.
    pub fn show(&self, decimals: usize) -> String {
        if self.min == self.max {
            format!("{:.*}", decimals, self.median)
        } else {
            format!("{:.*} ({:.*}–{:.*})", decimals, self.median, decimals, self.min, decimals, self.max)
        }
    }
}

pub fn sh(cmd: &str) -> Result<String> {
    crate::loopfs::sh(cmd)
}

pub fn sync_all() {
    // SAFETY: sync cannot fail.
    unsafe { libc::sync() };
}

pub fn drop_caches() -> Result<()> {
    sync_all();
    std::fs::write("/proc/sys/vm/drop_caches", "3").map_err(|e| format!("drop_caches: {e}"))
}

/// syncfs(2) on the filesystem holding `path`; seconds it took.
pub fn syncfs(path: &Path) -> Result<f64> {
    let f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let t = Instant::now();
    // SAFETY: a valid fd.
    unsafe { libc::syncfs(f.as_raw_fd()) };
    Ok(t.elapsed().as_secs_f64())
}

/// Seconds a shell command took.
pub fn timed_sh(cmd: &str) -> Result<f64> {
    let t = Instant::now();
    sh(cmd)?;
    Ok(t.elapsed().as_secs_f64())
}

/// How a fake_vmx run ended, and what it printed.
pub struct VmxRun {
    pub kv: Vec<(String, String)>,
    pub status: Option<i32>,
    pub signal: Option<i32>,
    pub stderr: String,
}

impl VmxRun {
    pub fn get(&self, key: &str) -> Result<f64> {
        self.kv
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse().ok())
            .ok_or_else(|| format!("fake_vmx printed no {key}: {}", self.stderr))
    }

    /// `exit 0`, `SIGBUS`, `exit 3 (ENOSPC)`.
    pub fn ending(&self) -> String {
        match (self.status, self.signal) {
            (_, Some(libc::SIGBUS)) => "killed by SIGBUS".into(),
            (_, Some(s)) => format!("killed by signal {s}"),
            (Some(3), _) => match self.get("guest_errno") {
                Ok(e) if e as i32 == libc::ENOSPC => "a write failed: ENOSPC (exit 3)".into(),
                _ => "a write failed (exit 3)".into(),
            },
            (Some(c), _) => format!("exit {c}"),
            (None, None) => "?".into(),
        }
    }
}

/// Runs fake_vmx with `args`, with the library preloaded or not, however it ends.
pub fn fake_vmx_raw(a: &Artifacts, preload: bool, env: &[(&str, &str)], args: &[String]) -> Result<VmxRun> {
    let mut cmd = Command::new(&a.fake_vmx);
    cmd.args(args).env_remove("LD_PRELOAD").env("NOSPARSE_LOG", "none");
    if preload {
        cmd.env("LD_PRELOAD", &a.lib);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().map_err(|e| format!("fake_vmx: {e}"))?;
    let kv = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    Ok(VmxRun { kv, status: out.status.code(), signal: out.status.signal(), stderr })
}

/// Runs fake_vmx, which must exit 0.
pub fn fake_vmx(a: &Artifacts, preload: bool, env: &[(&str, &str)], args: &[String]) -> Result<VmxRun> {
    let run = fake_vmx_raw(a, preload, env, args)?;
    if run.status != Some(0) {
        return Err(format!("fake_vmx {args:?} failed ({}): {}", run.ending(), run.stderr));
    }
    Ok(run)
}

/// `--path P --size N` and more, as fake_vmx's arguments.
pub fn vmx_args(path: &Path, size: u64, extra: &[&str]) -> Vec<String> {
    let mut v = vec!["--path".to_string(), path.display().to_string(), "--size".into(), size.to_string()];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// `1 GiB`, `256 MiB`.
pub fn human(bytes: u64) -> String {
    if bytes >= GIB && bytes % GIB == 0 {
        format!("{} GiB", bytes / GIB)
    } else {
        format!("{} MiB", bytes / MIB)
    }
}
