//! Rate limits for log lines that repeat while something stays broken: a dead bus must not
//! flood the journal, and the line that does get through says how many were held back.

use std::time::{Duration, Instant};

/// Lets one line through per interval and counts the rest.
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    pub fn new(interval: Duration) -> Self {
        LogLimiter {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(held_back)` when a line may be logged now (with how many were dropped since the
    /// last one), `None` when this one is to be dropped.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    /// Forget the history, so the next problem after a recovery is logged at once.
    pub fn reset(&mut self) {
        self.last = None;
        self.suppressed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_of_the_rest() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(Duration::from_secs(60));
        assert_eq!(l.allow(t0), Some(0));
        for s in 1..=59 {
            assert_eq!(l.allow(t0 + Duration::from_secs(s)), None);
        }
        assert_eq!(l.allow(t0 + Duration::from_secs(60)), Some(59));
        assert_eq!(l.allow(t0 + Duration::from_secs(61)), None);
        l.reset();
        assert_eq!(l.allow(t0 + Duration::from_secs(62)), Some(0));
    }
}
