//! The full disk: a guest's memory file created on an empty disk, which another writer
//! then fills; then the guest writes its memory (fake_vmx, through mappings as vmx does
//! and through pwrite), without and with the library, 64- and 32-bit.

use crate::artifacts::Artifacts;
use crate::compare;
use crate::loopfs::LoopFs;
use crate::outside;
use crate::util::*;
use crate::Opts;

const FS_SIZE: u64 = 256 * MIB;
const GUEST: u64 = 96 * MIB;
const WRITES: u64 = 320;

pub struct Case {
    pub arch: &'static str,
    pub write_back: &'static str,
    pub without: String,
    pub with: String,
    /// Filled by the other writer in the run with the library, MiB.
    pub filled_mib: f64,
}

/// What became of the guest: how it died, or that it lived on, with its file whole
/// and holding the bytes of a run on a disk with room.
fn fate(run: &VmxRun, path: &std::path::Path, reference: &std::path::Path) -> Result<String> {
    if run.status != Some(0) {
        return Ok(format!("dies: {}", run.ending()));
    }
    let whole = outside::filefrag(path)?.hole_bytes() == 0;
    let same = compare::first_difference(path, reference).map_err(|e| e.to_string())?.is_none();
    Ok(match (whole, same) {
        (true, true) => "lives on: file whole, bytes right",
        (false, true) => "lives on: bytes right, holes left",
        (_, false) => "lives on: BYTES WRONG",
    }
    .into())
}

pub fn bench(builds: [(&'static str, &Artifacts); 2], o: &Opts) -> Result<Vec<Case>> {
    let dir = o.dir.join("fulldisk");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut cases = Vec::new();
    for (arch, a) in builds {
        for write_back in ["mmap", "pwrite"] {
            let writes = WRITES.to_string();
            let life = ["--writes", &writes, "--write-back", write_back, "--seed", "7"];
            let reference = dir.join("reference.vmem");
            fake_vmx(a, false, &[], &vmx_args(&reference, GUEST, &life))?;
            let mut endings = Vec::new();
            let mut filled = 0.0;
            for preload in [false, true] {
                let fs = LoopFs::new(&dir, "ext4", FS_SIZE)?;
                let path = fs.path("guest.vmem");
                let filler = fs.path("other-writer").display().to_string();
                let mut args = vmx_args(&path, GUEST, &life);
                args.extend(["--fill-disk".to_string(), filler]);
                let run = fake_vmx_raw(a, preload, &[], &args)?;
                filled = run.get("filled").unwrap_or(0.0) / MIB as f64;
                endings.push(fate(&run, &path, &reference)?);
            }
            let with = endings.pop().unwrap_or_default();
            let without = endings.pop().unwrap_or_default();
            eprintln!("bench: full disk {arch} {write_back}: without: {without}; with: {with}");
            cases.push(Case { arch, write_back, without, with, filled_mib: filled });
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(cases)
}
