//! Typed text on terminals, as two people would use it: each side on a
//! terminal of its own (tmux), a line typed on one reaches the other,
//! which prints it with the time and keeps it in its `--chat-log`. (The
//! listener's stdout goes to a file, whence its port: what it prints is
//! read there.)

mod util;

use util::{BIN, CONFIG_DIR, Terminal, have_tmux, listener_on_a_terminal, own_config};

/// The first line of `path` that contains `words`, once there is one.
fn wait_for_line(path: &std::path::Path, words: &str) -> String {
    let start = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(words)) {
            return line.to_string();
        }
        assert!(
            start.elapsed() < util::GUARD,
            "{} never held {words}: {text}",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_line_typed_on_a_terminal_reaches_the_other_terminal() {
    if !have_tmux() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vidchat-chat-tty-{}", std::process::id()));
    let log = dir.join("bob.jsonl");
    let extra = format!(
        "--yes --name bob --duration 60 --chat-log {}",
        log.display()
    );
    let (bob, port) = listener_on_a_terminal(&dir, &extra);
    let line = format!(
        "{CONFIG_DIR}={} {BIN} connect 127.0.0.1:{port} --yes --name alice --source test --no-window; echo exit=$?; sleep 60",
        own_config().display()
    );
    let alice = Terminal::run(&line);
    alice.wait_for(" - in a call");
    bob.wait_for(" - in a call");

    alice.tmux(&["send-keys", "hello from a terminal, мир", "Enter"]);
    // Bob's stdout goes to a file (whence its port): the line is there,
    // after the time.
    let printed = wait_for_line(
        &dir.join("listen.out"),
        " alice: hello from a terminal, мир",
    );
    let time = printed.split(' ').next().unwrap_or_default();
    assert!(
        time.len() == 8 && time.as_bytes()[2] == b':' && time.as_bytes()[5] == b':',
        "no time before the line: {printed}"
    );
    bob.tmux(&["send-keys", "and back", "Enter"]);
    alice.wait_for("bob: and back");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains(r#""who":"alice","text":"hello from a terminal, мир""#),
        "{logged}"
    );
    assert!(
        logged.contains(r#""who":"you","text":"and back""#),
        "{logged}"
    );

    alice.tmux(&["send-keys", "C-c"]);
    assert!(alice.wait_for("exit=").contains("exit=0"));
    assert!(bob.wait_for("exit=").contains("exit=0"));
    let _ = std::fs::remove_dir_all(dir);
}
