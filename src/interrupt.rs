//! Ctrl-C, SIGTERM and SIGHUP (on Windows: Ctrl-C, Ctrl-Break, closing the
//! console) hang up: the first asks the call to end as Esc does, so the
//! peer is told and both sides end cleanly; a second quits at once. Every
//! loop that waits on the person already polls the window, and polls
//! [`requested`] beside it.

use std::sync::atomic::{AtomicBool, Ordering};

/// Exit status of a second interrupt, as a shell reports a SIGINT.
pub const EXIT_INTERRUPTED: i32 = 130;

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Takes over the interrupt signals for the rest of the process.
pub fn install() {
    let handler = || {
        if REQUESTED.swap(true, Ordering::SeqCst) {
            std::process::exit(EXIT_INTERRUPTED);
        }
    };
    if let Err(e) = ctrlc::set_handler(handler) {
        eprintln!("Ctrl-C will not hang up cleanly: {e}");
    }
}

/// Whether the person asked to hang up by a signal.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
