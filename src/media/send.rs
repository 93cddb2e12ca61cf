//! The `encoder` thread: the newest captured frame, when the link can take
//! it, sized and encoded for the link, handed to the call. What to send
//! and how big ([`Pacing`]) is data, with `now` and the link passed in, so
//! a simulated link drives it in tests; the thread adds the scaling and
//! the encoders.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender, select};

use super::ladder::{H264_BITS_PER_PIXEL, JPEG_BITS_PER_PIXEL, SizeLadder};
use super::rate::{LinkSample, RateController};
use super::{CAMERA_QUALITY, H264_QUALITY, VideoIn};
use crate::call::{EncodingError, EndReason, Shutdown};
use crate::capture::CapturedFrame;
use crate::codec::h264::H264Encoder;
use crate::codec::scale::Scaler;
use crate::codec::{CodecError, RgbImage, encode_jpeg};
use crate::net::link::{LinkView, POLL};
use crate::stats::Counters;
use crate::wire::{Frame, VideoFormat};

/// JPEG quality of the first frames, before the link is measured.
const START_QUALITY: u8 = 75;
/// H.264 bits per pixel when the link allows: 1.4 Mbit/s at 640x480@30,
/// 4.1 Mbit/s at 720p, about what x264's zerolatency calls use.
const H264_BITS_PER_PIXEL_ENOUGH: f64 = 0.15;

/// What goes and how big, as data: the rate controller and the size ladder.
#[derive(Debug, Clone)]
pub struct Pacing {
    pub rate: RateController,
    ladder: Option<SizeLadder>,
    fps: u32,
    /// Whether the encoder works to a bitrate (H.264) or a quality (JPEG).
    h264: bool,
}

impl Pacing {
    pub fn new(fps: u32, h264: bool) -> Pacing {
        Pacing {
            rate: RateController::new(fps, START_QUALITY),
            ladder: None,
            fps,
            h264,
        }
    }

    /// For a frame of `full` size captured at `now`: the size to send it
    /// at, or None when it should be dropped before the encoder (it would
    /// only wait behind what is on its way: the next one will be fresher).
    pub fn choose(
        &mut self,
        full: (u32, u32),
        link: LinkSample,
        now: Instant,
    ) -> Option<(u32, u32)> {
        let link_free = self.rate.on_frame_captured(Some(link), now);
        // JPEG frames stand alone, so a too-thin link also spaces them
        // out; H.264's own rate control spreads bits over frames.
        if !link_free || (!self.h264 && !self.rate.ready(now)) {
            return None;
        }
        let bits_per_pixel = if self.h264 {
            H264_BITS_PER_PIXEL
        } else {
            JPEG_BITS_PER_PIXEL
        };
        // A source whose size changed gets a ladder of its own (a rung
        // must never be larger than the picture).
        let ladder = match &mut self.ladder {
            Some(ladder) if ladder.full_size() == full => ladder,
            slot => slot.insert(SizeLadder::new(full.0, full.1, self.fps, bits_per_pixel)),
        };
        ladder.update(self.rate.bitrate(), now);
        Some(ladder.size())
    }

    /// Bits a second the H.264 encoder should aim at for a picture of `size`.
    pub fn h264_bitrate(&self, (width, height): (u32, u32)) -> u32 {
        // The target follows the measured link (ramping up at the start of
        // a call), up to what the picture needs.
        let pixels_per_s = f64::from(width * height) * f64::from(self.fps);
        let enough = pixels_per_s * H264_BITS_PER_PIXEL_ENOUGH;
        self.rate.target_bitrate().min(enough) as u32
    }

    /// A frame of `bytes` went, and the link then.
    pub fn sent(&mut self, bytes: usize, link: LinkSample, now: Instant) {
        self.rate.on_frame_sent(bytes, Some(link), now);
    }
}

/// The encoder thread's state.
pub struct Encoding {
    view: LinkView,
    outgoing: Sender<Frame>,
    shutdown: Shutdown,
    counters: Arc<Counters>,
    pacing: Pacing,
    /// Reused buffer for an encoded picture.
    encoded: Vec<u8>,
    scaler: Scaler,
    /// Reused buffer for a picture scaled down for the link.
    scaled: RgbImage,
    /// The H.264 encoder, when that is what we send.
    h264: Option<H264Encoder>,
    /// Back to the capture thread once encoded.
    recycle: Sender<RgbImage>,
}

impl Encoding {
    /// Starts the encoder thread: frames from `video`, sent as `format`
    /// at `fps` through `outgoing`, chosen by `view`.
    pub fn start(
        video: VideoIn,
        (view, outgoing): (LinkView, Sender<Frame>),
        (fps, format): (u32, VideoFormat),
        shutdown: Shutdown,
        counters: Arc<Counters>,
    ) -> Result<JoinHandle<()>> {
        let h264 = match format {
            VideoFormat::H264 => Some(H264Encoder::new(fps)?),
            VideoFormat::Jpeg => None,
        };
        let encoding = Encoding {
            view,
            outgoing,
            shutdown,
            counters,
            pacing: Pacing::new(fps, h264.is_some()),
            encoded: Vec::new(),
            scaler: Scaler::default(),
            scaled: RgbImage::new(2, 2),
            h264,
            recycle: video.recycle,
        };
        thread::Builder::new()
            .name("encoder".into())
            .spawn(move || encoding.run(&video.frames))
            .context("cannot start the encoder thread")
    }

    fn run(mut self, frames: &Receiver<CapturedFrame>) {
        let _guard = self.shutdown.crash_guard("encoder");
        while !self.shutdown.is_ended() {
            select! {
                recv(frames) -> frame => match frame {
                    Ok(frame) => if let Err(reason) = self.send_frame(frame) {
                        self.shutdown.end(reason);
                    },
                    Err(_) => return,
                },
                default(POLL) => {},
            }
        }
    }

    fn send_frame(&mut self, frame: CapturedFrame) -> Result<(), EndReason> {
        let paused = self.counters.video_paused.load(Ordering::Relaxed);
        // A new connection: its link is not known; start over, small.
        if self.view.take_new_link() {
            self.pacing = Pacing::new(self.pacing.fps, self.pacing.h264);
        }
        let keyframe_wanted = self.view.take_keyframe_wanted();
        if let Some(encoder) = self.h264.as_mut().filter(|_| keyframe_wanted) {
            encoder.force_keyframe();
        }
        // Not a frame of the camera before our person said yes.
        if paused || !self.view.may_send_video() {
            // A resumed picture starts from a keyframe.
            if let Some(encoder) = self.h264.as_mut() {
                encoder.force_keyframe();
            }
            return Ok(());
        }
        let full = (frame.image.width, frame.image.height);
        let link = self.view.sample();
        let Some((width, height)) = self.pacing.choose(full, link, Instant::now()) else {
            Counters::add(&self.counters.rate_skipped, 1);
            return Ok(());
        };
        let (image, camera_jpeg) = if (width, height) != full {
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
            &self.pacing,
            &mut self.encoded,
        )?
        else {
            Counters::add(&self.counters.rate_skipped, 1);
            return Ok(());
        };
        // Unless the self-view still shows it, the capture thread reuses it.
        if let Ok(image) = Arc::try_unwrap(frame.image) {
            let _ = self.recycle.try_send(image);
        }
        let bytes = self.encoded.len();
        let sent = Frame {
            seq: frame.seq,
            capture_us: frame.capture_us,
            width,
            height,
            format,
            keyframe,
            quality,
            encode_us,
            data: std::mem::take(&mut self.encoded),
        };
        // A frame that was encoded is never dropped: the call thread takes
        // it as soon as it is free (gone: the call ended).
        if self.outgoing.send(sent).is_err() {
            return Ok(());
        }
        self.pacing.sent(bytes, self.view.sample(), Instant::now());
        self.count(format, quality, (width, height));
        Ok(())
    }

    fn count(&mut self, format: VideoFormat, quality: u8, (width, height): (u32, u32)) {
        let c = &self.counters;
        Counters::add(&c.frames_sent, 1);
        Counters::set(&c.quality, quality.into());
        let h264 = format == VideoFormat::H264;
        c.sending_h264.store(h264, Ordering::Relaxed);
        if let Some(qp) = self
            .h264
            .as_mut()
            .filter(|_| h264)
            .and_then(|e| e.last_qp())
        {
            Counters::set(&c.quantizer, qp.into());
        }
        Counters::set(&c.sent_width, width.into());
        Counters::set(&c.sent_height, height.into());
        let capacity_kbps = self
            .pacing
            .rate
            .capacity()
            .map_or(0.0, |c| c * 8.0 / 1000.0);
        Counters::set(&c.link_kbps, capacity_kbps as u64);
    }
}

/// Encodes `image` into `out` (the camera's own JPEG, when given and it
/// fits the link, goes as it is): (format, keyframe, quality, encode_us),
/// or None when the encoder had nothing to send.
fn encode(
    image: &RgbImage,
    camera_jpeg: Option<&[u8]>,
    h264: &mut Option<H264Encoder>,
    pacing: &Pacing,
    out: &mut Vec<u8>,
) -> Result<Option<(VideoFormat, bool, u8, u32)>, EndReason> {
    let start = Instant::now();
    let rate = &pacing.rate;
    let (format, keyframe, quality) = match h264 {
        Some(encoder) => {
            encoder.set_bitrate(pacing.h264_bitrate((image.width, image.height)));
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
    EndReason::Encoding(EncodingError::Codec(e))
}
