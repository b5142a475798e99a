//! The engine's promise (issue 9): the file ends up exactly as the program would have it
//! without the library, whatever runs beside it — the program's own holes stay holes, a
//! creation that cannot fit takes nothing from anyone, a failure gives back exactly what
//! was added, other writers lose nothing and find the shared file offset where they left
//! it, append-only and immutable files are left alone, growth is not creation, overlay is
//! judged by its upper layer, and unlinked files are matched by their names.
//!
//! Judged from outside: return values, sizes, st_blocks, statfs free space, FIEMAP,
//! bytes, file offsets, inode attributes and strace. The programs are C (tests/c), built
//! for the target of this test binary. Needs root for the loop-mounted filesystems.

mod common;

use common::*;
use nosparse_core::extents;
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

const BLOCK: u64 = 4096;
/// The triggers, all switched on wherever a case must hold for each of them.
const ALL_TRIGGERS: &str = "pwrite,ftruncate,write";
/// The calls that make a creation through each trigger (tests/c/extend.c's `--call`).
const CALLS: [&str; 3] = ["pwrite64", "write", "ftruncate"];
/// What the real one-byte write itself may take on a filesystem: a block and its index.
const ONE_WRITE_SLACK: u64 = 64 * 1024;

/// tests/c/extend.c making or extending `path`, with every trigger on.
fn extend(path: &Path) -> Vmx {
    c_program("extend").arg("--path", path.display()).env("NOSPARSE_TRIGGERS", ALL_TRIGGERS)
}

/// Bytes of `[start, end)` of `path` that FIEMAP reports mapped (data or unwritten).
fn mapped_in(path: &Path, start: u64, end: u64) -> u64 {
    let f = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut n = 0;
    let r = extents::for_each(f.as_raw_fd(), |e| {
        let (a, b) = (e.logical.max(start), (e.logical + e.length).min(end));
        n += b.saturating_sub(a);
    });
    assert!(r.is_ok(), "FIEMAP on {}", path.display());
    n
}

/// Asserts the two runs printed the same values for `keys`.
fn assert_same_keys(without: &Outcome, with: &Outcome, keys: &[&str], what: &str) {
    for k in keys {
        assert_eq!(without.get(k), with.get(k), "{what}: {k} differs with the library\n{}", with.stderr);
    }
}

/// Asserts the run with the library ends with as many blocks allocated as the one
/// without, give or take [`ONE_WRITE_SLACK`]: a block of the extent tree that grew while
/// the library's range was allocated stays after it is given back (ext4).
fn assert_allocated_alike(without: &Outcome, with: &Outcome, what: &str) {
    let (a, b) = (without.get("allocated_after"), with.get("allocated_after"));
    assert!(
        a.abs_diff(b) <= ONE_WRITE_SLACK,
        "{what}: {b} bytes allocated with the library, {a} without\n{}",
        with.stderr
    );
}

/// `nosparse:` lines the library wrote to stderr (the harness sets NOSPARSE_LOG=stderr).
fn log_lines(o: &Outcome) -> usize {
    o.stderr.lines().filter(|l| l.contains("nosparse:")).count()
}

/// One run on a filesystem of its own: what the program printed, and what it cost the
/// filesystem (free bytes before minus after).
struct OnFresh {
    out: Outcome,
    used: u64,
    path: PathBuf,
    // Kept mounted for inspection; last, so that it is unmounted after the rest.
    _fs: LoopFs,
}

/// Runs `make(path)` on a fresh `kind` filesystem of `fs_size` bytes, without and then
/// with the library, each on its own filesystem (free space is compared).
fn on_fresh(s: &Scratch, kind: &str, fs_size: u64, make: &dyn Fn(&Path) -> Vmx) -> Option<[OnFresh; 2]> {
    let mut runs = Vec::new();
    for preload in [false, true] {
        let fs = mount(s, kind, fs_size)?;
        let path = fs.path("file.img");
        let free = free_bytes(&fs.mnt);
        let mut run = make(&path);
        if !preload {
            run = run.without_library();
        }
        let out = run.run();
        sh("sync");
        let used = free.saturating_sub(free_bytes(&fs.mnt));
        runs.push(OnFresh { out, used, path, _fs: fs });
    }
    let with = runs.pop().unwrap();
    Some([runs.pop().unwrap(), with])
}

/// The program's data before the creation call: 1 MiB, a 32 MiB hole, 1 MiB.
const HOLEY_DATA_END: u64 = 34 * MIB;
const HOLE: (u64, u64) = (MIB, 33 * MIB);
/// How much more of a hole xfs may map past data on one run than on another: its
/// speculative preallocation depends on writeback timing.
const XFS_SPECULATIVE: u64 = 4 * MIB;

fn holey_data() -> String {
    format!("0:{MIB},{}:{MIB}", HOLE.1)
}

#[test]
fn a_file_with_holes_keeps_them_when_extended_by_any_trigger() {
    let s = Scratch::new("engine-holes");
    let Some(fs) = mount(&s, "ext4", 1024 * MIB) else { return };
    let new = 128 * MIB;
    every_case(CALLS.map(|c| (c.to_string(), ())), |call, ()| {
        let path = fs.path(&format!("{call}.img"));
        let run =
            extend(&path).arg("--data", holey_data()).arg("--call", call).arg("--offset", HOLEY_DATA_END + new - 1);
        let (without, with) = run.both(&path);
        assert_same_keys(&without, &with, &["ret", "errno", "size_after", "offset_after"], call);
        assert_eq!(with.get("size_after"), (HOLEY_DATA_END + new) as i64, "{call}");
        assert_eq!(
            mapped_in(&path, HOLE.0, HOLE.1),
            0,
            "{call}: the program's own hole was allocated\n{}",
            with.stderr
        );
        // Whole blocks of the new range; the one holding the byte may be left to the call.
        let allocated = mapped_in(&path, HOLEY_DATA_END, HOLEY_DATA_END + new);
        assert!(allocated >= new - BLOCK, "{call}: {allocated} bytes of the new range of {new} allocated");
        assert_eq!(log_lines(&with), 1, "{call}: {}", with.stderr);
        assert_same_content(&path, &bare_path(&path));
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_file(bare_path(&path)).unwrap();
    });
}

#[test]
fn a_creation_that_cannot_fit_is_passed_through_without_taking_any_room() {
    let s = Scratch::new("engine-noroom");
    // 512 MiB of new range on a 256 MiB filesystem, past a file with a 32 MiB hole.
    let make = |p: &Path| extend(p).arg("--data", holey_data()).arg("--offset", HOLEY_DATA_END + 512 * MIB - 1);
    let Some([without, with]) = on_fresh(&s, "ext4", 256 * MIB, &make) else { return };
    assert_same_keys(&without.out, &with.out, &["ret", "errno", "size_after"], "no room");
    assert_allocated_alike(&without.out, &with.out, "no room");
    assert_eq!(with.out.get("ret"), 1);
    assert_eq!(mapped_in(&with.path, HOLE.0, HOLE.1), 0, "the program's own hole was allocated");
    assert!(
        with.used <= without.used + ONE_WRITE_SLACK,
        "{} bytes of the filesystem used with the library, {} without\n{}",
        with.used,
        without.used,
        with.out.stderr
    );
}

#[test]
fn a_real_call_failing_after_the_preallocation_leaves_the_file_as_it_was() {
    let s = Scratch::new("engine-direct");
    // A one-byte O_DIRECT write fails with EINVAL, after the library has allocated.
    let cases = [("ext4", "auto"), ("ext4", "zero"), ("xfs", "auto")];
    every_case(cases.map(|(k, m)| (format!("{k}, NOSPARSE_METHOD={m}"), (k, m))), |what, (kind, method)| {
        let make = |p: &Path| {
            extend(p)
                .arg("--data", holey_data())
                .arg("--open", "direct")
                .arg("--offset", HOLEY_DATA_END + 128 * MIB - 1)
                .env("NOSPARSE_METHOD", method)
        };
        let Some([without, with]) = on_fresh(&s, kind, 512 * MIB, &make) else { return };
        assert_same_keys(&without.out, &with.out, &["ret", "errno", "size_after"], what);
        assert_eq!(with.out.get("errno"), i64::from(libc::EINVAL), "{what}");
        assert_allocated_alike(&without.out, &with.out, what);
        // xfs preallocates past the data it is given, into the hole, with or without us.
        let (bare, ours) = (mapped_in(&without.path, HOLE.0, HOLE.1), mapped_in(&with.path, HOLE.0, HOLE.1));
        assert!(
            ours <= bare + XFS_SPECULATIVE,
            "{what}: {ours} bytes of the program's own hole allocated, {bare} without"
        );
        assert!(
            with.used <= without.used + ONE_WRITE_SLACK,
            "{what}: {} bytes left used with the library, {} without\n{}",
            with.used,
            without.used,
            with.out.stderr
        );
    });
}

/// The blocks tests/c/writers.c wrote, by index, each tagged with its own index.
fn written_blocks(o: &Outcome, old: u64) -> HashMap<u64, u64> {
    let mut blocks = HashMap::new();
    let mut add = |at: i64, len: i64| {
        for b in at as u64 / BLOCK..(at + len) as u64 / BLOCK {
            blocks.insert(b, b);
        }
    };
    let block = BLOCK as i64;
    add(0, MIB as i64);
    add((old - MIB) as i64, MIB as i64);
    add(o.get("shared_at"), o.get("shared_count") * block);
    for k in 0..o.get("range_count") {
        add(o.get(&format!("range_at_{k}")), o.get("range_len"));
    }
    add(o.get("tail_at"), o.get("tail_count") * block);
    add(o.get("after_at"), o.get("after_count") * block);
    blocks
}

/// Reads `path` whole: every block in `expected` holds its pattern, every other byte is
/// zero (a block written elsewhere than meant shows up as both).
fn check_blocks(path: &Path, expected: &HashMap<u64, u64>, what: &str) {
    let mut f = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut buf = vec![0u8; BLOCK as usize];
    let mut index = 0u64;
    let mut seen = 0;
    loop {
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..]).expect("read") {
                0 => break,
                k => n += k,
            }
        }
        if n == 0 {
            break;
        }
        match expected.get(&index) {
            Some(&tag) => {
                assert!(buf[..n] == pattern(tag)[..n], "{what}: block at {} lost or overwritten", index * BLOCK);
                seen += 1;
            }
            None => assert!(buf[..n].iter().all(|&b| b == 0), "{what}: unexpected data at {}", index * BLOCK),
        }
        index += 1;
    }
    assert_eq!(seen, expected.len(), "{what}: the file ends before blocks written to it");
}

const WRITERS_SIZE: u64 = 256 * MIB;
const WRITERS_OLD: u64 = 16 * MIB;
/// Blocks the shared-offset writer appends with write(): 8 MiB, 50 us apart.
const SHARED_BLOCKS: u64 = 2048;

#[test]
fn other_threads_and_processes_writing_around_a_creation_lose_nothing() {
    let s = Scratch::new("engine-writers");
    // (filesystem, method, writers as processes): fallocate on ext4 and xfs, zeros on
    // ext3 (no fallocate) and on ext4 by request.
    let cases = [
        ("ext4", "auto", false),
        ("ext4", "zero", false),
        ("ext3", "auto", false),
        ("ext3", "auto", true),
        ("xfs", "auto", false),
    ];
    let summary = std::sync::Mutex::new(Vec::new());
    let named = cases.map(|c| (format!("{}, NOSPARSE_METHOD={}{}", c.0, c.1, if c.2 { ", processes" } else { "" }), c));
    every_case(named, |what, (kind, method, process)| {
        let Some(fs) = mount(&s, kind, 1024 * MIB) else { return };
        let path = fs.path("shared.img");
        let mut run = c_program("writers")
            .arg("--path", path.display())
            .arg("--size", WRITERS_SIZE)
            .arg("--old", WRITERS_OLD)
            .arg("--shared", SHARED_BLOCKS)
            .arg("--ranges", 16)
            .env("NOSPARSE_METHOD", method)
            .timeout(120);
        // Where zeros are filled in, the range writer starts as soon as the call has
        // given the file its size: its pieces lie in the last quarter, which the fill
        // reaches last, so they land while it runs.
        if method == "zero" || kind == "ext3" {
            run = run.arg("--delay-us", 0);
        }
        if process {
            run = run.flag("--process");
        }
        let (without, with) = run.both(&path);
        for (o, p, who) in [(&without, bare_path(&path), "without"), (&with, path.clone(), "with")] {
            let what = format!("{what}, {who} the library");
            assert_eq!(o.get("ret"), 1, "{what}: {}", o.stderr);
            assert_eq!(
                o.get("offset_after"),
                o.get("shared_at") + (SHARED_BLOCKS * BLOCK) as i64,
                "{what}: the shared file offset moved"
            );
            check_blocks(&p, &written_blocks(o, WRITERS_OLD), &what);
        }
        assert_eq!(log_lines(&with), 1, "{what}: not preallocated: {}", with.stderr);
        let new_range = mapped_in(&path, WRITERS_OLD, WRITERS_SIZE);
        assert_eq!(new_range, WRITERS_SIZE - WRITERS_OLD, "{what}: new range not allocated whole");
        summary.lock().unwrap().push(format!(
            "{what}: call {} us, {} shared and {} range writes during it",
            with.get("call_us"),
            with.get("shared_during"),
            with.get("ranges_during")
        ));
    });
    eprintln!("SUMMARY writers: {}", summary.lock().unwrap().join("; "));
}

/// Reads only the blocks in `expected` and checks each holds its pattern.
fn check_listed(path: &Path, expected: &HashMap<u64, u64>, what: &str) {
    use std::os::unix::fs::FileExt;
    let f = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut buf = vec![0u8; BLOCK as usize];
    for (&index, &tag) in expected {
        let n = f.read_at(&mut buf, index * BLOCK).expect("read");
        assert!(n == buf.len() && buf == pattern(tag), "{what}: block at {} lost or overwritten", index * BLOCK);
    }
}

/// Rounds of each variant at least, and at most: a round counts once a block of the
/// writer's landed while the creation call ran (the call is short, so not every round
/// sees one); the test goes on until enough have, within the bound.
const TAIL_ROUNDS: (u32, u32) = (10, 400);
/// Blocks written during a call that make a variant's proof.
const TAIL_DURING_WANTED: i64 = 10;

#[test]
fn a_write_past_the_old_end_during_a_creation_is_kept() {
    let s = Scratch::new("engine-tail");
    let during = std::sync::Mutex::new(Vec::new());
    // The creation is allocated after its real call, by fallocate on ext4 and zeros on
    // ext3, while another writer writes past the end: nothing may land over its blocks.
    // (A failing real call leaves nothing to undo at all: the torture test tries those.)
    let cases = [("ext4", "rdwr", false), ("ext4", "rdwr", true), ("ext3", "rdwr", false), ("ext3", "rdwr", true)];
    every_case(
        cases.map(|(k, o, p)| {
            (format!("{k}, --open {o}, a writing {}", if p { "process" } else { "thread" }), (k, o, p))
        }),
        |what, (kind, open, process)| {
            let Some(fs) = mount(&s, kind, 1024 * MIB) else { return };
            let path = fs.path("tail.img");
            let run = c_program("writers")
                .arg("--path", path.display())
                .arg("--size", WRITERS_SIZE)
                .arg("--old", WRITERS_OLD)
                .arg("--open", open)
                .flag("--tail")
                .timeout(120);
            let run = if process { run.flag("--process") } else { run };
            let (mut rounds, mut blocks, mut written_during) = (0, 0, 0);
            while rounds < TAIL_ROUNDS.0 || (written_during < TAIL_DURING_WANTED && rounds < TAIL_ROUNDS.1) {
                let _cleanup = Cleanup(vec![path.clone()]);
                let out = run.run();
                assert_eq!(out.get("ret"), 1, "{what}: {}", out.stderr);
                check_listed(&path, &written_blocks(&out, WRITERS_OLD), &format!("{what}, round {rounds}"));
                blocks += out.get("tail_count");
                written_during += out.get("tail_during");
                rounds += 1;
            }
            assert!(
                written_during >= TAIL_DURING_WANTED,
                "{what}: {written_during} blocks written during the creation calls in {rounds} rounds: the test proved nothing"
            );
            during
                .lock()
                .unwrap()
                .push(format!("{what}: {written_during} of {blocks} blocks during the calls, {rounds} rounds"));
        },
    );
    eprintln!("SUMMARY tail: {}", during.lock().unwrap().join("; "));
}

#[test]
fn a_neighbour_never_runs_out_of_room_while_creations_that_cannot_fit_repeat() {
    let s = Scratch::new("engine-neighbour");
    let mut results = Vec::new();
    for preload in [false, true] {
        let Some(fs) = mount(&s, "ext4", 256 * MIB) else { return };
        // 1 GiB creations every 20 ms for 2 s, on 256 MiB; the neighbour rewrites 32 MiB.
        let mut run = c_program("neighbour")
            .arg("--dir", fs.mnt.display())
            .arg("--size", 1024 * MIB)
            .arg("--seconds", 2)
            .arg("--every-ms", 20)
            .arg("--mine", 32 * MIB)
            .timeout(120);
        if !preload {
            run = run.without_library();
        }
        let out = run.run();
        let who = if preload { "with" } else { "without" };
        assert!(out.get("creations") > 10, "{who}: too few creation calls to mean anything: {:?}", out.kv);
        assert_eq!(out.get("creation_failures"), 0, "{who}: creation calls failed: {}", out.stderr);
        assert_eq!(
            out.get("neighbour_enospc"),
            0,
            "{who} the library: the neighbour got ENOSPC {} times in {} writes",
            out.get("neighbour_enospc"),
            out.get("neighbour_writes")
        );
        results.push(format!(
            "{who}: {} creations, neighbour {} writes",
            out.get("creations"),
            out.get("neighbour_writes")
        ));
    }
    eprintln!("SUMMARY neighbour: {}, 0 ENOSPC", results.join("; "));
}

#[test]
fn append_only_and_immutable_files_are_left_alone_with_every_trigger() {
    let s = Scratch::new("engine-attrs");
    let Some(fs) = mount(&s, "ext4", 1024 * MIB) else { return };
    let mut cases: Vec<(String, Vmx)> = Vec::new();
    for attr in ["a", "i"] {
        for call in CALLS {
            let path = fs.path(&format!("{attr}-{call}.img"));
            cases.push((format!("chattr +{attr}, {call}"), extend(&path).arg("--attr", attr).arg("--call", call)));
        }
    }
    // An append-only file is written through an O_APPEND fd.
    let path = fs.path("a-append.img");
    cases.push(("chattr +a, O_APPEND fd".into(), extend(&path).arg("--attr", "a").arg("--open", "append")));
    every_case(cases, |what, run| {
        let path = run.path();
        let _cleanup = Cleanup(vec![path.clone(), bare_path(&path)]);
        let run = run.arg("--data", format!("0:{BLOCK}")).arg("--offset", 128 * MIB - 1);
        let (without, with) = run.both(&path);
        assert_same_keys(&without, &with, &["ret", "errno", "size_after", "allocated_after", "offset_after"], what);
        if what.contains("ftruncate") {
            assert_eq!(with.get("errno"), i64::from(libc::EPERM), "{what}");
        }
        assert_eq!(log_lines(&with), 0, "{what}: {}", with.stderr);
    });
}

#[test]
fn zeros_asked_for_through_a_write_only_fd_are_a_warning_and_nothing_else() {
    let s = Scratch::new("engine-zero-wronly");
    let Some(fs) = mount(&s, "ext4", 1024 * MIB) else { return };
    let path = fs.path("wronly.img");
    let _cleanup = Cleanup(vec![path.clone(), bare_path(&path)]);
    let run = extend(&path).arg("--open", "wronly").arg("--offset", 128 * MIB - 1).env("NOSPARSE_METHOD", "zero");
    let (without, with) = run.both(&path);
    let what = "NOSPARSE_METHOD=zero, O_WRONLY";
    assert_same_keys(&without, &with, &["ret", "errno", "size_after", "allocated_after", "offset_after"], what);
    assert_eq!(log_lines(&with), 1, "{what}: one warning: {}", with.stderr);
    assert!(with.stderr.contains("needs a descriptor open for reading and writing"), "{what}: {}", with.stderr);
}

/// The subvolume's referenced bytes, as its qgroup counts them.
fn qgroup_referenced(mnt: &Path, subvol: &Path) -> u64 {
    sh(&format!("btrfs filesystem sync {}", mnt.display()));
    let id = sh(&format!("btrfs subvolume show {} | awk '/Subvolume ID:/ {{print $3}}'", subvol.display()));
    let table = sh(&format!("btrfs qgroup show --raw {}", mnt.display()));
    let want = format!("0/{}", id.trim());
    table
        .lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(&want)).then(|| f.next().and_then(|n| n.parse().ok())).flatten()
        })
        .unwrap_or_else(|| panic!("no qgroup {want} in:\n{table}"))
}

#[test]
fn a_btrfs_qgroup_limit_takes_nothing_with_each_method() {
    // This kernel (and many CI kernels) lacks CONFIG_QUOTA, so ext4 and xfs user quotas
    // cannot be mounted; btrfs qgroups limit a subvolume without it, and return EDQUOT.
    if !require(have("btrfs"), "btrfs (scripts/setup.sh installs btrfs-progs)") {
        return;
    }
    let s = Scratch::new("engine-qgroup");
    let Some(fs) = mount(&s, "btrfs", 1024 * MIB) else { return };
    sh(&format!("btrfs quota enable {}", fs.mnt.display()));
    let size = 128 * MIB;
    let cases = [("fallocate", "passthrough"), ("zero", "passthrough"), ("auto", "fail")];
    every_case(
        cases.map(|(m, e)| (format!("NOSPARSE_METHOD={m}, NOSPARSE_ON_ERROR={e}"), (m, e))),
        |what, (method, on_error)| {
            // A subvolume, and so a quota, for each case: one case's leftovers cannot fail the next.
            let sub = fs.path(&format!("limited-{method}-{on_error}"));
            sh(&format!("btrfs subvolume create {}", sub.display()));
            sh(&format!("btrfs qgroup limit 32M {}", sub.display()));
            let path = sub.join("guest.vmem");
            let before = qgroup_referenced(&fs.mnt, &sub);
            let run = extend(&path)
                .arg("--offset", size - 1)
                .env("NOSPARSE_METHOD", method)
                .env("NOSPARSE_ON_ERROR", on_error);
            let (without, with) = run.both(&path);
            // statfs does not show qgroup limits: on an empty btrfs file the range is
            // reserved (all of it or none) before the call, with every method, so the
            // quota's EDQUOT comes before anything is taken.
            assert!(with.stderr.contains("EDQUOT"), "{what}: no warning naming EDQUOT\n{}", with.stderr);
            if on_error == "fail" {
                assert_eq!(
                    (with.get("ret"), with.get("errno")),
                    (-1, i64::from(libc::EDQUOT)),
                    "{what}: {}",
                    with.stderr
                );
                assert_eq!(with.get("size_after"), 0, "{what}");
            } else {
                assert_same_keys(&without, &with, &["ret", "errno", "size_after"], what);
                assert_allocated_alike(&without, &with, what);
            }
            std::fs::remove_file(bare_path(&path)).unwrap();
            let left = qgroup_referenced(&fs.mnt, &sub).saturating_sub(before);
            assert!(left <= ONE_WRITE_SLACK, "{what}: {left} bytes of the quota left used\n{}", with.stderr);
            // The quota is there for the program's next writes.
            let next = sub.join("next");
            sh(&format!("dd if=/dev/zero of={} bs=1M count=16 conv=fsync status=none", next.display()));
            std::fs::remove_file(next).unwrap();
            assert_eq!(inode_flags(&path) & FS_NOCOW_FL, 0, "{what}: NOCOW left set after the failed preallocation");
            std::fs::remove_file(&path).unwrap();
        },
    );
}

#[test]
fn a_file_growing_block_by_block_is_not_a_creation() {
    if !require(have("strace"), "strace (scripts/setup.sh installs it)") {
        return;
    }
    let s = Scratch::new("engine-growth");
    // One byte at the end of each new 4 KiB block, past the default 64 MiB threshold.
    let end = 80 * MIB;
    every_case(CALLS.map(|c| (c.to_string(), ())), |call, ()| {
        let path = s.path(&format!("{call}.db"));
        let trace = s.path(&format!("{call}.trace"));
        let run = extend(&path)
            .arg("--growth", BLOCK)
            .arg("--end", end)
            .arg("--call", call)
            .strace(&format!("-f -qq --seccomp-bpf -e trace=fallocate -o {}", trace.display()));
        let (without, with) = run.both(&path);
        assert_same_keys(&without, &with, &["calls", "failed", "size_after", "mapped_after"], call);
        assert_eq!(with.get("size_after"), end as i64, "{call}");
        let fallocates = std::fs::read_to_string(&trace).unwrap().lines().filter(|l| l.contains("fallocate(")).count();
        assert_eq!(fallocates, 0, "{call}: growth was preallocated");
        assert_eq!(log_lines(&with), 0, "{call}: {}", with.stderr);
    });
}

/// An overlay mount, unmounted when dropped (before the filesystem under it).
struct Overlay {
    merged: PathBuf,
}

impl Overlay {
    /// An overlay whose layers are directories under `base`.
    fn new(base: &Path) -> Overlay {
        let [lower, upper, work, merged] = ["lower", "upper", "work", "merged"].map(|d| base.join(d));
        for d in [&lower, &upper, &work, &merged] {
            std::fs::create_dir_all(d).unwrap();
        }
        sh(&format!(
            "mount -t overlay nosparse-test-overlay -o lowerdir={},upperdir={},workdir={} {}",
            lower.display(),
            upper.display(),
            work.display(),
            merged.display()
        ));
        Overlay { merged }
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.merged).status();
    }
}

#[test]
fn overlay_is_judged_by_its_upper_layer_and_can_be_skipped() {
    let s = Scratch::new("engine-overlay");
    let size = 128 * MIB;
    // (upper layer's filesystem, NOSPARSE_SKIP_FS, preallocated?)
    let cases = [("ext4", None, true), ("ext4", Some("overlay"), false), ("tmpfs", None, false)];
    every_case(
        cases.map(|c| (format!("overlay on {}, NOSPARSE_SKIP_FS={:?}", c.0, c.1), c)),
        |what, (kind, skip, allocates)| {
            let Some(fs) = mount(&s, kind, 512 * MIB) else { return };
            let overlay = Overlay::new(&fs.mnt);
            let path = overlay.merged.join("guest.vmem");
            let mut run = extend(&path).arg("--offset", size - 1);
            if let Some(skip) = skip {
                run = run.env("NOSPARSE_SKIP_FS", skip);
            }
            let (without, with) = run.both(&path);
            assert_same_keys(&without, &with, &["ret", "errno", "size_after"], what);
            assert!(!with.stderr.contains("ignoring"), "{what}: the setting was refused: {}", with.stderr);
            if allocates {
                assert!(allocated(&path) >= size, "{what}: not preallocated\n{}", with.stderr);
                assert_eq!(log_lines(&with), 1, "{what}: {}", with.stderr);
            } else {
                assert_eq!(allocated(&path), allocated(&bare_path(&path)), "{what}: preallocated\n{}", with.stderr);
                assert_eq!(log_lines(&with), 0, "{what}: {}", with.stderr);
            }
            drop(overlay);
        },
    );
}

#[test]
fn unlinked_and_o_tmpfile_files_are_matched_by_their_names() {
    let s = Scratch::new("engine-unlinked");
    let size = 128 * MIB;
    // An O_TMPFILE file is named `#<inode>`: these globs match that name, but not with
    // " (deleted)" after it.
    let tmpfile_name: String = (0..10).map(|d| format!("#*{d}")).collect::<Vec<_>>().join(":");
    let cases = [
        ("unlinked x.vmem, NOSPARSE_MATCH=*.vmem", "x.vmem", "--unlink", "*.vmem".to_string(), true),
        ("unlinked x.img, NOSPARSE_MATCH=*.vmem", "x.img", "--unlink", "*.vmem".into(), false),
        ("O_TMPFILE, NOSPARSE_MATCH=#*0:...:#*9", "tmpdir", "--tmpfile", tmpfile_name, true),
        ("O_TMPFILE, NOSPARSE_MATCH=*.vmem", "tmpdir", "--tmpfile", "*.vmem".into(), false),
    ];
    every_case(cases.map(|c| (c.0.to_string(), c)), |what, (_, name, how, glob, allocates)| {
        let path = s.path(name);
        if how == "--tmpfile" {
            std::fs::create_dir_all(&path).unwrap();
            std::fs::create_dir_all(bare_path(&path)).unwrap();
        }
        let run = extend(&path).flag(how).arg("--offset", size - 1).env("NOSPARSE_MATCH", &glob);
        let (without, with) = run.both(&path);
        assert_same_keys(&without, &with, &["ret", "errno", "size_after"], what);
        // The file has no name left to measure it by: fstat inside the program tells.
        if allocates {
            assert!(with.get("allocated_after") >= size as i64, "{what}: not preallocated\n{}", with.stderr);
        } else {
            assert_same_keys(&without, &with, &["allocated_after"], what);
        }
    });
}
