//! zerocam's own JPEG encoder for what cameras deliver: YUYV, NV12 and YU12
//! with any stride, to baseline 4:2:0 JPEG, reading the camera's buffer
//! directly.
//!
//! Why not only `jpeg-encoder`: on a Pi Zero (one ARM1176 core, no NEON)
//! encoding is the camera's whole CPU budget, and a general encoder spends
//! much of it on work a camera frame does not need — repacking rows into
//! full-resolution planes, level shifting every sample, a division per
//! coefficient, a test per coefficient for zero runs. BENCHMARKS.md has
//! the instruction counts. `jpeg-encoder` stays as the reference the tests
//! compare against.
//!
//! Stages, one file each: [`fetch`] (blocks from the buffer), [`dct`]
//! (AAN DCT + reciprocal quantisation), [`entropy`] (Huffman coding),
//! [`tables`]; [`dsp`] has their inner loops, portable, ARMv6 and NEON.

#[cfg(target_arch = "arm")]
pub mod armv6;
pub mod dct;
pub mod dsp;
pub mod entropy;
pub mod fetch;
#[cfg(target_arch = "aarch64")]
pub mod neon;
pub mod tables;

use std::sync::OnceLock;

use super::raw::{EncodeError, RawImage};
use crate::wire::com::{self, FrameMeta};
use dct::Quant;
use dsp::{Dsp, Native, Portable};
use tables::{AC_CHROMA, AC_LUMA, DC_CHROMA, DC_LUMA, HuffCodes, HuffSpec, ZIGZAG};

/// Which code path the encoder runs (named in the camera's start-up log).
pub fn path() -> &'static str {
    dsp::PATH
}

struct Codes {
    dc: [HuffCodes; 2],
    ac: [HuffCodes; 2],
}

fn codes() -> &'static Codes {
    static CODES: OnceLock<Codes> = OnceLock::new();
    CODES.get_or_init(|| Codes {
        dc: [HuffCodes::new(&DC_LUMA), HuffCodes::new(&DC_CHROMA)],
        ac: [HuffCodes::new(&AC_LUMA), HuffCodes::new(&AC_CHROMA)],
    })
}

/// Encodes `img` at `quality` (1–100) as baseline 4:2:0 JPEG into `out`
/// (cleared first), with zerocam's COM segment for `meta` right after SOI.
pub fn encode(
    img: &RawImage<'_>,
    quality: u8,
    meta: Option<&FrameMeta>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    encode_upto::<{ Stage::Entropy as u8 }, Native>(img, quality, meta, out)
}

/// [`encode`] through the portable code whatever the target (the tests
/// want the same bytes from it as from [`encode`]).
pub fn encode_portable(
    img: &RawImage<'_>,
    quality: u8,
    meta: Option<&FrameMeta>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    encode_upto::<{ Stage::Entropy as u8 }, Portable>(img, quality, meta, out)
}

/// The encoder's stages per block, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Samples from the camera's buffer ([`fetch`]).
    Fetch = 1,
    /// The forward DCT ([`dct::fdct`]).
    Dct = 2,
    /// Quantisation into zigzag order ([`dct::quantize`]).
    Quantize = 3,
    /// Huffman coding ([`entropy`]): the whole encoder.
    Entropy = 4,
}

/// Runs the encoder's block loop only up to and including `last` (the
/// output is a JPEG only for [`Stage::Entropy`]). For the bench's per-stage
/// instruction counts (tools/encode_frames.rs): each stage's cost is the
/// difference to the one before, on the very loop the camera runs.
#[doc(hidden)]
pub fn encode_stages(
    img: &RawImage<'_>,
    quality: u8,
    last: Stage,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    match last {
        Stage::Fetch => encode_upto::<{ Stage::Fetch as u8 }, Native>(img, quality, None, out),
        Stage::Dct => encode_upto::<{ Stage::Dct as u8 }, Native>(img, quality, None, out),
        Stage::Quantize => {
            encode_upto::<{ Stage::Quantize as u8 }, Native>(img, quality, None, out)
        }
        Stage::Entropy => encode_upto::<{ Stage::Entropy as u8 }, Native>(img, quality, None, out),
    }
}

/// The encoder, its stages after `LAST` left out (compiled away).
fn encode_upto<const LAST: u8, D: Dsp>(
    img: &RawImage<'_>,
    quality: u8,
    meta: Option<&FrameMeta>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    img.validate()?;
    let tables = tables::quant_tables(quality);
    out.clear();
    headers(img, &tables, meta, out);

    let layout = fetch::Layout::of(img);
    let q_luma = Quant::new(&tables[0]);
    let q_chroma = Quant::new(&tables[1]);
    let codes = codes();
    let data = img.data;
    let (w, h) = (img.width as usize, img.height as usize);
    let rows = if layout.chroma_rows_summed { 2 } else { 1 };

    // A typical frame compresses better than 1:8; growing is the rare case.
    out.reserve(w * h / 8);
    let mut bits = entropy::Bits::new(out);
    let (mut dc_y, mut dc_cb, mut dc_cr) = (0i32, 0i32, 0i32);
    let mut blk = D::new_block();
    let mut zz = [0i16; 64];
    let mut one = |plane: &fetch::Plane, x, y, r, q: &Quant, t: usize, dc: &mut i32| {
        D::fetch(data, plane, x, y, r, &mut blk);
        if LAST < Stage::Dct as u8 {
            std::hint::black_box(&blk);
            return;
        }
        let d = D::fdct(&mut blk);
        if LAST < Stage::Quantize as u8 {
            std::hint::black_box(d);
            return;
        }
        let mask = D::quantize(d, q, &mut zz);
        if LAST < Stage::Entropy as u8 {
            std::hint::black_box((&zz, mask));
            return;
        }
        entropy::block(&mut bits, &zz, mask, dc, &codes.dc[t], &codes.ac[t]);
    };
    for my in 0..h.div_ceil(16) {
        for mx in 0..w.div_ceil(16) {
            let (x, y) = (mx * 16, my * 16);
            one(&layout.y, x, y, 1, &q_luma, 0, &mut dc_y);
            one(&layout.y, x + 8, y, 1, &q_luma, 0, &mut dc_y);
            one(&layout.y, x, y + 8, 1, &q_luma, 0, &mut dc_y);
            one(&layout.y, x + 8, y + 8, 1, &q_luma, 0, &mut dc_y);
            one(&layout.cb, mx * 8, my * 8, rows, &q_chroma, 1, &mut dc_cb);
            one(&layout.cr, mx * 8, my * 8, rows, &q_chroma, 1, &mut dc_cr);
        }
    }
    bits.finish();
    out.extend_from_slice(&[0xFF, 0xD9]);
    Ok(())
}

/// SOI, COM, JFIF APP0, DQT, SOF0, DHT and SOS.
fn headers(img: &RawImage<'_>, q: &[[u16; 64]; 2], meta: Option<&FrameMeta>, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0xFF, 0xD8]);
    if let Some(meta) = meta {
        com::write_segment(meta, out);
    }
    out.extend_from_slice(&[
        0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0,
    ]);
    out.extend_from_slice(&[0xFF, 0xDB, 0, 132]);
    for (id, t) in q.iter().enumerate() {
        out.push(id as u8);
        out.extend(ZIGZAG.iter().map(|&n| t[n as usize] as u8));
    }
    let (w, h) = (img.width as u16, img.height as u16);
    out.extend_from_slice(&[0xFF, 0xC0, 0, 17, 8]);
    out.extend_from_slice(&h.to_be_bytes());
    out.extend_from_slice(&w.to_be_bytes());
    out.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    let specs: [(u8, &HuffSpec); 4] = [
        (0x00, &DC_LUMA),
        (0x10, &AC_LUMA),
        (0x01, &DC_CHROMA),
        (0x11, &AC_CHROMA),
    ];
    let len: usize = 2 + specs.iter().map(|(_, s)| 17 + s.vals.len()).sum::<usize>();
    out.extend_from_slice(&[0xFF, 0xC4]);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    for (class, spec) in specs {
        out.push(class);
        out.extend_from_slice(&spec.bits);
        out.extend_from_slice(spec.vals);
    }
    out.extend_from_slice(&[0xFF, 0xDA, 0, 12, 3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0]);
}

#[cfg(test)]
mod tests;
