//! `nosparse doctor`: whether this host is set up right, one line per finding, each
//! problem naming the file and the fix.

use crate::args::Doctor;
use crate::elf::{self, Class, Kind};
use crate::exit_codes::{Failure, Status};
use crate::launch::{self, LIB_NAME};
use crate::paths::{CONF, VMWARE_STATE};
use crate::supervise::{self, Support};
use crate::{conf, loader};
use nosparse_core::fs::FsKind;
use nosparse_core::settings::PROGRAMS;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The loaders of an x86_64 host, 64- and 32-bit.
const LOADERS: [(&str, Class); 2] =
    [("/lib64/ld-linux-x86-64.so.2", Class::Elf64), ("/lib/ld-linux.so.2", Class::Elf32)];
/// The loader's list of libraries for every process.
pub const PRELOAD: &str = "/etc/ld.so.preload";
/// The set-user-ID bit.
const SET_UID: u32 = 0o4000;
/// Read permission for everyone: the library is loaded by every user's processes.
const ALL_READ: u32 = 0o444;

#[derive(Default)]
struct Report {
    problems: usize,
}

impl Report {
    fn ok(&self, msg: &str) {
        outln!("ok: {msg}");
    }

    fn note(&self, msg: &str) {
        outln!("note: {msg}");
    }

    fn problem(&mut self, file: &Path, what: &str, fix: &str) {
        self.problems += 1;
        outln!("PROBLEM: {}: {what}; fix: {fix}", file.display());
    }

    /// A problem already worded with its file and fix (a line of `nosparse-vmware status`).
    fn problem_line(&mut self, line: &str) {
        self.problems += 1;
        outln!("PROBLEM: {line}");
    }
}

/// A loader of this host, with where its `$LIB` points.
struct Found {
    class: Class,
    loader: loader::Loader,
}

/// The filesystem `dir` is on, when it can be found.
fn fs_of(dir: &Path) -> Option<FsKind> {
    let path = CString::new(dir.as_os_str().as_bytes()).ok()?;
    FsKind::of_path(path.as_bytes_with_nul()).ok()
}

fn class_of(path: &Path) -> Option<Class> {
    match elf::kind(path).ok()? {
        Kind::Dynamic { class, .. } | Kind::Static { class } => Some(class),
        _ => None,
    }
}

pub fn run(d: &Doctor) -> Result<Status, Failure> {
    let mut r = Report::default();
    // The settings are vmx's when asked, or when the wrapper is installed.
    let vmx = d.vmx || d.vm_dir.is_some() || std::fs::metadata(VMWARE_STATE).is_ok_and(|m| m.len() > 0);
    let vm_fs = d.vm_dir.as_deref().and_then(fs_of);
    let config = Config { path: d.config.as_deref().unwrap_or(Path::new(CONF)), given: d.config.is_some() };
    if d.settings_only {
        settings_file(&mut r, &config, vmx, vm_fs);
    } else {
        let prefix = launch::prefix()?;
        let loaders = builds(&mut r, &prefix);
        preload(&mut r, &loaders);
        settings_file(&mut r, &config, vmx, vm_fs);
        vmware(&mut r);
        unwrapped_vmx(&mut r, &d.programs);
        supervise(&r);
    }
    if r.problems == 0 {
        outln!("nosparse doctor: all is well");
        Ok(Status::Success)
    } else {
        outln!("nosparse doctor: {} problem{} found", r.problems, if r.problems == 1 { "" } else { "s" });
        Ok(Status::Problems)
    }
}

/// Whether static and Go programs can be supervised here (not a problem when not: the
/// preload still serves every other program).
fn supervise(r: &Report) {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let support = supervise::probe();
    let line = format!(
        "supervise mode (static and Go programs), Linux {}: seccomp={}",
        kernel.trim(),
        launch::support_line(&support)
    );
    match support {
        Support::Full => r.ok(&line),
        _ => r.note(&format!("{line}; such programs run without nosparse")),
    }
}

/// Each loader's build of the library under this launcher's prefix.
fn builds(r: &mut Report, prefix: &Path) -> Vec<Found> {
    let mut found = Vec::new();
    for (interp, class) in LOADERS {
        let bits = class.bits();
        if !Path::new(interp).exists() {
            r.note(&format!("no {bits}-bit loader ({interp}): {bits}-bit programs are not served"));
            continue;
        }
        let loader = match loader::find(Path::new(interp), class) {
            Ok(l) => l,
            Err(e) => {
                r.problem(Path::new(interp), &e, "install the library by hand and name it in LD_PRELOAD");
                continue;
            }
        };
        let lib = prefix.join(&loader.dst_lib).join(LIB_NAME);
        let fix = format!("install the {bits}-bit build there (scripts/install.sh installs both; or the packages)");
        match lib.metadata() {
            Err(e) => {
                let what = if e.kind() == std::io::ErrorKind::NotFound {
                    "missing".to_string()
                } else {
                    crate::human::os_error(&e)
                };
                r.problem(&lib, &format!("{what}: {bits}-bit programs get no library from the launcher"), &fix)
            }
            Ok(_) if class_of(&lib) != Some(class) => r.problem(&lib, &format!("not a {bits}-bit ELF library"), &fix),
            Ok(m) if m.permissions().mode() & ALL_READ != ALL_READ => r.problem(
                &lib,
                &format!("mode {:o}: other users' processes cannot load it", m.permissions().mode() & 0o7777),
                &format!("chmod a+r {}", lib.display()),
            ),
            Ok(_) => {
                let how =
                    if loader.asked { "as its loader says" } else { "worked out: the loader is older than glibc 2.33" };
                r.ok(&format!("{bits}-bit build: {} ($LIB = {}, {how})", lib.display(), loader.dst_lib));
            }
        }
        found.push(Found { class, loader });
    }
    found
}

/// The file an `/etc/ld.so.preload` entry names for a loader, if any: `$LIB` expanded,
/// a bare name looked up in the loader's trusted directories.
fn preload_target(entry: &str, l: &loader::Loader) -> Option<PathBuf> {
    let expanded = entry.replace("${LIB}", &l.dst_lib).replace("$LIB", &l.dst_lib);
    if expanded.contains('/') {
        return Some(PathBuf::from(expanded));
    }
    l.system_dirs.iter().map(|d| d.join(&expanded)).find(|p| p.exists())
}

/// `/etc/ld.so.preload`'s entries naming the library: each must give every class a
/// library of its own class.
fn preload(r: &mut Report, loaders: &[Found]) {
    let text = match std::fs::read_to_string(PRELOAD) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return r.ok(&format!("{PRELOAD} does not exist: the library is loaded only where asked for"));
        }
        Err(e) => {
            return r.problem(
                Path::new(PRELOAD),
                &format!("cannot read it: {}", crate::human::os_error(&e)),
                "check its permissions (644)",
            )
        }
    };
    // As glibc's loader reads it (tried: a bind mount over the file in a private mount
    // namespace): '#' starts a comment to the end of its line, wherever it stands; the
    // rest splits at blanks and ':'.
    let entries: Vec<&str> = text
        .lines()
        .flat_map(|line| line.split('#').next().unwrap_or_default().split([' ', '\t', ':']))
        .filter(|e| e.contains("nosparse"))
        .collect();
    if entries.is_empty() {
        return r.ok(&format!("{PRELOAD} does not name the library"));
    }
    for entry in entries {
        let mut fine = true;
        for f in loaders {
            let bits = f.class.bits();
            let target = preload_target(entry, &f.loader);
            let trouble = match &target {
                None => Some("no such library in the loader's directories".to_string()),
                Some(p) if !p.exists() => Some(format!("{} does not exist", p.display())),
                Some(p) if class_of(p) != Some(f.class) => Some(format!("{} is not a {bits}-bit library", p.display())),
                Some(_) => None,
            };
            if let Some(why) = trouble {
                fine = false;
                r.problem(
                    Path::new(PRELOAD),
                    &format!("{entry:?} for {bits}-bit programs: {why}; every {bits}-bit process prints 'ERROR: ld.so: object ... cannot be preloaded'"),
                    "name it '/usr/$LIB/libnosparse.so' and install both builds, or remove the line",
                );
            }
        }
        if fine {
            r.ok(&format!("{PRELOAD}: {entry} gives every class its own build"));
        }
    }
}

/// The settings file to check.
struct Config<'a> {
    path: &'a Path,
    /// Named by `--config`: it must exist.
    given: bool,
}

/// The settings file: trusted, and every line one the library uses.
fn settings_file(r: &mut Report, config: &Config, vmx: bool, vm_fs: Option<FsKind>) {
    let path = config.path;
    // What the name leads to, as the library's open follows it.
    if let Ok(m) = std::fs::metadata(path) {
        if let Err(what) = crate::human::refuse_special(m.file_type()) {
            return r.problem(
                path,
                &format!("{what}, so the library acts in no program"),
                "remove it, or put the settings there as a regular file (nosparse.conf(5))",
            );
        }
    }
    let text = match conf::read_trusted(path) {
        Ok(None) if config.given => {
            return r.problem(path, "does not exist", "name an existing settings file with --config")
        }
        Ok(None) => return r.ok(&format!("{} does not exist: the defaults and the environment apply", path.display())),
        Ok(Some(t)) => t,
        Err(why) => {
            return r.problem(
                path,
                &format!("not trusted ({why}), so the library acts in no program"),
                &format!(
                    "sudo chown root:root {0} && sudo chmod 644 {0} (at most 64 KiB, a regular file)",
                    path.display()
                ),
            );
        }
    };
    let (entries, bad) = conf::parse(&text);
    for b in &bad {
        let file = PathBuf::from(format!("{}:{}", path.display(), b.line));
        let effect = match b.setting {
            Some(s) if s.name == PROGRAMS.name => "; the library acts in no program".to_string(),
            Some(s) => format!("; the library keeps the default ({})", s.default),
            None => "; the line is ignored".to_string(),
        };
        let fix = match b.setting {
            Some(s) => format!("{}: {}", s.name, s.values),
            None => "one NAME=value per line, NAME one of the settings in nosparse.conf(5)".to_string(),
        };
        r.problem(&file, &format!("{}{effect}", b.why), &fix);
    }
    // Good values that still keep the library from acting (for vmx: on .vmem files).
    let programs_globs = conf::value(&entries, &PROGRAMS).map(String::from_utf8_lossy);
    let vmx = vmx || programs_globs.is_some_and(|p| p.contains("vmware-vmx"));
    let off = conf::turned_off(&entries, vmx, vm_fs);
    for o in &off {
        r.problem(path, &o.why, &o.fix);
    }
    if bad.is_empty() && off.is_empty() {
        let programs = conf::value(&entries, &PROGRAMS).map(String::from_utf8_lossy);
        let scope = match programs {
            Some(p) => format!("acts only in {p}"),
            None => "acts in every program it is loaded into".to_string(),
        };
        r.ok(&format!("{}: trusted, {} settings, the library {scope}", path.display(), entries.len()));
    }
}

/// The VMware wrapper, as `nosparse vmware status` sees it: one line per finding, each
/// broken part a problem of its own (status words them with the file and the fix).
fn vmware(r: &mut Report) {
    match crate::vmware::findings(Path::new(VMWARE_STATE)) {
        Err(why) => r.problem(Path::new(VMWARE_STATE), &why, "sudo nosparse vmware repair"),
        Ok(found) if found.is_empty() => r.ok("no VMware wrapper installed"),
        Ok(found) => {
            for (level, text) in found {
                match level {
                    "broken" => r.problem_line(&text),
                    "note" => r.note(&format!("VMware wrapper: {text}")),
                    _ => r.ok(&format!("VMware wrapper: {text}")),
                }
            }
        }
    }
}

/// The programs `nosparse-vmware` recorded as wrapped.
fn recorded_wrappers() -> Vec<PathBuf> {
    let text = std::fs::read_to_string(VMWARE_STATE).unwrap_or_default();
    text.lines().filter_map(|l| l.split('\t').next()).filter(|v| !v.is_empty()).map(PathBuf::from).collect()
}

/// A set-user-ID vmx that is there and not wrapped: its loader ignores `LD_PRELOAD` with
/// a path and the launcher cannot help, so its `.vmem` files are created sparse.
fn unwrapped_vmx(r: &mut Report, programs: &[PathBuf]) {
    let recorded = recorded_wrappers();
    for vmx in programs {
        // The wrapped vmx is a link to the wrapper; a recorded one that is a program
        // again (a VMware upgrade) is nosparse-vmware status's to report.
        let Ok(m) = vmx.symlink_metadata() else { continue };
        if !m.is_file() || recorded.contains(vmx) {
            continue;
        }
        if m.permissions().mode() & SET_UID == 0 {
            r.ok(&format!("{} is not set-user-ID: the launcher can run it (nosparse -- ...)", vmx.display()));
            continue;
        }
        r.problem(
            vmx,
            "set-user-ID and not wrapped: its loader ignores LD_PRELOAD with a path, so the guests' .vmem files are created sparse",
            &format!("sudo nosparse vmware install --vmx {}", vmx.display()),
        );
    }
}
