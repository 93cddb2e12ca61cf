//! End-to-end calls through the built binary: two processes on loopback,
//! headless, with the test pattern; and what a listener does with peers that
//! are not vidchat.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

mod util;
use util::{GUARD, finish, listen, stderr, stop, vidchat};
use vidchat::wire::VERSION;

/// A headless test-pattern `vidchat connect --yes` to our listener on `port`.
fn caller(port: u16, extra: &[&str]) -> Command {
    let mut cmd = util::caller(port);
    cmd.args(extra);
    cmd
}

/// Starts a caller and returns once it says the call is up.
fn call_in_progress(port: u16) -> Child {
    let mut child = caller(port, &[]).spawn().unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.ends_with("in a call\n") {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "caller ended before the call started"
        );
    }
    child
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("vidchat-{}-{name}", std::process::id()))
}

#[derive(Debug)]
struct Record {
    seq: u64,
    capture_us: u64,
    shown_us: u64,
    bytes: u64,
    width: u64,
    codec: String,
}

fn read_stats(path: &Path) -> Vec<Record> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let field = |k: &str| {
                v[k].as_u64()
                    .unwrap_or_else(|| panic!("{k} missing in {line}"))
            };
            Record {
                seq: field("seq"),
                capture_us: field("capture_us"),
                shown_us: field("shown_us"),
                bytes: field("bytes"),
                width: field("width"),
                codec: v["codec"].as_str().unwrap_or_default().to_string(),
            }
        })
        .collect()
}

fn check_stats(path: &Path, min_frames: usize) {
    let records = read_stats(path);
    assert!(
        records.len() >= min_frames,
        "{} frames in {}",
        records.len(),
        path.display()
    );
    assert!(
        records.windows(2).all(|w| w[0].seq < w[1].seq),
        "seq not increasing"
    );
    // The frames before the link's first measure are the smallest size;
    // from the first at 640x480 on, every frame is.
    let full = records.iter().position(|r| r.width == 640);
    assert!(
        full.is_some_and(|n| n <= 2),
        "the first 640x480 frame came at {full:?}"
    );
    let full = full.unwrap_or_default();
    assert!(records[..full].iter().all(|r| r.width == 320));
    for r in &records[full..] {
        assert_eq!(r.width, 640);
        // A JPEG stands alone; an H.264 frame of a picture that barely
        // moved may be tiny, but never empty.
        let least = if r.codec == "jpeg" { 1000 } else { 1 };
        assert!(
            r.bytes >= least && r.bytes < 200_000,
            "{} bytes is not a 640x480 {} frame",
            r.bytes,
            r.codec
        );
        // capture_us is the peer's stamp moved to our clock by the Ping/Pong
        // offset estimate, which is good to within half a round trip: on a
        // loaded two-core machine running tests side by side, a first Pong
        // held up ~17 ms on its way back put it 8.5 ms off.
        assert!(
            r.shown_us + 20_000 >= r.capture_us,
            "shown before captured: {r:?}"
        );
    }
}

#[test]
fn help_lists_the_commands() {
    let out = vidchat(&["--help"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["listen", "connect", "loopback", "devices"] {
        assert!(text.contains(cmd), "--help lacks {cmd}: {text}");
    }
}

#[test]
fn headless_call_carries_video_both_ways() {
    let (a_stats, b_stats) = (temp("a.jsonl"), temp("b.jsonl"));
    let (listener, port, _out) = listen(&["--duration", "3", "--stats", a_stats.to_str().unwrap()]);
    let caller = caller(
        port,
        &["--duration", "3", "--stats", b_stats.to_str().unwrap()],
    )
    .spawn()
    .unwrap();
    let (a, b) = (finish(listener), finish(caller));
    assert!(a.status.success(), "listener: {}", stderr(&a));
    assert!(b.status.success(), "caller: {}", stderr(&b));
    // 3 s at 30 fps is 90 frames; a loaded CI machine must still get a third.
    check_stats(&a_stats, 30);
    check_stats(&b_stats, 30);
}

#[test]
fn hanging_up_ends_the_other_side() {
    let (listener, port, _out) = listen(&["--duration", "1"]);
    let caller = caller(port, &[]).spawn().unwrap();
    let (a, b) = (finish(listener), finish(caller));
    assert!(a.status.success(), "listener: {}", stderr(&a));
    assert!(
        stderr(&a).contains("call ended: you hung up"),
        "{}",
        stderr(&a)
    );
    assert!(b.status.success(), "caller: {}", stderr(&b));
    assert!(
        stderr(&b).contains("call ended: peer hung up"),
        "{}",
        stderr(&b)
    );
}

/// A vidchat Hello (magic, version, commitment, not busy, no resumption)
/// with its length prefix.
fn hello(magic: &[u8; 8], version: u16) -> Vec<u8> {
    let payload = [
        magic.as_slice(),
        &version.to_le_bytes(),
        &[0; 32],
        &[0],
        &[0],
    ]
    .concat();
    [(payload.len() as u64).to_le_bytes().as_slice(), &payload].concat()
}

/// Sends `bytes` one at a time, a second apart, until the listener hangs up.
fn trickle(port: u16, bytes: &[u8]) {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for b in bytes {
        if conn.write_all(&[*b]).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn strangers_are_refused_and_the_listener_keeps_listening() {
    let (listener, port, _out) = listen(&["--duration", "1"]);
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let pickle_client = [
        1_000_000u64.to_le_bytes().as_slice(),
        &[0x80, 0x04, 0x95],
        &[0; 64],
    ]
    .concat();
    let tls_hello = [
        0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03,
    ];
    // (what the stranger sends, words its refusal line must contain)
    let cases: [(Vec<u8>, &str); 10] = [
        (noise, "limit"),
        (
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            "HTTP request",
        ),
        (tls_hello.to_vec(), "TLS handshake"),
        (pickle_client, "pickle"),
        (
            (1u64 << 63).to_le_bytes().to_vec(),
            "over the 4096-byte limit",
        ),
        (
            4097u64.to_le_bytes().to_vec(),
            "4097-byte message, over the 4096-byte limit",
        ),
        (
            hello(b"VIDCHAT\0", VERSION)[..20].to_vec(),
            "middle of a message",
        ),
        (hello(b"VIDCHAT\0", 99), "protocol v99"),
        (hello(b"NOTVIDCH", VERSION), "not a vidchat peer"),
        (
            [
                hello(b"VIDCHAT\0", VERSION),
                70_000u64.to_le_bytes().to_vec(),
            ]
            .concat(),
            "65535-byte limit",
        ),
    ];
    for (bytes, _) in &cases {
        let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
        conn.set_read_timeout(Some(GUARD)).unwrap();
        // The listener may close before reading everything: a reset is fine.
        let _ = conn.write_all(bytes);
        let _ = conn.shutdown(std::net::Shutdown::Write);
        let _ = conn.read_to_end(&mut Vec::new());
    }
    trickle(port, &hello(b"VIDCHAT\0", VERSION));
    let caller = caller(port, &[]).spawn().unwrap();
    let (a, b) = (finish(listener), finish(caller));
    let log = stderr(&a);
    assert!(
        a.status.success() && b.status.success(),
        "listener: {log}\ncaller: {}",
        stderr(&b)
    );
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("refused connection"))
        .collect();
    assert_eq!(refusals.len(), cases.len() + 1, "{log}");
    for ((_, words), line) in cases.iter().zip(&refusals) {
        assert!(line.contains(words), "expected {words:?} in {line:?}");
    }
    assert!(refusals[cases.len()].contains("within 5 s"), "{log}");
    assert!(log.contains(" - in a call"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn connection_refused_is_one_clear_line() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = finish(caller(port, &[]).spawn().unwrap());
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("connection refused"), "{err}");
}

#[test]
fn no_camera_suggests_the_test_pattern() {
    let out = finish(
        vidchat(&["connect", "127.0.0.1:9", "--camera", "97", "--no-window"])
            .spawn()
            .unwrap(),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--source test"), "{err}");
}

#[test]
fn a_killed_peer_ends_the_call_at_once() {
    let (listener, port, _out) = listen(&[]);
    let mut peer = call_in_progress(port);
    peer.kill().unwrap(); // SIGKILL: no Bye, the kernel closes the socket.
    peer.wait().unwrap();
    let out = finish(listener);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("call ended: connection lost"),
        "{}",
        stderr(&out)
    );
}

#[cfg(unix)]
#[test]
fn a_frozen_peer_is_declared_not_responding() {
    let (listener, port, _out) = listen(&[]);
    let mut peer = call_in_progress(port);
    // SIGSTOP: the socket stays open but nothing more comes.
    let pid = peer.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = finish(listener);
    peer.kill().unwrap();
    peer.wait().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("peer not responding"),
        "{}",
        stderr(&out)
    );
}

/// The codec each side's stats file says it received.
fn codecs_received(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut codecs: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["codec"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    codecs.dedup();
    codecs
}

fn call_with_codecs(listen_codec: &str, call_codec: &str) -> (Vec<String>, Vec<String>) {
    let (a_stats, b_stats) = (
        // Both codecs in both names: tests run at once and share one codec.
        temp(&format!("{listen_codec}-{call_codec}-a.jsonl")),
        temp(&format!("{listen_codec}-{call_codec}-b.jsonl")),
    );
    let (listener, port, _out) = listen(&[
        "--duration",
        "2",
        "--codec",
        listen_codec,
        "--stats",
        a_stats.to_str().unwrap(),
    ]);
    let caller = caller(
        port,
        &[
            "--duration",
            "2",
            "--codec",
            call_codec,
            "--stats",
            b_stats.to_str().unwrap(),
        ],
    )
    .spawn()
    .unwrap();
    let (a, b) = (finish(listener), finish(caller));
    assert!(
        a.status.success() && b.status.success(),
        "{}\n{}",
        stderr(&a),
        stderr(&b)
    );
    (codecs_received(&a_stats), codecs_received(&b_stats))
}

#[test]
fn h264_both_ways_when_both_sides_have_it() {
    let (a, b) = call_with_codecs("h264", "auto");
    assert_eq!((a, b), (vec!["h264".to_string()], vec!["h264".to_string()]));
}

#[test]
fn h264_and_mjpeg_sides_agree_on_mjpeg() {
    let (a, b) = call_with_codecs("h264", "mjpeg");
    assert_eq!((a, b), (vec!["jpeg".to_string()], vec!["jpeg".to_string()]));
}

fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

#[test]
fn with_nobody_to_ask_a_listener_declines_and_sends_nothing() {
    // Headless, stdin not a terminal, and no --yes.
    let (listener, port, _out) = util::spawn_listener(vidchat(&util::HEADLESS_LISTEN));
    let stats = temp("declined.jsonl");
    let out = finish(
        caller(port, &["--stats", stats.to_str().unwrap()])
            .spawn()
            .unwrap(),
    );
    let log = stop(listener);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("call declined by "),
        "{}",
        stderr(&out)
    );
    let frames = std::fs::read_to_string(&stats).map_or(0, |s| s.lines().count());
    assert_eq!(frames, 0, "frames reached a declined caller");
    assert!(log.contains("every call will be declined"), "{log}");
    assert!(log.contains("incoming call - declined"), "{log}");
    let _ = std::fs::remove_file(stats);
}

#[cfg(target_os = "linux")]
#[test]
fn a_host_name_posing_as_a_code_is_printed_harmlessly() {
    use std::os::unix::process::CommandExt;
    let fake = "x - code: 111 111 \u{202E}";
    let (listener, port, _out) = listen(&["--duration", "1"]);
    let mut cmd = caller(port, &["--duration", "1"]);
    // SAFETY: between fork and exec the child only makes two system calls.
    unsafe {
        cmd.pre_exec(move || {
            // Its own UTS namespace, so the host name changes for it alone.
            if libc::unshare(libc::CLONE_NEWUTS) != 0
                || libc::sethostname(fake.as_ptr().cast(), fake.len()) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let caller = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("SKIPPED host name test: no UTS namespace here ({e}; needs root)");
            stop(listener);
            return;
        }
    };
    let (a, b) = (finish(listener), finish(caller));
    assert!(
        a.status.success() && b.status.success(),
        "{}\n{}",
        stderr(&a),
        stderr(&b)
    );
    let log = stderr(&a);
    assert!(!log.contains("111 111"), "the fake code was printed: {log}");
    assert!(
        !log.contains('\u{202E}'),
        "a bidi override reached the terminal: {log}"
    );
    let incoming = log.lines().find(|l| l.contains("incoming call")).unwrap();
    assert!(incoming.starts_with("code "), "{incoming}");
    assert!(incoming.contains("x_-_code__111_111__"), "{incoming}");
}

#[test]
fn forty_strangers_holding_connections_do_not_keep_a_caller_out() {
    let (listener, port, _out) = listen(&["--duration", "2"]);
    // Thirty say nothing; ten send the first bytes of a Hello and stall.
    let strangers: Vec<TcpStream> = (0..40)
        .map(|n| {
            let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
            if n % 4 == 0 {
                conn.write_all(&hello(b"VIDCHAT\0", VERSION)[..5]).unwrap();
            }
            conn
        })
        .collect();
    let stats = temp("crowd.jsonl");
    let started_us = unix_us();
    let out = finish(
        caller(
            port,
            &["--duration", "2", "--stats", stats.to_str().unwrap()],
        )
        .spawn()
        .unwrap(),
    );
    let a = finish(listener);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(a.status.success(), "{}", stderr(&a));
    let records = read_stats(&stats);
    assert!(!records.is_empty(), "no frame reached the caller");
    let first = records.iter().map(|r| r.shown_us).min().unwrap();
    eprintln!(
        "first frame {:.2} s after the caller started, with 40 strangers connected",
        first.saturating_sub(started_us) as f64 / 1e6
    );
    drop(strangers);
    let _ = std::fs::remove_file(stats);
}

#[test]
fn a_peer_that_sends_but_never_reads_is_let_go() {
    use vidchat::codec::{RgbImage, encode_jpeg};
    use vidchat::wire::{Frame, VideoFormat};

    let (listener, port, _out) = listen(&[]);
    let mut peer = accepted_hostile_peer(port, 64, 64);
    // From here on nothing is read: no Pong ever answers the listener.
    let deaf_since = std::time::Instant::now();
    let mut jpeg = Vec::new();
    encode_jpeg(&RgbImage::new(64, 64), 70, &mut jpeg).unwrap();
    let mut stream = peer.stream.try_clone().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut bytes = Vec::new();
    for seq in 1.. {
        let frame = Frame {
            seq,
            capture_us: seq,
            width: 64,
            height: 64,
            format: VideoFormat::Jpeg,
            keyframe: true,
            quality: 70,
            encode_us: 1,
            data: jpeg.clone(),
        };
        peer.conn.send_frame(frame).unwrap();
        peer.conn.take_outgoing(&mut bytes);
        if stream.write_all(&bytes).is_err() || deaf_since.elapsed() > GUARD {
            break;
        }
        std::thread::sleep(Duration::from_millis(33)); // a 30 fps sender's pace
    }
    let out = finish(listener);
    eprintln!(
        "listener ended {:.1} s after its peer stopped reading",
        deaf_since.elapsed().as_secs_f64()
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("peer not reading"),
        "{}",
        stderr(&out)
    );
}

/// CPU time process `pid` used so far, in seconds (user and system, from
/// /proc; 100 ticks a second, as on every Linux this runs on).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Peak memory of process `pid` in kB (VmHWM), where /proc has it.
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A hostile caller to the listener on `port` that announced H.264 up to
/// `width`x`height`, answered and confirmed: it may send frames now.
fn accepted_hostile_peer(port: u16, width: u32, height: u32) -> vidchat::net::Peer {
    use vidchat::net::connection::{Event, Role};
    use vidchat::wire::{Intro, VideoFormat};

    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect(addr).unwrap();
    let intro =
        Intro::new("hostile", width, height).with_codecs(&[VideoFormat::H264, VideoFormat::Jpeg]);
    let us = vidchat::net::Us {
        intro,
        key: vidchat::secure::StaticKey::generate().unwrap(),
    };
    let mut peer = vidchat::net::Peer::new(stream, addr, Role::Caller, &us).unwrap();
    peer.wait_for(|e| *e == Event::Accepted, &mut || true)
        .unwrap();
    peer.conn.confirm();
    peer
}

/// An H.264 frame of `data`.
fn h264_frame(
    seq: u64,
    (width, height): (u32, u32),
    keyframe: bool,
    data: Vec<u8>,
) -> vidchat::wire::Frame {
    vidchat::wire::Frame {
        seq,
        capture_us: seq,
        width,
        height,
        format: vidchat::wire::VideoFormat::H264,
        keyframe,
        quality: 100,
        encode_us: 1,
        data,
    }
}

/// Sends `frame()` from `peer` `per_second` times a second (none at 0)
/// for `how_long`, keeping its connection pumped; stops early if the
/// call ends.
fn send_paced(
    peer: &mut vidchat::net::Peer,
    per_second: u32,
    how_long: Duration,
    mut frame: impl FnMut() -> vidchat::wire::Frame,
) {
    let start = std::time::Instant::now();
    let mut next = start;
    while peer.conn.end_reason().is_none() && start.elapsed() < how_long {
        let now = std::time::Instant::now();
        if per_second > 0 && now >= next {
            if peer.conn.send_frame(frame()).is_err() {
                return;
            }
            next += Duration::from_secs(1) / per_second;
        }
        peer.pump(now);
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A sequence parameter set for 256x144 macroblocks (4096x2304) cropped to
/// 16x16: `sps(256, 144, (16, 16), 1)` in `codec::h264`'s tests. A check of
/// the cropped size alone passes it, and openh264 would allocate the full
/// size for each of its reference pictures.
const CROP_BOMB: [u8; 20] = [
    0x00, 0x00, 0x00, 0x01, 0x67, 0x42, 0xc0, 0x33, 0xda, 0x00, 0x40, 0x00, 0x48, 0x78, 0x01, 0xfe,
    0x60, 0x04, 0x79, 0x40,
];

#[test]
fn a_crop_bomb_from_an_accepted_peer_is_refused_with_bounded_memory() {
    let (listener, port, _out) = listen(&[]);
    let pid = listener.id();
    let mut peer = accepted_hostile_peer(port, 16, 16);
    // Keyframes of it at 30 a second, as a camera's would come (faster,
    // the frame budget would end the call before the decoder saw ten).
    let mut seq = 0;
    send_paced(&mut peer, 30, GUARD, || {
        seq += 1;
        h264_frame(seq, (16, 16), true, CROP_BOMB.to_vec())
    });
    let rss = peak_rss_kb(pid);
    let out = finish(listener);
    let log = stderr(&out);
    eprintln!(
        "crop bombs: the listener's peak RSS {} kB; {}",
        rss.map_or("?".into(), |k| k.to_string()),
        log.lines()
            .find(|l| l.contains("call ended"))
            .unwrap_or_default()
    );
    assert_eq!(out.status.code(), Some(3), "{log}");
    assert!(log.contains("4096x2304 macroblocks"), "{log}");
    if let Some(kb) = rss {
        assert!(kb < 64 * 1024, "peak RSS {kb} kB");
    }
}

#[test]
fn a_flood_of_skip_frames_ends_the_call_with_bounded_work() {
    use vidchat::codec::RgbImage;
    use vidchat::codec::h264::H264Encoder;

    let (listener, port, _out) = listen(&[]);
    let pid = listener.id();
    let mut peer = accepted_hostile_peer(port, 640, 480);
    // One keyframe, then the same picture again and again: skip frames of a
    // few dozen bytes, each a full decode for the receiver.
    let mut encoder = H264Encoder::new(30).unwrap();
    let picture = RgbImage::new(640, 480);
    let mut sizes = Vec::new();
    let mut frame = |seq: u64, sizes: &mut Vec<usize>| {
        let mut data = Vec::new();
        let keyframe = encoder.encode(&picture, &mut data).unwrap();
        sizes.push(data.len());
        h264_frame(seq, (640, 480), keyframe, data)
    };
    // First what the listener spends with no frame coming (its own video),
    // then with 200 a second, just under the cap: a measurement, printed.
    let mut seq = 0;
    let mut busy = |peer: &mut vidchat::net::Peer, per_second: u32, sizes: &mut Vec<usize>| {
        let (start, cpu) = (std::time::Instant::now(), cpu_seconds(pid));
        send_paced(peer, per_second, Duration::from_secs(2), || {
            seq += 1;
            frame(seq, sizes)
        });
        let used = cpu_seconds(pid).zip(cpu).map(|(b, a)| b - a);
        used.map(|cpu| 100.0 * cpu / start.elapsed().as_secs_f64())
    };
    let idle = busy(&mut peer, 0, &mut sizes);
    let decoding = busy(&mut peer, 200, &mut sizes);
    eprintln!(
        "the listener's CPU: {} % of a core with no frames coming, {} % with 200 skip frames a second",
        idle.map_or("?".into(), |p| format!("{p:.0}")),
        decoding.map_or("?".into(), |p| format!("{p:.0}"))
    );
    assert!(
        peer.conn.end_reason().is_none(),
        "200 frames a second ended the call"
    );
    let (started, before) = (std::time::Instant::now(), sizes.len());
    for seq in seq + 1..=seq + 3_000 {
        if peer.conn.send_frame(frame(seq, &mut sizes)).is_err() {
            break;
        }
        peer.flush(std::time::Instant::now() + Duration::from_millis(100));
        if peer.conn.end_reason().is_some() {
            break;
        }
    }
    let rss = peak_rss_kb(pid);
    let out = finish(listener);
    let log = stderr(&out);
    eprintln!(
        "the listener ended the call after {} frames of the flood ({} bytes each after the first), {:.2} s into it; its peak RSS {} kB",
        sizes.len() - before,
        sizes.get(1).copied().unwrap_or(0),
        started.elapsed().as_secs_f64(),
        rss.map_or("?".into(), |k| k.to_string())
    );
    assert_eq!(out.status.code(), Some(3), "{log}");
    assert!(log.contains("faster than any camera"), "{log}");
    if let Some(kb) = rss {
        assert!(kb < 64 * 1024, "peak RSS {kb} kB");
    }
}

#[test]
fn hostile_text_is_bounded_shown_harmlessly_and_the_call_goes_on() {
    use vidchat::wire::{MAX_MESSAGE_LEN, Message, encode_payload};

    let log = temp("hostile-chat.jsonl");
    let (listener, port, mut out) =
        listen(&["--chat-log", log.to_str().unwrap(), "--duration", "4"]);
    let mut peer = accepted_hostile_peer(port, 64, 64);
    let send = |peer: &mut vidchat::net::Peer, text: String| {
        let mut plain = Vec::new();
        encode_payload(&Message::Text { text }, MAX_MESSAGE_LEN, &mut plain).unwrap();
        peer.conn.send_raw(&plain);
    };
    // An escape sequence, a right-to-left override, a tower of combining
    // marks, a megabyte, then 10,000 lines at once.
    send(&mut peer, "\u{1b}[2J\u{1b}[31mred\u{7}\r".into());
    send(&mut peer, "abc\u{202E}fed".into());
    send(&mut peer, format!("a{}", "\u{0301}".repeat(1000)));
    send(&mut peer, "x".repeat(1 << 20));
    for n in 0..10_000 {
        send(&mut peer, format!("flood {n}"));
    }
    // The hostile peer stays in the call until the listener hangs up.
    while peer.conn.end_reason().is_none() {
        peer.pump(std::time::Instant::now());
        std::thread::sleep(Duration::from_millis(5));
    }
    let ended = finish(listener);
    let mut printed = String::new();
    out.read_to_string(&mut printed).unwrap();
    let said = stderr(&ended);
    assert_eq!(ended.status.code(), Some(0), "{said}");
    assert!(said.contains("call ended: you hung up"), "{said}");
    let logged = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let lines: Vec<&str> = printed
        .lines()
        .filter(|l| l.contains(" hostile: "))
        .collect();
    eprintln!(
        "{} of 10,004 hostile lines shown, {} bytes logged",
        lines.len(),
        logged.len()
    );
    assert!(lines.len() >= 3, "{printed}");
    assert!(lines.len() < 100, "{} lines shown", lines.len());
    for line in &lines {
        assert!(
            !line.chars().any(|c| c.is_control() || c == '\u{202E}'),
            "{line:?}"
        );
        assert!(
            line.chars().count() < 600,
            "a line of {} characters",
            line.chars().count()
        );
    }
    assert!(printed.contains("refused"), "{printed}");
    assert!(logged.len() < 100_000, "the megabyte was logged");
}
