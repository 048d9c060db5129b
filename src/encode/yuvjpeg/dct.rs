//! Forward DCT and quantisation of one 8×8 block.
//!
//! The DCT is the Arai–Agui–Nakajima factorisation (5 multiplies and 29
//! additions per 8 points) in 32-bit fixed point. Its outputs carry a known
//! scale per coefficient, which — together with the 1/8 of the 2-D DCT, the
//! level shift and any summing the block fetch did — is folded into one
//! reciprocal per coefficient ([`Quant`]), so quantising is a multiply and a
//! shift. Samples enter unshifted (0..=255, or a sum of two for chroma
//! averaged from two rows): level shifting only moves the DC coefficient,
//! which [`Quant::dc_offset`] corrects once per block.

use super::tables::ZIGZAG;

/// Fixed-point bits of the DCT's multipliers. Samples come scaled to at
/// most 1020 (see [`SCALE`]); every product then stays below 2^31.
pub(super) const CONST_BITS: u32 = 14;
pub(super) const C0_382: i32 = 6270; // 0.382683433 · 2^14
pub(super) const C0_541: i32 = 8867; // 0.541196100 · 2^14
pub(super) const C0_707: i32 = 11585; // 0.707106781 · 2^14
pub(super) const C1_306: i32 = 21407; // 1.306562965 · 2^14

/// Every sample reaches the DCT as 4× a pixel value (pixels shifted left
/// by 2, or two rows summed and shifted by 1): two bits below the pixel's
/// own keep the multipliers' truncation far under a quantisation step.
pub const SCALE: i32 = 4;

/// Bits of the quantisation reciprocals: the quotient is the high word of
/// a 32 × 32-bit product (one SMMULR on ARMv6). Every divisor is above 2
/// (the smallest, quality 100 at (7, 7): 1 · 0.276² · 8 · [`SCALE`] ≈ 2.4),
/// so every reciprocal fits an i32. Each is even, twice a 31-bit one, so
/// that NEON's SQRDMULH (`(2·a·b + 2^31) >> 32`) with half of it gives
/// the same quotient.
const RECIP_BITS: u32 = 32;

/// `cos(kπ/16)·√2` (1 for k = 0): the scale of AAN output k.
const AAN: [f64; 8] = [
    1.0,
    1.387_039_845,
    1.306_562_965,
    1.175_875_602,
    1.0,
    0.785_694_958,
    0.541_196_100,
    0.275_899_379,
];

/// `x·c` in fixed point, rounded: truncating instead biases every product
/// down, and the column pass sums eight of them.
#[inline(always)]
fn mul(x: i32, c: i32) -> i32 {
    (x * c + (1 << (CONST_BITS - 1))) >> CONST_BITS
}

/// What an AAN pass computes with: one value, or the lanes of a vector
/// (the NEON path's), each giving exactly what `i32` gives.
pub(super) trait Lanes: Copy {
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    /// `(x·c + 2^13) >> 14`, for the multipliers above.
    fn mul(self, c: i32) -> Self;
}

impl Lanes for i32 {
    #[inline(always)]
    fn add(self, o: i32) -> i32 {
        self + o
    }
    #[inline(always)]
    fn sub(self, o: i32) -> i32 {
        self - o
    }
    #[inline(always)]
    fn mul(self, c: i32) -> i32 {
        mul(self, c)
    }
}

/// One 8-point AAN pass: `d[k]` in, output k out.
#[inline(always)]
pub(super) fn aan<L: Lanes>(d: [L; 8]) -> [L; 8] {
    let (tmp0, tmp7) = (d[0].add(d[7]), d[0].sub(d[7]));
    let (tmp1, tmp6) = (d[1].add(d[6]), d[1].sub(d[6]));
    let (tmp2, tmp5) = (d[2].add(d[5]), d[2].sub(d[5]));
    let (tmp3, tmp4) = (d[3].add(d[4]), d[3].sub(d[4]));

    let (t10, t13) = (tmp0.add(tmp3), tmp0.sub(tmp3));
    let (t11, t12) = (tmp1.add(tmp2), tmp1.sub(tmp2));
    let z1 = t12.add(t13).mul(C0_707);
    let o0 = t10.add(t11);
    let o4 = t10.sub(t11);
    let o2 = t13.add(z1);
    let o6 = t13.sub(z1);

    let t10 = tmp4.add(tmp5);
    let t11 = tmp5.add(tmp6);
    let t12 = tmp6.add(tmp7);
    let z5 = t10.sub(t12).mul(C0_382);
    let z2 = t10.mul(C0_541).add(z5);
    let z4 = t12.mul(C1_306).add(z5);
    let z3 = t11.mul(C0_707);
    let z11 = tmp7.add(z3);
    let z13 = tmp7.sub(z3);
    let (o1, o7) = (z11.add(z4), z11.sub(z4));
    let (o5, o3) = (z13.add(z2), z13.sub(z2));
    [o0, o1, o2, o3, o4, o5, o6, o7]
}

/// One 8-point AAN pass over `d[at], d[at + step], … d[at + 7·step]`, in
/// place.
#[inline(always)]
fn pass(d: &mut [i32; 64], at: usize, step: usize) {
    let out = aan(std::array::from_fn(|k| d[at + k * step]));
    for (k, v) in out.into_iter().enumerate() {
        d[at + k * step] = v;
    }
}

/// Scaled 2-D forward DCT of a row-major block, in place.
pub fn fdct(d: &mut [i32; 64]) {
    for row in 0..8 {
        pass(d, row * 8, 1);
    }
    for col in 0..8 {
        pass(d, col, 8);
    }
}

/// One table's reciprocals in zigzag order, for samples summed `sum` times.
#[derive(Clone)]
pub struct Quant {
    /// `2^32 / divisor` per coefficient (even), zigzag order.
    pub recip: [i32; 64],
    /// Half of each, `2^31 / divisor`, in natural order (NEON quantises
    /// rows with SQRDMULH, then reorders).
    pub natural: [i32; 64],
    /// What the level shift would have taken from the DC output.
    pub dc_offset: i32,
}

impl Quant {
    /// Reciprocals of `table` (natural order) for blocks of samples at
    /// [`SCALE`] × their pixel value.
    pub fn new(table: &[u16; 64]) -> Quant {
        let mut natural = [0i32; 64];
        for (n, r) in natural.iter_mut().enumerate() {
            let d = f64::from(table[n]) * AAN[n / 8] * AAN[n % 8] * 8.0 * f64::from(SCALE);
            let half = ((1u64 << (RECIP_BITS - 1)) as f64 / d).round();
            *r = half.min(f64::from(i32::MAX / 2)) as i32;
        }
        let mut recip = [0i32; 64];
        for (k, r) in recip.iter_mut().enumerate() {
            *r = 2 * natural[ZIGZAG[k] as usize];
        }
        Quant {
            recip,
            natural,
            dc_offset: 128 * 64 * SCALE,
        }
    }
}

/// Quantises a DCT output into zigzag order and returns the mask of
/// non-zero coefficients: bit 63 − k set when `zz[k] != 0`. Each
/// coefficient times its reciprocal, the rounded high word of the
/// product, clamped to 11 bits (the portable code; [`super::dsp`] has the
/// others).
#[inline(always)]
pub fn quantize(d: &[i32; 64], q: &Quant, zz: &mut [i16; 64]) -> u64 {
    let mut hi = 0u32;
    let mut lo = 0u32;
    let mut one = |k: usize, c: i32| {
        let v = ((i64::from(c) * i64::from(q.recip[k]) + (1 << 31)) >> 32) as i32;
        // An 8-bit block's coefficients stay within ±1024 (AC within ±929);
        // the clamp keeps a rounding excess in range.
        let v = v.clamp(-1024, 1023);
        zz[k] = v as i16;
        u32::from(v != 0)
    };
    hi = (hi << 1) | one(0, d[0] - q.dc_offset);
    for k in 1..32 {
        hi = (hi << 1) | one(k, d[ZIGZAG[k] as usize]);
    }
    for k in 32..64 {
        lo = (lo << 1) | one(k, d[ZIGZAG[k] as usize]);
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook orthonormal DCT in floating point, for comparison.
    fn reference(block: &[i32; 64]) -> [f64; 64] {
        let mut out = [0f64; 64];
        let c = |k: usize| if k == 0 { (0.5f64).sqrt() } else { 1.0 };
        for v in 0..8 {
            for u in 0..8 {
                let mut s = 0.0;
                for y in 0..8 {
                    for x in 0..8 {
                        s += (f64::from(block[y * 8 + x] / SCALE) - 128.0)
                            * (((2 * x + 1) as f64 * u as f64 * std::f64::consts::PI) / 16.0).cos()
                            * (((2 * y + 1) as f64 * v as f64 * std::f64::consts::PI) / 16.0).cos();
                    }
                }
                out[v * 8 + u] = 0.25 * c(u) * c(v) * s;
            }
        }
        out
    }

    #[test]
    fn quantised_aan_matches_the_textbook_dct() {
        // Quality 90's luma table: steps from 2 (DC) to 20.
        let table = super::super::tables::quant_tables(90)[0];
        let q = Quant::new(&table);
        let mut seed = 12345u32;
        let (mut sum, mut n) = (0f64, 0);
        for _ in 0..200 {
            let mut b = [0i32; 64];
            for v in b.iter_mut() {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                *v = (seed >> 16) as i32 % 256 * SCALE;
            }
            let want = reference(&b);
            let mut d = b;
            fdct(&mut d);
            let mut zz = [0i16; 64];
            quantize(&d, &q, &mut zz);
            for k in 0..64 {
                let n_at = ZIGZAG[k] as usize;
                let exact = want[n_at] / f64::from(table[n_at]);
                let err = (f64::from(zz[k]) - exact).abs();
                // Rounding to the nearest step (0.5), plus a little
                // fixed-point error.
                assert!(err < 0.6, "coefficient {n_at}: {} vs {exact:.2}", zz[k]);
                sum += err;
                n += 1;
            }
        }
        // Uniform rounding alone averages 0.25.
        let mean = sum / f64::from(n);
        assert!(mean < 0.3, "mean error {mean:.3}");
    }

    #[test]
    fn the_mask_marks_exactly_the_non_zero_coefficients() {
        let mut b = [128 * SCALE; 64];
        b[9] = 200 * SCALE;
        let table = [16u16; 64];
        let q = Quant::new(&table);
        fdct(&mut b);
        let mut zz = [0i16; 64];
        let mask = quantize(&b, &q, &mut zz);
        for (k, &v) in zz.iter().enumerate() {
            assert_eq!(mask >> (63 - k) & 1 == 1, v != 0, "k = {k}");
        }
        assert!(mask != 0);
    }
}
