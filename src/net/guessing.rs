//! Calls that hang up right after their code was shown. A person rarely
//! does that; a relay trying its luck with the code does it every time it
//! sees a code it cannot use (each try costs it a ring the person sees).
//! Counted per address over [`WINDOW`]: at [`WARN_AFTER`] the listener says
//! so, and the door turns that address away for [`SLOW_FOR`]. (Not per
//! IPv6 /64: on a LAN every machine shares one, and link-local is one for
//! all, so one guesser would lock its neighbours out. A guesser that moves
//! between addresses is still seen ringing every time.) And calls that
//! ring out unanswered: a stranger that completes a handshake every 30 s
//! would keep the listener ringing, and everyone else hearing "busy", for
//! good; after one unanswered ring its address is turned away for
//! [`RING_AGAIN_AFTER`], so one address has the line at most a third of
//! the time. Pure, on the caller's clock; at most [`MAX_SOURCES`]
//! addresses are remembered.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How far back hang-ups count.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Hang-ups within [`WINDOW`] that make a source suspect.
pub const WARN_AFTER: usize = 3;
/// How long a suspect source is turned away at the door.
pub const SLOW_FOR: Duration = Duration::from_secs(60);
/// How long an address whose call rang out unanswered is turned away.
pub const RING_AGAIN_AFTER: Duration = Duration::from_secs(60);
/// Sources remembered at once (the oldest is forgotten first).
const MAX_SOURCES: usize = 256;

/// The count, per source.
#[derive(Debug, Default)]
pub struct Guessing {
    /// Recent hang-ups after a code, oldest first, per address (an IPv4
    /// address written as IPv6 counts as that IPv4 address).
    hang_ups: HashMap<IpAddr, VecDeque<Instant>>,
    /// Sources turned away, until when.
    slowed: HashMap<IpAddr, Instant>,
}

impl Guessing {
    /// A call from `ip` hung up at `now` after its code was shown. Returns
    /// the warning to print when that makes the source suspect.
    pub fn hung_up_after_code(&mut self, ip: IpAddr, now: Instant) -> Option<String> {
        let source = ip.to_canonical();
        if !self.hang_ups.contains_key(&source) && self.hang_ups.len() >= MAX_SOURCES {
            self.forget_oldest();
        }
        let times = self.hang_ups.entry(source).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) > WINDOW)
        {
            times.pop_front();
        }
        times.push_back(now);
        let count = times.len();
        if count < WARN_AFTER {
            return None;
        }
        times.clear();
        self.slow(source, now + SLOW_FOR, now);
        Some(format!(
            "{count} calls from {ip} hung up right after their code was shown: someone may be guessing the code; calls from there are turned away for {} s",
            SLOW_FOR.as_secs()
        ))
    }

    /// A call from `ip` rang until `now` and nobody answered it. Returns
    /// the line to print.
    pub fn rang_out(&mut self, ip: IpAddr, now: Instant) -> String {
        self.slow(ip.to_canonical(), now + RING_AGAIN_AFTER, now);
        format!(
            "calls from {ip} are turned away for {} s: one caller cannot keep this line ringing",
            RING_AGAIN_AFTER.as_secs()
        )
    }

    /// Turns `source` away until `until` (or longer, if it already was).
    fn slow(&mut self, source: IpAddr, until: Instant, now: Instant) {
        if self.slowed.len() >= MAX_SOURCES {
            self.slowed.retain(|_, until| *until > now);
        }
        if self.slowed.len() < MAX_SOURCES || self.slowed.contains_key(&source) {
            let at = self.slowed.entry(source).or_insert(until);
            *at = (*at).max(until);
        }
    }

    /// Whether calls from `ip` are turned away at `now`.
    pub fn is_slowed(&self, ip: IpAddr, now: Instant) -> bool {
        self.slowed
            .get(&ip.to_canonical())
            .is_some_and(|until| now < *until)
    }

    fn forget_oldest(&mut self) {
        let oldest = self
            .hang_ups
            .iter()
            .min_by_key(|(_, times)| times.back().copied())
            .map(|(ip, _)| *ip);
        if let Some(source) = oldest {
            self.hang_ups.remove(&source);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn three_hang_ups_in_a_minute_warn_and_turn_the_source_away() {
        let mut g = Guessing::default();
        let t0 = Instant::now();
        let relay = ip("192.168.1.66");
        assert_eq!(g.hung_up_after_code(relay, t0), None);
        assert_eq!(
            g.hung_up_after_code(relay, t0 + Duration::from_secs(1)),
            None
        );
        let warning = g
            .hung_up_after_code(relay, t0 + Duration::from_secs(2))
            .expect("a warning at the third");
        assert!(
            warning
                .starts_with("3 calls from 192.168.1.66 hung up right after their code was shown")
        );
        assert!(g.is_slowed(relay, t0 + Duration::from_secs(3)));
        assert!(!g.is_slowed(ip("192.168.1.67"), t0 + Duration::from_secs(3)));
        assert!(!g.is_slowed(relay, t0 + Duration::from_secs(2) + SLOW_FOR));
    }

    #[test]
    fn hang_ups_a_minute_apart_are_a_person_not_a_guess() {
        let mut g = Guessing::default();
        let t0 = Instant::now();
        let person = ip("10.0.0.2");
        for n in 0..10 {
            let at = t0 + (WINDOW / 2 + Duration::from_secs(1)) * n;
            assert_eq!(g.hung_up_after_code(person, at), None, "hang-up {n}");
        }
        assert!(!g.is_slowed(person, t0 + WINDOW * 5));
    }

    #[test]
    fn a_neighbour_on_the_same_ipv6_link_is_not_locked_out() {
        let mut g = Guessing::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            g.hung_up_after_code(ip("fe80::1"), t0);
        }
        assert!(g.is_slowed(ip("fe80::1"), t0));
        assert!(!g.is_slowed(ip("fe80::2"), t0));
        // An IPv4 address written as IPv6 is that IPv4 address.
        g.hung_up_after_code(ip("::ffff:10.1.1.1"), t0);
        g.hung_up_after_code(ip("10.1.1.1"), t0);
        assert!(g.hung_up_after_code(ip("10.1.1.1"), t0).is_some());
    }

    #[test]
    fn a_caller_that_rings_out_cannot_ring_again_at_once() {
        let mut g = Guessing::default();
        let t0 = Instant::now();
        let stranger = ip("10.0.0.9");
        let line = g.rang_out(stranger, t0);
        assert!(line.contains("10.0.0.9"), "{line}");
        assert!(g.is_slowed(stranger, t0 + RING_AGAIN_AFTER / 2));
        assert!(!g.is_slowed(ip("10.0.0.10"), t0));
        assert!(!g.is_slowed(stranger, t0 + RING_AGAIN_AFTER));
    }

    #[test]
    fn memory_stays_bounded_under_many_sources() {
        let mut g = Guessing::default();
        let t0 = Instant::now();
        for n in 0..10_000u32 {
            let [a, b, c, d] = n.to_be_bytes();
            g.hung_up_after_code(IpAddr::from([10 + a, b, c, d]), t0);
        }
        assert!(g.hang_ups.len() <= MAX_SOURCES);
    }
}
