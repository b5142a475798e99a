//! Just enough of an ELF header to know a program's class and its loader (`PT_INTERP`),
//! and of a script to know its interpreter.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const PT_INTERP: u32 = 3;
/// An interpreter path longer than this is not one the kernel would run.
const INTERP_MAX: u64 = 4096;

/// 32- or 64-bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Elf32,
    Elf64,
}

impl Class {
    pub fn bits(self) -> u32 {
        match self {
            Class::Elf32 => 32,
            Class::Elf64 => 64,
        }
    }
}

/// What a program file is, as far as preloading goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A dynamically linked ELF program, run by this loader.
    Dynamic {
        class: Class,
        interp: PathBuf,
    },
    /// A static ELF program: nothing can be preloaded into it.
    Static {
        class: Class,
    },
    /// A `#!` script, run by this interpreter.
    Script {
        interp: PathBuf,
    },
    Other,
}

/// Opens the program file `path` to read its headers: only a regular file, as exec(2)
/// runs nothing else (looked at before the open, which has side effects on a device,
/// and after it), and without waiting (O_NONBLOCK: a FIFO would wait for a writer).
fn open(path: &Path) -> io::Result<File> {
    let regular = |t| crate::human::refuse_special(t).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e));
    regular(std::fs::metadata(path)?.file_type())?;
    let f = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    regular(f.metadata()?.file_type())?;
    Ok(f)
}

/// Reads what kind of program `path` is; an error for a file that is not a regular one.
pub fn kind(path: &Path) -> io::Result<Kind> {
    let mut f = open(path)?;
    let mut head = [0u8; 64];
    let n = read_up_to(&mut f, &mut head)?;
    let head = &head[..n];
    if head.starts_with(b"#!") {
        let mut line = Vec::from(head);
        line.truncate(line.iter().position(|&b| b == b'\n').unwrap_or(line.len()));
        if line.len() == head.len() {
            // A long #! line: read the rest of it.
            let mut more = [0u8; 256];
            let m = read_up_to(&mut f, &mut more)?;
            line.extend(more[..m].iter().take_while(|&&b| b != b'\n'));
        }
        let text = String::from_utf8_lossy(&line[2..]).into_owned();
        return Ok(match text.split_whitespace().next() {
            Some(interp) => Kind::Script { interp: interp.into() },
            None => Kind::Other,
        });
    }
    if head.len() < 52 || &head[..4] != b"\x7fELF" {
        return Ok(Kind::Other);
    }
    let class = match head[4] {
        1 => Class::Elf32,
        2 if head.len() >= 64 => Class::Elf64,
        _ => return Ok(Kind::Other),
    };
    let little = head[5] == 1;
    let u16_at = |o: usize| {
        if little {
            u16::from_le_bytes([head[o], head[o + 1]])
        } else {
            u16::from_be_bytes([head[o], head[o + 1]])
        }
    };
    let u32_at = |b: &[u8], o: usize| {
        let a = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if little {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let u64_at = |b: &[u8], o: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[o..o + 8]);
        if little {
            u64::from_le_bytes(a)
        } else {
            u64::from_be_bytes(a)
        }
    };
    // e_phoff, e_phentsize, e_phnum; then per header p_type, p_offset, p_filesz.
    let (phoff, phentsize, phnum) = match class {
        Class::Elf32 => (u64::from(u32_at(head, 28)), u16_at(42), u16_at(44)),
        Class::Elf64 => (u64_at(head, 32), u16_at(54), u16_at(56)),
    };
    let mut ph = vec![0u8; usize::from(phentsize)];
    let needed = match class {
        Class::Elf32 => 20,
        Class::Elf64 => 40,
    };
    if ph.len() < needed {
        return Ok(Kind::Other);
    }
    for i in 0..u64::from(phnum) {
        f.seek(SeekFrom::Start(phoff + i * u64::from(phentsize)))?;
        f.read_exact(&mut ph)?;
        if u32_at(&ph, 0) != PT_INTERP {
            continue;
        }
        let (offset, size) = match class {
            Class::Elf32 => (u64::from(u32_at(&ph, 4)), u64::from(u32_at(&ph, 16))),
            Class::Elf64 => (u64_at(&ph, 8), u64_at(&ph, 32)),
        };
        if size == 0 || size > INTERP_MAX {
            return Ok(Kind::Other);
        }
        let mut interp = vec![0u8; size as usize];
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(&mut interp)?;
        let end = interp.iter().position(|&b| b == 0).unwrap_or(interp.len());
        interp.truncate(end);
        use std::os::unix::ffi::OsStringExt;
        return Ok(Kind::Dynamic { class, interp: PathBuf::from(std::ffi::OsString::from_vec(interp)) });
    }
    Ok(Kind::Static { class })
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            m => n += m,
        }
    }
    Ok(n)
}

/// Section names that only the Go toolchain writes: a Go program makes its own system
/// calls, so a preload cannot reach it even when it is dynamically linked (cgo).
const GO_SECTIONS: [&[u8]; 2] = [b".note.go.buildid", b".go.buildinfo"];
/// A section-name table larger than this is not one a linker wrote.
const SHSTRTAB_MAX: u64 = 1 << 20;

/// Whether `path` is an ELF program built by the Go toolchain (it has a section named
/// `.note.go.buildid` or `.go.buildinfo`). False for anything unreadable or not ELF.
pub fn is_go(path: &Path) -> bool {
    go_sections(path).unwrap_or(false)
}

fn go_sections(path: &Path) -> io::Result<bool> {
    let mut f = open(path)?;
    let mut head = [0u8; 64];
    if read_up_to(&mut f, &mut head)? < 52 || &head[..4] != b"\x7fELF" || head[5] != 1 {
        return Ok(false);
    }
    let u16_at = |b: &[u8], o: usize| u64::from(u16::from_le_bytes([b[o], b[o + 1]]));
    let u32_at = |b: &[u8], o: usize| u64::from(u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]));
    let u64_at = |b: &[u8], o: usize| u32_at(b, o) | (u32_at(b, o + 4) << 32);
    // e_shoff, e_shentsize, e_shnum, e_shstrndx; per section sh_name, sh_offset, sh_size.
    let elf64 = head[4] == 2;
    let (shoff, shentsize, shnum, shstrndx) = if elf64 {
        (u64_at(&head, 40), u16_at(&head, 58), u16_at(&head, 60), u16_at(&head, 62))
    } else {
        (u32_at(&head, 32), u16_at(&head, 46), u16_at(&head, 48), u16_at(&head, 50))
    };
    if shoff == 0 || shentsize < if elf64 { 64 } else { 40 } || shstrndx >= shnum {
        return Ok(false);
    }
    let mut sh = vec![0u8; shentsize as usize];
    let mut section = |i: u64| -> io::Result<(u64, u64, u64)> {
        f.seek(SeekFrom::Start(shoff + i * shentsize))?;
        f.read_exact(&mut sh)?;
        Ok(if elf64 {
            (u32_at(&sh, 0), u64_at(&sh, 24), u64_at(&sh, 32))
        } else {
            (u32_at(&sh, 0), u32_at(&sh, 16), u32_at(&sh, 20))
        })
    };
    let (_, str_off, str_size) = section(shstrndx)?;
    if str_size > SHSTRTAB_MAX {
        return Ok(false);
    }
    let mut names_of = Vec::new();
    for i in 0..shnum {
        names_of.push(section(i)?.0);
    }
    let mut names = vec![0u8; str_size as usize];
    f.seek(SeekFrom::Start(str_off))?;
    f.read_exact(&mut names)?;
    Ok(names_of.iter().any(|&at| {
        let name = names.get(at as usize..).unwrap_or(&[]);
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        GO_SECTIONS.contains(&name)
    }))
}
