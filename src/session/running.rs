//! A call once answered, on the main thread: its threads started
//! ([`Call`]: capture, encoder, decoder, the network's) and the loop that
//! shows the peer, asks for the yes, carries the typed text and the
//! status line, records, and hangs up.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;
use crossbeam_channel::{Receiver, bounded};

use super::answer::stdin_lines;
use super::chat::Chat;
use super::confirm::{Confirmation, Yes};
use super::known::Remember;
use super::screen::Screen;
use super::{CallOptions, offer};
use crate::call::{EncodingError, EndReason, Shutdown, say, unix_us};
use crate::capture::{Capture, CapturedFrame};
use crate::handoff::{Latest, latest};
use crate::media::receive::Decoding;
use crate::media::record::Recorder;
use crate::media::send::Encoding;
use crate::media::{RemoteFrame, VideoIn, VideoOut};
use crate::net::connection::Role;
use crate::net::link::{Link, TextLink};
use crate::net::reconnect::Resumer;
use crate::net::{PUMP_INTERVAL, Peer};
use crate::shared::Shared;
use crate::stats::{Counters, FrameRecord, StatsFile, StatusLine};
use crate::wire::{self, VideoFormat};

/// How often the window is redrawn when no remote picture comes (call
/// states, stats, a moving self-view).
const IDLE_REDRAW: Duration = Duration::from_millis(100);

/// How often the window is redrawn while typed text is on it.
const CHAT_REDRAW: Duration = Duration::from_millis(33);

/// How long hanging up waits for the capture thread to finish its read.
const CAPTURE_GRACE: Duration = Duration::from_millis(500);

/// The threads of a running call.
pub(super) struct Call {
    pub(super) shutdown: Shutdown,
    counters: Arc<Counters>,
    pub(super) remote: crossbeam_channel::Receiver<RemoteFrame>,
    /// Pixel buffers handed back to the decoder once shown.
    spare_pixels: crossbeam_channel::Sender<Vec<u32>>,
    link: Link,
    /// The encoder (a side that sends) and decoder threads.
    media: Vec<thread::JoinHandle<()>>,
    capture: Option<thread::JoinHandle<()>>,
    peer_name: String,
}

impl Call {
    /// Starts the capture (if any), the call's network threads, and the
    /// encoder (if we send) and decoder threads. Captured
    /// frames also go to `self_view` when given; typed lines go through
    /// `text`.
    pub(super) fn start(
        peer: Peer,
        capture: Option<Capture>,
        (fps, codecs): (u32, &[VideoFormat]),
        self_view: Option<Latest<CapturedFrame>>,
        (text, resumer): (TextLink, Resumer),
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
        let (link, ports) = Link::start(peer, text, resumer, shutdown.clone(), counters.clone())?;
        let out = VideoOut {
            frames: remote_in,
            spare,
        };
        let started = (|| {
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
            anyhow::Ok(media)
        })();
        // A media stage that cannot start (no H.264 encoder) ends the
        // call's threads that did.
        let media = match started {
            Ok(media) => media,
            Err(e) => {
                // One error, two owners: the reason, and our caller (it
                // reads as before: the whole chain).
                let why = EncodingError::Start(Shared::new(e));
                shutdown.end(EndReason::Encoding(why.clone()));
                link.join();
                return Err(why.into());
            }
        };
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

    /// Stops every thread (the media ones, then the network's, then the
    /// capture) and says why. A
    /// capture thread stuck in a camera read is left behind after
    /// [`CAPTURE_GRACE`]: hanging up never waits on a stuck camera.
    pub(super) fn finish(self) -> EndReason {
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
pub(super) fn run_call(
    peer: Peer,
    capture: Option<Capture>,
    screen: &mut Screen,
    options: &CallOptions,
    self_view: Option<Receiver<CapturedFrame>>,
    (yes, mut remember): (Yes, Option<Remember>),
    resumer: Resumer,
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
    let (to_peer, outgoing) = bounded(super::chat::OUTGOING);
    let (incoming, from_peer) = bounded(super::chat::INCOMING);
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
    let call = Call::start(
        peer,
        capture,
        (options.capture.fps, &codecs),
        self_in,
        (text, resumer),
    )?;
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
                    let reconnecting = call.counters.reconnecting_secs();
                    window.set_reconnecting(reconnecting.map(|s| format!("reconnecting... {s} s")));
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
                        resumptions: Counters::get(&call.counters.resumptions),
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
