//! A running call's one owner, with no I/O: the [`Connection`] (the
//! protocol), the link [`Feedback`] and the bookkeeping of what the socket
//! has taken. Whoever drives it (the `link` threads, or a test's simulated
//! link) feeds it the peer's bytes, what the socket wrote, frames and
//! lines to send and the time, and takes out bytes for the socket, events
//! and the next deadline. Nothing in it belongs to one TCP connection but
//! the stream offsets, so a later change can carry a call over to a new
//! socket.

use std::time::Instant;

use super::connection::{Connection, Event, TextError};
use super::feedback::{Feedback, LinkSample};
use super::resume::Resumed;
use crate::call::EndReason;
use crate::wire::Frame;

/// See the module documentation.
pub struct Driver {
    conn: Connection,
    feedback: Feedback,
    /// Bytes the handshake left unsent, which go first.
    unsent: Vec<u8>,
    /// Stream bytes handed to the socket, and taken by it.
    handed: u64,
    written: u64,
    /// Our clock for the write times: only differences count.
    epoch: Instant,
}

impl Driver {
    /// Takes over `conn`; `unsent` (what its socket had not taken yet of
    /// the bytes taken out of it) is sent first.
    pub fn new(conn: Connection, unsent: Vec<u8>, now: Instant) -> Driver {
        let written = conn.taken_bytes().saturating_sub(unsent.len() as u64);
        Driver {
            conn,
            feedback: Feedback::default(),
            handed: written,
            written,
            unsent,
            epoch: now,
        }
    }

    /// The protocol, for what it decides alone (confirming, pausing,
    /// closing, asking about the peer).
    pub fn conn(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Why the call ended, once it has.
    pub fn end_reason(&self) -> Option<&EndReason> {
        self.conn.end_reason()
    }

    /// Bytes from the peer, read at `now`.
    pub fn handle_read(&mut self, now: Instant, bytes: &[u8]) {
        self.conn.handle_bytes(now, bytes);
    }

    /// The peer closed its side.
    pub fn handle_closed(&mut self) {
        self.conn.handle_closed();
    }

    /// The socket has taken `bytes` more of the stream by `now`.
    pub fn handle_written(&mut self, bytes: u64, now: Instant) {
        self.written = (self.written + bytes).min(self.handed);
        let at_us = self.our_us(now);
        self.feedback.written(self.written, at_us);
    }

    /// Our clock for the link estimate, µs since the driver began.
    fn our_us(&self, now: Instant) -> u64 {
        let us = now.saturating_duration_since(self.epoch).as_micros();
        u64::try_from(us).unwrap_or(u64::MAX)
    }

    /// The protocol's deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.conn.handle_timeout(now);
    }

    /// When [`Driver::handle_timeout`] has something to do next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conn.poll_timeout()
    }

    /// Seals a frame for the socket (while our video may flow).
    pub fn send_frame(&mut self, frame: Frame) -> Result<(), EndReason> {
        let seq = frame.seq;
        let before = self.conn.queued_bytes();
        self.conn.send_frame(frame)?;
        let end = self.conn.queued_bytes();
        if end > before {
            self.feedback.frame_queued(seq, end - before, end);
        }
        Ok(())
    }

    /// Carries the call over to the new connection of `resumed` (false:
    /// its ticket was stale, nothing changed): its stream starts at 0, and
    /// its link is not known yet.
    pub fn resume(&mut self, now: Instant, resumed: Resumed) -> bool {
        let Resumed {
            generation,
            keys,
            leftover,
        } = resumed;
        if !self.conn.resume(now, generation, keys, &leftover) {
            return false;
        }
        self.feedback = Feedback::default();
        self.unsent.clear();
        (self.handed, self.written) = (0, 0);
        self.epoch = now;
        true
    }

    /// True when nothing waits to be handed to the socket or written.
    pub fn is_flushed(&self) -> bool {
        self.written >= self.handed && self.unsent.is_empty() && !self.conn.has_outgoing()
    }

    /// Sends a line the person typed.
    pub fn send_text(&mut self, line: &str) -> Result<(), TextError> {
        self.conn.send_text(line)
    }

    /// The bytes for the socket, once it has taken everything handed to it
    /// before (frames sealed meanwhile wait here; the encoder counts them
    /// as not yet sent, so they stay within what the link drains in a
    /// moment).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.written < self.handed {
            return None;
        }
        let mut out = std::mem::take(&mut self.unsent);
        if self.conn.has_outgoing() {
            let mut more = Vec::new();
            self.conn.take_outgoing(&mut more);
            out.extend_from_slice(&more);
        }
        if out.is_empty() {
            return None;
        }
        self.handed += out.len() as u64;
        Some(out)
    }

    /// The next event for the rest of the program; the peer's reports of
    /// what it received feed the link estimate on the way.
    pub fn poll_event(&mut self, now: Instant) -> Option<Event> {
        loop {
            match self.conn.poll_event()? {
                Event::Received(arrivals) => {
                    let now_us = self.our_us(now);
                    self.feedback.received(now_us, &arrivals);
                }
                event => return Some(event),
            }
        }
    }

    /// The link as the peer's reports show it at `now`.
    pub fn link(&self, now: Instant) -> LinkSample {
        self.feedback.sample(self.our_us(now))
    }

    /// A peer timestamp in our clock.
    pub fn to_local_us(&self, peer_us: u64) -> u64 {
        self.conn.to_local_us(peer_us)
    }
}
