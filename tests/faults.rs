//! Faults: a disk that fills up during the zero fill, RLIMIT_FSIZE, a signal storm,
//! a read-only filesystem, O_DIRECT fds, offsets past the filesystem's largest file and
//! a failing call on a file with set-user-ID bits or capabilities. In each the program
//! must see exactly what it sees without the library.

mod common;

use common::*;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

#[test]
fn a_zero_fill_that_would_run_short_of_room_takes_none() {
    let s = Scratch::new("fill-during-zero");
    let Some(fs) = mount(&s, "ext3", 64 * MIB) else { return };
    // The free-space check counts ext3's indirect blocks too (one per 4 MiB of data):
    // a file a few blocks smaller than the free space would run out of room part-way
    // through the zero fill, so it is refused before anything is taken.
    let free = free_bytes(&fs.mnt);
    let size = (free - 8 * 4096) & !4095;
    let path = fs.path("tight.vmem");
    let out = vmx(&path).arg("--size", size).env("NOSPARSE_MIN_SIZE", "1M").run();
    assert_eq!(out.get("create_ret"), 1, "{}", out.stderr);
    assert_eq!(out.get("size_after_create"), size as i64);
    assert!(out.stderr.contains("not enough room (ENOSPC)"), "{}", out.stderr);
    assert!(out.get("allocated_after_create") <= 64 * 1024, "room taken: {:?}", out.kv);
    std::fs::remove_file(&path).unwrap();
    let leaked = free.saturating_sub(free_bytes(&fs.mnt));
    assert!(leaked <= 64 * 1024, "{leaked} bytes leaked");
    // With room for the metadata as well, the same fill completes, whole.
    let size = (free - free / 100) & !4095;
    let out = vmx(&path).arg("--size", size).env("NOSPARSE_MIN_SIZE", "1M").run();
    assert_eq!(out.get("create_ret"), 1, "{}", out.stderr);
    assert!(out.stderr.contains("by zero fill in"), "{}", out.stderr);
    assert_whole(&measure(&path), "a zero fill with room for its metadata");
}

#[test]
fn a_kill_at_any_moment_leaves_a_size_a_run_without_the_library_could() {
    let s = Scratch::new("kill");
    let size = 512 * MIB;
    // ext3: zeros (no fallocate); ext4: zeros asked for, and fallocate. Each is killed
    // with SIGKILL at moments spread over the whole call, and after it.
    let cases = [("ext3", "auto"), ("ext4", "zero"), ("ext4", "auto")];
    let mut killed_during = 0;
    for (kind, method) in cases {
        let Some(fs) = mount(&s, kind, 1024 * MIB) else { return };
        let path = fs.path("killed.vmem");
        for step in 0..12u64 {
            let ms = 5 + step * step * 8;
            let out = vmx(&path)
                .arg("--size", size)
                .arg("--writes", 0)
                .env("NOSPARSE_METHOD", method)
                .kill_after_ms(ms)
                .run_raw();
            let what = format!("{kind}, NOSPARSE_METHOD={method}, SIGKILL after {ms} ms");
            let st = std::fs::metadata(&path).map(|m| m.len()).ok();
            // fake_vmx creates the file empty, then makes the creation call.
            if let Some(len) = st {
                assert!(len == 0 || len == size, "{what}: size {len}, which no run without the library leaves");
            }
            if out.signal == Some(libc::SIGKILL) && st == Some(size) && !out.stderr.contains("preallocated") {
                killed_during += 1;
            }
            let _ = std::fs::remove_file(&path);
        }
    }
    eprintln!("SUMMARY kill: {killed_during} kills landed after the call and before its log line");
    assert!(killed_during > 0, "no kill landed while the library was at work: the test proved nothing");
}

/// Whether `path` has the extended attribute `name`.
fn has_xattr(path: &Path, name: &str) -> bool {
    let (p, n) = (CString::new(path.as_os_str().as_bytes()).unwrap(), CString::new(name).unwrap());
    // SAFETY: both NUL-terminated; a NULL buffer of size 0 asks for the value's size.
    unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0) >= 0 }
}

#[test]
fn a_failing_call_leaves_set_user_id_bits_and_capabilities_as_they_were() {
    // fallocate removes them as a write does. Reserved before a call that then fails
    // (NOSPARSE_ON_ERROR=fail; btrfs's NOCOW on an empty file), they would be gone
    // where the program changed nothing; after a call that succeeded they are gone
    // either way, and the file is allocated after it. tests/c/torture.c's --fault
    // fails the program's own call; --no-fsetid lets a write remove the bits, as for
    // a program not run by root.
    let s = Scratch::new("privileges");
    let setups = [("ext4", "fail"), ("btrfs", "fail"), ("btrfs", "passthrough")];
    let (mut cases, mut mounted) = (Vec::new(), Vec::new());
    for (kind, on_error) in setups {
        let Some(fs) = mount(&s, kind, 256 * MIB) else { return };
        for privilege in ["caps", "setid"] {
            for fault in [true, false] {
                let what = format!("{kind}, NOSPARSE_ON_ERROR={on_error}, {privilege}, call fails: {fault}");
                cases.push((
                    what,
                    (fs.path(&format!("{on_error}-{privilege}-{fault}.img")), on_error, privilege, fault),
                ));
            }
        }
        mounted.push(fs);
    }
    every_case(cases, |what, (path, on_error, privilege, fault)| {
        let mut run = c_program("torture")
            .arg("--path", path.display())
            .arg("--offset", 64 * MIB - 1)
            .env("NOSPARSE_ON_ERROR", on_error)
            .env("NOSPARSE_MIN_SIZE", "1M");
        run = match privilege {
            "caps" => run.flag("--caps"),
            _ => run.arg("--mode", "6755").flag("--no-fsetid"),
        };
        if fault {
            run = run.arg("--fault", format!("pwrite64:{}", libc::EIO));
        }
        let (without, with) = run.both(&path);
        for key in ["ret", "errno", "size_after", "mode_after"] {
            assert_eq!(without.get(key), with.get(key), "{what}: {key}\n{}", with.stderr);
        }
        let caps = |p: &Path| has_xattr(p, "security.capability");
        assert_eq!(caps(&bare_path(&path)), caps(&path), "{what}: capabilities\n{}", with.stderr);
        assert_eq!(caps(&path), fault && privilege == "caps", "{what}: capabilities");
        let setid = (with.get("mode_after") & 0o6000) != 0;
        assert_eq!(setid, fault && privilege == "setid", "{what}: mode {:o}", with.get("mode_after"));
        if !fault {
            assert_whole(&measure(&path), what);
        }
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(bare_path(&path));
    });
}

#[test]
fn rlimit_fsize_gives_the_same_sigxfsz_and_efbig() {
    let s = Scratch::new("rlimit");
    // ulimit -f counts 1024-byte blocks: 32 MiB, below the 128 MiB file.
    for (what, shell) in [("SIGXFSZ default", "ulimit -f 32768"), ("SIGXFSZ ignored", "ulimit -f 32768; trap '' XFSZ")]
    {
        let path = s.path("limited.vmem");
        let run = vmx(&path).arg("--size", 128 * MIB).shell(shell);
        let with = run.run_raw();
        let _ = std::fs::remove_file(&path);
        let without = run.clone().without_library().run_raw();
        let _ = std::fs::remove_file(&path);
        assert_eq!((without.status, without.signal), (with.status, with.signal), "{what}: {}", with.stderr);
        if what == "SIGXFSZ default" {
            assert_eq!(with.signal, Some(libc::SIGXFSZ), "{what}");
        } else {
            assert_same(&without, &with, what);
            assert_eq!(with.get("create_errno"), i64::from(libc::EFBIG));
        }
    }
}

#[test]
fn a_signal_storm_during_a_long_zero_fill_leaves_a_whole_file() {
    let s = Scratch::new("storm");
    let path = s.path("storm.vmem");
    let run = vmx(&path).arg("--size", 512 * MIB).flag("--signal-storm").env("NOSPARSE_METHOD", "zero");
    let (without, with) = run.both(&path);
    assert_same(&without, &with, "signal storm");
    assert!(with.get("signals") > 0, "no signal arrived during the call");
    assert_whole(&measure(&path), "after the storm");
    assert_same_content(&path, &bare_path(&path));
}

#[test]
fn a_read_only_filesystem_is_left_alone() {
    let s = Scratch::new("rofs");
    let Some(fs) = mount(&s, "ext4", 256 * MIB) else { return };
    let path = fs.path("ro.vmem");
    std::fs::write(&path, b"").unwrap();
    sh(&format!("mount -o remount,ro {}", fs.mnt.display()));
    let run = vmx(&path).arg("--size", 128 * MIB).arg("--open", "rdonly");
    let with = run.run();
    let without = run.clone().without_library().run();
    assert_same(&without, &with, "read-only filesystem");
    assert_eq!(with.get("create_errno"), i64::from(libc::EBADF));
    sh(&format!("mount -o remount,rw {}", fs.mnt.display()));
}

#[test]
fn o_direct_fds_behave_as_without_the_library() {
    let s = Scratch::new("direct");
    // An unaligned one-byte O_DIRECT write fails with EINVAL: the library knows it
    // beforehand and allocates nothing.
    let path = s.path("direct.vmem");
    let (without, with) = vmx(&path).arg("--size", 128 * MIB).arg("--open", "direct").both(&path);
    assert_untouched(&without, &with, "O_DIRECT");
    let path = s.path("direct-zero.vmem");
    let run = vmx(&path).arg("--size", 128 * MIB).arg("--open", "direct").env("NOSPARSE_METHOD", "zero");
    let (without, with) = run.both(&path);
    assert_same(&without, &with, "O_DIRECT, zero method");
    // On ext3 (no fallocate) the zero fill steps aside for O_DIRECT.
    let Some(fs) = mount(&s, "ext3", 256 * MIB) else { return };
    let path = fs.path("direct.vmem");
    let (without, with) = vmx(&path).arg("--size", 128 * MIB).arg("--open", "direct").both(&path);
    assert_untouched(&without, &with, "O_DIRECT on ext3");
}

#[test]
fn a_32_bit_fd_without_o_largefile_fails_the_same_way_past_2_gib() {
    let s = Scratch::new("nolfs");
    let path = s.path("nolfs.vmem");
    let (without, with) = vmx(&path).arg("--size", 3 * GIB).arg("--open", "rdwr-nolfs").both(&path);
    assert_same(&without, &with, "fd without O_LARGEFILE");
    if cfg!(target_arch = "x86") {
        // The real write fails with EFBIG: known beforehand, nothing allocated.
        assert_eq!(with.get("create_errno"), i64::from(libc::EFBIG));
        assert_eq!(without.get("allocated_after_create"), with.get("allocated_after_create"), "allocation not undone");
    }
}

#[test]
fn offsets_past_the_largest_file_fail_the_same_way() {
    let s = Scratch::new("huge");
    let Some(fs) = mount(&s, "ext4", 256 * MIB) else { return };
    // ext4 with 4 KiB blocks holds files up to 16 TiB.
    for offset in [17i64 << 40, i64::MAX - 1, i64::MAX] {
        let path = fs.path("huge.vmem");
        let (without, with) = vmx(&path).arg("--offset", offset).both(&path);
        assert_untouched(&without, &with, &format!("offset {offset}"));
        assert_eq!(with.get("create_ret"), -1, "offset {offset}");
    }
}

#[test]
fn memory_added_stays_under_one_huge_page_and_256_kib_even_after_zero_filling_4_gib() {
    let s = Scratch::new("memory");
    let path = s.path("mem.vmem");
    let run = vmx(&path).arg("--size", 4 * GIB).flag("--report-memory").env("NOSPARSE_METHOD", "zero");
    let with = run.run();
    assert!(with.stderr.contains("by zero fill"), "{}", with.stderr);
    let _ = std::fs::remove_file(&path);
    let without = run.clone().without_library().run();
    let added = with.get("vm_hwm_kib") - without.get("vm_hwm_kib");
    eprintln!(
        "SUMMARY memory: peak RSS {} KiB without, {} KiB with the library after a 4 GiB zero fill: +{added} KiB",
        without.get("vm_hwm_kib"),
        with.get("vm_hwm_kib")
    );
    // The zero fill maps the file a huge page (2 MiB) at a time and releases it at once:
    // those are the file's own page-cache pages, counted while mapped. Beyond them the
    // library may add 256 KiB.
    assert!(added <= 2048 + 256, "the library added {added} KiB of peak RSS");
}
