//! `libnosparse.so`: the interposed symbols, and nothing else. Each is a thin call into
//! `nosparse_core::hook`, which keeps every other call on a two-comparison fast path.
//! See the README for what the library does and how to use it.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

use libc::{c_int, off_t};
#[cfg(not(target_arch = "x86"))]
use libc::{c_void, off64_t, size_t, ssize_t};
use nosparse_core::hook;

/// `pwrite64(2)`.
///
/// # Safety
/// pwrite64's own contract: `buf` is readable for `nbyte` bytes.
#[cfg(not(target_arch = "x86"))]
#[no_mangle]
pub unsafe extern "C" fn pwrite64(fd: c_int, buf: *const c_void, nbyte: size_t, offset: off64_t) -> ssize_t {
    // SAFETY: the caller's arguments, passed on.
    unsafe { hook::pwrite(fd, buf, nbyte, offset) }
}

/// glibc's internal alias of `pwrite64`, which some programs bind to.
///
/// # Safety
/// As for [`pwrite64`].
#[cfg(not(target_arch = "x86"))]
#[no_mangle]
pub unsafe extern "C" fn __pwrite64(fd: c_int, buf: *const c_void, nbyte: size_t, offset: off64_t) -> ssize_t {
    // SAFETY: the caller's arguments, passed on.
    unsafe { hook::pwrite(fd, buf, nbyte, offset) }
}

/// `write(2)`.
///
/// # Safety
/// write's own contract: `buf` is readable for `nbyte` bytes.
#[cfg(not(target_arch = "x86"))]
#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, nbyte: size_t) -> ssize_t {
    // SAFETY: the caller's arguments, passed on.
    unsafe { hook::write(fd, buf, nbyte) }
}

// i686: `pwrite64`, `__pwrite64` and `write` in assembly. LLVM will not turn an indirect
// call into a jump in 32-bit position-independent code, so a Rust hook there re-pushes
// all argument words and costs about 30 instructions per call; these cost 8 and leave
// the caller's arguments in place for whichever function they jump to:
// - a write of one byte goes to the engine (same C signature);
// - any other goes to the real function, or to its resolver if not resolved yet.
// Stack on entry: 4(%esp) fd, 8 buf, 12 nbyte, then pwrite64's 64-bit offset (or
// pwrite's 32-bit one, which the engine's entry for it widens).
#[cfg(target_arch = "x86")]
macro_rules! i686_hook {
    ($section:literal, [$($name:literal),+], $engine:path, $lazy:path, $real:path) => {
        core::arch::global_asm!(
            concat!(".pushsection .text.", $section, ",\"ax\",@progbits"),
            $(concat!(".globl ", $name), concat!(".type ", $name, ",@function"),)+
            ".p2align 4",
            $(concat!($name, ":"),)+
            "    cmpl $1, 12(%esp)",
            "    je {engine}",
            "    call 3f",
            "3:  popl %ecx",
            "    movl ({real} - 3b)(%ecx), %eax",
            "    testl %eax, %eax",
            "    jz {lazy}",
            "    jmp *%eax",
            $(concat!(".size ", $name, ", . - ", $name),)+
            ".popsection",
            engine = sym $engine,
            lazy = sym $lazy,
            real = sym $real,
            options(att_syntax)
        );
    };
}

#[cfg(target_arch = "x86")]
i686_hook!(
    "nosparse_pwrite64",
    ["pwrite64", "__pwrite64"],
    nosparse_core::hook::pwrite_c,
    nosparse_core::real::lazy_pwrite64,
    nosparse_core::real::PWRITE64
);

#[cfg(target_arch = "x86")]
i686_hook!(
    "nosparse_pwrite",
    ["pwrite"],
    nosparse_core::hook::pwrite32_c,
    nosparse_core::real::lazy_pwrite,
    nosparse_core::real::PWRITE
);

#[cfg(target_arch = "x86")]
i686_hook!(
    "nosparse_write",
    ["write"],
    nosparse_core::hook::write_c,
    nosparse_core::real::lazy_write,
    nosparse_core::real::WRITE
);

/// `pwrite(2)`: on x86_64 the same as `pwrite64` (on i686, assembly above).
///
/// # Safety
/// As for [`pwrite64`].
#[cfg(not(target_arch = "x86"))]
#[no_mangle]
pub unsafe extern "C" fn pwrite(fd: c_int, buf: *const c_void, nbyte: size_t, offset: off_t) -> ssize_t {
    // SAFETY: the caller's arguments, passed on.
    unsafe { hook::pwrite(fd, buf, nbyte, offset) }
}

/// `ftruncate64(2)`.
///
/// # Safety
/// None beyond ftruncate's own contract.
#[no_mangle]
pub unsafe extern "C" fn ftruncate64(fd: c_int, len: i64) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    unsafe { hook::ftruncate(fd, len) }
}

/// `ftruncate(2)`. On i686 `off_t` is 32 bits: it is sign-extended, as glibc does.
///
/// # Safety
/// None beyond ftruncate's own contract.
#[no_mangle]
pub unsafe extern "C" fn ftruncate(fd: c_int, len: off_t) -> c_int {
    // Widening (a no-op on x86_64, where off_t is already 64 bits).
    #[allow(clippy::useless_conversion)]
    let len = i64::from(len);
    // SAFETY: the caller's arguments, passed on.
    unsafe { hook::ftruncate(fd, len) }
}

/// Resolves the real functions when the library is loaded (no system call; the
/// settings are read at the first candidate call).
extern "C" fn nosparse_init() {
    hook::init();
}

/// No panic can happen in this library: the build proves it. In a release build this
/// handler calls a function that exists nowhere, and the library links with `-z defs`,
/// so any panic the optimiser cannot remove (an index out of bounds, an overflow check,
/// an `unwrap`) fails the link, naming that function. A debug build, not optimised,
/// keeps its panics and stops the process instead.
#[cfg(not(test))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    #[cfg(not(debug_assertions))]
    {
        extern "C" {
            fn nosparse_has_a_reachable_panic() -> !;
        }
        // SAFETY: never called: the link fails if this is reachable.
        unsafe { nosparse_has_a_reachable_panic() }
    }
    #[cfg(debug_assertions)]
    loop {
        // SAFETY: an undefined instruction: SIGILL, as core::intrinsics::abort does.
        unsafe { core::arch::asm!("ud2", options(noreturn)) }
    }
}

#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = nosparse_init;
