//! The system-wide settings file, `/etc/nosparse.conf`, read as the library reads it:
//! trusted only when it is a regular file owned by root that neither group nor others
//! can write, of at most [`MAX_BYTES`]; one `NAME=value` per line with the names of
//! `SETTINGS`, `#` comments, blank lines, spaces around name and value and one pair of
//! quotes around the value dropped; a name given twice takes its last value.

use nosparse_core::settings::{self, Setting};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Where the library looks for it.
pub const PATH: &str = "/etc/nosparse.conf";

/// A larger file is not read: it cannot be one written by hand.
pub const MAX_BYTES: u64 = 64 << 10;

/// Mode bits that let group or others write.
const GROUP_OTHER_WRITE: u32 = 0o022;

/// The file's text, `None` when there is no file, or why it is not trusted.
pub fn read_trusted(path: &Path) -> Result<Option<Vec<u8>>, String> {
    // O_NONBLOCK: a FIFO put in its place must not hang the reader.
    let mut f = match File::options().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open it: {e}")),
    };
    let m = f.metadata().map_err(|e| format!("cannot stat it: {e}"))?;
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
    f.read_to_end(&mut text).map_err(|e| format!("cannot read it: {e}"))?;
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
        if let Err(why) = (setting.check)(value) {
            let shown = String::from_utf8_lossy(value);
            bad.push(BadLine { line, setting: Some(setting), why: format!("{name}={shown}: {why}") });
            return;
        }
        entries.push(Entry { line, setting, value: value.to_vec() });
    });
    (entries, bad)
}

/// Whether some line sets `name`, with a good value or a bad one.
pub fn sets(entries: &[Entry], bad: &[BadLine], name: &str) -> bool {
    entries.iter().any(|e| e.setting.name == name) || bad.iter().any(|b| b.setting.is_some_and(|s| s.name == name))
}

/// The value the library uses for `name`: the last line that sets it.
pub fn value<'a>(entries: &'a [Entry], name: &str) -> Option<&'a [u8]> {
    entries.iter().rev().find(|e| e.setting.name == name).map(|e| e.value.as_slice())
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
        assert_eq!(value(&entries, "NOSPARSE_MATCH"), Some(&b"*.img"[..]));
        let lines: Vec<usize> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, [4, 5, 6, 8]);
        assert!(bad[0].why.contains("NOSPARSE_MIN_SIZE=1X"), "{:?}", bad[0]);
        assert!(bad[1].why.contains("not a nosparse setting"));
        assert!(bad[3].why.contains("empty pattern"));
        assert!(sets(&entries, &bad, "NOSPARSE_PROGRAMS") && !sets(&entries, &bad, "NOSPARSE_LOG"));
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
}
