//! Drawing the call window's picture into a `0RGB` buffer the size of the
//! window, with no window involved (so it is tested on plain buffers): the
//! remote video letterboxed, the self-view picture-in-picture (mirrored or
//! not), text panels, and full-window cards for call states.
//!
//! Scaling is nearest-neighbour through precomputed row and column maps:
//! integer-only, one lookup per pixel, cheap enough for 720p at 30 fps.

use crate::codec::RgbImage;
use crate::text::{CELL, text_pixels, text_width};

/// A `0RGB` picture.
pub struct Canvas<'a> {
    pub pixels: &'a mut [u32],
    pub width: usize,
    pub height: usize,
}

/// A rectangle in window pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
}

/// The largest rectangle with the source's aspect ratio that fits `w`x`h`,
/// centred (the rest is letterbox bars).
pub fn letterbox(src_w: usize, src_h: usize, w: usize, h: usize) -> Rect {
    if src_w == 0 || src_h == 0 || w == 0 || h == 0 {
        return Rect {
            x: 0,
            y: 0,
            w: 0,
            h: 0,
        };
    }
    // Compare w/src_w with h/src_h without floating point.
    let (dw, dh) = if w * src_h <= h * src_w {
        (w, (src_h * w / src_w).max(1))
    } else {
        ((src_w * h / src_h).max(1), h)
    };
    Rect {
        x: (w - dw) / 2,
        y: (h - dh) / 2,
        w: dw,
        h: dh,
    }
}

/// Where the self-view goes: a quarter of the window's width, bottom right,
/// with a margin; aspect kept.
pub fn pip_rect(src_w: usize, src_h: usize, w: usize, h: usize) -> Rect {
    let margin = (w.min(h) / 40).max(2);
    let inner = letterbox(src_w, src_h, w / 4, h / 4);
    Rect {
        x: w.saturating_sub(inner.w + margin),
        y: h.saturating_sub(inner.h + margin),
        ..inner
    }
}

impl Canvas<'_> {
    pub fn fill_rect(&mut self, r: Rect, colour: u32) {
        for y in r.y..r.y + r.h {
            let Some(span) = self.row(y, r.x, r.w) else {
                break;
            };
            span.fill(colour);
        }
    }

    /// Fills everything outside `r` (letterbox bars).
    pub fn fill_outside(&mut self, r: Rect, colour: u32) {
        let (w, h) = (self.width, self.height);
        let bottom = (r.y + r.h).min(h);
        let right = (r.x + r.w).min(w);
        self.fill_rect(
            Rect {
                x: 0,
                y: 0,
                w,
                h: r.y.min(h),
            },
            colour,
        );
        self.fill_rect(
            Rect {
                x: 0,
                y: bottom,
                w,
                h: h - bottom,
            },
            colour,
        );
        let band = bottom.saturating_sub(r.y);
        self.fill_rect(
            Rect {
                x: 0,
                y: r.y,
                w: r.x.min(w),
                h: band,
            },
            colour,
        );
        self.fill_rect(
            Rect {
                x: right,
                y: r.y,
                w: w - right,
                h: band,
            },
            colour,
        );
    }

    /// Row `y` of the canvas from column `x`, at most `w` pixels (clipped
    /// at the right edge); None below the bottom edge.
    fn row(&mut self, y: usize, x: usize, w: usize) -> Option<&mut [u32]> {
        if y >= self.height {
            return None;
        }
        let start = y * self.width + x.min(self.width);
        let len = w.min(self.width.saturating_sub(x));
        self.pixels.get_mut(start..start + len)
    }

    /// Scales a `src_w`x`src_h` `0RGB` picture into `dst`, nearest pixel,
    /// flipped left-right when `mirror`. At its own size it is a copy row
    /// by row (the remote video in a window of the video's size).
    pub fn blit_0rgb(&mut self, src: &[u32], src_w: usize, src_h: usize, dst: Rect, mirror: bool) {
        if src_w == 0 || src_h == 0 || dst.w == 0 || dst.h == 0 {
            return;
        }
        let same_size = dst.w == src_w && dst.h == src_h && !mirror;
        let cols = column_map(src_w, dst.w, mirror);
        for y in 0..dst.h {
            let Some(out) = self.row(dst.y + y, dst.x, dst.w) else {
                break;
            };
            let start = (y * src_h / dst.h) * src_w;
            let line = src.get(start..).unwrap_or_default();
            let line = line.get(..src_w).unwrap_or(line);
            if same_size {
                let n = out.len().min(line.len());
                let (copied, missing) = out.split_at_mut(n);
                copied.copy_from_slice(&line[..n]);
                missing.fill(0);
            } else {
                for (px, &sx) in out.iter_mut().zip(&cols) {
                    *px = line.get(sx).copied().unwrap_or(0);
                }
            }
        }
    }

    /// Darkens `area` to half its brightness (a picture that is not live).
    pub fn dim(&mut self, area: Rect) {
        for y in 0..area.h {
            let Some(row) = self.row(area.y + y, area.x, area.w) else {
                break;
            };
            for px in row {
                *px = (*px >> 1) & 0x00_7f_7f_7f;
            }
        }
    }

    /// The same for an RGB picture (the self-view).
    pub fn blit_rgb(&mut self, src: &RgbImage, dst: Rect, mirror: bool) {
        let (src_w, src_h) = (src.width as usize, src.height as usize);
        if src_w == 0 || src_h == 0 || dst.w == 0 || dst.h == 0 {
            return;
        }
        let cols = column_map(src_w, dst.w, mirror);
        for y in 0..dst.h {
            let Some(out) = self.row(dst.y + y, dst.x, dst.w) else {
                break;
            };
            let start = (y * src_h / dst.h) * src_w * 3;
            let line = src.data.get(start..).unwrap_or_default();
            for (px, &sx) in out.iter_mut().zip(&cols) {
                *px = match line.get(sx * 3..sx * 3 + 3) {
                    Some(&[r, g, b]) => u32::from_be_bytes([0, r, g, b]),
                    _ => 0,
                };
            }
        }
    }

    /// Draws `text` with its top-left at (x, y).
    pub fn text(&mut self, x: usize, y: usize, scale: usize, text: &str, colour: u32) {
        for (dx, dy) in text_pixels(text, scale) {
            let (px, py) = (x + dx, y + dy);
            if px < self.width && py < self.height {
                self.pixels[py * self.width + px] = colour;
            }
        }
    }

    /// Lines of text on a dark panel at the top-left corner, wrapped (and
    /// smaller if need be) to fit the window.
    pub fn panel(&mut self, lines: &[String], scale: usize) {
        let room = (
            self.width.saturating_sub(8 * scale),
            self.height.saturating_sub(8 * scale),
        );
        let (scale, lines) = fit_text(&lines.join("\n"), room, scale, |s| (CELL + 2) * s);
        let pad = 2 * scale;
        let line_h = (CELL + 2) * scale;
        let w = lines
            .iter()
            .map(|l| text_width(l, scale))
            .max()
            .unwrap_or(0)
            + 2 * pad;
        let h = lines.len() * line_h + 2 * pad;
        self.fill_rect(
            Rect {
                x: pad,
                y: pad,
                w,
                h,
            },
            0x00_10_10_10,
        );
        for (n, line) in lines.iter().enumerate() {
            self.text(2 * pad, 2 * pad + n * line_h, scale, line, 0x00_e8_e8_e8);
        }
    }

    /// A dark strip along the bottom with a centred message (a question
    /// over the video), wrapped (and smaller if need be) to fit.
    pub fn banner(&mut self, message: &str, scale: usize) {
        let room = (self.width - self.width / 16, self.height / 3);
        let line_height = |s| CELL * s * 3 / 2;
        let (scale, lines) = fit_text(message, room, scale, line_height);
        let h = line_height(scale) * lines.len() + CELL * scale;
        let top = self.height.saturating_sub(h);
        self.fill_rect(
            Rect {
                x: 0,
                y: top,
                w: self.width,
                h,
            },
            background(message),
        );
        let mut y = top + CELL * scale / 2;
        for line in &lines {
            let x = self.width.saturating_sub(text_width(line, scale)) / 2;
            self.text(x, y, scale, line, 0x00_f0_f0_f0);
            y += line_height(scale);
        }
    }

    /// A dark card with a centred message, one or more lines (call
    /// states, paused video, an incoming call), wrapped (and smaller if need
    /// be) to fit the card.
    pub fn card(&mut self, area: Rect, message: &str, scale: usize) {
        self.fill_rect(area, background(message));
        let room = (area.w - area.w / 16, area.h - area.h / 16);
        let line_height = |s| CELL * s * 3 / 2;
        let (scale, lines) = fit_text(message, room, scale, line_height);
        let mut y = area.y + area.h.saturating_sub(line_height(scale) * lines.len()) / 2;
        for line in &lines {
            let x = area.x + area.w.saturating_sub(text_width(line, scale)) / 2;
            self.text(x, y, scale, line, 0x00_f0_f0_f0);
            y += line_height(scale);
        }
    }
}

/// Dark grey behind a message; dark red behind a warning (a changed key).
fn background(message: &str) -> u32 {
    if message.starts_with("WARNING") {
        0x00_8a_12_12
    } else {
        0x00_20_24_2c
    }
}

/// `message` as lines that fit `room` (width, height in pixels): at the
/// largest scale from `scale` down whose lines are all as tall as `room`
/// allows (at scale 1, however many they are), with its own lines wrapped
/// at spaces and a word longer than a whole line cut. Nothing is left out.
pub fn fit_text(
    message: &str,
    room: (usize, usize),
    scale: usize,
    line_height: impl Fn(usize) -> usize,
) -> (usize, Vec<String>) {
    let mut scale = scale.max(1);
    loop {
        let lines = wrap(message, (room.0 / (CELL * scale)).max(1));
        if scale == 1 || lines.len() * line_height(scale) <= room.1 {
            return (scale, lines);
        }
        scale -= 1;
    }
}

/// `message`'s lines, each broken into lines of at most `max` characters:
/// at spaces, and a word longer than `max` in pieces. A line that fits
/// keeps its spacing.
fn wrap(message: &str, max: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in message.split('\n') {
        if paragraph.chars().count() <= max {
            lines.push(paragraph.to_string());
            continue;
        }
        let mut line: Vec<char> = Vec::new();
        for word in paragraph.split_whitespace() {
            let mut word: Vec<char> = word.chars().collect();
            if !line.is_empty() && line.len() + 1 + word.len() > max {
                lines.push(line.drain(..).collect());
            }
            if !line.is_empty() {
                line.push(' ');
            }
            // Only an empty line gets here: a whole line of the word.
            while line.len() + word.len() > max {
                line.extend(word.drain(..max - line.len()));
                lines.push(line.drain(..).collect());
            }
            line.extend(word);
        }
        lines.push(line.into_iter().collect());
    }
    lines
}

/// For each of `dst_w` output columns, the source column it shows.
fn column_map(src_w: usize, dst_w: usize, mirror: bool) -> Vec<usize> {
    (0..dst_w)
        .map(|x| {
            let sx = x * src_w / dst_w;
            if mirror { src_w - 1 - sx } else { sx }
        })
        .collect()
}

/// Text scale that stays readable as the window grows.
pub fn text_scale(width: usize) -> usize {
    (width / 640).clamp(1, 4) * 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canvas(buf: &mut Vec<u32>, w: usize, h: usize) -> Canvas<'_> {
        buf.clear();
        buf.resize(w * h, 0);
        Canvas {
            pixels: buf,
            width: w,
            height: h,
        }
    }

    #[test]
    fn letterbox_keeps_aspect_and_centres() {
        // 4:3 video in a 16:9 window: bars left and right.
        assert_eq!(
            letterbox(640, 480, 1280, 720),
            Rect {
                x: 160,
                y: 0,
                w: 960,
                h: 720
            }
        );
        // 16:9 video in a 4:3 window: bars top and bottom.
        assert_eq!(
            letterbox(1280, 720, 640, 480),
            Rect {
                x: 0,
                y: 60,
                w: 640,
                h: 360
            }
        );
        assert_eq!(
            letterbox(640, 480, 640, 480),
            Rect {
                x: 0,
                y: 0,
                w: 640,
                h: 480
            }
        );
        assert_eq!(letterbox(0, 480, 640, 480).w, 0);
        assert_eq!(
            letterbox(4000, 1, 10, 10),
            Rect {
                x: 0,
                y: 4,
                w: 10,
                h: 1
            }
        );
    }

    #[test]
    fn pip_sits_in_the_bottom_right_corner() {
        let r = pip_rect(640, 480, 1280, 720);
        assert_eq!((r.w, r.h), (240, 180));
        assert!(r.x + r.w < 1280 && r.x + r.w > 1250, "{r:?}");
        assert!(r.y + r.h < 720 && r.y + r.h > 690, "{r:?}");
    }

    #[test]
    fn blit_scales_and_mirrors() {
        let src = [1, 2, 3, 4]; // 2x2: 1 2 / 3 4
        let whole = Rect {
            x: 0,
            y: 0,
            w: 4,
            h: 4,
        };
        let mut buf = Vec::new();
        canvas(&mut buf, 4, 4).blit_0rgb(&src, 2, 2, whole, false);
        assert_eq!(&buf[..4], &[1, 1, 2, 2]);
        assert_eq!(&buf[12..], &[3, 3, 4, 4]);
        canvas(&mut buf, 4, 4).blit_0rgb(&src, 2, 2, whole, true);
        assert_eq!(&buf[..4], &[2, 2, 1, 1], "mirrored");
    }

    #[test]
    fn blit_at_the_same_size_copies_and_clips() {
        let src = [1, 2, 3, 4, 5, 6]; // 3x2
        let mut buf = Vec::new();
        let at = |x, y| Rect { x, y, w: 3, h: 2 };
        canvas(&mut buf, 5, 3).blit_0rgb(&src, 3, 2, at(1, 1), false);
        assert_eq!(buf, [0, 0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 4, 5, 6, 0]);
        canvas(&mut buf, 5, 3).blit_0rgb(&src, 3, 2, at(3, 2), false);
        assert_eq!(buf, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
        canvas(&mut buf, 5, 3).blit_0rgb(&src[..4], 3, 2, at(0, 0), false);
        assert_eq!(
            &buf[..8],
            &[1, 2, 3, 0, 0, 4, 0, 0],
            "missing pixels are black"
        );
    }

    #[test]
    fn bars_fill_around_the_picture_only() {
        let bars = |x, y, w, h| {
            let mut buf = vec![5; 16];
            let mut c = Canvas {
                pixels: &mut buf,
                width: 4,
                height: 4,
            };
            c.fill_outside(Rect { x, y, w, h }, 0);
            buf
        };
        let buf = bars(1, 1, 2, 2);
        assert_eq!(buf, [0, 0, 0, 0, 0, 5, 5, 0, 0, 5, 5, 0, 0, 0, 0, 0]);
        let buf = bars(3, 3, 4, 4);
        assert_eq!(buf.iter().filter(|&&p| p == 5).count(), 1);
        assert_eq!(buf[15], 5);
    }

    #[test]
    fn blit_clips_at_the_edges_and_survives_short_sources() {
        let mut buf = Vec::new();
        let mut c = canvas(&mut buf, 4, 4);
        c.blit_0rgb(
            &[7; 4],
            2,
            2,
            Rect {
                x: 3,
                y: 3,
                w: 4,
                h: 4,
            },
            false,
        );
        assert_eq!(buf.iter().filter(|&&p| p == 7).count(), 1);
        let mut c = canvas(&mut buf, 4, 4);
        c.blit_0rgb(
            &[7],
            2,
            2,
            Rect {
                x: 0,
                y: 0,
                w: 4,
                h: 4,
            },
            false,
        );
        assert_eq!(
            buf.iter().filter(|&&p| p == 7).count(),
            4,
            "missing source pixels are black"
        );
    }

    #[test]
    fn rgb_self_view_converts_to_0rgb() {
        let img = RgbImage {
            width: 1,
            height: 1,
            data: vec![0x12, 0x34, 0x56],
        };
        let mut buf = Vec::new();
        let mut c = canvas(&mut buf, 2, 1);
        c.blit_rgb(
            &img,
            Rect {
                x: 1,
                y: 0,
                w: 1,
                h: 1,
            },
            true,
        );
        assert_eq!(buf, [0, 0x0012_3456]);
    }

    /// The words of `text`, in order.
    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn text_is_wrapped_or_shrunk_to_fit_never_cut() {
        let name = "a-very-long-laptop-name-for-test";
        assert_eq!(name.len(), 32);
        let cases = [
            format!("code 981 173 - {name} (192.168.100.200:51234)\nwaiting for an answer"),
            "connection lost: the peer closed the connection in the middle of a message (12 of 40 bytes)".to_string(),
            format!("{}\nword", "x".repeat(300)),
            "short".to_string(),
        ];
        for (w, h) in [(640, 480), (320, 240), (100, 60)] {
            for message in &cases {
                let room = (w - w / 16, h - h / 16);
                let line_height = |s| CELL * s * 3 / 2;
                let (scale, lines) = fit_text(message, room, text_scale(w), line_height);
                for line in &lines {
                    assert!(
                        text_width(line, scale) <= room.0,
                        "{w}x{h}: {line:?} is wider than {}",
                        room.0
                    );
                }
                if scale > 1 {
                    assert!(
                        lines.len() * line_height(scale) <= room.1,
                        "{w}x{h}: too tall"
                    );
                }
                let joined: String = lines.concat();
                let kept: String = words(message).concat();
                assert_eq!(joined.replace(' ', ""), kept, "{w}x{h}: text lost");
            }
        }
        // What fits is left as it is, spacing and all.
        let (scale, lines) = fit_text("y: yes   n: no", (640, 480), 2, |s| 12 * s);
        assert_eq!((scale, lines), (2, vec!["y: yes   n: no".to_string()]));
    }

    #[test]
    fn a_long_message_on_a_small_card_gets_smaller_text() {
        let message = "connection lost: the peer closed the connection";
        let (big, _) = fit_text(message, (600, 450), 2, |s| 12 * s);
        let (small, lines) = fit_text(message, (150, 40), 4, |s| 12 * s);
        assert_eq!(big, 2);
        assert!(small < 4, "kept scale {small} for {} lines", lines.len());
    }

    #[test]
    fn panel_and_card_draw_readable_text() {
        let mut buf = Vec::new();
        let mut c = canvas(&mut buf, 320, 240);
        c.panel(&["in 30.0 fps".to_string()], 2);
        let text_px = buf.iter().filter(|&&p| p == 0x00_e8_e8_e8).count();
        assert!(text_px > 100, "{text_px} text pixels");
        let mut c = canvas(&mut buf, 320, 240);
        c.card(
            Rect {
                x: 0,
                y: 0,
                w: 320,
                h: 240,
            },
            "video paused",
            2,
        );
        assert!(buf.iter().filter(|&&p| p == 0x00_f0_f0_f0).count() > 100);
        assert_eq!(buf[0], 0x00_20_24_2c);
        // A warning stands out: dark red, on a card and along the bottom.
        let mut c = canvas(&mut buf, 320, 240);
        c.banner("WARNING: this is not the bob you called before", 2);
        assert_eq!(buf[320 * 239], 0x00_8a_12_12);
    }
}
