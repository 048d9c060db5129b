//! The encoder against the source pixels, against `jpeg-encoder`, and
//! through two independent decoders.

use super::*;
use crate::encode::raw::tests::make_with;
use crate::encode::raw::{RawFormat, encode_reference};

/// A natural-looking frame: gradients, texture and noise, so that every
/// coefficient range and run length occurs (flat test bars would not).
fn scene(x: usize, y: usize, seed: u32) -> (u8, u8, u8) {
    let mut n = (x as u32)
        .wrapping_mul(374_761_393)
        .wrapping_add((y as u32).wrapping_mul(668_265_263))
        .wrapping_add(seed.wrapping_mul(2_246_822_519));
    n = (n ^ (n >> 13)).wrapping_mul(1_274_126_177);
    let noise = (n >> 24) as i32 % 24 - 12;
    let (xf, yf) = (x as f64, y as f64);
    let texture = 40.0 * ((xf / 7.0).sin() * (yf / 11.0).cos());
    let luma = 110.0 + 0.3 * xf - 0.2 * yf + texture + noise as f64;
    let u = 128.0 + 50.0 * (xf / 60.0).sin() + (noise / 3) as f64;
    let v = 128.0 - 40.0 * (yf / 45.0).cos() + (noise / 4) as f64;
    let c = |f: f64| f.clamp(0.0, 255.0) as u8;
    (c(luma), c(u), c(v))
}

/// `format` at `w`×`h` with `pad` bytes of padding per first-plane line,
/// showing [`scene`].
fn frame(format: RawFormat, w: usize, h: usize, pad: usize, seed: u32) -> (Vec<u8>, usize) {
    make_with(format, w, h, pad, |x, y| scene(x, y, seed))
}

fn image<'a>(format: RawFormat, w: usize, h: usize, stride: usize, data: &'a [u8]) -> RawImage<'a> {
    RawImage {
        format,
        width: w as u32,
        height: h as u32,
        stride,
        data,
    }
}

/// Decoded RGB with jpeg-decoder.
fn decode(jpeg: &[u8]) -> (Vec<u8>, usize, usize) {
    let mut d = jpeg_decoder::Decoder::new(jpeg);
    let px = d.decode().expect("jpeg-decoder decodes it");
    let info = d.info().expect("info");
    (px, info.width as usize, info.height as usize)
}

/// Decoded RGB with zune-jpeg, an independent decoder.
fn decode_zune(jpeg: &[u8]) -> Vec<u8> {
    let mut d = zune_jpeg::JpegDecoder::new(jpeg);
    d.decode().expect("zune-jpeg decodes it")
}

/// PSNR of decoded luma against the source's Y (from decoded RGB).
fn psnr_luma(rgb: &[u8], w: usize, h: usize, seed: u32) -> f64 {
    let mut se = 0f64;
    for y in 0..h {
        for x in 0..w {
            let p = &rgb[(y * w + x) * 3..][..3];
            let got = 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]);
            let want = f64::from(scene(x, y, seed).0);
            se += (got - want).powi(2);
        }
    }
    let mse = se / (w * h) as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10()
}

/// PSNR of decoded Cb and Cr (from decoded RGB) against the source's
/// chroma at each pixel's 2×2 block.
fn psnr_chroma(rgb: &[u8], w: usize, h: usize, seed: u32) -> f64 {
    let mut se = 0f64;
    for y in 0..h {
        for x in 0..w {
            let p = &rgb[(y * w + x) * 3..][..3];
            let (r, g, b) = (f64::from(p[0]), f64::from(p[1]), f64::from(p[2]));
            let cb = 128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b;
            let cr = 128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b;
            let (_, u, v) = scene(x & !1, y & !1, seed);
            se += (cb - f64::from(u)).powi(2) + (cr - f64::from(v)).powi(2);
        }
    }
    let mse = se / (2 * w * h) as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10()
}

const FORMATS: [RawFormat; 3] = [RawFormat::Yuyv, RawFormat::Nv12, RawFormat::Yu12];

#[test]
fn every_format_and_size_decodes_with_two_decoders() {
    // Multiples of 16, of 8 but not 16, of 2 only, odd (YUYV: odd heights;
    // its pixels come in pairs); tiny; padded strides.
    let sizes = [
        (64, 48),
        (40, 24),
        (38, 22),
        (2, 2),
        (18, 34),
        (130, 66),
        (37, 23),
        (1, 1),
        (15, 9),
        (33, 17),
        (38, 23),
        (2, 1),
    ];
    for (w, h) in sizes {
        for format in FORMATS {
            if format == RawFormat::Yuyv && w % 2 != 0 {
                continue;
            }
            for pad in [0, 6, 64] {
                let (data, stride) = frame(format, w, h, pad, 1);
                let img = image(format, w, h, stride, &data);
                let mut out = Vec::new();
                encode(&img, 80, None, &mut out).unwrap();
                let (rgb, dw, dh) = decode(&out);
                assert_eq!((dw, dh), (w, h), "{format:?} {w}x{h}");
                let zune = decode_zune(&out);
                assert_eq!(zune.len(), rgb.len());
                // Two decoders, one picture: their IDCTs and upsampling
                // differ only in rounding.
                let worst = rgb.iter().zip(&zune).map(|(a, b)| a.abs_diff(*b)).max();
                assert!(
                    worst <= Some(12),
                    "{format:?} {w}x{h}: decoders differ by {worst:?}"
                );
                let p = psnr_luma(&rgb, w, h, 1);
                // A 1×1 or 2×1 frame is all edge: its single block's
                // rounding is the whole error.
                let floor = if w * h < 4 { 20.0 } else { 28.0 };
                assert!(p > floor, "{format:?} {w}x{h} pad {pad}: PSNR {p:.1} dB");
                // An odd width's or height's last pixels have chroma of
                // their own; reading a neighbour's (or padding) shows here.
                let c = psnr_chroma(&rgb, w, h, 1);
                assert!(
                    c > floor,
                    "{format:?} {w}x{h} pad {pad}: chroma PSNR {c:.1} dB"
                );
            }
        }
    }
}

#[test]
fn quality_and_size_track_the_reference_encoder() {
    let (w, h) = (160, 112);
    for format in FORMATS {
        let (data, stride) = frame(format, w, h, 0, 7);
        let img = image(format, w, h, stride, &data);
        for quality in [30, 50, 80, 95] {
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            encode(&img, quality, None, &mut ours).unwrap();
            encode_reference(&img, quality, None, &mut theirs).unwrap();
            let (a, ..) = decode(&ours);
            let (b, ..) = decode(&theirs);
            let (pa, pb) = (psnr_luma(&a, w, h, 7), psnr_luma(&b, w, h, 7));
            assert!(
                pa >= pb - 0.1,
                "{format:?} q{quality}: {pa:.2} dB vs reference {pb:.2} dB"
            );
            let ratio = ours.len() as f64 / theirs.len() as f64;
            assert!(
                ratio <= 1.03,
                "{format:?} q{quality}: {} bytes vs reference {} ({ratio:.3})",
                ours.len(),
                theirs.len()
            );
        }
    }
}

#[test]
fn the_com_segment_follows_soi_and_the_stream_ends_in_eoi() {
    let (data, stride) = frame(RawFormat::Yuyv, 32, 16, 0, 3);
    let img = image(RawFormat::Yuyv, 32, 16, stride, &data);
    let meta = FrameMeta {
        seq: 42,
        ts_us: 1_700_000_000_000_000,
        size: Some((32, 16)),
    };
    let mut out = Vec::new();
    encode(&img, 75, Some(&meta), &mut out).unwrap();
    assert_eq!(&out[..2], &[0xFF, 0xD8]);
    assert_eq!(&out[2..4], &[0xFF, 0xFE]);
    assert_eq!(com::parse(&out), Some(meta));
    assert_eq!(&out[out.len() - 2..], &[0xFF, 0xD9]);
}

#[test]
fn byte_stuffing_and_extreme_pictures_decode() {
    // Full-range noise at quality 100 makes long codes and many 0xFF bytes;
    // black and white extremes reach the largest DC differences.
    let (w, h) = (48, 32);
    let mut noise = vec![0u8; w * h * 2];
    let mut s = 99u32;
    for b in noise.iter_mut() {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        *b = (s >> 24) as u8;
    }
    let mut stripes = vec![0u8; w * h * 2];
    for (i, b) in stripes.iter_mut().enumerate() {
        *b = if (i / 2 / 8) % 2 == 0 { 0 } else { 255 };
    }
    for data in [noise, stripes, vec![0u8; w * h * 2], vec![255u8; w * h * 2]] {
        for quality in [1, 50, 100] {
            let img = image(RawFormat::Yuyv, w, h, w * 2, &data);
            let mut out = Vec::new();
            encode(&img, quality, None, &mut out).unwrap();
            let (rgb, ..) = decode(&out);
            assert_eq!(rgb.len(), w * h * 3);
            assert_eq!(decode_zune(&out).len(), w * h * 3);
        }
    }
}

#[test]
fn padding_bytes_never_reach_the_picture() {
    // The same pixels with and without padding encode to the same bytes.
    for format in FORMATS {
        let (tight, s0) = frame(format, 40, 24, 0, 5);
        let (padded, s1) = frame(format, 40, 24, 24, 5);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        encode(&image(format, 40, 24, s0, &tight), 80, None, &mut a).unwrap();
        encode(&image(format, 40, 24, s1, &padded), 80, None, &mut b).unwrap();
        assert_eq!(a, b, "{format:?}");
    }
}

/// Blocks that reach every corner of the arithmetic: all black, all white,
/// a checkerboard and stripes at full swing (the largest DCT outputs a row
/// pass can make), ramps, and noise.
fn hard_blocks() -> Vec<[u8; 64]> {
    let mut blocks = vec![[0u8; 64], [255u8; 64]];
    let pick = |f: &dyn Fn(usize, usize) -> bool| {
        let mut b = [0u8; 64];
        for (i, v) in b.iter_mut().enumerate() {
            *v = if f(i / 8, i % 8) { 255 } else { 0 };
        }
        b
    };
    blocks.push(pick(&|r, c| (r + c) % 2 == 0));
    blocks.push(pick(&|_, c| c % 2 == 0));
    blocks.push(pick(&|r, _| r % 2 == 1));
    blocks.push(pick(&|r, c| c < 4 && r >= 4));
    for k in 0..8 {
        blocks.push(pick(&|r, c| (c * k / 4 + r) % 2 == 0));
        blocks.push(pick(&|r, c| c == k || r == k));
    }
    let mut ramp = [0u8; 64];
    for (i, v) in ramp.iter_mut().enumerate() {
        *v = (i * 4) as u8;
    }
    blocks.push(ramp);
    let mut s = 7u32;
    for _ in 0..200 {
        let mut b = [0u8; 64];
        for v in b.iter_mut() {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            *v = (s >> 24) as u8;
        }
        blocks.push(b);
    }
    blocks
}

#[test]
fn the_native_code_path_gives_the_portable_paths_coefficients() {
    // On the Pi (scripts/test-arm) Native is the ARMv6 assembly; on x86 the
    // test still checks the blocks' plumbing.
    use dsp::{Dsp, Native, Portable};
    let table = tables::quant_tables(95)[0];
    let q = Quant::new(&table);
    for (n, b) in hard_blocks().iter().enumerate() {
        // Every layout the fetch knows, (rows, step, lane): YU12 and NV12
        // luma, NV12 Cb and Cr, YUYV Cb and Cr (two rows summed), each
        // inside the plane and across its right edge.
        for (rows, step, lane) in [
            (1usize, 1usize, 0usize),
            (1, 2, 0),
            (1, 2, 1),
            (2, 4, 1),
            (2, 4, 3),
        ] {
            let (w, h) = (12, 8 * rows);
            let stride = w * step;
            let mut data = vec![0u8; stride * h];
            for y in 0..h {
                for x in 0..w {
                    data[y * stride + lane + x * step] = b[(y / rows) * 8 + x % 8];
                }
            }
            let plane = fetch::Plane {
                base: lane,
                stride,
                step,
                lane,
                width: w,
                height: h / rows,
                src_rows: h,
            };
            for x0 in [0, 8] {
                let (mut a, mut p) = (Native::new_block(), Portable::new_block());
                Native::fetch(&data, &plane, x0, 0, rows, &mut a);
                Portable::fetch(&data, &plane, x0, 0, rows, &mut p);
                let (da, dp) = (*Native::fdct(&mut a), *Portable::fdct(&mut p));
                assert_eq!(da, dp, "block {n}, step {step} lane {lane}, x0 {x0}: DCT");
                let (mut za, mut zp) = ([0i16; 64], [0i16; 64]);
                let ma = Native::quantize(&da, &q, &mut za);
                let mp = Portable::quantize(&dp, &q, &mut zp);
                assert_eq!(
                    (za, ma),
                    (zp, mp),
                    "block {n}, step {step}, x0 {x0}: quantised"
                );
            }
        }
    }
}

#[test]
fn the_native_code_path_gives_the_portable_paths_bytes() {
    // Word-aligned rows (pad 0 and 4) take the fast fetch on ARM, others
    // the byte-wise one.
    for format in FORMATS {
        for ((w, h), pad) in [(64, 48), (38, 22), (130, 66), (96, 64), (38, 23)]
            .into_iter()
            .flat_map(|s| [(s, 0), (s, 4), (s, 6)])
        {
            let (data, stride) = frame(format, w, h, pad, 11);
            let img = image(format, w, h, stride, &data);
            for quality in [1, 30, 80, 95, 100] {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                encode(&img, quality, None, &mut a).unwrap();
                encode_portable(&img, quality, None, &mut b).unwrap();
                assert!(
                    a == b,
                    "{format:?} {w}x{h}+{pad} q{quality}: the code paths differ"
                );
            }
        }
    }
}
