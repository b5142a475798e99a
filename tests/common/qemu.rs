//! A real hypervisor for the tests and the benchmark: QEMU (TCG, so no /dev/kvm is
//! needed) boots a small Linux guest — Debian's cloud kernel, which scripts/setup.sh
//! unpacks into KERNEL, and an initramfs of a static busybox and a program built here —
//! whose RAM is a file (`-object memory-backend-file,share=on`), with or without the
//! launcher, while a host writer competes for the same filesystem. The guest touches
//! most of its memory in a scattered order, checks it, prints DONE and powers off.

use super::loopfs::sh;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The guest's kernel, unpacked by scripts/setup.sh from linux-image-cloud-amd64.
pub const KERNEL: &str = "/var/cache/nosparse-test/vmlinuz";
const MIB: u64 = 1 << 20;
pub const GUEST_RAM: u64 = 256 * MIB;
/// What the guest's program touches: most of its RAM, the rest is the kernel's and
/// the initramfs's.
pub const TOUCHED_MIB: u64 = 176;
/// A guest that has not powered off by then is killed.
pub const GUEST_TIMEOUT: Duration = Duration::from_secs(240);
/// The host writer: pieces of this size appended to its own file, each followed by
/// syncfs(2); it stops at RIVAL_LIMIT.
const RIVAL_PIECE: usize = 256 << 10;
const RIVAL_LIMIT: u64 = 512 * MIB;
/// What the guest prints when its memory read back as written.
pub const DONE: &str = "NOSPARSE-GUEST-DONE";

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

/// What the guest prints when it finished.
pub fn done_line() -> String {
    format!("{DONE} pages={}", TOUCHED_MIB << 8)
}

/// What is missing to run a guest here, if anything.
pub fn missing() -> Option<String> {
    let have = |tool: &str| sh(&format!("command -v {tool}")).is_ok();
    let tools = ["qemu-system-x86_64", "gcc", "cpio", "strace", "readelf"];
    if let Some(t) = tools.iter().find(|t| !have(t)) {
        return Some(format!("{t} is missing (scripts/setup.sh installs it)"));
    }
    if !Path::new(KERNEL).exists() {
        return Some(format!("{KERNEL} is missing (scripts/setup.sh unpacks it)"));
    }
    if !Path::new("/bin/busybox").exists() {
        return Some("busybox is missing (scripts/setup.sh installs busybox-static)".into());
    }
    None
}

/// A guest ready to boot: its initramfs, and an install prefix holding the launcher
/// and the library where the launcher looks for it (PREFIX/bin/nosparse,
/// PREFIX/$LIB/libnosparse.so, with $LIB as the 64-bit loader expands it).
pub struct Machine {
    initramfs: PathBuf,
    prefix: PathBuf,
}

/// One boot and what it left.
pub struct Boot {
    /// QEMU's stdout (the serial console) and stderr.
    pub console: String,
    pub status: Option<i32>,
    pub guest_secs: f64,
    /// strace's log of ftruncate and fallocate, QEMU's and the library's.
    pub trace: String,
    pub ram: PathBuf,
}

impl Boot {
    pub fn finished(&self) -> bool {
        self.status == Some(0) && self.console.contains(&done_line())
    }
}

impl Machine {
    pub fn prepare(dir: &Path, lib: &Path, launcher: &Path) -> Result<Machine, String> {
        let root = dir.join("initramfs");
        for sub in ["bin", "proc", "dev"] {
            std::fs::create_dir_all(root.join(sub)).map_err(|e| format!("initramfs: {e}"))?;
        }
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).map_err(|e| format!("copy busybox: {e}"))?;
        if sh(&format!("readelf -l {}", root.join("bin/busybox").display()))?.contains("INTERP") {
            return Err("/bin/busybox is not static: install busybox-static".into());
        }
        let source = dir.join("toucher.c");
        std::fs::write(&source, TOUCHER_C).map_err(|e| format!("{}: {e}", source.display()))?;
        sh(&format!("gcc -static -O2 -o {} {}", root.join("toucher").display(), source.display()))?;
        let init = format!(
            "#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\n/toucher {TOUCHED_MIB}\n/bin/busybox poweroff -f\n"
        );
        std::fs::write(root.join("init"), init).map_err(|e| format!("init: {e}"))?;
        sh(&format!("chmod 755 {}", root.join("init").display()))?;
        let initramfs = dir.join("initramfs.cpio");
        sh(&format!("cd {} && find . | cpio -o -H newc --quiet > {}", root.display(), initramfs.display()))?;

        let prefix = dir.join("prefix");
        let diagnostics = sh("/lib64/ld-linux-x86-64.so.2 --list-diagnostics")?;
        let lib_dir = diagnostics
            .lines()
            .find_map(|l| l.strip_prefix("dl_dst_lib="))
            .map(|v| v.trim_matches('"').to_string())
            .ok_or("the loader does not name $LIB (dl_dst_lib)")?;
        let copy = |from: &Path, to: PathBuf| -> Result<(), String> {
            std::fs::create_dir_all(to.parent().unwrap_or(&prefix)).map_err(|e| format!("{e}"))?;
            std::fs::copy(from, &to).map(drop).map_err(|e| format!("copy {}: {e}", from.display()))
        };
        copy(launcher, prefix.join("bin/nosparse"))?;
        copy(lib, prefix.join(&lib_dir).join("libnosparse.so"))?;
        Ok(Machine { initramfs, prefix })
    }

    /// Boots the guest with its RAM in `dir/guest.ram` while the host writer writes in
    /// `dir`; through the launcher (`nosparse --triggers ftruncate --`) when asked.
    pub fn boot(&self, dir: &Path, through_launcher: bool) -> Result<Boot, String> {
        let ram = dir.join("guest.ram");
        let trace = dir.join("qemu.strace");
        let mut cmd = Command::new("strace");
        // QEMU's own calls that make the file, and the library's (seccomp-bpf: the other
        // calls run at full speed).
        cmd.args(["-f", "--seccomp-bpf", "-qq", "-e", "signal=none", "-e", "trace=ftruncate,fallocate", "-o"]);
        cmd.arg(&trace).args(["timeout", "--kill-after=10"]).arg(GUEST_TIMEOUT.as_secs().to_string());
        if through_launcher {
            cmd.arg(self.prefix.join("bin/nosparse")).args(["--triggers", "ftruncate", "--"]);
        }
        let ram_mib = GUEST_RAM / MIB;
        cmd.args(["qemu-system-x86_64", "-accel", "tcg", "-smp", "1", "-m"]).arg(format!("{ram_mib}M"));
        cmd.arg("-object");
        cmd.arg(format!("memory-backend-file,id=ram,size={ram_mib}M,mem-path={},share=on", ram.display()));
        cmd.args(["-machine", "memory-backend=ram", "-nographic", "-no-reboot", "-kernel", KERNEL, "-initrd"]);
        cmd.arg(&self.initramfs).args(["-append", "console=ttyS0 panic=-1 quiet"]);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("NOSPARSE_") {
                cmd.env_remove(k);
            }
        }
        cmd.env_remove("LD_PRELOAD").stdin(Stdio::null());

        let stop = Arc::new(AtomicBool::new(false));
        let writer = host_writer(dir.join("host-writer"), stop.clone());
        let started = Instant::now();
        let out = cmd.output().map_err(|e| format!("run qemu-system-x86_64 under strace: {e}"));
        let guest_secs = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let _ = writer.join();
        let out = out?;
        let trace = std::fs::read_to_string(&trace).unwrap_or_default();
        let _ = std::fs::remove_file(dir.join("qemu.strace"));
        Ok(Boot {
            console: String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
            status: out.status.code(),
            guest_secs,
            trace,
            ram,
        })
    }
}

/// The host writer: appends to its own file on the guest's filesystem and syncs the
/// filesystem after every piece — what the kernel's flusher does over a guest's weeks
/// of life (writing back the guest's dirty pages between other writers' data), done
/// in seconds.
fn host_writer(path: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let Ok(mut f) = std::fs::File::create(&path) else { return 0 };
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
