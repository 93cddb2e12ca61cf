//! One call from start to hang-up: the `listen`, `connect` and `loopback`
//! commands open the source and the screen, get a peer, start the capture,
//! sender and receiver threads, and run the main-thread loop (window or
//! headless) until someone hangs up; then everything stops in reverse and
//! the reason the call ended is returned.

use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use crossbeam_channel::{Receiver, bounded};

use crate::capture::CapturedFrame;
use crate::capture::{Capture, CaptureConfig, SourceInfo, SourceKind};
use crate::handoff::{Latest, latest};
use crate::net::link::{Link, RemoteFrame, VideoIn, VideoOut};
use crate::net::{self, Peer};
use crate::stats::{Counters, FrameRecord, StatsFile, StatusLine};
use crate::window::CallWindow;
use crate::wire::{self, Intro, Message, VideoFormat};

/// Now, in Unix microseconds (the unit of every timestamp on the wire).
pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Why a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// This side hung up (key, window closed, `--duration`).
    HungUp,
    /// The peer said Bye.
    PeerHungUp,
    /// The connection closed or broke without a Bye.
    ConnectionLost(String),
    /// Nothing from the peer for the idle timeout.
    PeerNotResponding,
    /// The peer sent something that is not valid vidchat.
    Protocol(String),
    /// Our socket failed.
    Network(String),
    /// The camera or file stopped working.
    SourceFailed(String),
}

impl EndReason {
    /// A hang-up by either person, as opposed to a failure.
    pub fn is_normal(&self) -> bool {
        matches!(self, EndReason::HungUp | EndReason::PeerHungUp)
    }
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndReason::HungUp => write!(f, "you hung up"),
            EndReason::PeerHungUp => write!(f, "peer hung up"),
            EndReason::ConnectionLost(why) => write!(f, "connection lost: {why}"),
            EndReason::PeerNotResponding => {
                write!(
                    f,
                    "peer not responding (nothing received for {} s)",
                    crate::wire::IDLE_TIMEOUT.as_secs()
                )
            }
            EndReason::Protocol(why) => write!(f, "{why}"),
            EndReason::Network(why) => write!(f, "network error: {why}"),
            EndReason::SourceFailed(why) => write!(f, "video source failed: {why}"),
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
}

/// What every call command shares, validated.
#[derive(Debug, Clone)]
pub struct CallOptions {
    pub capture: CaptureConfig,
    pub codec: CodecChoice,
    pub window: bool,
    pub duration: Option<Duration>,
    pub stats: Option<PathBuf>,
}

/// `--codec`: which video format to prefer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecChoice {
    /// H.264 up to 720p, except from a camera that gives MJPEG (passed
    /// through); MJPEG above.
    Auto,
    H264,
    Mjpeg,
}

/// Largest picture `auto` sends as H.264, in pixels: openh264 holds 30 fps
/// at 720p on a 2-core machine with both ends encoding, ~20 fps at 1080p.
const AUTO_H264_MAX_PIXELS: u32 = 1280 * 720;

impl CodecChoice {
    /// The formats we send, preferred first, for `source`. Every side also
    /// receives both.
    pub fn offer(self, source: Option<&SourceInfo>) -> Vec<VideoFormat> {
        use VideoFormat::{H264, Jpeg};
        let jpeg_first =
            source.is_some_and(|s| s.gives_jpeg || s.width * s.height > AUTO_H264_MAX_PIXELS);
        match self {
            CodecChoice::Auto if jpeg_first => vec![Jpeg, H264],
            CodecChoice::Auto | CodecChoice::H264 => vec![H264, Jpeg],
            CodecChoice::Mjpeg => vec![Jpeg],
        }
    }
}

/// Where received video goes: a window, or nowhere (counted only).
enum Screen {
    Window(Box<CallWindow>),
    Headless,
}

/// How long a window shows why the call ended before it closes.
const END_CARD: Duration = Duration::from_millis(1500);

impl Screen {
    fn open(options: &CallOptions, title: &str, card: &str) -> Result<Screen> {
        if !options.window {
            return Ok(Screen::Headless);
        }
        let (w, h) = (options.capture.width, options.capture.height);
        let window = CallWindow::open(title, w as usize, h as usize, card)?;
        Ok(Screen::Window(Box::new(window)))
    }

    /// Handles window events; false once the person closed it or hung up.
    fn keep_open(&mut self) -> bool {
        match self {
            Screen::Window(window) => window.pump(),
            Screen::Headless => true,
        }
    }

    /// Shows why the call ended for a moment, unless the person hung up.
    fn show_end(&mut self, reason: &EndReason) {
        let Screen::Window(window) = self else { return };
        if *reason == EndReason::HungUp {
            return;
        }
        window.set_card(Some(reason.to_string()));
        let until = Instant::now() + END_CARD;
        while Instant::now() < until && window.redraw().is_ok() && window.pump() {
            thread::sleep(Duration::from_millis(30));
        }
    }
}

fn host_name() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

fn our_intro(info: Option<&crate::capture::SourceInfo>, options: &CallOptions) -> Intro {
    let (w, h) = info.map_or((0, 0), |i| (i.width, i.height));
    Intro::new(&host_name(), w, h).with_codecs(&options.codec.offer(info))
}

/// How long a caller waits for the callee to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// "laptop (192.168.1.23:9999)", safe to print.
fn describe(peer: &Peer) -> String {
    let addr = std::net::SocketAddr::new(peer.addr.ip().to_canonical(), peer.addr.port());
    format!("{} ({addr})", peer.intro.display_name())
}

/// Asks the person whether to take the call: `--yes` takes it, as does a
/// listener with no terminal to ask on (a script); otherwise y/N.
fn take_call(peer: &Peer, yes: bool) -> bool {
    let question = format!("incoming call from {} - code: {}", describe(peer), peer.sas);
    if yes || !std::io::stdin().is_terminal() {
        eprintln!("{question} - accepted");
        return true;
    }
    eprint!("{question} - accept? [y/N] ");
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    matches!(answer.trim().to_lowercase().as_str(), "y" | "yes")
}

/// The caller's side of the answer: waits, and refuses to go on if declined.
fn await_answer(peer: &mut Peer) -> Result<()> {
    eprintln!(
        "connected to {} - code: {} - waiting for an answer",
        describe(peer),
        peer.sas
    );
    if !peer.await_answer(ANSWER_TIMEOUT)? {
        anyhow::bail!("call declined by {}", describe(peer));
    }
    Ok(())
}

/// `vidchat listen`: waits for a call, refusing what is not vidchat.
pub fn listen(
    bind: Option<IpAddr>,
    port: u16,
    yes: bool,
    options: &CallOptions,
) -> Result<EndReason> {
    let capture = Capture::open(options.capture.clone())?;
    let listener = net::bind(bind, port)?;
    let port = listener.local_addr()?.port();
    // Written, not println!: a closed stdout (`| head -1`) must not end the call.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "waiting for a call on port {port}; on the other machine, type one of:"
    );
    for hint in net::connect_hints(&listener) {
        let _ = writeln!(out, "    {hint}");
    }
    let _ = out.flush();
    drop(out);
    let waiting = format!("waiting for a call on port {port}");
    let mut screen = Screen::open(options, &format!("vidchat - {waiting}"), &waiting)?;
    let intro = our_intro(Some(&capture.info), options);
    let mut keep_waiting = || match &mut screen {
        Screen::Window(window) => window.redraw().is_ok() && window.pump(),
        Screen::Headless => true,
    };
    let peer = loop {
        let Some(mut peer) = net::accept_call(&listener, &intro, &mut keep_waiting)? else {
            return Ok(EndReason::HungUp);
        };
        let accepted = take_call(&peer, yes);
        match peer.send(&Message::Answer { accepted }) {
            Ok(()) if accepted => break peer,
            Ok(()) => eprintln!("declined the call from {}", describe(&peer)),
            Err(e) => eprintln!("call from {} dropped: {e:#}", describe(&peer)),
        }
    };
    drop(listener);
    run_call(peer, Some(capture), &mut screen, options, None)
}

/// `vidchat connect HOST:PORT`.
pub fn connect(target: &str, options: &CallOptions) -> Result<EndReason> {
    let capture = Capture::open(options.capture.clone())?;
    let connecting = format!("connecting to {target}");
    let mut screen = Screen::open(options, &format!("vidchat - {connecting}"), &connecting)?;
    let mut peer = net::connect(target, &our_intro(Some(&capture.info), options))?;
    await_answer(&mut peer)?;
    run_call(peer, Some(capture), &mut screen, options, None)
}

/// `vidchat loopback`: a call to yourself over 127.0.0.1, through the whole
/// path. A listening side on a helper thread sends the source; the main
/// thread connects to it and shows what arrives, with the same source as
/// the self-view.
pub fn loopback(options: &CallOptions) -> Result<EndReason> {
    let capture = match Capture::open(options.capture.clone()) {
        Err(e) if matches!(options.capture.kind, SourceKind::Camera { .. }) => {
            eprintln!("no camera ({e:#}); using the test pattern");
            Capture::open(CaptureConfig {
                kind: SourceKind::TestPattern,
                ..options.capture.clone()
            })?
        }
        other => other?,
    };
    eprintln!("loopback call with {}", capture.info.description);
    let listener = net::bind(Some(IpAddr::from([127, 0, 0, 1])), 0)?;
    let addr = listener.local_addr()?;
    let sender_intro = our_intro(Some(&capture.info), options);
    let fps = options.capture.fps;
    let codecs = options.codec.offer(Some(&capture.info));
    let (self_in, self_out) = latest();
    let sending_side = thread::Builder::new()
        .name("loopback-peer".into())
        .spawn(move || -> Result<EndReason> {
            let mut peer = net::accept_call(&listener, &sender_intro, &mut || true)?
                .ok_or_else(|| anyhow!("loopback listener stopped"))?;
            peer.send(&Message::Answer { accepted: true })?;
            let call = Call::start(peer, Some(capture), fps, &codecs, Some(self_in))?;
            while !call.shutdown.is_ended() {
                // This side only sends; the viewer sends no video.
                let _ = call.remote.recv_timeout(Duration::from_millis(100));
            }
            Ok(call.finish())
        })
        .context("cannot start the loopback peer")?;
    let mut screen = Screen::open(options, "vidchat - loopback", "connecting to yourself")?;
    let mut peer = net::connect(&addr.to_string(), &our_intro(None, options))?;
    await_answer(&mut peer)?;
    let ended = run_call(peer, None, &mut screen, options, Some(self_out));
    let peer_ended = sending_side
        .join()
        .map_err(|_| anyhow!("loopback peer panicked"))?;
    match (ended?, peer_ended?) {
        (EndReason::PeerHungUp, other) if !other.is_normal() => Ok(other),
        (ours, _) => Ok(ours),
    }
}

/// The threads of a running call.
struct Call {
    shutdown: Shutdown,
    counters: Arc<Counters>,
    remote: crossbeam_channel::Receiver<RemoteFrame>,
    /// Pixel buffers handed back to the receiver once shown.
    spare_pixels: crossbeam_channel::Sender<Vec<u32>>,
    link: Link,
    capture: Option<thread::JoinHandle<()>>,
    peer_name: String,
}

impl Call {
    /// Starts the capture (if any), sender and receiver threads. Captured
    /// frames also go to `self_view` when given.
    fn start(
        peer: Peer,
        capture: Option<Capture>,
        fps: u32,
        codecs: &[VideoFormat],
        self_view: Option<Latest<CapturedFrame>>,
    ) -> Result<Call> {
        let shutdown = Shutdown::default();
        let counters = Arc::new(Counters::default());
        let (video_in, video_out) = latest();
        let outs = std::iter::once(video_in).chain(self_view).collect();
        // Two buffers each way are enough: one in use, one coming back.
        let (recycle, recycled) = bounded(2);
        let capture = capture.map(|c| c.start(outs, recycled, shutdown.clone(), counters.clone()));
        let video = capture.as_ref().map(|_| VideoIn {
            frames: video_out,
            recycle,
        });
        let (remote_in, remote) = latest();
        let (spare_pixels, spare) = bounded(2);
        let format = wire::choose_format(codecs, &peer.intro.codecs);
        let peer_name = format!("{} - code {}", describe(&peer), peer.sas);
        let link = Link::start(
            peer,
            video,
            fps,
            format,
            VideoOut {
                frames: remote_in,
                spare,
            },
            shutdown.clone(),
            counters.clone(),
        )?;
        Ok(Call {
            shutdown,
            counters,
            remote,
            spare_pixels,
            link,
            capture,
            peer_name,
        })
    }

    /// Stops every thread, in reverse order of start, and says why.
    fn finish(self) -> EndReason {
        self.shutdown.end(EndReason::HungUp);
        self.link.join();
        if let Some(capture) = self.capture {
            let _ = capture.join();
        }
        self.shutdown.reason().unwrap_or(EndReason::HungUp)
    }
}

/// Runs a call on the main thread until it ends. `self_view` brings our own
/// frames when they are captured elsewhere (the loopback).
fn run_call(
    peer: Peer,
    capture: Option<Capture>,
    screen: &mut Screen,
    options: &CallOptions,
    self_view: Option<Receiver<CapturedFrame>>,
) -> Result<EndReason> {
    let mut stats = options
        .stats
        .as_deref()
        .map(StatsFile::create)
        .transpose()?;
    let (self_in, self_view) = match (self_view, &*screen, capture.is_some()) {
        (Some(theirs), _, _) => (None, Some(theirs)),
        (None, Screen::Window(_), true) => {
            let (tx, rx) = latest();
            (Some(tx), Some(rx))
        }
        _ => (None, None),
    };
    let codecs = options.codec.offer(capture.as_ref().map(|c| &c.info));
    let call = Call::start(peer, capture, options.capture.fps, &codecs, self_in)?;
    eprintln!("in a call with {}", call.peer_name);
    if let Screen::Window(window) = screen {
        window.set_title(&format!("vidchat - {}", call.peer_name));
        window.set_card(None);
    }
    let started = Instant::now();
    let mut status = StatusLine::new(started);
    let mut last_redraw = started;
    let result = (|| -> Result<()> {
        while !call.shutdown.is_ended() {
            if options.duration.is_some_and(|d| started.elapsed() >= d) || !screen.keep_open() {
                call.shutdown.end(EndReason::HungUp);
                break;
            }
            let mut remote = call.remote.recv_timeout(Duration::from_millis(10)).ok();
            let shown_us = match screen {
                Screen::Window(window) => {
                    let me = self_view.as_ref().and_then(|rx| rx.try_iter().last());
                    let fresh = remote.is_some() || me.is_some();
                    if let Some(me) = me {
                        window.set_self_view(me.image);
                    }
                    if let Some(frame) = remote.as_mut() {
                        let pixels = std::mem::take(&mut frame.pixels);
                        if let Some(old) =
                            window.set_remote(pixels, frame.width as usize, frame.height as usize)
                        {
                            let _ = call.spare_pixels.try_send(old);
                        }
                    }
                    let paused = window.my_video_paused();
                    call.counters.video_paused.store(paused, Ordering::Relaxed);
                    window.set_peer_paused(call.counters.peer_video_paused.load(Ordering::Relaxed));
                    if fresh || last_redraw.elapsed() >= Duration::from_millis(100) {
                        window.redraw()?;
                        last_redraw = Instant::now();
                    }
                    unix_us()
                }
                Screen::Headless => remote.as_mut().map_or(0, |f| {
                    let _ = call.spare_pixels.try_send(std::mem::take(&mut f.pixels));
                    f.decoded_us
                }),
            };
            if let Some(frame) = remote {
                status.frame_shown(
                    shown_us.saturating_sub(frame.capture_us),
                    frame.width,
                    frame.height,
                );
                if let Some(stats) = stats.as_mut() {
                    stats.write(&FrameRecord {
                        seq: frame.seq,
                        capture_us: frame.capture_us,
                        shown_us,
                        bytes: frame.bytes,
                        codec: match frame.format {
                            VideoFormat::Jpeg => "jpeg",
                            VideoFormat::H264 => "h264",
                        },
                        quality: frame.quality,
                        encode_us: frame.encode_us,
                        width: frame.width,
                        height: frame.height,
                    })?;
                }
            }
            if let Some(text) = status.poll(Instant::now(), &call.counters) {
                status.print(&text);
                if let Screen::Window(window) = screen {
                    window.set_stats(text.split(" | ").map(str::to_string).collect());
                }
                if let Some(stats) = stats.as_mut() {
                    stats.flush()?;
                }
            }
        }
        Ok(())
    })();
    status.finish();
    // A local failure (display, stats file) still hangs up properly.
    call.shutdown.end(EndReason::HungUp);
    let reason = call.finish();
    if let Some(stats) = stats.as_mut() {
        stats.flush()?;
    }
    result?;
    screen.show_end(&reason);
    Ok(reason)
}
