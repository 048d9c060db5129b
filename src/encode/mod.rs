//! The encode stage: raw pixels → JPEG, MJPEG pass-through (the COM
//! metadata they carry is [`crate::wire::com`]).

pub mod dht;
pub mod m2m;
pub mod mjpeg;
pub mod pool;
pub mod raw;

pub use raw::{EncodeError, RawFormat, RawImage, encode_raw};
