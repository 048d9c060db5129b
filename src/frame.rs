//! The unit that flows through the pipeline: one complete JPEG and its facts.

use std::time::{SystemTime, UNIX_EPOCH};

/// One encoded frame, ready to send: `jpeg` already carries the COM metadata
/// segment (PROTOCOL.md, "Frame metadata inside the JPEG").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// A complete JPEG, SOI … EOI.
    pub jpeg: Vec<u8>,
    /// Sequence number assigned at capture; a gap downstream is a drop.
    pub seq: u64,
    /// Capture time, microseconds since the Unix epoch.
    pub captured_at_us: u64,
    pub width: u32,
    pub height: u32,
}

/// Microseconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
