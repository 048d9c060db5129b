//! Checks that a binary message from a camera is exactly one JPEG before it is
//! stored or forwarded. Pure: bytes in, verdict out.

/// Why a binary message was refused. The names are the `reason` label of
/// `zerocam_rejected_frames_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reject {
    /// A zero-length message.
    Empty,
    /// Larger than the configured limit.
    TooLarge,
    /// Does not start with SOI (`FF D8`).
    NoSoi,
    /// A marker segment before the image data is malformed or runs past the end.
    BadSegment,
    /// The headers end without a start-of-scan segment.
    NoSos,
    /// Does not end with EOI (`FF D9`): truncated or with trailing bytes.
    NoEoi,
}

impl Reject {
    /// Every reason, for metrics output.
    pub const ALL: [Reject; 6] = [
        Reject::Empty,
        Reject::TooLarge,
        Reject::NoSoi,
        Reject::BadSegment,
        Reject::NoSos,
        Reject::NoEoi,
    ];

    /// The metric label and log word.
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::Empty => "empty",
            Reject::TooLarge => "too_large",
            Reject::NoSoi => "no_soi",
            Reject::BadSegment => "bad_segment",
            Reject::NoSos => "no_sos",
            Reject::NoEoi => "no_eoi",
        }
    }

    /// Index into per-reason counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Accepts `data` when it is one complete baseline/progressive JPEG:
/// SOI, well-formed marker segments up to SOS, and EOI as the last two bytes.
/// The entropy-coded data after SOS is not decoded (too costly per frame).
pub fn validate(data: &[u8], max_bytes: usize) -> Result<(), Reject> {
    if data.is_empty() {
        return Err(Reject::Empty);
    }
    if data.len() > max_bytes {
        return Err(Reject::TooLarge);
    }
    if data.len() < 4 || data[0] != 0xFF || data[1] != 0xD8 {
        return Err(Reject::NoSoi);
    }
    let mut i = 2;
    loop {
        // Fill bytes (FF FF …) are allowed before a marker.
        while i < data.len() && data[i] == 0xFF && data.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        if i + 4 > data.len() {
            return Err(Reject::NoSos);
        }
        if data[i] != 0xFF {
            return Err(Reject::BadSegment);
        }
        let marker = data[i + 1];
        match marker {
            0xD9 => return Err(Reject::NoSos),
            // Standalone markers without a length.
            0x01 | 0xD0..=0xD7 => {
                i += 2;
                continue;
            }
            0x00 | 0xD8 => return Err(Reject::BadSegment),
            _ => {}
        }
        let len = u16::from_be_bytes([data[i + 2], data[i + 3]]) as usize;
        if len < 2 || i + 2 + len > data.len() {
            return Err(Reject::BadSegment);
        }
        i += 2 + len;
        if marker == 0xDA {
            break;
        }
    }
    if data.len() < i + 2 || data[data.len() - 2] != 0xFF || data[data.len() - 1] != 0xD9 {
        return Err(Reject::NoEoi);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A structurally complete tiny JPEG (not decodable, but well formed).
    fn tiny() -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8];
        v.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x04, 0x4A, 0x46]); // APP0
        v.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x03, 0x01]); // SOS
        v.extend_from_slice(&[0x12, 0x34, 0xFF, 0x00, 0x56]); // scan data
        v.extend_from_slice(&[0xFF, 0xD9]);
        v
    }

    #[test]
    fn accepts_a_well_formed_jpeg() {
        assert_eq!(validate(&tiny(), 1 << 20), Ok(()));
    }

    #[test]
    fn accepts_a_real_encoded_jpeg() {
        let mut out = Vec::new();
        let enc = jpeg_encoder::Encoder::new(&mut out, 80);
        let px = vec![128u8; 16 * 16 * 3];
        enc.encode(&px, 16, 16, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        assert_eq!(validate(&out, 1 << 20), Ok(()));
        let mut with_com = Vec::new();
        crate::encode::com::insert_into(
            &out,
            &crate::encode::com::FrameMeta {
                seq: 1,
                ts_us: 2,
                size: Some((16, 16)),
            },
            &mut with_com,
        );
        assert_eq!(validate(&with_com, 1 << 20), Ok(()));
    }

    #[test]
    fn names_each_kind_of_garbage() {
        let j = tiny();
        assert_eq!(validate(&[], 100), Err(Reject::Empty));
        assert_eq!(validate(&j, j.len() - 1), Err(Reject::TooLarge));
        assert_eq!(validate(b"hello world", 100), Err(Reject::NoSoi));
        assert_eq!(validate(&j[..j.len() - 1], 100), Err(Reject::NoEoi));
        let mut trailing = j.clone();
        trailing.push(0);
        assert_eq!(validate(&trailing, 100), Err(Reject::NoEoi));
        assert_eq!(validate(&[0xFF, 0xD8, 0xFF, 0xD9], 100), Err(Reject::NoSos));
        let mut bad = j.clone();
        bad[4] = 0x00;
        bad[5] = 0xFF; // APP0 length runs past the end
        assert_eq!(validate(&bad, 100), Err(Reject::BadSegment));
        let mut bad = j.clone();
        bad[2] = 0x00; // not a marker
        assert_eq!(validate(&bad, 100), Err(Reject::BadSegment));
    }

    #[test]
    fn never_panics_on_prefixes_and_noise() {
        let j = tiny();
        for n in 0..=j.len() {
            let _ = validate(&j[..n], 100);
        }
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..2000 {
            let mut v: Vec<u8> = (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect();
            if rng.bool() && v.len() > 2 {
                v[0] = 0xFF;
                v[1] = 0xD8;
            }
            let _ = validate(&v, 100);
        }
    }
}
