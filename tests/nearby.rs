//! Finding a listener without its address, for real: two network
//! namespaces joined by a veth pair and nothing else, `vidchat listen` in
//! one and `vidchat connect`/`peers` with no address in the other; and
//! what a hostile machine on that link can send by multicast. Needs root
//! and `ip` (iproute2): each test says why it skipped where namespaces
//! cannot be made.

#![cfg(target_os = "linux")]

mod util;

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use util::{BIN, GUARD, finish, stop};

/// Two namespaces, `a` (10.77.0.1) and `b` (10.77.0.2), joined by a veth
/// pair; removed when dropped.
struct Lan {
    a: String,
    b: String,
}

const ADDR_A: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Lan {
    /// The namespaces, or None (with the reason printed) where they cannot be made.
    fn new(ipv4: bool) -> Option<Lan> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "vc{}{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let lan = Lan {
            a: format!("{id}a"),
            b: format!("{id}b"),
        };
        match lan.build(ipv4) {
            Ok(()) => Some(lan),
            Err(reason) => {
                println!("skipped: no network namespaces here ({reason})");
                None
            }
        }
    }

    fn build(&self, ipv4: bool) -> Result<(), String> {
        let (a, b) = (self.a.as_str(), self.b.as_str());
        for ns in [a, b] {
            ip(&["netns", "add", ns])?;
            // No duplicate address detection on a two-host link: addresses
            // are usable at once rather than two seconds later.
            ip(&[
                "netns",
                "exec",
                ns,
                "sh",
                "-c",
                "echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad",
            ])?;
        }
        ip(&[
            "link", "add", a, "netns", a, "type", "veth", "peer", "name", b, "netns", b,
        ])?;
        for (ns, host) in [(a, "1"), (b, "2")] {
            if ipv4 {
                ip(&[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("10.77.0.{host}/24"),
                    "dev",
                    ns,
                ])?;
            }
            ip(&["-n", ns, "link", "set", ns, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        // A link is used (mDNS picks its interfaces) once the kernel reports
        // its carrier, up to a second after it is set up, and its IPv6
        // link-local address.
        let deadline = Instant::now() + GUARD;
        while ![a, b].iter().all(|ns| Lan::running(ns)) {
            if Instant::now() > deadline {
                return Err("the veth pair never came up".into());
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// True once the veth end in `ns` has its carrier (LOWER_UP) and a
    /// usable IPv6 link-local address.
    fn running(ns: &str) -> bool {
        Command::new("ip")
            .args(["-n", ns, "addr", "show", "dev", ns])
            .output()
            .is_ok_and(|out| {
                let shown = String::from_utf8_lossy(&out.stdout);
                shown.contains("LOWER_UP")
                    && shown.contains("inet6 fe80")
                    && !shown.contains("tentative")
            })
    }

    /// `vidchat ARGS` inside namespace `ns`.
    fn vidchat(ns: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.env(util::CONFIG_DIR, util::own_config())
            .args(["netns", "exec", ns, BIN])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// `vidchat connect ARGS` with the test pattern and no window, run to
    /// its end in `b`: its output and how long it took.
    fn connect(&self, args: &[&str]) -> (Output, Duration) {
        let mut all = vec!["connect", "--yes", "--source", "test", "--no-window"];
        all.extend_from_slice(args);
        run(Lan::vidchat(&self.b, &all))
    }

    /// A headless test-pattern listener in `a` that takes calls, once it
    /// has announced itself (its first line is printed after that).
    fn listener(&self, extra: &[&str]) -> (Child, u16) {
        let mut args = vec!["listen", "--yes", "--source", "test", "--no-window"];
        args.extend_from_slice(extra);
        let (child, port, _) = util::spawn_listener(Lan::vidchat(&self.a, &args));
        (child, port)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth pair, and so both.
        let _ = ip(&["netns", "del", &self.a]);
        let _ = ip(&["netns", "del", &self.b]);
    }
}

/// Runs `cmd` to its end (within the guard), returning its output and how long it took.
fn run(mut cmd: Command) -> (Output, Duration) {
    let started = Instant::now();
    let out = finish(cmd.spawn().expect("start vidchat"));
    (out, started.elapsed())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn connect_without_an_address_finds_the_listener_and_calls_it() {
    let Some(lan) = Lan::new(true) else { return };
    let (listener, _) = lan.listener(&[]);
    let dir = std::env::temp_dir().join(format!("vidchat-nearby-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stats = dir.join("caller.jsonl");
    let (out, _) = lan.connect(&["--duration", "3", "--stats", stats.to_str().unwrap()]);
    let caller = text(&out.stderr);
    let callee = stop(listener);
    assert!(out.status.success(), "{caller}");
    assert!(caller.contains("found on the local network"), "{caller}");
    assert!(caller.contains("10.77.0.1:"), "{caller}");
    assert!(
        caller.contains("in a call") && callee.contains("in a call"),
        "{caller}\n{callee}"
    );
    let received = std::fs::read_to_string(&stats).unwrap().lines().count();
    assert!(
        received >= 30,
        "caller received {received} frames\n{caller}"
    );
    // The listener's status lines count frames received each second.
    let frames_in = callee
        .lines()
        .filter(|l| l.starts_with("in ") && !l.starts_with("in 0.0 fps"))
        .count();
    assert!(frames_in >= 1, "listener received no frames\n{callee}");
}

#[test]
fn several_listeners_are_listed_and_one_is_called_by_name() {
    let Some(lan) = Lan::new(true) else { return };
    let (alice, _) = lan.listener(&["--port", "0", "--name", "alice"]);
    let (bob, bob_port) = lan.listener(&["--port", "0", "--name", "bob"]);
    let (out, _) = lan.connect(&[]);
    let listed = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{listed}");
    assert!(listed.contains("vidchat connect alice"), "{listed}");
    assert!(listed.contains("vidchat connect bob"), "{listed}");

    let (peers, _) = run(Lan::vidchat(&lan.b, &["peers"]));
    let peers = text(&peers.stdout);
    assert!(
        peers.contains("alice") && peers.contains(&format!("10.77.0.1:{bob_port}")),
        "{peers}"
    );

    let (out, _) = lan.connect(&["bob", "--duration", "1"]);
    let caller = text(&out.stderr);
    let (alice, bob) = (stop(alice), stop(bob));
    assert!(out.status.success(), "{caller}");
    // Bob answers on the namespace's IPv4 and IPv6 link-local addresses;
    // whichever is heard first is called.
    let ipv4 = caller.contains(&format!("calling bob (10.77.0.1:{bob_port})"));
    let ipv6 = caller
        .lines()
        .any(|l| l.starts_with("calling bob ([fe80::") && l.contains(&format!("]:{bob_port})")));
    assert!(ipv4 || ipv6, "{caller}");
    assert!(bob.contains("in a call"), "{bob}");
    assert!(!alice.contains("incoming call"), "{alice}");
}

#[test]
fn with_nobody_listening_connect_says_so_in_one_line() {
    let Some(lan) = Lan::new(true) else { return };
    let (out, took) = lan.connect(&[]);
    let said = text(&out.stderr);
    println!("no listener: ended after {took:?}");
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert_eq!(said.trim().lines().count(), 1, "{said}");
    assert!(
        said.contains("vidchat connect IP:PORT") && said.contains("firewall"),
        "{said}"
    );
    // About 2 s of looking; far more would be a hang.
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn an_ipv6_only_link_works_too() {
    let Some(lan) = Lan::new(false) else { return };
    let (listener, _) = lan.listener(&[]);
    let (out, _) = lan.connect(&["--duration", "1"]);
    let caller = text(&out.stderr);
    let callee = stop(listener);
    assert!(out.status.success(), "{caller}");
    assert!(caller.contains("[fe80::"), "{caller}");
    assert!(callee.contains("in a call"), "{callee}");
}

// ---- What a hostile machine on the link sends by multicast ----

/// A DNS name from its labels.
fn dns_name(labels: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for label in labels {
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
    out
}

/// One resource record (class IN with the cache-flush bit, TTL 120 s).
fn record(name: &[u8], rtype: u16, rdata: &[u8]) -> Vec<u8> {
    let mut out = name.to_vec();
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&0x8001u16.to_be_bytes());
    out.extend_from_slice(&120u32.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
    out
}

/// An mDNS response carrying `records`, claiming `count` of them.
fn response(records: &[Vec<u8>], count: u16) -> Vec<u8> {
    let mut out = vec![0, 0, 0x84, 0, 0, 0];
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    records.iter().for_each(|r| out.extend_from_slice(r));
    out
}

const PTR: u16 = 12;
const TXT: u16 = 16;
const SRV: u16 = 33;
const A: u16 = 1;

/// A whole announcement of a vidchat listener `instance` at `addr`.
fn announcement(instance: &[u8], host: &[u8], addr: Ipv4Addr, txt: &[u8]) -> Vec<Vec<u8>> {
    let service = dns_name(&[b"_vidchat", b"_tcp", b"local"]);
    let full = dns_name(&[instance, b"_vidchat", b"_tcp", b"local"]);
    let target = dns_name(&[host, b"local"]);
    let mut srv = vec![0, 0, 0, 0, 0x27, 0x0f];
    srv.extend_from_slice(&target);
    vec![
        record(&service, PTR, &full),
        record(&full, SRV, &srv),
        record(&full, TXT, txt),
        record(&target, A, &addr.octets()),
    ]
}

/// Packets a hostile machine sends: garbage, oversized and self-pointing
/// ones, hostile names, a listener "at" 127.0.0.1, and `fakes` listeners.
fn hostile_packets(fakes: u32) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for len in [0usize, 1, 11, 12, 13, 100, 512, 1400, 9000] {
        let bytes = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        packets.push(bytes);
    }
    // A header claiming 65535 answers, with one; a name that points at itself.
    packets.push(response(
        &announcement(b"short", b"h", ADDR_A, &[0]),
        u16::MAX,
    ));
    let mut looped = response(&[], 1);
    looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4]);
    packets.push(looped);
    // Oversized: an 8 KB TXT record in a 9 KB datagram.
    let big_txt: Vec<u8> = std::iter::repeat_n([255u8].into_iter().chain([b'x'; 255]), 32)
        .flatten()
        .collect();
    packets.push(response(
        &announcement(b"big", b"hbig", ADDR_A, &big_txt),
        4,
    ));
    let evil: &[u8] = b"\x1b[2J\x07code 123 456\x00evil";
    packets.push(response(&announcement(evil, b"hevil", ADDR_A, &[0]), 4));
    packets.push(response(
        &announcement(b"loopback", b"hlo", Ipv4Addr::LOCALHOST, &[0]),
        4,
    ));
    for i in 0..fakes {
        let (name, host) = (format!("fake{i}"), format!("hfake{i}"));
        let addr = Ipv4Addr::new(10, 77, 1 + (i / 250) as u8, 1 + (i % 250) as u8);
        let records = announcement(name.as_bytes(), host.as_bytes(), addr, &[0]);
        packets.push(response(&records, 4));
    }
    packets
}

/// Sends `packets` to the mDNS group from inside namespace `ns`, round and
/// round, until the returned flag is set.
fn flood(ns: &str, packets: Vec<Vec<u8>>) -> (Arc<AtomicBool>, thread::JoinHandle<usize>) {
    let done = Arc::new(AtomicBool::new(false));
    let stop = done.clone();
    let netns = File::open(format!("/run/netns/{ns}")).expect("namespace file");
    let sender = thread::spawn(move || {
        // Only this thread moves into the namespace.
        assert_eq!(
            unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        socket.set_reuse_address(true).unwrap();
        socket.set_reuse_port(true).unwrap();
        socket
            .bind(&SocketAddr::from(([0, 0, 0, 0], 5353)).into())
            .unwrap();
        socket.set_multicast_if_v4(&ADDR_A).unwrap();
        let group = SocketAddr::from(([224, 0, 0, 251], 5353)).into();
        let mut sent = 0;
        while !stop.load(Ordering::Relaxed) {
            for packet in &packets {
                if socket.send_to(packet, &group).is_ok() {
                    sent += 1;
                }
            }
        }
        sent
    });
    (done, sender)
}

/// `vidchat peers` on the caller's side while the listener's side floods
/// `packets`; says how many went out and what peers printed.
fn peers_under_flood(lan: &Lan, packets: Vec<Vec<u8>>) -> (Output, Duration) {
    let (done, sender) = flood(&lan.a, packets);
    let (out, took) = run(Lan::vidchat(&lan.b, &["peers"]));
    done.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    println!(
        "{sent} hostile packets sent; peers ended after {took:?}:\n{}",
        text(&out.stdout)
    );
    (out, took)
}

#[test]
fn hostile_announcements_are_bounded_and_printed_harmlessly() {
    let Some(lan) = Lan::new(true) else { return };
    let (listener, _) = lan.listener(&["--name", "real"]);

    // A few fakes among the hostile packets: all fit the list, so the real
    // listener must be in it.
    let (out, took) = peers_under_flood(&lan, hostile_packets(20));
    let listed = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(listed.contains("vidchat connect real"), "{listed}");
    assert!(listed.contains("vidchat connect fake19"), "{listed}");
    assert!(
        !listed.contains("loopback") && !listed.contains("127.0.0.1"),
        "{listed}"
    );
    let everything = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
    assert!(
        !everything.iter().any(|&b| b < 0x20 && b != b'\n'),
        "{listed}"
    );
    assert!(listed.contains("_2J_code_123_456_evil"), "{listed}");
    assert!(took < Duration::from_secs(10), "took {took:?}");

    // A thousand listeners: the list stops at its cap and says so, and the
    // look still ends on time.
    let (out, took) = peers_under_flood(&lan, hostile_packets(1000));
    let listed = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(listed.lines().count() <= 32 + 2, "{listed}");
    assert!(listed.contains("more announcements ignored"), "{listed}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    stop(listener);
}
