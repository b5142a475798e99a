//! Fuzzes the setting parsers: the input is split at NUL bytes into values for the
//! NOSPARSE_* variables, and read whole as a settings file. Whatever they hold, parsing
//! must not panic, every rejected value must be reported once, each value the library
//! accepts must pass the settings table's check, and an accepted size must round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nosparse_core::config::{BadList, Globs, DEFAULT};
use nosparse_core::settings::{check_globs, parse_size, parse_skip_fs, parse_triggers, SETTINGS};

fuzz_target!(|data: &[u8]| {
    let values: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    let mut cfg = DEFAULT;
    let mut bad = BadList::new();
    cfg.apply_env(
        |name| {
            let i = SETTINGS.iter().position(|s| s.name == name)?;
            values.get(i).copied()
        },
        &mut bad,
    );
    let reported: Vec<_> = bad.iter().map(|b| b.name).collect();
    for (i, s) in SETTINGS.iter().enumerate() {
        if let Some(v) = values.get(i) {
            let accepted = s.check(v).is_ok() && !v.is_empty();
            assert_eq!(accepted, !reported.contains(&s.name.as_bytes()), "{}", s.name);
        }
    }
    assert!(cfg.min_size <= i64::MAX as u64);
    if let Ok(n) = parse_size(data) {
        assert_eq!(parse_size(n.to_string().as_bytes()), Ok(n));
    }
    let _ = parse_skip_fs(data);
    let _ = parse_triggers(data);
    if check_globs(data).is_ok() {
        assert_eq!(Globs::parse(data).map(|g| g.as_bytes().to_vec()), Ok(data.to_vec()));
    }
    let mut from_file = DEFAULT;
    from_file.apply_file(data, &mut BadList::new());
    assert!(from_file.min_size <= i64::MAX as u64);
});
