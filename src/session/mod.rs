//! One call from start to hang-up: the `listen`, `connect` and `loopback`
//! commands open the source and the screen, get a peer (and, on the
//! listening side, an answer from the person: `answer`; on the calling
//! side, where to call: `target`), start the capture, sender and receiver
//! threads, and run the main-thread loop (window or headless: `screen`)
//! until someone hangs up; then everything stops in reverse and the reason
//! the call ended is returned. Who the peer is across calls is `known`; the
//! caller's yes `confirm`; typed text `chat`.

mod answer;
mod chat;
mod confirm;
mod known;
mod screen;
mod target;

use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use crossbeam_channel::{Receiver, bounded};

use crate::call::{EndReason, Shutdown, say, unix_us};
use crate::capture::{CameraChoice, Capture, CaptureConfig, CapturedFrame, SourceInfo, SourceKind};
use crate::codec::CodecChoice;
use crate::handoff::{Latest, latest};
use crate::interrupt;
use crate::media::receive::Decoding;
use crate::media::record::Recorder;
use crate::media::send::Encoding;
use crate::media::{RemoteFrame, VideoIn, VideoOut};
use crate::net::connection::{Event, Role};
use crate::net::door::Door;
use crate::net::link::{Link, TextLink};
use crate::net::{self, PUMP_INTERVAL, Peer, Us, nearby};
use crate::secure::StaticKey;
use crate::stats::{Counters, FrameRecord, StatsFile, StatusLine};
use crate::trust::{KnownPeers, Trust};
use crate::wire::{self, Intro, VideoFormat};
use answer::{Answering, Rang, ring, stdin_lines};
use chat::Chat;
use confirm::{Confirmation, Yes};
pub use known::known_peers;
use known::{Remember, keys, remembering, trust_of};
use screen::Screen;
pub use target::{CallTarget, peers};

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
    /// Where to keep the typed text, one JSON line each.
    pub chat_log: Option<PathBuf>,
    /// Where to record the peer's video as shown (y4m).
    pub record: Option<PathBuf>,
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

/// How `vidchat listen` waits, validated.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// Address to listen on (None: all of this machine's).
    pub bind: Option<IpAddr>,
    /// TCP port (0: any free one).
    pub port: u16,
    /// Take calls without asking.
    pub yes: bool,
    /// Announce the listener on the local network.
    pub announce: bool,
}

/// `vidchat listen`: waits for a call, refusing what is not vidchat, and
/// takes the first one the person accepts; once a call rings, every other
/// caller is told "busy".
pub fn listen(how: &ListenOptions, options: &CallOptions) -> Result<EndReason> {
    // Before anything is announced: known peers that cannot be read stop here.
    let (key, mut known) = keys()?;
    let capture = open_capture(options)?;
    let bind = how.bind;
    let listener = net::bind(bind, how.port)?;
    let port = listener.local_addr()?.port();
    let name = &options.name;
    // Loopback is not on the LAN: nobody nearby could call it.
    let announcement = if how.announce && !bind.is_some_and(|ip| ip.is_loopback()) {
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
    let answering = Answering::choose(how.yes, options.window);
    if answering.declines_all() {
        eprintln!(
            "no terminal and no window to ask on: every call will be declined (add --yes to take calls without asking)"
        );
    }
    let waiting = format!("waiting for a call on port {port}");
    let mut screen = Screen::open(options, &format!("vidchat - {waiting}"), &waiting)?;
    let us = Us {
        intro: our_intro(Some(&capture.info), options),
        key,
    };
    let mut door = Door::new(listener, us)?;
    let (peer, trust, busy_tone) = loop {
        if !screen.keep_waiting() {
            return Ok(EndReason::HungUp);
        }
        match door.poll(Instant::now()) {
            Some(mut peer) => {
                let busy_tone = door.busy_tone().map_err(|e| eprintln!("{e:#}")).ok();
                let (trust, warn_name) = trust_of(&peer, None, &known);
                match ring(&mut peer, (trust, &warn_name), &answering, &mut screen) {
                    Rang::Taken { asked } => break (peer, (trust, warn_name, asked), busy_tone),
                    Rang::NotTaken => {}
                    Rang::Unanswered => {
                        eprintln!("{}", door.rang_out(peer.address().ip(), Instant::now()));
                    }
                    Rang::CallerLeft => {
                        let ip = peer.address().ip();
                        if let Some(warning) = door.hung_up_after_code(ip, Instant::now()) {
                            eprintln!("{warning}");
                        }
                    }
                }
                drop(busy_tone);
                if let Screen::Window(window) = &mut screen {
                    window.set_card(Some(waiting.clone()));
                    window.set_title(&format!("vidchat - {waiting}"));
                }
            }
            None => thread::sleep(PUMP_INTERVAL),
        }
    };
    // In a call: no longer findable, and busy to whoever calls.
    drop(announcement);
    drop(door);
    // Only a person who compared the code vouches for the key.
    let (trust, warn_name, asked) = trust;
    let remember = remembering(&peer, (trust, &warn_name), &mut known).filter(|_| asked);
    let ended = run_call(
        peer,
        Some(capture),
        &mut screen,
        options,
        None,
        (Yes::Given, remember),
    );
    drop(busy_tone);
    ended
}

/// Handshakes with `peer` as the caller and waits for the callee's answer,
/// keeping the window responsive; says what `known` knows of the callee.
/// Ok(None) when this side hung up first.
fn call(
    mut peer: Peer,
    screen: &mut Screen,
    dialled: Option<&str>,
    known: &KnownPeers,
) -> Result<Option<(Peer, (Trust, String))>> {
    let addr = peer.address();
    let connected = peer.wait_for(|e| matches!(e, Event::Connected(_)), &mut || {
        screen.keep_waiting()
    });
    match connected {
        Ok(_) => {}
        Err(EndReason::HungUp) => return Ok(None),
        Err(EndReason::Busy) => {
            bail!("{addr} is busy: it is in another call; call again when it is over")
        }
        // Declined before it rang (nobody there to ask): no code to name.
        Err(EndReason::Declined) => match peer.conn.peer_name() {
            Some(name) => bail!("call declined by {name} ({addr})"),
            None => bail!("call declined by {addr}"),
        },
        Err(reason) => bail!("call to {addr} failed: {reason}"),
    }
    let who = peer.describe();
    let Some(info) = peer.info().cloned() else {
        bail!("call to {addr} failed: no handshake");
    };
    let (trust, warn_name) = trust_of(&peer, dialled, known);
    let label = match trust {
        Trust::Stranger => String::new(),
        Trust::Known => format!("known: {} (confirmed in an earlier call)\n", info.name),
        Trust::Changed => format!("{}\n", Trust::changed_warning(&warn_name, true)),
    };
    eprintln!(
        "{who} - connected, waiting for an answer\n  {}read the code to each other: the other screen must show {} too",
        label.replace('\n', "\n  "),
        info.code
    );
    if let Screen::Window(window) = screen {
        window.set_title(&format!("{who} - vidchat - waiting for an answer"));
        window.set_card(Some(format!(
            "{label}calling {} ({addr})\ncode {}\nthe other screen must show the same code\n\nwaiting for an answer",
            info.name, info.code
        )));
    }
    match peer.wait_for(|e| *e == Event::Accepted, &mut || screen.keep_waiting()) {
        Ok(_) => Ok(Some((peer, (trust, warn_name)))),
        Err(EndReason::HungUp) => Ok(None),
        Err(EndReason::Declined) => bail!("call declined by {who}"),
        Err(reason) => bail!("{who} - {reason}"),
    }
}

/// Opens the source; a camera that does not open says what to do.
fn open_capture(options: &CallOptions) -> Result<Capture> {
    Capture::open(options.capture.clone()).map_err(|e| match options.capture.kind {
        SourceKind::Camera(_) => anyhow!(
            "{e:#}; `vidchat devices` lists the cameras, and `--source test` sends a test pattern instead"
        ),
        _ => e,
    })
}

/// `vidchat connect [NAME | HOST[:PORT]]`. Whatever ends the attempt is
/// shown in the window for a moment, as the end of a call is. Our video
/// goes once the person confirmed the code (`yes`: without asking).
pub fn connect(target: &CallTarget, yes: bool, options: &CallOptions) -> Result<EndReason> {
    let (key, mut known) = keys()?;
    let found = target::find(target);
    // Ctrl-C while it looked: no reason to say what it did not find.
    if interrupt::requested() {
        return Ok(EndReason::HungUp);
    }
    let to = found?;
    let capture = open_capture(options)?;
    let connecting = format!("connecting to {}", to.whom);
    let mut screen = Screen::open(options, &format!("vidchat - {connecting}"), &connecting)?;
    let us = Us {
        intro: our_intro(Some(&capture.info), options),
        key,
    };
    let answered = net::connect(&to.addrs, &us)
        .map_err(|e| match &to.hint {
            Some(hint) => anyhow!("{e:#}; {hint}"),
            None => e,
        })
        .and_then(|peer| call(peer, &mut screen, to.name.as_deref(), &known));
    let (peer, (trust, warn_name)) = match answered {
        Ok(Some(answered)) => answered,
        Ok(None) => return Ok(EndReason::HungUp),
        Err(e) => {
            screen.show_card(&format!("{e:#}"));
            return Err(e);
        }
    };
    if yes && trust == Trust::Changed {
        eprintln!("--yes does not confirm a changed key: compare the code");
    }
    let asked = match trust {
        _ if trust.caller_confirms_unasked(yes) => Yes::Given,
        Trust::Changed => Yes::Ask(Some(Trust::changed_warning(&warn_name, true))),
        _ => Yes::Ask(None),
    };
    // Only a person who compared the code vouches for the key.
    let remember =
        remembering(&peer, (trust, &warn_name), &mut known).filter(|_| asked != Yes::Given);
    run_call(
        peer,
        Some(capture),
        &mut screen,
        options,
        None,
        (asked, remember),
    )
}

/// `vidchat loopback`: a call to yourself over 127.0.0.1, through the whole
/// path. A listening side on a helper thread sends the source; the main
/// thread connects to it and shows what arrives, with the same source as
/// the self-view.
pub fn loopback(options: &CallOptions) -> Result<EndReason> {
    // Without a camera named, the loopback still shows the whole path.
    let capture = match open_capture(options) {
        Err(_) if options.capture.kind == SourceKind::Camera(CameraChoice::First) => {
            eprintln!(
                "no camera could be opened, so the loopback shows the test pattern; `vidchat loopback --camera 0` says why"
            );
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
    // Calling yourself: a key for this call, and nobody to remember.
    let key = StaticKey::generate()?;
    let us = Us {
        intro: our_intro(Some(&capture.info), options),
        key: key.clone(),
    };
    let mut door = Door::new(listener, us)?;
    let fps = options.capture.fps;
    let codecs = offer(options, Some(&capture.info));
    let (self_in, self_out) = latest();
    let mut screen = Screen::open(options, "vidchat - loopback", "connecting to yourself")?;
    let viewer = Us {
        intro: our_intro(None, options),
        key,
    };
    let peer = net::connect(&[addr], &viewer)?;
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
            // This side types nothing, and what the viewer types is dropped.
            let (_typed, outgoing) = bounded(1);
            let (incoming, _said) = bounded(1);
            let text = TextLink { outgoing, incoming };
            let call = Call::start(peer, Some(capture), (fps, &codecs), Some(self_in), text)?;
            while !call.shutdown.is_ended() {
                // This side only sends; the viewer sends no video.
                let _ = call.remote.recv_timeout(Duration::from_millis(100));
            }
            Ok(call.finish())
        })
        .context("cannot start the loopback peer")?;
    let ended = match call(peer, &mut screen, None, &KnownPeers::in_memory()) {
        Ok(Some((peer, _))) => run_call(
            peer,
            None,
            &mut screen,
            options,
            Some(self_out),
            (Yes::Given, None),
        ),
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

/// How often the window is redrawn while typed text is on it.
const CHAT_REDRAW: Duration = Duration::from_millis(33);

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
    /// The encoder (a side that sends) and decoder threads.
    media: Vec<thread::JoinHandle<()>>,
    capture: Option<thread::JoinHandle<()>>,
    peer_name: String,
}

impl Call {
    /// Starts the capture (if any), sender and receiver threads. Captured
    /// frames also go to `self_view` when given; typed lines go through
    /// `text`.
    fn start(
        peer: Peer,
        capture: Option<Capture>,
        (fps, codecs): (u32, &[VideoFormat]),
        self_view: Option<Latest<CapturedFrame>>,
        text: TextLink,
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
        let (link, ports) = Link::start(peer, text, shutdown.clone(), counters.clone())?;
        let out = VideoOut {
            frames: remote_in,
            spare,
        };
        let mut media = vec![Decoding::start(
            ports.incoming,
            ports.pictures,
            out,
            shutdown.clone(),
            counters.clone(),
        )?];
        if let Some(video) = video {
            media.push(Encoding::start(
                video,
                (ports.view, ports.outgoing),
                (fps, format),
                shutdown.clone(),
                counters.clone(),
            )?);
        }
        Ok(Call {
            shutdown,
            counters,
            remote,
            spare_pixels,
            link,
            media,
            capture,
            peer_name,
        })
    }

    /// Stops every thread, in reverse order of start, and says why. A
    /// capture thread stuck in a camera read is left behind after
    /// [`CAPTURE_GRACE`]: hanging up never waits on a stuck camera.
    fn finish(self) -> EndReason {
        self.shutdown.end(EndReason::HungUp);
        for thread in self.media {
            let _ = thread.join();
        }
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
/// frames when they are captured elsewhere (the loopback); `yes` says
/// whether our person still has to confirm before our video goes, and
/// what to remember of the peer once both said yes.
fn run_call(
    peer: Peer,
    capture: Option<Capture>,
    screen: &mut Screen,
    options: &CallOptions,
    self_view: Option<Receiver<CapturedFrame>>,
    (yes, mut remember): (Yes, Option<Remember>),
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
    let code = peer.info().map(|i| i.code.clone()).unwrap_or_default();
    // A callee sees no video until the caller's person confirmed.
    let awaiting_their_yes = (peer.conn.role() == Role::Callee).then(|| {
        let name = peer.info().map_or("the caller", |i| i.name.as_str());
        format!("waiting for {name} to compare the code and confirm")
    });
    let role = peer.conn.role();
    let (name, can_send) = peer.info().map_or(("peer".into(), false), |i| {
        (i.name.clone(), i.can_receive_text)
    });
    let (to_peer, outgoing) = bounded(chat::OUTGOING);
    let (incoming, from_peer) = bounded(chat::INCOMING);
    // Before the call's threads: a log that cannot be opened ends nothing.
    let mut chat = Chat::new(
        (to_peer, from_peer),
        &name,
        can_send,
        options.chat_log.as_deref(),
    )?;
    let text = TextLink { outgoing, incoming };
    let peer_size = peer.info().map_or((0, 0), |i| (i.width, i.height));
    let mut recorder = match &options.record {
        Some(path) if peer_size.0 > 0 && peer_size.1 > 0 => {
            Some(Recorder::create(path, peer_size, options.capture.fps)?)
        }
        Some(_) => {
            say(format_args!("nothing to record: the peer sends no video"));
            None
        }
        None => None,
    };
    let call = Call::start(peer, capture, (options.capture.fps, &codecs), self_in, text)?;
    let terminal = std::io::stdin().is_terminal().then(stdin_lines);
    // The callee's yes was its answer.
    if role == Role::Caller {
        call.counters.peer_confirmed.store(true, Ordering::Relaxed);
    }
    eprintln!("{} - in a call", call.peer_name);
    if let Screen::Window(window) = screen {
        window.set_title(&format!("{} - vidchat", call.peer_name));
        window.call_started(&code);
    }
    let mut confirmation = Confirmation::start(yes, &code, screen, &call.counters);
    let started = Instant::now();
    let mut status = StatusLine::new(started);
    let mut last_redraw = started;
    let mut last_remote = started;
    let result = (|| -> Result<()> {
        while !call.shutdown.is_ended() {
            if options.duration.is_some_and(|d| started.elapsed() >= d)
                || !screen.keep_open()
                || !confirmation.poll(screen, &call.counters)
            {
                call.shutdown.end(EndReason::HungUp);
                break;
            }
            let both_said_yes = call.counters.confirmed.load(Ordering::Relaxed)
                && call.counters.peer_confirmed.load(Ordering::Relaxed);
            if let Some(remember) = remember.take_if(|_| both_said_yes) {
                remember.both_said_yes();
            }
            let mut remote = call.remote.recv_timeout(Duration::from_millis(10)).ok();
            if let (Some(recorder), Some(frame)) = (recorder.as_mut(), remote.as_ref()) {
                recorder.record(frame)?;
            }
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
                    let peer_said_yes = call.counters.peer_confirmed.load(Ordering::Relaxed);
                    window.set_waiting_for_peer(
                        awaiting_their_yes.as_deref().filter(|_| !peer_said_yes),
                    );
                    if remote.is_some() {
                        last_remote = Instant::now();
                    }
                    // Captions age and a line is typed: kept moving.
                    let redraw =
                        redraw || (window.chat_showing() && last_redraw.elapsed() >= CHAT_REDRAW);
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
            let mut typed = match screen {
                Screen::Window(window) => window.take_typed(),
                Screen::Headless => Vec::new(),
            };
            if !confirmation.asking_on_terminal() {
                typed.extend(terminal.iter().flat_map(Receiver::try_iter));
            }
            chat.poll(typed, screen, &call.counters, &status)?;
            if let Some(text) = status.poll(Instant::now(), &call.counters) {
                // A question on the terminal stays readable.
                if !confirmation.asking_on_terminal() {
                    status.print(&text);
                }
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
    if let Some(recorder) = recorder {
        recorder.finish()?;
    }
    result?;
    screen.show_end(&reason);
    Ok(reason)
}
