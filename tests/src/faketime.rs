//! A faked system clock for the hub process under test: libfaketime, preloaded, reads the
//! offset from a file at every call (the monotonic clock stays real, so the hub's timers and
//! timeouts run as usual). `tests/run` installs it.

use std::path::Path;
use std::time::Duration;

/// Where Debian's libfaketime is.
pub const LIBRARY: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// An offset file and the environment that makes a hub read its clock through it.
pub struct FakeClock {
    file: tempfile::NamedTempFile,
}

impl FakeClock {
    /// Starts at the real time (`+0`).
    pub fn new() -> FakeClock {
        assert!(
            Path::new(LIBRARY).exists(),
            "{LIBRARY} is required (tests/run installs libfaketime)"
        );
        let clock = FakeClock {
            file: tempfile::NamedTempFile::new().expect("offset file"),
        };
        clock.set("+0");
        clock
    }

    /// The environment for `Hub::start_with_env`.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("LD_PRELOAD", LIBRARY.to_owned()),
            (
                "FAKETIME_TIMESTAMP_FILE",
                self.file.path().display().to_string(),
            ),
            ("FAKETIME_NO_CACHE", "1".to_owned()),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_owned()),
        ]
    }

    /// Moves the clock to `offset` from the real time (`"+1h"`, `"-2h"`, `"+175h"`), and gives
    /// the hub's next reading a moment.
    pub fn set(&self, offset: &str) {
        std::fs::write(self.file.path(), format!("{offset}\n")).expect("faketime file");
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Default for FakeClock {
    fn default() -> Self {
        Self::new()
    }
}
