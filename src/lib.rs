//! `libnosparse.so`: the interposed symbols, and nothing else. Each is a thin call into
//! `nosparse_core::hook`, which keeps every other call on a two-comparison fast path.
//! See the README for what the library does and how to use it.

#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(not(target_arch = "x86"))]
use libc::off64_t;
use libc::{c_int, c_void, off_t, size_t, ssize_t};
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

// i686: `pwrite64` and `__pwrite64` in assembly. LLVM will not turn an indirect call
// into a jump in 32-bit position-independent code, so a Rust hook there re-pushes all
// five argument words and costs about 30 instructions per call; this one costs 8 and
// leaves the caller's arguments in place for whichever function it jumps to:
// - a write of one byte goes to the engine (`hook::pwrite_c`, same C signature);
// - any other goes to the real pwrite64, or to `lazy_pwrite64` if not resolved yet.
// Stack on entry: 4(%esp) fd, 8 buf, 12 nbyte, 16 offset (64-bit).
#[cfg(target_arch = "x86")]
std::arch::global_asm!(
    ".pushsection .text.nosparse_pwrite64,\"ax\",@progbits",
    ".globl pwrite64",
    ".globl __pwrite64",
    ".type pwrite64,@function",
    ".type __pwrite64,@function",
    ".p2align 4",
    "pwrite64:",
    "__pwrite64:",
    "    cmpl $1, 12(%esp)",
    "    je {engine}",
    "    call 3f",
    "3:  popl %ecx",
    "    movl ({real} - 3b)(%ecx), %eax",
    "    testl %eax, %eax",
    "    jz {lazy}",
    "    jmp *%eax",
    ".size pwrite64, . - pwrite64",
    ".size __pwrite64, . - __pwrite64",
    ".popsection",
    engine = sym nosparse_core::hook::pwrite_c,
    lazy = sym nosparse_core::real::lazy_pwrite64,
    real = sym nosparse_core::real::PWRITE64,
    options(att_syntax)
);

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
