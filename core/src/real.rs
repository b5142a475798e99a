//! The real functions behind the hooks, found with `dlsym(RTLD_NEXT)`.
//!
//! Each pointer is resolved at load (from the library's constructor) or, for a call
//! that comes earlier (another library's constructor), on first use. Reading it is one
//! relaxed atomic load: no lock on the pass-through path.

use libc::{c_int, c_void, off64_t, size_t, ssize_t};
use std::ffi::CStr;
use std::sync::atomic::{AtomicPtr, Ordering};

/// The signature of `pwrite64`.
pub type Pwrite64 = unsafe extern "C" fn(c_int, *const c_void, size_t, off64_t) -> ssize_t;

/// The resolved `pwrite64`, null until resolved. Public for the i686 hook, written in
/// assembly, which reads it directly.
pub static PWRITE64: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

/// The next `pwrite64` after this object in the lookup order (libc's, usually).
#[inline(always)]
pub fn pwrite64() -> Pwrite64 {
    let p = PWRITE64.load(Ordering::Relaxed);
    if p.is_null() {
        // Not resolved yet: a function that resolves, then calls. Returning it rather
        // than resolving here keeps every caller's fast path a plain tail call.
        return lazy_pwrite64;
    }
    // SAFETY: only pointers dlsym returned for "pwrite64" are stored here.
    unsafe { std::mem::transmute::<*mut c_void, Pwrite64>(p) }
}

/// Resolves `pwrite64`, then calls it.
///
/// # Safety
/// pwrite64's own contract.
#[cold]
pub unsafe extern "C" fn lazy_pwrite64(fd: c_int, buf: *const c_void, n: size_t, off: off64_t) -> ssize_t {
    // SAFETY: the caller's arguments, passed on.
    unsafe { resolve_pwrite64()(fd, buf, n, off) }
}

fn resolve_pwrite64() -> Pwrite64 {
    match next(c"pwrite64") {
        Some(p) => {
            PWRITE64.store(p, Ordering::Relaxed);
            // SAFETY: dlsym found "pwrite64", which has this signature.
            unsafe { std::mem::transmute::<*mut c_void, Pwrite64>(p) }
        }
        None => missing_pwrite64,
    }
}

/// Stands in when no `pwrite64` exists after us: the call fails as a missing syscall would.
unsafe extern "C" fn missing_pwrite64(_: c_int, _: *const c_void, _: size_t, _: off64_t) -> ssize_t {
    crate::error::set_errno(libc::ENOSYS);
    -1
}

fn next(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: name is NUL-terminated; RTLD_NEXT searches the objects after this one.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
    (!p.is_null()).then_some(p)
}

/// Resolves every pointer now, so that no later call pays for it.
pub fn resolve_all() {
    let _ = resolve_pwrite64();
}
