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
//! through. The call decides which one it takes (the first, with the
//! current ticket).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
/// How often a caller that called by name looks for the listener again.
pub const LOOK_EVERY: Duration = Duration::from_secs(3);
/// How often an attempt looks at its deadline while it waits to read.
const ATTEMPT_POLL: Duration = Duration::from_millis(50);

/// A resumption that went through, on its new connection.
pub struct Candidate {
    pub stream: TcpStream,
    pub resumed: Resumed,
}

/// A side's way back into its call. See the module documentation.
pub struct Resumer {
    /// The caller's: the listener's addresses, the one the call was on
    /// first. Empty on the callee's side.
    dial: Vec<SocketAddr>,
    /// The callee's: connections its busy tone passed on.
    offers: Receiver<Offer>,
    results: (Sender<Candidate>, Receiver<Candidate>),
    /// Attempts under way.
    attempts: Arc<AtomicUsize>,
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
            dial: addrs,
            name,
            ..Self::answering(never())
        }
    }

    /// The callee's side: it answers what `offers` brings.
    pub fn answering(offers: Receiver<Offer>) -> Resumer {
        Resumer {
            dial: Vec::new(),
            offers,
            results: unbounded(),
            attempts: Arc::default(),
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

    /// When the caller dials next.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        self.next_dial.filter(|at| *at > now)
    }

    /// Answers `offer` with the call's current `ticket` (none: the call
    /// is not running, and the connection is closed).
    pub fn answer(&mut self, offer: Offer, ticket: Option<Ticket>, shutdown: &Shutdown) {
        if let Some(ticket) = ticket {
            self.spawn(Start::Answer(offer), ticket, shutdown);
        }
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
        self.next_dial = Some(now + REDIAL_EVERY);
        if let Some(&addr) = self.dial.get(self.dialled % self.dial.len()) {
            self.dialled += 1;
            self.spawn(Start::Dial(addr), ticket, shutdown);
        }
    }

    /// Looks for the listener by its name again, when it is time; what
    /// it announces now is dialled next (first).
    fn look_nearby(&mut self, now: Instant) {
        if let Some(found) = self.looked.as_ref().and_then(|rx| rx.try_recv().ok()) {
            self.looked = None;
            for addr in found.into_iter().rev() {
                self.dial.retain(|a| *a != addr);
                self.dial.insert(0, addr);
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

    fn spawn(&mut self, start: Start, ticket: Ticket, shutdown: &Shutdown) {
        if self.attempts.load(Ordering::Relaxed) >= MAX_ATTEMPTS {
            return;
        }
        let slot = Slot::take(&self.attempts);
        let results = self.results.0.clone();
        let shutdown = shutdown.clone();
        let _ = thread::Builder::new().name("resume".into()).spawn(move || {
            let _slot = slot;
            if let Some(candidate) = attempt(start, &ticket, &shutdown) {
                let _ = results.send(candidate);
            }
        });
    }
}

/// How an attempt begins.
enum Start {
    Dial(SocketAddr),
    Answer(Offer),
}

/// One attempt under way, counted while it lives.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(count: &Arc<AtomicUsize>) -> Slot {
        count.fetch_add(1, Ordering::Relaxed);
        Slot(count.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs one resumption to its end; the connection, if it went through.
fn attempt(start: Start, ticket: &Ticket, shutdown: &Shutdown) -> Option<Candidate> {
    let now = Instant::now();
    let (mut stream, mut resumption, first) = match start {
        Start::Dial(addr) => (
            TcpStream::connect_timeout(&addr, DIAL_TIMEOUT).ok()?,
            Resumption::caller(ticket, now).ok()?,
            Vec::new(),
        ),
        Start::Answer(offer) => (
            offer.stream,
            Resumption::callee(ticket, now).ok()?,
            offer.first,
        ),
    };
    stream.set_nonblocking(false).ok()?;
    super::tune(&stream).ok()?;
    stream.set_read_timeout(Some(ATTEMPT_POLL)).ok()?;
    stream.set_write_timeout(Some(DIAL_TIMEOUT)).ok()?;
    let mut step = resumption.handle_bytes(&first);
    let mut buf = [0u8; 4096];
    loop {
        stream.write_all(&resumption.take_outgoing()).ok()?;
        if let Some(resumed) = step.ok()? {
            return Some(Candidate { stream, resumed });
        }
        if Instant::now() >= resumption.deadline() || shutdown.is_ended() {
            return None;
        }
        step = match stream.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => resumption.handle_bytes(buf.get(..n).unwrap_or_default()),
            Err(e) if is_timeout(&e) => Ok(None),
            Err(_) => return None,
        };
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Whether a socket error is one a new connection may mend: the network
/// or the peer is unreachable for now, our address went away, TCP gave up
/// on its retries. (A reset or a broken pipe is the peer gone: the end.)
pub fn may_mend(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkDown
            | io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::TimedOut
    )
}
