//! Every setting, written once: its name, the launcher's option for it, its default,
//! the values it takes, one line of help, and how a value updates the [`Config`] (as
//! ripgrep's flags own their `update`). The library's parser, the launcher's options
//! and `--help`, the man pages, the fuzz target and the README's settings table
//! (checked by a test) all read this table; code names a setting by its row
//! (`settings::LOG.name`), never by a string.
//!
//! Everything here is plain `core`: no allocation, so the library can use it from any
//! thread, in a signal handler, on a small stack.

use crate::fs::FsKind;

/// A `:`-separated list of globs, in a fixed buffer; empty when not set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Globs {
    len: u16,
    buf: [u8; GLOBS_MAX],
}

impl Globs {
    pub const NONE: Globs = Globs { len: 0, buf: [0; GLOBS_MAX] };

    /// A checked list (see [`check_globs`]).
    pub fn parse(v: &[u8]) -> Result<Globs, &'static str> {
        check_globs(v)?;
        let mut g = Globs::NONE;
        for (d, s) in g.buf.iter_mut().zip(v) {
            *d = *s;
        }
        g.len = v.len().min(GLOBS_MAX) as u16;
        Ok(g)
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or(&[])
    }

    pub fn is_set(&self) -> bool {
        self.len != 0
    }

    /// Whether `path` matches (always, when no glob is set).
    pub fn matches(&self, path: &[u8]) -> bool {
        !self.is_set() || crate::glob::any_matches(self.as_bytes(), path)
    }
}

/// `NOSPARSE_PROGRAMS`: which programs the library acts in, matched against the path
/// of the running executable (`/proc/self/exe`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Programs {
    /// Not set: every program.
    Every,
    /// The globs in [`Config::programs_globs`].
    Only,
    /// Set, but unusable: no program.
    Invalid,
}

/// The library's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub disabled: bool,
    pub min_size: u64,
    pub method: Method,
    pub matcher: Globs,
    /// `NOSPARSE_MATCH` with each glob's literal directory part resolved (symbolic links
    /// followed) when the settings were read, where that differs: the kernel reports a
    /// file's path resolved.
    pub matcher_resolved: Globs,
    pub on_error: OnError,
    pub triggers: Triggers,
    pub programs: Programs,
    pub programs_globs: Globs,
    pub log: Sink,
    pub debug: bool,
    /// Bits of [`FsKind::bit`] for filesystems to leave alone.
    pub skip_fs: u32,
}

/// The defaults of [`SETTINGS`], as values (a test checks they are the table's).
pub const DEFAULT: Config = Config {
    disabled: false,
    min_size: MIN_SIZE_DEFAULT,
    method: Method::Auto,
    matcher: Globs::NONE,
    matcher_resolved: Globs::NONE,
    on_error: OnError::Passthrough,
    triggers: Triggers::DEFAULT,
    programs: Programs::Every,
    programs_globs: Globs::NONE,
    log: Sink::Syslog,
    debug: false,
    skip_fs: FsKind::Tmpfs.bit() | FsKind::Ramfs.bit() | FsKind::Zfs.bit(),
};

impl Default for Config {
    fn default() -> Self {
        DEFAULT
    }
}

/// One setting.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    /// The environment variable and settings-file key, e.g. `NOSPARSE_MIN_SIZE`.
    pub name: &'static str,
    /// The launcher's long option (without `--`); `None`: the launcher has none.
    pub option: Option<&'static str>,
    /// The option is a switch (`--debug` sets `1`); otherwise it takes a value.
    pub switch: bool,
    /// The placeholder for the option's value in `--help`, e.g. `SIZE`.
    pub metavar: &'static str,
    /// The default, as a user would write it.
    pub default: &'static str,
    /// The values it takes, in a few words.
    pub values: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// Parses a (non-empty) value into the settings it sets; the reason when it cannot.
    pub update: fn(&mut Config, &[u8]) -> Result<(), &'static str>,
}

impl Setting {
    /// Applies `value`; on error the settings keep their values (except
    /// `NOSPARSE_PROGRAMS`, which becomes [`Programs::Invalid`]: a bad list means none).
    pub fn apply(&self, cfg: &mut Config, value: &[u8]) -> Result<(), &'static str> {
        if value.is_empty() {
            if self.name == PROGRAMS.name {
                cfg.programs = Programs::Invalid;
            }
            return Err("empty");
        }
        (self.update)(cfg, value)
    }

    /// Whether `value` is acceptable; the reason when it is not.
    pub fn check(&self, value: &[u8]) -> Result<(), &'static str> {
        self.apply(&mut DEFAULT.clone(), value)
    }
}

/// Smallest new hole worth preallocating (`NOSPARSE_MIN_SIZE`'s default), in bytes.
pub const MIN_SIZE_DEFAULT: u64 = 64 << 20;

/// Filesystems skipped unless `NOSPARSE_SKIP_FS` says otherwise: preallocating on
/// tmpfs/ramfs pins RAM, and ZFS (copy-on-write) only reserves.
pub const SKIP_FS_DEFAULT: &str = "tmpfs:ramfs:zfs";

/// Each list of values, written once: for the table (`values`) and for the parser's
/// error (`expected ...`).
macro_rules! values {
    (bool) => {
        "1 or 0 (or yes/no, true/false, on/off, in any case)"
    };
    (method) => {
        "auto, fallocate, zero or off"
    };
    (on_error) => {
        "passthrough or fail"
    };
    (log) => {
        "syslog, stderr or none"
    };
    (triggers) => {
        "pwrite, ftruncate, write, ','-separated"
    };
    (skip_fs) => {
        "':'-separated: ext, xfs, btrfs, tmpfs, ramfs, zfs, nfs, overlay, fuse; or none"
    };
}

/// The settings, in the order they are applied; each row is also a constant of its
/// own (`settings::LOG.name`), so no code names a setting by a string.
pub static SETTINGS: [Setting; 10] =
    [DISABLE, PROGRAMS, MIN_SIZE, METHOD, MATCH, TRIGGERS, ON_ERROR, LOG, DEBUG, SKIP_FS];

pub const DISABLE: Setting = Setting {
    name: "NOSPARSE_DISABLE",
    option: None,
    switch: true,
    metavar: "",
    default: "0",
    values: values!(bool),
    help: "make the library inert",
    update: |c, v| parse_bool(v).map(|b| c.disabled = b),
};

pub const PROGRAMS: Setting = Setting {
    name: "NOSPARSE_PROGRAMS",
    option: None,
    switch: false,
    metavar: "GLOBS",
    default: "every program",
    values: "':'-separated globs on the program's path or name",
    help: "the programs the library acts in (in /etc/nosparse.conf); a bad list means none",
    update: |c, v| match Globs::parse(v) {
        Ok(g) => {
            c.programs = Programs::Only;
            c.programs_globs = g;
            Ok(())
        }
        Err(why) => {
            c.programs = Programs::Invalid;
            Err(why)
        }
    },
};

pub const MIN_SIZE: Setting = Setting {
    name: "NOSPARSE_MIN_SIZE",
    option: Some("min-size"),
    switch: false,
    metavar: "SIZE",
    default: "64MiB",
    values: "bytes, with K/M/G/T or KiB/MiB/GiB/TiB",
    help: "the smallest new hole worth preallocating (for a new file: its size)",
    update: |c, v| parse_size(v).map(|n| c.min_size = n),
};

pub const METHOD: Setting = Setting {
    name: "NOSPARSE_METHOD",
    option: Some("method"),
    switch: false,
    metavar: "METHOD",
    default: "auto",
    values: values!(method),
    help: "how to allocate: auto is fallocate, and zeros where unsupported; off only logs",
    update: |c, v| parse_method(v).map(|m| c.method = m),
};

pub const MATCH: Setting = Setting {
    name: "NOSPARSE_MATCH",
    option: Some("match"),
    switch: false,
    metavar: "GLOBS",
    default: "every path",
    values: "':'-separated globs, e.g. '*.vmem'",
    help: "only files whose path (a glob with '/') or name matches",
    update: |c, v| Globs::parse(v).map(|g| c.matcher = g),
};

pub const TRIGGERS: Setting = Setting {
    name: "NOSPARSE_TRIGGERS",
    option: Some("triggers"),
    switch: false,
    metavar: "LIST",
    default: "pwrite",
    values: values!(triggers),
    help: "the calls that can create a file sparse",
    update: |c, v| parse_triggers(v).map(|t| c.triggers = t),
};

pub const ON_ERROR: Setting = Setting {
    name: "NOSPARSE_ON_ERROR",
    option: Some("on-error"),
    switch: false,
    metavar: "MODE",
    default: "passthrough",
    values: values!(on_error),
    help: "when preallocation fails: let the call through, or fail it with that errno",
    update: |c, v| parse_on_error(v).map(|o| c.on_error = o),
};

pub const LOG: Setting = Setting {
    name: "NOSPARSE_LOG",
    option: Some("log"),
    switch: false,
    metavar: "SINK",
    default: "syslog",
    values: values!(log),
    help: "where the one line per preallocated file goes",
    update: |c, v| parse_sink(v).map(|l| c.log = l),
};

pub const DEBUG: Setting = Setting {
    name: "NOSPARSE_DEBUG",
    option: Some("debug"),
    switch: true,
    metavar: "",
    default: "0",
    values: values!(bool),
    help: "log every decision, including calls left alone and why",
    update: |c, v| parse_bool(v).map(|b| c.debug = b),
};

pub const SKIP_FS: Setting = Setting {
    name: "NOSPARSE_SKIP_FS",
    option: Some("skip-fs"),
    switch: false,
    metavar: "LIST",
    default: SKIP_FS_DEFAULT,
    values: values!(skip_fs),
    help: "filesystems to leave alone (overlay is judged by its upper layer's)",
    update: |c, v| parse_skip_fs(v).map(|bits| c.skip_fs = bits),
};

/// The setting called `name`.
pub fn find(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// How the file is allocated (`NOSPARSE_METHOD`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `fallocate`, and zeros written where the filesystem does not support it.
    Auto,
    /// `fallocate` only; where unsupported the file stays sparse.
    Fallocate,
    /// Zeros written into the new range.
    Zero,
    /// Nothing allocated; the decision is logged.
    Off,
}

/// What happens when preallocation fails (`NOSPARSE_ON_ERROR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnError {
    /// The call goes through as if the library were not there.
    Passthrough,
    /// The call returns -1 with the preallocation's errno.
    Fail,
}

/// Where log lines go (`NOSPARSE_LOG`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    Syslog,
    Stderr,
    None,
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

impl core::fmt::Display for Trigger {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
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

/// Longest list of globs (`NOSPARSE_MATCH`, `NOSPARSE_PROGRAMS`), in bytes.
pub const GLOBS_MAX: usize = 512;

/// `1`/`0`, and the spellings people write for them (`true`/`false`, `yes`/`no`,
/// `on`/`off`, in any case). Anything else is refused whole: a switch that half-parses
/// (`NOSPARSE_DISABLE=2`) is worse than one that is refused and logged.
pub fn parse_bool(v: &[u8]) -> Result<bool, &'static str> {
    const TRUE: [&[u8]; 4] = [b"1", b"true", b"yes", b"on"];
    const FALSE: [&[u8]; 4] = [b"0", b"false", b"no", b"off"];
    if TRUE.iter().any(|t| v.eq_ignore_ascii_case(t)) {
        Ok(true)
    } else if FALSE.iter().any(|f| v.eq_ignore_ascii_case(f)) {
        Ok(false)
    } else {
        Err(concat!("expected ", values!(bool)))
    }
}

/// A byte count: digits, optionally followed by K, M, G, T or KiB, MiB, GiB, TiB (all
/// powers of 1024), at most `i64::MAX`.
pub fn parse_size(v: &[u8]) -> Result<u64, &'static str> {
    const UNITS: [(&[u8], u32); 8] =
        [(b"KiB", 10), (b"MiB", 20), (b"GiB", 30), (b"TiB", 40), (b"K", 10), (b"M", 20), (b"G", 30), (b"T", 40)];
    let digits_end = v.iter().position(|c| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(digits_end);
    if digits.is_empty() {
        return Err("expected a number of bytes, such as 67108864, 64M or 64MiB");
    }
    let shift = match unit {
        [] => 0,
        _ => match UNITS.iter().find(|(name, _)| *name == unit) {
            Some(&(_, shift)) => shift,
            None => return Err("unknown unit: use K, M, G, T, KiB, MiB, GiB or TiB"),
        },
    };
    let mut n: u64 = 0;
    for d in digits {
        n = n.checked_mul(10).and_then(|n| n.checked_add(u64::from(d - b'0'))).ok_or("too large")?;
    }
    n.checked_mul(1u64 << shift).filter(|&b| b <= i64::MAX as u64).ok_or("too large")
}

/// `auto`, `fallocate`, `zero` or `off`.
pub fn parse_method(v: &[u8]) -> Result<Method, &'static str> {
    Ok(match v {
        b"auto" => Method::Auto,
        b"fallocate" => Method::Fallocate,
        b"zero" => Method::Zero,
        b"off" => Method::Off,
        _ => return Err(concat!("expected ", values!(method))),
    })
}

/// `passthrough` or `fail`.
pub fn parse_on_error(v: &[u8]) -> Result<OnError, &'static str> {
    Ok(match v {
        b"passthrough" => OnError::Passthrough,
        b"fail" => OnError::Fail,
        _ => return Err(concat!("expected ", values!(on_error))),
    })
}

/// `syslog`, `stderr` or `none`.
pub fn parse_sink(v: &[u8]) -> Result<Sink, &'static str> {
    Ok(match v {
        b"syslog" => Sink::Syslog,
        b"stderr" => Sink::Stderr,
        b"none" => Sink::None,
        _ => return Err(concat!("expected ", values!(log))),
    })
}

/// `,`-separated trigger names, e.g. `pwrite,ftruncate`.
pub fn parse_triggers(v: &[u8]) -> Result<Triggers, &'static str> {
    v.split(|&b| b == b',').try_fold(Triggers(0), |set, name| {
        match Trigger::ALL.iter().find(|t| t.name().as_bytes() == name) {
            Some(t) => Ok(Triggers(set.0 | t.bit())),
            None => Err(concat!("unknown trigger: expected ", values!(triggers))),
        }
    })
}

/// `:`-separated filesystem names, or `none`: a set of [`FsKind::bit`]s.
pub fn parse_skip_fs(v: &[u8]) -> Result<u32, &'static str> {
    if v == b"none" {
        return Ok(0);
    }
    v.split(|&b| b == b':').try_fold(0, |bits, name| match FsKind::from_name(name) {
        Some(kind) => Ok(bits | kind.bit()),
        None => Err(concat!("unknown filesystem: expected ", values!(skip_fs))),
    })
}

/// A `:`-separated list of globs: no empty pattern, no NUL, at most [`GLOBS_MAX`] bytes.
pub fn check_globs(v: &[u8]) -> Result<(), &'static str> {
    if v.len() > GLOBS_MAX {
        return Err("longer than 512 bytes");
    }
    if v.contains(&0) {
        return Err("a NUL byte");
    }
    if v.split(|&b| b == b':').any(<[u8]>::is_empty) {
        return Err("an empty pattern (two ':' in a row, or one at an end)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_passes_its_own_check() {
        for s in &SETTINGS {
            let default = match s.name {
                "NOSPARSE_PROGRAMS" | "NOSPARSE_MATCH" => "*",
                _ => s.default,
            };
            assert_eq!(s.check(default.as_bytes()), Ok(()), "{}", s.name);
        }
        assert_eq!(parse_size(b"64MiB"), Ok(MIN_SIZE_DEFAULT));
    }

    #[test]
    fn names_and_options_are_unique() {
        for (i, a) in SETTINGS.iter().enumerate() {
            for b in &SETTINGS[i + 1..] {
                assert_ne!(a.name, b.name);
                assert!(a.option.is_none() || a.option != b.option);
            }
            assert!(a.switch || !a.metavar.is_empty() || a.option.is_none(), "{}", a.name);
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size(b"0"), Ok(0));
        assert_eq!(parse_size(b"4096"), Ok(4096));
        assert_eq!(parse_size(b"64M"), Ok(64 << 20));
        assert_eq!(parse_size(b"3G"), Ok(3 << 30));
        assert_eq!(parse_size(b"1TiB"), Ok(1 << 40));
        assert_eq!(parse_size(b"8388607T"), Ok(8388607 << 40));
        for bad in ["", "M", "-1", "1.5G", "64 M", "64mb", "64MB", "64m", "99999999999999999999", "8388608T", "0x10"] {
            assert!(parse_size(bad.as_bytes()).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn lists() {
        let t = parse_triggers(b"write,ftruncate").unwrap();
        assert!(t.has(Trigger::Write) && t.has(Trigger::Ftruncate) && !t.has(Trigger::Pwrite));
        assert_eq!(parse_triggers(b"pwrite"), Ok(Triggers::DEFAULT));
        for bad in ["", "pwrite,", "truncate", "pwrite:write", "PWRITE"] {
            assert!(parse_triggers(bad.as_bytes()).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(parse_skip_fs(b"none"), Ok(0));
        assert!(parse_skip_fs(b"overlay:fuse").is_ok());
        assert!(parse_skip_fs(b"tmpfs:fat").is_err());
        assert!(check_globs(b"*.vmem:/srv/*").is_ok());
        for bad in [&b"a::b"[..], b":x", b"x:", b"", b"a\0b", &[b'x'; GLOBS_MAX + 1]] {
            assert!(check_globs(bad).is_err(), "{bad:?}");
        }
    }
}
