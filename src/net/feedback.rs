//! The sender's view of the link from what the receiver reports, on any
//! system: as WebRTC's transport-wide feedback, the peer tells us each
//! frame it received (`wire::Arrival`: how much of the stream had come,
//! when, and how fast the frame's bytes came in), and from that and what
//! we wrote this estimates the link's pace (the spread of a frame's bytes
//! on arrival, its packets' headers counted: a frame is a burst, so it
//! arrives at the bottleneck's rate),
//! the queueing delay (one-way delay above its recent minimum, less the
//! time the frame's own bytes took, up to a frame interval; the two
//! clocks' offset cancels out) and the frame bytes not yet received.
//!
//! Where the kernel reports on the connection (Linux `TCP_INFO`) its ACKs
//! refine the count of bytes that have arrived (they come back sooner than
//! the reports), and its delivery rate serves until the first report; the
//! environment variable `VIDCHAT_NO_TCP_INFO=1` turns that off, so the
//! portable path can be measured alone.

use std::collections::VecDeque;
use std::net::TcpStream;
use std::time::Duration;

use super::connection::LinkCheck;
use crate::wire::Arrival;

/// What is known about the link as a frame is chosen or after it is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkSample {
    /// Recent delivery rate, bytes per second (0: not known yet).
    pub delivery_rate: u64,
    /// Queueing delay: how far the delay stands above its minimum, microseconds.
    pub queue_us: u32,
    /// Bytes the peer acknowledged since the connection began.
    pub bytes_acked: u64,
    /// How long before the sample the peer had them, beyond the quickest
    /// way back (µs): the time since its report came, and the queue the
    /// report met on its way (the peer's video ahead of it). A rate from
    /// acknowledgements timed by their coming reads low while that queue
    /// grows. 0 where unknown.
    pub acked_age_us: u32,
    /// Bytes of frames written (or queued for writing) but not yet sent.
    pub notsent_bytes: u32,
    /// Bytes sent but not yet acknowledged.
    pub in_flight_bytes: u32,
    /// Of those, what has most likely arrived already: while no queue
    /// stands, the oldest frame not yet reported has been coming in at the
    /// link's pace since it was written (or since the report before it, if
    /// later), and a new frame waits behind only the rest of it; where the
    /// kernel says, at least what it saw acknowledged (0 where unknown).
    pub arrived_bytes: u32,
    /// Whether `delivery_rate` is the pace at which the peer saw frames
    /// arrive (on a saturated link, what it carries), not what the latest
    /// frame's one read says (only that the link is at least that fast).
    pub paced: bool,
}

/// How long a one-way delay counts towards the minimum it is measured
/// against (long enough to see the link empty, short enough that two
/// clocks drifting apart do not matter).
const BASE_WINDOW: Duration = Duration::from_secs(10);
/// A frame's own bytes taking up to this long to arrive is not a queue
/// (a frame interval at 30 fps).
const OWN_TIME: Duration = Duration::from_millis(33);
/// How long a frame's pace counts towards the link's: as the middle one
/// within this, what the first read's bytes took.
const PACE_WINDOW: Duration = Duration::from_secs(2);
/// ... and as the link's delivery rate now.
const PACE_RECENT: Duration = Duration::from_millis(300);
/// Bytes on their way are taken to arrive at the pace only while the queue
/// stands under this: a link that just got thinner shows a queue first, and
/// its old pace would count bytes as come that have not.
const ARRIVING_QUEUE: Duration = Duration::from_millis(10);
/// Frames remembered while their reports are awaited.
const WRITTEN_KEPT: usize = 256;
/// The time a frame's bytes took to arrive is taken as at least this: a
/// frame that came in one read says the link is at least its size in this
/// time (an optimistic sample, as a small frame passing a shaper's burst
/// allowance is; the rate controller's ceiling keeps such samples honest).
const MIN_SPREAD: Duration = Duration::from_millis(1);

/// What a TCP/IP packet adds to the bytes it carries (IPv4 and TCP
/// headers, with timestamps), and the most it carries (a 1500-byte MTU, as
/// Ethernet and Wi-Fi have): a link's pace is in packets' bytes, and the
/// bytes after a frame's first read are often one short packet, whose
/// headers are a large share of its time (48 bytes took the time of 100;
/// counted alone, they read a 500 kbit/s link as 240).
const PACKET_HEADERS: u64 = 52;
const PACKET_PAYLOAD: u64 = 1448;

/// The portable estimate, fed by the call's driver.
#[derive(Debug, Default)]
pub struct Feedback {
    /// (seq, bytes, when its last byte was written, in our µs) of the
    /// frames not yet reported, oldest first.
    written: VecDeque<(u64, u64, u64)>,
    /// Frames handed to the socket that are not yet all written: (seq,
    /// bytes, the stream offset where each ends).
    unwritten: VecDeque<(u64, u64, u64)>,
    /// Where the newest frame handed over ends in the stream.
    frame_end: u64,
    /// Bytes the socket took so far.
    written_bytes: u64,
    /// Bytes the peer reported received (counted no further than what
    /// was written: its report may come before our writer's).
    acked: u64,
    /// The newest frame the peer reported: a frame its report overtook
    /// (it came before our writer said the frame was written) is done.
    reported_seq: Option<u64>,
    /// (when, in our µs; how long a frame took to arrive, µs, the two
    /// clocks' offset included).
    delays: VecDeque<(u64, i64)>,
    /// (when; how long after it was written a frame's report came, µs).
    reported: VecDeque<(u64, u64)>,
    /// (when; how long the peer's report of a frame took to come back, µs:
    /// our clock at its coming less the peer's at the frame's arrival, the
    /// clocks' offset included).
    back: VecDeque<(u64, i64)>,
    /// How far the latest report's way back stood above its minimum, µs:
    /// a queue on the way back (the peer's video ahead of its reports)
    /// delays every report alike and says nothing of our way.
    back_queue_us: u64,
    queue_us: u32,
    /// The link's bytes a second on the wire (packets' headers counted),
    /// as of the latest report: the middle spread within
    /// [`PACE_RECENT`] of the frames that came in more than one read (a
    /// read the receiver made late makes one frame look slow, and a first
    /// read made late one look fast), else within [`PACE_WINDOW`]; with
    /// none, what the latest frame's one read says (only that the link is
    /// at least that fast).
    rate: u64,
    /// The reported frames' bytes, a running mean over the last eight or
    /// so: what `rate` carries of frames is reckoned for frames this size
    /// (not the latest's: a frame of 67 bytes, 119 on the wire, would make
    /// the link read as half what it carries of the next one's 2500).
    typical_frame: u64,
    /// (when; bytes a second on the wire) of the frames that came in more
    /// than one read, the last [`PACE_WINDOW`] of them kept: the link's
    /// pace (one read says nothing of it).
    paces: VecDeque<(u64, u64)>,
}

impl Feedback {
    /// A frame `seq` was queued for the socket, ending at stream offset `end`.
    pub fn frame_queued(&mut self, seq: u64, bytes: u64, end: u64) {
        self.frame_end = end;
        if self.unwritten.len() == WRITTEN_KEPT {
            self.unwritten.pop_front();
        }
        self.unwritten.push_back((seq, bytes, end));
    }

    /// The socket has taken `total` bytes of the stream by `at_us` (our
    /// clock: microseconds since the call's driver began).
    pub fn written(&mut self, total: u64, at_us: u64) {
        self.written_bytes = self.written_bytes.max(total);
        while let Some(&(seq, bytes, end)) = self.unwritten.front() {
            if end > total {
                break;
            }
            self.unwritten.pop_front();
            if self.reported_seq.is_some_and(|r| seq <= r) {
                continue;
            }
            if self.written.len() == WRITTEN_KEPT {
                self.written.pop_front();
            }
            self.written.push_back((seq, bytes, at_us));
        }
    }

    /// The peer's report of frames it received, which came at `now_us`
    /// (our clock, as `written`'s).
    pub fn received(&mut self, now_us: u64, arrivals: &[Arrival]) {
        for arrival in arrivals {
            self.acked = self.acked.max(arrival.received);
            self.reported_seq = self.reported_seq.max(Some(arrival.seq));
            while self
                .written
                .front()
                .is_some_and(|&(seq, ..)| seq < arrival.seq)
            {
                self.written.pop_front();
            }
            if let Some(&(seq, bytes, written_us)) = self.written.front()
                && seq == arrival.seq
            {
                self.written.pop_front();
                // Its bytes after the first read over the time they took;
                // one read: at least all of it in MIN_SPREAD.
                // (No more than the frame: the peer's figures are its word.)
                let (spread_bytes, spread_us) = match arrival.spread_bytes {
                    0 => (bytes, 0),
                    b => (u64::from(b).min(bytes), u64::from(arrival.spread_us)),
                };
                let us = spread_us.max(MIN_SPREAD.as_micros() as u64);
                let rate = on_wire(spread_bytes).saturating_mul(1_000_000) / us;
                if spread_us > 0 {
                    remember(&mut self.paces, now_us, rate, PACE_WINDOW);
                }
                // The middle pace of late; else of the window; else what
                // one read says.
                let pace = self.middle_pace(now_us, PACE_WINDOW);
                self.rate = self
                    .middle_pace(now_us, PACE_RECENT)
                    .or(pace)
                    .unwrap_or(rate);
                self.typical_frame = match self.typical_frame {
                    0 => bytes,
                    mean => mean.saturating_mul(7).saturating_add(bytes) / 8,
                };
                // Its last byte's, less the time the frame's own bytes
                // took up to OWN_TIME: on a thin link a frame's own bytes
                // are no queue (1.5 KB take 26 ms at 500 kbit/s, the
                // first read's packets taken at the recent pace so
                // as not to hide a queue), but a frame that takes longer
                // than that is late (the link just got thinner) and says so.
                let first_read = on_wire(bytes)
                    .saturating_sub(on_wire(u64::from(arrival.spread_bytes).min(bytes)));
                let first_us = first_read
                    .saturating_mul(1_000_000)
                    .checked_div(pace.or_else(|| self.newest_pace()).unwrap_or(0))
                    .unwrap_or(0);
                let own_us = spread_us
                    .saturating_add(first_us)
                    .min(OWN_TIME.as_micros() as u64);
                let delay = i128::from(arrival.at_us) - i128::from(written_us) - i128::from(own_us);
                let delay = delay.clamp(i64::MIN.into(), i64::MAX.into()) as i64;
                remember(&mut self.delays, now_us, delay, BASE_WINDOW);
                let base = self.delays.iter().map(|&(_, d)| d).min().unwrap_or(delay);
                self.queue_us = u32::try_from(delay.saturating_sub(base)).unwrap_or(u32::MAX);
                let took = now_us.saturating_sub(written_us);
                remember(&mut self.reported, now_us, took, BASE_WINDOW);
                // Kept for our frames only, as the delays are: a peer
                // cannot grow it by sending reports.
                let back = i128::from(now_us) - i128::from(arrival.at_us);
                let back = back.clamp(i64::MIN.into(), i64::MAX.into()) as i64;
                remember(&mut self.back, now_us, back, BASE_WINDOW);
                let base = self.back.iter().map(|&(_, b)| b).min().unwrap_or(back);
                self.back_queue_us = back.abs_diff(base);
            }
        }
    }

    /// The middle pace of the frames that came in more than one read
    /// within `span` of `now_us`, bytes a second: a read made late makes
    /// one frame look slow, and one whose first read came late (the
    /// machine was busy, or the link delivered a burst) look fast.
    fn middle_pace(&self, now_us: u64, span: Duration) -> Option<u64> {
        let since = now_us.saturating_sub(span.as_micros() as u64);
        let mut paces: Vec<u64> = self
            .paces
            .iter()
            .filter(|&&(t, _)| t >= since)
            .map(|&(_, r)| r)
            .collect();
        if paces.is_empty() {
            return None;
        }
        let middle = paces.len() / 2;
        Some(*paces.select_nth_unstable(middle).1)
    }

    /// The newest pace of any age: what a frame's own bytes are taken to
    /// come at when none is within [`PACE_WINDOW`] (small frames that each
    /// come in one read still take their time on a thin link: 900 bytes,
    /// 14 ms at 500 kbit/s, which is no queue).
    fn newest_pace(&self) -> Option<u64> {
        self.paces.back().map(|&(_, r)| r)
    }

    /// Frame bytes handed over but not yet taken by the socket.
    pub fn unsent(&self) -> u64 {
        self.frame_end.saturating_sub(self.written_bytes)
    }

    /// The link as the peer's reports show it at `now_us`. A frame whose
    /// report is later than any came (less the time its own bytes take,
    /// and the queue the latest report met on its way back) has waited in
    /// a queue at least that much more: a link that just got thinner shows
    /// at once, not when its frames finally arrive.
    pub fn sample(&self, now_us: u64) -> LinkSample {
        let pace = self.middle_pace(now_us, PACE_WINDOW);
        let known_pace = pace.or_else(|| self.newest_pace());
        let last_report = self.reported.back().map(|&(t, _)| t);
        let waiting = self.written.front().and_then(|&(_, bytes, written_us)| {
            let base = self.reported.iter().map(|&(_, t)| t).min()?;
            // As for a frame reported: its own bytes up to OWN_TIME.
            let own = on_wire(bytes)
                .saturating_mul(1_000_000)
                .checked_div(known_pace.unwrap_or(self.rate))
                .unwrap_or(0)
                .min(OWN_TIME.as_micros() as u64);
            let late = now_us
                .saturating_sub(written_us)
                .saturating_sub(base + own)
                .saturating_sub(self.back_queue_us);
            u32::try_from(late).ok()
        });
        let sent_frames = self.frame_end.min(self.written_bytes);
        // A peer cannot have received more than we wrote.
        let acked = self.acked.min(self.written_bytes);
        let in_flight = sent_frames.saturating_sub(acked);
        let queue_us = self.queue_us.max(waiting.unwrap_or(0));
        let steady = u128::from(queue_us) < ARRIVING_QUEUE.as_micros();
        let arriving = self.written.front().filter(|_| steady);
        let arrived = arriving.map_or(0, |&(_, bytes, written_us)| {
            let since = now_us.saturating_sub(written_us.max(last_report.unwrap_or(0)));
            let rate = carried(known_pace.unwrap_or(0), bytes);
            let arrived = u128::from(since) * u128::from(rate) / 1_000_000;
            u64::try_from(arrived).unwrap_or(u64::MAX).min(bytes)
        });
        let delivery_rate = carried(self.rate, self.typical_frame);
        LinkSample {
            delivery_rate,
            queue_us,
            bytes_acked: acked,
            acked_age_us: last_report.map_or(0, |t| {
                clamp_u32(now_us.saturating_sub(t).saturating_add(self.back_queue_us))
            }),
            notsent_bytes: clamp_u32(self.unsent()),
            in_flight_bytes: clamp_u32(in_flight),
            arrived_bytes: clamp_u32(arrived.min(in_flight)),
            paced: pace.is_some(),
        }
    }
}

/// What a link of `wire_rate` bytes a second carries of frames of
/// `frame_bytes`: their packets' headers take their share (a 500 kbit/s
/// link carries 58 kB/s of 1500-byte frames, two packets each).
fn carried(wire_rate: u64, frame_bytes: u64) -> u64 {
    let carried = u128::from(wire_rate) * u128::from(frame_bytes);
    carried
        .checked_div(u128::from(on_wire(frame_bytes)))
        .map_or(wire_rate, |c| u64::try_from(c).unwrap_or(u64::MAX))
}

/// The bytes `payload` bytes take on the wire, in full packets but the last.
fn on_wire(payload: u64) -> u64 {
    payload.saturating_add(
        payload
            .div_ceil(PACKET_PAYLOAD)
            .saturating_mul(PACKET_HEADERS),
    )
}

/// Adds `value` at `now_us` to `window`, dropping what is older than `span`.
fn remember<T>(window: &mut VecDeque<(u64, T)>, now_us: u64, value: T, span: Duration) {
    let span = span.as_micros() as u64;
    while window
        .front()
        .is_some_and(|&(t, _)| now_us.saturating_sub(t) > span)
    {
        window.pop_front();
    }
    window.push_back((now_us, value));
}

fn clamp_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Whether the kernel's view may be used (not turned off by
/// `VIDCHAT_NO_TCP_INFO=1`).
pub fn kernel_view_allowed() -> bool {
    std::env::var_os("VIDCHAT_NO_TCP_INFO").is_none_or(|v| v != "1")
}

/// `reported` refined by the kernel's view of the connection (Linux
/// TCP_INFO), where it has one: its ACKs come back before the peer's
/// reports do (which wait for a frame to be whole, and behind the peer's
/// video), so of our bytes on their way, those it no longer holds have
/// arrived; and before the first report its delivery rate (of the call's
/// opening messages) is the only measure of the link. Everything else is
/// the reports': the kernel's round trip and delivery rate also hold the
/// peer's video ahead of its ACKs (on a 500 kbit/s link a packet of it is
/// 23 ms), and read a link that video fills the other way as thinner than
/// it is.
#[cfg(target_os = "linux")]
pub fn refined_by_kernel(stream: &TcpStream, reported: &LinkSample) -> LinkSample {
    tcp_info(stream).map_or(*reported, |info| {
        let held = u64::from(unacked_bytes(&info)) + u64::from(info.tcpi_notsent_bytes);
        with_kernels_acks(reported, held, info.tcpi_delivery_rate)
    })
}

/// `reported` with `held` bytes still in the kernel (unsent or not yet
/// acknowledged): the rest of what is on its way has arrived. The
/// kernel's count also holds our own messages (reports, text), so this
/// errs towards bytes not yet come. The kernel's `delivery_rate` serves
/// until the reports have one.
#[cfg(target_os = "linux")]
fn with_kernels_acks(reported: &LinkSample, held: u64, delivery_rate: u64) -> LinkSample {
    let acked = reported.in_flight_bytes.saturating_sub(clamp_u32(held));
    LinkSample {
        arrived_bytes: reported.arrived_bytes.max(acked),
        delivery_rate: match reported.delivery_rate {
            0 => delivery_rate,
            reported => reported,
        },
        ..*reported
    }
}

/// The bytes sent and not yet acknowledged: from the byte counts where
/// the kernel keeps them (4.19 on), else its packets at their largest
/// size (which counts a 200-byte packet, the tail of a small frame, as a
/// full one: a thin link's frames of two packets read as 1.7 times their
/// size, and frames were dropped before the encoder for it).
#[cfg(target_os = "linux")]
fn unacked_bytes(info: &libc::tcp_info) -> u32 {
    let packets = info.tcpi_unacked.saturating_mul(info.tcpi_snd_mss);
    if info.tcpi_bytes_sent == 0 {
        return packets;
    }
    let sent = info.tcpi_bytes_sent.saturating_sub(info.tcpi_bytes_retrans);
    clamp_u32(sent.saturating_sub(info.tcpi_bytes_acked)).min(packets)
}

/// Whether our bytes wait on `stream`, unacknowledged or unsent (with our
/// address gone none can leave), and how long ago the peer's machine last
/// acknowledged any (Linux TCP_INFO). None where the kernel cannot say,
/// or its view is turned off (`VIDCHAT_NO_TCP_INFO=1`): then every silence
/// is taken for the link, as on macOS and Windows.
#[cfg(target_os = "linux")]
pub fn kernel_check(stream: &TcpStream) -> Option<LinkCheck> {
    if !kernel_view_allowed() {
        return None;
    }
    tcp_info(stream).map(|info| LinkCheck {
        waiting: info.tcpi_unacked > 0 || info.tcpi_notsent_bytes > 0,
        since_ack: Duration::from_millis(info.tcpi_last_ack_recv.into()),
    })
}

#[cfg(target_os = "linux")]
fn tcp_info(stream: &TcpStream) -> Option<libc::tcp_info> {
    use std::os::fd::AsRawFd;
    // SAFETY: tcp_info is plain integers, valid when zeroed; the kernel
    // writes at most `len` bytes into it and reports how many.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(info)
}

#[cfg(not(target_os = "linux"))]
pub fn kernel_check(_stream: &TcpStream) -> Option<LinkCheck> {
    None
}

#[cfg(not(target_os = "linux"))]
pub fn refined_by_kernel(_stream: &TcpStream, reported: &LinkSample) -> LinkSample {
    *reported
}

#[cfg(test)]
mod tests {
    use super::*;

    /// When the reports come (the tests' frames are all reported).
    const NOW: u64 = 100_000;

    /// A full packet's payload: frames of whole packets keep the numbers
    /// round where the packets' headers are not the point.
    const PACKET: u64 = PACKET_PAYLOAD;

    /// The µs `bytes` of frame take on a 500 kbit/s link (16 µs a byte on
    /// the wire, headers and all).
    fn at_500k(bytes: u64) -> u32 {
        on_wire(bytes) as u32 * 16
    }

    fn arrival(seq: u64, received: u64, at_us: u64, spread: (u32, u32)) -> Arrival {
        Arrival {
            seq,
            received,
            at_us,
            spread_bytes: spread.0,
            spread_us: spread.1,
        }
    }

    #[test]
    fn bytes_not_yet_reported_are_in_flight_and_a_report_clears_them() {
        let mut f = Feedback::default();
        let frame = 7 * PACKET;
        f.frame_queued(1, frame, frame);
        assert_eq!(f.sample(NOW).notsent_bytes, 10_136);
        f.written(frame, 1_000);
        assert_eq!(f.sample(NOW).notsent_bytes, 0);
        assert_eq!(f.sample(NOW).in_flight_bytes, 10_136);
        // Our own small messages after the frame are not counted.
        f.written(frame + 200, 1_100);
        assert_eq!(f.sample(NOW).in_flight_bytes, 10_136);
        f.received(NOW, &[arrival(1, frame, 50_000, (6 * 1_448, 10_000))]);
        let s = f.sample(NOW);
        assert_eq!((s.in_flight_bytes, s.bytes_acked), (0, 10_136));
        // Six packets' bytes in 10 ms.
        assert_eq!(s.delivery_rate, 868_800);
    }

    #[test]
    fn a_delay_above_its_minimum_is_a_queue_whatever_the_clocks_offset() {
        let mut f = Feedback::default();
        // The peer's clock is an hour ahead; the first frame took 5 ms.
        let offset = 3_600_000_000;
        for (seq, written_us, delay_us) in [(1, 0, 5_000), (2, 33_000, 5_000), (3, 66_000, 45_000)]
        {
            let end = seq * 1000;
            f.frame_queued(seq, 1000, end);
            f.written(end, written_us);
            f.received(
                written_us + delay_us + 1_000,
                &[arrival(seq, end, offset + written_us + delay_us, (0, 0))],
            );
        }
        assert_eq!(f.sample(NOW).queue_us, 40_000);
    }

    #[test]
    fn a_frame_on_a_thin_link_is_no_queue_unless_it_takes_longer_than_a_frame() {
        let mut f = Feedback::default();
        // 500 kbit/s (16 µs a byte on the wire, headers and all), 2 ms
        // away: a frame written at `written_us` starts arriving at
        // `start_us`, a read a packet, so that the bytes after the first
        // read are the rest.
        let report = |f: &mut Feedback, seq, bytes: u64, end, written_us, start_us| {
            f.frame_queued(seq, bytes, end);
            f.written(end, written_us);
            let at = start_us + on_wire(bytes) * 16;
            let rest = bytes.saturating_sub(PACKET);
            let spread = (rest as u32, on_wire(rest) as u32 * 16);
            f.received(at + 2_000, &[arrival(seq, end, at, spread)]);
            f.sample(NOW).queue_us
        };
        assert_eq!(report(&mut f, 1, 500, 500, 0, 2_000), 0);
        // 1500 bytes take 26 ms; 1400 in one read go at the same pace.
        assert_eq!(report(&mut f, 2, 1_500, 2_000, 33_000, 35_000), 0);
        assert_eq!(report(&mut f, 3, 1_400, 3_400, 66_000, 68_000), 0);
        // 5000 bytes (5208 on the wire) take 83.3 ms: more than a frame's
        // time, so late by 50.3 ms.
        assert_eq!(report(&mut f, 4, 5_000, 8_400, 100_000, 102_000), 50_328);
        // The next frame, written at 133 ms, starts arriving only when
        // the 5000 bytes are in, at 185.3 ms: it waited as long.
        assert_eq!(report(&mut f, 5, 500, 8_900, 133_000, 185_328), 50_328);
    }

    #[test]
    fn one_slow_frame_does_not_slow_the_link_but_an_old_pace_is_forgotten() {
        let mut f = Feedback::default();
        let mut report = |seq: u64, now_us, spread| {
            let end = seq * 1_000;
            f.frame_queued(seq, 1_000, end);
            f.written(end, now_us - 10_000);
            f.received(now_us, &[arrival(seq, end, now_us, spread)]);
            f.sample(now_us)
        };
        // 900 bytes after the first read at 500 kbit/s: the link carries
        // 1000-byte frames (1052 with their packet's headers) at 59.4 kB/s.
        assert_eq!(report(1, 20_000, (900, at_500k(900))).delivery_rate, 59_410);
        // A read made late: the same bytes in 150 ms.
        let s = report(2, 200_000, (900, 150_000));
        assert_eq!((s.delivery_rate, s.paced), (59_410, true));
        // Three seconds on, a frame in one read: no pace is recent enough
        // to go by, only that the link took 1000 bytes in a millisecond.
        let s = report(3, 3_000_000, (0, 0));
        assert_eq!((s.delivery_rate, s.paced), (1_000_000, false));
    }

    #[test]
    fn a_report_later_than_any_before_shows_a_queue_before_it_comes() {
        let mut f = Feedback::default();
        // A frame of two packets reported 6 ms after it was written, its
        // second packet in at most a millisecond: at least 1.5 MB/s on
        // the wire.
        f.frame_queued(1, 2 * PACKET, 2 * PACKET);
        f.written(2 * PACKET, 0);
        f.received(6_000, &[arrival(1, 2 * PACKET, 5_000, (1_448, 500))]);
        // The next one, written at 33 ms, has no report at 100 ms: it has
        // waited 67 ms, of which 6 are the usual and 2 its own bytes.
        f.frame_queued(2, 2 * PACKET, 4 * PACKET);
        f.written(4 * PACKET, 33_000);
        assert_eq!(f.sample(100_000).queue_us, 59_000);
        assert_eq!(f.sample(38_000).queue_us, 0);
    }

    #[test]
    fn small_frames_in_one_read_take_their_time_at_the_last_pace_known() {
        let mut f = Feedback::default();
        // 500 kbit/s, 2 ms away; the pace was measured 5 s ago, on a frame
        // that came in two reads.
        let mut report = |seq: u64, bytes: u64, written_us: u64, waited_us: u64, spread| {
            let end = seq * 10_000;
            f.frame_queued(seq, bytes, end);
            f.written(end, written_us);
            let at = written_us + waited_us + 2_000 + u64::from(at_500k(bytes));
            f.received(at + 2_000, &[arrival(seq, end, at, spread)]);
            f.sample(at + 2_000).queue_us
        };
        assert_eq!(report(1, 1_000, 0, 0, (500, at_500k(500))), 0);
        // Now frames that each come in one read: 100 bytes take 2.4 ms,
        // 900 take 15.2 ms, and neither waited.
        assert_eq!(report(2, 100, 5_000_000, 0, (0, 0)), 0);
        assert_eq!(report(3, 900, 5_033_000, 0, (0, 0)), 0);
        // One that waited 30 ms does show it.
        assert_eq!(report(4, 900, 5_066_000, 30_000, (0, 0)), 30_000);
    }

    #[test]
    fn a_queue_on_the_way_back_does_not_make_our_frames_late() {
        let mut f = Feedback::default();
        // Frames arrive 5 ms after they are written; their reports take
        // 1 ms back, then 80 ms (the peer's video queues ahead of them).
        // Each is two packets, the second in a millisecond.
        for (seq, back_us) in [(1, 1_000), (2, 80_000)] {
            let written_us = seq * 33_000;
            let end = seq * 2 * PACKET;
            f.frame_queued(seq, 2 * PACKET, end);
            f.written(end, written_us);
            let at = written_us + 5_000;
            f.received(at + back_us, &[arrival(seq, end, at, (1_448, 1_000))]);
        }
        // Frame 3, written at 99 ms, arrived at 104 ms; its report, 80 ms
        // on its way back, is not in at 160 ms: no queue on our way.
        f.frame_queued(3, 2 * PACKET, 6 * PACKET);
        f.written(6 * PACKET, 99_000);
        let s = f.sample(160_000);
        assert_eq!(s.queue_us, 0);
        // The peer had what frame 2's report acknowledges 88 ms ago: it
        // came 9 ms ago, 79 ms slower on its way than frame 1's.
        assert_eq!(s.acked_age_us, 88_000);
        // At 260 ms it is 74 ms later than that (less 6 ms usual and
        // 2 ms its own two packets at 1.5 MB/s).
        assert_eq!(f.sample(260_000).queue_us, 74_000);
    }

    #[test]
    fn bytes_on_their_way_arrive_at_the_pace_while_no_queue_stands() {
        let mut f = Feedback::default();
        // Frames of two packets at 500 kbit/s: 60.3 kB/s of them.
        f.frame_queued(1, 2 * PACKET, 2 * PACKET);
        f.written(2 * PACKET, 0);
        f.received(
            30_000,
            &[arrival(1, 2 * PACKET, 26_000, (1_448, at_500k(1_448)))],
        );
        f.frame_queued(2, 2 * PACKET, 4 * PACKET);
        f.written(4 * PACKET, 33_000);
        // 24 ms on, a packet of it is in (1447 bytes, rounded down).
        let s = f.sample(57_000);
        assert_eq!(
            (s.in_flight_bytes, s.arrived_bytes, s.queue_us),
            (2_896, 1_447, 0)
        );
        // Its report is 20 ms later than its bytes take: the link is
        // slower than its pace, which no longer counts anything as come.
        let s = f.sample(116_000);
        assert_eq!(
            (s.in_flight_bytes, s.arrived_bytes, s.queue_us),
            (2_896, 0, 20_000)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_kernels_unacknowledged_bytes_count_short_packets_as_they_are() {
        // SAFETY: tcp_info is plain integers, valid when zeroed.
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        // Two packets on their way, a full one and a frame's 200-byte
        // tail, after 300 bytes sent again.
        (info.tcpi_unacked, info.tcpi_snd_mss) = (2, 1_448);
        (info.tcpi_bytes_sent, info.tcpi_bytes_retrans) = (11_948, 300);
        info.tcpi_bytes_acked = 10_000;
        assert_eq!(unacked_bytes(&info), 1_648);
        // A kernel before 4.19 has no byte counts: the packets, full.
        info.tcpi_bytes_sent = 0;
        assert_eq!(unacked_bytes(&info), 2_896);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn what_the_kernel_saw_acknowledged_has_arrived_and_no_more() {
        let mut f = Feedback::default();
        f.frame_queued(1, 5_000, 5_000);
        f.written(5_000, 1_000);
        let reported = f.sample(NOW);
        assert_eq!(
            (reported.in_flight_bytes, reported.arrived_bytes),
            (5_000, 0)
        );
        // The kernel holds 1_200 bytes of it still: 3_800 are in.
        let refined = with_kernels_acks(&reported, 1_200, 70_000);
        assert_eq!(refined.arrived_bytes, 3_800);
        // No report yet: the kernel's rate is the only one.
        assert_eq!(refined.delivery_rate, 70_000);
        // It holds more than the frame (our messages after it): none.
        assert_eq!(with_kernels_acks(&reported, 9_000, 0).arrived_bytes, 0);
        // The reports' own figures stand where they say more.
        let arriving = LinkSample {
            arrived_bytes: 4_500,
            delivery_rate: 60_000,
            queue_us: 25_000,
            ..reported
        };
        assert_eq!(with_kernels_acks(&arriving, 1_200, 200_000), arriving);
    }

    #[test]
    fn a_peer_cannot_report_more_than_was_written_nor_frames_out_of_order() {
        let mut f = Feedback::default();
        f.frame_queued(5, 2_000, 2_000);
        f.written(2_000, 10);
        f.received(NOW, &[arrival(9, u64::MAX, u64::MAX, (u32::MAX, 0))]);
        let s = f.sample(NOW);
        assert_eq!(s.bytes_acked, 2_000);
        // Frame 9 was never written: no delay, no pace.
        assert_eq!((s.queue_us, s.delivery_rate), (0, 0));
    }

    #[test]
    fn a_frame_that_came_in_one_read_reads_as_at_least_its_size_a_millisecond() {
        let mut f = Feedback::default();
        f.frame_queued(1, 500, 500);
        f.written(500, 0);
        f.received(NOW, &[arrival(1, 500, 100, (0, 0))]);
        assert_eq!(f.sample(NOW).delivery_rate, 500_000);
        // A spread too fast to time counts as a millisecond too: a packet
        // of a frame of two in it.
        let mut f = Feedback::default();
        f.frame_queued(2, 2 * PACKET, 500 + 2 * PACKET);
        f.written(500 + 2 * PACKET, 33_000);
        f.received(NOW, &[arrival(2, 500 + 2 * PACKET, 33_100, (1_448, 10))]);
        assert_eq!(f.sample(NOW).delivery_rate, 1_448_000);
    }

    #[test]
    fn a_short_last_packet_reads_the_link_with_its_headers() {
        let mut f = Feedback::default();
        // A full packet, then 48 bytes in one of 100 on the wire, which
        // took 1.6 ms at 500 kbit/s: counted alone, 48 bytes read 30 kB/s.
        f.frame_queued(1, 1_496, 1_496);
        f.written(1_496, 0);
        f.received(NOW, &[arrival(1, 1_496, 30_000, (48, at_500k(48)))]);
        // The link carries frames like it, 1600 bytes on the wire, at
        // 62.5 kB/s × 1496 / 1600.
        assert_eq!(f.sample(NOW).delivery_rate, 58_437);
    }

    #[test]
    fn a_tiny_frame_does_not_make_the_link_look_thin() {
        let mut f = Feedback::default();
        // Frames of two packets at 500 kbit/s: 60.3 kB/s of them.
        let mut report = |seq: u64, bytes: u64, spread| {
            let end = seq * 10_000;
            f.frame_queued(seq, bytes, end);
            f.written(end, seq * 33_000);
            f.received(
                seq * 33_000 + 60_000,
                &[arrival(seq, end, seq * 33_000 + 50_000, spread)],
            );
            f.sample(seq * 33_000 + 60_000).delivery_rate
        };
        for seq in 1..=8 {
            assert_eq!(report(seq, 2 * PACKET, (1_448, at_500k(1_448))), 60_333);
        }
        // A frame of 67 bytes (119 on the wire) in one read: the link
        // carries frames like the last few at about the same rate, not
        // at 35 kB/s.
        let rate = report(9, 67, (0, 0));
        assert!((55_000..60_333).contains(&rate), "{rate}");
    }

    #[test]
    fn a_report_that_overtakes_our_writer_leaves_nothing_waiting() {
        let mut f = Feedback::default();
        f.frame_queued(1, 1_000, 1_000);
        // The peer's report comes before our writer says the frame went.
        f.received(2_000, &[arrival(1, 1_000, 2_000, (0, 0))]);
        f.written(1_000, 1_000);
        let s = f.sample(500_000);
        assert_eq!((s.in_flight_bytes, s.notsent_bytes, s.queue_us), (0, 0, 0));
    }
}
