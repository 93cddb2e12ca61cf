//! The threads that run an answered call over its sockets, around its one
//! owner, the [`Driver`] (on the `call` thread): for each connection the
//! call is on (the first, then each one a resumption gave it), the
//! `receiver` thread only reads the socket and stamps what it read, the
//! `sender` thread only writes what the driver hands it and says how far
//! it got. Neither touches the protocol, so no lock is shared and every
//! timer runs in one place; the call thread also runs the `Resumer` while
//! the call is reconnecting, and moves the call to the connection it gives.
//! The media stage on the other side of [`MediaPorts`] encodes what goes
//! and decodes what came; this module knows nothing of video.
//!
//! No socket read or write blocks without a deadline: they time out every
//! [`POLL`] to look at the shutdown flag (and the threads that wait on
//! channels end when the call thread drops its ends).

use std::io::{self, Read, Write};
use std::net::{Shutdown as SocketShutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender, bounded, never, select, unbounded};

use super::Peer;
use super::connection::{Event, SILENT_LINK};
use super::driver::Driver;
use super::feedback::{self, LinkSample};
use super::reconnect::{self, Candidate, Resumer};
use crate::call::{EndReason, Lost, NetworkError, ProtocolError, Shutdown, unix_us};
use crate::handoff::{Latest, latest};
use crate::stats::Counters;
use crate::wire::Frame;

/// How often a blocked thread looks at the shutdown flag.
pub const POLL: Duration = Duration::from_millis(100);
/// How long a hanging-up side may still take to finish the message in
/// flight and say Bye over a slow link, and then wait for the peer to close.
/// A call that ended by failure does not linger.
const LINGER: Duration = Duration::from_secs(1);
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Reads that may wait for the call thread (then the socket waits, and
/// TCP slows the peer down).
const READS_WAITING: usize = 8;
/// The peer's frames that may wait for the decoder, likewise.
const FRAMES_WAITING: usize = 8;

/// Typed lines both ways: those to send, and where the peer's go (a
/// bounded channel: lines the main thread has not taken are dropped).
pub struct TextLink {
    pub outgoing: Receiver<String>,
    pub incoming: Sender<String>,
}

/// What became of a frame the decoder was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Picture {
    /// Decoded.
    Decoded,
    /// Could not be decoded (what the call ends with if too many in a
    /// row are lost): the driver asks for a keyframe.
    Lost(ProtocolError),
}

/// The call as the media stage sees it.
pub struct MediaPorts {
    /// Encoded frames to send, in order (one handed over is sealed while
    /// our video may flow, and never dropped after).
    pub outgoing: Sender<Frame>,
    /// The peer's frames, in order, to decode.
    pub incoming: Receiver<Frame>,
    /// What became of each.
    pub pictures: Sender<Picture>,
    /// The link and the call's state, for choosing each frame.
    pub view: LinkView,
}

/// The call's state a frame is chosen by, published by the driver.
#[derive(Debug, Default)]
struct CallFlags {
    /// Our video may flow (both people said yes, the call is on).
    may_send_video: AtomicBool,
    /// The peer asked for a keyframe.
    keyframe_wanted: AtomicBool,
    /// The call moved to a new connection: the link is not known.
    new_link: AtomicBool,
}

/// The sending side's view of the link and of the call.
pub struct LinkView {
    flags: Arc<CallFlags>,
    samples: Receiver<LinkSample>,
    last: LinkSample,
    /// The socket, for the kernel's view where it has one...
    kernel: Option<TcpStream>,
    /// ...and the one the call moved to.
    kernel_streams: Receiver<TcpStream>,
}

impl LinkView {
    /// Whether our video may flow.
    pub fn may_send_video(&self) -> bool {
        self.flags.may_send_video.load(Ordering::Relaxed)
    }

    /// True once after the peer asked for a keyframe.
    pub fn take_keyframe_wanted(&self) -> bool {
        self.flags.keyframe_wanted.swap(false, Ordering::Relaxed)
    }

    /// True once after the call moved to a new connection, whose link is
    /// not known yet (the sender starts over, small).
    pub fn take_new_link(&self) -> bool {
        self.flags.new_link.swap(false, Ordering::Relaxed)
    }

    /// The link now: what the peer's reports show, refined by the
    /// kernel's view where there is one.
    pub fn sample(&mut self) -> LinkSample {
        if let Ok(stream) = self.kernel_streams.try_recv() {
            self.kernel = Some(stream);
        }
        if let Ok(sample) = self.samples.try_recv() {
            self.last = sample;
        }
        let reported = self.last;
        self.kernel
            .as_ref()
            .map_or(reported, |s| feedback::refined_by_kernel(s, &reported))
    }
}

/// The running threads of a call: the call thread, which owns the
/// connection's threads in turn.
pub struct Link {
    thread: JoinHandle<()>,
}

/// What the reader hands the call thread.
enum FromSocket {
    Bytes(Instant, Vec<u8>),
    Closed,
    Failed(io::Error),
}

/// What the writer tells the call thread.
enum Written {
    /// The socket took this many more bytes at this time.
    Took(u64, Instant),
    /// A write failed: this connection takes no more.
    Failed(io::Error),
}

impl Link {
    /// Starts the call's threads on the answered `peer`; the media stage
    /// gets the other ends. A call whose link goes silent resumes through
    /// `resumer`.
    pub fn start(
        peer: Peer,
        text: TextLink,
        resumer: Resumer,
        shutdown: Shutdown,
        counters: Arc<Counters>,
    ) -> Result<(Link, MediaPorts)> {
        let Peer {
            stream,
            conn,
            unsent,
            written,
            ..
        } = peer;
        let unsent = unsent.get(written..).unwrap_or_default().to_vec();
        let driver = Driver::new(conn, unsent, Instant::now());
        let (outgoing, frames) = bounded(1);
        let (frames_in, incoming) = bounded(FRAMES_WAITING);
        let (pictures, decoded) = unbounded();
        let (samples_in, samples) = latest();
        let (kernel_in, kernel_streams) = latest();
        let flags = Arc::new(CallFlags::default());
        let view = LinkView {
            flags: flags.clone(),
            samples,
            last: LinkSample::default(),
            kernel: None,
            kernel_streams,
        };
        if feedback::kernel_view_allowed() {
            kernel_in.put(stream.try_clone()?);
        }
        let socket = Socket::start(stream, &shutdown, &counters)
            .context("cannot start the call's socket threads")?;
        let call = CallThread {
            driver,
            shutdown,
            counters,
            flags,
            samples: samples_in,
            kernel: kernel_in,
            frames_in,
            text: text.incoming,
            resumer,
            retired: Vec::new(),
        };
        let inputs = Inputs {
            frames,
            typed: text.outgoing,
            decoded,
        };
        let thread = thread::Builder::new()
            .name("call".into())
            .spawn(move || call.run(socket, inputs))
            .context("cannot start the call thread")?;
        let ports = MediaPorts {
            outgoing,
            incoming,
            pictures,
            view,
        };
        Ok((Link { thread }, ports))
    }

    /// Waits for the threads (after the call was ended); the call thread
    /// closes its socket. A thread that panicked has already ended the
    /// call (its crash guard), so its join error carries nothing more.
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

/// One TCP connection of the call, as the call thread sees it: what its
/// reader read, what its writer took, and where bytes for it go.
struct Socket {
    reads: Receiver<FromSocket>,
    written: Receiver<Written>,
    to_writer: Sender<Vec<u8>>,
    /// The connection and its two threads (none in tests run in memory).
    stream: Option<TcpStream>,
    threads: Vec<JoinHandle<()>>,
}

impl Socket {
    /// The peer's address on this connection.
    fn peer_ip(&self) -> Option<std::net::IpAddr> {
        let stream = self.stream.as_ref()?;
        stream.peer_addr().ok().map(|a| a.ip())
    }

    /// Starts a reader and a writer on `stream`.
    fn start(
        stream: TcpStream,
        shutdown: &Shutdown,
        counters: &Arc<Counters>,
    ) -> io::Result<Socket> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(POLL))?;
        stream.set_write_timeout(Some(POLL))?;
        let (reads_in, reads) = bounded(READS_WAITING);
        let (written_in, written) = unbounded();
        let (to_writer, batches) = unbounded();
        let reader = Reader {
            stream: stream.try_clone()?,
            shutdown: shutdown.clone(),
            reads: reads_in,
        };
        let writer = Writer {
            stream: stream.try_clone()?,
            shutdown: shutdown.clone(),
            counters: counters.clone(),
            written: written_in,
        };
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            thread::Builder::new().name(name.into()).spawn(f)
        };
        let threads = vec![
            spawn("receiver", Box::new(move || reader.run()))?,
            spawn("sender", Box::new(move || writer.run(batches)))?,
        ];
        Ok(Socket {
            reads,
            written,
            to_writer,
            stream: Some(stream),
            threads,
        })
    }

    /// The call is over: the writer writes what it was handed (a Bye) and
    /// ends our side, the reader reads until the peer closes too (both
    /// within `LINGER` after a hang-up, at once after a failure); then the
    /// connection is closed.
    fn finish(self) {
        let Socket {
            reads,
            written,
            to_writer,
            stream,
            threads,
        } = self;
        drop((reads, written, to_writer));
        for thread in threads {
            let _ = thread.join();
        }
        if let Some(stream) = stream {
            let _ = stream.shutdown(SocketShutdown::Both);
        }
    }

    /// Leaves the connection (the call moved to another): closed at once,
    /// so its threads end on their own; they are returned to be waited for.
    fn close(self) -> Vec<JoinHandle<()>> {
        if let Some(stream) = &self.stream {
            let _ = stream.shutdown(SocketShutdown::Both);
        }
        self.threads
    }
}

/// What the call thread waits on besides its socket.
struct Inputs {
    frames: Receiver<Frame>,
    typed: Receiver<String>,
    decoded: Receiver<Picture>,
}

struct CallThread {
    driver: Driver,
    shutdown: Shutdown,
    counters: Arc<Counters>,
    flags: Arc<CallFlags>,
    samples: Latest<LinkSample>,
    /// The current socket, for the sender's kernel view.
    kernel: Latest<TcpStream>,
    /// The peer's frames, to the decoder.
    frames_in: Sender<Frame>,
    /// The peer's typed lines, to the main thread.
    text: Sender<String>,
    resumer: Resumer,
    /// The threads of connections the call left behind.
    retired: Vec<JoinHandle<()>>,
}

impl CallThread {
    fn run(mut self, mut socket: Socket, inputs: Inputs) {
        let _guard = self.shutdown.crash_guard("call");
        if let Err(reason) = self.drive(&mut socket, inputs) {
            self.shutdown.end(reason);
        }
        for thread in std::mem::take(&mut self.retired) {
            let _ = thread.join();
        }
        socket.finish();
    }

    fn drive(&mut self, socket: &mut Socket, mut inputs: Inputs) -> Result<(), EndReason> {
        loop {
            let local = self.shutdown.reason();
            if let Some(reason) = local {
                return self.finish(reason, socket);
            }
            self.apply_local_state();
            let now = Instant::now();
            let wait = self
                .driver
                .poll_timeout()
                .map_or(POLL, |t| t.saturating_duration_since(now))
                .min(
                    self.resumer
                        .poll_timeout(now)
                        .map_or(POLL, |t| t.saturating_duration_since(now)),
                )
                .min(POLL);
            let (reads, written) = (socket.reads.clone(), socket.written.clone());
            let (offered, resumed) = (self.resumer.offered(), self.resumer.resumed());
            select! {
                recv(reads) -> read => match read {
                    Ok(FromSocket::Bytes(at, bytes)) => self.driver.handle_read(at, &bytes),
                    Ok(FromSocket::Closed) if self.may_mend() => self.driver.conn().handle_link_failed(),
                    Ok(FromSocket::Closed) => self.driver.handle_closed(),
                    Ok(FromSocket::Failed(e)) => self.socket_failed(e),
                    // The reader stopped because the call ended.
                    Err(_) => socket.reads = never(),
                },
                recv(written) -> written => match written {
                    Ok(Written::Took(bytes, at)) => self.driver.handle_written(bytes, at),
                    Ok(Written::Failed(e)) => self.socket_failed(e),
                    Err(_) => socket.written = never(),
                },
                recv(inputs.frames) -> frame => match frame {
                    Ok(frame) => {
                        self.driver.send_frame(frame)?;
                    }
                    Err(_) => inputs.frames = never(),
                },
                recv(inputs.typed) -> line => match line {
                    // The main thread checked it; a refusal changes nothing.
                    Ok(line) => {
                        let _ = self.driver.send_text(&line);
                    }
                    // Nobody types any more: no longer asked.
                    Err(_) => inputs.typed = never(),
                },
                recv(inputs.decoded) -> picture => match picture {
                    Ok(Picture::Decoded) => self.driver.conn().picture_ok(),
                    Ok(Picture::Lost(why)) => self.driver.conn().picture_lost(why),
                    Err(_) => inputs.decoded = never(),
                },
                recv(offered) -> offer => if let Ok(offer) = offer {
                    let tickets = self.driver.conn().tickets();
                    let peer = socket.peer_ip();
                    self.resumer.answer(offer, tickets, peer, &self.shutdown);
                },
                recv(resumed) -> candidate => if let Ok(candidate) = candidate {
                    self.take_over(socket, candidate);
                },
                default(wait) => {},
            }
            let now = Instant::now();
            // Only a silence needs the kernel's word on our bytes: read then,
            // not on every pass.
            let heard = self.driver.conn().last_heard();
            let silent = heard.is_some_and(|at| now >= at + SILENT_LINK);
            if let Some(stream) = socket.stream.as_ref().filter(|_| silent) {
                let check = feedback::kernel_check(stream);
                self.driver.conn().handle_link_check(check);
            }
            self.driver.handle_timeout(now);
            if self.driver.conn().is_reconnecting() {
                let ticket = self.driver.conn().ticket();
                self.resumer.redial(now, ticket, &self.shutdown);
            }
            self.route_events();
            self.publish();
            self.transmit(socket);
            if let Some(reason) = self.driver.end_reason() {
                self.shutdown.end(reason.clone());
            }
        }
    }

    /// Whether an old connection's end may be mended by a new one: the
    /// call is reconnecting, or a resumption is under way (the peer, having
    /// taken it, closed the old one), or the call just moved to a
    /// connection the caller has not spoken on (it may have given up on
    /// it). Neither a close nor a reset is authenticated; a hang-up is (a
    /// Bye).
    fn may_mend(&mut self) -> bool {
        let conn = self.driver.conn();
        conn.is_reconnecting() || conn.is_moving() || self.resumer.is_trying()
    }

    /// A socket that failed: the end of the call, unless a new connection
    /// may mend it.
    fn socket_failed(&mut self, e: io::Error) {
        if self.may_mend() {
            return self.driver.conn().handle_link_failed();
        }
        let conn = self.driver.conn();
        match e.kind() {
            // The peer went away (killed, unplugged): the call is lost.
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted => {
                conn.close(EndReason::ConnectionLost(Lost::Io(e.into())));
            }
            io::ErrorKind::WriteZero => conn.close(EndReason::ConnectionLost(Lost::TookNothing)),
            kind if reconnect::may_mend(kind) => conn.handle_link_failed(),
            _ => conn.close(EndReason::Network(NetworkError::Send(e.into()))),
        }
    }

    /// A resumption went through on `candidate`'s connection: the call
    /// moves over to it (unless it is stale: another one won), and the old
    /// connection is closed.
    fn take_over(&mut self, socket: &mut Socket, candidate: Candidate) {
        let Candidate { stream, resumed } = candidate;
        let now = Instant::now();
        if !self.driver.resume(now, resumed) {
            return;
        }
        match Socket::start(stream, &self.shutdown, &self.counters) {
            Ok(new) => {
                self.resumer.stop_all();
                let old = std::mem::replace(socket, new);
                self.retired.extend(old.close());
                if let Some(kernel) = socket.stream.as_ref().and_then(|s| s.try_clone().ok())
                    && feedback::kernel_view_allowed()
                {
                    self.kernel.put(kernel);
                }
                self.flags.new_link.store(true, Ordering::Relaxed);
                Counters::add(&self.counters.resumptions, 1);
            }
            Err(e) => self
                .driver
                .conn()
                .close(EndReason::Network(NetworkError::Send(e.into()))),
        }
    }

    /// Our person's yes and pause, from the main thread.
    fn apply_local_state(&mut self) {
        let conn = self.driver.conn();
        if self.counters.confirmed.load(Ordering::Relaxed) {
            conn.confirm();
        }
        conn.set_paused(self.counters.video_paused.load(Ordering::Relaxed));
    }

    fn route_events(&mut self) {
        while let Some(event) = self.driver.poll_event(Instant::now()) {
            match event {
                Event::Frame(mut frame) => {
                    frame.capture_us = self.driver.to_local_us(frame.capture_us);
                    self.hand_to_decoder(frame);
                }
                Event::PeerPaused(paused) => {
                    self.counters
                        .peer_video_paused
                        .store(paused, Ordering::Relaxed);
                }
                Event::Rtt(rtt) => Counters::set(&self.counters.rtt_us, rtt),
                Event::PeerConfirmed => {
                    self.counters.peer_confirmed.store(true, Ordering::Relaxed);
                }
                Event::Text(line) => {
                    if self.text.try_send(line).is_err() {
                        Counters::add(&self.counters.texts_refused, 1);
                    }
                }
                Event::TextRefused => Counters::add(&self.counters.texts_refused, 1),
                Event::Reconnecting => {
                    let silent = self.driver.conn().last_heard().map(|at| at.elapsed());
                    let silent = silent.unwrap_or(SILENT_LINK).as_micros() as u64;
                    let since = unix_us().saturating_sub(silent);
                    Counters::set(&self.counters.reconnecting_since_us, since.max(1));
                }
                Event::Reconnected => Counters::set(&self.counters.reconnecting_since_us, 0),
                Event::Connected(_) | Event::Accepted | Event::Ended(_) | Event::Received(_) => {}
            }
        }
    }

    /// Hands a frame to the decoder, waiting while it is busy (every frame
    /// of a stream is needed), but not past the end of the call.
    fn hand_to_decoder(&mut self, mut frame: Frame) {
        loop {
            match self.frames_in.send_timeout(frame, POLL) {
                Err(crossbeam_channel::SendTimeoutError::Timeout(back))
                    if !self.shutdown.is_ended() =>
                {
                    frame = back;
                }
                // Taken; or the call ended; or no decoder (nothing to show).
                _ => return,
            }
        }
    }

    /// What the sending side chooses its next frame by.
    fn publish(&mut self) {
        let may_send = self.driver.conn().may_send_video();
        self.flags.may_send_video.store(may_send, Ordering::Relaxed);
        if self.driver.conn().take_keyframe_wanted() {
            self.flags.keyframe_wanted.store(true, Ordering::Relaxed);
        }
        self.samples.put(self.driver.link(Instant::now()));
    }

    fn transmit(&mut self, socket: &Socket) {
        if let Some(bytes) = self.driver.poll_transmit() {
            // The writer only goes when its connection or the call ends;
            // what it did not write then no longer matters.
            let _ = socket.to_writer.send(bytes);
        }
    }

    /// The call ended (`reason`): a hang-up says Bye, once the socket has
    /// taken what was handed to it, within [`LINGER`].
    fn finish(&mut self, reason: EndReason, socket: &Socket) -> Result<(), EndReason> {
        self.driver.conn().close(reason.clone());
        let until = Instant::now() + LINGER;
        while reason == EndReason::HungUp && Instant::now() < until && !self.driver.is_flushed() {
            if let Some(bytes) = self.driver.poll_transmit() {
                let _ = socket.to_writer.send(bytes);
                break;
            }
            match socket.written.recv_deadline(until) {
                Ok(Written::Took(bytes, at)) => self.driver.handle_written(bytes, at),
                Ok(Written::Failed(_)) | Err(_) => break,
            }
        }
        Ok(())
    }
}

/// Reads the socket for the call thread, stamping each read.
struct Reader {
    stream: TcpStream,
    shutdown: Shutdown,
    reads: Sender<FromSocket>,
}

impl Reader {
    fn run(mut self) {
        let _guard = self.shutdown.crash_guard("receiver");
        let mut buf = vec![0u8; READ_CHUNK];
        let mut linger_until = None;
        loop {
            // Once we hung up, read on until the peer closes too (or LINGER
            // passes): closing with unread bytes would reset the connection,
            // and a reset makes the peer's kernel drop our Bye.
            if let Some(reason) = self.shutdown.reason() {
                let now = Instant::now();
                if reason != EndReason::HungUp || now >= *linger_until.get_or_insert(now + LINGER) {
                    return;
                }
            }
            let read = match self.stream.read(&mut buf) {
                Ok(0) => FromSocket::Closed,
                Ok(n) => {
                    FromSocket::Bytes(Instant::now(), buf.get(..n).unwrap_or_default().to_vec())
                }
                Err(e) if is_timeout(&e) => continue,
                Err(e) => FromSocket::Failed(e),
            };
            let last = !matches!(read, FromSocket::Bytes(..));
            if self.shutdown.is_ended() {
                if last {
                    return;
                }
                continue;
            }
            if !self.hand_over(read) || last {
                return;
            }
        }
    }

    /// Waits for the call thread to take `read`; false once it is gone
    /// (the call ended, or left this connection).
    fn hand_over(&self, mut read: FromSocket) -> bool {
        loop {
            match self.reads.send_timeout(read, POLL) {
                Ok(()) => return true,
                Err(crossbeam_channel::SendTimeoutError::Timeout(back)) => {
                    if self.shutdown.is_ended() {
                        return true;
                    }
                    read = back;
                }
                Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => return false,
            }
        }
    }
}

/// Writes what the call thread hands it, and says how far it got.
struct Writer {
    stream: TcpStream,
    shutdown: Shutdown,
    counters: Arc<Counters>,
    written: Sender<Written>,
}

impl Writer {
    fn run(mut self, batches: Receiver<Vec<u8>>) {
        let _guard = self.shutdown.crash_guard("sender");
        // Ends when the call thread is done with this connection (it drops
        // its end), or the connection fails.
        for batch in batches {
            match self.write_all(&batch) {
                Ok(n) if n < batch.len() => break,
                Ok(_) => {}
                Err(e) => {
                    let _ = self.written.send(Written::Failed(e));
                    break;
                }
            }
        }
        let _ = self.stream.shutdown(SocketShutdown::Write);
    }

    /// Writes `bytes`, saying after each write how far it got (each
    /// frame's time is when its last byte went); returns how many went.
    /// The socket's write timeout is [`POLL`], so the shutdown flag is
    /// seen: a hang-up gets [`LINGER`] to finish the message in flight and
    /// say Bye; a call that ended otherwise (a peer that stopped reading,
    /// say) stops at once. A connection the call left is shut down, so its
    /// write fails at once.
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut written = 0;
        let mut give_up = None;
        while let Some(rest) = bytes.get(written..).filter(|r| !r.is_empty()) {
            match self.stream.write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n;
                    let _ = self.written.send(Written::Took(n as u64, Instant::now()));
                }
                Err(e) if is_timeout(&e) => {
                    let Some(reason) = self.shutdown.reason() else {
                        continue;
                    };
                    let now = Instant::now();
                    if reason != EndReason::HungUp || *give_up.get_or_insert(now + LINGER) <= now {
                        break;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Counters::add(&self.counters.bytes_sent, written as u64);
        Ok(written)
    }
}

/// Whether a read or write only timed out (or was interrupted).
pub(super) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    //! Two call threads, each the whole driver of its side, joined in
    //! memory where the socket threads would be: frames and lines go both
    //! ways through their protocol and encryption, the peer's reports come
    //! back, and a hang-up reaches the other side. No sockets.
    use super::*;
    use crate::net::connection::tests::{answered_pair, frame};

    struct Side {
        shutdown: Shutdown,
        outgoing: Sender<Frame>,
        incoming: Receiver<Frame>,
        typed: Sender<String>,
        said: Receiver<String>,
        samples: Receiver<LinkSample>,
        thread: JoinHandle<()>,
    }

    /// Starts `conn`'s call thread; its bytes go to `batches` and the
    /// peer's come from `reads`; `written` is where the relay says what
    /// went.
    fn side(
        conn: crate::net::connection::Connection,
        to_writer: Sender<Vec<u8>>,
        reads: Receiver<FromSocket>,
        written: Receiver<Written>,
    ) -> Side {
        let shutdown = Shutdown::default();
        let counters = Arc::new(Counters::default());
        counters.confirmed.store(true, Ordering::Relaxed);
        let (outgoing, frames) = bounded(1);
        let (frames_in, incoming) = bounded(FRAMES_WAITING);
        let (typed, typed_out) = bounded(4);
        let (said_in, said) = bounded(4);
        let (_pictures, decoded) = unbounded();
        let (samples_in, samples) = latest();
        let (kernel, _streams) = latest();
        let call = CallThread {
            driver: Driver::new(conn, Vec::new(), Instant::now()),
            shutdown: shutdown.clone(),
            counters,
            flags: Arc::default(),
            samples: samples_in,
            kernel,
            frames_in,
            text: said_in,
            resumer: Resumer::none(),
            retired: Vec::new(),
        };
        let socket = Socket {
            reads,
            written,
            to_writer,
            stream: None,
            threads: Vec::new(),
        };
        let inputs = Inputs {
            frames,
            typed: typed_out,
            decoded,
        };
        let thread = thread::spawn(move || call.run(socket, inputs));
        Side {
            shutdown,
            outgoing,
            incoming,
            typed,
            said,
            samples,
            thread,
        }
    }

    /// Moves one side's batches to the other's reads, and says they went.
    fn relay(
        batches: Receiver<Vec<u8>>,
        reads: Sender<FromSocket>,
        written: Sender<Written>,
    ) -> JoinHandle<()> {
        thread::spawn(move || {
            for batch in batches {
                let len = batch.len() as u64;
                let _ = reads.send(FromSocket::Bytes(Instant::now(), batch));
                let _ = written.send(Written::Took(len, Instant::now()));
            }
            let _ = reads.send(FromSocket::Closed);
        })
    }

    #[test]
    fn a_whole_call_runs_through_two_call_threads_in_memory() {
        let (caller, callee) = answered_pair((640, 480), Instant::now());
        let (a_out, a_batches) = unbounded();
        let (b_out, b_batches) = unbounded();
        let (a_reads_in, a_reads) = bounded(READS_WAITING);
        let (b_reads_in, b_reads) = bounded(READS_WAITING);
        let (a_written_in, a_written) = unbounded();
        let (b_written_in, b_written) = unbounded();
        let a = side(caller, a_out, a_reads, a_written);
        let b = side(callee, b_out, b_reads, b_written);
        let relays = [
            relay(a_batches, b_reads_in, a_written_in),
            relay(b_batches, a_reads_in, b_written_in),
        ];
        for seq in 1..=20 {
            a.outgoing.send(frame(seq, seq == 1)).unwrap();
            let got = b.incoming.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(got.seq, seq);
            b.outgoing.send(frame(seq, seq == 1)).unwrap();
            assert_eq!(
                a.incoming
                    .recv_timeout(Duration::from_secs(10))
                    .unwrap()
                    .seq,
                seq
            );
        }
        a.typed.send("hello".into()).unwrap();
        assert_eq!(
            b.said.recv_timeout(Duration::from_secs(10)).unwrap(),
            "hello"
        );
        // The peer's reports of what it received came back: nothing of the
        // frames is in flight any more.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = None;
        while Instant::now() < deadline {
            let Ok(sample) = a.samples.recv_deadline(deadline) else {
                break;
            };
            last = Some(sample);
            if sample.bytes_acked > 0 && sample.in_flight_bytes == 0 {
                break;
            }
        }
        let reported = last.filter(|s| s.bytes_acked > 0 && s.in_flight_bytes == 0);
        assert!(
            reported.is_some(),
            "no report acknowledged the frames: {last:?}"
        );
        a.shutdown.end(EndReason::HungUp);
        a.thread.join().unwrap();
        b.thread.join().unwrap();
        assert_eq!(b.shutdown.reason(), Some(EndReason::PeerHungUp));
        for relay in relays {
            relay.join().unwrap();
        }
    }
}
