//! One camera, whole: the capture thread (source → encode → slot), the
//! device thread (LED, systemd watchdog) and the stream thread (slot →
//! relay), started, run and stopped one way for `zerocam stream`, the demo
//! and the tests; and `zerocam snapshot`, one frame without a relay.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::capture::{self, FrameData};
use crate::config::{Config, SourceConfig, SourceKind};
use crate::encode::{encode_raw, mjpeg};
use crate::pipeline::{Pipeline, StatsSnapshot};
use crate::wire::com::FrameMeta;

/// A running camera.
#[derive(Debug)]
pub struct Camera {
    pipeline: Arc<Pipeline>,
    capture: JoinHandle<()>,
    device: Option<JoinHandle<()>>,
    stream: JoinHandle<anyhow::Result<()>>,
}

impl Camera {
    /// Starts the camera's threads for `cfg`.
    pub fn start(cfg: &Config) -> anyhow::Result<Camera> {
        let pipeline = Pipeline::for_source(&cfg.source)?;
        let capture = capture::spawn(pipeline.clone(), cfg.source.clone())?;
        let device = crate::device::spawn(pipeline.clone(), cfg.led.clone())?;
        let stream = {
            let (cfg, pipeline) = (cfg.clone(), pipeline.clone());
            std::thread::Builder::new()
                .name("stream".into())
                .spawn(move || crate::stream::session::run(&cfg, pipeline))?
        };
        Ok(Camera {
            pipeline,
            capture,
            device,
            stream,
        })
    }

    /// What the threads share (signal handlers stop the camera through it).
    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }

    /// Has the stream thread ended (a fatal error, or a stop)?
    pub fn is_finished(&self) -> bool {
        self.stream.is_finished()
    }

    /// Runs until something stops the camera (a signal through
    /// [`Camera::pipeline`], or a fatal error), then stops it.
    pub fn wait(self) -> anyhow::Result<StatsSnapshot> {
        let streamed = self.stream.join();
        Camera::finish(&self.pipeline, streamed, self.capture, self.device)
    }

    /// Stops every thread (the stream closes its link with 1001) and
    /// returns the totals: every captured frame sent or dropped.
    pub fn stop(self) -> anyhow::Result<StatsSnapshot> {
        self.pipeline.controls.request_shutdown();
        self.pipeline.waker.wake();
        let streamed = self.stream.join();
        Camera::finish(&self.pipeline, streamed, self.capture, self.device)
    }

    fn finish(
        p: &Pipeline,
        streamed: std::thread::Result<anyhow::Result<()>>,
        capture: JoinHandle<()>,
        device: Option<JoinHandle<()>>,
    ) -> anyhow::Result<StatsSnapshot> {
        // The stream may have ended on its own (a fatal error): the rest too.
        p.controls.request_shutdown();
        if capture.join().is_err() {
            log::error!("capture thread panicked");
        }
        if device.is_some_and(|d| d.join().is_err()) {
            log::error!("device thread panicked");
        }
        match streamed {
            Ok(r) => r?,
            Err(_) => anyhow::bail!("stream thread panicked"),
        }
        if let Some(why) = p.fatal() {
            anyhow::bail!(why);
        }
        // A frame still waiting now will never go.
        p.slot.discard();
        Ok(p.snapshot())
    }
}

/// Frames skipped by `snapshot` on a V4L2 device: the first frames after
/// STREAMON are often dark or mis-coloured while auto-exposure and white
/// balance settle (UVC webcams and the Pi camera both do this).
const SNAPSHOT_SKIP: usize = 3;

/// `zerocam snapshot`: writes one frame.
pub fn snapshot(cfg: &SourceConfig, out: &Path) -> anyhow::Result<()> {
    let mut src = capture::open(cfg).with_context(|| format!("cannot open source {}", cfg.kind))?;
    let skip = match cfg.kind {
        SourceKind::Pattern | SourceKind::PatternScene | SourceKind::PatternMjpeg => 0,
        SourceKind::Device(_) | SourceKind::Exec(_) => SNAPSHOT_SKIP,
    };
    let g = src.granted().clone();
    log::info!(
        "source {}: {} {}x{} @ {} fps",
        cfg.kind,
        g.format.name(),
        g.width,
        g.height,
        g.fps
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    // Frames the source delivered (those it skipped as stale included),
    // and whether `jpeg` holds a usable one. Warm-up frames are encoded
    // too: a source that ends early still gives its last good frame.
    let mut seen = 0usize;
    let mut usable = false;
    let mut jpeg = Vec::new();
    while seen <= skip || !usable {
        if Instant::now() > deadline {
            if usable {
                break;
            }
            anyhow::bail!(
                "no usable frame from {} within 10 s ({seen} frames arrived)",
                cfg.kind
            );
        }
        let frame = match src.next_frame(g.fps.max(1)) {
            Ok(Some(f)) => f,
            Ok(None) => continue,
            Err(e) if usable => {
                // Fewer frames than the warm-up skips: the last one will do.
                log::info!("snapshot: {e}; using frame {seen}");
                break;
            }
            Err(e) => anyhow::bail!("{e}, before any usable frame ({seen} arrived)"),
        };
        seen += 1 + frame.skipped as usize;
        let meta = FrameMeta {
            seq: 0,
            ts_us: frame.captured_at_us,
            size: None,
        };
        let mut next = Vec::new();
        let ok = match frame.data {
            FrameData::Mjpeg(b) => match mjpeg::pass_through(b, &meta, &mut next) {
                Ok(_) => true,
                Err(e) => {
                    log::warn!("skipping corrupt frame: {e}");
                    false
                }
            },
            FrameData::Raw(img) => {
                let meta = FrameMeta {
                    size: Some((img.width, img.height)),
                    ..meta
                };
                encode_raw(&img, cfg.quality, Some(&meta), &mut next)?;
                true
            }
            FrameData::Corrupt => false,
        };
        if ok {
            jpeg = next;
            usable = true;
        }
    }
    std::fs::write(out, &jpeg).with_context(|| format!("cannot write {}", out.display()))?;
    log::info!("wrote {} ({} bytes)", out.display(), jpeg.len());
    Ok(())
}
