//! The guest's life after the creation call: pieces written back in random order,
//! through pwrite or, as vmx does, through 1 MiB MAP_SHARED regions and msync; and the
//! other writers that compete with it for the filesystem.

use crate::opts::{OpenMode, Opts, WriteBack};
use crate::rng::Rng;
use crate::sys::{self, errno};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// vmx maps its .vmem in regions of this size (visible in /proc/PID/smaps).
pub const REGION: u64 = 1 << 20;
/// What the other writers write per call.
const PIECE: usize = 1 << 20;

/// Deterministic contents for a write at `offset`.
pub fn fill(buf: &mut [u8], seed: u64, offset: u64) {
    let mut r = Rng(seed ^ offset.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    for b in buf.chunks_mut(8) {
        let v = r.next().to_le_bytes();
        b.copy_from_slice(&v[..b.len()]);
    }
}

/// A guest write that failed: where, in which call, and its errno.
pub struct Failure {
    pub at: u64,
    pub call: &'static str,
    pub errno: i32,
}

/// What the guest's run did.
pub struct Life {
    pub writes: u64,
    pub run_ns: u128,
    pub failure: Option<Failure>,
}

/// Writes `o.writes` pieces of `o.chunk` bytes at random chunk-aligned places, syncing
/// every `o.sync_every` writes, while `o.competitor` (if any) appends beside it.
pub fn live(fd: i32, o: &Opts) -> Life {
    let stop = Arc::new(AtomicBool::new(false));
    let rival = o.competitor.clone().map(|p| competitor(p, stop.clone(), o.size));
    let slots = (o.size / o.chunk).max(1);
    let mut rng = Rng(o.seed | 1);
    let mut buf = vec![0u8; o.chunk as usize];
    let started = Instant::now();
    let mut life = Life { writes: 0, run_ns: 0, failure: None };
    for i in 0..o.writes {
        let at = (rng.next() % slots) * o.chunk;
        let len = o.chunk.min(o.size.saturating_sub(at)) as usize;
        fill(&mut buf[..len], o.seed, at);
        let sync = (i + 1) % o.sync_every == 0;
        let done = match o.write_back {
            WriteBack::Pwrite => write_by_pwrite(fd, &buf[..len], at, sync),
            WriteBack::Mmap => write_by_mmap(fd, &buf[..len], at, o.size, sync),
        };
        if let Err(failure) = done {
            life.failure = Some(failure);
            break;
        }
        life.writes += 1;
    }
    // Writes since the last sync point are flushed too, as a hypervisor does at suspend.
    // SAFETY: a plain fd.
    if life.writes > 0 && life.failure.is_none() && unsafe { libc::fdatasync(fd) } != 0 {
        life.failure = Some(Failure { at: 0, call: "fdatasync", errno: errno() });
    }
    life.run_ns = started.elapsed().as_nanos();
    stop.store(true, Ordering::Relaxed);
    if let Some(t) = rival {
        let _ = t.join();
    }
    life
}

fn write_by_pwrite(fd: i32, data: &[u8], at: u64, sync: bool) -> Result<(), Failure> {
    sys::pwrite_all(fd, data, at).map_err(|errno| Failure { at, call: "pwrite64", errno })?;
    // SAFETY: a plain fd.
    if sync && unsafe { libc::fdatasync(fd) } != 0 {
        return Err(Failure { at, call: "fdatasync", errno: errno() });
    }
    Ok(())
}

/// Maps the REGION-aligned regions that hold `[at, at + data.len())` MAP_SHARED, copies
/// the data in (a store into a page with no block behind it on a full disk is SIGBUS),
/// msyncs them when due, and unmaps them.
fn write_by_mmap(fd: i32, data: &[u8], at: u64, size: u64, sync: bool) -> Result<(), Failure> {
    let start = at / REGION * REGION;
    let end = (at + data.len() as u64).div_ceil(REGION) * REGION;
    let len = (end.min(size.next_multiple_of(page_size())) - start) as usize;
    // SAFETY: a fresh shared mapping of the file; the kernel checks fd and offset.
    let map = unsafe {
        libc::mmap64(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, start as i64)
    };
    if map == libc::MAP_FAILED {
        return Err(Failure { at, call: "mmap", errno: errno() });
    }
    // SAFETY: the mapping is len bytes long and the data lies inside it, below EOF.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), map.cast::<u8>().add((at - start) as usize), data.len()) };
    // SAFETY: map is the mapping made above.
    let synced = if sync { unsafe { libc::msync(map, len, libc::MS_SYNC) } } else { 0 };
    let sync_errno = errno();
    // SAFETY: as above; nothing refers to it after this.
    unsafe { libc::munmap(map, len) };
    if synced != 0 {
        return Err(Failure { at, call: "msync", errno: sync_errno });
    }
    Ok(())
}

fn page_size() -> u64 {
    // SAFETY: sysconf cannot fail for _SC_PAGESIZE.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as u64 }
}

/// The second writer: appends 1 MiB pieces to its own file until told to stop.
fn competitor(path: String, stop: Arc<AtomicBool>, limit: u64) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let fd = sys::open_file(&path, OpenMode::Rdwr);
        let buf = vec![0x5Au8; PIECE];
        let mut off = 0u64;
        while !stop.load(Ordering::Relaxed) && off < limit {
            if sys::pwrite_all(fd, &buf, off).is_err() {
                break;
            }
            off += buf.len() as u64;
            // SAFETY: a plain fd.
            unsafe { libc::fdatasync(fd) };
        }
        // SAFETY: the fd is ours.
        unsafe { libc::close(fd) };
    })
}

/// Another writer fills the filesystem: `path` is written in 1 MiB pieces, then in
/// smaller ones, until ENOSPC, and fsync'ed. Returns the bytes written and the bytes
/// still free afterwards.
pub fn fill_disk(path: &str) -> (u64, u64) {
    const SMALLEST: usize = 4096;
    let fd = sys::open_file(path, OpenMode::Rdwr);
    let buf = vec![0xF1u8; PIECE];
    let (mut at, mut piece) = (0u64, PIECE);
    loop {
        match sys::pwrite_all(fd, &buf[..piece], at) {
            Ok(()) => at += piece as u64,
            Err(libc::ENOSPC) if piece > SMALLEST => piece /= 2,
            Err(libc::ENOSPC) => break,
            Err(e) => crate::die(&format!("--fill-disk {path}: {}", std::io::Error::from_raw_os_error(e))),
        }
    }
    // SAFETY: a plain fd.
    unsafe { libc::fsync(fd) };
    let free = sys::free_bytes(fd);
    // SAFETY: the fd is ours.
    unsafe { libc::close(fd) };
    (at, free)
}
