//! The encoder's inner loops with NEON, for the Zero 2 W's Cortex-A53 (and
//! any aarch64): a block's eight rows as eight vectors, the DCT's first
//! pass on all rows at once in 16-bit lanes (SQRDMULH multiplies), its
//! second in 32-bit lanes, quantisation by SQRDMULH and the zigzag order by
//! table lookups. Each step computes exactly what its portable twin does
//! ([`super::dsp::Portable`]); the tests compare them bit for bit (under
//! `qemu-aarch64 -cpu cortex-a53` in scripts/test-arm).

use core::arch::aarch64::*;

use super::dct::{Lanes, Quant, aan};
use super::fetch::{self, Plane};
use super::tables::ZIGZAG;

/// One block on its way through the DCT: the fetched samples (row-major,
/// [`super::dct::SCALE`] × the pixel) and the coefficients.
#[repr(C, align(16))]
pub struct Block {
    samples: [i16; 64],
    out: [i32; 64],
}

impl Block {
    /// An empty block.
    pub fn new() -> Block {
        Block {
            samples: [0; 64],
            out: [0; 64],
        }
    }
}

impl Default for Block {
    fn default() -> Block {
        Block::new()
    }
}

/// [`fetch::block`] into [`Block::samples`]: one load a row (LD1, or LD2 /
/// LD4 that de-interleave YUYV and NV12), a widening shift, a store.
#[inline(always)]
pub fn fetch(data: &[u8], p: &Plane, x0: usize, y0: usize, rows: usize, b: &mut Block) {
    // The loads read whole groups of the block's rows.
    let span = p.groups(x0, y0, rows);
    let vector = p.inside(x0, y0, rows)
        && span.end <= data.len()
        && matches!(
            (p.step, p.lane, rows),
            (1, 0, 1) | (2, 0 | 1, 1) | (4, 1 | 3, 2)
        );
    if !vector {
        let mut blk = [0i32; 64];
        fetch::block(data, p, x0, y0, rows, &mut blk);
        for (s, v) in b.samples.iter_mut().zip(blk) {
            *s = v as i16;
        }
        return;
    }
    let src = data[span].as_ptr();
    let out = b.samples.as_mut_ptr();
    let stride = p.stride;
    // One loop per layout, so that the loop bodies have no branch.
    macro_rules! rows {
        ($load:expr) => {
            for r in 0..8 {
                // SAFETY: every load is inside data[span] (each row's
                // groups start at span.start + n·stride and span 8·step
                // bytes); every store is one row of b.samples.
                unsafe {
                    let v: uint16x8_t = $load(src.add(r * rows * stride));
                    vst1q_s16(out.add(8 * r), vreinterpretq_s16_u16(v));
                }
            }
        };
    }
    // SAFETY (the loads below): as above.
    match (p.step, p.lane) {
        (1, _) => rows!(|a| vshll_n_u8::<2>(vld1_u8(a))),
        (2, 0) => rows!(|a| vshll_n_u8::<2>(vld2_u8(a).0)),
        (2, _) => rows!(|a| vshll_n_u8::<2>(vld2_u8(a).1)),
        (_, 1) => rows!(|a: *const u8| {
            vshlq_n_u16::<1>(vaddl_u8(vld4_u8(a).1, vld4_u8(a.add(stride)).1))
        }),
        _ => rows!(|a: *const u8| {
            vshlq_n_u16::<1>(vaddl_u8(vld4_u8(a).3, vld4_u8(a.add(stride)).3))
        }),
    }
}

/// Transposes eight vectors of eight 16-bit lanes (TRN1/TRN2 at 16, 32 and
/// 64 bits).
#[inline(always)]
unsafe fn transpose(v: &mut [int16x8_t; 8]) {
    // SAFETY: register-only NEON operations.
    unsafe {
        let t: [int16x8_t; 8] = [
            vtrn1q_s16(v[0], v[1]),
            vtrn2q_s16(v[0], v[1]),
            vtrn1q_s16(v[2], v[3]),
            vtrn2q_s16(v[2], v[3]),
            vtrn1q_s16(v[4], v[5]),
            vtrn2q_s16(v[4], v[5]),
            vtrn1q_s16(v[6], v[7]),
            vtrn2q_s16(v[6], v[7]),
        ];
        let w = |x: int16x8_t| vreinterpretq_s32_s16(x);
        let u: [int32x4_t; 8] = [
            vtrn1q_s32(w(t[0]), w(t[2])),
            vtrn1q_s32(w(t[1]), w(t[3])),
            vtrn2q_s32(w(t[0]), w(t[2])),
            vtrn2q_s32(w(t[1]), w(t[3])),
            vtrn1q_s32(w(t[4]), w(t[6])),
            vtrn1q_s32(w(t[5]), w(t[7])),
            vtrn2q_s32(w(t[4]), w(t[6])),
            vtrn2q_s32(w(t[5]), w(t[7])),
        ];
        let d = |x: int32x4_t| vreinterpretq_s64_s32(x);
        let back = |x: int64x2_t| vreinterpretq_s16_s64(x);
        for k in 0..4 {
            v[k] = back(vtrn1q_s64(d(u[k]), d(u[k + 4])));
            v[k + 4] = back(vtrn2q_s64(d(u[k]), d(u[k + 4])));
        }
    }
}

/// The first pass in 16-bit lanes: every value of a first pass fits (at
/// most 8 × 1020). `mul` is SQRDMULH by 2c, `(4·x·c + 2^15) >> 16`: the
/// same number as `(x·c + 2^13) >> 14`.
impl Lanes for int16x8_t {
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        // SAFETY: register-only NEON operation.
        unsafe { vaddq_s16(self, o) }
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        // SAFETY: as above.
        unsafe { vsubq_s16(self, o) }
    }
    #[inline(always)]
    fn mul(self, c: i32) -> Self {
        // SAFETY: as above. 2c must fit 15 bits: 1.306 does not, so it is
        // x + 0.306·x, the same rounding (x·2^14 is a multiple of 2^14).
        unsafe {
            if c >= 1 << 14 {
                vaddq_s16(self, vqrdmulhq_n_s16(self, (2 * (c - (1 << 14))) as i16))
            } else {
                vqrdmulhq_n_s16(self, (2 * c) as i16)
            }
        }
    }
}

/// The second pass in 32-bit lanes: a multiply and a rounding shift.
impl Lanes for int32x4_t {
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        // SAFETY: register-only NEON operation.
        unsafe { vaddq_s32(self, o) }
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        // SAFETY: as above.
        unsafe { vsubq_s32(self, o) }
    }
    #[inline(always)]
    fn mul(self, c: i32) -> Self {
        // SAFETY: as above.
        unsafe { vrshrq_n_s32::<14>(vmulq_n_s32(self, c)) }
    }
}

/// [`super::dct::fdct`]: rows in 16-bit lanes (transposed so that one
/// vector operation does a step of all eight), then columns in 32-bit
/// lanes, four at a time.
#[inline(always)]
pub fn fdct(b: &mut Block) -> &[i32; 64] {
    let inp = b.samples.as_ptr();
    let out = b.out.as_mut_ptr();
    // SAFETY: loads of the 64 samples and stores of the 64 coefficients,
    // inside their arrays; the rest is registers.
    unsafe {
        let mut v: [int16x8_t; 8] = [vdupq_n_s16(0); 8];
        for (r, x) in v.iter_mut().enumerate() {
            *x = vld1q_s16(inp.add(8 * r));
        }
        // v[c] = column c of every row: the row pass.
        transpose(&mut v);
        v = aan(v);
        // v[r] = row r's outputs: the column pass on each half.
        transpose(&mut v);
        for half in 0..2 {
            let mut w: [int32x4_t; 8] = [vdupq_n_s32(0); 8];
            for (x, y) in w.iter_mut().zip(v) {
                *x = if half == 0 {
                    vmovl_s16(vget_low_s16(y))
                } else {
                    vmovl_high_s16(y)
                };
            }
            let w = aan(w);
            for (r, x) in w.into_iter().enumerate() {
                vst1q_s32(out.add(8 * r + 4 * half), x);
            }
        }
    }
    &b.out
}

/// Byte indices that put 16-bit coefficients in zigzag order with table
/// lookups: for output byte `2k + i`, byte `2·ZIGZAG[k] + i` of the natural
/// order; `LOW` looks in its first 64 bytes, `HIGH` (the same minus 64) in
/// the rest. An index out of a table's range selects nothing there.
const fn zigzag_bytes(minus: u8) -> [u8; 128] {
    let mut t = [0u8; 128];
    let mut b = 0;
    while b < 128 {
        let n = ZIGZAG[b / 2];
        t[b] = (2 * n + (b % 2) as u8).wrapping_sub(minus);
        b += 1;
    }
    t
}
static ZIGZAG_LOW: [u8; 128] = zigzag_bytes(0);
static ZIGZAG_HIGH: [u8; 128] = zigzag_bytes(64);

/// Weights that turn eight "non-zero" lanes into one byte, first lane in
/// the top bit.
static LANE_BITS: [u16; 8] = [128, 64, 32, 16, 8, 4, 2, 1];

/// [`super::dct::quantize`]: SQRDMULH by the half reciprocals of
/// [`Quant::natural`], saturating narrow and clamp, zigzag by TBL/TBX, and the
/// non-zero mask from lane tests summed into bytes.
#[inline(always)]
pub fn quantize(d: &[i32; 64], q: &Quant, zz: &mut [i16; 64]) -> u64 {
    let (dp, rp, zp) = (d.as_ptr(), q.natural.as_ptr(), zz.as_mut_ptr());
    // SAFETY: loads of d and q.natural (64 each), stores of zz (64), and
    // the tables above; the rest is registers.
    unsafe {
        let (lo, hi) = (vdupq_n_s16(-1024), vdupq_n_s16(1023));
        let mut nat = [vdupq_n_s16(0); 8];
        for (j, n) in nat.iter_mut().enumerate() {
            let mut a = vld1q_s32(dp.add(8 * j));
            let b = vld1q_s32(dp.add(8 * j + 4));
            if j == 0 {
                a = vsubq_s32(a, vsetq_lane_s32::<0>(q.dc_offset, vdupq_n_s32(0)));
            }
            let ra = vld1q_s32(rp.add(8 * j));
            let rb = vld1q_s32(rp.add(8 * j + 4));
            let v = vqmovn_high_s32(vqmovn_s32(vqrdmulhq_s32(a, ra)), vqrdmulhq_s32(b, rb));
            *n = vminq_s16(vmaxq_s16(v, lo), hi);
        }
        let bytes = |x: int16x8_t| vreinterpretq_u8_s16(x);
        let low = uint8x16x4_t(bytes(nat[0]), bytes(nat[1]), bytes(nat[2]), bytes(nat[3]));
        let high = uint8x16x4_t(bytes(nat[4]), bytes(nat[5]), bytes(nat[6]), bytes(nat[7]));
        let weights = vld1q_u16(LANE_BITS.as_ptr());
        let mut sums = [vdupq_n_u16(0); 8];
        for (j, s) in sums.iter_mut().enumerate() {
            let il = vld1q_u8(ZIGZAG_LOW.as_ptr().add(16 * j));
            let ih = vld1q_u8(ZIGZAG_HIGH.as_ptr().add(16 * j));
            let z = vreinterpretq_s16_u8(vqtbx4q_u8(vqtbl4q_u8(low, il), high, ih));
            vst1q_s16(zp.add(8 * j), z);
            *s = vandq_u16(vtstq_s16(z, z), weights);
        }
        // Pairwise sums: lane j ends as the byte of coefficients 8j..8j+7.
        let p01 = vpaddq_u16(sums[0], sums[1]);
        let p23 = vpaddq_u16(sums[2], sums[3]);
        let p45 = vpaddq_u16(sums[4], sums[5]);
        let p67 = vpaddq_u16(sums[6], sums[7]);
        let all = vpaddq_u16(vpaddq_u16(p01, p23), vpaddq_u16(p45, p67));
        // Byte 0 (coefficients 0..7) is the mask's top byte.
        let m = vreinterpret_u64_u8(vrev64_u8(vmovn_u16(all)));
        vget_lane_u64::<0>(m)
    }
}
