//! `libnosparse.so`: the interposed symbols, and nothing else. Each is a thin call into
//! `nosparse_core::hook`; every call that is not a candidate costs three instructions.
//! See the README for what the library does and how to use it.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

use libc::{c_int, off_t};
use nosparse_core::hook;

// `pwrite64`, `__pwrite64`, `pwrite` and `write` in assembly, on both architectures:
// compare, branch, jump, leaving the caller's arguments in place for whichever function
// they jump to (LLVM loads the pointer into a register first on x86_64, and on i686
// re-pushes every argument word: about 30 instructions).
// - a write of one byte goes to the engine (same C signature);
// - any other goes to the real function (at first, the stand-in that resolves it).
// x86_64: nbyte is in %rdx. i686: on the stack, 4(%esp) fd, 8 buf, 12 nbyte, then the
// offset (pwrite's 32-bit one is widened by the engine's entry for it); the real
// pointer is found relative to the program counter (call/pop), as PIC must.
macro_rules! hook {
    ($section:literal, [$($name:literal),+], $engine:path, $real:path) => {
        #[cfg(target_arch = "x86_64")]
        core::arch::global_asm!(
            concat!(".pushsection .text.", $section, ",\"ax\",@progbits"),
            $(concat!(".globl ", $name), concat!(".type ", $name, ",@function"),)+
            ".p2align 4",
            $(concat!($name, ":"),)+
            "    cmpq $1, %rdx",
            "    je {engine}",
            "    jmp *{real}(%rip)",
            $(concat!(".size ", $name, ", . - ", $name),)+
            ".popsection",
            engine = sym $engine,
            real = sym $real,
            options(att_syntax)
        );
        #[cfg(target_arch = "x86")]
        core::arch::global_asm!(
            concat!(".pushsection .text.", $section, ",\"ax\",@progbits"),
            $(concat!(".globl ", $name), concat!(".type ", $name, ",@function"),)+
            ".p2align 4",
            $(concat!($name, ":"),)+
            "    cmpl $1, 12(%esp)",
            "    je {engine}",
            "    call 3f",
            "3:  popl %ecx",
            "    jmp *({real} - 3b)(%ecx)",
            $(concat!(".size ", $name, ", . - ", $name),)+
            ".popsection",
            engine = sym $engine,
            real = sym $real,
            options(att_syntax)
        );
    };
}

#[cfg(target_arch = "x86_64")]
hook!(
    "nosparse_pwrite64",
    ["pwrite64", "__pwrite64", "pwrite"],
    nosparse_core::hook::candidate,
    nosparse_core::real::PWRITE64
);
#[cfg(target_arch = "x86")]
hook!("nosparse_pwrite64", ["pwrite64", "__pwrite64"], nosparse_core::hook::candidate, nosparse_core::real::PWRITE64);
#[cfg(target_arch = "x86")]
hook!("nosparse_pwrite", ["pwrite"], nosparse_core::hook::candidate32, nosparse_core::real::PWRITE);
hook!("nosparse_write", ["write"], nosparse_core::hook::write_one, nosparse_core::real::WRITE);

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
