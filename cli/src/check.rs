//! `nosparse check PATH...`: each file's size, allocation, holes and fragments, read with
//! FIEMAP and counted as `filefrag` counts them, and a verdict against what the file's
//! filesystem could do at best for that size.

use crate::args::{Check, Format};
use crate::exit_codes::Status;
use crate::{human, pattern};
use nosparse_core::extents::{self, Layout};
use nosparse_core::fs::FsKind;
use nosparse_core::sys;
use serde::Serialize;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
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
    /// Bytes allocated past the block holding the file's end: what a preallocation the
    /// size never caught up with leaves (e.g. after a failed call under
    /// `NOSPARSE_ON_ERROR=fail`); they are taken from the disk and never read.
    pub beyond_eof: u64,
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

/// Why a file was not opened; the text does not repeat the path.
#[derive(Debug)]
pub enum NotOpened {
    /// Not a regular file: what it is.
    Special(String),
    /// It could not be looked at or opened: the system's error.
    Failed(String),
}

impl NotOpened {
    pub fn text(self) -> String {
        match self {
            NotOpened::Special(why) | NotOpened::Failed(why) => why,
        }
    }
}

/// Opens `path` for reading only if it is a regular file, and never waits doing so: a
/// FIFO or a device is refused from its `stat`, before any open, and the open itself is
/// non-blocking in case the name was swapped for one meanwhile.
pub fn open_regular(path: &Path) -> Result<(File, fs::Metadata), NotOpened> {
    let before = fs::metadata(path).map_err(|e| NotOpened::Failed(human::os_error(&e)))?;
    human::refuse_special(before.file_type()).map_err(NotOpened::Special)?;
    let f = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| NotOpened::Failed(format!("cannot open it: {}", human::os_error(&e))))?;
    let meta = f.metadata().map_err(|e| NotOpened::Failed(human::os_error(&e)))?;
    human::refuse_special(meta.file_type()).map_err(NotOpened::Special)?;
    Ok((f, meta))
}

/// The longest extent the filesystem holding `f` can map, and its block size, in bytes.
fn largest_extent(f: &File) -> (u64, u64) {
    let fd = f.as_raw_fd();
    let Ok(st) = sys::fstatfs(fd) else { return (DEFAULT_EXTENT_BYTES, 0) };
    let bsize = st.bsize;
    let largest = match FsKind::from_magic(st.kind) {
        FsKind::Ext => {
            if sys::inode_flags(fd).is_ok_and(|flags| flags & sys::FS_EXTENT_FL == 0) {
                bsize / BLOCK_NUMBER_BYTES * bsize
            } else {
                EXT4_EXTENT_BLOCKS * bsize
            }
        }
        FsKind::Xfs => XFS_EXTENT_BLOCKS * bsize,
        _ => DEFAULT_EXTENT_BYTES,
    };
    (largest, bsize)
}

/// Bytes of `f`'s extents past `size` rounded up to the block (FIEMAP maps whole blocks,
/// so the block holding the end is the file's own).
fn beyond_eof(f: &File, size: u64, block: u64) -> Result<u64, String> {
    let end = size.div_ceil(block.max(1)).saturating_mul(block.max(1));
    let mut past = 0u64;
    extents::for_each(f.as_raw_fd(), |e| {
        let stop = e.logical.saturating_add(e.length);
        past += stop.saturating_sub(e.logical.max(end));
    })
    .map_err(|e| e.to_string())?;
    Ok(past)
}

/// Measures an open regular file. Delayed allocations are flushed first (fdatasync),
/// since until then the file has no physical layout to report.
pub fn measure_file(f: &File, meta: &fs::Metadata) -> Result<Report, String> {
    let read = || {
        extents::layout(f.as_raw_fd(), meta.len()).map_err(|e| match FsKind::of_fd(f.as_raw_fd()).ok() {
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
    let (largest_extent, block) = largest_extent(f);
    let beyond_eof = beyond_eof(f, meta.len(), block)?;
    Ok(Report { size: meta.len(), allocated, layout, largest_extent, beyond_eof })
}

/// Opens and measures `path`.
pub fn measure(path: &Path) -> Result<Report, String> {
    let (f, meta) = open_regular(path).map_err(NotOpened::text)?;
    measure_file(&f, &meta)
}

/// Whether `glob` matches `path`: its name, or the whole path when the glob has a '/'.
fn matches(glob: &str, path: &Path) -> bool {
    let subject = if glob.contains('/') { path.as_os_str() } else { path.file_name().unwrap_or_default() };
    pattern::fnmatch(glob.as_bytes(), subject.as_bytes())
}

/// A path, or a path that could not be used and why.
type Item = Result<PathBuf, (PathBuf, String)>;

/// The files to check: the paths given, with directories searched (sorted by name,
/// symbolic links not followed, only regular files matching `pattern`). An unreadable
/// directory is an error entry.
/// A directory in which no file is found (none matches the pattern, or it has none) is
/// named in the second list: a mistyped pattern must not look like success.
fn files(paths: &[PathBuf], pattern: Option<&str>) -> (Vec<Item>, Vec<PathBuf>) {
    let mut out = Vec::new();
    let mut empty = Vec::new();
    for p in paths {
        if fs::metadata(p).is_ok_and(|m| m.is_dir()) {
            let before = out.len();
            // A glob with a '/' is matched against the absolute path, wherever the
            // search started: `--pattern '/vm/*/*.vmem' .` run in /vm.
            let abs = fs::canonicalize(p).or_else(|_| std::path::absolute(p)).unwrap_or_else(|_| p.clone());
            walk(p, &abs, pattern, &mut out);
            if out.len() == before {
                empty.push(p.clone());
            }
        } else {
            out.push(Ok(p.clone()));
        }
    }
    (out, empty)
}

/// Searches `dir`, known absolutely as `abs`. A directory that cannot be listed, and an
/// entry that cannot be looked at (a directory readable but not searchable), are error
/// entries: files check cannot see must not pass for none.
fn walk(dir: &Path, abs: &Path, pattern: Option<&str>, out: &mut Vec<Item>) {
    let unreadable =
        |e: io::Error| Err((dir.to_path_buf(), format!("cannot read the directory: {}", human::os_error(&e))));
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => return out.push(unreadable(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) => names.push(e.file_name()),
            Err(e) => return out.push(unreadable(e)),
        }
    }
    names.sort();
    for name in names {
        let (p, p_abs) = (dir.join(&name), abs.join(&name));
        let m = match p.symlink_metadata() {
            Ok(m) => m,
            // Gone meanwhile: nothing to check.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                out.push(Err((p, format!("cannot look at it: {}", human::os_error(&e)))));
                continue;
            }
        };
        if m.is_dir() {
            walk(&p, &p_abs, pattern, out);
        } else if m.is_file() && pattern.map_or(true, |g| matches(g, &p_abs)) {
            out.push(Ok(p));
        }
    }
}

/// One file's line of output, for JSON: its measurements, or why it has none.
#[derive(Serialize)]
struct FileJson<'a> {
    path: String,
    /// The path's bytes, when it is not UTF-8 (so `path` had to replace some).
    #[serde(skip_serializing_if = "Option::is_none")]
    path_bytes: Option<&'a [u8]>,
    #[serde(flatten)]
    outcome: OutcomeJson,
}

#[derive(Serialize)]
#[serde(untagged)]
enum OutcomeJson {
    Measured {
        verdict: &'static str,
        size: u64,
        allocated: u64,
        holes: u64,
        fragments: u64,
        extents: u64,
        unwritten: u64,
        beyond_eof: u64,
        allowed: u64,
    },
    Error {
        error: String,
    },
}

/// The counts over every file.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub files: u64,
    pub whole: u64,
    pub sparse: u64,
    pub fragmented: u64,
    pub errors: u64,
    /// Directories in which no file was found (none matching `--pattern`, or empty).
    pub empty_dirs: Vec<String>,
    /// Bytes allocated past the end of all files together.
    pub beyond_eof: u64,
}

impl Summary {
    fn add(&mut self, outcome: &Outcome, max: Option<u64>) {
        self.files += 1;
        match &outcome.result {
            Ok(r) => {
                self.beyond_eof += r.beyond_eof;
                match r.verdict(max) {
                    Verdict::Whole => self.whole += 1,
                    Verdict::Sparse => self.sparse += 1,
                    Verdict::Fragmented => self.fragmented += 1,
                }
            }
            Err(_) => self.errors += 1,
        }
    }

    /// 0: every file whole; 1: some file is not, or a directory had none; 2: some file
    /// could not be read.
    pub fn status(&self) -> Status {
        if self.errors > 0 {
            Status::Trouble
        } else if self.whole < self.files || !self.empty_dirs.is_empty() {
            Status::NotWhole
        } else {
            Status::Success
        }
    }

    fn text(&self) -> String {
        let mut out = format!(
            "{}: {} whole, {} sparse, {} fragmented, {} unreadable",
            human::count(self.files, "file"),
            self.whole,
            self.sparse,
            self.fragmented,
            self.errors
        );
        if self.beyond_eof > 0 {
            out.push_str(&format!("; {} allocated past their ends", human::bytes(self.beyond_eof)));
        }
        out
    }
}

/// A file and what measuring it gave.
struct Outcome {
    path: PathBuf,
    result: Result<Report, String>,
}

impl Outcome {
    fn json(&self, max: Option<u64>) -> FileJson<'_> {
        let outcome = match &self.result {
            Ok(r) => OutcomeJson::Measured {
                verdict: r.verdict(max).name(),
                size: r.size,
                allocated: r.allocated,
                holes: r.layout.hole_bytes,
                fragments: r.layout.fragments,
                extents: r.layout.extents,
                unwritten: r.layout.unwritten,
                beyond_eof: r.beyond_eof,
                allowed: r.allowed(max),
            },
            Err(why) => OutcomeJson::Error { error: why.clone() },
        };
        let bytes = self.path.to_str().is_none().then(|| self.path.as_os_str().as_bytes());
        FileJson { path: self.path.to_string_lossy().into_owned(), path_bytes: bytes, outcome }
    }
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serializes")
}

/// One line of text for a file.
pub fn text_report(path: &Path, r: &Report, max: Option<u64>) -> String {
    let beyond = if r.beyond_eof > 0 {
        format!(", allocated past the end {}", human::bytes(r.beyond_eof))
    } else {
        String::new()
    };
    format!(
        "{}: {}: size {}, allocated {}, holes {}, {} (at most {} for this size), {}, unwritten {}{beyond}",
        human::path(path),
        r.verdict(max).name(),
        human::bytes(r.size),
        human::bytes(r.allocated),
        human::bytes(r.layout.hole_bytes),
        human::count(r.layout.fragments, "fragment"),
        r.allowed(max),
        human::count(r.layout.extents, "extent"),
        human::bytes(r.layout.unwritten)
    )
}

/// A path as a Prometheus label value: as the text output shows it ([`human::path`]),
/// then backslash, double quote and newline escaped as the text format requires.
fn label(path: &Path) -> String {
    human::path(path).replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The per-file gauges: (name, help, value).
type Gauge = (&'static str, &'static str, fn(&Report, Option<u64>) -> u64);

const GAUGES: [Gauge; 8] = [
    ("nosparse_file_size_bytes", "The file's size.", |r, _| r.size),
    ("nosparse_file_allocated_bytes", "Bytes allocated to the file.", |r, _| r.allocated),
    ("nosparse_file_hole_bytes", "Bytes of the file in holes (no block allocated).", |r, _| r.layout.hole_bytes),
    ("nosparse_file_unwritten_bytes", "Bytes in preallocated extents not written yet.", |r, _| r.layout.unwritten),
    ("nosparse_file_beyond_eof_bytes", "Bytes allocated past the block holding the file's end.", |r, _| r.beyond_eof),
    ("nosparse_file_fragments", "Physically contiguous runs, as filefrag counts them.", |r, _| r.layout.fragments),
    ("nosparse_file_fragments_allowed", "The most fragments a whole file of this size may have.", |r, m| r.allowed(m)),
    ("nosparse_file_extents", "Extents as the filesystem reports them.", |r, _| r.layout.extents),
];

/// Every file's gauges, each family once with its HELP and TYPE, then the counts.
fn prometheus(outcomes: &[Outcome], summary: &Summary, max: Option<u64>) -> String {
    let mut out = String::new();
    let measured: Vec<(String, &Report)> =
        outcomes.iter().filter_map(|o| o.result.as_ref().ok().map(|r| (label(&o.path), r))).collect();
    for (name, help, value) in GAUGES {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (path, r) in &measured {
            let _ = writeln!(out, "{name}{{path=\"{path}\"}} {}", value(r, max));
        }
    }
    let name = "nosparse_file_verdict";
    let _ = writeln!(out, "# HELP {name} The file's verdict: 1 for the one it has, 0 for the others.");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (path, r) in &measured {
        let verdict = r.verdict(max);
        for v in [Verdict::Whole, Verdict::Sparse, Verdict::Fragmented] {
            let _ = writeln!(out, "{name}{{path=\"{path}\",verdict=\"{}\"}} {}", v.name(), u8::from(v == verdict));
        }
    }
    let name = "nosparse_file_error";
    let _ = writeln!(out, "# HELP {name} 1 for a file that could not be measured.\n# TYPE {name} gauge");
    for o in outcomes.iter().filter(|o| o.result.is_err()) {
        let _ = writeln!(out, "{name}{{path=\"{}\"}} 1", label(&o.path));
    }
    let name = "nosparse_check_files";
    let _ = writeln!(out, "# HELP {name} Files checked, by verdict (error: could not be measured).");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (verdict, n) in [
        ("whole", summary.whole),
        ("sparse", summary.sparse),
        ("fragmented", summary.fragmented),
        ("error", summary.errors),
    ] {
        let _ = writeln!(out, "{name}{{verdict=\"{verdict}\"}} {n}");
    }
    let name = "nosparse_check_empty_dirs";
    let _ = writeln!(out, "# HELP {name} Directories searched in which no file was found.\n# TYPE {name} gauge");
    let _ = writeln!(out, "{name} {}", summary.empty_dirs.len());
    out
}

/// Checks every file, prints the findings in `c.format`, and returns the exit status.
pub fn run(c: &Check) -> Status {
    let (items, empty) = files(&c.paths, c.pattern.as_deref());
    let mut summary = Summary::default();
    for dir in &empty {
        let why = match c.pattern.as_deref() {
            Some(glob) => format!("no file matches --pattern {glob}"),
            None => "no regular file in it".to_string(),
        };
        human::say("check", &format!("{}: {why}", human::path(dir)));
        summary.empty_dirs.push(dir.to_string_lossy().into_owned());
    }
    let mut outcomes = Vec::new();
    for item in items {
        let outcome = match item {
            Ok(path) => {
                let result = measure(&path);
                Outcome { path, result }
            }
            Err((path, why)) => Outcome { path, result: Err(why) },
        };
        summary.add(&outcome, c.max_fragments);
        match (&outcome.result, c.format) {
            (Err(why), Format::Text | Format::Prometheus) => {
                human::say("check", &format!("{}: {why}", human::path(&outcome.path)));
            }
            (Ok(r), Format::Text) if !c.quiet => outln!("{}", text_report(&outcome.path, r, c.max_fragments)),
            (_, Format::Ndjson) => outln!("{}", json(&outcome.json(c.max_fragments))),
            _ => {}
        }
        if matches!(c.format, Format::Json | Format::Prometheus) {
            outcomes.push(outcome);
        }
    }
    match c.format {
        Format::Text if !c.quiet => outln!("{}", summary.text()),
        Format::Text => {}
        Format::Json => {
            #[derive(Serialize)]
            struct All<'a> {
                files: Vec<FileJson<'a>>,
                summary: &'a Summary,
            }
            let files = outcomes.iter().map(|o| o.json(c.max_fragments)).collect();
            let all = All { files, summary: &summary };
            outln!("{}", serde_json::to_string_pretty(&all).expect("plain data serializes"));
        }
        Format::Ndjson => {
            #[derive(Serialize)]
            struct Last<'a> {
                summary: &'a Summary,
            }
            outln!("{}", json(&Last { summary: &summary }));
        }
        Format::Prometheus => out!("{}", prometheus(&outcomes, &summary, c.max_fragments)),
    }
    summary.status()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn report(size: u64, holes: u64, fragments: u64) -> Report {
        let layout = Layout { fragments, hole_bytes: holes, ..Layout::default() };
        Report { size, allocated: size - holes, layout, largest_extent: 128 * MIB, beyond_eof: 0 }
    }

    #[test]
    fn the_verdict_is_relative_to_the_filesystems_best() {
        // 256 MiB on ext4 needs 2 fragments at least; 4 are allowed, 30 are not.
        assert_eq!(report(256 * MIB, 0, 4).verdict(None), Verdict::Whole);
        assert_eq!(report(256 * MIB, 0, 30).verdict(None), Verdict::Fragmented);
        // The issue's 2 GiB file in 261 fragments: 16 at least, 32 allowed.
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
    fn json_paths_keep_their_bytes() {
        let o = Outcome { path: PathBuf::from("/vm/a\"b.vmem"), result: Err("gone".into()) };
        assert_eq!(json(&o.json(None)), r#"{"path":"/vm/a\"b.vmem","error":"gone"}"#);
        let odd = PathBuf::from(std::ffi::OsStr::from_bytes(b"/v\xff"));
        let o = Outcome { path: odd, result: Ok(report(MIB, 0, 1)) };
        let text = json(&o.json(None));
        assert!(
            text.starts_with("{\"path\":\"/v\u{fffd}\",\"path_bytes\":[47,118,255],\"verdict\":\"whole\""),
            "{text}"
        );
    }

    #[test]
    fn prometheus_labels_are_escaped_and_families_appear_once() {
        let outcomes = [
            Outcome { path: PathBuf::from("/vm/a\"\\\n.vmem"), result: Ok(report(256 * MIB, 0, 30)) },
            Outcome { path: PathBuf::from("/vm/b.vmem"), result: Ok(report(256 * MIB, 4096, 1)) },
            Outcome { path: PathBuf::from("/vm/c.vmem"), result: Err("gone".into()) },
        ];
        let mut summary = Summary::default();
        outcomes.iter().for_each(|o| summary.add(o, None));
        assert_eq!((summary.fragmented, summary.sparse, summary.errors, summary.status()), (1, 1, 1, Status::Trouble));
        let text = prometheus(&outcomes, &summary, None);
        // As the text output shows the path, in the text format's escapes.
        assert!(text.contains("nosparse_file_fragments{path=\"/vm/a\\\"\\\\x5c\\\\x0a.vmem\"} 30\n"), "{text}");
        assert!(text.contains("nosparse_file_verdict{path=\"/vm/b.vmem\",verdict=\"sparse\"} 1\n"), "{text}");
        assert!(text.contains("nosparse_check_files{verdict=\"error\"} 1\n"), "{text}");
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            assert_eq!(text.matches(&format!("{line}\n")).count(), 1, "{line}");
        }
    }

    #[test]
    fn an_empty_directory_is_not_success() {
        let s = Summary { empty_dirs: vec!["/vm".into()], ..Summary::default() };
        assert_eq!(s.status(), Status::NotWhole);
        assert_eq!(Summary::default().status(), Status::Success);
    }
}
