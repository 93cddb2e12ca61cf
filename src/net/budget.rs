//! A token bucket: how many of something may happen now, refilled at a
//! steady rate up to a burst. It bounds what a peer may send (frames, text
//! lines) and what the door may say about strangers. Pure, on the caller's
//! clock.

use std::time::Instant;

/// `rate` a second, at most `burst` at once; full to begin with.
#[derive(Debug, Clone)]
pub struct Budget {
    rate: f64,
    burst: f64,
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Option<Instant>,
}

impl Budget {
    pub fn new(rate: f64, burst: f64) -> Budget {
        Budget {
            rate,
            burst,
            tokens: burst,
            at: None,
        }
    }

    /// Takes one at `now`, if there is one; false when the budget is spent.
    pub fn take(&mut self, now: Instant) -> bool {
        let since = self
            .at
            .map_or(0.0, |at| now.saturating_duration_since(at).as_secs_f64());
        self.tokens = (self.tokens + since * self.rate).min(self.burst);
        self.at = Some(now);
        let enough = self.tokens >= 1.0;
        if enough {
            self.tokens -= 1.0;
        }
        enough
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_rate() {
        let mut budget = Budget::new(4.0, 10.0);
        let t0 = Instant::now();
        assert_eq!((0..20).filter(|_| budget.take(t0)).count(), 10);
        assert!(!budget.take(t0 + Duration::from_millis(200)));
        assert!(budget.take(t0 + Duration::from_millis(260)));
        // Idle for long, it is full again, never more.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!((0..20).filter(|_| budget.take(later)).count(), 10);
    }
}
