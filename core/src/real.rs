//! The real functions behind the hooks, found with `dlsym(RTLD_NEXT)`.
//!
//! Each pointer is resolved at load (from the library's constructor) or, for a call
//! that comes earlier (another library's constructor), on first use. Reading it is one
//! relaxed atomic load: no lock on the pass-through path. The engine itself calls these,
//! never the libc symbols of the same names, which would re-enter the hooks.

use libc::{c_int, c_void, off64_t, size_t, ssize_t};
use std::ffi::CStr;
use std::sync::atomic::{AtomicPtr, Ordering};

/// Declares, for one libc function: the atomic holding its address, an accessor that
/// returns it (or a resolve-then-call stand-in while unresolved), that stand-in, and
/// the function used when no such symbol exists (fails with ENOSYS, as a missing
/// syscall would).
macro_rules! real_fn {
    ($(#[$doc:meta])* $ptr:ident, $get:ident, $lazy:ident, $resolve:ident, $missing:ident,
     $ty:ident = fn($($arg:ident: $t:ty),*) -> $ret:ty, $name:literal) => {
        $(#[$doc])*
        pub type $ty = unsafe extern "C" fn($($t),*) -> $ret;

        /// The resolved address, null until resolved. Public for the i686 hooks, written
        /// in assembly, which read it directly.
        pub static $ptr: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

        #[doc = concat!("The next `", $name, "` after this object in the lookup order (libc's, usually).")]
        #[inline(always)]
        pub fn $get() -> $ty {
            let p = $ptr.load(Ordering::Relaxed);
            if p.is_null() {
                // Returning a function that resolves, rather than resolving here, keeps
                // every caller's fast path a plain tail call.
                return $lazy;
            }
            // SAFETY: only addresses dlsym returned for this name are stored here.
            unsafe { std::mem::transmute::<*mut c_void, $ty>(p) }
        }

        #[doc = concat!("Resolves `", $name, "`, then calls it.")]
        ///
        /// # Safety
        /// The real function's own contract.
        #[cold]
        pub unsafe extern "C" fn $lazy($($arg: $t),*) -> $ret {
            // SAFETY: the caller's arguments, passed on.
            unsafe { $resolve()($($arg),*) }
        }

        fn $resolve() -> $ty {
            match next(CStr::from_bytes_with_nul(concat!($name, "\0").as_bytes()).expect("no interior NUL")) {
                Some(p) => {
                    $ptr.store(p, Ordering::Relaxed);
                    // SAFETY: dlsym found the function of this name, which has this signature.
                    unsafe { std::mem::transmute::<*mut c_void, $ty>(p) }
                }
                None => $missing,
            }
        }

        unsafe extern "C" fn $missing($(_: $t),*) -> $ret {
            crate::error::set_errno(libc::ENOSYS);
            -1
        }
    };
}

real_fn!(
    /// The signature of `pwrite64`.
    PWRITE64, pwrite64, lazy_pwrite64, resolve_pwrite64, missing_pwrite64,
    Pwrite64 = fn(fd: c_int, buf: *const c_void, n: size_t, off: off64_t) -> ssize_t, "pwrite64"
);
real_fn!(
    /// The signature of `write`.
    WRITE, write, lazy_write, resolve_write, missing_write,
    Write = fn(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t, "write"
);
real_fn!(
    /// The signature of `ftruncate64`.
    FTRUNCATE64, ftruncate64, lazy_ftruncate64, resolve_ftruncate64, missing_ftruncate64,
    Ftruncate64 = fn(fd: c_int, len: off64_t) -> c_int, "ftruncate64"
);

fn next(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: name is NUL-terminated; RTLD_NEXT searches the objects after this one.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
    (!p.is_null()).then_some(p)
}

/// Resolves every pointer now, so that no later call pays for it.
pub fn resolve_all() {
    let _ = resolve_pwrite64();
    let _ = resolve_write();
    let _ = resolve_ftruncate64();
}
