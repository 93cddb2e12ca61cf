//! Getting a composed picture on screen. The picture is drawn straight into
//! a softbuffer surface on the minifb window: on X11 that is shared memory
//! the X server reads itself (MIT-SHM), where minifb would copy the picture
//! twice and push every byte through the X socket (at 1280x720, 3.7 MB a
//! frame: ~3 ms, and over 10 ms when the machine is busy). Where softbuffer
//! cannot start, minifb's own copy is used.

use std::num::NonZeroU32;

use anyhow::{Result, anyhow};
use minifb::Window;
use raw_window_handle::{
    DisplayHandle, HandleError, HasDisplayHandle, HasWindowHandle, RawDisplayHandle,
    RawWindowHandle, WindowHandle,
};
use softbuffer::{Context, Surface};

use super::compose::Canvas;

/// The minifb window's handles, handed to softbuffer.
#[derive(Clone, Copy)]
struct Handles {
    display: RawDisplayHandle,
    window: RawWindowHandle,
}

impl HasDisplayHandle for Handles {
    fn display_handle(&self) -> Result<DisplayHandle<'_>, HandleError> {
        // SAFETY: a `Handles` lives only in a `Presenter`, which its owner
        // drops before the window the handles belong to (see `Presenter`).
        Ok(unsafe { DisplayHandle::borrow_raw(self.display) })
    }
}

impl HasWindowHandle for Handles {
    fn window_handle(&self) -> Result<WindowHandle<'_>, HandleError> {
        // SAFETY: as for the display handle above.
        Ok(unsafe { WindowHandle::borrow_raw(self.window) })
    }
}

/// Where pictures are drawn before they are shown. It holds raw handles to
/// the window it was made for: its owner must drop it before that window.
pub struct Presenter(Target);

enum Target {
    /// A softbuffer surface on the window.
    Surface(Surface<Handles, Handles>),
    /// A buffer minifb copies to the window.
    Copied(Vec<u32>),
}

impl Presenter {
    pub fn new(window: &Window) -> Presenter {
        let surface = || {
            let handles = Handles {
                display: window.display_handle().ok()?.as_raw(),
                window: window.window_handle().ok()?.as_raw(),
            };
            Surface::new(&Context::new(handles).ok()?, handles).ok()
        };
        Presenter(surface().map_or_else(|| Target::Copied(Vec::new()), Target::Surface))
    }

    /// Lets `draw` paint a `width`x`height` picture and shows it, handling
    /// the window's events on the way.
    pub fn show(
        &mut self,
        window: &mut Window,
        width: usize,
        height: usize,
        draw: impl FnOnce(&mut Canvas),
    ) -> Result<()> {
        let failed = |e: &dyn std::fmt::Display| anyhow!("cannot draw in the window: {e}");
        match &mut self.0 {
            Target::Surface(surface) => {
                surface
                    .resize(non_zero(width), non_zero(height))
                    .map_err(|e| failed(&e))?;
                let mut buffer = surface.buffer_mut().map_err(|e| failed(&e))?;
                draw(&mut Canvas {
                    pixels: &mut buffer,
                    width,
                    height,
                });
                buffer.present().map_err(|e| failed(&e))?;
                window.update();
            }
            Target::Copied(buffer) => {
                buffer.resize(width * height, 0);
                draw(&mut Canvas {
                    pixels: buffer,
                    width,
                    height,
                });
                window
                    .update_with_buffer(buffer, width, height)
                    .map_err(|e| failed(&e))?;
            }
        }
        Ok(())
    }
}

fn non_zero(n: usize) -> NonZeroU32 {
    NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN)
}
