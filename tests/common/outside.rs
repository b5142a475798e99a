//! Measurements of a file made from outside, with the system's own tools rather than
//! the engine's code: the extent map, holes and physical fragments with `filefrag -v`,
//! the attribute flags with `lsattr`, and the syscalls a run made with `strace`.
//! Shared by the tests and the benchmark. (SEEK_HOLE is no help here: it reports
//! preallocated, unwritten extents as holes.)

use std::path::Path;
use std::process::Command;

/// One extent as `filefrag -v` prints it, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Extent {
    pub logical: u64,
    pub physical: u64,
    pub len: u64,
    /// Preallocated and not yet written: reads as zeros without touching the disk.
    pub unwritten: bool,
}

/// A file's physical extent map, as `filefrag -v PATH` reports it.
#[derive(Debug, Clone)]
pub struct FileMap {
    pub size: u64,
    pub extents: Vec<Extent>,
    /// Physically contiguous runs ("N extents found").
    pub fragments: u64,
}

impl FileMap {
    /// Bytes of `[0, size)` that no extent covers.
    pub fn hole_bytes(&self) -> u64 {
        let mapped: u64 =
            self.extents.iter().map(|e| e.len.min(self.size.saturating_sub(e.logical))).sum::<u64>().min(self.size);
        self.size - mapped
    }

    /// Places where reading the file front to back must move the head: the next extent
    /// does not start where the previous one ended.
    pub fn discontiguities(&self) -> u64 {
        self.extents.windows(2).filter(|w| w[0].physical + w[0].len != w[1].physical).count() as u64
    }

    /// Bytes in unwritten (preallocated, never written) extents.
    pub fn unwritten(&self) -> u64 {
        self.extents.iter().filter(|e| e.unwritten).map(|e| e.len).sum()
    }
}

/// Runs `filefrag -v PATH` and reads its extent map.
pub fn filefrag(path: &Path) -> Result<FileMap, String> {
    let out = Command::new("filefrag")
        .arg("-v")
        .arg(path)
        .output()
        .map_err(|e| format!("filefrag: {e} (scripts/setup.sh installs e2fsprogs)"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let bad = || format!("filefrag -v {}: {text}{}", path.display(), String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return Err(bad());
    }
    // "File size of P is 134217728 (32768 blocks of 4096 bytes)"
    let header = text.lines().find(|l| l.starts_with("File size of ")).ok_or_else(bad)?;
    let nums: Vec<u64> =
        header.rsplit(" is ").next().unwrap_or("").split([' ', '(']).filter_map(|w| w.parse().ok()).collect();
    let [size, _, block] = nums[..] else { return Err(bad()) };
    // "   0:        0..   32767:      34816..     67583:  32768:             unwritten"
    let range = |f: &str| f.split_once("..").and_then(|(a, _)| a.trim().parse::<u64>().ok());
    let extents = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 5 && f[0].trim().parse::<u64>().is_ok()).then_some(f)
        })
        .map(|f| -> Option<Extent> {
            Some(Extent {
                logical: range(f[1])? * block,
                physical: range(f[2])? * block,
                len: f[3].trim().parse::<u64>().ok()? * block,
                unwritten: f.last()?.contains("unwritten"),
            })
        })
        .collect::<Option<Vec<Extent>>>()
        .ok_or_else(bad)?;
    let fragments = text
        .lines()
        .last()
        .and_then(|l| l.rsplit(": ").next())
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(bad)?;
    Ok(FileMap { size, extents, fragments })
}

/// The attribute letters `lsattr -d PATH` prints, e.g. `---------------C------`.
pub fn lsattr(path: &Path) -> Result<String, String> {
    let out = Command::new("lsattr").arg("-d").arg(path).output().map_err(|e| format!("lsattr: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.split_whitespace().next() {
        Some(flags) if out.status.success() => Ok(flags.to_string()),
        _ => Err(format!("lsattr {}: {text}{}", path.display(), String::from_utf8_lossy(&out.stderr))),
    }
}

/// How a file was preallocated, as the syscalls traced show it.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Method {
    /// A successful fallocate and no zeros written.
    Fallocate,
    /// The zero fill: pages made present for writing through a shared mapping
    /// (`madvise(MADV_POPULATE_WRITE)`, 23 to an strace that does not name it).
    ZeroFill,
    /// Neither: the file was left as the program made it.
    None,
}

/// Judges an `strace -e trace=fallocate,madvise` log.
pub fn method(trace: &str) -> Method {
    let calls = |name: &'static str| trace.lines().filter(move |l| l.contains(name));
    let populate = |l: &str| l.contains("MADV_POPULATE_WRITE") || l.contains(", 0x17)") || l.contains(", 23)");
    if calls("madvise(").any(|l| populate(l) && l.trim_end().ends_with("= 0")) {
        Method::ZeroFill
    } else if calls("fallocate(").any(|l| l.trim_end().ends_with("= 0")) {
        Method::Fallocate
    } else {
        Method::None
    }
}
