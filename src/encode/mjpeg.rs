//! MJPEG pass-through: a camera's JPEG goes out as it came, never decoded
//! or re-encoded. We only check that it is whole (SOI … EOI, sane marker
//! segments up to SOS), add the standard Huffman tables when the camera
//! left them out, and add zerocam's COM segment after SOI.

use super::dht::STANDARD_DHT;
use crate::wire::com::{self, FrameMeta};
use crate::wire::jpeg::{self, JpegError};

/// What the checks learned about a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MjpegInfo {
    /// Size from the SOF header (what the JPEG really is).
    pub width: u32,
    pub height: u32,
    /// The standard Huffman tables were inserted.
    pub dht_inserted: bool,
    /// Trailing zero bytes trimmed after EOI.
    pub trimmed: usize,
}

/// Checks a camera frame and writes the forwardable JPEG into `out`
/// (cleared first): `SOI, COM(meta), headers, [standard DHT], SOS…EOI`.
/// `meta.size` of `None` is filled from the frame's own SOF header. The
/// checks are the relay's ([`jpeg::check_frame`]): what passes here passes
/// there.
pub fn pass_through(
    frame: &[u8],
    meta: &FrameMeta,
    out: &mut Vec<u8>,
) -> Result<MjpegInfo, JpegError> {
    // Some UVC cameras hand over buffers with zero padding after EOI.
    let end = frame.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    let trimmed = frame.len() - end;
    let jpeg = &frame[..end];
    let h = jpeg::check_frame(jpeg, usize::MAX)?;
    let meta = FrameMeta {
        size: meta
            .size
            .or(Some((u32::from(h.width), u32::from(h.height)))),
        ..*meta
    };
    out.clear();
    out.reserve(end + 64 + if h.has_dht { 0 } else { STANDARD_DHT.len() });
    out.extend_from_slice(&jpeg[..2]);
    com::write_segment(&meta, out);
    out.extend_from_slice(&jpeg[2..h.sos_at]);
    if !h.has_dht {
        out.extend_from_slice(&STANDARD_DHT);
    }
    out.extend_from_slice(&jpeg[h.sos_at..]);
    Ok(MjpegInfo {
        width: u32::from(h.width),
        height: u32::from(h.height),
        dht_inserted: !h.has_dht,
        trimmed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::raw::{RawFormat, RawImage, encode_raw, tests::make};

    /// A real baseline JPEG (jpeg-encoder uses the Annex K.3 tables).
    fn sample() -> Vec<u8> {
        let (data, stride) = make(RawFormat::Yuyv, 48, 32, 0);
        let img = RawImage {
            format: RawFormat::Yuyv,
            width: 48,
            height: 32,
            stride,
            data: &data,
        };
        let mut out = Vec::new();
        encode_raw(&img, 80, None, &mut out).unwrap();
        out
    }

    /// The same JPEG with every DHT segment cut out, as UVC cameras send it.
    fn strip_dht(jpeg: &[u8]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        let mut i = 2;
        while jpeg[i + 1] != 0xDA {
            let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
            if jpeg[i + 1] != 0xC4 {
                out.extend_from_slice(&jpeg[i..i + 2 + len]);
            }
            i += 2 + len;
        }
        out.extend_from_slice(&jpeg[i..]);
        out
    }

    fn decode(jpeg: &[u8]) -> Result<Vec<u8>, jpeg_decoder::Error> {
        jpeg_decoder::Decoder::new(jpeg).decode()
    }

    fn meta() -> FrameMeta {
        FrameMeta {
            seq: 3,
            ts_us: 1234,
            size: None,
        }
    }

    #[test]
    fn com_is_inserted_and_image_stays_identical() {
        let src = sample();
        let mut out = Vec::new();
        let info = pass_through(&src, &meta(), &mut out).unwrap();
        assert!(!info.dht_inserted);
        assert_eq!((info.width, info.height), (48, 32));
        assert_eq!(&out[2..4], &[0xFF, 0xFE]);
        assert_eq!(
            com::parse(&out),
            Some(FrameMeta {
                size: Some((48, 32)),
                ..meta()
            })
        );
        assert_eq!(decode(&out).unwrap(), decode(&src).unwrap());
    }

    #[test]
    fn standard_tables_are_inserted_when_missing() {
        let src = sample();
        let bare = strip_dht(&src);
        assert!(!bare.windows(2).any(|w| w == [0xFF, 0xC4]) || bare.len() < src.len());
        let mut out = Vec::new();
        let info = pass_through(&bare, &meta(), &mut out).unwrap();
        assert!(info.dht_inserted);
        // The inserted segment sits right before SOS and is exactly K.3.
        let sos = out.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        assert_eq!(&out[sos - STANDARD_DHT.len()..sos], &STANDARD_DHT[..]);
        // Decodes to exactly the image the tables were stripped from.
        assert_eq!(decode(&out).unwrap(), decode(&src).unwrap());
    }

    #[test]
    fn truncated_and_garbage_frames_are_rejected() {
        let src = sample();
        let mut out = Vec::new();
        let cut = &src[..src.len() / 2];
        assert_eq!(pass_through(cut, &meta(), &mut out), Err(JpegError::NoEoi));
        assert_eq!(
            pass_through(&src[2..], &meta(), &mut out),
            Err(JpegError::NoSoi)
        );
        assert_eq!(
            pass_through(&[0xFF], &meta(), &mut out),
            Err(JpegError::NoSoi)
        );
        assert_eq!(
            pass_through(&[0, 0], &meta(), &mut out),
            Err(JpegError::Empty)
        );
        assert_eq!(
            pass_through(&[0xFF, 0xD8, 0xFF, 0xD9], &meta(), &mut out),
            Err(JpegError::NoSos)
        );
        // Headers cut short but with EOI glued on (a broken transfer).
        let mut bad = src[..20].to_vec();
        bad.extend_from_slice(&[0xFF, 0xD9]);
        assert!(pass_through(&bad, &meta(), &mut out).is_err());
        // No panic on any prefix or on noise.
        for n in 0..src.len().min(700) {
            let mut f = src[..n].to_vec();
            f.extend_from_slice(&[0xFF, 0xD9]);
            let _ = pass_through(&f, &meta(), &mut out);
        }
        let mut rng = fastrand::Rng::with_seed(5);
        for _ in 0..200 {
            let mut f: Vec<u8> = (0..rng.usize(0..300)).map(|_| rng.u8(..)).collect();
            if f.len() > 4 {
                f[0] = 0xFF;
                f[1] = 0xD8;
            }
            let _ = pass_through(&f, &meta(), &mut out);
        }
    }

    #[test]
    fn trailing_zero_padding_is_trimmed() {
        let src = sample();
        let mut padded = src.clone();
        padded.extend_from_slice(&[0u8; 1000]);
        let mut out = Vec::new();
        let info = pass_through(&padded, &meta(), &mut out).unwrap();
        assert_eq!(info.trimmed, 1000);
        assert_eq!(&out[out.len() - 2..], &[0xFF, 0xD9]);
        let com_len = 4 + u16::from_be_bytes([out[4], out[5]]) as usize - 2;
        assert_eq!(out.len(), src.len() + com_len);
        assert_eq!(decode(&out).unwrap(), decode(&src).unwrap());
    }
}
