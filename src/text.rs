//! Text in pictures, from the embedded public-domain 8x8 font (`font8x8`):
//! no system fonts. Yields the pixels to paint; callers own the buffer.

use font8x8::UnicodeFonts;

/// Width and height of one character cell, in font pixels.
pub const CELL: usize = 8;

/// Pixels (x, y) to paint for `text` at `scale` (each font pixel a
/// `scale`-sided square), relative to its top-left corner. Characters
/// outside basic Latin are skipped as blanks.
pub fn text_pixels(text: &str, scale: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    text.chars().enumerate().flat_map(move |(n, ch)| {
        let glyph = font8x8::BASIC_FONTS.get(ch).unwrap_or([0; 8]);
        (0..CELL * scale).flat_map(move |y| {
            let bits = glyph[y / scale];
            (0..CELL * scale)
                .filter(move |x| bits & (1 << (x / scale)) != 0)
                .map(move |x| (n * CELL * scale + x, y))
        })
    })
}

/// Width in pixels of `text` drawn at `scale`.
pub fn text_width(text: &str, scale: usize) -> usize {
    text.chars().count() * CELL * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_have_pixels_and_spaces_do_not() {
        assert!(text_pixels("A", 1).count() > 10);
        assert_eq!(text_pixels(" ", 3).count(), 0);
        assert_eq!(text_pixels("A", 2).count(), 4 * text_pixels("A", 1).count());
        assert!(text_pixels("AB", 1).all(|(x, y)| x < 16 && y < 8));
        assert_eq!(text_width("abc", 2), 48);
    }
}
