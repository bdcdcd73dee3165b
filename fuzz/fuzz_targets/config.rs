//! The configuration parser: any text is either a configuration or a list of problems, each
//! with a line and a key; it never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(problems) = locker_config::parse(&text, "fuzz.toml") {
        assert!(!problems.0.is_empty());
        for p in &problems.0 {
            assert!(!p.key.is_empty(), "{p}");
        }
    }
});
