//! Someone guessing the code, against the real listener: a caller written
//! with vidchat's own protocol code that does what a relay would, handshake
//! after handshake, hanging up on each once it has seen the code. It learns
//! no code before the listener rang (the person saw it), every try is
//! counted, and after three the listener says so and turns it away.
//! Skipped, with the reason printed, without tmux (the listener asks on a
//! terminal; `.ci/run` installs tmux).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use vidchat::call::{EndReason, ProtocolError};
use vidchat::net::connection::{Connection, Event, Role};
use vidchat::secure::StaticKey;
use vidchat::wire::Intro;

mod util;
use util::{GUARD, have_tmux};

/// What one try saw.
#[derive(Debug, PartialEq)]
enum Try {
    /// The handshake is done but no code came: the listener has not rung.
    NoCodeYet,
    /// The code came (the listener rang).
    Code(String),
    /// The listener ended the connection first.
    Ended(EndReason),
}

/// One try: handshake with the listener on `port`, and report what came
/// until `give_up` (or until the listener rang).
fn attempt(port: u16, give_up: Duration) -> (TcpStream, Try) {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut conn = Connection::new(
        Role::Caller,
        Intro::new("guesser", 0, 0),
        &StaticKey::generate().unwrap(),
        Instant::now(),
        0,
    )
    .unwrap();
    let (mut out, mut buf) = (Vec::new(), [0u8; 4096]);
    let start = Instant::now();
    let seen = loop {
        conn.take_outgoing(&mut out);
        (&stream).write_all(&out).unwrap();
        match (&stream).read(&mut buf) {
            Ok(0) => conn.handle_closed(),
            Ok(n) => conn.handle_bytes(Instant::now(), &buf[..n]),
            Err(_) => {}
        }
        let events: Vec<Event> = std::iter::from_fn(|| conn.poll_event()).collect();
        if let Some(reason) = events.iter().find_map(|e| match e {
            Event::Ended(reason) => Some(reason.clone()),
            _ => None,
        }) {
            break Try::Ended(reason);
        }
        if let Some(info) = conn.peer() {
            break Try::Code(info.code.clone());
        }
        if start.elapsed() > give_up {
            break Try::NoCodeYet;
        }
    };
    (stream, seen)
}

#[test]
fn someone_guessing_the_code_learns_it_only_as_the_listener_rings_and_is_turned_away() {
    if !have_tmux() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vidchat-guess-{}", std::process::id()));
    let (terminal, port) = util::listener_on_a_terminal(&dir, "");

    for n in 1..=3 {
        let (stream, seen) = attempt(port, GUARD);
        let Try::Code(code) = seen else {
            panic!("try {n}: {seen:?}");
        };
        // The code it learned is the one the person was shown, asked about.
        let screen = terminal.wait_for(&format!("code {code} - guesser"));
        assert!(screen.contains("accept? [y/N]"), "{screen}");
        // Not the code it wanted: hang up, try again.
        drop(stream);
        terminal.wait_for_count("the call ended before it was answered", n);
    }
    let screen =
        terminal.wait_for("3 calls from 127.0.0.1 hung up right after their code was shown");
    assert!(
        screen.contains("someone may be guessing the code"),
        "{screen}"
    );

    // Turned away now: no handshake, let alone a code.
    let (_, seen) = attempt(port, Duration::from_secs(10));
    assert!(
        matches!(
            &seen,
            Try::Ended(EndReason::Protocol(ProtocolError::ClosedWithoutAWord))
        ),
        "{seen:?}"
    );
    terminal.wait_for("turned away 1 connection(s)");
    terminal.tmux(&["send-keys", "C-c"]);
    let screen = terminal.wait_for("exit=");
    assert!(screen.contains("exit=0"), "{screen}");
    let _ = std::fs::remove_dir_all(dir);
}
