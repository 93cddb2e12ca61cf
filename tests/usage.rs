//! The exit codes the README lists, each from the built binary, and the
//! ways of naming whom to call that a new user types first: a host name
//! (`connect localhost` reaches a listener on localhost:9999) and the
//! typos that are bad usage, said in one line with what was meant.

use std::net::TcpListener;
use std::process::Command;

mod util;
use util::{BIN, finish, listen, stderr, vidchat};

/// Runs `vidchat ARGS` headless to its end: exit code and stderr.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = finish(vidchat(args).spawn().unwrap());
    (out.status.code(), stderr(&out))
}

#[test]
fn every_rejected_value_is_bad_usage_exit_2() {
    let cases: [&[&str]; 16] = [
        &["loopback", "--size", "641x480"],
        &["loopback", "--size", "big"],
        &["loopback", "--fps", "0"],
        &["loopback", "--fps", "2.5"],
        &["loopback", "--codec", "vp8"],
        &["loopback", "--duration", "0"],
        &["loopback", "--source", "webcam"],
        &["loopback", "--source", "test", "--camera", "0"],
        &["listen", "--port", "99999"],
        &["loopback", "--no-such-flag"],
        &["connect", "127.0.0.1.9999"],
        &["connect", "192.168.1"],
        &["connect", "laptop:99999"],
        &["connect", "fe80::1%eth0:9999"],
        &["connect", "laptop:9999", "--port", "9998"],
        &["connect", "--port", "9999"],
    ];
    for args in cases {
        let (code, err) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
    let (_, dot) = run(&["connect", "127.0.0.1.9999"]);
    assert!(dot.contains("did you mean 127.0.0.1:9999?"), "{dot}");
    let (_, v6) = run(&["connect", "fe80::1%eth0:9999"]);
    assert!(v6.contains("[fe80::1%eth0]:9999"), "{v6}");
}

#[test]
fn a_call_that_does_not_start_exits_1_in_one_line() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("127.0.0.1:{closed}");
    for args in [
        vec!["connect", &target, "--source", "test", "--no-window"],
        vec!["loopback", "--camera", "5", "--no-window"],
        vec!["loopback", "--camera", "no-such-camera", "--no-window"],
        vec!["loopback", "--source", "/no/such/file.y4m", "--no-window"],
    ] {
        let (code, err) = run(&args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn an_explicit_camera_that_fails_is_an_error_but_plain_loopback_falls_back() {
    let (code, err) = run(&["loopback", "--camera", "5", "--no-window"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("camera 5"), "{err}");
    let (code, err) = run(&["loopback", "--no-window", "--duration", "1"]);
    if err.contains("loopback call with camera") {
        eprintln!("SKIPPED the fallback half: this machine has a camera");
        return;
    }
    assert_eq!(code, Some(0), "{err}");
    let fallback = err.lines().next().unwrap_or_default();
    assert!(
        fallback.starts_with("no camera could be opened, so the loopback shows the test pattern"),
        "{err}"
    );
    assert!(!fallback.contains("(("), "{fallback}");
}

#[test]
fn a_hang_up_exits_0_and_a_call_that_fails_exits_3() {
    let (listener, port, _out) = listen(&["--duration", "1"]);
    let target = format!("127.0.0.1:{port}");
    let (code, err) = run(&["connect", &target, "--source", "test", "--no-window"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("call ended: peer hung up"), "{err}");
    assert_eq!(finish(listener).status.code(), Some(0));

    // A listener killed mid-call (no Bye): the caller's call failed.
    let (mut listener, port, _out) = listen(&[]);
    let target = format!("127.0.0.1:{port}");
    let mut caller = vidchat(&["connect", &target, "--source", "test", "--no-window"])
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(caller.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("in a call") {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut err, &mut line).unwrap() > 0);
    }
    listener.kill().unwrap();
    listener.wait().unwrap();
    let out = finish(caller);
    let mut said = String::new();
    std::io::Read::read_to_string(&mut err, &mut said).unwrap();
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(said.contains("call ended: connection lost"), "{said}");
}

/// Runs `ip ARGS`; false when it cannot.
fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A network namespace of its own, deleted on drop: its port 9999 is free.
struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        ip(&["netns", "del", &self.0]);
    }
}

#[test]
fn connect_localhost_reaches_a_listener_on_localhost_9999() {
    let ns = Namespace(format!("vidchat-lh-{}", std::process::id()));
    if !ip(&["netns", "add", &ns.0]) || !ip(&["-n", &ns.0, "link", "set", "lo", "up"]) {
        eprintln!("SKIPPED: cannot make a network namespace (needs root and iproute2)");
        return;
    }
    let in_ns = |args: &[&str]| {
        let mut ip = Command::new("ip");
        ip.env(util::CONFIG_DIR, util::own_config())
            .args(["netns", "exec", &ns.0, BIN])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        ip
    };
    let (listener, port, _out) = util::spawn_listener(in_ns(&[
        "listen",
        "--bind",
        "127.0.0.1",
        "--source",
        "test",
        "--no-window",
        "--yes",
        "--duration",
        "2",
    ]));
    assert_eq!(port, 9999);
    let out = finish(
        in_ns(&["connect", "localhost", "--source", "test", "--no-window"])
            .spawn()
            .unwrap(),
    );
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("localhost:9999") || said.contains("(127.0.0.1:9999)"),
        "{said}"
    );
    assert!(said.contains("call ended: peer hung up"), "{said}");
    assert_eq!(finish(listener).status.code(), Some(0));
}
