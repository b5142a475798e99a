//! A real hypervisor: QEMU (TCG) boots a small Linux guest whose RAM is a file
//! (`-object memory-backend-file,share=on`) on a loop-mounted ext4, once as it is and
//! once started through the launcher (`nosparse --triggers ftruncate --`), while a host
//! writer competes for the same filesystem (see common/qemu.rs). The guest touches most
//! of its memory in a scattered order and powers off. Judged from outside: the guest
//! finished (its marker on the serial console), how QEMU made the file and what the
//! library did (strace), and the RAM file is whole and in fewer fragments (filefrag)
//! with the library.
//!
//! Needs root, qemu-system-x86_64, gcc, busybox-static, cpio, strace and the guest
//! kernel, all of which scripts/setup.sh installs; under CI=true a missing piece fails
//! the test. QEMU and the kernel are 64-bit: the i686 suite has nothing to run here.

#![cfg(target_arch = "x86_64")]

mod common;

use common::outside::{self, Method};
use common::qemu::{self, Machine, GUEST_RAM};
use common::*;
use std::time::Instant;

const FS_SIZE: u64 = 1024 * MIB;

#[test]
fn qemu_with_its_ram_in_a_file_runs_through_the_launcher_and_the_file_is_whole() {
    let test_started = Instant::now();
    let missing = qemu::missing();
    if !require(is_root(), "loop-mounted filesystems need root") || !require(missing.is_none(), &format!("{missing:?}"))
    {
        return;
    }
    let s = Scratch::new("hypervisor");
    let machine = Machine::prepare(&s.dir, &artifacts().lib, &artifacts::launcher()).unwrap_or_else(|e| panic!("{e}"));
    let mut runs = Vec::new();
    for through_launcher in [false, true] {
        let Some(fs) = mount(&s, "ext4", FS_SIZE) else { return };
        let boot = machine.boot(&fs.mnt, through_launcher).unwrap_or_else(|e| panic!("{e}"));
        let ram = measure(&boot.ram);
        runs.push((boot, ram));
    }
    let (with, with_ram) = runs.pop().unwrap();
    let (without, without_ram) = runs.pop().unwrap();

    for (what, run, ram) in
        [("without the library", &without, &without_ram), ("through the launcher", &with, &with_ram)]
    {
        assert!(run.finished(), "{what}: the guest did not finish ({:?}):\n{}", run.status, run.console);
        assert_eq!(ram.size, GUEST_RAM, "{what}: the RAM file's size");
        // QEMU makes its RAM file with ftruncate(fd, size), never fallocate (unless
        // prealloc=on): sparse, with the same call as truncate(1).
        let made = |l: &str| {
            let l: String = l.split_whitespace().collect();
            l.contains("ftruncate(") && l.ends_with(&format!(",{GUEST_RAM})=0"))
        };
        assert!(run.trace.lines().any(made), "{what}: no ftruncate(FD, {GUEST_RAM}) in the trace:\n{}", run.trace);
    }
    assert_eq!(outside::method(&without.trace), Method::None, "QEMU alone preallocated:\n{}", without.trace);
    assert_eq!(outside::method(&with.trace), Method::Fallocate, "the library did not fallocate:\n{}", with.trace);
    assert_whole(&with_ram, "the RAM file made through the launcher");
    let (bare, ours) = (without_ram.layout.fragments, with_ram.layout.fragments);
    eprintln!(
        "SUMMARY hypervisor: QEMU {} MiB guest RAM file on ext4 with a host writer: {bare} fragments without, \
         {ours} through the launcher; guest run {:.1} s without, {:.1} s with; test {:.0} s",
        GUEST_RAM / MIB,
        without.guest_secs,
        with.guest_secs,
        test_started.elapsed().as_secs_f64()
    );
    assert!(ours < bare, "the RAM file is in {ours} fragments with the library, {bare} without");
    assert!(ours <= ext4_min_extents(GUEST_RAM) + 2, "{ours} fragments with the library");
}
