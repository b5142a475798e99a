//! Creation latency: making a file of each size with each method, on a fresh ext4.

use crate::artifacts::Artifacts;
use crate::loopfs::LoopFs;
use crate::util::*;
use crate::Opts;
use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::Instant;

/// Ways to make a file of `size` bytes, each timed until the call (or command)
/// returns; the caller adds the syncfs that puts the data on disk.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Create {
    Sparse,
    Nosparse,
    NosparseZero,
    WriteLoop,
    Fallocate2,
    Fallocate1,
    CpRename,
    Dd,
}

impl Create {
    pub const ALL: [Create; 8] = [
        Create::Sparse,
        Create::Nosparse,
        Create::NosparseZero,
        Create::Fallocate2,
        Create::Fallocate1,
        Create::WriteLoop,
        Create::CpRename,
        Create::Dd,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Create::Sparse => "no preload (sparse)",
            Create::Nosparse => "nosparse, fallocate path",
            Create::NosparseZero => "nosparse, zero path",
            Create::WriteLoop => "original hook: write() loop, 1 MiB",
            Create::Fallocate2 => "bare fallocate(2)",
            Create::Fallocate1 => "fallocate(1) command",
            Create::CpRename => "cp --sparse=never + rename",
            Create::Dd => "dd if=/dev/zero bs=8M",
        }
    }

    /// Seconds until the call or command returned.
    fn run(self, a: &Artifacts, path: &Path, size: u64) -> Result<f64> {
        let p = path.display();
        let created = |preload: bool, env: &[(&str, &str)]| -> Result<f64> {
            Ok(fake_vmx(a, preload, env, &vmx_args(path, size, &[]))?.get("create_ns")? / 1e9)
        };
        match self {
            Create::Sparse => created(false, &[]),
            Create::Nosparse => created(true, &[]),
            Create::NosparseZero => created(true, &[("NOSPARSE_METHOD", "zero")]),
            Create::WriteLoop => write_loop(path, size),
            Create::Fallocate2 => {
                let f = File::create(path).map_err(|e| format!("{p}: {e}"))?;
                let t = Instant::now();
                // SAFETY: a valid fd.
                let r = unsafe { libc::fallocate64(f.as_raw_fd(), 0, 0, size as i64) };
                let secs = t.elapsed().as_secs_f64();
                if r != 0 {
                    return Err(format!("fallocate: {}", std::io::Error::last_os_error()));
                }
                Ok(secs)
            }
            Create::Fallocate1 => timed_sh(&format!("fallocate -l {size} {p}")),
            Create::CpRename => {
                File::create(path).and_then(|f| f.set_len(size)).map_err(|e| format!("{p}: {e}"))?;
                timed_sh(&format!("cp --sparse=never {p} {p}.tmp && mv {p}.tmp {p}"))
            }
            Create::Dd => timed_sh(&format!("dd if=/dev/zero of={p} bs=8M count={} status=none", size / (8 * MIB))),
        }
    }
}

/// The original hook's method: from the current offset (0 for a new file), write()
/// 1 MiB zero buffers up to the size, then the program's one-byte pwrite64.
fn write_loop(path: &Path, size: u64) -> Result<f64> {
    let f = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let buf = vec![0u8; MIB as usize];
    let t = Instant::now();
    let mut done = 0;
    while done < size {
        let n = (size - done).min(MIB) as usize;
        // SAFETY: buf is valid for n bytes.
        let w = unsafe { libc::write(f.as_raw_fd(), buf.as_ptr().cast(), n) };
        if w <= 0 {
            return Err(format!("write: {}", std::io::Error::last_os_error()));
        }
        done += w as u64;
    }
    // SAFETY: a valid fd and buffer.
    unsafe { libc::pwrite64(f.as_raw_fd(), buf.as_ptr().cast(), 1, size as i64 - 1) };
    Ok(t.elapsed().as_secs_f64())
}

pub struct Row {
    pub method: Create,
    pub call: Stats,
    pub on_disk: Stats,
}

/// Rows for one size.
pub struct Size {
    pub gib: u64,
    pub rows: Vec<Row>,
}

impl Size {
    pub fn row(&self, m: Create) -> &Row {
        self.rows.iter().find(|r| r.method == m).expect("every method runs")
    }
}

pub fn bench(a: &Artifacts, o: &Opts) -> Result<Vec<Size>> {
    let biggest = *o.sizes.iter().max().unwrap_or(&1);
    let fs = LoopFs::new(&o.dir, "ext4", (2 * biggest + 2) * GIB)?;
    let path = fs.path("guest.vmem");
    let mut result = Vec::new();
    for &gib in &o.sizes {
        let size = gib * GIB;
        // Runs are interleaved (every method once, then again), so that the disk's slow
        // drifts touch every method alike rather than the ones measured back to back.
        let mut call = vec![Vec::new(); Create::ALL.len()];
        let mut total = vec![Vec::new(); Create::ALL.len()];
        for _ in 0..o.runs {
            for (i, m) in Create::ALL.iter().enumerate() {
                let _ = std::fs::remove_file(&path);
                sh(&format!("fstrim {} || true", fs.mnt.display()))?;
                sync_all();
                let secs = m.run(a, &path, size)?;
                let flush = syncfs(&path)?;
                call[i].push(secs * 1e3);
                total[i].push((secs + flush) * 1e3);
            }
        }
        let rows: Vec<Row> = Create::ALL
            .iter()
            .zip(call.into_iter().zip(total))
            .map(|(m, (c, t))| Row { method: *m, call: Stats::of(c), on_disk: Stats::of(t) })
            .collect();
        for r in &rows {
            eprintln!("bench: creation {gib} GiB, {}: {:.2} ms", r.method.name(), r.call.median);
        }
        result.push(Size { gib, rows });
    }
    let _ = std::fs::remove_file(&path);
    Ok(result)
}
