//! The unit that flows through the pipeline: one complete JPEG and its facts.

use std::time::{SystemTime, UNIX_EPOCH};

/// One encoded frame, ready to send: `jpeg` already carries the COM metadata
/// segment (docs/protocol.md, "Frame metadata inside the JPEG").
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
    /// The slot's pause epoch when the frame was captured
    /// ([`crate::slot::Slot::epoch`]): a frame from before a pause is stale.
    pub epoch: u64,
}

/// Microseconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Microseconds of `CLOCK_MONOTONIC`, the clock V4L2 drivers stamp buffers
/// with (`V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC`).
pub fn monotonic_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000)
        .saturating_add(ts.tv_nsec as u64 / 1000)
}

/// Converts a `CLOCK_MONOTONIC` capture time to µs since the Unix epoch,
/// given both clocks read at one moment (`mono_now_us`, `wall_now_us`).
/// A capture time in the future (a driver bug) counts as now.
pub fn monotonic_to_wall_us(capture_mono_us: u64, mono_now_us: u64, wall_now_us: u64) -> u64 {
    wall_now_us.saturating_sub(mono_now_us.saturating_sub(capture_mono_us))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_capture_times_become_wall_clock_times() {
        // Captured 40 ms before both clocks were read.
        assert_eq!(
            monotonic_to_wall_us(1_000_000, 1_040_000, 5_000_000),
            4_960_000
        );
        // A stamp from the future is clamped to now, never past it.
        assert_eq!(
            monotonic_to_wall_us(2_000_000, 1_000_000, 5_000_000),
            5_000_000
        );
        assert_eq!(monotonic_to_wall_us(0, u64::MAX, 5), 0);
        let (m, w) = (monotonic_us(), now_us());
        assert!(m > 0 && w > 0);
    }
}
