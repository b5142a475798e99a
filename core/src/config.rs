//! The library's settings (see [`crate::settings`] for the table): from the system-wide
//! file `/etc/nosparse.conf`, then from the environment, which overrides it key by key.
//! Read at the first candidate call, never at load, with no allocation: values live in
//! fixed buffers, and the file is read into scratch memory the caller provides.
//!
//! A bad value is reported once and the default kept: a setting can never break the
//! program the library is loaded into. In secure execution (setuid programs) the
//! environment is not trusted. The file is used only when root owns it and no one else
//! can write it; a file that is present but not trusted, or a bad `NOSPARSE_PROGRAMS`,
//! makes the library act in no program, silently (fail closed: with
//! `/etc/ld.so.preload` a warning would come from every process on the host).

use crate::fs::FsKind;
use crate::log::{Ident, Level, Line};
pub use crate::settings::{Config, Globs, Programs, DEFAULT};
use crate::settings::{OnError, GLOBS_MAX, SETTINGS};
use crate::sys;

/// The system-wide settings file.
pub const CONFIG_FILE: &str = "/etc/nosparse.conf";
const CONFIG_FILE_C: &[u8] = b"/etc/nosparse.conf\0";

/// A settings file larger than this is not read: it cannot be one written by hand.
pub const CONFIG_FILE_MAX: usize = 64 << 10;

/// Where a setting came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Environment,
    /// The settings file, at this line.
    File(u32),
}

/// One value that could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bad<'a> {
    pub source: Source,
    /// The setting's name; empty for a file line that names none.
    pub name: &'a [u8],
    pub value: &'a [u8],
    pub why: &'static str,
}

/// The bad values found, up to a fixed number (more are counted, not kept).
pub struct BadList<'a> {
    pub items: [Option<Bad<'a>>; BAD_MAX],
    pub more: u32,
}

/// How many bad values are reported one by one.
pub const BAD_MAX: usize = 12;

impl<'a> BadList<'a> {
    pub fn new() -> Self {
        BadList { items: [None; BAD_MAX], more: 0 }
    }

    fn push(&mut self, b: Bad<'a>) {
        match self.items.iter_mut().find(|i| i.is_none()) {
            Some(slot) => *slot = Some(b),
            None => self.more = self.more.saturating_add(1),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Bad<'a>> {
        self.items.iter().flatten()
    }
}

impl Default for BadList<'_> {
    fn default() -> Self {
        Self::new()
    }
}

/// The settings file, as found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileState {
    Absent,
    Used,
    /// Present but not used, and why (not root's, writable by others, unreadable...).
    Untrusted(&'static str),
    /// Could not be read for a reason that passes (no descriptor or memory free, a
    /// signal): the settings are not read yet, and the next call tries again.
    Transient,
}

/// Errors that say "not now" rather than "no": reading the settings is tried again later.
pub fn transient(e: crate::error::Errno) -> bool {
    matches!(e.0, libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EINTR | libc::EAGAIN | libc::ENOBUFS)
}

impl Config {
    /// Applies the value of the setting called `name`; on error the setting keeps its
    /// value (except `NOSPARSE_PROGRAMS`, which becomes [`Programs::Invalid`]).
    pub fn apply(&mut self, name: &[u8], value: &[u8]) -> Result<(), &'static str> {
        match SETTINGS.iter().find(|s| s.name.as_bytes() == name) {
            Some(setting) => setting.apply(self, value),
            None => Err("not a nosparse setting"),
        }
    }

    /// Applies a settings file's lines in order (so the last line for a key wins).
    pub fn apply_file<'a>(&mut self, text: &'a [u8], bad: &mut BadList<'a>) {
        for_each_line(text, |line, name, value| {
            let source = Source::File(line);
            let result = match name {
                None => Err("expected NAME=value"),
                Some(name) => self.apply(name, value),
            };
            if let Err(why) = result {
                bad.push(Bad { source, name: name.unwrap_or(&[]), value, why });
            }
        });
    }

    /// Applies the settings `get` finds by name (the environment's, or a test's).
    pub fn apply_env<'a>(&mut self, get: impl Fn(&str) -> Option<&'a [u8]>, bad: &mut BadList<'a>) {
        for s in &SETTINGS {
            if let Some(value) = get(s.name) {
                if let Err(why) = self.apply(s.name.as_bytes(), value) {
                    bad.push(Bad { source: Source::Environment, name: s.name.as_bytes(), value, why });
                }
            }
        }
    }

    /// Whether `path` matches `NOSPARSE_MATCH` (always, when it is not set).
    pub fn matches(&self, path: &[u8]) -> bool {
        self.matcher.matches(path) || (self.matcher_resolved.is_set() && self.matcher_resolved.matches(path))
    }

    /// Whether a preallocation that fails fails the call (`NOSPARSE_ON_ERROR=fail`).
    pub fn fails(&self) -> bool {
        self.on_error == OnError::Fail
    }

    /// Whether files on `fs` are left alone.
    pub fn skips(&self, fs: FsKind) -> bool {
        self.skip_fs & fs.bit() != 0
    }

    /// Whether the program at `exe` (None: unknown) is one the library acts in.
    pub fn allows_program(&self, exe: Option<&[u8]>) -> bool {
        match (self.programs, exe) {
            (Programs::Every, _) => true,
            (Programs::Only, Some(exe)) => self.programs_globs.matches(exe),
            _ => false,
        }
    }
}

/// Calls `f(line number, name, value)` for each line of a settings file that is not
/// blank or a `#` comment; `name` is None for a line without `=`. Spaces around the
/// name and value, and one pair of quotes around the value, are dropped.
pub fn for_each_line<'a>(text: &'a [u8], mut f: impl FnMut(u32, Option<&'a [u8]>, &'a [u8])) {
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = trim(raw);
        if line.is_empty() || line.first() == Some(&b'#') {
            continue;
        }
        let number = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let Some(eq) = line.iter().position(|&b| b == b'=') else {
            f(number, None, line);
            continue;
        };
        let (name, value) = (trim(line.get(..eq).unwrap_or(&[])), trim(line.get(eq + 1..).unwrap_or(&[])));
        let value = match value {
            [q @ (b'"' | b'\''), inner @ .., last] if last == q => inner,
            _ => value,
        };
        f(number, Some(name), value);
    }
}

/// `v` without leading and trailing ASCII whitespace.
fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |i| i + 1);
    v.get(start..end).unwrap_or(&[])
}

/// Why a settings file with this status may not be used, if it may not.
pub fn untrusted(st: &sys::Stat) -> Option<&'static str> {
    if !st.is_regular() {
        Some("not a regular file")
    } else if st.uid != 0 {
        Some("not owned by root")
    } else if st.mode & 0o022 != 0 {
        Some("writable by group or others")
    } else if st.size < 0 || st.size as u64 > CONFIG_FILE_MAX as u64 {
        Some("larger than 64 KiB")
    } else {
        None
    }
}

/// Reads [`CONFIG_FILE`] into `buf` if it can be trusted; returns its text.
pub fn read_file(buf: &mut [u8]) -> (FileState, &[u8]) {
    // O_NONBLOCK: a FIFO planted there must not hang the program.
    let fd = match sys::open(CONFIG_FILE_C, libc::O_RDONLY | libc::O_NONBLOCK) {
        Ok(fd) => fd,
        Err(e) if e.0 == libc::ENOENT || e.0 == libc::ENOTDIR => return (FileState::Absent, &[]),
        Err(e) if transient(e) => return (FileState::Transient, &[]),
        Err(_) => return (FileState::Untrusted("cannot be opened"), &[]),
    };
    match sys::fstat(fd.0) {
        Err(e) if transient(e) => return (FileState::Transient, &[]),
        Err(_) => return (FileState::Untrusted("cannot be examined"), &[]),
        Ok(st) => {
            if let Some(why) = untrusted(&st) {
                return (FileState::Untrusted(why), &[]);
            }
        }
    }
    // One byte more than the largest file: a file that fills it is too large.
    let len = match sys::read_all(fd.0, buf) {
        Ok(len) if len < buf.len() => len,
        Ok(_) => return (FileState::Untrusted("larger than 64 KiB"), &[]),
        Err(e) if transient(e) => return (FileState::Transient, &[]),
        Err(_) => return (FileState::Untrusted("cannot be read"), &[]),
    };
    (FileState::Used, buf.get(..len).unwrap_or(&[]))
}

/// The value of the environment variable `name`, from `environ` (what getenv reads,
/// without its locale and lock-free guarantees to worry about: a plain scan).
pub fn env_var(name: &str) -> Option<&'static [u8]> {
    extern "C" {
        static environ: *const *const core::ffi::c_char;
    }
    // SAFETY: environ is a NULL-terminated array of NUL-terminated strings that lives
    // as long as the process (a program that edits it concurrently races getenv too).
    let mut p = unsafe { environ };
    if p.is_null() {
        return None;
    }
    loop {
        // SAFETY: p points into the array, which ends with NULL.
        let entry = unsafe { *p };
        if entry.is_null() {
            return None;
        }
        // SAFETY: entry is a NUL-terminated string.
        let bytes = unsafe { core::ffi::CStr::from_ptr(entry) }.to_bytes();
        if let Some(value) = bytes.strip_prefix(name.as_bytes()).and_then(|r| r.strip_prefix(b"=")) {
            return Some(value);
        }
        // SAFETY: not yet at the terminating NULL.
        p = unsafe { p.add(1) };
    }
}

/// Whether any `NOSPARSE_*` variable is set in the environment.
pub fn env_has_settings() -> bool {
    SETTINGS.iter().any(|s| env_var(s.name).is_some())
}

/// The settings could not be read just now (see [`FileState::Transient`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotNow;

/// Room [`load`] needs: the settings file, and `NOSPARSE_MATCH` being resolved.
pub const LOAD_BUF: usize = CONFIG_FILE_MAX + 1;

/// Reads the settings file and the environment into `cfg` (which starts as [`DEFAULT`]);
/// with `report`, logs what was wrong with them. `exe_link` is the program's
/// `/proc/PID/exe` (NUL-terminated), for `NOSPARSE_PROGRAMS`; `io` and `exe` are
/// scratch space. `Err`: a passing failure (see [`FileState::Transient`]): try later.
pub fn load(cfg: &mut Config, io: &mut [u8], exe: &mut [u8], exe_link: &[u8], report: bool) -> Result<(), NotNow> {
    let secure = sys::secure_execution();
    let (state, text) = read_file(io);
    let mut bad = BadList::new();
    match state {
        FileState::Transient => return Err(NotNow),
        FileState::Untrusted(_) => {
            cfg.disabled = true;
            return Ok(());
        }
        FileState::Absent | FileState::Used => {}
    }
    cfg.apply_file(text, &mut bad);
    if !secure {
        // A closure, not the function: it lets the 'static values shorten to the file's.
        #[allow(clippy::redundant_closure)]
        cfg.apply_env(|name| env_var(name), &mut bad);
    }
    if cfg.programs != Programs::Every {
        let exe_path = match sys::readlink(exe_link, exe) {
            Ok(n) if n < exe.len() => exe.get(..n),
            Err(e) if transient(e) => return Err(NotNow),
            _ => None,
        };
        if !cfg.allows_program(exe_path) {
            // Not a program the library is for, or a bad list: inert and silent, since
            // with /etc/ld.so.preload that is every other process on the host.
            cfg.disabled = true;
            return Ok(());
        }
    }
    if report {
        report_bad(cfg, &bad, secure);
    }
    if cfg.matcher.is_set() {
        cfg.matcher_resolved = resolve(&cfg.matcher, exe);
    }
    Ok(())
}

/// Logs each bad value, once per process.
fn report_bad(cfg: &Config, bad: &BadList, secure: bool) {
    let mut line = [0u8; 256];
    for b in bad.iter() {
        let mut l = Line::new(&mut line, cfg.log, Level::Warning, Ident::Own);
        l.lit("ignoring ");
        match b.name {
            [] => l.lit("the line"),
            name => l.text(name),
        };
        l.lit("=\"").text(b.value).lit("\" (");
        match b.source {
            Source::Environment => l.lit("environment"),
            Source::File(n) => l.lit(CONFIG_FILE).lit(":").num(u64::from(n)),
        };
        l.lit("): ").lit(b.why).lit("; keeping the default").emit();
    }
    if bad.more > 0 {
        let mut l = Line::new(&mut line, cfg.log, Level::Warning, Ident::Own);
        l.lit("more bad settings not shown: ").num(u64::from(bad.more)).emit();
    }
    if secure && env_has_settings() {
        let mut l = Line::new(&mut line, cfg.log, Level::Info, Ident::Own);
        l.lit("secure-execution program: NOSPARSE_* settings from the environment ignored").emit();
    }
}

/// The globs of `list` with their literal directory part resolved where a symbolic link
/// makes it differ (`/vm/*.vmem` with `/vm` → `/data/vm` gives `/data/vm/*.vmem`);
/// empty when none differs. `buf` is scratch space for one path (at least 4 KiB).
pub fn resolve(list: &Globs, buf: &mut [u8]) -> Globs {
    let mut out = [0u8; GLOBS_MAX];
    let mut len = 0;
    let mut changed = false;
    for glob in list.as_bytes().split(|&b| b == b':') {
        let resolved = resolve_one(glob, buf);
        changed |= resolved.is_some();
        let (dir, rest): (&[u8], &[u8]) = match resolved {
            Some((dir_len, split)) => (buf.get(..dir_len).unwrap_or(&[]), glob.get(split..).unwrap_or(&[])),
            None => (glob, &[]),
        };
        let sep: &[u8] = if len == 0 { b"" } else { b":" };
        for &c in sep.iter().chain(dir).chain(rest) {
            match out.get_mut(len) {
                Some(slot) => *slot = c,
                // Too long to keep whole: match by the globs as written only.
                None => return Globs::NONE,
            }
            len += 1;
        }
    }
    match changed {
        true => Globs::parse(out.get(..len).unwrap_or(&[])).unwrap_or(Globs::NONE),
        false => Globs::NONE,
    }
}

/// For a glob with a `/`: its literal directory prefix (up to the last `/` before the
/// first wildcard) resolved into `buf`, when that differs from how it is written.
/// Returns the resolved length and where the rest of the glob starts.
fn resolve_one(glob: &[u8], buf: &mut [u8]) -> Option<(usize, usize)> {
    let wild = glob.iter().position(|c| matches!(c, b'*' | b'?' | b'[' | b'\\')).unwrap_or(glob.len());
    let split = glob.get(..wild)?.iter().rposition(|&c| c == b'/')?;
    let dir = glob.get(..split.max(1))?;
    // "/" resolves to itself: nothing to open (and no descriptor a fork could inherit).
    if dir.first() != Some(&b'/') || dir == b"/" {
        return None;
    }
    let mut c_dir = [0u8; 512];
    for (d, s) in c_dir.iter_mut().zip(dir) {
        *d = *s;
    }
    let handle = sys::open(c_dir.get(..dir.len() + 1)?, libc::O_PATH | libc::O_DIRECTORY).ok()?;
    let mut link = [0u8; 32];
    let n = crate::fs::proc_path(&mut link, b"/proc/self/fd/", handle.0);
    let got = sys::readlink(link.get(..n)?, buf).ok().filter(|&g| g < buf.len())?;
    let resolved = buf.get(..got)?;
    // "/" resolves to "/", which needs no second copy; the rest starts with its '/'.
    let (resolved_len, rest_at) = if resolved == b"/" { (0, split) } else { (got, split) };
    (buf.get(..resolved_len)? != dir).then_some((resolved_len, rest_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Method, Sink};

    fn with(vars: &[(&'static str, &'static str)]) -> (Config, Vec<&'static [u8]>) {
        let mut cfg = DEFAULT;
        let mut bad = BadList::new();
        cfg.apply_env(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_bytes()), &mut bad);
        let names = bad.iter().map(|b| b.name).collect();
        (cfg, names)
    }

    #[test]
    fn defaults_match_the_table() {
        let mut cfg = DEFAULT;
        for s in &SETTINGS {
            if !matches!(s.name, "NOSPARSE_PROGRAMS" | "NOSPARSE_MATCH") {
                cfg.apply(s.name.as_bytes(), s.default.as_bytes()).unwrap();
            }
        }
        assert_eq!(cfg, DEFAULT);
        assert!(cfg.skips(FsKind::Tmpfs) && cfg.skips(FsKind::Ramfs) && cfg.skips(FsKind::Zfs));
        assert!(!cfg.skips(FsKind::Ext) && !cfg.skips(FsKind::Btrfs) && !cfg.skips(FsKind::Overlay));
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
        assert_eq!(
            (cfg.min_size, cfg.method, cfg.on_error, cfg.log, cfg.skip_fs),
            (1 << 30, Method::Zero, OnError::Fail, Sink::Stderr, 0)
        );
        assert!(cfg.matcher.matches(b"/x/a.vmem") && !cfg.matcher.matches(b"/x/a.vmx"));
    }

    #[test]
    fn bad_values_keep_defaults_with_one_report_each() {
        let vars = [
            ("NOSPARSE_DISABLE", "maybe"),
            ("NOSPARSE_MIN_SIZE", "-5"),
            ("NOSPARSE_METHOD", "Zero"),
            ("NOSPARSE_MATCH", "a::b"),
            ("NOSPARSE_ON_ERROR", ""),
            ("NOSPARSE_LOG", "journal"),
            ("NOSPARSE_DEBUG", "2"),
            ("NOSPARSE_SKIP_FS", "tmpfs:fat"),
        ];
        let (cfg, bad) = with(&vars);
        assert_eq!(cfg, DEFAULT);
        assert_eq!(bad, vars.iter().map(|(k, _)| k.as_bytes()).collect::<Vec<_>>());
    }

    #[test]
    fn programs_allow_list_fails_closed() {
        let (cfg, _) = with(&[("NOSPARSE_PROGRAMS", "vmware-vmx*:/opt/vm/bin/*")]);
        assert!(cfg.allows_program(Some(b"/usr/lib/vmware/bin/vmware-vmx")));
        assert!(cfg.allows_program(Some(b"/opt/vm/bin/qemu")));
        assert!(!cfg.allows_program(Some(b"/usr/bin/bash")));
        assert!(!cfg.allows_program(None));
        assert!(DEFAULT.allows_program(None));
        for bad in ["a::b", ""] {
            let (cfg, names) = with(&[("NOSPARSE_PROGRAMS", bad)]);
            assert_eq!(cfg.programs, Programs::Invalid);
            assert!(!cfg.allows_program(Some(b"/usr/bin/a")));
            assert_eq!(names.len(), 1);
        }
    }

    #[test]
    fn switches_take_the_usual_spellings() {
        for (v, want) in [
            ("1", true),
            ("TRUE", true),
            ("yes", true),
            ("On", true),
            ("0", false),
            ("false", false),
            ("NO", false),
            ("off", false),
        ] {
            let (cfg, bad) = with(&[("NOSPARSE_DISABLE", v), ("NOSPARSE_DEBUG", v)]);
            assert!(bad.is_empty(), "{v}: {bad:?}");
            assert_eq!((cfg.disabled, cfg.debug), (want, want), "{v}");
        }
        for v in ["", "2", "y", "true ", "enable", "1\n"] {
            let (cfg, bad) = with(&[("NOSPARSE_DISABLE", v)]);
            assert_eq!((cfg.disabled, bad.len()), (false, 1), "{v:?}");
        }
    }

    #[test]
    fn settings_file_then_environment() {
        let file = b"# nosparse\n\n  NOSPARSE_MIN_SIZE = 1G \nNOSPARSE_MATCH='*.vmem'\nNOSPARSE_METHOD=\"zero\"\n\
                     NOSPARSE_LOG=stderr\nNOSPARSE_LOG=none\nNOSPARSE_DEBUG=2\nOTHER=1\nnot a line\n";
        let mut cfg = DEFAULT;
        let mut bad = BadList::new();
        cfg.apply_file(file, &mut bad);
        cfg.apply_env(|name| (name == "NOSPARSE_METHOD").then_some(&b"fallocate"[..]), &mut bad);
        assert_eq!(cfg.min_size, 1 << 30);
        assert!(cfg.matcher.matches(b"/vm/a.vmem") && !cfg.matcher.matches(b"/vm/a.vmx"));
        assert_eq!(cfg.method, Method::Fallocate, "the environment overrides the file");
        assert_eq!(cfg.log, Sink::None, "the last line for a key wins");
        let found: Vec<_> = bad.iter().map(|b| (b.source, b.name)).collect();
        assert_eq!(
            found,
            [(Source::File(8), &b"NOSPARSE_DEBUG"[..]), (Source::File(9), b"OTHER"), (Source::File(10), b"")]
        );
    }

    #[test]
    fn trust_rules() {
        let ok = sys::Stat { mode: libc::S_IFREG | 0o644, uid: 0, size: 10, ..Default::default() };
        assert_eq!(untrusted(&ok), None);
        assert!(untrusted(&sys::Stat { uid: 1000, ..ok }).is_some());
        assert!(untrusted(&sys::Stat { mode: libc::S_IFREG | 0o664, ..ok }).is_some());
        assert!(untrusted(&sys::Stat { mode: libc::S_IFREG | 0o646, ..ok }).is_some());
        assert!(untrusted(&sys::Stat { mode: libc::S_IFIFO | 0o644, ..ok }).is_some());
        assert!(untrusted(&sys::Stat { size: 1 << 20, ..ok }).is_some());
    }

    #[test]
    fn match_globs_follow_a_symlinked_directory() {
        let base = std::env::temp_dir().join(format!("nosparse-resolve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("data/vm")).unwrap();
        std::os::unix::fs::symlink(base.join("data/vm"), base.join("vm")).unwrap();
        let b = base.to_str().unwrap();
        let globs = Globs::parse(format!("{b}/vm/*.vmem:*.img:{b}/data/vm/x").as_bytes()).unwrap();
        let mut buf = [0u8; 4096];
        let resolved = resolve(&globs, &mut buf);
        assert_eq!(String::from_utf8_lossy(resolved.as_bytes()), format!("{b}/data/vm/*.vmem:*.img:{b}/data/vm/x"));
        let cfg = Config { matcher: globs, matcher_resolved: resolved, ..DEFAULT };
        assert!(cfg.matches(format!("{b}/data/vm/a.vmem").as_bytes()));
        assert!(cfg.matches(format!("{b}/vm/a.vmem").as_bytes()));
        assert!(!cfg.matches(format!("{b}/data/a.vmem").as_bytes()));
        // Nothing symlinked: nothing to add.
        let plain = Globs::parse(format!("{b}/data/vm/*.vmem").as_bytes()).unwrap();
        assert!(!resolve(&plain, &mut buf).is_set());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn environment_scan() {
        std::env::set_var("NOSPARSE_TEST_SCAN", "v=1");
        assert_eq!(env_var("NOSPARSE_TEST_SCAN"), Some(&b"v=1"[..]));
        assert_eq!(env_var("NOSPARSE_TEST_SCA"), None);
    }
}
