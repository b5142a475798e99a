//! The contract, as a judge of two runs of one scenario (without and with the library):
//!
//! - the library calls the real function first and allocates only after it succeeded,
//!   with fallocate(KEEP_SIZE) over `[roundup(old end), new end)`, or zeros only into
//!   holes, never storing a byte (write-only, O_APPEND and O_DIRECT fds: no zero fill);
//!   so a failing real call leaves everything as without the library, a kill leaves a
//!   size a run without it could have left, and no one's byte is ever lost;
//! - only under NOSPARSE_ON_ERROR=fail does it allocate before the real call (never on
//!   a file with set-user-ID bits or capabilities, which fallocate removes), so the
//!   call may fail with the errno of the failed allocation (here: the injected fault's,
//!   ENOSPC on a full disk, EOPNOTSUPP where neither fallocate nor the zero fill can
//!   be used); blocks past the end may then stay (compared loosely);
//! - it acts only on ext2/3/4, xfs, btrfs, and tmpfs when not in NOSPARSE_SKIP_FS;
//!   procfs, hugetlbfs, vfat are passed through silently, and so is METHOD=zero where
//!   the zero fill cannot run;
//! - predictable failures (one-byte O_DIRECT write, no O_LARGEFILE past 2 GiB,
//!   RLIMIT_FSIZE) are judged before acting: nothing allocated, nothing logged;
//! - one log line after the real call where it acts; none for calls left alone.
//!
//! Everything else the program or anyone can observe must be the same: return value,
//! errno, offset, size, bytes, mode bits, xattrs, the fds a forked child holds (but the
//! settings file's, read once), lease, signals, exit status, and the free space once the
//! file is deleted.

use crate::gen::{Call, Fs, Full, Scenario, BLOCK, KIB, MAX_NON_LFS};
use crate::run::{File, Ran};
use nosparse_core::config::CONFIG_FILE;
use std::collections::BTreeSet;

/// What filesystems may count differently between two runs of the same program: a
/// block of an extent tree.
const SLACK: u64 = 64 * KIB;
/// How much more xfs may map past data on one run than on another.
const XFS_SPECULATIVE: u64 = 4 << 20;
/// Free space a deleted file may still hold for a moment (btrfs commits it later).
pub const LEAK_SLACK: u64 = 256 * KIB;

/// What the contract allows the run with the library to differ in.
#[derive(Debug)]
pub struct Expect {
    /// The library acts on this call (allocates, or with METHOD=off, logs).
    pub eligible: bool,
    /// The new range must end up with no hole.
    pub must_fill: bool,
    /// Most bytes it may allocate beyond the run without it, and how far runs that
    /// must allocate alike may differ.
    pub most: u64,
    pub slack: u64,
    /// Bytes of the program's own reservation past the end the run with the library
    /// may keep where the run without it lost them (see [`ext4_direct_kept`]).
    pub kept: u64,
    /// Fewest and most `nosparse:` lines.
    pub lines: (usize, usize),
    /// Errnos the call may fail with where it succeeded without the library.
    pub may_fail_with: Vec<i32>,
}

/// The errno of a failed run's call, when the fault is the program's own call.
fn own_call_fault(s: &Scenario) -> bool {
    s.fault.is_some_and(|f| match f.syscall {
        "pwrite64" => s.call == Call::Pwrite64,
        "write" | "lseek" => s.call == Call::Write,
        "ftruncate" => s.call == Call::Ftruncate,
        _ => false,
    })
}

fn fs_allowed(s: &Scenario) -> bool {
    let Some(name) = s.fs.skip_name() else { return false };
    let skip = s.skip_fs.as_deref().unwrap_or("tmpfs:ramfs:zfs");
    !skip.split(':').any(|k| k == name)
}

/// ext4 drops every block past a file's end when an O_DIRECT write that would extend
/// the file fails (ext4_dio_write_iter, ext4_truncate_failed_write): with it the part
/// of the program's KEEP_SIZE reservation past the end at that moment. The mover's
/// blocks move that end; they land while the library makes its syscalls, so before the
/// call, and only after it without the library: the run with it may keep the
/// reservation below the mover's first block, which the run without it lost.
fn ext4_direct_kept(s: &Scenario, without: &Ran) -> u64 {
    let kernel_refused = without.num("ret") == Some(-1) && without.num("errno") == Some(libc::EINVAL.into());
    if s.fs != Fs::Ext4 || !s.direct || s.call == Call::Ftruncate || s.mover.1 == 0 || !kernel_refused {
        return 0;
    }
    let reserved_end = (s.old + s.keep).div_ceil(BLOCK) * BLOCK;
    s.mover.0.min(reserved_end).saturating_sub(s.size_before().div_ceil(BLOCK) * BLOCK)
}

/// What the contract says of scenario `s`, given what the run without the library did.
pub fn expect(s: &Scenario, without: &Ran) -> Expect {
    let opened = without.num("open_errno") == Some(0);
    let real_failed = without.num("ret") == Some(-1);
    let triggers = s.triggers.as_deref().unwrap_or("pwrite");
    // A one-byte O_DIRECT write fails on ext4 and xfs; btrfs and tmpfs fall back to a
    // buffered write, which the library may take as a creation or leave alone.
    let direct_byte = s.direct && s.call != Call::Ftruncate;
    let predictable_failure = (direct_byte && real_failed && !own_call_fault(s))
        || (s.no_largefile && s.offset >= MAX_NON_LFS)
        || s.rlimit.is_some_and(|l| s.new_size() > l);
    let matched = s.match_glob != Some("*.vmem");
    let method = s.method.unwrap_or("auto");
    // The zero fill runs on local block filesystems, through a descriptor open for
    // reading and writing; METHOD=zero leaves every other call alone.
    let cannot_zero = method == "zero" && (!s.fs.zero_fill() || s.wronly);
    // The program seeks before its write(2); a failing lseek means no write is made,
    // so the library is never called.
    let called = !(s.call == Call::Write && s.fault.is_some_and(|f| f.syscall == "lseek"));
    let judged = opened
        && called
        && fs_allowed(s)
        && triggers.split(',').any(|t| t == s.call.trigger())
        && matched
        && !predictable_failure
        && !(s.append && s.call != Call::Ftruncate)
        && s.new_size() - s.size_before() >= s.min_size;
    let eligible = judged && !cannot_zero;
    let library_fault = s.fault.is_some() && !own_call_fault(s);
    let fallocate = s.fs.has_fallocate() && matches!(method, "auto" | "fallocate");
    let zero = (method == "zero" || (method == "auto" && !s.fs.has_fallocate()))
        && s.fs.zero_fill()
        && !s.wronly
        && !s.direct
        && !s.append;
    // A failing real call is left alone, except where the range is reserved before it,
    // and left allocated, logged, when it then fails: under ON_ERROR=fail, and on an
    // empty btrfs file, for NOCOW (not for a set-user-ID or capable file).
    let privileged = s.caps || s.mode.is_some_and(|m| m & 0o6000 != 0);
    let btrfs_reserves = s.fs == Fs::Btrfs && s.size_before() == 0 && !privileged;
    let reserves = s.on_error_fail || btrfs_reserves;
    let acts = eligible && method != "off" && s.full != Full::Short && (!real_failed || reserves);
    let range = s.new_range();
    // xfs preallocates past the end of a file being written, with or without the
    // library, by an amount that depends on writeback timing.
    let slack = if s.fs == Fs::Xfs { XFS_SPECULATIVE } else { SLACK };
    let kept = ext4_direct_kept(s, without);
    let most = kept + if acts { range + slack + range / 512 } else { slack };
    let clean = eligible && !direct_byte && s.fault.is_none() && s.full == Full::No && !real_failed;
    let must_fill = clean && (fallocate || zero) && method != "off";
    let lines = match (eligible, clean && (fallocate || zero || method == "off")) {
        (true, true) => (1, 1),
        (true, false) => (0, 1),
        // Zeros asked for where they cannot be had: a warning, before the real call;
        // an O_DIRECT write is screened out before that is asked, silently.
        (false, _) if judged && cannot_zero && !library_fault && !direct_byte => (1, 1),
        (false, _) if library_fault && opened => (0, 1),
        (false, _) => (0, 0),
    };
    let mut may_fail_with = Vec::new();
    if eligible && s.on_error_fail && method != "off" {
        if let Some(f) = s.fault.filter(|_| library_fault) {
            may_fail_with.push(f.errno);
        }
        if s.full != Full::No {
            may_fail_with.push(libc::ENOSPC);
        }
        // No fallocate, and no zero fill to fall back on (METHOD=fallocate, or an fd
        // the zero fill does not use): the allocation fails as fallocate did.
        if !s.fs.has_fallocate() && !zero {
            may_fail_with.push(libc::EOPNOTSUPP);
        }
    }
    Expect { eligible, must_fill, most, slack, kept, lines, may_fail_with }
}

const CAPS: &str = "security.capability";
const SETID: u32 = 0o6000;

/// Keys that depend on timing, not on the library.
const TIMING: [&str; 5] = ["calling", "wt_during", "wp_during", "mover_during", "forks_during"];

/// Everything wrong with the pair of runs; empty when the contract holds.
pub fn judge(s: &Scenario, without: (&Ran, Option<&File>), with: (&Ran, Option<&File>), leaked: u64) -> Vec<String> {
    let mut bad = Vec::new();
    let e = expect(s, without.0);
    let killed = s.kill_ms.is_some();
    for (name, (ran, file)) in [("without", without), ("with", with)] {
        if ran.timed_out {
            bad.push(format!("{name}: timed out\n{}", ran.stderr));
        }
        if !killed && ran.status != Some(0) {
            bad.push(format!("{name}: exit {:?}, signal {:?}\n{}", ran.status, ran.signal, ran.stderr));
        }
        if let Some(f) = file {
            if let Some(m) = &f.model_error {
                bad.push(format!("{name}: {m}"));
            }
            if !s.possible_sizes().contains(&f.size) {
                bad.push(format!("{name}: size {} is none of {:?}", f.size, s.possible_sizes()));
            }
        }
    }
    if leaked > LEAK_SLACK {
        bad.push(format!("{leaked} bytes of the filesystem not free after deleting the files"));
    }
    if killed {
        return bad;
    }
    let (w, l) = (without.0, with.0);
    let failed_as_allowed = l.num("ret") == Some(-1)
        && l.num("errno").is_some_and(|x| e.may_fail_with.contains(&(x as i32)))
        && (w.num("ret") != Some(-1) || w.num("errno") != l.num("errno"));
    let call_keys = ["ret", "errno", "offset_after", "size_after", "mode_after"];
    for key in w.kv.keys().chain(l.kv.keys()).collect::<BTreeSet<_>>() {
        if TIMING.contains(&key.as_str()) || (failed_as_allowed && call_keys.contains(&key.as_str())) {
            continue;
        }
        if w.kv.get(key) != l.kv.get(key) {
            bad.push(format!("{key}: {:?} without the library, {:?} with it", w.kv.get(key), l.kv.get(key)));
        }
    }
    // A child forked while the library reads the settings file (once, at the process's
    // first candidate call) holds that descriptor until it execs or exits, where the
    // host has the file.
    let settings = |fd: &&String| fd.split_once(':').is_some_and(|(_, target)| target == CONFIG_FILE);
    let with_fds: BTreeSet<String> = l.child_fds.iter().filter(|fd| !settings(fd)).cloned().collect();
    if w.child_fds != with_fds {
        bad.push(format!("a forked child held {:?} without the library, {:?} with it", w.child_fds, l.child_fds));
    }
    let lines = l.log_lines();
    if lines.len() < e.lines.0 || lines.len() > e.lines.1 {
        bad.push(format!("{} log lines, expected {:?}: {lines:?}", lines.len(), e.lines));
    }
    match (without.1, with.1) {
        (Some(fw), Some(fl)) => {
            if !failed_as_allowed && (fw.size, fw.hash) != (fl.size, fl.hash) {
                bad.push(format!(
                    "size/bytes differ: {} bytes without, {} with (or the same size, other bytes)",
                    fw.size, fl.size
                ));
            }
            // A call that did not happen did not clear the file's set-user-ID and
            // set-group-ID bits or capabilities either.
            let setid = if failed_as_allowed { fl.mode & SETID } else { 0 };
            if fw.mode | setid != fl.mode {
                bad.push(format!("mode {:o} without the library, {:o} with it", fw.mode, fl.mode));
            }
            let mut fw_xattrs = fw.xattrs.clone();
            if failed_as_allowed && !fw_xattrs.contains_key(CAPS) {
                fw_xattrs.extend(fl.xattrs.get_key_value(CAPS).map(|(k, v)| (k.clone(), v.clone())));
            }
            if fw_xattrs != fl.xattrs {
                bad.push(format!("xattrs {:?} without the library, {:?} with it", fw.xattrs, fl.xattrs));
            }
            let more = fl.allocated as i64 - fw.allocated as i64;
            if more < -(e.slack as i64) {
                bad.push(format!("{} bytes fewer allocated with the library", -more));
            }
            if more > e.most as i64 {
                bad.push(format!("{more} bytes more allocated with the library, at most {} allowed", e.most));
            }
            // Without FIEMAP (tmpfs): what the program allocated itself is in both runs.
            let own = s.keep + (s.wt.1 + s.wp.1 + s.mover.1) * BLOCK;
            let (start, end) = s.new_range_bounds();
            let least = (end - start).saturating_sub(own + SLACK);
            match fl.new_range_holes {
                Some(holes) if e.must_fill && holes > SLACK => {
                    bad.push(format!("{holes} bytes of the new range left holes with the library"))
                }
                None if e.must_fill && more < least as i64 => {
                    bad.push(format!("only {more} bytes more allocated with the library, at least {least} expected"))
                }
                _ => {}
            }
            if more > (e.slack + e.kept) as i64 && lines.is_empty() {
                bad.push(format!("{more} bytes more allocated with the library, and no log line says so"));
            }
        }
        (None, None) => {}
        (a, b) => bad.push(format!("the file exists without the library: {}, with it: {}", a.is_some(), b.is_some())),
    }
    if s.fs == Fs::Procfs && l.num("ret") == Some(1) && l.num("mem_byte") != Some(0) {
        bad.push("the byte written through /proc/self/mem is not in memory".into());
    }
    if !bad.is_empty() {
        let act = if e.eligible { "act" } else { "leave the call alone" };
        bad.push(format!("(the library should {act}: {e:?})"));
    }
    bad
}

/// Actors that were there but did nothing while the call ran with the library: the
/// scenario proved nothing about them.
pub fn idle_actors(s: &Scenario, with: &Ran) -> Vec<&'static str> {
    if s.kill_ms.is_some() {
        return Vec::new();
    }
    [
        ("writer thread", s.wt.1 > 0, "wt_during"),
        ("writer process", s.wp.1 > 0, "wp_during"),
        ("mover", s.mover.1 > 0, "mover_during"),
        ("forker", s.forker, "forks_during"),
    ]
    .into_iter()
    .filter(|(_, present, key)| *present && with.num(key).unwrap_or(0) == 0)
    .map(|(name, _, _)| name)
    .collect()
}
