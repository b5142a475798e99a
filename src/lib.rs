//! `libnosparse.so`: the interposed symbols, and nothing else. Each is a thin call into
//! `nosparse_core::hook`, which keeps every other call on a two-comparison fast path.
//! See the README for what the library does and how to use it.

#![deny(unsafe_op_in_unsafe_fn)]

use libc::{c_int, c_void, off64_t, off_t, size_t, ssize_t};
use nosparse_core::hook;

/// `pwrite64(2)`.
///
/// # Safety
/// pwrite64's own contract: `buf` is readable for `nbyte` bytes.
#[no_mangle]
pub unsafe extern "C" fn pwrite64(fd: c_int, buf: *const c_void, nbyte: size_t, offset: off64_t) -> ssize_t {
    // SAFETY: the caller's arguments, passed on.
    unsafe { hook::pwrite(fd, buf, nbyte, offset) }
}

/// glibc's internal alias of `pwrite64`, which some programs bind to.
///
/// # Safety
/// As for [`pwrite64`].
#[no_mangle]
pub unsafe extern "C" fn __pwrite64(fd: c_int, buf: *const c_void, nbyte: size_t, offset: off64_t) -> ssize_t {
    // SAFETY: the caller's arguments, passed on.
    unsafe { hook::pwrite(fd, buf, nbyte, offset) }
}

/// `pwrite(2)`. On i686 `off_t` is 32 bits: it is sign-extended, as glibc does.
///
/// # Safety
/// As for [`pwrite64`].
#[no_mangle]
pub unsafe extern "C" fn pwrite(fd: c_int, buf: *const c_void, nbyte: size_t, offset: off_t) -> ssize_t {
    // Widening (a no-op on x86_64, where off_t is already 64 bits).
    #[allow(clippy::useless_conversion)]
    let offset = i64::from(offset);
    // SAFETY: the caller's arguments, passed on.
    unsafe { hook::pwrite(fd, buf, nbyte, offset) }
}

/// Reads the settings and resolves the real functions when the library is loaded.
extern "C" fn nosparse_init() {
    hook::init();
}

#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = nosparse_init;
