//! Typed text drawn with real fonts (`ab_glyph`): any script the two
//! embedded fonts cover (see `fonts/README.md`: Latin, Greek, Cyrillic,
//! symbols; CJK and Hangul), each character from the first font that has
//! it, U+FFFD for one neither has. No shaping: letters go left to right,
//! combining accents over the letter before. Glyph coverage is rasterised
//! once per character and size and kept (at most [`MAX_CACHED`]), so a
//! caption costs a lookup a character per redraw. The fonts are parsed
//! lazily (`ab_glyph` reads outlines when asked), so the 2.8 MB CJK font
//! costs no start-up time and no memory until a CJK character comes.

use std::collections::HashMap;

use ab_glyph::{Font, FontRef, GlyphId, PxScale, ScaleFont, point};

use super::compose::Canvas;

const LATIN: &[u8] = include_bytes!("fonts/DejaVuSans-subset.ttf");
const CJK: &[u8] = include_bytes!("fonts/DroidSansFallback-subset.ttf");
/// Glyph bitmaps kept at once (all are dropped when it is reached).
const MAX_CACHED: usize = 8192;

/// One character's coverage at one size.
#[derive(Debug, Default)]
struct Bitmap {
    /// Offset of its top-left from the pen, on the baseline.
    left: i32,
    top: i32,
    width: usize,
    height: usize,
    /// One byte a pixel, 0 to 255.
    coverage: Vec<u8>,
    /// How far the pen moves after it.
    advance: f32,
}

/// The fonts and the glyphs drawn so far.
pub struct Glyphs {
    fonts: Vec<FontRef<'static>>,
    cache: HashMap<(char, u16), Bitmap>,
}

impl Glyphs {
    /// The embedded fonts (None if they do not parse, which a test rules out).
    pub fn new() -> Option<Glyphs> {
        let fonts = [LATIN, CJK]
            .into_iter()
            .map(FontRef::try_from_slice)
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        Some(Glyphs {
            fonts,
            cache: HashMap::new(),
        })
    }

    /// Height of a line of text at `px` pixels.
    pub fn line_height(&self, px: u16) -> usize {
        self.fonts.first().map_or(usize::from(px), |font| {
            let font = font.as_scaled(PxScale::from(f32::from(px)));
            (font.ascent() - font.descent() + font.line_gap()).ceil() as usize
        })
    }

    /// The longest start of `text` that fits in `max` pixels at `px`, and
    /// the rest.
    pub fn split_at_width<'t>(&mut self, text: &'t str, px: u16, max: usize) -> (&'t str, &'t str) {
        let mut pen = 0.0;
        for (at, c) in text.char_indices() {
            pen += self.glyph(c, px).advance;
            if pen > max as f32 && at > 0 {
                return text.split_at(at);
            }
        }
        (text, "")
    }

    /// Draws `text` at `px` with its top-left at (`x`, `y`) in `colour`
    /// (0RGB), blended over what is there; clipped at the canvas's edges.
    pub fn draw(&mut self, canvas: &mut Canvas, x: i32, y: i32, text: &str, px: u16, colour: u32) {
        let ascent = self.fonts.first().map_or(f32::from(px), |font| {
            font.as_scaled(PxScale::from(f32::from(px))).ascent()
        });
        let baseline = y + ascent.round() as i32;
        let mut pen = x as f32;
        for c in text.chars() {
            let glyph = self.glyph(c, px);
            let left = pen.round() as i32 + glyph.left;
            let top = baseline + glyph.top;
            for row in 0..glyph.height {
                for col in 0..glyph.width {
                    let alpha = glyph.coverage.get(row * glyph.width + col).copied();
                    let (gx, gy) = (left + col as i32, top + row as i32);
                    if let (Some(alpha @ 1..), Ok(gx), Ok(gy)) =
                        (alpha, usize::try_from(gx), usize::try_from(gy))
                        && gx < canvas.width
                        && let Some(pixel) = canvas.pixels.get_mut(gy * canvas.width + gx)
                    {
                        *pixel = blend(*pixel, colour, alpha);
                    }
                }
            }
            pen += glyph.advance;
        }
    }

    /// The bitmap of `c` at `px`, rasterised on first use.
    fn glyph(&mut self, c: char, px: u16) -> &Bitmap {
        if self.cache.len() >= MAX_CACHED && !self.cache.contains_key(&(c, px)) {
            self.cache.clear();
        }
        let fonts = &self.fonts;
        self.cache
            .entry((c, px))
            .or_insert_with(|| rasterise(fonts, c, px))
    }
}

/// The first font that has `c` (else U+FFFD from the first), rasterised.
fn rasterise(fonts: &[FontRef<'static>], c: char, px: u16) -> Bitmap {
    let scale = PxScale::from(f32::from(px));
    let found = fonts
        .iter()
        .find_map(|font| Some((font, font.glyph_id(c))).filter(|(_, id)| *id != GlyphId(0)));
    let Some((font, id)) = found.or_else(|| {
        let font = fonts.first()?;
        Some((font, font.glyph_id('\u{FFFD}')))
    }) else {
        return Bitmap::default();
    };
    let advance = font.as_scaled(scale).h_advance(id);
    let glyph = id.with_scale_and_position(scale, point(0.0, 0.0));
    let Some(outline) = font.outline_glyph(glyph) else {
        return Bitmap {
            advance,
            ..Bitmap::default()
        };
    };
    let bounds = outline.px_bounds();
    let (width, height) = (bounds.width() as usize, bounds.height() as usize);
    let mut coverage = vec![0u8; width * height];
    outline.draw(|x, y, amount| {
        if let Some(cell) = coverage.get_mut(y as usize * width + x as usize) {
            *cell = (amount.clamp(0.0, 1.0) * 255.0) as u8;
        }
    });
    Bitmap {
        left: bounds.min.x as i32,
        top: bounds.min.y as i32,
        width,
        height,
        coverage,
        advance,
    }
}

/// `colour` over `under` at `alpha` of 255, per channel.
fn blend(under: u32, colour: u32, alpha: u8) -> u32 {
    let a = u32::from(alpha);
    let mix = |shift: u32| {
        let (u, c) = ((under >> shift) & 0xff, (colour >> shift) & 0xff);
        ((c * a + u * (255 - a)) / 255) << shift
    };
    mix(16) | mix(8) | mix(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inked(text: &str) -> usize {
        let mut glyphs = Glyphs::new().expect("the embedded fonts parse");
        let mut buf = vec![0u32; 400 * 40];
        let mut canvas = Canvas {
            pixels: &mut buf,
            width: 400,
            height: 40,
        };
        glyphs.draw(&mut canvas, 2, 2, text, 20, 0x00ff_ffff);
        buf.iter().filter(|&&p| p != 0).count()
    }

    #[test]
    fn every_script_the_fonts_cover_draws() {
        for text in ["héllo", "мир", "γειά", "世界", "こんにちは", "안녕", "☺ ✓"]
        {
            assert!(inked(text) > 20, "{text} drew nothing");
        }
    }

    #[test]
    fn what_no_font_has_draws_a_replacement_and_never_panics() {
        // A private-use character, a lone combining mark, a tower of them,
        // an unassigned plane: something is drawn, nothing panics.
        assert!(inked("\u{E000}") > 0);
        assert!(inked("\u{0301}\u{0301}\u{0301}") < 400 * 40);
        assert!(inked(&format!("a{}", "\u{0301}".repeat(500))) > 0);
        assert!(inked("\u{10FFFD}\u{1F600}") > 0);
    }

    #[test]
    fn text_is_measured_and_split_to_fit() {
        let mut glyphs = Glyphs::new().unwrap();
        // Ideographs are wider than Latin letters.
        let (cjk, _) = glyphs.split_at_width("世界世界世界", 20, 60);
        let (latin, _) = glyphs.split_at_width("abcdefghijk", 20, 60);
        assert!(cjk.chars().count() < latin.chars().count());
        let (first, rest) = glyphs.split_at_width("hello world", 20, 40);
        assert!(!first.is_empty() && !rest.is_empty());
        assert_eq!(format!("{first}{rest}"), "hello world");
        assert!(glyphs.line_height(20) >= 20);
    }
}
