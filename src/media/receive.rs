//! The `decoder` thread: the peer's frames, in order, decoded, the newest
//! handed to the main thread (latest wins). Every H.264 frame is decoded
//! (each is a reference for the next), but only the newest of those that
//! waited together is converted to pixels; of JPEG frames only the newest
//! is decoded at all.

use std::sync::Arc;
use std::thread::{self, JoinHandle};

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};

use super::{RemoteFrame, VideoOut};
use crate::call::{EndReason, ProtocolError, Shutdown, unix_us};
use crate::codec::decode_jpeg_0rgb;
use crate::codec::h264::H264Decoder;
use crate::handoff::Latest;
use crate::net::link::{POLL, Picture};
use crate::stats::Counters;
use crate::wire::{Frame, VideoFormat};

/// The decoder thread's state.
pub struct Decoding {
    shutdown: Shutdown,
    counters: Arc<Counters>,
    /// What became of each frame, back to the call.
    pictures: Sender<Picture>,
    /// The H.264 decoder, made at the first H.264 frame.
    h264: Option<H264Decoder>,
    /// The picture was lost: P-frames are skipped until a keyframe (the
    /// call asked for one), and not counted as more errors.
    awaiting_keyframe: bool,
    remote: Latest<RemoteFrame>,
    /// Pixel buffers the main thread is done with.
    spare: Receiver<Vec<u32>>,
}

impl Decoding {
    /// Starts the decoder thread on the peer's `frames`.
    pub fn start(
        frames: Receiver<Frame>,
        pictures: Sender<Picture>,
        out: VideoOut,
        shutdown: Shutdown,
        counters: Arc<Counters>,
    ) -> Result<JoinHandle<()>> {
        let decoding = Decoding {
            shutdown,
            counters,
            pictures,
            h264: None,
            awaiting_keyframe: false,
            remote: out.frames,
            spare: out.spare,
        };
        thread::Builder::new()
            .name("decoder".into())
            .spawn(move || decoding.run(&frames))
            .context("cannot start the decoder thread")
    }

    fn run(mut self, frames: &Receiver<Frame>) {
        let _guard = self.shutdown.crash_guard("decoder");
        let mut batch = Vec::new();
        while !self.shutdown.is_ended() {
            match frames.recv_timeout(POLL) {
                Ok(frame) => batch.push(frame),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            }
            batch.extend(frames.try_iter());
            if let Err(reason) = self.show(&mut batch) {
                self.shutdown.end(reason);
            }
        }
    }

    /// Decodes what arrived together and shows the newest.
    fn show(&mut self, frames: &mut Vec<Frame>) -> Result<(), EndReason> {
        let count = frames.len();
        for (n, frame) in frames.drain(..).enumerate() {
            // A hang-up does not wait for the rest of a batch.
            if self.shutdown.is_ended() {
                break;
            }
            let newest = n + 1 == count;
            if !newest && frame.format == VideoFormat::Jpeg {
                Counters::add(&self.counters.receive_skipped, 1);
                continue;
            }
            let mut pixels = self.spare.try_recv().unwrap_or_default();
            let decoded = match frame.format {
                VideoFormat::Jpeg => {
                    decode_jpeg_0rgb(&frame.data, frame.width, frame.height, &mut pixels)
                        .map(|()| true)
                        .map_err(|e| EndReason::Protocol(ProtocolError::BadVideo(e)))?
                }
                VideoFormat::H264 if self.awaiting_keyframe && !frame.keyframe => false,
                VideoFormat::H264 => {
                    self.awaiting_keyframe = false;
                    let decoder = match &mut self.h264 {
                        Some(decoder) => decoder,
                        slot => slot.insert(
                            H264Decoder::new()
                                .map_err(|e| EndReason::Protocol(ProtocolError::Decoder(e)))?,
                        ),
                    };
                    let out = newest.then_some(&mut pixels);
                    match decoder.decode_0rgb(&frame.data, frame.width, frame.height, out) {
                        Ok(shown) => {
                            let _ = self.pictures.send(Picture::Decoded);
                            shown && newest
                        }
                        Err(e) => {
                            // The call asks for a keyframe; too many errors end it.
                            let why = ProtocolError::BadVideo(e);
                            let _ = self.pictures.send(Picture::Lost(why));
                            self.awaiting_keyframe = true;
                            false
                        }
                    }
                }
            };
            if !decoded {
                if !newest {
                    Counters::add(&self.counters.receive_skipped, 1);
                }
                continue;
            }
            self.remote.put(RemoteFrame {
                seq: frame.seq,
                capture_us: frame.capture_us,
                decoded_us: unix_us(),
                bytes: frame.data.len() as u64,
                format: frame.format,
                quality: frame.quality,
                keyframe: frame.keyframe,
                encode_us: frame.encode_us,
                width: frame.width,
                height: frame.height,
                pixels,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The decoder thread given video that does not decode as announced:
    //! the call ends, with why.
    use super::*;
    use crate::codec::{CodecError, RgbImage, encode_jpeg};
    use crate::net::connection::tests::protocol_error;
    use crossbeam_channel::bounded;

    fn ends_with(frame: Frame) -> EndReason {
        let shutdown = Shutdown::default();
        let (frames_in, frames) = bounded(1);
        let (pictures, _decoded) = crossbeam_channel::unbounded();
        let (remote, _shown) = crate::handoff::latest();
        let (_spare_in, spare) = bounded(1);
        let out = VideoOut {
            frames: remote,
            spare,
        };
        let decoder =
            Decoding::start(frames, pictures, out, shutdown.clone(), Arc::default()).unwrap();
        frames_in.send(frame).unwrap();
        decoder.join().unwrap();
        shutdown.reason().expect("the call did not end")
    }

    fn jpeg_frame(width: u32, height: u32, data: Vec<u8>) -> Frame {
        Frame {
            seq: 1,
            capture_us: 1,
            width,
            height,
            format: VideoFormat::Jpeg,
            keyframe: true,
            quality: 75,
            encode_us: 0,
            data,
        }
    }

    #[test]
    fn a_frame_whose_size_disagrees_with_its_jpeg_ends_the_call() {
        let mut jpeg = Vec::new();
        let image = RgbImage {
            width: 32,
            height: 32,
            data: vec![90; 32 * 32 * 3],
        };
        encode_jpeg(&image, 80, &mut jpeg).unwrap();
        assert_eq!(
            protocol_error(ends_with(jpeg_frame(640, 480, jpeg))),
            ProtocolError::BadVideo(CodecError::SizeMismatch {
                got_w: 32,
                got_h: 32,
                want_w: 640,
                want_h: 480
            })
        );
    }

    #[test]
    fn a_corrupt_jpeg_ends_the_call() {
        let junk = (0..5000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
            .collect();
        let why = protocol_error(ends_with(jpeg_frame(64, 64, junk)));
        assert!(matches!(why, ProtocolError::BadVideo(_)), "{why:?}");
    }
}
