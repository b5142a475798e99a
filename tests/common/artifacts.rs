//! Builds and finds `libnosparse.so`, `fake_vmx` and `ops` for the target and profile the
//! calling test or example was itself built for. `cargo test` and `cargo run` do not
//! build a cdylib for their caller, so this runs `cargo build` for them, and fails
//! loudly when that cannot be done: a harness that tested a stale or missing library
//! would prove nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Paths to the two artifacts under test.
pub struct Artifacts {
    pub lib: PathBuf,
    pub fake_vmx: PathBuf,
}

/// The target triple this binary, and so the artifacts, are built for.
pub const TARGET: &str = env!("NOSPARSE_BUILD_TARGET");

/// Where a build for this binary's own target and profile puts things.
struct Layout {
    target_dir: PathBuf,
    /// `Some` when the build used `--target`, which adds the triple to the paths.
    cross: Option<&'static str>,
    profile_dir_name: String,
}

fn layout() -> Layout {
    let exe = std::env::current_exe().expect("the path of this test binary");
    // target/[triple/]profile/{deps,examples}/binary
    let profile_dir = exe.parent().and_then(Path::parent).expect("binary sits in target/.../profile/deps");
    let above = profile_dir.parent().expect("profile dir has a parent");
    let cross = above.file_name().is_some_and(|n| n == TARGET);
    let target_dir = if cross { above.parent().expect("target dir") } else { above };
    Layout {
        target_dir: target_dir.to_path_buf(),
        cross: cross.then_some(TARGET),
        profile_dir_name: profile_dir.file_name().expect("profile name").to_string_lossy().into_owned(),
    }
}

/// Runs `cargo build ARGS` for this binary's own target and profile; returns the
/// directory the artifacts land in. Panics with cargo's own output when it fails.
fn cargo_build(what: &str, args: &[&str]) -> PathBuf {
    cargo_build_for(layout(), what, args)
}

fn cargo_build_for(l: Layout, what: &str, args: &[&str]) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet"]).args(args);
    cmd.arg("--target-dir").arg(&l.target_dir);
    if let Some(t) = l.cross {
        cmd.args(["--target", t]);
    }
    match l.profile_dir_name.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run cargo to build {what}: {e}"));
    assert!(out.status.success(), "building {what} failed ({:?}):\n{}", cmd, String::from_utf8_lossy(&out.stderr));
    let mut dir = l.target_dir.clone();
    if let Some(t) = l.cross {
        dir.push(t);
    }
    dir.push(&l.profile_dir_name);
    dir
}

fn built(path: PathBuf) -> PathBuf {
    assert!(path.is_file(), "the build reported success but {} is missing", path.display());
    path
}

/// Builds the library and fake_vmx, and returns where they are. Panics with cargo's
/// own output when the build fails.
pub fn build() -> Artifacts {
    let args = ["-p", "nosparse", "--lib", "--example", "fake_vmx", "--example", "ops"];
    let dir = cargo_build("libnosparse.so and fake_vmx", &args);
    // Another build of the library can be tested instead (an installed one, or one made
    // another way), with the programs built here.
    let lib = std::env::var_os("NOSPARSE_TEST_LIBRARY")
        .filter(|v| !v.is_empty())
        .map_or_else(|| dir.join("libnosparse.so"), PathBuf::from);
    Artifacts { lib: built(lib), fake_vmx: built(dir.join("examples").join("fake_vmx")) }
}

/// Builds the library and fake_vmx for another target (with this binary's profile),
/// e.g. the benchmark's i686 rows.
#[allow(dead_code)]
pub fn build_for(target: &'static str) -> Artifacts {
    let own = layout();
    let l = Layout { cross: Some(target), ..own };
    let args = ["-p", "nosparse", "--lib", "--example", "fake_vmx"];
    let dir = cargo_build_for(l, &format!("libnosparse.so and fake_vmx for {target}"), &args);
    Artifacts { lib: built(dir.join("libnosparse.so")), fake_vmx: built(dir.join("examples").join("fake_vmx")) }
}

/// Builds the `nosparse` command (the launcher) and returns its path.
#[allow(dead_code)]
pub fn launcher() -> PathBuf {
    let dir = cargo_build("the nosparse command", &["-p", "nosparse-cli", "--bin", "nosparse"]);
    built(dir.join("nosparse"))
}
