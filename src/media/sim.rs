//! Two peers in memory through a simulated link on a fake clock: the real
//! call driver (protocol, encryption, the peer's reports, the link
//! estimate) and the real pacing (frames dropped before the encoder, the
//! size ladder, the rate controller) on both sides, with a model encoder
//! that makes frames of the size its bitrate asks for. The link is a
//! bottleneck queue per direction (rate, delay, jitter, stalls, a rate
//! that changes mid-call) delivering packet by packet, so what a socket
//! would read and when is what the receiver sees. No sockets, no sleeps.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::send::Pacing;
use crate::net::connection::tests::answered_pair;
use crate::net::connection::{Connection, Event};
use crate::net::driver::Driver;
use crate::wire::{Frame, VideoFormat};

const PACKET: usize = 1448;
const STEP: Duration = Duration::from_millis(1);
const FPS: u32 = 30;

/// One direction of the link.
struct Pipe {
    /// Bytes a second, as it changes: (from, rate).
    rates: Vec<(Duration, f64)>,
    delay: Duration,
    jitter: Duration,
    /// (every, for): the link carries nothing for `for` every `every`.
    stall: Option<(Duration, Duration)>,
    /// When the bottleneck is free again.
    free_at: Instant,
    /// Packets on their way: (arrives, bytes).
    flying: VecDeque<(Instant, Vec<u8>)>,
    /// Deterministic jitter.
    noise: u64,
}

impl Pipe {
    fn new(mbit: f64, delay_ms: u64, start: Instant) -> Pipe {
        Pipe {
            rates: vec![(Duration::ZERO, mbit * 1e6 / 8.0)],
            delay: Duration::from_millis(delay_ms),
            jitter: Duration::ZERO,
            stall: None,
            free_at: start,
            flying: VecDeque::new(),
            noise: 1,
        }
    }

    fn rate_at(&self, since_start: Duration) -> f64 {
        self.rates
            .iter()
            .rev()
            .find(|(from, _)| *from <= since_start)
            .map_or(1e6, |&(_, r)| r)
    }

    /// Bytes written at `now`, `since` the start of the call.
    fn send(&mut self, now: Instant, since: Duration, bytes: &[u8]) {
        for packet in bytes.chunks(PACKET) {
            let mut start = self.free_at.max(now);
            if let Some((every, length)) = self.stall {
                let at = since + start.saturating_duration_since(now);
                let phase = Duration::from_nanos((at.as_nanos() % every.as_nanos()) as u64);
                if phase < length {
                    start += length - phase;
                }
            }
            let rate = self.rate_at(since);
            let done = start + Duration::from_secs_f64(packet.len() as f64 / rate);
            self.free_at = done;
            self.noise = self
                .noise
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let jitter = self
                .jitter
                .mul_f64((self.noise >> 33) as f64 / f64::from(1u32 << 31));
            // In order, as TCP delivers.
            let arrives =
                (done + self.delay + jitter).max(self.flying.back().map_or(done, |&(t, _)| t));
            self.flying.push_back((arrives, packet.to_vec()));
        }
    }

    /// The bytes that have arrived by `now`, as one read.
    fn arrived(&mut self, now: Instant) -> Vec<u8> {
        let mut read = Vec::new();
        while self.flying.front().is_some_and(|&(t, _)| t <= now) {
            if let Some((_, packet)) = self.flying.pop_front() {
                read.extend_from_slice(&packet);
            }
        }
        read
    }
}

/// One side: its driver, its pacing, and the model encoder.
struct Side {
    driver: Driver,
    pacing: Pacing,
    size: (u32, u32),
    seq: u64,
    keyframe_next: bool,
    /// Capture instants of the frames sent, by seq.
    captured: HashMap<u64, Instant>,
}

impl Side {
    /// A frame from the camera at `now`: dropped, or encoded by the model
    /// (the bitrate's share, varying as real frames do; keyframes 5x).
    fn capture(&mut self, now: Instant) {
        self.seq += 1;
        let link = self.driver.link(now);
        let Some(size) = self.pacing.choose(self.size, link, now) else {
            return;
        };
        let share = f64::from(self.pacing.h264_bitrate(size)) / 8.0 / f64::from(FPS);
        let wobble = 1.0 + 0.3 * ((self.seq as f64) * 1.7).sin();
        let bytes = if std::mem::take(&mut self.keyframe_next) {
            share * 5.0
        } else {
            share * wobble
        };
        let frame = Frame {
            seq: self.seq,
            capture_us: 0,
            width: size.0,
            height: size.1,
            format: VideoFormat::H264,
            keyframe: self.seq == 1,
            quality: super::H264_QUALITY,
            encode_us: 1,
            data: vec![0; bytes.max(20.0) as usize],
        };
        self.captured.insert(self.seq, now);
        let len = frame.data.len();
        self.driver.send_frame(frame).unwrap();
        self.pacing.sent(len, link, now);
    }
}

/// What one direction's receiver saw: (arrival, latency, size) per frame.
#[derive(Default)]
struct Seen {
    frames: Vec<(Duration, Duration, (u32, u32))>,
    bytes: u64,
}

impl Seen {
    /// Frames a second and the latency's 95th percentile between `from`
    /// and `to` (seconds into the call).
    fn window(&self, from: f64, to: f64) -> (f64, Duration) {
        let mut latencies: Vec<Duration> = self
            .frames
            .iter()
            .filter(|(at, ..)| (from..to).contains(&at.as_secs_f64()))
            .map(|&(_, latency, _)| latency)
            .collect();
        latencies.sort();
        let p95 = latencies
            .get(latencies.len() * 95 / 100)
            .copied()
            .unwrap_or(Duration::MAX);
        (latencies.len() as f64 / (to - from), p95)
    }
}

/// Runs a call of `secs` at `size` over `a_to_b` and `b_to_a`; returns what
/// B received from A, and the largest frame bytes A had in flight.
fn call(size: (u32, u32), secs: u64, mut pipes: [Pipe; 2], start: Instant) -> (Seen, u32) {
    let (a, b) = answered_pair(size, start);
    let side = |conn: Connection| Side {
        driver: Driver::new(conn, Vec::new(), start),
        pacing: Pacing::new(FPS, true),
        size,
        seq: 0,
        keyframe_next: true,
        captured: HashMap::new(),
    };
    let mut sides = [side(a), side(b)];
    let mut seen = Seen::default();
    let mut most_in_flight = 0;
    let period = Duration::from_secs(1) / FPS;
    let mut next_frame = start;
    let mut now = start;
    while now < start + Duration::from_secs(secs) {
        let since = now - start;
        if now >= next_frame {
            next_frame += period;
            for side in &mut sides {
                side.capture(now);
            }
        }
        for (n, pipe) in pipes.iter_mut().enumerate() {
            let [from, to] = if n == 0 {
                let [a, b] = &mut sides;
                [a, b]
            } else {
                let [a, b] = &mut sides;
                [b, a]
            };
            if let Some(out) = from.driver.poll_transmit() {
                pipe.send(now, since, &out);
                from.driver.handle_written(out.len() as u64, now);
            }
            let read = pipe.arrived(now);
            if !read.is_empty() {
                to.driver.handle_read(now, &read);
            }
            to.driver.handle_timeout(now);
            while let Some(event) = to.driver.poll_event(now) {
                match event {
                    Event::Frame(frame) if n == 0 => {
                        let captured = from.captured.get(&frame.seq).copied().unwrap_or(now);
                        seen.frames
                            .push((since, now - captured, (frame.width, frame.height)));
                        seen.bytes += frame.data.len() as u64;
                    }
                    Event::Ended(reason) => panic!("the call ended: {reason}"),
                    _ => {}
                }
            }
        }
        let link = sides[0].driver.link(now);
        most_in_flight = most_in_flight.max(link.in_flight_bytes + link.notsent_bytes);
        now += STEP;
    }
    (seen, most_in_flight)
}

fn both(mbit: f64, delay_ms: u64, start: Instant) -> [Pipe; 2] {
    [
        Pipe::new(mbit, delay_ms, start),
        Pipe::new(mbit, delay_ms, start),
    ]
}

#[test]
fn at_1_mbit_vga_goes_at_full_frame_rate_with_little_delay() {
    let start = Instant::now();
    let (seen, most_in_flight) = call((640, 480), 20, both(1.0, 2, start), start);
    let (fps, p95) = seen.window(5.0, 20.0);
    assert!(fps >= 29.0, "{fps} fps");
    assert!(p95 <= Duration::from_millis(60), "p95 {p95:?}");
    // What waits for the link stays within a few frames' worth.
    assert!(most_in_flight < 40_000, "{most_in_flight} bytes in flight");
}

#[test]
fn at_500_kbit_vga_uses_the_link_and_stays_fast() {
    let start = Instant::now();
    let mut pipes = both(0.5, 2, start);
    for pipe in &mut pipes {
        pipe.jitter = Duration::from_millis(4);
    }
    let (seen, _) = call((640, 480), 30, pipes, start);
    let (fps, p95) = seen.window(10.0, 30.0);
    assert!(fps >= 29.0, "{fps} fps");
    assert!(p95 <= Duration::from_millis(80), "p95 {p95:?}");
    let carried = seen.bytes as f64 * 8.0 / 30.0 / 0.5e6;
    assert!(
        carried >= 0.7,
        "{:.0} % of the link carried",
        carried * 100.0
    );
}

#[test]
fn a_drop_from_20_to_1_mbit_is_back_under_150_ms_within_2_s() {
    let start = Instant::now();
    let mut pipes = both(20.0, 2, start);
    for pipe in &mut pipes {
        pipe.rates.push((Duration::from_secs(8), 1e6 / 8.0));
    }
    let (seen, _) = call((1280, 720), 16, pipes, start);
    let (_, before) = seen.window(4.0, 8.0);
    assert!(
        before <= Duration::from_millis(60),
        "before the drop: p95 {before:?}"
    );
    for window in 0..12 {
        let from = 10.0 + f64::from(window) * 0.5;
        let (fps, p95) = seen.window(from, from + 0.5);
        assert!(p95 <= Duration::from_millis(150), "{from} s: p95 {p95:?}");
        assert!(fps >= 20.0, "{from} s: {fps} fps");
    }
}

#[test]
fn a_stall_every_few_seconds_does_not_leave_a_backlog() {
    let start = Instant::now();
    let mut pipes = both(5.0, 2, start);
    for pipe in &mut pipes {
        pipe.stall = Some((Duration::from_secs(4), Duration::from_millis(300)));
    }
    let (seen, _) = call((640, 480), 20, pipes, start);
    // Frames captured during a stall are late; a second later none are.
    for stall in 1..5u32 {
        let after = f64::from(stall * 4) + 1.0;
        let (fps, p95) = seen.window(after, after + 2.5);
        assert!(p95 <= Duration::from_millis(60), "{after} s: p95 {p95:?}");
        assert!(fps >= 28.0, "{after} s: {fps} fps");
    }
}
