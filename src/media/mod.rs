//! The media stage of a call, between the capture and the call's network
//! threads: the `encoder` thread (`send`) picks the newest captured frame
//! when the link can take it, sizes it for the link (`ladder`), sets its
//! quality or bitrate (`rate`), encodes it and hands it to the call; the
//! `decoder` thread (`receive`) decodes the peer's frames in order and
//! hands the newest picture to the main thread. It sees the network only
//! through `net::link::MediaPorts`.

pub mod ladder;
pub mod rate;
pub mod receive;
pub mod record;
pub mod send;
#[cfg(test)]
mod sim;

use crossbeam_channel::{Receiver, Sender};

use crate::capture::CapturedFrame;
use crate::codec::RgbImage;
use crate::handoff::Latest;
use crate::wire::VideoFormat;

/// The `quality` of a frame that is the camera's own JPEG, passed through.
pub const CAMERA_QUALITY: u8 = 0;
/// The `quality` of an H.264 frame (its encoder works to a bitrate).
pub const H264_QUALITY: u8 = 100;

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
    /// Whether it stands alone (every JPEG; an H.264 keyframe).
    pub keyframe: bool,
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
