//! The generative differential torture test: a seeded generator combines a filesystem,
//! an fd, a layout, a trigger and settings, actors beside the call (writers, a thread
//! moving the shared offset, a forking thread, a lease) and a fault (one syscall failed
//! by seccomp, SIGKILL at a moment, a nearly full disk); each scenario runs without and
//! with the library on a fresh file and is judged from outside (tests/torture/oracle.rs
//! states the contract).
//!
//! `NOSPARSE_TORTURE_SECS` sets the time budget (default [`CI_SECS`] under CI=true,
//! else [`LOCAL_SECS`]); `NOSPARSE_TORTURE_SEED` replays one scenario. A failure prints
//! its seed, a line saying what it did, and the command that replays it. Needs root.
//!
//! The binary is built for one architecture, and so are the library and the program it
//! runs: scripts/test.sh runs it for x86_64 and for i686, each with the whole budget.

mod common;
#[path = "torture/fsys.rs"]
mod fsys;
#[path = "torture/gen.rs"]
mod gen;
#[path = "torture/oracle.rs"]
mod oracle;
#[path = "torture/run.rs"]
mod run;

use gen::{Full, Scenario};
use std::time::{Duration, Instant};

/// A scenario whose actors did not act during the call is run again, up to this many
/// times, before it is counted as having proved nothing.
const IDLE_RETRIES: u32 = 1;
/// Seconds of scenarios under CI=true, per architecture: two runs fit in CI's time.
const CI_SECS: u64 = 60;
/// Seconds of scenarios in a run by hand, per architecture.
const LOCAL_SECS: u64 = 20;

enum Verdict {
    Pass,
    /// No contract broken, but these actors never acted while the call ran.
    Idle(Vec<&'static str>),
    Fail(Vec<String>),
}

/// Runs `s` without and then with the library, each on a fresh file at the same path.
fn play(s: &Scenario, fss: &fsys::Filesystems) -> Verdict {
    let mnt = fss.mnt(s.fs);
    let path = mnt.map_or_else(|| "/proc/self/mem".into(), |m| m.join(s.path_name()));
    let (must, may) = s.expected_blocks();
    // The mover's blocks are certain only once the program has ended by itself.
    let (must, may) = if s.kill_ms.is_some() {
        (must, may)
    } else {
        (must.into_iter().chain(may.iter().map(|&b| (b, gen::BLOCK))).collect(), Vec::new())
    };
    let _filler = mnt.filter(|_| s.full != Full::No).map(|m| {
        // Tight: fits whatever the library counts; short: does not fit even for root.
        match s.full {
            Full::Tight => fsys::Filler::new(m, s.new_range() + 2 * gen::MIB, false),
            _ => fsys::Filler::new(m, s.new_range() / 2 + gen::SHORT_SPARE, true),
        }
    });
    let free_before = mnt.map(fsys::free);
    let mut runs = Vec::new();
    // A disk meant to be too full for the new range that is not, before either run (xfs
    // gives back what earlier files held at its own pace), is judged as one where it fits.
    let mut short_held = true;
    for preload in [false, true] {
        if let Some(m) = mnt.filter(|_| s.full == Full::Short) {
            short_held &= fsys::free(m) < s.new_range();
        }
        let ran = run::run(s, &path, preload);
        let file = mnt.and_then(|_| run::measure(&path, &must, &may, s.new_range_bounds()));
        if mnt.is_some() {
            let _ = std::fs::remove_file(&path);
        }
        runs.push((ran, file));
    }
    let leaked = match (mnt, free_before) {
        (Some(m), Some(before)) => fsys::leaked(m, before, oracle::LEAK_SLACK),
        _ => 0,
    };
    let (with, without) = (runs.pop().unwrap(), runs.pop().unwrap());
    let mut s = s.clone();
    if !short_held {
        s.full = Full::Tight;
    }
    let s = &s;
    let bad = oracle::judge(s, (&without.0, without.1.as_ref()), (&with.0, with.1.as_ref()), leaked);
    if !bad.is_empty() {
        let mut bad = bad;
        bad.push(format!("the library's stderr:\n{}", with.0.stderr.trim_end()));
        return Verdict::Fail(bad);
    }
    match oracle::idle_actors(s, &with.0) {
        idle if idle.is_empty() => Verdict::Pass,
        idle => Verdict::Idle(idle),
    }
}

fn replay_command(seed: u64) -> String {
    let target = if common::artifacts::TARGET.starts_with("i686") { " --target i686-unknown-linux-gnu" } else { "" };
    format!("NOSPARSE_TORTURE_SEED={seed} cargo test --release{target} --test torture -- --nocapture")
}

#[test]
fn generated_scenarios_behave_as_without_the_library() {
    let s = common::Scratch::new("torture");
    let fss = fsys::Filesystems::new(&s);
    let available = fss.available();
    let i686 = common::artifacts::TARGET.starts_with("i686");
    common::artifacts();
    let replay: Option<u64> = std::env::var("NOSPARSE_TORTURE_SEED").ok().map(|v| v.parse().expect("a seed"));
    let budget = std::env::var("NOSPARSE_TORTURE_SECS")
        .ok()
        .map(|v| v.parse().expect("NOSPARSE_TORTURE_SECS: seconds"))
        .unwrap_or(if common::strict() { CI_SECS } else { LOCAL_SECS });
    let first = replay.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 % 1_000_000_000)
    });
    eprintln!("torture: filesystems {:?}; first seed {first}", available.iter().map(|f| f.name()).collect::<Vec<_>>());
    let start = Instant::now();
    let (mut ran, mut passed, mut idle, mut failed) = (0u64, 0u64, 0u64, Vec::new());
    let mut idle_by_actor: std::collections::BTreeMap<&str, u64> = Default::default();
    for seed in first.. {
        if ran > 0 && (replay.is_some() || start.elapsed() > Duration::from_secs(budget)) {
            break;
        }
        let scenario = Scenario::generate(seed, i686, &available);
        let mut verdict = play(&scenario, &fss);
        for _ in 0..IDLE_RETRIES {
            if !matches!(verdict, Verdict::Idle(_)) {
                break;
            }
            verdict = play(&scenario, &fss);
        }
        ran += 1;
        match verdict {
            Verdict::Pass => passed += 1,
            Verdict::Idle(actors) => {
                idle += 1;
                for a in &actors {
                    *idle_by_actor.entry(a).or_default() += 1;
                }
                if replay.is_some() {
                    eprintln!("seed {seed}: proved nothing about {actors:?}: {}", scenario.describe());
                }
            }
            Verdict::Fail(why) => {
                eprintln!(
                    "FAILED seed {seed}: {}\n  replay: {}\n  {}",
                    scenario.describe(),
                    replay_command(seed),
                    why.join("\n  ")
                );
                failed.push(seed);
            }
        }
        if replay.is_some() && passed == 1 {
            eprintln!("seed {seed} passed: {}", scenario.describe());
        }
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "torture: {ran} scenarios in {secs:.1} s ({:.1}/s): {passed} passed, {idle} proved nothing about an actor \
         (it never acted during the call: {idle_by_actor:?}), {} failed{}",
        ran as f64 / secs,
        failed.len(),
        if failed.is_empty() { String::new() } else { format!(": seeds {failed:?}") }
    );
    assert!(failed.is_empty(), "{} of {ran} scenarios failed: seeds {failed:?}", failed.len());
}
