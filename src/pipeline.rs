//! What the capture thread and the stream thread share: the latest-frame
//! slot, the live controls the relay may change, and the counters behind the
//! stats line and the `stats` message.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::{AdaptMode, SourceConfig, SourceKind};
use crate::slot::{Slot, Waker};
use crate::wire::message::ControlValue;

/// What puts the JPEG quality into the frames, as the capture thread found
/// at the source's last open: where there is none, following the link
/// (`relay.adapt = "quality"`) falls back to the frame rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum QualityKnob {
    /// zerocam's encoder (software or the hardware M2M one).
    Encoder = 0,
    /// The camera's own JPEG quality control (MJPEG passed through).
    CameraControl = 1,
    /// Nothing: the camera's JPEG passes through as it made it.
    None = 2,
}

/// Settings the relay can change while streaming (`pause`, `resume`, `set`).
#[derive(Debug)]
pub struct Controls {
    paused: AtomicBool,
    fps: AtomicU32,
    quality: AtomicU8,
    /// What follows the link (`relay.adapt`), as `AdaptMode as u8`.
    adapt: AtomicU8,
    /// `source.min_quality`.
    min_quality: AtomicU8,
    /// The quality the link allows now (0: no limit): the stream thread's
    /// controller sets it, the encoder reads it.
    link_quality: AtomicU8,
    /// The link's measured rate in kbit/s (0: not measured).
    link_kbit_s: AtomicU32,
    /// [`QualityKnob`] as u8.
    knob: AtomicU8,
    shutdown: AtomicBool,
}

impl Controls {
    pub fn new(fps: u32, quality: u8) -> Controls {
        Controls {
            paused: AtomicBool::new(false),
            fps: AtomicU32::new(fps),
            quality: AtomicU8::new(quality),
            adapt: AtomicU8::new(AdaptMode::Quality as u8),
            min_quality: AtomicU8::new(quality.min(20)),
            link_quality: AtomicU8::new(0),
            link_kbit_s: AtomicU32::new(0),
            knob: AtomicU8::new(QualityKnob::Encoder as u8),
            shutdown: AtomicBool::new(false),
        }
    }
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }
    pub fn set_paused(&self, p: bool) {
        self.paused.store(p, Ordering::Relaxed)
    }
    pub fn fps(&self) -> u32 {
        self.fps.load(Ordering::Relaxed)
    }
    pub fn set_fps(&self, fps: u32) {
        self.fps.store(fps, Ordering::Relaxed)
    }
    pub fn quality(&self) -> u8 {
        self.quality.load(Ordering::Relaxed)
    }
    pub fn set_quality(&self, q: u8) {
        self.quality.store(q, Ordering::Relaxed)
    }
    /// The quality frames are encoded at now: the configured one, or less
    /// when the link allows less.
    pub fn encode_quality(&self) -> u8 {
        match self.link_quality.load(Ordering::Relaxed) {
            0 => self.quality(),
            l => l.min(self.quality()),
        }
    }
    /// The link's limit (`None`: none) and measured rate.
    pub fn set_link(&self, quality: Option<u8>, kbit_s: Option<f64>) {
        self.link_quality
            .store(quality.unwrap_or(0), Ordering::Relaxed);
        self.link_kbit_s
            .store(kbit_s.map_or(0, |k| k.round() as u32), Ordering::Relaxed);
    }
    /// The link's measured rate in kbit/s, once measured.
    pub fn link_kbit_s(&self) -> Option<u32> {
        Some(self.link_kbit_s.load(Ordering::Relaxed)).filter(|&k| k > 0)
    }
    pub fn adapt(&self) -> AdaptMode {
        match self.adapt.load(Ordering::Relaxed) {
            x if x == AdaptMode::Fps as u8 => AdaptMode::Fps,
            x if x == AdaptMode::Off as u8 => AdaptMode::Off,
            _ => AdaptMode::Quality,
        }
    }
    pub fn set_adapt(&self, mode: AdaptMode) {
        self.adapt.store(mode as u8, Ordering::Relaxed)
    }
    pub fn quality_knob(&self) -> QualityKnob {
        match self.knob.load(Ordering::Relaxed) {
            x if x == QualityKnob::CameraControl as u8 => QualityKnob::CameraControl,
            x if x == QualityKnob::None as u8 => QualityKnob::None,
            _ => QualityKnob::Encoder,
        }
    }
    pub fn set_quality_knob(&self, knob: QualityKnob) {
        self.knob.store(knob as u8, Ordering::Relaxed)
    }
    /// What follows the link in fact: `relay.adapt`, except that quality
    /// falls back to the frame rate when nothing can change the quality.
    pub fn effective_adapt(&self) -> AdaptMode {
        match (self.adapt(), self.quality_knob()) {
            (AdaptMode::Quality, QualityKnob::None) => AdaptMode::Fps,
            (mode, _) => mode,
        }
    }
    pub fn min_quality(&self) -> u8 {
        self.min_quality.load(Ordering::Relaxed)
    }
    pub fn set_min_quality(&self, q: u8) {
        self.min_quality.store(q, Ordering::Relaxed)
    }
    /// Has a shutdown been asked for (SIGTERM/SIGINT)?
    pub fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }
    pub fn request_shutdown(&self) {
        self.shutdown.store(true, Ordering::Relaxed)
    }
}

/// Image-control requests from the relay (stream thread) to the source
/// (capture thread), and the source's answer: the controls it has and
/// their values, read back from the device.
#[derive(Debug, Default)]
pub struct ControlDesk {
    requests: Mutex<Vec<(String, ControlValue)>>,
    report: Mutex<ControlReport>,
    /// Bumped every time the capture thread publishes a report.
    version: AtomicU64,
}

/// The controls a source has now, as `settings` carries them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ControlReport {
    /// name → current value.
    pub values: Map<String, Value>,
    /// name → type and range.
    pub ranges: Map<String, Value>,
}

impl ControlDesk {
    /// Queues controls to set (the stream thread, on `set`). Bounded: a
    /// relay that floods `set`s cannot grow this past a few hundred.
    pub fn request(&self, controls: Vec<(String, ControlValue)>) {
        let mut q = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        q.extend(controls);
        let excess = q.len().saturating_sub(256);
        q.drain(..excess);
    }

    /// Takes the queued requests (the capture thread).
    pub fn take_requests(&self) -> Vec<(String, ControlValue)> {
        std::mem::take(&mut *self.requests.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Publishes what the source has now (the capture thread).
    pub fn publish(&self, report: ControlReport) {
        *self.report.lock().unwrap_or_else(|p| p.into_inner()) = report;
        self.version.fetch_add(1, Ordering::Relaxed);
    }

    /// The last published report.
    pub fn report(&self) -> ControlReport {
        self.report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many reports have been published.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }
}

/// How many recent encode times are kept for the p50/p99 figures.
const ENCODE_SAMPLES: usize = 256;

/// Monotonic counters; read with [`Counters::snapshot`].
#[derive(Debug, Default)]
pub struct Counters {
    /// Frames the camera captured to stream: put in the slot, or skipped as
    /// stale. Each is, in the end, sent or dropped (see [`Slot::dropped`]).
    ///
    /// [`Slot::dropped`]: crate::slot::Slot::dropped
    pub captured: AtomicU64,
    /// Frames handed to the socket.
    pub sent: AtomicU64,
    /// JPEG bytes handed to the socket.
    pub bytes_sent: AtomicU64,
    /// Source frames rejected as corrupt or truncated (never forwarded).
    pub corrupt: AtomicU64,
    /// Frames that could not be encoded.
    pub encode_errors: AtomicU64,
    /// Source failures (device lost, read errors), each followed by a reopen.
    pub source_errors: AtomicU64,
    /// Successful connections after the first.
    pub reconnects: AtomicU64,
    /// Connection attempts that failed (refused, unreachable, timed out).
    pub connect_failures: AtomicU64,
    /// Times the hardware encoder failed and software took over.
    pub encoder_fallbacks: AtomicU64,
    /// Frames the driver had ready that were skipped for a newer one
    /// (stale by the time the encoder was free); never sent.
    pub stale: AtomicU64,
    /// Recent encode (or pass-through) durations, microseconds.
    encode_us: Mutex<Vec<u32>>,
}

impl Counters {
    /// Records one encode (or pass-through) duration.
    pub fn record_encode_us(&self, us: u32) {
        let mut v = self.encode_us.lock().unwrap_or_else(|p| p.into_inner());
        if v.len() >= ENCODE_SAMPLES {
            v.remove(0);
        }
        v.push(us);
    }

    /// p50 and p99 of the recent encode times, in milliseconds.
    pub fn encode_ms_percentiles(&self) -> (f64, f64) {
        let mut v = self
            .encode_us
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if v.is_empty() {
            return (0.0, 0.0);
        }
        v.sort_unstable();
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
        (at(0.50), at(0.99))
    }
}

/// What the link is doing, for the status LED and the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LinkState {
    /// Not connected yet, or reconnecting (also: not joined yet).
    Connecting = 0,
    /// Connected and sending frames.
    Streaming = 1,
    /// Connected, paused by the relay.
    Paused = 2,
    /// Refused (auth) or the source is failing.
    Error = 3,
}

/// Liveness of the pipeline's threads: each loop "beats" every iteration, so
/// a thread stuck in a syscall stops beating. The systemd watchdog is fed
/// only while both beat (see `device`).
#[derive(Debug)]
pub struct Health {
    start: Instant,
    link: AtomicU8,
    source_ok: AtomicBool,
    capture_beat_ms: AtomicU64,
    stream_beat_ms: AtomicU64,
}

impl Health {
    fn new() -> Health {
        Health {
            start: Instant::now(),
            link: AtomicU8::new(LinkState::Connecting as u8),
            source_ok: AtomicBool::new(false),
            capture_beat_ms: AtomicU64::new(0),
            stream_beat_ms: AtomicU64::new(0),
        }
    }
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
    pub fn set_link(&self, s: LinkState) {
        self.link.store(s as u8, Ordering::Relaxed)
    }
    pub fn link(&self) -> LinkState {
        match self.link.load(Ordering::Relaxed) {
            1 => LinkState::Streaming,
            2 => LinkState::Paused,
            3 => LinkState::Error,
            _ => LinkState::Connecting,
        }
    }
    /// The source is open and delivering (false while it is being reopened).
    pub fn set_source_ok(&self, ok: bool) {
        self.source_ok.store(ok, Ordering::Relaxed)
    }
    pub fn source_ok(&self) -> bool {
        self.source_ok.load(Ordering::Relaxed)
    }
    /// Called by the capture thread on every loop iteration.
    pub fn beat_capture(&self) {
        self.capture_beat_ms.store(self.now_ms(), Ordering::Relaxed)
    }
    /// Called by the stream thread on every loop iteration.
    pub fn beat_stream(&self) {
        self.stream_beat_ms.store(self.now_ms(), Ordering::Relaxed)
    }
    /// Time since the capture thread last beat.
    pub fn capture_age(&self) -> Duration {
        Duration::from_millis(
            self.now_ms()
                .saturating_sub(self.capture_beat_ms.load(Ordering::Relaxed)),
        )
    }
    /// Time since the stream thread last beat.
    pub fn stream_age(&self) -> Duration {
        Duration::from_millis(
            self.now_ms()
                .saturating_sub(self.stream_beat_ms.load(Ordering::Relaxed)),
        )
    }
}

/// What the source is delivering, for `hello` and the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    /// `mjpeg`, `yuyv`, `nv12`, `yu12` or `pattern`.
    pub format: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

/// Everything the pipeline's threads share.
#[derive(Debug)]
pub struct Pipeline {
    pub slot: Slot,
    pub controls: Controls,
    /// Image controls between the relay and the source.
    pub desk: ControlDesk,
    pub counters: Counters,
    pub waker: Arc<Waker>,
    pub health: Health,
    source: Mutex<SourceInfo>,
    /// Why the source delivers nothing, while it does not (for the stats line).
    source_error: Mutex<Option<String>>,
    /// A failure no retry can fix, found by a pipeline thread: the process
    /// stops and exits non-zero with this message.
    fatal: Mutex<Option<String>>,
}

impl Pipeline {
    /// A pipeline for `source`: until the capture thread reports what the
    /// device granted, `source_info` says what was requested.
    pub fn for_source(source: &SourceConfig) -> std::io::Result<Arc<Pipeline>> {
        let format = match &source.kind {
            SourceKind::Device(_) | SourceKind::Exec(_) => "unknown".to_string(),
            pattern => pattern.to_string(),
        };
        let requested = SourceInfo {
            format,
            width: source.width,
            height: source.height,
            fps: source.fps,
        };
        let p = Pipeline::new(requested, source.quality)?;
        p.controls.set_min_quality(source.min_quality);
        Ok(p)
    }

    /// `requested` describes the source until it reports what it granted.
    pub fn new(requested: SourceInfo, quality: u8) -> std::io::Result<Arc<Pipeline>> {
        let waker = Arc::new(Waker::new()?);
        Ok(Arc::new(Pipeline {
            slot: Slot::new(waker.clone()),
            controls: Controls::new(requested.fps, quality),
            desk: ControlDesk::default(),
            counters: Counters::default(),
            waker,
            health: Health::new(),
            source: Mutex::new(requested),
            source_error: Mutex::new(None),
            fatal: Mutex::new(None),
        }))
    }

    /// What the source delivers (as last reported by the capture thread).
    pub fn source_info(&self) -> SourceInfo {
        self.source
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Called by the capture thread once the device granted a mode.
    pub fn set_source_info(&self, info: SourceInfo) {
        *self.source.lock().unwrap_or_else(|p| p.into_inner()) = info;
    }

    /// Records why the source is failing (`None`: it delivers again).
    pub fn set_source_error(&self, e: Option<String>) {
        *self.source_error.lock().unwrap_or_else(|p| p.into_inner()) = e;
    }

    /// Why the source is failing, if it is.
    pub fn source_error(&self) -> Option<String> {
        self.source_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops the whole pipeline for a reason no retry can fix; `main`
    /// reports it and exits non-zero (so systemd shows the failure).
    pub fn fail(&self, why: String) {
        self.fatal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(why);
        self.controls.request_shutdown();
        self.waker.wake();
    }

    /// The fatal failure, if one stopped the pipeline.
    pub fn fatal(&self) -> Option<String> {
        self.fatal.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The relay said `pause`: no frame captured before now goes out.
    pub fn pause(&self) {
        self.controls.set_paused(true);
        self.slot.pause();
    }

    /// The relay said `resume` (or a new connection starts).
    pub fn resume(&self) {
        self.controls.set_paused(false);
    }

    /// A consistent-enough reading of all counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let c = &self.counters;
        let (p50, p99) = c.encode_ms_percentiles();
        StatsSnapshot {
            captured: c.captured.load(Ordering::Relaxed),
            sent: c.sent.load(Ordering::Relaxed),
            bytes: c.bytes_sent.load(Ordering::Relaxed),
            dropped: self.slot.dropped() + c.stale.load(Ordering::Relaxed),
            corrupt: c.corrupt.load(Ordering::Relaxed),
            source_errors: c.source_errors.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            attempts: c.reconnects.load(Ordering::Relaxed)
                + c.connect_failures.load(Ordering::Relaxed),
            encoder_fallbacks: c.encoder_fallbacks.load(Ordering::Relaxed),
            encode_ms_p50: p50,
            encode_ms_p99: p99,
            fps: self.controls.fps(),
            quality: self.controls.quality(),
            encoding_quality: self.controls.encode_quality(),
            link_kbit_s: self.controls.link_kbit_s().unwrap_or(0),
            paused: self.controls.paused(),
        }
    }
}

/// Counter values at one instant; also the body of the `stats` message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StatsSnapshot {
    pub captured: u64,
    pub sent: u64,
    pub bytes: u64,
    /// Captured frames never sent: slot overwrites, stale driver buffers,
    /// frames from before a pause. Each is a gap in `seq`.
    pub dropped: u64,
    pub corrupt: u64,
    pub source_errors: u64,
    pub reconnects: u64,
    /// Connection attempts after the first, failed or not.
    pub attempts: u64,
    /// Times the hardware encoder failed and software took over.
    pub encoder_fallbacks: u64,
    pub encode_ms_p50: f64,
    pub encode_ms_p99: f64,
    pub fps: u32,
    /// The configured quality (`source.quality`, or the relay's `set`).
    pub quality: u8,
    /// The quality frames are encoded at now (below `quality` while the
    /// link allows less: `relay.adapt`).
    pub encoding_quality: u8,
    /// The link's measured rate in kbit/s; 0 until measured.
    pub link_kbit_s: u32,
    pub paused: bool,
}

/// Rates between two snapshots, for the periodic log line and `stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Rates {
    pub fps_captured: f64,
    pub fps_sent: f64,
    pub kbit_s: f64,
}

impl StatsSnapshot {
    /// Rates from `earlier` to `self` over `secs`.
    pub fn rates_since(&self, earlier: &StatsSnapshot, secs: f64) -> Rates {
        if secs <= 0.0 {
            return Rates::default();
        }
        Rates {
            fps_captured: (self.captured.saturating_sub(earlier.captured)) as f64 / secs,
            fps_sent: (self.sent.saturating_sub(earlier.sent)) as f64 / secs,
            kbit_s: (self.bytes.saturating_sub(earlier.bytes)) as f64 * 8.0 / 1000.0 / secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_over_recent_samples() {
        let c = Counters::default();
        assert_eq!(c.encode_ms_percentiles(), (0.0, 0.0));
        for us in 1..=100 {
            c.record_encode_us(us * 1000);
        }
        let (p50, p99) = c.encode_ms_percentiles();
        assert!((50.0..=51.0).contains(&p50), "{p50}");
        assert!((98.0..=100.0).contains(&p99), "{p99}");
        for _ in 0..ENCODE_SAMPLES {
            c.record_encode_us(2000);
        }
        assert_eq!(c.encode_ms_percentiles(), (2.0, 2.0));
    }

    #[test]
    fn rates() {
        let a = StatsSnapshot::default();
        let b = StatsSnapshot {
            captured: 30,
            sent: 20,
            bytes: 125_000,
            ..a
        };
        let r = b.rates_since(&a, 2.0);
        assert_eq!(r.fps_captured, 15.0);
        assert_eq!(r.fps_sent, 10.0);
        assert_eq!(r.kbit_s, 500.0);
    }
}
