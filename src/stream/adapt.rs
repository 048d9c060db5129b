//! Quality that follows the link, sans I/O: the session feeds it what the
//! link carried (bytes that left the socket, frames sent, frames held back
//! because the link was not ready) and the time; it answers with the JPEG
//! quality the next frames should have.
//!
//! The policy, in short:
//! - The link's capacity is measured while it is busy: bytes that left the
//!   socket during intervals when the kernel still held unsent bytes, over
//!   the length of those intervals (each frame is a burst that drains at
//!   the bottleneck's rate), smoothed. Idle time does not count, so a link
//!   that carries everything reads as fast as it proved to be.
//! - Congestion is frames held back (the flow control's gate closed while
//!   a frame waited) in two decision periods in a row: one late ack or one
//!   slow write is not a reason to react. Down at once to what fits the
//!   measured rate with headroom, or a step when the frames are only a
//!   little too large; a fall that goes on takes larger steps.
//! - Every step up is a probe: to what the measured rate shows room for,
//!   or, after calm seconds, a step (a link is only measured while frames
//!   wait in it; one whose frames drain between two looks of the session
//!   reads no faster than the frames, and a shaper's burst allowance lets
//!   small frames through at line rate). A probe that makes a frame wait
//!   within 3 s is undone at once. The quality it tried is then held out
//!   of reach (8 s, doubling while it keeps failing, up to a minute), and
//!   no later probe leaps past it until one reaches it and it holds: a
//!   steady link settles on the highest quality it carries and is probed
//!   rarely.
//! - When the link gets slower by itself, the controller remembers the
//!   quality it carried calmly before. For a minute it probes every few
//!   seconds, and once a probe holds above what the slow link carried, it
//!   goes straight back to that quality instead of climbing step by step.
//! - Never above the configured quality nor below the floor; below the
//!   floor the frame rate gives way, as it does without adaptation.

use std::time::{Duration, Instant};

pub use crate::config::AdaptMode;

/// How often the controller decides.
pub const PERIOD: Duration = Duration::from_millis(500);
/// Share of the measured rate the frames may use.
const HEADROOM: f64 = 0.8;
/// Quality steps when probing upward.
const PROBE_STEP: u8 = 4;
/// Calm needed before a probe upward, at first.
const PROBE_CALM: Duration = Duration::from_secs(2);
/// A probe that makes a frame wait within this long failed.
const PROBE_JUDGE: Duration = Duration::from_secs(3);
/// A kernel delivery rate this much above the one at the last failure
/// means the link got faster: probe soon again.
const KERNEL_FASTER: f64 = 1.5;
/// The largest probing step.
const PROBE_STEP_MAX: u8 = 16;
/// How long a quality that congested the link is left alone, at first.
const HOLD_FIRST: Duration = Duration::from_secs(8);
/// The longest such hold.
const HOLD_MAX: Duration = Duration::from_secs(64);
/// A quality that failed before and has since held this long no longer
/// bounds the probes.
const CEILING_PROVEN: Duration = Duration::from_secs(10);
/// How long the frames of an undone probe may still queue.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// A quality held this long before the link slowed is worth going back to.
const RECALL_HELD: Duration = Duration::from_secs(5);
/// For this long after the link slowed, it may come back: probe often.
const RECALL_FOR: Duration = Duration::from_secs(60);
/// The longest wait before a probe meanwhile.
const RECALL_WAIT: Duration = Duration::from_secs(6);
/// Smoothing of the rate (per decision period).
const RATE_ALPHA: f64 = 0.25;

/// libjpeg's quantiser scale for `q` (percent of the base tables).
fn scale(q: u8) -> f64 {
    let q = f64::from(q.clamp(1, 100));
    if q < 50.0 {
        5000.0 / q
    } else {
        200.0 - 2.0 * q
    }
    .max(1.0)
}

/// Frame size at `to` relative to `from`: sizes go about as the quantiser
/// scale to the power −0.85 (measured on natural frames, BENCHMARKS.md).
fn size_ratio(from: u8, to: u8) -> f64 {
    (scale(from) / scale(to)).powf(0.85)
}

/// A quality that congested the link.
#[derive(Debug, Clone, Copy)]
struct Ceiling {
    quality: u8,
    /// Left alone until then.
    until: Instant,
    /// The capacity measured then (a clearly faster link lifts it early).
    rate: f64,
}

/// The link slowed by itself: what it carried before, and what it did not
/// carry since.
#[derive(Debug, Clone, Copy)]
struct Recall {
    /// The quality it carried calmly before.
    quality: u8,
    /// When it last congested.
    at: Instant,
    /// The lowest quality known not to fit it while slow.
    slow_limit: u8,
}

/// A step up to find out whether the link carries it.
#[derive(Debug, Clone, Copy)]
struct Probe {
    at: Instant,
    /// The quality before it.
    from: u8,
    /// A jump back to what the link carried before it slowed.
    recall: bool,
}

/// The controller of one connection's quality.
#[derive(Debug)]
pub struct QualityControl {
    mode: AdaptMode,
    /// The configured quality: the most this may choose.
    max: u8,
    /// The floor (`source.min_quality`).
    min: u8,
    fps: f64,
    quality: u8,
    /// Bytes per second the link carried while busy, smoothed; None until
    /// measured.
    rate: Option<f64>,
    /// Busy bytes and seconds gathered since the last decision.
    busy_bytes: u64,
    busy_secs: f64,
    last_sample: Option<(Instant, u64, usize)>,
    /// The highest delivery rate the kernel reported since the last
    /// decision; those maxima smoothed; and that smoothed rate when a probe
    /// or the link last failed. (Only a hint: a shaper's burst allowance or
    /// Wi-Fi's aggregation let one frame's burst through faster than the
    /// link carries frames, so it moves the probing, not the quality.)
    kernel_now: Option<f64>,
    kernel: Option<f64>,
    kernel_at_fail: f64,
    /// When that rate last brought a probe forward.
    kernel_hint: Option<Instant>,
    /// Mean frame size at `quality`, from the frames sent.
    frame_bytes: Option<f64>,
    last_decision: Instant,
    blocked_now: u32,
    sent_now: u32,
    congested_periods: u32,
    calm_since: Instant,
    /// A quality that congested the link, until when it is left alone, and
    /// the capacity measured then (a clearly faster link lifts it early).
    ceiling: Option<Ceiling>,
    hold: Duration,
    /// When a quality last congested the link.
    last_fail: Option<Instant>,
    /// The last probe up, until judged.
    probe: Option<Probe>,
    /// Until when blocked frames are the tail of an undone probe.
    grace_until: Option<Instant>,
    /// What the link carried before it last slowed by itself.
    recall: Option<Recall>,
    /// The last quality the link carried calmly for a while.
    good: Option<u8>,
    /// Since when the link has carried the current quality (a step down,
    /// a move up, or the start of a probe that held).
    steady_since: Instant,
    /// Calm needed before the next probe, and its step.
    probe_wait: Duration,
    probe_step: u8,
    /// The last step down (a fall that goes on takes larger ones).
    down_step: u8,
    changes: u64,
    /// Why the quality last changed, for the log.
    reason: &'static str,
}

impl QualityControl {
    /// A controller starting at the configured `quality`.
    pub fn new(mode: AdaptMode, quality: u8, min: u8, fps: u32, now: Instant) -> QualityControl {
        QualityControl {
            mode,
            max: quality,
            min: min.min(quality),
            fps: f64::from(fps.max(1)),
            quality,
            rate: None,
            busy_bytes: 0,
            busy_secs: 0.0,
            last_sample: None,
            kernel_now: None,
            kernel: None,
            kernel_at_fail: 0.0,
            kernel_hint: None,
            frame_bytes: None,
            last_decision: now,
            blocked_now: 0,
            sent_now: 0,
            congested_periods: 0,
            calm_since: now,
            ceiling: None,
            hold: HOLD_FIRST,
            last_fail: None,
            probe: None,
            grace_until: None,
            recall: None,
            good: None,
            steady_since: now,
            probe_wait: PROBE_CALM,
            probe_step: PROBE_STEP,
            down_step: PROBE_STEP,
            changes: 0,
            reason: "configured",
        }
    }

    /// The quality the next frames should have.
    pub fn quality(&self) -> u8 {
        self.quality
    }

    /// What it adapts (set by [`QualityControl::configure`]).
    pub fn mode(&self) -> AdaptMode {
        self.mode
    }

    /// The link's measured rate in bytes per second, once known.
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }

    /// Quality changes so far.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Why the quality last changed (for the log).
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// New policy from the user: mode, configured quality, floor, fps.
    pub fn configure(&mut self, mode: AdaptMode, quality: u8, min: u8, fps: u32) {
        self.mode = mode;
        self.max = quality;
        self.min = min.min(quality);
        self.fps = f64::from(fps.max(1));
        let q = if mode == AdaptMode::Quality {
            self.quality.clamp(self.min, self.max)
        } else {
            self.max
        };
        self.set(q, "configured");
    }

    /// A frame of `bytes` at `quality` went out.
    pub fn on_frame_sent(&mut self, bytes: usize, quality: u8) {
        self.sent_now += 1;
        // Normalised to the current quality, so a frame encoded before a
        // change still teaches the right size.
        let b = bytes as f64 * size_ratio(quality, self.quality);
        self.frame_bytes = Some(match self.frame_bytes {
            Some(m) => m + 0.2 * (b - m),
            None => b,
        });
    }

    /// A frame was ready but the link was not (the gate was closed).
    pub fn on_blocked(&mut self) {
        self.blocked_now += 1;
    }

    /// When [`QualityControl::poll`] wants to run next.
    pub fn next_deadline(&self) -> Instant {
        self.last_decision + PERIOD
    }

    /// What the socket did: `delivered` bytes have left it in total on
    /// this connection (sent − unsent), `unsent` are still in the kernel,
    /// and the kernel's own delivery rate in bytes per second, where it
    /// reports one. Called whenever the session looks (every loop).
    pub fn on_sample(
        &mut self,
        now: Instant,
        delivered: u64,
        unsent: usize,
        kernel_rate: Option<f64>,
    ) {
        if let Some(k) = kernel_rate.filter(|k| k.is_finite() && *k > 0.0) {
            self.kernel_now = Some(self.kernel_now.map_or(k, |m| m.max(k)));
        }
        if let Some((t, d, u)) = self.last_sample {
            // Busy from the last look to this one: what left meanwhile left
            // at the link's pace. (Busy at one end only, the link may have
            // idled in between: that would read the link as slow as the
            // frames.)
            if u > 0 && unsent > 0 && delivered > d {
                self.busy_bytes += delivered - d;
                self.busy_secs += now.saturating_duration_since(t).as_secs_f64();
            }
        }
        self.last_sample = Some((now, delivered, unsent));
    }

    /// Decides, if a period has passed. Returns the new quality when it
    /// changed.
    pub fn poll(&mut self, now: Instant) -> Option<u8> {
        if now.saturating_duration_since(self.last_decision) < PERIOD {
            return None;
        }
        self.last_decision = now;
        // Busy long enough to mean something (a few ms of one burst would
        // not).
        let busy = (self.busy_secs >= 0.02).then(|| self.busy_bytes as f64 / self.busy_secs);
        if let Some(k) = self.kernel_now.take() {
            self.kernel = Some(self.kernel.map_or(k, |m| m + RATE_ALPHA * (k - m)));
        }
        if let Some(sample) = busy {
            // Faster up than down: a link that recovered should be used
            // soon; a slower one shows as congestion anyway.
            self.rate = Some(match self.rate {
                Some(r) if sample > r => r + 2.0 * RATE_ALPHA * (sample - r),
                Some(r) => r + RATE_ALPHA * (sample - r),
                None => sample,
            });
        }
        self.busy_bytes = 0;
        self.busy_secs = 0.0;
        let (blocked, sent) = (self.blocked_now, self.sent_now);
        self.blocked_now = 0;
        self.sent_now = 0;
        if self.mode != AdaptMode::Quality {
            return None;
        }
        let draining = self.grace_until.is_some_and(|t| now < t);
        if blocked > 0 {
            self.calm_since = now;
            // The frames of a probe just undone still drain: not news.
            if !draining {
                self.congested_periods += 1;
            }
        } else {
            self.congested_periods = 0;
        }
        if self.recall.is_some_and(|r| {
            self.quality >= r.quality || now.saturating_duration_since(r.at) >= RECALL_FOR
        }) {
            self.recall = None;
        }
        if blocked == 0
            && self.probe.is_none()
            && now.saturating_duration_since(self.steady_since) >= RECALL_HELD
        {
            self.good = Some(self.quality);
        }
        let before = self.quality;
        let fit = self.fitting(HEADROOM);
        // A probe fails at the first sign of a queue (it only has to be
        // undone); the quality it came from, only on lasting congestion.
        let probe_failed = blocked > 0
            && !draining
            && self
                .probe
                .is_some_and(|p| !p.recall && now.saturating_duration_since(p.at) < PROBE_JUDGE);
        if probe_failed {
            self.undo_probe(now);
        } else if self.congested_periods >= 2 {
            self.congested_periods = 0;
            self.on_congestion(now, fit);
        } else if blocked == 0 && sent > 0 && self.quality < self.max {
            self.on_calm(now, fit);
        }
        (self.quality != before).then_some(self.quality)
    }

    /// A probe made frames wait: back to where it came from, and the next
    /// waits longer.
    fn undo_probe(&mut self, now: Instant) {
        if let Some(p) = self.probe.take() {
            self.note_slow_failure();
            self.hold_ceiling(now);
            self.set(p.from.max(self.min), "probe failed");
            self.probe_wait = (self.probe_wait * 2).min(self.longest_wait(now));
            self.grace_until = Some(now + DRAIN_GRACE);
            self.congested_periods = 0;
        }
        self.after_congestion();
    }

    /// Frames waited for two periods: the quality is too high for the link.
    fn on_congestion(&mut self, now: Instant, fit: Option<u8>) {
        // The link got slower by itself (not a jump back that was too
        // much): remember what it carried before; it may come back.
        let jumped = self.probe.take().is_some_and(|p| p.recall);
        // (A mild excess in a calm moment is the quality's fault; a
        // step down that did not help is the link's.)
        let descending = now.saturating_duration_since(self.steady_since) < PROBE_JUDGE;
        let slower = !jumped && (descending || !self.slightly_over());
        if let Some(good) = self.good.filter(|_| slower) {
            let (quality, slow_limit) = self
                .recall
                .map_or((good, u8::MAX), |r| (r.quality.max(good), r.slow_limit));
            // The link is faster again once it carries a quality that
            // the slow link's measured rate would not.
            let beyond = self.fitting(1.0).map_or(quality, |f| f.saturating_add(1));
            self.recall = Some(Recall {
                quality,
                at: now,
                slow_limit: slow_limit.min(beyond),
            });
        }
        self.probe_wait = self.probe_wait.min(self.longest_wait(now));
        self.back_off(now, fit);
        self.after_congestion();
    }

    /// Nothing waited: judge the probe under way, and look for room.
    fn on_calm(&mut self, now: Instant, fit: Option<u8>) {
        if let Some(p) = self.probe {
            if now.saturating_duration_since(p.at) >= PROBE_JUDGE {
                // It held.
                self.probe = None;
                self.steady_since = p.at;
                // Back where it was: probe no sooner than then.
                self.probe_wait = if p.recall { HOLD_FIRST } else { PROBE_CALM };
                let at_limit = self.ceiling.is_some_and(|c| self.quality >= c.quality);
                match self.recall {
                    // Past what the link carried while slow: it carries
                    // more again, so straight back to what it carried
                    // before.
                    Some(r) if r.quality > self.quality && self.quality >= r.slow_limit => {
                        self.recall = None;
                        self.ceiling = None;
                        self.start_probe(now, r.quality.min(self.max), true, "link recovered");
                        self.steady_since = now;
                    }
                    // At a quality that failed before: once it has held
                    // a while longer, it no longer stands in the way.
                    _ if at_limit => {}
                    // Below any known limit: the next step may be larger.
                    _ => self.probe_step = (self.probe_step * 2).min(PROBE_STEP_MAX),
                }
            }
        }
        if self.ceiling.is_some_and(|c| {
            self.probe.is_none()
                && self.quality >= c.quality
                && now.saturating_duration_since(self.steady_since) >= CEILING_PROVEN
        }) {
            self.ceiling = None;
        }
        // At most once a minute: a shaper's burst allowance makes the
        // kernel's rate leap whenever frames get small, which would
        // otherwise keep the probes coming.
        let hint_ok = self
            .kernel_hint
            .is_none_or(|t| now.saturating_duration_since(t) >= HOLD_MAX);
        if let Some(k) = self.kernel {
            if hint_ok && self.kernel_at_fail > 0.0 && k > KERNEL_FASTER * self.kernel_at_fail {
                self.probe_wait = PROBE_CALM;
                self.kernel_at_fail = k;
                self.kernel_hint = Some(now);
            }
        }
        if self.probe.is_none() {
            match fit {
                // The capacity shows room: up to what fits (hysteresis:
                // a few steps, so that noise does not move it), judged
                // like any probe.
                Some(q)
                    if q >= self.quality.saturating_add(3)
                        || (q == self.max && q > self.quality) =>
                {
                    // Clearly more than when a quality last failed.
                    if self
                        .ceiling
                        .is_some_and(|c| self.rate.unwrap_or(0.0) >= 1.25 * c.rate)
                    {
                        self.ceiling = None;
                    }
                    let q = q.min(self.quality.saturating_add(4 * PROBE_STEP));
                    self.probe_to(now, q, "measured room");
                }
                // No room measured, which may only mean that the frames
                // drained between looks: probe after a calm while (soon
                // when the kernel saw the link get faster).
                _ if now.saturating_duration_since(self.calm_since) >= self.probe_wait => {
                    let q = self.quality.saturating_add(self.probe_step);
                    self.probe_to(now, q, "probe");
                }
                _ => {}
            }
        }
    }

    /// The highest quality whose frames fit `share` of the measured
    /// capacity, within the configured range.
    fn fitting(&self, share: f64) -> Option<u8> {
        let (rate, frame) = (self.rate?, self.frame_bytes?);
        let budget = rate * share / self.fps;
        let mut q = self.max;
        while q > self.min && frame * size_ratio(self.quality, q) > budget {
            q -= 1;
        }
        Some(q)
    }

    /// The longest the controller waits to probe or holds a ceiling: short
    /// while the link recently carried more (it may come back any moment),
    /// else up to a minute.
    fn longest_wait(&self, now: Instant) -> Duration {
        match self.recall {
            Some(r) if now.saturating_duration_since(r.at) < RECALL_FOR => RECALL_WAIT,
            _ => HOLD_MAX,
        }
    }

    /// After any congestion the next probe starts small, and the kernel's
    /// rate now is what a faster link must beat.
    fn after_congestion(&mut self) {
        self.probe_step = PROBE_STEP;
        self.kernel_at_fail = self.kernel.unwrap_or(0.0);
    }

    /// While the link is slow, the qualities that congest it bound what it
    /// carries: one above that holding means the link is back.
    fn note_slow_failure(&mut self) {
        if let Some(r) = &mut self.recall {
            r.slow_limit = r.slow_limit.min(self.quality);
        }
    }

    /// The current quality congested the link: out of reach for a while,
    /// longer each time it fails again.
    fn hold_ceiling(&mut self, now: Instant) {
        let confirms = match self.ceiling {
            // Failing again at or below the known limit confirms it.
            Some(c) => self.quality <= c.quality,
            // So does failing again soon after a limit held a while.
            None => self
                .last_fail
                .is_some_and(|t| now.saturating_duration_since(t) < HOLD_MAX),
        };
        let hold = if confirms { self.hold * 2 } else { HOLD_FIRST };
        self.hold = hold.min(self.longest_wait(now));
        self.last_fail = Some(now);
        self.ceiling = Some(Ceiling {
            quality: self.quality,
            until: now + self.hold,
            rate: self.rate.unwrap_or(0.0),
        });
    }

    /// Congested at the current quality: down to what fits, at least a step.
    fn back_off(&mut self, now: Instant, fit: Option<u8>) {
        // Falling, the queue of the last quality still drains: only a
        // quality that held before it congested marks the link's limit.
        let held = now.saturating_duration_since(self.steady_since) >= PROBE_JUDGE;
        self.steady_since = now;
        self.note_slow_failure();
        if self.quality <= self.min {
            return; // the frame rate gives way
        }
        // Still congested after the last step down: larger steps, as a
        // measured rate that lags the link would take many.
        self.down_step = if held {
            self.hold_ceiling(now);
            PROBE_STEP
        } else {
            (self.down_step * 2).min(PROBE_STEP_MAX)
        };
        let step_down = self.quality.saturating_sub(self.down_step).max(self.min);
        // Frames a little too large for the link need a step, not the
        // whole headroom (that would only invite the next probe).
        let q = match fit {
            Some(f) if !self.slightly_over() => f.min(step_down),
            _ => step_down,
        };
        self.set(q, "link congested");
        self.calm_since = now;
    }

    /// Whether the frames exceed the measured capacity by less than the
    /// headroom: the link is where it was, the quality a little high.
    fn slightly_over(&self) -> bool {
        match (self.rate, self.frame_bytes) {
            (Some(rate), Some(frame)) => frame * self.fps * HEADROOM < rate,
            _ => false,
        }
    }

    /// Up to `q` to see whether the link carries it, but not near a
    /// quality that failed while it is held, and then not past it (until
    /// a probe reaches it and holds).
    fn probe_to(&mut self, now: Instant, q: u8, reason: &'static str) {
        let mut q = q.min(self.max);
        let mut to_ceiling = false;
        if let Some(c) = self.ceiling {
            if self.quality >= c.quality {
                return;
            }
            if now < c.until {
                // Held: not near it.
                q = q.min(c.quality.saturating_sub(PROBE_STEP));
            }
            q = q.min(c.quality);
            // A wide gap to it is halved first: the limit is somewhere in
            // between.
            if q == c.quality && q >= self.quality.saturating_add(2 * PROBE_STEP) {
                q = self.quality + (q - self.quality) / 2;
            }
            to_ceiling = q == c.quality;
        }
        // A step of one is lost in the noise of frame sizes, unless it is
        // all there is to try.
        if q >= self.quality.saturating_add(2)
            || ((q == self.max || to_ceiling) && q > self.quality)
        {
            self.start_probe(now, q, false, reason);
        }
    }

    /// Up to `q` from here, judged as a probe from now on.
    fn start_probe(&mut self, now: Instant, q: u8, recall: bool, reason: &'static str) {
        self.probe = Some(Probe {
            at: now,
            from: self.quality,
            recall,
        });
        self.set(q, reason);
        self.calm_since = now;
    }

    fn set(&mut self, q: u8, reason: &'static str) {
        if q != self.quality {
            self.reason = reason;
            if let Some(b) = self.frame_bytes {
                self.frame_bytes = Some(b * size_ratio(self.quality, q));
            }
            self.quality = q;
            self.changes += 1;
        }
    }
}

#[cfg(test)]
mod tests;
