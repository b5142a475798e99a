//! Differential testing: seeded random sequences of file operations (examples/ops.rs:
//! creation calls, pwrites of random lengths and offsets, ftruncate, fsync, reads,
//! O_APPEND and read-only fds) replayed with and without the library, while a second
//! writer thread runs a sequence of its own on a fourth file (two of its fds sharing one
//! file offset). Every operation's return value, errno, file offset and bytes read must
//! match, and so must the files. Fixed seeds, plus one random seed that is printed so a
//! failure can be replayed with NOSPARSE_TEST_SEED=N.

mod common;

use common::*;

/// Settings for a run: (variable, value) pairs.
type Settings = &'static [(&'static str, &'static str)];

/// (what, settings, --max-offset): the fallocate path with many small creations, and
/// the zero path.
const MODES: [(&str, Settings, u64); 2] = [
    ("fallocate", &[("NOSPARSE_MIN_SIZE", "1M")], 96 * MIB),
    ("zero", &[("NOSPARSE_MIN_SIZE", "1M"), ("NOSPARSE_METHOD", "zero")], 16 * MIB),
];
const FIXED_SEEDS: [u64; 6] = [1, 2, 3, 5, 8, 13];
const OPS_PER_SEQUENCE: u64 = 300;

fn seeds() -> Vec<u64> {
    let extra = std::env::var("NOSPARSE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        t.as_nanos() as u64 ^ std::process::id() as u64
    });
    eprintln!("differential: random seed {extra} (replay with NOSPARSE_TEST_SEED={extra})");
    FIXED_SEEDS.iter().copied().chain([extra]).collect()
}

#[test]
fn random_operation_sequences_give_identical_results_and_files() {
    let s = Scratch::new("differential");
    let (mut sequences, mut operations, mut files, mut bytes, mut creations) = (0u64, 0u64, 0u64, 0u64, 0usize);
    for seed in seeds() {
        for (mode, env, max) in MODES {
            let dirs = [s.path(&format!("{mode}-{seed}-without")), s.path(&format!("{mode}-{seed}-with"))];
            let mut outs = Vec::new();
            for (dir, preload) in dirs.iter().zip([false, true]) {
                std::fs::create_dir_all(dir).unwrap();
                let mut run = example("ops");
                run.args_mut().extend(
                    ["--dir", &dir.display().to_string(), "--seed", &seed.to_string()]
                        .into_iter()
                        .map(String::from)
                        .chain([
                            "--count".into(),
                            OPS_PER_SEQUENCE.to_string(),
                            "--max-offset".into(),
                            max.to_string(),
                            "--writer".into(),
                        ]),
                );
                for (k, v) in env {
                    run = run.env(k, v);
                }
                if !preload {
                    run = run.without_library();
                }
                outs.push(run.run());
            }
            let (without, with) = (&outs[0], &outs[1]);
            for (i, (a, b)) in without.stdout.lines().zip(with.stdout.lines()).enumerate() {
                assert_eq!(a, b, "{mode} seed {seed}: operation {i} differs\nlibrary log:\n{}", with.stderr);
            }
            assert_eq!(without.stdout.lines().count(), with.stdout.lines().count());
            creations += with.stderr.matches("nosparse: preallocated").count();
            for f in ["f0", "f1", "f2", "w3"] {
                assert_same_content(&dirs[0].join(f), &dirs[1].join(f));
                bytes += std::fs::metadata(dirs[0].join(f)).unwrap().len();
                files += 1;
            }
            sequences += 1;
            operations += without.stdout.lines().count() as u64;
            for d in &dirs {
                std::fs::remove_dir_all(d).unwrap();
            }
        }
    }
    assert!(creations > 0, "no operation was preallocated: the comparison would prove nothing");
    eprintln!(
        "SUMMARY differential: {sequences} sequences, {operations} operations, {creations} preallocations, \
         {files} file pairs, {bytes} bytes compared, 0 differences"
    );
}
