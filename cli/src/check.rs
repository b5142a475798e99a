//! `nosparse check FILE...`: each file's size, allocation, holes and fragments, read
//! with FIEMAP and counted as `filefrag` counts them.

use nosparse_core::extents::{self, Layout};
use nosparse_core::log::Bytes;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// Exit statuses: every file whole; some file sparse or over `--max-fragments`; some
/// file could not be read.
pub const EXIT_WHOLE: i32 = 0;
pub const EXIT_FOUND: i32 = 1;
pub const EXIT_ERROR: i32 = 2;

/// One file's measurements.
#[derive(Debug)]
pub struct Report {
    pub size: u64,
    pub allocated: u64,
    pub layout: Layout,
}

impl Report {
    pub fn holes(&self) -> bool {
        self.layout.hole_bytes > 0
    }
}

/// Measures `path`. Delayed allocations are flushed first (fdatasync), since until then
/// the file has no physical layout to report.
pub fn measure(path: &Path) -> Result<Report, String> {
    let f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let meta = f.metadata().map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    let read = |f: &File| extents::layout(f.as_raw_fd(), meta.len()).map_err(|e| format!("{}: {e}", path.display()));
    let mut layout = read(&f)?;
    if layout.pending {
        f.sync_data().map_err(|e| format!("{}: fdatasync: {e}", path.display()))?;
        layout = read(&f)?;
    }
    let allocated = f.metadata().map(|m| m.blocks() * 512).unwrap_or(meta.blocks() * 512);
    Ok(Report { size: meta.len(), allocated, layout })
}

/// Prints one line per file and returns the exit status.
pub fn run(files: &[std::ffi::OsString], max_fragments: Option<u64>, quiet: bool) -> i32 {
    let mut status = EXIT_WHOLE;
    for file in files {
        let path = Path::new(file);
        let r = match measure(path) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("nosparse check: {e}");
                status = EXIT_ERROR;
                continue;
            }
        };
        let verdict = if r.holes() {
            "sparse"
        } else if max_fragments.is_some_and(|max| r.layout.fragments > max) {
            "fragmented"
        } else {
            "whole"
        };
        if verdict != "whole" && status == EXIT_WHOLE {
            status = EXIT_FOUND;
        }
        if !quiet {
            println!(
                "{}: {verdict}: size {}, allocated {}, holes {}, {} fragments ({} extents), unwritten {}",
                path.display(),
                Bytes(r.size),
                Bytes(r.allocated),
                Bytes(r.layout.hole_bytes),
                r.layout.fragments,
                r.layout.extents,
                Bytes(r.layout.unwritten)
            );
        }
    }
    status
}
