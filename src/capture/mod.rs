//! Where frames come from: the camera (nokhwa), a synthetic test pattern, or
//! a `.y4m` file, each behind [`FrameSource`], and the capture thread that
//! reads one at its own pace and hands the newest frame on (latest wins).

mod camera;
mod pattern;
mod y4m;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use crossbeam_channel::{Receiver, bounded};

pub use camera::list_devices;

use crate::call::{EndReason, Shutdown, unix_us};
use crate::codec::RgbImage;
use crate::handoff::Latest;
use crate::stats::Counters;

/// Which source to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// A camera, as the person named it.
    Camera(CameraChoice),
    /// The synthetic, camera-like test pattern.
    TestPattern,
    /// A YUV4MPEG2 file, looped.
    Y4m(PathBuf),
}

/// Which camera, as the person named it on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraChoice {
    /// None named: the first camera (`loopback` shows the test pattern
    /// when there is none).
    First,
    /// As numbered by `vidchat devices`.
    Index(u32),
    /// Its device file, such as /dev/video0.
    Path(PathBuf),
    /// Part of its name as `vidchat devices` prints it, in any case.
    Name(String),
}

impl CameraChoice {
    /// What the person typed: a number, a path, or part of a name.
    pub fn parse(spec: &str) -> CameraChoice {
        if let Ok(index) = spec.parse() {
            CameraChoice::Index(index)
        } else if spec.starts_with('/') || spec.starts_with('\\') {
            CameraChoice::Path(PathBuf::from(spec))
        } else {
            CameraChoice::Name(spec.to_string())
        }
    }
}

/// What to capture, as the person asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureConfig {
    pub kind: SourceKind,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

/// One picture from a source.
#[derive(Debug, Clone)]
pub struct CapturedFrame {
    /// Frame number from the source, from 0.
    pub seq: u64,
    /// When the source delivered it, Unix microseconds.
    pub capture_us: u64,
    /// Shared by the sender and the self-view.
    pub image: Arc<RgbImage>,
    /// The source's own JPEG of the picture, if it made one.
    pub jpeg: Option<Arc<Vec<u8>>>,
}

/// A picture with one centred message (the "camera lost" card).
pub fn card(width: u32, height: u32, message: &str) -> RgbImage {
    let mut image = RgbImage::new(width, height);
    image
        .data
        .chunks_exact_mut(3)
        .for_each(|px| px.copy_from_slice(&CARD_RGB));
    let scale = (height as usize / 120).max(1);
    let x = (width as usize).saturating_sub(crate::text::text_width(message, scale)) / 2;
    let y = (height as usize).saturating_sub(8 * scale) / 2;
    pattern::draw_text(&mut image, x, y, scale, message, [240, 240, 240]);
    image
}

/// Background colour of cards.
pub const CARD_RGB: [u8; 3] = [0x20, 0x24, 0x2c];

/// A source of pictures. `next_frame` blocks until the next one is due.
pub trait FrameSource {
    /// Starts streaming (a camera's light goes on here, once a call is
    /// accepted, not while waiting for one).
    fn start(&mut self) -> Result<()> {
        Ok(())
    }

    /// Fills `out` with the next picture.
    fn next_frame(&mut self, out: &mut RgbImage) -> Result<()>;

    /// The source's own JPEG of the last picture, when it has one (an MJPEG
    /// camera), so the sender can pass it on without encoding again.
    fn take_jpeg(&mut self) -> Option<Vec<u8>> {
        None
    }
}

/// What the capture thread opened.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    /// For the person: "camera 0 (HD Webcam) MJPEG 640x480@30", "test pattern".
    pub description: String,
    pub width: u32,
    pub height: u32,
}

/// Where a started capture thread delivers, and what it reports to.
struct Delivery {
    /// The sender's slot, then any others (the self-view).
    outs: Vec<Latest<CapturedFrame>>,
    /// Pictures the sender is done with, to draw the next frames into.
    recycled: Receiver<RgbImage>,
    shutdown: Shutdown,
    counters: Arc<Counters>,
}

/// A running capture thread, waiting for [`Capture::start`].
pub struct Capture {
    pub info: SourceInfo,
    start: crossbeam_channel::Sender<Delivery>,
    handle: JoinHandle<()>,
}

/// Sources that pace themselves to `fps` with this clock (camera ones are
/// paced by the device).
pub(crate) struct Pacer {
    start: Instant,
    period: Duration,
    ticks: u32,
}

impl Pacer {
    pub(crate) fn new(fps: u32) -> Self {
        Pacer {
            start: Instant::now(),
            period: Duration::from_secs(1) / fps.max(1),
            ticks: 0,
        }
    }

    /// Sleeps until the next tick; a late caller skips the ticks it missed.
    pub(crate) fn wait(&mut self) {
        let now = Instant::now();
        let due = self.start + self.period * self.ticks;
        if due > now {
            thread::sleep(due - now);
        }
        let elapsed = Instant::now().duration_since(self.start);
        self.ticks = (elapsed.as_nanos() / self.period.as_nanos().max(1)) as u32 + 1;
    }
}

fn open(config: &CaptureConfig) -> Result<(Box<dyn FrameSource>, SourceInfo)> {
    match &config.kind {
        SourceKind::Camera(choice) => camera::open(choice, config),
        SourceKind::TestPattern => {
            let source =
                pattern::TestPattern::new(config.width, config.height, Pacer::new(config.fps));
            let info = SourceInfo {
                description: format!(
                    "test pattern {}x{}@{}",
                    config.width, config.height, config.fps
                ),
                width: config.width,
                height: config.height,
            };
            Ok((Box::new(source), info))
        }
        SourceKind::Y4m(path) => {
            let source = y4m::Y4mFile::open(path, Pacer::new(config.fps))?;
            let (width, height) = source.size();
            let info = SourceInfo {
                description: format!("{} {width}x{height}@{}", path.display(), config.fps),
                width,
                height,
            };
            Ok((Box::new(source), info))
        }
    }
}

impl Capture {
    /// Opens the source on a new thread (a camera must live on the thread
    /// that reads it) and returns once it is open, or with why it is not.
    pub fn open(config: CaptureConfig) -> Result<Capture> {
        let (ready_tx, ready_rx) = bounded(1);
        let (start, start_rx) = bounded(1);
        let handle = thread::Builder::new()
            .name("capture".into())
            .spawn(move || match open(&config) {
                Err(e) => drop(ready_tx.send(Err(e))),
                Ok((source, info)) => {
                    let _ = ready_tx.send(Ok(info));
                    run(source, start_rx);
                }
            })
            .context("cannot start the capture thread")?;
        let info = ready_rx
            .recv()
            .map_err(|_| anyhow!("the capture thread ended while opening the source"))??;
        Ok(Capture {
            info,
            start,
            handle,
        })
    }

    /// Starts delivering frames into `outs` until `shutdown` ends the call.
    /// Only drops from the first (the sender's) are counted.
    pub fn start(
        self,
        outs: Vec<Latest<CapturedFrame>>,
        recycled: Receiver<RgbImage>,
        shutdown: Shutdown,
        counters: Arc<Counters>,
    ) -> JoinHandle<()> {
        // If the thread is gone it has nothing to deliver; joining tells.
        let _ = self.start.send(Delivery {
            outs,
            recycled,
            shutdown,
            counters,
        });
        self.handle
    }
}

fn run(mut source: Box<dyn FrameSource>, start: Receiver<Delivery>) {
    let Ok(Delivery {
        outs,
        recycled,
        shutdown,
        counters,
    }) = start.recv()
    else {
        return;
    };
    let _guard = shutdown.crash_guard("capture");
    if let Err(e) = source.start() {
        shutdown.end(EndReason::SourceFailed(e.into()));
        return;
    }
    let mut seq = 0;
    while !shutdown.is_ended() {
        let mut image = recycled.try_recv().unwrap_or_default();
        if let Err(e) = source.next_frame(&mut image) {
            shutdown.end(EndReason::SourceFailed(e.into()));
            return;
        }
        let frame = CapturedFrame {
            seq,
            capture_us: unix_us(),
            image: Arc::new(image),
            jpeg: source.take_jpeg().map(Arc::new),
        };
        for (n, out) in outs.iter().enumerate() {
            if out.put(frame.clone()) && n == 0 {
                counters.capture_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        seq += 1;
    }
}
