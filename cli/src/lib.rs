//! `nosparse`: runs a program with libnosparse.so preloaded, checks files' layout,
//! rewrites a fragmented file whole, and checks the host's setup. See `nosparse --help`.
//! The binary (`main.rs`) only calls [`main`] and exits with what it returns.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod args;
pub mod check;
pub mod conf;
pub mod docs;
pub mod doctor;
pub mod elf;
pub mod exit_codes;
pub mod human;
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
            print!("{text}");
            Ok(Status::Success)
        }
        Command::Version => {
            println!("nosparse {}", env!("CARGO_PKG_VERSION"));
            Ok(Status::Success)
        }
        Command::Launch(l) => launch::run(l),
        Command::Check(c) => Ok(check::run(&c)),
        Command::Rewrite(r) => Ok(rewrite::run(&r)),
        Command::Doctor(d) => doctor::run(&d),
        Command::Vmware(v) => vmware::run_command(&v),
    });
    let status = result.unwrap_or_else(|Failure { status, msg }| {
        eprintln!("nosparse: {msg}");
        status
    });
    status.code()
}
