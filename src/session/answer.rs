//! Answering a call on the listening side: `--yes`, nobody to ask, or the
//! person on the terminal and in the window, whichever answers first; with
//! the code to compare (and whether the caller is known, or claims a known
//! name with another key) said where the question is asked.

use std::io::{BufRead, IsTerminal};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, bounded};

use super::screen::Screen;
use crate::call::EndReason;
use crate::interrupt;
use crate::net::connection::RING_TIMEOUT;
use crate::net::{PUMP_INTERVAL, Peer};
use crate::trust::Trust;

/// How a listener answers a call.
pub(super) struct Answering {
    /// `--yes`: every call that completes the handshake, but for a changed key.
    yes: bool,
    /// The terminal's lines, read by a helper thread, if it is one.
    terminal: Option<Receiver<String>>,
    /// A window to ask in.
    window: bool,
}

impl Answering {
    pub(super) fn choose(yes: bool, window: bool) -> Answering {
        Answering {
            yes,
            terminal: std::io::stdin().is_terminal().then(stdin_lines),
            window,
        }
    }

    /// Nobody to ask, and no `--yes`: every call will be declined.
    pub(super) fn declines_all(&self) -> bool {
        !self.yes && self.terminal.is_none() && !self.window
    }
}

/// Completes the terminal's question with what was answered in the window.
pub(super) fn say_window_answer(yes: bool) {
    eprintln!(
        "{}",
        if yes {
            "y (in the window)"
        } else {
            "n (in the window)"
        }
    );
}

/// Lines typed on the terminal, read on one thread for the whole process
/// (a read blocks); each asker (the answer, the confirmation, the chat)
/// gets a handle, and each line goes to the one that takes it.
pub(super) fn stdin_lines() -> Receiver<String> {
    static LINES: OnceLock<Receiver<String>> = OnceLock::new();
    LINES
        .get_or_init(|| {
            let (tx, rx) = bounded(4);
            let _ = thread::Builder::new()
                .name("terminal".into())
                .spawn(move || {
                    for line in std::io::stdin().lock().lines() {
                        let Ok(line) = line else { return };
                        if tx.send(line).is_err() {
                            return;
                        }
                    }
                });
            rx
        })
        .clone()
}

/// How a ring ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rang {
    /// The call is on; `asked`: the person took it (not `--yes`).
    Taken { asked: bool },
    /// Declined by the person (or nobody to ask).
    NotTaken,
    /// Nobody answered within the ring's timeout.
    Unanswered,
    /// The caller went away after it was shown the code, before an answer
    /// (what someone trying codes does).
    CallerLeft,
}

/// Rings: asks the person (or applies `--yes`) whether to take the call
/// from a caller of this `trust`, keeping the connection pumped meanwhile,
/// and sends the answer.
pub(super) fn ring(
    peer: &mut Peer,
    (trust, warn_name): (Trust, &str),
    answering: &Answering,
    screen: &mut Screen,
) -> Rang {
    let who = peer.describe();
    let name = peer.info().map(|i| i.name.clone()).unwrap_or_default();
    let warning = (trust == Trust::Changed).then(|| Trust::changed_warning(warn_name, false));
    let mut asked = false;
    if let Some(warning) = &warning {
        eprintln!("{who} - {warning}");
    }
    let person = answering.terminal.is_some() || answering.window;
    let decided = if trust.listener_answers_unasked(answering.yes) {
        let known = if trust == Trust::Known { ", known" } else { "" };
        eprintln!("{who} - incoming call{known} - accepted (--yes)");
        Some(true)
    } else if !person {
        let why = match warning {
            Some(_) => "a changed key is never taken by --yes, and nobody is here to ask",
            None => "no terminal or window to ask on (--yes takes calls)",
        };
        eprintln!("{who} - incoming call - declined: {why}");
        Some(false)
    } else {
        let label = match (&warning, trust) {
            (Some(warning), _) => Some(warning.clone()),
            (None, Trust::Known) => Some(format!("known: {name} (confirmed in an earlier call)")),
            (None, _) => None,
        };
        asked = true;
        ask(
            peer,
            &who,
            (label.as_deref(), trust == Trust::Changed),
            answering.terminal.as_ref(),
            screen,
        )
    };
    if let Some(accepted) = decided {
        peer.conn.answer(Instant::now(), accepted);
    }
    peer.flush(Instant::now() + Duration::from_secs(2));
    if let Screen::Window(window) = screen {
        window.ask(None, false);
    }
    // What ended the attempt, unless the person did (a "no" needs no card).
    let (rang, ended) = match peer.conn.end_reason() {
        None if peer.conn.is_open() => return Rang::Taken { asked },
        None => return Rang::NotTaken,
        Some(EndReason::Declined) if decided.is_none() => (
            Rang::Unanswered,
            format!("not answered within {} s: declined", RING_TIMEOUT.as_secs()),
        ),
        Some(EndReason::Declined) => {
            eprintln!("{who} - declined");
            return Rang::NotTaken;
        }
        Some(reason) => (
            Rang::CallerLeft,
            format!("the call ended before it was answered: {reason}"),
        ),
    };
    eprintln!("{who} - {ended}");
    screen.show_card(&format!("{who}\n{ended}"));
    rang
}

/// Asks on the terminal and in the window, whichever answers first. None
/// when the call ended (or its ring timed out) before an answer.
fn ask(
    peer: &mut Peer,
    who: &str,
    (label, changed): (Option<&str>, bool),
    terminal: Option<&Receiver<String>>,
    screen: &mut Screen,
) -> Option<bool> {
    // Lines typed before the call rang answer nothing.
    if let Some(lines) = terminal {
        lines.try_iter().for_each(drop);
    }
    let Some(info) = peer.info().cloned() else {
        return Some(false);
    };
    let compare = format!(
        "read the code to each other: the caller's screen must show {} too",
        info.code
    );
    let compare = match label {
        Some(label) => format!("{label}\n  {compare}"),
        None => compare,
    };
    let label = label.map(|l| format!("{l}\n")).unwrap_or_default();
    if terminal.is_some() {
        eprint!("{who} - incoming call\n  {compare}\naccept? [y/N] ");
    } else {
        eprintln!(
            "{who} - incoming call\n  {compare}\n  answer in the window: y accepts, n declines"
        );
    }
    if let Screen::Window(window) = screen {
        // A changed key is taken with y only, never by a stray Enter.
        let keys = if changed {
            "y: accept   n / Esc: decline"
        } else {
            "y / Enter: accept   n / Esc: decline"
        };
        window.ask(
            Some(format!(
                "{label}incoming call from {} ({})\ncode {}\nthe caller's screen must show the same code\n\n{keys}",
                info.name,
                peer.address(),
                info.code,
            )),
            !changed,
        );
        window.set_title(&format!(
            "code {} - vidchat - incoming call from {}",
            info.code, info.name
        ));
    }
    // The code is in front of the person: now the caller may learn it.
    peer.conn.ring();
    loop {
        peer.pump(Instant::now());
        // Ctrl-C while asked: no, and (the caller of `listen` sees it) done.
        if interrupt::requested() {
            if terminal.is_some() {
                eprintln!();
            }
            return Some(false);
        }
        if peer.conn.end_reason().is_some() {
            if terminal.is_some() {
                eprintln!();
            }
            return None;
        }
        if let Some(line) = terminal.and_then(|t| t.try_recv().ok()) {
            return Some(matches!(line.trim().to_lowercase().as_str(), "y" | "yes"));
        }
        if let Screen::Window(window) = screen {
            let open = window.redraw().is_ok() && window.pump();
            if let Some(answer) = window.take_answer() {
                if terminal.is_some() {
                    say_window_answer(answer);
                }
                return Some(answer);
            }
            if !open {
                return Some(false);
            }
        }
        thread::sleep(PUMP_INTERVAL);
    }
}
