//! The reason nosparse matters beyond speed: a guest whose memory file was created
//! sparse, on a disk that another writer then fills. Without the library the guest's
//! next store into memory that has no block yet has nowhere to go: through a mapping
//! (vmx's way) the process dies of SIGBUS, through pwrite the write fails with ENOSPC.
//! With the library the memory was reserved at the creation call, so the guest lives
//! on and its file ends whole, with the right bytes. Judged from outside: exit status
//! or signal, stat, SEEK_HOLE, and the bytes against a run on a disk with room.
//! Needs root (loop-mounted ext4); runs for the test binary's own target, so the test
//! script covers 64- and 32-bit fake_vmx.

mod common;

use common::*;

/// The filesystem the guest runs on, and the guest's memory file in it.
const FS_SIZE: u64 = 256 * MIB;
const GUEST: u64 = 96 * MIB;
/// Random 1 MiB writes over the 96 regions: nearly every region is touched.
const WRITES: u64 = 320;
/// fake_vmx's exit status when a guest write failed.
const EXIT_GUEST_FAILED: i32 = 3;

/// The guest: created on an empty filesystem, which another writer then fills, then
/// its life.
fn guest(path: &std::path::Path, write_back: &str) -> Vmx {
    vmx(path).arg("--size", GUEST).arg("--writes", WRITES).arg("--write-back", write_back).arg("--seed", 7)
}

#[test]
fn a_guest_dies_when_the_disk_fills_without_the_library_and_lives_on_with_it() {
    let s = Scratch::new("fulldisk");
    for write_back in ["mmap", "pwrite"] {
        // The bytes the guest's life leaves where there is room.
        let reference = s.path(&format!("reference-{write_back}.vmem"));
        guest(&reference, write_back).without_library().run();

        let Some(fs) = mount(&s, "ext4", FS_SIZE) else { return };
        let path = fs.path("guest.vmem");
        let filler = fs.path("filler").display().to_string();
        let without = guest(&path, write_back).arg("--fill-disk", &filler).without_library().run_raw();
        assert!(
            without.get("filled") > (FS_SIZE / 2) as i64,
            "the other writer did not fill the disk: {:?}",
            without.kv
        );
        let died = match write_back {
            "mmap" => without.signal == Some(libc::SIGBUS),
            _ => without.status == EXIT_GUEST_FAILED && without.get("guest_errno") == i64::from(libc::ENOSPC),
        };
        assert!(
            died,
            "{write_back}: without the library the guest should die on the full disk: status {} signal {:?}\n{}\n{}",
            without.status, without.signal, without.stdout, without.stderr
        );
        drop(fs);

        let Some(fs) = mount(&s, "ext4", FS_SIZE) else { return };
        let path = fs.path("guest.vmem");
        let filler = fs.path("filler").display().to_string();
        let with = guest(&path, write_back).arg("--fill-disk", &filler).run_raw();
        assert_eq!(
            (with.status, with.signal),
            (0, None),
            "{write_back}: with the library the guest should live on\n{}\n{}",
            with.stdout,
            with.stderr
        );
        assert!(with.get("filled") > (FS_SIZE / 4) as i64, "the other writer did not fill the disk: {:?}", with.kv);
        assert_eq!(with.get("writes"), WRITES as i64);
        assert_whole(&measure(&path), write_back);
        assert_same_content(&path, &reference);
        eprintln!(
            "SUMMARY fulldisk {write_back} ({}): without the library {} after {} of {WRITES} writes; with it exit 0, \
             {WRITES} writes, file whole and its bytes right, {} MiB filled by the other writer",
            artifacts::TARGET,
            without.signal.map_or(format!("exit {}", without.status), |s| format!("signal {s}")),
            without.kv.get("writes").map_or("?", String::as_str),
            with.get("filled") >> 20
        );
    }
}
