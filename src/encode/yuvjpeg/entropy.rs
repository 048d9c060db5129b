//! Huffman coding of quantised blocks into the entropy-coded segment.
//!
//! Bits gather in a machine word (64 bits on 64-bit targets, 32 on the Pi
//! Zero) written out a word at a time; the 0xFF bytes that need a stuffed
//! 0x00 are found with one word test, so stuffing costs nothing on the
//! common path. Zero runs come from the block's non-zero mask (see
//! [`super::dct::quantize`]) with a count of leading zeros, not from a test
//! per coefficient.

use super::tables::HuffCodes;

/// The bit writer over the output vector.
pub struct Bits<'a> {
    out: &'a mut Vec<u8>,
    acc: usize,
    /// Bits of `acc` still free (its low bits).
    free: u32,
}

/// `0x0101…01` as wide as the accumulator.
const ONES: usize = usize::MAX / 255;

impl<'a> Bits<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Bits<'a> {
        Bits {
            out,
            acc: 0,
            free: usize::BITS,
        }
    }

    /// Pads the last byte with 1 bits (T.81 F.1.2.3) and writes it out.
    pub fn finish(self) {
        let used = usize::BITS - self.free;
        if used == 0 {
            return;
        }
        let w = self.acc | ((1usize << self.free) - 1);
        for b in w.to_be_bytes().into_iter().take(used.div_ceil(8) as usize) {
            self.out.push(b);
            if b == 0xFF {
                self.out.push(0);
            }
        }
    }
}

/// Appends the low `len` bits of `code` (`len` 1..=31, `code < 2^len`) to
/// an accumulator held apart from its writer: the block coder keeps it in
/// locals, which the compiler keeps in registers (in the struct next to
/// the vector it was stored after every code).
#[inline(always)]
fn put(out: &mut Vec<u8>, acc: &mut usize, free: &mut u32, code: u32, len: u32) {
    let code = code as usize;
    if len < *free {
        *free -= len;
        *acc |= code << *free;
        return;
    }
    let over = len - *free;
    word(out, *acc | (code >> over));
    *free = usize::BITS - over;
    *acc = code.checked_shl(*free).unwrap_or(0);
}

/// Writes a full accumulator, stuffing a 0x00 after each 0xFF byte.
#[inline(always)]
fn word(out: &mut Vec<u8>, w: usize) {
    // A byte of `w` is 0xFF exactly when that byte of `!w` is zero.
    let t = !w;
    if t.wrapping_sub(ONES) & !t & (ONES << 7) == 0 {
        out.extend_from_slice(&w.to_be_bytes());
    } else {
        stuffed(out, w);
    }
}

/// [`word`] when a byte needs stuffing (rare).
#[cold]
fn stuffed(out: &mut Vec<u8>, w: usize) {
    for b in w.to_be_bytes() {
        out.push(b);
        if b == 0xFF {
            out.push(0);
        }
    }
}

/// Magnitude category of `v` and its extra bits (T.81 F.1.2.1).
#[inline(always)]
fn category(v: i32) -> (u32, u32) {
    let a = v.unsigned_abs();
    let n = 32 - a.leading_zeros();
    // Negative values send v − 1 in n bits (the one's complement of |v|).
    let bits = (v - i32::from(v < 0)) as u32 & ((1u32 << n) - 1);
    (n, bits)
}

/// Codes one block: its DC as a difference from `prev_dc`, then its AC
/// coefficients from `mask` (bit 63 − k set when `zz[k] != 0`).
#[inline(always)]
pub fn block(
    bits: &mut Bits<'_>,
    zz: &[i16; 64],
    mask: u64,
    prev_dc: &mut i32,
    dc: &HuffCodes,
    ac: &HuffCodes,
) {
    let (mut acc, mut free) = (bits.acc, bits.free);
    let out = &mut *bits.out;
    let mut put = |code, len| put(out, &mut acc, &mut free, code, len);
    let v = i32::from(zz[0]);
    let (n, extra) = category(v - *prev_dc);
    *prev_dc = v;
    let n_us = n as usize;
    put(
        (u32::from(dc.code[n_us]) << n) | extra,
        u32::from(dc.len[n_us]) + n,
    );

    // Bit 63 of `m` is coefficient `pos`.
    let mut m = mask << 1;
    let mut pos = 1u32;
    while m != 0 {
        let zeros = m.leading_zeros();
        let k = pos + zeros;
        let mut run = zeros;
        while run > 15 {
            put(u32::from(ac.code[0xF0]), u32::from(ac.len[0xF0]));
            run -= 16;
        }
        let (n, extra) = category(i32::from(zz[k as usize]));
        let sym = ((run << 4) | n) as usize;
        put(
            (u32::from(ac.code[sym]) << n) | extra,
            u32::from(ac.len[sym]) + n,
        );
        // Past the zeros and the coefficient just coded (in two shifts:
        // zeros + 1 can be 64).
        m = (m << zeros) << 1;
        pos = k + 1;
    }
    if pos < 64 {
        put(u32::from(ac.code[0x00]), u32::from(ac.len[0x00]));
    }
    bits.acc = acc;
    bits.free = free;
}
