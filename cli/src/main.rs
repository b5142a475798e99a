//! The `nosparse` command; everything is in the library (`nosparse_cli`), and this is
//! the only place the process exits.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(nosparse_cli::main(std::env::args_os().skip(1).collect()))
}
