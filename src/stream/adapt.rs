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
//!   slow write is not a reason to react.
//! - The quality chosen is the highest whose frames fit the capacity with
//!   headroom at the target frame rate (frame size against quality follows
//!   libjpeg's quantiser scale, corrected by the sizes actually seen), never
//!   above the configured quality nor below the floor; below the floor the
//!   frame rate gives way, as it does without adaptation.
//! - Down at once on congestion; up when the measured capacity shows room
//!   (a few steps of hysteresis). A link is only measured while frames wait
//!   in it: one whose frames drain between two looks of the session reads
//!   no faster than the frames, so after calm seconds the controller also
//!   probes a step up, with steps that double while probes succeed. A probe
//!   that congests the link goes back at once and the next waits twice as
//!   long (up to a minute), so a steady link settles instead of
//!   oscillating, unless the kernel's per-ack delivery rate (`TCP_INFO`)
//!   shows the link got clearly faster since. A quality that congested the
//!   link stays out of reach for a while unless the capacity clearly grew.

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
/// A probe that congests the link within this long failed.
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
    ceiling: Option<(u8, Instant, f64)>,
    hold: Duration,
    /// The last probe up: when, and the quality before it.
    probe: Option<(Instant, u8)>,
    /// When the last probe failed (its queue still drains for a while).
    probe_failed: Option<Instant>,
    /// Calm needed before the next probe, and its step.
    probe_wait: Duration,
    probe_step: u8,
    changes: u64,
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
            probe: None,
            probe_failed: None,
            probe_wait: PROBE_CALM,
            probe_step: PROBE_STEP,
            changes: 0,
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
        self.set(q);
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
        if blocked > 0 {
            self.congested_periods += 1;
            self.calm_since = now;
        } else {
            self.congested_periods = 0;
        }
        let before = self.quality;
        let fit = self.fitting();
        if self.congested_periods >= 2 {
            self.congested_periods = 0;
            match self.probe.take() {
                // The probe was too much: back to where it came from, and
                // wait longer before the next.
                Some((at, from)) if now.saturating_duration_since(at) < PROBE_JUDGE => {
                    self.hold_ceiling(now);
                    self.set(from.max(self.min));
                    self.probe_wait = (self.probe_wait * 2).min(HOLD_MAX);
                    self.probe_failed = Some(now);
                    self.calm_since = now;
                }
                _ => {
                    self.back_off(now, fit);
                    // The link got slower (not the tail of a failed
                    // probe): probe again soon once it is calm.
                    let tail = self
                        .probe_failed
                        .is_some_and(|t| now.saturating_duration_since(t) < 2 * PROBE_JUDGE);
                    if !tail {
                        self.probe_wait = PROBE_CALM;
                    }
                }
            }
            // Either way the next probe starts small, and the kernel's
            // rate now is what a faster link must beat.
            self.probe_step = PROBE_STEP;
            self.kernel_at_fail = self.kernel.unwrap_or(0.0);
        } else if blocked == 0 && sent > 0 && self.quality < self.max {
            if let Some((at, _)) = self.probe {
                if now.saturating_duration_since(at) >= PROBE_JUDGE {
                    // It held: the next step may be larger.
                    self.probe = None;
                    self.probe_step = (self.probe_step * 2).min(PROBE_STEP_MAX);
                }
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
            match fit {
                // The capacity shows room: up to what fits (hysteresis: a
                // few steps, so that noise does not move it).
                Some(q)
                    if q >= self.quality.saturating_add(3)
                        || (q == self.max && q > self.quality) =>
                {
                    let q = q.min(self.quality.saturating_add(4 * PROBE_STEP));
                    let q = match self.ceiling {
                        Some((c, until, at))
                            if now < until && self.rate.unwrap_or(0.0) < 1.25 * at =>
                        {
                            q.min(c.saturating_sub(1))
                        }
                        _ => q,
                    };
                    if q > self.quality {
                        self.set(q);
                        self.calm_since = now;
                    }
                }
                // No room measured, which may only mean that the frames
                // drained between looks: probe after a calm while (soon
                // when the kernel saw the link get faster).
                _ if self.probe.is_none()
                    && now.saturating_duration_since(self.calm_since) >= self.probe_wait =>
                {
                    self.probe(now)
                }
                _ => {}
            }
        }
        (self.quality != before).then_some(self.quality)
    }

    /// The highest quality whose frames fit the measured capacity with
    /// headroom, within the configured range.
    fn fitting(&self) -> Option<u8> {
        let (rate, frame) = (self.rate?, self.frame_bytes?);
        let budget = rate * HEADROOM / self.fps;
        let mut q = self.max;
        while q > self.min && frame * size_ratio(self.quality, q) > budget {
            q -= 1;
        }
        Some(q)
    }

    /// The current quality congested the link: out of reach for a while,
    /// longer each time it fails again.
    fn hold_ceiling(&mut self, now: Instant) {
        match self.ceiling {
            Some((q, ..)) if q == self.quality => self.hold = (self.hold * 2).min(HOLD_MAX),
            _ => self.hold = HOLD_FIRST,
        }
        self.ceiling = Some((self.quality, now + self.hold, self.rate.unwrap_or(0.0)));
    }

    /// Congested at the current quality: down to what fits, at least a step.
    fn back_off(&mut self, now: Instant, fit: Option<u8>) {
        if self.quality <= self.min {
            return; // the frame rate gives way
        }
        self.hold_ceiling(now);
        let step_down = self.quality.saturating_sub(PROBE_STEP).max(self.min);
        self.set(fit.map_or(step_down, |f| f.min(step_down)));
        self.calm_since = now;
    }

    /// Calm: one step up, but not onto a quality still held.
    fn probe(&mut self, now: Instant) {
        let mut q = self.quality.saturating_add(self.probe_step).min(self.max);
        if let Some((ceiling, until, _)) = self.ceiling {
            if now < until {
                q = q.min(ceiling.saturating_sub(1));
            } else {
                self.ceiling = None;
            }
        }
        if q > self.quality {
            self.probe = Some((now, self.quality));
            self.set(q);
            self.calm_since = now;
        }
    }

    fn set(&mut self, q: u8) {
        if q != self.quality {
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
