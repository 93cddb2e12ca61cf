//! What every layer of a call shares, so that none has to import from a
//! layer above it: why a call ended ([`EndReason`], typed down to the
//! error that ended it, and made words only where it is shown), the
//! call-wide stop flag ([`Shutdown`]), a guard that turns a panicking
//! thread into an ended call, the wall clock every timestamp on the wire
//! is in ([`unix_us`]), and a line on stderr that a closed terminal or pipe
//! cannot turn into a panic ([`say`]).

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::codec::CodecError;
use crate::secure::SecureError;
use crate::shared::Shared;
use crate::wire::{VideoFormat, WireError};

/// Silence after which the peer is declared gone; several pings long, so
/// one lost or late Pong is no reason to hang up.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a call whose link went silent tries to resume before it ends,
/// as a browser's call keeps trying (RFC 7675's consent timeout).
pub const RECONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes one line on stderr, as `eprintln!` does, but a stderr that is
/// gone (the terminal closed, a pipe's reader left) is no reason to panic
/// in the middle of a call.
pub fn say(line: std::fmt::Arguments) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Now, in Unix microseconds (the unit of every timestamp on the wire).
pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Why a call ended (or never started).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// This side hung up (key, window closed, `--duration`).
    HungUp,
    /// The peer said Bye.
    PeerHungUp,
    /// The callee said no (or nobody answered in time).
    Declined,
    /// The listener is in another call.
    Busy,
    /// The connection closed or broke without a Bye.
    ConnectionLost(Lost),
    /// Nothing from the peer for `secs`: the idle timeout (its machine
    /// still answered), or the reconnect timeout (the link went silent).
    PeerNotResponding { secs: u64 },
    /// The peer sends but has not read what we sent for the idle timeout.
    PeerNotReading,
    /// The peer sent something that is not valid vidchat.
    Protocol(ProtocolError),
    /// Our socket failed.
    Network(NetworkError),
    /// The camera or file stopped working.
    SourceFailed(SourceError),
    /// Our encoder could not encode a picture.
    Encoding(EncodingError),
    /// One of our threads failed (a bug): the call cannot go on.
    Crashed(&'static str),
}

impl EndReason {
    /// A hang-up by either person, as opposed to a failure.
    pub fn is_normal(&self) -> bool {
        matches!(self, EndReason::HungUp | EndReason::PeerHungUp)
    }
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = IDLE_TIMEOUT.as_secs();
        match self {
            EndReason::HungUp => write!(f, "you hung up"),
            EndReason::PeerHungUp => write!(f, "peer hung up"),
            EndReason::Declined => write!(f, "call declined"),
            EndReason::Busy => write!(f, "busy: it is in another call"),
            EndReason::ConnectionLost(why) => write!(f, "connection lost: {why}"),
            EndReason::PeerNotResponding { secs } => {
                write!(f, "peer not responding (nothing received for {secs} s)")
            }
            EndReason::PeerNotReading => write!(
                f,
                "peer not reading (it sends, but has answered nothing for {idle} s)"
            ),
            EndReason::Protocol(why) => write!(f, "{why}"),
            EndReason::Network(why) => write!(f, "network error: {why}"),
            EndReason::SourceFailed(why) => write!(f, "video source failed: {why}"),
            EndReason::Encoding(why) => write!(f, "cannot encode video: {why}"),
            EndReason::Crashed(thread) => {
                write!(f, "internal error: the {thread} thread failed")
            }
        }
    }
}

/// How the connection was lost ([`EndReason::ConnectionLost`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Lost {
    /// The peer closed the connection between messages.
    #[error("the peer closed the connection")]
    PeerClosed,
    /// The peer closed the connection while our call rang (the caller's side).
    #[error("the peer closed the connection before answering")]
    PeerClosedBeforeAnswering,
    /// The connection closed inside a message (a killed peer): cut, not
    /// malformed.
    #[error(transparent)]
    MidMessage(WireError),
    /// The socket failed (reset, broken pipe).
    #[error(transparent)]
    Io(Shared<io::Error>),
    /// The socket took no bytes of a write.
    #[error("the socket took nothing")]
    TookNothing,
}

/// What the peer did that vidchat does not allow, or why its bytes could
/// not be read ([`EndReason::Protocol`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Bytes that do not frame or decode, or are not vidchat at all.
    #[error(transparent)]
    Wire(WireError),
    /// The encryption failed: a handshake, data that does not decrypt, a
    /// broken commitment.
    #[error(transparent)]
    Secure(SecureError),
    /// The handshake did not finish within `secs` of the first byte.
    #[error("no vidchat handshake within {secs} s")]
    NoHandshake { secs: u64 },
    /// The caller waited `secs` for the answer.
    #[error("no answer within {secs} s")]
    NoAnswer { secs: u64 },
    /// The peer closed before its Hello (a port scan, a turned-away caller).
    #[error("closed the connection without a word")]
    ClosedWithoutAWord,
    /// The peer closed after its Hello, before the handshake was done.
    #[error("closed the connection during the vidchat handshake")]
    ClosedDuringHandshake,
    /// A resumption where no call runs (or of another call).
    #[error("peer tried to resume a call that is not running here")]
    NothingToResume,
    /// A second Reveal.
    #[error("peer revealed its code twice")]
    RevealedTwice,
    /// A call message before the callee's Reveal.
    #[error("peer sent call messages before it rang")]
    BeforeRinging,
    /// A call message while the call rang.
    #[error("peer sent call messages before the call was answered")]
    BeforeAnswer,
    /// An Answer to a running call.
    #[error("peer answered a call already in progress")]
    AnsweredTwice,
    /// A Confirmed from the callee.
    #[error("the callee sent a confirmation only a caller sends")]
    CalleeConfirmed,
    /// A frame from a caller whose person has not said yes.
    #[error("peer sent video before its person confirmed the call")]
    VideoBeforeConfirmed,
    /// More frames than `per_second` a second, beyond the burst allowed.
    #[error("peer sends frames faster than any camera (over {per_second} a second)")]
    FrameFlood { per_second: u32 },
    /// A frame larger than the peer's intro announced.
    #[error("peer sent a {width}x{height} frame after announcing at most {max_width}x{max_height}")]
    FrameTooLarge {
        width: u32,
        height: u32,
        max_width: u32,
        max_height: u32,
    },
    /// A frame in a format this side did not offer.
    #[error("peer sent {0:?} video, which this side did not offer")]
    NotOffered(VideoFormat),
    /// The peer's video does not decode (a JPEG at once, H.264 after too
    /// many failures in a row).
    #[error("bad video from peer: {0}")]
    BadVideo(CodecError),
    /// Our H.264 decoder could not start for the peer's video.
    #[error(transparent)]
    Decoder(CodecError),
}

#[cfg(test)]
impl ProtocolError {
    /// H.264 the decoder could not read (`why`), for tests of layers that
    /// know nothing of codecs.
    pub fn bad_h264(why: &str) -> ProtocolError {
        ProtocolError::BadVideo(CodecError::H264(why.into()))
    }
}

/// How our side of the network failed ([`EndReason::Network`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    /// A write failed for another reason than the peer going away.
    #[error("cannot send: {0}")]
    Send(Shared<io::Error>),
    /// No random nonce for the handshake.
    #[error(transparent)]
    Random(SecureError),
}

/// Why the camera or file stopped ([`EndReason::SourceFailed`]): the
/// capture sources report `anyhow` errors, kept whole (shown with their
/// context chain).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:#}")]
pub struct SourceError(pub Shared<anyhow::Error>);

impl From<anyhow::Error> for SourceError {
    fn from(e: anyhow::Error) -> Self {
        SourceError(Shared::new(e))
    }
}

/// Why our video or messages could not be encoded ([`EndReason::Encoding`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodingError {
    /// A message of ours does not encode.
    #[error(transparent)]
    Wire(WireError),
    /// A message of ours does not seal.
    #[error(transparent)]
    Seal(SecureError),
    /// A picture of ours does not encode.
    #[error(transparent)]
    Codec(CodecError),
    /// The encoding stage did not start (no H.264 encoder), with its
    /// context chain.
    #[error("{0:#}")]
    Start(Shared<anyhow::Error>),
}

/// The call-wide stop flag: the first reason given wins, and every thread
/// polls `is_ended` at least every 100 ms.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(Arc<ShutdownState>);

#[derive(Debug, Default)]
struct ShutdownState {
    ended: AtomicBool,
    reason: Mutex<Option<EndReason>>,
}

impl Shutdown {
    pub fn end(&self, reason: EndReason) {
        if let Ok(mut slot) = self.0.reason.lock() {
            slot.get_or_insert(reason);
        }
        self.0.ended.store(true, Ordering::SeqCst);
    }

    pub fn is_ended(&self) -> bool {
        self.0.ended.load(Ordering::SeqCst)
    }

    pub fn reason(&self) -> Option<EndReason> {
        self.0.reason.lock().ok().and_then(|r| r.clone())
    }

    /// A guard for the body of `thread`: if the thread unwinds from a panic,
    /// dropping the guard ends the call with [`EndReason::Crashed`], so the
    /// other threads stop instead of waiting on it forever.
    pub fn crash_guard(&self, thread: &'static str) -> CrashGuard {
        CrashGuard {
            shutdown: self.clone(),
            thread,
        }
    }
}

/// See [`Shutdown::crash_guard`].
pub struct CrashGuard {
    shutdown: Shutdown,
    thread: &'static str,
}

impl Drop for CrashGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.shutdown.end(EndReason::Crashed(self.thread));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_wins() {
        let s = Shutdown::default();
        assert!(!s.is_ended());
        s.end(EndReason::PeerHungUp);
        s.end(EndReason::HungUp);
        assert_eq!(s.reason(), Some(EndReason::PeerHungUp));
    }

    #[test]
    fn every_reason_reads_as_it_always_has() {
        let chain = || anyhow::anyhow!("inner").context("outer");
        let io = |why: &str| Shared::new(io::Error::other(why));
        let lost = |how| EndReason::ConnectionLost(how);
        let protocol = |what| EndReason::Protocol(what);
        let cases = [
            (
                lost(Lost::PeerClosed),
                "connection lost: the peer closed the connection",
            ),
            (
                lost(Lost::PeerClosedBeforeAnswering),
                "connection lost: the peer closed the connection before answering",
            ),
            (
                lost(Lost::MidMessage(WireError::Truncated { have: 3, need: 8 })),
                "connection lost: connection closed in the middle of a message (3 of 8 bytes)",
            ),
            (lost(Lost::Io(io("reset"))), "connection lost: reset"),
            (
                lost(Lost::TookNothing),
                "connection lost: the socket took nothing",
            ),
            (
                protocol(ProtocolError::NoHandshake { secs: 5 }),
                "no vidchat handshake within 5 s",
            ),
            (
                protocol(ProtocolError::NoAnswer { secs: 35 }),
                "no answer within 35 s",
            ),
            (
                protocol(ProtocolError::ClosedWithoutAWord),
                "closed the connection without a word",
            ),
            (
                protocol(ProtocolError::ClosedDuringHandshake),
                "closed the connection during the vidchat handshake",
            ),
            (
                protocol(ProtocolError::RevealedTwice),
                "peer revealed its code twice",
            ),
            (
                protocol(ProtocolError::BeforeRinging),
                "peer sent call messages before it rang",
            ),
            (
                protocol(ProtocolError::BeforeAnswer),
                "peer sent call messages before the call was answered",
            ),
            (
                protocol(ProtocolError::AnsweredTwice),
                "peer answered a call already in progress",
            ),
            (
                protocol(ProtocolError::CalleeConfirmed),
                "the callee sent a confirmation only a caller sends",
            ),
            (
                protocol(ProtocolError::VideoBeforeConfirmed),
                "peer sent video before its person confirmed the call",
            ),
            (
                protocol(ProtocolError::FrameFlood { per_second: 240 }),
                "peer sends frames faster than any camera (over 240 a second)",
            ),
            (
                protocol(ProtocolError::FrameTooLarge {
                    width: 4096,
                    height: 2048,
                    max_width: 640,
                    max_height: 480,
                }),
                "peer sent a 4096x2048 frame after announcing at most 640x480",
            ),
            (
                protocol(ProtocolError::NotOffered(VideoFormat::H264)),
                "peer sent H264 video, which this side did not offer",
            ),
            (
                protocol(ProtocolError::BadVideo(CodecError::H264("broken".into()))),
                "bad video from peer: H.264: broken",
            ),
            (
                protocol(ProtocolError::Decoder(CodecError::H264(
                    "no decoder".into(),
                ))),
                "H.264: no decoder",
            ),
            (
                protocol(ProtocolError::Wire(WireError::NotVidchat(
                    "it sent an HTTP request".into(),
                ))),
                "not a vidchat peer (it sent an HTTP request)",
            ),
            (
                protocol(ProtocolError::Secure(SecureError::Decrypt)),
                "peer sent data that does not decrypt (tampered with, or not from the peer)",
            ),
            (
                EndReason::Network(NetworkError::Send(io("refused"))),
                "network error: cannot send: refused",
            ),
            (
                EndReason::SourceFailed(chain().into()),
                "video source failed: outer: inner",
            ),
            (
                EndReason::Encoding(EncodingError::Wire(WireError::OutgoingTooLong {
                    len: 5,
                    max: 4,
                })),
                "cannot encode video: message of 5 bytes is over the 4-byte limit",
            ),
            (
                EndReason::Encoding(EncodingError::Seal(SecureError::TooLarge(9))),
                "cannot encode video: message of 9 bytes is too large to encrypt",
            ),
            (
                EndReason::Encoding(EncodingError::Codec(CodecError::H264("full".into()))),
                "cannot encode video: H.264: full",
            ),
            (
                EndReason::Encoding(EncodingError::Start(Shared::new(chain()))),
                "cannot encode video: outer: inner",
            ),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text, "{reason:?}");
        }
        // Handed on as an error, the start failure still reads in full.
        let start: anyhow::Error = EncodingError::Start(Shared::new(chain())).into();
        assert_eq!(format!("{start:#}"), "outer: inner");
    }

    #[test]
    fn a_panicking_thread_ends_the_call() {
        let s = Shutdown::default();
        let guard = s.crash_guard("sender");
        let worker = std::thread::spawn(move || {
            let _guard = guard;
            panic!("a bug");
        });
        assert!(worker.join().is_err());
        assert_eq!(s.reason(), Some(EndReason::Crashed("sender")));
        // A thread that ends normally leaves the call alone.
        let s = Shutdown::default();
        drop(s.crash_guard("receiver"));
        assert!(!s.is_ended());
    }
}
