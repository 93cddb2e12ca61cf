//! One call's protocol as a state machine with no I/O and no clock of its
//! own, in the manner of quinn-proto: whoever drives it feeds the peer's
//! bytes and the time in (`handle_bytes`, `handle_closed`,
//! `handle_timeout`), takes events out (`poll_event`) and bytes to send
//! (`take_outgoing`), and wakes it again at `poll_timeout`.
//!
//! It owns everything the two peers agree on: the framing, the Hellos, the
//! Noise handshake and the code, the encrypted transport, the answer
//! (accept or decline, and how long either may take), the heartbeat and the
//! peer's clock, frame order and keyframe recovery, and Bye. The socket
//! threads in `link` and the listener in `door` only move bytes, so every
//! case here (a relay, a hostile or frozen or deaf peer) runs in tests as
//! two connections joined in memory on a fake clock.
//!
//! A call outlives its TCP connection. When nothing comes from the peer
//! for [`SILENT_LINK`] while the kernel sees our own bytes wait
//! unacknowledged for [`STALLED_AFTER`] (or cannot say), the link went
//! silent: the call is *reconnecting* (no video is sealed) until
//! [`Connection::resume`] carries it over to a new connection with the
//! keys of a resumption (`net::resume`), or [`RECONNECT_TIMEOUT`] after
//! the last byte it ends. A peer whose machine acknowledged our bytes
//! well after its program last spoke ([`ANSWERED_WHILE_SILENT`]) is
//! frozen, not cut off: it is let go at [`IDLE_TIMEOUT`]. Until the
//! kernel's view says one or the other, the silence is looked at again
//! every [`LINK_RECHECK`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::budget::Budget;
use crate::call::{
    EncodingError, EndReason, IDLE_TIMEOUT, Lost, NetworkError, ProtocolError, RECONNECT_TIMEOUT,
};
use crate::secure::{self, Handshake, Opener, Sealer, StaticKey, Ticket};
use crate::wire::{
    self, Arrival, ByeReason, Finale, Frame, FrameDecoder, Hello, Intro, MAX_ARRIVALS,
    MAX_HELLO_LEN, MAX_MESSAGE_LEN, Message, VideoFormat, WireError,
};

/// How long a peer has from the first byte to a finished handshake: a slow
/// or silent client cannot hold a place at the door longer.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a call rings before the callee declines it by itself.
pub const RING_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a caller waits for the answer: the ring, plus a margin for the
/// callee's "declined" to arrive.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(35);
/// How often each side sends a Ping; well below [`IDLE_TIMEOUT`], so one
/// lost or late Pong is no reason to hang up.
pub const PING_INTERVAL: Duration = Duration::from_secs(1);
/// The first Ping after the call opens waits this long: the threads that
/// run the call are up by then, so its round trip measures the network, not
/// our own start-up (the clock estimate takes the fastest round trip).
const FIRST_PING_DELAY: Duration = Duration::from_millis(100);
/// Silence from the peer after which a link whose bytes wait
/// unacknowledged counts as gone: longer than the gap between two of the
/// peer's Pings, so a quiet call (both videos paused) is not taken for one.
pub const SILENT_LINK: Duration = Duration::from_millis(1500);
/// No acknowledgement for this long while our bytes wait is a stalled
/// link: longer than the gap between two of our Pings.
pub const STALLED_AFTER: Duration = Duration::from_millis(1500);
/// An acknowledgement this long after the peer's last byte means its
/// machine answers while its program, which would have sent a Ping by
/// then, says nothing: the program is frozen.
pub const ANSWERED_WHILE_SILENT: Duration = Duration::from_millis(1500);
/// How often a silence the kernel's view does not explain yet is looked at.
pub const LINK_RECHECK: Duration = Duration::from_millis(100);

/// What the kernel says of our bytes on the connection: whether some wait
/// (unacknowledged, or unsent), and how long since the peer's machine last
/// acknowledged any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkCheck {
    pub waiting: bool,
    pub since_ack: Duration,
}
/// H.264 decode failures in a row after which the call ends.
pub const MAX_DECODE_ERRORS: u32 = 10;
/// Largest encrypted message: the message cap plus Noise's tags.
pub const MAX_SEALED_LEN: u64 = secure::sealed_len(MAX_MESSAGE_LEN as usize) as u64;
/// Bytes of small messages (Pongs, requests) that may wait unsent: a peer
/// that floods Pings while not reading cannot make the queue grow.
const MAX_QUEUED: usize = 64 * 1024;
/// Pings remembered for matching their Pongs (a Pong that answers none is
/// ignored, so a peer cannot steer our clock estimate).
const PINGS_KEPT: usize = 8;
/// Round-trip samples kept for the clock estimate's minimum filter.
const CLOCK_SAMPLES: usize = 16;
/// Frames a second a peer may send: twice the highest `--fps`, so decode
/// work is bounded whatever a peer sends (a flood of tiny skip frames costs
/// a full decode each)...
pub const MAX_FRAME_RATE: f64 = 240.0;
/// ...with a second's worth at once (what waited behind a stall).
const MAX_FRAME_BURST: f64 = MAX_FRAME_RATE;
/// Text messages a second a peer may send (a person types far fewer);
/// beyond it they are refused, and the call goes on...
pub const MAX_TEXT_RATE: f64 = 5.0;
/// ...with this many at once (a few lines pasted together).
const MAX_TEXT_BURST: f64 = 20.0;

/// Why a line could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("the call is not on")]
    NotInCall,
    #[error("the other side's vidchat cannot receive text")]
    PeerCannotReceive,
    #[error("the line is too long (at most {} characters)", wire::MAX_TEXT_CHARS)]
    TooLong,
    #[error("not sent: the call is reconnecting")]
    Reconnecting,
}

/// Which end of the call this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Connected out, writes messages 1 and 3 (revealing its nonce).
    Caller,
    /// Was connected to, writes message 2, rings (revealing its nonce) and
    /// answers the call.
    Callee,
}

/// The peer, once the handshake is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Safe to print (see `wire::safe_name`).
    pub name: String,
    /// The six-digit code both people compare, "123 456".
    pub code: String,
    /// The peer's static public key, proven in the handshake: who it is
    /// across calls (see `trust`).
    pub key: [u8; 32],
    /// Largest picture the peer will send (0x0: none).
    pub width: u32,
    pub height: u32,
    /// Formats the peer sends and receives, preferred first.
    pub codecs: Vec<VideoFormat>,
    /// Whether it can receive typed text (its intro says so).
    pub can_receive_text: bool,
}

/// What the connection tells its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The handshake is done: who the peer is, and the code. The call now
    /// rings until the callee answers.
    Connected(PeerInfo),
    /// The callee took the call: video may flow (the caller's side).
    Accepted,
    /// A video frame, in order, size-checked, worth decoding.
    Frame(Frame),
    /// The peer paused (true) or resumed its video.
    PeerPaused(bool),
    /// The caller's person compared the code and said yes: its video may
    /// come (the callee's side).
    PeerConfirmed,
    /// A line the peer typed, as it sent it (at most
    /// [`wire::MAX_TEXT_BYTES`]; `wire::safe_text` before showing it).
    Text(String),
    /// A line from the peer was refused: too long, or too many too fast.
    TextRefused,
    /// A new smallest round trip to the peer, microseconds.
    Rtt(u64),
    /// What the peer received of our frames, for the sender's view of the
    /// link (its clock; see `net::feedback`).
    Received(Vec<Arrival>),
    /// The link went silent: the call tries to resume (no video goes).
    Reconnecting,
    /// The link works again (on a new connection, or the old one came back).
    Reconnected,
    /// The call is over (or never started), and why. Always the last event.
    Ended(EndReason),
}

enum Phase {
    /// Our Hello is out; waiting for the peer's.
    Hello {
        ours: Vec<u8>,
    },
    /// The Noise messages (the caller waits for 2, the callee for 1 then 3).
    Noise {
        noise: Box<Handshake>,
        their_commitment: [u8; 32],
    },
    /// The caller's handshake is done, but not its code: it waits until
    /// `until` for the callee's nonce, which comes when the callee rings.
    Revealing {
        hash: Vec<u8>,
        intro: Intro,
        their_commitment: [u8; 32],
        until: Instant,
    },
    /// Handshake done, code known, answer pending; the callee declines by
    /// itself at `until`.
    Ringing {
        until: Instant,
    },
    /// The call is on.
    Open,
    Closed,
}

/// Ping and idle deadlines, as data.
struct Heartbeat {
    next_ping: Instant,
    /// Any byte from the peer: it is alive.
    last_heard: Instant,
    /// The last Pong, or the start: the peer reads what we send.
    last_answered: Instant,
    /// When the timers were last looked at.
    checked: Instant,
    /// The link went silent: waiting for a resumption since `last_heard`.
    reconnecting: bool,
    /// The peer went quiet while its machine still acknowledged our bytes:
    /// frozen, not cut off (until it is heard again).
    frozen: bool,
}

/// The peer's clock from Ping/Pong round trips: the sample with the
/// smallest round trip is the least distorted by queues.
#[derive(Default)]
struct ClockSync {
    /// Recent (round trip, offset) samples, microseconds.
    samples: VecDeque<(u64, i64)>,
}

impl ClockSync {
    /// A Pong for our Ping sent at `sent_us`, stamped `peer_us` by the peer,
    /// received at `now_us`. Returns the round trip when it is a new best.
    fn handle_pong(&mut self, sent_us: u64, peer_us: u64, now_us: u64) -> Option<u64> {
        let rtt = now_us.checked_sub(sent_us)?;
        let midpoint = sent_us + rtt / 2;
        // i128: any two u64s differ by less than its range; clamp to i64.
        let offset = (i128::from(peer_us) - i128::from(midpoint))
            .clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        let best = self.rtt_us();
        if self.samples.len() == CLOCK_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back((rtt, offset));
        (best != self.rtt_us()).then_some(rtt)
    }

    fn offset_us(&self) -> i64 {
        self.samples.iter().min_by_key(|s| s.0).map_or(0, |s| s.1)
    }

    fn rtt_us(&self) -> Option<u64> {
        self.samples.iter().map(|s| s.0).min()
    }

    /// A peer timestamp in our clock (saturating at the ends of u64).
    fn to_local_us(&self, peer_us: u64) -> u64 {
        (i128::from(peer_us) - i128::from(self.offset_us())).clamp(0, i128::from(u64::MAX)) as u64
    }
}

/// One call's protocol. See the module documentation.
pub struct Connection {
    role: Role,
    phase: Phase,
    our_intro: Intro,
    /// Who we are across calls.
    our_key: StaticKey,
    /// The peer's static public key, once the handshake proved it.
    their_key: Option<[u8; 32]>,
    /// Our nonce for the code; we committed to it in our Hello.
    nonce: [u8; 32],
    /// The callee told the caller its nonce (it rang).
    revealed: bool,
    /// Our person said yes: the callee's answer, the caller's confirmation
    /// once the codes were compared. No frame leaves before.
    confirmed: bool,
    /// The peer's person said yes (the caller's: its Confirmed).
    peer_confirmed: bool,
    /// Both Hellos, caller's first, for the Noise prologue.
    hellos: Vec<Vec<u8>>,
    decoder: FrameDecoder,
    ciphers: Option<(Sealer, Opener)>,
    peer: Option<PeerInfo>,
    /// The peer's safe name, from its intro.
    their_name: Option<String>,
    /// Bytes for the socket, in order.
    outgoing: Vec<u8>,
    /// Bytes taken out of `outgoing` so far.
    taken: u64,
    /// Bytes received so far.
    received: u64,
    /// When the read came that left part of a message waiting, and
    /// `received` then: where the next frame began to arrive.
    partial_since: Option<(Instant, u64)>,
    /// Frames completed by the current read, to report to the peer.
    arrivals: Vec<Arrival>,
    /// Reused buffers for one message before encryption and after decryption.
    plain: Vec<u8>,
    events: VecDeque<Event>,
    /// When the handshake must be done by.
    handshake_deadline: Instant,
    heartbeat: Option<Heartbeat>,
    clock: ClockSync,
    /// Our recent Pings' timestamps, oldest first.
    pings: VecDeque<u64>,
    /// Our clock: Unix microseconds at `epoch`.
    epoch: (Instant, u64),
    last_seq: Option<u64>,
    /// Our decoder lost the picture: P-frames are useless until a keyframe.
    awaiting_keyframe: bool,
    decode_errors: u32,
    /// The peer asked for a keyframe and the sender has not taken it yet.
    keyframe_wanted: bool,
    /// Whether the peer was last told our video is paused.
    paused: bool,
    /// Where the call's resumption tickets come from (once the keys exist).
    resume_secret: Option<[u8; 32]>,
    /// Resumptions so far: the number of the one ticket that works now.
    generation: u64,
    /// The callee's last ticket, still good until the caller is heard on
    /// the connection it resumed: its proof may have come without it ever
    /// hearing that the callee took it.
    spare_generation: Option<u64>,
    /// The kernel's last word on our bytes (None: it cannot say).
    link_check: Option<LinkCheck>,
    /// Frames the peer may still send.
    frame_budget: Budget,
    /// Text messages the peer may still send.
    text_budget: Budget,
    end: Option<EndReason>,
    /// Bytes to send as our next handshake payload instead of our intro or
    /// finale, as a hostile peer could (tests and fuzzing only).
    #[cfg(any(test, feature = "fuzzing"))]
    raw_handshake: Option<Vec<u8>>,
}

impl Connection {
    /// A new connection at `now` (whose wall-clock time is `now_unix_us`),
    /// introducing ourselves with `intro` and proving `key`; our Hello is
    /// ready to send.
    pub fn new(
        role: Role,
        intro: Intro,
        key: &StaticKey,
        now: Instant,
        now_unix_us: u64,
    ) -> Result<Connection, EndReason> {
        let nonce =
            secure::random_nonce().map_err(|e| EndReason::Network(NetworkError::Random(e)))?;
        let commitment = secure::commitment(&nonce);
        let mut ours = Vec::new();
        wire::encode_payload(&Hello::new(commitment), MAX_HELLO_LEN, &mut ours)
            .map_err(wire_error)?;
        let mut outgoing = Vec::new();
        wire::frame(&ours, &mut outgoing);
        Ok(Connection {
            role,
            phase: Phase::Hello { ours },
            our_intro: intro,
            our_key: key.clone(),
            their_key: None,
            nonce,
            revealed: false,
            confirmed: false,
            // The callee's yes is its answer; the caller's comes later.
            peer_confirmed: role == Role::Caller,
            hellos: Vec::new(),
            decoder: FrameDecoder::new(MAX_HELLO_LEN),
            ciphers: None,
            peer: None,
            their_name: None,
            outgoing,
            taken: 0,
            received: 0,
            partial_since: None,
            arrivals: Vec::new(),
            plain: Vec::new(),
            events: VecDeque::new(),
            handshake_deadline: now + HANDSHAKE_TIMEOUT,
            heartbeat: None,
            clock: ClockSync::default(),
            pings: VecDeque::new(),
            epoch: (now, now_unix_us),
            last_seq: None,
            awaiting_keyframe: false,
            decode_errors: 0,
            keyframe_wanted: false,
            paused: false,
            resume_secret: None,
            generation: 0,
            spare_generation: None,
            link_check: None,
            frame_budget: Budget::new(MAX_FRAME_RATE, MAX_FRAME_BURST),
            text_budget: Budget::new(MAX_TEXT_RATE, MAX_TEXT_BURST),
            end: None,
            #[cfg(any(test, feature = "fuzzing"))]
            raw_handshake: None,
        })
    }

    /// The peer's (safe) name, once its intro came: from message 2 on for
    /// a caller, before the code is known (and after the call ended).
    pub fn peer_name(&self) -> Option<&str> {
        self.their_name.as_deref()
    }

    /// Which end of the call this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Who the peer is, once the handshake is done.
    pub fn peer(&self) -> Option<&PeerInfo> {
        self.peer.as_ref()
    }

    /// Why the call ended, once it has.
    pub fn end_reason(&self) -> Option<&EndReason> {
        self.end.as_ref()
    }

    /// True while the call runs (answered, not ended).
    pub fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open)
    }

    /// True while our video may flow: the call runs and our person said yes.
    pub fn may_send_video(&self) -> bool {
        self.is_open() && self.confirmed && !self.is_reconnecting()
    }

    /// True while the link is silent and the call waits to resume.
    pub fn is_reconnecting(&self) -> bool {
        self.is_open() && self.heartbeat.as_ref().is_some_and(|hb| hb.reconnecting)
    }

    /// When the peer was last heard from (while the call runs).
    pub fn last_heard(&self) -> Option<Instant> {
        self.heartbeat.as_ref().map(|hb| hb.last_heard)
    }

    /// The ticket that resumes the call now (while it runs).
    pub fn ticket(&self) -> Option<Ticket> {
        self.ticket_for(self.generation)
    }

    /// The tickets a resumption may come with: the current one, and on
    /// the callee's side, while the connection it moved to failed before
    /// the caller spoke on it, the last one (the caller may never have
    /// heard that it was taken).
    pub fn tickets(&self) -> Vec<Ticket> {
        let spare = self.spare().and_then(|g| self.ticket_for(g));
        self.ticket().into_iter().chain(spare).collect()
    }

    /// True while the call moved to a connection the caller has not
    /// spoken on yet: its close may only mean the caller gave up on it.
    pub fn is_moving(&self) -> bool {
        self.spare_generation.is_some()
    }

    fn spare(&self) -> Option<u64> {
        self.spare_generation.filter(|_| self.is_reconnecting())
    }

    fn ticket_for(&self, generation: u64) -> Option<Ticket> {
        let secret = self.resume_secret.as_ref().filter(|_| self.is_open())?;
        Some(Ticket::new(
            secret,
            generation,
            &self.our_key,
            self.their_key?,
        ))
    }

    /// What the kernel says of our bytes now (None: it cannot say).
    pub fn handle_link_check(&mut self, check: Option<LinkCheck>) {
        self.link_check = check;
    }

    /// The socket failed in a way a new connection may mend (the network
    /// is unreachable, our address went away): reconnecting from now on.
    pub fn handle_link_failed(&mut self) {
        let open = self.is_open();
        if let Some(hb) = self
            .heartbeat
            .as_mut()
            .filter(|hb| open && !hb.reconnecting)
        {
            hb.reconnecting = true;
            self.events.push_back(Event::Reconnecting);
        }
    }

    /// Carries the call over to a new connection, whose resumption
    /// (with ticket `generation`) gave `sealer` and `opener`; the peer's
    /// bytes read on it so far are `leftover`. Everything sealed for the
    /// old connection is dropped; the peer is asked for a keyframe and told
    /// what it may have missed (our confirmation, our pause). False, and
    /// nothing changes, when the call is not running or the ticket is not
    /// one of [`Connection::tickets`] (used, or another resumption won).
    pub fn resume(
        &mut self,
        now: Instant,
        generation: u64,
        (sealer, opener): (Sealer, Opener),
        leftover: &[u8],
    ) -> bool {
        let good = generation == self.generation || Some(generation) == self.spare();
        if !self.is_open() || !good {
            return false;
        }
        self.generation = generation + 1;
        self.spare_generation = (self.role == Role::Callee).then_some(generation);
        self.ciphers = Some((sealer, opener));
        self.decoder = FrameDecoder::new(MAX_SEALED_LEN);
        self.outgoing.clear();
        self.taken = 0;
        self.received = 0;
        self.partial_since = None;
        self.arrivals.clear();
        self.pings.clear();
        self.link_check = None;
        self.open(now);
        self.awaiting_keyframe = true;
        self.keyframe_wanted = true;
        self.queue(&Message::KeyframeRequest);
        if self.role == Role::Caller && self.confirmed {
            self.queue(&Message::Confirmed);
        }
        self.queue(&Message::VideoPaused {
            paused: self.paused,
        });
        self.events.push_back(Event::Reconnected);
        self.handle_bytes(now, leftover);
        true
    }

    /// Whether the peer's person said yes (always, on the caller's side).
    pub fn peer_confirmed(&self) -> bool {
        self.peer_confirmed
    }

    /// The caller's person compared the code and said yes: its video may
    /// go, and the callee is told (as soon as the call is answered).
    /// Nothing happens on the callee's side, whose yes is its answer.
    pub fn confirm(&mut self) {
        if self.role != Role::Caller || self.confirmed {
            return;
        }
        self.confirmed = true;
        if self.is_open() {
            self.queue(&Message::Confirmed);
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Moves the bytes to send into `out` (cleared first; the two buffers
    /// swap, so neither is reallocated).
    pub fn take_outgoing(&mut self, out: &mut Vec<u8>) {
        out.clear();
        std::mem::swap(out, &mut self.outgoing);
        self.taken += out.len() as u64;
    }

    /// Bytes taken out with [`Connection::take_outgoing`] so far.
    pub fn taken_bytes(&self) -> u64 {
        self.taken
    }

    /// Bytes of the connection queued so far, taken or not: where the
    /// next message will end, less its own length.
    pub fn queued_bytes(&self) -> u64 {
        self.taken + self.outgoing.len() as u64
    }

    /// True when there are bytes to send.
    pub fn has_outgoing(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// When `handle_timeout` next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Hello { .. } | Phase::Noise { .. } => Some(self.handshake_deadline),
            Phase::Revealing { until, .. } | Phase::Ringing { until } => Some(*until),
            Phase::Open => self.heartbeat.as_ref().map(|hb| {
                if hb.reconnecting {
                    return hb.next_ping.min(hb.last_heard + RECONNECT_TIMEOUT);
                }
                let idle = hb.next_ping.min(hb.last_heard + IDLE_TIMEOUT);
                // The silence, until it is told apart.
                let silent = hb.last_heard + SILENT_LINK;
                let idle = match hb.frozen {
                    true => idle,
                    false if silent > hb.checked => idle.min(silent),
                    false => idle.min(hb.checked + LINK_RECHECK),
                };
                // The deaf deadline counts until it has been looked at.
                let deaf = hb.last_answered + IDLE_TIMEOUT;
                if deaf > hb.checked {
                    idle.min(deaf)
                } else {
                    idle
                }
            }),
            Phase::Closed => None,
        }
    }

    /// Our clock at `now`, Unix microseconds.
    fn unix_us(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.epoch.0).as_micros();
        self.epoch
            .1
            .saturating_add(since.min(u128::from(u64::MAX)) as u64)
    }

    /// A peer timestamp (its capture time) in our clock's Unix microseconds.
    pub fn to_local_us(&self, peer_us: u64) -> u64 {
        self.clock.to_local_us(peer_us)
    }

    /// Deadlines: the handshake's, the ring's, the heartbeat's.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &self.phase {
            Phase::Hello { .. } | Phase::Noise { .. } if now >= self.handshake_deadline => {
                let secs = HANDSHAKE_TIMEOUT.as_secs();
                self.close(EndReason::Protocol(ProtocolError::NoHandshake { secs }));
            }
            Phase::Revealing { until, .. } if now >= *until => {
                let secs = ANSWER_TIMEOUT.as_secs();
                self.close(EndReason::Protocol(ProtocolError::NoAnswer { secs }));
            }
            Phase::Ringing { until } if now >= *until => match self.role {
                Role::Callee => self.answer(now, false),
                Role::Caller => {
                    let secs = ANSWER_TIMEOUT.as_secs();
                    self.close(EndReason::Protocol(ProtocolError::NoAnswer { secs }));
                }
            },
            Phase::Open => self.heartbeat_timeout(now),
            _ => {}
        }
    }

    fn heartbeat_timeout(&mut self, now: Instant) {
        let Some(hb) = self.heartbeat.as_mut() else {
            return;
        };
        hb.checked = hb.checked.max(now);
        if hb.reconnecting {
            if now >= hb.last_heard + RECONNECT_TIMEOUT {
                let secs = RECONNECT_TIMEOUT.as_secs();
                return self.close(EndReason::PeerNotResponding { secs });
            }
        } else if now >= hb.last_heard + SILENT_LINK && !hb.frozen {
            // Silent. Decided once per silence: a frozen peer's kernel, its
            // buffer full, answers only backed-off window probes, which can
            // look like a stall later on.
            let silence = now - hb.last_heard;
            match self.link_check {
                // Our bytes are not acknowledged either (or the kernel
                // cannot say): the link, not the peer.
                None => hb.reconnecting = true,
                Some(c) if c.waiting && c.since_ack >= STALLED_AFTER => hb.reconnecting = true,
                Some(c) if silence >= c.since_ack + ANSWERED_WHILE_SILENT => hb.frozen = true,
                // Not told apart yet: looked at again in LINK_RECHECK.
                Some(_) => {}
            }
            if hb.reconnecting {
                self.events.push_back(Event::Reconnecting);
            }
        }
        if hb.reconnecting {
            // Pings still go, so the peer's kernel, if it hears them, keeps
            // telling its side that this one is alive.
            return self.ping_when_due(now);
        }
        if now >= hb.last_heard + IDLE_TIMEOUT {
            let secs = IDLE_TIMEOUT.as_secs();
            return self.close(EndReason::PeerNotResponding { secs });
        }
        // Deaf, not frozen: it still sends (its own Pings at least), yet has
        // answered none of ours. A frozen peer's last Pong is older than its
        // last byte too, but it has gone quiet: that is "not responding".
        if now >= hb.last_answered + IDLE_TIMEOUT && now < hb.last_heard + 2 * PING_INTERVAL {
            return self.close(EndReason::PeerNotReading);
        }
        self.ping_when_due(now);
    }

    fn ping_when_due(&mut self, now: Instant) {
        let Some(hb) = self.heartbeat.as_mut().filter(|hb| now >= hb.next_ping) else {
            return;
        };
        hb.next_ping = now + PING_INTERVAL;
        let sent_us = self.unix_us(now);
        if self.pings.len() == PINGS_KEPT {
            self.pings.pop_front();
        }
        self.pings.push_back(sent_us);
        self.queue(&Message::Ping { sent_us });
    }

    /// The peer closed its side of the connection.
    pub fn handle_closed(&mut self) {
        let reason = match (&self.phase, self.decoder.finish()) {
            (Phase::Closed, _) => return,
            (Phase::Hello { .. } | Phase::Noise { .. }, Ok(())) if self.hellos.is_empty() => {
                EndReason::Protocol(ProtocolError::ClosedWithoutAWord)
            }
            (Phase::Hello { .. } | Phase::Noise { .. }, Ok(())) => {
                EndReason::Protocol(ProtocolError::ClosedDuringHandshake)
            }
            (Phase::Hello { .. } | Phase::Noise { .. }, Err(e)) => wire_error(e),
            (Phase::Revealing { .. } | Phase::Ringing { .. }, _) if self.role == Role::Caller => {
                EndReason::ConnectionLost(Lost::PeerClosedBeforeAnswering)
            }
            // Cut mid-message (a killed peer): lost, not malformed.
            (_, Err(e)) => EndReason::ConnectionLost(Lost::MidMessage(e)),
            (_, Ok(())) => EndReason::ConnectionLost(Lost::PeerClosed),
        };
        self.close(reason);
    }

    /// Bytes from the peer, received at `now`.
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        if let Some(hb) = self.heartbeat.as_mut() {
            hb.last_heard = now;
            hb.frozen = false;
            if std::mem::take(&mut hb.reconnecting) {
                self.events.push_back(Event::Reconnected);
            }
        }
        self.received += bytes.len() as u64;
        self.decoder.extend(bytes);
        while !matches!(self.phase, Phase::Closed) {
            let step = match self.decoder.next_payload() {
                Ok(None) => break,
                Err(e) => return self.close(self.refusal(e)),
                // Handshake messages are small: copied, so the handshake
                // can work on the whole connection.
                Ok(Some(payload)) if self.ciphers.is_none() => {
                    let payload = payload.to_vec();
                    self.handle_handshake(now, &payload)
                }
                // After it, messages are opened straight from the decoder.
                Ok(Some(sealed)) => match self.ciphers.as_mut() {
                    Some((_, opener)) => opener
                        .open(sealed, &mut self.plain)
                        .map_err(secure_error)
                        // The peer speaks on this connection: it knows
                        // the last resumption went through.
                        .inspect(|()| self.spare_generation = None)
                        .and_then(|()| wire::decode_message(&self.plain).map_err(wire_error))
                        .and_then(|msg| self.handle_message(now, msg)),
                    None => Ok(()),
                },
            };
            if let Err(reason) = step {
                self.close(reason);
            }
        }
        // Like Pongs, reports wait unsent only within MAX_QUEUED.
        if !self.arrivals.is_empty() && self.is_open() && self.outgoing.len() < MAX_QUEUED {
            let frames = std::mem::take(&mut self.arrivals);
            self.queue(&Message::Received { frames });
        }
        self.arrivals.clear();
        if !self.decoder.buffered().is_empty() && self.partial_since.is_none() {
            self.partial_since = Some((now, self.received));
        }
    }

    /// Why bytes that do not frame are refused; before the handshake, in
    /// the words of the protocol they seem to be.
    fn refusal(&self, e: WireError) -> EndReason {
        let foreign = matches!(self.phase, Phase::Hello { .. })
            .then(|| wire::known_protocol(self.decoder.buffered()))
            .flatten();
        match (foreign, &e) {
            (Some(what), WireError::TooLong { .. }) => {
                wire_error(WireError::NotVidchat(what.into()))
            }
            _ => wire_error(e),
        }
    }

    /// One payload of the Hellos or the Noise handshake.
    fn handle_handshake(&mut self, now: Instant, payload: &[u8]) -> Result<(), EndReason> {
        match std::mem::replace(&mut self.phase, Phase::Closed) {
            Phase::Hello { ours } => {
                let theirs = wire::decode_hello(payload).map_err(wire_error)?;
                if theirs.busy {
                    return Err(EndReason::Busy);
                }
                if theirs.resume.is_some() {
                    return Err(EndReason::Protocol(ProtocolError::NothingToResume));
                }
                self.hellos = match self.role {
                    Role::Caller => vec![ours, payload.to_vec()],
                    Role::Callee => vec![payload.to_vec(), ours],
                };
                let prologue = [
                    b"vidchat prologue v1".as_slice(),
                    &self.hellos[0],
                    &self.hellos[1],
                ]
                .concat();
                let mut noise = Handshake::new(self.role == Role::Caller, &prologue, &self.our_key)
                    .map_err(secure_error)?;
                self.decoder.set_max_len(secure::NOISE_MAX as u64);
                if self.role == Role::Caller {
                    let msg1 = noise.write(&[]).map_err(secure_error)?;
                    wire::frame(&msg1, &mut self.outgoing);
                }
                self.phase = Phase::Noise {
                    noise: Box::new(noise),
                    their_commitment: theirs.commitment,
                };
                Ok(())
            }
            Phase::Noise {
                mut noise,
                their_commitment,
            } => {
                let read = noise.read(payload).map_err(secure_error)?;
                match self.role {
                    Role::Caller => {
                        let intro: Intro =
                            wire::decode(&read, MAX_HELLO_LEN).map_err(wire_error)?;
                        self.their_name = Some(wire::safe_name(&intro.name));
                        let mut finale = Vec::new();
                        let ours = Finale {
                            nonce: self.nonce,
                            intro: self.our_intro.clone(),
                        };
                        wire::encode_payload(&ours, MAX_HELLO_LEN, &mut finale)
                            .map_err(wire_error)?;
                        let finale = self.handshake_payload(finale);
                        let msg3 = noise.write(&finale).map_err(secure_error)?;
                        wire::frame(&msg3, &mut self.outgoing);
                        let hash = self.take_keys(*noise)?;
                        self.phase = Phase::Revealing {
                            hash,
                            intro,
                            their_commitment,
                            until: now + ANSWER_TIMEOUT,
                        };
                        Ok(())
                    }
                    Role::Callee if noise.messages() == 1 => {
                        let mut intro = Vec::new();
                        wire::encode_payload(&self.our_intro, MAX_HELLO_LEN, &mut intro)
                            .map_err(wire_error)?;
                        let intro = self.handshake_payload(intro);
                        let msg2 = noise.write(&intro).map_err(secure_error)?;
                        wire::frame(&msg2, &mut self.outgoing);
                        self.phase = Phase::Noise {
                            noise,
                            their_commitment,
                        };
                        Ok(())
                    }
                    Role::Callee => {
                        let finale: Finale =
                            wire::decode(&read, MAX_HELLO_LEN).map_err(wire_error)?;
                        if secure::commitment(&finale.nonce) != their_commitment {
                            return Err(secure_error(secure::SecureError::Commitment));
                        }
                        self.their_name = Some(wire::safe_name(&finale.intro.name));
                        let hash = self.take_keys(*noise)?;
                        let code = secure::sas(&hash, &finale.nonce, &self.nonce);
                        self.connected(now, code, finale.intro);
                        Ok(())
                    }
                }
            }
            // The ciphers exist from Revealing on: those phases never get here.
            phase @ (Phase::Revealing { .. }
            | Phase::Ringing { .. }
            | Phase::Open
            | Phase::Closed) => {
                self.phase = phase;
                Ok(())
            }
        }
    }

    /// Our encrypted handshake payload: `encoded`, or in tests and fuzzing
    /// whatever bytes replace it.
    fn handshake_payload(&mut self, encoded: Vec<u8>) -> Vec<u8> {
        #[cfg(any(test, feature = "fuzzing"))]
        if let Some(raw) = self.raw_handshake.take() {
            return raw;
        }
        encoded
    }

    /// Ends the handshake: the ciphers from now on, and the hash the code covers.
    fn take_keys(&mut self, noise: Handshake) -> Result<Vec<u8>, EndReason> {
        let done = noise.finish().map_err(secure_error)?;
        self.resume_secret = Some(done.resume_secret);
        self.ciphers = Some((done.sealer, done.opener));
        self.their_key = Some(done.peer_key);
        self.decoder.set_max_len(MAX_SEALED_LEN);
        Ok(done.hash)
    }

    /// The code is known: the call rings until it is answered.
    fn connected(&mut self, now: Instant, code: String, intro: Intro) {
        let info = PeerInfo {
            name: wire::safe_name(&intro.name),
            code,
            // Set with the ciphers, before any code exists.
            key: self.their_key.unwrap_or_default(),
            width: intro.width,
            height: intro.height,
            can_receive_text: intro.can_receive_text(),
            codecs: intro.codecs,
        };
        self.peer = Some(info.clone());
        self.events.push_back(Event::Connected(info));
        let ring = match self.role {
            Role::Caller => ANSWER_TIMEOUT,
            Role::Callee => RING_TIMEOUT,
        };
        self.phase = Phase::Ringing { until: now + ring };
    }

    /// The callee's nonce, which it sends as it rings (the caller's side).
    fn revealed(&mut self, now: Instant, nonce: [u8; 32]) -> Result<(), EndReason> {
        let Phase::Revealing {
            hash,
            intro,
            their_commitment,
            until,
        } = std::mem::replace(&mut self.phase, Phase::Closed)
        else {
            return Err(EndReason::Protocol(ProtocolError::RevealedTwice));
        };
        if secure::commitment(&nonce) != their_commitment {
            return Err(secure_error(secure::SecureError::Commitment));
        }
        let code = secure::sas(&hash, &self.nonce, &nonce);
        self.connected(now, code, intro);
        // The caller's wait for an answer runs from message 3, not anew.
        self.phase = Phase::Ringing { until };
        Ok(())
    }

    /// One decrypted message of a ringing or running call.
    fn handle_message(&mut self, now: Instant, msg: Message) -> Result<(), EndReason> {
        let began = self.partial_since.take();
        if matches!(self.phase, Phase::Revealing { .. }) {
            return match msg {
                Message::Reveal { nonce } => self.revealed(now, nonce),
                // A call may be declined (or hung up) before it rings.
                Message::Answer { accepted: false } => Err(EndReason::Declined),
                Message::Bye {
                    reason: ByeReason::Busy,
                } => Err(EndReason::Busy),
                Message::Bye { .. } => Err(EndReason::PeerHungUp),
                _ => Err(EndReason::Protocol(ProtocolError::BeforeRinging)),
            };
        }
        let ringing = matches!(self.phase, Phase::Ringing { .. });
        match msg {
            Message::Answer { accepted } if ringing && self.role == Role::Caller => {
                if !accepted {
                    return Err(EndReason::Declined);
                }
                self.open(now);
                if self.confirmed {
                    self.queue(&Message::Confirmed);
                }
                self.events.push_back(Event::Accepted);
            }
            Message::Bye {
                reason: ByeReason::HungUp,
            } => return Err(EndReason::PeerHungUp),
            Message::Bye {
                reason: ByeReason::Busy,
            } => return Err(EndReason::Busy),
            _ if ringing => {
                return Err(EndReason::Protocol(ProtocolError::BeforeAnswer));
            }
            Message::Answer { .. } => {
                return Err(EndReason::Protocol(ProtocolError::AnsweredTwice));
            }
            Message::Reveal { .. } => {
                return Err(EndReason::Protocol(ProtocolError::RevealedTwice));
            }
            Message::Confirmed if self.role == Role::Callee => {
                if !self.peer_confirmed {
                    self.peer_confirmed = true;
                    self.events.push_back(Event::PeerConfirmed);
                }
            }
            Message::Confirmed => {
                return Err(EndReason::Protocol(ProtocolError::CalleeConfirmed));
            }
            Message::Frame(_) if !self.peer_confirmed => {
                return Err(EndReason::Protocol(ProtocolError::VideoBeforeConfirmed));
            }
            Message::Frame(frame) => {
                self.arrived(now, frame.seq, began);
                self.handle_frame(now, frame)?;
            }
            Message::Received { frames } => self.events.push_back(Event::Received(frames)),
            Message::Ping { sent_us } => {
                // Stamped on arrival; a flood while we cannot send is dropped.
                if self.outgoing.len() < MAX_QUEUED {
                    let peer_us = self.unix_us(now);
                    self.queue(&Message::Pong {
                        ping_sent_us: sent_us,
                        peer_us,
                    });
                }
            }
            Message::Pong {
                ping_sent_us,
                peer_us,
            } => {
                // Only a Pong for one of our recent Pings counts.
                if let Some(at) = self.pings.iter().position(|&p| p == ping_sent_us) {
                    self.pings.drain(..=at);
                    if let Some(hb) = self.heartbeat.as_mut() {
                        hb.last_answered = now;
                    }
                    let now_us = self.unix_us(now);
                    if let Some(rtt) = self.clock.handle_pong(ping_sent_us, peer_us, now_us) {
                        self.events.push_back(Event::Rtt(rtt));
                    }
                }
            }
            Message::VideoPaused { paused } => self.events.push_back(Event::PeerPaused(paused)),
            Message::Text { text } => {
                let fits = text.len() <= wire::MAX_TEXT_BYTES && self.text_budget.take(now);
                self.events.push_back(if fits {
                    Event::Text(text)
                } else {
                    Event::TextRefused
                });
            }
            Message::KeyframeRequest => self.keyframe_wanted = true,
        }
        Ok(())
    }

    /// Notes for the peer that frame `seq` arrived at `now`, having begun
    /// to arrive with the read `began` (None: with this one).
    fn arrived(&mut self, now: Instant, seq: u64, began: Option<(Instant, u64)>) {
        // Where the frame ends in the stream: what this read brought after
        // it is the next message's.
        let end = self
            .received
            .saturating_sub(self.decoder.buffered().len() as u64);
        // The frame's bytes after the first read, and the time they took at
        // the pace of all this span brought: a packet that ends the frame
        // and carries the next message's bytes takes the time of all of
        // them, and would read as a link that slow.
        let (spread_bytes, spread_us) = began.map_or((0, 0), |(at, received)| {
            let us = now.saturating_duration_since(at).as_micros();
            let bytes = end.saturating_sub(received);
            let all = self.received.saturating_sub(received).max(1);
            let us = us.saturating_mul(u128::from(bytes)) / u128::from(all);
            (
                u32::try_from(bytes).unwrap_or(u32::MAX),
                u32::try_from(us).unwrap_or(u32::MAX),
            )
        });
        if self.arrivals.len() == MAX_ARRIVALS {
            self.arrivals.remove(0);
        }
        self.arrivals.push(Arrival {
            seq,
            received: end,
            at_us: self.unix_us(now),
            spread_bytes,
            spread_us,
        });
    }

    /// Passes on a frame that is new, no larger than the peer announced, and
    /// decodable (not a P-frame while a keyframe is awaited).
    fn handle_frame(&mut self, now: Instant, frame: Frame) -> Result<(), EndReason> {
        if !self.frame_budget.take(now) {
            return Err(EndReason::Protocol(ProtocolError::FrameFlood {
                per_second: MAX_FRAME_RATE as u32,
            }));
        }
        let (max_w, max_h) = self.peer.as_ref().map_or((0, 0), |p| (p.width, p.height));
        if frame.width > max_w || frame.height > max_h {
            return Err(EndReason::Protocol(ProtocolError::FrameTooLarge {
                width: frame.width,
                height: frame.height,
                max_width: max_w,
                max_height: max_h,
            }));
        }
        // JPEG is always understood; anything else only if we offered it.
        if frame.format != VideoFormat::Jpeg && !self.our_intro.codecs.contains(&frame.format) {
            return Err(EndReason::Protocol(ProtocolError::NotOffered(frame.format)));
        }
        if self.last_seq.is_some_and(|last| frame.seq <= last) {
            return Ok(());
        }
        if self.awaiting_keyframe && !frame.keyframe {
            return Ok(());
        }
        self.awaiting_keyframe = false;
        self.last_seq = Some(frame.seq);
        self.events.push_back(Event::Frame(frame));
        Ok(())
    }

    fn open(&mut self, now: Instant) {
        self.phase = Phase::Open;
        self.heartbeat = Some(Heartbeat {
            next_ping: now + FIRST_PING_DELAY,
            last_heard: now,
            last_answered: now,
            checked: now,
            reconnecting: false,
            frozen: false,
        });
    }

    /// The callee shows the code to the person: only now does its nonce,
    /// and with it the code, go to the caller, so a caller that hangs up to
    /// try again is seen ringing every time. Nothing happens unless the
    /// call rings on the callee's side, or after the first time.
    pub fn ring(&mut self) {
        if self.role == Role::Callee
            && matches!(self.phase, Phase::Ringing { .. })
            && !self.revealed
        {
            self.revealed = true;
            self.queue(&Message::Reveal { nonce: self.nonce });
        }
    }

    /// The callee's answer at `now`. Nothing happens unless the call rings.
    /// Accepting rings first (the caller learns the code); declining does
    /// not reveal it.
    pub fn answer(&mut self, now: Instant, accepted: bool) {
        if self.role != Role::Callee || !matches!(self.phase, Phase::Ringing { .. }) {
            return;
        }
        if accepted {
            self.ring();
            self.confirmed = true;
        }
        self.queue(&Message::Answer { accepted });
        if accepted {
            self.open(now);
        } else {
            self.close(EndReason::Declined);
        }
    }

    /// Seals one frame into the outgoing bytes (only while our video may
    /// flow) and gives its data buffer back for reuse.
    pub fn send_frame(&mut self, frame: Frame) -> Result<Vec<u8>, EndReason> {
        let msg = Message::Frame(frame);
        if self.may_send_video() {
            self.send(&msg)?;
        }
        let Message::Frame(frame) = msg else {
            return Ok(Vec::new());
        };
        Ok(frame.data)
    }

    /// Sends a line the person typed.
    pub fn send_text(&mut self, text: &str) -> Result<(), TextError> {
        if !self.is_open() {
            return Err(TextError::NotInCall);
        }
        // It would go into a connection that is dropped when the call
        // moves to the next.
        if self.is_reconnecting() {
            return Err(TextError::Reconnecting);
        }
        if !self.peer.as_ref().is_some_and(|p| p.can_receive_text) {
            return Err(TextError::PeerCannotReceive);
        }
        if text.len() > wire::MAX_TEXT_BYTES || text.chars().count() > wire::MAX_TEXT_CHARS {
            return Err(TextError::TooLong);
        }
        self.queue(&Message::Text {
            text: text.to_string(),
        });
        Ok(())
    }

    /// Tells the peer our video paused or resumed (only when that changed).
    pub fn set_paused(&mut self, paused: bool) {
        if self.is_open() && paused != self.paused {
            self.paused = paused;
            self.queue(&Message::VideoPaused { paused });
        }
    }

    /// True once after the peer asked for a keyframe.
    pub fn take_keyframe_wanted(&mut self) -> bool {
        std::mem::take(&mut self.keyframe_wanted)
    }

    /// Our decoder could not decode a frame (`why`: what the call ends
    /// with, should it): skip P-frames and ask for a keyframe; too many in
    /// a row end the call (with the last `why`).
    pub fn picture_lost(&mut self, why: ProtocolError) {
        self.decode_errors += 1;
        if self.decode_errors >= MAX_DECODE_ERRORS {
            return self.close(EndReason::Protocol(why));
        }
        self.awaiting_keyframe = true;
        if self.is_open() {
            self.queue(&Message::KeyframeRequest);
        }
    }

    /// Our decoder decoded a frame.
    pub fn picture_ok(&mut self) {
        self.decode_errors = 0;
    }

    /// Ends the call from this side: a hang-up says Bye, and so does
    /// busy (a callee whose handshake finished while another call rang: it
    /// never rings, so the caller learns no code); any other reason (a
    /// local failure) just closes.
    pub fn close(&mut self, reason: EndReason) {
        if matches!(self.phase, Phase::Closed) && self.end.is_some() {
            return;
        }
        let keyed = matches!(
            self.phase,
            Phase::Open | Phase::Ringing { .. } | Phase::Revealing { .. }
        );
        let bye = match reason {
            EndReason::HungUp => Some(ByeReason::HungUp),
            EndReason::Busy => Some(ByeReason::Busy),
            _ => None,
        };
        if let Some(reason) = bye.filter(|_| keyed) {
            self.queue(&Message::Bye { reason });
        }
        self.phase = Phase::Closed;
        self.events.push_back(Event::Ended(reason.clone()));
        self.end = Some(reason);
    }

    /// Seals `msg` onto the outgoing bytes; a failure ends the call.
    fn queue(&mut self, msg: &Message) {
        if let Err(reason) = self.send(msg) {
            self.close(reason);
        }
    }

    fn send(&mut self, msg: &Message) -> Result<(), EndReason> {
        let Some((sealer, _)) = self.ciphers.as_mut() else {
            return Ok(());
        };
        self.plain.clear();
        wire::encode_payload(msg, MAX_MESSAGE_LEN, &mut self.plain)
            .map_err(|e| EndReason::Encoding(EncodingError::Wire(e)))?;
        let start = self.outgoing.len();
        self.outgoing.extend_from_slice(&[0; wire::LEN_PREFIX]);
        sealer
            .seal(&self.plain, &mut self.outgoing)
            .map_err(|e| EndReason::Encoding(EncodingError::Seal(e)))?;
        let sealed_len = (self.outgoing.len() - start - wire::LEN_PREFIX) as u64;
        if let Some(prefix) = self.outgoing.get_mut(start..start + wire::LEN_PREFIX) {
            prefix.copy_from_slice(&sealed_len.to_le_bytes());
        }
        Ok(())
    }
}

/// The peer's bytes (or, in the handshake, ours) do not frame or decode.
fn wire_error(e: WireError) -> EndReason {
    EndReason::Protocol(ProtocolError::Wire(e))
}

/// The handshake or the peer's encryption failed.
fn secure_error(e: secure::SecureError) -> EndReason {
    EndReason::Protocol(ProtocolError::Secure(e))
}

#[cfg(any(test, feature = "fuzzing"))]
impl Connection {
    /// Seals any plaintext, as a hostile peer that finished the handshake
    /// could (for tests and fuzzing only).
    pub fn send_raw(&mut self, plain: &[u8]) {
        let Some((sealer, _)) = self.ciphers.as_mut() else {
            return;
        };
        let mut sealed = Vec::new();
        if sealer.seal(plain, &mut sealed).is_ok() {
            wire::frame(&sealed, &mut self.outgoing);
        }
    }

    /// Sends `payload` as our next encrypted handshake payload (a callee's
    /// intro, a caller's finale) instead of ours.
    pub fn replace_handshake_payload(&mut self, payload: Vec<u8>) {
        self.raw_handshake = Some(payload);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Two connections joined in memory on a fake clock: no sockets, no sleeps.
    use super::*;

    const T0_US: u64 = 1_800_000_000_000_000;

    fn intro(name: &str) -> Intro {
        Intro::new(name, 640, 480).with_codecs(&[VideoFormat::H264, VideoFormat::Jpeg])
    }

    /// A new static key.
    pub(crate) fn key() -> StaticKey {
        StaticKey::generate().unwrap()
    }

    /// A caller and a callee; `deliver_to_*` cut a direction when false.
    pub(crate) struct Pair {
        pub(crate) caller: Connection,
        pub(crate) callee: Connection,
        pub(crate) now: Instant,
        pub(crate) deliver_to_caller: bool,
        pub(crate) deliver_to_callee: bool,
        /// Each side's kernel view, when it is modelled: whether the other
        /// machine acknowledges that side's bytes now (None: the kernel
        /// cannot say, as on macOS and Windows).
        pub(crate) caller_acked: Option<bool>,
        pub(crate) callee_acked: Option<bool>,
        /// When each side's bytes were last acknowledged.
        last_acks: (Instant, Instant),
    }

    impl Pair {
        fn new() -> Pair {
            Pair::between(("caller", &key()), ("callee", &key()))
        }

        /// A caller and a callee of these names and static keys.
        pub(crate) fn between(caller: (&str, &StaticKey), callee: (&str, &StaticKey)) -> Pair {
            let now = Instant::now();
            Pair {
                caller: Connection::new(Role::Caller, intro(caller.0), caller.1, now, T0_US)
                    .unwrap(),
                // The callee's clock runs 3 s ahead of the caller's.
                callee: Connection::new(
                    Role::Callee,
                    intro(callee.0),
                    callee.1,
                    now,
                    T0_US + 3_000_000,
                )
                .unwrap(),
                now,
                deliver_to_caller: true,
                deliver_to_callee: true,
                caller_acked: None,
                callee_acked: None,
                last_acks: (now, now),
            }
        }

        /// What a side's kernel says at `now`: nothing waits while the
        /// other machine acknowledges; otherwise our Pings at least wait.
        fn kernel(acked: Option<bool>, last_ack: &mut Instant, now: Instant) -> Option<LinkCheck> {
            let acked = acked?;
            if acked {
                *last_ack = now;
            }
            Some(LinkCheck {
                waiting: !acked,
                since_ack: now - *last_ack,
            })
        }

        /// Moves bytes both ways until neither side has more to say.
        pub(crate) fn drive(&mut self) {
            let mut bytes = Vec::new();
            loop {
                let mut moved = false;
                self.caller.take_outgoing(&mut bytes);
                if !bytes.is_empty() && self.deliver_to_callee {
                    self.callee.handle_bytes(self.now, &bytes);
                    moved = true;
                }
                self.callee.take_outgoing(&mut bytes);
                if !bytes.is_empty() && self.deliver_to_caller {
                    self.caller.handle_bytes(self.now, &bytes);
                    moved = true;
                }
                if !moved {
                    return;
                }
            }
        }

        /// Lets `by` pass in 10 ms steps, firing timers and moving bytes.
        pub(crate) fn advance(&mut self, by: Duration) {
            let until = self.now + by;
            while self.now < until {
                self.now += Duration::from_millis(10);
                let caller = Pair::kernel(self.caller_acked, &mut self.last_acks.0, self.now);
                let callee = Pair::kernel(self.callee_acked, &mut self.last_acks.1, self.now);
                self.caller.handle_link_check(caller);
                self.callee.handle_link_check(callee);
                self.caller.handle_timeout(self.now);
                self.callee.handle_timeout(self.now);
                self.drive();
            }
        }

        /// Handshake, then the callee takes the call and the caller
        /// confirms it.
        pub(crate) fn answered() -> Pair {
            let mut pair = Pair::new();
            pair.drive();
            pair.callee.answer(pair.now, true);
            pair.caller.confirm();
            pair.drive();
            events(&mut pair.caller);
            events(&mut pair.callee);
            pair
        }
    }

    /// A caller and a callee of pictures up to `size`, handshake done in
    /// memory at `now`, the call answered and confirmed.
    pub(crate) fn answered_pair(size: (u32, u32), now: Instant) -> (Connection, Connection) {
        let intro = |name| Intro::new(name, size.0, size.1).with_codecs(&[VideoFormat::H264]);
        let mut caller = Connection::new(Role::Caller, intro("a"), &key(), now, T0_US).unwrap();
        let mut callee = Connection::new(Role::Callee, intro("b"), &key(), now, T0_US).unwrap();
        let mut bytes = Vec::new();
        while callee.peer().is_none() || caller.peer().is_none() {
            caller.take_outgoing(&mut bytes);
            callee.handle_bytes(now, &bytes);
            callee.take_outgoing(&mut bytes);
            caller.handle_bytes(now, &bytes);
            callee.ring();
        }
        callee.answer(now, true);
        caller.confirm();
        while callee.has_outgoing() || caller.has_outgoing() {
            callee.take_outgoing(&mut bytes);
            caller.handle_bytes(now, &bytes);
            caller.take_outgoing(&mut bytes);
            callee.handle_bytes(now, &bytes);
        }
        assert!(caller.may_send_video() && callee.may_send_video());
        (caller, callee)
    }

    pub(crate) fn events(conn: &mut Connection) -> Vec<Event> {
        std::iter::from_fn(|| conn.poll_event()).collect()
    }

    pub(crate) fn ended(conn: &mut Connection) -> Option<EndReason> {
        events(conn).into_iter().find_map(|e| match e {
            Event::Ended(reason) => Some(reason),
            _ => None,
        })
    }

    #[test]
    fn a_busy_listener_ends_the_call_before_the_handshake() {
        let now = Instant::now();
        let mut caller =
            Connection::new(Role::Caller, intro("caller"), &key(), now, T0_US).unwrap();
        caller.handle_bytes(now, &wire::busy_answer().unwrap());
        assert_eq!(ended(&mut caller), Some(EndReason::Busy));
        let mut bytes = Vec::new();
        caller.take_outgoing(&mut bytes);
        let hello_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(bytes.len(), 8 + hello_len, "sent more than its Hello");
    }

    pub(crate) fn frame(seq: u64, keyframe: bool) -> Frame {
        Frame {
            seq,
            capture_us: T0_US + seq,
            width: 640,
            height: 480,
            format: VideoFormat::H264,
            keyframe,
            quality: 100,
            encode_us: 1,
            data: vec![seq as u8; 100],
        }
    }

    pub(crate) fn frames(conn: &mut Connection) -> Vec<u64> {
        events(conn)
            .into_iter()
            .filter_map(|e| match e {
                Event::Frame(f) => Some(f.seq),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_whole_call() {
        let mut pair = Pair::new();
        pair.drive();
        pair.callee.ring();
        pair.drive();
        let (Some(Event::Connected(at_caller)), Some(Event::Connected(at_callee))) =
            (pair.caller.poll_event(), pair.callee.poll_event())
        else {
            panic!("no handshake");
        };
        assert_eq!(at_caller.code, at_callee.code, "both sides show one code");
        assert_eq!(
            (at_caller.name.as_str(), at_callee.name.as_str()),
            ("callee", "caller")
        );
        assert!(!pair.caller.is_open(), "no video before the answer");
        assert_eq!(pair.caller.send_frame(frame(1, true)).unwrap().len(), 100);
        assert!(
            !pair.caller.has_outgoing(),
            "a frame left before the call was answered"
        );

        pair.callee.answer(pair.now, true);
        pair.caller.confirm();
        pair.drive();
        assert!(events(&mut pair.caller).contains(&Event::Accepted));
        // The first Ping's Pong gives the round trip.
        pair.advance(FIRST_PING_DELAY);
        assert!(
            events(&mut pair.caller)
                .iter()
                .any(|e| matches!(e, Event::Rtt(_)))
        );
        pair.caller.send_frame(frame(1, true)).unwrap();
        pair.caller.send_frame(frame(2, false)).unwrap();
        pair.drive();
        assert_eq!(frames(&mut pair.callee), [1, 2]);

        // Pings each second keep the call up; Pongs give the peer's clock.
        pair.advance(Duration::from_secs(7));
        assert_eq!(pair.callee.to_local_us(T0_US), T0_US + 3_000_000);
        assert_eq!(pair.caller.end_reason(), None);

        pair.caller.close(EndReason::HungUp);
        pair.drive();
        assert_eq!(ended(&mut pair.callee), Some(EndReason::PeerHungUp));
        assert_eq!(ended(&mut pair.caller), Some(EndReason::HungUp));
    }

    #[test]
    fn a_declined_or_unanswered_call_tells_the_caller() {
        let mut pair = Pair::new();
        pair.drive();
        pair.callee.answer(pair.now, false);
        pair.drive();
        assert_eq!(ended(&mut pair.caller), Some(EndReason::Declined));

        let mut pair = Pair::new();
        pair.drive();
        pair.advance(RING_TIMEOUT - Duration::from_millis(20));
        assert_eq!(pair.callee.end_reason(), None, "declined too early");
        pair.advance(Duration::from_millis(30));
        assert_eq!(pair.callee.end_reason(), Some(&EndReason::Declined));
        assert_eq!(ended(&mut pair.caller), Some(EndReason::Declined));
    }

    #[test]
    fn a_relay_in_the_middle_shows_two_codes() {
        // caller <-> relay (as callee), relay (as caller) <-> callee; the
        // relay passes every intro on, as a careful eavesdropper would.
        let now = Instant::now();
        let mut caller = Connection::new(Role::Caller, intro("a"), &key(), now, T0_US).unwrap();
        let mut relay_in = Connection::new(Role::Callee, intro("b"), &key(), now, T0_US).unwrap();
        let mut relay_out = Connection::new(Role::Caller, intro("a"), &key(), now, T0_US).unwrap();
        let mut callee = Connection::new(Role::Callee, intro("b"), &key(), now, T0_US).unwrap();
        let mut bytes = Vec::new();
        let mut pass = |from: &mut Connection, to: &mut Connection| {
            from.take_outgoing(&mut bytes);
            to.handle_bytes(now, &bytes);
        };
        for round in 0..5 {
            if round == 3 {
                // Both callees ring: the relay's too, to see the caller's code.
                relay_in.ring();
                callee.ring();
            }
            pass(&mut caller, &mut relay_in);
            pass(&mut relay_in, &mut caller);
            pass(&mut relay_out, &mut callee);
            pass(&mut callee, &mut relay_out);
        }
        let code = |c: &Connection| c.peer().unwrap().code.clone();
        assert_eq!(code(&caller), code(&relay_in));
        assert_eq!(code(&relay_out), code(&callee));
        assert_ne!(code(&caller), code(&callee), "the relay went unnoticed");
    }

    #[test]
    fn a_caller_that_hangs_up_to_try_again_learns_no_code_before_the_listener_rings() {
        // A relay holding the real caller plays caller to the listener and
        // would hang up on every try whose code differs from the one it
        // needs. It can compute none: the handshake is done and the
        // listener's code fixed, but the listener's nonce comes only as it
        // rings, so every code the relay learns is a ring the person saw.
        let mut codes = std::collections::HashSet::new();
        let tries = 100;
        for n in 0..tries {
            let mut pair = Pair::new();
            pair.drive();
            let listener_code = pair.callee.peer().expect("the code is fixed").code.clone();
            pair.advance(Duration::from_secs(1));
            assert!(
                pair.caller.peer().is_none(),
                "the caller knows the code before the listener rang"
            );
            assert!(
                !events(&mut pair.caller)
                    .iter()
                    .any(|e| matches!(e, Event::Connected(_))),
                "the caller was told a code before the listener rang"
            );
            // Declining (or the ring's own timeout) reveals nothing either.
            if n % 2 == 1 {
                pair.callee.answer(pair.now, false);
                pair.drive();
                assert!(pair.caller.peer().is_none());
                assert_eq!(ended(&mut pair.caller), Some(EndReason::Declined));
                codes.insert(listener_code);
                continue;
            }
            pair.callee.ring();
            pair.drive();
            assert_eq!(
                pair.caller.peer().map(|p| p.code.clone()),
                Some(listener_code.clone())
            );
            codes.insert(listener_code);
        }
        // Real codes, not one fixed one (a broken scheme could pass above).
        assert!(
            codes.len() > tries * 9 / 10,
            "{} codes in {tries} tries",
            codes.len()
        );
    }

    #[test]
    fn no_frame_leaves_the_caller_before_its_person_confirmed() {
        let mut pair = Pair::new();
        pair.drive();
        pair.callee.answer(pair.now, true);
        pair.drive();
        assert!(events(&mut pair.caller).contains(&Event::Accepted));
        // Answered, but the caller's person has not compared the code yet.
        assert!(pair.caller.is_open() && !pair.caller.may_send_video());
        pair.caller.send_frame(frame(1, true)).unwrap();
        assert!(!pair.caller.has_outgoing(), "a frame left unconfirmed");
        // The callee's yes was its answer: its video goes at once.
        assert!(pair.callee.may_send_video());
        assert!(!pair.callee.peer_confirmed());
        pair.caller.confirm();
        pair.drive();
        assert!(events(&mut pair.callee).contains(&Event::PeerConfirmed));
        pair.caller.send_frame(frame(2, true)).unwrap();
        pair.drive();
        assert_eq!(frames(&mut pair.callee), [2]);
    }

    #[test]
    fn a_confirmation_given_while_it_rings_goes_once_the_call_is_answered() {
        let mut pair = Pair::new();
        pair.drive();
        pair.callee.ring();
        pair.drive();
        pair.caller.confirm();
        pair.drive();
        assert_eq!(
            pair.callee.end_reason(),
            None,
            "a message before the answer"
        );
        pair.callee.answer(pair.now, true);
        pair.drive();
        assert!(events(&mut pair.callee).contains(&Event::PeerConfirmed));
        assert!(pair.caller.may_send_video());
    }

    #[test]
    fn video_from_a_caller_that_did_not_confirm_ends_the_call() {
        let mut pair = Pair::new();
        pair.drive();
        pair.callee.answer(pair.now, true);
        pair.drive();
        let mut plain = Vec::new();
        wire::encode_payload(&Message::Frame(frame(1, true)), MAX_MESSAGE_LEN, &mut plain).unwrap();
        pair.caller.send_raw(&plain);
        pair.drive();
        assert_eq!(
            ended(&mut pair.callee),
            Some(EndReason::Protocol(ProtocolError::VideoBeforeConfirmed))
        );
    }

    /// The texts and refusals `conn` has to tell.
    fn texts(conn: &mut Connection) -> (Vec<String>, usize) {
        let mut refused = 0;
        let texts = events(conn)
            .into_iter()
            .filter_map(|e| match e {
                Event::Text(text) => Some(text),
                Event::TextRefused => {
                    refused += 1;
                    None
                }
                _ => None,
            })
            .collect();
        (texts, refused)
    }

    #[test]
    fn typed_text_goes_both_ways_and_a_flood_or_a_megabyte_is_refused() {
        let mut pair = Pair::answered();
        pair.caller.send_text("héllo, мир, 世界").unwrap();
        pair.drive();
        assert_eq!(texts(&mut pair.callee).0, ["héllo, мир, 世界"]);
        pair.callee.send_text("and back").unwrap();
        pair.drive();
        assert_eq!(texts(&mut pair.caller).0, ["and back"]);
        // 10,000 lines at once: a burst goes through, the rest is refused.
        for n in 0..10_000 {
            let text = Message::Text {
                text: n.to_string(),
            };
            pair.callee.send_raw(&encoded(&text));
        }
        pair.drive();
        let (got, refused) = texts(&mut pair.caller);
        assert!(
            got.len() <= MAX_TEXT_BURST as usize,
            "{} got through",
            got.len()
        );
        assert_eq!(got.len() + refused, 10_000);
        // A megabyte in one line, after the budget refilled: refused.
        pair.advance(Duration::from_secs(5));
        let huge = Message::Text {
            text: "x".repeat(1 << 20),
        };
        pair.callee.send_raw(&encoded(&huge));
        pair.drive();
        assert_eq!(texts(&mut pair.caller), (vec![], 1));
        assert!(
            pair.caller.is_open() && pair.callee.is_open(),
            "the call ended"
        );
        // Our own person's lines are checked before they go.
        assert_eq!(
            pair.caller.send_text(&"x".repeat(wire::MAX_TEXT_CHARS + 1)),
            Err(TextError::TooLong)
        );
    }

    #[test]
    fn a_peer_that_cannot_receive_text_says_so_in_its_intro() {
        let now = Instant::now();
        let mut pair = Pair::new();
        let older = Intro {
            features: 0,
            ..intro("callee")
        };
        pair.callee = Connection::new(Role::Callee, older, &key(), now, T0_US).unwrap();
        assert_eq!(
            pair.caller.send_text("too early"),
            Err(TextError::NotInCall)
        );
        pair.drive();
        pair.callee.answer(pair.now, true);
        pair.drive();
        assert!(!pair.caller.peer().unwrap().can_receive_text);
        assert_eq!(
            pair.caller.send_text("hello?"),
            Err(TextError::PeerCannotReceive)
        );
        assert_eq!(
            TextError::PeerCannotReceive.to_string(),
            "the other side's vidchat cannot receive text"
        );
    }

    #[test]
    fn video_in_a_format_not_offered_ends_the_call() {
        // The callee offered JPEG only (`--codec mjpeg`).
        let now = Instant::now();
        let mut pair = Pair::new();
        let jpeg_only = Intro::new("callee", 640, 480);
        pair.callee = Connection::new(Role::Callee, jpeg_only, &key(), now, T0_US).unwrap();
        assert_eq!(pair.callee.our_intro.codecs, [VideoFormat::Jpeg]);
        pair.drive();
        pair.callee.answer(pair.now, true);
        pair.caller.confirm();
        pair.drive();
        let h264 = Frame {
            format: VideoFormat::H264,
            ..frame(1, true)
        };
        pair.caller.send_frame(h264).unwrap();
        pair.drive();
        assert_eq!(
            ended(&mut pair.callee),
            Some(EndReason::Protocol(ProtocolError::NotOffered(
                VideoFormat::H264
            )))
        );
    }

    #[test]
    fn a_peer_that_floods_frames_ends_the_call_but_a_burst_after_a_stall_does_not() {
        let mut pair = Pair::answered();
        // 30 fps for 5 s, then a second's stall and what waited behind it.
        let mut seq = 0;
        for _ in 0..150 {
            seq += 1;
            pair.caller.send_frame(frame(seq, seq == 1)).unwrap();
            pair.advance(Duration::from_millis(33));
        }
        // The stall: frames wait on the caller's side, then come at once.
        for _ in 0..30 {
            seq += 1;
            pair.caller.send_frame(frame(seq, false)).unwrap();
            pair.now += Duration::from_millis(33);
        }
        pair.drive();
        assert_eq!(pair.callee.end_reason(), None);
        // A flood of (tiny) frames: each would cost a decode.
        for _ in 0..1_000 {
            seq += 1;
            pair.caller.send_frame(frame(seq, false)).unwrap();
        }
        pair.drive();
        assert_eq!(
            ended(&mut pair.callee),
            Some(EndReason::Protocol(ProtocolError::FrameFlood {
                per_second: MAX_FRAME_RATE as u32
            }))
        );
        // The rate a whole number, so the reason reads as the constant does.
        assert_eq!(
            (MAX_FRAME_RATE as u32).to_string(),
            MAX_FRAME_RATE.to_string()
        );
    }

    #[test]
    fn a_reveal_that_breaks_the_commitment_ends_the_call() {
        let mut pair = Pair::new();
        pair.drive();
        // A callee sending a nonce other than the one its Hello committed to.
        pair.callee.nonce[0] ^= 1;
        pair.callee.ring();
        pair.drive();
        assert!(pair.caller.peer().is_none());
        assert_eq!(
            ended(&mut pair.caller),
            Some(EndReason::Protocol(ProtocolError::Secure(
                secure::SecureError::Commitment
            )))
        );
    }

    #[test]
    fn a_frozen_peer_is_let_go_after_the_idle_timeout() {
        let mut pair = Pair::answered();
        // Its last Pong came a while before its last bytes, as in life.
        pair.advance(Duration::from_millis(1500));
        pair.callee.send_frame(frame(1, true)).unwrap();
        pair.drive();
        pair.deliver_to_caller = false;
        pair.deliver_to_callee = false;
        // Its machine still acknowledges our bytes: not a silent link.
        pair.caller_acked = Some(true);
        pair.advance(IDLE_TIMEOUT - Duration::from_millis(20));
        assert_eq!(pair.caller.end_reason(), None);
        assert!(!pair.caller.is_reconnecting());
        pair.advance(Duration::from_millis(30));
        assert_eq!(
            ended(&mut pair.caller),
            Some(EndReason::PeerNotResponding { secs: 5 })
        );
    }

    #[test]
    fn a_peer_that_sends_but_never_reads_is_let_go() {
        let mut pair = Pair::answered();
        // The callee's bytes reach us; ours never reach it (its program
        // does not read them, though its machine acknowledges them, so it
        // takes the silence for a frozen peer, not for a silent link).
        pair.deliver_to_callee = false;
        pair.callee_acked = Some(true);
        let mut seq = 10;
        let until = pair.now + IDLE_TIMEOUT - Duration::from_millis(20);
        while pair.now < until {
            seq += 1;
            pair.callee.send_frame(frame(seq, true)).unwrap();
            pair.advance(Duration::from_millis(30));
        }
        assert_eq!(pair.caller.end_reason(), None);
        pair.advance(Duration::from_millis(40));
        assert_eq!(ended(&mut pair.caller), Some(EndReason::PeerNotReading));
    }

    #[test]
    fn frames_come_in_order_and_p_frames_wait_for_a_keyframe() {
        let mut pair = Pair::answered();
        for (seq, key) in [(5, true), (3, true), (5, false), (6, false)] {
            pair.caller.send_frame(frame(seq, key)).unwrap();
        }
        pair.drive();
        assert_eq!(
            frames(&mut pair.callee),
            [5, 6],
            "old or repeated frames passed"
        );
        pair.callee.picture_lost(ProtocolError::bad_h264("test"));
        pair.drive();
        assert!(
            pair.caller.take_keyframe_wanted(),
            "the request did not arrive"
        );
        assert!(!pair.caller.take_keyframe_wanted(), "taken once");
        for (seq, key) in [(7, false), (8, true), (9, false)] {
            pair.caller.send_frame(frame(seq, key)).unwrap();
        }
        pair.drive();
        assert_eq!(frames(&mut pair.callee), [8, 9]);
        for _ in 0..MAX_DECODE_ERRORS {
            pair.callee.picture_lost(ProtocolError::bad_h264("broken"));
        }
        assert_eq!(
            pair.callee.end_reason(),
            Some(&EndReason::Protocol(ProtocolError::bad_h264("broken")))
        );
    }

    #[test]
    fn a_frame_reports_the_pace_of_all_its_last_read_brought() {
        let now = Instant::now();
        let (mut caller, mut callee) = answered_pair((640, 480), now);
        let mut bytes = Vec::new();
        caller.take_outgoing(&mut bytes);
        callee.handle_bytes(now, &bytes);
        events(&mut callee);
        let (mut first, mut second) = (Vec::new(), Vec::new());
        caller.send_frame(frame(1, true)).unwrap();
        caller.take_outgoing(&mut first);
        caller.send_frame(frame(2, false)).unwrap();
        caller.take_outgoing(&mut second);
        // Frame 1 begins in one read; 10 ms later a second read brings its
        // last 50 bytes and all of frame 2 (one packet carrying both).
        let tail = first.split_off(first.len() - 50);
        callee.handle_bytes(now, &first);
        let later = now + Duration::from_millis(10);
        callee.handle_bytes(later, &[tail, second.clone()].concat());
        callee.take_outgoing(&mut bytes);
        caller.handle_bytes(later, &bytes);
        let arrivals: Vec<Arrival> = events(&mut caller)
            .into_iter()
            .filter_map(|e| match e {
                Event::Received(a) => Some(a),
                _ => None,
            })
            .flatten()
            .collect();
        let one = arrivals.iter().find(|a| a.seq == 1).unwrap();
        // 50 of the read's bytes are frame 1's: they took that share of
        // the 10 ms, so the pace is that of all the read brought.
        let all = 50 + second.len() as u32;
        assert_eq!(one.spread_bytes, 50);
        assert_eq!(one.spread_us, 10_000 * 50 / all);
    }

    /// The callee's end after the (answered) caller sends `plain`.
    fn hostile(plain: &[u8]) -> EndReason {
        let mut pair = Pair::answered();
        pair.caller.send_raw(plain);
        pair.drive();
        ended(&mut pair.callee).expect("the call went on")
    }

    fn encoded(msg: &Message) -> Vec<u8> {
        let mut plain = Vec::new();
        wire::encode_payload(msg, MAX_MESSAGE_LEN, &mut plain).unwrap();
        plain
    }

    /// What the peer did wrong, when the call ended with a protocol error.
    pub(crate) fn protocol_error(reason: EndReason) -> ProtocolError {
        match reason {
            EndReason::Protocol(why) => why,
            other => panic!("ended with {other:?}, expected a protocol error"),
        }
    }

    #[test]
    fn a_hostile_peer_ends_the_call_with_a_reason() {
        let unknown = [99u32.to_le_bytes().as_slice(), &[0; 12]].concat();
        let why = protocol_error(hostile(&unknown));
        assert!(
            matches!(why, ProtocolError::Wire(WireError::Malformed(_))),
            "{why:?}"
        );
        let mut big = frame(1, true);
        (big.width, big.height) = (4096, 4096);
        assert_eq!(
            protocol_error(hostile(&encoded(&Message::Frame(big)))),
            ProtocolError::FrameTooLarge {
                width: 4096,
                height: 4096,
                max_width: 640,
                max_height: 480
            }
        );
        assert_eq!(
            protocol_error(hostile(&encoded(&Message::Answer { accepted: true }))),
            ProtocolError::AnsweredTwice
        );

        // A flipped bit, and a length over the cap, on an open call.
        let mut pair = Pair::answered();
        pair.caller
            .send_raw(&encoded(&Message::Ping { sent_us: 1 }));
        let mut bytes = Vec::new();
        pair.caller.take_outgoing(&mut bytes);
        bytes[wire::LEN_PREFIX + 3] ^= 0x10;
        pair.callee.handle_bytes(pair.now, &bytes);
        assert_eq!(
            protocol_error(ended(&mut pair.callee).unwrap()),
            ProtocolError::Secure(secure::SecureError::Decrypt)
        );
        let mut pair = Pair::answered();
        pair.callee
            .handle_bytes(pair.now, &(MAX_SEALED_LEN + 1).to_le_bytes());
        assert_eq!(
            protocol_error(ended(&mut pair.callee).unwrap()),
            ProtocolError::Wire(WireError::TooLong {
                len: MAX_SEALED_LEN + 1,
                max: MAX_SEALED_LEN
            })
        );
    }

    #[test]
    fn nothing_but_an_answer_or_bye_before_the_call_is_answered() {
        let mut pair = Pair::new();
        pair.drive();
        pair.caller
            .send_raw(&encoded(&Message::Frame(frame(1, true))));
        pair.drive();
        assert_eq!(
            protocol_error(ended(&mut pair.callee).unwrap()),
            ProtocolError::BeforeAnswer
        );
    }

    #[test]
    fn forged_pongs_and_ping_floods_do_no_harm() {
        let mut pair = Pair::answered();
        let clock = pair.caller.to_local_us(T0_US);
        // A Pong for no Ping of ours, with extreme values: ignored.
        for (sent, peer) in [(0, u64::MAX), (u64::MAX, 0), (T0_US, u64::MAX)] {
            pair.callee.send_raw(&encoded(&Message::Pong {
                ping_sent_us: sent,
                peer_us: peer,
            }));
        }
        pair.drive();
        assert_eq!(pair.caller.end_reason(), None);
        assert_eq!(
            pair.caller.to_local_us(T0_US),
            clock,
            "a forged Pong moved the clock"
        );
        // Pings from a peer we cannot send to: the Pongs queued stay bounded.
        pair.deliver_to_callee = false;
        let ping = encoded(&Message::Ping { sent_us: 1 });
        for _ in 0..10_000 {
            pair.callee.send_raw(&ping);
        }
        pair.drive();
        assert!(pair.caller.outgoing.len() < MAX_QUEUED + 1024);
    }

    #[test]
    fn strangers_get_a_reason_and_silence_a_deadline() {
        let refused = |bytes: &[u8]| {
            let mut conn =
                Connection::new(Role::Callee, intro("b"), &key(), Instant::now(), T0_US).unwrap();
            conn.handle_bytes(Instant::now(), bytes);
            conn.handle_closed();
            protocol_error(ended(&mut conn).unwrap())
        };
        let foreign = |what: &str| ProtocolError::Wire(WireError::NotVidchat(what.into()));
        assert_eq!(
            refused(b"GET / HTTP/1.1\r\n\r\n"),
            foreign("it sent an HTTP request")
        );
        assert_eq!(
            refused(&[0x16, 0x03, 1, 0, 0xa5, 1, 0, 0, 0xa1]),
            foreign("it started a TLS handshake")
        );
        assert_eq!(
            refused(&(1u64 << 63).to_le_bytes()),
            ProtocolError::Wire(WireError::TooLong {
                len: 1 << 63,
                max: 4096
            })
        );
        assert_eq!(refused(b""), ProtocolError::ClosedWithoutAWord);
        let now = Instant::now();
        let mut silent = Connection::new(Role::Callee, intro("b"), &key(), now, T0_US).unwrap();
        silent.handle_timeout(now + HANDSHAKE_TIMEOUT - Duration::from_millis(1));
        assert_eq!(silent.end_reason(), None);
        silent.handle_timeout(now + HANDSHAKE_TIMEOUT);
        assert_eq!(
            ended(&mut silent),
            Some(EndReason::Protocol(ProtocolError::NoHandshake { secs: 5 }))
        );
    }

    #[test]
    fn a_peer_name_that_poses_as_a_code_is_made_harmless() {
        let now = Instant::now();
        let mut caller = Connection::new(
            Role::Caller,
            Intro {
                name: "x - code: 111 111 \u{202E}".into(),
                ..intro("")
            },
            &key(),
            now,
            T0_US,
        )
        .unwrap();
        let mut callee = Connection::new(Role::Callee, intro("b"), &key(), now, T0_US).unwrap();
        let mut bytes = Vec::new();
        for _ in 0..3 {
            caller.take_outgoing(&mut bytes);
            callee.handle_bytes(now, &bytes);
            callee.take_outgoing(&mut bytes);
            caller.handle_bytes(now, &bytes);
        }
        let name = &callee.peer().unwrap().name;
        assert_eq!(name, "x_-_code__111_111__");
    }
}
