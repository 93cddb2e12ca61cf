//! Fitting the video to the link, as data (no I/O, `now` passed in): after
//! each frame the sender reports its size and what is known of the link
//! (`net::feedback`: delivery rate, queueing delay, bytes acknowledged,
//! from the peer's reports), and the controller sets the JPEG quality of
//! the next frame, and, when even the lowest quality is too big, how long
//! to wait before the next one.
//!
//! Capacity is the largest delivery rate of the last two seconds (a frame is
//! a burst, so it arrives at the bottleneck's pace even when the call is
//! not using the whole link); of the paced ones, where there are any (a
//! frame that came in one read says only that the link is at least that
//! fast). A delay that grows past its minimum by [`QUEUE_LIMIT`] means
//! video is waiting in a queue on our way: if the link is saturated by us
//! or the queue lasts [`QUEUE_PERSISTS`] without draining, what the peer
//! acknowledged while it stood (the link carried no more; or, where the
//! peer measured it, the pace its frames came at, up to what we sent)
//! becomes a ceiling, and the capacity is measured afresh under it so the
//! controller reacts at once. The ceiling rises slowly near that rate
//! and faster ([`CEILING_GROWTH`] a second) well past it, only while no
//! queue is on our way ([`QUEUE_TARGET`]). Without it, a shaper's burst
//! allowance (a small frame passes at line rate) would read a 1 Mbit/s link
//! as hundreds. The time of a stall (nothing acknowledged for a while:
//! Wi-Fi scanning) is not counted: its backlog says nothing of the link's
//! rate. Where nothing acknowledged makes a rate yet (a link just gone
//! thin reports a frame every few hundred milliseconds, each after a
//! silence that looks like a stall), the pace the peer saw (up to what we
//! sent) is the ceiling, on trial: lifted if the backlog then drains at
//! once (it was a stall), lowered if the pace falls further.
//! An encoder working to a bitrate gets the link's share, ramped up from
//! [`START_BITRATE`] at the start of a call.
//!
//! Before each frame is encoded, the controller also says whether it should
//! go at all: a frame that would wait more than [`FRAME_LAG`] behind what
//! is already on its way (the link just got thinner, or it stalled) is
//! dropped, so the link drains and the next frame arrives fresh; so is one
//! that would go blind, the peer's latest word on what it had being
//! [`STALL`] old (its report waited behind the peer's video on the way
//! back).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::codec::h264::START_BITRATE;
pub use crate::net::feedback::LinkSample;

/// Lowest and highest JPEG quality used: below 20 JPEG turns to blocks,
/// above 85 the bytes grow much faster than what the eye sees.
pub const MIN_QUALITY: u8 = 20;
pub const MAX_QUALITY: u8 = 85;
/// Share of the measured capacity the video may use; the rest absorbs
/// Pings, bursts and capacity that falls between two measurements.
const HEADROOM: f64 = 0.8;
/// How long a delivery-rate sample counts towards the capacity.
const CAPACITY_WINDOW: Duration = Duration::from_secs(2);
/// Queueing delay (delay above its minimum) taken as congestion.
pub const QUEUE_LIMIT: Duration = Duration::from_millis(40);
/// Queueing delay above which quality stops climbing and eases off, and
/// the ceiling and the start ramp stop growing: a shaper's burst allowance
/// can make small frames look faster than the link is, and a growing queue
/// is the first sign.
pub const QUEUE_TARGET: Duration = Duration::from_millis(10);
/// Longest wait between two frames, however slow the link looks: a fresh
/// frame a second also measures the link again.
pub const MAX_SPACING: Duration = Duration::from_secs(1);
/// How fast the ceiling a queue set rises while none builds, per second,
/// once it is well past where that queue built (`NEAR`): the link has
/// grown.
pub const CEILING_GROWTH: f64 = 1.1;
/// How fast it rises near where the queue built: probing the link gently,
/// so a steady link sees a queue every 12 s or so, not every 4.
const NEAR_GROWTH: f64 = 1.03;
/// Up to this many times what the link carried when the queue built, the
/// ceiling is near it.
const NEAR: f64 = 1.5;
/// Largest quality step down after one oversized frame.
const MAX_STEP_DOWN: f64 = 15.0;
/// Quality step up after a frame well under budget.
const STEP_UP: f64 = 1.0;

/// Chooses quality (and, at the bottom, frame spacing) for the next frame.
#[derive(Debug, Clone)]
pub struct RateController {
    period: Duration,
    quality: f64,
    /// (when, (bytes per second, whether paced)) delivery-rate samples
    /// within the window.
    rates: VecDeque<(Instant, (u64, bool))>,
    /// Earliest time the next frame may go (only set when quality is at
    /// its minimum and frames are still too big).
    next_send: Option<Instant>,
    /// The capacity stays under this (bytes per second): what the link
    /// carried when a queue last built, grown since while no queue stood.
    ceiling: Option<f64>,
    /// What the link carried when a queue last built, bytes per second.
    carried: f64,
    /// The time of the latest sample.
    now: Option<Instant>,
    /// (when, bytes) of the frames sent within [`SENT_WINDOW`].
    sent: VecDeque<(Instant, usize)>,
    /// Since when the queue has stood over [`QUEUE_LIMIT`] (and on our way
    /// over [`QUEUE_TARGET`]) without draining, and the queue then.
    queued_since: Option<(Instant, Duration)>,
    /// (when, (bytes acknowledged so far, when the peer had them)) at the
    /// frames within [`SENT_WINDOW`]: the latter as far as its reports tell
    /// (`acked_age_us`), so that what the link carried is not thinned by a
    /// queue on the reports' way back.
    acked: VecDeque<(Instant, (u64, Instant))>,
    /// When the peer last acknowledged something (or nothing was waiting
    /// for it).
    acks_moved: Option<Instant>,
    /// Seconds of the call without a standing queue: how far the encoder's
    /// start ramp has grown.
    ramp_secs: f64,
    /// A ceiling set from the peer's pace alone, with no acknowledged rate
    /// to confirm it: when, what the peer had acknowledged then (bytes,
    /// when it had them), and the ceiling and carried rate before it.
    tentative: Option<Tentative>,
}

/// A ceiling on trial (see [`RateController::tentative`]): on a link that
/// just got thinner the frames' reports come a few a second, each after a
/// silence that looks like a stall, so no acknowledged rate is measured
/// for a while and the pace is all there is; but the first frame after a
/// real stall has the stall in its pace too. What comes next tells them
/// apart: after a stall the backlog drains at once.
#[derive(Debug, Clone, Copy)]
struct Tentative {
    set: Instant,
    acked: u64,
    had: Instant,
    before: (Option<f64>, f64),
}

/// How long a tentative ceiling is on trial.
const TRIAL: Duration = Duration::from_secs(1);
/// A tentative ceiling is lifted when the peer had more than this many
/// times it since (over [`ACKED_SPAN`] at least).
const LIFTED_AT: f64 = 2.0;

/// How much the encoder's target may grow each second from
/// [`START_BITRATE`] at the start of a call (doubling overshot a 1 Mbit/s
/// link at 1 s: both directions' queues overflowed and retransmissions
/// backed off).
const START_RAMP: f64 = 1.5;

/// How long a queue must last before it sets the ceiling.
const QUEUE_PERSISTS: Duration = Duration::from_millis(150);
/// A queue down to this share of what it was is draining.
const DRAINING: f64 = 0.75;
/// A link delivering at most this many times what we send is saturated by
/// us: a queue on it sets the ceiling at once. A frame that came in one
/// read says only that the link is at least its size a millisecond, which
/// a shaper's burst reads high ...
const SATURATED: f64 = 2.0;
/// ... while the pace the peer saw our frames come at is the link's: a
/// queue while we send well under it is a moment's (a larger frame, or
/// the peer's video ahead of our ACKs), and counts only if it lasts.
/// Under [`HEADROOM`] we send 1 / 0.8 = 1.25 times under it on a steady
/// link: "well under" must be less, or every larger frame sets a ceiling
/// at what we already send, and the video takes 0.8 of that.
const SATURATED_AT_PACE: f64 = 1.1;
/// How far back what we sent, and what the peer acknowledged, count
/// towards the ceiling.
const SENT_WINDOW: Duration = Duration::from_secs(1);
/// The shortest time over which what the peer acknowledged is a rate.
const ACKED_SPAN: Duration = Duration::from_millis(200);
/// Longest a frame may wait behind what is already on its way to the
/// peer; a frame that would wait longer is dropped before it is encoded.
const FRAME_LAG: Duration = Duration::from_millis(100);
/// How far back what was acknowledged counts while a queue is new.
const RECENT: Duration = Duration::from_millis(300);
/// Nothing acknowledged for this long is a stall (the link stopped, or
/// TCP is repairing losses).
const STALL: Duration = Duration::from_millis(250);

impl RateController {
    /// A controller for `fps` frames a second, starting at `start_quality`.
    pub fn new(fps: u32, start_quality: u8) -> Self {
        RateController {
            period: Duration::from_secs(1) / fps.max(1),
            quality: f64::from(start_quality.clamp(MIN_QUALITY, MAX_QUALITY)),
            rates: VecDeque::new(),
            next_send: None,
            ceiling: None,
            carried: 0.0,
            now: None,
            sent: VecDeque::new(),
            queued_since: None,
            acked: VecDeque::new(),
            acks_moved: None,
            ramp_secs: 0.0,
            tentative: None,
        }
    }

    /// JPEG quality for the next frame.
    pub fn quality(&self) -> u8 {
        self.quality.round() as u8
    }

    /// Whether a frame may be sent now (false while spacing frames out).
    pub fn ready(&self, now: Instant) -> bool {
        self.next_send.is_none_or(|t| now >= t)
    }

    /// Usable capacity in bytes per second, None while unknown.
    pub fn capacity(&self) -> Option<f64> {
        let rate = |&(_, (r, _)): &(Instant, (u64, bool))| r;
        let paced = self.rates.iter().filter(|&&(_, (_, p))| p).map(rate).max();
        let measured = paced.or_else(|| self.rates.iter().map(rate).max())? as f64;
        Some(measured.min(self.ceiling.unwrap_or(f64::INFINITY)))
    }

    /// Bytes a second sent over the last [`SENT_WINDOW`], None before half
    /// of it has passed.
    fn sent_rate(&self) -> Option<f64> {
        let (first, last) = (self.sent.front()?.0, self.sent.back()?.0);
        let span = last.duration_since(first);
        (span >= SENT_WINDOW / 2).then(|| {
            let bytes: usize = self.sent.iter().map(|&(_, b)| b).sum();
            bytes as f64 / span.as_secs_f64()
        })
    }

    /// Bytes a second the peer acknowledged since `since` (at most over
    /// the last [`SENT_WINDOW`]), timed by when it had them; None before
    /// [`ACKED_SPAN`] has passed.
    /// While a queue stands, this is what the link carries.
    fn acked_rate(&self, since: Instant) -> Option<f64> {
        let window = self.now.and_then(|now| now.checked_sub(SENT_WINDOW));
        let since = window.map_or(since, |w| since.max(w));
        let &(_, (a0, t0)) = self.acked.iter().find(|&&(_, (_, had))| had >= since)?;
        let &(_, (a1, t1)) = self.acked.back()?;
        let span = t1.saturating_duration_since(t0);
        (span >= ACKED_SPAN && a1 > a0).then(|| (a1 - a0) as f64 / span.as_secs_f64())
    }

    /// When the link last moved again after a stall (nothing acknowledged
    /// for [`STALL`] or more) within the last [`SENT_WINDOW`]; `now` while
    /// it is stalled; None when it did not stall.
    fn moved_again(&self, now: Instant) -> Option<Instant> {
        let mut moved = self.acked.front()?.0;
        let mut again = None;
        for (&(_, (a0, _)), &(t1, (a1, _))) in self.acked.iter().zip(self.acked.iter().skip(1)) {
            if a1 > a0 {
                if t1.saturating_duration_since(moved) >= STALL {
                    again = Some(t1);
                }
                moved = t1;
            }
        }
        if now.saturating_duration_since(moved) >= STALL {
            return Some(now);
        }
        again
    }

    /// Lifts a tentative ceiling the peer has since had far more than
    /// (the backlog of a stall draining), or makes it firm once on trial
    /// for [`TRIAL`].
    fn settle_trial(&mut self, now: Instant) {
        let Some(trial) = self.tentative else {
            return;
        };
        if now.saturating_duration_since(trial.set) >= TRIAL {
            self.tentative = None;
            return;
        }
        let (Some(ceiling), Some(&(_, (acked, had)))) = (self.ceiling, self.acked.back()) else {
            return;
        };
        let span = had.saturating_duration_since(trial.had).max(ACKED_SPAN);
        let since = acked.saturating_sub(trial.acked) as f64;
        if since > LIFTED_AT * ceiling * span.as_secs_f64() {
            (self.ceiling, self.carried) = trial.before;
            self.tentative = None;
        }
    }

    /// Bits a second the video may take, None while the capacity is unknown.
    pub fn bitrate(&self) -> Option<f64> {
        self.capacity().map(|c| c * HEADROOM * 8.0)
    }

    /// Bits a second an encoder working to a bitrate should aim at: the
    /// link's share, but no more than [`START_BITRATE`] growing by
    /// [`START_RAMP`] a second while no queue stands on our way. A new
    /// link's measure is not trusted at once (a shaper's burst reads as
    /// hundreds of Mbit/s), and a queue takes a moment to show; by the time
    /// the start rate has grown a few times, it has.
    pub fn target_bitrate(&self) -> f64 {
        let ramp = f64::from(START_BITRATE) * START_RAMP.powf(self.ramp_secs.min(60.0));
        self.bitrate().map_or(ramp, |b| b.min(ramp))
    }

    /// Bytes one frame may take, None while the capacity is unknown.
    pub fn frame_budget(&self) -> Option<f64> {
        self.capacity()
            .map(|c| c * HEADROOM * self.period.as_secs_f64())
    }

    /// Takes the link's state as a new frame comes from the camera; false
    /// when the frame should be dropped before it is encoded: it would wait
    /// more than [`FRAME_LAG`] behind what is already on its way (the link
    /// got thinner, or it stalled), and the next one will be fresher.
    pub fn on_frame_captured(&mut self, link: Option<LinkSample>, now: Instant) -> bool {
        self.observe(link, now);
        // Before the link is known, one frame at a time: a first keyframe
        // and what follows it must not flood a thin link blind.
        if link
            .is_some_and(|l| l.delivery_rate == 0 && (l.in_flight_bytes > 0 || l.notsent_bytes > 0))
        {
            return false;
        }
        let Some(link) = link.filter(|l| l.delivery_rate > 0) else {
            return true;
        };
        // A link that acknowledged nothing of what is on its way for
        // FRAME_LAG has stalled (Wi-Fi scanning, or TCP repairing losses):
        // frames sent into it would all arrive late at once.
        let stalled = link.in_flight_bytes > 0
            && self
                .acks_moved
                .is_some_and(|t| now.saturating_duration_since(t) >= FRAME_LAG);
        // Nor does it help to send blind: when the peer's latest word on
        // what it had is STALL old (its report waited behind the peer's
        // video, on a link just as thin the other way, or none came
        // since), nothing says what became of the bytes sent since; wait
        // for a fresher one.
        let blind = link.in_flight_bytes > 0 && u128::from(link.acked_age_us) >= STALL.as_micros();
        // What is still ahead of the frame (not yet sent, or sent and not
        // yet arrived) must reach the peer within FRAME_LAG, at the lower
        // of the capacity and the latest delivery rate (the middle pace of
        // the last 300 ms).
        let rate = (link.delivery_rate as f64).min(self.capacity().unwrap_or(f64::INFINITY));
        let ahead = f64::from(link.notsent_bytes) + f64::from(link.in_flight_bytes)
            - f64::from(link.arrived_bytes.min(link.in_flight_bytes));
        !stalled && !blind && ahead <= rate * FRAME_LAG.as_secs_f64()
    }

    /// Takes a frame of `bytes` just written, and the link's state then.
    pub fn on_frame_sent(&mut self, bytes: usize, link: Option<LinkSample>, now: Instant) {
        self.sent.push_back((now, bytes));
        let ours = self.observe(link, now);
        let Some(budget) = self.frame_budget() else {
            self.quality = (self.quality + STEP_UP).min(MAX_QUALITY.into());
            self.next_send = None;
            return;
        };
        let over = bytes as f64 / budget;
        if over > 1.0 {
            let step = (20.0 * (over - 1.0) + 1.0).min(MAX_STEP_DOWN);
            self.quality = (self.quality - step).max(MIN_QUALITY.into());
        } else if ours > QUEUE_TARGET {
            self.quality = (self.quality - STEP_UP).max(MIN_QUALITY.into());
        } else if over < 0.8 {
            self.quality = (self.quality + STEP_UP).min(MAX_QUALITY.into());
        }
        // At the lowest quality, fewer frames: space them so the link keeps
        // up, but never further apart than MAX_SPACING (a tiny delivery-rate
        // sample after a stall would put the next frame minutes away).
        self.next_send = (over > 1.0 && self.quality() == MIN_QUALITY)
            .then(|| now + self.period.mul_f64(over.min(1e6)).min(MAX_SPACING));
    }

    /// Takes the link's state at `now`: the capacity, the ceiling and the
    /// start ramp follow it. Returns the queue it shows on our way.
    fn observe(&mut self, link: Option<LinkSample>, now: Instant) -> Duration {
        let since_last = self
            .now
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        self.now = Some(now);
        forget_before(&mut self.sent, now, SENT_WINDOW);
        let mut ours = Duration::ZERO;
        if let Some(link) = link.filter(|l| l.delivery_rate > 0) {
            // Kernels before 4.1 report no acknowledged bytes (zero).
            if link.bytes_acked > 0 {
                let moved = self
                    .acked
                    .back()
                    .is_none_or(|&(_, (a, _))| a != link.bytes_acked);
                if moved || link.in_flight_bytes == 0 {
                    self.acks_moved = Some(now);
                }
                let had = now
                    .checked_sub(Duration::from_micros(link.acked_age_us.into()))
                    .unwrap_or(now);
                let had = self.acked.back().map_or(had, |&(_, (_, t))| had.max(t));
                self.acked.push_back((now, (link.bytes_acked, had)));
            }
            forget_before(&mut self.acked, now, SENT_WINDOW);
            let queued = Duration::from_micros(link.queue_us.into());
            ours = queued;
            if queued > QUEUE_LIMIT {
                // A queue while the link delivers about what we send is
                // ours: we sent more than it carries. So is one that lasts
                // without draining. A moment's queue with the link
                // delivering far more than we send (a scheduling hiccup),
                // or one draining away (the round trip of a slow start
                // still in the smoothed figure), says nothing of the sort.
                let (since, then) = *self.queued_since.get_or_insert((now, queued));
                let draining = queued < then.mul_f64(DRAINING);
                if draining {
                    self.queued_since = Some((now, queued));
                }
                let lasted = !draining && now.duration_since(since) >= QUEUE_PERSISTS;
                let sent_rate = self.sent_rate();
                let sent = sent_rate.unwrap_or(f64::INFINITY);
                let delivered = link.delivery_rate as f64;
                let saturation = if link.paced {
                    SATURATED_AT_PACE
                } else {
                    SATURATED
                };
                let saturated = delivered <= saturation * sent;
                if saturated || lasted {
                    // What the peer acknowledged while the queue stood is
                    // what the link carried (before it, it may have carried
                    // more: the link just got thinner), counted from when
                    // the link last moved again after a stall (a Wi-Fi
                    // scan; or losses on an overflowing link, which TCP
                    // takes a while to repair): the stall's time says
                    // nothing of the rate, and its backlog drains at once
                    // on a link that is not thin.
                    let moved = self.moved_again(now);
                    let from = moved.map_or(since, |t| t.max(since));
                    // A queue whose own time holds too little of what was
                    // acknowledged to make a rate (the reports come a
                    // round trip after the frames, and later as the queue
                    // grows) goes by what the peer had in the moments
                    // before its latest word: the round trip rises a while
                    // after the link got thinner.
                    let recent = self
                        .acked
                        .back()
                        .and_then(|&(_, (_, had))| had.checked_sub(RECENT))
                        .filter(|_| sent_rate.is_some())
                        .map(|r| moved.map_or(r, |t| t.max(r)));
                    let acked = self
                        .acked_rate(from)
                        .or_else(|| recent.and_then(|r| self.acked_rate(r)));
                    // What the link delivered, no more than we sent.
                    let delivered_of_sent = delivered.min(sent);
                    let carried = match acked {
                        // On a link we saturate, the pace the peer saw is
                        // what it carries too (though no more than we send,
                        // as a queue stands); the peer's reports come a
                        // frame at a time, and a rate from a few of them
                        // reads low.
                        Some(rate) if saturated && link.paced => Some(rate.max(delivered_of_sent)),
                        Some(rate) => Some(rate),
                        None if self.acked.is_empty() => Some(delivered_of_sent),
                        // Nothing acknowledged is a rate yet, after what
                        // may be a stall or a link gone thin: the pace, on
                        // trial (again, lower, if the pace falls further
                        // while on trial).
                        None if saturated
                            && link.paced
                            && (self.tentative.is_none()
                                || delivered_of_sent < self.ceiling.unwrap_or(f64::INFINITY)) =>
                        {
                            if let (None, Some(&(_, (acked, had)))) =
                                (self.tentative, self.acked.back())
                            {
                                self.tentative = Some(Tentative {
                                    set: now,
                                    acked,
                                    had,
                                    before: (self.ceiling, self.carried),
                                });
                            }
                            Some(delivered_of_sent)
                        }
                        None => None,
                    };
                    if let Some(carried) = carried {
                        if acked.is_some() {
                            self.tentative = None;
                        }
                        self.rates.clear();
                        self.ceiling = Some(carried);
                        self.carried = carried;
                    }
                }
            } else {
                self.queued_since = None;
            }
            self.rates
                .push_back((now, (link.delivery_rate, link.paced)));
            self.settle_trial(now);
        }
        // No queue: the ceiling and the start ramp grow. A queue (over
        // QUEUE_TARGET) holds them where they are.
        if ours <= QUEUE_TARGET {
            let secs = since_last.min(STALL).as_secs_f64();
            self.ramp_secs += secs;
            if let Some(ceiling) = &mut self.ceiling {
                let growth = if *ceiling < self.carried * NEAR {
                    NEAR_GROWTH
                } else {
                    CEILING_GROWTH
                };
                *ceiling *= growth.powf(secs);
            }
        }
        forget_before(&mut self.rates, now, CAPACITY_WINDOW);
        ours
    }
}

/// Drops the entries of `window` older than `span` at `now` (entries
/// come in time order).
fn forget_before<T>(window: &mut VecDeque<(Instant, T)>, now: Instant, span: Duration) {
    while window
        .front()
        .is_some_and(|&(t, _)| now.duration_since(t) > span)
    {
        window.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MBIT: u64 = 1_000_000 / 8;

    fn link(rate: u64, queued_ms: u32) -> Option<LinkSample> {
        Some(LinkSample {
            delivery_rate: rate,
            queue_us: queued_ms * 1000,
            bytes_acked: 0,
            acked_age_us: 0,
            notsent_bytes: 0,
            in_flight_bytes: 0,
            arrived_bytes: 0,
            paced: false,
        })
    }

    /// `frames` frames of `bytes` each, 33 ms apart, each seeing `link`.
    fn send(
        c: &mut RateController,
        t: &mut Instant,
        frames: u32,
        bytes: usize,
        link: Option<LinkSample>,
    ) {
        for _ in 0..frames {
            *t += Duration::from_millis(33);
            c.on_frame_sent(bytes, link, *t);
        }
    }

    /// JPEG size grows with quality; a stand-in: bytes = quality * k.
    fn run(
        c: &mut RateController,
        t: &mut Instant,
        frames: u32,
        rate: u64,
        queued_ms: u32,
        k: usize,
    ) {
        for _ in 0..frames {
            *t += Duration::from_millis(33);
            let bytes = c.quality() as usize * k;
            c.on_frame_sent(bytes, link(rate, queued_ms), *t);
        }
    }

    #[test]
    fn climbs_to_the_top_while_capacity_is_unknown() {
        let mut c = RateController::new(30, 50);
        let mut t = Instant::now();
        send(&mut c, &mut t, 100, 50_000, None);
        assert_eq!(c.quality(), MAX_QUALITY);
        assert!(c.ready(t));
    }

    #[test]
    fn moves_down_when_the_budget_shrinks_and_back_up_when_it_grows() {
        let mut c = RateController::new(30, 75);
        let mut t = Instant::now();
        // 20 Mbit/s: budget 20e6/8*0.7/30 = 58 KB; frames settle at 80..100%
        // of it, which at 700 bytes per quality step is q67..=q83.
        run(&mut c, &mut t, 60, 20 * MBIT, 0, 700);
        let fast = c.quality();
        assert!((67..=83).contains(&fast), "{fast}");
        // The link drops to 5 Mbit/s and a queue builds: budget 14.6 KB = q20.
        run(&mut c, &mut t, 15, 5 * MBIT, 80, 700);
        let slow = c.quality();
        assert!(
            slow <= 25,
            "still at q{slow} after 0.5 s on a 5 Mbit/s link"
        );
        // The link is back: the ceiling the queue set rises 3% a second up
        // to 1.5 times the 5 Mbit/s, 10% a second after, so within 30 s
        // the quality is back up.
        run(&mut c, &mut t, 900, 20 * MBIT, 0, 700);
        assert!(c.quality() >= 67, "q{} after recovery", c.quality());
    }

    #[test]
    fn spaces_frames_when_even_the_lowest_quality_is_too_big() {
        let mut c = RateController::new(30, 20);
        let mut t = Instant::now();
        // 1 Mbit/s: budget 2.9 KB, but frames are 20 * 700 = 14 KB.
        run(&mut c, &mut t, 5, MBIT, 80, 700);
        assert_eq!(c.quality(), MIN_QUALITY);
        assert!(
            !c.ready(t + Duration::from_millis(34)),
            "no frame one period later"
        );
        assert!(
            c.ready(t + Duration::from_millis(200)),
            "a frame within ~5 periods"
        );
    }

    #[test]
    fn spacing_is_bounded_after_a_stall() {
        let mut c = RateController::new(30, 20);
        let mut t = Instant::now();
        run(&mut c, &mut t, 5, MBIT, 80, 700);
        // A stall: the delivery rate collapses to a few bytes a
        // second, and a 50 KB frame goes out on it (it was 50,000x over).
        t += Duration::from_millis(33);
        c.on_frame_sent(50_000, link(10, 500), t);
        assert!(!c.ready(t + Duration::from_millis(500)));
        assert!(
            c.ready(t + MAX_SPACING),
            "no frame a second after the stall"
        );
        // Nor can a zero-byte budget or an absurd frame make it longer.
        c.on_frame_sent(usize::MAX, link(1, 500), t);
        assert!(c.ready(t + MAX_SPACING));
    }

    #[test]
    fn a_growing_queue_stops_the_climb() {
        let mut c = RateController::new(30, 40);
        let mut t = Instant::now();
        // The capacity looks ample (a shaper's burst), but a queue builds.
        run(&mut c, &mut t, 20, 50 * MBIT, 20, 100);
        let eased = c.quality();
        assert!(eased < 40, "quality climbed to q{eased} while a queue grew");
        run(&mut c, &mut t, 20, 50 * MBIT, 0, 100);
        assert!(
            c.quality() > eased,
            "no climb once the queue was gone: q{}",
            c.quality()
        );
    }

    #[test]
    fn a_shapers_bursts_do_not_pass_for_capacity() {
        let mut c = RateController::new(30, 50);
        let mut t = Instant::now();
        // A queue builds and stands on a 1 Mbit/s link (200 ms)...
        run(&mut c, &mut t, 6, MBIT, 80, 100);
        // ...then small frames pass in the burst allowance at line rate.
        run(&mut c, &mut t, 15, 500 * MBIT, 0, 100);
        let cap = c.capacity().unwrap();
        assert!(cap < 1.1 * MBIT as f64, "{cap} B/s after 0.5 s of bursts");
        // Without queues the ceiling rises: the link may have grown.
        run(&mut c, &mut t, 600, 500 * MBIT, 0, 100);
        let later = c.capacity().unwrap();
        assert!(
            later > 2.0 * MBIT as f64,
            "{later} B/s after 20 s without a queue"
        );
    }

    #[test]
    fn a_moments_queue_does_not_cap_the_link() {
        let mut c = RateController::new(30, 50);
        let mut t = Instant::now();
        // A simple picture: 1 KB frames (240 kbit/s) on a 20 Mbit/s link.
        run(&mut c, &mut t, 60, 20 * MBIT, 0, 0);
        send(&mut c, &mut t, 60, 1000, link(20 * MBIT, 0));
        // A scheduling hiccup: the round trip jumps for one frame.
        t += Duration::from_millis(33);
        c.on_frame_sent(1000, link(20 * MBIT, 80), t);
        run(&mut c, &mut t, 3, 20 * MBIT, 0, 0);
        let cap = c.capacity().unwrap();
        assert!(
            cap >= (20 * MBIT) as f64,
            "{cap} B/s: capped at what a light sender sent"
        );
    }

    #[test]
    fn a_moments_queue_well_under_the_links_pace_does_not_cap_it() {
        // 300 kbit/s of video on a 500 kbit/s link, and 408 kbit/s: about
        // what HEADROOM leaves on it.
        for bytes in [1_250, 1_700] {
            let mut c = RateController::new(30, 50);
            let mut t = Instant::now();
            let mut acked = 1;
            // Each frame's bytes come at the link's pace, all acknowledged.
            let mut frames = |c: &mut RateController, t: &mut Instant, n, queued_ms| {
                for _ in 0..n {
                    *t += Duration::from_millis(33);
                    acked += bytes;
                    let sample =
                        acking(62_500, queued_ms, acked).map(|l| LinkSample { paced: true, ..l });
                    c.on_frame_sent(bytes as usize, sample, *t);
                }
            };
            frames(&mut c, &mut t, 60, 0);
            // A frame larger than most, or the peer's video ahead of our
            // ACKs: a queue for three frames, then none.
            frames(&mut c, &mut t, 3, 50);
            frames(&mut c, &mut t, 3, 0);
            let cap = c.capacity().unwrap();
            assert!(
                cap >= 0.9 * 62_500.0,
                "{cap} B/s: capped at what we sent ({bytes} a frame)"
            );
        }
    }

    #[test]
    fn a_link_that_gets_thinner_caps_at_its_new_rate() {
        // 4 Mbit/s of video on a 20 Mbit/s link, all acknowledged...
        let (mut c, mut t, mut acked) = on_a_20_mbit_link();
        // ...then the link carries 1 Mbit/s and a queue stands.
        send_acked(&mut c, &mut t, &mut acked, 15, 16_500, 4125, MBIT, 100);
        let cap = c.capacity().unwrap();
        assert!(
            cap <= 1.1 * MBIT as f64,
            "{cap} B/s half a second after the link went to 1 Mbit/s"
        );
    }

    #[test]
    fn a_link_that_gets_thinner_caps_as_soon_as_the_queue_shows() {
        let (mut c, mut t, mut acked) = on_a_20_mbit_link();
        // The link carries 1 Mbit/s; the smoothed round trip takes a
        // quarter of a second to show the queue.
        send_acked(&mut c, &mut t, &mut acked, 8, 16_500, 4125, MBIT, 30);
        send_acked(&mut c, &mut t, &mut acked, 1, 16_500, 4125, MBIT, 60);
        let cap = c.capacity().unwrap();
        assert!(
            cap <= 1.2 * MBIT as f64,
            "{cap} B/s on the first frame that saw the queue"
        );
    }

    /// A link delivering `rate` with `ahead` bytes on their way (half of
    /// them still in the socket) and `acked` acknowledged so far.
    fn carrying(rate: u64, ahead: u32, acked: u64) -> Option<LinkSample> {
        acking(rate, 0, acked).map(|l| LinkSample {
            notsent_bytes: ahead / 2,
            in_flight_bytes: ahead - ahead / 2,
            ..l
        })
    }

    #[test]
    fn a_frame_that_would_wait_behind_the_link_is_dropped() {
        let (mut c, mut t, mut acked) = on_a_20_mbit_link();
        // A lossy link: a few KB waiting at 6 Mbit/s is a few milliseconds.
        acked += 16_500;
        assert!(c.on_frame_captured(carrying(6 * MBIT, 6000, acked), t));
        // The link just went to 1 Mbit/s (the latest pace knows, the
        // capacity not yet): 40 KB ahead is a third of a second.
        t += Duration::from_millis(33);
        acked += 4125;
        assert!(!c.on_frame_captured(carrying(MBIT, 40_000, acked), t));
        // Once what is ahead fits in FRAME_LAG, frames go again.
        t += Duration::from_millis(33);
        acked += 4125;
        assert!(c.on_frame_captured(carrying(MBIT, 10_000, acked), t));
    }

    #[test]
    fn frames_wait_while_the_link_is_stalled() {
        let (mut c, mut t, mut acked) = on_a_20_mbit_link();
        // Nothing acknowledged of the 5 KB on their way: a stall, once it
        // has lasted FRAME_LAG.
        let mut dropped = 0;
        for _ in 0..30 {
            t += Duration::from_millis(33);
            if !c.on_frame_captured(carrying(20 * MBIT, 5000, acked), t) {
                dropped += 1;
            }
        }
        assert!(
            (26..=28).contains(&dropped),
            "{dropped} of 30 frames dropped in a 1 s stall"
        );
        // The link moves again.
        t += Duration::from_millis(33);
        acked += 5000;
        assert!(c.on_frame_captured(carrying(20 * MBIT, 5000, acked), t));
    }

    #[test]
    fn a_draining_queue_does_not_cap_the_link() {
        let mut c = RateController::new(30, 50);
        let mut t = Instant::now();
        let mut acked = 1;
        // 1.2 Mbit/s on a 20 Mbit/s link whose smoothed round trip starts
        // at 600 ms (the start of the connection) and falls away.
        for n in 0..45 {
            t += Duration::from_millis(33);
            acked += 5000;
            let queued_ms = 600 >> (n / 5).min(10);
            c.on_frame_sent(5000, acking(20 * MBIT, queued_ms, acked), t);
        }
        let cap = c.capacity().unwrap();
        assert!(
            cap >= (10 * MBIT) as f64,
            "{cap} B/s: capped at what a light sender sent"
        );
    }

    #[test]
    fn a_queue_on_a_saturated_link_caps_at_once() {
        let mut c = RateController::new(30, 50);
        let mut t = Instant::now();
        // 1 Mbit/s measured high (a shaper's burst) while 1.5 Mbit/s goes out.
        send(&mut c, &mut t, 30, 6250, link(3 * MBIT, 0));
        // One frame with a queue, the link delivering what it carries; then
        // the shaper's bursts again.
        t += Duration::from_millis(33);
        c.on_frame_sent(6250, link(MBIT, 60), t);
        send(&mut c, &mut t, 10, 6250, link(3 * MBIT, 0));
        let cap = c.capacity().unwrap();
        assert!(
            cap <= 1.1 * MBIT as f64,
            "{cap} B/s: above the 1 Mbit/s link"
        );
    }

    #[test]
    fn the_encoders_target_ramps_up_from_the_start_rate() {
        let mut c = RateController::new(30, 50);
        let mut t = Instant::now();
        let start = f64::from(START_BITRATE);
        assert_eq!(c.target_bitrate(), start, "nothing measured yet");
        c.on_frame_sent(1000, None, t);
        assert_eq!(c.target_bitrate(), start, "no link sample yet");
        // The link reads as 100 Mbit/s for 2 s (60 frames 33 ms apart).
        send(&mut c, &mut t, 60, 1000, link(100 * MBIT, 0));
        let expected = start * START_RAMP.powf(1.98);
        assert!(
            (c.target_bitrate() - expected).abs() < 1.0,
            "{}",
            c.target_bitrate()
        );
        // A queue on the way holds the ramp where it is.
        let held = c.target_bitrate();
        send(&mut c, &mut t, 30, 1000, link(100 * MBIT, 20));
        assert_eq!(c.target_bitrate(), held);
        // Later the link's share is the limit.
        send(&mut c, &mut t, 600, 1000, link(100 * MBIT, 0));
        assert_eq!(Some(c.target_bitrate()), c.bitrate());
    }

    /// A link carrying `rate` bytes a second with `queued_ms` of queue,
    /// `acked` bytes acknowledged so far.
    fn acking(rate: u64, queued_ms: u32, acked: u64) -> Option<LinkSample> {
        link(rate, queued_ms).map(|l| LinkSample {
            bytes_acked: acked,
            ..l
        })
    }

    /// `frames` frames of `bytes`, 33 ms apart, on a link delivering
    /// `rate` behind `queued_ms` of queue; the peer acknowledges `acks`
    /// bytes a frame, counted in `acked`.
    #[allow(clippy::too_many_arguments)]
    fn send_acked(
        c: &mut RateController,
        t: &mut Instant,
        acked: &mut u64,
        frames: u32,
        bytes: usize,
        acks: u64,
        rate: u64,
        queued_ms: u32,
    ) {
        for _ in 0..frames {
            *t += Duration::from_millis(33);
            *acked += acks;
            c.on_frame_sent(bytes, acking(rate, queued_ms, *acked), *t);
        }
    }

    /// A controller two seconds into a call on a 20 Mbit/s link carrying
    /// 4 Mbit/s of video, all of it acknowledged: the controller, the
    /// clock and the bytes acknowledged so far.
    fn on_a_20_mbit_link() -> (RateController, Instant, u64) {
        let mut c = RateController::new(30, 50);
        let mut t = Instant::now();
        let mut acked = 1;
        send_acked(&mut c, &mut t, &mut acked, 60, 16_500, 16_500, 20 * MBIT, 0);
        (c, t, acked)
    }

    #[test]
    fn a_stall_does_not_pass_for_a_thin_link() {
        // 20 Mbit/s; the video takes 4 Mbit/s, all acknowledged.
        let (mut c, mut t, mut acked) = on_a_20_mbit_link();
        // The link stops: frames go into the socket for 0.3 s, nothing is
        // acknowledged; then the socket is full for 0.7 s.
        send(&mut c, &mut t, 9, 16_500, acking(20 * MBIT, 0, acked));
        t += Duration::from_millis(700);
        // The backlog drains behind a 1 s queue; the first
        // samples read a few kbit/s.
        let mut lowest = f64::INFINITY;
        for n in 0..15 {
            t += Duration::from_millis(33);
            acked += 80_000;
            let delivered = if n < 3 { 1_000 } else { 20 * MBIT };
            c.on_frame_sent(16_500, acking(delivered, 900, acked), t);
            lowest = lowest.min(c.capacity().unwrap_or(0.0));
        }
        assert!(
            lowest >= (10 * MBIT) as f64,
            "{lowest} B/s after a stall on a 20 Mbit/s link"
        );
    }

    #[test]
    fn a_queue_caps_at_what_the_peer_acknowledged() {
        let mut c = RateController::new(30, 50);
        let mut t = Instant::now();
        let mut acked = 1;
        // 1.5 Mbit/s goes out on a 1 Mbit/s link that one-read samples
        // read as 3 Mbit/s (a shaper's burst); a queue stands.
        send_acked(&mut c, &mut t, &mut acked, 30, 6250, 4125, 3 * MBIT, 60);
        let cap = c.capacity().unwrap();
        assert!(
            (0.9 * MBIT as f64..=1.1 * MBIT as f64).contains(&cap),
            "{cap} B/s on a 1 Mbit/s link"
        );
    }

    /// A second of 1.5 Mbit/s sent behind a 60 ms queue, the peer's
    /// reports adding up to 0.6 Mbit/s and its frames' bytes coming at
    /// `pace`: the capacity the controller settles on.
    fn capacity_at_pace(pace: u64) -> f64 {
        let mut c = RateController::new(30, 50);
        let mut t = Instant::now();
        let mut acked = 1;
        for _ in 0..30 {
            t += Duration::from_millis(33);
            acked += 2_500;
            let paced = acking(pace, 60, acked).map(|l| LinkSample { paced: true, ..l });
            c.on_frame_sent(6_250, paced, t);
        }
        c.capacity().unwrap_or(0.0)
    }

    #[test]
    fn a_queue_on_a_link_we_saturate_caps_at_the_pace_the_peer_saw() {
        // A 1 Mbit/s link: the reports, a frame at a time, read low.
        let cap = capacity_at_pace(MBIT);
        assert!(
            (0.9 * MBIT as f64..=1.1 * MBIT as f64).contains(&cap),
            "{cap} B/s on a 1 Mbit/s link"
        );
    }

    #[test]
    fn a_queue_on_the_reports_way_back_does_not_thin_what_the_link_carried() {
        // 1.5 Mbit/s sent into 1 Mbit/s behind a standing queue, the pace
        // read high (a shaper's burst): the cap is what the peer had. Its
        // reports come back later and later (3 ms more each), so as they
        // come they add up to 0.91 Mbit/s; as the peer had them, to 1.
        let mut c = RateController::new(30, 50);
        let mut t = Instant::now();
        for frame in 1..=30u32 {
            t += Duration::from_millis(33);
            let age_us = frame * 3_000;
            let had = u64::from(frame * 33_000 - age_us) * MBIT / 1_000_000;
            let sample = acking(5 * MBIT, 60, had).map(|l| LinkSample {
                paced: true,
                acked_age_us: age_us,
                ..l
            });
            c.on_frame_sent(6_250, sample, t);
        }
        let cap = c.capacity().unwrap_or(0.0);
        assert!(
            (0.97 * MBIT as f64..=1.03 * MBIT as f64).contains(&cap),
            "{cap} B/s on a 1 Mbit/s link"
        );
    }

    #[test]
    fn what_has_arrived_of_the_frames_on_their_way_is_not_waited_behind() {
        let mut c = RateController::new(30, 50);
        let now = Instant::now();
        // 7 KB on their way at 60 kB/s: 117 ms, more than FRAME_LAG...
        let on_the_way = |arrived_bytes| {
            link(60_000, 0).map(|l| LinkSample {
                in_flight_bytes: 7_000,
                arrived_bytes,
                ..l
            })
        };
        assert!(!c.on_frame_captured(on_the_way(0), now));
        // ... unless 2 KB of them are in already.
        assert!(c.on_frame_captured(on_the_way(2_000), now));
    }

    #[test]
    fn a_pace_above_what_we_send_caps_at_what_we_send() {
        // The bytes came at 2.5 Mbit/s (a shaper's burst), but as a queue
        // stands the link carries no more than what we send.
        let cap = capacity_at_pace(5 * MBIT / 2);
        assert!(cap <= 1.6 * MBIT as f64, "{cap} B/s, sending 1.5 Mbit/s");
    }

    /// A sample from the peer's reports: its frames came at `pace`,
    /// `queued_ms` late, `acked` bytes acknowledged so far, `in_flight`
    /// bytes on their way, its latest report `age_ms` old.
    fn reported(
        pace: u64,
        queued_ms: u32,
        acked: u64,
        in_flight: u32,
        age_ms: u32,
    ) -> Option<LinkSample> {
        acking(pace, queued_ms, acked).map(|l| LinkSample {
            paced: true,
            in_flight_bytes: in_flight,
            acked_age_us: age_ms * 1000,
            ..l
        })
    }

    /// Two seconds of 4 Mbit/s on a 20 Mbit/s link, as the peer reports it.
    fn on_a_reported_20_mbit_link() -> (RateController, Instant, u64) {
        let mut c = RateController::new(30, 50);
        let mut t = Instant::now();
        let mut acked = 1;
        for _ in 0..60 {
            t += Duration::from_millis(33);
            acked += 16_500;
            c.on_frame_sent(16_500, reported(20 * MBIT, 0, acked, 0, 0), t);
        }
        (c, t, acked)
    }

    #[test]
    fn no_frame_follows_a_report_that_came_old() {
        let mut c = RateController::new(30, 50);
        let now = Instant::now();
        // 5 KB on their way at 2.5 MB/s are 2 ms; but the latest report
        // was 300 ms old when it came (it waited behind the peer's video).
        assert!(!c.on_frame_captured(reported(20 * MBIT, 0, 1, 5_000, 300), now));
        assert!(c.on_frame_captured(reported(20 * MBIT, 0, 1, 5_000, 50), now));
        // Nothing on its way: nothing to wait for.
        assert!(c.on_frame_captured(reported(20 * MBIT, 0, 1, 0, 300), now));
    }

    #[test]
    fn a_link_gone_thin_caps_at_its_pace_though_its_reports_come_after_silences() {
        let (mut c, mut t, mut acked) = on_a_reported_20_mbit_link();
        // The link goes to 1 Mbit/s with 60 KB on their way: a 16 KB
        // frame's report comes every 400 ms, with 1 Mbit/s its pace,
        // later and later; never an acknowledged rate to measure. Then to
        // 0.5 Mbit/s while the first ceiling is on trial.
        for frame in 1..=45u32 {
            t += Duration::from_millis(33);
            let report = frame % 12 == 0;
            if report {
                acked += 16_500;
            }
            let pace = match frame {
                ..12 => 20 * MBIT,
                12..24 => MBIT,
                _ => MBIT / 2,
            };
            let sample = reported(pace, frame * 33, acked, 60_000, 0);
            c.on_frame_captured(sample, t);
            if frame >= 12 {
                let cap = c.capacity().unwrap_or(f64::INFINITY);
                assert!(
                    cap <= 1.1 * pace as f64,
                    "{cap} B/s {frame} frames into {pace} B/s"
                );
            }
        }
    }

    #[test]
    fn the_first_report_after_a_stall_does_not_cap_the_link() {
        let (mut c, mut t, mut acked) = on_a_reported_20_mbit_link();
        // The link stops for a second; its first report after has the
        // stall in its pace (16 KB over the second) ...
        for _ in 0..30 {
            t += Duration::from_millis(33);
            c.on_frame_captured(reported(20 * MBIT, 0, acked, 60_000, 0), t);
        }
        t += Duration::from_millis(33);
        acked += 16_500;
        c.on_frame_captured(reported(16_500, 1000, acked, 45_000, 0), t);
        // ... then the backlog drains at 20 Mbit/s, reported at once.
        for _ in 0..3 {
            t += Duration::from_millis(5);
            acked += 15_000;
            c.on_frame_captured(reported(20 * MBIT, 900, acked, 0, 0), t);
        }
        let cap = c.capacity().unwrap_or(0.0);
        assert!(
            cap >= (10 * MBIT) as f64,
            "{cap} B/s after a stall on a 20 Mbit/s link"
        );
    }

    #[test]
    fn a_lasting_queue_caps_the_link_though_its_reports_come_too_late_to_time_it() {
        // A 500 kbit/s link (62.5 bytes a ms) behind a shaper's burst
        // allowance: every frame comes in one read, so no pace is known.
        let (link_rate, now_ms) = (62.5, |k: i32| f64::from(k) * 33.0);
        let mut c = RateController::new(30, 50);
        let t0 = Instant::now();
        let at = |ms: f64| t0 + Duration::from_secs_f64(1.0 + ms / 1000.0);
        // A second of 2 KB frames, which the link carries as they come...
        for k in -30..0 {
            let sample = acking(3 * MBIT, 0, (now_ms(k) + 1000.0) as u64 * 60);
            c.on_frame_sent(2_000, sample, at(now_ms(k)));
        }
        // ... then 3.3 KB ones: a queue grows on our way and on the
        // reports' way back alike, so what the peer had comes later and
        // later (its time moves 13 ms a frame).
        let mut queue_ms = 0.0;
        for k in 0..12 {
            queue_ms += (3_300.0 - link_rate * 33.0) / link_rate;
            let age_ms = 10.0 + queue_ms;
            let had = 60_000.0 + link_rate * (now_ms(k) - age_ms);
            let sample = acking(3 * MBIT, queue_ms as u32, had as u64).map(|l| LinkSample {
                acked_age_us: (age_ms * 1000.0) as u32,
                ..l
            });
            c.on_frame_sent(3_300, sample, at(now_ms(k)));
        }
        // 400 ms in, the queue 240 ms: capped at about what it carried.
        let cap = c.capacity().unwrap_or(0.0);
        assert!(cap <= 1.1 * 62_500.0, "{cap} B/s on a 500 kbit/s link");
    }

    #[test]
    fn a_known_pace_outweighs_what_frames_of_one_read_said() {
        let mut c = RateController::new(30, 50);
        let t = Instant::now();
        // A frame through a shaper's burst allowance, in one read: the
        // link is at least 300 kB/s...
        c.on_frame_sent(3_000, link(300_000, 0), t);
        assert_eq!(c.capacity(), Some(300_000.0));
        // ... until frames come at its pace.
        let paced = link(60_000, 0).map(|l| LinkSample { paced: true, ..l });
        c.on_frame_sent(2_000, paced, t + Duration::from_millis(33));
        assert_eq!(c.capacity(), Some(60_000.0));
    }

    #[test]
    fn old_capacity_samples_expire() {
        let mut c = RateController::new(30, 50);
        let t = Instant::now();
        c.on_frame_sent(1000, link(50 * MBIT, 0), t);
        c.on_frame_sent(1000, link(5 * MBIT, 0), t + Duration::from_secs(1));
        assert_eq!(c.capacity(), Some((50 * MBIT) as f64));
        c.on_frame_sent(1000, link(5 * MBIT, 0), t + Duration::from_secs(3));
        assert_eq!(c.capacity(), Some((5 * MBIT) as f64));
    }
}
