//! One run of tests/c/torture.c, with or without the library, killed at a moment or
//! not; and the file it left, measured from outside.

use crate::common;
use crate::gen::{Scenario, BLOCK};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A run that takes longer is killed and fails (a lease broken by a second open waits
/// 45 s; a run takes well under a second).
const RUN_TIMEOUT: Duration = Duration::from_secs(8);

/// What the program printed and how it ended.
#[derive(Debug, Default)]
pub struct Ran {
    pub kv: BTreeMap<String, String>,
    /// child_fd= lines: the fds forked children held.
    pub child_fds: BTreeSet<String>,
    pub stderr: String,
    pub status: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    /// The kill was sent while the program had not finished.
    pub killed: bool,
}

impl Ran {
    pub fn num(&self, key: &str) -> Option<i64> {
        self.kv.get(key).and_then(|v| v.parse().ok())
    }

    /// `nosparse:` lines the library wrote (NOSPARSE_LOG=stderr).
    pub fn log_lines(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| l.contains("nosparse:")).collect()
    }
}

pub fn run(s: &Scenario, path: &Path, preload: bool) -> Ran {
    let a = common::artifacts();
    let mut cmd = Command::new(common::cprog::program("torture"));
    cmd.args(s.args(&path.display().to_string()));
    for (k, _) in std::env::vars_os() {
        if k.as_bytes().starts_with(b"NOSPARSE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env_remove("LD_PRELOAD");
    cmd.env("NOSPARSE_LOG", "stderr");
    cmd.envs(s.env());
    if preload {
        cmd.env("LD_PRELOAD", &a.lib);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run tests/c/torture");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("stdout");
    let out_reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stderr = child.stderr.take().expect("stderr");
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + RUN_TIMEOUT;
    let mut ran = Ran::default();
    let take = |ran: &mut Ran, line: String| {
        if let Some(fd) = line.strip_prefix("child_fd=") {
            ran.child_fds.insert(fd.to_string());
        } else if let Some((k, v)) = line.split_once('=') {
            ran.kv.insert(k.into(), v.into());
        }
    };
    if let Some(ms) = s.kill_ms {
        // Wait for the call to start, then kill after the delay.
        while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            let calling = line == "calling=1";
            take(&mut ran, line);
            if calling {
                std::thread::sleep(Duration::from_millis(ms));
                ran.killed = child.try_wait().ok().flatten().is_none();
                let _ = child.kill();
                break;
            }
        }
    }
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            ran.timed_out = true;
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    // EOF comes when the writer process, which outlives a killed program, has exited too.
    let _ = out_reader.join();
    while let Ok(line) = rx.try_recv() {
        take(&mut ran, line);
    }
    ran.stderr = err_reader.join().unwrap_or_default();
    ran.status = status.code();
    ran.signal = status.signal();
    ran
}

/// A file measured from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub size: u64,
    /// st_blocks * 512.
    pub allocated: u64,
    pub mode: u32,
    pub xattrs: BTreeMap<String, Vec<u8>>,
    pub hash: u64,
    /// Bytes of the new range no extent covers (FIEMAP), where the filesystem has it.
    pub new_range_holes: Option<u64>,
    /// The first block that is not what the scenario wrote there, and why.
    pub model_error: Option<String>,
}

/// Measures `path`: stat, xattrs, a hash of its bytes, and its bytes against the blocks
/// the scenario must (and, killed, may) have written, zeros everywhere else.
pub fn measure(path: &Path, must: &[(u64, u64)], may: &[u64], new_range: (u64, u64)) -> Option<File> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    let mut f = std::fs::File::open(path).expect("open the file");
    let expect: BTreeMap<u64, u64> = must.iter().copied().collect();
    let may: BTreeSet<u64> = may.iter().copied().collect();
    let mut hash = 0u64;
    let mut model_error = None;
    let mut buf = vec![0u8; 1 << 20];
    let mut block = 0u64;
    loop {
        let n = read_full(&mut f, &mut buf);
        if n == 0 {
            break;
        }
        hash = mix(hash, &buf[..n]);
        for chunk in buf[..n].chunks(BLOCK as usize) {
            if model_error.is_none() {
                let want_len = expect.get(&block).copied().unwrap_or(0) as usize;
                if !block_is(chunk, block, want_len)
                    && !(may.contains(&block) && (block_is(chunk, block, BLOCK as usize) || block_is(chunk, block, 0)))
                {
                    let what = if want_len > 0 { "the pattern" } else { "zeros" };
                    model_error = Some(format!("block {block} (byte {}) is not {what}", block * BLOCK));
                }
            }
            block += 1;
        }
    }
    let size = meta.len();
    for (&b, _) in expect.range(size.div_ceil(BLOCK)..) {
        model_error.get_or_insert_with(|| format!("block {b} is past the end ({size} bytes)"));
    }
    Some(File {
        size,
        allocated: meta.blocks() * 512,
        mode: meta.mode(),
        xattrs: xattrs(path),
        hash,
        new_range_holes: mapped_in(&f, new_range).map(|m| new_range.1 - new_range.0 - m),
        model_error,
    })
}

/// Bytes of `[start, end)` some extent covers (data, unwritten or delayed), or None
/// where FIEMAP is not supported (tmpfs).
fn mapped_in(f: &std::fs::File, (start, end): (u64, u64)) -> Option<u64> {
    use std::os::unix::io::AsRawFd;
    let mut n = 0;
    nosparse_core::extents::for_each(f.as_raw_fd(), |e| {
        let (a, b) = (e.logical.max(start), (e.logical + e.length).min(end));
        n += b.saturating_sub(a);
    })
    .ok()?;
    Some(n)
}

/// Whether `chunk`, block number `block`, holds its pattern in its first `len` bytes
/// and zeros after.
fn block_is(chunk: &[u8], block: u64, len: usize) -> bool {
    let len = len.min(chunk.len());
    chunk[len..].iter().all(|&b| b == 0) && (len == 0 || chunk[..len] == common::pattern(block)[..len])
}

/// Folds `bytes` into `hash`: a fast hash, to tell two files' bytes apart.
fn mix(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        hash = (hash ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    }
    for &b in words.remainder() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    }
    hash
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n
}

/// Every extended attribute of `path`, by name.
fn xattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let c = CString::new(path.as_os_str().as_bytes()).expect("a path without NUL");
    let mut names = vec![0u8; 4096];
    // SAFETY: c is NUL-terminated; names is writable for its length.
    let n = unsafe { libc::listxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    let mut out = BTreeMap::new();
    if n <= 0 {
        return out;
    }
    for name in names[..n as usize].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).expect("no NUL inside");
        let mut value = vec![0u8; 4096];
        // SAFETY: both strings NUL-terminated; value writable for its length.
        let len = unsafe { libc::getxattr(c.as_ptr(), cname.as_ptr(), value.as_mut_ptr().cast(), value.len()) };
        value.truncate(len.max(0) as usize);
        out.insert(String::from_utf8_lossy(name).into_owned(), value);
    }
    out
}
