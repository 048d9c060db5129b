//! The capture stage: where frames come from (V4L2 or the test pattern),
//! and the thread that turns them into JPEG frames in the pipeline's slot.

pub mod camera_quality;
pub mod exec;
pub mod mode;
pub mod pattern;
pub mod source_error;
pub mod v4l2;

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use self::source_error::{Kind, Policy, SourceError};
use crate::backoff::Backoff;
use crate::config::{BackoffConfig, ConfigError, SourceConfig, SourceKind};
pub use crate::encode::stage::{FrameData, Granted, SourceFormat, SourceFrame};

use self::camera_quality::CameraQuality;
use crate::encode::stage::{HwOpener, Stage, open_m2m};
use crate::pipeline::{Pipeline, QualityKnob};
use crate::wire::controls::NO_CONTROLS;
use crate::wire::message::ControlValue;

/// What a source delivers.
/// A source of frames: the test pattern or a V4L2 device.
pub trait FrameSource {
    /// The mode in effect.
    fn granted(&self) -> &Granted;
    /// True if the source sleeps to `fps` itself; false if the device
    /// paces and the loop decimates to the live fps.
    fn self_paced(&self) -> bool;
    /// Waits a short while (≤ ~200 ms) for the next frame. `Ok(None)`:
    /// nothing yet, call again. `Err`: the source failed and must be
    /// reopened (a device that stays silent too long is an error too).
    fn next_frame(&mut self, fps: u32) -> io::Result<Option<SourceFrame<'_>>>;
    /// Exports the capture buffers as DMABUF so that frames carry them
    /// ([`SourceFrame::dmabuf`]); how many there are, or `None` when the
    /// source cannot.
    fn export_buffers(&mut self) -> Option<usize> {
        None
    }
    /// Should a pause stop the source (and a resume start it again)?
    /// True for a camera program: stopped, it costs nothing.
    fn stop_when_paused(&self) -> bool {
        false
    }
    /// The image controls the source has, with their current values.
    fn controls(&mut self) -> Vec<crate::wire::controls::ControlInfo> {
        Vec::new()
    }
    /// Sets control `id` to `value` (already checked against its range).
    fn set_control(&mut self, id: u32, value: i64) -> io::Result<()> {
        let _ = (id, value);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this source has no controls",
        ))
    }
}

/// Opens the configured source.
pub fn open(cfg: &SourceConfig) -> Result<Box<dyn FrameSource + Send>, SourceError> {
    Ok(match &cfg.kind {
        SourceKind::Pattern => {
            Box::new(pattern::PatternSource::new(cfg.width, cfg.height, cfg.fps)?)
        }
        SourceKind::PatternScene => Box::new(pattern::PatternSource::scene(
            cfg.width, cfg.height, cfg.fps,
        )?),
        SourceKind::PatternMjpeg => Box::new(pattern::PatternMjpegSource::new(
            cfg.width, cfg.height, cfg.fps,
        )?),
        SourceKind::Device(path) => Box::new(v4l2::V4l2Source::open(
            path, cfg.format, cfg.width, cfg.height, cfg.fps,
        )?),
        SourceKind::Exec(argv) => Box::new(exec::ExecSource::start(
            argv,
            exec::format_of(cfg.format),
            cfg.width,
            cfg.height,
            cfg.fps,
        )?),
    })
}

/// What can be checked of `[source.controls]` before a camera opens: the
/// pattern's own controls in full, and that an `exec:` source (or the
/// MJPEG pattern) has none. A device's are checked when it opens, against
/// what it reports ([`crate::config::controls_checked_at_open`] says when).
/// `stream` and `check-config` both run it before they start.
pub fn check_controls(source: &SourceConfig) -> Result<(), ConfigError> {
    let known = match &source.kind {
        SourceKind::Pattern | SourceKind::PatternScene => pattern::controls(false, false, 0),
        SourceKind::PatternMjpeg | SourceKind::Exec(_) => Vec::new(),
        SourceKind::Device(_) => return Ok(()),
    };
    for (name, v) in &source.controls {
        let key = format!("source.controls.{name}");
        let Some(c) = known.iter().find(|c| &c.name == name) else {
            if known.is_empty() {
                return Err(ConfigError::new(&key, NO_CONTROLS));
            }
            let names: Vec<&str> = known.iter().map(|c| c.name.as_str()).collect();
            return Err(ConfigError::new(
                &key,
                format!("no such control (the pattern has: {})", names.join(", ")),
            ));
        };
        let prefix = format!("control {name}: ");
        c.resolve(v)
            .map_err(|e| ConfigError::new(&key, e.strip_prefix(&prefix).unwrap_or(&e)))?;
    }
    Ok(())
}

/// Reopen pacing for a failing device: quicker than the relay's, since a
/// replugged camera should come back within a second or two.
fn reopen_backoff() -> BackoffConfig {
    BackoffConfig {
        base: Duration::from_millis(250),
        max: Duration::from_secs(5),
        stable_after: Duration::from_secs(10),
    }
}

/// Between retries when a person has to act (permissions, another program
/// holding the device): no point in knocking often.
const SLOW_RETRY: Duration = Duration::from_secs(10);

/// Starts the capture thread: opens the source (reopening with backoff after
/// failures), encodes, and puts frames into the pipeline's slot until
/// shutdown is requested.
pub fn spawn(pipeline: Arc<Pipeline>, cfg: SourceConfig) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("capture".into())
        .spawn(move || run(&pipeline, &cfg, &mut |c| open(c)))
}

/// Sleeps up to `d` in small steps, beating; false if shutdown came first.
fn idle(p: &Pipeline, d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        p.health.beat_capture();
        if p.controls.shutting_down() {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// At start-up, waits up to `cfg.wait_for_device` for the device node
/// (udev may still be creating it at boot).
fn wait_for_node(p: &Pipeline, cfg: &SourceConfig) {
    let SourceKind::Device(path) = &cfg.kind else {
        return;
    };
    if path.exists() || cfg.wait_for_device.is_zero() {
        return;
    }
    log::info!(
        "waiting up to {:.1} s for {} to appear",
        cfg.wait_for_device.as_secs_f64(),
        path.display()
    );
    let end = Instant::now() + cfg.wait_for_device;
    while Instant::now() < end {
        if path.exists() {
            log::info!("{} appeared", path.display());
            return;
        }
        if !idle(p, Duration::from_millis(100)) {
            return;
        }
    }
    log::warn!(
        "{} did not appear within {:.1} s",
        path.display(),
        cfg.wait_for_device.as_secs_f64()
    );
}

/// What the capture loop does about source failures: the retry policy,
/// the reopen backoff, and a log line once per distinct failure.
struct Recovery {
    backoff: Backoff,
    /// The failure last logged, while the source is failing.
    logged: Option<String>,
    ever_opened: bool,
    waits_for_device: bool,
}

impl Recovery {
    /// Handles a failure: stops the pipeline when no retry can help, else
    /// logs (once per distinct message) and waits. False when zerocam is to
    /// stop.
    fn failed(&mut self, p: &Pipeline, cfg: &SourceConfig, e: &SourceError) -> bool {
        let retry = source_error::policy(e.kind, self.ever_opened, self.waits_for_device);
        if retry == Policy::Fatal {
            let hint = match e.kind {
                // A line of its own: each fits a serial console.
                Kind::NoDevice => "\nset source.wait_for_device to wait for it",
                _ => "",
            };
            p.fail(format!("source {}: {e}{hint}", cfg.kind));
            return false;
        }
        p.counters.source_errors.fetch_add(1, Ordering::Relaxed);
        p.health.set_source_ok(false);
        let what = format!("{}: {e}", cfg.kind);
        p.set_source_error(Some(what.clone()));
        if self.logged.as_deref() == Some(what.as_str()) {
            log::debug!("source {what} (retrying)");
        } else {
            // What failed, then what happens next: two lines that each
            // fit a serial console.
            log::warn!("source {what}");
            match retry {
                Policy::RetrySlowly => log::info!("retrying every {} s", SLOW_RETRY.as_secs()),
                _ => log::info!("reopening with backoff"),
            }
            self.logged = Some(what);
        }
        let delay = match retry {
            Policy::RetrySlowly => SLOW_RETRY,
            _ => self.backoff.next_delay(),
        };
        idle(p, delay)
    }

    /// The source opened.
    fn opened(&mut self, p: &Pipeline, cfg: &SourceConfig) {
        self.ever_opened = true;
        if self.logged.take().is_some() {
            log::info!("source {} is back", cfg.kind);
        }
        p.set_source_error(None);
        self.backoff.connected(Instant::now());
    }
}

/// Sets `requests` on `src`, each checked against what the source reports
/// (a refusal is one log line naming the control and what it takes; the
/// rest still apply), then publishes the controls as read back from it.
fn apply_controls(p: &Pipeline, src: &mut dyn FrameSource, requests: Vec<(String, ControlValue)>) {
    let infos = src.controls();
    for (name, v) in requests {
        let Some(c) = infos.iter().find(|c| c.name == name) else {
            let names: Vec<&str> = infos.iter().map(|c| c.name.as_str()).collect();
            if names.is_empty() {
                // An exec: source: its program owns the image.
                log::warn!("control {name}: {NO_CONTROLS}");
            } else {
                log::warn!(
                    "control {name}: no such control (the source has {})",
                    names.join(", ")
                );
            }
            continue;
        };
        match c.resolve(&v) {
            Ok(x) => match src.set_control(c.id, x) {
                Ok(()) => log::info!("control {name} set to {v}"),
                Err(e) => log::warn!("control {name}: the device refused {v}: {e}"),
            },
            Err(why) => log::warn!("{why}"),
        }
    }
    let (values, ranges) = crate::wire::controls::report(&src.controls());
    p.desk
        .publish(crate::pipeline::ControlReport { values, ranges });
    p.waker.wake();
}

type Opener<'a> = dyn FnMut(&SourceConfig) -> Result<Box<dyn FrameSource + Send>, SourceError> + 'a;

/// The capture loop; `open` is injectable for tests.
pub(crate) fn run(p: &Arc<Pipeline>, cfg: &SourceConfig, open: &mut Opener<'_>) {
    run_with(p, cfg, open, &mut open_m2m)
}

/// [`run`] with the hardware encoders `open_hw` gives.
pub(crate) fn run_with(
    p: &Arc<Pipeline>,
    cfg: &SourceConfig,
    open: &mut Opener<'_>,
    open_hw: &mut HwOpener<'_>,
) {
    wait_for_node(p, cfg);
    let mut recovery = Recovery {
        backoff: Backoff::new(reopen_backoff()),
        logged: None,
        ever_opened: false,
        waits_for_device: !cfg.wait_for_device.is_zero(),
    };
    let mut stage = Stage::new(p, cfg.encode_threads);
    while !p.controls.shutting_down() {
        p.health.beat_capture();
        let mut src = match open(cfg) {
            Ok(s) => s,
            Err(e) => {
                if !recovery.failed(p, cfg, &e) {
                    break;
                }
                continue;
            }
        };
        recovery.opened(p, cfg);
        // `[source.controls]` at every open (a replugged camera forgot
        // them), then whatever the relay asked for meanwhile.
        let mut wanted = cfg.controls.clone();
        wanted.extend(p.desk.take_requests());
        apply_controls(p, src.as_mut(), wanted);
        let g = src.granted().clone();
        log::info!(
            "source {}: {} {}x{} stride {} @ {} fps",
            cfg.kind,
            g.format.name(),
            g.width,
            g.height,
            g.stride,
            g.fps
        );
        p.set_source_info(g.info());
        let mut camera_quality = quality_knob(p, cfg, &g, src.as_mut());
        let lent = src.export_buffers();
        if !stage.choose_encoder(p, cfg, &g, lent, open_hw) {
            break;
        }
        let result = pump(&mut stage, p, src.as_mut(), &mut camera_quality);
        // The encoder may hold the source's buffers (DMABUF): it goes first.
        stage.drop_hardware();
        drop(src);
        recovery.backoff.disconnected(Instant::now());
        match result {
            Ok(Pumped::Shutdown) => break,
            Ok(Pumped::Paused) => {
                // Stopped for the pause (a camera program): start again on
                // resume, without counting a failure.
                log::info!("source {}: stopped while paused", cfg.kind);
                while p.controls.paused() {
                    if !idle(p, Duration::from_millis(100)) {
                        break;
                    }
                }
            }
            Err(e) => {
                let e = match &cfg.kind {
                    SourceKind::Device(path) => SourceError::from_io(path, "capture", &e),
                    _ => SourceError::failed(e),
                };
                if !recovery.failed(p, cfg, &e) {
                    break;
                }
            }
        }
    }
    p.health.set_source_ok(false);
    log::debug!("capture stopped");
}

/// What will carry the JPEG quality (and so follow the link) for this
/// source, said once per open: the encoder for raw frames; for a camera's
/// own JPEG, its quality control where the driver has one, else nothing
/// (the frame rate gives way on a slow link).
fn quality_knob(
    p: &Pipeline,
    cfg: &SourceConfig,
    g: &Granted,
    src: &mut dyn FrameSource,
) -> Option<CameraQuality> {
    if g.format != SourceFormat::Mjpeg {
        p.controls.set_quality_knob(QualityKnob::Encoder);
        return None;
    }
    let found = CameraQuality::find(&src.controls());
    match &found {
        Some(q) => {
            let (min, max) = q.range();
            log::info!(
                "source {}: camera JPEG, quality via its control ({min}-{max})",
                cfg.kind
            );
            p.controls.set_quality_knob(QualityKnob::CameraControl);
        }
        None => {
            log::info!(
                "source {}: camera JPEG, no quality control: fps adapts",
                cfg.kind
            );
            p.controls.set_quality_knob(QualityKnob::None);
        }
    }
    found
}

/// Sets the camera's JPEG quality control to the encode quality when that
/// changed (the configured quality, or less while the link needs less). A
/// refusal ends its use until the next open.
fn follow_quality(p: &Pipeline, src: &mut dyn FrameSource, knob: &mut Option<CameraQuality>) {
    let Some(q) = knob.as_mut() else {
        return;
    };
    let Some((id, v)) = q.due(p.controls.encode_quality()) else {
        return;
    };
    match src.set_control(id, v) {
        Ok(()) => log::debug!("camera JPEG quality set to {v}"),
        Err(e) => {
            log::warn!("camera refused JPEG quality {v}: {e}; fps adapts instead");
            *knob = None;
            p.controls.set_quality_knob(QualityKnob::None);
        }
    }
}

/// A JPEG source's frames may not be the size it was asked for (a camera
/// program's own `--width`, a UVC camera that rounds): what the frames'
/// headers say replaces it in the source info, before the stream's hello
/// reads it (that waits for the first frame).
fn announce_jpeg_size(p: &Pipeline, jpeg: &[u8], announced: &mut (u32, u32)) {
    let Ok(h) = crate::wire::jpeg::header(jpeg) else {
        return;
    };
    let size = (u32::from(h.width), u32::from(h.height));
    if size == *announced || size.0 == 0 || size.1 == 0 {
        return;
    }
    log::info!(
        "source: frames are {}x{} (not {}x{})",
        size.0,
        size.1,
        announced.0,
        announced.1
    );
    *announced = size;
    let mut info = p.source_info();
    (info.width, info.height) = size;
    p.set_source_info(info);
}

/// How [`pump`] ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pumped {
    Shutdown,
    /// Paused, and the source stops while paused.
    Paused,
}

/// Takes frames from `src` into the encode stage until shutdown, a pause
/// that stops the source, or a source error (`Err`): the live fps
/// (decimation), pause, stale frames counted.
fn pump(
    stage: &mut Stage,
    p: &Pipeline,
    src: &mut dyn FrameSource,
    camera_quality: &mut Option<CameraQuality>,
) -> io::Result<Pumped> {
    let paced = src.self_paced();
    let device_fps = src.granted().fps;
    // The size announced (hello, /cameras): what the frames really are.
    let mut announced = (src.granted().width, src.granted().height);
    let device_period = Duration::from_secs(1) / device_fps.max(1);
    let mut due: Option<Instant> = None;
    loop {
        p.health.beat_capture();
        if p.controls.shutting_down() {
            return Ok(Pumped::Shutdown);
        }
        if p.controls.paused() && src.stop_when_paused() {
            return Ok(Pumped::Paused);
        }
        let fps = p.controls.fps().max(1);
        let requests = p.desk.take_requests();
        if !requests.is_empty() {
            apply_controls(p, src, requests);
        }
        follow_quality(p, src, camera_quality);
        // The epoch before the frame: a pause from now on makes it stale.
        let epoch = p.slot.epoch();
        let Some(frame) = src.next_frame(fps)? else {
            continue;
        };
        if let FrameData::Mjpeg(jpeg) = &frame.data {
            announce_jpeg_size(p, jpeg, &mut announced);
        }
        p.health.set_source_ok(true);
        // Frames the source had before this one were stale by the time
        // the encoder was free: drops, and a gap in seq. Not while
        // paused, nor while decimating to a lower live fps (those frames
        // would not have been sent anyway).
        let decimating = !paced && fps < device_fps;
        if frame.skipped > 0 && !p.controls.paused() && !decimating {
            stage.stale(p, u64::from(frame.skipped));
        }
        if p.controls.paused() {
            // Keep the device's queue moving, publish nothing.
            due = None;
            continue;
        }
        if !paced {
            // Device paces: skip frames to honour a lower live fps.
            let now = Instant::now();
            let interval = Duration::from_secs(1) / fps;
            let slack = (device_period / 2).min(interval / 2);
            if let Some(d) = due {
                if now + slack < d {
                    continue;
                }
                due = Some(if d + interval < now {
                    now + interval
                } else {
                    d + interval
                });
            } else {
                due = Some(now + interval);
            }
        }
        stage.publish(p, frame, epoch);
    }
}

/// `zerocam probe [DEVICE]`.
pub fn probe(device: Option<&Path>) -> anyhow::Result<()> {
    v4l2::probe(device)
}

#[cfg(test)]
mod tests;
