//! The listener's door: takes connections as they come and runs their
//! handshakes side by side, each with its own deadline, so strangers that
//! connect and say nothing (or one byte a second) cannot keep a real caller
//! out. At most [`MAX_PER_ADDRESS`] wait from one address and
//! [`MAX_PENDING`] in all: a newcomer beyond the first pushes out that
//! address's oldest, beyond the second the oldest of the address with the
//! most waiting, so a flood from one address pushes out only its own. (Per
//! address, not per IPv6 /64: a LAN's machines share one.) What the door
//! refuses is logged within a budget ([`LOG_BURST`] lines, then
//! [`LOG_PER_SECOND`] a second), what a flood pushes out and what is
//! turned away (see `guessing`) in one line a second with counts: never a
//! line per connection under a flood.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, TcpListener};
use std::time::{Duration, Instant};

use anyhow::Result;
use crossbeam_channel::Sender;

use super::budget::Budget;
use super::busy::{BusyTone, Offer};
use super::connection::Role;
use super::guessing::Guessing;
use super::{Peer, Us};

/// Handshakes in progress at once. Each costs a socket and a few kilobytes.
pub const MAX_PENDING: usize = 16;
/// Handshakes in progress from one address.
pub const MAX_PER_ADDRESS: usize = 4;
/// Connections taken from the kernel per poll (the rest wait there).
const ACCEPTS_PER_POLL: usize = 64;
/// Refusal lines that may come at once...
pub const LOG_BURST: f64 = 10.0;
/// ...and a second after that.
pub const LOG_PER_SECOND: f64 = 4.0;
/// At most one line of counts this often.
const SUMMARY_EVERY: Duration = Duration::from_secs(1);

/// A listening socket and the handshakes in progress on it.
pub struct Door {
    listener: TcpListener,
    us: Us,
    pending: VecDeque<Peer>,
    guessing: Guessing,
    log: DoorLog,
}

/// What the door says, within its budget.
#[derive(Debug)]
struct DoorLog {
    /// Refusal lines that may be said now.
    budget: Budget,
    /// Not said since the last line of counts.
    unsaid: u32,
    pushed_out: u32,
    pushed_out_from: Option<IpAddr>,
    turned_away: u32,
    last_summary: Option<Instant>,
}

impl Default for DoorLog {
    fn default() -> Self {
        DoorLog {
            budget: Budget::new(LOG_PER_SECOND, LOG_BURST),
            unsaid: 0,
            pushed_out: 0,
            pushed_out_from: None,
            turned_away: 0,
            last_summary: None,
        }
    }
}

impl DoorLog {
    /// A refusal at `now`: the line to print, if the budget allows.
    fn refused(&mut self, now: Instant, line: String) -> Option<String> {
        if self.budget.take(now) {
            Some(line)
        } else {
            self.unsaid += 1;
            None
        }
    }

    /// A waiting connection from `ip` pushed out by newer ones.
    fn pushed_out(&mut self, ip: IpAddr) {
        self.pushed_out += 1;
        self.pushed_out_from = Some(ip);
    }

    /// The line of counts, at most once every [`SUMMARY_EVERY`].
    fn summary(&mut self, now: Instant) -> Option<String> {
        if self.last_summary.is_some_and(|at| now < at + SUMMARY_EVERY) {
            return None;
        }
        let mut parts = Vec::new();
        if let (n @ 1.., Some(from)) = (self.pushed_out, self.pushed_out_from) {
            parts.push(format!(
                "pushed out {n} waiting connection(s), the last from {from} (at most {MAX_PER_ADDRESS} wait from one address)"
            ));
        }
        if self.turned_away > 0 {
            parts.push(format!(
                "turned away {} connection(s) from an address whose calls hung up right after their code or rang out",
                self.turned_away
            ));
        }
        if self.unsaid > 0 {
            parts.push(format!(
                "{} more refused connection(s) not shown",
                self.unsaid
            ));
        }
        if parts.is_empty() {
            return None;
        }
        (self.pushed_out, self.turned_away, self.unsaid) = (0, 0, 0);
        self.last_summary = Some(now);
        Some(format!("door: {}", parts.join("; ")))
    }
}

impl Door {
    pub fn new(listener: TcpListener, us: Us) -> Result<Door> {
        listener.set_nonblocking(true)?;
        Ok(Door {
            listener,
            us,
            pending: VecDeque::new(),
            guessing: Guessing::default(),
            log: DoorLog::default(),
        })
    }

    /// Answers every newcomer "busy" until the tone is dropped (while a
    /// call rings or runs), and the handshakes in progress as they finish.
    /// Resumptions of the call go to `offers`.
    pub fn busy_tone(&mut self, offers: Sender<Offer>) -> Result<BusyTone> {
        BusyTone::start(&self.listener, self.pending.drain(..).collect(), offers)
    }

    /// Handshakes in progress.
    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.pending.len()
    }

    /// A call from `ip` rang out unanswered at `now`: the line to print.
    pub fn rang_out(&mut self, ip: IpAddr, now: Instant) -> String {
        self.guessing.rang_out(ip, now)
    }

    /// A call from `ip` hung up right after its code was shown; returns the
    /// warning to print when that source now looks like someone guessing.
    pub fn hung_up_after_code(&mut self, ip: IpAddr, now: Instant) -> Option<String> {
        self.guessing.hung_up_after_code(ip, now)
    }

    /// Lets newcomers in and moves every handshake on, without blocking.
    /// Returns a caller whose handshake is done, if one is.
    pub fn poll(&mut self, now: Instant) -> Option<Peer> {
        self.admit(now);
        for peer in &mut self.pending {
            peer.pump(now);
            // What matters is the state the events led to.
            while peer.conn.poll_event().is_some() {}
        }
        let log = &mut self.log;
        self.pending.retain(|peer| match peer.conn.end_reason() {
            Some(reason) => {
                let line = format!("refused connection from {}: {reason}", peer.describe());
                if let Some(line) = log.refused(now, line) {
                    eprintln!("{line}");
                }
                false
            }
            None => true,
        });
        if let Some(summary) = self.log.summary(now) {
            eprintln!("{summary}");
        }
        let done = self.pending.iter().position(|peer| peer.info().is_some())?;
        self.pending.remove(done)
    }

    /// Accepts the connections waiting in the kernel (a bounded number).
    /// Errors that concern one connection (it was reset before we took it,
    /// or we are out of file descriptors for a moment) are logged; the door
    /// stays open.
    fn admit(&mut self, now: Instant) {
        for _ in 0..ACCEPTS_PER_POLL {
            match self.listener.accept() {
                Ok((_, addr)) if self.guessing.is_slowed(addr.ip(), now) => {
                    self.log.turned_away += 1;
                }
                Ok((stream, addr)) => match Peer::new(stream, addr, Role::Callee, &self.us) {
                    Ok(peer) => {
                        let from = peer.address().ip();
                        self.pending.push_back(peer);
                        self.make_room(from);
                    }
                    Err(e) => {
                        let line = format!("refused connection from {addr}: {e:#}");
                        if let Some(line) = self.log.refused(now, line) {
                            eprintln!("{line}");
                        }
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    eprintln!("could not take a connection: {e}");
                    return;
                }
            }
        }
    }

    /// After a newcomer from `from`: its address's oldest goes when that
    /// address has too many waiting, and the oldest of the address with the
    /// most waiting when the door is full.
    fn make_room(&mut self, from: IpAddr) {
        let addresses: Vec<IpAddr> = self.pending.iter().map(|p| p.address().ip()).collect();
        let victim = match crowding(&addresses, from) {
            Some(address) => address,
            None => return,
        };
        if let Some(at) = self.pending.iter().position(|p| p.address().ip() == victim) {
            self.pending.remove(at);
            self.log.pushed_out(victim);
        }
    }
}

/// Whose oldest waiting handshake must go, given the addresses waiting
/// (oldest first, the newcomer from `from` last): `from`'s if it has more
/// than [`MAX_PER_ADDRESS`]; else, if more than [`MAX_PENDING`] wait, the
/// address with the most (the oldest of them on a tie); else nobody.
fn crowding(waiting: &[IpAddr], from: IpAddr) -> Option<IpAddr> {
    let count = |ip: IpAddr| waiting.iter().filter(|&&w| w == ip).count();
    if count(from) > MAX_PER_ADDRESS {
        return Some(from);
    }
    if waiting.len() <= MAX_PENDING {
        return None;
    }
    let most = waiting.iter().map(|&ip| count(ip)).max()?;
    waiting.iter().copied().find(|&ip| count(ip) == most)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn a_flood_from_one_address_pushes_out_only_its_own() {
        let mut waiting = vec![ip(9)];
        for _ in 0..1000 {
            waiting.push(ip(1));
            if let Some(victim) = crowding(&waiting, ip(1)) {
                let at = waiting.iter().position(|&w| w == victim).unwrap();
                waiting.remove(at);
            }
        }
        assert_eq!(
            waiting.first(),
            Some(&ip(9)),
            "the real caller was pushed out"
        );
        assert_eq!(waiting.len(), 1 + MAX_PER_ADDRESS);
    }

    #[test]
    fn a_full_door_pushes_out_the_address_with_the_most_waiting() {
        let mut waiting: Vec<IpAddr> = (0..MAX_PENDING as u8).map(|n| ip(n % 5)).collect();
        waiting.push(ip(200));
        // ip(0) has the most waiting (four; the others three or four, later).
        assert_eq!(crowding(&waiting, ip(200)), Some(ip(0)));
        assert_eq!(crowding(&waiting[..MAX_PENDING], ip(3)), None);
    }

    #[test]
    fn under_a_flood_the_log_says_little() {
        let mut log = DoorLog::default();
        let t0 = Instant::now();
        let mut lines = 0;
        // 2,000 refusals and pushes a second for 10 s, in 5 ms polls.
        for tick in 0..2_000u32 {
            let now = t0 + Duration::from_millis(5) * tick;
            for _ in 0..10 {
                lines += usize::from(log.refused(now, "refused".into()).is_some());
                log.pushed_out(ip(1));
            }
            lines += usize::from(log.summary(now).is_some());
        }
        // A burst, then the steady budget and one line of counts a second.
        let most = LOG_BURST + 10.0 * (LOG_PER_SECOND + 1.0) + 1.0;
        assert!(lines as f64 <= most, "{lines} lines in 10 s");
        assert!(lines >= 10, "{lines} lines: the flood went unsaid");
    }

    #[test]
    fn a_few_strangers_each_get_their_line() {
        let mut log = DoorLog::default();
        let now = Instant::now();
        let said = (0..10)
            .filter(|n| log.refused(now, format!("stranger {n}")).is_some())
            .count();
        assert_eq!(said, 10);
        assert_eq!(log.summary(now), None);
    }
}
