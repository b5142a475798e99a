//! What the deployment scenarios do to the host, and undo: the builds install.sh takes,
//! the packages, commands run as a user would (alone, as `nobody`, or with private
//! /etc/ld.so.preload and /etc/nosparse.conf), and guards that put /usr, /etc, /opt and
//! the dpkg database back when dropped, the test failed or not. What a killed run could
//! not put back is named in a ledger, and undone before the next run's first change.

use crate::common::{have, is_root, require, Scratch, MIB};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, Once, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// The repository: scripts/install.sh takes its builds from ROOT/target.
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");
pub const I686: &str = "i686-unknown-linux-gnu";
/// The VMware-like tree the scenarios put set-user-ID programs in: outside the build
/// tree, whose parents `nobody` may not be allowed to enter.
pub const V: &str = "/opt/nosparse-deploy-test";
/// Where the installed tools are, under /usr.
pub const NOSPARSE: &str = "/usr/bin/nosparse";
pub const NOSPARSE_VMWARE: &str = "/usr/sbin/nosparse-vmware";
/// The state `nosparse vmware` keeps when given no `--state`.
pub const VMWARE_STATE: &str = "/var/lib/nosparse/vmware";
/// How long a program may take to be loaded and asleep before the test calls it stuck.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

/// A command line from strings and paths alike.
macro_rules! argv {
    ($($a:expr),* $(,)?) => {
        vec![$(std::ffi::OsString::from(AsRef::<std::ffi::OsStr>::as_ref(&$a))),*]
    };
}
pub(crate) use argv;

/// `n` MiB, as a command-line argument.
pub fn mib(n: u64) -> String {
    (n * MIB).to_string()
}

/// A command about to run, with what to call it in a failure's message.
pub struct Cmd {
    cmd: Command,
    what: String,
}

/// How a command ended and what it printed.
pub struct Ran {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.status.success()
    }

    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// What it printed on stdout, without the final newlines (as `$(...)` gives it).
    pub fn out(&self) -> &str {
        self.stdout.trim_end_matches('\n')
    }

    /// stdout and stderr together, as `2>&1` gives them.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl fmt::Display for Ran {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match (self.status.code(), self.status.signal()) {
            (Some(c), _) => format!("exit {c}"),
            (None, s) => format!("signal {s:?}"),
        };
        write!(f, "`{}` ({how}):\n{}{}", self.what, self.stdout, self.stderr)
    }
}

/// `argv` as it runs on the host, with none of the caller's `NOSPARSE_*` settings, no
/// LD_PRELOAD, and no LD_LIBRARY_PATH (cargo's names its deps directory, which holds a
/// libnosparse.so of its own: the loader must find the one installed).
pub fn cmd(argv: Vec<OsString>) -> Cmd {
    let what = argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
    let (program, args) = argv.split_first().expect("a program");
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(ROOT).stdin(Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("NOSPARSE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env_remove("LD_PRELOAD").env_remove("LD_LIBRARY_PATH");
    Cmd { cmd, what }
}

impl Cmd {
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Cmd {
        self.what = format!("{key}={} {}", value.as_ref().to_string_lossy(), self.what);
        self.cmd.env(key, value);
        self
    }

    /// Runs it, however it ends.
    pub fn raw(mut self) -> Ran {
        let out = self.cmd.output().unwrap_or_else(|e| panic!("cannot run `{}`: {e}", self.what));
        Ran {
            what: self.what,
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs it; fails the test unless it exits 0.
    pub fn ok(self) -> Ran {
        let r = self.raw();
        assert!(r.ok(), "{r}");
        r
    }

    /// Starts it and leaves it running, until [`Running`] is dropped.
    pub fn spawn(mut self) -> Running {
        let child = self
            .cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", self.what));
        Running(child)
    }
}

/// `argv` run by `nobody` (its own group, no other), as an unprivileged user would.
pub fn as_nobody(argv: Vec<OsString>) -> Vec<OsString> {
    let mut v = argv!["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"];
    v.extend(argv);
    v
}

/// A program left running; killed and reaped when dropped.
pub struct Running(Child);

impl Running {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits until the process runs `program` and is asleep in it: its loader is done.
    pub fn wait_loaded(&mut self, program: &Path) {
        let pid = self.pid();
        let started = Instant::now();
        loop {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
            if state == Some('S') && fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == program) {
                return;
            }
            if let Some(status) = self.0.try_wait().expect("wait") {
                panic!("process {pid} ended ({status}) before it settled in {}", program.display());
            }
            assert!(started.elapsed() < SETTLE_LIMIT, "process {pid} never settled in {}", program.display());
            std::thread::yield_now();
        }
    }

    /// Ends the program.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One scenario: its scratch directory (mode 755: the wrapper `nobody` runs lives
/// there), with the host's `$LIB` for each class of program.
pub struct Deploy {
    pub s: Scratch,
    /// `$LIB` as the 64-bit loader expands it (e.g. `lib/x86_64-linux-gnu`).
    pub lib64: String,
    /// `$LIB` as the 32-bit loader expands it (e.g. `lib32`).
    pub lib32: String,
}

/// Starts a scenario that needs root and `tools`. None (a loud skip) where that is
/// impossible outside CI; under CI=true, a failure.
pub fn start(name: &str, tools: &[&str]) -> Option<Deploy> {
    if !require(is_root(), "the deployment tests need root (/usr, /opt, setuid programs, dpkg, mount namespaces)") {
        return None;
    }
    for tool in tools {
        if !require(have(tool), &format!("{tool} is not installed (scripts/setup.sh installs it)")) {
            return None;
        }
    }
    builds();
    let s = Scratch::new(name);
    fs::set_permissions(&s.dir, fs::Permissions::from_mode(0o755)).expect("chmod the scratch dir");
    Some(Deploy { s, lib64: dst_lib("/lib64/ld-linux-x86-64.so.2"), lib32: dst_lib("/lib/ld-linux.so.2") })
}

/// `$LIB` for the programs of one loader, as it says itself.
fn dst_lib(loader: &str) -> String {
    let r = cmd(argv![loader, "--list-diagnostics"]).ok();
    let line =
        r.stdout.lines().find_map(|l| l.strip_prefix("dl_dst_lib=")).unwrap_or_else(|| panic!("no dl_dst_lib: {r}"));
    line.trim_matches('"').to_string()
}

/// Runs the bind mounts, then `"$@"`: its process is the program's (`exec`).
const WITH_SYSTEM_FILES: &str =
    r#"mount --bind "$1" /etc/ld.so.preload && mount --bind "$2" /etc/nosparse.conf && shift 2 && exec "$@""#;

impl Deploy {
    pub fn path(&self, name: &str) -> PathBuf {
        self.s.path(name)
    }

    /// `argv` in a private mount namespace of its own, where /etc/ld.so.preload and
    /// /etc/nosparse.conf are this scenario's `ld.so.preload` and `nosparse.conf`: no
    /// other process sees them. Needs [`placeholders`] where the host has no such files.
    pub fn sys(&self, argv: Vec<OsString>) -> Cmd {
        let mut c = cmd(argv!["unshare", "--mount", "--propagation", "private", "sh", "-c", WITH_SYSTEM_FILES, "sh"]);
        c.cmd.arg(self.path("ld.so.preload")).arg(self.path("nosparse.conf")).args(&argv);
        c.what = format!("(private /etc) {}", argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "));
        c
    }

    /// Writes what the private /etc/ld.so.preload holds.
    pub fn preload(&self, text: &str) {
        fs::write(self.path("ld.so.preload"), text).expect("write ld.so.preload");
    }

    /// Writes what the private /etc/nosparse.conf holds, with `mode`.
    pub fn conf(&self, text: &str, mode: u32) {
        let p = self.path("nosparse.conf");
        fs::write(&p, text).expect("write nosparse.conf");
        chmod(&p, mode);
    }

    /// The settings a wrapped vmx reads: the example nosparse-vmware installs; no preload.
    pub fn vmx_conf(&self) {
        let example = fs::read_to_string(Path::new(ROOT).join("deploy/nosparse.conf.example")).expect("the example");
        self.conf(&example, 0o644);
        self.preload("");
    }
}

pub fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

/// Both classes' release builds of the library, fake_vmx and the command.
pub struct Builds {
    pub vmx64: PathBuf,
    pub vmx32: PathBuf,
}

/// Builds what scripts/install.sh installs (`--no-build`), where it takes them:
/// ROOT/target/release and ROOT/target/i686-unknown-linux-gnu/release, whatever the
/// profile of this test. Panics with cargo's own output when a build fails.
pub fn builds() -> &'static Builds {
    static B: OnceLock<Builds> = OnceLock::new();
    B.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let target_dir = Path::new(ROOT).join("target");
        for target in [None, Some(I686)] {
            // Naming an example limits a build to it: the library and the command are named too.
            for what in [
                &["-p", "nosparse", "--lib", "--example", "fake_vmx"][..],
                &["-p", "nosparse-cli", "--bin", "nosparse"],
            ] {
                let mut a = argv![cargo, "build", "--release", "--quiet", "--target-dir", target_dir];
                a.extend(what.iter().map(OsString::from));
                if let Some(t) = target {
                    a.extend(argv!["--target", t]);
                }
                cmd(a).ok();
            }
        }
        let dir = |t: Option<&str>| target_dir.join(t.unwrap_or("")).join("release");
        Builds { vmx64: dir(None).join("examples/fake_vmx"), vmx32: dir(Some(I686)).join("examples/fake_vmx") }
    })
}

/// The Debian packages (scripts/package.sh), made once for every scenario that needs
/// them; their build is also what scripts/package-rpm.sh packages.
pub fn debs() -> &'static Path {
    static D: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let made = D.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("deploy-debs");
        let r = cmd(argv!["bash", "scripts/package.sh", dir]).raw();
        if r.ok() {
            Ok(dir)
        } else {
            Err(format!("scripts/package.sh failed: {r}"))
        }
    });
    made.as_deref().unwrap_or_else(|e| panic!("{e}"))
}

/// The one file in `dir` named `prefix*suffix` (a glob that must match exactly one).
pub fn one(dir: &Path, prefix: &str, suffix: &str) -> PathBuf {
    let found = matching(dir, prefix, suffix);
    assert_eq!(found.len(), 1, "one {prefix}*{suffix} expected in {}: {found:?}", dir.display());
    found.into_iter().next().unwrap()
}

/// The files in `dir` named `prefix*suffix`, sorted.
pub fn matching(dir: &Path, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap_or_default().to_string_lossy();
            n.len() >= prefix.len() + suffix.len() && n.starts_with(prefix) && n.ends_with(suffix)
        })
        .collect();
    found.sort();
    found
}

/// Whether some line of `text` matches `pattern`: text where `.*` stands for any run
/// of characters, a leading `^` anchors it at the start of the line and a trailing `$`
/// at its end; every other character, `.` included, stands for itself.
pub fn has_line(text: &str, pattern: &str) -> bool {
    text.lines().any(|l| line_matches(l, pattern))
}

fn line_matches(line: &str, pattern: &str) -> bool {
    let (anchored, p) = pattern.strip_prefix('^').map_or((false, pattern), |p| (true, p));
    let (to_end, p) = p.strip_suffix('$').map_or((false, p), |p| (true, p));
    let parts: Vec<&str> = p.split(".*").collect();
    let mut at = 0;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if last && to_end {
            // The last piece ends the line, after everything matched before it.
            let fits = line.len() >= at + part.len() && line.ends_with(part);
            return fits && (!anchored || i > 0 || line.len() == part.len());
        }
        if i == 0 && anchored {
            if !line.starts_with(part) {
                return false;
            }
            at = part.len();
        } else {
            match line[at..].find(part) {
                Some(k) => at += k + part.len(),
                None => return false,
            }
        }
    }
    true
}

/// st_blocks * 512 and st_size, as `stat` gives them (independent of the library's own
/// FIEMAP code).
fn allocation(p: &Path) -> (u64, u64) {
    let m = fs::metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
    (m.blocks() * 512, m.len())
}

/// Asserts every byte of `p` is allocated.
pub fn assert_whole(p: &Path) {
    let (alloc, size) = allocation(p);
    assert!(alloc >= size, "{} is not whole: {alloc} of {size} allocated", p.display());
}

/// Asserts less than half of `p` is allocated.
pub fn assert_sparse(p: &Path) {
    let (alloc, size) = allocation(p);
    assert!(alloc < size / 2, "{} is not sparse: {alloc} of {size} allocated", p.display());
}

/// `[ -u p ]`: set-user-ID (through a link).
pub fn setuid(p: impl AsRef<Path>) -> bool {
    fs::metadata(p).is_ok_and(|m| m.mode() & 0o4000 != 0)
}

/// `[ -L p ]`.
pub fn is_link(p: impl AsRef<Path>) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

/// `[ -x p ]` for root: a file with an execute bit.
pub fn executable(p: impl AsRef<Path>) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
}

/// `cmp a b`.
pub fn same_bytes(a: impl AsRef<Path>, b: impl AsRef<Path>) -> bool {
    let read = |p: &Path| fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    read(a.as_ref()) == read(b.as_ref())
}

/// Every path under `p`, for a message.
pub fn tree(p: &Path) -> String {
    let mut out = vec![p.display().to_string()];
    if let Ok(entries) = fs::read_dir(p) {
        let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for e in entries {
            if fs::symlink_metadata(&e).is_ok_and(|m| m.is_dir()) {
                out.push(tree(&e));
            } else {
                out.push(e.display().to_string());
            }
        }
    }
    out.join("\n")
}

/// `install -m MODE -o root SRC DST`: a new file at DST (whatever was there is unlinked).
pub fn install_program(src: &Path, dst: &Path, mode: u32) {
    if fs::symlink_metadata(dst).is_ok() {
        fs::remove_file(dst).unwrap_or_else(|e| panic!("rm {}: {e}", dst.display()));
    }
    fs::copy(src, dst).unwrap_or_else(|e| panic!("copy {} to {}: {e}", src.display(), dst.display()));
    std::os::unix::fs::chown(dst, Some(0), Some(0)).unwrap_or_else(|e| panic!("chown {}: {e}", dst.display()));
    chmod(dst, mode);
}

/// The host is changed by one scenario at a time: each holds this from its first change
/// to its last undo. The first to take it undoes what a killed run left.
pub fn host() -> MutexGuard<'static, ()> {
    static HOST: Mutex<()> = Mutex::new(());
    static TIDY: Once = Once::new();
    let guard = HOST.lock().unwrap_or_else(PoisonError::into_inner);
    TIDY.call_once(|| {
        undo_vmware();
        for line in fs::read_to_string(ledger()).unwrap_or_default().lines() {
            if let Some(change) = Change::parse(line) {
                change.undo();
            }
        }
        let _ = fs::remove_file(ledger());
    });
    guard
}

/// What a run changed outside its scratch directory and has not yet put back, one
/// change a line (the name the old deployment script used, so its leftovers are undone
/// too).
fn ledger() -> PathBuf {
    Path::new(ROOT).join("target/deploy-test.leftovers")
}

/// A change to the host that a guard undoes.
#[derive(Clone, PartialEq)]
enum Change {
    /// scripts/install.sh under /usr.
    Usr,
    /// The Debian packages installed.
    Deb,
    /// An empty file made where the host has none, to bind-mount over.
    Placeholder(String),
}

impl Change {
    fn line(&self) -> String {
        match self {
            Change::Usr => "usr".into(),
            Change::Deb => "deb".into(),
            Change::Placeholder(p) => format!("placeholder {p}"),
        }
    }

    fn parse(line: &str) -> Option<Change> {
        match line {
            "usr" => Some(Change::Usr),
            "deb" => Some(Change::Deb),
            _ => line.strip_prefix("placeholder ").map(|p| Change::Placeholder(p.into())),
        }
    }

    /// Puts the host back; quietly, as far as it can (this runs in drops).
    fn undo(&self) {
        match self {
            Change::Usr => {
                undo_vmware();
                let _ = cmd(argv!["scripts/uninstall.sh"]).raw();
            }
            Change::Deb => {
                undo_vmware();
                let _ = fs::remove_file(VMWARE_STATE);
                let _ = cmd(argv!["dpkg", "--purge", "nosparse", "libnosparse0", "lib32nosparse0"]).raw();
            }
            Change::Placeholder(p) => {
                if fs::metadata(p).is_ok_and(|m| m.is_file() && m.len() == 0) {
                    let _ = fs::remove_file(p);
                }
            }
        }
    }
}

/// A change to the host, named in the ledger until it is undone, when dropped.
pub struct Undo(Change);

impl Undo {
    fn record(change: Change) -> Undo {
        let mut f = fs::OpenOptions::new().create(true).append(true).open(ledger()).expect("open the ledger");
        writeln!(f, "{}", change.line()).expect("write the ledger");
        Undo(change)
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        self.0.undo();
        let line = self.0.line();
        let kept: Vec<String> = fs::read_to_string(ledger())
            .unwrap_or_default()
            .lines()
            .filter(|l| *l != line)
            .map(|l| format!("{l}\n"))
            .collect();
        let _ = if kept.is_empty() { fs::remove_file(ledger()) } else { fs::write(ledger(), kept.concat()) };
    }
}

/// Installs under /usr with scripts/install.sh, as an admin would; scripts/uninstall.sh
/// when dropped. Refuses to overwrite an install that is there already.
pub fn usr_install(t: &Deploy) -> Undo {
    for f in
        [NOSPARSE.to_string(), format!("/usr/{}/libnosparse.so", t.lib64), format!("/usr/{}/libnosparse.so", t.lib32)]
    {
        assert!(!Path::new(&f).exists(), "{f} exists already: this test would overwrite an existing install");
    }
    let undo = Undo::record(Change::Usr);
    cmd(argv!["scripts/install.sh", "--no-build"]).ok();
    undo
}

/// The Debian packages, purged when dropped (installing them is the scenario's).
pub fn debian_packages_purged_after() -> Undo {
    Undo::record(Change::Deb)
}

/// Empty files at /etc/ld.so.preload and /etc/nosparse.conf where the host has none, for
/// [`Deploy::sys`] to bind-mount over; removed when dropped. Mode 644: an empty,
/// trusted settings file changes nothing for the host's processes meanwhile.
pub fn placeholders() -> Vec<Undo> {
    let mut made = Vec::new();
    for f in ["/etc/ld.so.preload", "/etc/nosparse.conf"] {
        if !Path::new(f).exists() {
            made.push(Undo::record(Change::Placeholder(f.into())));
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(f)
                .unwrap_or_else(|e| panic!("create {f}: {e}"));
        }
    }
    made
}

/// A set-user-ID root fake vmx of each class, in its own VMware-like tree ([`V`]); the
/// tree and everything `nosparse vmware` did to it undone when dropped.
pub struct VmwareTree;

impl VmwareTree {
    pub fn new() -> VmwareTree {
        undo_vmware();
        let b = builds();
        for d in ["", "/bin32", "/bin64", "/vm"] {
            let d = PathBuf::from(format!("{V}{d}"));
            fs::create_dir_all(&d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
            chmod(&d, 0o755);
        }
        install_program(&b.vmx32, Path::new(&format!("{V}/bin32/vmware-vmx")), 0o4755);
        install_program(&b.vmx64, Path::new(&format!("{V}/bin64/vmware-vmx")), 0o4755);
        chmod(Path::new(&format!("{V}/vm")), 0o1777);
        VmwareTree
    }
}

impl Drop for VmwareTree {
    fn drop(&mut self) {
        undo_vmware();
    }
}

/// Puts back what the VMware scenarios change: the diversions of their programs, the
/// libraries' statoverrides and set-user-ID bits, their tree. Quiet: this runs in drops.
fn undo_vmware() {
    let diversions = cmd(argv!["dpkg-divert", "--list"]).raw().stdout;
    for line in diversions.lines() {
        let diverted = line.strip_prefix("local diversion of ").and_then(|r| r.split_once(" to ")).map(|(f, _)| f);
        if let Some(f) = diverted.filter(|f| f.starts_with(&format!("{V}/"))) {
            let _ = fs::remove_file(f);
            let _ = cmd(argv!["dpkg-divert", "--quiet", "--local", "--rename", "--remove", f]).raw();
        }
    }
    let overrides = cmd(argv!["dpkg-statoverride", "--list"]).raw().stdout;
    for f in overrides.lines().filter_map(|l| l.split_whitespace().nth(3)).filter(|f| f.contains("libnosparse")) {
        let _ = cmd(argv!["dpkg-statoverride", "--quiet", "--remove", f]).raw();
    }
    // Set-user-ID libraries two levels down /usr/lib*, as find -maxdepth 2 sees them.
    let libdirs = fs::read_dir("/usr").into_iter().flatten().flatten().map(|e| e.path());
    for dir in libdirs.filter(|d| d.file_name().is_some_and(|n| n.to_string_lossy().starts_with("lib"))) {
        if is_link(&dir) {
            continue;
        }
        let mut files = Vec::new();
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                files.extend(fs::read_dir(&p).into_iter().flatten().flatten().map(|e| e.path()));
            } else {
                files.push(p);
            }
        }
        for f in files {
            let named = f.file_name().is_some_and(|n| n.to_string_lossy().starts_with("libnosparse.so"));
            if let Some(m) = fs::symlink_metadata(&f).ok().filter(|m| named && m.is_file() && m.mode() & 0o4000 != 0) {
                let _ = fs::set_permissions(&f, fs::Permissions::from_mode(m.mode() & 0o7777 & !0o4000));
            }
        }
    }
    let _ = fs::remove_dir_all(V);
}
