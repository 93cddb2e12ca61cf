//! What a call measures and tells: counters the threads bump, the `--stats`
//! file (one JSON object per frame shown), and the once-a-second status line.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

/// Counters shared by a call's threads, and the two video switches (relaxed
/// atomics: figures and flags, never used to order other memory).
#[derive(Debug, Default)]
pub struct Counters {
    /// The person paused their video (`v`): the sender sends no frames.
    pub video_paused: AtomicBool,
    /// The peer says its video is paused.
    pub peer_video_paused: AtomicBool,
    /// Our person said yes to the call (a caller: compared the code and
    /// confirmed): until then the sender sends no frame.
    pub confirmed: AtomicBool,
    /// The peer's person said yes (a callee learns it from the caller).
    pub peer_confirmed: AtomicBool,
    /// Frames the capture thread replaced before the sender took them.
    pub capture_dropped: AtomicU64,
    /// Frames written to the socket.
    pub frames_sent: AtomicU64,
    /// Bytes written to the socket, all messages.
    pub bytes_sent: AtomicU64,
    /// JPEG quality of the last frame sent (0: the camera's own JPEG).
    pub quality: AtomicU64,
    /// What we send is H.264 (else JPEG).
    pub sending_h264: AtomicBool,
    /// H.264 quantizer of the last frame sent (0: not known yet).
    pub quantizer: AtomicU64,
    /// Size of the last frame sent (smaller than captured on a thin link).
    pub sent_width: AtomicU64,
    pub sent_height: AtomicU64,
    /// Received frames not decoded because a newer one was already in.
    pub receive_skipped: AtomicU64,
    /// Smallest recent round trip to the peer, microseconds.
    pub rtt_us: AtomicU64,
    /// Captured frames not sent because the link needed frames spaced out.
    pub rate_skipped: AtomicU64,
    /// Link capacity the rate controller measured, kbit/s (0 unknown).
    pub link_kbps: AtomicU64,
    /// Text messages from the peer refused (too long, too many too fast).
    pub texts_refused: AtomicU64,
    /// While the link is silent and the call tries to resume: since when,
    /// Unix microseconds (0: the link works).
    pub reconnecting_since_us: AtomicU64,
    /// Times the call moved to a new connection.
    pub resumptions: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set(counter: &AtomicU64, value: u64) {
        counter.store(value, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Whole seconds the call has been reconnecting (None: the link works).
    pub fn reconnecting_secs(&self) -> Option<u64> {
        match Counters::get(&self.reconnecting_since_us) {
            0 => None,
            since => Some(crate::call::unix_us().saturating_sub(since) / 1_000_000),
        }
    }
}

/// One line of the `--stats` file.
#[derive(Debug, Serialize)]
pub struct FrameRecord {
    pub seq: u64,
    /// When the peer's source delivered the frame, in our clock's Unix microseconds.
    pub capture_us: u64,
    /// When it was decoded, Unix microseconds.
    pub decoded_us: u64,
    /// When it was on screen (without a window: `decoded_us`), Unix microseconds.
    pub shown_us: u64,
    /// Encoded size on the wire.
    pub bytes: u64,
    /// How it travelled: "jpeg" or "h264".
    pub codec: &'static str,
    /// JPEG quality the peer encoded it with (0: the camera's own JPEG;
    /// 100 for H.264, which works to a bitrate).
    pub quality: u8,
    /// Whether it stood alone (every JPEG; an H.264 keyframe).
    pub keyframe: bool,
    /// Peer's encoding time, microseconds (0: passed through from the camera).
    pub encode_us: u32,
    pub width: u32,
    pub height: u32,
    /// Times the call had moved to a new connection when it was shown.
    pub resumptions: u64,
}

/// The `--stats` file.
pub struct StatsFile {
    out: BufWriter<File>,
}

impl StatsFile {
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path)
            .with_context(|| format!("cannot create stats file {}", path.display()))?;
        Ok(StatsFile {
            out: BufWriter::new(file),
        })
    }

    pub fn write(&mut self, record: &FrameRecord) -> Result<()> {
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        Ok(self.out.flush()?)
    }
}

/// The link's measured capacity as people read it. Past a gigabit it is
/// not a network but this machine (a loopback call): "> 1 Gbit/s".
fn link_estimate(kbps: u64) -> String {
    match kbps {
        0 => "?".to_string(),
        1..10_000 => format!("{:.1} Mbit/s", kbps as f64 / 1000.0),
        10_000..1_000_000 => format!("{} Mbit/s", kbps / 1000),
        _ => "> 1 Gbit/s".to_string(),
    }
}

/// Frames shown and their latency over the current second, and the line
/// that reports them.
pub struct StatusLine {
    since: Instant,
    shown: u32,
    latencies_ms: Vec<f64>,
    last_sent: u64,
    last_bytes: u64,
    size: (u32, u32),
    live: bool,
}

impl StatusLine {
    pub fn new(now: Instant) -> Self {
        StatusLine {
            since: now,
            shown: 0,
            latencies_ms: Vec::new(),
            last_sent: 0,
            last_bytes: 0,
            size: (0, 0),
            live: std::io::stderr().is_terminal(),
        }
    }

    /// Counts a `width`x`height` frame shown `latency_us` after its capture.
    pub fn frame_shown(&mut self, latency_us: u64, width: u32, height: u32) {
        self.shown += 1;
        self.latencies_ms.push(latency_us as f64 / 1000.0);
        self.size = (width, height);
    }

    /// The status text once a second has passed since the last one.
    pub fn poll(&mut self, now: Instant, counters: &Counters) -> Option<String> {
        let elapsed = now.duration_since(self.since);
        if elapsed < Duration::from_secs(1) {
            return None;
        }
        let secs = elapsed.as_secs_f64();
        let sent = Counters::get(&counters.frames_sent);
        let bytes = Counters::get(&counters.bytes_sent);
        self.latencies_ms.sort_by(f64::total_cmp);
        let p50 = self.latencies_ms.get(self.latencies_ms.len() / 2).copied();
        let latency = p50.map_or("-".to_string(), |ms| format!("{ms:.0} ms"));
        let reconnecting = counters
            .reconnecting_secs()
            .map_or(String::new(), |secs| format!("reconnecting... {secs} s | "));
        let mut text = format!(
            "{reconnecting}in {:.1} fps, {}x{}, latency {latency}",
            self.shown as f64 / secs,
            self.size.0,
            self.size.1
        );
        if sent > 0 {
            let encoding = if counters.sending_h264.load(Ordering::Relaxed) {
                match Counters::get(&counters.quantizer) {
                    0 => "H.264".to_string(),
                    qp => format!("H.264 qp {qp}"),
                }
            } else {
                match Counters::get(&counters.quality) {
                    0 => "camera JPEG".to_string(),
                    q => format!("JPEG q{q}"),
                }
            };
            text += &format!(
                " | out {:.1} fps, {}x{}, {:.0} kbit/s, {encoding}, link {}",
                (sent - self.last_sent) as f64 / secs,
                Counters::get(&counters.sent_width),
                Counters::get(&counters.sent_height),
                (bytes - self.last_bytes) as f64 * 8.0 / 1000.0 / secs,
                link_estimate(Counters::get(&counters.link_kbps)),
            );
        }
        let dropped = Counters::get(&counters.capture_dropped)
            + Counters::get(&counters.rate_skipped)
            + Counters::get(&counters.receive_skipped);
        text += &format!(
            " | dropped {dropped} | rtt {:.1} ms",
            Counters::get(&counters.rtt_us) as f64 / 1000.0
        );
        *self = StatusLine {
            last_sent: sent,
            last_bytes: bytes,
            size: self.size,
            ..StatusLine::new(now)
        };
        Some(text)
    }

    /// Prints `text`: over the previous status on a terminal, a line
    /// otherwise. A terminal that is gone (closed: SIGHUP) is no error.
    pub fn print(&self, text: &str) {
        let mut err = std::io::stderr();
        let _ = if self.live {
            write!(err, "\r\x1b[2K{text}")
        } else {
            writeln!(err, "{text}")
        };
    }

    /// Prints `line` on stdout, on a line of its own: a live status line is
    /// cleared first (and comes back at the next print). A stdout that is
    /// gone is no error.
    pub fn interject(&self, line: &str) {
        if self.live {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }

    /// Ends a live status line so the next message starts on its own line.
    pub fn finish(&self) {
        if self.live {
            let _ = writeln!(std::io::stderr());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_estimate_reads_as_a_network_or_as_this_machine() {
        assert_eq!(link_estimate(0), "?");
        assert_eq!(link_estimate(870), "0.9 Mbit/s");
        assert_eq!(link_estimate(19_600), "19 Mbit/s");
        assert_eq!(link_estimate(74_837_700), "> 1 Gbit/s");
    }

    #[test]
    fn the_status_line_names_what_matters_for_the_codec_sent() {
        let start = Instant::now();
        let counters = Counters::default();
        Counters::set(&counters.frames_sent, 30);
        Counters::set(&counters.quality, 75);
        let later = start + Duration::from_secs(1);
        let jpeg = StatusLine::new(start).poll(later, &counters).unwrap();
        assert!(jpeg.contains("JPEG q75"), "{jpeg}");
        counters.sending_h264.store(true, Ordering::Relaxed);
        Counters::set(&counters.quantizer, 27);
        let h264 = StatusLine::new(start).poll(later, &counters).unwrap();
        assert!(
            h264.contains("H.264 qp 27") && !h264.contains("q75"),
            "{h264}"
        );
    }
}
