//! The encode stage: raw pixels → JPEG, MJPEG pass-through (the COM
//! metadata they carry is [`crate::wire::com`]).

pub mod dht;
pub mod m2m;
pub mod mjpeg;
pub mod pool;
pub mod raw;
pub mod stage;
pub mod yuvjpeg;

pub use raw::{EncodeError, RawFormat, RawImage, encode_raw, encode_reference};

/// A FourCC as text, `?` for bytes that are not printable.
pub fn fourcc_str(f: &[u8; 4]) -> String {
    f.iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}
