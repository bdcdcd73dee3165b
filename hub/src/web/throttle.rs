//! Login throttling: after a few wrong passwords for one user name, further attempts for that
//! name are refused for a while, doubling up to a cap. The count is also kept for the whole
//! listener, so guessing across many names is slowed down too.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong passwords allowed before the first pause.
const FREE_ATTEMPTS: u32 = 5;
const FIRST_PAUSE: Duration = Duration::from_secs(30);
const MAX_PAUSE: Duration = Duration::from_secs(15 * 60);
/// A name's failures are forgotten after this long without one.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Failures across all names in one window before everyone is slowed down.
const GLOBAL_LIMIT: u32 = 100;
const GLOBAL_WINDOW: Duration = Duration::from_secs(60);

struct Record {
    failures: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

#[derive(Default)]
pub struct Throttle {
    names: Mutex<HashMap<String, Record>>,
    global: Mutex<(u32, Option<Instant>)>,
}

impl Throttle {
    /// `Err(seconds to wait)` if attempts for `name` are paused now.
    pub fn check(&self, name: &str) -> Result<(), u64> {
        let now = Instant::now();
        if let Ok(g) = self.global.lock() {
            if let Some(start) = g.1 {
                if g.0 >= GLOBAL_LIMIT && now.duration_since(start) < GLOBAL_WINDOW {
                    return Err((GLOBAL_WINDOW - now.duration_since(start)).as_secs().max(1));
                }
            }
        }
        let Ok(names) = self.names.lock() else {
            return Ok(());
        };
        match names.get(name).and_then(|r| r.locked_until) {
            Some(until) if until > now => Err((until - now).as_secs().max(1)),
            _ => Ok(()),
        }
    }

    pub fn failed(&self, name: &str) {
        let now = Instant::now();
        if let Ok(mut g) = self.global.lock() {
            match g.1 {
                Some(start) if now.duration_since(start) < GLOBAL_WINDOW => g.0 += 1,
                _ => *g = (1, Some(now)),
            }
        }
        let Ok(mut names) = self.names.lock() else {
            return;
        };
        names.retain(|_, r| now.duration_since(r.last) < FORGET_AFTER);
        let r = names.entry(name.to_owned()).or_insert(Record {
            failures: 0,
            last: now,
            locked_until: None,
        });
        r.failures += 1;
        r.last = now;
        if r.failures >= FREE_ATTEMPTS {
            let doublings = (r.failures - FREE_ATTEMPTS).min(10);
            let pause = (FIRST_PAUSE * 2u32.pow(doublings)).min(MAX_PAUSE);
            r.locked_until = Some(now + pause);
        }
    }

    pub fn succeeded(&self, name: &str) {
        if let Ok(mut names) = self.names.lock() {
            names.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_pause_the_name_and_not_others() {
        let t = Throttle::default();
        for _ in 0..FREE_ATTEMPTS - 1 {
            t.failed("ann");
            assert!(t.check("ann").is_ok());
        }
        t.failed("ann");
        let wait = t.check("ann").expect_err("paused after five failures");
        assert!((1..=30).contains(&wait), "{wait}");
        assert!(t.check("bob").is_ok());
        t.succeeded("ann");
        assert!(t.check("ann").is_ok());
    }

    #[test]
    fn pauses_double_up_to_the_cap() {
        let t = Throttle::default();
        for _ in 0..FREE_ATTEMPTS + 30 {
            t.failed("ann");
        }
        let wait = t.check("ann").expect_err("paused");
        assert!(
            wait <= MAX_PAUSE.as_secs() && wait > FIRST_PAUSE.as_secs(),
            "{wait}"
        );
    }
}
