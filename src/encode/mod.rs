//! The encode stage: raw pixels → JPEG, MJPEG pass-through, COM metadata.

pub mod com;
pub mod dht;
pub mod mjpeg;
pub mod raw;

pub use raw::{EncodeError, RawFormat, RawImage, encode_raw};
