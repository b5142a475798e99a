//! Concurrency: threads writing through the hooks while a file is preallocated, two
//! files created at once, fork and posix_spawn during a preallocation, and a library
//! whose constructor writes through pwrite64 before nosparse's own constructor runs.

mod common;

use common::*;
use std::process::Command;

fn assert_file_whole(path: &std::path::Path) {
    assert_whole(&measure(path), &path.display().to_string());
}

#[test]
fn threads_writing_during_a_preallocation_see_their_own_data() {
    let s = Scratch::new("threads");
    let path = s.path("busy.vmem");
    let run = vmx(&path).arg("--size", 512 * MIB).arg("--threads", 8).env("NOSPARSE_METHOD", "zero");
    let (without, with) = run.both(&path);
    assert_eq!(with.get("threads_ok"), 8, "{}", with.stderr);
    assert_same(&without, &with, "threads");
    assert_file_whole(&path);
    for t in 0..8 {
        let name = format!("busy.vmem.t{t}");
        assert_same_content(
            &s.path(&name),
            &bare_path(&s.path("busy.vmem")).with_file_name(format!("busy.vmem.bare.t{t}")),
        );
    }
}

#[test]
fn two_files_created_at_the_same_moment_are_both_whole() {
    let s = Scratch::new("two-at-once");
    let (a, b) = (s.path("a.vmem"), s.path("b.vmem"));
    let out = vmx(&a).arg("--size", 256 * MIB).arg("--concurrent", b.display()).run();
    assert_eq!((out.get("create_ret"), out.get("concurrent_ret")), (1, 1));
    assert_file_whole(&a);
    assert_file_whole(&b);
}

#[test]
fn fork_during_a_preallocation_does_not_deadlock_the_child() {
    let s = Scratch::new("fork");
    let path = s.path("parent.vmem");
    // A long zero fill in the parent; the child forks in the middle of it and creates
    // its own file through the same hooks.
    for method in ["zero", "fallocate"] {
        let out = vmx(&path).arg("--size", 512 * MIB).flag("--fork").env("NOSPARSE_METHOD", method).run();
        assert_eq!(out.kv.get("child_status").map(String::as_str), Some("0"), "{method}: {}", out.stderr);
        assert_file_whole(&path);
        assert_file_whole(&s.path("parent.vmem.child"));
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_file(s.path("parent.vmem.child")).unwrap();
    }
}

#[test]
fn posix_spawn_during_a_preallocation_works() {
    let s = Scratch::new("spawn");
    let path = s.path("spawn.vmem");
    let out = vmx(&path).arg("--size", 256 * MIB).flag("--spawn").env("NOSPARSE_METHOD", "zero").run();
    assert_eq!(out.kv.get("spawn_status").map(String::as_str), Some("0"), "{}", out.stderr);
    assert_file_whole(&path);
}

/// A library whose constructor makes a creation call. Preloaded after libnosparse.so,
/// its constructor runs first (the loader runs preloads' constructors last-listed
/// first), while its pwrite64 still binds to nosparse's.
const EARLY_C: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
__attribute__((constructor)) static void early(void) {
    const char *path = getenv("EARLY_PATH");
    if (!path) return;
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    if (fd < 0) return;
    pwrite64(fd, "", 1, (128 << 20) - 1);
    close(fd);
}
"#;

#[test]
fn a_constructor_that_writes_before_ours_is_still_served() {
    let s = Scratch::new("early");
    let src = s.path("early.c");
    let lib = s.path("libearly.so");
    std::fs::write(&src, EARLY_C).unwrap();
    let mut cc = Command::new("gcc");
    cc.args(["-shared", "-fPIC", "-O2", "-o"]).arg(&lib).arg(&src);
    if cfg!(target_arch = "x86") {
        cc.arg("-m32");
    }
    let status = cc.status().expect("run gcc");
    assert!(status.success(), "gcc could not build the early library (gcc-multilib for i686)");
    let path = s.path("early.vmem");
    let out = vmx(&s.path("main.vmem"))
        .arg("--size", 96 * MIB)
        .also_preload(&lib)
        .env("EARLY_PATH", &path.display().to_string())
        .run();
    assert!(out.stderr.contains("early.vmem"), "the early call was not seen: {}", out.stderr);
    assert_file_whole(&path);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 128 * MIB);
}
