//! What `nosparse --help`, the man pages, the bash completion and the README's settings
//! table say, written once: the subcommands' prose and options here, the settings from
//! `nosparse_core::settings::SETTINGS`. `cargo run -p nosparse-cli --example gen-docs`
//! writes the generated files; a test fails when the committed ones differ.

use crate::exit_codes::Status;
use nosparse_core::settings::{Setting, MATCH, PROGRAMS, SETTINGS, TRIGGERS};
use std::fmt::Write;

/// One option of a subcommand.
#[derive(Debug)]
pub struct Opt {
    pub short: Option<char>,
    pub long: &'static str,
    /// The value's placeholder; empty for a switch.
    pub metavar: &'static str,
    /// A value the parser accepts (for the tests).
    pub example: &'static str,
    pub help: &'static str,
}

/// A subcommand (the launcher is `launch`, called without a name).
pub struct Cmd {
    pub name: &'static str,
    /// What it does, in one line (the list of commands in `--help`).
    pub summary: &'static str,
    pub synopsis: &'static str,
    /// Paragraphs, separated by blank lines (filled to the width when shown).
    pub about: &'static str,
    pub opts: &'static [Opt],
    /// (command line, what it does), for `--help` and the man pages' EXAMPLES.
    pub examples: &'static [(&'static str, &'static str)],
}

const fn opt(
    short: Option<char>,
    long: &'static str,
    metavar: &'static str,
    example: &'static str,
    help: &'static str,
) -> Opt {
    Opt { short, long, metavar, example, help }
}

const MAX_FRAGMENTS: Opt =
    opt(None, "max-fragments", "N", "10", "a file in more than N fragments is fragmented (instead of check's rule)");

pub static COMMANDS: [Cmd; 5] = [
    Cmd {
        name: "launch",
        summary: "run PROGRAM with libnosparse.so preloaded",
        synopsis: "[OPTIONS] [--] PROGRAM [ARGS...]",
        about: "\
Runs PROGRAM with libnosparse.so preloaded, so that the big files it creates sparse (one
byte written at the last offset) are allocated whole instead. The library is named as
PREFIX/$LIB/libnosparse.so, which each process's loader expands for its own 32- or
64-bit class; PREFIX is where this command is installed (/usr for /usr/bin/nosparse).
Before PROGRAM starts, its loader is asked where $LIB points (or, before glibc 2.33, it
is worked out from where the loader lives), and a missing build stops the launch with a
message instead of the loader's 'wrong ELF class'. A set-user-ID PROGRAM gets the
library only from a directory its loader trusts, with the set-user-ID bit set, and
reads /etc/nosparse.conf instead of the options: see nosparse-vmware(8).

A preload cannot reach a statically linked program (no loader) or a Go program (it
makes its own system calls): for those the launcher supervises instead, as with
--supervise. PROGRAM then runs under a seccomp filter that sends only the candidate
calls (a one-byte pwrite64 past NOSPARSE_MIN_SIZE - 1; ftruncate and one-byte writes
when those triggers are on) to the launcher, which stays PROGRAM's parent: it makes
such a call itself on PROGRAM's open file, allocates what the call made a hole, and
answers with the call's own result; every other call runs untouched. PROGRAM keeps the
terminal and its signals, and its exit status (or the signal that killed it) is the
launcher's. It needs Linux 5.19 (seccomp user notification with
WAIT_KILLABLE_RECV, pidfd_getfd); a set-user-ID PROGRAM is supervised only by root.
If the supervisor is killed, PROGRAM's next candidate call fails with ENOSYS. --dry-run
says which mode and why; --preload forces the preload.

PROGRAM and its arguments are passed on untouched; a program named check, rewrite or
doctor is run as 'nosparse -- check ...'.",
        opts: &[
            opt(Some('n'), "dry-run", "", "", "print the environment PROGRAM would get, the mode (preload or supervise) and why, and the library it would load; do not run it"),
            opt(None, "supervise", "", "", "run PROGRAM under the seccomp supervisor, whatever it is (static, Go, raw system calls)"),
            opt(None, "preload", "", "", "use the preload even for a static or Go program (which it cannot reach)"),
            opt(Some('h'), "help", "", "", "this text"),
            opt(Some('V'), "version", "", "", "the version"),
        ],
        examples: &[
            ("nosparse -- vmware-vmx ...", "run vmx with the library (not set-user-ID)"),
            ("nosparse --match '*.vmem' --log stderr -- PROGRAM", "only .vmem files; log to stderr"),
            ("nosparse --triggers pwrite,ftruncate -- qemu-system-x86_64 ...", "also files sized by ftruncate"),
            ("nosparse --dry-run -- PROGRAM", "the library PROGRAM would get"),
        ],
    },
    Cmd {
        name: "check",
        summary: "report files' holes and fragments",
        synopsis: "[--format FORMAT] [--max-fragments N] [--pattern GLOB] PATH...",
        about: "\
Prints each file's size, allocated bytes, bytes in holes, and physical fragments counted
as filefrag counts them (FIEMAP; physically adjacent extents are one), with a verdict:
sparse (it has holes), fragmented, or whole. A file is fragmented when it has more than
twice the fragments its filesystem needs at least for its size: the size divided by the
filesystem's largest extent (128 MiB on ext4 and btrfs, 8 GiB on xfs with 4 KiB blocks,
128 MiB elsewhere), rounded up. So a 256 MiB file on ext4 may have 4 fragments, and a
3.5 GiB one 56. Blocks allocated past the file's end (a preallocation the file's size
never reached, which the library can leave after a failed call under
NOSPARSE_ON_ERROR=fail) are reported too, without changing the verdict. The counts
over all files come last.

A directory is searched, without following symbolic links, for regular files whose
name matches --pattern (a glob; with a '/' it is matched against the file's absolute
path, wherever the search starts), or for every regular file without it. Special files
(FIFOs, devices, sockets) named on the command line are reported as errors without
being opened for reading, and skipped in a search. A directory in which no file is
found (none matches --pattern, or it has none) is named on stderr, and check exits 1: a
mistyped pattern does not look like success. A directory that cannot be read, or an
entry in one that cannot be looked at (a directory readable but not searchable), is an
error named on stderr, and check exits 2: files it cannot see do not pass for none. A
file on tmpfs or ramfs is an error saying there is nothing to check: they keep no
extent map. A file name is printed on one line: control characters, a backslash and
bytes that are not UTF-8 are written \\xNN (in Prometheus label values too, then
escaped as that format requires). Output that cannot be written is exit 2.

--format json prints one object: \"files\", one object per file (path, verdict, size,
allocated, holes, fragments, extents, unwritten, beyond_eof, allowed; or path and
error), and \"summary\" (files, whole, sparse, fragmented, errors, empty_dirs,
beyond_eof); a path that is not UTF-8 gets \"path_bytes\" (its bytes) beside the lossy
\"path\". ndjson prints the same objects one per line, the summary last as
{\"summary\": ...}. prometheus prints gauges for node_exporter's textfile collector,
one per file and measure (nosparse_file_fragments, nosparse_file_hole_bytes,
nosparse_file_unwritten_bytes, nosparse_file_beyond_eof_bytes, nosparse_file_verdict
with a verdict label, ...), labelled with the path, and the counts
(nosparse_check_files by verdict).",
        opts: &[
            opt(None, "format", "FORMAT", "ndjson", "text (the default), json, ndjson or prometheus"),
            opt(None, "json", "", "", "the same as --format json"),
            opt(Some('q'), "quiet", "", "", "print nothing; only the exit status tells"),
            MAX_FRAGMENTS,
            opt(None, "pattern", "GLOB", "*.vmem", "in directories, only files whose name (or absolute path, with a '/') matches GLOB"),
        ],
        examples: &[
            ("nosparse check guest.vmem", "one file; exit 0 when whole"),
            ("nosparse check --pattern '*.vmem' /vm", "every .vmem under /vm"),
            ("nosparse check --format ndjson /vm", "one JSON object a line, for scripts"),
            ("nosparse check --format prometheus /vm >nosparse.prom", "for node_exporter"),
        ],
    },
    Cmd {
        name: "rewrite",
        summary: "rewrite a fragmented file whole",
        synopsis: "[--force] [--max-fragments N] [--progress | --no-progress] FILE",
        about: "\
Replaces FILE, a fragmented or sparse file such as a suspended guest's .vmem, with a
preallocated copy of itself: written beside it, with the same owner, mode, times and
extended attributes, and renamed over it at once; until the rename the original is
untouched. A file that check finds whole is left alone unless --force is given. While
it copies, progress (percent, rate, time left) is shown on a terminal; the page cache
is dropped behind the copy, so other programs' cached data is not evicted. Interrupted
(SIGINT, SIGTERM, SIGHUP, or SIGPIPE when stderr's reader went away), it removes the
copy and leaves the original as it was.

FILE's owner (or root) takes a write lease on it (fcntl F_SETLEASE), which the kernel
grants only while no other process has FILE open or mapped (it tries again for about
a second, so that an open lasting an instant is waited out), and breaks when one opens
it during the copy: rewrite then removes the copy and refuses. Where no lease can be
had (another user's file, a filesystem without leases), it looks through /proc for a
process with FILE open for writing or mapped for writing, which needs root. A file in
use is refused (exit 1) naming the process, with the in-place defragmenter that works
on a file in use (e4defrag on ext4, xfs_fsr on xfs). It also refuses when FILE has
other hard links, when it is immutable or append-only (chattr +i or +a: no copy could
take its name; refused before copying), when the filesystem lacks room for a second
copy, when FILE changes during the copy, and when FILE is not a regular file. A copy in
more fragments than FILE (free space more broken up than FILE was) is removed, FILE
kept, exit 1. A copy still over the limit but no worse than FILE replaces it, with exit
1 and a line saying so. A FILE that cannot be opened, and I/O errors, are exit 2.

A copy a killed rewrite left beside FILE (.NAME.nosparse-PID, that process gone) is
removed, and said, by the next rewrite of FILE on a local filesystem; on a shared one
(NFS) the PID may be another host's, and it is left.",
        opts: &[
            opt(Some('f'), "force", "", "", "rewrite even a file that is already whole"),
            MAX_FRAGMENTS,
            opt(None, "progress", "", "", "show progress even when stderr is not a terminal"),
            opt(None, "no-progress", "", "", "show no progress"),
        ],
        examples: &[
            ("nosparse rewrite /vm/guest/guest.vmem", "a suspended guest's memory file"),
            ("nosparse rewrite --force --no-progress FILE", "even when whole, quietly"),
        ],
    },
    Cmd {
        name: "doctor",
        summary: "check this host's setup",
        synopsis: "[--config FILE] [--vmx] [--vm-dir DIR] [--program PATH]... [--settings-only]",
        about: "\
Checks this host's setup and prints one line per finding: each build of the library
installed where its loader looks, the entries of /etc/ld.so.preload, /etc/nosparse.conf
(trusted: a regular file owned by root, not writable by group or others, at most 64
KiB; every line a known setting with a good value, NOSPARSE_PROGRAMS included), and the
VMware wrapper (nosparse vmware status). Settings that keep the library from acting are
problems too: NOSPARSE_DISABLE=1 (or yes), NOSPARSE_METHOD=off, a comment after a value (the
library takes it as part of the value); and when the file is for vmx (a wrapper is
installed, NOSPARSE_PROGRAMS names vmware-vmx, or --vmx), NOSPARSE_PROGRAMS or
NOSPARSE_MATCH leaving out vmware-vmx or *.vmem, NOSPARSE_MIN_SIZE above 1GiB, and
NOSPARSE_SKIP_FS naming the filesystem of --vm-dir. A set-user-ID vmware-vmx that is
there and not wrapped is a problem: its loader takes no library named with a path, so
neither the launcher nor LD_PRELOAD reaches it. Each problem is one line, naming the
file and the fix. A last line says whether static and Go programs can be supervised
here (seccomp user notification, pidfd_getfd, WAIT_KILLABLE_RECV: Linux 5.19) and, if
not, why.",
        opts: &[
            opt(None, "config", "FILE", "/dev/null", "check FILE as the settings file, e.g. before installing it; it must exist"),
            opt(None, "vmx", "", "", "check the settings as vmware-vmx's"),
            opt(None, "vm-dir", "DIR", "/vmfs", "where the VMs are, for NOSPARSE_SKIP_FS (implies --vmx)"),
            opt(None, "program", "PATH", "/usr/lib/vmware/bin/vmware-vmx", "a set-user-ID program that must be wrapped, when it is there (default /usr/lib/vmware/bin/vmware-vmx); may be repeated"),
            opt(None, "settings-only", "", "", "check only the settings file"),
        ],
        examples: &[
            ("nosparse doctor", "the whole host"),
            ("nosparse doctor --config ./nosparse.conf --vmx", "a settings file before installing it"),
        ],
    },
    Cmd {
        name: "vmware",
        summary: "wrap VMware's vmware-vmx; check and repair it",
        synopsis: "install|uninstall|repair|status [--vmx PATH] [--check] [--json]",
        about: "\
Puts the wrapper in front of VMware's set-user-ID vmware-vmx, checks it, repairs it
after a VMware upgrade, and takes it away (nosparse-vmware(8) is the same command under
its old name). install moves the real program into nosparse-real/ beside it (with
dpkg-divert --local --rename where there is dpkg), writes the wrapper to
WRAPPER_DIR/nosparse-NAME and links vmware-vmx to it, sets the set-user-ID bit on the
build of libnosparse.so vmx's loader takes (through dpkg-statoverride where there is
dpkg, so package upgrades keep it), and writes /etc/nosparse.conf when there is none.
What was done is recorded in the state file, under a lock; uninstall undoes exactly
that, and after a VMware upgrade keeps the new program. It removes WRAPPER_DIR only
when install made it (recorded too) and it is empty. repair repairs only what was
installed: a vmware-vmx replaced or copied over the wrapper by an upgrade is wrapped
again, a lost set-user-ID bit set again; with nothing recorded it does nothing, and
neither it nor uninstall makes the state file's directory. status
prints one line per check (ok, BROKEN with the fix, note) and exits 1 when anything is
broken.

Every step looks before it acts: run twice, the second run prints \"unchanged\" and
exits 0. With --check nothing is changed: the first change the step would make is
printed (\"would change: ...\") and the exit status is 2, or 0 when there is none.",
        opts: &[
            opt(None, "vmx", "PATH", "/usr/lib/vmware/bin/vmware-vmx", "the program (default /usr/lib/vmware/bin/vmware-vmx; uninstall, repair and status: every recorded one)"),
            opt(None, "wrapper-dir", "DIR", "/etc/vmware", "where install writes the wrapper (default /etc/vmware)"),
            opt(None, "state", "FILE", "/var/lib/nosparse/vmware", "the state file (default /var/lib/nosparse/vmware)"),
            opt(None, "vm-dir", "DIR", "/vmfs", "status: where the VMs are, to check NOSPARSE_SKIP_FS against"),
            opt(None, "check", "", "", "change nothing; exit 2 when the step would change something"),
            opt(None, "json", "", "", "status: one JSON object (ok, state, wrapped, findings)"),
        ],
        examples: &[
            ("sudo nosparse vmware install", "wrap /usr/lib/vmware/bin/vmware-vmx"),
            ("nosparse vmware status", "one line per check; exit 1 when broken"),
            ("sudo nosparse vmware repair --check", "exit 2 when an upgrade needs repairing"),
            ("sudo nosparse vmware repair", "after upgrading VMware"),
        ],
    },
];

/// The exit statuses, as (status, meaning): [`Status::ALL`]'s, and death by a signal.
pub fn exit_status() -> Vec<(String, String)> {
    let mut rows = crate::exit_codes::rows(&Status::ALL);
    rows.push(("128+N".into(), "rewrite was stopped by signal N; the copy was removed".into()));
    rows
}

fn cmd(name: &str) -> &'static Cmd {
    COMMANDS.iter().find(|c| c.name == name).expect("a known command")
}

fn usage_line(c: &Cmd) -> String {
    match c.name {
        "launch" => format!("nosparse {}", c.synopsis),
        name => format!("nosparse {name} {}", c.synopsis),
    }
}

/// The words a setting's value can be, when it takes a few fixed ones.
pub fn keywords(s: &Setting) -> Vec<&'static str> {
    // A setting with a closed vocabulary refuses an arbitrary word (globs and sizes do not
    // have one: a glob takes any word, a size none of the words of its description).
    if s.check(b"no-such-value").is_ok() {
        return Vec::new();
    }
    let words = s.values.split(|c: char| !c.is_ascii_alphanumeric() && c != '-');
    words.filter(|w| !w.is_empty() && s.check(w.as_bytes()).is_ok()).collect()
}

/// The settings that have a launcher option.
fn options() -> impl Iterator<Item = &'static Setting> {
    SETTINGS.iter().filter(|s| s.option.is_some())
}

/// `--min-size SIZE`.
fn option_label(s: &Setting) -> String {
    let long = s.option.unwrap_or_default();
    if s.switch {
        format!("--{long}")
    } else {
        format!("--{long} {}", s.metavar)
    }
}

fn opt_label(o: &Opt) -> String {
    let short = o.short.map(|c| format!("-{c}, ")).unwrap_or_default();
    let value = if o.metavar.is_empty() { String::new() } else { format!(" {}", o.metavar) };
    format!("{short}--{}{value}", o.long)
}

/// Width of the option column in `--help`, and of the whole text.
const HELP_COLUMN: usize = 24;
const HELP_WIDTH: usize = 80;

/// `text` cut into lines of at most `width` characters, at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split(' ') {
        let last = lines.last_mut().expect("one line at least");
        if !last.is_empty() && last.len() + 1 + word.len() > width {
            lines.push(word.to_string());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

fn help_row(out: &mut String, label: &str, text: &str) {
    let lines = wrap(text, HELP_WIDTH - HELP_COLUMN);
    if label.len() + 2 < HELP_COLUMN {
        let _ = writeln!(out, "  {label:<w$}{}", lines[0], w = HELP_COLUMN - 2);
    } else {
        let _ = writeln!(out, "  {label}\n{:HELP_COLUMN$}{}", "", lines[0]);
    }
    for l in &lines[1..] {
        let _ = writeln!(out, "{:HELP_COLUMN$}{l}", "");
    }
}

/// Prose filled to the width of `--help`.
fn paragraphs(text: &str) -> String {
    let filled: Vec<String> = text.split("\n\n").map(|p| wrap(&p.replace('\n', " "), HELP_WIDTH).join("\n")).collect();
    filled.join("\n\n")
}

/// `usage: ` and the synopsis, wrapped at the width with its words aligned.
fn usage_block(out: &mut String, first: &str, lines: &[String]) {
    for (i, line) in lines.iter().enumerate() {
        let lead = if i == 0 { first } else { "       " };
        let words = wrap(line, HELP_WIDTH - lead.len() - 4);
        let _ = writeln!(out, "{lead}{}", words[0]);
        for more in &words[1..] {
            let _ = writeln!(out, "{:11}{more}", "");
        }
    }
}

fn examples(out: &mut String, c: &Cmd) {
    if c.examples.is_empty() {
        return;
    }
    out.push_str("\nexamples:\n");
    for (line, what) in c.examples {
        let _ = writeln!(out, "  {line}");
        let _ = writeln!(out, "      {what}");
    }
}

/// What `nosparse --help` prints: the launcher's usage and options, the commands.
pub fn help() -> String {
    let mut out = String::new();
    let launch = cmd("launch");
    usage_block(
        &mut out,
        "usage: ",
        &[usage_line(launch), "nosparse COMMAND [OPTIONS] ...".into(), "nosparse --help | --version".into()],
    );
    let _ = writeln!(out, "\n{}\n", paragraphs(launch.about));
    out.push_str("options (each sets the NOSPARSE_* setting of that name; see nosparse.conf(5)):\n");
    for s in options() {
        let what = if s.switch { format!("{} ({}=1)", s.help, s.name) } else { s.help.to_string() };
        help_row(&mut out, &option_label(s), &what);
        if !s.switch {
            help_row(&mut out, "", &format!("{}: {}; default {}", s.metavar, s.values, s.default));
        }
    }
    for o in launch.opts {
        help_row(&mut out, &opt_label(o), o.help);
    }
    out.push_str("\ncommands (nosparse COMMAND --help for each one's options):\n");
    for c in COMMANDS.iter().skip(1) {
        help_row(&mut out, c.name, c.summary);
    }
    examples(&mut out, launch);
    out.push_str("\nexit status:\n");
    for (status, meaning) in exit_status() {
        help_row(&mut out, &status, &meaning);
    }
    out.push_str("\nMore in nosparse(1), nosparse.conf(5), nosparse-vmware(8).\n");
    out
}

/// What `nosparse COMMAND --help` prints.
pub fn help_for(name: &str) -> String {
    let c = cmd(name);
    let mut out = String::new();
    usage_block(&mut out, "usage: ", &[usage_line(c)]);
    let _ = writeln!(out, "\n{}\n\noptions:", paragraphs(c.about));
    for o in c.opts {
        help_row(&mut out, &opt_label(o), o.help);
    }
    help_row(&mut out, "-h, --help", "this text");
    examples(&mut out, c);
    let _ = writeln!(out, "\nMore in {}.", if name == "vmware" { "nosparse-vmware(8)" } else { "nosparse(1)" });
    out
}

/// Text for roff: backslashes, hyphens and leading dots or quotes escaped.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    escaped
        .lines()
        .map(|l| if l.starts_with(['.', '\'']) { format!("\\&{l}") } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Paragraphs as roff: `.PP` between them.
fn roff_paragraphs(text: &str) -> String {
    text.split("\n\n").map(roff).collect::<Vec<_>>().join("\n.PP\n")
}

/// The release's date, `2026-11-22`, from the newest entry of the Debian changelog: one
/// place for it, as Cargo.toml is for the version.
pub fn release_date() -> String {
    const CHANGELOG: &str = include_str!("../../deploy/debian/changelog");
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    // " -- NAME <MAIL>  Sun, 22 Nov 2026 12:00:00 +0000"
    let trailer = CHANGELOG.lines().find(|l| l.starts_with(" -- ")).unwrap_or_default();
    let date = trailer.rsplit("  ").next().unwrap_or_default();
    let words: Vec<&str> = date.split_whitespace().collect();
    match words[..] {
        [_, day, month, year, ..] => {
            let m = MONTHS.iter().position(|m| *m == month).map_or(0, |i| i + 1);
            format!("{year}-{m:02}-{:0>2}", day)
        }
        _ => String::new(),
    }
}

fn man_header(out: &mut String, name: &str, section: u8, title: &str, what: &str) {
    let _ = writeln!(
        out,
        ".\\\" Generated by `cargo run -p nosparse-cli --example gen-docs`; edit cli/src/docs.rs instead."
    );
    let _ = writeln!(
        out,
        ".TH {} {section} \"{}\" \"nosparse {}\" \"{title}\"",
        name.to_uppercase(),
        release_date(),
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(out, ".SH NAME\n{} \\- {}", roff(name), roff(what));
}

fn man_opt(out: &mut String, label: &str, text: &str) {
    let _ = writeln!(out, ".TP\n.B {}\n{}", roff(label), roff(text));
}

/// nosparse(1).
pub fn man_nosparse() -> String {
    let mut out = String::new();
    man_header(
        &mut out,
        "nosparse",
        1,
        "User Commands",
        "run a program with libnosparse.so; check and rewrite files' layout; check the setup",
    );
    out.push_str(".SH SYNOPSIS\n");
    for c in &COMMANDS {
        let _ = writeln!(out, ".PP\n{}", roff(&usage_line(c)));
    }
    let _ = writeln!(out, ".SH DESCRIPTION\n{}", roff_paragraphs(cmd("launch").about));
    out.push_str(".SH OPTIONS\nEach option sets the setting of that name for PROGRAM; see\n.BR nosparse.conf (5).\n");
    for s in options() {
        let text = if s.switch {
            format!("{} ({}=1).", s.help, s.name)
        } else {
            format!("{} ({}). {}: {}. Default: {}.", s.help, s.name, s.metavar, s.values, s.default)
        };
        man_opt(&mut out, &option_label(s), &text);
    }
    for o in cmd("launch").opts {
        man_opt(&mut out, &opt_label(o), o.help);
    }
    out.push_str(".SH COMMANDS\n");
    for c in COMMANDS.iter().skip(1) {
        let _ = writeln!(out, ".SS \"{}\"\n{}", roff(&usage_line(c)), roff_paragraphs(c.about));
        for o in c.opts {
            man_opt(&mut out, &opt_label(o), o.help);
        }
    }
    out.push_str(".SH \"EXIT STATUS\"\n");
    for (status, meaning) in exit_status() {
        man_opt(&mut out, &status, &meaning);
    }
    out.push_str(".SH EXAMPLES\n");
    for c in &COMMANDS {
        for (line, what) in c.examples {
            man_opt(&mut out, line, what);
        }
    }
    out.push_str(
        ".SH FILES\n.TP\n.B PREFIX/$LIB/libnosparse.so\nthe library, one build per class\n\
         .TP\n.B /etc/nosparse.conf\nsystem\\-wide settings\n.TP\n.B /etc/ld.so.preload\n\
         the loader's list of libraries for every process\n",
    );
    out.push_str(
        ".SH \"SEE ALSO\"\n.BR nosparse.conf (5),\n.BR nosparse\\-vmware (8),\n.BR ld.so (8),\n.BR filefrag (8)\n",
    );
    out
}

/// nosparse.conf(5).
pub fn man_conf() -> String {
    let mut out = String::new();
    man_header(&mut out, "nosparse.conf", 5, "File Formats", "settings of libnosparse.so");
    let _ = writeln!(
        out,
        ".SH SYNOPSIS\n{}\n.PP\n{}",
        roff("/etc/nosparse.conf"),
        roff("NOSPARSE_NAME=value in the environment")
    );
    out.push_str(&format!(
        ".SH DESCRIPTION\n{}\n",
        roff_paragraphs(
            "\
libnosparse.so reads its settings once, at the first call it might act on: from
/etc/nosparse.conf, then from the environment, which overrides the file name by name.
A bad value is reported once in the log and the default kept; a setting never breaks
the program. In a set-user-ID or set-group-ID program the environment is ignored and
only the file counts.

The file is read only when it is a regular file owned by root that neither group nor
others can write, of at most 64 KiB; otherwise the library acts in no program at all,
silently (nosparse doctor says why). It holds one NAME=value per line; blank lines and
lines starting with # are ignored, spaces around the name and the value and one pair of
quotes around the value are dropped, and a name given twice takes its last value. The
launcher's options (nosparse(1)) set the same settings for one program."
        )
    ));
    out.push_str(".SH SETTINGS\n");
    for s in &SETTINGS {
        let option = s.option.map(|o| format!(" Launcher option: --{o}.")).unwrap_or_default();
        man_opt(
            &mut out,
            s.name,
            &format!("{}. Values: {}. Default: {}.{option}", capitalized(s.help), s.values, s.default),
        );
    }
    out.push_str(&format!(
        ".SH EXAMPLE\n.EX\n{}\n.EE\n",
        roff(&format!(
            "# The library acts only in vmx, only on guest memory files,\n# created by pwrite or by ftruncate.\n\
             {}=vmware-vmx\n{}=*.vmem\n{}=pwrite,ftruncate",
            PROGRAMS.name, MATCH.name, TRIGGERS.name
        ))
    ));
    out.push_str(".SH FILES\n.TP\n.B /etc/nosparse.conf\n.TP\n.B /usr/share/nosparse/nosparse.conf.example\n");
    out.push_str(".SH \"SEE ALSO\"\n.BR nosparse (1),\n.BR nosparse\\-vmware (8),\n.BR ld.so (8)\n");
    out
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// The exit statuses of `nosparse vmware`, as (status, meaning).
pub fn vmware_exit_status() -> Vec<(String, String)> {
    let mut rows =
        vec![("0".to_string(), "done, or unchanged (nothing to do); status: everything is in place".to_string())];
    rows.extend(crate::exit_codes::rows(&[Status::VmwareFailed, Status::WouldChange, Status::Trouble]));
    rows
}

/// nosparse-vmware(8), from the `vmware` command's entry of [`COMMANDS`].
pub fn man_vmware() -> String {
    let c = cmd("vmware");
    let mut out = String::new();
    man_header(
        &mut out,
        "nosparse-vmware",
        8,
        "System Administration",
        "put libnosparse.so in front of VMware's vmware-vmx, check it, repair it",
    );
    let _ = writeln!(
        out,
        ".SH SYNOPSIS\n.PP\n{}\n.PP\n{}",
        roff(&format!("nosparse vmware {}", c.synopsis)),
        roff(&format!("nosparse-vmware {}", c.synopsis))
    );
    let _ = writeln!(
        out,
        ".SH DESCRIPTION\n{}\n.PP\n{}",
        roff_paragraphs(
            "\
vmware-vmx creates each guest's memory file (.vmem) sparse, and the file fragments as
the guest runs. vmx is set-user-ID root, so its loader runs in secure-execution mode:
it preloads only a library named without a path, from a directory it trusts
(/usr/lib/x86_64-linux-gnu, /usr/lib32, ...), and only if that file has the
set-user-ID bit; the library then reads its settings from /etc/nosparse.conf only,
never from the environment. Neither the launcher nor LD_PRELOAD with a path reaches
it: the wrapper does."
        ),
        roff_paragraphs(c.about)
    );
    out.push_str(".SH OPTIONS\n");
    for o in c.opts {
        man_opt(&mut out, &opt_label(o), o.help);
    }
    out.push_str(".SH \"EXIT STATUS\"\n");
    for (status, meaning) in vmware_exit_status() {
        man_opt(&mut out, &status, &meaning);
    }
    out.push_str(
        ".SH FILES\n.TP\n.B /var/lib/nosparse/vmware\nwhat was done, one line per wrapped program \
         (locked with flock(2) on its directory)\n.TP\n.B /etc/vmware/nosparse\\-vmware\\-vmx\nthe wrapper\n\
         .TP\n.B /etc/nosparse.conf\nthe library's settings in vmx; see\n.BR nosparse.conf (5)\n\
         .TP\n.B /usr/lib/systemd/system/nosparse\\-vmware\\-repair.path\nwatches vmware\\-vmx and runs \
         repair when it changes (enable it with systemctl enable \\-\\-now)\n",
    );
    let _ = writeln!(
        out,
        ".SH EXAMPLES\n.EX\n{}\n.EE",
        roff(
            "sudo nosparse vmware install          # wrap /usr/lib/vmware/bin/vmware-vmx
nosparse vmware status                # one line per check; exit 1 if broken
nosparse vmware status --json         # the same, for scripts
sudo nosparse vmware repair --check   # exit 2: a VMware upgrade needs repairing
sudo nosparse vmware repair           # after upgrading VMware
sudo systemctl enable --now nosparse-vmware-repair.path   # repair by itself
sudo nosparse vmware uninstall"
        )
    );
    out.push_str(
        ".SH \"SEE ALSO\"\n.BR nosparse (1),\n.BR nosparse.conf (5),\n.BR dpkg\\-divert (1),\n\
         .BR dpkg\\-statoverride (8),\n.BR ld.so (8)\n",
    );
    out
}

/// The bash completion script.
pub fn bash_completion() -> String {
    let launch_opts: Vec<String> = options()
        .map(|s| format!("--{}", s.option.unwrap_or_default()))
        .chain(cmd("launch").opts.iter().map(|o| format!("--{}", o.long)))
        .collect();
    let mut values = String::new();
    for s in options().filter(|s| !s.switch) {
        let words = keywords(s);
        if !words.is_empty() {
            let _ = writeln!(
                values,
                "        --{}) COMPREPLY=($(compgen -W '{}' -- \"$cur\")); return ;;",
                s.option.unwrap_or_default(),
                words.join(" ")
            );
        }
    }
    let with_value: Vec<String> =
        options().filter(|s| !s.switch).map(|s| format!("--{}", s.option.unwrap_or_default())).collect();
    let sub_opts = |name: &str| cmd(name).opts.iter().map(|o| format!("--{}", o.long)).collect::<Vec<_>>().join(" ");
    format!(
        r#"# bash completion for nosparse(1).
# Generated by `cargo run -p nosparse-cli --example gen-docs`; edit cli/src/docs.rs instead.

# File names one a line (a name may hold spaces), quoted by bash as it inserts them.
_nosparse_files() {{
    local IFS=$'\n'
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen "${{1:--f}}" -- "$cur"))
}}

_nosparse() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD - 1]}} i
    COMPREPLY=()
    case ${{COMP_WORDS[1]}} in
        check)
            case $prev in --pattern|--max-fragments) return ;; --format) COMPREPLY=($(compgen -W 'text json ndjson prometheus' -- "$cur")); return ;; esac
            if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W '{check} --help' -- "$cur")); else _nosparse_files; fi
            return ;;
        rewrite)
            case $prev in --max-fragments) return ;; esac
            if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W '{rewrite} --help' -- "$cur")); else _nosparse_files; fi
            return ;;
        doctor)
            case $prev in --config|--program) _nosparse_files; return ;; esac
            COMPREPLY=($(compgen -W '{doctor} --help' -- "$cur"))
            return ;;
        vmware)
            case $prev in --vmx|--state) _nosparse_files; return ;; --wrapper-dir|--vm-dir) _nosparse_files -d; return ;; esac
            if ((COMP_CWORD == 2)); then COMPREPLY=($(compgen -W 'install uninstall repair status' -- "$cur")); else COMPREPLY=($(compgen -W '{vmware} --help' -- "$cur")); fi
            return ;;
    esac
    # The launcher: once PROGRAM is there, the rest is PROGRAM's.
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${{COMP_WORDS[i]}} in
            --) if declare -F _command_offset >/dev/null; then _command_offset $((i + 1)); else COMPREPLY=($(compgen -c -- "$cur")); fi
                return ;;
            {with_value}) ((i++)) ;;
            -*) ;;
            *) if declare -F _command_offset >/dev/null; then _command_offset "$i"; else _nosparse_files; fi
               return ;;
        esac
    done
    case $prev in
{values}        {with_value}) return ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W '{launch} --' -- "$cur"))
    elif ((COMP_CWORD == 1)); then
        COMPREPLY=($(compgen -W 'check rewrite doctor vmware' -- "$cur") $(compgen -c -- "$cur"))
    else
        COMPREPLY=($(compgen -c -- "$cur"))
    fi
}}
complete -F _nosparse nosparse
"#,
        check = sub_opts("check"),
        rewrite = sub_opts("rewrite"),
        doctor = sub_opts("doctor"),
        vmware = sub_opts("vmware"),
        with_value = with_value.join("|"),
        launch = launch_opts.join(" "),
    )
}

/// The README's settings table.
pub fn readme_table() -> String {
    let mut out =
        String::from("| variable | what it does | values | default | launcher option |\n|---|---|---|---|---|\n");
    for s in &SETTINGS {
        let code = |t: &str| if t.contains(' ') { t.to_string() } else { format!("`{t}`") };
        let option = s.option.map(|o| format!("`--{o}`")).unwrap_or_else(|| "none".into());
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {option} |",
            s.name,
            s.help,
            s.values.replace('|', "\\|"),
            code(s.default)
        );
    }
    out
}

/// The generated files, as (path from the repository's root, content).
pub fn generated() -> Vec<(&'static str, String)> {
    vec![
        ("docs/man/nosparse.1", man_nosparse()),
        ("docs/man/nosparse.conf.5", man_conf()),
        ("docs/man/nosparse-vmware.8", man_vmware()),
        ("deploy/bash-completion/nosparse", bash_completion()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn repo() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("cli/ sits in the repository")
    }

    #[test]
    fn the_committed_files_are_generated_from_the_table() {
        for (path, text) in generated() {
            let committed = std::fs::read_to_string(repo().join(path)).unwrap_or_default();
            assert!(
                committed == text,
                "{path} is not what the table makes: run `cargo run -p nosparse-cli --example gen-docs`"
            );
        }
    }

    #[test]
    fn the_readme_settings_table_matches_the_table() {
        let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
        assert!(
            readme.contains(&readme_table()),
            "README.md's settings table differs; it should read:\n{}",
            readme_table()
        );
    }

    #[test]
    fn help_names_every_option_and_setting_in_80_columns() {
        let h = help();
        for s in options() {
            assert!(h.contains(&option_label(s)), "{}", s.name);
        }
        for c in &COMMANDS {
            let text = if c.name == "launch" { help() } else { help_for(c.name) };
            for o in c.opts {
                assert!(text.contains(&format!("--{}", o.long)), "{} --{}", c.name, o.long);
            }
            assert!(c.name == "launch" || h.contains(&format!("  {}", c.name)), "{}", c.name);
            for l in text.lines() {
                assert!(l.chars().count() <= HELP_WIDTH, "too long in {}'s help: {l}", c.name);
            }
        }
    }

    #[test]
    fn the_man_pages_date_is_the_changelogs() {
        assert_eq!(release_date().len(), "2026-11-22".len(), "{}", release_date());
        assert!(man_nosparse().contains(&format!("\"{}\" \"nosparse ", release_date())));
    }

    #[test]
    fn keywords_of_closed_settings() {
        let kw = |name| keywords(nosparse_core::settings::find(name).unwrap());
        assert_eq!(kw("NOSPARSE_METHOD"), ["auto", "fallocate", "zero", "off"]);
        assert_eq!(kw("NOSPARSE_TRIGGERS"), ["pwrite", "ftruncate", "write"]);
        assert!(kw("NOSPARSE_MATCH").is_empty() && kw("NOSPARSE_MIN_SIZE").is_empty());
    }
}
