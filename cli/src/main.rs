//! `nosparse`: runs a program with libnosparse.so preloaded, checks files' layout, and
//! rewrites a fragmented file whole. See `nosparse --help` and the README.

#![deny(unsafe_op_in_unsafe_fn)]

mod check;
mod elf;
mod launch;
mod rewrite;

use std::ffi::OsString;
use std::path::Path;

const USAGE: &str = "\
usage: nosparse [OPTIONS] [--] PROGRAM [ARGS...]
       nosparse check [--max-fragments N] [--quiet] FILE...
       nosparse rewrite FILE
       nosparse --help | --version

Runs PROGRAM with libnosparse.so preloaded, so that the big files it creates sparse
(one byte written at the last offset) are allocated whole instead. The library is
named as PREFIX/$LIB/libnosparse.so, which each process's loader expands for its own
32- or 64-bit class; PREFIX is where this command is installed (/usr for
/usr/bin/nosparse). A set-user-ID PROGRAM gets the library only from a directory its
loader trusts, with the set-user-ID bit set (the README's Deploying section).

options (each sets the NOSPARSE_* variable of the same name; see the README):
  --min-size SIZE     smallest file to preallocate: bytes, or K/M/G/T (default 64MiB)
  --method METHOD     auto, fallocate, zero or off (log only)          (default auto)
  --match GLOBS       only files whose path or name matches, ':'-separated ('*.vmem')
  --triggers LIST     pwrite, ftruncate, write, ','-separated           (default pwrite)
  --on-error MODE     passthrough or fail                        (default passthrough)
  --log SINK          syslog, stderr or none                          (default syslog)
  --skip-fs LIST      filesystems to leave alone, ':'-separated, or none
                                                           (default tmpfs:ramfs:zfs)
  --debug             log every decision
  -n, --dry-run       print the environment PROGRAM would get, and do not run it
  -h, --help          this text
  -V, --version       the version

  A program named check or rewrite is run as 'nosparse -- check ...'.

check: prints each FILE's size, allocated bytes, bytes in holes, and physical
fragments counted as filefrag counts them (FIEMAP). Exit status 0 when every FILE is
whole (no holes, and no more than N fragments with --max-fragments), 1 when some is
not, 2 when some FILE could not be read.

rewrite: replaces FILE with a preallocated copy of itself (a suspended guest's .vmem
that is already fragmented): written beside it, with the same owner, mode, times and
extended attributes, and renamed over it at once. Refuses (exit 1) while another
process has FILE open for writing or mapped, when FILE has other hard links, when the
filesystem lacks room for a second copy, or when FILE changes during the copy; fails
(exit 2) on I/O errors. Until the rename the original is untouched.

Exit status of PROGRAM, or 125 when nosparse fails, 126 when PROGRAM cannot be run,
127 when it is not found.
";

/// Launcher options and the settings they set.
const SETTINGS: [(&str, &str); 7] = [
    ("--min-size", "NOSPARSE_MIN_SIZE"),
    ("--method", "NOSPARSE_METHOD"),
    ("--match", "NOSPARSE_MATCH"),
    ("--triggers", "NOSPARSE_TRIGGERS"),
    ("--on-error", "NOSPARSE_ON_ERROR"),
    ("--log", "NOSPARSE_LOG"),
    ("--skip-fs", "NOSPARSE_SKIP_FS"),
];

/// Prints `nosparse: MSG` and exits with `status`.
pub fn fail(status: i32, msg: &str) -> ! {
    eprintln!("nosparse: {msg}");
    std::process::exit(status)
}

fn usage_error(msg: &str) -> ! {
    eprintln!("nosparse: {msg}\nTry 'nosparse --help'.");
    std::process::exit(launch::EXIT_FAILED)
}

fn main() {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let first = args.first().and_then(|a| a.to_str()).unwrap_or("");
    let status = match first {
        "check" => check_command(args.split_off(1)),
        "rewrite" => rewrite_command(args.split_off(1)),
        _ => launch_command(args),
    };
    std::process::exit(status);
}

/// Splits `--name=value` or takes the value from the next argument.
fn option_value(arg: &str, rest: &mut std::vec::IntoIter<OsString>) -> (String, String) {
    if let Some((name, value)) = arg.split_once('=') {
        return (name.to_string(), value.to_string());
    }
    match rest.next().map(|v| v.into_string()) {
        Some(Ok(v)) => (arg.to_string(), v),
        Some(Err(_)) => usage_error(&format!("{arg}: the value is not UTF-8")),
        None => usage_error(&format!("{arg} needs a value")),
    }
}

fn launch_command(args: Vec<OsString>) -> i32 {
    let mut settings: Vec<(&'static str, String)> = Vec::new();
    let mut dry_run = false;
    let mut rest = args.into_iter();
    let program = loop {
        let Some(arg) = rest.next() else { usage_error("no PROGRAM to run") };
        let Some(text) = arg.to_str().filter(|t| t.starts_with('-')) else { break arg };
        match text {
            "--" => match rest.next() {
                Some(p) => break p,
                None => usage_error("no PROGRAM after --"),
            },
            "-h" | "--help" => {
                print!("{USAGE}");
                return 0;
            }
            "-V" | "--version" => {
                println!("nosparse {}", env!("CARGO_PKG_VERSION"));
                return 0;
            }
            "-n" | "--dry-run" => dry_run = true,
            "--debug" => settings.push(("NOSPARSE_DEBUG", "1".into())),
            _ => {
                let (name, value) = option_value(text, &mut rest);
                let Some(&(_, var)) = SETTINGS.iter().find(|(opt, _)| *opt == name) else {
                    usage_error(&format!("unknown option {name}"));
                };
                if let Err(why) = launch::validate(var, &value) {
                    usage_error(&format!("{name}: bad value {value:?}: {why}"));
                }
                settings.push((var, value));
            }
        }
    };
    launch::launch(launch::Launch { settings, dry_run, program, args: rest.collect() })
}

fn check_command(args: Vec<OsString>) -> i32 {
    let mut max_fragments = None;
    let mut quiet = false;
    let mut files = Vec::new();
    let mut rest = args.into_iter();
    let mut options_done = false;
    while let Some(arg) = rest.next() {
        match arg.to_str() {
            Some("--") if !options_done => options_done = true,
            Some("-q" | "--quiet") if !options_done => quiet = true,
            Some("-h" | "--help") if !options_done => {
                print!("{USAGE}");
                return 0;
            }
            Some(t) if !options_done && t.starts_with("--max-fragments") => {
                let (_, v) = option_value(t, &mut rest);
                match v.parse::<u64>() {
                    Ok(n) => max_fragments = Some(n),
                    Err(_) => usage_error(&format!("--max-fragments: expected a count, not {v:?}")),
                }
            }
            Some(t) if !options_done && t.starts_with('-') && t.len() > 1 => {
                usage_error(&format!("check: unknown option {t}"))
            }
            _ => files.push(arg),
        }
    }
    if files.is_empty() {
        usage_error("check: no FILE given");
    }
    check::run(&files, max_fragments, quiet)
}

fn rewrite_command(args: Vec<OsString>) -> i32 {
    let files: Vec<OsString> = args.into_iter().filter(|a| a != "--").collect();
    match files.as_slice() {
        [one] if one.to_str().is_some_and(|t| t == "-h" || t == "--help") => {
            print!("{USAGE}");
            0
        }
        [one] => rewrite::run(Path::new(one)),
        _ => usage_error("rewrite: give exactly one FILE"),
    }
}
