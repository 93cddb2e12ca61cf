//! Where a call's resumptions come from, for the call thread: the caller
//! dials the listener again while the call is reconnecting (a new
//! attempt every [`REDIAL_EVERY`], at most [`MAX_ATTEMPTS`] at once, each
//! connection within [`DIAL_TIMEOUT`], so the first SYN after the link
//! came back gets through without waiting on an old one's backoff); the
//! callee takes the connections its busy tone passes on. A caller that
//! found the listener by name also looks for it nearby again (every
//! [`LOOK_EVERY`]), and dials what it announces now: a listener that moved
//! to another address. Each attempt runs
//! one side of a `resume::Resumption` on its own thread, within the
//! resumption's deadline, and hands the call a [`Candidate`] when it went
//! through. The call decides which one it takes (the first, with a
//! ticket still good).
//!
//! The callee answers only connections that name one of the call's
//! tickets, and shares its attempts fairly: at most [`PER_ADDRESS`] from
//! one address (its oldest gives way to a newer one), and when all are
//! taken the oldest from an address other than the call's own gives way.
//! So someone who learnt the call's id from the air and floods the port
//! with it does not push out a caller that comes back from its address,
//! and pushes out one from a new address only by beating its redials
//! with fresh connections, each through the busy tone's own limits. The
//! caller does not dial again while one of its attempts is connected and
//! under way, and once a resumption went through every other attempt
//! stops.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, never, unbounded};

use super::busy::Offer;
use super::nearby;
use super::resume::{Resumed, Resumption};
use crate::call::Shutdown;
use crate::secure::Ticket;

/// How often the caller dials again while the call is reconnecting.
pub const REDIAL_EVERY: Duration = Duration::from_millis(500);
/// How long one dial may take to connect.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(2);
/// Resumption attempts under way at once, each side.
pub const MAX_ATTEMPTS: usize = 4;
/// The callee's attempts from one address at once.
pub const PER_ADDRESS: usize = 2;
/// How often a caller that called by name looks for the listener again.
pub const LOOK_EVERY: Duration = Duration::from_secs(3);
/// How often an attempt looks at its deadline while it waits to read.
const ATTEMPT_POLL: Duration = Duration::from_millis(50);
/// Addresses found by name that are kept to dial (besides the first ones).
const MAX_FOUND: usize = 4;

/// A resumption that went through, on its new connection.
pub struct Candidate {
    pub stream: TcpStream,
    pub resumed: Resumed,
}

/// A side's way back into its call. See the module documentation.
pub struct Resumer {
    /// The caller's: the listener's addresses, the one the call was on
    /// first. Empty on the callee's side.
    given: Vec<SocketAddr>,
    /// What the caller dials in turn: the addresses last found by name
    /// (at most [`MAX_FOUND`]), then the given ones.
    dial: Vec<SocketAddr>,
    /// The callee's: connections its busy tone passed on.
    offers: Receiver<Offer>,
    results: (Sender<Candidate>, Receiver<Candidate>),
    /// Attempts under way.
    attempts: Vec<Attempt>,
    dialled: usize,
    next_dial: Option<Instant>,
    /// The name the listener was found under nearby, to look for again.
    name: Option<String>,
    /// The addresses a look found (one look at a time).
    looked: Option<Receiver<Vec<SocketAddr>>>,
    next_look: Option<Instant>,
}

impl Resumer {
    /// The caller's side: it dials `addrs` in turn, and what announces
    /// itself nearby as `name`.
    pub fn dialling(addrs: Vec<SocketAddr>, name: Option<String>) -> Resumer {
        Resumer {
            given: addrs.clone(),
            dial: addrs,
            name,
            ..Self::answering(never())
        }
    }

    /// The callee's side: it answers what `offers` brings (from now on:
    /// what an earlier call left waiting is closed).
    pub fn answering(offers: Receiver<Offer>) -> Resumer {
        while offers.try_recv().is_ok() {}
        Resumer {
            given: Vec::new(),
            dial: Vec::new(),
            offers,
            results: unbounded(),
            attempts: Vec::new(),
            dialled: 0,
            next_dial: None,
            name: None,
            looked: None,
            next_look: None,
        }
    }

    /// Nothing resumes the call (a loopback, a test).
    pub fn none() -> Resumer {
        Self::answering(never())
    }

    /// Connections that may resume the call.
    pub fn offered(&self) -> Receiver<Offer> {
        self.offers.clone()
    }

    /// Resumptions that went through.
    pub fn resumed(&self) -> Receiver<Candidate> {
        self.results.1.clone()
    }

    /// True while a resumption attempt is under way.
    pub fn is_trying(&self) -> bool {
        self.attempts.iter().any(|a| !a.is_over())
    }

    /// When the caller dials next.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        self.next_dial.filter(|at| *at > now)
    }

    /// Answers `offer` with the call's `tickets` (none: the call is not
    /// running), the call being on a connection from `peer`. An offer that
    /// names none of them is closed at once.
    pub fn answer(
        &mut self,
        offer: Offer,
        tickets: Vec<Ticket>,
        peer: Option<IpAddr>,
        shutdown: &Shutdown,
    ) {
        let Ok(from) = offer.stream.peer_addr().map(|a| a.ip().to_canonical()) else {
            return;
        };
        if !tickets.iter().any(|t| t.id == offer.id) {
            return;
        }
        self.attempts.retain(|a| !a.is_over());
        let from_there = self.attempts.iter().filter(|a| a.from == Some(from));
        if from_there.count() >= PER_ADDRESS {
            self.give_way(|a| a.from == Some(from));
        }
        if self.attempts.len() >= MAX_ATTEMPTS {
            let peer = peer.map(|ip| ip.to_canonical());
            if !self.give_way(|a| a.from != peer) {
                self.give_way(|_| true);
            }
        }
        self.spawn(Start::Answer(offer), tickets, Some(from), shutdown);
    }

    /// Stops the oldest attempt `which` picks; false when none.
    fn give_way(&mut self, which: impl Fn(&Attempt) -> bool) -> bool {
        let Some(at) = self.attempts.iter().position(which) else {
            return false;
        };
        self.attempts.remove(at).stop();
        true
    }

    /// A resumption went through: every other attempt stops.
    pub fn stop_all(&mut self) {
        self.attempts.drain(..).for_each(|a| a.stop());
    }

    /// While the call is reconnecting: dials the next address when it is
    /// time.
    pub fn redial(&mut self, now: Instant, ticket: Option<Ticket>, shutdown: &Shutdown) {
        let (Some(ticket), false) = (ticket, self.dial.is_empty()) else {
            return;
        };
        self.look_nearby(now);
        if self.next_dial.is_some_and(|at| now < at) {
            return;
        }
        self.attempts.retain(|a| !a.is_over());
        // A connected attempt is the link back: it is given its time.
        let connected = self.attempts.iter().any(Attempt::is_connected);
        if self.attempts.len() >= MAX_ATTEMPTS || connected {
            return;
        }
        self.next_dial = Some(now + REDIAL_EVERY);
        if let Some(&addr) = self.dial.get(self.dialled % self.dial.len()) {
            self.dialled += 1;
            self.spawn(Start::Dial(addr), vec![ticket], None, shutdown);
        }
    }

    /// Looks for the listener by its name again, when it is time; what
    /// it announces now is dialled next (first).
    fn look_nearby(&mut self, now: Instant) {
        if let Some(found) = self.looked.as_ref().and_then(|rx| rx.try_recv().ok()) {
            self.looked = None;
            let mut new: Vec<SocketAddr> = Vec::new();
            for addr in found {
                if !self.given.contains(&addr) && !new.contains(&addr) && new.len() < MAX_FOUND {
                    new.push(addr);
                }
            }
            let mut found = new;
            found.extend_from_slice(&self.given);
            if found != self.dial {
                self.dial = found;
                self.dialled = 0;
            }
        }
        let Some(name) = self.name.clone() else {
            return;
        };
        if self.looked.is_some() || self.next_look.is_some_and(|at| now < at) {
            return;
        }
        self.next_look = Some(now + LOOK_EVERY);
        let (tx, rx) = bounded(1);
        let looking = thread::Builder::new().name("look".into()).spawn(move || {
            let found = nearby::look(nearby::LOOK_TIME, Some(&name)).unwrap_or_default();
            let addrs = found
                .named(&name)
                .iter()
                .flat_map(|l| l.addrs.iter().copied())
                .collect();
            let _ = tx.send(addrs);
        });
        if looking.is_ok() {
            self.looked = Some(rx);
        }
    }

    fn spawn(
        &mut self,
        start: Start,
        tickets: Vec<Ticket>,
        from: Option<IpAddr>,
        shutdown: &Shutdown,
    ) {
        let attempt = Attempt {
            from,
            flags: Arc::default(),
        };
        let flags = attempt.flags.clone();
        let results = self.results.0.clone();
        let shutdown = shutdown.clone();
        let started = thread::Builder::new().name("resume".into()).spawn(move || {
            if let Some(candidate) = run(start, tickets, &shutdown, &flags) {
                let _ = results.send(candidate);
            }
            flags.over.store(true, Ordering::Relaxed);
        });
        if started.is_ok() {
            self.attempts.push(attempt);
        }
    }
}

/// How an attempt begins.
enum Start {
    Dial(SocketAddr),
    Answer(Offer),
}

/// One attempt under way: whom it answers (on the callee's side), and
/// what it and the call tell each other.
struct Attempt {
    from: Option<IpAddr>,
    flags: Arc<AttemptFlags>,
}

#[derive(Default)]
struct AttemptFlags {
    /// Set by the call: give up.
    stop: AtomicBool,
    /// Set by the attempt: its connection is up (the caller's).
    connected: AtomicBool,
    /// Set by the attempt: it ended.
    over: AtomicBool,
}

impl Attempt {
    fn is_over(&self) -> bool {
        self.flags.over.load(Ordering::Relaxed)
    }

    fn is_connected(&self) -> bool {
        self.flags.connected.load(Ordering::Relaxed) && !self.is_over()
    }

    /// Asks it to stop (it does within [`ATTEMPT_POLL`]).
    fn stop(&self) {
        self.flags.stop.store(true, Ordering::Relaxed);
    }
}

/// Runs one resumption to its end; the connection, if it went through.
fn run(
    start: Start,
    tickets: Vec<Ticket>,
    shutdown: &Shutdown,
    flags: &AttemptFlags,
) -> Option<Candidate> {
    let now = Instant::now();
    let (mut stream, mut resumption, first) = match start {
        Start::Dial(addr) => (
            TcpStream::connect_timeout(&addr, DIAL_TIMEOUT).ok()?,
            Resumption::caller(tickets.first()?, now).ok()?,
            Vec::new(),
        ),
        Start::Answer(offer) => (offer.stream, Resumption::callee(tickets, now), offer.first),
    };
    flags.connected.store(true, Ordering::Relaxed);
    stream.set_nonblocking(false).ok()?;
    super::tune(&stream).ok()?;
    stream.set_read_timeout(Some(ATTEMPT_POLL)).ok()?;
    stream.set_write_timeout(Some(DIAL_TIMEOUT)).ok()?;
    let mut step = resumption.handle_bytes(&first);
    let mut buf = [0u8; 4096];
    loop {
        let stopped = flags.stop.load(Ordering::Relaxed) || shutdown.is_ended();
        if stopped {
            return None;
        }
        stream.write_all(&resumption.take_outgoing()).ok()?;
        if let Some(resumed) = step.ok()? {
            return Some(Candidate { stream, resumed });
        }
        if Instant::now() >= resumption.deadline() {
            return None;
        }
        step = match stream.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => resumption.handle_bytes(buf.get(..n).unwrap_or_default()),
            Err(e) if super::link::is_timeout(&e) => Ok(None),
            Err(_) => return None,
        };
    }
}

/// Whether a socket error is one a new connection may mend: the network
/// or the peer is unreachable for now, or our address went away. (A reset
/// or a broken pipe is the peer gone: the end, unless the call is already
/// reconnecting.)
pub fn may_mend(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkDown
            | io::ErrorKind::AddrNotAvailable
    )
}
