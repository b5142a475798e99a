//! Settings, read once when the library loads: from the system-wide file
//! `/etc/nosparse.conf` (same `NOSPARSE_*` keys), then from the environment, which
//! overrides it key by key.
//!
//! A bad value is reported once and its default kept: a setting can never break the
//! program the library is loaded into. In secure execution (setuid programs) the
//! environment is not trusted; the file is, when root owns it and only root can write it.

use crate::fs::FsKind;
use crate::log::Sink;
use std::ffi::{CStr, CString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

/// The system-wide settings file.
pub const CONFIG_FILE: &str = "/etc/nosparse.conf";

/// A settings file larger than this is not read: it cannot be one written by hand.
pub const CONFIG_FILE_MAX: u64 = 64 << 10;

/// Every setting's name, in the order they are applied.
pub const NAMES: [&str; 10] = [
    "NOSPARSE_DISABLE",
    "NOSPARSE_PROGRAMS",
    "NOSPARSE_MIN_SIZE",
    "NOSPARSE_METHOD",
    "NOSPARSE_MATCH",
    "NOSPARSE_TRIGGERS",
    "NOSPARSE_ON_ERROR",
    "NOSPARSE_LOG",
    "NOSPARSE_DEBUG",
    "NOSPARSE_SKIP_FS",
];

/// Files smaller than this are left alone: preallocation pays off for big files.
pub const MIN_SIZE_DEFAULT: u64 = 64 << 20;

/// Filesystems skipped unless `NOSPARSE_SKIP_FS` says otherwise: preallocating on
/// tmpfs/ramfs pins RAM, and ZFS (copy-on-write) only reserves.
pub const SKIP_FS_DEFAULT: &str = "tmpfs:ramfs:zfs";

/// How the file is allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `fallocate`, and zeros written where the filesystem does not support it.
    Auto,
    /// `fallocate` only; where unsupported the file stays sparse.
    Fallocate,
    /// Zeros written into the holes.
    Zero,
    /// Nothing allocated; the decision is logged.
    Off,
}

/// What happens when preallocation fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnError {
    /// The call goes through as if the library were not there.
    Passthrough,
    /// The call returns -1 with the preallocation's errno.
    Fail,
}

/// The calls that can be recognised as creating a sparse file (`NOSPARSE_TRIGGERS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// `pwrite`/`pwrite64` of one byte past the end.
    Pwrite,
    /// `ftruncate`/`ftruncate64` growing the file.
    Ftruncate,
    /// `write` of one byte with the file offset past the end (after `lseek`).
    Write,
}

impl Trigger {
    pub const ALL: [Trigger; 3] = [Trigger::Pwrite, Trigger::Ftruncate, Trigger::Write];

    pub fn name(self) -> &'static str {
        match self {
            Trigger::Pwrite => "pwrite",
            Trigger::Ftruncate => "ftruncate",
            Trigger::Write => "write",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`Trigger`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Triggers(u8);

impl Triggers {
    pub const DEFAULT: Triggers = Triggers(1 << Trigger::Pwrite as u8);

    pub fn has(self, t: Trigger) -> bool {
        self.0 & t.bit() != 0
    }
}

/// `,`-separated trigger names, e.g. `pwrite,ftruncate`.
pub fn parse_triggers(v: &str) -> Result<Triggers, String> {
    v.split(',').try_fold(Triggers(0), |set, name| match Trigger::ALL.iter().find(|t| t.name() == name) {
        Some(t) => Ok(Triggers(set.0 | t.bit())),
        None => Err(format!("unknown trigger {name:?}: use pwrite, ftruncate and write, separated by ','")),
    })
}

/// `NOSPARSE_PROGRAMS`: which programs the library acts in, matched against the path
/// of the running executable (`/proc/self/exe`) as `NOSPARSE_MATCH` matches files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Programs {
    /// Not set: every program.
    #[default]
    Every,
    Only(Matcher),
    /// Set, but unusable: no program, so a typo in a system-wide list fails closed.
    Invalid,
}

impl Programs {
    /// Whether the program at `exe` (None: unknown) is one the library acts in.
    pub fn allows(&self, exe: Option<&CStr>) -> bool {
        match (self, exe) {
            (Programs::Every, _) => true,
            (Programs::Only(m), Some(exe)) => m.matches(exe),
            _ => false,
        }
    }
}

/// `NOSPARSE_MATCH`: `:`-separated globs. A pattern with a `/` is matched against the
/// whole path, one without against the file name. `*` matches `/` too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Matcher {
    patterns: Vec<CString>,
}

impl Matcher {
    /// Parses a `:`-separated list; empty patterns are an error.
    pub fn parse(value: &[u8]) -> Result<Self, String> {
        let mut patterns = Vec::new();
        for p in value.split(|&b| b == b':') {
            if p.is_empty() {
                return Err("an empty pattern (two ':' in a row, or one at an end)".into());
            }
            patterns.push(CString::new(p).map_err(|_| "a NUL byte".to_string())?);
        }
        Ok(Matcher { patterns })
    }

    /// Whether any pattern is set; with none, every path matches.
    pub fn is_set(&self) -> bool {
        !self.patterns.is_empty()
    }

    /// Whether `path` matches (always, when no pattern is set).
    pub fn matches(&self, path: &CStr) -> bool {
        if !self.is_set() {
            return true;
        }
        let full = path.to_bytes();
        let base_at = full.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
        // SAFETY: base_at is within the string, so the tail is still NUL-terminated.
        let base = unsafe { CStr::from_ptr(path.as_ptr().add(base_at)) };
        self.patterns.iter().any(|p| {
            let subject = if p.as_bytes().contains(&b'/') { path } else { base };
            // SAFETY: both are valid NUL-terminated strings.
            unsafe { libc::fnmatch(p.as_ptr(), subject.as_ptr(), 0) == 0 }
        })
    }
}

/// The library's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub disabled: bool,
    pub min_size: u64,
    pub method: Method,
    pub matcher: Matcher,
    pub on_error: OnError,
    pub triggers: Triggers,
    pub programs: Programs,
    pub log: Sink,
    pub debug: bool,
    /// Bits of [`FsKind::bit`] for filesystems to leave alone.
    pub skip_fs: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            disabled: false,
            min_size: MIN_SIZE_DEFAULT,
            method: Method::Auto,
            matcher: Matcher::default(),
            on_error: OnError::Passthrough,
            triggers: Triggers::DEFAULT,
            programs: Programs::Every,
            log: Sink::Syslog,
            debug: false,
            skip_fs: parse_skip_fs(SKIP_FS_DEFAULT).expect("the default parses"),
        }
    }
}

/// Where a setting came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Environment,
    /// The settings file, at this line.
    File(usize),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Environment => f.write_str("environment"),
            Source::File(line) => write!(f, "{CONFIG_FILE}:{line}"),
        }
    }
}

/// One setting that could not be used, for the one warning it gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadSetting {
    pub source: Source,
    pub name: String,
    pub value: String,
    pub why: String,
}

/// A lookup of settings by name: the environment's, or a test's.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<Vec<u8>>;

/// One `NAME=value` line of a settings file: its line number, name and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub line: usize,
    pub name: String,
    pub value: Vec<u8>,
}

/// The settings file, as found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileState {
    Absent,
    Used,
    /// Present but not read, and why (not root's, writable by others, unreadable...).
    Ignored(String),
}

/// The settings for this process, and what was wrong on the way.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub cfg: Config,
    pub bad: Vec<BadSetting>,
    pub file: FileState,
    /// NOSPARSE_* variables were present but ignored (secure execution).
    pub env_ignored: bool,
}

impl Config {
    /// Applies the settings `get` finds (a lookup by name) over `self`, and returns one
    /// entry for each value that was rejected (the earlier value is kept).
    pub fn apply(&mut self, source: Source, get: impl Fn(&str) -> Option<Vec<u8>>) -> Vec<BadSetting> {
        let cfg = self;
        let mut bad = Vec::new();
        let mut setting = |name: &'static str, apply: &mut dyn FnMut(&[u8]) -> Result<(), String>| {
            if let Some(value) = get(name) {
                let result = if value.is_empty() { Err("empty".to_string()) } else { apply(&value) };
                if let Err(why) = result {
                    let value = String::from_utf8_lossy(&value).into_owned();
                    bad.push(BadSetting { source, name: name.to_string(), value, why });
                }
            }
        };
        setting("NOSPARSE_DISABLE", &mut |v| parse_bool(v).map(|b| cfg.disabled = b));
        setting("NOSPARSE_PROGRAMS", &mut |v| {
            let parsed = Matcher::parse(v);
            cfg.programs = match &parsed {
                Ok(m) => Programs::Only(m.clone()),
                Err(_) => Programs::Invalid,
            };
            parsed.map(drop).map_err(|why| format!("{why}; acting in no program"))
        });
        setting("NOSPARSE_MIN_SIZE", &mut |v| parse_size(text(v)?).map(|n| cfg.min_size = n));
        setting("NOSPARSE_METHOD", &mut |v| {
            cfg.method = match text(v)? {
                "auto" => Method::Auto,
                "fallocate" => Method::Fallocate,
                "zero" => Method::Zero,
                "off" => Method::Off,
                _ => return Err("expected auto, fallocate, zero or off".into()),
            };
            Ok(())
        });
        setting("NOSPARSE_MATCH", &mut |v| Matcher::parse(v).map(|m| cfg.matcher = m));
        setting("NOSPARSE_TRIGGERS", &mut |v| parse_triggers(text(v)?).map(|t| cfg.triggers = t));
        setting("NOSPARSE_ON_ERROR", &mut |v| {
            cfg.on_error = match text(v)? {
                "passthrough" => OnError::Passthrough,
                "fail" => OnError::Fail,
                _ => return Err("expected passthrough or fail".into()),
            };
            Ok(())
        });
        setting("NOSPARSE_LOG", &mut |v| {
            cfg.log = match text(v)? {
                "syslog" => Sink::Syslog,
                "stderr" => Sink::Stderr,
                "none" => Sink::None,
                _ => return Err("expected syslog, stderr or none".into()),
            };
            Ok(())
        });
        setting("NOSPARSE_DEBUG", &mut |v| parse_bool(v).map(|b| cfg.debug = b));
        setting("NOSPARSE_SKIP_FS", &mut |v| parse_skip_fs(text(v)?).map(|s| cfg.skip_fs = s));
        bad
    }

    /// The defaults with the settings `get` finds in the environment applied.
    pub fn from_lookup(get: impl Fn(&str) -> Option<Vec<u8>>) -> (Config, Vec<BadSetting>) {
        let mut cfg = Config::default();
        let bad = cfg.apply(Source::Environment, get);
        (cfg, bad)
    }

    /// The defaults, with a settings file's text applied, then the environment's
    /// settings from `env` (None: not trusted).
    pub fn from_sources(file: Option<&[u8]>, env: Option<Lookup>) -> (Config, Vec<BadSetting>) {
        let mut cfg = Config::default();
        let mut bad = Vec::new();
        if let Some(text) = file {
            let (entries, mut wrong) = parse_file(text);
            let find = |name: &str| entries.iter().rev().find(|e| e.name == name).map(|e| (e.line, e.value.clone()));
            // Each setting is applied from the line that last sets it, so that its report names that line.
            for name in NAMES {
                if let Some((line, value)) = find(name) {
                    wrong.extend(cfg.apply(Source::File(line), |n| (n == name).then(|| value.clone())));
                }
            }
            bad.append(&mut wrong);
        }
        if let Some(get) = env {
            bad.extend(cfg.apply(Source::Environment, get));
        }
        (cfg, bad)
    }

    /// The settings for this process: [`CONFIG_FILE`] when it can be trusted, then the
    /// environment unless in secure execution.
    pub fn for_process() -> Loaded {
        let (text, file) = read_config_file(CONFIG_FILE.as_ref());
        let secure = crate::sys::secure_execution();
        let lookup = |name: &str| std::env::var_os(name).map(|v| v.as_bytes().to_vec());
        let env: Option<Lookup> = if secure { None } else { Some(&lookup) };
        let (cfg, bad) = Config::from_sources(text.as_deref(), env);
        let env_ignored = secure && std::env::vars_os().any(|(k, _)| k.as_bytes().starts_with(b"NOSPARSE_"));
        Loaded { cfg, bad, file, env_ignored }
    }

    /// Whether files on `fs` are left alone.
    pub fn skips(&self, fs: FsKind) -> bool {
        self.skip_fs & fs.bit() != 0
    }
}

/// Reads a settings file if it can be trusted: a regular file owned by root that no one
/// else can write, and not larger than [`CONFIG_FILE_MAX`].
pub fn read_config_file(path: &std::path::Path) -> (Option<Vec<u8>>, FileState) {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (None, FileState::Absent),
        Err(e) => return (None, FileState::Ignored(format!("cannot open it: {e}"))),
    };
    let why = match file.metadata() {
        Err(e) => format!("cannot stat it: {e}"),
        Ok(m) if !m.is_file() => "not a regular file".into(),
        Ok(m) if m.uid() != 0 => format!("owned by uid {}, not root", m.uid()),
        Ok(m) if m.mode() & 0o022 != 0 => format!("writable by group or others (mode {:o})", m.mode() & 0o7777),
        Ok(m) if m.len() > CONFIG_FILE_MAX => format!("larger than {CONFIG_FILE_MAX} bytes"),
        Ok(_) => {
            let mut text = Vec::new();
            return match file.read_to_end(&mut text) {
                Ok(_) => (Some(text), FileState::Used),
                Err(e) => (None, FileState::Ignored(format!("cannot read it: {e}"))),
            };
        }
    };
    (None, FileState::Ignored(why))
}

/// The `NAME=value` lines of a settings file, with their line numbers, and a report
/// for each line that is neither that, a comment (`#`) nor blank. Spaces around the
/// name and value, and one pair of quotes around the value, are dropped.
pub fn parse_file(text: &[u8]) -> (Vec<Entry>, Vec<BadSetting>) {
    let mut entries = Vec::new();
    let mut bad = Vec::new();
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = trim(raw);
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        let source = Source::File(i + 1);
        let Some(eq) = line.iter().position(|&b| b == b'=') else {
            let value = String::from_utf8_lossy(line).into_owned();
            bad.push(BadSetting { source, name: String::new(), value, why: "expected NAME=value".into() });
            continue;
        };
        let name = String::from_utf8_lossy(trim(&line[..eq])).into_owned();
        let mut value = trim(&line[eq + 1..]);
        if let [q @ (b'"' | b'\''), inner @ .., last] = value {
            if last == q {
                value = inner;
            }
        }
        if NAMES.contains(&name.as_str()) {
            entries.push(Entry { line: i + 1, name, value: value.to_vec() });
        } else {
            let value = String::from_utf8_lossy(value).into_owned();
            bad.push(BadSetting { source, name, value, why: "not a nosparse setting".into() });
        }
    }
    (entries, bad)
}

/// `v` without leading and trailing ASCII whitespace.
fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |i| i + 1);
    &v[start..end]
}

fn text(v: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(v).map_err(|_| "not UTF-8".to_string())
}

/// `1`/`0`, exactly: a switch that half-parses is worse than one that is refused.
pub fn parse_bool(v: &[u8]) -> Result<bool, String> {
    match v {
        b"1" => Ok(true),
        b"0" => Ok(false),
        _ => Err("expected 1 or 0".into()),
    }
}

/// A byte count: digits, optionally followed by K, M, G, T or KiB, MiB, GiB, TiB (all
/// powers of 1024).
pub fn parse_size(v: &str) -> Result<u64, String> {
    const UNITS: [(&str, u32); 8] =
        [("KiB", 10), ("MiB", 20), ("GiB", 30), ("TiB", 40), ("K", 10), ("M", 20), ("G", 30), ("T", 40)];
    let digits_end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(digits_end);
    if digits.is_empty() {
        return Err("expected a number of bytes, such as 67108864, 64M or 64MiB".into());
    }
    let shift = match unit {
        "" => 0,
        _ => match UNITS.iter().find(|(name, _)| *name == unit) {
            Some(&(_, shift)) => shift,
            None => return Err(format!("unknown unit {unit:?}: use K, M, G, T, KiB, MiB, GiB or TiB")),
        },
    };
    let n: u64 = digits.parse().map_err(|_| "too large".to_string())?;
    n.checked_mul(1u64 << shift).filter(|&b| b <= i64::MAX as u64).ok_or_else(|| "too large".to_string())
}

/// `:`-separated filesystem names, or `none`.
pub fn parse_skip_fs(v: &str) -> Result<u32, String> {
    if v == "none" {
        return Ok(0);
    }
    v.split(':').try_fold(0, |bits, name| match FsKind::from_name(name.as_bytes()) {
        Some(kind) => Ok(bits | kind.bit()),
        None => Err(format!("unknown filesystem {name:?}: use ext, xfs, btrfs, tmpfs, ramfs, zfs, nfs, or none")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> (Config, Vec<BadSetting>) {
        Config::from_lookup(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_bytes().to_vec()))
    }

    #[test]
    fn defaults_without_environment() {
        let (cfg, bad) = with(&[]);
        assert_eq!(cfg, Config::default());
        assert!(bad.is_empty());
        assert_eq!(cfg.min_size, 64 << 20);
        assert!(cfg.skips(FsKind::Tmpfs) && cfg.skips(FsKind::Ramfs) && cfg.skips(FsKind::Zfs));
        assert!(!cfg.skips(FsKind::Ext) && !cfg.skips(FsKind::Btrfs));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("3G"), Ok(3 << 30));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
        assert_eq!(parse_size("8388607T"), Ok(8388607 << 40));
        for bad in ["", "M", "-1", "1.5G", "64 M", "64mb", "64MB", "64m", "99999999999999999999", "8388608T", "0x10"] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn every_setting_parses() {
        let (cfg, bad) = with(&[
            ("NOSPARSE_DISABLE", "1"),
            ("NOSPARSE_MIN_SIZE", "1G"),
            ("NOSPARSE_METHOD", "zero"),
            ("NOSPARSE_MATCH", "*.vmem:/data/*"),
            ("NOSPARSE_ON_ERROR", "fail"),
            ("NOSPARSE_LOG", "stderr"),
            ("NOSPARSE_DEBUG", "1"),
            ("NOSPARSE_SKIP_FS", "none"),
        ]);
        assert!(bad.is_empty(), "{bad:?}");
        assert!(cfg.disabled && cfg.debug);
        assert_eq!(cfg.min_size, 1 << 30);
        assert_eq!(cfg.method, Method::Zero);
        assert_eq!(cfg.on_error, OnError::Fail);
        assert_eq!(cfg.log, Sink::Stderr);
        assert_eq!(cfg.skip_fs, 0);
        assert!(cfg.matcher.is_set());
    }

    #[test]
    fn bad_values_keep_defaults_with_one_report_each() {
        let vars = [
            ("NOSPARSE_DISABLE", "yes"),
            ("NOSPARSE_MIN_SIZE", "-5"),
            ("NOSPARSE_METHOD", "Zero"),
            ("NOSPARSE_MATCH", "a::b"),
            ("NOSPARSE_ON_ERROR", ""),
            ("NOSPARSE_LOG", "journal"),
            ("NOSPARSE_DEBUG", "2"),
            ("NOSPARSE_SKIP_FS", "tmpfs:fat"),
        ];
        let (cfg, bad) = with(&vars);
        assert_eq!(cfg, Config::default());
        let names: Vec<_> = bad.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, vars.iter().map(|(k, _)| *k).collect::<Vec<_>>());
    }

    #[test]
    fn matcher_names_and_paths() {
        let m = Matcher::parse(b"*.vmem:/srv/vm/*.img").unwrap();
        let yes = |p: &str| m.matches(&CString::new(p).unwrap());
        assert!(yes("/vm/guest/guest.vmem"));
        assert!(yes("guest.vmem"));
        assert!(yes("/srv/vm/a/b.img"));
        assert!(!yes("/srv/other/b.img"));
        assert!(!yes("/vm/guest.vmem.lck"));
        let by_name = Matcher::parse(b"guest.vmem").unwrap();
        assert!(by_name.matches(c"/vm/guest.vmem"));
        assert!(Matcher::default().matches(c"/anything"));
        assert!(Matcher::parse(b":x").is_err());
    }

    #[test]
    fn triggers_parse() {
        let t = parse_triggers("write,ftruncate").unwrap();
        assert!(t.has(Trigger::Write) && t.has(Trigger::Ftruncate) && !t.has(Trigger::Pwrite));
        assert_eq!(parse_triggers("pwrite"), Ok(Triggers::DEFAULT));
        for bad in ["", "pwrite,", "truncate", "pwrite:write", "PWRITE"] {
            assert!(parse_triggers(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn programs_allow_list_fails_closed() {
        let (cfg, _) = with(&[("NOSPARSE_PROGRAMS", "vmware-vmx*:/opt/vm/bin/*")]);
        assert!(cfg.programs.allows(Some(c"/usr/lib/vmware/bin/vmware-vmx")));
        assert!(cfg.programs.allows(Some(c"/usr/lib/vmware/bin/vmware-vmx.real")));
        assert!(cfg.programs.allows(Some(c"/opt/vm/bin/qemu")));
        assert!(!cfg.programs.allows(Some(c"/usr/bin/bash")));
        assert!(!cfg.programs.allows(None));
        assert!(Config::default().programs.allows(None));
        let (cfg, bad) = with(&[("NOSPARSE_PROGRAMS", "a::b")]);
        assert_eq!(cfg.programs, Programs::Invalid);
        assert!(!cfg.programs.allows(Some(c"/usr/bin/a")));
        assert_eq!(bad.len(), 1);
    }

    #[test]
    fn settings_file_then_environment() {
        let file = b"# nosparse\n\n  NOSPARSE_MIN_SIZE = 1G \nNOSPARSE_MATCH='*.vmem'\nNOSPARSE_METHOD=\"zero\"\n\
                     NOSPARSE_LOG=stderr\nNOSPARSE_LOG=none\nNOSPARSE_DEBUG=yes\nOTHER=1\nnot a line\n";
        let env = |name: &str| (name == "NOSPARSE_METHOD").then(|| b"fallocate".to_vec());
        let (cfg, bad) = Config::from_sources(Some(file), Some(&env));
        assert_eq!(cfg.min_size, 1 << 30);
        assert!(cfg.matcher.matches(c"/vm/a.vmem") && !cfg.matcher.matches(c"/vm/a.vmx"));
        assert_eq!(cfg.method, Method::Fallocate, "the environment overrides the file");
        assert_eq!(cfg.log, Sink::None, "the last line for a key wins");
        let found: Vec<_> = bad.iter().map(|b| (b.source, b.name.as_str())).collect();
        assert_eq!(
            found,
            [(Source::File(9), "OTHER"), (Source::File(10), ""), (Source::File(8), "NOSPARSE_DEBUG")],
            "{bad:?}"
        );
        // Untrusted environment (secure execution): the file alone.
        let (cfg, _) = Config::from_sources(Some(file), None);
        assert_eq!(cfg.method, Method::Zero);
    }

    #[test]
    fn settings_file_must_be_roots_and_not_writable_by_others() {
        let dir = std::env::temp_dir().join(format!("nosparse-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("nosparse.conf");
        assert_eq!(read_config_file(&path).1, FileState::Absent);
        std::fs::write(&path, "NOSPARSE_MIN_SIZE=1G\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let (text, state) = read_config_file(&path);
        assert!(text.is_none() && matches!(state, FileState::Ignored(_)), "{state:?}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        // SAFETY: geteuid cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let (text, state) = read_config_file(&path);
        assert_eq!(text.is_some(), root, "{state:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
