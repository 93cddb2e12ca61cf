//! A door floods cannot shut: while one address (127.0.0.2) opens silent
//! connections at about 2,000 a second, a real caller from another
//! (127.0.0.1) gets its call and its frames, and the listener's log stays
//! a few lines a second, not a line per connection.

#![cfg(not(target_vendor = "apple"))]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

mod util;
use util::{finish, listen, stderr};

fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// Connections at `per_second` from 127.0.0.2 to `port`, each left open
/// (the newest 200 are held) and silent, until `stop`.
fn flood(port: u16, per_second: u32, stop: Arc<AtomicBool>, opened: Arc<AtomicU64>) {
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    let from = SocketAddr::from(([127, 0, 0, 2], 0));
    let mut held: VecDeque<TcpStream> = VecDeque::new();
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // Keep to the rate: as many as are due by now.
        let due = start.elapsed().as_secs_f64() * f64::from(per_second);
        while (opened.load(Ordering::Relaxed) as f64) < due {
            let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            socket.bind(&from.into()).unwrap();
            if socket.connect(&to.into()).is_ok() {
                held.push_back(socket.into());
                if held.len() > 200 {
                    held.pop_front();
                }
            }
            opened.fetch_add(1, Ordering::Relaxed);
        }
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_real_caller_gets_through_a_flood_from_another_address() {
    let (listener, port, _out) = listen(&["--duration", "6"]);
    let mut listener = listener;
    let log = BufReader::new(listener.stderr.take().unwrap());
    let log_lines = thread::spawn(move || {
        log.lines()
            .map_while(Result::ok)
            .map(|line| (Instant::now(), line))
            .collect::<Vec<_>>()
    });
    let (stop, opened) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let flooder = {
        let (stop, opened) = (stop.clone(), opened.clone());
        thread::spawn(move || flood(port, 2_000, stop, opened))
    };
    // The flood runs a second before the real caller comes.
    let flood_started = Instant::now();
    while opened.load(Ordering::Relaxed) < 2_000 {
        thread::sleep(Duration::from_millis(10));
    }
    let stats = std::env::temp_dir().join(format!("vidchat-flood-{}.jsonl", std::process::id()));
    let called_us = unix_us();
    let caller = util::caller(port)
        .args(["--duration", "3", "--stats"])
        .arg(&stats)
        .spawn()
        .unwrap();
    let out = finish(caller);
    stop.store(true, Ordering::Relaxed);
    flooder.join().unwrap();
    let flood_secs = flood_started.elapsed().as_secs_f64();
    let rate = opened.load(Ordering::Relaxed) as f64 / flood_secs;
    let done = finish(listener);
    let lines = log_lines.join().unwrap();
    assert!(out.status.success(), "caller: {}", stderr(&out));
    assert_eq!(done.status.code(), Some(0));
    let text = std::fs::read_to_string(&stats).unwrap_or_default();
    assert!(
        text.lines().count() > 30,
        "the caller got {} frames",
        text.lines().count()
    );
    let first_us: u64 = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["shown_us"].as_u64())
        .min()
        .unwrap();
    let since_call = first_us.saturating_sub(called_us) as f64 / 1e6;
    // The log during the flood: how many lines in its busiest second.
    let flooded: Vec<&(Instant, String)> = lines
        .iter()
        .filter(|(at, _)| {
            *at >= flood_started && at.duration_since(flood_started).as_secs_f64() < flood_secs
        })
        .collect();
    let busiest = (0..flood_secs.ceil() as u64)
        .map(|s| {
            flooded
                .iter()
                .filter(|(at, _)| at.duration_since(flood_started).as_secs() == s)
                .count()
        })
        .max()
        .unwrap_or(0);
    eprintln!(
        "flood of {rate:.0} connections/s for {flood_secs:.1} s: the real caller's first frame {since_call:.2} s after it started; \
         listener log {} lines, at most {busiest} in one second",
        flooded.len()
    );
    assert!(rate > 1_000.0, "the flood reached only {rate:.0}/s");
    assert!(
        busiest < 10,
        "{busiest} log lines in one second:\n{lines:#?}"
    );
    assert!(
        lines.iter().any(|(_, l)| l.starts_with("door: pushed out")),
        "the flood went unsaid: {lines:#?}"
    );
    let _ = std::fs::remove_file(stats);
}
