//! H.264 for constrained links, through the `openh264` crate (Cisco's
//! encoder and decoder, built from its bundled source: no system library).
//! Baseline profile, no B-frames, one frame in, one frame out: latency
//! first. The encoder's bitrate follows the link; keyframes come when asked.
//! The decoder gets only what the wire layer has size-checked; every
//! sequence parameter set is read (with `h264-reader`) and its picture size
//! compared with the frame's before openh264 sees it, so a peer cannot make
//! the decoder allocate for a picture larger than announced. Its errors are
//! values.

use h264_reader::nal::sps::{FrameMbsFlags, SeqParameterSet};
use h264_reader::rbsp::{BitReader, decode_nal};
use openh264::OpenH264API;
use openh264::decoder::{Decoder, DecoderConfig};
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    QpRange, RateControlMode, UsageType,
};
use openh264::formats::{RgbSliceU8, YUVBuffer, YUVSource};
use yuv::{YuvPlanarImage, YuvRange, YuvStandardMatrix};

use super::{CodecError, RgbImage, check_size};

/// Bitrate before the link is measured, bits per second.
pub const START_BITRATE: u32 = 500_000;
/// A periodic keyframe at most this often, in frames (a minute at 30 fps):
/// a lost picture heals by request, not by waiting for this, and on a thin
/// link every keyframe costs a few frames.
const KEYFRAME_INTERVAL: u32 = 1800;
/// A stream's first keyframe is encoded at this share of the bitrate:
/// openh264 picks its quantizer from a table by bits per pixel, and at
/// the full rate a 640x480 keyframe comes out at nine frames' worth (18 KB
/// at 500 kbit/s), more than a thin link's queue holds, and 300 ms to
/// send. At this share it is about half that; the frames after it catch
/// up on detail at the full rate.
const FIRST_KEYFRAME_SHARE: f64 = 0.4;
/// Finest quantizer the rate control may use. Left free (0), it sinks
/// while the picture stands still (the budget goes unused), and the first
/// frame that moves again comes out 7 times the budget: 22 KB, 180 ms on a
/// 1 Mbit/s link. Below 20 the eye sees little difference.
const MIN_QP: u8 = 20;
const MAX_QP: u8 = 51;

fn h264_err(e: openh264::Error) -> CodecError {
    CodecError::H264(e.to_string())
}

/// One call's H.264 encoder.
pub struct H264Encoder {
    /// The stream's encoder, made by its first frame (options can be
    /// changed once it has encoded one).
    encoder: Option<Encoder>,
    yuv: Option<YUVBuffer>,
    fps: u32,
    bitrate: u32,
    /// The picture size of the stream, once started.
    size: Option<(usize, usize)>,
}

impl H264Encoder {
    pub fn new(fps: u32) -> Result<Self, CodecError> {
        // Made once here so that a missing encoder shows before the call.
        Self::make(fps, START_BITRATE)?;
        Ok(H264Encoder {
            encoder: None,
            yuv: None,
            fps,
            bitrate: START_BITRATE,
            size: None,
        })
    }

    fn make(fps: u32, bitrate: u32) -> Result<Encoder, CodecError> {
        let config = EncoderConfig::new()
            .usage_type(UsageType::CameraVideoRealTime)
            .profile(Profile::Baseline)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(bitrate))
            .max_frame_rate(FrameRate::from_hz(fps.max(1) as f32))
            .intra_frame_period(IntraFramePeriod::from_num_frames(KEYFRAME_INTERVAL))
            // Fast enough for 720p at 30 fps on two cores.
            .complexity(Complexity::Low)
            // Frames are dropped before the encoder (latest wins), not by its
            // rate control, which skips far too eagerly.
            .skip_frames(false)
            .qp(QpRange::new(MIN_QP, MAX_QP));
        let mut encoder =
            Encoder::with_api_config(OpenH264API::from_source(), config).map_err(h264_err)?;
        // Quiet before the first frame initialises it: otherwise openh264
        // warns on stderr that a bitrate is hard to hold without skipping.
        let mut quiet = openh264_sys2::WELS_LOG_QUIET;
        // SAFETY: TRACE_LEVEL takes an int, which lives across the call; the
        // encoder object exists from construction on.
        unsafe {
            encoder.raw_api().set_option(
                openh264_sys2::ENCODER_OPTION_TRACE_LEVEL,
                (&raw mut quiet).cast(),
            );
        }
        Ok(encoder)
    }

    /// Follows the link: a new target in bits per second (applied when it
    /// differs by more than a tenth, to spare the rate control churn).
    pub fn set_bitrate(&mut self, bps: u32) {
        let bps = bps.clamp(100_000, i32::MAX as u32);
        match &mut self.encoder {
            // The stream's first frame makes its encoder.
            None => self.bitrate = bps,
            Some(encoder) if bps.abs_diff(self.bitrate) >= self.bitrate / 10 => {
                if apply_bitrate(encoder, self.bitrate, bps) {
                    self.bitrate = bps;
                }
            }
            Some(_) => {}
        }
    }

    /// The average quantizer of the last frame encoded (20..=51; lower is
    /// finer), once the encoder has encoded one.
    pub fn last_qp(&mut self) -> Option<u32> {
        let encoder = self.encoder.as_mut()?;
        let mut stats = openh264_sys2::SEncoderStatistics::default();
        // SAFETY: the encoder is initialised (a frame was encoded) and
        // ENCODER_OPTION_GET_STATISTICS fills an SEncoderStatistics, which
        // lives across the call.
        let rc = unsafe {
            encoder.raw_api().get_option(
                openh264_sys2::ENCODER_OPTION_GET_STATISTICS,
                (&raw mut stats).cast(),
            )
        };
        (rc == 0 && stats.uiAverageFrameQP > 0).then_some(stats.uiAverageFrameQP)
    }

    /// The next frame is a keyframe (a stream's first always is).
    pub fn force_keyframe(&mut self) {
        if let Some(encoder) = &mut self.encoder {
            encoder.force_intra_frame();
        }
    }

    /// Encodes `img` into `out` (cleared first); true for a keyframe. An
    /// empty `out` (the encoder had nothing to say) is not sent.
    pub fn encode(&mut self, img: &RgbImage, out: &mut Vec<u8>) -> Result<bool, CodecError> {
        check_size(img.width, img.height)?;
        if img.width % 2 == 1 || img.height % 2 == 1 {
            return Err(CodecError::H264(format!(
                "{}x{}: H.264 needs even sides",
                img.width, img.height
            )));
        }
        let (w, h) = (img.width as usize, img.height as usize);
        let rgb = img.data.get(..w * h * 3).ok_or(CodecError::ShortBuffer {
            format: "RGB",
            len: img.data.len(),
            width: img.width,
            height: img.height,
        })?;
        // A picture of another size (the link got thinner or wider) starts
        // a new stream, with a keyframe at a share of the bitrate, which
        // the frames after it get.
        if self.size.is_some_and(|size| size != (w, h)) {
            self.encoder = None;
        }
        self.size = Some((w, h));
        let source = RgbSliceU8::new(rgb, (w, h));
        let yuv = match &mut self.yuv {
            Some(yuv) if yuv.dimensions() == (w, h) => {
                yuv.read_rgb8(source);
                yuv
            }
            slot => slot.insert(YUVBuffer::from_rgb8_source(source)),
        };
        let (encoder, first_bitrate) = match &mut self.encoder {
            Some(encoder) => (encoder, None),
            slot => {
                let first_bitrate = (f64::from(self.bitrate) * FIRST_KEYFRAME_SHARE) as u32;
                let encoder = slot.insert(Self::make(self.fps, first_bitrate)?);
                (encoder, Some(first_bitrate))
            }
        };
        let stream = encoder.encode(yuv).map_err(h264_err)?;
        out.clear();
        stream.write_vec(out);
        let keyframe = matches!(stream.frame_type(), FrameType::IDR | FrameType::I);
        // Refused: the next set_bitrate tries again.
        if let Some(first_bitrate) = first_bitrate
            && !apply_bitrate(encoder, first_bitrate, self.bitrate)
        {
            self.bitrate = first_bitrate;
        }
        Ok(keyframe)
    }
}

/// Sets a running encoder's target to `bps` bits a second (at most
/// `i32::MAX`), from `was`; false if openh264 refused it. Its ceiling moves
/// with it: openh264 refuses a target above the ceiling, which starts at
/// the stream's first bitrate (so a stream could never grow past that).
fn apply_bitrate(encoder: &mut Encoder, was: u32, bps: u32) -> bool {
    use openh264_sys2::{
        ENCODER_OPTION_BITRATE, ENCODER_OPTION_MAX_BITRATE, SPATIAL_LAYER_0, SPATIAL_LAYER_ALL,
    };
    // The target (for all layers) is never above the ceiling (our one
    // layer's), on the way up or down.
    let target = (ENCODER_OPTION_BITRATE, SPATIAL_LAYER_ALL);
    let ceiling = (ENCODER_OPTION_MAX_BITRATE, SPATIAL_LAYER_0);
    let [first, second] = if bps > was {
        [ceiling, target]
    } else {
        [target, ceiling]
    };
    set_bitrate_option(encoder, first, bps) && set_bitrate_option(encoder, second, bps)
}

/// Sets one of openh264's bitrate options for a layer; false if refused.
fn set_bitrate_option(
    encoder: &mut Encoder,
    (option, layer): (openh264_sys2::ENCODER_OPTION, openh264_sys2::LAYER_NUM),
    bps: u32,
) -> bool {
    let mut info = openh264_sys2::SBitrateInfo {
        iLayer: layer,
        iBitrate: i32::try_from(bps).unwrap_or(i32::MAX),
    };
    // SAFETY: the encoder is initialised (a frame was encoded) and both
    // bitrate options take an SBitrateInfo, which lives across the call.
    let rc = unsafe { encoder.raw_api().set_option(option, (&raw mut info).cast()) };
    rc == 0
}

/// One call's H.264 decoder.
pub struct H264Decoder {
    decoder: Decoder,
}

impl H264Decoder {
    pub fn new() -> Result<Self, CodecError> {
        let decoder = Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
            .map_err(h264_err)?;
        Ok(H264Decoder { decoder })
    }

    /// Decodes one frame of untrusted H.264 that must be `width`x`height`.
    /// With `out`, the picture is converted into it as `0RGB` pixels;
    /// without, the frame only updates the decoder's references. Ok(false)
    /// when the decoder has no picture yet.
    pub fn decode_0rgb(
        &mut self,
        data: &[u8],
        width: u32,
        height: u32,
        out: Option<&mut Vec<u32>>,
    ) -> Result<bool, CodecError> {
        check_size(width, height)?;
        check_parameter_sets(data, width, height)?;
        let Some(picture) = self.decoder.decode(data).map_err(h264_err)? else {
            return Ok(false);
        };
        let (w, h) = picture.dimensions();
        if (w, h) != (width as usize, height as usize) {
            return Err(CodecError::SizeMismatch {
                got_w: w as u32,
                got_h: h as u32,
                want_w: width,
                want_h: height,
            });
        }
        let Some(out) = out else {
            return Ok(true);
        };
        let (y_stride, u_stride, v_stride) = picture.strides();
        let planar = YuvPlanarImage {
            y_plane: picture.y(),
            y_stride: y_stride as u32,
            u_plane: picture.u(),
            u_stride: u_stride as u32,
            v_plane: picture.v(),
            v_stride: v_stride as u32,
            width,
            height,
        };
        out.resize(w * h, 0);
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(out.as_mut_slice());
        // BGRA bytes are 0RGB little-endian u32s; ARGB on big endian.
        let convert = if cfg!(target_endian = "little") {
            yuv::yuv420_to_bgra
        } else {
            yuv::yuv420_to_rgba
        };
        convert(
            &planar,
            bytes,
            width * 4,
            YuvRange::Limited,
            YuvStandardMatrix::Bt601,
        )
        .map_err(|e| CodecError::Convert(e.to_string()))?;
        Ok(true)
    }
}

/// NAL unit type of a sequence parameter set.
const NAL_SPS: u8 = 7;
/// NAL unit types a baseline stream is made of: slices (1), IDR slices
/// (5), SEI (6), SPS (7), PPS (8), access unit delimiters (9), end of
/// sequence and of stream (10, 11) and filler (12). Anything else (data
/// partitions, SPS extensions, SVC and MVC units, subset SPS: parsed by
/// openh264, not checked here) is refused before the decoder sees it.
const BASELINE_NAL_TYPES: [u8; 9] = [1, 5, 6, 7, 8, 9, 10, 11, 12];
/// Most reference frames an SPS may ask for: the decoder keeps that many
/// pictures (and two more) of the full macroblock size. Our encoder uses 1.
const MAX_REF_FRAMES: u32 = 4;

/// The NAL units of an Annex B stream, without their start codes (nor the
/// zero byte a four-byte start code leaves on the unit before it: a NAL
/// unit never ends in a zero byte).
fn nal_units(data: &[u8]) -> Vec<&[u8]> {
    let starts: Vec<usize> = data
        .windows(3)
        .enumerate()
        .filter(|(_, w)| *w == [0, 0, 1])
        .map(|(i, _)| i + 3)
        .collect();
    starts
        .iter()
        .enumerate()
        .filter_map(|(n, &start)| {
            let end = starts.get(n + 1).map_or(data.len(), |next| next - 3);
            let unit = data.get(start..end)?;
            let len = unit.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            unit.get(..len)
        })
        .collect()
}

/// Every NAL unit in `data` must be of a baseline stream, and every SPS
/// must describe a `width`x`height` picture, cropped and uncropped (its
/// macroblocks just cover that size), with few reference frames: checked
/// before the decoder, which allocates what an SPS says (an SPS for
/// 4096x2304 cropped to 16x16 would pass a check of the cropped size).
fn check_parameter_sets(data: &[u8], width: u32, height: u32) -> Result<(), CodecError> {
    for nal in nal_units(data) {
        let kind = nal.first().map_or(0, |h| h & 0x1f);
        if !BASELINE_NAL_TYPES.contains(&kind) {
            return Err(CodecError::H264(format!(
                "NAL unit type {kind} is not part of a baseline stream"
            )));
        }
        if kind != NAL_SPS {
            continue;
        }
        let bad = |why: String| CodecError::H264(format!("bad sequence parameter set: {why}"));
        let rbsp = decode_nal(nal).map_err(|e| bad(e.to_string()))?;
        let sps = SeqParameterSet::from_bits(BitReader::new(&rbsp[..]))
            .map_err(|e| bad(format!("{e:?}")))?;
        if sps.max_num_ref_frames > MAX_REF_FRAMES {
            return Err(bad(format!(
                "{} reference frames, over the {MAX_REF_FRAMES} allowed",
                sps.max_num_ref_frames
            )));
        }
        let field_rows = match sps.frame_mbs_flags {
            FrameMbsFlags::Frames => 1,
            FrameMbsFlags::Fields { .. } => 2,
        };
        let mb_w = u64::from(sps.pic_width_in_mbs_minus1) + 1;
        let mb_h = (u64::from(sps.pic_height_in_map_units_minus1) + 1) * field_rows;
        let covers = |mbs: u64, pixels: u32| mbs == u64::from(pixels).div_ceil(16);
        if !covers(mb_w, width) || !covers(mb_h, height) {
            return Err(bad(format!(
                "its {}x{} macroblocks are not the {width}x{height} picture announced",
                mb_w * 16,
                mb_h * 16
            )));
        }
        let (w, h) = sps.pixel_dimensions().map_err(|e| bad(format!("{e:?}")))?;
        if (w, h) != (width, height) {
            return Err(CodecError::SizeMismatch {
                got_w: w,
                got_h: h,
                want_w: width,
                want_h: height,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u32) -> RgbImage {
        let (w, h) = (160u32, 96u32);
        let data = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                let v = ((x + n * 3) % w * 255 / w) as u8;
                [v, (y * 255 / h) as u8, 100]
            })
            .collect();
        RgbImage {
            width: w,
            height: h,
            data,
        }
    }

    fn green(px: u32) -> u32 {
        (px >> 8) & 0xFF
    }

    #[test]
    fn round_trip_and_keyframes() {
        let mut enc = H264Encoder::new(30).unwrap();
        let mut dec = H264Decoder::new().unwrap();
        let (mut bits, mut px) = (Vec::new(), Vec::new());
        assert!(
            enc.encode(&frame(0), &mut bits).unwrap(),
            "the first frame is a keyframe"
        );
        assert!(dec.decode_0rgb(&bits, 160, 96, Some(&mut px)).unwrap());
        // Green runs top to bottom 0..255: check the middle row.
        let g = green(px[48 * 160 + 80]);
        assert!((118..=138).contains(&g), "green {g}");
        assert!(!enc.encode(&frame(1), &mut bits).unwrap(), "then P-frames");
        enc.force_keyframe();
        assert!(
            enc.encode(&frame(2), &mut bits).unwrap(),
            "a keyframe on request"
        );
    }

    /// A 640x480 picture of noise: as costly to encode as a camera's.
    fn noise(seed: u32) -> RgbImage {
        let (w, h) = (640u32, 480u32);
        let mut x = seed.wrapping_mul(2_654_435_761) | 1;
        let data = (0..w * h * 3)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect();
        RgbImage {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn a_streams_first_keyframe_is_encoded_at_a_share_of_the_bitrate() {
        let mut ours = H264Encoder::new(30).unwrap();
        ours.set_bitrate(500_000);
        let mut full = H264Encoder::make(30, 500_000).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        assert!(ours.encode(&noise(1), &mut a).unwrap());
        let yuv = YUVBuffer::from_rgb8_source(RgbSliceU8::new(&noise(1).data, (640, 480)));
        full.encode(&yuv).unwrap().write_vec(&mut b);
        assert!(
            a.len() * 3 < b.len() * 2,
            "{} bytes against {} at the full rate",
            a.len(),
            b.len()
        );
        // The frames after it go at the full rate (openh264 took it).
        assert!(!ours.encode(&noise(2), &mut a).unwrap());
        assert_eq!(ours.bitrate, 500_000);
    }

    #[test]
    fn a_streams_bitrate_grows_past_where_it_began_and_back() {
        let mut enc = H264Encoder::new(30).unwrap();
        enc.set_bitrate(200_000);
        let mut out = Vec::new();
        enc.encode(&noise(1), &mut out).unwrap();
        for bps in [2_000_000, 300_000, 5_000_000] {
            enc.set_bitrate(bps);
            assert_eq!(enc.bitrate, bps, "openh264 refused {bps}");
            enc.encode(&noise(2), &mut out).unwrap();
        }
    }

    #[test]
    fn dropping_before_the_encoder_leaves_no_missing_reference() {
        let mut enc = H264Encoder::new(30).unwrap();
        let mut dec = H264Decoder::new().unwrap();
        let (mut bits, mut px) = (Vec::new(), Vec::new());
        // Only some captured frames reach the encoder; every encoded one decodes.
        for n in (0..40).filter(|n| n % 3 != 1) {
            enc.encode(&frame(n), &mut bits).unwrap();
            assert!(
                dec.decode_0rgb(&bits, 160, 96, Some(&mut px)).unwrap(),
                "frame {n} did not decode"
            );
        }
    }

    #[test]
    fn a_keyframe_recovers_a_decoder_fed_garbage() {
        let mut enc = H264Encoder::new(30).unwrap();
        let mut dec = H264Decoder::new().unwrap();
        let (mut bits, mut px) = (Vec::new(), Vec::new());
        enc.encode(&frame(0), &mut bits).unwrap();
        dec.decode_0rgb(&bits, 160, 96, Some(&mut px)).unwrap();
        enc.encode(&frame(1), &mut bits).unwrap();
        let mut broken = bits.clone();
        let len = broken.len();
        broken.truncate(len / 2);
        broken.extend((0..200u32).map(|i| (i * 37) as u8));
        // Garbage may fail or decode into rubbish; it must not panic.
        let _ = dec.decode_0rgb(&broken, 160, 96, Some(&mut px));
        enc.force_keyframe();
        enc.encode(&frame(2), &mut bits).unwrap();
        assert!(
            dec.decode_0rgb(&bits, 160, 96, Some(&mut px)).unwrap(),
            "the keyframe decodes"
        );
        let g = green(px[48 * 160 + 80]);
        assert!((118..=138).contains(&g), "green {g} after recovery");
    }

    #[test]
    fn garbage_and_wrong_sizes_are_errors() {
        let mut dec = H264Decoder::new().unwrap();
        let mut px = Vec::new();
        for junk in [
            vec![],
            vec![0, 0, 0, 1, 0x65, 1, 2, 3],
            (0..5000u32).map(|i| ((i * 7919) >> 3) as u8).collect(),
        ] {
            let _ = dec.decode_0rgb(&junk, 160, 96, Some(&mut px));
        }
        let mut enc = H264Encoder::new(30).unwrap();
        let mut bits = Vec::new();
        enc.encode(&frame(0), &mut bits).unwrap();
        let mut fresh = H264Decoder::new().unwrap();
        let wrong = fresh
            .decode_0rgb(&bits, 320, 96, Some(&mut px))
            .unwrap_err();
        assert!(wrong.to_string().contains("160x96 macroblocks"), "{wrong}");
    }

    #[test]
    fn an_sps_larger_than_announced_is_refused_before_decoding() {
        let mut enc = H264Encoder::new(30).unwrap();
        let mut bits = Vec::new();
        let big = RgbImage::new(640, 480);
        enc.encode(&big, &mut bits).unwrap();
        assert_eq!(
            nal_units(&bits)
                .iter()
                .filter(|n| n[0] & 0x1f == NAL_SPS)
                .count(),
            1
        );
        check_parameter_sets(&bits, 640, 480).unwrap();
        let refused = check_parameter_sets(&bits, 160, 96)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("640x480 macroblocks"), "{refused}");
        // A frame that announces 160x96 but carries this SPS never reaches openh264.
        let mut dec = H264Decoder::new().unwrap();
        assert!(dec.decode_0rgb(&bits, 160, 96, None).is_err());
        // Garbage after an SPS start code is an error, not a panic.
        let junk = [0, 0, 0, 1, 0x67, 0xff, 0xff, 0xff, 0, 0, 1, 0x67];
        assert!(check_parameter_sets(&junk, 160, 96).is_err());
    }

    /// Bits of an H.264 bitstream, written most significant first.
    #[derive(Default)]
    struct Bits {
        bytes: Vec<u8>,
        used: u32,
    }

    impl Bits {
        fn bit(&mut self, one: bool) {
            if self.used.is_multiple_of(8) {
                self.bytes.push(0);
            }
            if one {
                *self.bytes.last_mut().unwrap() |= 0x80 >> (self.used % 8);
            }
            self.used += 1;
        }

        fn bits(&mut self, value: u32, n: u32) {
            (0..n).rev().for_each(|i| self.bit(value >> i & 1 == 1));
        }

        /// Unsigned exp-Golomb.
        fn ue(&mut self, value: u32) {
            let n = 32 - (value + 1).leading_zeros();
            self.bits(0, n - 1);
            self.bits(value + 1, n);
        }

        /// The RBSP trailing bits, then emulation prevention, as a NAL unit
        /// of `kind` with its start code.
        fn nal(mut self, kind: u8) -> Vec<u8> {
            self.bit(true);
            while !self.used.is_multiple_of(8) {
                self.bit(false);
            }
            let mut out = vec![0, 0, 0, 1, 0x60 | kind];
            let mut zeros = 0;
            for b in self.bytes {
                if zeros == 2 && b <= 3 {
                    out.push(3);
                    zeros = 0;
                }
                out.push(b);
                zeros = if b == 0 { zeros + 1 } else { 0 };
            }
            out
        }
    }

    /// A baseline SPS of `mb_w`x`mb_h` macroblocks cropped to `crop_to`,
    /// with `refs` reference frames.
    fn sps(mb_w: u32, mb_h: u32, crop_to: (u32, u32), refs: u32) -> Vec<u8> {
        let mut b = Bits::default();
        b.bits(66, 8); // profile: baseline
        b.bits(0xc0, 8); // constraint flags
        b.bits(51, 8); // level 5.1: up to 36,864 macroblocks
        b.ue(0); // seq_parameter_set_id
        b.ue(0); // log2_max_frame_num_minus4
        b.ue(2); // pic_order_cnt_type
        b.ue(refs);
        b.bit(false); // gaps_in_frame_num_value_allowed_flag
        b.ue(mb_w - 1);
        b.ue(mb_h - 1);
        b.bit(true); // frame_mbs_only_flag
        b.bit(true); // direct_8x8_inference_flag
        let (right, bottom) = ((mb_w * 16 - crop_to.0) / 2, (mb_h * 16 - crop_to.1) / 2);
        b.bit(right > 0 || bottom > 0); // frame_cropping_flag
        if right > 0 || bottom > 0 {
            [0, right, 0, bottom].into_iter().for_each(|v| b.ue(v));
        }
        b.bit(false); // vui_parameters_present_flag
        b.nal(NAL_SPS)
    }

    #[test]
    fn a_crop_bomb_is_refused_before_the_decoder_sees_it() {
        // 4096x2304 of macroblocks cropped to 16x16: a check of the
        // cropped size alone passes it, and openh264 would allocate the
        // full size for each of its reference pictures.
        let bomb = sps(256, 144, (16, 16), 1);
        let rbsp = decode_nal(&bomb[4..]).unwrap();
        let parsed = SeqParameterSet::from_bits(BitReader::new(&rbsp[..])).unwrap();
        assert_eq!(
            parsed.pixel_dimensions().unwrap(),
            (16, 16),
            "not a crop bomb"
        );
        let refused = check_parameter_sets(&bomb, 16, 16).unwrap_err().to_string();
        assert!(refused.contains("4096x2304 macroblocks"), "{refused}");
        // The honest SPS for 16x16 and for an odd-looking 1280x720 pass.
        check_parameter_sets(&sps(1, 1, (16, 16), 1), 16, 16).unwrap();
        check_parameter_sets(&sps(80, 45, (1280, 720), 1), 1280, 720).unwrap();
        check_parameter_sets(&sps(40, 30, (640, 480), 1), 640, 480).unwrap();
        // Many reference pictures are refused, however small.
        let refs = check_parameter_sets(&sps(1, 1, (16, 16), 16), 16, 16).unwrap_err();
        assert!(refs.to_string().contains("16 reference frames"), "{refs}");
        let mut dec = H264Decoder::new().unwrap();
        assert!(dec.decode_0rgb(&bomb, 16, 16, None).is_err());
    }

    #[test]
    fn nal_units_a_baseline_stream_never_has_are_refused() {
        // A subset SPS (15) is parsed by openh264 but checked by nobody.
        let mut subset = sps(1, 1, (16, 16), 1);
        subset[4] = 0x60 | 15;
        let refused = check_parameter_sets(&subset, 16, 16)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("NAL unit type 15"), "{refused}");
        for kind in [2, 14, 20] {
            let unit = [0, 0, 0, 1, 0x60 | kind, 0x88];
            assert!(check_parameter_sets(&unit, 16, 16).is_err(), "type {kind}");
        }
        // What our own encoder makes passes.
        let mut enc = H264Encoder::new(30).unwrap();
        let mut bits = Vec::new();
        for n in 0..5 {
            enc.encode(&frame(n), &mut bits).unwrap();
            check_parameter_sets(&bits, 160, 96).unwrap();
        }
    }

    #[test]
    fn only_the_frame_asked_for_is_converted() {
        let mut enc = H264Encoder::new(30).unwrap();
        let mut dec = H264Decoder::new().unwrap();
        let (mut bits, mut px) = (Vec::new(), Vec::new());
        enc.encode(&frame(0), &mut bits).unwrap();
        assert!(dec.decode_0rgb(&bits, 160, 96, None).unwrap());
        assert!(px.is_empty());
        enc.encode(&frame(1), &mut bits).unwrap();
        assert!(dec.decode_0rgb(&bits, 160, 96, Some(&mut px)).unwrap());
        assert_eq!(px.len(), 160 * 96);
    }
}
