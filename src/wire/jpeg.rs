//! The one JPEG marker walker. The camera (MJPEG pass-through), the relay
//! (ingest validation) and the COM reader all walk a JPEG's header with it,
//! so they accept and refuse exactly the same frames. Pure: bytes in,
//! verdicts out; fuzzed (`fuzz/fuzz_targets/jpeg_walk.rs`).
//!
//! Rules (ITU T.81 B.1.1): the frame starts with SOI (`FF D8`); marker
//! segments follow, each `FF <marker> <len:u16 BE, counting itself> body`,
//! except the standalone markers TEM (`01`) and RSTn (`D0`–`D7`); any number
//! of fill bytes (`FF`) may precede a marker. The header ends with the
//! start-of-scan segment (SOS, `DA`); entropy-coded data follows and the
//! frame ends with EOI (`FF D9`) as its last two bytes. A frame header
//! (SOFn) must come before the scan. The entropy-coded data is not decoded:
//! that would cost as much as decoding the image.

use std::fmt;

/// Why bytes are not one complete JPEG. The names are the `reason` labels
/// of the relay's reject metrics and the words of the camera's log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JpegError {
    /// Zero bytes.
    Empty,
    /// Larger than the limit the caller set.
    TooLarge,
    /// Does not start with SOI (`FF D8`), or too short to.
    NoSoi,
    /// A marker segment before the scan is malformed or runs past the end;
    /// `at` is its offset.
    BadSegment { at: usize },
    /// No frame header (SOFn) before the scan.
    NoSof,
    /// The header ends (EOI, or the data runs out) without a scan (SOS).
    NoSos,
    /// Does not end with EOI (`FF D9`): truncated, or trailing bytes.
    NoEoi,
}

impl JpegError {
    /// Every kind, in a fixed order (for per-reason counter arrays).
    pub const ALL: [JpegError; 7] = [
        JpegError::Empty,
        JpegError::TooLarge,
        JpegError::NoSoi,
        JpegError::BadSegment { at: 0 },
        JpegError::NoSof,
        JpegError::NoSos,
        JpegError::NoEoi,
    ];

    /// The metric label / log word.
    pub fn as_str(self) -> &'static str {
        match self {
            JpegError::Empty => "empty",
            JpegError::TooLarge => "too_large",
            JpegError::NoSoi => "no_soi",
            JpegError::BadSegment { .. } => "bad_segment",
            JpegError::NoSof => "no_sof",
            JpegError::NoSos => "no_sos",
            JpegError::NoEoi => "no_eoi",
        }
    }

    /// Index into [`JpegError::ALL`].
    pub fn index(self) -> usize {
        match self {
            JpegError::Empty => 0,
            JpegError::TooLarge => 1,
            JpegError::NoSoi => 2,
            JpegError::BadSegment { .. } => 3,
            JpegError::NoSof => 4,
            JpegError::NoSos => 5,
            JpegError::NoEoi => 6,
        }
    }
}

impl fmt::Display for JpegError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JpegError::Empty => f.write_str("empty message"),
            JpegError::TooLarge => f.write_str("larger than the frame limit"),
            JpegError::NoSoi => f.write_str("does not start with SOI"),
            JpegError::BadSegment { at } => write!(f, "malformed marker segment at byte {at}"),
            JpegError::NoSof => f.write_str("no frame header (SOF) before the scan"),
            JpegError::NoSos => f.write_str("headers end without a scan (SOS)"),
            JpegError::NoEoi => f.write_str("no EOI (truncated, or bytes after it)"),
        }
    }
}

impl std::error::Error for JpegError {}

/// Marker bytes (the byte after `FF`).
pub mod marker {
    /// Start of image.
    pub const SOI: u8 = 0xD8;
    /// End of image.
    pub const EOI: u8 = 0xD9;
    /// Start of scan.
    pub const SOS: u8 = 0xDA;
    /// Huffman tables.
    pub const DHT: u8 = 0xC4;
    /// Comment.
    pub const COM: u8 = 0xFE;
}

/// One marker segment of the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    /// The marker byte (after `FF`).
    pub marker: u8,
    /// Offset of the segment's `FF` (after any fill bytes).
    pub at: usize,
    /// The segment body after its length field; empty for standalone markers.
    pub body: &'a [u8],
    /// Offset just past the segment.
    pub end: usize,
}

/// Iterates the marker segments after SOI, up to and including SOS. Stops
/// after SOS or at the first error (which it yields).
#[derive(Debug, Clone)]
pub struct Segments<'a> {
    data: &'a [u8],
    at: usize,
    done: bool,
}

/// The segments of `jpeg`, which must start with SOI (else the first item
/// is [`JpegError::NoSoi`]).
pub fn segments(jpeg: &[u8]) -> Segments<'_> {
    Segments {
        data: jpeg,
        at: 2,
        done: false,
    }
}

impl<'a> Segments<'a> {
    fn step(&mut self) -> Result<Segment<'a>, JpegError> {
        let d = self.data;
        if d.len() < 2 || d[0] != 0xFF || d[1] != marker::SOI {
            return Err(JpegError::NoSoi);
        }
        let mut i = self.at;
        // Fill bytes: any run of FF before the marker byte.
        while i + 1 < d.len() && d[i] == 0xFF && d[i + 1] == 0xFF {
            i += 1;
        }
        if i + 2 > d.len() {
            return Err(JpegError::NoSos);
        }
        if d[i] != 0xFF {
            return Err(JpegError::BadSegment { at: i });
        }
        let m = d[i + 1];
        match m {
            marker::EOI => return Err(JpegError::NoSos),
            0x01 | 0xD0..=0xD7 => {
                return Ok(Segment {
                    marker: m,
                    at: i,
                    body: &[],
                    end: i + 2,
                });
            }
            0x00 | marker::SOI => return Err(JpegError::BadSegment { at: i }),
            _ => {}
        }
        if i + 4 > d.len() {
            return Err(JpegError::BadSegment { at: i });
        }
        let len = u16::from_be_bytes([d[i + 2], d[i + 3]]) as usize;
        let end = i + 2 + len;
        if len < 2 || end > d.len() {
            return Err(JpegError::BadSegment { at: i });
        }
        Ok(Segment {
            marker: m,
            at: i,
            body: &d[i + 4..end],
            end,
        })
    }
}

impl<'a> Iterator for Segments<'a> {
    type Item = Result<Segment<'a>, JpegError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.step();
        match &r {
            Ok(s) if s.marker != marker::SOS => self.at = s.end,
            _ => self.done = true,
        }
        Some(r)
    }
}

/// What a JPEG's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Offset of the SOS segment's `FF`.
    pub sos_at: usize,
    /// Offset of the first entropy-coded byte (just past the SOS segment).
    pub scan_at: usize,
    /// The header carries Huffman tables (DHT).
    pub has_dht: bool,
    /// Width and height from the frame header (SOFn).
    pub width: u16,
    pub height: u16,
}

/// Is `m` a frame header: SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC)?
fn is_sof(m: u8) -> bool {
    matches!(m, 0xC0..=0xCF) && !matches!(m, 0xC4 | 0xC8 | 0xCC)
}

/// Walks the header of `jpeg` (from SOI up to SOS).
pub fn header(jpeg: &[u8]) -> Result<Header, JpegError> {
    let mut has_dht = false;
    let mut size = None;
    for seg in segments(jpeg) {
        let s = seg?;
        match s.marker {
            marker::DHT => has_dht = true,
            marker::SOS => {
                let (width, height) = size.ok_or(JpegError::NoSof)?;
                return Ok(Header {
                    sos_at: s.at,
                    scan_at: s.end,
                    has_dht,
                    width,
                    height,
                });
            }
            m if is_sof(m) => {
                // P(1) Y(2) X(2) …
                if s.body.len() < 5 {
                    return Err(JpegError::BadSegment { at: s.at });
                }
                let h = u16::from_be_bytes([s.body[1], s.body[2]]);
                let w = u16::from_be_bytes([s.body[3], s.body[4]]);
                size = Some((w, h));
            }
            _ => {}
        }
    }
    Err(JpegError::NoSos)
}

/// Checks that `data` is exactly one complete JPEG of at most `max_bytes`:
/// SOI, a well-formed header with a frame header and a scan, and EOI as the
/// last two bytes.
pub fn check_frame(data: &[u8], max_bytes: usize) -> Result<Header, JpegError> {
    if data.is_empty() {
        return Err(JpegError::Empty);
    }
    if data.len() > max_bytes {
        return Err(JpegError::TooLarge);
    }
    if data.len() < 4 || data[0] != 0xFF || data[1] != marker::SOI {
        return Err(JpegError::NoSoi);
    }
    // A truncated frame is named as such before its cut-off header is.
    if !data.ends_with(&[0xFF, marker::EOI]) {
        return Err(JpegError::NoEoi);
    }
    let h = header(data)?;
    // EOI must come after the scan header.
    if data.len() < h.scan_at + 2 {
        return Err(JpegError::NoEoi);
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A structurally complete tiny JPEG (not decodable, but well formed).
    pub(crate) fn tiny() -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8];
        v.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x04, 0x4A, 0x46]); // APP0
        v.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x0B, 8, 0, 16, 0, 32, 1, 1, 0x11, 0]); // SOF0 32x16
        v.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x03, 0x01]); // SOS
        v.extend_from_slice(&[0x12, 0x34, 0xFF, 0x00, 0x56]); // scan data
        v.extend_from_slice(&[0xFF, 0xD9]);
        v
    }

    #[test]
    fn walks_a_well_formed_frame() {
        let j = tiny();
        let h = check_frame(&j, 1 << 20).unwrap();
        assert_eq!((h.width, h.height), (32, 16));
        assert!(!h.has_dht);
        assert_eq!(&j[h.sos_at..h.sos_at + 2], &[0xFF, 0xDA]);
        assert_eq!(h.scan_at, h.sos_at + 5);
        let markers: Vec<u8> = segments(&j).map(|s| s.unwrap().marker).collect();
        assert_eq!(markers, [0xE0, 0xC0, 0xDA]);
    }

    #[test]
    fn accepts_a_real_encoded_jpeg_and_fill_bytes() {
        let mut out = Vec::new();
        let enc = jpeg_encoder::Encoder::new(&mut out, 80);
        let px = vec![128u8; 16 * 16 * 3];
        enc.encode(&px, 16, 16, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        let h = check_frame(&out, 1 << 20).unwrap();
        assert!(h.has_dht);
        assert_eq!((h.width, h.height), (16, 16));
        // Fill bytes before a marker are legal (T.81 B.1.1.2).
        let mut filled = out[..2].to_vec();
        filled.extend_from_slice(&[0xFF, 0xFF, 0xFF]);
        filled.extend_from_slice(&out[2..]);
        assert_eq!(check_frame(&filled, 1 << 20).map(|h| h.width), Ok(16));
    }

    #[test]
    fn names_each_kind_of_garbage() {
        let j = tiny();
        assert_eq!(check_frame(&[], 100), Err(JpegError::Empty));
        assert_eq!(check_frame(&j, j.len() - 1), Err(JpegError::TooLarge));
        assert_eq!(check_frame(b"hello world", 100), Err(JpegError::NoSoi));
        assert_eq!(check_frame(&j[..j.len() - 1], 100), Err(JpegError::NoEoi));
        let mut trailing = j.clone();
        trailing.push(0);
        assert_eq!(check_frame(&trailing, 100), Err(JpegError::NoEoi));
        assert_eq!(
            check_frame(&[0xFF, 0xD8, 0xFF, 0xD9], 100),
            Err(JpegError::NoSos)
        );
        let mut bad = j.clone();
        bad[4] = 0x00;
        bad[5] = 0xFF; // APP0 length runs past the end
        assert_eq!(check_frame(&bad, 100), Err(JpegError::BadSegment { at: 2 }));
        let mut bad = j.clone();
        bad[2] = 0x00; // not a marker
        assert_eq!(check_frame(&bad, 100), Err(JpegError::BadSegment { at: 2 }));
        // No SOF before SOS.
        let mut nosof = j[..8].to_vec();
        nosof.extend_from_slice(&j[21..]);
        assert_eq!(check_frame(&nosof, 100), Err(JpegError::NoSof));
        // A short SOF.
        let mut short = j[..8].to_vec();
        short.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x04, 8, 0]);
        short.extend_from_slice(&j[21..]);
        assert_eq!(
            check_frame(&short, 100),
            Err(JpegError::BadSegment { at: 8 })
        );
    }

    #[test]
    fn labels_and_indices_agree() {
        for (i, e) in JpegError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
        }
        assert_eq!(JpegError::BadSegment { at: 9 }.as_str(), "bad_segment");
    }

    #[test]
    fn never_panics_on_prefixes_and_noise() {
        let j = tiny();
        for n in 0..=j.len() {
            let _ = check_frame(&j[..n], 100);
            let _ = segments(&j[..n]).count();
        }
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..5000 {
            let mut v: Vec<u8> = (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect();
            if rng.bool() && v.len() > 2 {
                v[0] = 0xFF;
                v[1] = 0xD8;
            }
            let _ = check_frame(&v, 100);
        }
    }
}
