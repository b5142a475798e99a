//! Writes the files generated from the settings table and cli/src/docs.rs: the man
//! pages nosparse(1) and nosparse.conf(5), and the bash completion. Run from anywhere:
//! `cargo run -p nosparse-cli --example gen-docs`. Prints the README's settings table,
//! which is pasted by hand (a test checks it).

use std::path::Path;

fn main() -> std::io::Result<()> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("cli/ sits in the repository");
    for (path, text) in nosparse_cli::docs::generated() {
        let p = repo.join(path);
        std::fs::create_dir_all(p.parent().expect("a directory"))?;
        std::fs::write(&p, text)?;
        eprintln!("wrote {}", p.display());
    }
    print!("{}", nosparse_cli::docs::readme_table());
    Ok(())
}
