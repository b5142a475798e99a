//! The library's settings, read once per process at the first candidate call, kept
//! with an atomic state and no lock; and the thresholds the hooks compare against.

use crate::config::{self, Config};
use crate::settings::Trigger;
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicI64, AtomicU8, Ordering};

/// The smallest offset a one-byte `pwrite` needs to be looked at: `NOSPARSE_MIN_SIZE - 1`,
/// or `i64::MAX` when off. Zero until the settings are read, so that early calls take
/// the slow path, which reads them.
pub static PWRITE_THRESHOLD: AtomicI64 = AtomicI64::new(0);
/// The same for a one-byte `write` at the current file offset: `i64::MAX` when the
/// trigger is off, so that no one-byte write costs a system call.
pub static WRITE_THRESHOLD: AtomicI64 = AtomicI64::new(0);
/// The smallest length an `ftruncate` needs to be looked at: `NOSPARSE_MIN_SIZE`.
pub static TRUNCATE_THRESHOLD: AtomicI64 = AtomicI64::new(0);

/// The settings, once read: written once by the thread that wins [`STATE`], then only
/// read.
struct Cell(UnsafeCell<MaybeUninit<Config>>);
// SAFETY: written only by the one thread that moves STATE from UNREAD to READING, and
// read only after STATE is READY (release/acquire).
unsafe impl Sync for Cell {}
static READ: Cell = Cell(UnsafeCell::new(MaybeUninit::uninit()));
static STATE: AtomicU8 = AtomicU8::new(UNREAD);
const UNREAD: u8 = 0;
const READING: u8 = 1;
const READY: u8 = 2;

/// The settings, if they have been read.
pub fn ready() -> Option<&'static Config> {
    (STATE.load(Ordering::Acquire) == READY).then(|| {
        // SAFETY: READY means the cell was fully written (release store in `settings`).
        unsafe { (*READ.0.get()).assume_init_ref() }
    })
}

/// The settings, read on first use. No lock: a caller that finds them being read by
/// another thread (or by the code its signal handler interrupted) reads its own copy
/// into `spare`, silently. `None`: they cannot be read just now (no descriptor free,
/// say): this call is left alone and the next one tries again.
pub fn settings<'a>(spare: &'a mut MaybeUninit<Config>, io: &mut [u8], exe: &mut [u8]) -> Option<&'a Config> {
    const EXE: &[u8] = b"/proc/self/exe\0";
    match STATE.compare_exchange(UNREAD, READING, Ordering::Acquire, Ordering::Acquire) {
        Err(READY) => ready(),
        Ok(_) => {
            // SAFETY: this thread alone moved STATE to READING: no one else touches the cell.
            let cell = unsafe { &mut *READ.0.get() };
            let cfg = cell.write(config::DEFAULT);
            if config::load(cfg, io, exe, EXE, true).is_err() {
                STATE.store(UNREAD, Ordering::Release);
                return None;
            }
            arm(cfg);
            STATE.store(READY, Ordering::Release);
            Some(cfg)
        }
        Err(_) => {
            let cfg = spare.write(config::DEFAULT);
            config::load(cfg, io, exe, EXE, false).ok().map(|()| &*cfg)
        }
    }
}

/// Sets the hooks' thresholds from the settings.
fn arm(cfg: &Config) {
    let at = |trigger: Trigger, v: u64| {
        if cfg.disabled || !cfg.triggers.has(trigger) {
            i64::MAX
        } else {
            v.min(i64::MAX as u64) as i64
        }
    };
    PWRITE_THRESHOLD.store(at(Trigger::Pwrite, cfg.min_size.saturating_sub(1)), Ordering::Relaxed);
    WRITE_THRESHOLD.store(at(Trigger::Write, cfg.min_size.saturating_sub(1)), Ordering::Relaxed);
    TRUNCATE_THRESHOLD.store(at(Trigger::Ftruncate, cfg.min_size), Ordering::Relaxed);
}
