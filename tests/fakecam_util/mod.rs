//! Helpers for the tests that drive the fake camera (`fakecam`) in process.
// Each test binary uses a part of these helpers.
#![allow(dead_code)]

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use fakecam::{Config, Mode};
use vidchat::call::Shutdown;
use vidchat::capture::{CARD_RGB, CameraChoice, Capture, CaptureConfig, CapturedFrame, SourceKind};
use vidchat::handoff::latest;
use vidchat::stats::Counters;

/// The fake camera is one per process: one test at a time uses it.
pub fn camera_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Running {
    pub frames: Receiver<CapturedFrame>,
    pub shutdown: Shutdown,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.end(vidchat::call::EndReason::HungUp);
        if let Some(handle) = self.handle.take() {
            handle.join().unwrap();
        }
    }
}

pub fn start_camera(config: Config, width: u32, height: u32) -> Running {
    std::hint::black_box(fakecam::interposers());
    // The previous test's camera thread closes the device once it sees the
    // capture gone; nokhwa would hand us that device again until then.
    let start = Instant::now();
    while fakecam::open_devices() > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the previous camera was never closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    fakecam::configure(config);
    let capture = Capture::open(CaptureConfig {
        kind: SourceKind::Camera(CameraChoice::First),
        width,
        height,
        fps: 30,
    })
    .expect("the fake camera opens");
    assert!(
        capture.info.description.contains("vidchat fake camera"),
        "{}",
        capture.info.description
    );
    let (out, frames) = latest();
    let (_recycle, recycled) = crossbeam_channel::bounded(1);
    let shutdown = Shutdown::default();
    let handle = capture.start(
        vec![out],
        recycled,
        shutdown.clone(),
        Arc::new(Counters::default()),
    );
    Running {
        frames,
        shutdown,
        handle: Some(handle),
    }
}

pub fn next(running: &Running) -> CapturedFrame {
    running
        .frames
        .recv_timeout(Duration::from_secs(10))
        .expect("a frame within 10 s")
}

/// Share of the ramp (the rows above the moving square) within `tolerance`
/// of what the camera served.
pub fn ramp_match(frame: &CapturedFrame, tolerance: u8) -> f64 {
    let (w, h) = (frame.image.width, frame.image.height);
    let served = fakecam::expected_rgb(w, h, 0);
    let ramp = (w * 3 * (h / 3)) as usize;
    let close = served[..ramp]
        .iter()
        .zip(&frame.image.data[..ramp])
        .filter(|(a, b)| a.abs_diff(**b) <= tolerance)
        .count();
    close as f64 / ramp as f64
}

pub fn config(format: &[u8; 4], mode: Mode, after: u64) -> Config {
    Config {
        formats: vec![*format],
        sizes: vec![(320, 240)],
        fps: 30,
        mode,
        after,
        back: Duration::from_secs(3),
    }
}

/// Waits for the "camera lost" card, after some real frames.
pub fn expect_card_after_real_frames(mode: Mode) {
    let camera = start_camera(config(b"YUYV", mode, 3), 320, 240);
    let start = Instant::now();
    let (mut real, mut card) = (0, false);
    while start.elapsed() < Duration::from_secs(20) && !card {
        let frame = next(&camera);
        card = frame.image.data[..3] == CARD_RGB;
        real += usize::from(!card);
    }
    assert!(card, "no 'camera lost' card within 20 s");
    // Three frames, then three more after the one reopen.
    assert!(real >= 3, "only {real} real frames before the card");
    assert!(
        !camera.shutdown.is_ended(),
        "the call ended with the camera"
    );
}
