//! A call that resumes while someone who saw its resumption tries to keep
//! it out, through the built binary: the caller reaches the listener
//! through a relay this test runs (50 ms each way), which goes silent
//! mid-call (both sides start reconnecting) and keeps the first
//! resumption the caller sends while the link is down. An attacker then
//! replays it to the listener from 40 addresses, 100 connections a
//! second, each held open, for the rest of the call: a real id and a real
//! first message, which pass every check but the proof. The link comes
//! back; the real caller must still get in, and the call must go on to
//! its end.
//!
//! Both sides run with `VIDCHAT_NO_TCP_INFO=1`: the relay's kernel
//! acknowledges everything, which would otherwise look like a frozen peer.

#![cfg(target_os = "linux")]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Sender, bounded, unbounded};
use socket2::{Domain, Socket, Type};

mod util;
use util::{GUARD, HEADLESS_LISTEN, caller, finish, spawn_listener, stderr, vidchat};

/// How long each side's call lasts.
const CALL_SECS: &str = "20";
/// The relay's one-way delay: a 100 ms round trip, so each resumption
/// needs that long to go through while the flood goes on.
const DELAY: Duration = Duration::from_millis(50);
/// The attacker's addresses (127.0.0.2 and on) and its pace.
const ATTACKER_ADDRS: u8 = 40;
const ATTACK_EVERY: Duration = Duration::from_millis(10);

/// A relay from a local port to `upstream`; while `cut`, it forwards
/// nothing (the connections it carries are silent from then on, as over a
/// dead link) and a new connection's first bytes are kept, then closed.
struct Relay {
    port: u16,
    cut: Arc<AtomicBool>,
}

impl Relay {
    fn start(upstream: u16, captured: Sender<Vec<u8>>) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let relay_cut = cut.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                if relay_cut.load(Ordering::Relaxed) {
                    let _ = captured.try_send(first_frames(client));
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    return;
                };
                pump(&client, &server, &relay_cut);
                pump(&server, &client, &relay_cut);
            }
        });
        Relay { port, cut }
    }
}

/// Copies `from` to `to`, each byte `DELAY` late, until the relay is cut;
/// from then on what comes is read and dropped.
fn pump(from: &TcpStream, to: &TcpStream, cut: &Arc<AtomicBool>) {
    let (mut from, mut to, cut) = (
        from.try_clone().unwrap(),
        to.try_clone().unwrap(),
        cut.clone(),
    );
    let (line_in, line) = unbounded::<(Instant, Vec<u8>)>();
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        let mut dead = false;
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    dead |= cut.load(Ordering::Relaxed);
                    let due = Instant::now() + DELAY;
                    if !dead && line_in.send((due, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    thread::spawn(move || {
        for (due, bytes) in line {
            // A delay line: the link's latency, not a wait for anything.
            thread::sleep(due.saturating_duration_since(Instant::now()));
            if to.write_all(&bytes).is_err() {
                return;
            }
        }
    });
}

/// A resuming caller's Hello and first Noise message, as it sends them.
fn first_frames(mut stream: TcpStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while frames_in(&got) < 2 {
        match stream.read(&mut buf) {
            Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    got
}

/// Whole u64-length-prefixed frames at the start of `bytes`.
fn frames_in(mut bytes: &[u8]) -> usize {
    let mut count = 0;
    while let Some((len, rest)) = bytes.split_first_chunk::<8>() {
        let len = u64::from_le_bytes(*len) as usize;
        if rest.len() < len {
            break;
        }
        bytes = &rest[len..];
        count += 1;
    }
    count
}

/// Replays `bytes` to 127.0.0.1:`port` from the attacker's addresses in
/// turn, keeping the last `ATTACKER_ADDRS` connections open, until `stop`;
/// says on `ready` once it has made twice that many.
fn attack(
    port: u16,
    bytes: Vec<u8>,
    stop: Arc<AtomicBool>,
    made: Arc<AtomicUsize>,
    ready: Sender<()>,
) {
    let mut open = VecDeque::new();
    let target: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
    for n in 0usize.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let from = Ipv4Addr::new(127, 0, 0, 2 + (n % usize::from(ATTACKER_ADDRS)) as u8);
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket.bind(&SocketAddr::from((from, 0)).into()).unwrap();
        if socket.connect(&target.into()).is_ok() {
            let mut stream: TcpStream = socket.into();
            let _ = stream.write_all(&bytes);
            open.push_back(stream);
            if open.len() > usize::from(ATTACKER_ADDRS) {
                open.pop_front();
            }
            if made.fetch_add(1, Ordering::Relaxed) + 1 == 2 * usize::from(ATTACKER_ADDRS) {
                let _ = ready.send(());
            }
        }
        thread::sleep(ATTACK_EVERY);
    }
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

#[test]
fn the_real_caller_resumes_through_a_flood_of_replayed_resumptions() {
    let stats = std::env::temp_dir().join(format!("vidchat-{}-resumed.jsonl", std::process::id()));
    let mut args = HEADLESS_LISTEN.to_vec();
    args.extend(["--yes", "--duration", CALL_SECS]);
    let mut listen = vidchat(&args);
    listen.env("VIDCHAT_NO_TCP_INFO", "1");
    let (listener, port, _out) = spawn_listener(listen);
    let (captured_tx, captured) = bounded(1);
    let relay = Relay::start(port, captured_tx);
    let mut call = caller(relay.port);
    call.args(["--duration", CALL_SECS, "--stats", stats.to_str().unwrap()]);
    call.env("VIDCHAT_NO_TCP_INFO", "1");
    let mut calling = call.spawn().unwrap();
    let mut err = BufReader::new(calling.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("in a call") {
        let n = err.read_line(&mut seen).unwrap();
        assert!(n > 0, "the call did not start:\n{seen}");
    }
    relay.cut.store(true, Ordering::Relaxed);
    // The caller, reconnecting, dials the relay, which keeps what it sent.
    let replayed = captured.recv_timeout(GUARD).expect("no resumption came");
    assert_eq!(frames_in(&replayed), 2, "{replayed:?}");
    let (stop, made) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let (ready_tx, ready) = bounded(1);
    let attacker = {
        let (stop, made) = (stop.clone(), made.clone());
        thread::spawn(move || attack(port, replayed, stop, made, ready_tx))
    };
    // The attacker's connections hold every place before the link returns.
    ready
        .recv_timeout(GUARD)
        .expect("the attacker could not connect");
    relay.cut.store(false, Ordering::Relaxed);
    let back_us = unix_us();
    let mut said = String::new();
    err.read_to_string(&mut said).unwrap();
    let code = finish(calling).status.code();
    stop.store(true, Ordering::Relaxed);
    attacker.join().unwrap();
    let log = stderr(&finish(listener));
    assert_eq!(code, Some(0), "{said}");
    assert!(log.contains("call ended"), "{log}");
    // The first frame shown after the link came back, on the resumed call.
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&stats)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let _ = std::fs::remove_file(&stats);
    let first = rows
        .iter()
        .find(|r| r["shown_us"].as_u64().unwrap() > back_us)
        .expect("no frame after the link came back");
    let after = Duration::from_micros(first["shown_us"].as_u64().unwrap() - back_us);
    eprintln!(
        "{} attacker connections; frames again {after:?} after the link came back",
        made.load(Ordering::Relaxed)
    );
    assert_eq!(first["resumptions"], 1, "{first}");
    assert!(after < Duration::from_secs(3), "{after:?}");
}
