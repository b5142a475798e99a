//! Settings, read once from `NOSPARSE_*` environment variables.
//!
//! A bad value is reported once and its default kept: a setting can never break the
//! program the library is loaded into. In secure execution (setuid programs) the
//! environment is not trusted and only the defaults apply.

use crate::fs::FsKind;
use crate::log::Sink;
use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;

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
            log: Sink::Syslog,
            debug: false,
            skip_fs: parse_skip_fs(SKIP_FS_DEFAULT).expect("the default parses"),
        }
    }
}

/// One setting that could not be used, for the one warning it gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadSetting {
    pub name: &'static str,
    pub value: String,
    pub why: String,
}

impl Config {
    /// Builds the settings from `get`, a lookup of environment variables. Returns the
    /// settings and one entry for each value that was rejected (its default is kept).
    pub fn from_lookup(get: impl Fn(&str) -> Option<Vec<u8>>) -> (Config, Vec<BadSetting>) {
        let mut cfg = Config::default();
        let mut bad = Vec::new();
        let mut setting = |name: &'static str, apply: &mut dyn FnMut(&[u8]) -> Result<(), String>| {
            if let Some(value) = get(name) {
                let result = if value.is_empty() { Err("empty".to_string()) } else { apply(&value) };
                if let Err(why) = result {
                    let value = String::from_utf8_lossy(&value).into_owned();
                    bad.push(BadSetting { name, value, why });
                }
            }
        };
        setting("NOSPARSE_DISABLE", &mut |v| parse_bool(v).map(|b| cfg.disabled = b));
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
        (cfg, bad)
    }

    /// The settings for this process: from the environment, or the defaults in secure
    /// execution. `secure` is set when NOSPARSE_* variables were present but ignored.
    pub fn from_env() -> (Config, Vec<BadSetting>, bool) {
        let lookup = |name: &str| std::env::var_os(name).map(|v| v.as_bytes().to_vec());
        if crate::sys::secure_execution() {
            let ignored = std::env::vars_os().any(|(k, _)| k.as_bytes().starts_with(b"NOSPARSE_"));
            return (Config::default(), Vec::new(), ignored);
        }
        let (cfg, bad) = Config::from_lookup(lookup);
        (cfg, bad, false)
    }

    /// Whether files on `fs` are left alone.
    pub fn skips(&self, fs: FsKind) -> bool {
        self.skip_fs & fs.bit() != 0
    }
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
    v.split(':').try_fold(0, |bits, name| match FsKind::from_name(name) {
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
        let names: Vec<_> = bad.iter().map(|b| b.name).collect();
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
}
