//! Both people say yes: the listener accepts, and the caller's person
//! compares the code and confirms on its terminal (a tmux terminal here)
//! before any frame of the caller's camera leaves. Until then the caller
//! sees the listener's video and the listener sees none. Skipped, with
//! the reason printed, without tmux (`.ci/run` installs it).

use std::path::Path;
use std::time::Instant;

mod util;
use util::{BIN, CONFIG_DIR, GUARD, Terminal, finish, have_tmux, listen, own_config, stderr};

fn frames_in(stats: &Path) -> usize {
    std::fs::read_to_string(stats).map_or(0, |s| s.lines().count())
}

/// Waits until `stats` holds `n` frames.
fn wait_for_frames(stats: &Path, n: usize) {
    let start = Instant::now();
    while frames_in(stats) < n {
        assert!(
            start.elapsed() < GUARD,
            "{} never got {n} frames",
            stats.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn no_frame_of_the_callers_camera_leaves_before_its_person_confirms() {
    if !have_tmux() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vidchat-confirm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (at_listener, at_caller) = (dir.join("listener.jsonl"), dir.join("caller.jsonl"));
    let (listener, port, _out) = listen(&["--stats", at_listener.to_str().unwrap()]);
    let line = format!(
        "{CONFIG_DIR}={} {BIN} connect 127.0.0.1:{port} --source test --no-window --stats {}; echo exit=$?; sleep 60",
        own_config().display(),
        at_caller.display()
    );
    let terminal = Terminal::run(&line);
    let asked = terminal.wait_for("does the other screen show the same code?");
    assert!(asked.contains("[y/N]"), "{asked}");
    // The listener's video flows to the caller; the caller's does not.
    wait_for_frames(&at_caller, 30);
    assert_eq!(
        frames_in(&at_listener),
        0,
        "the caller's camera left unconfirmed"
    );
    terminal.tmux(&["send-keys", "y", "Enter"]);
    terminal.wait_for("confirmed: your video is on its way");
    wait_for_frames(&at_listener, 10);
    terminal.tmux(&["send-keys", "C-c"]);
    let screen = terminal.wait_for("exit=");
    assert!(screen.contains("exit=0"), "{screen}");
    let peer = finish(listener);
    assert!(
        stderr(&peer).contains("call ended: peer hung up"),
        "{}",
        stderr(&peer)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn n_instead_of_yes_hangs_up_without_a_frame_sent() {
    if !have_tmux() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vidchat-refuse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let at_listener = dir.join("listener.jsonl");
    let (listener, port, _out) = listen(&["--stats", at_listener.to_str().unwrap()]);
    let line = format!(
        "{CONFIG_DIR}={} {BIN} connect 127.0.0.1:{port} --source test --no-window; echo exit=$?; sleep 60",
        own_config().display()
    );
    let terminal = Terminal::run(&line);
    terminal.wait_for("does the other screen show the same code?");
    terminal.tmux(&["send-keys", "n", "Enter"]);
    let screen = terminal.wait_for("exit=");
    assert!(screen.contains("call ended: you hung up"), "{screen}");
    let peer = finish(listener);
    assert!(
        stderr(&peer).contains("call ended: peer hung up"),
        "{}",
        stderr(&peer)
    );
    assert_eq!(frames_in(&at_listener), 0, "a frame left before a no");
    let _ = std::fs::remove_dir_all(dir);
}
