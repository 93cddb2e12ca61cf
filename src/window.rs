//! The call window (minifb, main thread only): the peer's video scaled to
//! the window with its aspect ratio kept, the peer named in the title, and
//! Esc, q or closing the window to hang up.

use anyhow::{Result, anyhow};
use minifb::{Key, KeyRepeat, ScaleMode, Window, WindowOptions};

/// An open call window.
pub struct CallWindow {
    window: Window,
    /// Set once the person asked to hang up.
    hung_up: bool,
}

impl CallWindow {
    /// Opens a resizable `width`x`height` window, black until video arrives.
    pub fn open(title: &str, width: usize, height: usize) -> Result<CallWindow> {
        let options = WindowOptions {
            resize: true,
            scale_mode: ScaleMode::AspectRatioStretch,
            ..WindowOptions::default()
        };
        let mut window = Window::new(title, width, height, options).map_err(|e| {
            anyhow!("cannot open a window ({e}); is there a display? Use --no-window to call without one")
        })?;
        // We pace updates ourselves, as frames arrive.
        window.set_target_fps(0);
        window
            .update_with_buffer(&vec![0; width * height], width, height)
            .map_err(|e| anyhow!("cannot draw in the window: {e}"))?;
        Ok(CallWindow {
            window,
            hung_up: false,
        })
    }

    pub fn set_title(&mut self, title: &str) {
        self.window.set_title(title);
    }

    /// Shows a `width`x`height` picture of `0RGB` pixels.
    pub fn show(&mut self, pixels: &[u32], width: usize, height: usize) -> Result<()> {
        self.window
            .update_with_buffer(pixels, width, height)
            .map_err(|e| anyhow!("cannot draw in the window: {e}"))?;
        self.check_keys();
        Ok(())
    }

    /// Handles window events without drawing; false once the person closed
    /// the window or pressed Esc or q.
    pub fn pump(&mut self) -> bool {
        self.window.update();
        self.check_keys();
        !self.hung_up
    }

    fn check_keys(&mut self) {
        let hang_up_key = self
            .window
            .get_keys_pressed(KeyRepeat::No)
            .iter()
            .any(|k| matches!(k, Key::Escape | Key::Q));
        self.hung_up |= hang_up_key || !self.window.is_open();
    }
}
