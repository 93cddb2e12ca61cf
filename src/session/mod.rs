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
mod running;
mod screen;
mod target;

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use crossbeam_channel::bounded;

use crate::call::EndReason;
use crate::capture::{CameraChoice, Capture, CaptureConfig, SourceInfo, SourceKind};
use crate::codec::CodecChoice;
use crate::handoff::latest;
use crate::interrupt;
use crate::net::busy::OFFERS_WAITING;
use crate::net::connection::Event;
use crate::net::door::Door;
use crate::net::link::TextLink;
use crate::net::reconnect::Resumer;
use crate::net::{self, PUMP_INTERVAL, Peer, Us, nearby};
use crate::secure::StaticKey;
use crate::trust::{KnownPeers, Trust};
use crate::wire::{Intro, VideoFormat};
use answer::{Answering, Rang, ring};
use confirm::Yes;
pub use known::known_peers;
use known::{keys, remembering, trust_of};
use running::{Call, run_call};
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

/// What the system may ask when `listen` first takes connections, said
/// before it asks (Linux asks nothing; its firewall is in the README).
#[cfg(windows)]
const FIREWALL_NOTE: Option<&str> = Some(
    "if Windows Defender Firewall asks, allow vidchat on Private networks; on a network marked Public the caller cannot find this machine by name (mark it Private, or type the address)",
);
#[cfg(target_os = "macos")]
const FIREWALL_NOTE: Option<&str> = Some(
    "if macOS asks whether vidchat may accept incoming connections, or find devices on your local network, allow both",
);
#[cfg(not(any(windows, target_os = "macos")))]
const FIREWALL_NOTE: Option<&str> = None;

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
    if let Some(note) = FIREWALL_NOTE {
        eprintln!("{note}");
    }
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
    // The call's resumptions come through the busy tone.
    let (offers_in, offers) = bounded(OFFERS_WAITING);
    let (peer, trust, busy_tone) = loop {
        if !screen.keep_waiting() {
            return Ok(EndReason::HungUp);
        }
        match door.poll(Instant::now()) {
            Some(mut peer) => {
                let busy_tone = door
                    .busy_tone(offers_in.clone())
                    .map_err(|e| eprintln!("{e:#}"))
                    .ok();
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
    // In a call: busy to whoever calls, and still announced, so that a
    // caller whose link went silent finds this side's new address by name.
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
        Resumer::answering(offers),
    );
    drop(busy_tone);
    drop(announcement);
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
    // A silent link: the address the call is on first, then the others.
    let first = peer.address();
    let dial = std::iter::once(first)
        .chain(
            to.addrs
                .iter()
                .map(|a| net::canonical(*a))
                .filter(|a| *a != first),
        )
        .collect();
    run_call(
        peer,
        Some(capture),
        &mut screen,
        options,
        None,
        (asked, remember),
        Resumer::dialling(dial, to.name.clone()),
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
            let call = Call::start(
                peer,
                Some(capture),
                (fps, &codecs),
                Some(self_in),
                (text, Resumer::none()),
            )?;
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
            Resumer::none(),
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
