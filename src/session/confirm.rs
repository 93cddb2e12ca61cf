//! The caller's yes, as in Bluetooth's numeric comparison: once the call
//! is answered, the caller's person compares the code with the other
//! screen and confirms (y, in the window or on the terminal)
//! before any frame of its camera leaves; n (or, on the terminal, any
//! other line, as for [y/N]) hangs up. `connect --yes` confirms for
//! scripts, and a known peer needs no confirming (see `trust`); a changed
//! key is asked about, with its warning, whatever `--yes` says. The
//! listener's yes is its answer; until the caller's comes, the listener
//! sees "waiting for NAME to confirm".

use std::io::IsTerminal;
use std::sync::atomic::Ordering;

use crossbeam_channel::Receiver;

use super::answer::{say_window_answer, stdin_lines};
use super::screen::Screen;
use crate::call::say;
use crate::stats::Counters;

/// Whether our person still has to confirm the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Yes {
    /// Already said: the listener's answer, `connect --yes`, a known peer,
    /// a loopback.
    Given,
    /// The caller's person confirms after comparing the code; with a
    /// warning to show first (a changed key).
    Ask(Option<String>),
}

/// Asking for the caller's yes while the call runs.
pub(super) struct Confirmation {
    terminal: Option<Receiver<String>>,
    pending: bool,
}

impl Confirmation {
    /// Starts asking (or not), on the terminal and in the window.
    pub(super) fn start(yes: Yes, code: &str, screen: &mut Screen, counters: &Counters) -> Self {
        let warning = match yes {
            Yes::Given => {
                counters.confirmed.store(true, Ordering::Relaxed);
                return Confirmation {
                    terminal: None,
                    pending: false,
                };
            }
            Yes::Ask(warning) => warning.map(|w| format!("{w}\n")).unwrap_or_default(),
        };
        let terminal = std::io::stdin().is_terminal().then(stdin_lines);
        // Lines typed before the question answer nothing.
        if let Some(lines) = &terminal {
            lines.try_iter().for_each(drop);
        }
        let window = matches!(screen, Screen::Window(_));
        if terminal.is_none() && !window {
            eprintln!(
                "your video is not sent: nobody is here to confirm the code (connect --yes sends it without asking)"
            );
        }
        if terminal.is_some() {
            eprint!(
                "{warning}code {code}: does the other screen show the same code? y sends your video, n hangs up [y/N] "
            );
        } else if !warning.is_empty() {
            eprint!("{warning}");
        }
        if let Screen::Window(window) = screen {
            // Only y says yes: Enter opens a line of text.
            window.ask_confirmation(Some(format!(
                "{warning}code {code}: the same on the other screen?   y: send my video   n: hang up"
            )));
        }
        Confirmation {
            pending: terminal.is_some() || window,
            terminal,
        }
    }

    /// True while the terminal is asked (a status line would hide the question).
    pub(super) fn asking_on_terminal(&self) -> bool {
        self.pending && self.terminal.is_some()
    }

    /// Takes the person's answer if one came: false when it was no (hang up).
    pub(super) fn poll(&mut self, screen: &mut Screen, counters: &Counters) -> bool {
        if !self.pending {
            return true;
        }
        let typed = self.terminal.as_ref().and_then(|t| t.try_recv().ok());
        let in_window = match screen {
            Screen::Window(window) => window.take_confirmation(),
            Screen::Headless => None,
        };
        let answer = match (typed, in_window) {
            (Some(line), _) => matches!(line.trim().to_lowercase().as_str(), "y" | "yes"),
            (None, Some(answer)) => {
                if self.terminal.is_some() {
                    say_window_answer(answer);
                }
                answer
            }
            (None, None) => return true,
        };
        self.pending = false;
        if let Screen::Window(window) = screen {
            window.ask_confirmation(None);
        }
        if answer {
            counters.confirmed.store(true, Ordering::Relaxed);
            say(format_args!("confirmed: your video is on its way"));
        }
        answer
    }
}
