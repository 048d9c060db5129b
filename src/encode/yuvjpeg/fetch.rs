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
    /// Which byte of its `step`-byte group a sample is (YUYV's Cr: 3 of
    /// Y0 Cb Y1 Cr): `base − lane` starts a group, so a fetch may read
    /// whole groups, which always lie inside the buffer.
    pub lane: usize,
    pub width: usize,
    pub height: usize,
    /// Buffer rows under the plane: for YUYV chroma (two rows a sample)
    /// the image's height, whose odd last row stands alone; else `height`.
    pub src_rows: usize,
}

impl Plane {
    /// Whether the 8×8 block at (`x0`, `y0`) lies inside the plane, every
    /// sample's rows in the buffer (else the edge fetch, which repeats
    /// the last column and row, takes it).
    #[inline(always)]
    pub fn inside(&self, x0: usize, y0: usize, rows: usize) -> bool {
        x0 + 8 <= self.width && y0 + 8 <= self.height && (y0 + 8) * rows <= self.src_rows
    }

    /// The bytes the whole groups of that block's buffer rows span, from
    /// its first row's first group (a SIMD fetch loads them whole; see
    /// `lane`). Inside the buffer for a block [`Plane::inside`] a
    /// validated image.
    #[inline(always)]
    pub fn groups(&self, x0: usize, y0: usize, rows: usize) -> std::ops::Range<usize> {
        let start = self.base + y0 * rows * self.stride + x0 * self.step - self.lane;
        start..start + (8 * rows - 1) * self.stride + 8 * self.step
    }
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
    /// The layout of a validated image (chroma of an odd width or
    /// height: its last pixel or row has its own).
    pub fn of(img: &RawImage<'_>) -> Layout {
        let (w, h, s) = (img.width as usize, img.height as usize, img.stride);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let plane = |base, stride, step, lane, width, height| Plane {
            base,
            stride,
            step,
            lane,
            width,
            height,
            src_rows: height,
        };
        let summed = |p: Plane| Plane { src_rows: h, ..p };
        match img.format {
            // Chroma rows are the image's rows; the fetch sums 2y and 2y + 1.
            RawFormat::Yuyv => Layout {
                y: plane(0, s, 2, 0, w, h),
                cb: summed(plane(1, s, 4, 1, cw, ch)),
                cr: summed(plane(3, s, 4, 3, cw, ch)),
                chroma_rows_summed: true,
            },
            RawFormat::Nv12 => Layout {
                y: plane(0, s, 1, 0, w, h),
                cb: plane(s * h, s, 2, 0, cw, ch),
                cr: plane(s * h + 1, s, 2, 1, cw, ch),
                chroma_rows_summed: false,
            },
            RawFormat::Yu12 => Layout {
                y: plane(0, s, 1, 0, w, h),
                cb: plane(s * h, s / 2, 1, 0, cw, ch),
                cr: plane(s * h + (s / 2) * ch, s / 2, 1, 0, cw, ch),
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
    if p.inside(x0, y0, rows) {
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
        // The second of two summed rows; an odd image's last row alone is
        // summed with itself.
        let next = if y * rows + 1 < p.src_rows {
            at + p.stride
        } else {
            at
        };
        for (c, o) in out.iter_mut().enumerate() {
            let x = (x0 + c).min(p.width - 1);
            *o = if rows == 2 {
                (i32::from(data[at + x * p.step]) + i32::from(data[next + x * p.step])) << 1
            } else {
                i32::from(data[at + x * p.step]) << 2
            };
        }
    }
}
