//! What the end-to-end tests share: running the built binary, a headless
//! test-pattern listener whose port is read from its first line, and a
//! terminal of its own (tmux) to type in and read.
// Each test binary uses a part of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

pub const BIN: &str = env!("CARGO_BIN_EXE_vidchat");
/// Far beyond any call in these tests: a guard against hangs, not a timing.
pub const GUARD: Duration = Duration::from_secs(60);

/// Where vidchat keeps its key and known peers (`trust::CONFIG_DIR_ENV`).
pub const CONFIG_DIR: &str = "VIDCHAT_CONFIG_DIR";

/// A config directory of its own for one vidchat run (a key nobody knows
/// yet): tests never touch the user's, nor each other's.
pub fn own_config() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "config-{}-{}",
        std::process::id(),
        unique()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `vidchat ARGS`, with a config directory of its own.
pub fn vidchat(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env(CONFIG_DIR, own_config())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A headless test-pattern listener on a free loopback port (asks nobody:
/// add `--yes` to take calls).
pub const HEADLESS_LISTEN: [&str; 8] = [
    "listen",
    "--port",
    "0",
    "--bind",
    "127.0.0.1",
    "--source",
    "test",
    "--no-window",
];

/// A headless test-pattern `vidchat connect --yes` to a listener on
/// 127.0.0.1:`port`.
pub fn caller(port: u16) -> Command {
    let target = format!("127.0.0.1:{port}");
    vidchat(&[
        "connect",
        &target,
        "--yes",
        "--source",
        "test",
        "--no-window",
    ])
}

/// Starts `vidchat listen --port 0 ... --yes` and reads the port it prints.
pub fn listen(extra: &[&str]) -> (Child, u16, BufReader<ChildStdout>) {
    let mut args = HEADLESS_LISTEN.to_vec();
    args.push("--yes");
    args.extend_from_slice(extra);
    spawn_listener(vidchat(&args))
}

/// Spawns a `vidchat listen` command (stdout piped) and reads the port
/// from its first line.
pub fn spawn_listener(mut cmd: Command) -> (Child, u16, BufReader<ChildStdout>) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("start listener");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let port = line
        .split("port ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    (child, port, out)
}

/// Waits for `child` (within the guard) and returns its output.
pub fn finish(mut child: Child) -> Output {
    match child.wait_timeout(GUARD).unwrap() {
        Some(_) => child.wait_with_output().unwrap(),
        None => {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "vidchat hung; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Kills `child` and returns what it said on stderr.
pub fn stop(mut child: Child) -> String {
    let _ = child.kill();
    stderr(&child.wait_with_output().unwrap())
}

pub fn have_tmux() -> bool {
    let here = Command::new("tmux")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !here {
        eprintln!("SKIPPED: tmux is not installed (`.ci/run` installs it)");
    }
    here
}

/// A terminal of its own (a tmux server on its own socket), killed on drop.
pub struct Terminal {
    socket: String,
}

impl Terminal {
    /// Runs `command` (a shell line) in a new 200x50 terminal.
    pub fn run(command: &str) -> Terminal {
        let socket = format!("vidchat-test-{}-{}", std::process::id(), unique());
        let terminal = Terminal { socket };
        terminal.tmux(&["new-session", "-d", "-x", "200", "-y", "50", command]);
        terminal
    }

    pub fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "tmux {args:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J"])
    }

    /// Waits until the screen shows `words`; the screen.
    pub fn wait_for(&self, words: &str) -> String {
        self.wait_for_count(words, 1)
    }

    /// Waits until the screen shows `words` `count` times; the screen.
    pub fn wait_for_count(&self, words: &str, count: usize) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.matches(words).count() >= count {
                return screen;
            }
            assert!(
                start.elapsed() < GUARD,
                "the terminal never showed {words:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

fn unique() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The port a `vidchat listen` whose stdout goes to `path` printed first.
pub fn port_from_file(path: &std::path::Path) -> u16 {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let port = text
            .split("port ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|p| p.parse::<u16>().ok());
        if let Some(port) = port {
            return port;
        }
        assert!(start.elapsed() < GUARD, "the listener printed no port");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A headless test-pattern `vidchat listen` (no `--yes`) on a terminal of
/// its own, so it asks there, with `extra` flags; its stdout goes to a
/// file in `dir`, whence its port. The shell prints `exit=N` when it ends.
pub fn listener_on_a_terminal(dir: &std::path::Path, extra: &str) -> (Terminal, u16) {
    std::fs::create_dir_all(dir).unwrap();
    let out = dir.join("listen.out");
    let line = format!(
        "{CONFIG_DIR}={} {BIN} listen --port 0 --bind 127.0.0.1 --source test --no-window {extra} > {}; echo exit=$?; sleep 60",
        own_config().display(),
        out.display()
    );
    let terminal = Terminal::run(&line);
    let port = port_from_file(&out);
    (terminal, port)
}
