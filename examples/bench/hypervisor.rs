//! The real hypervisor: QEMU's guest RAM file (tests/common/qemu.rs) without and
//! through the launcher, beside a host writer: fragments and the guest's run time.

use crate::artifacts;
use crate::loopfs::LoopFs;
use crate::outside;
use crate::qemu::{self, Machine};
use crate::util::*;
use crate::Opts;

/// Each boot's filesystem.
const FS_SIZE: u64 = GIB;

pub struct Side {
    pub fragments: Stats,
    pub guest_secs: Stats,
    pub holes: Stats,
}

pub struct Hypervisor {
    pub without: Side,
    pub with: Side,
    /// How QEMU made the file, and what the library added, as strace saw them.
    pub creation_without: Vec<String>,
    pub creation_with: Vec<String>,
}

fn calls(trace: &str) -> Vec<String> {
    // "1234  ftruncate(3, 268435456)    = 0" -> "ftruncate(3, 268435456) = 0"
    trace
        .lines()
        .filter(|l| l.contains("ftruncate(") || l.contains("fallocate("))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .collect()
}

pub fn bench(lib: &std::path::Path, o: &Opts) -> Result<Hypervisor> {
    if let Some(m) = qemu::missing() {
        return Err(m);
    }
    let dir = o.dir.join("qemu");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let machine = Machine::prepare(&dir, lib, &artifacts::launcher())?;
    let mut v: [[Vec<f64>; 3]; 2] = Default::default();
    let mut creation: [Vec<String>; 2] = Default::default();
    for _ in 0..o.qemu_runs {
        for (i, through_launcher) in [false, true].into_iter().enumerate() {
            let fs = LoopFs::new(&dir, "ext4", FS_SIZE)?;
            let boot = machine.boot(&fs.mnt, through_launcher)?;
            if !boot.finished() {
                return Err(format!("the QEMU guest did not finish ({:?}):\n{}", boot.status, boot.console));
            }
            let map = outside::filefrag(&boot.ram)?;
            v[i][0].push(map.fragments as f64);
            v[i][1].push(boot.guest_secs);
            v[i][2].push(map.hole_bytes() as f64 / MIB as f64);
            creation[i] = calls(&boot.trace);
            eprintln!(
                "bench: QEMU {}: {} fragments, guest {:.1} s",
                if through_launcher { "through the launcher" } else { "alone" },
                map.fragments,
                boot.guest_secs
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let [without, with] =
        v.map(|[f, g, h]| Side { fragments: Stats::of(f), guest_secs: Stats::of(g), holes: Stats::of(h) });
    let [creation_without, creation_with] = creation;
    Ok(Hypervisor { without, with, creation_without, creation_with })
}
