//! The C programs under tests/c, compiled with `cc` for the test binary's own target
//! (`-m32` for i686, which needs gcc-multilib): signal handlers, thread cancellation,
//! small stacks and vfork are plainest in C. Each is compiled once per test binary.

use super::artifacts::TARGET;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("c")
}

fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("c-{TARGET}"));
    std::fs::create_dir_all(&dir).expect("create the C build directory");
    dir
}

/// Compiles tests/c/`name`.c (with `extra` flags) into `file`, unless done already by
/// this test binary.
fn compile(name: &str, file: &str, extra: &[&str]) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.get_or_insert_with(HashMap::new).get(file) {
        return p.clone();
    }
    let src = source_dir().join(format!("{name}.c"));
    let dest = out_dir().join(file);
    // Compiled beside, then renamed: a test binary for the other target, or a previous
    // run, never sees half a file.
    let partial = dest.with_extension(format!("partial-{}", std::process::id()));
    let mut cc = Command::new("cc");
    cc.args(["-std=gnu11", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-pthread", "-D_FILE_OFFSET_BITS=64"]);
    if TARGET.starts_with("i686") {
        cc.arg("-m32");
    }
    cc.args(extra).arg("-o").arg(&partial).arg(&src);
    let out = cc.output().unwrap_or_else(|e| panic!("cannot run cc (scripts/setup.sh installs gcc-multilib): {e}"));
    assert!(
        out.status.success(),
        "{cc:?} failed (for i686 it needs gcc-multilib, which scripts/setup.sh installs):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&partial, &dest).expect("rename the compiled program");
    built.as_mut().expect("initialised above").insert(file.to_string(), dest.clone());
    dest
}

/// tests/c/`name`.c compiled into a program.
pub fn program(name: &str) -> PathBuf {
    compile(name, name, &[])
}

/// tests/c/`name`.c compiled into a shared library, `lib<name>.so`.
pub fn shared_library(name: &str) -> PathBuf {
    compile(name, &format!("lib{name}.so"), &["-shared", "-fPIC"])
}
