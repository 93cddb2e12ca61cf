//! The two threads of a call's connection. The sender encodes the newest
//! captured frame when the socket can take it and writes it, with Pings and
//! Pongs in between; the receiver reassembles messages from the byte
//! stream, answers Pings, tracks the peer's clock and liveness, and decodes
//! the newest frame for the main thread (latest wins both ways).

use std::io::{self, Read, Write};
use std::net::{Shutdown as SocketShutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender, bounded, select};

use super::Peer;
use super::rate::{LinkSample, RateController};
use crate::capture::CapturedFrame;
use crate::codec::h264::{H264Decoder, H264Encoder};
use crate::codec::{RgbImage, decode_jpeg_0rgb, encode_jpeg};
use crate::handoff::Latest;
use crate::secure::{Opener, Sealer};
use crate::session::{EndReason, Shutdown, unix_us};
use crate::stats::Counters;
use crate::wire::{
    self, ByeReason, ClockSync, Frame, FrameDecoder, Heartbeat, MAX_MESSAGE_LEN, Message,
    VideoFormat,
};

/// What the receiver asks of the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    /// Answer a Ping sent at this time (peer's clock).
    Pong(u64),
    /// Our H.264 decoder lost the picture: ask the peer for a keyframe.
    RequestKeyframe,
    /// The peer asked us for a keyframe.
    SendKeyframe,
}

/// H.264 decode failures in a row after which the call ends.
const MAX_DECODE_ERRORS: u32 = 10;

/// How often a blocked thread looks at the shutdown flag.
const POLL: Duration = Duration::from_millis(100);
/// How long a hanging-up side may still take to finish the message in
/// flight and say Bye over a slow link, and then wait for the peer to close.
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
const H264_BITS_PER_PIXEL: f64 = 0.15;

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

impl Link {
    /// Starts both threads on `stream`. `video` is None for a side that only
    /// watches (the loopback viewer).
    pub fn start(
        peer: Peer,
        video: Option<VideoIn>,
        fps: u32,
        format: VideoFormat,
        remote: VideoOut,
        shutdown: Shutdown,
        counters: Arc<Counters>,
    ) -> Result<Link> {
        let (control_tx, control_rx) = bounded(16);
        let h264 = match format {
            VideoFormat::H264 if video.is_some() => Some(H264Encoder::new(fps)?),
            _ => None,
        };
        let Peer {
            stream,
            decoder,
            sealer,
            opener,
            ..
        } = peer;
        let sending = Sending {
            stream: stream.try_clone()?,
            sealer,
            plain: Vec::new(),
            shutdown: shutdown.clone(),
            counters: counters.clone(),
            out: Vec::new(),
            rate: RateController::new(fps, START_QUALITY),
            fps,
            h264,
            paused: false,
            recycle: video.as_ref().map(|v| v.recycle.clone()),
        };
        let video = video.map_or_else(crossbeam_channel::never, |v| v.frames);
        let sender = thread::Builder::new()
            .name("sender".into())
            .spawn(move || sending.run(video, control_rx))
            .context("cannot start the sender thread")?;
        let receiving = Receiving {
            stream: stream.try_clone()?,
            decoder,
            opener,
            plain: Vec::new(),
            shutdown,
            counters,
            control: control_tx,
            h264: None,
            awaiting_keyframe: false,
            decode_errors: 0,
            remote: remote.frames,
            spare: remote.spare,
            clock: ClockSync::default(),
            last_seq: None,
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

    /// Waits for both threads (after the call was ended) and closes the socket.
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
    sealer: Sealer,
    /// Reused buffer for a message before encryption.
    plain: Vec<u8>,
    shutdown: Shutdown,
    counters: Arc<Counters>,
    /// Reused buffer for the encoded message.
    out: Vec<u8>,
    rate: RateController,
    fps: u32,
    /// The H.264 encoder, when that is what we send.
    h264: Option<H264Encoder>,
    /// Whether the peer was last told our video is paused.
    paused: bool,
    /// Back to the capture thread once encoded.
    recycle: Option<Sender<RgbImage>>,
}

impl Sending {
    fn run(mut self, video: Receiver<CapturedFrame>, control: Receiver<Control>) {
        if let Err(e) = self.stream.set_write_timeout(Some(POLL)) {
            self.shutdown.end(EndReason::Network(e.to_string()));
        }
        let mut heartbeat = Heartbeat::new(Instant::now());
        let mut jpeg = Vec::new();
        let result = loop {
            if self.shutdown.is_ended() {
                break self.say_bye();
            }
            let wait = heartbeat
                .next_ping()
                .saturating_duration_since(Instant::now())
                .min(POLL);
            let sent = select! {
                recv(control) -> request => match request {
                    // Stamped as late as possible: the peer's clock estimate
                    // assumes the Pong leaves when stamped.
                    Ok(Control::Pong(ping_sent_us)) => self.send(&Message::Pong { ping_sent_us, peer_us: unix_us() }),
                    Ok(Control::RequestKeyframe) => self.send(&Message::KeyframeRequest),
                    Ok(Control::SendKeyframe) => {
                        if let Some(encoder) = &mut self.h264 {
                            encoder.force_keyframe();
                        }
                        Ok(())
                    }
                    Err(_) => Ok(()),
                },
                recv(video) -> frame => match frame {
                    Ok(frame) => self.send_frame(frame, &mut jpeg),
                    Err(_) => Ok(()),
                },
                default(wait) => Ok(()),
            };
            let pinged = if heartbeat.poll_ping(Instant::now()) {
                self.send(&Message::Ping { sent_us: unix_us() })
            } else {
                Ok(())
            };
            if let Err(e) = sent.and(pinged) {
                break Err(e);
            }
        };
        if let Err(e) = result {
            self.shutdown.end(match e.kind() {
                // The peer went away (killed, unplugged): the call is lost.
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionAborted => EndReason::ConnectionLost(e.to_string()),
                _ => EndReason::Network(format!("cannot send: {e}")),
            });
        }
        let _ = self.stream.shutdown(SocketShutdown::Write);
    }

    fn send_frame(&mut self, frame: CapturedFrame, jpeg: &mut Vec<u8>) -> io::Result<()> {
        let paused = self.counters.video_paused.load(Ordering::Relaxed);
        if paused != self.paused {
            self.paused = paused;
            self.send(&Message::VideoPaused { paused })?;
            // A resumed picture starts from a keyframe.
            if let Some(encoder) = self.h264.as_mut().filter(|_| !paused) {
                encoder.force_keyframe();
            }
        }
        if paused {
            return Ok(());
        }
        if !self.rate.ready(Instant::now()) {
            Counters::add(&self.counters.rate_skipped, 1);
            return Ok(());
        }
        let start = Instant::now();
        let (format, keyframe, quality) = match &mut self.h264 {
            Some(encoder) => {
                // The encoder's target follows the measured link, up to
                // what the picture needs.
                let pixels_per_s =
                    f64::from(frame.image.width * frame.image.height) * f64::from(self.fps);
                let enough = pixels_per_s * H264_BITS_PER_PIXEL;
                let link = self
                    .rate
                    .frame_budget()
                    .map_or(enough, |b| b * 8.0 * f64::from(self.fps));
                encoder.set_bitrate(link.min(enough) as u32);
                let keyframe = encoder
                    .encode(&frame.image, jpeg)
                    .map_err(io::Error::other)?;
                if jpeg.is_empty() {
                    Counters::add(&self.counters.rate_skipped, 1);
                    return Ok(());
                }
                (VideoFormat::H264, keyframe, H264_QUALITY)
            }
            // The camera's own JPEG goes as is while it fits the link; only
            // a frame that must shrink is encoded again.
            None => match frame
                .jpeg
                .as_deref()
                .filter(|j| self.rate.frame_budget().is_none_or(|b| j.len() as f64 <= b))
            {
                Some(camera_jpeg) => {
                    jpeg.clear();
                    jpeg.extend_from_slice(camera_jpeg);
                    (VideoFormat::Jpeg, true, CAMERA_QUALITY)
                }
                None => {
                    let quality = self.rate.quality();
                    encode_jpeg(&frame.image, quality, jpeg).map_err(io::Error::other)?;
                    (VideoFormat::Jpeg, true, quality)
                }
            },
        };
        let encode_us = if quality == CAMERA_QUALITY {
            0
        } else {
            start.elapsed().as_micros().clamp(1, u32::MAX.into()) as u32
        };
        let (width, height) = (frame.image.width, frame.image.height);
        // Unless the self-view still shows it, the capture thread reuses it.
        if let (Ok(image), Some(recycle)) = (Arc::try_unwrap(frame.image), &self.recycle) {
            let _ = recycle.try_send(image);
        }
        let msg = Message::Frame(Frame {
            seq: frame.seq,
            capture_us: frame.capture_us,
            width,
            height,
            format,
            keyframe,
            quality,
            encode_us,
            data: std::mem::take(jpeg),
        });
        let sent = self.send(&msg);
        if let Message::Frame(f) = msg {
            *jpeg = f.data;
        }
        sent?;
        self.rate
            .on_frame_sent(jpeg.len(), link_sample(&self.stream), Instant::now());
        Counters::add(&self.counters.frames_sent, 1);
        Counters::set(&self.counters.quality, quality.into());
        let capacity_kbps = self.rate.capacity().map_or(0.0, |c| c * 8.0 / 1000.0);
        Counters::set(&self.counters.link_kbps, capacity_kbps as u64);
        Ok(())
    }

    fn say_bye(&mut self) -> io::Result<()> {
        if self.shutdown.reason() == Some(EndReason::HungUp) {
            self.send(&Message::Bye {
                reason: ByeReason::HungUp,
            })?;
        }
        Ok(())
    }

    /// Writes one message whole. The socket has a short write timeout so the
    /// shutdown flag is seen; once the call is over, a message in flight gets
    /// [`LINGER`] to finish.
    fn send(&mut self, msg: &Message) -> io::Result<()> {
        self.plain.clear();
        wire::encode_payload(msg, MAX_MESSAGE_LEN, &mut self.plain).map_err(io::Error::other)?;
        self.out.clear();
        self.out.extend_from_slice(&[0; wire::LEN_PREFIX]);
        self.sealer
            .seal(&self.plain, &mut self.out)
            .map_err(io::Error::other)?;
        let sealed_len = (self.out.len() - wire::LEN_PREFIX) as u64;
        self.out[..wire::LEN_PREFIX].copy_from_slice(&sealed_len.to_le_bytes());
        let mut written = 0;
        let mut give_up = None;
        while let Some(rest) = self.out.get(written..).filter(|r| !r.is_empty()) {
            match self.stream.write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if is_timeout(&e) => {
                    if self.shutdown.is_ended()
                        && *give_up.get_or_insert(Instant::now() + LINGER) <= Instant::now()
                    {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Counters::add(&self.counters.bytes_sent, written as u64);
        Ok(())
    }
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
    decoder: FrameDecoder,
    opener: Opener,
    /// Reused buffer for a decrypted message.
    plain: Vec<u8>,
    shutdown: Shutdown,
    counters: Arc<Counters>,
    /// Requests for the sender: Pongs and keyframes.
    control: Sender<Control>,
    /// The H.264 decoder, made at the first H.264 frame.
    h264: Option<H264Decoder>,
    /// After a decode error: P-frames are useless until a keyframe comes.
    awaiting_keyframe: bool,
    /// Decode errors in a row.
    decode_errors: u32,
    remote: Latest<RemoteFrame>,
    /// Pixel buffers the main thread is done with.
    spare: Receiver<Vec<u32>>,
    clock: ClockSync,
    last_seq: Option<u64>,
}

impl Receiving {
    fn run(mut self) {
        if let Err(e) = self.receive() {
            self.shutdown.end(e);
        }
    }

    fn receive(&mut self) -> Result<(), EndReason> {
        self.stream
            .set_read_timeout(Some(POLL))
            .map_err(|e| EndReason::Network(e.to_string()))?;
        let mut heartbeat = Heartbeat::new(Instant::now());
        let mut buf = vec![0u8; READ_CHUNK];
        let mut linger_until = None;
        loop {
            self.handle_buffered()?;
            // Once the call is over, read on until the peer closes too (or
            // LINGER passes): closing with unread bytes would reset the
            // connection, and a reset makes the peer's kernel drop our Bye.
            if self.shutdown.is_ended()
                && Instant::now() >= *linger_until.get_or_insert(Instant::now() + LINGER)
            {
                return Ok(());
            }
            match self.stream.read(&mut buf) {
                Ok(0) if self.shutdown.is_ended() => return Ok(()),
                Ok(0) => {
                    // Cut mid-message (a killed peer): lost, not malformed.
                    self.decoder
                        .finish()
                        .map_err(|e| EndReason::ConnectionLost(e.to_string()))?;
                    return Err(EndReason::ConnectionLost(
                        "the peer closed the connection".into(),
                    ));
                }
                Ok(n) => {
                    heartbeat.handle_received(Instant::now());
                    self.decoder.extend(buf.get(..n).unwrap_or_default());
                }
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(EndReason::ConnectionLost(e.to_string())),
            }
            if heartbeat.is_idle(Instant::now()) {
                return Err(EndReason::PeerNotResponding);
            }
        }
    }

    /// Handles every complete message; of several frames, decodes the newest.
    fn handle_buffered(&mut self) -> Result<(), EndReason> {
        let mut newest: Option<Frame> = None;
        let mut decoded: Option<RemoteFrame> = None;
        while let Some(payload) = self
            .decoder
            .next_payload()
            .map_err(|e| EndReason::Protocol(e.to_string()))?
        {
            self.opener
                .open(payload, &mut self.plain)
                .map_err(|e| EndReason::Protocol(e.to_string()))?;
            match wire::decode_message(&self.plain)
                .map_err(|e| EndReason::Protocol(e.to_string()))?
            {
                // Every H.264 frame is decoded, in order: each one is a
                // reference for the next. Of JPEG frames only the newest is.
                Message::Frame(frame) if frame.format == VideoFormat::H264 => {
                    if let Some(picture) = self.decode_h264(frame)?
                        && decoded.replace(picture).is_some()
                    {
                        Counters::add(&self.counters.receive_skipped, 1);
                    }
                }
                Message::Frame(frame) => {
                    if newest.replace(frame).is_some() {
                        Counters::add(&self.counters.receive_skipped, 1);
                    }
                }
                Message::KeyframeRequest => {
                    let _ = self.control.try_send(Control::SendKeyframe);
                }
                Message::Ping { sent_us } => {
                    // A full queue of Pings means the sender is stuck; the peer
                    // will see a missing Pong, nothing worse.
                    let _ = self.control.try_send(Control::Pong(sent_us));
                }
                Message::Pong {
                    ping_sent_us,
                    peer_us,
                } => {
                    self.clock.handle_pong(ping_sent_us, peer_us, unix_us());
                    if let Some(rtt) = self.clock.rtt_us() {
                        self.counters
                            .rtt_us
                            .store(rtt, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                Message::Bye {
                    reason: ByeReason::HungUp,
                } => return Err(EndReason::PeerHungUp),
                Message::Answer { .. } => {
                    return Err(EndReason::Protocol(
                        "peer answered a call already in progress".into(),
                    ));
                }
                Message::VideoPaused { paused } => {
                    self.counters
                        .peer_video_paused
                        .store(paused, Ordering::Relaxed);
                }
            }
        }
        if let Some(picture) = decoded {
            self.remote.put(picture);
        }
        match newest {
            Some(frame) => self.show(frame),
            None => Ok(()),
        }
    }

    /// Decodes one H.264 frame. A decode error asks the peer for a keyframe
    /// and skips P-frames until it comes; repeated errors end the call.
    fn decode_h264(&mut self, frame: Frame) -> Result<Option<RemoteFrame>, EndReason> {
        if self.awaiting_keyframe && !frame.keyframe {
            return Ok(None);
        }
        let decoder = match &mut self.h264 {
            Some(decoder) => decoder,
            slot => {
                slot.insert(H264Decoder::new().map_err(|e| EndReason::Protocol(e.to_string()))?)
            }
        };
        let mut pixels = self.spare.try_recv().unwrap_or_default();
        match decoder.decode_0rgb(&frame.data, frame.width, frame.height, &mut pixels) {
            Ok(true) => {
                self.decode_errors = 0;
                self.awaiting_keyframe = false;
                Ok(Some(self.remote_frame(&frame, pixels)))
            }
            Ok(false) => Ok(None),
            Err(e) => {
                self.decode_errors += 1;
                if self.decode_errors >= MAX_DECODE_ERRORS {
                    return Err(EndReason::Protocol(format!("bad video from peer: {e}")));
                }
                self.awaiting_keyframe = true;
                let _ = self.control.try_send(Control::RequestKeyframe);
                Ok(None)
            }
        }
    }

    fn remote_frame(&self, frame: &Frame, pixels: Vec<u32>) -> RemoteFrame {
        RemoteFrame {
            seq: frame.seq,
            capture_us: self.clock.to_local_us(frame.capture_us),
            decoded_us: unix_us(),
            bytes: frame.data.len() as u64,
            format: frame.format,
            quality: frame.quality,
            encode_us: frame.encode_us,
            width: frame.width,
            height: frame.height,
            pixels,
        }
    }

    fn show(&mut self, frame: Frame) -> Result<(), EndReason> {
        if self.last_seq.is_some_and(|last| frame.seq <= last) {
            return Ok(());
        }
        self.last_seq = Some(frame.seq);
        let mut pixels = self.spare.try_recv().unwrap_or_default();
        decode_jpeg_0rgb(&frame.data, frame.width, frame.height, &mut pixels)
            .map_err(|e| EndReason::Protocol(format!("bad video from peer: {e}")))?;
        let picture = self.remote_frame(&frame, pixels);
        self.remote.put(picture);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! A real callee (handshake and Link on a socket) facing a caller that
    //! completes the encrypted handshake and then misbehaves.
    use super::*;
    use crate::net::handshake;
    use crate::wire::Intro;
    use std::net::TcpListener;

    /// Runs a callee; `misbehave` gets the handshaken caller. Returns why
    /// the callee's call ended.
    fn callee_ends_with(misbehave: impl FnOnce(&mut Peer)) -> EndReason {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let callee = thread::spawn(move || {
            let (stream, from) = listener.accept().unwrap();
            let peer = handshake(stream, from, &Intro::new("callee", 0, 0), false).unwrap();
            let shutdown = Shutdown::default();
            let (frames, remote) = crate::handoff::latest();
            let (_spare_tx, spare) = bounded(1);
            let out = VideoOut { frames, spare };
            let link = Link::start(
                peer,
                None,
                30,
                VideoFormat::Jpeg,
                out,
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
        let mut caller = handshake(stream, addr, &Intro::new("hostile", 0, 0), true).unwrap();
        misbehave(&mut caller);
        callee.join().unwrap().expect("the call did not end")
    }

    fn send_sealed(peer: &mut Peer, plain: &[u8], tamper: impl FnOnce(&mut Vec<u8>)) {
        let mut sealed = Vec::new();
        peer.sealer.seal(plain, &mut sealed).unwrap();
        tamper(&mut sealed);
        let mut out = Vec::new();
        wire::frame(&sealed, &mut out);
        peer.stream.write_all(&out).unwrap();
    }

    fn frame_message(width: u32, height: u32, data: Vec<u8>) -> Vec<u8> {
        let frame = Frame {
            seq: 1,
            capture_us: 1,
            width,
            height,
            format: VideoFormat::Jpeg,
            keyframe: true,
            quality: 75,
            encode_us: 0,
            data,
        };
        let mut plain = Vec::new();
        wire::encode_payload(&Message::Frame(frame), MAX_MESSAGE_LEN, &mut plain).unwrap();
        plain
    }

    fn assert_protocol(reason: EndReason, words: &str) {
        match reason {
            EndReason::Protocol(why) => assert!(why.contains(words), "{why}"),
            other => panic!("ended with {other:?}, expected a protocol error with {words:?}"),
        }
    }

    #[test]
    fn a_frame_whose_size_disagrees_with_its_jpeg_ends_the_call() {
        let mut jpeg = Vec::new();
        let image = crate::codec::RgbImage {
            width: 32,
            height: 32,
            data: vec![90; 32 * 32 * 3],
        };
        encode_jpeg(&image, 80, &mut jpeg).unwrap();
        let reason = callee_ends_with(|p| send_sealed(p, &frame_message(640, 480, jpeg), |_| {}));
        assert_protocol(reason, "expected 640x480");
    }

    #[test]
    fn a_corrupt_jpeg_ends_the_call() {
        let junk = (0..5000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
            .collect();
        let reason = callee_ends_with(|p| send_sealed(p, &frame_message(64, 64, junk), |_| {}));
        assert_protocol(reason, "bad video from peer");
    }

    #[test]
    fn an_unknown_message_ends_the_call() {
        let plain = [99u32.to_le_bytes().as_slice(), &[0; 12]].concat();
        let reason = callee_ends_with(|p| send_sealed(p, &plain, |_| {}));
        assert_protocol(reason, "malformed");
    }

    #[test]
    fn a_flipped_ciphertext_bit_ends_the_call() {
        let mut ping = Vec::new();
        wire::encode_payload(&Message::Ping { sent_us: 1 }, MAX_MESSAGE_LEN, &mut ping).unwrap();
        let reason = callee_ends_with(|p| send_sealed(p, &ping, |sealed| sealed[3] ^= 0x10));
        assert_protocol(reason, "does not decrypt");
    }

    #[test]
    fn a_length_over_the_cap_ends_the_call() {
        let over = crate::net::MAX_SEALED_LEN + 1;
        let reason = callee_ends_with(|p| p.stream.write_all(&over.to_le_bytes()).unwrap());
        assert_protocol(reason, "over the");
    }
}
