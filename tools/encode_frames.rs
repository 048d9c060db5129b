//! zerocam's side of `scripts/bench`'s ARMv6 instruction counts: runs one
//! capture-thread job N times on the same frame, built for the Pi Zero
//! (`--profile pi`) and run under `qemu-arm -cpu arm1176` with a counting
//! plugin, twice with different N so that start-up cancels out.
//!
//! usage: encode_frames MODE FRAME.yuyv WxH [yu12] N
//!
//! - `encode`: YUYV → JPEG with the COM segment, as for a YUYV camera
//!   (zerocam's own encoder, `encode::yuvjpeg`);
//! - `reference`: the same through `jpeg-encoder`, the reference encoder;
//! - `copy`: the frame copied into a hardware encoder's buffer (the one
//!   copy of the M2M path when the camera's buffers cannot be imported);
//! - `passthrough`: an MJPEG camera's frame checked and given its COM
//!   segment (the frame is encoded once first, in both runs alike);
//! - `fetch`, `dct`, `quantize`: zerocam's encoder run only up to that
//!   stage, for the per-stage counts (each stage's cost is the difference
//!   to the one before; `encode` is the whole).
//!
//! With `yu12` the frame is first repacked to planar YU12 (I420), as
//! rpicam-vid delivers it, outside the counted work (both runs alike).

use std::process::ExitCode;

use zerocam::encode::yuvjpeg::{self, Stage};
use zerocam::encode::{RawFormat, RawImage, encode_raw, encode_reference, m2m, mjpeg};
use zerocam::wire::com::FrameMeta;

fn main() -> ExitCode {
    match run() {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("encode_frames: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<String, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, file, size, n, yu12) = match args.as_slice() {
        [mode, file, size, n] => (mode, file, size, n, false),
        [mode, file, size, f, n] if f == "yu12" => (mode, file, size, n, true),
        _ => {
            return Err(
                "usage: encode_frames encode|reference|copy|passthrough|fetch|dct|quantize \
                 FRAME.yuyv WxH [yu12] N"
                    .into(),
            );
        }
    };
    let (w, h) = zerocam::config::parse_size("size", size).map_err(|e| e.to_string())?;
    let n: u64 = n.parse().map_err(|_| format!("N: not a number: {n}"))?;
    let mut data = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
    let (format, stride) = if yu12 {
        data = to_yu12(&data, w as usize, h as usize)?;
        (RawFormat::Yu12, w as usize)
    } else {
        (RawFormat::Yuyv, w as usize * 2)
    };
    let img = RawImage {
        format,
        width: w,
        height: h,
        stride,
        data: &data,
    };
    img.validate().map_err(|e| format!("{file}: {e}"))?;
    let meta = |seq| FrameMeta {
        seq,
        ts_us: 1_700_000_000_000_000 + seq * 66_666,
        size: Some((w, h)),
    };
    let mut out = Vec::new();
    let mut total = 0usize;
    match mode.as_str() {
        "encode" => {
            for seq in 0..n {
                encode_raw(&img, 80, Some(&meta(seq)), &mut out).map_err(|e| e.to_string())?;
                total += out.len();
            }
        }
        "reference" => {
            for seq in 0..n {
                encode_reference(&img, 80, Some(&meta(seq)), &mut out)
                    .map_err(|e| e.to_string())?;
                total += out.len();
            }
        }
        stage @ ("fetch" | "dct" | "quantize") => {
            let last = match stage {
                "fetch" => Stage::Fetch,
                "dct" => Stage::Dct,
                _ => Stage::Quantize,
            };
            for _ in 0..n {
                yuvjpeg::encode_stages(&img, 80, last, &mut out).map_err(|e| e.to_string())?;
                total += out.len();
            }
        }
        "copy" => {
            let mut dst = vec![0u8; data.len()];
            for _ in 0..n {
                m2m::copy_planes(&img, &mut dst, img.stride);
                total += dst.len();
            }
        }
        "passthrough" => {
            let mut camera = Vec::new();
            encode_raw(&img, 80, None, &mut camera).map_err(|e| e.to_string())?;
            for seq in 0..n {
                mjpeg::pass_through(&camera, &meta(seq), &mut out).map_err(|e| e.to_string())?;
                total += out.len();
            }
        }
        other => {
            return Err(format!(
                "mode {other:?}: expected encode, reference, copy, passthrough, fetch, dct \
                 or quantize"
            ));
        }
    }
    Ok(format!("{n} frames, {total} bytes"))
}

/// YUYV → YU12 (I420), chroma of each row pair averaged (rounding up), as
/// bench/arm/turbo_frames.c repacks it for libjpeg-turbo.
fn to_yu12(yuyv: &[u8], w: usize, h: usize) -> Result<Vec<u8>, String> {
    if yuyv.len() < w * h * 2 {
        return Err(format!("{} bytes is not a {w}x{h} YUYV frame", yuyv.len()));
    }
    let mut out = vec![0u8; w * h * 3 / 2];
    let (luma, chroma) = out.split_at_mut(w * h);
    let (u, v) = chroma.split_at_mut(w * h / 4);
    for (y, row) in yuyv.chunks_exact(w * 2).take(h).enumerate() {
        for (x, px) in row.chunks_exact(2).enumerate() {
            luma[y * w + x] = px[0];
        }
    }
    for cy in 0..h / 2 {
        let r0 = &yuyv[2 * cy * w * 2..][..w * 2];
        let r1 = &yuyv[(2 * cy + 1) * w * 2..][..w * 2];
        for cx in 0..w / 2 {
            let avg = |o: usize| {
                (u16::from(r0[cx * 4 + o]) + u16::from(r1[cx * 4 + o])).div_ceil(2) as u8
            };
            u[cy * (w / 2) + cx] = avg(1);
            v[cy * (w / 2) + cx] = avg(3);
        }
    }
    Ok(out)
}
