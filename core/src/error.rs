//! The engine's one error type: an errno value, and what was being done when it came.

use std::fmt;

/// An `errno` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// The calling thread's current `errno`.
    pub fn last() -> Self {
        Errno(get_errno())
    }

    /// The symbolic name of the common values, for log lines.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            libc::EPERM => "EPERM",
            libc::ENOENT => "ENOENT",
            libc::EINTR => "EINTR",
            libc::EIO => "EIO",
            libc::EBADF => "EBADF",
            libc::EAGAIN => "EAGAIN",
            libc::ENOMEM => "ENOMEM",
            libc::EACCES => "EACCES",
            libc::EFAULT => "EFAULT",
            libc::EBUSY => "EBUSY",
            libc::EINVAL => "EINVAL",
            libc::ETXTBSY => "ETXTBSY",
            libc::EFBIG => "EFBIG",
            libc::ENOSPC => "ENOSPC",
            libc::ESPIPE => "ESPIPE",
            libc::EROFS => "EROFS",
            libc::ENOSYS => "ENOSYS",
            libc::EOVERFLOW => "EOVERFLOW",
            libc::EOPNOTSUPP => "EOPNOTSUPP",
            libc::ENOTTY => "ENOTTY",
            libc::EDQUOT => "EDQUOT",
            libc::ENXIO => "ENXIO",
            _ => return None,
        })
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "errno {}", self.0),
        }
    }
}

/// A failed step: which call failed, and its errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error {
    pub op: &'static str,
    pub errno: Errno,
}

impl Error {
    pub fn new(op: &'static str, errno: i32) -> Self {
        Error { op, errno: Errno(errno) }
    }

    /// The failure of `op` that just set `errno`.
    pub fn last(op: &'static str) -> Self {
        Error { op, errno: Errno::last() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.op, self.errno)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Turns a C return value into a `Result`: `-1` becomes the errno it set. The one place
/// that reads errno after a call.
pub fn cvt<T: MinusOne>(op: &'static str, ret: T) -> Result<T> {
    if ret.is_minus_one() {
        Err(Error::last(op))
    } else {
        Ok(ret)
    }
}

pub trait MinusOne: Copy {
    fn is_minus_one(self) -> bool;
}

macro_rules! impl_minus_one {
    ($($t:ty)*) => { $(impl MinusOne for $t { fn is_minus_one(self) -> bool { self == -1 } })* };
}
impl_minus_one!(i32 i64 isize);

/// The calling thread's `errno`.
pub fn get_errno() -> i32 {
    // SAFETY: __errno_location always returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's `errno`; only the hook boundary does this.
pub fn set_errno(value: i32) {
    // SAFETY: as in get_errno.
    unsafe { *libc::__errno_location() = value }
}
