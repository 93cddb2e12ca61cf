//! Typed text during a call, on the main thread: a line typed on the
//! terminal or in the window goes to the peer; the peer's lines are made
//! safe (`wire::safe_text`), printed on stdout with the time (one line
//! each, so a pipe reads them as they come) and shown as captions; with
//! `--chat-log` every line sent or received is kept as one JSON object.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;

use super::screen::Screen;
use crate::call::unix_us;
use crate::stats::{Counters, StatusLine};
use crate::window::Speaker;
use crate::wire::{self, MAX_TEXT_CHARS};

/// Lines waiting for the call thread at most; typing faster than the
/// link takes them is told, not queued without end.
pub(super) const OUTGOING: usize = 16;
/// The peer's lines waiting for the main thread at most (beyond it they
/// are dropped and counted as refused).
pub(super) const INCOMING: usize = 64;

/// One line of `--chat-log`.
#[derive(Serialize)]
struct Logged<'a> {
    /// Unix microseconds.
    at_us: u64,
    /// "you" or "peer": who said it, whatever the peer calls itself.
    from: &'a str,
    /// "you", or the peer's (safe) name.
    who: &'a str,
    /// The text as sent.
    text: &'a str,
}

/// The call's typed text.
pub(super) struct Chat {
    to_peer: Sender<String>,
    from_peer: Receiver<String>,
    peer_name: String,
    can_send: bool,
    log: Option<BufWriter<File>>,
    /// Refusals of the peer's lines already told.
    refused_told: u64,
    told_cannot: bool,
}

impl Chat {
    pub(super) fn new(
        (to_peer, from_peer): (Sender<String>, Receiver<String>),
        peer_name: &str,
        can_send: bool,
        log: Option<&Path>,
    ) -> Result<Chat> {
        let log = log
            .map(|path| {
                let mut options = std::fs::OpenOptions::new();
                options.append(true).create(true);
                // What two people said is theirs: readable by its owner only.
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                options
                    .open(path)
                    .map(BufWriter::new)
                    .with_context(|| format!("cannot write {}", path.display()))
            })
            .transpose()?;
        Ok(Chat {
            to_peer,
            from_peer,
            peer_name: peer_name.to_string(),
            can_send,
            log,
            refused_told: 0,
            told_cannot: false,
        })
    }

    /// Sends `typed` lines, and shows, prints and logs what the peer said.
    pub(super) fn poll(
        &mut self,
        typed: Vec<String>,
        screen: &mut Screen,
        counters: &Counters,
        status: &StatusLine,
    ) -> Result<()> {
        let reconnecting = Counters::get(&counters.reconnecting_since_us) != 0;
        for line in typed {
            self.send(&line, reconnecting, screen, status)?;
        }
        while let Ok(text) = self.from_peer.try_recv() {
            self.log(false, &text)?;
            let shown = wire::safe_text(&text);
            let time = jiff::Zoned::now().strftime("%H:%M:%S").to_string();
            let who = Speaker::Peer(self.peer_name.clone()).label();
            status.interject(&format!("{time} {who}: {shown}"));
            if let Screen::Window(window) = screen {
                window.caption(Speaker::Peer(self.peer_name.clone()), &shown);
            }
        }
        let refused = Counters::get(&counters.texts_refused);
        if refused > self.refused_told {
            status.interject(&format!(
                "({} line(s) from {} refused: over {MAX_TEXT_CHARS} characters, or too many too fast)",
                refused - self.refused_told,
                self.peer_name
            ));
            self.refused_told = refused;
        }
        Ok(())
    }

    fn send(
        &mut self,
        line: &str,
        reconnecting: bool,
        screen: &mut Screen,
        status: &StatusLine,
    ) -> Result<()> {
        let note = if !self.can_send {
            // Said once; the person may type on regardless.
            (!std::mem::replace(&mut self.told_cannot, true))
                .then_some("the other side's vidchat cannot receive text")
        } else if line.chars().count() > MAX_TEXT_CHARS || line.len() > wire::MAX_TEXT_BYTES {
            Some("not sent: a line is at most 500 characters")
        } else if reconnecting {
            // It would be lost with the old connection.
            Some("not sent: the call is reconnecting")
        } else if self.to_peer.try_send(line.to_string()).is_err() {
            Some("not sent: typing faster than the link takes it")
        } else {
            self.log(true, line)?;
            if let Screen::Window(window) = screen {
                window.caption(Speaker::You, &wire::safe_text(line));
            }
            None
        };
        if let Some(note) = note {
            status.interject(note);
            if let Screen::Window(window) = screen {
                window.caption(Speaker::Vidchat, note);
            }
        }
        Ok(())
    }

    /// Keeps a line said by us (`mine`) or the peer in the log, as sent,
    /// with every character a terminal could act on escaped (`cat` of the
    /// log shows no bidi override or control, only its `\uXXXX`).
    fn log(&mut self, mine: bool, text: &str) -> Result<()> {
        if let Some(log) = self.log.as_mut() {
            let line = Logged {
                at_us: unix_us(),
                from: if mine { "you" } else { "peer" },
                who: if mine { "you" } else { &self.peer_name },
                text,
            };
            let json = serde_json::to_string(&line)?;
            writeln!(log, "{}", escape_invisible(&json))?;
            log.flush()?;
        }
        Ok(())
    }
}

/// `json` with the characters `safe_text` would not show (C1 controls,
/// DEL, format and separator characters) written as JSON escapes.
fn escape_invisible(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        let odd = c == '\u{7f}'
            || ('\u{80}'..='\u{9f}').contains(&c)
            || wire::safe_text(c.encode_utf8(&mut [0; 4])).is_empty()
            || matches!(c, '\u{2028}' | '\u{2029}');
        if odd {
            for unit in c.encode_utf16(&mut [0; 2]) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;

    /// A chat whose peer can (or cannot) receive text, logging to `log`.
    fn chat(can_send: bool, log: &Path) -> (Chat, Receiver<String>, Sender<String>) {
        let (to_peer, sent) = bounded(OUTGOING);
        let (said, from_peer) = bounded(INCOMING);
        let chat = Chat::new((to_peer, from_peer), "bob", can_send, Some(log)).unwrap();
        (chat, sent, said)
    }

    #[test]
    fn lines_go_and_come_and_are_logged_as_sent() {
        let log = std::env::temp_dir().join(format!("vidchat-chat-{}.jsonl", std::process::id()));
        let (mut chat, sent, said) = chat(true, &log);
        let status = StatusLine::new(std::time::Instant::now());
        said.send("\u{1b}[2Jhi\u{202E}".into()).unwrap();
        let typed = vec!["héllo".to_string(), "x".repeat(MAX_TEXT_CHARS + 1)];
        chat.poll(typed, &mut Screen::Headless, &Counters::default(), &status)
            .unwrap();
        assert_eq!(
            sent.try_iter().collect::<Vec<_>>(),
            ["héllo"],
            "a long line went"
        );
        let logged = std::fs::read_to_string(&log).unwrap();
        let _ = std::fs::remove_file(&log);
        assert!(logged.contains(r#""who":"you","text":"héllo""#), "{logged}");
        let as_sent = r#""from":"peer","who":"bob","text":"\u001b[2Jhi\u202e""#;
        assert!(logged.contains(as_sent), "{logged}");
    }

    #[test]
    fn nothing_goes_to_a_peer_that_cannot_receive_text() {
        let log =
            std::env::temp_dir().join(format!("vidchat-chat-no-{}.jsonl", std::process::id()));
        let (mut chat, sent, _said) = chat(false, &log);
        let status = StatusLine::new(std::time::Instant::now());
        let typed = vec!["hello?".to_string(), "anyone?".to_string()];
        chat.poll(typed, &mut Screen::Headless, &Counters::default(), &status)
            .unwrap();
        assert!(
            sent.try_recv().is_err(),
            "a line went to a peer that cannot read it"
        );
        assert!(chat.told_cannot, "the person was not told");
        let _ = std::fs::remove_file(&log);
    }

    #[test]
    fn a_line_typed_while_reconnecting_is_not_sent_and_then_lines_go_again() {
        let log =
            std::env::temp_dir().join(format!("vidchat-chat-re-{}.jsonl", std::process::id()));
        let (mut chat, sent, _said) = chat(true, &log);
        let status = StatusLine::new(std::time::Instant::now());
        let counters = Counters::default();
        Counters::set(&counters.reconnecting_since_us, 1);
        chat.poll(
            vec!["lost?".into()],
            &mut Screen::Headless,
            &counters,
            &status,
        )
        .unwrap();
        assert!(sent.try_recv().is_err(), "a line went into a dead link");
        Counters::set(&counters.reconnecting_since_us, 0);
        chat.poll(
            vec!["back".into()],
            &mut Screen::Headless,
            &counters,
            &status,
        )
        .unwrap();
        assert_eq!(sent.try_iter().collect::<Vec<_>>(), ["back"]);
        let logged = std::fs::read_to_string(&log).unwrap();
        let _ = std::fs::remove_file(&log);
        assert!(
            !logged.contains("lost?"),
            "an unsent line was logged: {logged}"
        );
    }
}
