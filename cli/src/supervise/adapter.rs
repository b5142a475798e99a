//! The supervisor's only contact with the engine: the settings, and `prepare` (gather
//! the facts, judge) before the call / `finish` (allocate after success, log) after it
//! — `nosparse_core::engine`'s own, run on the supervisor's duplicate of the program's
//! descriptor, for the program's pid and name.

use nosparse_core::config::{self, BadList, Config, FileState};
use nosparse_core::engine::{self, Space};
use nosparse_core::error::Errno;
use nosparse_core::log::Ident;
use nosparse_core::policy;
use nosparse_core::settings::Trigger;

/// The process the engine acts for, and its open file, seen from the supervisor.
pub struct Target<'a> {
    /// A descriptor in THIS process for the program's open file description.
    pub fd: i32,
    /// The program's number for it: the path is read from `/proc/PID/fd/N`.
    pub program_fd: i32,
    /// For the log line: `name[pid]: nosparse: ...`.
    pub name: &'a [u8],
    pub pid: u32,
}

impl Target<'_> {
    fn engine(&self) -> engine::Target<'_> {
        engine::Target {
            fd: self.fd,
            program_fd: self.program_fd,
            pid: self.pid,
            ident: Ident::Of { name: self.name, pid: self.pid },
        }
    }
}

/// What was decided before the call.
pub enum Prepared {
    /// Not a creation (or not one to act on): the program makes its call itself.
    Untouched,
    /// `NOSPARSE_ON_ERROR=fail` and the creation cannot be served: fail the call.
    Fail(Errno),
    /// A creation: make the call, then [`finish`].
    Act(engine::Work),
}

/// The settings the supervisor acts with: `/etc/nosparse.conf`, then the environment,
/// then the launcher's options (`overrides`), as the library reads them in the program.
pub fn settings(overrides: &[(&'static str, String)]) -> Config {
    // NOSPARSE_LOG=stderr writes only to the stderr the supervisor started with.
    nosparse_core::log::remember_stderr();
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
        crate::human::warn(&format!(
            "ignoring {}={:?}: {}; keeping the default",
            String::from_utf8_lossy(b.name),
            String::from_utf8_lossy(b.value),
            b.why
        ));
    }
    if cfg.matcher.is_set() {
        let mut buf = vec![0u8; engine::PATH_BUF];
        cfg.matcher_resolved = config::resolve(&cfg.matcher, &mut buf);
    }
    cfg
}

/// Gathers the facts about the program's file and judges the call.
pub fn prepare(t: &Target, cfg: &Config, trigger: Trigger, offset: i64, space: &mut Space) -> Prepared {
    let target = t.engine();
    let Some(facts) = engine::facts(t.fd, trigger, offset) else { return Prepared::Untouched };
    let screened = match policy::screen(cfg, &facts) {
        Ok(s) => s,
        Err(why) => {
            engine::skipped(&target, cfg, &facts, why, space);
            return Prepared::Untouched;
        }
    };
    match engine::prepare(&target, cfg, screened, space) {
        engine::Prepared::Untouched => Prepared::Untouched,
        engine::Prepared::Fail(e) => Prepared::Fail(e),
        engine::Prepared::Act(work) => Prepared::Act(work),
    }
}

/// Under `NOSPARSE_DEBUG`, the line for a call the supervisor leaves to the program
/// because of `why`: the library's own reason where its screen has one, so that the
/// two modes log the same call alike.
pub fn left_alone(t: &Target, cfg: &Config, trigger: Trigger, offset: i64, why: policy::Skip, space: &mut Space) {
    let Some(facts) = engine::facts(t.fd, trigger, offset) else { return };
    let why = policy::screen(cfg, &facts).err().unwrap_or(why);
    engine::skipped(&t.engine(), cfg, &facts, why, space);
}

/// After the call, whose result was `ret` (`-errno` when it failed): the engine
/// allocates if it succeeded, and logs one line.
pub fn finish(t: &Target, cfg: &Config, work: &engine::Work, ret: i64, space: &mut Space) {
    engine::finish(&t.engine(), cfg, work, ret, space);
}
