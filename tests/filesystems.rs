//! The harness on real filesystems made in image files and loop-mounted: ext4, ext3
//! (no fallocate: the zero path), xfs, btrfs and tmpfs, and a full disk. Needs root;
//! under CI=true, missing root or mkfs tools fail these tests instead of skipping them.

mod common;

use common::outside::{self, Method};
use common::*;
use std::path::Path;

/// The guest's life: 1 MiB regions written back in random order as vmx writes them
/// (mapped MAP_SHARED, written, msync'ed) while a second writer appends to another file
/// on the same filesystem.
fn guest_life(run: Vmx, fs: &LoopFs) -> Vmx {
    run.arg("--writes", 256).arg("--write-back", "mmap").arg("--competitor", fs.path("rival").display())
}

/// One filesystem, one run with and one without the library, each on a fresh image;
/// returns the two outcomes and the measured files.
fn compare_on(kind: &str, size: u64, env: &[(&str, &str)]) -> Option<((Outcome, Measured), (Outcome, Measured))> {
    compare_on_and_inspect(kind, size, 8192, env, &|_| {})
}

/// As [`compare_on`], with `prefill` bytes of data written before the creation call
/// (0: the file is empty), calling `inspect` on the file made with the library while
/// its filesystem is still mounted.
fn compare_on_and_inspect(
    kind: &str,
    size: u64,
    prefill: u64,
    env: &[(&str, &str)],
    inspect: &dyn Fn(&Path),
) -> Option<((Outcome, Measured), (Outcome, Measured))> {
    let s = Scratch::new(&format!("fs-{kind}"));
    let mut runs = Vec::new();
    for preload in [false, true] {
        let fs = mount(&s, kind, 1024 * MIB)?;
        let path = fs.path("guest.vmem");
        let mut run = guest_life(vmx(&path).arg("--size", size).arg("--prefill", prefill).arg("--seek", 4321), &fs);
        for (k, v) in env {
            run = run.env(k, v);
        }
        run = if preload { run.traced() } else { run.without_library() };
        let out = run.run();
        let m = measure(&path);
        if preload {
            inspect(&path);
        }
        // Content is compared across the two images through a copy kept on the scratch disk.
        std::fs::copy(&path, s.path(if preload { "with" } else { "without" })).unwrap();
        runs.push((out, m));
    }
    assert_same_content(&s.path("with"), &s.path("without"));
    let with = runs.pop().unwrap();
    let without = runs.pop().unwrap();
    assert_same(&without.0, &with.0, kind);
    assert_eq!(with.0.get("create_ret"), 1);
    assert_eq!(with.0.get("offset_after"), 4321);
    assert_eq!(with.1.size, size);
    Some((without, with))
}

#[test]
fn ext4_file_is_allocated_whole_and_stays_in_few_fragments() {
    let size = 256 * MIB;
    let Some(((bare_out, bare), (out, m))) = compare_on("ext4", size, &[]) else { return };
    assert!(bare_out.get("allocated_after_create") < MIB as i64, "without the library the file starts sparse");
    assert!(out.get("allocated_after_create") >= size as i64);
    assert_eq!(outside::method(&out.trace), Method::Fallocate, "{}", out.trace);
    assert_whole(&m, "ext4");
    let limit = ext4_min_extents(size) + 2;
    assert!(m.layout.fragments <= limit, "ext4: {} fragments, expected <= {limit}", m.layout.fragments);
    assert!(
        bare.layout.fragments > m.layout.fragments,
        "the simulated run should fragment the sparse file: {} vs {}",
        bare.layout.fragments,
        m.layout.fragments
    );
    eprintln!("ext4 fragments: sparse {} / nosparse {}", bare.layout.fragments, m.layout.fragments);
}

/// The engine counts fragments for its log line and `nosparse check`: as filefrag does.
#[test]
fn the_engine_counts_fragments_as_filefrag_counts_them() {
    let s = Scratch::new("filefrag");
    let Some(fs) = mount(&s, "ext4", 1024 * MIB) else { return };
    if !require(have("filefrag"), "filefrag is not installed (scripts/setup.sh installs e2fsprogs)") {
        return;
    }
    let path = fs.path("sparse.vmem");
    guest_life(vmx(&path).arg("--size", 256 * MIB), &fs).without_library().run();
    let theirs = measure(&path).layout.fragments;
    assert!(theirs > 1, "the sparse file should be fragmented for this check to mean something");
    let f = std::fs::File::open(&path).unwrap();
    use std::os::unix::io::AsRawFd;
    let ours = nosparse_core::extents::layout(f.as_raw_fd(), 256 * MIB).expect("FIEMAP").fragments;
    assert_eq!(ours, theirs, "the engine counts {ours}, filefrag {theirs}");
}

#[test]
fn ext3_has_no_fallocate_so_zeros_are_written() {
    let size = 128 * MIB;
    let Some(((_, bare), (out, m))) = compare_on("ext3", size, &[]) else { return };
    assert_eq!(outside::method(&out.trace), Method::ZeroFill, "{}", out.trace);
    assert_whole(&m, "ext3");
    // ext3 puts an indirect block every 4 MiB, so runs break there at worst; writes that
    // make ext3 free and reallocate blocks (large writes from an unfaulted zero buffer)
    // produced hundreds of fragments.
    let limit = size / (4 * MIB);
    assert!(m.layout.fragments <= limit, "ext3: {} fragments, expected <= {limit}", m.layout.fragments);
    eprintln!("ext3 fragments: sparse {} / nosparse {}", bare.layout.fragments, m.layout.fragments);
}

#[test]
fn xfs_file_is_allocated_whole() {
    let size = 256 * MIB;
    let Some(((_, bare), (out, m))) = compare_on("xfs", size, &[]) else { return };
    assert_eq!(outside::method(&out.trace), Method::Fallocate, "{}", out.trace);
    assert_whole(&m, "xfs");
    assert!(m.layout.fragments <= 4, "xfs: {} fragments", m.layout.fragments);
    eprintln!("xfs fragments: sparse {} / nosparse {}", bare.layout.fragments, m.layout.fragments);
}

#[test]
fn btrfs_file_is_nocow_and_stays_in_few_fragments_after_overwrites() {
    let size = 256 * MIB;
    let nocow = |path: &Path| {
        let flags = outside::lsattr(path).unwrap_or_else(|e| panic!("{e}"));
        assert!(flags.contains('C'), "NOCOW (C) not set on btrfs: lsattr says {flags}");
    };
    // NOCOW can only be set while the file is empty, as vmx's is.
    let Some(((_, bare), (out, m))) = compare_on_and_inspect("btrfs", size, 0, &[], &nocow) else { return };
    assert_eq!(outside::method(&out.trace), Method::Fallocate, "{}", out.trace);
    assert_whole(&m, "btrfs");
    assert!(m.layout.fragments <= 8, "btrfs: {} fragments after the run", m.layout.fragments);
    eprintln!("btrfs fragments: sparse {} / nosparse {}", bare.layout.fragments, m.layout.fragments);
}

#[test]
fn tmpfs_is_skipped_unless_asked() {
    let s = Scratch::new("fs-tmpfs");
    let Some(fs) = mount(&s, "tmpfs", 512 * MIB) else { return };
    let skipped = fs.path("skipped.vmem");
    let (without, with) = vmx(&skipped).arg("--size", 128 * MIB).env("NOSPARSE_DEBUG", "1").both(&skipped);
    assert_same(&without, &with, "tmpfs");
    assert!(with.get("allocated_after_create") < MIB as i64, "tmpfs file was allocated by default");
    assert!(with.stderr.contains("tmpfs is in NOSPARSE_SKIP_FS"), "{}", with.stderr);
    let asked = fs.path("asked.vmem");
    let run = vmx(&asked).arg("--size", 128 * MIB).arg("--seek", 99).arg("--writes", 32);
    let (without, with) = run.env("NOSPARSE_SKIP_FS", "none").both(&asked);
    assert_same(&without, &with, "tmpfs");
    assert_eq!(with.get("offset_after"), 99);
    // tmpfs has no FIEMAP: st_blocks tells the allocation.
    assert!(allocated(&asked) >= 128 * MIB, "NOSPARSE_SKIP_FS=none should allocate on tmpfs");
    assert_same_content(&asked, &bare_path(&asked));
}

/// A file larger than the filesystem: preallocation fails with ENOSPC.
fn full_disk(kind: &str, env: &[(&str, &str)]) -> Option<(Outcome, u64, u64, Measured)> {
    let s = Scratch::new(&format!("enospc-{kind}"));
    let fs = mount(&s, kind, 64 * MIB)?;
    let path = fs.path("big.vmem");
    let free_before = free_bytes(&fs.mnt);
    let mut run = vmx(&path).arg("--size", 256 * MIB);
    for (k, v) in env {
        run = run.env(k, v);
    }
    let out = run.run();
    let m = measure(&path);
    let free_after = free_bytes(&fs.mnt);
    Some((out, free_before, free_after, m))
}

fn assert_no_leak(kind: &str, free_before: u64, free_after: u64, m: &Measured) {
    // What the real one-byte write itself needs (a block and its index) is all that may go.
    let used = free_before.saturating_sub(free_after);
    assert!(used <= 64 * 1024, "{kind}: {used} bytes of space leaked");
    assert!(m.allocated <= 64 * 1024, "{kind}: {} bytes allocated in a file that should be sparse", m.allocated);
}

#[test]
fn a_full_disk_leaves_the_file_sparse_and_the_write_unchanged() {
    for kind in ["ext4", "ext3"] {
        let Some((out, before, after, m)) = full_disk(kind, &[]) else { return };
        assert_eq!(out.get("create_ret"), 1, "{kind}: {}", out.stderr);
        assert_eq!(out.get("size_after_create"), (256 * MIB) as i64);
        assert!(
            out.stderr.contains("could not preallocate") && out.stderr.contains("ENOSPC"),
            "{kind}: {}",
            out.stderr
        );
        assert_no_leak(kind, before, after, &m);
    }
}

#[test]
fn on_error_fail_returns_enospc_and_leaves_the_file_as_it_was() {
    for kind in ["ext4", "ext3"] {
        let Some((out, before, after, m)) = full_disk(kind, &[("NOSPARSE_ON_ERROR", "fail")]) else { return };
        assert_eq!(out.get("create_ret"), -1, "{kind}: {}", out.stderr);
        assert_eq!(out.get("create_errno"), i64::from(libc::ENOSPC));
        assert_eq!(out.get("size_after_create"), 0, "{kind}: the file must keep its size");
        assert_no_leak(kind, before, after, &m);
    }
}
