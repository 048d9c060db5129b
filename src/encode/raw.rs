//! Raw YUV frames → JPEG with `jpeg-encoder`, straight from the planes.
//!
//! The encoder's `ImageBuffer` trait asks for one row of full-resolution
//! Y, Cb and Cr at a time and does the 4:2:0 subsampling itself; we fill
//! those rows directly from the camera's planes, so there is no RGB round
//! trip and no per-pixel colour maths. The output `Vec` is the caller's and
//! is reused across frames.

use std::fmt;
use std::io::Write;

use jpeg_encoder::{Encoder, ImageBuffer, JpegColorType, SamplingFactor};

use crate::wire::com::{self, FrameMeta};

/// The raw pixel layouts zerocam encodes (V4L2 names in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawFormat {
    /// Packed 4:2:2, `Y0 U Y1 V` [YUYV].
    Yuyv,
    /// Y plane, then one interleaved `U V` plane at half height [NV12].
    Nv12,
    /// Y plane, then U and V planes at half width and height [YU12, I420].
    Yu12,
}

impl RawFormat {
    /// Bytes per pixel of the first plane.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            RawFormat::Yuyv => 2,
            RawFormat::Nv12 | RawFormat::Yu12 => 1,
        }
    }

    /// Bytes a frame of `height` rows with first-plane `stride` occupies,
    /// or `None` if that does not fit in a `usize` (stride and height come
    /// from the driver: on 32-bit ARM their product can wrap). For the
    /// planar formats V4L2 single-planar layouts put the chroma planes right
    /// after the Y plane with strides derived from Y's.
    pub fn frame_len(self, stride: usize, height: usize) -> Option<usize> {
        let luma = stride.checked_mul(height)?;
        match self {
            RawFormat::Yuyv => Some(luma),
            // NV12: the UV plane has Y's stride and half the rows (an odd
            // last row has its own chroma row).
            RawFormat::Nv12 => luma.checked_add(stride.checked_mul(height.div_ceil(2))?),
            // YU12: U and V have half Y's stride and half the rows each.
            RawFormat::Yu12 => luma.checked_add(
                (stride / 2)
                    .checked_mul(height.div_ceil(2))?
                    .checked_mul(2)?,
            ),
        }
    }

    /// The shortest first-plane line a `width`-pixel frame can have: YUYV's
    /// two bytes a pixel; for NV12 and YU12 also room for the chroma line of
    /// an odd width's last pixel (its own Cb and Cr: `width + 1`).
    pub fn min_stride(self, width: usize) -> usize {
        match self {
            RawFormat::Yuyv => 2 * width,
            RawFormat::Nv12 | RawFormat::Yu12 => 2 * width.div_ceil(2),
        }
    }

    /// Lower-case name, as in `hello` and the logs.
    pub fn name(self) -> &'static str {
        match self {
            RawFormat::Yuyv => "yuyv",
            RawFormat::Nv12 => "nv12",
            RawFormat::Yu12 => "yu12",
        }
    }
}

/// One raw frame as the source delivers it.
#[derive(Debug, Clone, Copy)]
pub struct RawImage<'a> {
    pub format: RawFormat,
    pub width: u32,
    pub height: u32,
    /// Bytes per line of the first plane (V4L2 `bytesperline`); may exceed
    /// `width × bytes_per_pixel` when the driver pads lines.
    pub stride: usize,
    pub data: &'a [u8],
}

/// Why a raw frame could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// Width or height zero or beyond JPEG's 65535, or an odd YUYV width
    /// (its pixels come in pairs).
    BadSize { width: u32, height: u32 },
    /// `stride` is smaller than one line of pixels.
    BadStride { stride: usize, min: usize },
    /// The buffer holds fewer bytes than the format needs.
    Short { len: usize, need: usize },
    /// The encoder itself failed.
    Encoder(String),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BadSize { width, height } => write!(
                f,
                "frame size {width}x{height} is not encodable (1..65534, YUYV widths even)"
            ),
            EncodeError::BadStride { stride, min } => {
                write!(f, "line stride {stride} is below the line length {min}")
            }
            EncodeError::Short { len, need } => {
                write!(f, "frame buffer holds {len} bytes, the format needs {need}")
            }
            EncodeError::Encoder(e) => write!(f, "jpeg encoder: {e}"),
        }
    }
}

impl std::error::Error for EncodeError {}

impl RawImage<'_> {
    /// Checks size, stride and length, so that row slicing cannot fail.
    pub fn validate(&self) -> Result<(), EncodeError> {
        let (w, h) = (self.width, self.height);
        let odd_yuyv = self.format == RawFormat::Yuyv && w % 2 != 0;
        if w == 0 || h == 0 || w > 65534 || h > 65534 || odd_yuyv {
            return Err(EncodeError::BadSize {
                width: w,
                height: h,
            });
        }
        let min = self.format.min_stride(w as usize);
        if self.stride < min || (self.format == RawFormat::Yu12 && self.stride % 2 != 0) {
            return Err(EncodeError::BadStride {
                stride: self.stride,
                min,
            });
        }
        // The last line of the last plane needs only its pixels, not the
        // padding (some drivers size buffers that tightly).
        let last_pad = match self.format {
            RawFormat::Yuyv | RawFormat::Nv12 => self.stride - min,
            RawFormat::Yu12 => self.stride / 2 - min / 2,
        };
        let need =
            self.format
                .frame_len(self.stride, h as usize)
                .ok_or(EncodeError::BadStride {
                    stride: self.stride,
                    min,
                })?
                - last_pad;
        if self.data.len() < need {
            return Err(EncodeError::Short {
                len: self.data.len(),
                need,
            });
        }
        Ok(())
    }
}

/// `ImageBuffer` over a validated [`RawImage`].
struct Planes<'a>(RawImage<'a>);

impl ImageBuffer for Planes<'_> {
    fn get_jpeg_color_type(&self) -> JpegColorType {
        JpegColorType::Ycbcr
    }

    fn width(&self) -> u16 {
        self.0.width as u16
    }

    fn height(&self) -> u16 {
        self.0.height as u16
    }

    fn fill_buffers(&self, y: u16, buffers: &mut [Vec<u8>; 4]) {
        let img = &self.0;
        let w = img.width as usize;
        let h = img.height as usize;
        let y = y as usize;
        let stride = img.stride;
        let [yb, cb, cr, _] = buffers;
        let start = yb.len();
        // resize + slice writes keep the inner loops free of capacity checks.
        yb.resize(start + w, 0);
        cb.resize(start + w, 0);
        cr.resize(start + w, 0);
        let (yo, cbo, cro) = (&mut yb[start..], &mut cb[start..], &mut cr[start..]);
        match img.format {
            RawFormat::Yuyv => {
                let row = &img.data[y * stride..y * stride + 2 * w];
                for (((px, yo), cbo), cro) in row
                    .chunks_exact(4)
                    .zip(yo.chunks_exact_mut(2))
                    .zip(cbo.chunks_exact_mut(2))
                    .zip(cro.chunks_exact_mut(2))
                {
                    yo[0] = px[0];
                    yo[1] = px[2];
                    cbo[0] = px[1];
                    cbo[1] = px[1];
                    cro[0] = px[3];
                    cro[1] = px[3];
                }
            }
            // Chroma for pixel x is sample x / 2 (an odd width's last pixel
            // has its own).
            RawFormat::Nv12 => {
                yo.copy_from_slice(&img.data[y * stride..y * stride + w]);
                let at = stride * h + (y / 2) * stride;
                let uv = &img.data[at..at + 2 * w.div_ceil(2)];
                for x in 0..w {
                    cbo[x] = uv[x / 2 * 2];
                    cro[x] = uv[x / 2 * 2 + 1];
                }
            }
            RawFormat::Yu12 => {
                yo.copy_from_slice(&img.data[y * stride..y * stride + w]);
                let cstride = stride / 2;
                let u_at = stride * h + (y / 2) * cstride;
                let v_at = stride * h + cstride * h.div_ceil(2) + (y / 2) * cstride;
                let u = &img.data[u_at..u_at + w.div_ceil(2)];
                let v = &img.data[v_at..v_at + w.div_ceil(2)];
                for x in 0..w {
                    cbo[x] = u[x / 2];
                    cro[x] = v[x / 2];
                }
            }
        }
    }
}

/// Appends the encoder's output to a Vec, putting zerocam's COM segment
/// right after SOI so the finished JPEG needs no second copy.
struct ComWriter<'a> {
    out: &'a mut Vec<u8>,
    meta: Option<FrameMeta>,
}

impl Write for ComWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.extend_from_slice(buf);
        if let Some(meta) = self.meta {
            if self.out.len() >= 2 {
                self.meta = None;
                if self.out.len() == 2 {
                    // The encoder writes SOI on its own: the usual case.
                    com::write_segment(&meta, self.out);
                } else {
                    let seg = com::segment(&meta);
                    self.out.splice(2..2, seg);
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Encodes one raw frame at `quality` (1–100, 4:2:0) into `out` (cleared
/// first), with the COM segment for `meta` when given. This is the whole
/// encode stage for raw sources; benches call it directly. It is
/// zerocam's own encoder ([`super::yuvjpeg`]).
pub fn encode_raw(
    img: &RawImage<'_>,
    quality: u8,
    meta: Option<&FrameMeta>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    super::yuvjpeg::encode(img, quality, meta, out)
}

/// [`encode_raw`] through `jpeg-encoder`: the reference zerocam's own
/// encoder is tested and benchmarked against.
pub fn encode_reference(
    img: &RawImage<'_>,
    quality: u8,
    meta: Option<&FrameMeta>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    img.validate()?;
    out.clear();
    let writer = ComWriter {
        out,
        meta: meta.copied(),
    };
    let mut enc = Encoder::new(writer, quality.clamp(1, 100));
    // jpeg-encoder switches to 4:4:4 at q ≥ 90; streaming wants the smaller
    // 4:2:0 at every quality.
    enc.set_sampling_factor(SamplingFactor::F_2_2);
    enc.encode_image(Planes(*img))
        .map_err(|e| EncodeError::Encoder(e.to_string()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A smooth synthetic image as (Y, U, V) per pixel.
    pub(crate) fn smooth(x: usize, y: usize, w: usize, h: usize) -> (u8, u8, u8) {
        let yy = 40 + (170 * x / w.max(1)) as u8 / 2 + (170 * y / h.max(1)) as u8 / 2;
        let u = 90 + (80 * x / w.max(1)) as u8;
        let v = 170 - (80 * y / h.max(1)) as u8;
        (yy, u, v)
    }

    /// Builds a frame of `format` with `pad` extra bytes per first-plane line.
    pub(crate) fn make(format: RawFormat, w: usize, h: usize, pad: usize) -> (Vec<u8>, usize) {
        make_with(format, w, h, pad, |x, y| smooth(x, y, w, h))
    }

    /// [`make`] with the picture `px(x, y) -> (Y, U, V)`: chroma is taken at
    /// the even pixel of each pair (and, for 4:2:0, the even row). Padding
    /// bytes are 0xEE, which must never show.
    pub(crate) fn make_with(
        format: RawFormat,
        w: usize,
        h: usize,
        pad: usize,
        px: impl Fn(usize, usize) -> (u8, u8, u8),
    ) -> (Vec<u8>, usize) {
        let stride = format.min_stride(w) + pad;
        let mut data = vec![0xEEu8; format.frame_len(stride, h).unwrap()];
        for y in 0..h {
            for x in 0..w {
                let (yy, u, v) = px(x, y);
                match format {
                    RawFormat::Yuyv => {
                        let (_, u, v) = px(x & !1, y);
                        data[y * stride + 2 * x] = yy;
                        data[y * stride + 2 * x + 1] = if x % 2 == 0 { u } else { v };
                    }
                    RawFormat::Nv12 => {
                        data[y * stride + x] = yy;
                        if x % 2 == 0 && y % 2 == 0 {
                            let at = stride * h + (y / 2) * stride + x;
                            data[at] = u;
                            data[at + 1] = v;
                        }
                    }
                    RawFormat::Yu12 => {
                        data[y * stride + x] = yy;
                        if x % 2 == 0 && y % 2 == 0 {
                            let cs = stride / 2;
                            data[stride * h + (y / 2) * cs + x / 2] = u;
                            data[stride * h + cs * h.div_ceil(2) + (y / 2) * cs + x / 2] = v;
                        }
                    }
                }
            }
        }
        (data, stride)
    }

    fn decode(jpeg: &[u8]) -> (Vec<u8>, usize, usize) {
        let mut d = jpeg_decoder::Decoder::new(jpeg);
        let px = d.decode().unwrap();
        let info = d.info().unwrap();
        (px, info.width as usize, info.height as usize)
    }

    /// PSNR of the decoded RGB against the source converted to RGB.
    fn psnr(format: RawFormat, w: usize, h: usize, pad: usize) -> f64 {
        let (data, stride) = make(format, w, h, pad);
        let img = RawImage {
            format,
            width: w as u32,
            height: h as u32,
            stride,
            data: &data,
        };
        let meta = FrameMeta {
            seq: 7,
            ts_us: 99,
            size: Some((w as u32, h as u32)),
        };
        let mut out = Vec::new();
        encode_raw(&img, 90, Some(&meta), &mut out).unwrap();
        assert_eq!(com::parse(&out), Some(meta));
        let (rgb, dw, dh) = decode(&out);
        assert_eq!((dw, dh), (w, h));
        let mut se = 0f64;
        for y in 0..h {
            for x in 0..w {
                // Chroma is sampled at the top-left of each 2x2 block.
                let (yy, _, _) = smooth(x, y, w, h);
                let (_, u, v) = smooth(x & !1, y & !1, w, h);
                let (yy, u, v) = (yy as f64, u as f64 - 128.0, v as f64 - 128.0);
                let r = yy + 1.402 * v;
                let g = yy - 0.344136 * u - 0.714136 * v;
                let b = yy + 1.772 * u;
                for (c, want) in [r, g, b].into_iter().enumerate() {
                    let got = rgb[(y * w + x) * 3 + c] as f64;
                    se += (got - want.clamp(0.0, 255.0)).powi(2);
                }
            }
        }
        let mse = se / (w * h * 3) as f64;
        10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10()
    }

    #[test]
    fn yuyv_nv12_yu12_decode_close_to_the_source() {
        for format in [RawFormat::Yuyv, RawFormat::Nv12, RawFormat::Yu12] {
            let p = psnr(format, 64, 48, 0);
            assert!(p > 30.0, "{format:?}: PSNR {p:.1} dB");
        }
    }

    #[test]
    fn padded_strides_are_honoured() {
        for format in [RawFormat::Yuyv, RawFormat::Nv12, RawFormat::Yu12] {
            // Odd sizes of padding, non-multiple-of-16 sizes.
            let p = psnr(format, 38, 22, 24);
            assert!(p > 30.0, "{format:?}: PSNR {p:.1} dB");
        }
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        let data = vec![0u8; 100];
        let img = |format, width, height, stride| RawImage {
            format,
            width,
            height,
            stride,
            data: &data,
        };
        let mut out = Vec::new();
        assert!(matches!(
            encode_raw(&img(RawFormat::Yuyv, 3, 2, 6), 80, None, &mut out),
            Err(EncodeError::BadSize { .. })
        ));
        assert!(matches!(
            encode_raw(&img(RawFormat::Yuyv, 8, 2, 8), 80, None, &mut out),
            Err(EncodeError::BadStride { .. })
        ));
        assert!(matches!(
            encode_raw(&img(RawFormat::Nv12, 10, 10, 10), 80, None, &mut out),
            Err(EncodeError::Short { .. })
        ));
        // A driver's stride whose product with the height does not fit a
        // usize (32-bit ARM: 4 GiB) is refused, not wrapped into a small
        // length that would pass the size check.
        for format in [RawFormat::Yuyv, RawFormat::Nv12, RawFormat::Yu12] {
            let huge = usize::MAX / 64;
            assert_eq!(format.frame_len(huge, 4096), None);
            assert!(matches!(
                encode_raw(&img(format, 16, 4096, huge), 80, None, &mut out),
                Err(EncodeError::BadStride { .. })
            ));
        }
        // Exactly enough is fine.
        let (d, stride) = make(RawFormat::Yu12, 8, 8, 0);
        let ok = RawImage {
            format: RawFormat::Yu12,
            width: 8,
            height: 8,
            stride,
            data: &d,
        };
        encode_raw(&ok, 80, None, &mut out).unwrap();
        assert_eq!(&out[..2], &[0xFF, 0xD8]);
        assert_eq!(com::parse(&out), None);
    }
}
