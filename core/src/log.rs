//! Log lines, without syslog(3) or stdio: glibc's syslog keeps a hidden descriptor and
//! a lock in the host process, and stdio allocates. A line is formatted into a buffer
//! the caller owns (no heap, no `core::fmt`, whose code can panic) and goes out as
//! - `syslog`: one datagram to `/dev/log` from a socket opened (close-on-exec) and
//!   closed for that line, in the format rsyslog and journald read from local programs,
//!   `<PRI>program[pid]: nosparse: ...` under the program's own name and pid, facility
//!   user, no timestamp (the receiver stamps it); dropped when there is no `/dev/log`
//!   or it would block;
//! - `stderr`: one write(2) to fd 2, only while fd 2 is still the file it was when the
//!   library was loaded: a program that closed stderr may have reused fd 2 for its data.
//!
//! Control characters in paths are escaped (`\n` → `\x0a`), so no file name can forge a
//! second line.

use crate::error::Errno;
use crate::settings::Sink;
use crate::sys;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// Severity, as syslog priorities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warning,
}

/// Longest log line, in bytes; longer ones are cut.
pub const LINE_MAX: usize = 1024;
const LOG_USER: u32 = 1 << 3;
const DEV_LOG: &[u8] = b"/dev/log";

/// Whose line it is: the syslog header names the program and its pid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ident<'a> {
    /// This process (the library): its short name and pid.
    Own,
    /// Another process (the supervisor's program).
    Of { name: &'a [u8], pid: u32 },
}

/// A log line being written into a fixed buffer; it stops, without failing, when full.
pub struct Line<'a> {
    buf: &'a mut [u8],
    len: usize,
    sink: Sink,
}

impl<'a> Line<'a> {
    /// A line for `sink`, its header (syslog priority, program name and pid) written.
    pub fn new(buf: &'a mut [u8], sink: Sink, level: Level, ident: Ident) -> Self {
        let mut l = Line { buf, len: 0, sink };
        if sink == Sink::Syslog {
            let severity = match level {
                Level::Debug => 7,
                Level::Info => 6,
                Level::Warning => 4,
            };
            l.lit("<").num(u64::from(LOG_USER | severity)).lit(">");
        }
        // Syslog names the program; so does stderr for another process's line (the
        // supervisor's stderr is shared by every program it serves).
        let who = match (sink, ident) {
            (Sink::Syslog, Ident::Own) => Some((crate::real::program_name(), sys::getpid())),
            (Sink::None, _) | (Sink::Stderr, Ident::Own) => None,
            (_, Ident::Of { name, pid }) => Some((name, pid)),
        };
        if let Some((name, pid)) = who {
            l.text(name).lit("[").num(u64::from(pid)).lit("]: ");
        }
        l.lit("nosparse: ");
        l
    }

    fn push(&mut self, c: u8) {
        // One byte stays free for the stderr line's newline.
        if self.len + 1 < self.buf.len() {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = c;
                self.len += 1;
            }
        }
    }

    /// Literal text.
    // Out of line: a log line is rare, and each use would otherwise copy the code.
    #[inline(never)]
    pub fn lit(&mut self, s: &str) -> &mut Self {
        s.bytes().for_each(|c| self.push(c));
        self
    }

    /// Bytes from outside (a path, a setting's value): control characters, `\\` and
    /// every byte that is not part of valid UTF-8 are escaped as `\\xNN`.
    // Out of line: a log line is rare, and each use would otherwise copy the code.
    #[inline(never)]
    pub fn text(&mut self, mut t: &[u8]) -> &mut Self {
        while !t.is_empty() {
            let (valid, rest) = match core::str::from_utf8(t) {
                Ok(_) => (t, &[][..]),
                Err(e) => (t.get(..e.valid_up_to()).unwrap_or(&[]), t.get(e.valid_up_to()..).unwrap_or(&[])),
            };
            for &c in valid {
                if c < 0x20 || c == 0x7f || c == b'\\' {
                    self.hex(c);
                } else {
                    self.push(c);
                }
            }
            // The first byte of `rest` starts no valid sequence: escape it, go on after it.
            if let Some((&bad, after)) = rest.split_first() {
                self.hex(bad);
                t = after;
            } else {
                t = rest;
            }
        }
        self
    }

    // Out of line: a log line is rare, and each use would otherwise copy the code.
    #[inline(never)]
    fn hex(&mut self, c: u8) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.push(b'\\');
        self.push(b'x');
        self.push(HEX[usize::from(c >> 4)]);
        self.push(HEX[usize::from(c & 0xf)]);
    }

    /// A decimal number.
    // Out of line: a log line is rare, and each use would otherwise copy the code.
    #[inline(never)]
    pub fn num(&mut self, v: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        crate::num::decimal(v, &mut digits).iter().for_each(|&c| self.push(c));
        self
    }

    /// A byte count for people: `3774873600 bytes (3.5 GiB)`.
    // Out of line: a log line is rare, and each use would otherwise copy the code.
    #[inline(never)]
    pub fn bytes(&mut self, v: u64) -> &mut Self {
        self.num(v).lit(" bytes");
        if let Some((shift, unit)) = crate::num::unit_of(v) {
            let tenths = ((u128::from(v) * 10) >> shift) as u64;
            self.lit(" (").num(tenths / 10).lit(".").num(tenths % 10).lit(" ").lit(unit).lit(")");
        }
        self
    }

    /// An errno value by name.
    // Out of line: a log line is rare, and each use would otherwise copy the code.
    #[inline(never)]
    pub fn errno(&mut self, e: Errno) -> &mut Self {
        match e.name() {
            Some(name) => self.lit(name),
            None => self.lit("errno ").num(e.0 as u64),
        }
    }

    /// The line so far.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// Sends the line to its sink. Failures are dropped: there is nowhere to report them.
    pub fn emit(&mut self) {
        match self.sink {
            Sink::None => {}
            Sink::Syslog => {
                let _ = sys::send_datagram(DEV_LOG, self.as_bytes());
            }
            Sink::Stderr => {
                if stderr_is_ours() {
                    if let Some(slot) = self.buf.get_mut(self.len) {
                        *slot = b'\n';
                        let line = self.buf.get(..self.len + 1).unwrap_or(&[]);
                        let _ = sys::write_all(libc::STDERR_FILENO, line);
                    }
                }
            }
        }
    }
}

/// What fd 2 was when the library loaded: not known, a file (its device and inode in
/// [`STDERR_DEV`] and [`STDERR_INO`]), or closed.
static STDERR_STATE: AtomicU8 = AtomicU8::new(STDERR_UNKNOWN);
static STDERR_DEV: AtomicU64 = AtomicU64::new(0);
static STDERR_INO: AtomicU64 = AtomicU64::new(0);
const STDERR_UNKNOWN: u8 = 0;
const STDERR_FILE: u8 = 1;
const STDERR_CLOSED: u8 = 2;

/// Records what fd 2 is, for [`Sink::Stderr`]. The constructor calls it only when the
/// environment asks for stderr, so that no other process pays a system call at load.
pub fn remember_stderr() {
    match sys::fstat(libc::STDERR_FILENO) {
        Ok(st) => {
            STDERR_DEV.store(st.dev, Ordering::Relaxed);
            STDERR_INO.store(st.ino, Ordering::Relaxed);
            STDERR_STATE.store(STDERR_FILE, Ordering::Release);
        }
        Err(_) => STDERR_STATE.store(STDERR_CLOSED, Ordering::Release),
    }
}

/// Whether a line may be written to fd 2: it is the file it was at load; or, when that
/// was not recorded (stderr chosen in the settings file), a terminal, pipe or socket —
/// never a regular file or device a program may have opened as fd 2 for its data.
fn stderr_is_ours() -> bool {
    let Ok(now) = sys::fstat(libc::STDERR_FILENO) else { return false };
    match STDERR_STATE.load(Ordering::Acquire) {
        STDERR_FILE => now.dev == STDERR_DEV.load(Ordering::Relaxed) && now.ino == STDERR_INO.load(Ordering::Relaxed),
        STDERR_UNKNOWN => matches!(now.mode & libc::S_IFMT, libc::S_IFCHR | libc::S_IFIFO | libc::S_IFSOCK),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(f: impl FnOnce(&mut Line)) -> String {
        let mut buf = [0u8; 64];
        let mut l = Line::new(&mut buf, Sink::Stderr, Level::Info, Ident::Own);
        f(&mut l);
        String::from_utf8(l.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn numbers_bytes_and_escapes() {
        assert_eq!(
            line(|l| {
                l.num(0).lit(" ").num(u64::MAX);
            }),
            "nosparse: 0 18446744073709551615"
        );
        assert_eq!(
            line(|l| {
                l.bytes(3774873600);
            }),
            "nosparse: 3774873600 bytes (3.5 GiB)"
        );
        assert_eq!(
            line(|l| {
                l.bytes(100);
            }),
            "nosparse: 100 bytes"
        );
        assert_eq!(
            line(|l| {
                l.text(b"/vm/a\nb\\c\x7f");
            }),
            "nosparse: /vm/a\\x0ab\\x5cc\\x7f"
        );
        assert_eq!(
            line(|l| {
                l.text(b"/vm/\xc3\xa9\xff/ok");
            }),
            "nosparse: /vm/é\\xff/ok"
        );
    }

    #[test]
    fn a_full_buffer_cuts_the_line() {
        let long = line(|l| {
            l.lit(&"x".repeat(100));
        });
        assert_eq!(long.len(), 63);
    }

    #[test]
    fn syslog_header() {
        let mut buf = [0u8; 128];
        let mut l = Line::new(&mut buf, Sink::Syslog, Level::Warning, Ident::Own);
        l.lit("hi");
        let text = String::from_utf8(l.as_bytes().to_vec()).unwrap();
        let pid = std::process::id();
        assert!(text.starts_with("<12>"), "{text}");
        assert!(text.ends_with(&format!("[{pid}]: nosparse: hi")), "{text}");
    }
}
