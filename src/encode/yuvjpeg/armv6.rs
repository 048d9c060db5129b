//! The encoder's inner loops in ARMv6 assembly, for the Pi Zero's ARM1176
//! (one core, no NEON), with the instructions ARMv6 added that a compiler
//! does not use for this code on its own: SIMD on two 16-bit halves of a
//! register (SADD16, SSUB16, PKHBT), 16 × 16-bit multiply-accumulate
//! (SMLAxy), the rounded high word of a 32 × 32 product (SMMULR) and
//! saturation (SSAT). Each step computes exactly what its portable twin
//! does ([`super::dsp::Portable`]); the tests compare them bit for bit.
//!
//! Every 32-bit ARM target zerocam builds for is ARMv6 or later (the Pi
//! Zero's arm-unknown-linux-musleabihf, ARMv7 for later Pis); an ARMv5
//! target would fail to assemble these, not run them wrongly.

use core::arch::asm;

use super::dct::{C0_382, C0_541, C0_707, C1_306, CONST_BITS, Quant};
use super::fetch::{self, Plane};
use super::tables::ZIGZAG;

/// One block on its way through the DCT, and the constants the assembly
/// reads next to it (one base register reaches everything: the column pass
/// needs ten registers, and the ARM has eleven to give).
#[repr(C)]
pub struct Scratch {
    /// The fetched block, two rows per word: word `8p + k` holds row 2p's
    /// sample k in its low half and row 2p + 1's in its high half, so the
    /// row pass works on two rows at once. Byte offset 0.
    packed: [u32; 32],
    /// The row pass's output by column: `cols[8k + r]` is row r's output
    /// k. Byte offset 128.
    cols: [i16; 64],
    /// [`C0_707`] | [`C0_382`] << 16, [`C0_541`] | [`C1_306`] << 16, the
    /// rounding term, then the four multipliers alone. Byte offset 256.
    consts: [i32; 8],
    /// The coefficients, natural order. Byte offset 288.
    out: [i32; 64],
}

impl Scratch {
    /// An empty block with its constants.
    pub fn new() -> Scratch {
        Scratch {
            packed: [0; 32],
            cols: [0; 64],
            consts: [
                C0_707 | (C0_382 << 16),
                C0_541 | (C1_306 << 16),
                1 << (CONST_BITS - 1),
                C0_707,
                C0_382,
                C0_541,
                C1_306,
                0,
            ],
            out: [0; 64],
        }
    }
}

impl Default for Scratch {
    fn default() -> Scratch {
        Scratch::new()
    }
}

/// Bytes 0 and 2 of a word, times 4, as a halfword each: `AND` with a
/// shifted operand (`LSL #2`; `LSR #6` for bytes 1 and 3) takes two
/// samples out of a word and scales them in one instruction.
const BYTES_0_2_X4: u32 = 0x03FC_03FC;

/// [`fetch::block`] into the two-rows-a-word layout of [`Scratch::packed`].
/// Where the block's rows start on word boundaries (the usual case: the
/// buffer is page-aligned and strides are multiples of 4) one load brings
/// four luma samples of YU12 or NV12, or two of YUYV luma or NV12 chroma,
/// and two instructions a sample pair them across rows (AND, PKHBT/PKHTB,
/// STR): under 2 instructions a sample, where compiled Rust took 5 (the
/// target forbids the compiler unaligned loads, so it loads bytes).
#[inline(always)]
pub fn fetch(data: &[u8], p: &Plane, x0: usize, y0: usize, rows: usize, s: &mut Scratch) {
    if p.inside(x0, y0, rows) {
        let span = p.groups(x0, y0, rows);
        let src = data.as_ptr().wrapping_add(span.start);
        let out = s.packed.as_mut_ptr();
        if (src as usize | p.stride) & 3 == 0 && span.end <= data.len() {
            match (p.step, p.lane, rows) {
                // SAFETY (all five): the block's rows lie inside `data`
                // (checked just above: `span`), start on word boundaries,
                // and `out` is the 32 words of s.packed.
                (1, 0, 1) => return unsafe { words_1(src, p.stride, out) },
                (2, 0, 1) => return unsafe { words_2_low(src, p.stride, out) },
                (2, 1, 1) => return unsafe { words_2_high(src, p.stride, out) },
                (4, 1, 2) => return unsafe { yuyv_chroma::<1>(src, p.stride, out) },
                (4, 3, 2) => return unsafe { yuyv_chroma::<3>(src, p.stride, out) },
                _ => {}
            }
        }
    }
    // Edges, rows off word boundaries, other layouts: the portable fetch,
    // packed.
    let mut blk = [0i32; 64];
    fetch::block(data, p, x0, y0, rows, &mut blk);
    for (k, o) in s.packed.iter_mut().enumerate() {
        let (pr, c) = (k / 8, k % 8);
        *o = blk[16 * pr + c] as u32 | ((blk[16 * pr + 8 + c] as u32) << 16);
    }
}

/// Assembly text: load word `$j` of both rows of a pair (`{a}`, `{b}`).
macro_rules! load_pair {
    ($j:literal) => {
        concat!(
            "ldr {w0}, [{a}, #",
            $j,
            "]\n",
            "ldr {w1}, [{b}, #",
            $j,
            "]\n"
        )
    };
}

/// Assembly text: take two samples from each loaded word (AND with the
/// shifted words), pair them across the rows (PKHBT, PKHTB) and store the
/// two pairs at byte offsets `$lo` and `$hi` of this row pair's output.
macro_rules! store_pairs {
    ($shift:literal, $lo:literal, $hi:literal) => {
        concat!(
            "and {t0}, {m}, {w0}, ",
            $shift,
            "\n",
            "and {t1}, {m}, {w1}, ",
            $shift,
            "\n",
            "pkhbt {t2}, {t0}, {t1}, lsl #16\n",
            "str {t2}, [{out}, #{o} + ",
            $lo,
            "]\n",
            "pkhtb {t2}, {t1}, {t0}, asr #16\n",
            "str {t2}, [{out}, #{o} + ",
            $hi,
            "]\n",
        )
    };
}

/// Runs `$body` (assembly text over `{a}`, `{b}`, `{w0}`, `{w1}`, `{t0..2}`,
/// `{m}`, `{out}`, `{o}`) on each of the block's four row pairs, `{a}`
/// advancing two rows each time and `{o}` 32 bytes (unrolled: a loop's
/// counter cost more than it saved).
macro_rules! each_row_pair {
    ($src:expr, $stride:expr, $out:expr, $body:expr) => {{
        let mut a: *const u8 = $src;
        each_row_pair!(@one a, $stride, $out, $body, 0);
        each_row_pair!(@one a, $stride, $out, $body, 32);
        each_row_pair!(@one a, $stride, $out, $body, 64);
        each_row_pair!(@one a, $stride, $out, $body, 96);
        let _ = a;
    }};
    (@one $a:ident, $stride:expr, $out:expr, $body:expr, $o:literal) => {
        // SAFETY: the caller's (rows inside the buffer, word-aligned; `$out`
        // has 32 words, this pair's at byte `$o`).
        unsafe {
            asm!(
                "add {b}, {a}, {st}",
                $body,
                "add {a}, {b}, {st}",
                a = inout(reg) $a,
                b = out(reg) _,
                st = in(reg) $stride,
                m = in(reg) BYTES_0_2_X4,
                out = in(reg) $out,
                o = const $o,
                w0 = out(reg) _, w1 = out(reg) _,
                t0 = out(reg) _, t1 = out(reg) _, t2 = out(reg) _,
                options(nostack),
            );
        }
    };
}

/// Four row pairs of a one-byte-a-sample plane (YU12, NV12 luma): per pair
/// 4 loads, 8 ANDs, 8 packs, 8 stores for 16 samples.
///
/// # Safety
/// `src` and its next 7 rows (`stride` apart) hold 8 readable bytes each,
/// all word-aligned; `out` has 32 writable words.
#[inline(always)]
unsafe fn words_1(src: *const u8, stride: usize, out: *mut u32) {
    each_row_pair!(
        src,
        stride,
        out,
        concat!(
            load_pair!(0),
            store_pairs!("lsl #2", 0, 8),
            store_pairs!("lsr #6", 4, 12),
            load_pair!(4),
            store_pairs!("lsl #2", 16, 24),
            store_pairs!("lsr #6", 20, 28),
        )
    );
}

/// Assembly text for a row pair of two samples a word: its four words.
macro_rules! two_a_word {
    ($shift:literal) => {
        concat!(
            load_pair!(0),
            store_pairs!($shift, 0, 4),
            load_pair!(4),
            store_pairs!($shift, 8, 12),
            load_pair!(8),
            store_pairs!($shift, 16, 20),
            load_pair!(12),
            store_pairs!($shift, 24, 28),
        )
    };
}

/// Four row pairs of a plane whose samples are bytes 0 and 2 of each word
/// (YUYV luma, NV12 Cb): per pair 8 loads, 8 ANDs, 8 packs, 8 stores for 16
/// samples.
///
/// # Safety
/// `src` and its next 7 rows (`stride` apart) hold 16 readable bytes each,
/// all word-aligned; `out` has 32 writable words.
#[inline(always)]
unsafe fn words_2_low(src: *const u8, stride: usize, out: *mut u32) {
    each_row_pair!(src, stride, out, two_a_word!("lsl #2"));
}

/// [`words_2_low`] for samples in bytes 1 and 3 (NV12 Cr).
///
/// # Safety
/// As [`words_2_low`].
#[inline(always)]
unsafe fn words_2_high(src: *const u8, stride: usize, out: *mut u32) {
    each_row_pair!(src, stride, out, two_a_word!("lsr #6"));
}

/// Four row pairs of YUYV chroma, each sample the sum of two buffer rows'
/// (byte `LANE` of each 4-byte group: 1 for Cb, 3 for Cr): per output word
/// 4 loads, 2 extracts, 2 extract-and-adds, a shift, an OR and a store.
///
/// # Safety
/// `src` and its next 15 rows (`stride` apart) hold 32 readable bytes
/// each, all word-aligned; `out` has 32 writable words.
#[inline(always)]
unsafe fn yuyv_chroma<const LANE: u32>(src: *const u8, stride: usize, out: *mut u32) {
    for pr in 0..4 {
        let a = src.wrapping_add(4 * pr * stride);
        let (b, c, d) = (
            a.wrapping_add(stride),
            a.wrapping_add(2 * stride),
            a.wrapping_add(3 * stride),
        );
        let o = out.wrapping_add(8 * pr);
        // Word k of the four rows: two sums of two rows, paired.
        macro_rules! chroma_word {
            ($k:literal, $e0:literal, $a0:literal, $e1:literal, $a1:literal) => {
                asm!(
                    "ldr {w0}, [{a}, #4 * {k}]",
                    "ldr {w1}, [{b}, #4 * {k}]",
                    $e0,
                    $a0,
                    "ldr {w1}, [{c}, #4 * {k}]",
                    "ldr {w2}, [{d}, #4 * {k}]",
                    $e1,
                    $a1,
                    "lsl {w0}, {w0}, #1",
                    "orr {w0}, {w0}, {w1}, lsl #17",
                    "str {w0}, [{o}, #4 * {k}]",
                    a = in(reg) a, b = in(reg) b, c = in(reg) c, d = in(reg) d,
                    o = in(reg) o, k = const $k,
                    w0 = out(reg) _, w1 = out(reg) _, w2 = out(reg) _,
                    options(nostack, preserves_flags),
                )
            };
        }
        macro_rules! word {
            ($k:literal) => {
                // SAFETY: the caller's: rows a..d are 4 of the block's 16,
                // word k of each is inside its 32 bytes, o[k] inside out.
                unsafe {
                    // Byte 1 of a group: extract with UXTB/UXTAB, rotated;
                    // byte 3: a shift right by 24 does it.
                    if LANE == 1 {
                        chroma_word!(
                            $k,
                            "uxtb {w0}, {w0}, ror #8",
                            "uxtab {w0}, {w0}, {w1}, ror #8",
                            "uxtb {w1}, {w1}, ror #8",
                            "uxtab {w1}, {w1}, {w2}, ror #8"
                        );
                    } else {
                        chroma_word!(
                            $k,
                            "lsr {w0}, {w0}, #24",
                            "add {w0}, {w0}, {w1}, lsr #24",
                            "lsr {w1}, {w1}, #24",
                            "add {w1}, {w1}, {w2}, lsr #24"
                        );
                    }
                }
            };
        }
        word!(0);
        word!(1);
        word!(2);
        word!(3);
        word!(4);
        word!(5);
        word!(6);
        word!(7);
    }
}

/// [`super::dct::fdct`]: the row pass on two rows at once in 16-bit halves
/// (every value of a row pass fits: at most 8 × 1020), the column pass in
/// 32 bits. 34 instructions a row and 53 a column, where the compiled
/// Rust takes about 78 for either.
#[inline(always)]
pub fn fdct(s: &mut Scratch) -> &[i32; 64] {
    let base = s as *mut Scratch as *mut u8;
    macro_rules! row_pair {
        ($p:literal) => {
            // SAFETY: every access is at a constant offset inside *s
            // (packed: 0..128, cols: 128..256, consts: 256..288); the rest
            // is registers and the GE/Q flags.
            unsafe {
                asm!(
                    "ldr {a0}, [{b}, #{i} + 0]",
                    "ldr {a7}, [{b}, #{i} + 28]",
                    "sadd16 {t}, {a0}, {a7}",   // tmp0
                    "ssub16 {a7}, {a0}, {a7}",  // tmp7
                    "ldr {a1}, [{b}, #{i} + 4]",
                    "ldr {a6}, [{b}, #{i} + 24]",
                    "sadd16 {a0}, {a1}, {a6}",  // tmp1
                    "ssub16 {a6}, {a1}, {a6}",  // tmp6
                    "ldr {a2}, [{b}, #{i} + 8]",
                    "ldr {a5}, [{b}, #{i} + 20]",
                    "sadd16 {a1}, {a2}, {a5}",  // tmp2
                    "ssub16 {a5}, {a2}, {a5}",  // tmp5
                    "ldr {a3}, [{b}, #{i} + 12]",
                    "ldr {a4}, [{b}, #{i} + 16]",
                    "sadd16 {a2}, {a3}, {a4}",  // tmp3
                    "ssub16 {a4}, {a3}, {a4}",  // tmp4
                    // Even part.
                    "sadd16 {a3}, {t}, {a2}",   // t10
                    "ssub16 {t}, {t}, {a2}",    // t13
                    "sadd16 {a2}, {a0}, {a1}",  // t11
                    "ssub16 {a0}, {a0}, {a1}",  // t12
                    "sadd16 {a1}, {a3}, {a2}",  // o0
                    "ssub16 {a3}, {a3}, {a2}",  // o4
                    "str {a1}, [{b}, #{o} + 0]",
                    "str {a3}, [{b}, #{o} + 64]",
                    "sadd16 {a1}, {a0}, {t}",   // t12 + t13
                    "ldr {a2}, [{b}, #256]",    // C0_707 | C0_382 << 16
                    "ldr {a3}, [{b}, #264]",    // rounding
                    "smlabb {a0}, {a1}, {a2}, {a3}",
                    "smlatb {a1}, {a1}, {a2}, {a3}",
                    "asr {a0}, {a0}, #14",
                    "pkhbt {a0}, {a0}, {a1}, lsl #2", // z1
                    "sadd16 {a1}, {t}, {a0}",   // o2
                    "ssub16 {t}, {t}, {a0}",    // o6
                    "str {a1}, [{b}, #{o} + 32]",
                    "str {t}, [{b}, #{o} + 96]",
                    // Odd part.
                    "sadd16 {t}, {a4}, {a5}",   // t10
                    "sadd16 {a4}, {a5}, {a6}",  // t11
                    "sadd16 {a5}, {a6}, {a7}",  // t12
                    "ssub16 {a0}, {t}, {a5}",   // t10 - t12
                    "smlabt {a1}, {a0}, {a2}, {a3}",
                    "smlatt {a6}, {a0}, {a2}, {a3}",
                    "asr {a1}, {a1}, #14",
                    "pkhbt {a0}, {a1}, {a6}, lsl #2", // z5
                    "smlabb {a1}, {a4}, {a2}, {a3}",
                    "smlatb {a6}, {a4}, {a2}, {a3}",
                    "asr {a1}, {a1}, #14",
                    "pkhbt {a4}, {a1}, {a6}, lsl #2", // z3
                    "ldr {a2}, [{b}, #260]",    // C0_541 | C1_306 << 16
                    "smlabb {a1}, {t}, {a2}, {a3}",
                    "smlatb {a6}, {t}, {a2}, {a3}",
                    "asr {a1}, {a1}, #14",
                    "pkhbt {t}, {a1}, {a6}, lsl #2",
                    "sadd16 {t}, {t}, {a0}",    // z2
                    "smlabt {a1}, {a5}, {a2}, {a3}",
                    "smlatt {a6}, {a5}, {a2}, {a3}",
                    "asr {a1}, {a1}, #14",
                    "pkhbt {a5}, {a1}, {a6}, lsl #2",
                    "sadd16 {a5}, {a5}, {a0}",  // z4
                    "sadd16 {a1}, {a7}, {a4}",  // z11
                    "ssub16 {a7}, {a7}, {a4}",  // z13
                    "sadd16 {a0}, {a7}, {t}",   // o5
                    "ssub16 {a7}, {a7}, {t}",   // o3
                    "sadd16 {a6}, {a1}, {a5}",  // o1
                    "ssub16 {a1}, {a1}, {a5}",  // o7
                    "str {a6}, [{b}, #{o} + 16]",
                    "str {a7}, [{b}, #{o} + 48]",
                    "str {a0}, [{b}, #{o} + 80]",
                    "str {a1}, [{b}, #{o} + 112]",
                    b = in(reg) base,
                    i = const 32 * $p,
                    o = const 128 + 4 * $p,
                    a0 = out(reg) _, a1 = out(reg) _, a2 = out(reg) _, a3 = out(reg) _,
                    a4 = out(reg) _, a5 = out(reg) _, a6 = out(reg) _, a7 = out(reg) _,
                    t = out(reg) _,
                    options(nostack),
                );
            }
        };
    }
    macro_rules! column {
        ($k:literal) => {
            // SAFETY: as for the row pass (out: 288..544).
            unsafe {
                asm!(
                    "ldrsh {a0}, [{b}, #{i} + 0]",
                    "ldrsh {a7}, [{b}, #{i} + 14]",
                    "add {t}, {a0}, {a7}",      // tmp0
                    "sub {a7}, {a0}, {a7}",     // tmp7
                    "ldrsh {a1}, [{b}, #{i} + 2]",
                    "ldrsh {a6}, [{b}, #{i} + 12]",
                    "add {a0}, {a1}, {a6}",     // tmp1
                    "sub {a6}, {a1}, {a6}",     // tmp6
                    "ldrsh {a2}, [{b}, #{i} + 4]",
                    "ldrsh {a5}, [{b}, #{i} + 10]",
                    "add {a1}, {a2}, {a5}",     // tmp2
                    "sub {a5}, {a2}, {a5}",     // tmp5
                    "ldrsh {a3}, [{b}, #{i} + 6]",
                    "ldrsh {a4}, [{b}, #{i} + 8]",
                    "add {a2}, {a3}, {a4}",     // tmp3
                    "sub {a4}, {a3}, {a4}",     // tmp4
                    // Even part.
                    "add {a3}, {t}, {a2}",      // t10
                    "sub {t}, {t}, {a2}",       // t13
                    "add {a2}, {a0}, {a1}",     // t11
                    "sub {a0}, {a0}, {a1}",     // t12
                    "add {a1}, {a3}, {a2}",     // o0
                    "sub {a3}, {a3}, {a2}",     // o4
                    "str {a1}, [{b}, #{o} + 0]",
                    "str {a3}, [{b}, #{o} + 128]",
                    "add {a1}, {a0}, {t}",      // t12 + t13
                    "ldr {a2}, [{b}, #268]",    // C0_707
                    "ldr {a3}, [{b}, #264]",    // rounding
                    "mla {a0}, {a1}, {a2}, {a3}",
                    "add {a1}, {t}, {a0}, asr #14", // o2
                    "sub {t}, {t}, {a0}, asr #14",  // o6
                    "str {a1}, [{b}, #{o} + 64]",
                    "str {t}, [{b}, #{o} + 192]",
                    // Odd part.
                    "add {t}, {a4}, {a5}",      // t10
                    "add {a4}, {a5}, {a6}",     // t11
                    "add {a5}, {a6}, {a7}",     // t12
                    "sub {a0}, {t}, {a5}",      // t10 - t12
                    "ldr {a1}, [{b}, #272]",    // C0_382
                    "mla {a6}, {a0}, {a1}, {a3}",
                    "asr {a6}, {a6}, #14",      // z5
                    "mla {a0}, {a4}, {a2}, {a3}",
                    "add {a4}, {a7}, {a0}, asr #14", // z11 = tmp7 + z3
                    "sub {a7}, {a7}, {a0}, asr #14", // z13 = tmp7 - z3
                    "ldr {a1}, [{b}, #276]",    // C0_541
                    "mla {a0}, {t}, {a1}, {a3}",
                    "add {t}, {a6}, {a0}, asr #14",  // z2
                    "ldr {a1}, [{b}, #280]",    // C1_306
                    "mla {a0}, {a5}, {a1}, {a3}",
                    "add {a5}, {a6}, {a0}, asr #14", // z4
                    "add {a0}, {a7}, {t}",      // o5
                    "sub {a7}, {a7}, {t}",      // o3
                    "add {a1}, {a4}, {a5}",     // o1
                    "sub {a4}, {a4}, {a5}",     // o7
                    "str {a1}, [{b}, #{o} + 32]",
                    "str {a7}, [{b}, #{o} + 96]",
                    "str {a0}, [{b}, #{o} + 160]",
                    "str {a4}, [{b}, #{o} + 224]",
                    b = in(reg) base,
                    i = const 128 + 16 * $k,
                    o = const 288 + 4 * $k,
                    a0 = out(reg) _, a1 = out(reg) _, a2 = out(reg) _, a3 = out(reg) _,
                    a4 = out(reg) _, a5 = out(reg) _, a6 = out(reg) _, a7 = out(reg) _,
                    t = out(reg) _,
                    options(nostack),
                );
            }
        };
    }
    row_pair!(0);
    row_pair!(1);
    row_pair!(2);
    row_pair!(3);
    column!(0);
    column!(1);
    column!(2);
    column!(3);
    column!(4);
    column!(5);
    column!(6);
    column!(7);
    &s.out
}

/// [`super::dct::quantize`] in seven instructions a coefficient:
/// two loads, SMMULR, SSAT #11, the store, and a compare with a
/// conditional OR of the coefficient's constant bit into the mask. (As
/// Rust, the compiler kept the 64 results on the stack to build the mask
/// afterwards: nine.)
#[inline(always)]
pub fn quantize(d: &[i32; 64], q: &Quant, zz: &mut [i16; 64]) -> u64 {
    let out = zz.as_mut_ptr();
    let (mut hi, mut lo) = (0u32, 0u32);
    macro_rules! coefficient {
        ($word:ident, $bit:expr, $k:literal, $c:expr) => {
            // SAFETY: the store is to zz[$k], inside the array `out`
            // points to; registers otherwise (the flags are clobbered,
            // which asm! assumes without `preserves_flags`).
            unsafe {
                asm!(
                    "smmulr {v}, {c}, {r}",
                    "ssat {v}, #11, {v}",
                    "strh {v}, [{out}, #{at}]",
                    "cmp {v}, #0",
                    "orrne {m}, {m}, #{bit}",
                    v = out(reg) _,
                    c = in(reg) $c,
                    r = in(reg) q.recip[$k],
                    out = in(reg) out,
                    at = const 2 * $k,
                    m = inout(reg) $word,
                    bit = const $bit,
                    options(nostack),
                );
            }
        };
    }
    macro_rules! coefficients {
        ($word:ident, $top:literal: $($k:literal)*) => {$(
            coefficient!($word, 1u32 << ($top - $k), $k, d[ZIGZAG[$k] as usize]);
        )*};
    }
    coefficient!(hi, 1u32 << 31, 0, d[0] - q.dc_offset);
    coefficients!(hi, 31: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31);
    coefficients!(lo, 63: 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63);
    (u64::from(hi) << 32) | u64::from(lo)
}
