//! `nosparse [OPTIONS] [--] PROGRAM [ARGS...]`: runs PROGRAM with libnosparse.so preloaded.
//!
//! The library is named in LD_PRELOAD as `PREFIX/$LIB/libnosparse.so`: the loader of each
//! process expands `$LIB` for its own class, so a 64-bit script that starts a 32-bit
//! program gets the right build in both. Where `$LIB` points is asked of the program's
//! own loader (`ld.so --list-diagnostics`), to check that the build it will look for is
//! there before the program starts.

use crate::elf::{self, Kind};
use crate::fail;
use nosparse_core::config;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The library's file name, and the name a set-user-ID program's loader accepts.
pub const LIB_NAME: &str = "libnosparse.so";

/// Exit statuses of the launcher's own failures, as env(1) has them.
pub const EXIT_FAILED: i32 = 125;
pub const EXIT_CANNOT_RUN: i32 = 126;
pub const EXIT_NOT_FOUND: i32 = 127;

/// What the launcher was asked to do.
pub struct Launch {
    /// NOSPARSE_* settings from the options, already validated.
    pub settings: Vec<(&'static str, String)>,
    pub dry_run: bool,
    pub program: OsString,
    pub args: Vec<OsString>,
}

/// What a loader says about itself.
#[derive(Debug)]
pub struct Loader {
    pub path: PathBuf,
    /// What `$LIB` expands to, e.g. `lib/x86_64-linux-gnu` or `lib32`.
    pub dst_lib: String,
    /// The directories a set-user-ID program's preloads may come from.
    pub system_dirs: Vec<PathBuf>,
}

/// Asks `interp` (a glibc ld.so, 2.33 or later) how it expands `$LIB` and which
/// directories it trusts.
pub fn ask_loader(interp: &Path) -> Result<Loader, String> {
    let out = Command::new(interp)
        .arg("--list-diagnostics")
        .env_remove("LD_PRELOAD")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .map_err(|e| format!("cannot run the loader {}: {e}", interp.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let value = |line: &str| line.split_once('=').map(|(_, v)| v.trim_matches('"').to_string());
    let dst_lib = text.lines().find(|l| l.starts_with("dl_dst_lib=")).and_then(value);
    let system_dirs = text.lines().filter(|l| l.starts_with("path.system_dirs[")).filter_map(value).map(PathBuf::from);
    match dst_lib {
        Some(dst_lib) if out.status.success() => {
            Ok(Loader { path: interp.into(), dst_lib, system_dirs: system_dirs.collect() })
        }
        _ => Err(format!(
            "the loader {} does not say where $LIB points (it needs to be glibc 2.33 or later); \
             set LD_PRELOAD to the library yourself",
            interp.display()
        )),
    }
}

/// The install prefix this launcher belongs to: the parent of the directory it is in
/// (`/usr` for `/usr/bin/nosparse`).
pub fn prefix() -> PathBuf {
    let exe = std::env::current_exe().and_then(std::fs::canonicalize).unwrap_or_else(|e| {
        fail(EXIT_FAILED, &format!("cannot find where this program is installed: {e}"));
    });
    exe.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"))
}

/// Finds `program` as execvp(3) would.
fn find_program(program: &OsString) -> Option<PathBuf> {
    if program.as_bytes().contains(&b'/') {
        return Some(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// The loader that will run `program`: its own, or its script interpreter's.
fn loader_of(program: &Path) -> Result<Option<(PathBuf, elf::Class)>, String> {
    let mut path = program.to_path_buf();
    // A script's interpreter may itself be a script, as the kernel allows, a few deep.
    for _ in 0..4 {
        match elf::kind(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))? {
            Kind::Dynamic { class, interp } => return Ok(Some((interp, class))),
            Kind::Static { class } => {
                warn(&format!(
                    "{} is a statically linked {}-bit program: nothing can be preloaded into it",
                    path.display(),
                    class.bits()
                ));
                return Ok(None);
            }
            Kind::Script { interp } => path = interp,
            Kind::Other => return Ok(None),
        }
    }
    Ok(None)
}

/// Whether running `program` is secure execution (set-user-ID or set-group-ID to
/// someone else), where the loader ignores preloads named with a path.
fn secure(program: &Path) -> bool {
    let Ok(m) = program.metadata() else { return false };
    // SAFETY: these cannot fail.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    (m.mode() & libc::S_ISUID != 0 && m.uid() != euid) || (m.mode() & libc::S_ISGID != 0 && m.gid() != egid)
}

/// Runs the program; returns only on failure, with the exit status to use.
pub fn launch(l: Launch) -> i32 {
    let Some(program) = find_program(&l.program) else {
        fail(EXIT_NOT_FOUND, &format!("{}: command not found", l.program.to_string_lossy()));
    };
    let prefix = prefix();
    let pattern = prefix.join("$LIB").join(LIB_NAME);
    let mut entries = vec![pattern.display().to_string()];
    // What the dry run reports about the library this program will get.
    let mut facts: Vec<(&str, String)> = Vec::new();
    let loader = match loader_of(&program) {
        Ok(l) => l,
        Err(e) => fail(EXIT_CANNOT_RUN, &e),
    };
    if let Some((interp, class)) = loader {
        let loader = ask_loader(&interp).unwrap_or_else(|e| fail(EXIT_FAILED, &e));
        let lib_dir = prefix.join(&loader.dst_lib);
        let lib = lib_dir.join(LIB_NAME);
        if !lib.is_file() {
            fail(
                EXIT_FAILED,
                &format!(
                    "{} is a {}-bit program; its loader ({}) expands $LIB to {}, and there is no {}. \
                     Install the {}-bit build (scripts/install.sh installs both).",
                    program.display(),
                    class.bits(),
                    loader.path.display(),
                    loader.dst_lib,
                    lib.display(),
                    class.bits()
                ),
            );
        }
        // From a directory the loader trusts, the bare name also reaches set-user-ID
        // programs started later; elsewhere it would only make the loader complain.
        let trusted = loader.system_dirs.iter().any(|d| d.as_path() == lib_dir.as_path());
        if trusted {
            entries.push(LIB_NAME.into());
        }
        let secure = secure(&program);
        facts.extend([
            ("class", class.bits().to_string()),
            ("loader", loader.path.display().to_string()),
            ("library", lib.display().to_string()),
            ("trusted_dir", u8::from(trusted).to_string()),
            ("secure_execution", u8::from(secure).to_string()),
        ]);
        if secure {
            let setuid_lib = lib.metadata().is_ok_and(|m| m.mode() & libc::S_ISUID != 0);
            if !trusted || !setuid_lib {
                let dirs: Vec<String> = loader.system_dirs.iter().map(|d| d.display().to_string()).collect();
                warn(&format!(
                    "{} is set-user-ID or set-group-ID: its loader preloads only a library named \
                     without a path, from {}, with the set-user-ID bit set; {} is not{}. It will run \
                     without nosparse.",
                    program.display(),
                    dirs.join(" "),
                    lib.display(),
                    if trusted { " set-user-ID (chmod u+s it as root)" } else { " there" }
                ));
            }
            if !l.settings.is_empty() {
                warn(&format!(
                    "{} is set-user-ID or set-group-ID: it ignores NOSPARSE_* settings from the \
                     environment, so the options are ignored; it reads {}",
                    program.display(),
                    config::CONFIG_FILE
                ));
            }
        }
    }
    let existing = std::env::var("LD_PRELOAD").unwrap_or_default();
    let mut preload = entries.clone();
    preload.extend(
        existing.split([' ', ':']).filter(|e| !e.is_empty() && !entries.iter().any(|x| x == e)).map(String::from),
    );
    let preload = preload.join(" ");
    let mut settings = l.settings;
    if system_list_is_set() && !settings.iter().any(|(k, _)| *k == "NOSPARSE_PROGRAMS") {
        // The system-wide allow-list is for processes nobody asked for; this one was.
        settings.push(("NOSPARSE_PROGRAMS", "*".into()));
    }
    if l.dry_run {
        println!("LD_PRELOAD={preload}");
        for (k, v) in &settings {
            println!("{k}={v}");
        }
        println!("program={}", program.display());
        for (k, v) in &facts {
            println!("{k}={v}");
        }
        return 0;
    }
    let err = Command::new(&program).args(&l.args).env("LD_PRELOAD", &preload).envs(settings).exec();
    let status = if err.kind() == std::io::ErrorKind::NotFound { EXIT_NOT_FOUND } else { EXIT_CANNOT_RUN };
    fail(status, &format!("cannot run {}: {err}", program.display()));
}

/// Whether /etc/nosparse.conf restricts the library to some programs.
fn system_list_is_set() -> bool {
    let mut buf = vec![0u8; config::CONFIG_FILE_MAX + 1];
    let (_, text) = config::read_file(&mut buf);
    let mut set = false;
    config::for_each_line(text, |_, name, _| set |= name == Some(&b"NOSPARSE_PROGRAMS"[..]));
    set
}

/// Checks one setting's value the way the library would read it; the reason if refused.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    match nosparse_core::settings::find(name) {
        Some(setting) => (setting.check)(value.as_bytes()).map_err(str::to_string),
        None => Err("not a nosparse setting".to_string()),
    }
}

pub fn warn(msg: &str) {
    eprintln!("nosparse: warning: {msg}");
}
