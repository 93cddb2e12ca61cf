//! The call window (minifb, main thread only): what the person sees and the
//! keys they press. The remote video letterboxed in a resizable window, the
//! self-view in a corner, a stats panel, key help, cards for the call's
//! states ("waiting for a call", "video paused", "peer hung up"), and typed
//! text (`chat`, drawn with real fonts by `glyphs`). Drawing itself is in
//! `compose`, on plain buffers; `present` puts it on screen.

mod chat;
mod compose;
mod glyphs;
mod present;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use minifb::{InputCallback, Key, ScaleMode, Window, WindowOptions};

use crate::codec::RgbImage;
pub use chat::Speaker;
use compose::{Canvas, Rect, letterbox, pip_rect, text_scale};
use present::Presenter;

/// Key help, shown on h or ?.
const HELP: [&str; 8] = [
    "Esc / q  hang up",
    "p        self-view on/off",
    "m        mirror self-view",
    "v        pause/resume my video",
    "s        stats and code",
    "l        the last 20 lines said",
    "Enter    type a line (or just type); Enter sends, Esc closes",
    "h / ?    this help",
];

/// Characters that are keys (above), not the start of a line.
const KEY_CHARS: &str = "qQpPmMvVsSlLhH?";

/// How long a call shows its code and "h: help" in a corner.
const FIRST_SECONDS: Duration = Duration::from_secs(10);

/// A key pressed, or a character typed (any script, from the X input method).
#[derive(Debug, Clone, Copy)]
enum Input {
    Key(Key),
    Char(char),
}

/// Collects key presses and typed characters in order as minifb reports
/// them, so a press and release between two updates (a quick tap, or
/// xdotool) is not lost. At most [`MAX_INPUT`] wait.
#[derive(Clone, Default)]
struct KeyQueue(Rc<RefCell<Vec<Input>>>);

/// Inputs kept between two updates.
const MAX_INPUT: usize = 4096;

impl KeyQueue {
    fn push(&self, input: Input) {
        let mut queue = self.0.borrow_mut();
        if queue.len() < MAX_INPUT {
            queue.push(input);
        }
    }
}

impl InputCallback for KeyQueue {
    fn add_char(&mut self, uni_char: u32) {
        if let Some(c) = char::from_u32(uni_char) {
            self.push(Input::Char(c));
        }
    }

    fn set_key_state(&mut self, key: Key, down: bool) {
        if down {
            self.push(Input::Key(key));
        }
    }
}

/// The last remote picture, as decoded.
struct Picture {
    pixels: Vec<u32>,
    width: usize,
    height: usize,
}

/// What the window shows.
struct Scene {
    remote: Option<Picture>,
    self_view: Option<Arc<RgbImage>>,
    /// A message shown instead of the video (call states).
    card: Option<String>,
    stats: Vec<String>,
    show_pip: bool,
    mirror: bool,
    show_stats: bool,
    show_help: bool,
    my_video_paused: bool,
    peer_paused: bool,
    /// The call's code, "123 456", once a call runs.
    code: Option<String>,
    /// A question along the bottom, over the video (confirm the call).
    banner: Option<String>,
    /// The peer has not said yes yet: why no video comes.
    waiting_for_peer: Option<String>,
    /// The link went silent: what to say over the last picture, dimmed.
    reconnecting: Option<String>,
    /// Until when the code and "h: help" stay in the corner unasked.
    hint_until: Option<Instant>,
    /// The line being typed and the captions (once a call runs).
    chat: Option<chat::Chat>,
}

/// An open call window and what it shows.
pub struct CallWindow {
    /// Holds the window's raw handles: declared (so dropped) before it.
    presenter: Presenter,
    window: Window,
    keys: KeyQueue,
    scene: Scene,
    hung_up: bool,
    /// An incoming call is shown: y/Enter or n/Esc answer it.
    asking: bool,
    answer: Option<bool>,
    /// The caller is asked to confirm the code: y or n answer (not Enter,
    /// which opens a line of text).
    confirming: bool,
    /// Enter takes the incoming call too (not when its key changed).
    enter_says_yes: bool,
    confirmation: Option<bool>,
    /// A redraw handled the window's events since the last pump.
    events_handled: bool,
    /// The fonts for typed text (None only if they failed to parse).
    glyphs: Option<glyphs::Glyphs>,
}

impl CallWindow {
    /// Opens a resizable `width`x`height` window showing `card`.
    pub fn open(title: &str, width: usize, height: usize, card: &str) -> Result<CallWindow> {
        let options = WindowOptions {
            resize: true,
            scale_mode: ScaleMode::UpperLeft,
            ..WindowOptions::default()
        };
        let mut window = Window::new(title, width, height, options).map_err(|e| {
            anyhow!("cannot open a window ({e}); is there a display? Use --no-window to call without one")
        })?;
        // Redraws are paced by arriving frames, not by minifb.
        window.set_target_fps(0);
        let keys = KeyQueue::default();
        window.set_input_callback(Box::new(keys.clone()));
        let mut call_window = CallWindow {
            presenter: Presenter::new(&window),
            window,
            keys,
            scene: Scene {
                remote: None,
                self_view: None,
                card: Some(card.to_string()),
                stats: Vec::new(),
                show_pip: true,
                mirror: true,
                show_stats: false,
                show_help: false,
                my_video_paused: false,
                peer_paused: false,
                code: None,
                banner: None,
                waiting_for_peer: None,
                reconnecting: None,
                hint_until: None,
                chat: None,
            },
            hung_up: false,
            asking: false,
            answer: None,
            confirming: false,
            enter_says_yes: false,
            confirmation: None,
            events_handled: false,
            glyphs: glyphs::Glyphs::new(),
        };
        call_window.redraw()?;
        Ok(call_window)
    }

    pub fn set_title(&mut self, title: &str) {
        self.window.set_title(title);
    }

    /// A call with this code runs: back to the video, with the code and
    /// "h: help" in a corner for its first seconds (and in the stats).
    pub fn call_started(&mut self, code: &str) {
        self.scene.card = None;
        self.scene.chat = Some(chat::Chat::default());
        self.scene.code = Some(code.to_string());
        self.scene.hint_until = Some(Instant::now() + FIRST_SECONDS);
    }

    /// Shows `card` instead of the video (None: back to the video).
    pub fn set_card(&mut self, card: Option<String>) {
        self.scene.card = card;
    }

    /// A new remote picture, shown at the next redraw. Returns the pixel
    /// buffer of the one it replaces, for reuse.
    pub fn set_remote(
        &mut self,
        pixels: Vec<u32>,
        width: usize,
        height: usize,
    ) -> Option<Vec<u32>> {
        let picture = Picture {
            pixels,
            width,
            height,
        };
        self.scene.remote.replace(picture).map(|old| old.pixels)
    }

    /// Shows an incoming call (`question`) and takes y (and Enter, if
    /// `enter_says_yes`) or n/Esc/q as the answer; None stops asking.
    pub fn ask(&mut self, question: Option<String>, enter_says_yes: bool) {
        self.asking = question.is_some();
        self.enter_says_yes = enter_says_yes;
        self.answer = None;
        self.scene.card = question;
    }

    /// The person's answer to [`ask`](Self::ask), once given.
    pub fn take_answer(&mut self) -> Option<bool> {
        self.answer.take()
    }

    /// Asks the caller to confirm the code (`question` along the bottom,
    /// over the video) and takes y or n as the answer; None stops.
    pub fn ask_confirmation(&mut self, question: Option<String>) {
        self.confirming = question.is_some();
        self.confirmation = None;
        self.scene.banner = question;
    }

    /// The caller's answer to [`ask_confirmation`](Self::ask_confirmation), once given.
    pub fn take_confirmation(&mut self) -> Option<bool> {
        self.confirmation.take()
    }

    /// Says why no video comes while the peer has not said yes (None: it has).
    pub fn set_waiting_for_peer(&mut self, why: Option<&str>) {
        if self.scene.waiting_for_peer.as_deref() != why {
            self.scene.waiting_for_peer = why.map(str::to_string);
        }
    }

    pub fn set_self_view(&mut self, image: Arc<RgbImage>) {
        self.scene.self_view = Some(image);
    }

    pub fn set_stats(&mut self, lines: Vec<String>) {
        self.scene.stats = lines;
    }

    /// Says the call is reconnecting (None: the link works), over the last
    /// picture, dimmed.
    pub fn set_reconnecting(&mut self, what: Option<String>) {
        self.scene.reconnecting = what;
    }

    pub fn set_peer_paused(&mut self, paused: bool) {
        self.scene.peer_paused = paused;
    }

    /// The lines the person typed and sent (Enter) since the last call.
    pub fn take_typed(&mut self) -> Vec<String> {
        self.scene
            .chat
            .as_mut()
            .map(chat::Chat::take_sent)
            .unwrap_or_default()
    }

    /// Shows a line `who` said (already safe to show) as a caption.
    pub fn caption(&mut self, who: Speaker, text: &str) {
        if let Some(chat) = self.scene.chat.as_mut() {
            chat.said(who, text, Instant::now());
        }
    }

    /// Whether captions or an open line are on screen (they age: redraw).
    pub fn chat_showing(&self) -> bool {
        let now = Instant::now();
        self.scene.chat.as_ref().is_some_and(|c| c.is_showing(now))
    }

    /// Whether the person paused their own video (v).
    pub fn my_video_paused(&self) -> bool {
        self.scene.my_video_paused
    }

    /// Handles window events and keys without drawing; false once the
    /// person closed the window or pressed Esc or q.
    pub fn pump(&mut self) -> bool {
        // A redraw since the last pump has handled them already (each
        // handling is a round trip to the X server).
        if !std::mem::take(&mut self.events_handled) {
            self.window.update();
        }
        self.handle_keys();
        !self.hung_up
    }

    fn handle_keys(&mut self) {
        let shift =
            self.window.is_key_down(Key::LeftShift) || self.window.is_key_down(Key::RightShift);
        let pressed = std::mem::take(&mut *self.keys.0.borrow_mut());
        for input in pressed {
            let key = match input {
                _ if self.asking || self.confirming => input,
                Input::Key(key) => match self.scene.chat.as_mut() {
                    Some(chat) if chat.is_typing() => {
                        match key {
                            Key::Enter | Key::NumPadEnter => chat.enter(),
                            Key::Escape => chat.close(),
                            Key::Backspace => chat.backspace(),
                            _ => {}
                        }
                        continue;
                    }
                    Some(chat) if matches!(key, Key::Enter | Key::NumPadEnter) => {
                        chat.open(None);
                        continue;
                    }
                    _ => input,
                },
                Input::Char(c) => {
                    if let Some(chat) = self.scene.chat.as_mut() {
                        if chat.is_typing() {
                            chat.type_char(c);
                        } else if !c.is_control() && !c.is_whitespace() && !KEY_CHARS.contains(c) {
                            chat.open(Some(c));
                        }
                    }
                    continue;
                }
            };
            let Input::Key(key) = key else { continue };
            match key {
                Key::Y if self.asking => self.answer = Some(true),
                Key::Enter | Key::NumPadEnter if self.asking && self.enter_says_yes => {
                    self.answer = Some(true);
                }
                Key::N | Key::Escape | Key::Q if self.asking => self.answer = Some(false),
                _ if self.asking => {}
                Key::Y if self.confirming => self.confirmation = Some(true),
                Key::N if self.confirming => self.confirmation = Some(false),
                Key::Escape | Key::Q => self.hung_up = true,
                Key::P => self.scene.show_pip = !self.scene.show_pip,
                Key::M => self.scene.mirror = !self.scene.mirror,
                Key::S => self.scene.show_stats = !self.scene.show_stats,
                Key::V => self.scene.my_video_paused = !self.scene.my_video_paused,
                Key::H => self.scene.show_help = !self.scene.show_help,
                Key::L => {
                    if let Some(chat) = self.scene.chat.as_mut() {
                        chat.show_history = !chat.show_history;
                    }
                }
                Key::Slash if shift => self.scene.show_help = !self.scene.show_help,
                _ => {}
            }
        }
        self.hung_up |= !self.window.is_open();
    }

    /// Draws everything at the window's current size and shows it.
    pub fn redraw(&mut self) -> Result<()> {
        let (width, height) = self.window.get_size();
        let (width, height) = (width.max(1), height.max(1));
        let scene = &self.scene;
        let glyphs = &mut self.glyphs;
        let first_seconds = scene.hint_until.is_some_and(|t| Instant::now() < t);
        self.presenter
            .show(&mut self.window, width, height, |canvas| {
                scene.draw(canvas, first_seconds, glyphs.as_mut());
            })?;
        self.events_handled = true;
        self.handle_keys();
        Ok(())
    }
}

impl Scene {
    /// Draws the whole picture; `first_seconds` of a call add its code and
    /// the key hint; typed text is drawn with `glyphs`.
    fn draw(&self, canvas: &mut Canvas, first_seconds: bool, glyphs: Option<&mut glyphs::Glyphs>) {
        let (width, height) = (canvas.width, canvas.height);
        let whole = Rect {
            x: 0,
            y: 0,
            w: width,
            h: height,
        };
        let scale = text_scale(width);
        match (&self.card, &self.remote) {
            (Some(card), _) => canvas.card(whole, card, scale),
            (None, _) if self.peer_paused => canvas.card(whole, "video paused", scale),
            (None, _) if self.waiting_for_peer.is_some() => {
                let why = self.waiting_for_peer.as_deref().unwrap_or_default();
                canvas.card(whole, why, scale);
            }
            (None, Some(p)) => {
                let area = letterbox(p.width, p.height, width, height);
                canvas.fill_outside(area, 0);
                canvas.blit_0rgb(&p.pixels, p.width, p.height, area, false);
            }
            (None, None) => canvas.card(whole, "waiting for video", scale),
        }
        if let (Some(what), None) = (&self.reconnecting, &self.card) {
            canvas.dim(whole);
            let strip = Rect {
                x: 0,
                y: height * 2 / 5,
                w: width,
                h: height / 5,
            };
            canvas.card(strip, what, scale);
        }
        if let Some(me) = self.self_view.as_ref().filter(|_| self.show_pip) {
            let area = pip_rect(me.width as usize, me.height as usize, width, height);
            canvas.fill_rect(
                Rect {
                    x: area.x.saturating_sub(2),
                    y: area.y.saturating_sub(2),
                    w: area.w + 4,
                    h: area.h + 4,
                },
                0x00_ff_ff_ff,
            );
            if self.my_video_paused {
                canvas.card(area, "paused", (scale / 2).max(1));
            } else {
                canvas.blit_rgb(me, area, self.mirror);
            }
        }
        let code = self.code.as_ref().map(|c| format!("code {c}"));
        let mut lines: Vec<String> = Vec::new();
        if self.show_stats {
            lines.extend(code.clone());
            lines.extend(self.stats.iter().cloned());
        }
        if self.show_help {
            lines.extend(HELP.iter().map(|s| s.to_string()));
        } else if !self.show_stats && (first_seconds || self.remote.is_none()) {
            lines.extend(code.filter(|_| first_seconds));
            lines.push("h: help".into());
        }
        if !lines.is_empty() {
            canvas.panel(&lines, (scale / 2).max(1));
        }
        if let (Some(chat), Some(glyphs)) = (&self.chat, glyphs) {
            chat.draw(canvas, glyphs, Instant::now());
        }
        if let Some(banner) = &self.banner {
            canvas.banner(banner, scale);
        }
    }
}
