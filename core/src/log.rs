//! Log lines: syslog(3) without `openlog`, so the program keeps its own ident and
//! facility (`vmware-vmx[pid]: nosparse: ...`), or one write(2) to stderr.
//!
//! Lines are formatted into a stack buffer: logging never allocates.

use std::fmt::{self, Write};

/// Where log lines go (`NOSPARSE_LOG`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    Syslog,
    Stderr,
    None,
}

/// Severity, mapped onto syslog priorities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warning,
}

/// Longest log line; longer ones are cut.
const LINE_MAX: usize = 1024;

/// A `fmt::Write` into a byte slice that stops, without failing, when the slice is full.
pub struct StackBuf<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> StackBuf<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        StackBuf { buf, len: 0 }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Write for StackBuf<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Writes one line `nosparse: <args>` to `sink`.
pub fn emit(sink: Sink, level: Level, args: fmt::Arguments<'_>) {
    if sink == Sink::None {
        return;
    }
    let mut line = [0u8; LINE_MAX];
    // Room is kept for "\n" or the NUL that syslog needs.
    let mut w = StackBuf::new(&mut line[..LINE_MAX - 1]);
    let _ = w.write_str("nosparse: ");
    let _ = w.write_fmt(args);
    let len = w.len;
    match sink {
        Sink::Syslog => {
            line[len] = 0;
            let priority = match level {
                Level::Debug => libc::LOG_DEBUG,
                Level::Info => libc::LOG_INFO,
                Level::Warning => libc::LOG_WARNING,
            };
            let saved = crate::error::get_errno();
            // SAFETY: "%s" with a NUL-terminated buffer. No facility bits: the program's
            // own default (or LOG_USER) applies.
            unsafe { libc::syslog(priority, c"%s".as_ptr(), line.as_ptr()) };
            crate::error::set_errno(saved);
        }
        Sink::Stderr => {
            line[len] = b'\n';
            let saved = crate::error::get_errno();
            // SAFETY: the buffer holds len + 1 initialised bytes. One write keeps the line
            // whole among other threads' output; a failure has nowhere to be reported.
            unsafe { crate::real::write()(libc::STDERR_FILENO, line.as_ptr().cast(), len + 1) };
            crate::error::set_errno(saved);
        }
        Sink::None => {}
    }
}

/// A byte count for people: `3774873600 bytes (3.5 GiB)`.
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
        let n = self.0;
        write!(f, "{n} bytes")?;
        let mut unit = None;
        for (i, name) in UNITS.iter().enumerate().rev() {
            if n >= 1u64 << (10 * (i + 1)) {
                unit = Some((10 * (i as u32 + 1), *name));
                break;
            }
        }
        if let Some((shift, name)) = unit {
            // One decimal, rounded down, in integers.
            let tenths = ((n as u128 * 10) >> shift) as u64;
            write!(f, " ({}.{} {name})", tenths / 10, tenths % 10)?;
        }
        Ok(())
    }
}

/// Bytes shown as text, invalid UTF-8 replaced, without allocating.
pub struct Lossy<'a>(pub &'a [u8]);

impl fmt::Display for Lossy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_char(char::REPLACEMENT_CHARACTER)?;
            }
        }
        Ok(())
    }
}

/// A count that may not be known yet (delayed allocation): `N` or `pending writeback`.
pub struct OrPending(pub Option<u64>);

impl fmt::Display for OrPending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("pending writeback"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_buf_truncates_instead_of_failing() {
        let mut b = [0u8; 8];
        let mut w = StackBuf::new(&mut b);
        w.write_str("0123456789").unwrap();
        assert_eq!(w.as_bytes(), b"01234567");
    }

    #[test]
    fn lossy_paths() {
        assert_eq!(Lossy(b"/vm/a\xffb.vmem").to_string(), "/vm/a\u{fffd}b.vmem");
        assert_eq!(OrPending(None).to_string(), "pending writeback");
    }

    #[test]
    fn bytes_for_people() {
        assert_eq!(Bytes(3774873600).to_string(), "3774873600 bytes (3.5 GiB)");
        assert_eq!(Bytes(64 << 20).to_string(), "67108864 bytes (64.0 MiB)");
        assert_eq!(Bytes(100).to_string(), "100 bytes");
    }
}
