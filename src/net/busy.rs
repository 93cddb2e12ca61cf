//! The busy tone: while a call rings or runs, the listener still answers
//! its port, so a second caller reads "busy" at once instead of a refused
//! or silent connection. Every newcomer gets a busy Hello and the
//! connection closes; a handshake that was already under way at the door
//! is finished and told busy in its Bye (it never rings, so it learns no
//! code). On its own thread, with bounded work: at most [`MAX_CLOSING`]
//! connections are held while they drain, each for at most [`LINGER`], a
//! few reads each per round, the door's handshakes (at most its
//! `MAX_PENDING`) each within their own deadline, and one log line a second.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::connection::HANDSHAKE_TIMEOUT;
use super::{PUMP_INTERVAL, Peer, canonical};
use crate::call::EndReason;
use crate::wire;

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

/// The busy tone's thread; stops when dropped.
pub struct BusyTone {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BusyTone {
    /// Starts answering "busy" on (a handle to) `listener`, and to the
    /// callers whose handshakes are `under_way`.
    pub fn start(listener: &TcpListener, under_way: Vec<Peer>) -> Result<BusyTone> {
        let listener = listener.try_clone().context("cannot answer callers busy")?;
        listener.set_nonblocking(true)?;
        let answer = wire::busy_answer()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = thread::Builder::new()
            .name("busy".into())
            .spawn(move || run(&listener, &answer, under_way, &stopped))
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

fn run(listener: &TcpListener, answer: &[u8], under_way: Vec<Peer>, stop: &AtomicBool) {
    // Each handshake ends within its own deadline; its Bye has a moment more.
    let until = Instant::now() + HANDSHAKE_TIMEOUT + LINGER;
    let mut under_way: Vec<(Peer, Instant)> = under_way.into_iter().map(|p| (p, until)).collect();
    let mut closing: VecDeque<(TcpStream, Instant)> = VecDeque::new();
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
                Ok((stream, addr)) => {
                    told += 1;
                    last = Some(canonical(addr));
                    if let Some(stream) = tell(stream, answer) {
                        closing.push_back((stream, now + LINGER));
                    }
                    if closing.len() > MAX_CLOSING {
                        closing.pop_front();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
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

/// Writes the busy answer (a few dozen bytes: one write takes them all)
/// and ends our side; the stream to drain, unless it already failed.
fn tell(stream: TcpStream, answer: &[u8]) -> Option<TcpStream> {
    stream.set_nonblocking(true).ok()?;
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
        let tone = door.busy_tone().unwrap();
        assert_eq!(door.waiting(), 0);
        assert_eq!(caller.join().unwrap(), EndReason::Busy);
        drop(tone);
    }

    #[test]
    fn every_caller_hears_busy_while_the_tone_runs() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let tone = BusyTone::start(&listener, Vec::new()).unwrap();
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
