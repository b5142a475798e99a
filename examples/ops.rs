//! Random file operations for differential testing: a seeded sequence of creation
//! calls, pwrites of random lengths and offsets, ftruncate, fsync, reads, O_APPEND and
//! read-only fds, on three files. Each operation's return value, errno and (for reads)
//! a hash of the bytes read is printed, one line per operation, so that two runs —
//! with and without the library — can be compared line by line. Uses libc only.
//!
//! With `--writer`, a second thread runs a sequence of its own at the same time on a
//! fourth file, through its own fds (one of them a dup, so two fds share a file offset):
//! its lines follow the main thread's, each starting with `w`. It shares no file with
//! the main thread, so both sequences stay reproducible, while the library serves
//! creation calls from two threads at once.
//!
//! usage: ops --dir DIR --seed N [--count N] [--max-offset BYTES] [--writer]

#[path = "shared/rng.rs"]
mod rng;

use rng::Rng;
use std::ffi::CString;
use std::process::exit;

fn die(msg: &str) -> ! {
    eprintln!("ops: {msg}");
    exit(2)
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// FNV-1a, for printing what a read returned.
fn hash(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| (h ^ x as u64).wrapping_mul(0x100_0000_01b3))
}

fn open(path: &str, flags: i32) -> i32 {
    let c = CString::new(path).unwrap_or_else(|_| die("NUL in path"));
    // SAFETY: a valid path.
    let fd = unsafe { libc::open64(c.as_ptr(), flags | libc::O_CREAT | libc::O_CLOEXEC, 0o600) };
    if fd < 0 {
        die(&format!("open {path}: {}", std::io::Error::last_os_error()));
    }
    fd
}

/// An fd, what kind it is (for the output), and which file it is on.
type Fd = (i32, &'static str, usize);

fn main() {
    let (mut dir, mut seed, mut count, mut max, mut writer) = (None, 1u64, 300u64, 96u64 << 20, false);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--writer" {
            writer = true;
            continue;
        }
        let v = args.next().unwrap_or_else(|| die(&format!("{flag} needs a value")));
        let num = || v.parse::<u64>().unwrap_or_else(|_| die(&format!("{flag}: not a number")));
        match flag.as_str() {
            "--dir" => dir = Some(v.clone()),
            "--seed" => seed = num(),
            "--count" => count = num(),
            "--max-offset" => max = num().max(2),
            _ => die(&format!("unknown option {flag}")),
        }
    }
    let dir = dir.unwrap_or_else(|| die("--dir is required"));
    let files: Vec<String> = (0..3).map(|i| format!("{dir}/f{i}")).collect();
    // rdwr on every file, then an O_APPEND fd on f0 and a read-only one on f1.
    let mut fds: Vec<Fd> = files.iter().enumerate().map(|(i, f)| (open(f, libc::O_RDWR), "rdwr", i)).collect();
    fds.push((open(&files[0], libc::O_RDWR | libc::O_APPEND), "append", 0));
    fds.push((open(&files[1], libc::O_RDONLY), "rdonly", 1));

    let second = writer.then(|| {
        let file = format!("{dir}/w3");
        let rdwr = open(&file, libc::O_RDWR);
        // SAFETY: a plain fd; the dup shares its open file description (and offset).
        let shared = unsafe { libc::dup(rdwr) };
        let fds: Vec<Fd> =
            vec![(rdwr, "rdwr", 3), (shared, "dup", 3), (open(&file, libc::O_RDWR | libc::O_APPEND), "append", 3)];
        std::thread::spawn(move || {
            let mut lines = String::new();
            sequence(&fds, seed ^ 0x5EC0_4D00, count, max, &mut |l| lines.push_str(&format!("w{l}\n")));
            lines
        })
    });
    sequence(&fds, seed, count, max, &mut |l| println!("{l}"));
    if let Some(t) = second {
        print!("{}", t.join().unwrap_or_else(|_| die("the second writer panicked")));
    }
}

/// Runs `count` seeded operations on `fds`, giving `out` one line for each.
fn sequence(fds: &[Fd], seed: u64, count: u64, max: u64, out: &mut dyn FnMut(String)) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut buf = vec![0u8; 1 << 16];
    for i in 0..count {
        let (fd, kind, file) = fds[rng.below(fds.len() as u64) as usize];
        let size = {
            // SAFETY: zeroed stat64 is a valid out-parameter.
            let mut st: libc::stat64 = unsafe { std::mem::zeroed() };
            // SAFETY: st is writable.
            unsafe { libc::fstat64(fd, &mut st) };
            st.st_size as u64
        };
        let op = rng.below(100);
        let len = match rng.below(4) {
            0 => 1,
            1 => rng.below(3) as usize,
            _ => rng.below(buf.len() as u64) as usize,
        };
        let off: i64 = match rng.below(20) {
            0 => -1 - rng.below(4096) as i64,
            1..=9 => (size + rng.below(max)) as i64,
            _ => rng.below(max) as i64,
        };
        for (j, b) in buf.iter_mut().enumerate().take(len) {
            *b = (i as usize * 31 + j) as u8;
        }
        // SAFETY: for every call below, buf holds at least len bytes; the fds are ours.
        let (name, ret, extra) = unsafe {
            match op {
                0..=19 => ("create", libc::pwrite64(fd, buf.as_ptr().cast(), 1, off.max(0)) as i64, None),
                20..=44 => ("pwrite64", libc::pwrite64(fd, buf.as_ptr().cast(), len, off) as i64, None),
                45..=49 => match libc::off_t::try_from(off) {
                    Ok(o) => ("pwrite", libc::pwrite(fd, buf.as_ptr().cast(), len, o) as i64, None),
                    Err(_) => ("pwrite-skipped", 0, None),
                },
                50..=59 => ("ftruncate", libc::ftruncate64(fd, off) as i64, None),
                60..=64 => ("fsync", libc::fsync(fd) as i64, None),
                65..=84 => {
                    let r = libc::pread64(fd, buf.as_mut_ptr().cast(), len, off);
                    ("pread64", r as i64, Some(hash(&buf[..r.max(0) as usize])))
                }
                85..=89 => ("write", libc::write(fd, buf.as_ptr().cast(), len) as i64, None),
                _ => {
                    let pos = libc::lseek64(fd, off, libc::SEEK_SET);
                    let r = libc::read(fd, buf.as_mut_ptr().cast(), len);
                    let at = libc::lseek64(fd, 0, libc::SEEK_CUR);
                    ("lseek+read", r as i64, Some(hash(&buf[..r.max(0) as usize]) ^ pos as u64 ^ (at as u64) << 1))
                }
            }
        };
        let e = if ret < 0 { errno() } else { 0 };
        let cur = {
            // SAFETY: a plain fd.
            unsafe { libc::lseek64(fd, 0, libc::SEEK_CUR) }
        };
        let line = format!("{i} {name} f{file}/{kind} off={off} len={len} -> ret={ret} errno={e} pos={cur}");
        out(match extra {
            Some(h) => format!("{line} hash={h:016x}"),
            None => line,
        });
    }
}
