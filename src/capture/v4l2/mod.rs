//! V4L2 capture: mode negotiation (S_FMT, S_PARM) through the `v4l`
//! crate, the mmap buffer ring in [`ring`] (newest frame first, driver
//! timestamps), stall detection, failures in the operator's terms
//! ([`super::source_error`]), and `zerocam probe`.

pub mod controls;
pub mod ring;

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::v4l_sys::{
    V4L2_CAP_DEVICE_CAPS, V4L2_CAP_STREAMING, V4L2_CAP_VIDEO_CAPTURE,
    V4L2_CAP_VIDEO_CAPTURE_MPLANE, v4l2_capability,
};
use v4l::video::Capture;
use v4l::video::capture::Parameters;
use v4l::{Device, Format, FourCC};

use self::ring::{Queue, Ring};
use super::mode::{self, Choice, FormatOffer, Rates, Sizes, fourcc_str};
use super::source_error::{Kind, SourceError};
use super::{FrameData, FrameSource, Granted, SourceFormat, SourceFrame};
use crate::encode::RawImage;
use crate::v4l2raw::c_name;

/// mmap buffers requested: enough to keep capturing while one is encoded.
const BUFFERS: u32 = 4;
/// One poll slice: short, so the loop beats and sees shutdown promptly.
const POLL_SLICE_MS: i32 = 200;
/// A device silent for this long (or 3 frame periods, if longer) is treated
/// as failed and reopened ("frontend timed out", a wedged USB camera).
const MIN_STALL: Duration = Duration::from_secs(3);

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

/// What VIDIOC_QUERYCAP says, with names decoded leniently (the `v4l`
/// crate panics on a card name that is not UTF-8).
#[derive(Debug, Clone)]
pub struct Caps {
    pub driver: String,
    pub card: String,
    pub bus: String,
    /// The node's own capabilities (`device_caps` when the driver gives them).
    pub caps: u32,
}

/// VIDIOC_QUERYCAP on an open device.
pub fn query_caps(dev: &Device) -> io::Result<Caps> {
    // SAFETY: plain data; QUERYCAP fills it.
    let mut c: v4l2_capability = unsafe { std::mem::zeroed() };
    // SAFETY: QUERYCAP takes a v4l2_capability on a valid fd.
    unsafe {
        v4l::v4l2::ioctl(
            dev.handle().fd(),
            v4l::v4l2::vidioc::VIDIOC_QUERYCAP,
            (&mut c as *mut v4l2_capability).cast(),
        )
    }?;
    let caps = if c.capabilities & V4L2_CAP_DEVICE_CAPS != 0 {
        c.device_caps
    } else {
        c.capabilities
    };
    Ok(Caps {
        driver: c_name(&c.driver),
        card: c_name(&c.card),
        bus: c_name(&c.bus_info),
        caps,
    })
}

/// Why a node is no camera zerocam can stream from, if it is not.
fn not_capture(caps: &Caps) -> Option<String> {
    if caps.caps & V4L2_CAP_VIDEO_CAPTURE == 0 {
        let what = if caps.caps & V4L2_CAP_VIDEO_CAPTURE_MPLANE != 0 {
            "a multi-planar capture device (not supported yet)"
        } else {
            "not a video capture device (a metadata, output or codec node?)"
        };
        return Some(format!(
            "{} (driver {}) is {what}; `zerocam probe` lists the usable ones",
            caps.card, caps.driver
        ));
    }
    if caps.caps & V4L2_CAP_STREAMING == 0 {
        return Some(format!("{} does not support streaming I/O", caps.card));
    }
    None
}

/// An open, streaming V4L2 device.
pub struct V4l2Source {
    // Field order matters: the ring (mappings, STREAMOFF) drops before the
    // device closes its fd.
    ring: Ring,
    _dev: Device,
    granted: Granted,
    stall: Duration,
    last_frame: Instant,
    /// The buffer lent out by the last `next_frame`, queued again on the next.
    lent: Option<usize>,
    last_sequence: Option<u32>,
}

impl V4l2Source {
    /// Opens `path`, picks a mode for `width × height @ fps` (in `format`
    /// when given), sets it and starts streaming. Logs what the device
    /// actually granted. Failures say what is wrong in the operator's terms.
    pub fn open(
        path: &Path,
        format: Option<[u8; 4]>,
        width: u32,
        height: u32,
        fps: u32,
    ) -> Result<V4l2Source, SourceError> {
        let at = |step: &'static str| move |e: io::Error| SourceError::from_io(path, step, &e);
        let dev = Device::with_path(path).map_err(at("open"))?;
        let caps = query_caps(&dev).map_err(at("VIDIOC_QUERYCAP"))?;
        if let Some(why) = not_capture(&caps) {
            return Err(SourceError::new(Kind::NotCapture, why));
        }
        let offers = offers(&dev).map_err(at("listing formats"))?;
        let choice: Choice = mode::choose_in(&offers, format, width, height, fps)
            .map_err(|e| SourceError::new(Kind::NoFormat, format!("{}: {e}", caps.card)))?;
        // The reason can be long; a console line cannot (probe shows it).
        log::info!(
            "{} ({}): requesting {} {}x{} @ {} fps",
            path.display(),
            caps.card,
            mode::fourcc_str(&choice.fourcc),
            choice.width,
            choice.height,
            choice.fps
        );
        log::debug!("{}: {}", path.display(), choice.reason);
        let want = Format::new(choice.width, choice.height, FourCC::new(&choice.fourcc));
        let got = dev.set_format(&want).map_err(at("setting the format"))?;
        let Some((_, format)) = mode::supported(&got.fourcc.repr) else {
            return Err(SourceError::new(
                Kind::NoFormat,
                format!(
                    "{} granted format {} instead of {}",
                    path.display(),
                    fourcc_str(&got.fourcc.repr),
                    fourcc_str(&choice.fourcc)
                ),
            ));
        };
        let mut granted_fps = choice.fps;
        match dev.set_params(&Parameters::with_fps(choice.fps)) {
            Ok(p) if p.interval.numerator > 0 && p.interval.denominator > 0 => {
                granted_fps = (p.interval.denominator as f64 / p.interval.numerator as f64)
                    .round()
                    .clamp(1.0, 1000.0) as u32;
            }
            Ok(_) => {}
            // Not every driver supports S_PARM; the device then runs at its default.
            Err(e) => log::info!(
                "{}: cannot set frame rate ({e}); using the device's",
                path.display()
            ),
        }
        let stride = checked_stride(format, got.width, got.height, got.stride)?;
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
        let name = path.display().to_string();
        let ring =
            Ring::start(dev.handle().fd(), BUFFERS, &name).map_err(at("starting the stream"))?;
        log::debug!("{name}: {} buffers", ring.len());
        let period = Duration::from_secs(1) / granted_fps.max(1);
        Ok(V4l2Source {
            ring,
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
            lent: None,
            last_sequence: None,
        })
    }
}

/// The first plane's line stride, checked: at least one line of pixels,
/// and a frame size (stride × height, plus chroma) that fits in memory,
/// whatever numbers the driver reports (on 32-bit ARM their product can
/// wrap).
fn checked_stride(
    format: SourceFormat,
    width: u32,
    height: u32,
    reported: u32,
) -> Result<usize, SourceError> {
    let SourceFormat::Raw(raw) = format else {
        return Ok(reported as usize);
    };
    let min = (width as usize).saturating_mul(raw.bytes_per_pixel());
    let stride = (reported as usize).max(min);
    // Nothing a camera sends comes near 1 GiB per frame.
    match raw.frame_len(stride, height as usize) {
        Some(n) if n <= 1 << 30 => Ok(stride),
        _ => Err(SourceError::new(
            Kind::NoFormat,
            format!(
                "the driver reports {width}x{height} with a line stride of {reported} bytes: a frame that size cannot be captured"
            ),
        )),
    }
}

impl FrameSource for V4l2Source {
    fn granted(&self) -> &Granted {
        &self.granted
    }

    fn controls(&mut self) -> Vec<crate::wire::controls::ControlInfo> {
        controls::list(self._dev.handle().fd())
    }

    fn set_control(&mut self, id: u32, value: i64) -> io::Result<()> {
        controls::set(self._dev.handle().fd(), id, value)
    }

    fn self_paced(&self) -> bool {
        false
    }

    fn export_buffers(&mut self) -> Option<usize> {
        match self.ring.export() {
            Ok(()) => Some(self.ring.len()),
            Err(e) => {
                log::debug!("cannot export the capture buffers as DMABUF: {e}");
                None
            }
        }
    }

    fn next_frame(&mut self, _fps: u32) -> io::Result<Option<SourceFrame<'_>>> {
        if let Some(i) = self.lent.take() {
            self.ring.requeue(i)?;
        }
        let mut pfd = libc::pollfd {
            fd: self._dev.handle().fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, POLL_SLICE_MS) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(None)
            } else {
                Err(e)
            };
        }
        let newest = if ready == 0 {
            None
        } else {
            ring::take_newest(&mut self.ring)?
        };
        let Some((filled, skipped)) = newest else {
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
        };
        self.lent = Some(filled.index);
        self.last_frame = Instant::now();
        let lost = ring::sequence_gap(self.last_sequence, filled.sequence);
        self.last_sequence = Some(filled.sequence);
        // The driver's capture time, on the wall clock; the dequeue time
        // only for drivers that do not stamp buffers monotonically.
        let wall_now = crate::frame::now_us();
        let captured_at_us = match filled.monotonic_us {
            Some(ts) => {
                crate::frame::monotonic_to_wall_us(ts, crate::frame::monotonic_us(), wall_now)
            }
            None => wall_now,
        };
        let buf = self.ring.data(filled.index, filled.bytesused);
        let g = &self.granted;
        let data = if filled.error {
            FrameData::Corrupt
        } else {
            match g.format {
                SourceFormat::Mjpeg => FrameData::Mjpeg(buf),
                SourceFormat::Raw(format) => FrameData::Raw(RawImage {
                    format,
                    width: g.width,
                    height: g.height,
                    stride: g.stride,
                    data: buf,
                }),
            }
        };
        let dmabuf = self
            .ring
            .dmabuf(filled.index)
            .map(|(fd, len)| crate::encode::m2m::Dmabuf {
                fd,
                len,
                index: filled.index,
            });
        Ok(Some(SourceFrame {
            captured_at_us,
            skipped: skipped.saturating_add(lost),
            data,
            dmabuf,
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
    let caps = query_caps(&dev)?;
    println!(
        "{}: {} (driver {}, bus {})",
        path.display(),
        caps.card,
        caps.driver,
        caps.bus
    );
    println!("  caps: {:#010x}", caps.caps);
    if let Some(why) = not_capture(&caps) {
        println!("  not usable: {why}");
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
    let ctrls = controls::list(dev.handle().fd());
    if !ctrls.is_empty() {
        println!("  controls:");
        for c in &ctrls {
            println!("    {}", c.describe());
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
            Err(e) => println!(
                "{}: {}",
                node.display(),
                SourceError::from_io(node, "open", &e)
            ),
        }
        println!();
    }
    if usable == 0 {
        anyhow::bail!("none of {} device(s) can be used by zerocam", nodes.len());
    }
    Ok(())
}
