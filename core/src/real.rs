//! The real functions behind the hooks: the next definition after this library among
//! the loaded objects, which is what `dlsym(RTLD_NEXT)` returns. They are found by
//! walking the objects with `dl_iterate_phdr` (in libc since glibc 2.2.4) and reading
//! their dynamic symbol tables, because `dlsym` lived in libdl until glibc 2.34 and a
//! preloaded library cannot count on libdl being loaded: linking it would make every
//! process load one more library, and naming `dlsym@GLIBC_2.34` would keep the library
//! off older hosts.
//!
//! Each pointer is resolved by the library's constructor (no system call, no allocation)
//! or, for a call that comes earlier (another library's constructor), on first use.
//! Reading it is one relaxed atomic load: no lock on the pass-through path.

use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicPtr, Ordering};
use libc::{off64_t, size_t, ssize_t};

/// Declares, for one libc function: the atomic holding its address, an accessor that
/// returns it (or a resolve-then-call stand-in while unresolved), that stand-in, and
/// the function used when no such symbol exists (fails with ENOSYS, as a missing
/// system call would).
macro_rules! real_fn {
    ($(#[$doc:meta])* $ptr:ident, $get:ident, $lazy:ident, $resolve:ident, $missing:ident,
     $ty:ident = fn($($arg:ident: $t:ty),*) -> $ret:ty, $name:literal) => {
        $(#[$doc])*
        pub type $ty = unsafe extern "C" fn($($t),*) -> $ret;

        /// The resolved address; until then the stand-in that resolves it, so that a
        /// hook is compare, branch and jump. Public for the i686 hooks, written in
        /// assembly, which read it directly.
        pub static $ptr: AtomicPtr<c_void> = AtomicPtr::new($lazy as *mut c_void);

        #[doc = concat!("The next `", $name, "` after this object in the lookup order (libc's, usually).")]
        #[inline(always)]
        pub fn $get() -> $ty {
            let p = $ptr.load(Ordering::Relaxed);
            // SAFETY: only this name's stand-in and addresses found for it are stored here.
            unsafe { core::mem::transmute::<*mut c_void, $ty>(p) }
        }

        #[doc = concat!("Resolves `", $name, "`, then calls it.")]
        ///
        /// # Safety
        /// The real function's own contract.
        #[cold]
        pub unsafe extern "C" fn $lazy($($arg: $t),*) -> $ret {
            // SAFETY: the caller's arguments, passed on.
            unsafe { $resolve()($($arg),*) }
        }

        fn $resolve() -> $ty {
            match next(concat!($name, "\0").as_bytes()) {
                Some(p) => {
                    $ptr.store(p, Ordering::Relaxed);
                    // SAFETY: the symbol of this name is a function with this signature.
                    unsafe { core::mem::transmute::<*mut c_void, $ty>(p) }
                }
                None => $missing,
            }
        }

        unsafe extern "C" fn $missing($(_: $t),*) -> $ret {
            crate::error::set_errno(libc::ENOSYS);
            -1
        }
    };
}

real_fn!(
    /// The signature of `pwrite64`.
    PWRITE64, pwrite64, lazy_pwrite64, resolve_pwrite64, missing_pwrite64,
    Pwrite64 = fn(fd: c_int, buf: *const c_void, n: size_t, off: off64_t) -> ssize_t, "pwrite64"
);
real_fn!(
    /// The signature of `pwrite` (on i686 its offset is 32 bits).
    PWRITE, pwrite, lazy_pwrite, resolve_pwrite, missing_pwrite,
    Pwrite = fn(fd: c_int, buf: *const c_void, n: size_t, off: libc::off_t) -> ssize_t, "pwrite"
);
real_fn!(
    /// The signature of `write`.
    WRITE, write, lazy_write, resolve_write, missing_write,
    Write = fn(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t, "write"
);
real_fn!(
    /// The signature of `ftruncate64`.
    FTRUNCATE64, ftruncate64, lazy_ftruncate64, resolve_ftruncate64, missing_ftruncate64,
    Ftruncate64 = fn(fd: c_int, len: off64_t) -> c_int, "ftruncate64"
);

/// Resolves every pointer now, in one walk over the loaded objects, so that no later
/// call (in a signal handler, say) has to walk the loader's list.
pub fn resolve_all() {
    let names: [&[u8]; 4] = [b"pwrite64", b"pwrite", b"write", b"ftruncate64"];
    let slots = [&PWRITE64, &PWRITE, &WRITE, &FTRUNCATE64];
    let mut found = [None; 4];
    next_all(&names, &mut found);
    for (slot, p) in slots.iter().zip(found) {
        if let Some(p) = p {
            slot.store(p, Ordering::Relaxed);
        }
    }
}

#[cfg(target_pointer_width = "64")]
mod elf {
    pub type Phdr = libc::Elf64_Phdr;
    pub type Word = u64;
    /// `Elf64_Sym`: st_name u32, st_info u8, st_other u8, st_shndx u16, st_value, st_size.
    #[repr(C)]
    pub struct Sym {
        pub name: u32,
        pub info: u8,
        pub other: u8,
        pub shndx: u16,
        pub value: u64,
        pub size: u64,
    }
}

#[cfg(target_pointer_width = "32")]
mod elf {
    pub type Phdr = libc::Elf32_Phdr;
    pub type Word = u32;
    /// `Elf32_Sym`: st_name, st_value, st_size, st_info u8, st_other u8, st_shndx u16.
    #[repr(C)]
    pub struct Sym {
        pub name: u32,
        pub value: u32,
        pub size: u32,
        pub info: u8,
        pub other: u8,
        pub shndx: u16,
    }
}

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const DT_NULL: usize = 0;
const DT_HASH: usize = 4;
const DT_STRTAB: usize = 5;
const DT_SYMTAB: usize = 6;
const DT_GNU_HASH: usize = 0x6fff_fef5;
const DT_VERSYM: usize = 0x6fff_fff0;
const STT_FUNC: u8 = 2;
const STT_GNU_IFUNC: u8 = 10;
const STB_GLOBAL: u8 = 1;
const STB_WEAK: u8 = 2;
/// A `versym` entry with this bit is a non-default version (`sym@V`, not `sym@@V`).
const VERSYM_HIDDEN: u16 = 0x8000;

/// What the walk looks for, and what it found.
struct Search<'a> {
    /// Function names, without NUL.
    names: &'a [&'a [u8]],
    found: &'a mut [Option<*mut c_void>],
    /// Some address inside this library, to know which object is ours.
    own: usize,
    /// Our object has been passed: later definitions are "next".
    passed_own: bool,
    /// Look in every object but ours, not only in those after it.
    everywhere: bool,
}

/// Finds the next definition of each of `names` (without NUL) in one walk over the
/// loaded objects; a name defined only before this library (unusual) is then taken from
/// there, as a second walk.
fn next_all(names: &[&[u8]], found: &mut [Option<*mut c_void>]) {
    for everywhere in [false, true] {
        if found.iter().take(names.len()).all(Option::is_some) {
            return;
        }
        let own = next_all as *const () as usize;
        let mut s = Search { names, found: &mut *found, own, passed_own: false, everywhere };
        // SAFETY: the callback only reads the loader's structures during the call.
        unsafe { libc::dl_iterate_phdr(Some(visit), core::ptr::addr_of_mut!(s).cast()) };
    }
}

/// The address of the next definition of the function `name` (NUL-terminated).
fn next(name: &[u8]) -> Option<*mut c_void> {
    let mut found = [None];
    next_all(&[name.strip_suffix(&[0]).unwrap_or(name)], &mut found);
    found[0]
}

/// `dl_iterate_phdr`'s callback: returns non-zero to stop the walk.
unsafe extern "C" fn visit(info: *mut libc::dl_phdr_info, _size: size_t, data: *mut c_void) -> c_int {
    // SAFETY: data is the Search that `next_all` passed, and info the loader's entry.
    let (s, info) = unsafe { (&mut *data.cast::<Search>(), &*info) };
    let base = info.dlpi_addr as usize;
    // SAFETY: the loader's program headers for this object, dlpi_phnum of them.
    let phdrs: &[elf::Phdr] = unsafe { core::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
    let contains_own = phdrs.iter().any(|p| {
        let start = base.wrapping_add(p.p_vaddr as usize);
        p.p_type == PT_LOAD && s.own >= start && s.own - start < p.p_memsz as usize
    });
    if contains_own {
        s.passed_own = true;
        return 0;
    }
    if !s.passed_own && !s.everywhere {
        return 0;
    }
    let Some(dynamic) = phdrs.iter().find(|p| p.p_type == PT_DYNAMIC) else { return 0 };
    let dynamic = base.wrapping_add(dynamic.p_vaddr as usize) as *const elf::Word;
    // SAFETY: the object's dynamic section, as mapped by the loader.
    let Some(t) = (unsafe { Tables::of(base, dynamic) }) else { return 0 };
    for (name, slot) in s.names.iter().zip(s.found.iter_mut()) {
        if slot.is_none() {
            // SAFETY: t describes this loaded object's tables.
            *slot = unsafe { t.find(name) };
        }
    }
    i32::from(s.found.iter().take(s.names.len()).all(Option::is_some))
}

/// One object's dynamic symbol tables.
struct Tables {
    base: usize,
    symtab: *const elf::Sym,
    strtab: *const u8,
    versym: *const u16,
    gnu_hash: *const u32,
    hash: *const u32,
}

impl Tables {
    /// The tables of the object loaded at `base` whose dynamic section is at `dynamic`.
    ///
    /// # Safety
    /// `dynamic` points to a loaded object's dynamic section.
    unsafe fn of(base: usize, dynamic: *const elf::Word) -> Option<Tables> {
        let (mut symtab, mut strtab, mut gnu_hash, mut hash, mut versym) = (0, 0, 0, 0, 0);
        let mut d = dynamic;
        loop {
            // SAFETY: a dynamic section is an array of (tag, value) words ending with DT_NULL.
            let (tag, val) = unsafe { (*d as usize, *d.add(1) as usize) };
            // The loader rewrites most objects' entries to addresses; the vDSO's stay offsets.
            let addr = if val < base { val.wrapping_add(base) } else { val };
            match tag {
                DT_NULL => break,
                DT_SYMTAB => symtab = addr,
                DT_STRTAB => strtab = addr,
                DT_GNU_HASH => gnu_hash = addr,
                DT_HASH => hash = addr,
                DT_VERSYM => versym = addr,
                _ => {}
            }
            // SAFETY: still within the array, which ends with DT_NULL.
            d = unsafe { d.add(2) };
        }
        if symtab == 0 || strtab == 0 || (gnu_hash == 0 && hash == 0) {
            return None;
        }
        Some(Tables {
            base,
            symtab: symtab as *const elf::Sym,
            strtab: strtab as *const u8,
            versym: versym as *const u16,
            gnu_hash: gnu_hash as *const u32,
            hash: hash as *const u32,
        })
    }

    /// The symbol `name` defined here as a function, default version.
    ///
    /// # Safety
    /// The tables are a loaded object's.
    unsafe fn find(&self, name: &[u8]) -> Option<*mut c_void> {
        if !self.gnu_hash.is_null() {
            // SAFETY: the object's own GNU hash table.
            unsafe { self.find_gnu(self.gnu_hash, name) }
        } else {
            // SAFETY: the object's own SysV hash table.
            unsafe { self.find_sysv(self.hash, name) }
        }
    }

    /// The address of symbol `i` if it is a defined function called `name`.
    ///
    /// # Safety
    /// `i` is an index into the symbol table.
    unsafe fn check(&self, i: usize, name: &[u8]) -> Option<*mut c_void> {
        // SAFETY: i indexes the symbol table (the caller's promise).
        let sym = unsafe { &*self.symtab.add(i) };
        let (kind, bind) = (sym.info & 0xf, sym.info >> 4);
        if sym.shndx == 0 || !(kind == STT_FUNC || kind == STT_GNU_IFUNC) || !(bind == STB_GLOBAL || bind == STB_WEAK) {
            return None;
        }
        // SAFETY: versym, when present, has one entry per symbol.
        if !self.versym.is_null() && unsafe { *self.versym.add(i) } & VERSYM_HIDDEN != 0 {
            return None;
        }
        // SAFETY: st_name is an offset of a NUL-terminated string in the string table.
        let sym_name = unsafe { self.strtab.add(sym.name as usize) };
        for (k, &c) in name.iter().enumerate() {
            // SAFETY: reading stops at the string's NUL at the latest (c is never 0).
            if unsafe { *sym_name.add(k) } != c {
                return None;
            }
        }
        // SAFETY: as above, one past the compared bytes is still within the string.
        if unsafe { *sym_name.add(name.len()) } != 0 {
            return None;
        }
        let addr = self.base.wrapping_add(sym.value as usize);
        if kind == STT_GNU_IFUNC {
            // SAFETY: an IFUNC's value is its resolver, which returns the implementation.
            let resolver: unsafe extern "C" fn() -> usize = unsafe { core::mem::transmute(addr) };
            // SAFETY: the resolver takes no argument and returns the implementation's address.
            return Some(unsafe { resolver() } as *mut c_void);
        }
        Some(addr as *mut c_void)
    }

    /// Lookup through `DT_GNU_HASH`.
    ///
    /// # Safety
    /// `h` is this object's GNU hash table.
    unsafe fn find_gnu(&self, h: *const u32, name: &[u8]) -> Option<*mut c_void> {
        // SAFETY: the table's header: nbuckets, symoffset, bloom_size, bloom_shift.
        let (nbuckets, symoffset, bloom_size) = unsafe { (*h, *h.add(1) as usize, *h.add(2) as usize) };
        let hash = gnu_hash(name);
        let words_per_bloom = core::mem::size_of::<elf::Word>() / 4;
        // SAFETY: the buckets follow the header and the bloom filter.
        let buckets = unsafe { h.add(4 + bloom_size * words_per_bloom) };
        // SAFETY: the bucket index is below nbuckets.
        let mut i = unsafe { *buckets.add(hash.checked_rem(nbuckets)? as usize) } as usize;
        if i < symoffset {
            return None;
        }
        // SAFETY: the chains follow the buckets, one per symbol from symoffset on.
        let chain = unsafe { buckets.add(nbuckets as usize) };
        loop {
            // SAFETY: i stays within the chain: it ends at an entry with the low bit set.
            let ch = unsafe { *chain.add(i - symoffset) };
            if ch | 1 == hash | 1 {
                // SAFETY: i indexes a symbol that the chain describes.
                if let Some(p) = unsafe { self.check(i, name) } {
                    return Some(p);
                }
            }
            if ch & 1 != 0 {
                return None;
            }
            i += 1;
        }
    }

    /// Lookup through `DT_HASH`.
    ///
    /// # Safety
    /// `h` is this object's SysV hash table.
    unsafe fn find_sysv(&self, h: *const u32, name: &[u8]) -> Option<*mut c_void> {
        // SAFETY: the table's header: nbucket, nchain.
        let (nbucket, nchain) = unsafe { (*h, *h.add(1)) };
        // SAFETY: the bucket index is below nbucket.
        let mut i = unsafe { *h.add(2 + sysv_hash(name).checked_rem(nbucket)? as usize) };
        let mut steps = 0;
        while i != 0 && i < nchain && steps < nchain {
            // SAFETY: i < nchain, the number of symbols.
            if let Some(p) = unsafe { self.check(i as usize, name) } {
                return Some(p);
            }
            // SAFETY: the chain array follows the buckets, nchain entries.
            i = unsafe { *h.add(2 + nbucket as usize + i as usize) };
            steps += 1;
        }
        None
    }
}

fn gnu_hash(name: &[u8]) -> u32 {
    name.iter().fold(5381u32, |h, &c| h.wrapping_mul(33).wrapping_add(u32::from(c)))
}

fn sysv_hash(name: &[u8]) -> u32 {
    name.iter().fold(0u32, |h, &c| {
        let h = (h << 4).wrapping_add(u32::from(c));
        let g = h & 0xf000_0000;
        (h ^ (g >> 24)) & !g
    })
}

/// The program's short name (`program_invocation_short_name`), as syslog(3) uses it.
pub fn program_name() -> &'static [u8] {
    extern "C" {
        static program_invocation_short_name: *const c_char;
    }
    // SAFETY: glibc sets it before any constructor runs and never frees it.
    let p = unsafe { program_invocation_short_name };
    if p.is_null() {
        return b"?";
    }
    // SAFETY: a NUL-terminated string that lives as long as the process.
    unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_libc_functions_after_this_object() {
        // The test binary defines none of them, so they come from libc.
        for name in [&b"pwrite64\0"[..], b"write\0", b"ftruncate64\0", b"pwrite\0"] {
            assert!(next(name).is_some(), "{name:?}");
        }
        assert!(next(b"no_such_function_anywhere\0").is_none());
        // SAFETY: dlsym with a NUL-terminated name.
        let libc_write = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"write".as_ptr()) };
        assert_eq!(next(b"write\0"), Some(libc_write));
    }

    #[test]
    fn hash_functions() {
        assert_eq!(gnu_hash(b""), 5381);
        assert_eq!(gnu_hash(b"printf"), 0x156b_2bb8);
        assert_eq!(sysv_hash(b"printf"), 0x0779_05a6);
    }
}
