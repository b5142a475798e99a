//! Every exit status of `nosparse`, named once with what it means: `--help` and the man
//! pages' EXIT STATUS are made from [`Status::ALL`]. Code below `main` returns a
//! [`Status`] (or a [`Failure`] carrying one); only `main` exits.

/// What a run of `nosparse` ends with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// All is well.
    Success,
    /// check: some file is not whole.
    NotWhole,
    /// rewrite: refused, or the result is still over the limit.
    Refused,
    /// doctor: something needs fixing.
    Problems,
    /// vmware: a step failed, or status found something broken.
    VmwareFailed,
    /// A file could not be read or written, or a usage error.
    Trouble,
    /// vmware --check: the step would change something.
    WouldChange,
    /// The launcher itself failed (bad option, missing build), as env(1) has it.
    LauncherFailed,
    /// PROGRAM was found but cannot be run.
    CannotRun,
    /// PROGRAM was not found.
    NotFound,
    /// PROGRAM ran under the supervisor and ended with this status (or 128 + the signal
    /// that killed it), which the launcher passes on; documented with `Success`.
    Program(u8),
}

impl Status {
    /// Every status, in the order the documentation lists them.
    pub const ALL: [Status; 10] = [
        Status::Success,
        Status::NotWhole,
        Status::Refused,
        Status::Problems,
        Status::VmwareFailed,
        Status::Trouble,
        Status::WouldChange,
        Status::LauncherFailed,
        Status::CannotRun,
        Status::NotFound,
    ];

    pub const fn code(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::NotWhole | Status::Refused | Status::Problems | Status::VmwareFailed => 1,
            Status::Trouble | Status::WouldChange => 2,
            Status::LauncherFailed => 125,
            Status::CannotRun => 126,
            Status::NotFound => 127,
            Status::Program(code) => code,
        }
    }

    /// What it means, as the documentation says it.
    pub const fn meaning(self) -> &'static str {
        match self {
            Status::Success => {
                "PROGRAM's own status when it runs; otherwise success: every file whole, the file rewritten or \
                 already whole, the setup sound, the vmware step done or unchanged"
            }
            Status::NotWhole => {
                "check: some file is sparse or fragmented, or a directory had no file to check (none matched \
                 --pattern)"
            }
            Status::Refused => {
                "rewrite: refused (the copy kept the original when it came out worse), or the result is still \
                 over the limit"
            }
            Status::Problems => "doctor: something needs fixing",
            Status::VmwareFailed => "vmware: a step failed, or status found something broken",
            Status::Trouble => "check, rewrite, doctor, vmware: a file could not be read or written, or a usage error",
            Status::WouldChange => "vmware --check: the step would change something",
            Status::LauncherFailed => {
                "the launcher failed: a bad option or value, or the build PROGRAM needs is missing"
            }
            Status::CannotRun => "PROGRAM was found but cannot be run",
            Status::NotFound => "PROGRAM was not found",
            Status::Program(_) => "PROGRAM's own status, passed on from under the supervisor",
        }
    }
}

/// The statuses among `of` as (code, meanings joined), one row per code, in order.
pub fn rows(of: &[Status]) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = Vec::new();
    for s in of {
        let code = s.code().to_string();
        match rows.iter_mut().find(|(c, _)| *c == code) {
            Some((_, text)) => {
                text.push_str("; ");
                text.push_str(s.meaning());
            }
            None => rows.push((code, s.meaning().to_string())),
        }
    }
    rows
}

/// A failure to report on stderr before exiting with `status`.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    pub status: Status,
    pub msg: String,
}

impl Failure {
    pub fn new(status: Status, msg: impl Into<String>) -> Failure {
        Failure { status, msg: msg.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_code() {
        let rows = rows(&Status::ALL);
        let codes: Vec<&str> = rows.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(codes, ["0", "1", "2", "125", "126", "127"]);
        assert!(rows[1].1.starts_with("check: ") && rows[1].1.contains("; doctor: "));
    }
}
