//! Runs fake_vmx with and without `LD_PRELOAD=libnosparse.so` and judges the files it
//! made from outside: allocation, holes, fragments, bytes, size, file offset, return
//! values and errno. The suite runs for whichever target it was built for; the test
//! script runs it for x86_64 and i686.

mod common;

use common::*;

/// The default NOSPARSE_MIN_SIZE.
const MIN_SIZE: u64 = 64 * MIB;

/// Asserts `m` is sparse: most of it unallocated.
fn assert_sparse(m: &Measured, what: &str) {
    assert!(m.allocated < m.size / 2, "{what}: expected a sparse file, {} of {} allocated", m.allocated, m.size);
    assert!(m.layout.hole_bytes > m.size / 2, "{what}: expected holes: {m:?}");
}

#[test]
fn the_vmx_creation_call_allocates_the_whole_file_and_changes_nothing_else() {
    let s = Scratch::new("creation");
    let path = s.path("guest.vmem");
    let size = 256 * MIB;
    // Earlier data, and a file offset the call must not move.
    let run = vmx(&path).arg("--size", size).arg("--prefill", 65536).arg("--seek", 12345).arg("--writes", 64);
    let (without, with) = run.both(&path);
    assert_same(&without, &with, "creation call");
    assert_eq!(with.get("create_ret"), 1);
    assert_eq!(with.get("create_errno"), 0);
    assert_eq!(with.get("offset_after"), 12345);
    assert_eq!(with.get("size_after_create"), size as i64);
    assert!(with.get("allocated_after_create") >= size as i64, "not allocated at creation: {:?}", with.kv);
    assert!(without.get("allocated_after_create") < (size / 2) as i64, "the bare run was not sparse");
    assert_whole(&measure(&path), "with the library");
    assert_sparse(&measure(&bare_path(&path)), "without the library");
    assert_same_content(&path, &bare_path(&path));
    assert!(with.stderr.contains("nosparse: preallocated"), "no log line: {}", with.stderr);
    assert!(with.stderr.contains("guest.vmem"), "log line lacks the path: {}", with.stderr);
    assert!(!without.stderr.contains("nosparse"), "{}", without.stderr);
}

#[test]
fn every_interposed_symbol_is_caught() {
    let s = Scratch::new("symbols");
    for call in ["pwrite64", "__pwrite64", "pwrite"] {
        let path = s.path(&format!("{call}.vmem"));
        let out = vmx(&path).arg("--size", 128 * MIB).arg("--call", call).run();
        assert_eq!(out.get("create_ret"), 1, "{call}");
        assert_whole(&measure(&path), call);
    }
}

#[test]
fn files_are_judged_per_call_not_once_per_process() {
    let s = Scratch::new("per-call");
    let (first, second) = (s.path("one.vmem"), s.path("two.vmem"));
    let out = vmx(&first).arg("--size", 96 * MIB).arg("--second", second.display()).run();
    assert_eq!((out.get("create_ret"), out.get("second_ret")), (1, 1));
    assert_whole(&measure(&first), "first file");
    assert_whole(&measure(&second), "second file");
    assert_eq!(out.stderr.matches("preallocated").count(), 2, "{}", out.stderr);
}

/// Cases the library must leave exactly as they are without it.
#[test]
fn untouched_cases_behave_exactly_as_without_the_library() {
    let s = Scratch::new("untouched");
    let size = 128 * MIB;
    let cases: Vec<(&str, Vmx)> = vec![
        ("below the threshold", vmx(&s.path("small")).arg("--size", MIN_SIZE - 1)),
        ("two bytes", vmx(&s.path("two")).arg("--size", size).arg("--nbyte", 2)),
        ("zero bytes", vmx(&s.path("zero")).arg("--size", size).arg("--nbyte", 0)),
        ("offset inside the file", {
            let v = vmx(&s.path("inside")).arg("--size", 2 * MIB).arg("--prefill", 2 * MIB).arg("--offset", MIB);
            v.env("NOSPARSE_MIN_SIZE", "1M")
        }),
        ("O_APPEND", vmx(&s.path("append")).arg("--size", size).arg("--open", "append")),
        ("read-only fd", vmx(&s.path("rdonly")).arg("--size", size).arg("--open", "rdonly")),
        ("negative offset", vmx(&s.path("negative")).arg("--size", size).arg("--offset", -1)),
        ("i64::MAX offset", vmx(&s.path("max")).arg("--offset", i64::MAX)),
        ("offset past the largest file", vmx(&s.path("huge")).arg("--offset", i64::MAX - 1)),
        ("negative 32-bit pwrite offset", vmx(&s.path("neg32")).arg("--call", "pwrite").arg("--offset", -2)),
        ("disabled", vmx(&s.path("disabled")).arg("--size", size).env("NOSPARSE_DISABLE", "1")),
        ("no match", vmx(&s.path("nomatch.vmem")).arg("--size", size).env("NOSPARSE_MATCH", "*.img")),
        ("min size above", vmx(&s.path("minsize")).arg("--size", size).env("NOSPARSE_MIN_SIZE", "1G")),
        ("method off", vmx(&s.path("off")).arg("--size", size).env("NOSPARSE_METHOD", "off")),
    ];
    for (what, run) in &cases {
        let path = run.path();
        let (without, with) = run.both(&path);
        assert_untouched(&without, &with, what);
        if path.exists() {
            assert_same_content(&path, &bare_path(&path));
        }
        assert!(!with.stderr.contains("preallocated "), "{what}: {}", with.stderr);
        if *what == "method off" {
            assert!(with.stderr.contains("would preallocate"), "NOSPARSE_METHOD=off logs what it would do");
        }
    }
}

#[test]
fn pipes_and_sockets_are_passed_through() {
    let s = Scratch::new("fds");
    for target in ["pipe", "socket"] {
        let run = vmx(&s.path("unused")).arg("--target", target).arg("--size", 128 * MIB);
        let (without, with) = run.both(&s.path("unused"));
        assert_same(&without, &with, "creation call");
        assert_eq!(with.get("create_errno"), i64::from(libc::ESPIPE), "{target}");
    }
}

/// Bad values for every setting: empty, garbage, overflowing, negative, mixed-case
/// (for NOSPARSE_MATCH, whose garbage is a valid glob: malformed lists).
const BAD_SETTINGS: &[(&str, [&str; 5])] = &[
    ("NOSPARSE_DISABLE", ["", "garbage", "99999999999999999999999", "-1", "Yes please"]),
    ("NOSPARSE_MIN_SIZE", ["", "garbage", "99999999999999999999999", "-64M", "64mib"]),
    ("NOSPARSE_METHOD", ["", "garbage", "99999999999999999999999", "-1", "Fallocate"]),
    ("NOSPARSE_MATCH", ["", ":", "a::b", "*.vmem:", ":*.vmem"]),
    ("NOSPARSE_ON_ERROR", ["", "garbage", "99999999999999999999999", "-1", "Fail"]),
    ("NOSPARSE_LOG", ["", "garbage", "99999999999999999999999", "-1", "Stderr"]),
    ("NOSPARSE_DEBUG", ["", "garbage", "99999999999999999999999", "-1", "2"]),
    ("NOSPARSE_SKIP_FS", ["", "garbage", "99999999999999999999999", "-1", "TMPFS"]),
];

#[test]
fn every_bad_setting_warns_once_and_keeps_its_default() {
    let s = Scratch::new("bad-settings");
    let size = 128 * MIB;
    let baseline = vmx(&s.path("baseline")).arg("--size", size).without_library().run();
    let mut cases = 0;
    for (name, values) in BAD_SETTINGS {
        for value in values {
            let path = s.path("bad.vmem");
            let out = vmx(&path).arg("--size", size).env(name, value).run();
            let what = format!("{name}={value:?}");
            assert_same(&baseline, &out, &what);
            if *name == "NOSPARSE_LOG" {
                // The default sink, syslog, is kept: its warning goes there, none to stderr.
                assert!(!out.stderr.contains("nosparse"), "{what}: {}", out.stderr);
            } else {
                assert_eq!(out.stderr.matches(&format!("ignoring {name}=")).count(), 1, "{what}: {}", out.stderr);
                assert_eq!(out.stderr.matches("ignoring").count(), 1, "{what}: {}", out.stderr);
            }
            // Every default allocates this file.
            assert_whole(&measure(&path), &what);
            std::fs::remove_file(&path).unwrap();
            cases += 1;
        }
    }
    eprintln!("SUMMARY settings: {cases} bad values, each one warning and its default kept");
}

#[test]
fn the_zero_method_fills_the_new_range_and_leaves_the_programs_holes() {
    let s = Scratch::new("zero");
    let path = s.path("holes.vmem");
    // Data, a hole, data: the creation call then extends the file to 96 MiB.
    for p in [path.clone(), bare_path(&path)] {
        let f = std::fs::File::create(&p).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(&[0xAB; 65536], 0).unwrap();
        f.write_all_at(&[0xCD; 65536], 4 * MIB).unwrap();
    }
    let run = vmx(&path).arg("--size", 96 * MIB).arg("--seek", 777).env("NOSPARSE_METHOD", "zero");
    let (without, with) = run.both(&path);
    assert_same(&without, &with, "creation call");
    assert_eq!(with.get("offset_after"), 777);
    assert!(with.stderr.contains("by zero fill"), "{}", with.stderr);
    // The program's own hole (64 KiB to 4 MiB) stays a hole; the new range is whole.
    let m = measure(&path);
    let hole = 4 * MIB - 65536;
    assert!(m.layout.hole_bytes >= hole - 4096 && m.layout.hole_bytes <= hole, "{m:?}");
    assert!(m.allocated >= 96 * MIB - hole - 4096, "the new range is not whole: {m:?}");
    assert_same_content(&path, &bare_path(&path));
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes[..65536].iter().all(|&b| b == 0xAB) && bytes[4 * MIB as usize..][..65536].iter().all(|&b| b == 0xCD));
}

#[test]
fn debug_logs_every_decision() {
    let s = Scratch::new("debug");
    let out = vmx(&s.path("d.vmem")).arg("--size", 128 * MIB).arg("--open", "append").env("NOSPARSE_DEBUG", "1").run();
    assert!(out.stderr.contains("left alone: opened O_APPEND"), "{}", out.stderr);
}

#[test]
fn a_new_range_within_the_last_block_is_nothing_to_do() {
    // NOSPARSE_MIN_SIZE below the block size: 100 bytes written, then one byte at 2000 is
    // a "hole" of 1901 bytes that lies within the file's first block. Nothing to allocate
    // and nothing to fail, even under NOSPARSE_ON_ERROR=fail.
    let s = Scratch::new("within-block");
    let path = s.path("small.img");
    let run = vmx(&path)
        .arg("--size", 2001)
        .arg("--prefill", 100)
        .env("NOSPARSE_MIN_SIZE", "1K")
        .env("NOSPARSE_ON_ERROR", "fail");
    let (without, with) = run.both(&path);
    assert_same(&without, &with, "a new range within the last block");
    assert_eq!(with.get("create_ret"), 1, "{}", with.stderr);
    assert!(!with.stderr.contains("could not preallocate"), "{}", with.stderr);
}

#[test]
fn match_selects_files() {
    let s = Scratch::new("match");
    let path = s.path("guest.vmem");
    vmx(&path).arg("--size", 128 * MIB).env("NOSPARSE_MATCH", "*.img:*.vmem").run();
    assert_whole(&measure(&path), "matched");
}

#[test]
fn only_the_hooks_are_exported_under_the_contract_soname() {
    let lib = artifacts().lib.display().to_string();
    let nm = sh(&format!("nm -D --defined-only {lib}"));
    let mut names: Vec<&str> = nm.lines().filter_map(|l| l.split_whitespace().last()).collect();
    names.sort_unstable();
    assert_eq!(names, ["__pwrite64", "ftruncate", "ftruncate64", "pwrite", "pwrite64", "write"], "exported: {nm}");
    let dynamic = sh(&format!("readelf -d {lib}"));
    assert!(dynamic.contains("Library soname: [libnosparse.so.0]"), "{dynamic}");
}
