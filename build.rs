//! Link arguments for the cdylib only: a SONAME, and a version script that exports the
//! interposed symbols and nothing else.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let script = dir.join("src").join("exports.map");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnosparse.so");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={}", script.display());
    // The harness builds the library for the target it was itself built for.
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    println!("cargo:rustc-env=NOSPARSE_BUILD_TARGET={target}");
}
