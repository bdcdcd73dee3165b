//! Web sign-in throttling that stops guessing without locking real staff out.
//!
//! Failures are counted per (user name, source address) and per source address:
//! - after [`FREE_ATTEMPTS`] wrong passwords for one name from one address, that name is paused
//!   *for that address*, doubling up to [`MAX_PAUSE`]; the same person signing in from their own
//!   desk is not affected by someone guessing their password elsewhere;
//! - an address with [`SOURCE_LIMIT`] failures within [`SOURCE_WINDOW`], whatever the names, is
//!   paused for [`SOURCE_PAUSE`]: guessing under many random names slows only the guesser.
//!
//! There is no site-wide pause: failures under random names can never lock every account. The
//! argon2 checks themselves run on the bounded pool shared with MQTT logins
//! (`broker::auth::Argon2Pool`), so a flood of sign-ins costs bounded CPU and memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong passwords for one name from one address allowed before the first pause.
const FREE_ATTEMPTS: u32 = 5;
const FIRST_PAUSE: Duration = Duration::from_secs(30);
const MAX_PAUSE: Duration = Duration::from_secs(15 * 60);
/// A (name, address)'s failures are forgotten after this long without one.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Failures from one address, across all names, before the address is paused.
const SOURCE_LIMIT: u32 = 20;
const SOURCE_WINDOW: Duration = Duration::from_secs(600);
const SOURCE_PAUSE: Duration = Duration::from_secs(600);
/// Most (name, address) records kept; past it the oldest are dropped.
const MAX_RECORDS: usize = 10_000;

struct Record {
    failures: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

struct Source {
    window_start: Instant,
    failures: u32,
    paused_until: Option<Instant>,
}

#[derive(Default)]
pub struct Throttle {
    names: Mutex<HashMap<(String, IpAddr), Record>>,
    sources: Mutex<HashMap<IpAddr, Source>>,
}

impl Throttle {
    /// `Err(seconds to wait)` if attempts for `name` from `source` are paused now.
    pub fn check(&self, name: &str, source: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        if let Ok(sources) = self.sources.lock() {
            if let Some(until) = sources.get(&source).and_then(|s| s.paused_until) {
                if until > now {
                    return Err((until - now).as_secs().max(1));
                }
            }
        }
        let Ok(names) = self.names.lock() else {
            return Ok(());
        };
        match names
            .get(&(name.to_owned(), source))
            .and_then(|r| r.locked_until)
        {
            Some(until) if until > now => Err((until - now).as_secs().max(1)),
            _ => Ok(()),
        }
    }

    pub fn failed(&self, name: &str, source: IpAddr) {
        let now = Instant::now();
        if let Ok(mut sources) = self.sources.lock() {
            if sources.len() > MAX_RECORDS {
                sources.retain(|_, s| now.duration_since(s.window_start) < SOURCE_WINDOW);
            }
            let s = sources.entry(source).or_insert(Source {
                window_start: now,
                failures: 0,
                paused_until: None,
            });
            if now.duration_since(s.window_start) >= SOURCE_WINDOW {
                s.window_start = now;
                s.failures = 0;
            }
            s.failures += 1;
            if s.failures >= SOURCE_LIMIT {
                s.paused_until = Some(now + SOURCE_PAUSE);
            }
        }
        let Ok(mut names) = self.names.lock() else {
            return;
        };
        names.retain(|_, r| now.duration_since(r.last) < FORGET_AFTER);
        if names.len() >= MAX_RECORDS {
            if let Some(oldest) = names
                .iter()
                .min_by_key(|(_, r)| r.last)
                .map(|(k, _)| k.clone())
            {
                names.remove(&oldest);
            }
        }
        let r = names.entry((name.to_owned(), source)).or_insert(Record {
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

    pub fn succeeded(&self, name: &str, source: IpAddr) {
        if let Ok(mut names) = self.names.lock() {
            names.remove(&(name.to_owned(), source));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 66));
    const DESK: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));

    #[test]
    fn guessing_one_name_pauses_only_the_guesser() {
        let t = Throttle::default();
        for _ in 0..FREE_ATTEMPTS {
            t.failed("admin", ATTACKER);
        }
        assert!(t.check("admin", ATTACKER).is_err());
        assert!(t.check("admin", DESK).is_ok());
    }

    #[test]
    fn random_names_pause_the_source_not_the_site() {
        let t = Throttle::default();
        for i in 0..100 {
            t.failed(&format!("random{i}"), ATTACKER);
        }
        assert!(t.check("sam", ATTACKER).is_err());
        assert!(t.check("sam", DESK).is_ok());
        assert!(t.check("admin", DESK).is_ok());
    }
}
