//! The supervisor's only contact with the engine: the settings, and `prepare` (gather
//! the facts, judge) before the call / `finish` (allocate after success, log) after it.
//!
//! `prepare` and `finish` have the shape of `nosparse_core::engine`'s, which is being
//! written in parallel; until it lands they are a stand-in here that judges with the
//! same pure policy (`nosparse_core::policy`) and allocates the new range with
//! `fallocate(FALLOC_FL_KEEP_SIZE)` after the call succeeded. When the engine lands,
//! this module becomes a few `use` lines and nothing else in the supervisor changes.

use nosparse_core::config::{self, BadList, Config, FileState};
use nosparse_core::error::Errno;
use nosparse_core::fs;
use nosparse_core::log::Bytes;
use nosparse_core::policy::{self, Call, Decision, File, Plan};
use nosparse_core::settings::{Sink, Trigger};
use nosparse_core::sys;

/// The process the engine acts for, and its open file, seen from the supervisor.
pub struct Target<'a> {
    /// A descriptor in THIS process for the program's open file description.
    pub fd: i32,
    /// `/proc/PID/fd/N\0`, to read the path.
    pub proc_fd_path: &'a [u8],
    /// For the log line: `name[pid]: nosparse: ...`.
    pub name: &'a [u8],
    pub pid: u32,
    /// The program's RLIMIT_FSIZE.
    pub fsize_limit: u64,
}

/// What was decided before the call.
pub enum Prepared {
    /// Not a creation (or not one to act on): the program makes its call itself.
    Untouched,
    /// `NOSPARSE_ON_ERROR=fail` and the creation cannot be served: fail the call.
    Fail(Errno),
    /// A creation: make the call, then [`finish`].
    Act(Work),
}

/// What `finish` needs from `prepare`.
pub struct Work {
    plan: Plan,
    trigger: Trigger,
    started_ns: u64,
}

/// The settings the supervisor acts with: `/etc/nosparse.conf`, then the environment,
/// then the launcher's options (`overrides`), as the library reads them in the program.
pub fn settings(overrides: &[(&'static str, String)]) -> Config {
    let mut cfg = config::DEFAULT;
    let mut io = vec![0u8; config::CONFIG_FILE_MAX + 1];
    let (state, text) = config::read_file(&mut io);
    if let FileState::Untrusted(_) = state {
        // As in the library: a settings file that is there but untrusted switches it off.
        cfg.disabled = true;
        return cfg;
    }
    let mut bad = BadList::new();
    cfg.apply_file(text, &mut bad);
    let env: Vec<(&'static str, Vec<u8>)> = nosparse_core::settings::SETTINGS
        .iter()
        .filter_map(|s| {
            let from_option = overrides.iter().rev().find(|(k, _)| *k == s.name).map(|(_, v)| v.clone().into_bytes());
            let from_env = || std::env::var_os(s.name).map(std::os::unix::ffi::OsStringExt::into_vec);
            from_option.or_else(from_env).map(|v| (s.name, v))
        })
        .collect();
    let mut bad = BadList::new();
    cfg.apply_env(|name| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_slice()), &mut bad);
    for b in bad.iter() {
        crate::launch::warn(&format!(
            "ignoring {}={:?}: {}; keeping the default",
            String::from_utf8_lossy(b.name),
            String::from_utf8_lossy(b.value),
            b.why
        ));
    }
    cfg
}

/// Gathers the facts about the program's file and judges the call.
pub fn prepare(t: &Target, cfg: &Config, trigger: Trigger, offset: i64) -> Prepared {
    let (Ok(open_flags), Ok(st)) = (sys::getfl(t.fd), sys::fstat(t.fd)) else { return Prepared::Untouched };
    let call = Call { trigger, offset, open_flags, regular: st.is_regular(), size: st.size, blksize: st.blksize };
    if policy::screen(cfg, &call).is_err() {
        return Prepared::Untouched;
    }
    let mut io = vec![0u8; 8192];
    let Ok(data) = fs::data_fs(t.fd, &mut io) else { return Prepared::Untouched };
    let path = fd_path(t.proc_fd_path);
    let file = File {
        inode_flags: sys::inode_flags(t.fd).unwrap_or(0),
        fs: data.kind,
        overlay: data.overlay,
        free: data.statfs.free_bytes(sys::is_root()),
        path_matches: cfg.matcher.matches(&path),
        fsize_limit: t.fsize_limit,
    };
    match policy::judge(cfg, &call, &file) {
        Decision::Allocate(plan) => Prepared::Act(Work { plan, trigger, started_ns: sys::monotonic_ns() }),
        Decision::NoRoom { .. } if cfg.on_error == nosparse_core::settings::OnError::Fail => {
            Prepared::Fail(Errno(libc::ENOSPC))
        }
        _ => Prepared::Untouched,
    }
}

/// After the call: allocates `[roundup(old size, block), min(offset + 1, size now))`
/// if it succeeded (`ret >= 0`; otherwise `-errno`), and logs one line.
pub fn finish(t: &Target, cfg: &Config, work: Work, ret: i64) {
    if ret < 0 {
        return;
    }
    let Ok(st) = sys::fstat(t.fd) else { return };
    let end = work.plan.end.min(st.size);
    if end <= work.plan.start {
        return;
    }
    let r = sys::fallocate(t.fd, libc::FALLOC_FL_KEEP_SIZE, work.plan.start, end - work.plan.start);
    if cfg.log != Sink::Stderr {
        return;
    }
    let path = fd_path(t.proc_fd_path);
    let name = String::from_utf8_lossy(t.name);
    let path = String::from_utf8_lossy(&path);
    let len = Bytes((end - work.plan.start) as u64);
    let ms = sys::monotonic_ns().saturating_sub(work.started_ns) / 1_000_000;
    match r {
        Ok(()) => eprintln!(
            "{name}[{}]: nosparse: preallocated {path}: {len} by fallocate in {ms} ms (on {}, supervised)",
            t.pid,
            work.trigger.name()
        ),
        Err(e) => eprintln!(
            "{name}[{}]: nosparse: could not preallocate {path} ({len} by fallocate): {}; the file stays sparse",
            t.pid,
            e.name_or_errno()
        ),
    }
}

/// The file's path, from `/proc/PID/fd/N`, without " (deleted)".
fn fd_path(link: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 4096 + 16];
    match sys::readlink(link, &mut buf) {
        Ok(n) if n < buf.len() => {
            buf.truncate(n);
            if buf.ends_with(b" (deleted)") {
                buf.truncate(n - b" (deleted)".len());
            }
            buf
        }
        _ => b"(unknown path)".to_vec(),
    }
}
