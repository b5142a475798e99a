//! Fuzzes the setting parsers: the input is split at NUL bytes into values for the
//! NOSPARSE_* variables, and read whole as a settings file. Whatever they hold, parsing
//! must not panic, every rejected value must be reported once, and an accepted size must
//! round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nosparse_core::config::{parse_size, parse_skip_fs, parse_triggers, Config, Matcher, NAMES};

fuzz_target!(|data: &[u8]| {
    let values: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    let (cfg, bad) = Config::from_lookup(|name| {
        let i = NAMES.iter().position(|n| *n == name)?;
        values.get(i).map(|v| v.to_vec())
    });
    assert!(bad.len() <= values.len().min(NAMES.len()));
    for b in &bad {
        assert_eq!(bad.iter().filter(|o| o.name == b.name).count(), 1);
    }
    assert!(cfg.min_size <= i64::MAX as u64);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(n) = parse_size(text) {
            assert_eq!(parse_size(&n.to_string()), Ok(n));
        }
        let _ = parse_skip_fs(text);
        let _ = parse_triggers(text);
    }
    let _ = Matcher::parse(data);
    let (from_file, _) = Config::from_sources(Some(data), None);
    assert!(from_file.min_size <= i64::MAX as u64);
});
