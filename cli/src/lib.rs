//! `nosparse`: runs a program with libnosparse.so preloaded, checks files' layout,
//! rewrites a fragmented file whole, and checks the host's setup. See `nosparse --help`.
//! The binary (`main.rs`) only calls [`main`] and exits with what it returns.

#![deny(unsafe_op_in_unsafe_fn)]

/// `print!` for the command's output: a write error is kept for `main` to report (see
/// [`human::out`]) instead of a panic.
macro_rules! out {
    ($($arg:tt)*) => { $crate::human::out(format_args!($($arg)*)) };
}

/// `println!` for the command's output, as [`out!`].
macro_rules! outln {
    ($($arg:tt)*) => { $crate::human::out(format_args!("{}\n", format_args!($($arg)*))) };
}

pub mod args;
pub mod check;
pub mod conf;
pub mod docs;
pub mod doctor;
pub mod elf;
pub mod exit_codes;
pub mod human;
pub mod inherited;
pub mod launch;
pub mod loader;
pub mod paths;
pub mod pattern;
pub mod rewrite;
pub mod seccomp;
pub mod supervise;
pub mod vmware;

use args::Command;
use exit_codes::{Failure, Status};

/// Runs the command line `args` (without the program's name); the exit status.
pub fn main(args: Vec<std::ffi::OsString>) -> u8 {
    let result = args::parse(args).and_then(|command| match command {
        Command::Help(text) => {
            out!("{text}");
            Ok(Status::Success)
        }
        Command::Version => {
            outln!("nosparse {}", env!("CARGO_PKG_VERSION"));
            Ok(Status::Success)
        }
        Command::Launch(l) => launch::run(l),
        Command::Check(c) => Ok(check::run(&c)),
        Command::Rewrite(r) => Ok(rewrite::run(&r)),
        Command::Doctor(d) => doctor::run(&d),
        Command::Vmware(v) => vmware::run_command(&v),
    });
    // Output that could not be written makes the run a failure, whatever it found.
    let result = result.and_then(|status| human::out_done().map(|()| status));
    let status = result.unwrap_or_else(|Failure { status, msg }| {
        human::err(format_args!("nosparse: {msg}"));
        status
    });
    status.code()
}
