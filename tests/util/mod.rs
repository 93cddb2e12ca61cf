//! What the end-to-end tests share: running the built binary, and a
//! headless test-pattern listener whose port is read from its first line.
// Each test binary uses a part of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt;

pub const BIN: &str = env!("CARGO_BIN_EXE_vidchat");
/// Far beyond any call in these tests: a guard against hangs, not a timing.
pub const GUARD: Duration = Duration::from_secs(60);

pub fn vidchat(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
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
