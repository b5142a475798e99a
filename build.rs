//! Link arguments for the cdylib only: a SONAME, and a version script that exports the
//! interposed symbols and nothing else.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let script = dir.join("src").join("exports.map");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnosparse.so.0");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={}", script.display());
    // Every symbol must resolve at link time: with the release panic handler this is the
    // proof that no panic is reachable (see src/lib.rs).
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,defs");
    // Start-up cost in every process: leave out the C start files, whose weak references
    // (__cxa_finalize, __gmon_start__, the TM clone tables) cost the loader a failed
    // search of every loaded object at each exec. Constructors still run: the loader
    // reads .init_array itself.
    println!("cargo:rustc-cdylib-link-arg=-nostartfiles");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--gc-sections");
    // A no_std library names its C library itself (and nothing else: no libgcc_s).
    println!("cargo:rustc-cdylib-link-arg=-lc");
    // The harness builds the library for the target it was itself built for.
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    println!("cargo:rustc-env=NOSPARSE_BUILD_TARGET={target}");
}
