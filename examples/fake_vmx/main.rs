//! A stand-in for VMware's `vmware-vmx`: creates a guest memory file the way vmx does,
//! `pwrite64(fd, "\0", 1, size - 1)`, then simulates the guest's life by writing
//! regions back in random order — with pwrite and fdatasync, or as vmx does, through
//! 1 MiB MAP_SHARED regions and msync — optionally while a second writer competes for
//! the same filesystem, or after another writer filled it. Uses libc only (never the
//! engine), so that what it observes is what any program would. Results are printed as
//! `key=value` lines.
//!
//! Run `fake_vmx --help` for the options.

#[path = "../shared/rng.rs"]
mod rng;

mod guest;
mod helpers;
mod opts;
mod sys;

use helpers::{Helpers, Storm};
use opts::Opts;
use std::process::exit;
use std::time::Instant;

/// Bad options or a failed setup step.
const EXIT_SETUP: i32 = 2;
/// A guest write failed: the guest died.
const EXIT_GUEST_FAILED: i32 = 3;

pub fn die(msg: &str) -> ! {
    eprintln!("fake_vmx: {msg}");
    exit(EXIT_SETUP)
}

fn main() {
    let o = Opts::parse(std::env::args().skip(1));
    let fd = sys::open_target(&o);
    if o.prefill > 0 {
        let mut buf = vec![0u8; o.prefill as usize];
        guest::fill(&mut buf, o.seed, 0);
        if let Err(e) = sys::pwrite_all(fd, &buf, 0) {
            die(&format!("prefill: {}", std::io::Error::from_raw_os_error(e)));
        }
    }
    if let Some(pos) = o.seek {
        // SAFETY: a plain fd.
        unsafe { libc::lseek64(fd, pos, libc::SEEK_SET) };
    }
    let offset = o.creation_offset();
    let byte = vec![0u8; o.nbyte];
    let offset_before = sys::offset(fd);
    let helpers = Helpers::start(&o, offset);
    let storm = o.signal_storm.then(Storm::start);
    // SAFETY: errno is this thread's.
    unsafe { *libc::__errno_location() = 0 };
    let started = Instant::now();
    let ret = sys::create(fd, o.call, &byte, offset);
    let create_errno = if ret < 0 { sys::errno() } else { 0 };
    let create_ns = started.elapsed().as_nanos();
    let offset_after = sys::offset(fd);
    let st = sys::stat(fd);
    println!("create_ret={ret}");
    println!("create_errno={create_errno}");
    println!("offset_before={offset_before}");
    println!("offset_after={offset_after}");
    println!("create_ns={create_ns}");
    println!("size_after_create={}", st.size);
    println!("allocated_after_create={}", st.allocated);
    if let Some(storm) = storm {
        println!("signals={}", storm.stop());
    }
    helpers.finish().print();
    if let Some(second) = &o.second {
        let fd2 = sys::open_file(second, o.open);
        println!("second_ret={}", sys::create(fd2, o.call, &byte, offset));
        // SAFETY: the fd is ours.
        unsafe { libc::close(fd2) };
    }
    if let Some(file) = &o.fill_disk {
        let (filled, free) = guest::fill_disk(file);
        println!("filled={filled}");
        println!("free_after_fill={free}");
    }

    let life = guest::live(fd, &o);
    println!("writes={}", life.writes);
    println!("run_ns={}", life.run_ns);
    println!("final_size={}", sys::stat(fd).size);
    if o.report_memory {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        for (field, key) in [("VmHWM:", "vm_hwm_kib"), ("VmRSS:", "vm_rss_kib")] {
            let kib = status.lines().find_map(|l| l.strip_prefix(field)).map(|v| v.trim().trim_end_matches(" kB"));
            println!("{key}={}", kib.unwrap_or("0"));
        }
    }
    if let Some(f) = life.failure {
        println!("guest_errno={}", f.errno);
        println!("guest_failed_at={}", f.at);
        eprintln!("fake_vmx: guest write at {}: {}: {}", f.at, f.call, std::io::Error::from_raw_os_error(f.errno));
        exit(EXIT_GUEST_FAILED);
    }
}
