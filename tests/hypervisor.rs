//! A real hypervisor: QEMU (TCG, so no /dev/kvm is needed) boots a small Linux guest
//! whose RAM is a file (`-object memory-backend-file,share=on`) on a loop-mounted ext4,
//! once as it is and once started through the launcher (`nosparse --triggers ftruncate
//! --`), while a host writer competes for the same filesystem. The guest touches most
//! of its memory in a scattered order and powers off. Judged from outside: the guest
//! finished (its marker on the serial console), how QEMU made the file (strace), and
//! the RAM file is whole and in fewer fragments (filefrag) with the library.
//!
//! Needs root, qemu-system-x86_64, gcc, busybox-static, cpio, strace and a Debian cloud
//! kernel, all of which scripts/setup.sh installs (the kernel into KERNEL_DIR); under
//! CI=true a missing piece fails the test. QEMU and the kernel are 64-bit: the i686
//! suite has nothing to run here.

#![cfg(target_arch = "x86_64")]

mod common;

use common::outside::{self, Method};
use common::*;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where scripts/setup.sh puts the kernel it extracts from Debian's
/// linux-image-cloud-amd64 (`vmlinuz` links to it).
const KERNEL_DIR: &str = "/var/cache/nosparse-test";
const GUEST_RAM: u64 = 256 * MIB;
/// What the guest's program touches: most of its RAM, the rest is the kernel's and
/// the initramfs's.
const TOUCHED_MIB: u64 = 176;
const FS_SIZE: u64 = 1024 * MIB;
/// A guest that has not powered off by then is killed, and the test fails.
const GUEST_TIMEOUT: Duration = Duration::from_secs(240);
/// The host writer: pieces of this size appended to its own file, each followed by
/// syncfs(2); it stops at RIVAL_LIMIT.
const RIVAL_PIECE: usize = 256 << 10;
const RIVAL_LIMIT: u64 = 512 * MIB;
/// What the guest prints when its memory read back as written.
const DONE: &str = "NOSPARSE-GUEST-DONE";

/// The guest's program: touches `argv[1]` MiB, one word per 4 KiB page, in an order
/// given by a full-period linear congruential generator over the pages (so physical
/// pages are first written in a scattered order), then checks every word.
const TOUCHER_C: &str = r#"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#define K 0x9E3779B97F4A7C15ULL
int main(int argc, char **argv) {
    size_t pages = strtoul(argv[1], 0, 10) << 8, span = 1;
    while (span < pages) span <<= 1;
    uint64_t *m = mmap(0, pages << 12, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) { perror("mmap"); return 1; }
    uint64_t x = 0, touched = 0;
    for (size_t i = 0; i < span; i++) {
        x = (x * 0x5851F42D4C957F2DULL + 0x14057B7EF767814FULL) & (span - 1); /* a = 1 mod 4, c odd */
        if (x < pages) { m[x << 9] = x * K; touched++; }
    }
    for (size_t p = 0; p < pages; p++)
        if (m[p << 9] != p * K) { printf("NOSPARSE-GUEST-BAD page %zu\n", p); return 1; }
    printf("NOSPARSE-GUEST-DONE pages=%llu\n", (unsigned long long)touched);
    return 0;
}
"#;

fn init_script() -> String {
    format!(
        "#!/bin/busybox sh\n\
         /bin/busybox mount -t proc proc /proc\n\
         /toucher {TOUCHED_MIB}\n\
         /bin/busybox poweroff -f\n"
    )
}

/// Whether everything the test needs is here; a loud skip (a failure under CI) if not.
fn ready() -> bool {
    let kernel = Path::new(KERNEL_DIR).join("vmlinuz");
    require(is_root(), "loop-mounted filesystems need root")
        && require(have("qemu-system-x86_64"), "qemu-system-x86_64 is missing (scripts/setup.sh installs it)")
        && require(kernel.exists(), &format!("{} is missing (scripts/setup.sh extracts it)", kernel.display()))
        && require(have("gcc") && have("cpio") && have("strace"), "gcc, cpio or strace is missing")
        && require(Path::new("/bin/busybox").exists(), "busybox is missing (scripts/setup.sh installs busybox-static)")
}

/// The initramfs: /init, a static busybox and the guest's program, as a newc cpio.
fn initramfs(s: &Scratch) -> PathBuf {
    let root = s.path("initramfs");
    for dir in ["bin", "proc", "dev"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("copy busybox");
    let headers = sh(&format!("readelf -l {}", root.join("bin/busybox").display()));
    assert!(!headers.contains("INTERP"), "/bin/busybox is not static: install busybox-static");
    std::fs::write(s.path("toucher.c"), TOUCHER_C).unwrap();
    sh(&format!("gcc -static -O2 -o {} {}", root.join("toucher").display(), s.path("toucher.c").display()));
    std::fs::write(root.join("init"), init_script()).unwrap();
    sh(&format!("chmod 755 {}", root.join("init").display()));
    let image = s.path("initramfs.cpio");
    sh(&format!("cd {} && find . | cpio -o -H newc --quiet > {}", root.display(), image.display()));
    image
}

/// An install prefix holding the launcher and the library where the launcher will
/// look for it: PREFIX/bin/nosparse and PREFIX/$LIB/libnosparse.so, with $LIB as the
/// 64-bit loader expands it.
fn launcher_prefix(s: &Scratch) -> PathBuf {
    let prefix = s.path("prefix");
    let diagnostics = sh("/lib64/ld-linux-x86-64.so.2 --list-diagnostics");
    let lib_dir = diagnostics
        .lines()
        .find_map(|l| l.strip_prefix("dl_dst_lib="))
        .map(|v| v.trim_matches('"').to_string())
        .expect("the loader names $LIB (dl_dst_lib)");
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    std::fs::create_dir_all(prefix.join(&lib_dir)).unwrap();
    std::fs::copy(artifacts::launcher(), prefix.join("bin/nosparse")).expect("copy the launcher");
    std::fs::copy(&artifacts().lib, prefix.join(&lib_dir).join("libnosparse.so")).expect("copy the library");
    prefix
}

/// The host writer: appends to its own file on the guest's filesystem and syncs the
/// filesystem after every piece — what the kernel's flusher does over a guest's weeks
/// of life (writing back the guest's dirty pages between other writers' data), done
/// in seconds.
fn host_writer(fs: &LoopFs, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let path = fs.path("host-writer");
    std::thread::spawn(move || {
        let mut f = std::fs::File::create(&path).expect("host writer's file");
        let piece = vec![0x5Au8; RIVAL_PIECE];
        let mut written = 0u64;
        while !stop.load(Ordering::Relaxed) && written < RIVAL_LIMIT {
            if f.write_all(&piece).is_err() {
                break;
            }
            written += piece.len() as u64;
            use std::os::unix::io::AsRawFd;
            // SAFETY: a valid fd.
            unsafe { libc::syncfs(f.as_raw_fd()) };
        }
        written
    })
}

/// One guest's life and what it left.
struct Run {
    console: String,
    status: Option<i32>,
    guest_secs: f64,
    trace: String,
    ram: Measured,
}

/// Boots the guest with its RAM in a file on a fresh ext4 while the host writer runs;
/// through the launcher at `prefix` when given.
fn boot(s: &Scratch, initramfs: &Path, prefix: Option<&Path>) -> Option<Run> {
    let fs = mount(s, "ext4", FS_SIZE)?;
    let ram = fs.path("guest.ram");
    let trace = s.path("qemu.strace");
    let mut cmd = Command::new("strace");
    // QEMU's own calls that make the file, and the library's (seccomp-bpf: the other
    // calls run at full speed).
    cmd.args(["-f", "--seccomp-bpf", "-qq", "-e", "signal=none", "-e", "trace=ftruncate,fallocate", "-o"]).arg(&trace);
    cmd.args(["timeout", "--kill-after=10"]).arg(GUEST_TIMEOUT.as_secs().to_string());
    if let Some(p) = prefix {
        cmd.arg(p.join("bin/nosparse")).args(["--triggers", "ftruncate", "--"]);
    }
    cmd.args(["qemu-system-x86_64", "-accel", "tcg", "-smp", "1", "-m"]).arg(format!("{}M", GUEST_RAM / MIB));
    cmd.arg("-object").arg(format!(
        "memory-backend-file,id=ram,size={}M,mem-path={},share=on",
        GUEST_RAM / MIB,
        ram.display()
    ));
    cmd.args(["-machine", "memory-backend=ram", "-nographic", "-no-reboot", "-kernel"]);
    cmd.arg(Path::new(KERNEL_DIR).join("vmlinuz")).arg("-initrd").arg(initramfs);
    cmd.args(["-append", "console=ttyS0 panic=-1 quiet"]);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("NOSPARSE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env_remove("LD_PRELOAD").stdin(Stdio::null());

    let stop = Arc::new(AtomicBool::new(false));
    let writer = host_writer(&fs, stop.clone());
    let started = Instant::now();
    let out = cmd.output().expect("run qemu-system-x86_64");
    let guest_secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("host writer");
    let run = Run {
        console: String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        status: out.status.code(),
        guest_secs,
        trace: std::fs::read_to_string(&trace).unwrap_or_default(),
        ram: measure(&ram),
    };
    Some(run)
}

#[test]
fn qemu_with_its_ram_in_a_file_runs_through_the_launcher_and_the_file_is_whole() {
    let test_started = Instant::now();
    if !ready() {
        return;
    }
    let s = Scratch::new("hypervisor");
    let initramfs = initramfs(&s);
    let prefix = launcher_prefix(&s);
    let Some(without) = boot(&s, &initramfs, None) else { return };
    let Some(with) = boot(&s, &initramfs, Some(&prefix)) else { return };

    let expected = format!("{DONE} pages={}", TOUCHED_MIB << 8);
    for (what, run) in [("without the library", &without), ("through the launcher", &with)] {
        assert!(
            run.console.contains(&expected),
            "{what}: the guest did not finish ({:?}):\n{}",
            run.status,
            run.console
        );
        assert_eq!(run.status, Some(0), "{what}: QEMU's exit status:\n{}", run.console);
        assert_eq!(run.ram.size, GUEST_RAM, "{what}: the RAM file's size");
        // QEMU makes its RAM file with ftruncate(fd, size), never fallocate (unless
        // prealloc=on): sparse, with the same call as truncate(1).
        let ftruncate = format!("ftruncate(FD, {GUEST_RAM}) = 0");
        let made = |l: &str| {
            let l: String = l.split_whitespace().collect();
            l.contains("ftruncate(") && l.ends_with(&format!(",{GUEST_RAM})=0"))
        };
        assert!(run.trace.lines().any(made), "{what}: no {ftruncate} in the trace:\n{}", run.trace);
    }
    assert_eq!(outside::method(&without.trace), Method::None, "QEMU alone preallocated:\n{}", without.trace);
    assert_eq!(outside::method(&with.trace), Method::Fallocate, "the library did not fallocate:\n{}", with.trace);
    assert_whole(&with.ram, "the RAM file made through the launcher");
    let (bare, ours) = (without.ram.layout.fragments, with.ram.layout.fragments);
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
