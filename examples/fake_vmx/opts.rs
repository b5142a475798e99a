//! fake_vmx's options: parsed once into [`Opts`], each value into its own type.

use crate::die;

pub const USAGE: &str = "\
usage: fake_vmx --path FILE [options]

Creates FILE like vmware-vmx creates a .vmem, then writes guest pages into it.

options:
  --size BYTES         size of the file (default 268435456)
  --call NAME          symbol that makes the creation call: pwrite64, pwrite, __pwrite64,
                       write (after lseek to the offset), ftruncate, ftruncate64 (to
                       offset + nbyte; they return 0)
                       (default pwrite64)
  --open MODE          rdwr, wronly, append, rdonly, direct, rdwr-nolfs (open(2)
                       without O_LARGEFILE) (default rdwr)
  --target KIND        file, pipe, socket: what the fd is (default file)
  --prefill BYTES      write a pattern over the first BYTES before the creation call
  --seek OFFSET        move the fd's file offset here before the creation call
  --offset N           the creation call's offset (default size - 1)
  --nbyte N            the creation call's byte count (default 1)
  --writes N           guest writes after creation (default 0)
  --chunk BYTES        bytes per guest write (default 1048576)
  --write-back HOW     how guest writes reach the file: pwrite (pwrite64, then
                       fdatasync), or mmap (as vmx does: the 1 MiB regions holding the
                       write are mapped MAP_SHARED, written in memory, msync'ed and
                       unmapped) (default pwrite)
  --sync-every N       fdatasync (msync) after every N guest writes (default 1)
  --seed N             seed of the write order and contents (default 1)
  --competitor FILE    a second thread appends to FILE while the guest writes
  --fill-disk FILE     after the creation call, another writer fills the filesystem:
                       FILE is written until ENOSPC and fsync'ed, then the guest writes
  --second FILE        after the first, create FILE the same way in the same process
  --concurrent FILE    create FILE from a second thread at the same moment as the first
  --threads N          N threads each make 512 4 KiB pwrites into FILE.tI around the
                       creation call, then read them back
  --fork               fork during the creation call: the child creates FILE.child the
                       same way and exits; the parent waits up to 60 s for it
  --spawn              posix_spawn /bin/true during the creation call
  --signal-storm       SIGALRM every 50 us (a handler without SA_RESTART) during the
                       creation call
  --report-memory      print the process's peak and current RSS at the end
  --help               this text

output (stdout), one key=value per line:
  create_ret, create_errno   what the creation call returned
  offset_before, offset_after  the fd's file offset around the creation call
  create_ns                  time taken by the creation call
  size_after_create, allocated_after_create  st_size and st_blocks * 512 right after
  second_ret, concurrent_ret the creation calls of --second and --concurrent
  threads_ok                 --threads whose files read back as written
  child_status, spawn_status exit status of the --fork child and the --spawn child
  signals                    SIGALRMs received during --signal-storm
  filled, free_after_fill    --fill-disk: bytes written, and bytes still free after it
  vm_hwm_kib, vm_rss_kib     --report-memory
  writes, run_ns, final_size  the simulated run
  guest_errno, guest_failed_at  when a guest write (pwrite, msync) failed

exit status: 0; 2 for bad options or a failed setup step; 3 when a guest write failed
(the guest died); with --write-back mmap, a write that finds no room on the disk kills
the process with SIGBUS, as it kills a real hypervisor.
";

/// A value chosen from a fixed list of names.
pub trait Choice: Sized + Copy + 'static {
    const NAMES: &'static [(&'static str, Self)];

    fn parse(flag: &str, value: &str) -> Self {
        Self::NAMES.iter().find(|(n, _)| *n == value).map(|(_, v)| *v).unwrap_or_else(|| {
            let names: Vec<&str> = Self::NAMES.iter().map(|(n, _)| *n).collect();
            die(&format!("{flag}: unknown value {value:?} (one of {})", names.join(", ")))
        })
    }
}

/// The symbol that makes the creation call.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Call {
    Pwrite64,
    UnderPwrite64,
    Pwrite,
    /// dd's way: lseek beyond the end, then a one-byte write.
    Write,
    /// QEMU's and truncate(1)'s way: the size set directly (returns 0, not nbyte).
    Ftruncate,
    Ftruncate64,
}

impl Choice for Call {
    const NAMES: &'static [(&'static str, Call)] = &[
        ("pwrite64", Call::Pwrite64),
        ("__pwrite64", Call::UnderPwrite64),
        ("pwrite", Call::Pwrite),
        ("write", Call::Write),
        ("ftruncate", Call::Ftruncate),
        ("ftruncate64", Call::Ftruncate64),
    ];
}

/// How the file is opened.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OpenMode {
    Rdwr,
    Wronly,
    Append,
    Rdonly,
    Direct,
    /// open(2) rather than open64: without O_LARGEFILE a 32-bit process cannot write past
    /// 2 GiB (64-bit kernels set it for 64-bit processes anyway).
    RdwrNoLfs,
}

impl Choice for OpenMode {
    const NAMES: &'static [(&'static str, OpenMode)] = &[
        ("rdwr", OpenMode::Rdwr),
        ("wronly", OpenMode::Wronly),
        ("append", OpenMode::Append),
        ("rdonly", OpenMode::Rdonly),
        ("direct", OpenMode::Direct),
        ("rdwr-nolfs", OpenMode::RdwrNoLfs),
    ];
}

/// What the creation call's fd is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Target {
    File,
    Pipe,
    Socket,
}

impl Choice for Target {
    const NAMES: &'static [(&'static str, Target)] =
        &[("file", Target::File), ("pipe", Target::Pipe), ("socket", Target::Socket)];
}

/// How the guest's writes reach the file.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WriteBack {
    /// pwrite64, then fdatasync.
    Pwrite,
    /// vmx's way: MAP_SHARED regions written in memory, then msync.
    Mmap,
}

impl Choice for WriteBack {
    const NAMES: &'static [(&'static str, WriteBack)] = &[("pwrite", WriteBack::Pwrite), ("mmap", WriteBack::Mmap)];
}

/// Defaults, with units.
const SIZE_DEFAULT: u64 = 256 << 20;
const CHUNK_DEFAULT: u64 = 1 << 20;

pub struct Opts {
    pub path: Option<String>,
    pub size: u64,
    pub call: Call,
    pub open: OpenMode,
    pub target: Target,
    pub prefill: u64,
    pub seek: Option<i64>,
    pub offset: Option<i64>,
    pub nbyte: usize,
    pub writes: u64,
    pub chunk: u64,
    pub write_back: WriteBack,
    pub sync_every: u64,
    pub seed: u64,
    pub competitor: Option<String>,
    pub fill_disk: Option<String>,
    pub second: Option<String>,
    pub concurrent: Option<String>,
    pub threads: usize,
    pub fork: bool,
    pub spawn: bool,
    pub signal_storm: bool,
    pub report_memory: bool,
}

impl Default for Opts {
    fn default() -> Opts {
        Opts {
            path: None,
            size: SIZE_DEFAULT,
            call: Call::Pwrite64,
            open: OpenMode::Rdwr,
            target: Target::File,
            prefill: 0,
            seek: None,
            offset: None,
            nbyte: 1,
            writes: 0,
            chunk: CHUNK_DEFAULT,
            write_back: WriteBack::Pwrite,
            sync_every: 1,
            seed: 1,
            competitor: None,
            fill_disk: None,
            second: None,
            concurrent: None,
            threads: 0,
            fork: false,
            spawn: false,
            signal_storm: false,
            report_memory: false,
        }
    }
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> T {
    value.parse().unwrap_or_else(|_| die(&format!("{flag}: not a number: {value}")))
}

impl Opts {
    /// Parses the command line; exits with the usage on `--help`, with status 2 on an
    /// error.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Opts {
        let mut o = Opts::default();
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let switch = match flag.as_str() {
                "--help" | "-h" => {
                    print!("{USAGE}");
                    std::process::exit(0);
                }
                "--fork" => &mut o.fork,
                "--spawn" => &mut o.spawn,
                "--signal-storm" => &mut o.signal_storm,
                "--report-memory" => &mut o.report_memory,
                _ => {
                    let value = args.next().unwrap_or_else(|| die(&format!("{flag} needs a value (see --help)")));
                    o.set(&flag, value);
                    continue;
                }
            };
            *switch = true;
        }
        o
    }

    fn set(&mut self, flag: &str, value: String) {
        let f = flag;
        match flag {
            "--path" => self.path = Some(value),
            "--size" => self.size = number(f, &value),
            "--call" => self.call = Call::parse(f, &value),
            "--open" => self.open = OpenMode::parse(f, &value),
            "--target" => self.target = Target::parse(f, &value),
            "--prefill" => self.prefill = number(f, &value),
            "--seek" => self.seek = Some(number(f, &value)),
            "--offset" => self.offset = Some(number(f, &value)),
            "--nbyte" => self.nbyte = number(f, &value),
            "--writes" => self.writes = number(f, &value),
            "--chunk" => self.chunk = number::<u64>(f, &value).max(1),
            "--write-back" => self.write_back = WriteBack::parse(f, &value),
            "--sync-every" => self.sync_every = number::<u64>(f, &value).max(1),
            "--seed" => self.seed = number(f, &value),
            "--competitor" => self.competitor = Some(value),
            "--fill-disk" => self.fill_disk = Some(value),
            "--second" => self.second = Some(value),
            "--concurrent" => self.concurrent = Some(value),
            "--threads" => self.threads = number(f, &value),
            _ => die(&format!("unknown option {flag} (see --help)")),
        }
    }

    /// The creation call's offset: the last byte of the file unless given.
    pub fn creation_offset(&self) -> i64 {
        self.offset.unwrap_or(self.size as i64 - 1)
    }

    /// The path of the file, which every file target needs.
    pub fn file_path(&self) -> &str {
        self.path.as_deref().unwrap_or_else(|| die("--path is required (see --help)"))
    }
}
