//! The command line, tokenized by lexopt. The launcher's options come from the settings
//! table (`nosparse_core::settings::SETTINGS`), so a new setting is a new option with no
//! edit here. Parsing only describes what to do; nothing here exits.

use crate::docs::{self, Opt};
use crate::exit_codes::{Failure, Status};
use crate::paths;
use lexopt::prelude::*;
use nosparse_core::settings::{Setting, SETTINGS};
use std::ffi::OsString;
use std::path::PathBuf;

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Print `text` (a help text) on stdout.
    Help(String),
    Version,
    Launch(Launch),
    Check(Check),
    Rewrite(Rewrite),
    Doctor(Doctor),
    Vmware(Vmware),
}

/// How the launcher reaches PROGRAM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// The preload, or the supervisor for a program a preload cannot reach.
    #[default]
    Auto,
    /// `--preload`.
    Preload,
    /// `--supervise`.
    Supervise,
}

/// `nosparse [OPTIONS] [--] PROGRAM [ARGS...]`.
#[derive(Debug, PartialEq, Eq)]
pub struct Launch {
    /// Settings from the options, in the order given, each value already checked.
    pub settings: Vec<(&'static str, String)>,
    pub dry_run: bool,
    pub mode: Mode,
    pub program: OsString,
    /// PROGRAM's arguments, exactly as given.
    pub args: Vec<OsString>,
}

/// `nosparse check [OPTIONS] PATH...`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Check {
    pub max_fragments: Option<u64>,
    pub quiet: bool,
    pub format: Format,
    pub pattern: Option<String>,
    pub paths: Vec<PathBuf>,
}

/// How `check` prints its findings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// One line per file, then the counts.
    #[default]
    Text,
    /// One JSON object: `files` (one object per file) and `summary`.
    Json,
    /// One JSON object per line: each file, then `{"summary": ...}`.
    Ndjson,
    /// The Prometheus text format, for node_exporter's textfile collector.
    Prometheus,
}

impl Format {
    /// The names `--format` takes, in the order the help lists them.
    pub const NAMES: [(&'static str, Format); 4] = [
        ("text", Format::Text),
        ("json", Format::Json),
        ("ndjson", Format::Ndjson),
        ("prometheus", Format::Prometheus),
    ];

    pub fn from_name(name: &str) -> Option<Format> {
        Format::NAMES.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }
}

/// `nosparse rewrite [OPTIONS] FILE`.
#[derive(Debug, PartialEq, Eq)]
pub struct Rewrite {
    pub file: PathBuf,
    pub force: bool,
    pub max_fragments: Option<u64>,
    /// `None`: progress when stderr is a terminal.
    pub progress: Option<bool>,
}

/// `nosparse doctor [--config FILE] [--vmx] [--vm-dir DIR] [--settings-only]`.
#[derive(Debug, PartialEq, Eq)]
pub struct Doctor {
    /// `--config`: a file that must exist; None for the library's own, which need not.
    pub config: Option<PathBuf>,
    /// The settings are for vmware-vmx: also those that leave out its `.vmem` files.
    pub vmx: bool,
    /// Where the VMs are, for `NOSPARSE_SKIP_FS`.
    pub vm_dir: Option<PathBuf>,
    /// Only the settings file (what `nosparse-vmware status` asks).
    pub settings_only: bool,
    /// The set-user-ID programs that must be wrapped (`--program`; vmx by default).
    pub programs: Vec<PathBuf>,
}

/// What `nosparse vmware` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmwareAction {
    Install,
    Uninstall,
    Repair,
    Status,
}

impl VmwareAction {
    pub const NAMES: [(&'static str, VmwareAction); 4] = [
        ("install", VmwareAction::Install),
        ("uninstall", VmwareAction::Uninstall),
        ("repair", VmwareAction::Repair),
        ("status", VmwareAction::Status),
    ];
}

/// `nosparse vmware install|uninstall|repair|status [OPTIONS]`.
#[derive(Debug, PartialEq, Eq)]
pub struct Vmware {
    pub action: VmwareAction,
    /// `--vmx`: the program; None for the default (or, for uninstall, repair and status,
    /// every recorded one).
    pub vmx: Option<PathBuf>,
    pub wrapper_dir: Option<PathBuf>,
    pub state: PathBuf,
    pub vm_dir: Option<PathBuf>,
    /// Change nothing; exit 2 when something would change.
    pub check: bool,
    /// status: one JSON object.
    pub json: bool,
}

/// The subcommands, each named only as the first argument.
pub const SUBCOMMANDS: [&str; 4] = ["check", "rewrite", "doctor", "vmware"];

/// Reads the arguments after the program's name.
pub fn parse(args: Vec<OsString>) -> Result<Command, Failure> {
    let first = args.first().and_then(|a| a.to_str()).unwrap_or("");
    let sub = SUBCOMMANDS.iter().find(|s| **s == first).copied();
    let rest = args.into_iter().skip(usize::from(sub.is_some()));
    let mut p = lexopt::Parser::from_args(rest);
    let result = match sub {
        Some("check") => check(&mut p),
        Some("rewrite") => rewrite(&mut p),
        Some("doctor") => doctor(&mut p),
        Some("vmware") => vmware(&mut p),
        _ => launch(&mut p),
    };
    let status = if sub.is_some() { Status::Trouble } else { Status::LauncherFailed };
    result.map_err(|e| {
        Failure::new(
            status,
            format!("{}{e}\nTry 'nosparse --help'.", sub.map(|s| format!("{s}: ")).unwrap_or_default()),
        )
    })
}

/// A usage error's text.
type Usage = String;

fn lexopt_error(e: lexopt::Error) -> Usage {
    match e {
        lexopt::Error::UnexpectedOption(o) => format!("unknown option {o}"),
        lexopt::Error::UnexpectedValue { option, .. } => format!("{option} takes no value"),
        lexopt::Error::MissingValue { option: Some(o) } => format!("{o} needs a value"),
        other => other.to_string(),
    }
}

/// The value of `option`: `--option=VALUE`, or the next argument. That argument is not
/// `--`, which ends the options: `--pattern -- DIR` lacks its value, rather than taking
/// "--" for one.
fn value(p: &mut lexopt::Parser, option: &str) -> Result<OsString, Usage> {
    if let Some(v) = p.optional_value() {
        return Ok(v);
    }
    match p.value().map_err(lexopt_error)? {
        v if v == "--" => Err(format!("{option} needs a value")),
        v => Ok(v),
    }
}

/// The launcher's option that sets `name`, if the table has one.
fn setting_option(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.option == Some(name))
}

fn text(v: OsString, option: &str) -> Result<String, Usage> {
    v.into_string().map_err(|v| format!("{option}: the value {v:?} is not UTF-8"))
}

fn launch(p: &mut lexopt::Parser) -> Result<Command, Usage> {
    let mut settings = Vec::new();
    let mut dry_run = false;
    let mut mode = Mode::Auto;
    loop {
        let arg = p.next().map_err(lexopt_error)?;
        match arg {
            None => return Err("no PROGRAM to run".into()),
            Some(Short('h') | Long("help")) => return Ok(Command::Help(docs::help())),
            Some(Short('V') | Long("version")) => return Ok(Command::Version),
            Some(Short('n') | Long("dry-run")) => dry_run = true,
            Some(Long(m @ ("supervise" | "preload"))) => {
                let m = if m == "supervise" { Mode::Supervise } else { Mode::Preload };
                if mode != Mode::Auto && mode != m {
                    return Err("--supervise and --preload do not go together".into());
                }
                mode = m;
            }
            Some(Long(name)) => {
                let shown = format!("--{name}");
                let s = setting_option(name).ok_or_else(|| format!("unknown option {shown}"))?;
                let v = if s.switch { "1".to_string() } else { text(value(p, &shown)?, &shown)? };
                s.check(v.as_bytes()).map_err(|why| format!("{shown}: bad value {v:?}: {why}"))?;
                settings.push((s.name, v));
            }
            Some(Value(program)) => {
                // PROGRAM's own arguments are passed on untouched, options and `--` too.
                let args = p.raw_args().map_err(lexopt_error)?.collect();
                return Ok(Command::Launch(Launch { settings, dry_run, mode, program, args }));
            }
            Some(other) => return Err(lexopt_error(other.unexpected())),
        }
    }
}

fn count(p: &mut lexopt::Parser, option: &str) -> Result<u64, Usage> {
    let v = text(value(p, option)?, option)?;
    v.parse().map_err(|_| format!("{option}: expected a count, not {v:?}"))
}

fn check(p: &mut lexopt::Parser) -> Result<Command, Usage> {
    let mut c = Check::default();
    while let Some(arg) = p.next().map_err(lexopt_error)? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help(docs::help_for("check"))),
            Short('q') | Long("quiet") => c.quiet = true,
            Long("json") => c.format = Format::Json,
            Long("format") => {
                let name = text(value(p, "--format")?, "--format")?;
                c.format = Format::from_name(&name)
                    .ok_or_else(|| format!("--format: expected text, json, ndjson or prometheus, not {name:?}"))?;
            }
            Long("max-fragments") => c.max_fragments = Some(count(p, "--max-fragments")?),
            Long("pattern") => {
                let glob = text(value(p, "--pattern")?, "--pattern")?;
                if glob.is_empty() || glob.contains('\0') {
                    return Err("--pattern: expected a glob such as '*.vmem'".into());
                }
                c.pattern = Some(glob);
            }
            Value(path) => c.paths.push(path.into()),
            other => return Err(lexopt_error(other.unexpected())),
        }
    }
    if c.paths.is_empty() {
        return Err("no FILE or DIRECTORY given".into());
    }
    if c.quiet && c.format != Format::Text {
        return Err("--quiet goes only with --format text".into());
    }
    Ok(Command::Check(c))
}

fn rewrite(p: &mut lexopt::Parser) -> Result<Command, Usage> {
    let mut files: Vec<PathBuf> = Vec::new();
    let (mut force, mut max_fragments, mut progress) = (false, None, None);
    while let Some(arg) = p.next().map_err(lexopt_error)? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help(docs::help_for("rewrite"))),
            Short('f') | Long("force") => force = true,
            Long("max-fragments") => max_fragments = Some(count(p, "--max-fragments")?),
            Long("progress") => progress = Some(true),
            Long("no-progress") => progress = Some(false),
            Value(path) => files.push(path.into()),
            other => return Err(lexopt_error(other.unexpected())),
        }
    }
    match <[PathBuf; 1]>::try_from(files) {
        Ok([file]) => Ok(Command::Rewrite(Rewrite { file, force, max_fragments, progress })),
        Err(_) => Err("give exactly one FILE".into()),
    }
}

fn doctor(p: &mut lexopt::Parser) -> Result<Command, Usage> {
    let mut d = Doctor { config: None, vmx: false, vm_dir: None, settings_only: false, programs: Vec::new() };
    while let Some(arg) = p.next().map_err(lexopt_error)? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help(docs::help_for("doctor"))),
            Long("config") => d.config = Some(value(p, "--config")?.into()),
            Long("vmx") => d.vmx = true,
            Long("vm-dir") => d.vm_dir = Some(value(p, "--vm-dir")?.into()),
            Long("settings-only") => d.settings_only = true,
            Long("program") => d.programs.push(value(p, "--program")?.into()),
            other => return Err(lexopt_error(other.unexpected())),
        }
    }
    if d.programs.is_empty() {
        d.programs.push(PathBuf::from(paths::VMX));
    }
    Ok(Command::Doctor(d))
}

fn vmware(p: &mut lexopt::Parser) -> Result<Command, Usage> {
    let mut action = None;
    let mut v = Vmware {
        action: VmwareAction::Status,
        vmx: None,
        wrapper_dir: None,
        state: PathBuf::from(paths::VMWARE_STATE),
        vm_dir: None,
        check: false,
        json: false,
    };
    while let Some(arg) = p.next().map_err(lexopt_error)? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help(docs::help_for("vmware"))),
            Long("vmx") => v.vmx = Some(value(p, "--vmx")?.into()),
            Long("wrapper-dir") => v.wrapper_dir = Some(value(p, "--wrapper-dir")?.into()),
            Long("state") => v.state = value(p, "--state")?.into(),
            Long("vm-dir") => v.vm_dir = Some(value(p, "--vm-dir")?.into()),
            Long("check") => v.check = true,
            Long("json") => v.json = true,
            Value(word) if action.is_none() => {
                let word = word.to_string_lossy().into_owned();
                let found = VmwareAction::NAMES.iter().find(|(n, _)| *n == word);
                action = Some(found.map(|(_, a)| *a).ok_or_else(|| {
                    format!("unknown action {word:?}: expected install, uninstall, repair or status")
                })?);
            }
            other => return Err(lexopt_error(other.unexpected())),
        }
    }
    v.action = action.ok_or("expected install, uninstall, repair or status")?;
    if v.json && v.action != VmwareAction::Status {
        return Err("--json goes only with status".into());
    }
    if v.check && v.action == VmwareAction::Status {
        return Err("--check goes with install, uninstall and repair (status changes nothing)".into());
    }
    Ok(Command::Vmware(v))
}

/// Every option of every subcommand, for the tests that the help and the parser agree.
pub fn documented() -> impl Iterator<Item = (&'static str, &'static Opt)> {
    docs::COMMANDS.iter().flat_map(|c| c.opts.iter().map(move |o| (c.name, o)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit_codes::Status;

    fn run(args: &[&str]) -> Result<Command, Failure> {
        parse(args.iter().map(OsString::from).collect())
    }

    fn launch_of(args: &[&str]) -> Launch {
        match run(args) {
            Ok(Command::Launch(l)) => l,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn usage_error(args: &[&str]) -> Failure {
        match run(args) {
            Err(f) => f,
            Ok(c) => panic!("{args:?} was accepted: {c:?}"),
        }
    }

    #[test]
    fn the_launcher_passes_programs_arguments_untouched() {
        let l = launch_of(&["--match", "*.vmem", "--min-size=1G", "--debug", "prog", "--help", "--", "-n"]);
        assert_eq!(
            l.settings,
            [("NOSPARSE_MATCH", "*.vmem".into()), ("NOSPARSE_MIN_SIZE", "1G".into()), ("NOSPARSE_DEBUG", "1".into())]
        );
        assert_eq!(l.program, "prog");
        assert_eq!(l.args, ["--help", "--", "-n"]);
        assert_eq!(launch_of(&["--supervise", "p"]).mode, Mode::Supervise);
        assert_eq!(launch_of(&["--preload", "p", "--supervise"]).mode, Mode::Preload);
        assert_eq!(launch_of(&["p"]).mode, Mode::Auto);
        let l = launch_of(&["-n", "--", "--weird-program", "-V"]);
        assert!(l.dry_run);
        assert_eq!((l.program.to_str(), l.args.len()), (Some("--weird-program"), 1));
        // A program called like a subcommand, after an option or `--`.
        assert_eq!(launch_of(&["--", "check", "x"]).program, "check");
        assert_eq!(launch_of(&["-n", "doctor"]).program, "doctor");
    }

    #[test]
    fn every_setting_with_an_option_is_an_option() {
        for s in SETTINGS.iter().filter(|s| s.option.is_some()) {
            let opt = format!("--{}", s.option.unwrap());
            let args: Vec<&str> = if s.switch { vec![&opt, "p"] } else { vec![&opt, s.default, "p"] };
            let default_is_a_value = s.check(s.default.as_bytes()).is_ok();
            if s.switch || default_is_a_value {
                let l = launch_of(&args);
                assert_eq!(l.settings[0].0, s.name);
            }
        }
        for s in SETTINGS.iter().filter(|s| s.option.is_none()) {
            let name = s.name.trim_start_matches("NOSPARSE_").to_lowercase().replace('_', "-");
            assert_eq!(usage_error(&[&format!("--{name}"), "x", "p"]).status, Status::LauncherFailed);
        }
    }

    #[test]
    fn options_match_exactly() {
        for bad in [
            &["--max-fragmentsXYZ", "p"][..],
            &["--min", "1G", "p"],
            &["--min-sizes", "1G", "p"],
            &["--debug=1", "p"],
            &["-x", "p"],
        ] {
            let f = usage_error(bad);
            assert_eq!(f.status, Status::LauncherFailed, "{bad:?}");
        }
        assert!(usage_error(&["--frobnicate", "p"]).msg.starts_with("unknown option --frobnicate"));
        assert!(usage_error(&["--min-size", "1X", "p"]).msg.contains("--min-size: bad value \"1X\""));
        assert!(usage_error(&["--min-size"]).msg.contains("--min-size needs a value"));
        assert!(usage_error(&[]).msg.contains("no PROGRAM"));
        assert!(usage_error(&["--supervise", "--preload", "p"]).msg.contains("do not go together"));
        let f = usage_error(&["check", "--max-fragmentsXYZ", "f"]);
        assert_eq!(f.status, Status::Trouble);
        assert!(f.msg.starts_with("check: unknown option --max-fragmentsXYZ"), "{}", f.msg);
        assert!(usage_error(&["rewrite", "--bogus", "f"]).msg.contains("unknown option --bogus"));
        assert!(usage_error(&["rewrite", "a", "b"]).msg.contains("exactly one FILE"));
        assert!(usage_error(&["rewrite"]).msg.contains("exactly one FILE"));
        assert!(usage_error(&["check"]).msg.contains("no FILE"));
        assert!(usage_error(&["check", "--max-fragments", "ten", "f"]).msg.contains("expected a count"));
        assert!(usage_error(&["doctor", "extra"]).msg.contains("doctor: "));
        // `--` ends the options: it is never an option's value, unless given with `=`.
        for args in [
            &["check", "--pattern", "--", "d"][..],
            &["check", "--format", "--", "d"],
            &["check", "--max-fragments", "--"],
            &["rewrite", "--max-fragments", "--", "f"],
            &["doctor", "--config", "--"],
            &["vmware", "status", "--state", "--"],
            &["--min-size", "--", "p"],
        ] {
            let option = args.iter().find(|a| a.starts_with("--") && **a != "--").unwrap();
            let f = usage_error(args);
            assert!(f.msg.contains(&format!("{option} needs a value")), "{args:?}: {}", f.msg);
        }
        match run(&["check", "--pattern=--", "d"]) {
            Ok(Command::Check(c)) => assert_eq!(c.pattern.as_deref(), Some("--")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn short_options_combine() {
        assert_eq!(run(&["-nV"]), Ok(Command::Version));
        let l = launch_of(&["-n", "prog"]);
        assert!(l.dry_run);
        assert!(matches!(run(&["-Vn"]), Ok(Command::Version)));
        assert!(matches!(run(&["-h"]), Ok(Command::Help(_))));
        match run(&["check", "-q", "--max-fragments=3", "--pattern", "*.vmem", "--", "-f", "d"]) {
            Ok(Command::Check(c)) => {
                assert!(c.quiet);
                assert_eq!(c.max_fragments, Some(3));
                assert_eq!(c.pattern.as_deref(), Some("*.vmem"));
                assert_eq!(c.paths, [PathBuf::from("-f"), PathBuf::from("d")]);
            }
            other => panic!("{other:?}"),
        }
        match run(&["rewrite", "-f", "--no-progress", "--", "--odd-name"]) {
            Ok(Command::Rewrite(r)) => {
                assert!(r.force);
                assert_eq!(r.progress, Some(false));
                assert_eq!(r.file, PathBuf::from("--odd-name"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_documented_option_is_accepted() {
        for (cmd, o) in documented() {
            let mut args: Vec<String> = Vec::new();
            if cmd != "launch" {
                args.push(cmd.into());
            }
            args.push(format!("--{}", o.long));
            if !o.metavar.is_empty() {
                args.push(o.example.into());
            }
            if cmd == "check" || cmd == "rewrite" {
                args.push("f".into());
            }
            if cmd == "vmware" {
                args.push(if o.long == "check" { "repair" } else { "status" }.into());
            }
            if cmd == "launch" {
                args.push("p".into());
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            assert!(run(&args).is_ok(), "{cmd} --{}: {:?}", o.long, run(&args));
            if let Some(short) = o.short {
                let mut with_short = args.clone();
                let s = format!("-{short}");
                with_short[usize::from(cmd != "launch")] = &s;
                assert!(run(&with_short).is_ok(), "{cmd} -{short}");
            }
        }
    }
}
