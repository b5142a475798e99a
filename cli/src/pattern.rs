//! Globs as fnmatch(3) without flags reads them, for `check --pattern`: core's
//! `glob::fnmatch`, with `[^` read as glibc reads it in this process's environment.

use nosparse_core::glob::{self, Caret};

/// Whether `text` matches `pattern`, as `fnmatch(pattern, text, 0) == 0` says.
pub fn fnmatch(pattern: &[u8], text: &[u8]) -> bool {
    let caret = if std::env::var_os("POSIXLY_CORRECT").is_some() { Caret::Literal } else { Caret::Negates };
    glob::fnmatch(pattern, text, caret)
}
