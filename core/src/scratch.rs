//! The library's slow path as a guest: its memory, mapped for one call and unmapped
//! before the real call (so nothing is left behind if the thread is cancelled there),
//! and cancellation disabled around its own work.

use crate::config::{Config, LOAD_BUF};
use crate::engine::{Space, PATH_BUF};
use crate::sys;
use core::ffi::c_int;
use core::mem::MaybeUninit;

/// The slow path's scratch memory (about 110 KiB, zero pages until touched).
#[repr(C)]
pub struct Memory {
    pub engine: Space,
    pub cfg: MaybeUninit<Config>,
    pub io: [u8; LOAD_BUF],
    pub exe: [u8; PATH_BUF],
}

/// A mapped [`Memory`], unmapped when dropped.
pub struct Scratch(*mut Memory);

impl Scratch {
    const SIZE: usize = core::mem::size_of::<Memory>();

    pub fn map() -> Option<Scratch> {
        sys::map_anonymous(Self::SIZE).ok().map(|p| Scratch(p.cast()))
    }
}

impl core::ops::Deref for Scratch {
    type Target = Memory;
    fn deref(&self) -> &Memory {
        // SAFETY: a fresh, zero-filled, page-aligned mapping of the struct's size, owned
        // by this value; every field is valid when zeroed (bytes, a FIEMAP header, a
        // MaybeUninit).
        unsafe { &*self.0 }
    }
}

impl core::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut Memory {
        // SAFETY: as in deref, and borrowed mutably through this value only.
        unsafe { &mut *self.0 }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`; its borrows end with this value.
        unsafe { sys::unmap(self.0.cast(), Scratch::SIZE) }
    }
}

/// Cancellation disabled for the library's own work, restored when dropped.
pub struct NoCancel(c_int);

extern "C" {
    /// In libc (GLIBC_2.0 on i386, 2.2.5 on x86_64); async-signal-safe in practice: it
    /// only flips bits in the thread's own descriptor.
    fn pthread_setcancelstate(state: c_int, old: *mut c_int) -> c_int;
}
const PTHREAD_CANCEL_DISABLE: c_int = 1;

impl NoCancel {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let mut old = 0;
        // SAFETY: old is a valid int to write.
        unsafe { pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &mut old) };
        NoCancel(old)
    }
}

impl Drop for NoCancel {
    fn drop(&mut self) {
        let mut ignored = 0;
        // SAFETY: as above; restores the program's own state.
        unsafe { pthread_setcancelstate(self.0, &mut ignored) };
    }
}
