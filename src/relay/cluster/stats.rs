//! The cluster's counters, as `/metrics` shows them (per node).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Why a frame did not cross the cluster (the `reason` label of
/// `zerocam_cluster_drops_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Sending: newer frames came while the previous one was still going
    /// out (a slow link to NATS, or NATS itself pushing back).
    Backpressure,
    /// Sending: NATS was unreachable while another node watched.
    Disconnected,
    /// Sending: bigger than NATS's `max_payload`.
    TooLarge,
    /// Receiving: an older frame waiting behind a newer one.
    Stale,
    /// Receiving: the NATS client's buffer for this node was full.
    SlowConsumer,
    /// Receiving: not a valid JPEG frame.
    Invalid,
}

impl DropReason {
    /// Every reason, in index order.
    pub const ALL: [DropReason; 6] = [
        DropReason::Backpressure,
        DropReason::Disconnected,
        DropReason::TooLarge,
        DropReason::Stale,
        DropReason::SlowConsumer,
        DropReason::Invalid,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Backpressure => "backpressure",
            DropReason::Disconnected => "disconnected",
            DropReason::TooLarge => "too_large",
            DropReason::Stale => "stale",
            DropReason::SlowConsumer => "slow_consumer",
            DropReason::Invalid => "invalid",
        }
    }
}

/// Counters of this node's part in the cluster.
#[derive(Debug, Default)]
pub struct ClusterStats {
    pub frames_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub frames_received: AtomicU64,
    pub bytes_received: AtomicU64,
    drops: [AtomicU64; DropReason::ALL.len()],
    /// Connected to NATS now.
    pub connected: AtomicBool,
    /// Nodes known, this one included.
    pub nodes: AtomicUsize,
    /// Viewers on other nodes of the cameras connected here.
    pub remote_viewers: AtomicUsize,
}

impl ClusterStats {
    /// Counts `n` frames dropped for `why`.
    pub fn count_drop(&self, why: DropReason, n: u64) {
        self.drops[why as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Frames dropped for `why` so far.
    pub fn dropped(&self, why: DropReason) -> u64 {
        self.drops[why as usize].load(Ordering::Relaxed)
    }

    /// Counts one frame of `len` bytes published.
    pub fn sent(&self, len: u64) {
        self.frames_sent.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(len, Ordering::Relaxed);
    }

    /// Counts one frame of `len` bytes received.
    pub fn received(&self, len: u64) {
        self.frames_received.fetch_add(1, Ordering::Relaxed);
        self.bytes_received.fetch_add(len, Ordering::Relaxed);
    }
}
