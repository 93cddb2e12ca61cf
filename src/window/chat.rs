//! Typed text in the window: the line being typed along the bottom, and
//! the lines said (by "you" and the peer) as captions over the video for
//! [`CAPTION_TIME`], newest at the bottom; the last [`HISTORY`] again on
//! a key. Drawn with real fonts (`glyphs`), on a dark strip so they read
//! over any picture; the text is already safe (`wire::safe_text`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::compose::{Canvas, Rect};
use super::glyphs::Glyphs;
use crate::wire::MAX_TEXT_CHARS;

/// How long a caption stays over the video.
pub const CAPTION_TIME: Duration = Duration::from_secs(10);
/// Lines kept, and shown together on the history key.
pub const HISTORY: usize = 20;

/// Who said a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Speaker {
    /// Our person ("you", in blue).
    You,
    /// The peer, by its (safe) name; a name that poses as "you" or as
    /// vidchat's own notes is marked as the peer's.
    Peer(String),
    /// vidchat itself ("vidchat", in yellow: a line not sent, say).
    Vidchat,
}

impl Speaker {
    /// How it is named where the line is shown.
    pub fn label(&self) -> String {
        self.label_and_colour().0
    }

    fn label_and_colour(&self) -> (String, u32) {
        match self {
            Speaker::You => ("you".into(), 0x00_a8_d8_ff),
            Speaker::Vidchat => ("vidchat".into(), 0x00_ff_d0_60),
            Speaker::Peer(name) if ["you", "vidchat"].contains(&name.to_lowercase().as_str()) => {
                (format!("{name} (peer)"), 0x00_ff_ff_ff)
            }
            Speaker::Peer(name) => (name.clone(), 0x00_ff_ff_ff),
        }
    }
}

/// One line said.
struct Said {
    who: Speaker,
    text: String,
    at: Instant,
}

/// The line being typed, and what was said.
#[derive(Default)]
pub struct Chat {
    /// The open line (None: not typing).
    typing: Option<String>,
    said: VecDeque<Said>,
    /// The last lines shown whatever their age.
    pub show_history: bool,
    /// Lines typed and sent with Enter, for the session to take.
    sent: Vec<String>,
}

impl Chat {
    pub fn is_typing(&self) -> bool {
        self.typing.is_some()
    }

    /// Opens the line, with `first` typed already.
    pub fn open(&mut self, first: Option<char>) {
        let line = self.typing.get_or_insert_with(String::new);
        line.extend(first);
    }

    /// A character typed into the open line (control characters are not
    /// text; the line stops at [`MAX_TEXT_CHARS`]).
    pub fn type_char(&mut self, c: char) {
        if let Some(line) = self.typing.as_mut()
            && !c.is_control()
            && line.chars().count() < MAX_TEXT_CHARS
        {
            line.push(c);
        }
    }

    pub fn backspace(&mut self) {
        if let Some(line) = self.typing.as_mut() {
            line.pop();
        }
    }

    /// Enter: the line goes (if not blank) and closes.
    pub fn enter(&mut self) {
        if let Some(line) = self.typing.take()
            && !line.trim().is_empty()
        {
            self.sent.push(line);
        }
    }

    /// Esc: the line closes unsent.
    pub fn close(&mut self) {
        self.typing = None;
    }

    /// The lines sent since the last call.
    pub fn take_sent(&mut self) -> Vec<String> {
        std::mem::take(&mut self.sent)
    }

    /// A line said by `who` at `now`.
    pub fn said(&mut self, who: Speaker, text: &str, now: Instant) {
        if self.said.len() == HISTORY {
            self.said.pop_front();
        }
        self.said.push_back(Said {
            who,
            text: text.to_string(),
            at: now,
        });
    }

    /// Whether anything of it is on screen at `now` (so it is redrawn as
    /// captions age out).
    pub fn is_showing(&self, now: Instant) -> bool {
        self.typing.is_some()
            || self.show_history
            || self.said.iter().any(|s| now < s.at + CAPTION_TIME)
    }

    /// Draws the captions and the open line along the bottom of `canvas`.
    pub fn draw(&self, canvas: &mut Canvas, glyphs: &mut Glyphs, now: Instant) {
        let px = (canvas.width / 40).clamp(14, 32) as u16;
        let line_h = glyphs.line_height(px);
        let margin = usize::from(px) / 2;
        let room = canvas.width.saturating_sub(2 * margin).max(1);
        // The newest at the bottom, over at most a third of the picture
        // (two thirds for the history); older lines above are not shown,
        // nor laid out (a peer's long lines cost only what is seen).
        let room_h = match self.show_history {
            true => canvas.height * 2 / 3,
            false => canvas.height / 3,
        };
        let fit = (room_h / line_h.max(1)).max(1);
        let mut lines: Vec<(String, u32)> = Vec::new();
        if let Some(typing) = &self.typing {
            let typed = format!("> {typing}_");
            let mut rows = wrapped(glyphs, &typed, px, room);
            rows.reverse();
            lines.extend(rows.into_iter().map(|r| (r, 0x00_ff_e0_80)));
        }
        for said in self
            .said
            .iter()
            .rev()
            .filter(|s| self.show_history || now < s.at + CAPTION_TIME)
        {
            if lines.len() >= fit {
                break;
            }
            let (who, colour) = said.who.label_and_colour();
            let mut rows = wrapped(glyphs, &format!("{who}: {}", said.text), px, room);
            rows.reverse();
            lines.extend(rows.into_iter().map(|r| (r, colour)));
        }
        lines.truncate(fit);
        lines.reverse();
        let shown = &lines[..];
        if shown.is_empty() {
            return;
        }
        let h = shown.len() * line_h + margin;
        let top = canvas.height.saturating_sub(h + margin);
        canvas.fill_rect(
            Rect {
                x: 0,
                y: top,
                w: canvas.width,
                h: h + margin,
            },
            0x00_10_12_18,
        );
        for (n, (line, colour)) in shown.iter().enumerate() {
            let y = top + margin / 2 + n * line_h;
            glyphs.draw(canvas, margin as i32, y as i32, line, px, *colour);
        }
    }
}

/// `text` cut into lines of at most `room` pixels.
fn wrapped(glyphs: &mut Glyphs, text: &str, px: u16, room: usize) -> Vec<String> {
    let mut rows = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (line, more) = glyphs.split_at_width(rest, px, room);
        rows.push(line.to_string());
        rest = more;
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_typed_sent_and_captioned_for_a_while() {
        let mut chat = Chat::default();
        let t0 = Instant::now();
        assert!(!chat.is_showing(t0));
        chat.open(Some('h'));
        "éllo\u{1b}".chars().for_each(|c| chat.type_char(c));
        chat.backspace();
        chat.type_char('!');
        chat.enter();
        assert_eq!(chat.take_sent(), ["héll!"]);
        assert!(!chat.is_typing());
        chat.open(None);
        chat.enter();
        assert!(chat.take_sent().is_empty(), "a blank line was sent");
        chat.said(Speaker::You, "héll!", t0);
        assert!(chat.is_showing(t0 + CAPTION_TIME / 2));
        assert!(!chat.is_showing(t0 + CAPTION_TIME));
        chat.show_history = true;
        assert!(chat.is_showing(t0 + CAPTION_TIME * 10));
        for n in 0..100 {
            chat.said(Speaker::Peer("bob".into()), &n.to_string(), t0);
        }
        assert_eq!(chat.said.len(), HISTORY);
    }

    #[test]
    fn captions_draw_over_the_bottom_of_the_picture() {
        let mut glyphs = Glyphs::new().unwrap();
        let mut chat = Chat::default();
        let now = Instant::now();
        chat.said(Speaker::Peer("bob".into()), &"мир 世界 ".repeat(40), now);
        let mut buf = vec![0u32; 320 * 240];
        let mut canvas = Canvas {
            pixels: &mut buf,
            width: 320,
            height: 240,
        };
        chat.draw(&mut canvas, &mut glyphs, now);
        let inked_rows: Vec<usize> = (0..240)
            .filter(|y| buf[y * 320..(y + 1) * 320].iter().any(|&p| p != 0))
            .collect();
        assert!(!inked_rows.is_empty());
        assert!(
            inked_rows[0] > 60,
            "captions reach the top: {}",
            inked_rows[0]
        );
    }
}
