//! Pictures and their encodings: the RGB image every source produces, JPEG
//! encoding (jpeg-encoder, SIMD, 4:2:0) and decoding of untrusted JPEG
//! (zune-jpeg, with size limits), and camera pixel formats to RGB (`yuv`).
//!
//! Nothing here panics on bad input: sizes are checked before any slice is
//! taken, and decoders report errors.

use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
use yuv::{
    YuvBiPlanarImage, YuvConversionMode, YuvPackedImage, YuvPlanarImage, YuvRange,
    YuvStandardMatrix,
};
use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

use crate::shared::Shared;
use crate::wire::{MAX_DIMENSION, VideoFormat};

pub mod h264;
pub mod scale;

/// `--codec`: which video format to prefer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecChoice {
    /// H.264 when both sides have it (`auto`, the default, is this): at
    /// every size measured (640x480 to 1080p) it is faster than MJPEG on
    /// two cores, in a tenth of the bits.
    H264,
    /// JPEG; an MJPEG camera's own frames pass through while they fit.
    Mjpeg,
}

impl CodecChoice {
    /// The formats we send, preferred first, for a `width`x`height` source
    /// (0x0: we send none). Every side also receives both. H.264 needs even
    /// sides: an odd-sized source sends JPEG.
    pub fn offer(self, width: u32, height: u32) -> Vec<VideoFormat> {
        use VideoFormat::{H264, Jpeg};
        if width % 2 == 1 || height % 2 == 1 {
            return vec![Jpeg];
        }
        match self {
            CodecChoice::H264 => vec![H264, Jpeg],
            CodecChoice::Mjpeg => vec![Jpeg],
        }
    }
}

/// An 8-bit RGB picture, rows packed without padding.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    /// `width * height * 3` bytes.
    pub data: Vec<u8>,
}

impl RgbImage {
    /// A black picture.
    pub fn new(width: u32, height: u32) -> Self {
        RgbImage {
            width,
            height,
            data: vec![0; rgb_len(width, height)],
        }
    }
}

/// Bytes of a packed RGB picture.
pub fn rgb_len(width: u32, height: u32) -> usize {
    width as usize * height as usize * 3
}

/// What can go wrong turning bytes into pictures and back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("JPEG does not decode: {0}")]
    Jpeg(String),
    #[error("picture is {got_w}x{got_h}, expected {want_w}x{want_h}")]
    SizeMismatch {
        got_w: u32,
        got_h: u32,
        want_w: u32,
        want_h: u32,
    },
    #[error("picture size {width}x{height} is outside 1..={MAX_DIMENSION} pixels a side")]
    BadSize { width: u32, height: u32 },
    #[error("{format} buffer of {len} bytes is too short for {width}x{height}")]
    ShortBuffer {
        format: &'static str,
        len: usize,
        width: u32,
        height: u32,
    },
    #[error("pixel conversion failed: {0}")]
    Convert(String),
    #[error("JPEG encoding failed: {0}")]
    Encode(#[source] Shared<jpeg_encoder::EncodingError>),
    #[error("H.264: {0}")]
    H264(String),
}

impl From<jpeg_encoder::EncodingError> for CodecError {
    fn from(e: jpeg_encoder::EncodingError) -> Self {
        CodecError::Encode(Shared::new(e))
    }
}

pub(crate) fn check_size(width: u32, height: u32) -> Result<(), CodecError> {
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(CodecError::BadSize { width, height });
    }
    Ok(())
}

/// The first `need` bytes of `data`: cameras hand out whole buffers, often
/// longer than the picture, and the converters want the exact size.
fn exact<'a>(
    format: &'static str,
    data: &'a [u8],
    need: usize,
    width: u32,
    height: u32,
) -> Result<&'a [u8], CodecError> {
    data.get(..need).ok_or(CodecError::ShortBuffer {
        format,
        len: data.len(),
        width,
        height,
    })
}

/// Encodes `img` as a baseline 4:2:0 JPEG at `quality` (1..=100) into `out`
/// (cleared first, capacity kept).
pub fn encode_jpeg(img: &RgbImage, quality: u8, out: &mut Vec<u8>) -> Result<(), CodecError> {
    check_size(img.width, img.height)?;
    exact(
        "RGB",
        &img.data,
        rgb_len(img.width, img.height),
        img.width,
        img.height,
    )?;
    out.clear();
    let mut encoder = Encoder::new(&mut *out, quality.clamp(1, 100));
    encoder.set_sampling_factor(SamplingFactor::F_2_2);
    // `check_size` bounds both sides by MAX_DIMENSION, which fits in u16.
    encoder.encode(
        &img.data,
        img.width as u16,
        img.height as u16,
        ColorType::Rgb,
    )?;
    Ok(())
}

/// Strict (a JPEG cut short, or one that is headers only, is an error, not
/// a picture padded out with grey) and limited in size.
fn jpeg_decoder(data: &[u8], colorspace: ColorSpace) -> JpegDecoder<ZCursor<&[u8]>> {
    let options = DecoderOptions::new_fast()
        .set_strict_mode(true)
        .set_max_width(MAX_DIMENSION as usize)
        .set_max_height(MAX_DIMENSION as usize)
        .jpeg_set_out_colorspace(colorspace);
    JpegDecoder::new_with_options(ZCursor::new(data), options)
}

/// Reads a JPEG's headers and checks its size is `want` (or any size up to
/// the limit when `want` is None). Returns the size.
fn decode_headers(
    decoder: &mut JpegDecoder<ZCursor<&[u8]>>,
    len: usize,
    want: Option<(u32, u32)>,
) -> Result<(u32, u32), CodecError> {
    decoder
        .decode_headers()
        .map_err(|e| CodecError::Jpeg(e.to_string()))?;
    let (w, h) = decoder
        .dimensions()
        .ok_or_else(|| CodecError::Jpeg("no size".into()))?;
    let (w, h) = (w as u32, h as u32);
    check_size(w, h)?;
    // Every 8x8 block of a whole JPEG costs at least one bit of coded data
    // (a Huffman code is never empty): refused before any pixel is decoded
    // or allocated, a few hundred bytes cannot claim to be 4096x4096.
    let blocks = u64::from(w.div_ceil(8)) * u64::from(h.div_ceil(8));
    if (len as u64) * 8 < blocks {
        return Err(CodecError::Jpeg(format!(
            "{len} bytes are too few for a {w}x{h} picture"
        )));
    }
    if let Some((want_w, want_h)) = want
        && (w, h) != (want_w, want_h)
    {
        return Err(CodecError::SizeMismatch {
            got_w: w,
            got_h: h,
            want_w,
            want_h,
        });
    }
    Ok((w, h))
}

/// Decodes an untrusted JPEG of `width`x`height` into `out` as minifb's
/// `0RGB` pixels (one `u32` each), reusing `out`'s allocation.
pub fn decode_jpeg_0rgb(
    data: &[u8],
    width: u32,
    height: u32,
    out: &mut Vec<u32>,
) -> Result<(), CodecError> {
    // BGRA bytes read as a little-endian u32 are 0xAARRGGBB; ARGB on big endian.
    let colorspace = if cfg!(target_endian = "little") {
        ColorSpace::BGRA
    } else {
        ColorSpace::ARGB
    };
    let mut decoder = jpeg_decoder(data, colorspace);
    decode_headers(&mut decoder, data.len(), Some((width, height)))?;
    out.resize(width as usize * height as usize, 0);
    decoder
        .decode_into(bytemuck::cast_slice_mut(out.as_mut_slice()))
        .map_err(|e| CodecError::Jpeg(e.to_string()))
}

/// Decodes an untrusted JPEG (a camera's MJPEG frame) into RGB.
pub fn decode_jpeg_rgb(data: &[u8], out: &mut RgbImage) -> Result<(), CodecError> {
    let mut decoder = jpeg_decoder(data, ColorSpace::RGB);
    let (w, h) = decode_headers(&mut decoder, data.len(), None)?;
    out.width = w;
    out.height = h;
    out.data.resize(rgb_len(w, h), 0);
    decoder
        .decode_into(&mut out.data)
        .map_err(|e| CodecError::Jpeg(e.to_string()))
}

/// The JPEG in `data` without whatever follows its end-of-image marker
/// (cameras hand out buffers with stale bytes there). Walks the marker
/// segments up to the scan, then finds the first EOI after it (inside the
/// entropy-coded data 0xFF is always stuffed, so EOI cannot appear early).
/// None when `data` is not a whole JPEG.
pub fn trim_jpeg(data: &[u8]) -> Option<&[u8]> {
    const SOI: [u8; 2] = [0xFF, 0xD8];
    const SOS: u8 = 0xDA;
    const EOI: u8 = 0xD9;
    if !data.starts_with(&SOI) {
        return None;
    }
    let mut pos = 2;
    loop {
        let [0xFF, marker] = *data.get(pos..pos + 2)?.first_chunk::<2>()? else {
            return None;
        };
        if marker == 0xFF {
            pos += 1; // fill byte
            continue;
        }
        let len = u16::from_be_bytes(*data.get(pos + 2..pos + 4)?.first_chunk::<2>()?) as usize;
        pos += 2 + len;
        if marker == SOS {
            break;
        }
    }
    let scan = data.get(pos..)?;
    let end = scan.windows(2).position(|w| w == [0xFF, EOI])?;
    data.get(..pos + end + 2)
}

fn convert_err(e: yuv::YuvError) -> CodecError {
    CodecError::Convert(e.to_string())
}

/// Fills `out` (resized to fit) from 8-bit 4:2:0 planes (I420 / y4m "420").
pub fn i420_to_rgb(
    y: &[u8],
    u: &[u8],
    v: &[u8],
    width: u32,
    height: u32,
    out: &mut RgbImage,
) -> Result<(), CodecError> {
    check_size(width, height)?;
    let chroma_w = width.div_ceil(2);
    let chroma_len = chroma_w as usize * height.div_ceil(2) as usize;
    let y = exact("I420 Y", y, width as usize * height as usize, width, height)?;
    let u = exact("I420 U", u, chroma_len, width, height)?;
    let v = exact("I420 V", v, chroma_len, width, height)?;
    let planar = YuvPlanarImage {
        y_plane: y,
        y_stride: width,
        u_plane: u,
        u_stride: chroma_w,
        v_plane: v,
        v_stride: chroma_w,
        width,
        height,
    };
    resize_for(out, width, height);
    yuv::yuv420_to_rgb(
        &planar,
        &mut out.data,
        width * 3,
        YuvRange::Limited,
        YuvStandardMatrix::Bt601,
    )
    .map_err(convert_err)
}

/// Fills `out` from packed YUYV 4:2:2 (the usual uncompressed webcam format).
pub fn yuyv_to_rgb(
    data: &[u8],
    width: u32,
    height: u32,
    out: &mut RgbImage,
) -> Result<(), CodecError> {
    check_size(width, height)?;
    let stride = width.div_ceil(2) * 4;
    let data = exact(
        "YUYV",
        data,
        stride as usize * height as usize,
        width,
        height,
    )?;
    let packed = YuvPackedImage {
        yuy: data,
        yuy_stride: stride,
        width,
        height,
    };
    resize_for(out, width, height);
    yuv::yuyv422_to_rgb(
        &packed,
        &mut out.data,
        width * 3,
        YuvRange::Limited,
        YuvStandardMatrix::Bt601,
    )
    .map_err(convert_err)
}

/// Fills `out` from NV12 (Y plane, then interleaved UV at half resolution).
pub fn nv12_to_rgb(
    data: &[u8],
    width: u32,
    height: u32,
    out: &mut RgbImage,
) -> Result<(), CodecError> {
    check_size(width, height)?;
    let y_len = width as usize * height as usize;
    let uv_stride = width.div_ceil(2) * 2;
    let uv_len = uv_stride as usize * height.div_ceil(2) as usize;
    let data = exact("NV12", data, y_len + uv_len, width, height)?;
    let (y_plane, uv_plane) = data.split_at(y_len);
    let bi = YuvBiPlanarImage {
        y_plane,
        y_stride: width,
        uv_plane,
        uv_stride,
        width,
        height,
    };
    resize_for(out, width, height);
    yuv::yuv_nv12_to_rgb(
        &bi,
        &mut out.data,
        width * 3,
        YuvRange::Limited,
        YuvStandardMatrix::Bt601,
        YuvConversionMode::Balanced,
    )
    .map_err(convert_err)
}

fn resize_for(out: &mut RgbImage, width: u32, height: u32) {
    out.width = width;
    out.height = height;
    out.data.resize(rgb_len(width, height), 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(width: u32, height: u32) -> RgbImage {
        let mut img = RgbImage::new(width, height);
        for (i, px) in img.data.chunks_exact_mut(3).enumerate() {
            let (x, y) = (i as u32 % width, i as u32 / width);
            px.copy_from_slice(&[(x * 255 / width) as u8, (y * 255 / height) as u8, 128]);
        }
        img
    }

    #[test]
    fn jpeg_round_trip_keeps_size_and_colour() {
        let img = gradient(64, 48);
        let mut jpeg = Vec::new();
        encode_jpeg(&img, 90, &mut jpeg).unwrap();
        assert!(jpeg.starts_with(&[0xFF, 0xD8]));
        let mut px = Vec::new();
        decode_jpeg_0rgb(&jpeg, 64, 48, &mut px).unwrap();
        assert_eq!(px.len(), 64 * 48);
        let (r, g, b) = (
            (px[47 * 64 + 63] >> 16) & 0xFF,
            (px[47 * 64 + 63] >> 8) & 0xFF,
            px[47 * 64 + 63] & 0xFF,
        );
        assert!(
            r > 230 && g > 230 && (118..=138).contains(&b),
            "{r} {g} {b}"
        );
        let mut rgb = RgbImage::default();
        decode_jpeg_rgb(&jpeg, &mut rgb).unwrap();
        assert_eq!((rgb.width, rgb.height), (64, 48));
    }

    #[test]
    fn decoder_rejects_wrong_size_and_garbage() {
        let mut jpeg = Vec::new();
        encode_jpeg(&gradient(32, 32), 80, &mut jpeg).unwrap();
        let mut px = Vec::new();
        assert!(matches!(
            decode_jpeg_0rgb(&jpeg, 32, 16, &mut px),
            Err(CodecError::SizeMismatch { .. })
        ));
        assert!(decode_jpeg_0rgb(&[0xFF, 0xD8, 0xFF, 0xC0, 0, 0], 32, 32, &mut px).is_err());
        // Strict: a JPEG cut short is an error, not a padded picture.
        assert!(decode_jpeg_0rgb(&jpeg[..jpeg.len() / 2], 32, 32, &mut px).is_err());
        let noise: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        assert!(decode_jpeg_0rgb(&noise, 32, 32, &mut px).is_err());
    }

    #[test]
    fn a_header_that_claims_4k_is_refused_before_decoding() {
        let mut jpeg = Vec::new();
        encode_jpeg(&gradient(32, 32), 80, &mut jpeg).unwrap();
        // Rewrite the frame header (FF C0, length, precision, height, width)
        // to 4096x4096 and cut the file after the scan header.
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        jpeg[sof + 5..sof + 9].copy_from_slice(&[0x10, 0, 0x10, 0]);
        let sos = jpeg.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        let header_only = &jpeg[..sos + 2 + 12];
        let mut px = Vec::new();
        let err = decode_jpeg_0rgb(header_only, 4096, 4096, &mut px).unwrap_err();
        assert!(err.to_string().contains("too few"), "{err}");
        assert!(px.capacity() < 4096 * 4096, "pixels were allocated");
    }

    #[test]
    fn trim_drops_bytes_after_end_marker() {
        let mut jpeg = Vec::new();
        encode_jpeg(&gradient(40, 30), 70, &mut jpeg).unwrap();
        let clean = jpeg.clone();
        jpeg.extend_from_slice(&[0xFF, 0xD9, 1, 2, 3, 0, 0, 0]);
        assert_eq!(trim_jpeg(&jpeg), Some(clean.as_slice()));
        assert_eq!(trim_jpeg(&clean[..clean.len() - 2]), None);
        assert_eq!(trim_jpeg(b"not a jpeg"), None);
    }

    #[test]
    fn yuv_conversions_check_lengths_and_convert_grey() {
        let (w, h) = (8u32, 4u32);
        let mut out = RgbImage::default();
        // Mid-grey in limited range: Y=126, U=V=128 -> about (128,128,128).
        i420_to_rgb(&[126; 32], &[128; 8], &[128; 8], w, h, &mut out).unwrap();
        assert!(out.data.iter().all(|&c| (120..=136).contains(&c)));
        yuyv_to_rgb(&[126, 128, 126, 128].repeat(16), w, h, &mut out).unwrap();
        assert!(out.data.iter().all(|&c| (120..=136).contains(&c)));
        let nv12: Vec<u8> = [vec![126; 32], vec![128; 16]].concat();
        nv12_to_rgb(&nv12, w, h, &mut out).unwrap();
        assert!(out.data.iter().all(|&c| (120..=136).contains(&c)));
        assert!(matches!(
            yuyv_to_rgb(&[0; 10], w, h, &mut out),
            Err(CodecError::ShortBuffer { .. })
        ));
        assert!(matches!(
            nv12_to_rgb(&[0; 40], w, h, &mut out),
            Err(CodecError::ShortBuffer { .. })
        ));
        assert!(matches!(
            i420_to_rgb(&[0; 32], &[0; 8], &[0; 7], w, h, &mut out),
            Err(CodecError::ShortBuffer { .. })
        ));
        assert!(matches!(
            yuyv_to_rgb(&[], 0, 0, &mut out),
            Err(CodecError::BadSize { .. })
        ));
        // Cameras hand out whole buffers, longer than the picture.
        yuyv_to_rgb(&[126, 128, 126, 128].repeat(40), w, h, &mut out).unwrap();
        assert!(out.data.iter().all(|&c| (120..=136).contains(&c)));
        nv12_to_rgb(&[nv12, vec![0; 100]].concat(), w, h, &mut out).unwrap();
        assert!(out.data.iter().all(|&c| (120..=136).contains(&c)));
    }
}
