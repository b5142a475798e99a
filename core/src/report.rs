//! What happened to one call, as a value ([`Outcome`]), and the one log line that says
//! it: a pure function of the outcome and the file's name, tested as such.

use crate::alloc::{How, Stop};
use crate::error::Errno;
use crate::log::{Level, Line};
use crate::policy::Skip;
use crate::settings::{self, Trigger};

/// What the engine did for one call, as the log line tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Left alone (logged only with `NOSPARSE_DEBUG=1`).
    Skipped { fd: i32, trigger: Trigger, offset: i64, why: Skip },
    /// `NOSPARSE_METHOD=off`.
    WouldAllocate { len: u64 },
    /// Not enough room: nothing was taken; `fail`: the call was failed with ENOSPC.
    NoRoom { needed: u64, free: u64, fail: bool },
    /// The range was allocated.
    Allocated { len: u64, how: How, ms: u64, trigger: Trigger, fragments: Option<u64> },
    /// The allocation after the call stopped part-way or could not start: the call's
    /// result is the program's; what was allocated before it stopped stays.
    Stopped { len: u64, how: How, stop: Stop },
    /// The reservation before the call failed: the call went through untouched or, with
    /// `fail`, failed; `left` bytes it allocated past the end stay.
    ReserveFailed { len: u64, errno: Errno, left: u64, fail: bool },
    /// Reserved before the call, which then failed; `left` bytes stay allocated past the
    /// end of the file.
    CallFailed { left: u64 },
    /// The real call failed; nothing had been allocated (logged only with debug).
    CallFailedUntouched,
}

impl Outcome {
    /// The line's severity; `None`: no line unless `debug`, then at debug level.
    pub fn level(&self) -> Option<Level> {
        match self {
            // Zeros were asked for and cannot be had: the file stays sparse, which the
            // settings say the admin did not want.
            Outcome::Skipped { why: Skip::CannotZero, .. } => Some(Level::Warning),
            Outcome::Skipped { .. } | Outcome::CallFailedUntouched => None,
            Outcome::WouldAllocate { .. } | Outcome::Allocated { .. } => Some(Level::Info),
            Outcome::CallFailed { left: 0 } => Some(Level::Info),
            _ => Some(Level::Warning),
        }
    }

    /// Words the line after its header: `name` is the file's path.
    pub fn words(&self, name: &[u8], l: &mut Line) {
        match *self {
            Outcome::Skipped { fd, trigger, offset, why } => {
                l.lit("fd ").num(fd as u64).lit(" (").lit(trigger.name());
                // ftruncate's "byte" is its length minus one: the line shows the length.
                let (word, shown) = match trigger {
                    Trigger::Ftruncate => (" to ", offset.saturating_add(1)),
                    _ => (" at ", offset),
                };
                l.lit(word);
                if shown < 0 {
                    l.lit("-");
                }
                l.num(shown.unsigned_abs()).lit("): left alone: ");
                match why {
                    Skip::Filesystem(fs) => l.lit(fs.name()).lit(" is in ").lit(settings::SKIP_FS.name),
                    _ => l.lit(why.reason()),
                };
            }
            Outcome::WouldAllocate { len } => {
                l.lit("would preallocate ")
                    .text(name)
                    .lit(": ")
                    .bytes(len)
                    .lit(" (")
                    .lit(settings::METHOD.name)
                    .lit("=off)");
            }
            Outcome::NoRoom { needed, free, fail } => {
                l.lit("could not preallocate ").text(name).lit(": not enough room (ENOSPC): needs ").bytes(needed);
                l.lit(", ").bytes(free).lit(" free; ").lit(consequence(fail));
            }
            Outcome::Allocated { len, how, ms, trigger, fragments } => {
                l.lit("preallocated ").text(name).lit(": ").bytes(len).lit(" by ").lit(how.name());
                l.lit(" in ").num(ms).lit(" ms (on ").lit(trigger.name()).lit("), fragments: ");
                match fragments {
                    Some(f) => l.num(f),
                    None => l.lit("pending writeback"),
                };
            }
            Outcome::Stopped { len, how, stop } => {
                l.lit("could not preallocate ").text(name).lit(" (").bytes(len).lit(" by ").lit(how.name()).lit("): ");
                match stop {
                    Stop::Errno(e) => l.errno(e),
                    Stop::NoBlock => l.lit("no block could be allocated (no room, a quota, or an I/O error)"),
                    Stop::OldKernel => l.lit("the zero fill needs Linux 5.14 (MADV_POPULATE_WRITE)"),
                    Stop::NoZeros => l.lit("no fallocate here, and zeros are filled in only through a descriptor open for reading and writing on a local filesystem"),
                };
                l.lit("; the call went through, what was allocated stays, the rest of the file stays sparse");
            }
            Outcome::ReserveFailed { len, errno, left, fail } => {
                l.lit("could not preallocate ").text(name).lit(" (").bytes(len).lit(" by fallocate): ").errno(errno);
                l.lit("; ").lit(consequence(fail));
                if left > 0 {
                    l.lit("; ").bytes(left).lit(" it allocated stay past the end of the file");
                }
            }
            Outcome::CallFailed { left } => {
                l.lit("preallocated ").text(name).lit(" before the call, which then failed");
                if left > 0 {
                    l.lit(": ").bytes(left).lit(" stay allocated past the end of the file (nosparse check shows them)");
                }
            }
            Outcome::CallFailedUntouched => {
                l.lit("the call on ").text(name).lit(" failed: nothing allocated");
            }
        }
    }
}

/// What a failed preallocation leads to, in words.
fn consequence(fail: bool) -> &'static str {
    match fail {
        false => "the file stays sparse",
        true => "failing the call (NOSPARSE_ON_ERROR=fail)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Ident;
    use crate::settings::Sink;

    fn text(o: Outcome) -> String {
        let mut buf = [0u8; 512];
        let mut l = Line::new(&mut buf, Sink::Stderr, Level::Info, Ident::Own);
        o.words(b"/vm/a\n.vmem", &mut l);
        String::from_utf8(l.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn calls_left_alone_show_their_offset_or_length() {
        let skipped = |trigger, offset, why| Outcome::Skipped { fd: 3, trigger, offset, why };
        assert_eq!(
            text(skipped(Trigger::Pwrite, 999, Skip::SmallHole)),
            "nosparse: fd 3 (pwrite at 999): left alone: new hole below NOSPARSE_MIN_SIZE"
        );
        assert_eq!(
            text(skipped(Trigger::Ftruncate, -1, Skip::SmallHole)),
            "nosparse: fd 3 (ftruncate to 0): left alone: new hole below NOSPARSE_MIN_SIZE"
        );
        assert!(text(skipped(Trigger::Ftruncate, -6, Skip::NegativeOffset)).contains("(ftruncate to -5): left alone"));
        assert!(
            text(skipped(Trigger::Pwrite, i64::MIN, Skip::NegativeOffset)).contains("(pwrite at -9223372036854775808)")
        );
    }

    #[test]
    fn each_outcome_in_one_line() {
        let allocated = Outcome::Allocated {
            len: 3774873600,
            how: How::Fallocate,
            ms: 5,
            trigger: Trigger::Pwrite,
            fragments: Some(3),
        };
        assert_eq!(
            text(allocated),
            "nosparse: preallocated /vm/a\\x0a.vmem: 3774873600 bytes (3.5 GiB) by fallocate in 5 ms (on pwrite), fragments: 3"
        );
        assert_eq!(allocated.level(), Some(Level::Info));
        let no_room = Outcome::NoRoom { needed: 2 << 30, free: 1 << 20, fail: false };
        assert!(text(no_room)
            .ends_with("needs 2147483648 bytes (2.0 GiB), 1048576 bytes (1.0 MiB) free; the file stays sparse"));
        let stopped = Outcome::Stopped { len: 1 << 30, how: How::Zeros, stop: Stop::NoBlock };
        assert!(text(stopped).contains("by zero fill): no block could be allocated"));
        assert_eq!(stopped.level(), Some(Level::Warning));
        let reserve = Outcome::ReserveFailed { len: 1 << 30, errno: Errno(libc::EDQUOT), left: 8192, fail: true };
        assert!(text(reserve).ends_with("EDQUOT; failing the call (NOSPARSE_ON_ERROR=fail); 8192 bytes (8.0 KiB) it allocated stay past the end of the file"));
        assert!(text(Outcome::CallFailed { left: 4096 }).contains("4096 bytes (4.0 KiB) stay allocated past the end"));
        assert_eq!(Outcome::CallFailed { left: 0 }.level(), Some(Level::Info));
        assert_eq!(Outcome::CallFailedUntouched.level(), None);
    }
}
