//! Scenarios, generated from a seed: the filesystem, the fd, the layout before the
//! call, the call, the settings, the actors and the fault. Everything a scenario does
//! follows from its seed, so a seed printed by a failure replays it.

use std::fmt::Write as _;

pub const BLOCK: u64 = 4096;
pub const KIB: u64 = 1024;
pub const MIB: u64 = 1 << 20;
/// The mover's blocks start this far past the old end (the writers' 16 blocks each,
/// interleaved, end before).
const MOVER_FROM: u64 = 256 * KIB;
/// The new hole starts this far past the old end (beyond every actor's block).
const ACTORS_SPAN: u64 = 512 * KIB;
/// A disk made too full for the new range still leaves half of it, and this much
/// besides (ext4 keeps some blocks even from root) for the writers.
pub const SHORT_SPARE: u64 = 8 * MIB;
const SHORT_MIN_RANGE: u64 = 32 * MIB;
/// The largest byte a 32-bit fd without O_LARGEFILE can write is below this.
pub const MAX_NON_LFS: u64 = (1 << 31) - 1;

/// SplitMix64: small, and every seed gives a good stream.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[lo, hi]`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fs {
    Ext4,
    Ext3,
    Xfs,
    Btrfs,
    Tmpfs,
    Vfat,
    Hugetlbfs,
    /// `/proc/self/mem`, written at a mapped address.
    Procfs,
}

impl Fs {
    pub const ALL: [Fs; 8] = [Fs::Ext4, Fs::Ext3, Fs::Xfs, Fs::Btrfs, Fs::Tmpfs, Fs::Vfat, Fs::Hugetlbfs, Fs::Procfs];

    pub fn name(self) -> &'static str {
        match self {
            Fs::Ext4 => "ext4",
            Fs::Ext3 => "ext3",
            Fs::Xfs => "xfs",
            Fs::Btrfs => "btrfs",
            Fs::Tmpfs => "tmpfs",
            Fs::Vfat => "vfat",
            Fs::Hugetlbfs => "hugetlbfs",
            Fs::Procfs => "procfs",
        }
    }

    /// Its name in NOSPARSE_SKIP_FS, for the filesystems on the library's allow-list.
    pub fn skip_name(self) -> Option<&'static str> {
        match self {
            Fs::Ext4 | Fs::Ext3 => Some("ext"),
            Fs::Xfs => Some("xfs"),
            Fs::Btrfs => Some("btrfs"),
            Fs::Tmpfs => Some("tmpfs"),
            _ => None,
        }
    }

    /// The library's zero fill may run here (local block filesystems).
    pub fn zero_fill(self) -> bool {
        matches!(self, Fs::Ext4 | Fs::Ext3 | Fs::Xfs | Fs::Btrfs)
    }

    pub fn has_fallocate(self) -> bool {
        matches!(self, Fs::Ext4 | Fs::Xfs | Fs::Btrfs | Fs::Tmpfs)
    }

    /// Holds an ordinary file the layouts and actors can write.
    pub fn is_disk_like(self) -> bool {
        !matches!(self, Fs::Hugetlbfs | Fs::Procfs)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Pwrite64,
    Write,
    Ftruncate,
}

impl Call {
    pub fn name(self) -> &'static str {
        match self {
            Call::Pwrite64 => "pwrite64",
            Call::Write => "write",
            Call::Ftruncate => "ftruncate",
        }
    }

    /// Its name in NOSPARSE_TRIGGERS.
    pub fn trigger(self) -> &'static str {
        match self {
            Call::Pwrite64 => "pwrite",
            Call::Write => "write",
            Call::Ftruncate => "ftruncate",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Empty,
    Data,
    Holes,
    /// Data, and the program's own fallocate(KEEP_SIZE) past the end.
    KeepSize,
    /// fallocate(0, old): unwritten extents inside the file.
    Unwritten,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::Empty => "empty",
            Layout::Data => "data",
            Layout::Holes => "holes",
            Layout::KeepSize => "keepsize",
            Layout::Unwritten => "unwritten",
        }
    }
}

/// How full the filesystem is made before the runs, with a file of the test's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    No,
    /// The new range fits, with 2 MiB to spare.
    Tight,
    /// Only half the new range is free.
    Short,
}

#[derive(Debug, Clone, Copy)]
pub struct Fault {
    pub syscall: &'static str,
    pub errno: i32,
}

pub const ERRNOS: [(i32, &str); 7] = [
    (libc::EIO, "EIO"),
    (libc::ENOSPC, "ENOSPC"),
    (libc::EDQUOT, "EDQUOT"),
    (libc::EPERM, "EPERM"),
    (libc::EINTR, "EINTR"),
    (libc::ENOMEM, "ENOMEM"),
    (libc::EMFILE, "EMFILE"),
];

/// Syscalls a fault can hit; `pwrite64`, `write` (count 1) and `lseek` are the
/// program's own call where its trigger makes them so.
const FAULT_SYSCALLS: [&str; 16] = [
    "fstat",
    "fcntl",
    "fstatfs",
    "ioctl",
    "fallocate",
    "mmap",
    "madvise",
    "readlinkat",
    "openat",
    "lseek",
    "pwrite64",
    "write",
    "ftruncate",
    "socket",
    "pwritev",
    "prlimit",
];

#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub fs: Fs,
    pub wronly: bool,
    pub direct: bool,
    pub sync: bool,
    pub append: bool,
    /// i686 only: the fd is opened without O_LARGEFILE.
    pub no_largefile: bool,
    pub layout: Layout,
    /// The file's size before the call (before the writers).
    pub old: u64,
    /// The program's own reservation past the old end (KeepSize).
    pub keep: u64,
    pub call: Call,
    /// The byte the call writes (ftruncate: the new size is offset + 1).
    pub offset: u64,
    pub mode: Option<u32>,
    /// The program runs without CAP_FSETID: a change to the file's data removes its
    /// set-user-ID and set-group-ID bits, as for a program not run by root.
    pub no_fsetid: bool,
    pub xattr: bool,
    pub caps: bool,
    /// Blocks the writer thread / process rewrite: at, at + 8 KiB, ...
    pub wt: (u64, u64),
    pub wp: (u64, u64),
    /// Blocks the mover write()s through the call's fd, contiguous from `.0`.
    pub mover: (u64, u64),
    pub forker: bool,
    pub lease: bool,
    pub fault: Option<Fault>,
    /// RLIMIT_FSIZE, below the new size.
    pub rlimit: Option<u64>,
    /// SIGKILL this many ms after the program says it is calling.
    pub kill_ms: Option<u64>,
    pub full: Full,
    pub triggers: Option<String>,
    pub method: Option<&'static str>,
    pub on_error_fail: bool,
    pub min_size: u64,
    pub skip_fs: Option<String>,
    pub match_glob: Option<&'static str>,
}

fn round_up(v: u64, to: u64) -> u64 {
    v.div_ceil(to) * to
}

impl Scenario {
    /// The scenario of `seed`, for a test binary of the given word size.
    pub fn generate(seed: u64, i686: bool, available: &[Fs]) -> Scenario {
        let mut r = Rng::new(seed);
        let fs = r.pick(available);
        let disk = fs.is_disk_like();
        let call = r.pick(&[Call::Pwrite64, Call::Pwrite64, Call::Write, Call::Ftruncate]);
        let mut s = Scenario {
            seed,
            fs,
            wronly: r.chance(20),
            direct: r.chance(12),
            sync: r.chance(12),
            append: r.chance(10),
            no_largefile: false,
            layout: Layout::Empty,
            old: 0,
            keep: 0,
            call,
            offset: 0,
            mode: None,
            no_fsetid: false,
            xattr: false,
            caps: false,
            wt: (0, 0),
            wp: (0, 0),
            mover: (0, 0),
            forker: r.chance(25),
            lease: false,
            fault: None,
            rlimit: None,
            kill_ms: None,
            full: Full::No,
            triggers: None,
            method: None,
            on_error_fail: r.chance(30),
            min_size: MIB,
            skip_fs: None,
            match_glob: None,
        };
        if disk {
            s.layout = r.pick(&[Layout::Empty, Layout::Data, Layout::Holes, Layout::KeepSize, Layout::Unwritten]);
            // Below the smallest NOSPARSE_MIN_SIZE: the program's own ftruncate that
            // makes the layout is not a creation the library may act on.
            s.old = match s.layout {
                Layout::Empty => 0,
                Layout::Holes => r.range(2, 255) * BLOCK,
                // Sometimes not a whole number of blocks.
                _ if r.chance(30) => r.range(1, MIB - 1),
                _ => r.range(1, 255) * BLOCK,
            };
            if s.layout == Layout::KeepSize {
                s.keep = r.range(16, 1024) * BLOCK;
            }
            s.mode = r.chance(30).then(|| r.pick(&[0o644, 0o4755, 0o2755, 0o6755]));
            s.xattr = r.chance(30);
            s.caps = r.chance(15);
        }
        let base = round_up(s.old, BLOCK);
        if disk && r.chance(35) {
            s.wt = (base, r.range(1, 16));
        }
        if disk && r.chance(25) {
            s.wp = (base + BLOCK, r.range(1, 16));
        }
        // The mover moves the offset the write trigger uses, and O_APPEND moves it too.
        if disk && call != Call::Write && !s.append && r.chance(25) {
            s.mover = (base + MOVER_FROM, r.range(1, 16));
        }
        // A write lease needs the call's fd to be the file's only one.
        s.lease = s.wt.1 == 0 && s.wp.1 == 0 && fs != Fs::Procfs && r.chance(20);
        let max_hole = if matches!(fs, Fs::Vfat | Fs::Hugetlbfs) { 16 * MIB } else { 64 * MIB };
        // Log-uniform between 2 MiB and the largest.
        let hole = (2 * MIB) << r.range(0, max_hole.ilog2() as u64 - 21);
        let hole = r.range(hole, (2 * hole).min(max_hole));
        let new_size = match fs {
            // A whole number of huge pages, sometimes: ftruncate can then succeed.
            Fs::Hugetlbfs if r.chance(50) => round_up(hole, 2 * MIB),
            _ if r.chance(70) => round_up(base + ACTORS_SPAN + hole, BLOCK),
            _ => base + ACTORS_SPAN + hole,
        };
        s.offset = new_size - 1;
        if i686 && call == Call::Pwrite64 && fs != Fs::Procfs && r.chance(10) {
            s.no_largefile = true;
            if r.chance(70) {
                s.offset = MAX_NON_LFS + r.range(0, 3 * BLOCK);
            }
        }
        if disk && r.chance(5) {
            s.rlimit = Some(r.range(base + ACTORS_SPAN, s.offset));
        }
        if r.chance(35) {
            let syscall = loop {
                let c = r.pick(&FAULT_SYSCALLS);
                let own = match c {
                    "pwrite64" => call == Call::Pwrite64,
                    "write" | "lseek" => call == Call::Write,
                    _ => true,
                };
                if own {
                    break c;
                }
            };
            let own = matches!(
                (syscall, call),
                ("pwrite64", Call::Pwrite64) | ("write" | "lseek", Call::Write) | ("ftruncate", Call::Ftruncate)
            );
            // A filter fails a syscall every time; a library may fairly retry EINTR until
            // it stops, as after any real signal: only the program's own call gets it.
            let errno = loop {
                let e = r.pick(&ERRNOS).0;
                if own || e != libc::EINTR {
                    break e;
                }
            };
            s.fault = Some(Fault { syscall, errno });
        }
        if r.chance(12) {
            s.kill_ms = Some(r.pick(&[0, 1, 2, 5, 10, 20, 40]));
        }
        if matches!(fs, Fs::Ext4 | Fs::Xfs) && r.chance(12) {
            // Short needs a range large enough to leave the writers room beside half of it.
            s.full = if s.new_range() >= SHORT_MIN_RANGE && r.chance(50) { Full::Short } else { Full::Tight };
        }
        s.triggers = if r.chance(85) {
            let mut t = vec![call.trigger()];
            for other in ["pwrite", "write", "ftruncate"] {
                if other != call.trigger() && r.chance(50) {
                    t.push(other);
                }
            }
            Some(t.join(","))
        } else if call == Call::Pwrite64 {
            None // the default: pwrite only
        } else {
            Some(if call == Call::Write { "pwrite,ftruncate" } else { "pwrite,write" }.into())
        };
        s.method = r.pick(&[None, Some("auto"), Some("fallocate"), Some("zero"), Some("off")]);
        if r.chance(10) {
            // Larger than the new hole: left alone.
            s.min_size = new_size + r.range(1, 64) * MIB;
        }
        if r.chance(40) {
            s.skip_fs = Some(match (r.range(0, 2), fs.skip_name()) {
                (0, Some(own)) => own.into(),
                (1, _) => "none".into(),
                _ => "tmpfs:zfs".into(),
            });
        }
        if r.chance(15) {
            s.match_glob = Some(r.pick(&["*.img", "*.vmem", "/*/t-*"]));
        }
        s.no_fsetid = s.mode.is_some_and(|m| m & 0o6000 != 0) && r.chance(50);
        s
    }

    /// The size before the call: the old size, grown by the writers' first pass.
    pub fn size_before(&self) -> u64 {
        let mut size = self.old;
        for (at, n) in [self.wt, self.wp] {
            if n > 0 {
                size = size.max(at + (n - 1) * 2 * BLOCK + BLOCK);
            }
        }
        size
    }

    pub fn new_size(&self) -> u64 {
        self.offset + 1
    }

    /// The range the library may allocate: from the end before the call, rounded up
    /// to a block, to the new end.
    pub fn new_range(&self) -> u64 {
        self.new_size().saturating_sub(round_up(self.size_before(), BLOCK))
    }

    /// The whole blocks of the new range, `[roundup(size before), rounddown(new size))`;
    /// from the mover's last block on where there is one: the mover writes while the
    /// library works, so the end the library finds may be the mover's.
    pub fn new_range_bounds(&self) -> (u64, u64) {
        let mover_end = if self.mover.1 > 0 { self.mover.0 + self.mover.1 * BLOCK } else { 0 };
        let start = round_up(self.size_before().max(mover_end), BLOCK);
        (start, (self.new_size() / BLOCK * BLOCK).max(start))
    }

    pub fn path_name(&self) -> String {
        format!("t-{}.img", self.seed)
    }

    /// One line saying what the scenario does.
    pub fn describe(&self) -> String {
        let mut d = format!("{} {}", self.fs.name(), if self.wronly { "wronly" } else { "rdwr" });
        for (on, f) in
            [(self.direct, "direct"), (self.sync, "sync"), (self.append, "append"), (self.no_largefile, "nolargefile")]
        {
            if on {
                let _ = write!(d, "+{f}");
            }
        }
        let _ = write!(d, " layout={}(old={}", self.layout.name(), self.old);
        if self.keep > 0 {
            let _ = write!(d, ",keep={}", self.keep);
        }
        let _ = write!(d, ") {}@{}", self.call.name(), self.offset);
        if let Some(m) = self.mode {
            let _ = write!(d, " mode={m:o}");
        }
        for (on, f) in [
            (self.no_fsetid, "no-fsetid"),
            (self.xattr, "user.x"),
            (self.caps, "caps"),
            (self.forker, "forker"),
            (self.lease, "lease"),
        ] {
            if on {
                let _ = write!(d, " {f}");
            }
        }
        for (name, (at, n)) in [("wt", self.wt), ("wp", self.wp), ("mover", self.mover)] {
            if n > 0 {
                let _ = write!(d, " {name}={n}@{at}");
            }
        }
        if let Some(f) = self.fault {
            let name = ERRNOS.iter().find(|e| e.0 == f.errno).map_or("?", |e| e.1);
            let _ = write!(d, " fault={}:{name}", f.syscall);
        }
        if let Some(l) = self.rlimit {
            let _ = write!(d, " rlimit={l}");
        }
        if let Some(ms) = self.kill_ms {
            let _ = write!(d, " kill@{ms}ms");
        }
        if self.full != Full::No {
            let _ = write!(d, " full={:?}", self.full);
        }
        for (k, v) in self.env() {
            let _ = write!(d, " {}={v}", k.trim_start_matches("NOSPARSE_"));
        }
        d
    }

    /// The library's settings for both runs.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut e = vec![("NOSPARSE_MIN_SIZE", self.min_size.to_string())];
        if let Some(t) = &self.triggers {
            e.push(("NOSPARSE_TRIGGERS", t.clone()));
        }
        if let Some(m) = self.method {
            e.push(("NOSPARSE_METHOD", m.into()));
        }
        if self.on_error_fail {
            e.push(("NOSPARSE_ON_ERROR", "fail".into()));
        }
        if let Some(s) = &self.skip_fs {
            e.push(("NOSPARSE_SKIP_FS", s.clone()));
        }
        if let Some(m) = self.match_glob {
            e.push(("NOSPARSE_MATCH", m.into()));
        }
        e
    }

    /// tests/c/torture.c's arguments, for the file at `path`.
    pub fn args(&self, path: &str) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut arg = |k: &str, v: String| {
            a.push(k.into());
            a.push(v);
        };
        if self.fs != Fs::Procfs {
            arg("--path", path.into());
        }
        arg("--old", self.old.to_string());
        arg("--offset", self.offset.to_string());
        arg("--call", self.call.name().into());
        arg("--open", if self.wronly { "wronly" } else { "rdwr" }.into());
        let flags: Vec<&str> =
            [(self.direct, "direct"), (self.sync, "sync"), (self.append, "append"), (self.no_largefile, "nolargefile")]
                .iter()
                .filter(|f| f.0)
                .map(|f| f.1)
                .collect();
        arg("--flags", flags.join(","));
        arg("--layout", self.layout.name().into());
        arg("--keep", self.keep.to_string());
        if let Some(m) = self.mode {
            arg("--mode", format!("{m:o}"));
        }
        for (k, (at, n)) in [("wt", self.wt), ("wp", self.wp), ("mover", self.mover)] {
            arg(&format!("--{k}-at"), at.to_string());
            arg(&format!("--{k}-n"), n.to_string());
        }
        if let Some(f) = self.fault {
            arg("--fault", format!("{}:{}", f.syscall, f.errno));
        }
        if let Some(l) = self.rlimit {
            arg("--rlimit", l.to_string());
        }
        for (on, f) in [
            (self.no_fsetid, "--no-fsetid"),
            (self.xattr, "--xattr"),
            (self.caps, "--caps"),
            (self.forker, "--forker"),
            (self.lease, "--lease"),
        ] {
            if on {
                a.push(f.into());
            }
        }
        if self.fs == Fs::Procfs {
            a.push("--proc".into());
        }
        a
    }

    /// The blocks the file must hold, by index: the pattern tagged with the index
    /// (all of it, or its first `n` bytes); and the mover's, which a kill may prevent.
    pub fn expected_blocks(&self) -> (Vec<(u64, u64)>, Vec<u64>) {
        let mut must = Vec::new();
        let whole = |b: u64| (b, BLOCK);
        match self.layout {
            Layout::Data | Layout::KeepSize => {
                must.extend((0..self.old / BLOCK).map(whole));
                if self.old % BLOCK != 0 {
                    must.push((self.old / BLOCK, self.old % BLOCK));
                }
            }
            Layout::Holes => must.extend([whole(0), whole(self.old / BLOCK - 1)]),
            Layout::Empty | Layout::Unwritten => {}
        }
        for (at, n) in [self.wt, self.wp] {
            must.extend((0..n).map(|i| whole(at / BLOCK + 2 * i)));
        }
        let mover = (0..self.mover.1).map(|i| self.mover.0 / BLOCK + i).collect();
        (must, mover)
    }

    /// Sizes a run without the library could leave, killed at any moment or not.
    pub fn possible_sizes(&self) -> Vec<u64> {
        let before = self.size_before();
        let mut sizes = vec![before];
        for i in 0..self.mover.1 {
            sizes.push(before.max(self.mover.0 + (i + 1) * BLOCK));
        }
        let new = match self.call {
            Call::Ftruncate => self.new_size(),
            _ if self.append => before + 1,
            _ => before.max(self.new_size()),
        };
        sizes.push(new);
        if let Some(limit) = self.rlimit {
            sizes.push(limit);
        }
        sizes
    }
}
