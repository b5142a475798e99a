//! Sizes, rates, durations, errors and paths as people read them, the lines the command
//! writes on stderr, and its output on stdout.

use crate::exit_codes::{Failure, Status};
use std::fmt;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

/// Why standard output could not be written, once it could not.
static OUT_ERROR: OnceLock<String> = OnceLock::new();

/// Writes the command's output (the `out!` and `outln!` macros). A write that fails is
/// remembered, and nothing more is written: `main` reports it ([`out_done`]). A reader
/// that went away (`| head`) ends the process by SIGPIPE, as it ends other tools.
pub fn out(args: fmt::Arguments) {
    if OUT_ERROR.get().is_some() {
        return;
    }
    if let Err(e) = io::stdout().lock().write_fmt(args) {
        let _ = OUT_ERROR.set(os_error(&e));
    }
}

/// Flushes standard output; the failure to report if anything could not be written.
pub fn out_done() -> Result<(), Failure> {
    if OUT_ERROR.get().is_none() {
        if let Err(e) = io::stdout().lock().flush() {
            let _ = OUT_ERROR.set(os_error(&e));
        }
    }
    match OUT_ERROR.get() {
        Some(why) => Err(Failure::new(Status::Trouble, format!("cannot write to standard output: {why}"))),
        None => Ok(()),
    }
}

/// Writes one line to stderr, as every message of the command is written:
/// `nosparse: COMMAND: MESSAGE`.
pub fn say(command: &str, msg: &str) {
    err(format_args!("nosparse: {command}: {msg}"));
}

/// Writes a warning to stderr: `nosparse: warning: MESSAGE`.
pub fn warn(msg: &str) {
    err(format_args!("nosparse: warning: {msg}"));
}

/// Writes one line to stderr. A message that cannot be written (stderr on a full disk,
/// or closed) has nowhere else to go: it is dropped, and the exit status still tells.
pub fn err(line: std::fmt::Arguments) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// An I/O error's text without Rust's ` (os error N)`: `No such file or directory`.
pub fn os_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    match (e.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(at)) if text.ends_with(')') => text[..at].to_string(),
        _ => text,
    }
}

/// A path as the command shows it, one line whatever its bytes: a control character
/// (newline, escape, C1), a backslash and every byte that is not part of valid UTF-8 is
/// written `\xNN`, as the library's log lines write them, so no file name can
/// forge a line or drive a terminal.
pub fn path(p: &Path) -> String {
    fn hex(out: &mut String, b: u8) {
        let _ = write!(out, "\\x{b:02x}");
    }
    let mut out = String::new();
    for chunk in p.as_os_str().as_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '\\' {
                c.encode_utf8(&mut [0; 4]).bytes().for_each(|b| hex(&mut out, b));
            } else {
                out.push(c);
            }
        }
        chunk.invalid().iter().for_each(|&b| hex(&mut out, b));
    }
    out
}

/// `n` bytes in the largest binary unit it fills, one decimal: `3.5 GiB`, `512 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut unit = None;
    for (i, name) in UNITS.iter().enumerate().rev() {
        let shift = 10 * (i as u32 + 1);
        if n >= 1u64 << shift {
            unit = Some((shift, *name));
            break;
        }
    }
    match unit {
        // One decimal, rounded down, in integers.
        Some((shift, name)) => {
            let tenths = ((u128::from(n) * 10) >> shift) as u64;
            format!("{}.{} {name}", tenths / 10, tenths % 10)
        }
        None => format!("{n} B"),
    }
}

/// `bytes` per `d` as `421.9 MiB/s`: the one way rewrite states a rate, in its progress
/// line and its summary alike (bytes of the file, holes included, per second).
pub fn rate(bytes: u64, d: Duration) -> String {
    let per_second = bytes as f64 / d.as_secs_f64().max(1e-3);
    format!("{}/s", self::bytes(per_second as u64))
}

/// A time taken: `0.05 s`, `12.3 s`, `1m05s`.
pub fn elapsed(d: Duration) -> String {
    match d.as_secs_f64() {
        s if s < 1.0 => format!("{s:.2} s"),
        s if s < 60.0 => format!("{s:.1} s"),
        _ => duration(d),
    }
}

/// `1 fragment`, `2 fragments`.
pub fn count(n: u64, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// `1m05s`, `12s`, `2h03m`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}

/// Ok for a regular file; else what it is: "a FIFO, not a regular file".
pub fn refuse_special(t: std::fs::FileType) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    };
    Err(format!("{what}, not a regular file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(3 << 30 | 512 << 20), "3.5 GiB");
        assert_eq!(bytes(u64::MAX), "16383.9 PiB");
        assert_eq!(duration(Duration::from_secs(65)), "1m05s");
        assert_eq!(duration(Duration::from_secs(7380)), "2h03m");
        assert_eq!(rate(3 << 30, Duration::from_secs(2)), "1.5 GiB/s");
        assert_eq!(rate(1 << 20, Duration::ZERO), "1000.0 MiB/s");
        assert_eq!(elapsed(Duration::from_millis(50)), "0.05 s");
        assert_eq!(elapsed(Duration::from_secs(65)), "1m05s");
        assert_eq!(
            (count(1, "extent"), count(0, "extent"), count(2, "extent")),
            ("1 extent".into(), "0 extents".into(), "2 extents".into())
        );
    }

    #[test]
    fn paths_are_shown_on_one_line() {
        use std::ffi::OsStr;
        let shown = |b: &[u8]| path(Path::new(OsStr::from_bytes(b)));
        assert_eq!(shown(b"/vm/guest \"1\".vmem"), "/vm/guest \"1\".vmem");
        assert_eq!(shown(b"/vm/a\nb\\c\x7f\x1b[2J"), "/vm/a\\x0ab\\x5cc\\x7f\\x1b[2J");
        assert_eq!(shown("/vm/é\u{85}".as_bytes()), "/vm/é\\xc2\\x85");
        assert_eq!(shown(b"/vm/\xff\xc3/ok"), "/vm/\\xff\\xc3/ok");
    }

    #[test]
    fn errors_read_as_the_system_says_them() {
        let e = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(os_error(&e), "No such file or directory");
        assert_eq!(os_error(&std::io::Error::other("odd (os error 2)")), "odd (os error 2)");
    }
}
