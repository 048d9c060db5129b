//! What the camera and the relay both speak (PROTOCOL.md), in one place
//! both import: the JPEG marker walker, the COM metadata segment, and the
//! JSON messages. Pure (bytes and values in, values out) and fuzzed; no
//! sockets, no camera or relay internals.

pub mod cluster;
pub mod com;
pub mod controls;
pub mod jpeg;
pub mod message;

/// The ack a relay may send for each frame (raw dialect): one byte, `"\n"`.
pub const ACK: u8 = 0x0A;

/// The largest message either side accepts from the other that is not a
/// frame: commands, hello, stats, settings. JSON this size is already far
/// more than any real message; anything larger is hostile or broken.
pub const MAX_CONTROL_MESSAGE: usize = 64 << 10;
