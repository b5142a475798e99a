//! The system-wide settings file, `/etc/nosparse.conf`, read as the library reads it:
//! trusted only when it is a regular file owned by root that neither group nor others
//! can write, of at most [`MAX_BYTES`]; one `NAME=value` per line with the names of
//! `SETTINGS`, `#` comments, blank lines, spaces around name and value and one pair of
//! quotes around the value dropped; a name given twice takes its last value.

use nosparse_core::config::CONFIG_FILE_MAX;
use nosparse_core::fs::FsKind;
use nosparse_core::settings::{self, Setting, DISABLE, MATCH, METHOD, MIN_SIZE, PROGRAMS, SKIP_FS};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// A larger file is not read: it cannot be one written by hand (the library's limit).
pub const MAX_BYTES: u64 = CONFIG_FILE_MAX as u64;

/// Mode bits that let group or others write.
const GROUP_OTHER_WRITE: u32 = 0o022;

/// The file's text, `None` when there is no file, or why it is not trusted.
pub fn read_trusted(path: &Path) -> Result<Option<Vec<u8>>, String> {
    // O_NONBLOCK: a FIFO put in its place must not hang the reader.
    let mut f = match File::options().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open it: {}", crate::human::os_error(&e))),
    };
    let m = f.metadata().map_err(|e| format!("cannot stat it: {}", crate::human::os_error(&e)))?;
    if !m.is_file() {
        return Err("not a regular file".into());
    }
    if m.uid() != 0 {
        return Err(format!("owned by uid {}, not root", m.uid()));
    }
    if m.mode() & GROUP_OTHER_WRITE != 0 {
        return Err(format!("writable by group or others (mode {:o})", m.mode() & 0o7777));
    }
    if m.len() > MAX_BYTES {
        return Err(format!("{} bytes, larger than {MAX_BYTES}", m.len()));
    }
    let mut text = Vec::new();
    f.read_to_end(&mut text).map_err(|e| format!("cannot read it: {}", crate::human::os_error(&e)))?;
    Ok(Some(text))
}

/// One `NAME=value` line.
#[derive(Clone, Debug)]
pub struct Entry {
    pub line: usize,
    pub setting: &'static Setting,
    pub value: Vec<u8>,
}

/// A line the library would not use, and why.
#[derive(Clone, Debug)]
pub struct BadLine {
    pub line: usize,
    /// The setting the line names, when it names one (with a bad value).
    pub setting: Option<&'static Setting>,
    pub why: String,
}

/// The file's entries in order, and its bad lines (unknown names, bad values, lines
/// that are not `NAME=value`), split into lines as the library splits them.
pub fn parse(text: &[u8]) -> (Vec<Entry>, Vec<BadLine>) {
    let mut entries = Vec::new();
    let mut bad = Vec::new();
    nosparse_core::config::for_each_line(text, |number, name, value| {
        let line = number as usize;
        let Some(name) = name else {
            bad.push(BadLine { line, setting: None, why: "expected NAME=value".into() });
            return;
        };
        let name = String::from_utf8_lossy(name).into_owned();
        let Some(setting) = settings::find(&name) else {
            bad.push(BadLine { line, setting: None, why: format!("{name} is not a nosparse setting") });
            return;
        };
        if let Err(why) = setting.check(value) {
            let shown = String::from_utf8_lossy(value);
            bad.push(BadLine { line, setting: Some(setting), why: format!("{name}={shown}: {why}") });
            return;
        }
        entries.push(Entry { line, setting, value: value.to_vec() });
    });
    (entries, bad)
}

/// Whether some line sets `setting`, with a good value or a bad one.
pub fn sets(entries: &[Entry], bad: &[BadLine], setting: &Setting) -> bool {
    let name = setting.name;
    entries.iter().any(|e| e.setting.name == name) || bad.iter().any(|b| b.setting.is_some_and(|s| s.name == name))
}

/// The value the library uses for `setting`: the last line that sets it.
pub fn value<'a>(entries: &'a [Entry], setting: &Setting) -> Option<&'a [u8]> {
    entries.iter().rev().find(|e| e.setting.name == setting.name).map(|e| e.value.as_slice())
}

/// A setting that keeps the library from doing its work: the setting, what it does, the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Off {
    pub name: &'static str,
    pub why: String,
    pub fix: String,
}

/// A `.vmem` is as large as the guest's memory; guests of 1 GiB are still made, so a
/// `NOSPARSE_MIN_SIZE` above it leaves some out.
pub const VMEM_SMALLEST: u64 = 1 << 30;

/// What vmware-vmx's memory files are called, for testing `NOSPARSE_MATCH`.
const VMEM_NAME: &str = "guest.vmem";
/// vmx's name, for testing `NOSPARSE_PROGRAMS`.
const VMX_NAME: &str = "vmware-vmx";

/// Whether a value carries a comment after it: the library takes the whole rest of the
/// line as the value, so `NAME=value # note` sets `value # note`.
fn inline_comment(value: &[u8]) -> bool {
    value.windows(2).any(|w| matches!(w, [b' ' | b'\t', b'#']))
}

/// Whether a `:`-separated glob list matches `name` (a glob with '/' is tried on its last
/// component, the directories being unknown here), as the library's own matcher says.
fn globs_match(globs: &[u8], name: &str) -> bool {
    String::from_utf8_lossy(globs).split(':').any(|g| {
        let last = g.rsplit('/').next().unwrap_or(g);
        nosparse_core::glob::matches(last.as_bytes(), name.as_bytes())
    })
}

/// The settings among `entries` that turn the library off: everywhere (`NOSPARSE_DISABLE`,
/// `NOSPARSE_METHOD=off`, a comment inside a value), and when `for_vmx`, for vmx's
/// `.vmem` files (`NOSPARSE_PROGRAMS`, `NOSPARSE_MATCH`, `NOSPARSE_MIN_SIZE`, and
/// `NOSPARSE_SKIP_FS` naming `vm_fs`, the filesystem of the VMs' directory, when known).
pub fn turned_off(entries: &[Entry], for_vmx: bool, vm_fs: Option<FsKind>) -> Vec<Off> {
    let mut off = Vec::new();
    let mut say = |name, why: String, fix: String| off.push(Off { name, why, fix });
    for e in entries {
        if inline_comment(&e.value) {
            say(
                e.setting.name,
                format!(
                    "line {}: {}={}: the value includes the comment after it (the library does not strip comments after a value){}",
                    e.line,
                    e.setting.name,
                    String::from_utf8_lossy(&e.value),
                    if e.setting.name == PROGRAMS.name || e.setting.name == MATCH.name {
                        ", so its last glob matches nothing"
                    } else {
                        ""
                    }
                ),
                "put the comment on a line of its own, starting with #".into(),
            );
        }
    }
    if let Some(v) = value(entries, &DISABLE).filter(|v| nosparse_core::settings::parse_bool(v) == Ok(true)) {
        say(
            DISABLE.name,
            format!("{}={} turns the library off in every program", DISABLE.name, String::from_utf8_lossy(v)),
            format!("remove the line (or set {}=0)", DISABLE.name),
        );
    }
    if value(entries, &METHOD) == Some(b"off") {
        say(
            METHOD.name,
            format!("{}=off: the library preallocates nothing", METHOD.name),
            format!("remove the line (the default is {})", METHOD.default),
        );
    }
    if !for_vmx {
        return off;
    }
    if let Some(p) = value(entries, &PROGRAMS).filter(|p| !inline_comment(p) && !globs_match(p, VMX_NAME)) {
        say(
            PROGRAMS.name,
            format!("{}={} leaves out {VMX_NAME}", PROGRAMS.name, String::from_utf8_lossy(p)),
            format!("add {VMX_NAME}* to it (':'-separated)"),
        );
    }
    if let Some(m) = value(entries, &MATCH).filter(|m| !inline_comment(m) && !globs_match(m, VMEM_NAME)) {
        say(
            MATCH.name,
            format!("{}={} does not match vmx's *.vmem files", MATCH.name, String::from_utf8_lossy(m)),
            "add *.vmem to it (':'-separated)".into(),
        );
    }
    if let Some(Ok(min)) = value(entries, &MIN_SIZE).map(settings::parse_size) {
        if min > VMEM_SMALLEST {
            say(
                MIN_SIZE.name,
                format!(
                    "{}={} ({min} bytes): a .vmem is as large as its guest's memory, so guests with less get sparse .vmem files",
                    MIN_SIZE.name,
                    String::from_utf8_lossy(value(entries, &MIN_SIZE).unwrap_or_default())
                ),
                format!("remove the line (the default is {}), or set it to at most 1GiB", MIN_SIZE.default),
            );
        }
    }
    if let (Some(fs), Some(Ok(skip))) = (vm_fs, value(entries, &SKIP_FS).map(settings::parse_skip_fs)) {
        if skip & fs.bit() != 0 {
            say(
                SKIP_FS.name,
                format!(
                    "{} names {fs}, the filesystem of the VMs' directory: their .vmem files are left sparse",
                    SKIP_FS.name
                ),
                format!("take {} out of {}", fs.name(), SKIP_FS.name),
            );
        }
    }
    off
}

#[cfg(test)]
mod tests {
    use super::*;
    use nosparse_core::settings::SETTINGS;

    #[test]
    fn lines() {
        let text = b"# comment\n\n  NOSPARSE_MATCH = '*.vmem'  \nNOSPARSE_MIN_SIZE=1X\nNOSPARSE_FOO=1\njunk\n\
                     NOSPARSE_MATCH=\"*.img\"\nNOSPARSE_PROGRAMS=a::b\n";
        let (entries, bad) = parse(text);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].line, 3);
        assert_eq!(entries[0].value, b"*.vmem");
        assert_eq!(value(&entries, &MATCH), Some(&b"*.img"[..]));
        let lines: Vec<usize> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, [4, 5, 6, 8]);
        assert!(bad[0].why.contains("NOSPARSE_MIN_SIZE=1X"), "{:?}", bad[0]);
        assert!(bad[1].why.contains("not a nosparse setting"));
        assert!(bad[3].why.contains("empty pattern"));
        assert!(sets(&entries, &bad, &PROGRAMS) && !sets(&entries, &bad, &settings::LOG));
    }

    #[test]
    fn every_setting_can_be_written() {
        for s in &SETTINGS {
            // The defaults of the glob lists are words ("every path"): a glob stands in.
            let value = if s.default.starts_with("every") { "*" } else { s.default };
            let (entries, bad) = parse(format!("{}={value}", s.name).as_bytes());
            assert!(bad.is_empty() && entries.len() == 1, "{}: {bad:?}", s.name);
        }
    }

    #[test]
    fn settings_that_turn_the_library_off_for_vmx() {
        let names = |text: &str, vm_fs| {
            let (entries, bad) = parse(text.as_bytes());
            assert!(bad.is_empty(), "{bad:?}");
            turned_off(&entries, true, vm_fs).into_iter().map(|o| o.name).collect::<Vec<_>>()
        };
        let example = "NOSPARSE_PROGRAMS=vmware-vmx*\nNOSPARSE_MATCH=*.vmem\nNOSPARSE_TRIGGERS=pwrite,ftruncate\n";
        assert!(names(example, Some(FsKind::Ext)).is_empty());
        assert!(names("NOSPARSE_MATCH=/vmfs/*/*.vmem:*.img\nNOSPARSE_SKIP_FS=nfs\n", Some(FsKind::Ext)).is_empty());
        assert_eq!(names("NOSPARSE_DISABLE=1\n", None), ["NOSPARSE_DISABLE"]);
        assert_eq!(names("NOSPARSE_DISABLE=Yes\n", None), ["NOSPARSE_DISABLE"]);
        assert!(names("NOSPARSE_DISABLE=off\n", None).is_empty());
        assert_eq!(names("NOSPARSE_METHOD=off\n", None), ["NOSPARSE_METHOD"]);
        assert_eq!(names("NOSPARSE_MATCH=*.vmdk\n", None), ["NOSPARSE_MATCH"]);
        assert_eq!(names("NOSPARSE_MIN_SIZE=1T\n", None), ["NOSPARSE_MIN_SIZE"]);
        assert!(names("NOSPARSE_MIN_SIZE=1G\n", None).is_empty());
        assert_eq!(names("NOSPARSE_SKIP_FS=xfs:ext\n", Some(FsKind::Ext)), ["NOSPARSE_SKIP_FS"]);
        assert!(names("NOSPARSE_SKIP_FS=xfs:ext\n", None).is_empty());
        assert_eq!(names("NOSPARSE_PROGRAMS=qemu*\n", None), ["NOSPARSE_PROGRAMS"]);
        // An inline comment is part of the value: named once, as a comment, not as a
        // glob to add.
        let (entries, _) = parse(b"NOSPARSE_PROGRAMS=vmware-vmx* # vmx only\n");
        let off = turned_off(&entries, true, None);
        assert_eq!(off.len(), 1, "{off:?}");
        assert!(off[0].why.contains("includes the comment") && off[0].fix.contains("line of its own"), "{off:?}");
        // Not for vmx: only what turns the library off everywhere.
        let (entries, _) = parse(b"NOSPARSE_MATCH=*.img\nNOSPARSE_METHOD=off\n");
        assert_eq!(turned_off(&entries, false, None).len(), 1);
    }
}
