//! The two threads that drive a running call's connection over its
//! socket; the protocol itself is the `Connection` they share. The sender
//! encodes the newest captured frame when the socket can take it and writes
//! it, along with whatever the connection queued (Pongs, Pings, requests);
//! the receiver reads, hands the bytes to the connection, and decodes the
//! newest frame for the main thread (latest wins both ways).
//!
//! Neither blocks without a deadline: reads and writes time out every
//! [`POLL`] to look at the shutdown flag, and the connection's own timers
//! (a silent or a deaf peer) end the call from whichever thread runs them.

use std::io::{self, Read, Write};
use std::net::{Shutdown as SocketShutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender, bounded, select};

use super::Peer;
use super::connection::{Connection, Event};
use super::ladder::{H264_BITS_PER_PIXEL, JPEG_BITS_PER_PIXEL, SizeLadder};
use super::rate::{LinkSample, RateController};
use crate::call::{EndReason, Shutdown, unix_us};
use crate::capture::CapturedFrame;
use crate::codec::h264::{H264Decoder, H264Encoder};
use crate::codec::scale::Scaler;
use crate::codec::{CodecError, RgbImage, decode_jpeg_0rgb, encode_jpeg};
use crate::handoff::Latest;
use crate::stats::Counters;
use crate::wire::{Frame, VideoFormat};

/// How often a blocked thread looks at the shutdown flag.
const POLL: Duration = Duration::from_millis(100);
/// How long a hanging-up side may still take to finish the message in
/// flight and say Bye over a slow link, and then wait for the peer to close.
/// A call that ended by failure does not linger.
const LINGER: Duration = Duration::from_secs(1);
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;
/// JPEG quality of the first frames, before the link is measured.
const START_QUALITY: u8 = 75;
/// The `quality` of a frame that is the camera's own JPEG, passed through.
pub const CAMERA_QUALITY: u8 = 0;
/// The `quality` of an H.264 frame (its encoder works to a bitrate).
pub const H264_QUALITY: u8 = 100;
/// H.264 bits per pixel when the link allows: 1.4 Mbit/s at 640x480@30,
/// 4.1 Mbit/s at 720p, about what x264's zerolatency calls use.
const H264_BITS_PER_PIXEL_ENOUGH: f64 = 0.15;

/// A decoded frame from the peer, ready to show.
#[derive(Debug, Clone)]
pub struct RemoteFrame {
    pub seq: u64,
    /// Capture time in our clock's Unix microseconds (peer offset removed).
    pub capture_us: u64,
    /// When decoding finished, Unix microseconds.
    pub decoded_us: u64,
    /// Encoded size on the wire.
    pub bytes: u64,
    /// How it travelled.
    pub format: VideoFormat,
    /// JPEG quality the peer chose for it (0: the camera's own JPEG).
    pub quality: u8,
    /// Whether it stands alone (every JPEG; an H.264 keyframe).
    pub keyframe: bool,
    /// How long the peer took to encode it, microseconds (0 when passed through).
    pub encode_us: u32,
    pub width: u32,
    pub height: u32,
    /// `0RGB` pixels, row-major.
    pub pixels: Vec<u32>,
}

/// Frames to send, and where to hand pictures back once encoded.
pub struct VideoIn {
    pub frames: Receiver<CapturedFrame>,
    pub recycle: Sender<RgbImage>,
}

/// Typed lines both ways: those to send, and where the peer's go (a
/// bounded channel: lines the main thread has not taken are dropped).
pub struct TextLink {
    pub outgoing: Receiver<String>,
    pub incoming: Sender<String>,
}

/// What the call's threads exchange with the rest of the program.
pub struct Pipes {
    /// Frames to send (None: a side that only watches, the loopback viewer).
    pub video: Option<VideoIn>,
    pub remote: VideoOut,
    pub text: TextLink,
}

/// Where decoded frames go, and pixel buffers coming back for reuse.
pub struct VideoOut {
    pub frames: Latest<RemoteFrame>,
    pub spare: Receiver<Vec<u32>>,
}

/// The running sender and receiver threads.
pub struct Link {
    sender: JoinHandle<()>,
    receiver: JoinHandle<()>,
    stream: TcpStream,
}

/// The connection the two threads share. Whoever finds it ended ends the call.
#[derive(Clone)]
struct Shared {
    conn: Arc<Mutex<Connection>>,
    shutdown: Shutdown,
}

impl Shared {
    /// Runs `f` on the connection; if the connection has ended (now or
    /// before), the call ends with its reason.
    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> Result<T, EndReason> {
        let mut conn: MutexGuard<'_, Connection> = self
            .conn
            .lock()
            .map_err(|_| EndReason::Crashed("network"))?;
        let out = f(&mut conn);
        if let Some(reason) = conn.end_reason() {
            self.shutdown.end(reason.clone());
        }
        Ok(out)
    }
}

impl Link {
    /// Starts both threads on the answered `peer`, sending `format` at
    /// `fps`.
    pub fn start(
        peer: Peer,
        pipes: Pipes,
        fps: u32,
        format: VideoFormat,
        shutdown: Shutdown,
        counters: Arc<Counters>,
    ) -> Result<Link> {
        let Pipes {
            video,
            remote,
            text,
        } = pipes;
        let h264 = match format {
            VideoFormat::H264 if video.is_some() => Some(H264Encoder::new(fps)?),
            _ => None,
        };
        let Peer { stream, conn, .. } = peer;
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(POLL))?;
        stream.set_write_timeout(Some(POLL))?;
        let shared = Shared {
            conn: Arc::new(Mutex::new(conn)),
            shutdown: shutdown.clone(),
        };
        let (wake, woken) = bounded(1);
        let sending = Sending {
            stream: stream.try_clone()?,
            shared: shared.clone(),
            counters: counters.clone(),
            out: Vec::new(),
            jpeg: Vec::new(),
            rate: RateController::new(fps, START_QUALITY),
            ladder: None,
            scaler: Scaler::default(),
            scaled: RgbImage::new(2, 2),
            fps,
            h264,
            recycle: video.as_ref().map(|v| v.recycle.clone()),
        };
        let video = video.map_or_else(crossbeam_channel::never, |v| v.frames);
        let sender = thread::Builder::new()
            .name("sender".into())
            .spawn(move || sending.run(video, text.outgoing, woken))
            .context("cannot start the sender thread")?;
        let receiving = Receiving {
            stream: stream.try_clone()?,
            shared,
            counters,
            wake,
            h264: None,
            remote: remote.frames,
            spare: remote.spare,
            text: text.incoming,
        };
        let receiver = thread::Builder::new()
            .name("receiver".into())
            .spawn(move || receiving.run())
            .context("cannot start the receiver thread")?;
        Ok(Link {
            sender,
            receiver,
            stream,
        })
    }

    /// Waits for both threads (after the call was ended) and closes the
    /// socket. A thread that panicked has already ended the call (its crash
    /// guard), so its join error carries nothing more.
    pub fn join(self) {
        // The sender says Bye and shuts its side; the receiver reads until
        // the peer has closed too; then the socket goes.
        let _ = self.sender.join();
        let _ = self.receiver.join();
        let _ = self.stream.shutdown(SocketShutdown::Both);
    }
}

struct Sending {
    stream: TcpStream,
    shared: Shared,
    counters: Arc<Counters>,
    /// Reused buffer for the bytes being written.
    out: Vec<u8>,
    /// Reused buffer for an encoded picture.
    jpeg: Vec<u8>,
    rate: RateController,
    /// The size the link can carry (made at the first frame, from its size).
    ladder: Option<SizeLadder>,
    scaler: Scaler,
    /// Reused buffer for a picture scaled down for the link.
    scaled: RgbImage,
    fps: u32,
    /// The H.264 encoder, when that is what we send.
    h264: Option<H264Encoder>,
    /// Back to the capture thread once encoded.
    recycle: Option<Sender<RgbImage>>,
}

impl Sending {
    fn run(mut self, video: Receiver<CapturedFrame>, text: Receiver<String>, woken: Receiver<()>) {
        let _guard = self.shared.shutdown.crash_guard("sender");
        if let Err(reason) = self.send(&video, &text, &woken) {
            self.shared.shutdown.end(reason);
        }
        let _ = self.stream.shutdown(SocketShutdown::Write);
    }

    fn send(
        &mut self,
        video: &Receiver<CapturedFrame>,
        text: &Receiver<String>,
        woken: &Receiver<()>,
    ) -> Result<(), EndReason> {
        let mut text = text.clone();
        loop {
            if let Some(reason) = self.shared.shutdown.reason() {
                // A hang-up queues Bye; anything else just closes.
                self.shared.with(|c| c.close(reason))?;
                return self.write_pending();
            }
            let now = Instant::now();
            let wait = self
                .shared
                .with(|c| c.poll_timeout())?
                .map_or(POLL, |t| t.saturating_duration_since(now))
                .min(POLL);
            select! {
                recv(video) -> frame => if let Ok(frame) = frame {
                    self.send_frame(frame)?;
                },
                recv(text) -> line => match line {
                    // The main thread checked it; a refusal changes nothing.
                    Ok(line) => {
                        let _ = self.shared.with(|c| c.send_text(&line))?;
                    }
                    // Nobody types any more: no longer asked.
                    Err(_) => text = crossbeam_channel::never(),
                },
                recv(woken) -> _ => {},
                default(wait) => {},
            }
            self.shared.with(|c| c.handle_timeout(Instant::now()))?;
            self.write_pending()?;
        }
    }

    fn send_frame(&mut self, frame: CapturedFrame) -> Result<(), EndReason> {
        let paused = self.counters.video_paused.load(Ordering::Relaxed);
        let confirmed = self.counters.confirmed.load(Ordering::Relaxed);
        let (keyframe_wanted, may_send) = self.shared.with(|c| {
            if confirmed {
                c.confirm();
            }
            c.set_paused(paused);
            (c.take_keyframe_wanted(), c.may_send_video())
        })?;
        if let Some(encoder) = self.h264.as_mut().filter(|_| keyframe_wanted) {
            encoder.force_keyframe();
        }
        // Not a frame of the camera before our person said yes.
        if paused || !may_send {
            // A resumed picture starts from a keyframe.
            if let Some(encoder) = self.h264.as_mut() {
                encoder.force_keyframe();
            }
            return Ok(());
        }
        // A frame that would only wait behind what is on its way (a link
        // that got thinner or stalled) is dropped before the encoder: the
        // next one will be fresher. JPEG frames stand alone, so a too-thin
        // link also spaces them out; H.264's own rate control spreads bits
        // over frames.
        let now = Instant::now();
        let link_free = self.rate.on_frame_captured(link_sample(&self.stream), now);
        if !link_free || (self.h264.is_none() && !self.rate.ready(now)) {
            Counters::add(&self.counters.rate_skipped, 1);
            return Ok(());
        }
        let (width, height) = self.size_for_link(&frame.image);
        let (image, camera_jpeg) = if (width, height) != (frame.image.width, frame.image.height) {
            self.scaler
                .scale(&frame.image, width, height, &mut self.scaled)
                .map_err(encoding)?;
            (&self.scaled, None)
        } else {
            (&*frame.image, frame.jpeg.as_deref().map(Vec::as_slice))
        };
        let Some((format, keyframe, quality, encode_us)) = encode(
            image,
            camera_jpeg,
            &mut self.h264,
            &self.rate,
            self.fps,
            &mut self.jpeg,
        )?
        else {
            Counters::add(&self.counters.rate_skipped, 1);
            return Ok(());
        };
        // Unless the self-view still shows it, the capture thread reuses it.
        if let (Ok(image), Some(recycle)) = (Arc::try_unwrap(frame.image), &self.recycle) {
            let _ = recycle.try_send(image);
        }
        let sent = Frame {
            seq: frame.seq,
            capture_us: frame.capture_us,
            width,
            height,
            format,
            keyframe,
            quality,
            encode_us,
            data: std::mem::take(&mut self.jpeg),
        };
        self.jpeg = self.shared.with(|c| c.send_frame(sent))??;
        self.write_pending()?;
        self.rate
            .on_frame_sent(self.jpeg.len(), link_sample(&self.stream), Instant::now());
        Counters::add(&self.counters.frames_sent, 1);
        Counters::set(&self.counters.quality, quality.into());
        let h264 = format == VideoFormat::H264;
        self.counters.sending_h264.store(h264, Ordering::Relaxed);
        if let Some(qp) = self
            .h264
            .as_mut()
            .filter(|_| h264)
            .and_then(|e| e.last_qp())
        {
            Counters::set(&self.counters.quantizer, qp.into());
        }
        Counters::set(&self.counters.sent_width, width.into());
        Counters::set(&self.counters.sent_height, height.into());
        let capacity_kbps = self.rate.capacity().map_or(0.0, |c| c * 8.0 / 1000.0);
        Counters::set(&self.counters.link_kbps, capacity_kbps as u64);
        Ok(())
    }

    /// The size to send `image` at: its own, or smaller when the link
    /// cannot carry it at a decent quality.
    fn size_for_link(&mut self, image: &RgbImage) -> (u32, u32) {
        let bits_per_pixel = match self.h264 {
            Some(_) => H264_BITS_PER_PIXEL,
            None => JPEG_BITS_PER_PIXEL,
        };
        let (w, h) = (image.width, image.height);
        // A source whose size changed gets a ladder of its own (a rung
        // must never be larger than the picture).
        let ladder = match &mut self.ladder {
            Some(ladder) if ladder.full_size() == (w, h) => ladder,
            slot => slot.insert(SizeLadder::new(w, h, self.fps, bits_per_pixel)),
        };
        ladder.update(self.rate.bitrate(), Instant::now());
        ladder.size()
    }

    /// Writes everything the connection has queued. The socket's write
    /// timeout is [`POLL`], so the shutdown flag is seen: a hang-up gets
    /// [`LINGER`] to finish the message in flight and say Bye; a call that
    /// ended otherwise (a peer that stopped reading, say) stops at once.
    fn write_pending(&mut self) -> Result<(), EndReason> {
        let mut out = std::mem::take(&mut self.out);
        self.shared.with(|c| c.take_outgoing(&mut out))?;
        let result = self.write_all(&out);
        self.out = out;
        result
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), EndReason> {
        let mut written = 0;
        let mut give_up = None;
        while let Some(rest) = bytes.get(written..).filter(|r| !r.is_empty()) {
            match self.stream.write(rest) {
                Ok(0) => return Err(EndReason::ConnectionLost("the socket took nothing".into())),
                Ok(n) => written += n,
                Err(e) if is_timeout(&e) => {
                    let Some(reason) = self.shared.shutdown.reason() else {
                        continue;
                    };
                    let now = Instant::now();
                    if reason != EndReason::HungUp || *give_up.get_or_insert(now + LINGER) <= now {
                        break;
                    }
                }
                Err(e) => {
                    return Err(match e.kind() {
                        // The peer went away (killed, unplugged): the call is lost.
                        io::ErrorKind::ConnectionReset
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::ConnectionAborted => {
                            EndReason::ConnectionLost(e.to_string())
                        }
                        _ => EndReason::Network(format!("cannot send: {e}")),
                    });
                }
            }
        }
        Counters::add(&self.counters.bytes_sent, written as u64);
        Ok(())
    }
}

/// Encodes `image` into `out` (the camera's own JPEG, when given and it
/// fits the link, goes as it is): (format, keyframe, quality, encode_us),
/// or None when the encoder had nothing to send.
fn encode(
    image: &RgbImage,
    camera_jpeg: Option<&[u8]>,
    h264: &mut Option<H264Encoder>,
    rate: &RateController,
    fps: u32,
    out: &mut Vec<u8>,
) -> Result<Option<(VideoFormat, bool, u8, u32)>, EndReason> {
    let start = Instant::now();
    let (format, keyframe, quality) = match h264 {
        Some(encoder) => {
            // The encoder's target follows the measured link (ramping up
            // at the start of a call), up to what the picture needs.
            let pixels_per_s = f64::from(image.width * image.height) * f64::from(fps);
            let enough = pixels_per_s * H264_BITS_PER_PIXEL_ENOUGH;
            encoder.set_bitrate(rate.target_bitrate().min(enough) as u32);
            let keyframe = encoder.encode(image, out).map_err(encoding)?;
            if out.is_empty() {
                return Ok(None);
            }
            (VideoFormat::H264, keyframe, H264_QUALITY)
        }
        None => {
            // The camera's own JPEG goes as is while it fits the link; only
            // a frame that must shrink is encoded again.
            match camera_jpeg.filter(|j| rate.frame_budget().is_none_or(|b| j.len() as f64 <= b)) {
                Some(camera_jpeg) => {
                    out.clear();
                    out.extend_from_slice(camera_jpeg);
                    (VideoFormat::Jpeg, true, CAMERA_QUALITY)
                }
                None => {
                    let quality = rate.quality();
                    encode_jpeg(image, quality, out).map_err(encoding)?;
                    (VideoFormat::Jpeg, true, quality)
                }
            }
        }
    };
    let encode_us = if quality == CAMERA_QUALITY {
        0
    } else {
        start.elapsed().as_micros().clamp(1, u32::MAX.into()) as u32
    };
    Ok(Some((format, keyframe, quality, encode_us)))
}

fn encoding(e: CodecError) -> EndReason {
    EndReason::Encoding(e.to_string())
}

/// The kernel's view of the connection (Linux TCP_INFO), for the rate
/// controller. None where unavailable.
#[cfg(target_os = "linux")]
fn link_sample(stream: &TcpStream) -> Option<LinkSample> {
    use std::os::fd::AsRawFd;
    // SAFETY: tcp_info is plain integers, valid when zeroed; the kernel
    // writes at most `len` bytes into it and reports how many.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(LinkSample {
        delivery_rate: info.tcpi_delivery_rate,
        srtt_us: info.tcpi_rtt,
        min_rtt_us: info.tcpi_min_rtt,
        bytes_acked: info.tcpi_bytes_acked,
        notsent_bytes: info.tcpi_notsent_bytes,
        in_flight_bytes: info.tcpi_unacked.saturating_mul(info.tcpi_snd_mss),
    })
}

#[cfg(not(target_os = "linux"))]
fn link_sample(_stream: &TcpStream) -> Option<LinkSample> {
    None
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

struct Receiving {
    stream: TcpStream,
    shared: Shared,
    counters: Arc<Counters>,
    /// Tells the sender the connection has bytes to send (a Pong).
    wake: Sender<()>,
    /// The H.264 decoder, made at the first H.264 frame.
    h264: Option<H264Decoder>,
    remote: Latest<RemoteFrame>,
    /// Pixel buffers the main thread is done with.
    spare: Receiver<Vec<u32>>,
    /// The peer's typed lines, to the main thread.
    text: Sender<String>,
}

impl Receiving {
    fn run(mut self) {
        let _guard = self.shared.shutdown.crash_guard("receiver");
        if let Err(reason) = self.receive() {
            self.shared.shutdown.end(reason);
        }
    }

    fn receive(&mut self) -> Result<(), EndReason> {
        let mut buf = vec![0u8; READ_CHUNK];
        let mut linger_until = None;
        let mut frames = Vec::new();
        loop {
            // Once we hung up, read on until the peer closes too (or LINGER
            // passes): closing with unread bytes would reset the connection,
            // and a reset makes the peer's kernel drop our Bye.
            if let Some(reason) = self.shared.shutdown.reason() {
                let now = Instant::now();
                if reason != EndReason::HungUp || now >= *linger_until.get_or_insert(now + LINGER) {
                    return Ok(());
                }
            }
            let read = self.stream.read(&mut buf);
            let now = Instant::now();
            if matches!(read, Ok(0)) && self.shared.shutdown.is_ended() {
                return Ok(());
            }
            let wake = self.shared.with(|c| {
                match &read {
                    Ok(0) => c.handle_closed(),
                    Ok(n) => c.handle_bytes(now, buf.get(..*n).unwrap_or_default()),
                    Err(e) if is_timeout(e) => {}
                    Err(e) => c.close(EndReason::ConnectionLost(e.to_string())),
                }
                c.handle_timeout(now);
                while let Some(event) = c.poll_event() {
                    match event {
                        Event::Frame(mut frame) => {
                            frame.capture_us = c.to_local_us(frame.capture_us);
                            frames.push(frame);
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
                        Event::Connected(_) | Event::Accepted | Event::Ended(_) => {}
                    }
                }
                c.has_outgoing()
            })?;
            if wake {
                let _ = self.wake.try_send(());
            }
            self.show(&mut frames)?;
        }
    }

    /// Decodes what arrived together and shows the newest. Every H.264
    /// frame is decoded, in order (each is a reference for the next), but
    /// only the newest is converted to pixels; of JPEG frames only the
    /// newest is decoded.
    fn show(&mut self, frames: &mut Vec<Frame>) -> Result<(), EndReason> {
        let count = frames.len();
        for (n, frame) in frames.drain(..).enumerate() {
            // A hang-up does not wait for the rest of a batch.
            if self.shared.shutdown.is_ended() {
                break;
            }
            let newest = n + 1 == count;
            if !newest && frame.format == VideoFormat::Jpeg {
                Counters::add(&self.counters.receive_skipped, 1);
                continue;
            }
            let mut pixels = self.spare.try_recv().unwrap_or_default();
            let decoded = match frame.format {
                VideoFormat::Jpeg => {
                    decode_jpeg_0rgb(&frame.data, frame.width, frame.height, &mut pixels)
                        .map(|()| true)
                        .map_err(|e| EndReason::Protocol(format!("bad video from peer: {e}")))
                }
                VideoFormat::H264 => {
                    let decoder = match &mut self.h264 {
                        Some(decoder) => decoder,
                        slot => slot.insert(
                            H264Decoder::new().map_err(|e| EndReason::Protocol(e.to_string()))?,
                        ),
                    };
                    let out = newest.then_some(&mut pixels);
                    match decoder.decode_0rgb(&frame.data, frame.width, frame.height, out) {
                        Ok(shown) => {
                            self.shared.with(|c| c.picture_ok())?;
                            Ok(shown && newest)
                        }
                        Err(e) => {
                            // Ask for a keyframe; too many errors end the call.
                            self.shared.with(|c| c.picture_lost(&e.to_string()))?;
                            Ok(false)
                        }
                    }
                }
            };
            if !decoded? {
                if !newest {
                    Counters::add(&self.counters.receive_skipped, 1);
                }
                continue;
            }
            self.remote.put(RemoteFrame {
                seq: frame.seq,
                capture_us: frame.capture_us,
                decoded_us: unix_us(),
                bytes: frame.data.len() as u64,
                format: frame.format,
                quality: frame.quality,
                keyframe: frame.keyframe,
                encode_us: frame.encode_us,
                width: frame.width,
                height: frame.height,
                pixels,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! A real callee (door, answer and Link on a socket) facing a caller
    //! that completes the handshake and then sends video that does not
    //! decode as announced: the receiver thread ends the call, with why.
    use super::*;
    use crate::net::Us;
    use crate::net::connection::Role;
    use crate::net::connection::tests::{assert_protocol, key};
    use crate::wire::Intro;
    use std::net::{TcpListener, TcpStream};

    fn us(name: &str, width: u32, height: u32) -> Us {
        Us {
            intro: Intro::new(name, width, height),
            key: key(),
        }
    }

    /// Runs a callee; the caller sends `frame` once the call is on. Returns
    /// why the callee's call ended.
    fn callee_ends_with(frame: Frame) -> EndReason {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let callee = thread::spawn(move || {
            let (stream, from) = listener.accept().unwrap();
            let mut peer = Peer::new(stream, from, Role::Callee, &us("callee", 0, 0)).unwrap();
            peer.wait_for(|e| matches!(e, Event::Connected(_)), &mut || true)
                .unwrap();
            peer.conn.answer(Instant::now(), true);
            let shutdown = Shutdown::default();
            let (frames, remote) = crate::handoff::latest();
            let (_spare_tx, spare) = bounded(1);
            let out = VideoOut { frames, spare };
            let (_typed, outgoing) = bounded(1);
            let (incoming, _said) = bounded(1);
            let pipes = Pipes {
                video: None,
                remote: out,
                text: TextLink { outgoing, incoming },
            };
            let link = Link::start(
                peer,
                pipes,
                30,
                VideoFormat::Jpeg,
                shutdown.clone(),
                Arc::default(),
            )
            .unwrap();
            let guard = Instant::now() + Duration::from_secs(20);
            while !shutdown.is_ended() && Instant::now() < guard {
                let _ = remote.recv_timeout(POLL);
            }
            link.join();
            shutdown.reason()
        });
        let stream = TcpStream::connect(addr).unwrap();
        let mut caller = Peer::new(stream, addr, Role::Caller, &us("hostile", 640, 480)).unwrap();
        caller
            .wait_for(|e| *e == Event::Accepted, &mut || true)
            .unwrap();
        caller.conn.confirm();
        caller.conn.send_frame(frame).unwrap();
        caller.flush(Instant::now() + Duration::from_secs(5));
        let reason = callee.join().unwrap().expect("the call did not end");
        drop(caller);
        reason
    }

    fn jpeg_frame(width: u32, height: u32, data: Vec<u8>) -> Frame {
        Frame {
            seq: 1,
            capture_us: 1,
            width,
            height,
            format: VideoFormat::Jpeg,
            keyframe: true,
            quality: 75,
            encode_us: 0,
            data,
        }
    }

    #[test]
    fn a_frame_whose_size_disagrees_with_its_jpeg_ends_the_call() {
        let mut jpeg = Vec::new();
        let image = RgbImage {
            width: 32,
            height: 32,
            data: vec![90; 32 * 32 * 3],
        };
        encode_jpeg(&image, 80, &mut jpeg).unwrap();
        assert_protocol(
            callee_ends_with(jpeg_frame(640, 480, jpeg)),
            "expected 640x480",
        );
    }

    #[test]
    fn a_corrupt_jpeg_ends_the_call() {
        let junk = (0..5000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
            .collect();
        assert_protocol(
            callee_ends_with(jpeg_frame(64, 64, junk)),
            "bad video from peer",
        );
    }
}
