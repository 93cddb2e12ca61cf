//! What every layer of a call shares, so that none has to import from a
//! layer above it: why a call ended ([`EndReason`]), the call-wide stop flag
//! ([`Shutdown`]), a guard that turns a panicking thread into an ended call,
//! the wall clock every timestamp on the wire is in ([`unix_us`]), and a
//! line on stderr that a closed terminal or pipe cannot turn into a panic
//! ([`say`]).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Silence after which the peer is declared gone; several pings long, so
/// one lost or late Pong is no reason to hang up.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

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
    ConnectionLost(String),
    /// Nothing from the peer for the idle timeout.
    PeerNotResponding,
    /// The peer sends but has not read what we sent for the idle timeout.
    PeerNotReading,
    /// The peer sent something that is not valid vidchat.
    Protocol(String),
    /// Our socket failed.
    Network(String),
    /// The camera or file stopped working.
    SourceFailed(String),
    /// Our encoder could not encode a picture.
    Encoding(String),
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
            EndReason::PeerNotResponding => {
                write!(f, "peer not responding (nothing received for {idle} s)")
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
