//! Where a call is shown: a window, or nowhere (headless, counted only);
//! the person's way to hang up (the window's keys, or a signal); and the
//! card that says why a call or an attempt ended.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::CallOptions;
use crate::call::EndReason;
use crate::interrupt;
use crate::window::CallWindow;

/// Where received video goes: a window, or nowhere (counted only).
pub(super) enum Screen {
    Window(Box<CallWindow>),
    Headless,
}

/// How long a window shows why the call ended before it closes.
const END_CARD: Duration = Duration::from_secs(2);

impl Screen {
    pub(super) fn open(options: &CallOptions, title: &str, card: &str) -> Result<Screen> {
        if !options.window {
            return Ok(Screen::Headless);
        }
        let (w, h) = (options.capture.width, options.capture.height);
        let window = CallWindow::open(title, w as usize, h as usize, card)?;
        Ok(Screen::Window(Box::new(window)))
    }

    /// Handles window events; false once the person closed the window,
    /// hung up, or sent an interrupt (Ctrl-C).
    pub(super) fn keep_open(&mut self) -> bool {
        !interrupt::requested()
            && match self {
                Screen::Window(window) => window.pump(),
                Screen::Headless => true,
            }
    }

    /// Draws the waiting card and handles window events while no call runs;
    /// false as [`keep_open`](Self::keep_open).
    pub(super) fn keep_waiting(&mut self) -> bool {
        !interrupt::requested()
            && match self {
                Screen::Window(window) => window.redraw().is_ok() && window.pump(),
                Screen::Headless => true,
            }
    }

    /// Shows why the call ended for a moment, unless the person hung up.
    pub(super) fn show_end(&mut self, reason: &EndReason) {
        if *reason != EndReason::HungUp {
            self.show_card(&reason.to_string());
        }
    }

    /// Shows `message` for a moment (or until the person closes the window).
    pub(super) fn show_card(&mut self, message: &str) {
        let Screen::Window(window) = self else { return };
        window.set_card(Some(message.to_string()));
        let until = Instant::now() + END_CARD;
        while Instant::now() < until && window.redraw().is_ok() && window.pump() {
            thread::sleep(Duration::from_millis(30));
        }
    }
}
