//! How fast our bytes go into the network, as data (no I/O, `now` passed
//! in): a token bucket filled at a little more than the link's pace, as
//! WebRTC's pacer does. A frame that fits the bucket goes at once; the rest
//! of a bigger one (a keyframe) follows at the pace. Without it, a keyframe
//! leaves at line rate and a thin link's queue (100 ms deep on a home
//! router: 6 KB at 500 kbit/s) overflows; TCP then takes a round trip or
//! a timeout to repair the tail, and the frames behind it wait.

use std::time::{Duration, Instant};

/// The pace, as a share of the link's: enough to follow a link that grew,
/// little enough that the bottleneck's queue fills at a third of what goes.
pub const PACE_FACTOR: f64 = 1.5;
/// The pace before the link's is known, bytes a second (START_PACE / 1.5
/// = 0.5 Mbit/s, what a first keyframe may assume of a link).
pub const START_PACE: f64 = 0.75e6 / 8.0;
/// How much may go at once: this long at the pace ...
const BURST_TIME: Duration = Duration::from_millis(40);
/// ... but at least this (two packets; a thin link's inter-frame).
const MIN_BURST: f64 = 3_000.0;
/// Bytes worth a write of their own: less waits for the bucket to fill.
const MIN_WRITE: f64 = 1_200.0;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Pacer {
    /// Bytes that may go now (up to the burst), as of `at`.
    tokens: f64,
    at: Option<Instant>,
}

impl Pacer {
    /// How many of `waiting` bytes may go at `now`, the link's pace being
    /// `link_rate` bytes a second (0: not known yet); the caller sends
    /// them, and they are spent.
    pub fn take(&mut self, waiting: usize, link_rate: u64, now: Instant) -> usize {
        let (pace, burst) = pace_and_burst(link_rate);
        let since = self
            .at
            .map_or(Duration::MAX, |t| now.saturating_duration_since(t));
        self.tokens = (self.tokens + pace * since.as_secs_f64().min(1.0)).min(burst);
        self.at = Some(now);
        let want = waiting as f64;
        if self.tokens < want.min(MIN_WRITE) {
            return 0;
        }
        let n = want.min(self.tokens.floor());
        self.tokens -= n;
        n as usize
    }

    /// When `waiting` bytes may start to go again.
    pub fn next_at(&self, waiting: usize, link_rate: u64) -> Option<Instant> {
        if waiting == 0 {
            return None;
        }
        let (pace, _) = pace_and_burst(link_rate);
        let short = (waiting as f64).min(MIN_WRITE) - self.tokens;
        let at = self.at?;
        Some(at + Duration::from_secs_f64((short / pace).clamp(0.0, 1.0)))
    }
}

/// The pace and the burst for a link of `link_rate` bytes a second.
fn pace_and_burst(link_rate: u64) -> (f64, f64) {
    let pace = (link_rate as f64 * PACE_FACTOR).max(START_PACE);
    (pace, (pace * BURST_TIME.as_secs_f64()).max(MIN_BURST))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KBIT: u64 = 1000 / 8;

    #[test]
    fn a_small_frame_goes_at_once_and_a_keyframe_at_the_pace() {
        let mut p = Pacer::default();
        let t = Instant::now();
        let rate = 500 * KBIT;
        assert_eq!(p.take(2_000, rate, t), 2_000, "within the burst");
        // A 9 KB keyframe right after: what is left of the burst (40 ms at
        // 1.5 times 500 kbit/s), then the rest at that pace.
        assert_eq!(p.take(9_000, rate, t), 1_750);
        assert_eq!(p.take(7_250, rate, t), 0);
        let at = p.next_at(7_250, rate).unwrap();
        assert_eq!(at - t, Duration::from_secs_f64(1_200.0 / 93_750.0));
        let mut sent = 0;
        let mut now = t;
        while sent < 7_250 {
            now += Duration::from_millis(1);
            sent += p.take(7_250 - sent, rate, now);
        }
        // 7250 bytes at 93.75 KB/s.
        let took = (now - t).as_secs_f64();
        assert!((0.077..0.080).contains(&took), "{took} s");
    }

    #[test]
    fn before_the_link_is_known_the_start_pace_holds() {
        let mut p = Pacer::default();
        let t = Instant::now();
        assert_eq!(p.take(20_000, 0, t), 3_750);
        let later = t + Duration::from_millis(100);
        assert_eq!(p.take(20_000, 0, later), 3_750, "no more than a burst");
    }

    #[test]
    fn the_bucket_holds_no_more_than_a_burst_after_a_quiet_while() {
        let mut p = Pacer::default();
        let t = Instant::now();
        let rate = 20_000 * KBIT;
        assert_eq!(p.take(1, rate, t), 1);
        let later = t + Duration::from_secs(10);
        // 40 ms at 30 Mbit/s.
        assert_eq!(p.take(1_000_000, rate, later), 150_000);
    }
}
