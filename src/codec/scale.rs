//! Smaller pictures for thin links: an RGB picture scaled down (or back up)
//! to the size the link can carry, with `fast_image_resize` (SIMD; a
//! bilinear filter stretched over the ratio, so scaling down averages
//! pixels instead of dropping them). Buffers are reused from frame to frame.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::{CodecError, RgbImage, check_size};

/// Scales pictures, keeping its work buffers between calls.
pub struct Scaler {
    resizer: Resizer,
    options: ResizeOptions,
}

impl Default for Scaler {
    fn default() -> Self {
        Scaler {
            resizer: Resizer::new(),
            options: ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
        }
    }
}

impl Scaler {
    /// `src` scaled to `width`x`height` into `dst` (its buffer reused).
    pub fn scale(
        &mut self,
        src: &RgbImage,
        width: u32,
        height: u32,
        dst: &mut RgbImage,
    ) -> Result<(), CodecError> {
        check_size(width, height)?;
        let convert = |e: &dyn std::fmt::Display| CodecError::Convert(e.to_string());
        let from = ImageRef::new(src.width, src.height, &src.data, PixelType::U8x3)
            .map_err(|e| convert(&e))?;
        let mut data = std::mem::take(&mut dst.data);
        data.resize(width as usize * height as usize * 3, 0);
        let mut to =
            Image::from_vec_u8(width, height, data, PixelType::U8x3).map_err(|e| convert(&e))?;
        self.resizer
            .resize(&from, &mut to, &self.options)
            .map_err(|e| convert(&e))?;
        *dst = RgbImage {
            width,
            height,
            data: to.into_vec(),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halving_averages_the_picture() {
        // Left half red, right half blue, 64x32.
        let mut src = RgbImage::new(64, 32);
        for (i, px) in src.data.chunks_exact_mut(3).enumerate() {
            px.copy_from_slice(if i % 64 < 32 {
                &[255, 0, 0]
            } else {
                &[0, 0, 255]
            });
        }
        let mut dst = RgbImage::new(1, 1);
        Scaler::default().scale(&src, 32, 16, &mut dst).unwrap();
        assert_eq!(
            (dst.width, dst.height, dst.data.len()),
            (32, 16, 32 * 16 * 3)
        );
        let at = |x: usize, y: usize| &dst.data[(y * 32 + x) * 3..][..3];
        assert_eq!(at(2, 5), [255, 0, 0]);
        assert_eq!(at(29, 5), [0, 0, 255]);
    }

    #[test]
    fn a_short_source_or_a_bad_size_is_an_error() {
        let short = RgbImage {
            width: 64,
            height: 64,
            data: vec![0; 10],
        };
        let mut dst = RgbImage::new(1, 1);
        assert!(Scaler::default().scale(&short, 32, 32, &mut dst).is_err());
        let src = RgbImage::new(64, 64);
        assert!(Scaler::default().scale(&src, 0, 32, &mut dst).is_err());
    }
}
