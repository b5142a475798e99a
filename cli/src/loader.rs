//! What a program's loader makes of `$LIB` and which directories it trusts for a
//! set-user-ID program's preloads. glibc 2.33 and later say so themselves
//! (`ld.so --list-diagnostics`); for older loaders it is worked out from where the
//! loader and its C library live, which is where `$LIB` points on every distribution
//! that has one (Debian's multiarch and biarch, Red Hat's lib64).

use crate::elf::Class;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What a loader says about itself, or what was worked out for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loader {
    pub path: PathBuf,
    /// What `$LIB` expands to, e.g. `lib/x86_64-linux-gnu` or `lib32`.
    pub dst_lib: String,
    /// The directories a set-user-ID program's preloads may come from.
    pub system_dirs: Vec<PathBuf>,
    /// Whether the loader said so itself (else it was worked out).
    pub asked: bool,
}

/// Where `$LIB` can point for each class, most specific first.
const LIB_DIRS_64: [&str; 2] = ["lib/x86_64-linux-gnu", "lib64"];
const LIB_DIRS_32: [&str; 3] = ["lib/i386-linux-gnu", "lib32", "lib"];

/// The C library's file, found in the directory `$LIB` names.
const LIBC: &str = "libc.so.6";

/// The loader at `interp`, which runs programs of `class`.
pub fn find(interp: &Path, class: Class) -> Result<Loader, String> {
    if let Some(l) = ask(interp) {
        return Ok(l);
    }
    let canonical = std::fs::canonicalize(interp).unwrap_or_else(|_| interp.to_path_buf());
    guess(interp, &canonical, class, &|p: &Path| p.is_file()).ok_or_else(|| {
        format!(
            "cannot tell where $LIB points for the loader {}: it does not say (glibc before 2.33), and no {LIBC} \
             is in its own directory nor in any of {}; set LD_PRELOAD to the library yourself",
            interp.display(),
            candidates(class).join(" ")
        )
    })
}

/// Asks a glibc 2.33+ loader; None when it cannot answer.
pub fn ask(interp: &Path) -> Option<Loader> {
    let out = Command::new(interp)
        .arg("--list-diagnostics")
        .env_remove("LD_PRELOAD")
        .env_remove("LD_LIBRARY_PATH")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let value = |line: &str| line.split_once('=').map(|(_, v)| v.trim_matches('"').to_string());
    let dst_lib = text.lines().find(|l| l.starts_with("dl_dst_lib=")).and_then(value)?;
    let system_dirs = text.lines().filter(|l| l.starts_with("path.system_dirs[")).filter_map(value);
    Some(Loader { path: interp.into(), dst_lib, system_dirs: system_dirs.map(PathBuf::from).collect(), asked: true })
}

fn candidates(class: Class) -> &'static [&'static str] {
    match class {
        Class::Elf64 => &LIB_DIRS_64,
        Class::Elf32 => &LIB_DIRS_32,
    }
}

/// `$LIB` for a loader that cannot say: the directory the loader itself lives in
/// (`/usr/lib32/ld-linux.so.2` → `lib32`), when its C library is there; else the first
/// of the class's usual directories that holds one. `exists` tells whether a file is
/// there (a parameter, for the tests).
pub fn guess(interp: &Path, canonical: &Path, class: Class, exists: &dyn Fn(&Path) -> bool) -> Option<Loader> {
    let own = canonical.parent().map(|d| d.strip_prefix("/usr").unwrap_or(d)).and_then(|d| d.strip_prefix("/").ok());
    let own = own.and_then(|d| d.to_str()).filter(|d| !d.is_empty());
    let has_libc = |dir: &str| ["/", "/usr/"].iter().any(|root| exists(&Path::new(root).join(dir).join(LIBC)));
    let dst_lib = own.into_iter().chain(candidates(class).iter().copied()).find(|d| has_libc(d))?;
    Some(Loader {
        path: interp.into(),
        dst_lib: dst_lib.to_string(),
        // glibc's system directories are its slibdir and libdir: /$LIB and /usr/$LIB.
        system_dirs: vec![Path::new("/").join(dst_lib), Path::new("/usr").join(dst_lib)],
        asked: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guessed(interp: &str, canonical: &str, class: Class, files: &[&str]) -> Option<String> {
        let exists = |p: &Path| files.iter().any(|f| Path::new(f) == p);
        guess(Path::new(interp), Path::new(canonical), class, &exists).map(|l| l.dst_lib)
    }

    #[test]
    fn layouts() {
        let debian64 = ["/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib32/libc.so.6"];
        let l = "/lib64/ld-linux-x86-64.so.2";
        let c = "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2";
        assert_eq!(guessed(l, c, Class::Elf64, &debian64).as_deref(), Some("lib/x86_64-linux-gnu"));
        // libc6-i386: the 32-bit loader lives in /usr/lib32.
        let c = "/usr/lib32/ld-linux.so.2";
        assert_eq!(guessed("/lib/ld-linux.so.2", c, Class::Elf32, &debian64).as_deref(), Some("lib32"));
        // Multiarch libc6:i386.
        let c = "/usr/lib/i386-linux-gnu/ld-linux.so.2";
        let files = ["/usr/lib/i386-linux-gnu/libc.so.6"];
        assert_eq!(guessed("/lib/ld-linux.so.2", c, Class::Elf32, &files).as_deref(), Some("lib/i386-linux-gnu"));
        // Red Hat, before merged /usr: /lib64 and /lib are real directories.
        let rh = ["/lib64/libc.so.6", "/lib/libc.so.6"];
        assert_eq!(guessed(l, "/lib64/ld-2.17.so", Class::Elf64, &rh).as_deref(), Some("lib64"));
        assert_eq!(guessed("/lib/ld-linux.so.2", "/lib/ld-2.17.so", Class::Elf32, &rh).as_deref(), Some("lib"));
        // A loader somewhere else: the class's usual directories decide.
        assert_eq!(guessed(l, "/opt/x/ld.so", Class::Elf64, &rh).as_deref(), Some("lib64"));
        assert_eq!(guessed(l, "/opt/x/ld.so", Class::Elf64, &[]), None);
        let g = guess(Path::new(l), Path::new("/lib64/ld-2.17.so"), Class::Elf64, &|p| {
            rh.iter().any(|f| Path::new(f) == p)
        });
        assert_eq!(g.unwrap().system_dirs, [PathBuf::from("/lib64"), PathBuf::from("/usr/lib64")]);
    }

    #[test]
    fn the_guess_agrees_with_this_hosts_loaders() {
        for (interp, class) in [("/lib64/ld-linux-x86-64.so.2", Class::Elf64), ("/lib/ld-linux.so.2", Class::Elf32)] {
            let (Some(asked), Ok(canonical)) = (ask(Path::new(interp)), std::fs::canonicalize(interp)) else {
                continue; // that class is not installed, or its loader is older than 2.33
            };
            let g = guess(Path::new(interp), &canonical, class, &|p: &Path| p.is_file()).expect(interp);
            assert_eq!(g.dst_lib, asked.dst_lib, "{interp}");
            for d in &g.system_dirs {
                assert!(asked.system_dirs.iter().any(|a| a.components().eq(d.components())), "{interp}: {d:?}");
            }
        }
    }
}
