//! V4L2 capture through the `v4l` crate: mode negotiation (S_FMT, S_PARM),
//! mmap streaming, stall detection, and `zerocam probe`.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use v4l::buffer::{Flags as BufFlags, Type};
use v4l::capability::Flags as CapFlags;
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::io::mmap::Stream as MmapStream;
use v4l::io::traits::{CaptureStream, Stream as _};
use v4l::video::Capture;
use v4l::video::capture::Parameters;
use v4l::{Device, Format, FourCC};

use super::mode::{self, Choice, FormatOffer, Rates, Sizes, fourcc_str};
use super::{FrameData, FrameSource, Granted, SourceFormat, SourceFrame};
use crate::encode::RawImage;

/// mmap buffers requested: enough to keep capturing while one is encoded.
const BUFFERS: u32 = 4;
/// One poll slice: short, so the loop beats and sees shutdown promptly.
const POLL_SLICE_MS: i32 = 200;
/// A device silent for this long (or 3 frame periods, if longer) is treated
/// as failed and reopened ("frontend timed out", a wedged USB camera).
const MIN_STALL: Duration = Duration::from_secs(3);

fn other(msg: String) -> io::Error {
    io::Error::other(msg)
}

/// What a device offers, as [`FormatOffer`]s for [`mode::choose`].
pub fn offers(dev: &Device) -> io::Result<Vec<FormatOffer>> {
    let mut out = Vec::new();
    for desc in dev.enum_formats()? {
        let fourcc = desc.fourcc;
        let sizes = match dev.enum_framesizes(fourcc) {
            Ok(list) if !list.is_empty() => list,
            // Some drivers do not enumerate sizes: offer nothing certain.
            _ => Vec::new(),
        };
        let mut discrete = Vec::new();
        let mut stepwise = None;
        for s in sizes {
            match s.size {
                FrameSizeEnum::Discrete(d) => {
                    let rates = rates(dev, fourcc, d.width, d.height);
                    discrete.push((d.width, d.height, rates));
                }
                FrameSizeEnum::Stepwise(st) => {
                    let rates = rates(dev, fourcc, st.max_width, st.max_height);
                    stepwise = Some(Sizes::Stepwise {
                        min: (st.min_width, st.min_height),
                        max: (st.max_width, st.max_height),
                        step: (st.step_width.max(1), st.step_height.max(1)),
                        rates,
                    });
                }
            }
        }
        out.push(FormatOffer {
            fourcc: fourcc.repr,
            sizes: stepwise.unwrap_or(Sizes::Discrete(discrete)),
        });
    }
    Ok(out)
}

fn rates(dev: &Device, fourcc: FourCC, w: u32, h: u32) -> Rates {
    let Ok(list) = dev.enum_frameintervals(fourcc, w, h) else {
        return Rates::Unknown;
    };
    let fps = |num: u32, den: u32| {
        if num == 0 {
            0.0
        } else {
            den as f64 / num as f64
        }
    };
    let mut discrete = Vec::new();
    for i in list {
        match i.interval {
            FrameIntervalEnum::Discrete(f) => discrete.push(fps(f.numerator, f.denominator)),
            FrameIntervalEnum::Stepwise(s) => {
                // Longest interval = slowest rate.
                return Rates::Range {
                    min: fps(s.max.numerator, s.max.denominator),
                    max: fps(s.min.numerator, s.min.denominator),
                };
            }
        }
    }
    if discrete.is_empty() {
        Rates::Unknown
    } else {
        Rates::Discrete(discrete)
    }
}

fn check_caps(dev: &Device, path: &Path) -> io::Result<v4l::capability::Capabilities> {
    let caps = dev.query_caps()?;
    if !caps.capabilities.contains(CapFlags::VIDEO_CAPTURE) {
        return Err(other(format!(
            "{} ({}) is not a single-planar video capture device",
            path.display(),
            caps.card
        )));
    }
    if !caps.capabilities.contains(CapFlags::STREAMING) {
        return Err(other(format!(
            "{} ({}) does not support streaming I/O",
            path.display(),
            caps.card
        )));
    }
    Ok(caps)
}

/// An open, streaming V4L2 device.
pub struct V4l2Source {
    // Field order matters: the stream (mmap'd buffers) goes before the device.
    stream: Option<MmapStream<'static>>,
    _dev: Device,
    granted: Granted,
    stall: Duration,
    last_frame: Instant,
    path: PathBuf,
}

impl V4l2Source {
    /// Opens `path`, picks a mode for `width × height @ fps`, sets it and
    /// starts streaming. Logs what the device actually granted.
    pub fn open(path: &Path, width: u32, height: u32, fps: u32) -> io::Result<V4l2Source> {
        let dev = Device::with_path(path)?;
        let caps = check_caps(&dev, path)?;
        let offers = offers(&dev)?;
        let choice: Choice = mode::choose(&offers, width, height, fps)
            .map_err(|e| other(format!("{} ({}): {e}", path.display(), caps.card)))?;
        log::info!(
            "{} ({}, {}): requesting {choice}",
            path.display(),
            caps.card,
            caps.driver
        );
        let want = Format::new(choice.width, choice.height, FourCC::new(&choice.fourcc));
        let got = dev.set_format(&want)?;
        let Some((_, format)) = mode::supported(&got.fourcc.repr) else {
            return Err(other(format!(
                "{} granted format {} instead of {}",
                path.display(),
                fourcc_str(&got.fourcc.repr),
                fourcc_str(&choice.fourcc)
            )));
        };
        let mut granted_fps = choice.fps;
        match dev.set_params(&Parameters::with_fps(choice.fps)) {
            Ok(p) if p.interval.numerator > 0 && p.interval.denominator > 0 => {
                granted_fps = (p.interval.denominator as f64 / p.interval.numerator as f64)
                    .round()
                    .max(1.0) as u32;
            }
            Ok(_) => {}
            // Not every driver supports S_PARM; the device then runs at its default.
            Err(e) => log::info!(
                "{}: cannot set frame rate ({e}); using the device's",
                path.display()
            ),
        }
        let min_stride = match format {
            SourceFormat::Mjpeg => 0,
            SourceFormat::Raw(r) => got.width as usize * r.bytes_per_pixel(),
        };
        let stride = if (got.stride as usize) < min_stride {
            min_stride
        } else {
            got.stride as usize
        };
        log::info!(
            "{}: granted {} {}x{} stride {} (sizeimage {}) @ {} fps",
            path.display(),
            fourcc_str(&got.fourcc.repr),
            got.width,
            got.height,
            stride,
            got.size,
            granted_fps
        );
        if (got.width, got.height) != (choice.width, choice.height) {
            log::warn!(
                "{}: asked for {}x{}, device gave {}x{}",
                path.display(),
                choice.width,
                choice.height,
                got.width,
                got.height
            );
        }
        let mut stream = MmapStream::with_buffers(&dev, Type::VideoCapture, BUFFERS)?;
        // MmapStream::next() re-queues the previous buffer before waiting,
        // which breaks if a wait times out. So queue all but buffer 0
        // ourselves and start; every next() then queues one buffer and
        // dequeues one, and we only call it once poll() says a frame is
        // ready. A driver may grant fewer buffers than asked: stop at the
        // first index it refuses.
        for i in 1..BUFFERS as usize {
            if let Err(e) = CaptureStream::queue(&mut stream, i) {
                log::debug!("{}: queueing buffer {i}: {e}", path.display());
                break;
            }
        }
        stream.start()?;
        let period = Duration::from_secs(1) / granted_fps.max(1);
        Ok(V4l2Source {
            stream: Some(stream),
            _dev: dev,
            granted: Granted {
                format,
                width: got.width,
                height: got.height,
                stride,
                fps: granted_fps,
                label: format.name(),
            },
            stall: MIN_STALL.max(period * 3),
            last_frame: Instant::now(),
            path: path.to_path_buf(),
        })
    }
}

impl Drop for V4l2Source {
    fn drop(&mut self) {
        let Some(mut stream) = self.stream.take() else {
            return;
        };
        // The v4l crate panics in Drop when STREAMOFF fails with anything but
        // ENODEV; with panic=abort that would kill the camera. Stop it here
        // first and, on an unexpected error, leak the buffers instead.
        match stream.stop() {
            Ok(()) => drop(stream),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => drop(stream),
            Err(e) => {
                log::warn!(
                    "{}: STREAMOFF failed ({e}); leaking its buffers",
                    self.path.display()
                );
                std::mem::forget(stream);
            }
        }
    }
}

impl FrameSource for V4l2Source {
    fn granted(&self) -> &Granted {
        &self.granted
    }

    fn self_paced(&self) -> bool {
        false
    }

    fn next_frame(&mut self, _fps: u32) -> io::Result<Option<SourceFrame<'_>>> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(other("stream closed".into()));
        };
        let ready = stream.handle().poll(libc::POLLIN, POLL_SLICE_MS)?;
        if ready == 0 {
            if self.last_frame.elapsed() > self.stall {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no frame for {:.1} s (device stalled)",
                        self.stall.as_secs_f64()
                    ),
                ));
            }
            return Ok(None);
        }
        let (buf, meta) = CaptureStream::next(stream)?;
        self.last_frame = Instant::now();
        let ts = crate::frame::now_us();
        if meta.flags.contains(BufFlags::ERROR) {
            return Ok(Some(SourceFrame {
                captured_at_us: ts,
                data: FrameData::Corrupt,
            }));
        }
        let used = match meta.bytesused as usize {
            0 => buf.len(),
            n => n.min(buf.len()),
        };
        let g = &self.granted;
        let data = match g.format {
            SourceFormat::Mjpeg => FrameData::Mjpeg(&buf[..used]),
            SourceFormat::Raw(format) => FrameData::Raw(RawImage {
                format,
                width: g.width,
                height: g.height,
                stride: g.stride,
                data: &buf[..used],
            }),
        };
        Ok(Some(SourceFrame {
            captured_at_us: ts,
            data,
        }))
    }
}

/// `/dev/video*` nodes, sorted by number.
fn video_nodes() -> Vec<PathBuf> {
    let mut nodes: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name.strip_prefix("video")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    nodes.sort();
    nodes.into_iter().map(|(_, p)| p).collect()
}

fn describe_rates(r: &Rates) -> String {
    match r {
        Rates::Discrete(v) => v
            .iter()
            .map(|f| format!("{f:.3} fps"))
            .collect::<Vec<_>>()
            .join(", "),
        Rates::Range { min, max } => format!("{min:.3}..{max:.3} fps"),
        Rates::Unknown => "rates not listed".into(),
    }
}

/// Prints one device; returns whether zerocam can use it.
fn probe_one(path: &Path, want: (u32, u32, u32)) -> io::Result<bool> {
    let dev = Device::with_path(path)?;
    let caps = dev.query_caps()?;
    println!(
        "{}: {} (driver {}, bus {})",
        path.display(),
        caps.card,
        caps.driver,
        caps.bus
    );
    println!("  caps: {}", caps.capabilities);
    if let Err(e) = check_caps(&dev, path) {
        println!("  not usable: {e}");
        return Ok(false);
    }
    let descs = dev.enum_formats()?;
    let offers = offers(&dev)?;
    for (d, o) in descs.iter().zip(&offers) {
        println!("  format '{}' ({})", fourcc_str(&o.fourcc), d.description);
        match &o.sizes {
            Sizes::Discrete(v) if v.is_empty() => println!("    (sizes not listed)"),
            Sizes::Discrete(v) => {
                for (w, h, r) in v {
                    println!("    {w}x{h}: {}", describe_rates(r));
                }
            }
            Sizes::Stepwise {
                min,
                max,
                step,
                rates,
            } => println!(
                "    {}x{} .. {}x{} step {}/{}: {}",
                min.0,
                min.1,
                max.0,
                max.1,
                step.0,
                step.1,
                describe_rates(rates)
            ),
        }
    }
    match mode::choose(&offers, want.0, want.1, want.2) {
        Ok(c) => {
            println!(
                "  zerocam would pick (for {}x{} @ {} fps): {c}",
                want.0, want.1, want.2
            );
            Ok(true)
        }
        Err(e) => {
            println!("  zerocam cannot use it: {e}");
            Ok(false)
        }
    }
}

/// `zerocam probe [DEVICE]`: lists devices, modes and zerocam's pick for the
/// default request (640x480 @ 15 fps). Fails (non-zero exit) when there is
/// no device or none is usable, so scripts can test for a camera.
pub fn probe(device: Option<&Path>) -> anyhow::Result<()> {
    let want = (640, 480, 15);
    let nodes = match device {
        Some(d) => vec![d.to_path_buf()],
        None => video_nodes(),
    };
    if nodes.is_empty() {
        anyhow::bail!(
            "no V4L2 devices found (no /dev/video* nodes); is the camera connected and its driver loaded?"
        );
    }
    let mut usable = 0;
    for node in &nodes {
        match probe_one(node, want) {
            Ok(true) => usable += 1,
            Ok(false) => {}
            Err(e) => println!("{}: cannot open: {e}", node.display()),
        }
        println!();
    }
    if usable == 0 {
        anyhow::bail!("none of {} device(s) can be used by zerocam", nodes.len());
    }
    Ok(())
}
