//! The busy tone: while a call rings or runs, the listener still answers
//! its port, so a second caller reads "busy" at once instead of a refused
//! or silent connection. Every newcomer gets a busy Hello and the
//! connection closes; a handshake that was already under way at the door
//! is finished and told busy in its Bye (it never rings, so it learns no
//! code). On its own thread, with bounded work: at most [`MAX_CLOSING`]
//! connections are held while they drain, each for at most [`LINGER`], a
//! few reads each per round, the door's handshakes (at most its
//! `MAX_PENDING`) each within their own deadline, and one log line a second.
//!
//! Each newcomer's Hello is read first (at most [`MAX_GREETING`] waiting,
//! each for at most [`GREETING`]): one that resumes a call is passed on to
//! the running call, which alone holds its ticket (at most
//! [`OFFERS_WAITING`] at once: the rest are told busy); the call checks it.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel::Sender;

use super::connection::HANDSHAKE_TIMEOUT;
use super::{PUMP_INTERVAL, Peer, canonical};
use crate::call::EndReason;
use crate::secure;
use crate::wire::{self, Hello, MAX_HELLO_LEN};

/// Told callers whose connections are still being drained.
const MAX_CLOSING: usize = 32;
/// How long a told caller's connection is drained before it is closed.
const LINGER: Duration = Duration::from_secs(1);
/// Reads of a told caller's bytes per round (each at most 1 KiB).
const READS_PER_ROUND: usize = 4;
/// At most one log line this often.
const LOG_EVERY: Duration = Duration::from_secs(1);
/// Connections taken per round (the rest wait in the kernel's queue).
const ACCEPTS_PER_ROUND: usize = 64;
/// Newcomers whose Hello is awaited at once (the oldest is told busy).
const MAX_GREETING: usize = 32;
/// How long a newcomer's Hello is awaited before it is told busy anyway.
const GREETING: Duration = Duration::from_secs(1);
/// Resumptions passed on that the call has not taken yet.
pub const OFFERS_WAITING: usize = 4;

/// A connection that may resume the running call: its stream, the id in
/// its Hello, and what it sent so far (its Hello, and what followed).
pub struct Offer {
    pub stream: TcpStream,
    pub id: [u8; 32],
    pub first: Vec<u8>,
}

/// The busy tone's thread; stops when dropped.
pub struct BusyTone {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BusyTone {
    /// Starts answering "busy" on (a handle to) `listener`, and to the
    /// callers whose handshakes are `under_way`.
    /// Resumptions go to `offers`.
    pub fn start(
        listener: &TcpListener,
        under_way: Vec<Peer>,
        offers: Sender<Offer>,
    ) -> Result<BusyTone> {
        let listener = listener.try_clone().context("cannot answer callers busy")?;
        listener.set_nonblocking(true)?;
        let answer = wire::busy_answer()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = thread::Builder::new()
            .name("busy".into())
            .spawn(move || run(&listener, &answer, under_way, &offers, &stopped))
            .context("cannot start the busy tone")?;
        Ok(BusyTone {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for BusyTone {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(
    listener: &TcpListener,
    answer: &[u8],
    under_way: Vec<Peer>,
    offers: &Sender<Offer>,
    stop: &AtomicBool,
) {
    // Each handshake ends within its own deadline; its Bye has a moment more.
    let until = Instant::now() + HANDSHAKE_TIMEOUT + LINGER;
    let mut under_way: Vec<(Peer, Instant)> = under_way.into_iter().map(|p| (p, until)).collect();
    let mut closing: VecDeque<(TcpStream, Instant)> = VecDeque::new();
    let mut greeting: VecDeque<Greeting> = VecDeque::new();
    // Callers told since the last log line, and the last of them.
    let (mut told, mut last): (usize, Option<SocketAddr>) = (0, None);
    let mut last_log: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        under_way.retain_mut(|(peer, until)| {
            if now >= *until {
                return false;
            }
            peer.pump(now);
            while peer.conn.poll_event().is_some() {}
            if peer.info().is_some() && peer.conn.end_reason().is_none() {
                peer.conn.close(EndReason::Busy);
                told += 1;
                last = Some(peer.address());
                peer.pump(now);
            }
            peer.conn.end_reason().is_none() || peer.is_flushing()
        });
        for _ in 0..ACCEPTS_PER_ROUND {
            match listener.accept() {
                Ok((stream, addr)) if stream.set_nonblocking(true).is_ok() => {
                    greeting.push_back(Greeting {
                        stream,
                        addr,
                        read: Vec::new(),
                        until: now + GREETING,
                    });
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        // Over the limit, the oldest is told busy at once.
        let over = greeting.len().saturating_sub(MAX_GREETING);
        let mut busy: Vec<Greeting> = greeting.drain(..over).collect();
        for mut newcomer in std::mem::take(&mut greeting) {
            match newcomer.hello(now) {
                Heard::Nothing => greeting.push_back(newcomer),
                Heard::Resume(id) => {
                    let offer = Offer {
                        stream: newcomer.stream,
                        id,
                        first: newcomer.read,
                    };
                    if let Err(back) = offers.try_send(offer) {
                        let offer = back.into_inner();
                        busy.push(Greeting {
                            stream: offer.stream,
                            read: offer.first,
                            ..newcomer
                        });
                    }
                }
                Heard::Call => busy.push(newcomer),
            }
        }
        for newcomer in busy {
            told += 1;
            last = Some(canonical(newcomer.addr));
            if let Some(stream) = tell(newcomer.stream, answer) {
                closing.push_back((stream, now + LINGER));
            }
            if closing.len() > MAX_CLOSING {
                closing.pop_front();
            }
        }
        closing.retain_mut(|(stream, until)| now < *until && still_open(stream));
        if let Some(from) = last.filter(|_| last_log.is_none_or(|at| now >= at + LOG_EVERY)) {
            match told {
                1 => eprintln!("told a caller from {from} that this side is busy"),
                n => eprintln!("told {n} callers that this side is busy (the last from {from})"),
            }
            (told, last) = (0, None);
            last_log = Some(now);
        }
        thread::sleep(PUMP_INTERVAL);
    }
}

/// A newcomer whose Hello is awaited.
struct Greeting {
    stream: TcpStream,
    addr: SocketAddr,
    /// What it sent so far (at most a Hello and a Noise message).
    read: Vec<u8>,
    until: Instant,
}

/// What a newcomer's first message says.
enum Heard {
    /// Not all of it yet.
    Nothing,
    /// A resumption naming this id (whether of this call, the call decides).
    Resume([u8; 32]),
    /// Anything else: a new call, something not vidchat, a silent one.
    Call,
}

impl Greeting {
    /// Reads what came (a bounded amount) and looks at the Hello.
    fn hello(&mut self, now: Instant) -> Heard {
        let cap = wire::LEN_PREFIX + MAX_HELLO_LEN as usize + secure::NOISE_MAX;
        let mut buf = [0u8; 1024];
        for _ in 0..READS_PER_ROUND {
            let room = cap.saturating_sub(self.read.len()).min(buf.len());
            match (&self.stream).read(buf.get_mut(..room).unwrap_or_default()) {
                Ok(0) => return Heard::Call,
                Ok(n) => self
                    .read
                    .extend_from_slice(buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return Heard::Call,
            }
        }
        let mut decoder = wire::FrameDecoder::new(MAX_HELLO_LEN);
        decoder.extend(&self.read);
        match decoder.next_payload() {
            Ok(Some(payload)) => match wire::decode_hello(payload) {
                Ok(Hello {
                    resume: Some(id), ..
                }) => Heard::Resume(id),
                _ => Heard::Call,
            },
            Ok(None) if now < self.until => Heard::Nothing,
            _ => Heard::Call,
        }
    }
}

/// Writes the busy answer (a few dozen bytes: one write takes them all)
/// and ends our side; the stream to drain, unless it already failed.
fn tell(stream: TcpStream, answer: &[u8]) -> Option<TcpStream> {
    let written = (&stream).write(answer).ok()?;
    (written == answer.len()).then_some(())?;
    stream.shutdown(Shutdown::Write).ok()?;
    Some(stream)
}

/// Reads what the caller sent (its Hello), so that closing does not reset
/// the connection: a reset can overtake the busy answer. False once the
/// caller has closed or the connection failed.
fn still_open(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    for _ in 0..READS_PER_ROUND {
        match stream.read(&mut buf) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::EndReason;
    use crate::net::connection::tests::key;
    use crate::net::connection::{Connection, Event, Role};
    use crate::wire::Intro;

    /// A caller's connection on a real socket, run until it ends.
    fn call_and_wait(addr: SocketAddr) -> EndReason {
        let stream = TcpStream::connect(addr).unwrap();
        let now = Instant::now();
        let mut conn =
            Connection::new(Role::Caller, Intro::new("caller", 0, 0), &key(), now, 0).unwrap();
        let mut out = Vec::new();
        conn.take_outgoing(&mut out);
        (&stream).write_all(&out).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 1024];
        loop {
            match (&stream).read(&mut buf) {
                Ok(0) => conn.handle_closed(),
                Ok(n) => conn.handle_bytes(Instant::now(), &buf[..n]),
                Err(e) => panic!("no answer: {e}"),
            }
            while let Some(event) = conn.poll_event() {
                if let Event::Ended(reason) = event {
                    assert!(conn.peer().is_none(), "a caller told busy learned a code");
                    return reason;
                }
            }
            conn.take_outgoing(&mut out);
            (&stream).write_all(&out).unwrap();
        }
    }

    #[test]
    fn a_handshake_under_way_when_a_call_rings_is_told_busy_without_a_code() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let us = crate::net::Us {
            intro: Intro::new("listener", 0, 0),
            key: key(),
        };
        let mut door = crate::net::door::Door::new(listener, us).unwrap();
        let caller = std::thread::spawn(move || call_and_wait(addr));
        // The door took the caller, whose handshake is under way...
        while door.waiting() == 0 {
            assert!(door.poll(Instant::now()).is_none());
            std::thread::sleep(PUMP_INTERVAL);
        }
        // ...when another call begins to ring.
        let (offers, _offered) = crossbeam_channel::bounded(OFFERS_WAITING);
        let tone = door.busy_tone(offers).unwrap();
        assert_eq!(door.waiting(), 0);
        assert_eq!(caller.join().unwrap(), EndReason::Busy);
        drop(tone);
    }

    #[test]
    fn every_caller_hears_busy_while_the_tone_runs() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (offers, _offered) = crossbeam_channel::bounded(OFFERS_WAITING);
        let tone = BusyTone::start(&listener, Vec::new(), offers).unwrap();
        for _ in 0..3 {
            assert_eq!(call_and_wait(addr), EndReason::Busy);
        }
        drop(tone);
        // Stopped: the next caller waits in the kernel's queue, unanswered.
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 16];
        assert!((&stream).read(&mut buf).is_err(), "answered after stopping");
    }
}
