//! MJPEG pass-through: a camera's JPEG goes out as it came, never decoded
//! or re-encoded. We only check that it is whole (SOI … EOI, sane marker
//! segments up to SOS), add the standard Huffman tables when the camera
//! left them out, and add zerocam's COM segment after SOI.

use std::fmt;

use super::com::{self, FrameMeta};
use super::dht::STANDARD_DHT;

/// Why a camera frame was rejected (counted as corrupt, never forwarded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MjpegError {
    /// Fewer bytes than the smallest JPEG.
    TooShort(usize),
    /// Does not start with SOI (`FF D8`).
    NoSoi,
    /// Does not end with EOI (`FF D9`): truncated in transfer.
    NoEoi,
    /// A marker segment is malformed or runs past the end.
    BadSegment { at: usize },
    /// No frame header (SOFn) before the scan.
    NoFrameHeader,
    /// The headers end without a scan (SOS).
    NoScan,
}

impl fmt::Display for MjpegError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MjpegError::TooShort(n) => write!(f, "MJPEG frame too short ({n} bytes)"),
            MjpegError::NoSoi => write!(f, "MJPEG frame does not start with SOI"),
            MjpegError::NoEoi => write!(f, "MJPEG frame does not end with EOI (truncated)"),
            MjpegError::BadSegment { at } => write!(f, "MJPEG frame has a bad segment at {at}"),
            MjpegError::NoFrameHeader => write!(f, "MJPEG frame has no SOF header"),
            MjpegError::NoScan => write!(f, "MJPEG frame has no SOS scan"),
        }
    }
}

impl std::error::Error for MjpegError {}

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

/// Where the headers end and what they hold.
struct Scan {
    sos_at: usize,
    has_dht: bool,
    width: u32,
    height: u32,
}

/// Walks the marker segments of `jpeg[..end]` from after SOI up to SOS.
fn scan_headers(jpeg: &[u8]) -> Result<Scan, MjpegError> {
    let mut i = 2;
    let mut has_dht = false;
    let mut size = None;
    loop {
        if i + 2 > jpeg.len() {
            return Err(MjpegError::NoScan);
        }
        if jpeg[i] != 0xFF {
            return Err(MjpegError::BadSegment { at: i });
        }
        let marker = jpeg[i + 1];
        match marker {
            // Fill bytes before a marker are allowed.
            0xFF => {
                i += 1;
                continue;
            }
            // Standalone markers carry no length.
            0x01 | 0xD0..=0xD7 => {
                i += 2;
                continue;
            }
            0xD8 | 0xD9 | 0x00 => return Err(MjpegError::BadSegment { at: i }),
            0xDA => {
                let (width, height) = size.ok_or(MjpegError::NoFrameHeader)?;
                return Ok(Scan {
                    sos_at: i,
                    has_dht,
                    width,
                    height,
                });
            }
            _ => {}
        }
        if i + 4 > jpeg.len() {
            return Err(MjpegError::BadSegment { at: i });
        }
        let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
        if len < 2 || i + 2 + len > jpeg.len() {
            return Err(MjpegError::BadSegment { at: i });
        }
        match marker {
            0xC4 => has_dht = true,
            // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if marker != 0xC8 && marker != 0xCC => {
                if len < 7 {
                    return Err(MjpegError::BadSegment { at: i });
                }
                let h = u16::from_be_bytes([jpeg[i + 5], jpeg[i + 6]]) as u32;
                let w = u16::from_be_bytes([jpeg[i + 7], jpeg[i + 8]]) as u32;
                size = Some((w, h));
            }
            _ => {}
        }
        i += 2 + len;
    }
}

/// Checks a camera frame and writes the forwardable JPEG into `out`
/// (cleared first): `SOI, COM(meta), headers, [standard DHT], SOS…EOI`.
/// `meta.size` of `None` is filled from the frame's own SOF header.
pub fn pass_through(
    frame: &[u8],
    meta: &FrameMeta,
    out: &mut Vec<u8>,
) -> Result<MjpegInfo, MjpegError> {
    // Some UVC cameras hand over buffers with zero padding after EOI.
    let end = frame.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    let trimmed = frame.len() - end;
    let jpeg = &frame[..end];
    if jpeg.len() < 4 {
        return Err(MjpegError::TooShort(frame.len()));
    }
    if jpeg[0] != 0xFF || jpeg[1] != 0xD8 {
        return Err(MjpegError::NoSoi);
    }
    if jpeg[end - 2] != 0xFF || jpeg[end - 1] != 0xD9 {
        return Err(MjpegError::NoEoi);
    }
    let scan = scan_headers(jpeg)?;
    // Entropy-coded data must sit between the scan header and EOI.
    if scan.sos_at + 4 >= end - 2 {
        return Err(MjpegError::NoEoi);
    }
    let meta = FrameMeta {
        size: meta.size.or(Some((scan.width, scan.height))),
        ..*meta
    };
    out.clear();
    out.reserve(end + 64 + if scan.has_dht { 0 } else { STANDARD_DHT.len() });
    out.extend_from_slice(&jpeg[..2]);
    com::write_segment(&meta, out);
    out.extend_from_slice(&jpeg[2..scan.sos_at]);
    if !scan.has_dht {
        out.extend_from_slice(&STANDARD_DHT);
    }
    out.extend_from_slice(&jpeg[scan.sos_at..]);
    Ok(MjpegInfo {
        width: scan.width,
        height: scan.height,
        dht_inserted: !scan.has_dht,
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
        assert_eq!(pass_through(cut, &meta(), &mut out), Err(MjpegError::NoEoi));
        assert_eq!(
            pass_through(&src[2..], &meta(), &mut out),
            Err(MjpegError::NoSoi)
        );
        assert_eq!(
            pass_through(&[0xFF], &meta(), &mut out),
            Err(MjpegError::TooShort(1))
        );
        assert_eq!(
            pass_through(&[0xFF, 0xD8, 0xFF, 0xD9], &meta(), &mut out),
            Err(MjpegError::BadSegment { at: 2 })
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
