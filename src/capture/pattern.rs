//! The test pattern: a source that looks like a camera to the codec, so that
//! sizes and speeds measured on it mean something. A photo-like texture
//! (fractal noise in natural colours with fine grain, which JPEG cannot
//! shrink to nothing) pans slowly, a ball bounces across it, and the frame
//! number is drawn in the corner.

use anyhow::Result;

use super::{FrameSource, Pacer};
use crate::codec::{RgbImage, rgb_len};
use crate::text::text_pixels;

/// The synthetic camera.
pub struct TestPattern {
    width: u32,
    height: u32,
    /// Texture wider than the frame by `pan`, panned back and forth.
    texture: Vec<u8>,
    pan: u32,
    frame: u64,
    pacer: Pacer,
}

fn hash(x: u32, y: u32, seed: u32) -> u32 {
    let mut h =
        x.wrapping_mul(0x8da6_b343) ^ y.wrapping_mul(0xd816_3841) ^ seed.wrapping_mul(0xcb1a_b31f);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2c1b_3c6d);
    h ^= h >> 12;
    h
}

/// Smooth value noise in 0..1 with lattice spacing `cell` pixels.
fn value_noise(x: u32, y: u32, cell: u32, seed: u32) -> f32 {
    let (cx, cy) = (x / cell, y / cell);
    let fx = (x % cell) as f32 / cell as f32;
    let fy = (y % cell) as f32 / cell as f32;
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let v = |dx, dy| (hash(cx + dx, cy + dy, seed) & 0xFFFF) as f32 / 65535.0;
    let top = v(0, 0) + (v(1, 0) - v(0, 0)) * sx;
    let bottom = v(0, 1) + (v(1, 1) - v(0, 1)) * sx;
    top + (bottom - top) * sy
}

/// Fractal noise: octaves from `largest` pixels down to 4, halving.
fn fbm(x: u32, y: u32, largest: u32, seed: u32) -> f32 {
    let (mut sum, mut norm, mut amp, mut cell) = (0.0, 0.0, 1.0, largest.max(4));
    while cell >= 4 {
        sum += amp * value_noise(x, y, cell, seed.wrapping_add(cell));
        norm += amp;
        amp *= 0.55;
        cell /= 2;
    }
    sum / norm
}

/// A landscape-like palette: water, sand, grass, rock, snow.
fn palette(t: f32) -> [f32; 3] {
    const STOPS: [(f32, [f32; 3]); 5] = [
        (0.0, [30.0, 60.0, 120.0]),
        (0.42, [70.0, 130.0, 170.0]),
        (0.5, [200.0, 180.0, 130.0]),
        (0.62, [70.0, 130.0, 50.0]),
        (1.0, [235.0, 235.0, 240.0]),
    ];
    let t = t.clamp(0.0, 1.0);
    for pair in STOPS.windows(2) {
        let [(t0, c0), (t1, c1)] = [pair[0], pair[1]];
        if t <= t1 {
            let f = (t - t0) / (t1 - t0);
            return [0, 1, 2].map(|i| c0[i] + (c1[i] - c0[i]) * f);
        }
    }
    STOPS[4].1
}

fn make_texture(width: u32, height: u32) -> Vec<u8> {
    let mut tex = vec![0; rgb_len(width, height)];
    let largest = (height / 2).next_power_of_two().max(8);
    for (i, px) in tex.chunks_exact_mut(3).enumerate() {
        let (x, y) = (i as u32 % width, i as u32 / width);
        let base = fbm(x, y, largest, 7);
        let shade = 0.75 + 0.5 * fbm(x, y, largest / 4, 99);
        let grain = (hash(x, y, 3) % 25) as f32 - 12.0;
        let rgb = palette(base).map(|c| (c * shade + grain).clamp(0.0, 255.0) as u8);
        px.copy_from_slice(&rgb);
    }
    tex
}

impl TestPattern {
    pub(super) fn new(width: u32, height: u32, pacer: Pacer) -> Self {
        let pan = (width / 2).max(1);
        TestPattern {
            width,
            height,
            texture: make_texture(width + pan, height),
            pan,
            frame: 0,
            pacer,
        }
    }

    fn draw(&self, out: &mut RgbImage) {
        let (w, h) = (self.width as usize, self.height as usize);
        out.width = self.width;
        out.height = self.height;
        out.data.resize(rgb_len(self.width, self.height), 0);
        // Pan back and forth, 2 pixels a frame.
        let span = 2 * self.pan as u64;
        let step = (self.frame * 2) % span;
        let offset = if step < self.pan as u64 {
            step
        } else {
            span - step
        } as usize;
        let tex_row = (w + self.pan as usize) * 3;
        for (y, row) in out.data.chunks_exact_mut(w * 3).enumerate() {
            let start = y * tex_row + offset * 3;
            row.copy_from_slice(&self.texture[start..start + w * 3]);
        }
        self.draw_ball(out);
        let scale = (h / 80).max(1);
        let label = format!("{:06}", self.frame);
        fill_rect(
            out,
            scale * 2,
            scale * 2,
            label.len() * 8 * scale + scale * 2,
            10 * scale,
            [0, 0, 0],
        );
        draw_text(out, scale * 3, scale * 3, scale, &label, [255, 255, 80]);
    }

    fn draw_ball(&self, out: &mut RgbImage) {
        let (w, h) = (self.width as i64, self.height as i64);
        let r = (h / 10).max(2);
        let bounce = |t: i64, len: i64| {
            let span = (len - 2 * r).max(1);
            let p = t.rem_euclid(2 * span);
            r + if p < span { p } else { 2 * span - p }
        };
        let t = self.frame as i64 * 6;
        let (cx, cy) = (bounce(t, w), bounce(t * 2 / 3, h));
        for y in (cy - r).max(0)..(cy + r).min(h) {
            for x in (cx - r).max(0)..(cx + r).min(w) {
                let (dx, dy) = (x - cx, y - cy);
                if dx * dx + dy * dy <= r * r {
                    let i = ((y * w + x) * 3) as usize;
                    let light = (255 - (dx + dy + 2 * r) * 60 / (2 * r)).clamp(80, 255) as u8;
                    out.data[i..i + 3].copy_from_slice(&[light, light / 4, light / 5]);
                }
            }
        }
    }
}

fn fill_rect(img: &mut RgbImage, x0: usize, y0: usize, w: usize, h: usize, rgb: [u8; 3]) {
    let (iw, ih) = (img.width as usize, img.height as usize);
    for y in y0..(y0 + h).min(ih) {
        for x in x0..(x0 + w).min(iw) {
            let i = (y * iw + x) * 3;
            img.data[i..i + 3].copy_from_slice(&rgb);
        }
    }
}

/// Draws `text` with the embedded font, each font pixel `scale` pixels wide.
pub(super) fn draw_text(
    img: &mut RgbImage,
    x0: usize,
    y0: usize,
    scale: usize,
    text: &str,
    rgb: [u8; 3],
) {
    let (w, h) = (img.width as usize, img.height as usize);
    for (x, y) in text_pixels(text, scale) {
        let (x, y) = (x0 + x, y0 + y);
        if x < w && y < h {
            let i = (y * w + x) * 3;
            img.data[i..i + 3].copy_from_slice(&rgb);
        }
    }
}

impl FrameSource for TestPattern {
    fn next_frame(&mut self, out: &mut RgbImage) -> Result<()> {
        self.pacer.wait();
        self.draw(out);
        self.frame += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(pattern: &mut TestPattern) -> RgbImage {
        let mut img = RgbImage::default();
        pattern.draw(&mut img);
        pattern.frame += 1;
        img
    }

    #[test]
    fn frames_move_and_do_not_compress_to_nothing() {
        let mut p = TestPattern::new(320, 240, Pacer::new(30));
        let a = frame(&mut p);
        let b = frame(&mut p);
        assert_eq!(a.data.len(), 320 * 240 * 3);
        let changed = a.data.iter().zip(&b.data).filter(|(x, y)| x != y).count();
        assert!(changed > a.data.len() / 4, "only {changed} bytes changed");
        let mut jpeg = Vec::new();
        crate::codec::encode_jpeg(&a, 80, &mut jpeg).unwrap();
        // Photo-like: a flat pattern would be ~5 KB at this size.
        assert!(jpeg.len() > 15_000, "JPEG only {} bytes", jpeg.len());
    }

    #[test]
    fn odd_and_tiny_sizes_draw() {
        for (w, h) in [(1, 1), (7, 5), (33, 17)] {
            let mut p = TestPattern::new(w, h, Pacer::new(30));
            for _ in 0..50 {
                assert_eq!(frame(&mut p).data.len(), (w * h * 3) as usize);
            }
        }
    }
}
