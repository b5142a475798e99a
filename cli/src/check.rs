//! `nosparse check PATH...`: each file's size, allocation, holes and fragments, read with
//! FIEMAP and counted as `filefrag` counts them, and a verdict against what the file's
//! filesystem could do at best for that size.

use crate::args::Check;
use crate::exit_codes::{NOT_WHOLE, SUCCESS, TROUBLE};
use crate::human;
use nosparse_core::extents::{self, Layout};
use nosparse_core::fs::FsKind;
use std::ffi::CString;
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// The longest extent ext4 maps, in blocks (32768 × 4 KiB = 128 MiB).
const EXT4_EXTENT_BLOCKS: u64 = 32768;
/// xfs's longest extent (MAXEXTLEN), in blocks (8 GiB with 4 KiB blocks).
const XFS_EXTENT_BLOCKS: u64 = (1 << 21) - 1;
/// btrfs's longest data extent, and the assumption for filesystems not named here.
const DEFAULT_EXTENT_BYTES: u64 = 128 << 20;
/// ext2/ext3 map blocks through indirect blocks, one among every block's worth of block
/// numbers (4-byte each): a contiguous file still jumps over one every bsize/4 blocks.
const BLOCK_NUMBER_BYTES: u64 = 4;
/// `EXT4_EXTENTS_FL`: the inode maps its blocks with extents.
const EXTENTS_FL: libc::c_int = 0x0008_0000;
/// A file may have this many times the least fragments its filesystem needs.
pub const SLACK: u64 = 2;

/// One file's measurements.
#[derive(Clone, Debug)]
pub struct Report {
    pub size: u64,
    pub allocated: u64,
    pub layout: Layout,
    /// The filesystem's longest extent for this file, in bytes.
    pub largest_extent: u64,
}

/// What check says of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Whole,
    Sparse,
    Fragmented,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Whole => "whole",
            Verdict::Sparse => "sparse",
            Verdict::Fragmented => "fragmented",
        }
    }
}

impl Report {
    /// The fewest fragments the filesystem can store this size in.
    pub fn min_fragments(&self) -> u64 {
        self.size.div_ceil(self.largest_extent.max(1))
    }

    /// The most fragments a whole file may have: `--max-fragments`, or [`SLACK`] times
    /// the least.
    pub fn allowed(&self, max_fragments: Option<u64>) -> u64 {
        max_fragments.unwrap_or(SLACK * self.min_fragments())
    }

    pub fn verdict(&self, max_fragments: Option<u64>) -> Verdict {
        if self.layout.hole_bytes > 0 {
            Verdict::Sparse
        } else if self.layout.fragments > self.allowed(max_fragments) {
            Verdict::Fragmented
        } else {
            Verdict::Whole
        }
    }
}

/// Opens `path` for reading only if it is a regular file (errors do not repeat the path), and never waits doing so: a
/// FIFO or a device is refused from its `stat`, before any open, and the open itself is
/// non-blocking in case the name was swapped for one meanwhile.
pub fn open_regular(path: &Path) -> Result<(File, fs::Metadata), String> {
    let err = |e: io::Error| human::os_error(&e);
    let before = fs::metadata(path).map_err(err)?;
    refuse_special(&before)?;
    let f = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(err)?;
    let meta = f.metadata().map_err(err)?;
    refuse_special(&meta)?;
    Ok((f, meta))
}

fn refuse_special(m: &fs::Metadata) -> Result<(), String> {
    let t = m.file_type();
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(format!("{what}, not a regular file"))
}

/// The longest extent the filesystem holding `f` can map, in bytes.
fn largest_extent(f: &File) -> u64 {
    let fd = f.as_raw_fd();
    // SAFETY: a zeroed statfs64 is a valid out-buffer.
    let mut st: libc::statfs64 = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open; st is writable.
    if unsafe { libc::fstatfs64(fd, &mut st) } != 0 {
        return DEFAULT_EXTENT_BYTES;
    }
    let bsize = st.f_bsize as u64;
    match FsKind::from_magic(st.f_type as u32) {
        FsKind::Ext => {
            let mut flags: libc::c_int = 0;
            // SAFETY: FS_IOC_GETFLAGS writes one int.
            let ok = unsafe { libc::ioctl(fd, libc::FS_IOC_GETFLAGS, &mut flags) } == 0;
            if ok && flags & EXTENTS_FL == 0 {
                bsize / BLOCK_NUMBER_BYTES * bsize
            } else {
                EXT4_EXTENT_BLOCKS * bsize
            }
        }
        FsKind::Xfs => XFS_EXTENT_BLOCKS * bsize,
        _ => DEFAULT_EXTENT_BYTES,
    }
}

/// Measures an open regular file. Delayed allocations are flushed first (fdatasync),
/// since until then the file has no physical layout to report.
pub fn measure_file(f: &File, meta: &fs::Metadata) -> Result<Report, String> {
    let read = || {
        extents::layout(f.as_raw_fd(), meta.len()).map_err(|e| match crate::conf::fs_of_fd(f.as_raw_fd()) {
            // No FIEMAP there: the file lives in memory, there is no layout to judge.
            Some(fs @ (FsKind::Tmpfs | FsKind::Ramfs)) => {
                format!("{e}: {fs} keeps no extent map (the file is in memory): nothing to check")
            }
            _ => e.to_string(),
        })
    };
    let mut layout = read()?;
    if layout.pending {
        f.sync_data().map_err(|e| format!("fdatasync: {}", human::os_error(&e)))?;
        layout = read()?;
    }
    let allocated = f.metadata().map(|m| m.blocks() * 512).unwrap_or(meta.blocks() * 512);
    Ok(Report { size: meta.len(), allocated, layout, largest_extent: largest_extent(f) })
}

/// Opens and measures `path`.
pub fn measure(path: &Path) -> Result<Report, String> {
    let (f, meta) = open_regular(path)?;
    measure_file(&f, &meta)
}

/// Whether `glob` matches `path`: its name, or the whole path when the glob has a '/'.
pub(crate) fn matches(glob: &str, path: &Path) -> bool {
    let subject = if glob.contains('/') { path.as_os_str() } else { path.file_name().unwrap_or_default() };
    let (Ok(g), Ok(s)) = (CString::new(glob), CString::new(subject.as_bytes())) else { return false };
    // SAFETY: both are NUL-terminated strings.
    unsafe { libc::fnmatch(g.as_ptr(), s.as_ptr(), 0) == 0 }
}

/// A path, or a path that could not be used and why.
type Item = Result<PathBuf, (PathBuf, String)>;

/// The files to check: the paths given, with directories searched (sorted by name,
/// symbolic links not followed, only regular files matching `pattern`). An unreadable
/// directory is an error entry.
/// With a pattern, a directory with no file matching it is named in the second list: a
/// mistyped pattern must not look like success.
fn files(paths: &[PathBuf], pattern: Option<&str>) -> (Vec<Item>, Vec<PathBuf>) {
    let mut out = Vec::new();
    let mut unmatched = Vec::new();
    for p in paths {
        if fs::metadata(p).is_ok_and(|m| m.is_dir()) {
            let before = out.len();
            walk(p, pattern, &mut out);
            if pattern.is_some() && out.len() == before {
                unmatched.push(p.clone());
            }
        } else {
            out.push(Ok(p.clone()));
        }
    }
    (out, unmatched)
}

fn walk(dir: &Path, pattern: Option<&str>, out: &mut Vec<Item>) {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => return out.push(Err((dir.to_path_buf(), human::os_error(&e)))),
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let Ok(m) = p.symlink_metadata() else { continue };
        if m.is_dir() {
            walk(&p, pattern, out);
        } else if m.is_file() && pattern.map_or(true, |g| matches(g, &p)) {
            out.push(Ok(p));
        }
    }
}

/// A JSON string.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `"path": "..."`, and when the path is not UTF-8 (so "path" had to replace some bytes),
/// `"path_bytes": [...]` with its bytes, losslessly.
fn json_path(path: &Path) -> String {
    let mut out = format!("\"path\": {}", json_str(&path.to_string_lossy()));
    if path.to_str().is_none() {
        let bytes: Vec<String> = path.as_os_str().as_bytes().iter().map(u8::to_string).collect();
        out.push_str(&format!(", \"path_bytes\": [{}]", bytes.join(", ")));
    }
    out
}

fn json_report(path: &Path, r: &Report, max: Option<u64>) -> String {
    format!(
        "{{{}, \"verdict\": \"{}\", \"size\": {}, \"allocated\": {}, \"holes\": {}, \"fragments\": {}, \
         \"extents\": {}, \"unwritten\": {}, \"allowed\": {}}}",
        json_path(path),
        r.verdict(max).name(),
        r.size,
        r.allocated,
        r.layout.hole_bytes,
        r.layout.fragments,
        r.layout.extents,
        r.layout.unwritten,
        r.allowed(max)
    )
}

/// One line of text for a file.
pub fn text_report(path: &Path, r: &Report, max: Option<u64>) -> String {
    format!(
        "{}: {}: size {}, allocated {}, holes {}, {} fragments (at most {} for this size), {} extents, unwritten {}",
        path.display(),
        r.verdict(max).name(),
        human::bytes(r.size),
        human::bytes(r.allocated),
        human::bytes(r.layout.hole_bytes),
        r.layout.fragments,
        r.allowed(max),
        r.layout.extents,
        human::bytes(r.layout.unwritten)
    )
}

/// Checks every file and returns the exit status.
pub fn run(c: &Check) -> u8 {
    let mut status = SUCCESS;
    let mut first = true;
    if c.json {
        println!("[");
    }
    let (items, unmatched) = files(&c.paths, c.pattern.as_deref());
    for dir in &unmatched {
        eprintln!(
            "nosparse check: {}: no file matches --pattern {}",
            dir.display(),
            c.pattern.as_deref().unwrap_or_default()
        );
        if status == SUCCESS {
            status = NOT_WHOLE;
        }
    }
    for item in items {
        let result = item.and_then(|p| match measure(&p) {
            Ok(r) => Ok((p, r)),
            Err(why) => Err((p, why)),
        });
        let line = match &result {
            Ok((p, r)) => {
                if r.verdict(c.max_fragments) != Verdict::Whole && status == SUCCESS {
                    status = NOT_WHOLE;
                }
                if c.json {
                    json_report(p, r, c.max_fragments)
                } else {
                    text_report(p, r, c.max_fragments)
                }
            }
            Err((path, why)) => {
                status = TROUBLE;
                if !c.json {
                    eprintln!("nosparse check: {}: {why}", path.display());
                    continue;
                }
                format!("{{{}, \"error\": {}}}", json_path(path), json_str(why))
            }
        };
        if c.json {
            print!("{}{line}", if first { "" } else { ",\n" });
            first = false;
        } else if !c.quiet {
            println!("{line}");
        }
    }
    if c.json {
        println!("{}]", if first { "" } else { "\n" });
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn report(size: u64, holes: u64, fragments: u64) -> Report {
        let layout = Layout { fragments, hole_bytes: holes, ..Layout::default() };
        Report { size, allocated: size - holes, layout, largest_extent: 128 * MIB }
    }

    #[test]
    fn the_verdict_is_relative_to_the_filesystems_best() {
        // 256 MiB on ext4 needs 2 fragments at least; 4 are allowed, 30 are not.
        assert_eq!(report(256 * MIB, 0, 4).verdict(None), Verdict::Whole);
        assert_eq!(report(256 * MIB, 0, 30).verdict(None), Verdict::Fragmented);
        // The 2 GiB file in 261 fragments: 16 at least, 32 allowed.
        assert_eq!(report(2048 * MIB, 0, 261).verdict(None), Verdict::Fragmented);
        assert_eq!(report(2048 * MIB, 0, 261).min_fragments(), 16);
        assert_eq!(report(1, 0, 1).allowed(None), 2);
        assert_eq!(report(0, 0, 0).verdict(None), Verdict::Whole);
        assert_eq!(report(256 * MIB, 4096, 1).verdict(None), Verdict::Sparse);
        // --max-fragments replaces the rule, either way.
        assert_eq!(report(256 * MIB, 0, 30).verdict(Some(30)), Verdict::Whole);
        assert_eq!(report(256 * MIB, 0, 2).verdict(Some(1)), Verdict::Fragmented);
    }

    #[test]
    fn patterns() {
        assert!(matches("*.vmem", Path::new("/vm/a/guest.vmem")));
        assert!(!matches("*.vmem", Path::new("/vm/a.vmem/guest.vmsn")));
        assert!(matches("/vm/*/*.vmem", Path::new("/vm/a/guest.vmem")));
        // As the library matches NOSPARSE_MATCH: a '*' also crosses '/'.
        assert!(matches("/vm/*.vmem", Path::new("/vm/a/guest.vmem")));
        assert!(!matches("/srv/*.vmem", Path::new("/vm/a/guest.vmem")));
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\nd"), "\"a\\\"b\\\\c\\u000ad\"");
    }

    #[test]
    fn json_paths_keep_their_bytes() {
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(json_path(Path::new("/vm/a.vmem")), "\"path\": \"/vm/a.vmem\"");
        let odd = Path::new(std::ffi::OsStr::from_bytes(b"/v\xff"));
        assert_eq!(json_path(odd), "\"path\": \"/v\u{fffd}\", \"path_bytes\": [47, 118, 255]");
    }
}
