//! One call from start to hang-up: the `listen`, `connect` and `loopback`
//! commands open the source and the screen, get a peer (and, on the
//! listening side, an answer from the person), start the capture, sender
//! and receiver threads, and run the main-thread loop (window or headless)
//! until someone hangs up; then everything stops in reverse and the reason
//! the call ended is returned.

use std::io::{BufRead, IsTerminal, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use crossbeam_channel::{Receiver, bounded};

use crate::call::{EndReason, Shutdown, unix_us};
use crate::capture::CapturedFrame;
use crate::capture::{Capture, CaptureConfig, SourceInfo, SourceKind};
use crate::codec::CodecChoice;
use crate::handoff::{Latest, latest};
use crate::net::connection::{Event, RING_TIMEOUT};
use crate::net::door::Door;
use crate::net::link::{Link, RemoteFrame, VideoIn, VideoOut};
use crate::net::nearby::{self, Found, LOOK_TIME, Listener};
use crate::net::{self, DEFAULT_PORT, PUMP_INTERVAL, Peer};
use crate::stats::{Counters, FrameRecord, StatsFile, StatusLine};
use crate::window::CallWindow;
use crate::wire::{self, Intro, VideoFormat};

/// What every call command shares, validated.
#[derive(Debug, Clone)]
pub struct CallOptions {
    /// Our name as the other side sees it (already safe).
    pub name: String,
    pub capture: CaptureConfig,
    pub codec: CodecChoice,
    pub window: bool,
    pub duration: Option<Duration>,
    pub stats: Option<PathBuf>,
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

    /// Draws the waiting card and handles window events while no call runs;
    /// false once the person closed the window or hung up.
    fn keep_waiting(&mut self) -> bool {
        match self {
            Screen::Window(window) => window.redraw().is_ok() && window.pump(),
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

/// The formats we send from `info` (None: we send no video).
fn offer(options: &CallOptions, info: Option<&SourceInfo>) -> Vec<VideoFormat> {
    let (w, h) = info.map_or((0, 0), |i| (i.width, i.height));
    options.codec.offer(w, h)
}

fn our_intro(info: Option<&SourceInfo>, options: &CallOptions) -> Intro {
    let (w, h) = info.map_or((0, 0), |i| (i.width, i.height));
    Intro::new(&options.name, w, h).with_codecs(&offer(options, info))
}

/// How a listener answers a call.
enum Answering {
    /// `--yes`: every call that completes the handshake.
    Always,
    /// Nobody to ask (no terminal, no window): every call is declined.
    Never,
    /// The person, on the terminal (lines read by a helper thread), in the
    /// window, or both.
    Ask { terminal: Option<Receiver<String>> },
}

impl Answering {
    fn choose(yes: bool, window: bool) -> Answering {
        let terminal = std::io::stdin().is_terminal();
        match (yes, terminal, window) {
            (true, ..) => Answering::Always,
            (false, false, false) => Answering::Never,
            (false, terminal, _) => Answering::Ask {
                terminal: terminal.then(stdin_lines),
            },
        }
    }
}

/// Lines typed on the terminal, read on their own thread (a read blocks).
fn stdin_lines() -> Receiver<String> {
    let (tx, rx) = bounded(4);
    let _ = thread::Builder::new()
        .name("terminal".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
    rx
}

/// Rings: asks the person (or applies `--yes`) whether to take the call,
/// keeping the connection pumped meanwhile, and sends the answer. True when
/// the call is on.
fn ring(peer: &mut Peer, answering: &Answering, screen: &mut Screen) -> bool {
    let who = peer.describe();
    let decided = match answering {
        Answering::Always => {
            eprintln!("{who} - incoming call - accepted (--yes)");
            Some(true)
        }
        Answering::Never => {
            eprintln!(
                "{who} - incoming call - declined: no terminal or window to ask on (--yes takes calls)"
            );
            Some(false)
        }
        Answering::Ask { terminal } => ask(peer, &who, terminal.as_ref(), screen),
    };
    if let Some(accepted) = decided {
        peer.conn.answer(Instant::now(), accepted);
    }
    peer.flush(Instant::now() + Duration::from_secs(2));
    if let Screen::Window(window) = screen {
        window.ask(None);
    }
    match peer.conn.end_reason() {
        None => peer.conn.is_open(),
        Some(EndReason::Declined) if decided.is_none() => {
            eprintln!(
                "{who} - not answered within {} s: declined",
                RING_TIMEOUT.as_secs()
            );
            false
        }
        Some(EndReason::Declined) => {
            eprintln!("{who} - declined");
            false
        }
        Some(reason) => {
            eprintln!("{who} - the call ended before it was answered: {reason}");
            false
        }
    }
}

/// Asks on the terminal and in the window, whichever answers first. None
/// when the call ended (or its ring timed out) before an answer.
fn ask(
    peer: &mut Peer,
    who: &str,
    terminal: Option<&Receiver<String>>,
    screen: &mut Screen,
) -> Option<bool> {
    // Lines typed before the call rang answer nothing.
    if let Some(lines) = terminal {
        lines.try_iter().for_each(drop);
    }
    let Some(info) = peer.info().cloned() else {
        return Some(false);
    };
    if terminal.is_some() {
        eprint!("{who} - incoming call - accept? [y/N] ");
    } else {
        eprintln!("{who} - incoming call - answer in the window: y accepts, n declines");
    }
    if let Screen::Window(window) = screen {
        window.ask(Some(format!(
            "incoming call\ncode {}\n{}\n({})\n\ny / Enter: accept   n / Esc: decline",
            info.code,
            info.name,
            peer.address()
        )));
        window.set_title(&format!(
            "code {} - vidchat - incoming call from {}",
            info.code, info.name
        ));
    }
    loop {
        peer.pump(Instant::now());
        if peer.conn.end_reason().is_some() {
            if terminal.is_some() {
                eprintln!();
            }
            return None;
        }
        if let Some(line) = terminal.and_then(|t| t.try_recv().ok()) {
            return Some(matches!(line.trim().to_lowercase().as_str(), "y" | "yes"));
        }
        if let Screen::Window(window) = screen {
            let open = window.redraw().is_ok() && window.pump();
            if let Some(answer) = window.take_answer() {
                if terminal.is_some() {
                    eprintln!(
                        "{}",
                        if answer {
                            "y (in the window)"
                        } else {
                            "n (in the window)"
                        }
                    );
                }
                return Some(answer);
            }
            if !open {
                return Some(false);
            }
        }
        thread::sleep(PUMP_INTERVAL);
    }
}

/// `vidchat listen`: waits for a call, refusing what is not vidchat, and
/// takes the first one the person accepts.
pub fn listen(
    bind: Option<IpAddr>,
    port: u16,
    yes: bool,
    announce: bool,
    options: &CallOptions,
) -> Result<EndReason> {
    let capture = Capture::open(options.capture.clone())?;
    let listener = net::bind(bind, port)?;
    let port = listener.local_addr()?.port();
    let name = &options.name;
    // Loopback is not on the LAN: nobody nearby could call it.
    let announcement = if announce && !bind.is_some_and(|ip| ip.is_loopback()) {
        nearby::announce(name, port, bind)
            .map_err(|e| {
                eprintln!(
                    "not announced on the local network ({e:#}); the addresses below still work"
                )
            })
            .ok()
    } else {
        None
    };
    // Written, not println!: a closed stdout (`| head -1`) must not end the call.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "waiting for a call on port {port} as {name}; on the other machine, type one of:"
    );
    if announcement.is_some() {
        let _ = writeln!(out, "    vidchat connect {name}");
    }
    for hint in net::connect_hints(&listener) {
        let _ = writeln!(out, "    {hint}");
    }
    let _ = out.flush();
    drop(out);
    let answering = Answering::choose(yes, options.window);
    if let Answering::Never = answering {
        eprintln!(
            "no terminal and no window to ask on: every call will be declined (add --yes to take calls without asking)"
        );
    }
    let waiting = format!("waiting for a call on port {port}");
    let mut screen = Screen::open(options, &format!("vidchat - {waiting}"), &waiting)?;
    let mut door = Door::new(listener, our_intro(Some(&capture.info), options))?;
    let peer = loop {
        if !screen.keep_waiting() {
            return Ok(EndReason::HungUp);
        }
        match door.poll(Instant::now()) {
            Some(mut peer) => {
                if ring(&mut peer, &answering, &mut screen) {
                    break peer;
                }
                if let Screen::Window(window) = &mut screen {
                    window.set_card(Some(waiting.clone()));
                    window.set_title(&format!("vidchat - {waiting}"));
                }
            }
            None => thread::sleep(PUMP_INTERVAL),
        }
    };
    // Busy now: no longer findable.
    drop(announcement);
    drop(door);
    run_call(peer, Some(capture), &mut screen, options, None)
}

/// Handshakes with `peer` as the caller and waits for the callee's answer,
/// keeping the window responsive. Ok(None) when this side hung up first.
fn call(mut peer: Peer, screen: &mut Screen) -> Result<Option<Peer>> {
    let addr = peer.describe();
    let connected = peer.wait_for(|e| matches!(e, Event::Connected(_)), &mut || {
        screen.keep_waiting()
    });
    match connected {
        Ok(_) => {}
        Err(EndReason::HungUp) => return Ok(None),
        Err(reason) => bail!("call to {addr} failed: {reason}"),
    }
    let who = peer.describe();
    eprintln!("{who} - connected, waiting for an answer");
    if let Screen::Window(window) = screen {
        window.set_title(&format!("{who} - vidchat - waiting for an answer"));
        window.set_card(Some(format!("{who}\nwaiting for an answer")));
    }
    match peer.wait_for(|e| *e == Event::Accepted, &mut || screen.keep_waiting()) {
        Ok(_) => Ok(Some(peer)),
        Err(EndReason::HungUp) => Ok(None),
        Err(EndReason::Declined) => bail!("call declined by {who}"),
        Err(reason) => bail!("{who} - {reason}"),
    }
}

/// `vidchat connect [NAME | HOST:PORT]`.
pub fn connect(target: Option<&str>, options: &CallOptions) -> Result<EndReason> {
    let (whom, addrs) = where_to_call(target)?;
    let capture = Capture::open(options.capture.clone())?;
    let connecting = format!("connecting to {whom}");
    let mut screen = Screen::open(options, &format!("vidchat - {connecting}"), &connecting)?;
    let peer = net::connect(&addrs, &our_intro(Some(&capture.info), options))?;
    let Some(peer) = call(peer, &mut screen)? else {
        return Ok(EndReason::HungUp);
    };
    run_call(peer, Some(capture), &mut screen, options, None)
}

/// Where `vidchat connect [TARGET]` calls: an address as given, or a
/// listener found on the local network, by name or as the only one there;
/// with how to name it to the person.
fn where_to_call(target: Option<&str>) -> Result<(String, Vec<SocketAddr>)> {
    let Some(target) = target else {
        return call_nearby();
    };
    if let Ok(ip) = target.parse::<IpAddr>() {
        let addr = SocketAddr::new(ip, DEFAULT_PORT);
        return Ok((addr.to_string(), vec![addr]));
    }
    if target.contains(':') {
        return Ok((target.to_string(), net::resolve(target)?));
    }
    let name = target.strip_suffix('.').unwrap_or(target);
    let name = name.strip_suffix(".local").unwrap_or(name);
    let found = nearby::look(LOOK_TIME, Some(name))?;
    match found.named(name).as_slice() {
        [one] => Ok(calling(one)),
        [] if found.listeners.is_empty() => bail!(
            "no listener called {name} answered on the local network within {} s; {NOT_FOUND_HELP}",
            LOOK_TIME.as_secs()
        ),
        [] => bail!(
            "no listener called {name} nearby; found:\n{}",
            listing(&found)
        ),
        several => bail!(
            "{} listeners nearby are called {name}; call one by its address:{}",
            several.len(),
            several
                .iter()
                .filter_map(|l| l.address())
                .map(|a| format!("\n    vidchat connect {a}"))
                .collect::<String>()
        ),
    }
}

/// Why nothing may have answered, and what works anyway.
const NOT_FOUND_HELP: &str = "is `vidchat listen` running on the other machine? A firewall blocking UDP port 5353, a guest network that keeps clients apart, or a network that drops multicast can hide it: then type the address it prints, vidchat connect IP:PORT";

/// No listener answered a look: what was tried, and what to do.
fn nobody_answered() -> anyhow::Error {
    anyhow!(
        "no vidchat listener answered on the local network within {} s (multicast DNS, {}); {NOT_FOUND_HELP}",
        LOOK_TIME.as_secs(),
        nearby::SERVICE_TYPE
    )
}

/// The listener nearby: the only one, or the one the person picks.
fn call_nearby() -> Result<(String, Vec<SocketAddr>)> {
    let found = nearby::look(LOOK_TIME, None)?;
    match found.listeners.as_slice() {
        [] => Err(nobody_answered()),
        [one] => Ok(calling(one)),
        _ if std::io::stdin().is_terminal() => {
            eprintln!("{} listeners nearby:", found.listeners.len());
            for (i, l) in found.listeners.iter().enumerate() {
                eprintln!("  {}. {}", i + 1, describe_listener(l));
            }
            eprint!("call which? [1-{}] ", found.listeners.len());
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let line = line.trim();
            let chosen = match line.parse::<usize>() {
                Ok(n) => n.checked_sub(1).and_then(|i| found.listeners.get(i)),
                Err(_) => found.named(line).first().copied(),
            };
            match chosen {
                Some(listener) => Ok(calling(listener)),
                None => bail!("no listener chosen"),
            }
        }
        _ => bail!(
            "{} listeners nearby; pick one:\n{}",
            found.listeners.len(),
            listing(&found)
        ),
    }
}

/// Says whom `connect` calls, and returns it and where.
fn calling(listener: &Listener) -> (String, Vec<SocketAddr>) {
    eprintln!(
        "calling {}, found on the local network",
        describe_listener(listener)
    );
    (listener.name.clone(), listener.addrs.clone())
}

/// "laptop (192.168.1.23:9999)".
fn describe_listener(listener: &Listener) -> String {
    match listener.address() {
        Some(addr) => format!("{} ({addr})", listener.name),
        None => listener.name.clone(),
    }
}

/// One line per listener, as the command that calls it.
fn listing(found: &Found) -> String {
    let width = found
        .listeners
        .iter()
        .map(|l| l.name.len())
        .max()
        .unwrap_or(0);
    let mut lines: Vec<String> = found
        .listeners
        .iter()
        .map(|l| {
            let addr = l.address().map(|a| a.to_string()).unwrap_or_default();
            format!("    vidchat connect {:width$}    ({addr})", l.name)
        })
        .collect();
    if found.ignored > 0 {
        lines.push(format!(
            "    ({} more announcements ignored: at most {} listeners are kept)",
            found.ignored,
            nearby::MAX_LISTENERS
        ));
    }
    lines.join("\n")
}

/// `vidchat peers`: who is listening nearby, once.
pub fn peers() -> Result<()> {
    let found = nearby::look(LOOK_TIME, None)?;
    if found.listeners.is_empty() {
        return Err(nobody_answered());
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{} listening nearby:", found.listeners.len());
    let _ = writeln!(out, "{}", listing(&found));
    Ok(())
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
    let mut door = Door::new(listener, our_intro(Some(&capture.info), options))?;
    let fps = options.capture.fps;
    let codecs = offer(options, Some(&capture.info));
    let (self_in, self_out) = latest();
    let mut screen = Screen::open(options, "vidchat - loopback", "connecting to yourself")?;
    let peer = net::connect(&[addr], &our_intro(None, options))?;
    let sending_side = thread::Builder::new()
        .name("loopback-peer".into())
        .spawn(move || -> Result<EndReason> {
            let guard = Instant::now() + crate::net::connection::HANDSHAKE_TIMEOUT;
            let mut peer = loop {
                if let Some(peer) = door.poll(Instant::now()) {
                    break peer;
                }
                if Instant::now() > guard {
                    bail!("the loopback call did not connect");
                }
                thread::sleep(PUMP_INTERVAL);
            };
            peer.conn.answer(Instant::now(), true);
            let call = Call::start(peer, Some(capture), fps, &codecs, Some(self_in))?;
            while !call.shutdown.is_ended() {
                // This side only sends; the viewer sends no video.
                let _ = call.remote.recv_timeout(Duration::from_millis(100));
            }
            Ok(call.finish())
        })
        .context("cannot start the loopback peer")?;
    let ended = match call(peer, &mut screen) {
        Ok(Some(peer)) => run_call(peer, None, &mut screen, options, Some(self_out)),
        Ok(None) => Ok(EndReason::HungUp),
        Err(e) => Err(e),
    };
    let peer_ended = sending_side
        .join()
        .map_err(|_| anyhow!("the loopback peer failed"))?;
    match (ended?, peer_ended?) {
        (EndReason::PeerHungUp, other) if !other.is_normal() => Ok(other),
        (ours, _) => Ok(ours),
    }
}

/// How often the window is redrawn when no remote picture comes (call
/// states, stats, a moving self-view).
const IDLE_REDRAW: Duration = Duration::from_millis(100);

/// How long hanging up waits for the capture thread to finish its read.
const CAPTURE_GRACE: Duration = Duration::from_millis(500);

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
        let theirs = peer.info().map(|p| p.codecs.clone()).unwrap_or_default();
        let format = wire::choose_format(codecs, &theirs);
        let peer_name = peer.describe();
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

    /// Stops every thread, in reverse order of start, and says why. A
    /// capture thread stuck in a camera read is left behind after
    /// [`CAPTURE_GRACE`]: hanging up never waits on a stuck camera.
    fn finish(self) -> EndReason {
        self.shutdown.end(EndReason::HungUp);
        self.link.join();
        if let Some(capture) = self.capture {
            let until = Instant::now() + CAPTURE_GRACE;
            while !capture.is_finished() && Instant::now() < until {
                thread::sleep(PUMP_INTERVAL);
            }
            if capture.is_finished() {
                let _ = capture.join();
            }
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
    let codecs = offer(options, capture.as_ref().map(|c| &c.info));
    let call = Call::start(peer, capture, options.capture.fps, &codecs, self_in)?;
    eprintln!("{} - in a call", call.peer_name);
    if let Screen::Window(window) = screen {
        window.set_title(&format!("{} - vidchat", call.peer_name));
        window.set_card(None);
    }
    let started = Instant::now();
    let mut status = StatusLine::new(started);
    let mut last_redraw = started;
    let mut last_remote = started;
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
                    // One redraw per remote picture, the self-view riding
                    // along; alone (no video coming) the self-view sets the pace.
                    let redraw = remote.is_some()
                        || last_redraw.elapsed() >= IDLE_REDRAW
                        || (me.is_some() && last_remote.elapsed() >= IDLE_REDRAW);
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
                    if remote.is_some() {
                        last_remote = Instant::now();
                    }
                    if redraw {
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
                        decoded_us: frame.decoded_us,
                        shown_us,
                        bytes: frame.bytes,
                        codec: match frame.format {
                            VideoFormat::Jpeg => "jpeg",
                            VideoFormat::H264 => "h264",
                        },
                        quality: frame.quality,
                        keyframe: frame.keyframe,
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
