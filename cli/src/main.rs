//! The `nosparse` command; everything is in the library (`nosparse_cli`), and this is
//! the only place the process exits.

use std::process::ExitCode;

/// Runs before Rust's runtime, which ignores SIGPIPE: PROGRAM must start with the
/// signal state this process was started with (see `nosparse_cli::inherited`).
#[used]
#[link_section = ".init_array"]
static RECORD_INHERITED: extern "C" fn() = {
    extern "C" fn record() {
        nosparse_cli::inherited::record();
    }
    record
};

fn main() -> ExitCode {
    // As other tools: a reader that went away (`nosparse check DIR | head -1`) ends the
    // command quietly. Rust starts with SIGPIPE ignored, which would make every write fail
    // with EPIPE instead.
    // SAFETY: restoring the default action of a signal, before any thread is started.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    ExitCode::from(nosparse_cli::main(std::env::args_os().skip(1).collect()))
}
