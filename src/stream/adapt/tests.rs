//! The controller against a simulated link: a camera at a fixed frame rate
//! whose frame sizes follow the quality, a latest-frame slot, a socket whose
//! unsent bytes drain at the link's rate, and the flow control's rule that
//! the next frame waits while more than half a frame is unsent.

use super::*;

/// Bytes of a frame at quality 80 (the natural 640×480 frame: BENCHMARKS.md).
const FRAME_AT_80: f64 = 37_500.0;

struct Sim {
    now: Instant,
    start: Instant,
    /// Link capacity in bytes per second, as a function of seconds.
    rate: Box<dyn Fn(f64) -> f64>,
    fps: u32,
    unsent: f64,
    sent_total: f64,
    slot: Option<(Instant, usize)>,
    /// Frames in the socket: (capture time, bytes still ahead of its end,
    /// bytes, when it reached the head of the queue).
    queue: std::collections::VecDeque<(Instant, f64, f64, Instant)>,
    /// The kernel's delivery rate (`TCP_INFO`): the last frame's bytes over
    /// the time it took to drain plus a round trip; None: not reported.
    kernel_rate: Option<f64>,
    reports_rate: bool,
    delivered: u64,
    dropped: u64,
    latencies: Vec<Duration>,
    qualities: Vec<(f64, u8)>,
    next_frame: Instant,
    /// The session looks at its socket only when it wakes (a frame came,
    /// or it sent one), as the real one does; else every millisecond.
    coarse: bool,
    /// A token bucket's burst in bytes (`tc tbf ... burst`): this much may
    /// leave at once after a pause; and the tokens it holds now.
    burst: f64,
    tokens: f64,
    /// Frame sizes relative to the 640×480 frame (1280×720: about 2.9).
    frame_scale: f64,
}

impl Sim {
    fn new(fps: u32, rate: impl Fn(f64) -> f64 + 'static) -> Sim {
        let now = Instant::now();
        Sim {
            now,
            start: now,
            rate: Box::new(rate),
            fps,
            unsent: 0.0,
            sent_total: 0.0,
            slot: None,
            queue: Default::default(),
            delivered: 0,
            dropped: 0,
            latencies: Vec::new(),
            qualities: Vec::new(),
            next_frame: now,
            coarse: false,
            kernel_rate: None,
            reports_rate: false,
            burst: 0.0,
            tokens: 0.0,
            frame_scale: 1.0,
        }
    }

    /// The bench's shaped link: `tc tbf rate R burst 16kb`, a session that
    /// looks when it wakes, a kernel that reports its delivery rate.
    fn tbf(fps: u32, rate: impl Fn(f64) -> f64 + 'static) -> Sim {
        Sim {
            burst: 16_384.0,
            ..Sim::coarse(fps, true, rate)
        }
    }

    /// The same, looking at the socket only when the session would wake;
    /// `kernel`: the kernel reports its delivery rate.
    fn coarse(fps: u32, kernel: bool, rate: impl Fn(f64) -> f64 + 'static) -> Sim {
        Sim {
            coarse: true,
            reports_rate: kernel,
            ..Sim::new(fps, rate)
        }
    }

    fn secs(&self) -> f64 {
        self.now.duration_since(self.start).as_secs_f64()
    }

    /// Runs `secs` of simulated time in 1 ms steps.
    fn run(&mut self, qc: &mut QualityControl, secs: f64) {
        let step = Duration::from_millis(1);
        let end = self.secs() + secs;
        let mut seed = 7u32;
        while self.secs() < end {
            self.now += step;
            // The link drains.
            let fill = (self.rate)(self.secs()) * step.as_secs_f64();
            self.tokens = (self.tokens + fill).min(self.burst.max(fill));
            let mut budget = self.tokens.min(self.unsent);
            self.tokens -= budget;
            self.unsent -= budget;
            while let Some((t, left, bytes, head)) = self.queue.front_mut() {
                if *left <= budget {
                    budget -= *left;
                    self.latencies.push(self.now.duration_since(*t));
                    self.delivered += 1;
                    if self.reports_rate {
                        let took = self.now.duration_since(*head) + Duration::from_millis(10);
                        self.kernel_rate = Some(*bytes / took.as_secs_f64());
                    }
                    self.queue.pop_front();
                    if let Some(next) = self.queue.front_mut() {
                        next.3 = self.now;
                    }
                } else {
                    *left -= budget;
                    break;
                }
            }
            // The camera.
            let mut woke = !self.coarse;
            if self.now >= self.next_frame {
                woke = true;
                self.next_frame += Duration::from_secs(1) / self.fps;
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let noise = 0.9 + 0.2 * f64::from(seed >> 16) / 65536.0;
                let bytes = FRAME_AT_80 * self.frame_scale * size_ratio(80, qc.quality()) * noise;
                if self.slot.replace((self.now, bytes as usize)).is_some() {
                    self.dropped += 1;
                }
            }
            // The session: the flow control's unsent bound.
            if let Some((t, bytes)) = self.slot {
                if self.unsent <= (bytes as f64 / 2.0).max(16_384.0) {
                    self.slot = None;
                    self.unsent += bytes as f64;
                    self.sent_total += bytes as f64;
                    let head = self.now;
                    self.queue.push_back((t, bytes as f64, bytes as f64, head));
                    qc.on_frame_sent(bytes, qc.quality());
                    woke = true;
                } else if woke {
                    qc.on_blocked();
                }
            }
            if woke {
                qc.on_sample(
                    self.now,
                    (self.sent_total - self.unsent) as u64,
                    self.unsent as usize,
                    self.kernel_rate,
                );
            }
            if let Some(q) = qc.poll(self.now) {
                self.qualities.push((self.secs(), q));
            }
        }
    }

    /// Runs a steady minute and checks it live and calm: most frames, p99
    /// within 150 ms, at most 6 quality changes.
    fn assert_steady_minute(&mut self, qc: &mut QualityControl) {
        let (d0, l0, c0) = (self.delivered, self.latencies.len(), qc.changes());
        self.run(qc, 60.0);
        let (fps, p99) = self.since(d0, l0, 60.0);
        assert!(fps >= 27.0, "{fps:.1} frames/s delivered");
        assert!(p99 <= Duration::from_millis(150), "p99 {p99:?}");
        let changes = qc.changes() - c0;
        assert!(
            changes <= 6,
            "{changes} quality changes in a steady minute: {:?}",
            self.qualities
        );
    }

    /// On [`step_8_2_8`] from the start: well down while the link carries
    /// 2 Mbit/s, back to the quality it had before within 10 s of the
    /// recovery, then a steady minute.
    fn assert_back_after_slow_spell(&mut self, qc: &mut QualityControl) {
        self.run(qc, 20.0);
        let before = qc.quality();
        assert!(before > 40, "8 Mbit/s: quality {before}");
        self.run(qc, 20.0);
        let low = qc.quality();
        assert!(
            low + 10 < before,
            "2 Mbit/s: {low} (was {before}): {:?}",
            self.qualities
        );
        self.run(qc, 10.0);
        assert!(
            qc.quality() + PROBE_STEP >= before,
            "10 s after recovery: {} (was {before}): {:?}",
            qc.quality(),
            self.qualities
        );
        self.run(qc, 10.0);
        self.assert_steady_minute(qc);
    }

    /// Delivered frames per second and the p99 latency since `from` counts.
    fn since(&self, delivered_before: u64, lat_before: usize, secs: f64) -> (f64, Duration) {
        let fps = (self.delivered - delivered_before) as f64 / secs;
        let mut l: Vec<Duration> = self.latencies[lat_before..].to_vec();
        l.sort();
        let p99 = l.get(l.len() * 99 / 100).copied().unwrap_or_default();
        (fps, p99)
    }
}

const MBIT: f64 = 1e6 / 8.0;

/// A link of 8 Mbit/s that carries 2 from 20 s to 40 s.
fn step_8_2_8(t: f64) -> f64 {
    if (20.0..40.0).contains(&t) {
        2.0 * MBIT
    } else {
        8.0 * MBIT
    }
}

#[test]
fn a_slow_link_settles_below_the_configured_quality_and_delivers_most_frames() {
    let mut sim = Sim::new(30, |_| 4.0 * MBIT);
    let mut qc = QualityControl::new(AdaptMode::Quality, 80, 30, 30, sim.now);
    sim.run(&mut qc, 20.0);
    sim.assert_steady_minute(&mut qc);
    assert!((30..80).contains(&qc.quality()), "quality {}", qc.quality());

    // Without it, the same link delivers about half the frames.
    let mut sim = Sim::new(30, |_| 4.0 * MBIT);
    let mut off = QualityControl::new(AdaptMode::Off, 80, 30, 30, sim.now);
    sim.run(&mut off, 20.0);
    let (d0, l0) = (sim.delivered, sim.latencies.len());
    sim.run(&mut off, 60.0);
    let (fps_off, _) = sim.since(d0, l0, 60.0);
    assert!(fps_off < 20.0, "off: {fps_off:.1} frames/s");
    assert_eq!(off.quality(), 80);
}

#[test]
fn a_fast_link_keeps_the_configured_quality() {
    let mut sim = Sim::new(30, |_| 200.0 * MBIT);
    let mut qc = QualityControl::new(AdaptMode::Quality, 80, 30, 30, sim.now);
    sim.run(&mut qc, 30.0);
    assert_eq!(qc.quality(), 80);
    assert_eq!(qc.changes(), 0, "{:?}", sim.qualities);
    assert!(sim.dropped <= 1);
}

#[test]
fn a_steady_shaped_link_is_left_alone() {
    // tbf's burst lets small frames through at once, so neither the busy
    // time nor the kernel's rate shows the link's real pace.
    for (mbit, at_80) in [(4.0, 1.0), (8.0, 2.9)] {
        let mut sim = Sim::tbf(30, move |_| mbit * MBIT);
        sim.frame_scale = at_80;
        let mut qc = QualityControl::new(AdaptMode::Quality, 80, 20, 30, sim.now);
        sim.run(&mut qc, 15.0);
        sim.assert_steady_minute(&mut qc);
        assert!(qc.quality() < 80, "{mbit} Mbit/s: quality {}", qc.quality());
    }
}

#[test]
fn one_blocked_frame_is_not_congestion() {
    let now = Instant::now();
    let mut qc = QualityControl::new(AdaptMode::Quality, 80, 30, 30, now);
    qc.on_frame_sent(37_500, 80);
    qc.on_blocked();
    let mut t = now;
    for _ in 0..20 {
        t += PERIOD;
        qc.on_frame_sent(37_500, 80);
        assert_eq!(qc.poll(t), None);
    }
    assert_eq!(qc.quality(), 80);
}

#[test]
fn the_quality_returns_when_the_link_recovers() {
    // 8 → 2 → 8 Mbit/s every 20 s, 15 frames/s: 8 Mbit/s carries quality 80.
    let mut sim = Sim::new(15, step_8_2_8);
    let mut qc = QualityControl::new(AdaptMode::Quality, 80, 20, 15, sim.now);
    sim.run(&mut qc, 20.0);
    assert_eq!(qc.quality(), 80);
    sim.run(&mut qc, 20.0);
    assert!(qc.quality() < 60, "2 Mbit/s: quality {}", qc.quality());
    sim.run(&mut qc, 10.0);
    assert_eq!(qc.quality(), 80, "10 s after recovery: {:?}", sim.qualities);
}

#[test]
fn the_quality_climbs_back_when_the_session_looks_only_when_it_wakes() {
    // The real session sees its socket at a frame or a send, not every
    // millisecond: a frame that drains between two looks makes the link
    // look only as fast as the frames. 8 → 2 → 8 Mbit/s, 30 frames/s.
    let mut sim = Sim::coarse(30, true, step_8_2_8);
    let mut qc = QualityControl::new(AdaptMode::Quality, 80, 20, 30, sim.now);
    // (Before the kernel's rate and the probes, it stayed at the floor
    // after the recovery: 20; before the recall, it climbed a step at a
    // time.)
    sim.assert_back_after_slow_spell(&mut qc);
}

#[test]
fn below_the_floor_the_frame_rate_gives_way() {
    let mut sim = Sim::new(30, |_| 1.0 * MBIT);
    let mut qc = QualityControl::new(AdaptMode::Quality, 80, 60, 30, sim.now);
    sim.run(&mut qc, 30.0);
    assert_eq!(qc.quality(), 60);
    assert!(sim.dropped > 100, "{} dropped", sim.dropped);
}

#[test]
fn modes_parse_and_configure() {
    for m in [AdaptMode::Quality, AdaptMode::Fps, AdaptMode::Off] {
        assert_eq!(AdaptMode::parse(m.name()), Some(m));
    }
    assert_eq!(AdaptMode::parse("bitrate"), None);
    let mut qc = QualityControl::new(AdaptMode::Quality, 80, 30, 30, Instant::now());
    qc.configure(AdaptMode::Off, 70, 30, 30);
    assert_eq!(qc.quality(), 70);
}

#[test]
fn after_a_slow_spell_on_a_shaped_link_the_quality_comes_back_at_once() {
    // tbf lets a small frame through at line rate, so no measurement shows
    // that the link is fast again: a probe past what the slow link carried
    // that holds is the sign, and then the quality goes straight back to
    // what the link carried before, not a step at a time.
    for scale in [1.0, 0.5] {
        let mut sim = Sim::tbf(30, step_8_2_8);
        sim.frame_scale = scale;
        let mut qc = QualityControl::new(AdaptMode::Quality, 80, 20, 30, sim.now);
        sim.assert_back_after_slow_spell(&mut qc);
    }
}
