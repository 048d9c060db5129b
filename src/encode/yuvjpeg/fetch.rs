//! 8×8 blocks straight from the camera's buffer: no repacking pass, no
//! level shift (the quantiser corrects the DC), and for YUYV the 4:2:0
//! chroma is the sum of two rows' samples. Samples leave at
//! [`dct::SCALE`](super::dct::SCALE) (4) × their pixel value: a pixel
//! shifted by 2, a sum of two shifted by 1.
//! Blocks that reach past the right or bottom edge repeat the last column
//! and row, as T.81 recommends.

use crate::encode::raw::{RawFormat, RawImage};

/// Where a plane's samples are: `data[base + y·stride + x·step]`.
#[derive(Clone, Copy)]
pub struct Plane {
    pub base: usize,
    pub stride: usize,
    pub step: usize,
    pub width: usize,
    pub height: usize,
}

/// The three planes of an image, and whether chroma is two rows summed.
pub struct Layout {
    pub y: Plane,
    pub cb: Plane,
    pub cr: Plane,
    /// YUYV: chroma rows come in pairs that are summed (vertical 2:1).
    pub chroma_rows_summed: bool,
}

impl Layout {
    /// The layout of a validated image (even width and height).
    pub fn of(img: &RawImage<'_>) -> Layout {
        let (w, h, s) = (img.width as usize, img.height as usize, img.stride);
        let (cw, ch) = (w / 2, h / 2);
        let plane = |base, stride, step, width, height| Plane {
            base,
            stride,
            step,
            width,
            height,
        };
        match img.format {
            // Chroma rows are the image's rows; the fetch sums 2y and 2y + 1.
            RawFormat::Yuyv => Layout {
                y: plane(0, s, 2, w, h),
                cb: plane(1, s, 4, cw, ch),
                cr: plane(3, s, 4, cw, ch),
                chroma_rows_summed: true,
            },
            RawFormat::Nv12 => Layout {
                y: plane(0, s, 1, w, h),
                cb: plane(s * h, s, 2, cw, ch),
                cr: plane(s * h + 1, s, 2, cw, ch),
                chroma_rows_summed: false,
            },
            RawFormat::Yu12 => Layout {
                y: plane(0, s, 1, w, h),
                cb: plane(s * h, s / 2, 1, cw, ch),
                cr: plane(s * h + (s / 2) * ch, s / 2, 1, cw, ch),
                chroma_rows_summed: false,
            },
        }
    }
}

/// Fills `blk` with the 8×8 block at plane pixel (`x0`, `y0`). `rows` is 2
/// when each sample is the sum of rows 2y and 2y + 1 of the buffer (then
/// `y0` counts pairs), else 1.
#[inline(always)]
pub fn block(data: &[u8], p: &Plane, x0: usize, y0: usize, rows: usize, blk: &mut [i32; 64]) {
    if x0 + 8 <= p.width && y0 + 8 <= p.height {
        for (r, out) in blk.chunks_exact_mut(8).enumerate() {
            let at = p.base + (y0 + r) * rows * p.stride + x0 * p.step;
            let line = &data[at..at + 7 * p.step + 1];
            if rows == 2 {
                let next = &data[at + p.stride..at + p.stride + 7 * p.step + 1];
                for (c, o) in out.iter_mut().enumerate() {
                    *o = (i32::from(line[c * p.step]) + i32::from(next[c * p.step])) << 1;
                }
            } else {
                for (c, o) in out.iter_mut().enumerate() {
                    *o = i32::from(line[c * p.step]) << 2;
                }
            }
        }
    } else {
        edge_block(data, p, x0, y0, rows, blk);
    }
}

/// [`block`] for blocks that cross the image's edge.
#[cold]
fn edge_block(data: &[u8], p: &Plane, x0: usize, y0: usize, rows: usize, blk: &mut [i32; 64]) {
    for (r, out) in blk.chunks_exact_mut(8).enumerate() {
        let y = (y0 + r).min(p.height - 1);
        let at = p.base + y * rows * p.stride;
        for (c, o) in out.iter_mut().enumerate() {
            let x = (x0 + c).min(p.width - 1);
            *o = if rows == 2 {
                (i32::from(data[at + x * p.step]) + i32::from(data[at + p.stride + x * p.step]))
                    << 1
            } else {
                i32::from(data[at + x * p.step]) << 2
            };
        }
    }
}
