//! Shared pieces of zerocam's benchmarks: the test image, the encoders
//! under comparison (zerocam's `encode_raw`, `jpeg-encoder` as zerocam's
//! reference, and libjpeg-turbo), and the
//! interleaved timing that makes ratios meaningful on a shared, noisy machine.

use std::time::{Duration, Instant};

use anyhow::Context;
use turbojpeg::{Compressor, Subsamp, YuvImage};
use zerocam::encode::{RawFormat, RawImage, encode_raw, encode_reference};

pub mod stats;

/// JPEG quality used by every encode figure (zerocam's default).
pub const QUALITY: u8 = 80;

/// The natural-looking frame every encode figure uses: zerocam's own
/// (`--source pattern:scene` scrolls it).
pub use zerocam::capture::pattern::natural_yuyv;

/// zerocam's encoder on a YUYV frame, exactly as the capture thread calls it
/// (or, [`Zerocam::reference`], `jpeg-encoder` the same way).
pub struct Zerocam {
    width: u32,
    height: u32,
    out: Vec<u8>,
    reference: bool,
}

impl Zerocam {
    /// An encoder for `width × height` YUYV frames.
    pub fn new(width: usize, height: usize) -> Zerocam {
        Zerocam {
            width: width as u32,
            height: height as u32,
            out: Vec::new(),
            reference: false,
        }
    }

    /// `jpeg-encoder`, the reference zerocam's encoder is tested against.
    pub fn reference(width: usize, height: usize) -> Zerocam {
        Zerocam {
            reference: true,
            ..Zerocam::new(width, height)
        }
    }

    /// Encodes one frame; returns the JPEG's length.
    pub fn encode(&mut self, yuyv: &[u8]) -> anyhow::Result<usize> {
        let img = RawImage {
            format: RawFormat::Yuyv,
            width: self.width,
            height: self.height,
            stride: self.width as usize * 2,
            data: yuyv,
        };
        if self.reference {
            encode_reference(&img, QUALITY, None, &mut self.out)?;
        } else {
            encode_raw(&img, QUALITY, None, &mut self.out)?;
        }
        Ok(self.out.len())
    }

    /// The last JPEG.
    pub fn jpeg(&self) -> &[u8] {
        &self.out
    }
}

/// libjpeg-turbo (TurboJPEG 3 API) fed from the same YUYV frame: the frame
/// is repacked to planar 4:2:0 (inside the timed call, since a YUYV camera
/// would need that too; the cheapest input libjpeg-turbo takes, as it skips
/// its own colour conversion and downsampling) and compressed at the same
/// quality with 4:2:0 subsampling.
pub struct Turbo {
    width: usize,
    height: usize,
    planes: Vec<u8>,
    comp: Compressor,
    out: turbojpeg::OutputBuf<'static>,
}

impl Turbo {
    /// An encoder for `width × height` YUYV frames.
    pub fn new(width: usize, height: usize) -> anyhow::Result<Turbo> {
        Turbo::with_quality(width, height, QUALITY)
    }

    /// [`Turbo::new`] at another quality.
    pub fn with_quality(width: usize, height: usize, quality: u8) -> anyhow::Result<Turbo> {
        let mut comp = Compressor::new().context("tjInitCompress")?;
        comp.set_quality(i32::from(quality))?;
        comp.set_subsamp(Subsamp::Sub2x2)?;
        Ok(Turbo {
            width,
            height,
            planes: vec![0; width * height * 3 / 2],
            comp,
            out: turbojpeg::OutputBuf::new_owned(),
        })
    }

    /// Encodes one frame; returns the JPEG's length.
    pub fn encode(&mut self, yuyv: &[u8]) -> anyhow::Result<usize> {
        yuyv_to_i420(yuyv, self.width, self.height, &mut self.planes);
        let img = YuvImage {
            pixels: &self.planes[..],
            width: self.width,
            align: 1,
            height: self.height,
            subsamp: Subsamp::Sub2x2,
        };
        self.comp.compress_yuv(img, &mut self.out)?;
        Ok(self.out.len())
    }

    /// Only the YUYV → I420 repacking (to show its share of the time).
    pub fn repack_only(&mut self, yuyv: &[u8]) {
        yuyv_to_i420(yuyv, self.width, self.height, &mut self.planes);
    }

    /// The last JPEG.
    pub fn jpeg(&self) -> &[u8] {
        &self.out
    }
}

/// Packed YUYV (stride = 2·width) → planar I420; chroma of each row pair
/// averaged, as a 4:2:0 encoder's downsampling would.
pub fn yuyv_to_i420(src: &[u8], width: usize, height: usize, dst: &mut [u8]) {
    let (y_plane, chroma) = dst.split_at_mut(width * height);
    let (u_plane, v_plane) = chroma.split_at_mut(width * height / 4);
    let cw = width / 2;
    for (y, row) in src.chunks_exact(width * 2).take(height).enumerate() {
        let yrow = &mut y_plane[y * width..(y + 1) * width];
        for (o, px) in yrow.iter_mut().zip(row.iter().step_by(2)) {
            *o = *px;
        }
    }
    for cy in 0..height / 2 {
        let r0 = &src[2 * cy * width * 2..(2 * cy + 1) * width * 2];
        let r1 = &src[(2 * cy + 1) * width * 2..(2 * cy + 2) * width * 2];
        for cx in 0..cw {
            let a = cx * 4;
            u_plane[cy * cw + cx] = (r0[a + 1] as u16 + r1[a + 1] as u16).div_ceil(2) as u8;
            v_plane[cy * cw + cx] = (r0[a + 3] as u16 + r1[a + 3] as u16).div_ceil(2) as u8;
        }
    }
}

/// Whether libjpeg-turbo's SIMD is switched off in this process (it reads
/// `JSIMD_FORCENONE` once, at its first use).
pub fn turbo_simd_disabled() -> bool {
    std::env::var("JSIMD_FORCENONE").is_ok_and(|v| v == "1")
}

/// Times `f` in rounds of `frames` calls, alternating between the
/// contenders round by round so that a burst of load from other jobs hits
/// all of them alike; returns each contender's per-frame seconds per round.
pub fn interleaved(
    contenders: &mut [&mut dyn FnMut() -> anyhow::Result<usize>],
    rounds: usize,
    frames: usize,
) -> anyhow::Result<Vec<Vec<f64>>> {
    let mut times = vec![Vec::with_capacity(rounds); contenders.len()];
    // Warm-up: caches, allocator, libjpeg-turbo's SIMD detection.
    for c in contenders.iter_mut() {
        for _ in 0..2 {
            c()?;
        }
    }
    for round in 0..rounds {
        // Alternate the order too, so neither always runs first.
        let n = contenders.len();
        for k in 0..n {
            let i = if round % 2 == 0 { k } else { n - 1 - k };
            let t0 = Instant::now();
            for _ in 0..frames {
                std::hint::black_box(contenders[i]()?);
            }
            times[i].push(t0.elapsed().as_secs_f64() / frames as f64);
        }
    }
    Ok(times)
}

/// Frames per second that `threads` threads reach together, each encoding
/// its own copy of `frame` with zerocam's encoder for `dur`.
pub fn zerocam_threads(
    frame: &[u8],
    width: usize,
    height: usize,
    threads: usize,
    dur: Duration,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    let counts: Vec<anyhow::Result<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut enc = Zerocam::new(width, height);
                    let mut n = 0u64;
                    while start.elapsed() < dur {
                        enc.encode(frame)?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("thread panicked")))
            })
            .collect()
    });
    let mut total = 0;
    for c in counts {
        total += c?;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}
