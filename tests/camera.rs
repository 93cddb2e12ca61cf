//! The camera path for real, on machines with no camera: `fakecam` is
//! linked into this test binary, so its `open`/`syscall`/`mmap`/`poll`/
//! `readdir64` stand in for libc's and nokhwa talks V4L2 to a fake
//! `/dev/video0`. Pixels are compared with what the fake camera served.
//! The last tests run the built binary with the fake camera preloaded.

#![cfg(target_os = "linux")]

mod fakecam_util;

use std::process::Command;

use fakecam::Mode;
use fakecam_util::{
    camera_lock, config, expect_card_after_real_frames, next, ramp_match, start_camera,
};

#[test]
fn each_format_gives_the_pixels_served() {
    let _lock = camera_lock();
    for format in [b"MJPG", b"YUYV", b"NV12"] {
        let camera = start_camera(config(format, Mode::Ok, 0), 320, 240);
        for _ in 0..3 {
            next(&camera);
        }
        let frame = next(&camera);
        assert_eq!((frame.image.width, frame.image.height), (320, 240));
        let matched = ramp_match(&frame, 12);
        let name = String::from_utf8_lossy(format);
        assert!(
            matched > 0.99,
            "{name}: only {:.1}% of pixels match",
            matched * 100.0
        );
        assert_eq!(
            frame.jpeg.is_some(),
            format == b"MJPG",
            "{name}: passthrough JPEG kept only for MJPEG"
        );
    }
}

#[test]
fn junk_after_the_jpeg_end_is_trimmed() {
    let _lock = camera_lock();
    let camera = start_camera(config(b"MJPG", Mode::Junk, 0), 320, 240);
    for _ in 0..5 {
        let frame = next(&camera);
        let jpeg = frame.jpeg.as_deref().expect("the camera's JPEG");
        assert!(
            jpeg.ends_with(&[0xFF, 0xD9]),
            "junk left after the end marker"
        );
        assert!(!jpeg.ends_with(&[0xFF, 0xD9, 9, 9]));
        assert!(ramp_match(&frame, 12) > 0.99);
    }
}

#[test]
fn truncated_jpegs_are_skipped() {
    let _lock = camera_lock();
    let camera = start_camera(config(b"MJPG", Mode::Truncate, 0), 320, 240);
    for _ in 0..10 {
        let frame = next(&camera);
        assert!(ramp_match(&frame, 12) > 0.99);
    }
    assert!(
        !camera.shutdown.is_ended(),
        "a broken frame ended the capture"
    );
}

#[test]
fn an_unplugged_camera_is_shown_as_lost() {
    let _lock = camera_lock();
    expect_card_after_real_frames(Mode::Vanish);
}

/// The fake camera as a preloadable library, built beside this test.
fn preload() -> String {
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let lib = deps.join("libfakecam.so");
    assert!(lib.exists(), "{} was not built", lib.display());
    lib.to_string_lossy().into_owned()
}

#[test]
fn devices_lists_the_fake_cameras_formats() {
    let out = Command::new(env!("CARGO_BIN_EXE_vidchat"))
        .arg("devices")
        .env("LD_PRELOAD", preload())
        .env("FAKECAM_FORMATS", "MJPG,YUYV")
        .env("FAKECAM_SIZES", "640x480,1280x720")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("camera 0"), "{text}");
    for line in [
        "MJPEG  1280x720   30 fps",
        "MJPEG   640x480   30 fps",
        "YUYV    640x480   30 fps",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
}

#[test]
fn devices_without_a_camera_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_vidchat"))
        .arg("devices")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("camera 0") {
        eprintln!("SKIPPED: this machine has a camera: {text}");
        return;
    }
    assert!(out.status.success());
    assert_eq!(text.trim().lines().count(), 1, "{text}");
    assert!(text.contains("no cameras found"), "{text}");
}

/// A loopback call on the fake MJPEG camera at 640x480 for two seconds, with
/// `args` added: each frame's line from `--stats`.
fn mjpeg_camera_call(args: &[&str]) -> Vec<serde_json::Value> {
    let stats = std::env::temp_dir().join(format!(
        "vidchat-camera-{}-{}.jsonl",
        std::process::id(),
        args.join("")
    ));
    let out = Command::new(env!("CARGO_BIN_EXE_vidchat"))
        .args(["loopback", "--no-window", "--duration", "2", "--stats"])
        .arg(&stats)
        .args(args)
        .env("LD_PRELOAD", preload())
        .env("FAKECAM_FORMATS", "MJPG")
        .env("FAKECAM_SIZES", "640x480")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("loopback call with camera 0 (vidchat fake camera) MJPEG 640x480@30"),
        "{err}"
    );
    let text = std::fs::read_to_string(&stats).unwrap();
    let _ = std::fs::remove_file(stats);
    let frames: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(frames.len() >= 20, "{} frames", frames.len());
    frames
}

#[test]
fn with_codec_mjpeg_the_camera_jpeg_passes_through() {
    // On loopback the link is never the limit: every frame is the camera's own.
    for f in &mjpeg_camera_call(&["--codec", "mjpeg"]) {
        assert_eq!(
            (
                f["codec"].as_str(),
                f["quality"].as_u64(),
                f["encode_us"].as_u64()
            ),
            (Some("jpeg"), Some(0), Some(0)),
            "{f}"
        );
    }
}

#[test]
fn by_default_an_mjpeg_camera_is_sent_as_h264() {
    for f in &mjpeg_camera_call(&[]) {
        assert_eq!(f["codec"].as_str(), Some("h264"), "{f}");
    }
}

/// Frames from `camera` for `secs`: (real frames, cards) in order of arrival.
fn watch(camera: &fakecam_util::Running, secs: u64) -> Vec<bool> {
    let start = std::time::Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < std::time::Duration::from_secs(secs) {
        let frame = next(camera);
        seen.push(frame.image.data[..3] == vidchat::capture::CARD_RGB);
    }
    seen
}

#[test]
fn a_lost_camera_sends_its_card_at_the_asked_rate_not_as_fast_as_it_can() {
    let _lock = camera_lock();
    let camera = start_camera(config(b"YUYV", Mode::Vanish, 3), 320, 240);
    let seen = watch(&camera, 4);
    let cards = seen.iter().filter(|&&c| c).count();
    assert!(cards > 0, "no card");
    // About 30 a second (the asked rate) for the seconds without a camera,
    // not hundreds.
    assert!(cards <= 4 * 30 + 10, "{cards} cards in 4 s");
    assert!(
        !camera.shutdown.is_ended(),
        "the call ended with the camera"
    );
}

#[test]
fn a_camera_that_comes_back_is_picked_up_again() {
    let _lock = camera_lock();
    let mut cfg = config(b"YUYV", Mode::Return, 3);
    cfg.back = std::time::Duration::from_millis(1500);
    let camera = start_camera(cfg, 320, 240);
    let seen = watch(&camera, 7);
    let first_card = seen
        .iter()
        .position(|&c| c)
        .expect("the camera was never lost");
    let back = seen[first_card..]
        .iter()
        .position(|&c| !c)
        .expect("the camera was never picked up again");
    let cards = seen[first_card..first_card + back].len();
    eprintln!("{cards} cards while the camera was away");
    // Real frames again, and they go on.
    assert!(seen[first_card + back..].iter().filter(|&&c| !c).count() > 30);
}
