//! `nosparse vmware install|uninstall|repair|status`: puts the wrapper in front of
//! VMware's set-user-ID `vmware-vmx`, checks it, repairs it after a VMware upgrade, and
//! takes it away. vmx is set-user-ID root, so its loader preloads only a library named
//! without a path, from a directory it trusts, with the set-user-ID bit set; and the
//! library reads only /etc/nosparse.conf in it.
//!
//! `install` moves the real vmx into `nosparse-real/` beside it (dpkg-divert --rename
//! where there is dpkg, else a rename), writes the wrapper (`deploy/vmware-vmx-wrapper`,
//! built in) to WRAPPER_DIR/nosparse-NAME and links vmx to it, sets the set-user-ID bit
//! of the library build vmx's loader takes (through dpkg-statoverride where there is
//! dpkg, so package upgrades keep it), and writes /etc/nosparse.conf when there is none.
//! Each step is recorded in the state file, under a lock, for `uninstall` and `repair`.
//!
//! Every step looks before it acts, so running one twice changes nothing the second time
//! ("unchanged", exit 0), and `--check` stops at the first change it would make (exit 2).

use crate::args::{Vmware, VmwareAction};
use crate::exit_codes::{Failure, Status};
use crate::human;
use crate::launch;
use crate::paths::{CONF, VMX, WRAPPER_DIR};
use nosparse_core::settings::TRIGGERS;
use nosparse_core::sys;
use serde::Serialize;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The wrapper, `@REAL@` standing for the real program's path.
const WRAPPER: &str = include_str!("../../deploy/vmware-vmx-wrapper");
/// The settings `install` writes when there are none: vmx only, .vmem only.
const CONF_EXAMPLE: &str = include_str!("../../deploy/nosparse.conf.example");
/// The wrapper is a few hundred bytes of shell; anything larger is not ours.
const WRAPPER_MAX_BYTES: u64 = 4096;
/// The set-user-ID bit.
const SET_UID: u32 = 0o4000;

/// How the real program was moved aside.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum How {
    /// `dpkg-divert --local --rename`: dpkg's own upgrades follow it.
    DpkgDivert,
    /// A plain rename, where there is no dpkg.
    Rename,
}

/// What `install` did to the library's file, to undo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LibDone {
    /// A dpkg-statoverride was added (and the bit set).
    Override,
    /// The bit was set with chmod.
    Chmod,
    /// Nothing: the bit was there already.
    Nothing,
}

/// One wrapped program: a line of the state file, fields separated by tabs, in the
/// order of the fields here (the format nosparse-vmware 0.1 wrote, which had no
/// `made_dir`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub vmx: PathBuf,
    pub real: PathBuf,
    pub wrapper: PathBuf,
    pub how: How,
    /// The library file vmx's loader takes (links resolved).
    pub lib: PathBuf,
    pub lib_done: LibDone,
    /// The md5 of /etc/nosparse.conf when `install` wrote it, to remove it unchanged.
    pub conf_md5: Option<String>,
    /// The topmost directory `install` created to hold the wrapper (/etc/vmware on a host
    /// without VMware's), which `uninstall` removes once empty; None when it made none.
    pub made_dir: Option<PathBuf>,
}

impl Entry {
    fn parse(line: &str) -> Option<Entry> {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 5 || f[0].is_empty() {
            return None;
        }
        let how = match f[3] {
            "dpkg-divert" => How::DpkgDivert,
            _ => How::Rename,
        };
        let lib_done = match f.get(5).copied() {
            Some("override") => LibDone::Override,
            Some("chmod") => LibDone::Chmod,
            _ => LibDone::Nothing,
        };
        let conf_md5 = f.get(6).filter(|s| !s.is_empty() && **s != "-").map(|s| s.to_string());
        let made_dir = f.get(7).filter(|s| !s.is_empty() && **s != "-").map(PathBuf::from);
        Some(Entry {
            vmx: f[0].into(),
            real: f[1].into(),
            wrapper: f[2].into(),
            how,
            lib: f[4].into(),
            lib_done,
            conf_md5,
            made_dir,
        })
    }

    fn line(&self) -> String {
        let how = match self.how {
            How::DpkgDivert => "dpkg-divert",
            How::Rename => "rename",
        };
        let done = match self.lib_done {
            LibDone::Override => "override",
            LibDone::Chmod => "chmod",
            LibDone::Nothing => "-",
        };
        format!(
            "{}\t{}\t{}\t{how}\t{}\t{done}\t{}\t{}",
            self.vmx.display(),
            self.real.display(),
            self.wrapper.display(),
            self.lib.display(),
            self.conf_md5.as_deref().unwrap_or("-"),
            self.made_dir.as_deref().map_or("-".into(), Path::to_string_lossy)
        )
    }
}

/// The state file, read under a lock on its directory (flock(2), so no lock file is left
/// behind): exclusive for the commands that change things, shared for status; held
/// until dropped. Only `install` creates the directory: where it is missing, nothing
/// was ever recorded, and there is nothing to lock.
struct State {
    path: PathBuf,
    entries: Vec<Entry>,
    _lock: Option<File>,
}

impl State {
    fn open(path: &Path, exclusive: bool, create: bool) -> Result<State, String> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let lock_path = dir;
        if exclusive && create && !dir.is_dir() {
            fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {}", dir.display(), human::os_error(&e)))?;
        }
        let lock = match File::options().read(true).custom_flags(libc::O_DIRECTORY).open(dir) {
            Ok(f) => {
                let how = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH };
                // SAFETY: flock on an fd we own; it waits for the other holder.
                if unsafe { libc::flock(f.as_raw_fd(), how) } != 0 {
                    let e = std::io::Error::last_os_error();
                    return Err(format!("cannot lock {}: {}", lock_path.display(), human::os_error(&e)));
                }
                Some(f)
            }
            // Nothing was ever installed (status, as any user): nothing to lock.
            Err(_) if !exclusive => None,
            Err(e) if !create && e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("cannot open {}: {}", lock_path.display(), human::os_error(&e))),
        };
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("cannot read {}: {}", path.display(), human::os_error(&e))),
        };
        let entries = text.lines().filter_map(Entry::parse).collect();
        Ok(State { path: path.to_path_buf(), entries, _lock: lock })
    }

    fn find(&self, vmx: &Path) -> Option<Entry> {
        self.entries.iter().find(|e| e.vmx == vmx).cloned()
    }

    /// The wrapped programs, for messages: "a, b", or "none".
    fn recorded(&self) -> String {
        let all: Vec<String> = self.entries.iter().map(|e| e.vmx.display().to_string()).collect();
        if all.is_empty() {
            "none".into()
        } else {
            all.join(", ")
        }
    }

    /// Writes the entries (a new file renamed over the old); no entries, no file.
    fn save(&self) -> Result<(), String> {
        if self.entries.is_empty() {
            return match fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(format!("cannot remove {}: {}", self.path.display(), human::os_error(&e)))
                }
                _ => Ok(()),
            };
        }
        let tmp = PathBuf::from(format!("{}.tmp", self.path.display()));
        let text: String = self.entries.iter().map(|e| e.line() + "\n").collect();
        let err = |e: std::io::Error| format!("cannot write {}: {}", self.path.display(), human::os_error(&e));
        let mut f = File::options().write(true).create(true).truncate(true).mode(0o644).open(&tmp).map_err(err)?;
        f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).map_err(err)?;
        fs::rename(&tmp, &self.path).map_err(err)
    }

    fn put(&mut self, entry: Entry) -> Result<(), String> {
        match self.entries.iter_mut().find(|e| e.vmx == entry.vmx) {
            Some(e) => *e = entry,
            None => self.entries.push(entry),
        }
        self.save()
    }

    fn drop_entry(&mut self, vmx: &Path) -> Result<(), String> {
        self.entries.retain(|e| e.vmx != vmx);
        self.save()
    }
}

/// Why a step stopped.
enum Stop {
    /// `--check`: this would change.
    WouldChange(String),
    Failed(String),
}

impl From<String> for Stop {
    fn from(s: String) -> Stop {
        Stop::Failed(s)
    }
}

/// Carries out the changes, or with `--check` stops before the first one; counts them.
struct Actor {
    check: bool,
    changes: usize,
}

impl Actor {
    /// Does `what` by `f`, saying so on stderr.
    fn act(&mut self, what: &str, f: impl FnOnce() -> Result<(), String>) -> Result<(), Stop> {
        if self.check {
            return Err(Stop::WouldChange(what.to_string()));
        }
        if !sys::is_root() {
            return Err(Stop::Failed(format!("{what}: run as root")));
        }
        f().map_err(Stop::Failed)?;
        self.changes += 1;
        say(what);
        Ok(())
    }
}

fn say(msg: &str) {
    human::say("vmware", msg);
}

/// Whether `tool` is a program on PATH (dpkg's, on Debian hosts).
fn have(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path).any(|d| d.join(tool).metadata().is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0))
}

/// Runs a program; its stderr becomes the error.
fn run(program: &str, args: &[&std::ffi::OsStr]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {}", human::os_error(&e)))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{program} failed: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

fn io_err<'a>(what: &str, path: &'a Path) -> impl Fn(std::io::Error) -> String + 'a {
    let what = what.to_string();
    move |e| format!("{what} {}: {}", path.display(), human::os_error(&e))
}

/// `DIR/nosparse-real/NAME` for `DIR/NAME`.
fn real_of(vmx: &Path) -> PathBuf {
    let dir = vmx.parent().unwrap_or(Path::new("/"));
    dir.join("nosparse-real").join(vmx.file_name().unwrap_or_default())
}

/// The wrapper's text for the real program `real`.
fn wrapper_text(real: &Path) -> String {
    WRAPPER.replace("@REAL@", &real.display().to_string())
}

/// Whether `path` is the wrapper for `real`: a VMware upgrade that copies its new vmx to
/// the link's name writes through the link, over the wrapper.
fn is_wrapper(path: &Path, real: &Path) -> bool {
    let Ok(m) = path.metadata() else { return false };
    if !m.is_file() || m.len() > WRAPPER_MAX_BYTES {
        return false;
    }
    let exec = format!("exec -a \"$0\" \"{}\" \"$@\"", real.display());
    fs::read_to_string(path).is_ok_and(|t| t.lines().any(|l| l == exec))
}

/// Whether `vmx` is a link to `wrapper`.
fn links_to(vmx: &Path, wrapper: &Path) -> bool {
    fs::read_link(vmx).is_ok_and(|t| t == wrapper)
}

fn is_setuid(path: &Path) -> bool {
    path.metadata().is_ok_and(|m| m.mode() & SET_UID != 0)
}

fn md5(path: &Path) -> Option<String> {
    let out = Command::new("md5sum").arg(path).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    out.status.success().then(|| text.split_whitespace().next().unwrap_or_default().to_string())
}

/// Whether dpkg-statoverride registers `lib`.
fn has_override(lib: &Path) -> bool {
    run("dpkg-statoverride", &[os("--list"), lib.as_os_str()]).is_ok()
}

/// The library file `program`'s loader takes, links resolved, in a trusted directory.
fn library_of(program: &Path) -> Result<PathBuf, String> {
    let (lib, trusted) = launch::library_for(program)
        .map_err(|e| format!("cannot tell which libnosparse.so {} would load: {e}", program.display()))?;
    if !trusted {
        return Err(format!(
            "{} is not in a directory {}'s loader trusts for set-user-ID programs; install nosparse under /usr",
            lib.display(),
            program.display()
        ));
    }
    fs::canonicalize(&lib)
        .map_err(|e| format!("{}: {}: reinstall nosparse (both builds)", lib.display(), human::os_error(&e)))
}

/// Sets the set-user-ID bit of `lib`, registering it with dpkg-statoverride where there
/// is dpkg; what was done.
fn make_setuid(a: &mut Actor, lib: &Path) -> Result<LibDone, Stop> {
    let mut done = LibDone::Nothing;
    if have("dpkg-statoverride") && !has_override(lib) {
        let mode = lib.metadata().map_err(io_err("cannot stat", lib))?.mode() & 0o7777 | SET_UID;
        let mode = format!("{mode:o}");
        a.act(
            &format!("registered the set-user-ID bit of {} with dpkg-statoverride (mode {mode})", lib.display()),
            || {
                run(
                    "dpkg-statoverride",
                    &[os("--update"), os("--add"), os("root"), os("root"), os(&mode), lib.as_os_str()],
                )
                .map(drop)
            },
        )?;
        done = LibDone::Override;
    }
    if !is_setuid(lib) {
        a.act(&format!("set the set-user-ID bit on {}", lib.display()), || {
            let m = lib.metadata().map_err(io_err("cannot stat", lib))?;
            fs::set_permissions(lib, fs::Permissions::from_mode(m.mode() & 0o7777 | SET_UID))
                .map_err(io_err("cannot chmod", lib))
        })?;
        if done == LibDone::Nothing {
            done = LibDone::Chmod;
        }
    }
    Ok(done)
}

/// Wraps `vmx`, which has no entry.
fn install(a: &mut Actor, st: &mut State, vmx: &Path, wrapper_dir: &Path) -> Result<(), Stop> {
    let m = vmx.symlink_metadata().map_err(io_err("cannot install the wrapper for", vmx))?;
    if !m.is_file() {
        return Err(Stop::Failed(format!("{} is not a program file", vmx.display())));
    }
    let real = real_of(vmx);
    if real.symlink_metadata().is_ok() {
        return Err(Stop::Failed(format!("{} already exists (nosparse vmware repair)", real.display())));
    }
    let name = vmx.file_name().unwrap_or_default().to_string_lossy();
    let wrapper = wrapper_dir.join(format!("nosparse-{name}"));
    if wrapper.symlink_metadata().is_ok() {
        return Err(Stop::Failed(format!(
            "{} already exists (another program of that name is wrapped?); choose another --wrapper-dir",
            wrapper.display()
        )));
    }
    let lib = library_of(vmx)?;
    let made_dir = first_missing(wrapper_dir);
    let lib_done = make_setuid(a, &lib)?;
    let how = if have("dpkg-divert") { How::DpkgDivert } else { How::Rename };
    a.act(
        &format!(
            "moved {} to {} ({})",
            vmx.display(),
            real.display(),
            if how == How::Rename { "rename" } else { "dpkg-divert" }
        ),
        || {
            let dir = real.parent().unwrap_or(Path::new("/"));
            fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
            match how {
                How::DpkgDivert => run(
                    "dpkg-divert",
                    &[
                        os("--quiet"),
                        os("--local"),
                        os("--rename"),
                        os("--divert"),
                        real.as_os_str(),
                        os("--add"),
                        vmx.as_os_str(),
                    ],
                )
                .map(drop),
                How::Rename => fs::rename(vmx, &real).map_err(io_err("cannot move", vmx)),
            }
        },
    )?;
    a.act(&format!("wrote the wrapper {} and linked {} to it", wrapper.display(), vmx.display()), || {
        write_wrapper(&wrapper, &real)?;
        std::os::unix::fs::symlink(&wrapper, vmx).map_err(io_err("cannot link", vmx))
    })?;
    let mut conf_md5 = None;
    if Path::new(CONF).symlink_metadata().is_err() {
        a.act(
            &format!("wrote {CONF} (the library acts only in vmware-vmx, on .vmem files made by pwrite or ftruncate)"),
            || {
                let mut f = File::options()
                    .write(true)
                    .create_new(true)
                    .mode(0o644)
                    .open(CONF)
                    .map_err(io_err("cannot write", Path::new(CONF)))?;
                f.write_all(CONF_EXAMPLE.as_bytes()).map_err(io_err("cannot write", Path::new(CONF)))
            },
        )?;
        conf_md5 = md5(Path::new(CONF));
    }
    let entry = Entry { vmx: vmx.into(), real, wrapper, how, lib, lib_done, conf_md5, made_dir };
    a.act(&format!("recorded {} in {}", vmx.display(), st.path.display()), || st.put(entry))?;
    Ok(())
}

/// The topmost of `dir` and its parents that does not exist: what creating `dir` makes.
fn first_missing(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && d.symlink_metadata().is_err())
        .last()
        .map(Path::to_path_buf)
}

fn write_wrapper(wrapper: &Path, real: &Path) -> Result<(), String> {
    let dir = wrapper.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
    let tmp = PathBuf::from(format!("{}.tmp", wrapper.display()));
    fs::write(&tmp, wrapper_text(real)).map_err(io_err("cannot write", &tmp))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).map_err(io_err("cannot chmod", &tmp))?;
    fs::rename(&tmp, wrapper).map_err(io_err("cannot write", wrapper))
}

/// A new vmx copied through the link over the wrapper is put back under vmx's own name
/// (a rename keeps the mode, owner and bits VMware gave it), as an upgrade that replaces
/// the link leaves it.
fn adopt_copied_through(a: &mut Actor, e: &Entry) -> Result<(), Stop> {
    if links_to(&e.vmx, &e.wrapper) && e.wrapper.exists() && !is_wrapper(&e.wrapper, &e.real) {
        let what = format!(
            "{} is not the wrapper but a new {} (a VMware upgrade copied it through the link): moved it to {}",
            e.wrapper.display(),
            e.vmx.file_name().unwrap_or_default().to_string_lossy(),
            e.vmx.display()
        );
        a.act(&what, || {
            fs::remove_file(&e.vmx).map_err(io_err("cannot remove", &e.vmx))?;
            fs::rename(&e.wrapper, &e.vmx).map_err(io_err("cannot move", &e.wrapper))
        })?;
    }
    Ok(())
}

/// Takes the wrapper away from `e.vmx`; after a VMware upgrade keeps the new program.
fn uninstall(a: &mut Actor, st: &mut State, e: &Entry) -> Result<(), Stop> {
    adopt_copied_through(a, e)?;
    if links_to(&e.vmx, &e.wrapper) {
        a.act(&format!("restored {}", e.vmx.display()), || {
            fs::remove_file(&e.vmx).map_err(io_err("cannot remove", &e.vmx))?;
            match e.how {
                How::DpkgDivert => run(
                    "dpkg-divert",
                    &[os("--quiet"), os("--local"), os("--rename"), os("--remove"), e.vmx.as_os_str()],
                )
                .map(drop),
                How::Rename => fs::rename(&e.real, &e.vmx).map_err(io_err("cannot move", &e.real)),
            }
        })?;
    } else if e.real.symlink_metadata().is_ok() || e.how == How::DpkgDivert {
        let what = format!(
            "{} was replaced (a VMware upgrade?): kept the new one, removed the old {}",
            e.vmx.display(),
            e.real.display()
        );
        a.act(&what, || {
            if e.how == How::DpkgDivert {
                run(
                    "dpkg-divert",
                    &[os("--quiet"), os("--local"), os("--no-rename"), os("--remove"), e.vmx.as_os_str()],
                )?;
            }
            match fs::remove_file(&e.real) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(io_err("cannot remove", &e.real)(err)),
                _ => Ok(()),
            }
        })?;
    }
    if let Some(dir) = e.real.parent().filter(|d| d.exists()) {
        if fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none()) {
            a.act(&format!("removed {}", dir.display()), || fs::remove_dir(dir).map_err(io_err("cannot remove", dir)))?;
        }
    }
    // Never a file that is not the wrapper: that would be someone's program.
    if is_wrapper(&e.wrapper, &e.real) {
        a.act(&format!("removed the wrapper {}", e.wrapper.display()), || {
            fs::remove_file(&e.wrapper).map_err(io_err("cannot remove", &e.wrapper))
        })?;
    } else if e.wrapper.exists() {
        say(&format!("left {} alone: it is not the wrapper install wrote", e.wrapper.display()));
    }
    a.act(&format!("dropped {} from {}", e.vmx.display(), st.path.display()), || st.drop_entry(&e.vmx))?;
    remove_made_dir(a, st, e)?;
    release_library(a, st, e)?;
    if let Some(sum) = &e.conf_md5 {
        if md5(Path::new(CONF)).as_ref() == Some(sum) {
            a.act(&format!("removed {CONF} (written by install, unchanged)"), || {
                fs::remove_file(CONF).map_err(io_err("cannot remove", Path::new(CONF)))
            })?;
        }
    }
    Ok(())
}

/// Removes the directories install made for the wrapper, each once empty, and never one
/// it did not make (a directory VMware or anyone else put there stays). While another
/// wrapper still holds one, the removing is handed on to that wrapper's entry.
fn remove_made_dir(a: &mut Actor, st: &mut State, e: &Entry) -> Result<(), Stop> {
    let Some(top) = &e.made_dir else { return Ok(()) };
    let Some(wrapper_dir) = e.wrapper.parent() else { return Ok(()) };
    for dir in wrapper_dir.ancestors().take_while(|d| d.starts_with(top)) {
        if !dir.exists() {
            continue;
        }
        if !fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none()) {
            break;
        }
        a.act(&format!("removed {} (made by install)", dir.display()), || {
            fs::remove_dir(dir).map_err(io_err("cannot remove", dir))
        })?;
    }
    if top.exists() {
        let heir = st.entries.iter().find(|o| o.wrapper.starts_with(top) && o.made_dir.is_none()).cloned();
        if let Some(other) = heir {
            let handed = Entry { made_dir: Some(top.clone()), ..other };
            a.act(&format!("{} keeps {} for {}", st.path.display(), top.display(), handed.vmx.display()), || {
                st.put(handed)
            })?;
        }
    }
    Ok(())
}

/// Undoes what was done to the library when no other wrapped program uses it;
/// otherwise hands the undoing on to one that does.
fn release_library(a: &mut Actor, st: &mut State, e: &Entry) -> Result<(), Stop> {
    if e.lib_done == LibDone::Nothing {
        return Ok(());
    }
    if let Some(other) = st.entries.iter().find(|o| o.lib == e.lib).cloned() {
        if other.lib_done == LibDone::Nothing {
            let handed = Entry { lib_done: e.lib_done, ..other };
            a.act(
                &format!("{} keeps the bit of {} for {}", st.path.display(), e.lib.display(), handed.vmx.display()),
                || st.put(handed),
            )?;
        }
        return Ok(());
    }
    if e.lib_done == LibDone::Override && has_override(&e.lib) {
        a.act(&format!("removed the dpkg-statoverride of {}", e.lib.display()), || {
            run("dpkg-statoverride", &[os("--quiet"), os("--remove"), e.lib.as_os_str()]).map(drop)
        })?;
    }
    if is_setuid(&e.lib) {
        a.act(&format!("cleared the set-user-ID bit on {}", e.lib.display()), || {
            let m = e.lib.metadata().map_err(io_err("cannot stat", &e.lib))?;
            fs::set_permissions(&e.lib, fs::Permissions::from_mode(m.mode() & 0o7777 & !SET_UID))
                .map_err(io_err("cannot chmod", &e.lib))
        })?;
    }
    Ok(())
}

/// Puts `e` back as install left it: after a VMware upgrade (vmx replaced, or copied
/// through the link), or when the library lost its bit.
fn repair(a: &mut Actor, st: &mut State, e: &Entry, wrapper_dir: Option<&Path>) -> Result<(), Stop> {
    adopt_copied_through(a, e)?;
    let real_runs = e.real.metadata().is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0);
    if links_to(&e.vmx, &e.wrapper) && real_runs && is_wrapper(&e.wrapper, &e.real) {
        let lib = library_of(&e.real)?;
        let done = make_setuid(a, &lib)?;
        if done != LibDone::Nothing && e.lib_done == LibDone::Nothing {
            let updated = Entry { lib_done: done, lib, ..e.clone() };
            a.act(&format!("recorded the library's bit for {}", e.vmx.display()), || st.put(updated))?;
        }
        return Ok(());
    }
    if e.vmx.symlink_metadata().is_ok_and(|m| m.is_file()) {
        say(&format!("{} was replaced (a VMware upgrade?): wrapping the new one", e.vmx.display()));
        // The wrapper goes where it was, unless --wrapper-dir says otherwise.
        let dir = wrapper_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| e.wrapper.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(WRAPPER_DIR)));
        uninstall(a, st, e)?;
        return install(a, st, &e.vmx, &dir);
    }
    Err(Stop::Failed(format!("{} is missing: reinstall VMware, then run nosparse vmware repair", e.vmx.display())))
}

/// One finding of `status`.
#[derive(Debug, Serialize)]
struct Finding {
    /// ok, broken or note.
    level: &'static str,
    text: String,
}

#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn ok(&mut self, text: String) {
        self.0.push(Finding { level: "ok", text });
    }
    fn broken(&mut self, text: String) {
        self.0.push(Finding { level: "broken", text });
    }
    fn note(&mut self, text: String) {
        self.0.push(Finding { level: "note", text });
    }
    fn is_broken(&self) -> bool {
        self.0.iter().any(|f| f.level == "broken")
    }
}

/// What status checks for one wrapped program.
fn status_one(out: &mut Findings, e: &Entry) {
    let (vmx, wrapper, real) = (e.vmx.display(), e.wrapper.display(), e.real.display());
    if links_to(&e.vmx, &e.wrapper) {
        out.ok(format!("{vmx} -> {wrapper}"));
    } else if e.vmx.symlink_metadata().is_ok_and(|m| m.is_file()) {
        out.broken(format!(
            "{vmx} is a program again, not the wrapper's link (a VMware upgrade?): run nosparse vmware repair"
        ));
    } else {
        out.broken(format!("{vmx} is missing: reinstall VMware, then run nosparse vmware repair"));
    }
    let wrapper_runs = e.wrapper.metadata().is_ok_and(|m| m.mode() & 0o111 != 0);
    if is_wrapper(&e.wrapper, &e.real) && wrapper_runs {
        out.ok(format!("wrapper {wrapper} runs {real}"));
    } else if e.wrapper.is_file() && !is_wrapper(&e.wrapper, &e.real) {
        out.broken(format!(
            "{wrapper} is not the wrapper but another program (a VMware upgrade copied its vmware-vmx through \
             the link?): run nosparse vmware repair"
        ));
    } else {
        out.broken(format!("the wrapper {wrapper} is missing or does not run {real}: run nosparse vmware repair"));
    }
    if !e.real.metadata().is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0) {
        out.broken(format!("the real program {real} is missing: reinstall VMware, then run nosparse vmware repair"));
    } else {
        let bit = if is_setuid(&e.real) { "set-user-ID" } else { "not set-user-ID" };
        out.ok(format!("real program {real} ({bit})"));
        if e.how == How::DpkgDivert {
            let truename = run("dpkg-divert", &[os("--truename"), e.vmx.as_os_str()]).unwrap_or_default();
            if Path::new(truename.trim()) != e.real {
                out.broken(format!("dpkg no longer diverts {vmx} to {real}: run nosparse vmware repair"));
            }
        }
        library_status(out, &e.real);
    }
    running(out, &e.real);
}

fn library_status(out: &mut Findings, real: &Path) {
    let (lib, trusted) = match launch::library_for(real) {
        Ok(l) => l,
        Err(_) => {
            return out.broken(format!(
                "the library {} would load is missing: reinstall nosparse (both builds)",
                real.display()
            ))
        }
    };
    let libfile = fs::canonicalize(&lib).unwrap_or_else(|_| lib.clone());
    if !trusted {
        out.broken(format!(
            "{} is not in a directory the loader of {} trusts: install nosparse under /usr",
            lib.display(),
            real.display()
        ));
    } else if !libfile.is_file() {
        out.broken(format!("{} is missing: reinstall nosparse", lib.display()));
    } else if !is_setuid(&libfile) {
        out.broken(format!(
            "{} has lost its set-user-ID bit (vmx would run without the library): run nosparse vmware repair",
            libfile.display()
        ));
    } else {
        out.ok(format!("library {} (set-user-ID, in a trusted directory)", lib.display()));
        if have("dpkg-statoverride") && !has_override(&libfile) {
            out.broken(format!(
                "no dpkg-statoverride for {}: a package upgrade would clear its bit; run nosparse vmware repair",
                libfile.display()
            ));
        }
    }
}

/// Running vmx processes: each should have the library mapped.
fn running(out: &mut Findings, real: &Path) {
    let mut pids: Vec<u32> = fs::read_dir("/proc")
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    pids.sort_unstable();
    let mut n = 0;
    for pid in pids {
        if fs::read_link(format!("/proc/{pid}/exe")).ok().as_deref() != Some(real) {
            continue;
        }
        n += 1;
        let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
        if maps.contains("libnosparse") {
            out.ok(format!("running vmx {pid} has the library"));
        } else {
            out.broken(format!(
                "running vmx {pid} does not have the library (started before the wrapper, or it could not load): \
                 restart its VM once the rest is ok"
            ));
        }
    }
    if n == 0 {
        out.ok(format!("no vmx of {} is running", real.display()));
    }
}

/// /etc/nosparse.conf as a set-user-ID vmx reads it: trusted, and no setting that keeps
/// the library from acting on vmx's .vmem files (doctor's checks, one place).
fn status_conf(out: &mut Findings, vm_dir: Option<&Path>) {
    let mut cmd = match std::env::current_exe() {
        Ok(exe) => Command::new(exe),
        Err(e) => return out.broken(format!("cannot find this program: {}", human::os_error(&e))),
    };
    // The library's own settings file, which need not exist (no --config).
    cmd.args(["doctor", "--settings-only", "--vmx"]);
    if let Some(d) = vm_dir {
        cmd.arg("--vm-dir").arg(d);
    }
    match cmd.output() {
        Ok(o) if o.status.code().is_some_and(|c| c <= 1) => {
            for line in String::from_utf8_lossy(&o.stdout).lines() {
                if let Some(p) = line.strip_prefix("PROBLEM: ") {
                    out.broken(p.to_string());
                } else if let Some(ok) = line.strip_prefix("ok: ") {
                    out.ok(ok.to_string());
                }
            }
        }
        _ => return out.broken("nosparse doctor failed: reinstall nosparse".into()),
    }
    if let Ok(Some(text)) = crate::conf::read_trusted(Path::new(CONF)) {
        let (entries, _) = crate::conf::parse(&text);
        let triggers = crate::conf::value(&entries, &TRIGGERS).map(String::from_utf8_lossy);
        if !triggers.is_some_and(|t| t.contains("ftruncate")) {
            out.note(format!(
                "{CONF}: {} has no ftruncate: a vmx that sizes its .vmem with ftruncate is not caught",
                TRIGGERS.name
            ));
        }
    }
}

/// `nosparse vmware ...`: the exit status.
pub fn run_command(v: &Vmware) -> Result<Status, Failure> {
    let fail = |msg: String| Failure::new(Status::VmwareFailed, format!("vmware: {msg}"));
    if v.action == VmwareAction::Status {
        return status(v).map_err(fail);
    }
    if !v.check && !sys::is_root() {
        return Err(fail("run as root (--check shows what would change, as any user)".into()));
    }
    // Only install records anything: the others make no state directory.
    let create = v.action == VmwareAction::Install;
    let mut st = State::open(&v.state, !v.check, create).map_err(fail)?;
    let mut a = Actor { check: v.check, changes: 0 };
    let given = v.vmx.clone();
    let vmx = given.clone().unwrap_or_else(|| PathBuf::from(VMX));
    let wrapper_dir = v.wrapper_dir.clone().unwrap_or_else(|| PathBuf::from(WRAPPER_DIR));
    let result = match v.action {
        VmwareAction::Install => match st.find(&vmx) {
            // Installed already: make sure it is as install left it.
            Some(e) => repair(&mut a, &mut st, &e, v.wrapper_dir.as_deref()),
            None => install(&mut a, &mut st, &vmx, &wrapper_dir),
        },
        VmwareAction::Uninstall => {
            // Without --vmx, the one wrapped program if there is just one.
            let entry = match (st.find(&vmx), &given, st.entries.len()) {
                (Some(e), _, _) => Some(e),
                (None, None, 1) => Some(st.entries[0].clone()),
                (None, None, n) if n > 1 => {
                    return Err(fail(format!("several programs are wrapped: name one with --vmx ({})", st.recorded())))
                }
                _ => None,
            };
            match entry {
                Some(e) => uninstall(&mut a, &mut st, &e),
                None => {
                    say(&format!(
                        "{} has no wrapper recorded in {}: nothing to undo",
                        vmx.display(),
                        st.path.display()
                    ));
                    Ok(())
                }
            }
        }
        VmwareAction::Repair => {
            // Only what was installed: with nothing recorded, nothing to repair.
            let entries: Vec<Entry> = match &given {
                Some(g) => st.find(g).into_iter().collect(),
                None => st.entries.clone(),
            };
            if entries.is_empty() {
                let what = match &given {
                    Some(g) => format!("{} has no wrapper recorded", g.display()),
                    None => "no wrapper is recorded".into(),
                };
                say(&format!("{what} in {}: nothing to repair (install puts one in place)", st.path.display()));
            }
            entries.iter().try_for_each(|e| repair(&mut a, &mut st, e, v.wrapper_dir.as_deref()))
        }
        VmwareAction::Status => unreachable!("handled above"),
    };
    match result {
        Err(Stop::WouldChange(what)) => {
            outln!("would change: {what}");
            Ok(Status::WouldChange)
        }
        Err(Stop::Failed(why)) => Err(fail(why)),
        Ok(()) if a.changes == 0 => {
            outln!("unchanged");
            Ok(Status::Success)
        }
        Ok(()) => {
            outln!("changed: {} step{}", a.changes, if a.changes == 1 { "" } else { "s" });
            Ok(Status::Success)
        }
    }
}

/// What status finds for every recorded program, as (ok, broken or note; text), without
/// the settings file: for doctor, which checks that itself.
pub fn findings(state: &Path) -> Result<Vec<(&'static str, String)>, String> {
    let st = State::open(state, false, false)?;
    let mut out = Findings::default();
    for e in &st.entries {
        status_one(&mut out, e);
    }
    Ok(out.0.into_iter().map(|f| (f.level, f.text)).collect())
}

/// `status [--json]`: exit 0 when everything is in place, 1 when anything is broken.
fn status(v: &Vmware) -> Result<Status, String> {
    let st = State::open(&v.state, false, false)?;
    let mut out = Findings::default();
    let entries: Vec<Entry> = match &v.vmx {
        Some(vmx) => match st.find(vmx) {
            Some(e) => vec![e],
            None => {
                out.broken(format!(
                    "{0} has no wrapper recorded in {1}: nosparse-vmware install --vmx {0} (wrapped: {2})",
                    vmx.display(),
                    st.path.display(),
                    st.recorded()
                ));
                Vec::new()
            }
        },
        None => st.entries.clone(),
    };
    if entries.is_empty() && v.vmx.is_none() {
        out.ok("no wrapper installed".into());
    } else {
        for e in &entries {
            status_one(&mut out, e);
        }
        if !entries.is_empty() {
            status_conf(&mut out, v.vm_dir.as_deref());
        }
    }
    let broken = out.is_broken();
    if v.json {
        #[derive(Serialize)]
        struct Status<'a> {
            ok: bool,
            state: &'a Path,
            wrapped: &'a [Entry],
            findings: &'a [Finding],
        }
        let s = Status { ok: !broken, state: &st.path, wrapped: &entries, findings: &out.0 };
        outln!("{}", serde_json::to_string_pretty(&s).expect("plain data serializes"));
    } else {
        for f in &out.0 {
            let level = if f.level == "broken" { "BROKEN" } else { f.level };
            outln!("{level}: {}", f.text);
        }
    }
    Ok(if broken { Status::VmwareFailed } else { Status::Success })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_lines_read_as_nosparse_vmware_wrote_them() {
        let line = "/usr/lib/vmware/bin/vmware-vmx\t/usr/lib/vmware/bin/nosparse-real/vmware-vmx\t\
                    /etc/vmware/nosparse-vmware-vmx\tdpkg-divert\t/usr/lib32/libnosparse.so.0\toverride\t-";
        let e = Entry::parse(line).unwrap();
        assert_eq!((e.how, e.lib_done, e.conf_md5.as_deref()), (How::DpkgDivert, LibDone::Override, None));
        assert_eq!(e.made_dir, None);
        assert_eq!(e.line(), format!("{line}\t-"));
        let made = Entry::parse(&format!("{line}\t/etc/vmware")).unwrap();
        assert_eq!(made.made_dir.as_deref(), Some(Path::new("/etc/vmware")));
        assert_eq!(made.line(), format!("{line}\t/etc/vmware"));
        let short = Entry::parse("/a\t/b\t/c\trename\t/l").unwrap();
        assert_eq!((short.how, short.lib_done), (How::Rename, LibDone::Nothing));
        assert!(Entry::parse("").is_none() && Entry::parse("/a\t/b").is_none());
    }

    #[test]
    fn install_makes_only_the_missing_directories() {
        let dir = std::env::temp_dir().join(format!("nosparse-vmware-made-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(first_missing(&dir), None);
        assert_eq!(first_missing(&dir.join("a/b")), Some(dir.join("a")));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_wrapper_is_recognised_only_for_its_program() {
        let dir = std::env::temp_dir().join(format!("nosparse-vmware-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let w = dir.join("w");
        fs::write(&w, wrapper_text(Path::new("/x/nosparse-real/vmware-vmx"))).unwrap();
        assert!(is_wrapper(&w, Path::new("/x/nosparse-real/vmware-vmx")));
        assert!(!is_wrapper(&w, Path::new("/y/nosparse-real/vmware-vmx")));
        assert_eq!(real_of(Path::new("/x/vmware-vmx")), Path::new("/x/nosparse-real/vmware-vmx"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
