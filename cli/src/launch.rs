//! `nosparse [OPTIONS] [--] PROGRAM [ARGS...]`: runs PROGRAM with libnosparse.so preloaded.
//!
//! The library is named in LD_PRELOAD as `PREFIX/$LIB/libnosparse.so`: the loader of each
//! process expands `$LIB` for its own class, so a 64-bit script that starts a 32-bit
//! program gets the right build in both. Where `$LIB` points for PROGRAM is found out
//! first (crate::loader), to check that the build it will look for is there.

use crate::args::{Launch, Mode};
use crate::elf::{self, Kind};
use crate::exit_codes::{Failure, Status};
use crate::human::warn;
use crate::paths::CONF;
use crate::supervise::{self, Support};
use crate::{conf, loader};
use nosparse_core::settings::PROGRAMS;
use nosparse_core::sys;
use std::ffi::OsString;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The library's file name, and the name a set-user-ID program's loader accepts.
pub const LIB_NAME: &str = "libnosparse.so";

/// The install prefix this launcher belongs to: the parent of the directory it is in
/// (`/usr` for `/usr/bin/nosparse`).
pub fn prefix() -> Result<PathBuf, Failure> {
    let exe = std::env::current_exe().and_then(std::fs::canonicalize).map_err(|e| {
        Failure::new(
            Status::LauncherFailed,
            format!("cannot find where this program is installed: {}", crate::human::os_error(&e)),
        )
    })?;
    Ok(exe.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/")))
}

/// Finds `program` as execvp(3) would; None when it is not there.
fn find_program(program: &OsString) -> Option<PathBuf> {
    if program.as_bytes().contains(&b'/') {
        let p = PathBuf::from(program);
        return p.symlink_metadata().is_ok().then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// What the kernel runs when `program` is started.
enum Runs {
    /// This loader, for an ELF program (`elf`: the program, or its script's interpreter).
    Loader { interp: PathBuf, class: elf::Class, elf: PathBuf },
    /// A static ELF program: no loader, nothing to preload into.
    Static { class: elf::Class, elf: PathBuf },
    /// Something the kernel runs some other way (binfmt_misc, a bad file).
    Other,
    /// A program this user may run but not read (mode 711): what runs it is unknown.
    Unreadable,
}

/// What runs `program`: its loader (or its script interpreter's), or itself.
fn what_runs(program: &Path) -> Result<Runs, Failure> {
    let mut path = program.to_path_buf();
    // A script's interpreter may itself be a script, as the kernel allows, a few deep.
    for _ in 0..4 {
        let kind = match elf::kind(&path) {
            Ok(kind) => kind,
            Err(e) if e.kind() == ErrorKind::PermissionDenied && executable(&path) => return Ok(Runs::Unreadable),
            Err(e) => {
                let status = if e.kind() == ErrorKind::NotFound { Status::NotFound } else { Status::CannotRun };
                return Err(Failure::new(
                    status,
                    format!("cannot run {}: {}", path.display(), crate::human::os_error(&e)),
                ));
            }
        };
        match kind {
            Kind::Dynamic { class, interp } => return Ok(Runs::Loader { interp, class, elf: path }),
            Kind::Static { class } => return Ok(Runs::Static { class, elf: path }),
            Kind::Script { interp } => path = interp,
            Kind::Other => return Ok(Runs::Other),
        }
    }
    Ok(Runs::Other)
}

/// Whether this process may execute `path` (access(2), X_OK).
fn executable(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: a NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

/// The mode `l` asks for, for a program that runs as `runs`, and why.
fn mode_for(l: &Launch, runs: &Runs) -> (Mode, String) {
    match (l.mode, runs) {
        (Mode::Preload, _) => (Mode::Preload, "--preload".into()),
        (Mode::Supervise, _) => (Mode::Supervise, "--supervise".into()),
        (_, Runs::Static { class, elf }) => (
            Mode::Supervise,
            format!("{} is a statically linked {}-bit program: no loader to preload into", elf.display(), class.bits()),
        ),
        (_, Runs::Loader { elf, .. }) if elf::is_go(elf) => {
            (Mode::Supervise, format!("{} is a Go program: it makes its own system calls", elf.display()))
        }
        (_, Runs::Loader { .. }) => (Mode::Preload, "a dynamically linked program".into()),
        (_, Runs::Other) => (Mode::Preload, "not an ELF program".into()),
        (_, Runs::Unreadable) => {
            (Mode::Preload, "it can be run but not read (execute-only): taken as dynamically linked".into())
        }
    }
}

/// Why `program` cannot be supervised here, if it cannot; `support` is what the kernel
/// and this process's own seccomp state allow.
fn cannot_supervise(program: &Path, support: &Support) -> Option<String> {
    if secure(program) && !sys::is_root() {
        return Some(format!(
            "{} is set-user-ID or set-group-ID: a seccomp filter needs no_new_privs, under which it \
             would run without its privileges (only root can supervise it)",
            program.display()
        ));
    }
    match support {
        Support::Unavailable(why) => Some(why.clone()),
        _ => None,
    }
}

/// Whether running `program` is secure execution (set-user-ID or set-group-ID to
/// someone else), where the loader ignores preloads named with a path.
fn secure(program: &Path) -> bool {
    let Ok(m) = program.metadata() else { return false };
    // SAFETY: these cannot fail.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    (m.mode() & libc::S_ISUID != 0 && m.uid() != euid) || (m.mode() & libc::S_ISGID != 0 && m.gid() != egid)
}

/// The build of the library `program`'s loader takes from this launcher's prefix, and
/// whether its directory is one the loader trusts (so that a set-user-ID program may
/// load it by its bare name); an error for a program without a loader.
pub fn library_for(program: &Path) -> Result<(PathBuf, bool), String> {
    let Runs::Loader { interp, class, .. } = what_runs(program).map_err(|f| f.msg)? else {
        return Err(format!("{} is not a dynamically linked program", program.display()));
    };
    let loader = loader::find(&interp, class)?;
    let lib_dir = prefix().map_err(|f| f.msg)?.join(&loader.dst_lib);
    let trusted = loader.system_dirs.iter().any(|d| d.as_path() == lib_dir.as_path());
    Ok((lib_dir.join(LIB_NAME), trusted))
}

/// Runs the program; returns only on failure, or after a dry run.
pub fn run(l: Launch) -> Result<Status, Failure> {
    let Some(program) = find_program(&l.program) else {
        return Err(Failure::new(Status::NotFound, format!("{}: command not found", l.program.to_string_lossy())));
    };
    let runs = what_runs(&program)?;
    let (mode, mut why) = mode_for(&l, &runs);
    let mut settings = l.settings.clone();
    if system_list_is_set() && !settings.iter().any(|(k, _)| *k == PROGRAMS.name) {
        // The system-wide allow-list is for processes nobody asked for; this one was.
        settings.push((PROGRAMS.name, "*".into()));
    }
    if mode == Mode::Supervise {
        let support = supervise::probe();
        if let Some(reason) = cannot_supervise(&program, &support) {
            if l.mode == Mode::Supervise {
                return Err(Failure::new(
                    Status::LauncherFailed,
                    format!("cannot supervise {}: {reason}", program.display()),
                ));
            }
            warn(&format!("{why}, but it cannot be supervised: {reason}; using the preload"));
            why = format!("{why}, but it cannot be supervised: {reason}");
        } else {
            if support == Support::NoKillable {
                warn(
                    "the kernel lacks SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (Linux 5.19): every call is let \
                     through as it is, and nothing is preallocated",
                );
            }
            if l.dry_run {
                for (k, v) in &settings {
                    outln!("{k}={v}");
                }
                outln!("program={}", program.display());
                outln!("mode=supervise");
                outln!("mode_why={why}");
                outln!("seccomp={}", support_line(&support));
                return Ok(Status::Success);
            }
            return supervise::run(&program, &l.program, &l.args, &settings).map(Status::Program);
        }
    }
    let prefix = prefix()?;
    let pattern = prefix.join("$LIB").join(LIB_NAME);
    let mut entries = vec![pattern.display().to_string()];
    // What the dry run reports about the library this program will get.
    let mut facts: Vec<(&str, String)> = Vec::new();
    if let Runs::Static { class, elf } = &runs {
        warn(&format!(
            "{} is a statically linked {}-bit program: nothing can be preloaded into it",
            elf.display(),
            class.bits()
        ));
    }
    if let Runs::Loader { interp, class, .. } = runs {
        let loader = loader::find(&interp, class).map_err(|e| Failure::new(Status::LauncherFailed, e))?;
        let lib_dir = prefix.join(&loader.dst_lib);
        let lib = lib_dir.join(LIB_NAME);
        if !lib.is_file() {
            return Err(Failure::new(
                Status::LauncherFailed,
                format!(
                    "{} is a {}-bit program; its loader ({}) expands $LIB to {}, and there is no {}. \
                     Install the {}-bit build (scripts/install.sh installs both).",
                    program.display(),
                    class.bits(),
                    loader.path.display(),
                    loader.dst_lib,
                    lib.display(),
                    class.bits()
                ),
            ));
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
            ("lib_dir_from", if loader.asked { "loader" } else { "guess" }.to_string()),
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
                    CONF
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
    if l.dry_run {
        outln!("LD_PRELOAD={preload}");
        for (k, v) in &settings {
            outln!("{k}={v}");
        }
        outln!("program={}", program.display());
        for (k, v) in &facts {
            outln!("{k}={v}");
        }
        outln!("mode=preload");
        outln!("mode_why={why}");
        return Ok(Status::Success);
    }
    // PROGRAM gets its name as it was given (argv[0]), as env(1) and the shell give it;
    // the path found on PATH is only what is run.
    let mut cmd = Command::new(&program);
    cmd.arg0(&l.program).args(&l.args).env("LD_PRELOAD", &preload).envs(settings);
    // SAFETY: restore makes system calls only.
    unsafe {
        cmd.pre_exec(|| {
            crate::inherited::restore();
            Ok(())
        })
    };
    let err = cmd.exec();
    let status = if err.kind() == ErrorKind::NotFound { Status::NotFound } else { Status::CannotRun };
    Err(Failure::new(status, format!("cannot run {}: {err}", program.display())))
}

/// Whether the trusted /etc/nosparse.conf restricts the library to some programs.
fn system_list_is_set() -> bool {
    match conf::read_trusted(Path::new(CONF)) {
        Ok(Some(text)) => {
            let (entries, bad) = conf::parse(&text);
            conf::sets(&entries, &bad, &PROGRAMS)
        }
        _ => false,
    }
}

/// The `seccomp=` line of a dry run, and doctor's.
pub fn support_line(s: &Support) -> String {
    match s {
        Support::Full => "full (user notification, pidfd_getfd, WAIT_KILLABLE_RECV)".into(),
        Support::NoKillable => "partial: no WAIT_KILLABLE_RECV (Linux 5.19), calls are let through unchanged".into(),
        Support::Unavailable(why) => format!("unavailable: {why}"),
    }
}
