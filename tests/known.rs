//! Known peers end to end, as two people would meet them: a call with
//! `--yes` on both sides (nobody compared the code: nothing remembered), a
//! call both people confirmed on their terminals, then the same two again
//! (the caller need not confirm), then an impostor that takes a known name
//! with its own key (nothing goes to it, whatever `--yes` says). Each side keeps its key and
//! known peers in a config directory of its own, as two machines would.

mod util;

use std::path::{Path, PathBuf};
use std::process::Output;

use util::{
    BIN, CONFIG_DIR, HEADLESS_LISTEN, Terminal, finish, have_tmux, own_config, port_from_file,
    spawn_listener, stderr, stop, vidchat,
};

/// A headless listener called `name`, keeping its keys in `config`.
fn listener(config: &Path, name: &str, extra: &[&str]) -> (std::process::Child, u16) {
    let mut args = HEADLESS_LISTEN.to_vec();
    args.extend_from_slice(&["--name", name]);
    args.extend_from_slice(extra);
    let mut cmd = vidchat(&args);
    cmd.env(CONFIG_DIR, config);
    let (child, port, _out) = spawn_listener(cmd);
    (child, port)
}

/// `vidchat connect` to `port` as `name`, from `config`, for 2 s.
fn call(config: &Path, name: &str, port: u16, extra: &[&str]) -> Output {
    let target = format!("127.0.0.1:{port}");
    let mut args = vec!["connect", &target, "--name", name, "--source", "test"];
    args.extend_from_slice(&["--no-window", "--duration", "2"]);
    args.extend_from_slice(extra);
    let mut cmd = vidchat(&args);
    cmd.env(CONFIG_DIR, config);
    finish(cmd.spawn().unwrap())
}

fn frames_in(stats: &Path) -> usize {
    std::fs::read_to_string(stats).map_or(0, |s| s.lines().count())
}

fn stats_file(name: &str) -> PathBuf {
    own_config().with_extension(format!("{name}.jsonl"))
}

#[test]
fn a_known_peer_needs_no_confirming_and_an_impostor_gets_no_video() {
    // The people confirm on terminals of their own.
    if !have_tmux() {
        return;
    }
    let (alice, bob, mallory) = (own_config(), own_config(), own_config());

    // With --yes on both sides the video goes, but nobody compared the
    // code: nothing is remembered.
    let (listening, port) = listener(&bob, "bob", &["--yes"]);
    let unchecked = call(&alice, "alice", port, &["--yes"]);
    let at_bob = stderr(&finish(listening));
    assert!(
        !stderr(&unchecked).contains("remembered"),
        "{}",
        stderr(&unchecked)
    );
    assert!(!at_bob.contains("remembered"), "{at_bob}");

    // The two people compare the code and say y, each on a terminal of
    // its own: both remember.
    let dir = own_config().with_extension("terminals");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("bob.out");
    let bobs = Terminal::run(&format!(
        "{CONFIG_DIR}={} {BIN} listen --port 0 --bind 127.0.0.1 --name bob --source test --no-window --duration 2 > {}; echo exit=$?; sleep 60",
        bob.display(),
        out.display()
    ));
    let port = port_from_file(&out);
    let alices = Terminal::run(&format!(
        "{CONFIG_DIR}={} {BIN} connect 127.0.0.1:{port} --name alice --source test --no-window; echo exit=$?; sleep 60",
        alice.display()
    ));
    bobs.wait_for("accept? [y/N]");
    bobs.tmux(&["send-keys", "y", "Enter"]);
    alices.wait_for("does the other screen show the same code?");
    alices.tmux(&["send-keys", "y", "Enter"]);
    alices.wait_for("remembered bob");
    bobs.wait_for("remembered alice");
    assert!(bobs.wait_for("exit=").contains("exit=0"));
    assert!(alices.wait_for("exit=").contains("exit=0"));

    // Again, and alice does not confirm: bob is known, her video flows.
    let stats = stats_file("known");
    let (listening, port) = listener(&bob, "bob", &["--yes", "--stats", stats.to_str().unwrap()]);
    let again = call(&alice, "alice", port, &[]);
    let at_bob = stderr(&finish(listening));
    assert!(stderr(&again).contains("known: bob"), "{}", stderr(&again));
    assert!(at_bob.contains("incoming call, known"), "{at_bob}");
    assert!(
        frames_in(&stats) > 10,
        "alice's video did not go to a known bob"
    );

    // Mallory calls bob as alice: bob's --yes does not take it.
    let (listening, port) = listener(&bob, "bob", &["--yes"]);
    let posing = call(&mallory, "alice", port, &["--yes"]);
    assert_eq!(posing.status.code(), Some(1), "{}", stderr(&posing));
    let at_bob = stop(listening);
    assert!(
        at_bob.contains("WARNING: this is not the alice who called before"),
        "{at_bob}"
    );

    // Mallory listens as bob: alice is warned, and even --yes sends nothing.
    let stats = stats_file("impostor");
    let (listening, port) = listener(
        &mallory,
        "bob",
        &["--yes", "--stats", stats.to_str().unwrap()],
    );
    let fooled = call(&alice, "alice", port, &["--yes"]);
    let said = stderr(&fooled);
    let _ = stop(listening);
    assert!(
        said.contains("WARNING: this is not the bob you called before"),
        "{said}"
    );
    assert!(
        said.contains("--yes does not confirm a changed key"),
        "{said}"
    );
    assert_eq!(frames_in(&stats), 0, "alice's video went to an impostor");

    // Forgetting bob makes the next bob a stranger again.
    let mut forget = vidchat(&["peers", "--forget", "bob"]);
    forget.env(CONFIG_DIR, &alice);
    let forgot = forget.output().unwrap();
    assert!(forgot.status.success(), "{}", stderr(&forgot));
    let mut list = vidchat(&["peers", "--known"]);
    list.env(CONFIG_DIR, &alice);
    let listed = list.output().unwrap();
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains("bob"),
        "bob is still known"
    );
    for dir in [alice, bob, mallory, dir] {
        let _ = std::fs::remove_dir_all(dir);
    }
}
