//! The encoder's inner loops in implementations that must agree bit for
//! bit: [`Portable`] Rust; on 32-bit ARM the ARMv6 DSP and SIMD
//! instructions the Pi Zero's ARM1176 has and a compiler does not reach for
//! on its own (`Armv6`, in `armv6.rs`); on aarch64 NEON (`Neon`, in
//! `neon.rs`). [`Native`] is the one the encoder runs; the tests run it and
//! the portable code on the same inputs (under `qemu-arm -cpu arm1176` and
//! `qemu-aarch64 -cpu cortex-a53` in scripts/test-arm) and want identical
//! output.

use super::dct::{self, Quant};
use super::fetch::{self, Plane};

/// The per-block steps: fetch, DCT, quantise.
pub trait Dsp {
    /// Where a fetched block waits for its DCT (and the DCT's output).
    type Block;
    /// A block buffer (once per frame).
    fn new_block() -> Self::Block;
    /// [`fetch::block`] into `b`.
    fn fetch(data: &[u8], p: &Plane, x0: usize, y0: usize, rows: usize, b: &mut Self::Block);
    /// [`dct::fdct`] of a fetched block; returns the coefficients in
    /// natural order.
    fn fdct(b: &mut Self::Block) -> &[i32; 64];
    /// [`dct::quantize`].
    fn quantize(d: &[i32; 64], q: &Quant, zz: &mut [i16; 64]) -> u64;
}

/// Plain Rust, for every target.
pub struct Portable;

impl Dsp for Portable {
    type Block = [i32; 64];
    fn new_block() -> [i32; 64] {
        [0; 64]
    }
    #[inline(always)]
    fn fetch(data: &[u8], p: &Plane, x0: usize, y0: usize, rows: usize, b: &mut [i32; 64]) {
        fetch::block(data, p, x0, y0, rows, b);
    }
    #[inline(always)]
    fn fdct(b: &mut [i32; 64]) -> &[i32; 64] {
        dct::fdct(b);
        b
    }
    #[inline(always)]
    fn quantize(d: &[i32; 64], q: &Quant, zz: &mut [i16; 64]) -> u64 {
        dct::quantize(d, q, zz)
    }
}

/// ARMv6 DSP and SIMD instructions through `asm!`.
#[cfg(target_arch = "arm")]
pub struct Armv6;

#[cfg(target_arch = "arm")]
impl Dsp for Armv6 {
    type Block = super::armv6::Scratch;
    fn new_block() -> super::armv6::Scratch {
        super::armv6::Scratch::new()
    }
    #[inline(always)]
    fn fetch(data: &[u8], p: &Plane, x0: usize, y0: usize, rows: usize, b: &mut Self::Block) {
        super::armv6::fetch(data, p, x0, y0, rows, b);
    }
    #[inline(always)]
    fn fdct(b: &mut Self::Block) -> &[i32; 64] {
        super::armv6::fdct(b)
    }
    #[inline(always)]
    fn quantize(d: &[i32; 64], q: &Quant, zz: &mut [i16; 64]) -> u64 {
        super::armv6::quantize(d, q, zz)
    }
}

/// NEON through `core::arch::aarch64`.
#[cfg(target_arch = "aarch64")]
pub struct Neon;

#[cfg(target_arch = "aarch64")]
impl Dsp for Neon {
    type Block = super::neon::Block;
    fn new_block() -> super::neon::Block {
        super::neon::Block::new()
    }
    #[inline(always)]
    fn fetch(data: &[u8], p: &Plane, x0: usize, y0: usize, rows: usize, b: &mut Self::Block) {
        super::neon::fetch(data, p, x0, y0, rows, b);
    }
    #[inline(always)]
    fn fdct(b: &mut Self::Block) -> &[i32; 64] {
        super::neon::fdct(b)
    }
    #[inline(always)]
    fn quantize(d: &[i32; 64], q: &Quant, zz: &mut [i16; 64]) -> u64 {
        super::neon::quantize(d, q, zz)
    }
}

/// The implementation the encoder runs on this target.
#[cfg(target_arch = "arm")]
pub type Native = Armv6;
/// The implementation the encoder runs on this target.
#[cfg(target_arch = "aarch64")]
pub type Native = Neon;
/// The implementation the encoder runs on this target.
#[cfg(not(any(target_arch = "arm", target_arch = "aarch64")))]
pub type Native = Portable;

/// Which code path the encoder runs (named in the camera's start-up log).
pub const PATH: &str = if cfg!(target_arch = "arm") {
    "armv6 dsp"
} else if cfg!(target_arch = "aarch64") {
    "neon"
} else {
    "portable"
};
