//! The COM metadata segment (docs/protocol.md): right after SOI,
//! `FF FE <len:u16 BE, counts itself> "zerocam seq=<u64> ts=<µs> w=<px> h=<px>"`.
//! Decoders skip COM segments, so the image stays a plain JPEG.

/// Facts carried in the COM segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMeta {
    pub seq: u64,
    /// Capture time, microseconds since the Unix epoch.
    pub ts_us: u64,
    /// Present when the camera knows them.
    pub size: Option<(u32, u32)>,
}

const PREFIX: &[u8] = b"zerocam ";

/// The segment bytes for `meta`, marker included.
pub fn segment(meta: &FrameMeta) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_segment(meta, &mut out);
    out
}

/// Appends the segment for `meta` (marker included) to `out` without any
/// allocation of its own: the capture loop calls this once per frame.
pub fn write_segment(meta: &FrameMeta, out: &mut Vec<u8>) {
    use std::io::Write;
    let start = out.len();
    out.extend_from_slice(&[0xFF, 0xFE, 0, 0]);
    // Writing into a Vec cannot fail.
    let _ = write!(out, "zerocam seq={} ts={}", meta.seq, meta.ts_us);
    if let Some((w, h)) = meta.size {
        let _ = write!(out, " w={w} h={h}");
    }
    let len = (out.len() - start - 2) as u16;
    out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Writes `SOI + COM + rest-of-jpeg` into `out` (cleared first).
/// `jpeg` must start with SOI; callers validate that first.
pub fn insert_into(jpeg: &[u8], meta: &FrameMeta, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(jpeg.len() + 64);
    out.extend_from_slice(&jpeg[..2.min(jpeg.len())]);
    write_segment(meta, out);
    if jpeg.len() > 2 {
        out.extend_from_slice(&jpeg[2..]);
    }
}

/// Reads zerocam's COM segment from a JPEG, if it has one among the
/// segments before the image data (zerocam puts it first, but a re-muxer
/// may have moved it). Never panics on garbage.
pub fn parse(jpeg: &[u8]) -> Option<FrameMeta> {
    for seg in super::jpeg::segments(jpeg) {
        let seg = seg.ok()?;
        if seg.marker == super::jpeg::marker::COM {
            if let Some(meta) = parse_text(seg.body) {
                return Some(meta);
            }
        }
    }
    None
}

fn parse_text(body: &[u8]) -> Option<FrameMeta> {
    let text = std::str::from_utf8(body.strip_prefix(PREFIX)?).ok()?;
    let (mut seq, mut ts, mut w, mut h) = (None, None, None, None);
    for field in text.split_ascii_whitespace() {
        let (k, v) = field.split_once('=')?;
        match k {
            "seq" => seq = v.parse().ok(),
            "ts" => ts = v.parse().ok(),
            "w" => w = v.parse().ok(),
            "h" => h = v.parse().ok(),
            _ => {} // later versions may add fields
        }
    }
    Some(FrameMeta {
        seq: seq?,
        ts_us: ts?,
        size: w.zip(h),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let meta = FrameMeta {
            seq: 42,
            ts_us: 1_700_000_000_123_456,
            size: Some((1280, 720)),
        };
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x02, 0xFF, 0xD9];
        let mut out = Vec::new();
        insert_into(&jpeg, &meta, &mut out);
        assert_eq!(&out[..4], &[0xFF, 0xD8, 0xFF, 0xFE]);
        let text = b"zerocam seq=42 ts=1700000000123456 w=1280 h=720";
        assert_eq!(
            u16::from_be_bytes([out[4], out[5]]) as usize,
            text.len() + 2
        );
        assert_eq!(&out[6..6 + text.len()], text);
        assert_eq!(&out[6 + text.len()..], &jpeg[2..]);
        assert_eq!(parse(&out), Some(meta));
    }

    #[test]
    fn size_is_optional() {
        let meta = FrameMeta {
            seq: 0,
            ts_us: 5,
            size: None,
        };
        let mut out = Vec::new();
        insert_into(&[0xFF, 0xD8, 0xFF, 0xD9], &meta, &mut out);
        assert_eq!(parse(&out), Some(meta));
    }

    #[test]
    fn garbage_and_foreign_comments_are_none() {
        assert_eq!(parse(b""), None);
        assert_eq!(parse(&[0xFF, 0xD8, 0xFF, 0xFE, 0xFF, 0xFF]), None);
        assert_eq!(
            parse(&[0xFF, 0xD8, 0xFF, 0xFE, 0x00, 0x05, b'a', b'b', b'c']),
            None
        );
        let mut out = Vec::new();
        insert_into(
            &[0xFF, 0xD8, 0xFF, 0xD9],
            &FrameMeta {
                seq: 1,
                ts_us: 2,
                size: None,
            },
            &mut out,
        );
        out.truncate(10);
        assert_eq!(parse(&out), None);
        for n in 0..64u8 {
            let junk: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37) ^ n).collect();
            let _ = parse(&junk);
        }
    }
}
