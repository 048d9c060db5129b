//! zerocam's side of `scripts/bench`'s ARMv6 instruction counts: runs one
//! capture-thread job N times on the same frame, built for the Pi Zero
//! (`--profile pi`) and run under `qemu-arm -cpu arm1176` with a counting
//! plugin, twice with different N so that start-up cancels out.
//!
//! usage: encode_frames encode|copy|passthrough FRAME.yuyv WxH N
//!
//! - `encode`: YUYV → JPEG with the COM segment, as for a YUYV camera;
//! - `copy`: the frame copied into a hardware encoder's buffer (the one
//!   copy of the M2M path when the camera's buffers cannot be imported);
//! - `passthrough`: an MJPEG camera's frame checked and given its COM
//!   segment (the frame is encoded once first, in both runs alike).

use std::process::ExitCode;

use zerocam::encode::{RawFormat, RawImage, encode_raw, m2m, mjpeg};
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
    let [mode, file, size, n] = args.as_slice() else {
        return Err("usage: encode_frames encode|copy|passthrough FRAME.yuyv WxH N".into());
    };
    let (w, h) = zerocam::config::parse_size("size", size).map_err(|e| e.to_string())?;
    let n: u64 = n.parse().map_err(|_| format!("N: not a number: {n}"))?;
    let data = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
    let img = RawImage {
        format: RawFormat::Yuyv,
        width: w,
        height: h,
        stride: w as usize * 2,
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
                "mode {other:?}: expected encode, copy or passthrough"
            ));
        }
    }
    Ok(format!("{n} frames, {total} bytes"))
}
