//! The encode stage, between capture and the slot: what capture hands it
//! (a frame and the mode it was granted), the choice of encoder with the
//! fallback to software, and the live quality. Imports nothing of capture:
//! capture imports these types from here.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::m2m::{self, HardwareEncoder};
use super::{RawFormat, RawImage, encode_raw, fourcc_str, mjpeg, pool, yuvjpeg};
use crate::config::SourceConfig;
use crate::frame::Frame;
use crate::pipeline::{Pipeline, SourceInfo};
use crate::wire::com::FrameMeta;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// Compressed by the camera; passed through.
    Mjpeg,
    /// Raw YUV; encoded here.
    Raw(RawFormat),
}

impl SourceFormat {
    /// Lower-case name for `hello` and the logs.
    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::Mjpeg => "mjpeg",
            SourceFormat::Raw(r) => r.name(),
        }
    }
}

/// The mode a source actually runs in (what the device granted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub format: SourceFormat,
    pub width: u32,
    pub height: u32,
    /// Bytes per line of the first plane (raw formats).
    pub stride: usize,
    /// Frames per second the source delivers.
    pub fps: u32,
    /// `pattern` for the test pattern, else the format name.
    pub label: &'static str,
}

impl Granted {
    /// The [`SourceInfo`] for `hello`.
    pub fn info(&self) -> SourceInfo {
        SourceInfo {
            format: self.label.to_string(),
            width: self.width,
            height: self.height,
            fps: self.fps,
        }
    }
}

/// Pixel data of one captured frame, borrowed from the source.
#[derive(Debug)]
pub enum FrameData<'a> {
    /// One MJPEG frame as the camera produced it (may be padded/corrupt).
    Mjpeg(&'a [u8]),
    /// Raw planes with stride.
    Raw(RawImage<'a>),
    /// The driver flagged the buffer as bad (V4L2_BUF_FLAG_ERROR).
    Corrupt,
}

/// One frame out of a source.
#[derive(Debug)]
pub struct SourceFrame<'a> {
    /// Capture time, µs since the Unix epoch (from the driver's own
    /// timestamp where it has one).
    pub captured_at_us: u64,
    /// Frames the source had (or lost) before this one that are skipped
    /// because this one is newer: stale, counted as dropped.
    pub skipped: u32,
    pub data: FrameData<'a>,
    /// The frame's buffer as a DMABUF, once the source lent its buffers:
    /// a hardware encoder reads it without a copy.
    pub dmabuf: Option<crate::encode::m2m::Dmabuf>,
}

/// Opens a hardware encoder: (coded format, raw format, mode, the source's
/// lent buffers). The real one is [`m2m::open_first`]; tests pass doubles.
pub type HwOpener<'a> = dyn FnMut([u8; 4], RawFormat, &Granted, Option<m2m::Import>) -> io::Result<Box<dyn HardwareEncoder>>
    + 'a;

/// The hardware encoders of this machine (`/dev/video*`).
pub fn open_m2m(
    coded: [u8; 4],
    raw: RawFormat,
    g: &Granted,
    import: Option<m2m::Import>,
) -> io::Result<Box<dyn HardwareEncoder>> {
    m2m::open_first(coded, raw, g.width, g.height, import)
}

/// The encode stage: turns the frames capture hands it into JPEGs in the
/// slot, numbered (seq continues across reopens), on this thread, a pool
/// of threads, or a hardware encoder with the fallback to software. It
/// reads the live quality itself.
#[derive(Default)]
pub struct Stage {
    seq: u64,
    /// Encoder threads, when `source.encode_threads` > 1.
    pool: Option<crate::encode::pool::Pool>,
    /// The hardware (V4L2 M2M) encoder, when one is used.
    hw: Option<Box<dyn HardwareEncoder>>,
    /// Its output, before the COM segment goes in.
    hw_out: Vec<u8>,
    /// "No hardware encoder" was said once.
    told_no_hw: bool,
    /// Expected size of the next JPEG, so its Vec is allocated once.
    size_hint: usize,
    warned_corrupt: bool,
    warned_encode: bool,
}

/// How long the hardware encoder may take for one frame before it counts
/// as failed.
const HW_TIMEOUT: Duration = Duration::from_secs(2);

impl Stage {
    /// A stage for `p`, with `threads` software encoders (more than one:
    /// a pool).
    pub fn new(p: &Arc<Pipeline>, threads: u32) -> Stage {
        let mut stage = Stage::default();
        if threads > 1 {
            match pool::Pool::new(threads as usize, p.clone()) {
                Ok(pool) => {
                    log::info!("encoding on {} threads", pool.len());
                    stage.pool = Some(pool);
                }
                Err(e) => log::warn!("cannot start encoder threads ({e}); encoding on one"),
            }
        }
        stage
    }

    /// Lets go of the hardware encoder (it may hold the source's buffers:
    /// before the source closes).
    pub fn drop_hardware(&mut self) {
        self.hw = None;
    }

    /// `n` frames the source skipped for a newer one: captured and
    /// dropped (captured = sent + dropped holds), a gap in seq.
    pub fn stale(&mut self, p: &Pipeline, n: u64) {
        p.counters.captured.fetch_add(n, Ordering::Relaxed);
        p.counters.stale.fetch_add(n, Ordering::Relaxed);
        self.seq += n;
    }

    /// Picks the encoder for the mode `g` the source granted, per
    /// `source.encoder` (`lent`: buffers the source can lend as DMABUF). False when zerocam is to stop (`hardware` without
    /// one).
    pub fn choose_encoder(
        &mut self,
        p: &Pipeline,
        cfg: &SourceConfig,
        g: &Granted,
        lent: Option<usize>,
        open_hw: &mut HwOpener<'_>,
    ) -> bool {
        use crate::config::EncoderChoice;
        self.hw = None;
        let SourceFormat::Raw(raw) = g.format else {
            return true; // the camera compresses: nothing to encode
        };
        if cfg.encoder == EncoderChoice::Software {
            if !self.told_no_hw {
                log::info!(
                    "encoder: software ({}), as source.encoder asks",
                    yuvjpeg::path()
                );
                self.told_no_hw = true;
            }
            return true;
        }
        // Zero copy when the source can lend its buffers.
        let import = lent.map(|buffers| m2m::Import {
            stride: g.stride,
            buffers,
        });
        match (open_hw(cfg.encoder_format, raw, g, import), cfg.encoder) {
            (Ok(enc), _) => {
                log::info!(
                    "encoder: {}, {}→{}, {}",
                    enc.describe(),
                    raw.name(),
                    fourcc_str(&enc.coded()),
                    if enc.imports() { "DMABUF" } else { "copied" }
                );
                self.hw = Some(enc);
                true
            }
            (Err(e), EncoderChoice::Hardware) => {
                p.fail(format!("source.encoder = hardware: {e}"));
                false
            }
            (Err(e), _) => {
                if !self.told_no_hw {
                    log::info!("encoder: software ({}); {e}", yuvjpeg::path());
                    self.told_no_hw = true;
                }
                true
            }
        }
    }

    /// Encodes `img` in hardware into `jpeg` (with the COM segment for a
    /// JPEG). An encoder that cannot take the camera's buffers is reopened
    /// to copy them; any other failure drops the hardware encoder for good
    /// and `false` says: encode in software.
    fn hw_encode(
        &mut self,
        p: &Pipeline,
        img: &RawImage<'_>,
        dmabuf: Option<&m2m::Dmabuf>,
        meta: &FrameMeta,
        jpeg: &mut Vec<u8>,
    ) -> bool {
        let Some(hw) = self.hw.as_mut() else {
            return false;
        };
        let quality = p.controls.encode_quality();
        let lent = dmabuf.filter(|_| hw.imports());
        let mut result = hw.encode(img, lent, quality, &mut self.hw_out, HW_TIMEOUT);
        if let (Err(e), true) = (&result, hw.imports()) {
            // Some importers refuse some exporters' memory: copy instead.
            log::warn!("{e}; copying frames into the encoder instead");
            match hw.reopen_copying() {
                Ok(copying) => {
                    let hw = self.hw.insert(copying);
                    result = hw.encode(img, None, quality, &mut self.hw_out, HW_TIMEOUT);
                }
                Err(e) => result = Err(e),
            }
        }
        let coded = self.hw.as_ref().map(|h| h.coded());
        let result = result.and_then(|()| {
            if coded == Some(*b"JPEG") {
                mjpeg::pass_through(&self.hw_out, meta, jpeg)
                    .map(|_| ())
                    .map_err(|e| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("the encoder's JPEG: {e}"),
                        )
                    })
            } else {
                // A test codec (vicodec's FWHT): its bytes as they are.
                jpeg.clear();
                jpeg.extend_from_slice(&self.hw_out);
                Ok(())
            }
        });
        match result {
            Ok(()) => true,
            Err(e) => self.hw_failed(p, e),
        }
    }

    /// Drops the hardware encoder for good after `e`: one log line,
    /// counted. False: encode in software.
    fn hw_failed(&mut self, p: &Pipeline, e: io::Error) -> bool {
        log::warn!("hardware encoder failed ({e}); software from now on");
        p.counters.encoder_fallbacks.fetch_add(1, Ordering::Relaxed);
        self.hw = None;
        false
    }
    /// Encodes (or passes through) one frame captured in pause `epoch` and
    /// puts it in the slot.
    pub fn publish(&mut self, p: &Pipeline, frame: SourceFrame<'_>, epoch: u64) {
        let c = &p.counters;
        let t0 = Instant::now();
        let meta = FrameMeta {
            seq: self.seq,
            ts_us: frame.captured_at_us,
            size: None,
        };
        if let (FrameData::Raw(img), Some(pool), None) = (&frame.data, &self.pool, &self.hw) {
            let meta = FrameMeta {
                size: Some((img.width, img.height)),
                ..meta
            };
            if !pool.submit(img, meta, epoch, p.controls.encode_quality()) {
                // Every encoder is busy: this frame would wait, so it is
                // stale now (captured and dropped, a gap in seq).
                c.captured.fetch_add(1, Ordering::Relaxed);
                c.stale.fetch_add(1, Ordering::Relaxed);
            }
            self.seq += 1;
            return;
        }
        let mut jpeg = Vec::with_capacity(self.size_hint.max(16 * 1024));
        let size = match frame.data {
            FrameData::Mjpeg(bytes) => match mjpeg::pass_through(bytes, &meta, &mut jpeg) {
                Ok(info) => (info.width, info.height),
                Err(e) => {
                    c.corrupt.fetch_add(1, Ordering::Relaxed);
                    if !self.warned_corrupt {
                        log::warn!("dropping corrupt camera frame: {e} (further ones at debug)");
                        self.warned_corrupt = true;
                    } else {
                        log::debug!("dropping corrupt camera frame: {e}");
                    }
                    return;
                }
            },
            FrameData::Raw(img) => {
                let meta = FrameMeta {
                    size: Some((img.width, img.height)),
                    ..meta
                };
                if self.hw_encode(p, &img, frame.dmabuf.as_ref(), &meta, &mut jpeg) {
                    self.finish(
                        p,
                        jpeg,
                        (img.width, img.height),
                        frame.captured_at_us,
                        epoch,
                        t0,
                    );
                    return;
                }
                match encode_raw(&img, p.controls.encode_quality(), Some(&meta), &mut jpeg) {
                    Ok(()) => (img.width, img.height),
                    Err(e) => {
                        c.encode_errors.fetch_add(1, Ordering::Relaxed);
                        if !self.warned_encode {
                            log::warn!("cannot encode frame: {e} (further ones at debug)");
                            self.warned_encode = true;
                        } else {
                            log::debug!("cannot encode frame: {e}");
                        }
                        return;
                    }
                }
            }
            FrameData::Corrupt => {
                c.corrupt.fetch_add(1, Ordering::Relaxed);
                log::debug!("driver flagged a frame as corrupt");
                return;
            }
        };
        self.finish(p, jpeg, size, frame.captured_at_us, epoch, t0);
    }

    /// Publishes an encoded frame (the next seq).
    fn finish(
        &mut self,
        p: &Pipeline,
        jpeg: Vec<u8>,
        size: (u32, u32),
        captured_at_us: u64,
        epoch: u64,
        t0: Instant,
    ) {
        let c = &p.counters;
        c.record_encode_us(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
        self.size_hint = jpeg.len() + jpeg.len() / 4;
        c.captured.fetch_add(1, Ordering::Relaxed);
        p.slot.put(Frame {
            jpeg,
            seq: self.seq,
            captured_at_us,
            width: size.0,
            height: size.1,
            epoch,
        });
        self.seq += 1;
    }
}
