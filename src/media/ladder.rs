//! The picture size that fits the link, as data (no I/O, `now` passed in).
//! A thin link cannot carry a big picture at a decent quality, and a big
//! keyframe alone can take most of a second on it; a smaller picture,
//! scaled back up by the receiver, looks better and arrives on time. Frame
//! rate is the last thing to give: the ladder steps the size down first.
//!
//! The rungs are the captured size and smaller ones (3/4, 1/2, 3/8 and 1/4
//! of each side, down to about 320x180). A call starts on the smallest
//! rung, while nothing is known of the link (its first keyframe, 3 KB at
//! 320x240, fits the 100 ms queue of a 500 kbit/s link; at 640x480 it is
//! 10 KB),
//! and goes straight to the largest size that fits at the link's first
//! measure. From then on it steps down as soon as
//! the link has been too thin for the current size for [`DOWN_HOLD`],
//! straight to the largest size that fits; it steps up one rung at a time,
//! after the next size has fitted with [`UP_MARGIN`] to spare for
//! [`UP_HOLD`]. The margin keeps a steady link from see-sawing.

use std::time::{Duration, Instant};

/// Bits per pixel an H.264 picture needs to look decent (openh264
/// baseline): 1.4 Mbit/s for 720p at 30 fps, 0.46 Mbit/s for 640x480.
pub const H264_BITS_PER_PIXEL: f64 = 0.05;
/// The same for JPEG, which needs several times more.
pub const JPEG_BITS_PER_PIXEL: f64 = 0.3;
/// Smallest picture sent, each side (about 320x180; 320x240 at 4:3).
const MIN_WIDTH: u32 = 320;
const MIN_HEIGHT: u32 = 180;
/// Rungs as fractions of each side of the captured picture.
const RUNGS: [(u32, u32); 5] = [(1, 1), (3, 4), (1, 2), (3, 8), (1, 4)];
/// How long the link must be too thin before the size steps down (a
/// connection's first round trips measure low while TCP ramps up).
pub const DOWN_HOLD: Duration = Duration::from_millis(100);
/// How long the next size up must have fitted before the ladder climbs.
pub const UP_HOLD: Duration = Duration::from_secs(3);
/// How much more than the next size up needs the link must give to climb.
pub const UP_MARGIN: f64 = 1.2;

/// The size to send, chosen from the bitrate the link gives video.
#[derive(Debug, Clone)]
pub struct SizeLadder {
    /// Largest first; never empty (the captured size is always a rung).
    sizes: Vec<(u32, u32)>,
    level: usize,
    /// Whether the link has been measured yet.
    measured: bool,
    /// Bits a second one pixel of the picture needs (`fps` × bits per pixel).
    bits_per_pixel_second: f64,
    /// Since when the link has been too thin for the current size.
    starved_since: Option<Instant>,
    /// Since when the next size up has fitted with margin.
    roomy_since: Option<Instant>,
}

impl SizeLadder {
    /// A ladder for pictures captured at `width`x`height`, sent at `fps`,
    /// needing `bits_per_pixel` each.
    pub fn new(width: u32, height: u32, fps: u32, bits_per_pixel: f64) -> Self {
        let mut sizes = vec![(width, height)];
        for (num, den) in RUNGS.into_iter().skip(1) {
            // Even sides: video is 4:2:0.
            let size = ((width * num / den) & !1, (height * num / den) & !1);
            if size.0 < MIN_WIDTH || size.1 < MIN_HEIGHT {
                break;
            }
            sizes.push(size);
        }
        SizeLadder {
            level: sizes.len() - 1,
            sizes,
            measured: false,
            bits_per_pixel_second: f64::from(fps.max(1)) * bits_per_pixel,
            starved_since: None,
            roomy_since: None,
        }
    }

    /// The captured size the ladder was made for (its top rung).
    pub fn full_size(&self) -> (u32, u32) {
        self.sizes.first().copied().unwrap_or_default()
    }

    /// The size to send now.
    pub fn size(&self) -> (u32, u32) {
        self.sizes.get(self.level).copied().unwrap_or_default()
    }

    /// Bits a second `size` needs.
    fn needs(&self, (w, h): (u32, u32)) -> f64 {
        f64::from(w) * f64::from(h) * self.bits_per_pixel_second
    }

    /// The largest rung `bitrate` serves, else the smallest.
    fn fitting(&self, bitrate: f64) -> usize {
        let fits = self.sizes.iter().position(|&s| bitrate >= self.needs(s));
        fits.unwrap_or(self.sizes.len() - 1)
    }

    /// Takes the bitrate the link gives video now (None while unknown);
    /// true when the size to send changed.
    pub fn update(&mut self, bitrate: Option<f64>, now: Instant) -> bool {
        let Some(bitrate) = bitrate else {
            self.starved_since = None;
            self.roomy_since = None;
            return false;
        };
        if !self.measured {
            self.measured = true;
            let before = self.level;
            self.level = self.fitting(bitrate);
            return self.level != before;
        }
        if bitrate < self.needs(self.size()) {
            self.roomy_since = None;
            let since = *self.starved_since.get_or_insert(now);
            if now.duration_since(since) < DOWN_HOLD {
                return false;
            }
            let to = self.fitting(bitrate);
            self.starved_since = None;
            let changed = to != self.level;
            self.level = to;
            return changed;
        }
        self.starved_since = None;
        let Some(&up) = self.level.checked_sub(1).and_then(|l| self.sizes.get(l)) else {
            return false;
        };
        if bitrate < self.needs(up) * UP_MARGIN {
            self.roomy_since = None;
            return false;
        }
        let since = *self.roomy_since.get_or_insert(now);
        if now.duration_since(since) < UP_HOLD {
            return false;
        }
        self.roomy_since = None;
        self.level -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MBIT: f64 = 1e6;

    /// Feeds `bitrate` every 33 ms for `secs`; the sizes it went through.
    fn run(l: &mut SizeLadder, t: &mut Instant, secs: f64, bitrate: f64) -> Vec<(u32, u32)> {
        let mut sizes = Vec::new();
        for _ in 0..(secs * 30.0) as u32 {
            *t += Duration::from_millis(33);
            if l.update(Some(bitrate), *t) {
                sizes.push(l.size());
            }
        }
        sizes
    }

    #[test]
    fn rungs_go_down_to_about_320x180() {
        let hd = SizeLadder::new(1280, 720, 30, H264_BITS_PER_PIXEL);
        assert_eq!(
            hd.sizes,
            [(1280, 720), (960, 540), (640, 360), (480, 270), (320, 180)]
        );
        let vga = SizeLadder::new(640, 480, 30, H264_BITS_PER_PIXEL);
        assert_eq!(vga.sizes, [(640, 480), (480, 360), (320, 240)]);
        let tiny = SizeLadder::new(176, 144, 30, H264_BITS_PER_PIXEL);
        assert_eq!(tiny.sizes, [(176, 144)]);
    }

    #[test]
    fn a_starved_link_steps_straight_down_to_what_fits() {
        let mut l = SizeLadder::new(1280, 720, 30, H264_BITS_PER_PIXEL);
        let mut t = Instant::now();
        assert_eq!(run(&mut l, &mut t, 2.0, 14.0 * MBIT), [(1280, 720)]);
        // 1 Mbit/s link, 0.7 Mbit/s for video: 640x360 needs 0.35.
        let went = run(&mut l, &mut t, 1.0, 0.7 * MBIT);
        assert_eq!(
            went,
            [(640, 360)],
            "one step, straight to the size that fits"
        );
        // Slower than anything: the smallest rung, frames spaced by the rate controller.
        run(&mut l, &mut t, 1.0, 0.01 * MBIT);
        assert_eq!(l.size(), (320, 180));
    }

    #[test]
    fn a_short_dip_does_not_step_down() {
        let mut l = SizeLadder::new(1280, 720, 30, H264_BITS_PER_PIXEL);
        let mut t = Instant::now();
        run(&mut l, &mut t, 1.0, 14.0 * MBIT);
        assert!(run(&mut l, &mut t, 0.08, 0.5 * MBIT).is_empty());
        assert!(run(&mut l, &mut t, 2.0, 14.0 * MBIT).is_empty());
        assert_eq!(l.size(), (1280, 720));
    }

    #[test]
    fn climbs_back_one_rung_at_a_time_when_the_link_allows() {
        let mut l = SizeLadder::new(1280, 720, 30, H264_BITS_PER_PIXEL);
        let mut t = Instant::now();
        run(&mut l, &mut t, 1.0, 0.1 * MBIT);
        assert_eq!(l.size(), (320, 180));
        let climbed = run(&mut l, &mut t, 20.0, 14.0 * MBIT);
        assert_eq!(
            climbed,
            [(480, 270), (640, 360), (960, 540), (1280, 720)],
            "each rung after {UP_HOLD:?}"
        );
    }

    #[test]
    fn a_steady_link_does_not_see_saw() {
        // Any steady bitrate, including ones right at a rung's edge: after
        // the first settling, the size never changes again.
        for kbit in (100..3000).step_by(37) {
            let mut l = SizeLadder::new(1280, 720, 30, H264_BITS_PER_PIXEL);
            let mut t = Instant::now();
            run(&mut l, &mut t, 20.0, f64::from(kbit) * 1000.0);
            let settled = l.size();
            let later = run(&mut l, &mut t, 60.0, f64::from(kbit) * 1000.0);
            assert!(
                later.is_empty(),
                "{kbit} kbit/s: {settled:?} then {later:?}"
            );
        }
    }

    #[test]
    fn an_unknown_link_gets_the_smallest_size_and_its_first_measure_the_fitting_one() {
        for (kbit, size) in [
            (20_000.0, (1280, 720)),
            (700.0, (640, 360)),
            (50.0, (320, 180)),
        ] {
            let mut l = SizeLadder::new(1280, 720, 30, H264_BITS_PER_PIXEL);
            let t = Instant::now();
            for i in 0..100 {
                assert!(!l.update(None, t + Duration::from_millis(33 * i)));
            }
            assert_eq!(l.size(), (320, 180));
            // At once, with no hold.
            let changed = l.update(Some(kbit * 1000.0), t + Duration::from_secs(4));
            assert_eq!(
                (changed, l.size()),
                (size != (320, 180), size),
                "{kbit} kbit/s"
            );
        }
    }
}
