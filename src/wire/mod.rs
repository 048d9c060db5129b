//! What the camera and the relay both speak (docs/protocol.md), in one place
//! both import: the JPEG marker walker, the COM metadata segment, the JSON
//! messages, image controls, camera ids and the cluster's messages. Pure (bytes and values in, values out) and fuzzed; no
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

/// Checks a camera id as it appears in URLs and topics: 1 to 64 letters,
/// digits, `-`, `_` or `.`. The reason, when it is not one.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    match id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        Some(c) => Err(format!(
            "`{id}` contains `{c}`; use letters, digits, '-', '_' or '.'"
        )),
        None => Ok(()),
    }
}
