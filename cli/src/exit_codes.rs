//! Every exit status of `nosparse`, named once. Code below `main` returns one of these
//! (or a [`Failure`] carrying one); only `main` exits.

/// All is well: every file whole, the file rewritten (or already whole), the host set up.
pub const SUCCESS: u8 = 0;
/// check: some file is sparse or fragmented.
pub const NOT_WHOLE: u8 = 1;
/// rewrite: refused (in use, hard links, no room, changed during the copy).
pub const REFUSED: u8 = 1;
/// doctor: something needs fixing.
pub const PROBLEMS: u8 = 1;
/// check, rewrite, doctor: some file could not be read or written, or a usage error.
pub const TROUBLE: u8 = 2;
/// vmware: a step failed, or status found something broken.
pub const VMWARE_FAILED: u8 = 1;
/// vmware --check: the step would change something.
pub const WOULD_CHANGE: u8 = 2;
/// The launcher itself failed (bad option, missing build), as env(1) has it.
pub const LAUNCHER_FAILED: u8 = 125;
/// PROGRAM was found but cannot be run.
pub const CANNOT_RUN: u8 = 126;
/// PROGRAM was not found.
pub const NOT_FOUND: u8 = 127;

/// A failure to report on stderr before exiting with `status`.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    pub status: u8,
    pub msg: String,
}

impl Failure {
    pub fn new(status: u8, msg: impl Into<String>) -> Failure {
        Failure { status, msg: msg.into() }
    }
}
