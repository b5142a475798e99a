//! Layout after a guest's life: the guest memory file made by each method, then
//! fake_vmx's simulated run (1 MiB regions mapped, written and msync'ed, as vmx does)
//! beside a competing writer, on four filesystem states; then its fragments, two cold
//! reads (buffered, as a resume reads it, and O_DIRECT), and an HDD model computed
//! from its physical extent map.

use crate::artifacts::Artifacts;
use crate::loopfs::LoopFs;
use crate::outside::{self, FileMap};
use crate::util::*;
use crate::Opts;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Instant;

/// The HDD model: a disk that streams at this rate...
pub const HDD_BYTES_PER_SEC: f64 = 150e6;
/// ...and loses this long at every place where the file's next extent does not start
/// where the previous one ended (a seek plus half a rotation).
pub const HDD_SEEK_SECS: f64 = 0.008;
/// Read request size of both cold reads.
const READ_CHUNK: usize = 8 << 20;

/// Filesystem states.
#[derive(Clone, Copy)]
pub enum State {
    FreshExt4,
    AgedExt4,
    Ext3,
    Xfs,
}

impl State {
    pub const ALL: [State; 4] = [State::FreshExt4, State::AgedExt4, State::Ext3, State::Xfs];

    pub fn name(self) -> &'static str {
        match self {
            State::FreshExt4 => "fresh ext4",
            State::AgedExt4 => "aged ext4",
            State::Ext3 => "ext3",
            State::Xfs => "xfs",
        }
    }

    fn mkfs(self) -> &'static str {
        match self {
            State::FreshExt4 | State::AgedExt4 => "ext4",
            State::Ext3 => "ext3",
            State::Xfs => "xfs",
        }
    }
}

/// How the guest's file was made before its life.
#[derive(Clone, Copy, PartialEq)]
pub enum Made {
    Sparse,
    Nosparse,
    NosparseZero,
    Fallocate1,
    Dd,
}

impl Made {
    pub const ALL: [Made; 5] = [Made::Sparse, Made::Nosparse, Made::NosparseZero, Made::Fallocate1, Made::Dd];

    pub fn name(self) -> &'static str {
        match self {
            Made::Sparse => "no preload (sparse)",
            Made::Nosparse => "nosparse (auto)",
            Made::NosparseZero => "nosparse, zero path",
            Made::Fallocate1 => "fallocate(1) first",
            Made::Dd => "dd, written contiguously",
        }
    }
}

/// One file's measurements; `None` where the method does not apply (ext3 has no
/// fallocate) or there is nothing to measure (no guest run for dd).
pub struct Row {
    pub made: Made,
    pub fragments: Option<Stats>,
    pub run_ms: Option<Stats>,
    pub buffered_mbs: Option<Stats>,
    pub direct_mbs: Option<Stats>,
    /// The HDD model's read rate, MB/s.
    pub hdd_mbs: Option<Stats>,
    /// Share of the file still unwritten after the run, percent.
    pub unwritten_pct: Option<Stats>,
}

pub struct Fs {
    pub state: State,
    pub rows: Vec<Row>,
}

/// Fragments free space the way years of use do: fills the filesystem to 90% with
/// files of 64 KiB-1 MiB, then deletes a seeded random half of them, which leaves
/// holes of many sizes.
fn age(fs: &LoopFs, fs_size: u64) -> Result<()> {
    let dir = fs.path("aged");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let buf = vec![0xA5u8; MIB as usize];
    let (mut used, mut n) = (0u64, 0u32);
    while used < fs_size * 9 / 10 {
        let len = 64 * 1024 + next() % (MIB - 64 * 1024);
        std::fs::write(dir.join(format!("{n:06}")), &buf[..len as usize]).map_err(|e| format!("aging: {e}"))?;
        used += len;
        n += 1;
    }
    sync_all();
    for i in 0..n {
        if next() % 2 == 0 {
            std::fs::remove_file(dir.join(format!("{i:06}"))).map_err(|e| format!("aging: {e}"))?;
        }
    }
    sync_all();
    Ok(())
}

/// Cold sequential read of `path` in READ_CHUNK requests after dropping the page
/// cache: buffered (through the page cache and its readahead, as a resume reads the
/// file) or O_DIRECT; MB/s.
fn cold_read(path: &Path, direct: bool) -> Result<f64> {
    drop_caches()?;
    let flags = if direct { libc::O_DIRECT } else { 0 };
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let layout = std::alloc::Layout::from_size_align(READ_CHUNK, 4096).map_err(|e| e.to_string())?;
    // SAFETY: layout has a non-zero size.
    let buf = unsafe { std::alloc::alloc(layout) };
    if buf.is_null() {
        return Err("out of memory".into());
    }
    // SAFETY: buf holds READ_CHUNK bytes, aligned for O_DIRECT, and is only used here.
    let slice = unsafe { std::slice::from_raw_parts_mut(buf, READ_CHUNK) };
    let t = Instant::now();
    let mut total = 0u64;
    let result = loop {
        match f.read(slice) {
            Ok(0) => break Ok(()),
            Ok(n) => total += n as u64,
            Err(e) => break Err(format!("read {}: {e}", path.display())),
        }
    };
    let secs = t.elapsed().as_secs_f64();
    // SAFETY: allocated above with this layout; slice is not used after this.
    unsafe { std::alloc::dealloc(buf, layout) };
    result.map(|()| total as f64 / 1e6 / secs)
}

/// The HDD model's read rate for a file, MB/s: its bytes at HDD_BYTES_PER_SEC plus
/// HDD_SEEK_SECS at every physical discontiguity of its extent map.
pub fn hdd_mbs(map: &FileMap) -> f64 {
    let secs = map.size as f64 / HDD_BYTES_PER_SEC + map.discontiguities() as f64 * HDD_SEEK_SECS;
    map.size as f64 / 1e6 / secs
}

/// Makes the file (or not, for the sparse run), then lives the guest's life; the run's
/// milliseconds, or None when the method does not apply here.
fn make_and_live(a: &Artifacts, o: &Opts, fs: &LoopFs, made: Made) -> Result<Option<Option<f64>>> {
    let path = fs.path("guest.vmem");
    let p = path.display();
    let writes = o.writes.to_string();
    let rival = fs.path("rival").display().to_string();
    let life = vmx_args(&path, o.guest, &["--writes", &writes, "--write-back", "mmap", "--competitor", &rival]);
    let run = match made {
        Made::Sparse => fake_vmx(a, false, &[], &life)?,
        Made::Nosparse => fake_vmx(a, true, &[], &life)?,
        Made::NosparseZero => fake_vmx(a, true, &[("NOSPARSE_METHOD", "zero")], &life)?,
        Made::Fallocate1 => {
            if sh(&format!("fallocate -l {} {p}", o.guest)).is_err() {
                return Ok(None); // ext3 has no fallocate
            }
            fake_vmx(a, false, &[], &life)?
        }
        Made::Dd => {
            sh(&format!("dd if=/dev/zero of={p} bs=8M count={} status=none conv=fsync", o.guest / (8 * MIB)))?;
            return Ok(Some(None));
        }
    };
    Ok(Some(Some(run.get("run_ns")? / 1e6)))
}

pub fn bench(a: &Artifacts, o: &Opts) -> Result<Vec<Fs>> {
    let fs_size = 4 * o.guest;
    let mut result = Vec::new();
    for state in State::ALL {
        let mut rows = Vec::new();
        for made in Made::ALL {
            let mut v: [Vec<f64>; 6] = Default::default();
            let mut applicable = true;
            let mut guest_ran = true;
            for _ in 0..o.runs {
                let fs = LoopFs::new(&o.dir, state.mkfs(), fs_size)?;
                if matches!(state, State::AgedExt4) {
                    age(&fs, fs_size)?;
                }
                let Some(run_ms) = make_and_live(a, o, &fs, made)? else {
                    applicable = false;
                    break;
                };
                guest_ran = run_ms.is_some();
                sync_all();
                let path = fs.path("guest.vmem");
                let map = outside::filefrag(&path)?;
                v[0].push(map.fragments as f64);
                v[1].push(run_ms.unwrap_or(0.0));
                v[2].push(cold_read(&path, false)?);
                v[3].push(cold_read(&path, true)?);
                v[4].push(hdd_mbs(&map));
                v[5].push(map.unwritten() as f64 * 100.0 / map.size as f64);
            }
            let [frags, run, buffered, direct, hdd, unwritten] = v;
            let some = |v: Vec<f64>| applicable.then(|| Stats::of(v));
            let row = Row {
                made,
                fragments: some(frags),
                run_ms: (applicable && guest_ran).then(|| Stats::of(run)),
                buffered_mbs: some(buffered),
                direct_mbs: some(direct),
                hdd_mbs: some(hdd),
                unwritten_pct: some(unwritten),
            };
            eprintln!(
                "bench: layout on {}, {}: {} fragments",
                state.name(),
                made.name(),
                row.fragments.map_or("n/a".into(), |s| s.show(0))
            );
            rows.push(row);
        }
        result.push(Fs { state, rows });
    }
    Ok(result)
}
