//! A file's physical layout from the FIEMAP ioctl, counted the way `filefrag` counts:
//! an extent starts a new fragment only when it is not physically where the previous
//! one leads.
//! <https://www.kernel.org/doc/html/latest/filesystems/fiemap.html>

use crate::error::Result;
use crate::sys;

/// `FS_IOC_FIEMAP` = `_IOWR('f', 11, struct fiemap)`; `struct fiemap` is 32 bytes on
/// every architecture, so the number is the same on x86_64 and i686.
const FS_IOC_FIEMAP: u32 = 0xC020_660B;
const FIEMAP_EXTENT_LAST: u32 = 0x0001;
const FIEMAP_EXTENT_UNKNOWN: u32 = 0x0002;
const FIEMAP_EXTENT_DELALLOC: u32 = 0x0004;
const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x0800;
/// Extents asked for per ioctl: a 7 KiB stack buffer.
const BATCH: usize = 128;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapExtent {
    fe_logical: u64,
    fe_physical: u64,
    fe_length: u64,
    fe_reserved64: [u64; 2],
    fe_flags: u32,
    fe_reserved: [u32; 3],
}

/// The FIEMAP request and its room for extents (7 KiB): on the stack of a tool, in
/// scratch memory in the library.
#[repr(C)]
pub struct Fiemap {
    fm_start: u64,
    fm_length: u64,
    fm_flags: u32,
    fm_mapped_extents: u32,
    fm_extent_count: u32,
    fm_reserved: u32,
    fm_extents: [FiemapExtent; BATCH],
}

/// One mapped extent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub logical: u64,
    pub physical: u64,
    pub length: u64,
    pub flags: u32,
}

/// What FIEMAP says about a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// Extents as the filesystem reports them.
    pub extents: u64,
    /// Physically contiguous runs, as `filefrag` counts "extents found".
    pub fragments: u64,
    /// Bytes covered by extents.
    pub mapped: u64,
    /// Bytes in unwritten (preallocated, reads as zero) extents.
    pub unwritten: u64,
    /// Bytes of `[0, size)` no extent covers.
    pub hole_bytes: u64,
    /// Some extents have no physical place yet (delayed allocation).
    pub pending: bool,
}

/// Counts fragments the way `filefrag` does (e2fsprogs `filefrag_fiemap`).
#[derive(Default)]
pub struct FragmentCounter {
    last: Option<Extent>,
    pub fragments: u64,
}

impl FragmentCounter {
    pub fn add(&mut self, e: &Extent) {
        match self.last {
            None => self.fragments = 1,
            Some(last) => {
                let expected = last.physical.wrapping_add(e.logical.wrapping_sub(last.logical));
                let expected_dense = last.physical.wrapping_add(last.length);
                if e.logical != 0 && e.physical != expected && e.physical != expected_dense {
                    self.fragments += 1;
                }
            }
        }
        self.last = Some(*e);
    }
}

impl Fiemap {
    pub const EMPTY: Fiemap = Fiemap {
        fm_start: 0,
        fm_length: 0,
        fm_flags: 0,
        fm_mapped_extents: 0,
        fm_extent_count: 0,
        fm_reserved: 0,
        fm_extents: [FiemapExtent {
            fe_logical: 0,
            fe_physical: 0,
            fe_length: 0,
            fe_reserved64: [0; 2],
            fe_flags: 0,
            fe_reserved: [0; 3],
        }; BATCH],
    };
}

/// Calls `f` for every extent of `fd`, in logical order.
pub fn for_each(fd: i32, f: impl FnMut(&Extent)) -> Result<()> {
    let mut map = Fiemap::EMPTY;
    for_each_in(fd, &mut map, f)
}

/// [`for_each`] with the caller's buffer.
pub fn for_each_in(fd: i32, map: &mut Fiemap, mut f: impl FnMut(&Extent)) -> Result<()> {
    for_each_from(fd, 0, map, |e| {
        f(e);
        true
    })
}

/// Calls `f` for every extent of `fd` that ends after `start`, in logical order, until
/// `f` returns false.
pub fn for_each_from(fd: i32, start: u64, map: &mut Fiemap, mut f: impl FnMut(&Extent) -> bool) -> Result<()> {
    map.fm_start = start;
    loop {
        map.fm_length = u64::MAX - map.fm_start;
        map.fm_flags = 0;
        map.fm_mapped_extents = 0;
        map.fm_extent_count = BATCH as u32;
        // SAFETY: map is a struct fiemap followed by room for fm_extent_count extents.
        unsafe { sys::ioctl(fd, FS_IOC_FIEMAP, core::ptr::addr_of_mut!(*map).cast()) }?;
        let n = (map.fm_mapped_extents as usize).min(BATCH);
        let Some(last) = map.fm_extents.get(..n).and_then(|e| e.last()).copied() else {
            return Ok(());
        };
        for raw in map.fm_extents.iter().take(n) {
            let e = Extent {
                logical: raw.fe_logical,
                physical: raw.fe_physical,
                length: raw.fe_length,
                flags: raw.fe_flags,
            };
            if !f(&e) || raw.fe_flags & FIEMAP_EXTENT_LAST != 0 {
                return Ok(());
            }
        }
        map.fm_start = last.fe_logical.saturating_add(last.fe_length);
    }
}

/// The layout of `fd`'s first `size` bytes (pass the file's size).
pub fn layout(fd: i32, size: u64) -> Result<Layout> {
    let mut map = Fiemap::EMPTY;
    layout_in(fd, size, &mut map)
}

/// [`layout`] with the caller's buffer.
pub fn layout_in(fd: i32, size: u64, map: &mut Fiemap) -> Result<Layout> {
    let mut l = Layout::default();
    let mut counter = FragmentCounter::default();
    let mut covered_to = 0u64;
    for_each_in(fd, map, |e| {
        l.extents += 1;
        l.mapped += e.length;
        if e.flags & FIEMAP_EXTENT_UNWRITTEN != 0 {
            l.unwritten += e.length;
        }
        if e.flags & (FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC) != 0 {
            l.pending = true;
        }
        if e.logical > covered_to && covered_to < size {
            l.hole_bytes += e.logical.min(size) - covered_to;
        }
        covered_to = covered_to.max(e.logical.saturating_add(e.length));
        counter.add(e);
    })?;
    if covered_to < size {
        l.hole_bytes += size - covered_to;
    }
    l.fragments = counter.fragments;
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(logical: u64, physical: u64, length: u64) -> Extent {
        Extent { logical, physical, length, flags: 0 }
    }

    fn count(list: &[Extent]) -> u64 {
        let mut c = FragmentCounter::default();
        list.iter().for_each(|e| c.add(e));
        c.fragments
    }

    #[test]
    fn adjacent_extents_are_one_fragment() {
        // ext4 splits at 128 MiB; physically adjacent pieces are one run.
        let m = 128 << 20;
        assert_eq!(count(&[ext(0, 1 << 30, m), ext(m, (1 << 30) + m, m), ext(2 * m, (1 << 30) + 2 * m, 4096)]), 1);
    }

    #[test]
    fn a_jump_starts_a_fragment() {
        assert_eq!(count(&[ext(0, 4096, 4096), ext(4096, 1 << 20, 4096), ext(8192, 4096 * 2, 4096)]), 3);
        assert_eq!(count(&[]), 0);
    }

    #[test]
    fn a_hole_that_keeps_physical_distance_is_not_a_fragment() {
        // filefrag's `expected`: the physical gap equals the logical one.
        assert_eq!(count(&[ext(0, 1 << 20, 4096), ext(1 << 16, (1 << 20) + (1 << 16), 4096)]), 1);
    }
}
