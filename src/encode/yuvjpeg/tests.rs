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

const FORMATS: [RawFormat; 3] = [RawFormat::Yuyv, RawFormat::Nv12, RawFormat::Yu12];

#[test]
fn every_format_and_size_decodes_with_two_decoders() {
    // Multiples of 16, of 8 but not 16, of 2 only; tiny; padded strides.
    for (w, h) in [(64, 48), (40, 24), (38, 22), (2, 2), (18, 34), (130, 66)] {
        for format in FORMATS {
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
                assert!(p > 28.0, "{format:?} {w}x{h} pad {pad}: PSNR {p:.1} dB");
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
