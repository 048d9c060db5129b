//! zerocam's own JPEG encoder on arbitrary frames: random formats, sizes,
//! strides, qualities and pixels. A frame the encoder accepts always becomes
//! a JPEG that decodes to its size; one it refuses is refused with an
//! error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerocam::encode::{RawFormat, RawImage, encode_raw};

fuzz_target!(|data: &[u8]| {
    let [f, w, h, pad, q, rest @ ..] = data else {
        return;
    };
    let format = match f % 3 {
        0 => RawFormat::Yuyv,
        1 => RawFormat::Nv12,
        _ => RawFormat::Yu12,
    };
    // Up to 130×130, odd sizes too (an odd YUYV width is refused), padding
    // up to 40 bytes (an odd YU12 stride is refused).
    let (w, h) = (u32::from(*w % 131), u32::from(*h % 131));
    let stride = format.min_stride(w as usize) + usize::from(*pad % 41);
    let Some(len) = format.frame_len(stride, h as usize) else {
        return;
    };
    // The pixels: the input repeated to the frame's length (or cut short,
    // which must be an error, when the input's first byte says so).
    let short = rest.first().is_some_and(|b| b % 16 == 0);
    let n = if short { len / 2 } else { len };
    let pixels: Vec<u8> = if rest.is_empty() {
        vec![0; n]
    } else {
        rest.iter().copied().cycle().take(n).collect()
    };
    let img = RawImage {
        format,
        width: w,
        height: h,
        stride,
        data: &pixels,
    };
    let mut out = Vec::new();
    if encode_raw(&img, *q, None, &mut out).is_ok() {
        let mut d = jpeg_decoder::Decoder::new(&out[..]);
        let px = d.decode().expect("the encoder's output decodes");
        let info = d.info().expect("a decoded JPEG has info");
        assert_eq!((u32::from(info.width), u32::from(info.height)), (w, h));
        assert_eq!(px.len(), (w * h * 3) as usize);
    }
});
