//! Flow control of one connection, sans I/O: what may go out now, and when
//! the link counts as dead. The session feeds it events (a frame sent, an
//! ack, anything received, a write that could not finish, the socket's
//! unsent byte count) and the time; it answers with decisions and the next
//! deadline. Both dialects use it, so acks and the in-flight window live in
//! this one place; a new connection gets a new `Flow`.
//!
//! Two bounds keep a frame from waiting behind a slow link (docs/protocol.md
//! "Frame pacing and back-pressure"):
//! - the socket's unsent bytes: the next frame is held while more than
//!   about half a frame is still queued in the kernel, unsent;
//! - acks, once the relay sends them: at most `window` frames unacked.
//!   Ack mode starts with the first ack of the connection; frames sent
//!   before it are not waited for (a relay may start acking mid-stream).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Frames remembered while waiting for acks; a relay that acks only some
/// frames must not make this grow.
pub const MAX_TRACKED: usize = 256;
/// Smallest unsent-bytes allowance (and `TCP_NOTSENT_LOWAT`).
pub const MIN_UNSENT: usize = 16 * 1024;

/// The timeouts and window of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowConfig {
    /// Frames that may be unacked once the relay acks.
    pub window: u32,
    /// An ack later than this after its frame means the link is stalled.
    pub ack_timeout: Duration,
    /// A write the socket does not take for this long means the link is dead.
    pub write_timeout: Duration,
    /// Nothing at all received for this long means the link is dead.
    pub dead_after: Duration,
}

/// Which frames an ack acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOf {
    /// The oldest frame in flight (raw dialect: `0x0A` carries no id).
    Oldest,
    /// The frame sent with this tag, and every older one (Phoenix: the ref
    /// of the frame's push; a channel answers its pushes in order).
    Tag(u64),
    /// Every frame in flight will never be answered (the channel is gone).
    All,
}

/// May the next frame go out?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Yes.
    Open,
    /// A previous write is still waiting for the socket.
    WritePending,
    /// `window` frames are unacked.
    AwaitAck,
    /// The kernel holds more than the allowance unsent: wait for the
    /// socket to become writable (`POLLOUT` with `TCP_NOTSENT_LOWAT`).
    AwaitWritable,
}

/// Why the link is dead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dead(pub String);

/// One frame out, waiting for its ack.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    tag: Option<u64>,
    sent: Instant,
}

/// Flow-control state of one connection.
#[derive(Debug)]
pub struct Flow {
    cfg: FlowConfig,
    /// Ack mode: set by the first ack of this connection.
    acking: bool,
    in_flight: VecDeque<InFlight>,
    write_pending_since: Option<Instant>,
    last_rx: Instant,
    last_frame_len: usize,
}

impl Flow {
    /// A fresh connection, opened at `now`.
    pub fn new(cfg: FlowConfig, now: Instant) -> Flow {
        Flow {
            cfg,
            acking: false,
            in_flight: VecDeque::new(),
            write_pending_since: None,
            last_rx: now,
            last_frame_len: 0,
        }
    }

    /// Has the relay acked a frame on this connection?
    pub fn acking(&self) -> bool {
        self.acking
    }

    /// Frames unacked (counted once ack mode is on).
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Something (anything) arrived from the relay.
    pub fn on_receive(&mut self, now: Instant) {
        self.last_rx = now;
    }

    /// A frame of `len` bytes went to the socket (possibly still buffered).
    pub fn on_frame_sent(&mut self, now: Instant, tag: Option<u64>, len: usize) {
        self.last_frame_len = len;
        if self.in_flight.len() >= MAX_TRACKED {
            self.in_flight.pop_front();
        }
        self.in_flight.push_back(InFlight { tag, sent: now });
    }

    /// An ack arrived. Returns true when it started ack mode.
    pub fn on_ack(&mut self, of: AckOf) -> bool {
        match of {
            AckOf::All => {
                self.in_flight.clear();
                false
            }
            AckOf::Oldest if !self.acking => {
                // Frames sent before the first ack are not waited for.
                self.in_flight.clear();
                self.acking = true;
                true
            }
            AckOf::Oldest => {
                self.in_flight.pop_front();
                false
            }
            AckOf::Tag(t) => {
                // A reply to something that is not a frame in flight (a
                // stats push, a frame already forgotten) acks nothing.
                let Some(i) = self.in_flight.iter().position(|f| f.tag == Some(t)) else {
                    return false;
                };
                self.in_flight.drain(..=i);
                let started = !self.acking;
                self.acking = true;
                started
            }
        }
    }

    /// A message was handed to the socket; the write is pending until
    /// [`Flow::on_write_done`] (at once, unless the socket is full).
    pub fn on_write_queued(&mut self, now: Instant) {
        self.write_pending_since.get_or_insert(now);
    }

    /// Everything written so far is in the kernel.
    pub fn on_write_done(&mut self) {
        self.write_pending_since = None;
    }

    /// Is a write waiting for the socket?
    pub fn write_pending(&self) -> bool {
        self.write_pending_since.is_some()
    }

    /// The unsent-bytes allowance: about half the last frame, at least
    /// [`MIN_UNSENT`]. The session sets `TCP_NOTSENT_LOWAT` to it, so
    /// `POLLOUT` means "below the allowance".
    pub fn unsent_allowance(&self) -> usize {
        (self.last_frame_len / 2).max(MIN_UNSENT)
    }

    /// May a frame go out now? `unsent` is the socket's count of bytes not
    /// yet sent (`None` when the socket cannot tell: no bound then).
    pub fn gate(&self, unsent: Option<usize>) -> Gate {
        if self.write_pending() {
            Gate::WritePending
        } else if self.acking && self.in_flight.len() >= self.cfg.window as usize {
            Gate::AwaitAck
        } else if unsent.is_some_and(|n| n > self.unsent_allowance()) {
            Gate::AwaitWritable
        } else {
            Gate::Open
        }
    }

    /// The link's verdict at `now`.
    pub fn check(&self, now: Instant) -> Result<(), Dead> {
        let silent = now.saturating_duration_since(self.last_rx);
        if silent >= self.cfg.dead_after {
            return Err(Dead(format!(
                "nothing received for {:.1}s (2 × heartbeat): link is dead",
                silent.as_secs_f64()
            )));
        }
        if let Some(oldest) = self.in_flight.front().filter(|_| self.acking) {
            let waited = now.saturating_duration_since(oldest.sent);
            if waited >= self.cfg.ack_timeout {
                return Err(Dead(format!(
                    "no ack for {:.1}s: link is stalled",
                    waited.as_secs_f64()
                )));
            }
        }
        if let Some(since) = self.write_pending_since {
            let waited = now.saturating_duration_since(since);
            if waited >= self.cfg.write_timeout {
                return Err(Dead(format!(
                    "write stalled for {:.1}s: link is dead",
                    waited.as_secs_f64()
                )));
            }
        }
        Ok(())
    }

    /// When [`Flow::check`] could next fail.
    pub fn next_deadline(&self) -> Instant {
        let mut d = self.last_rx + self.cfg.dead_after;
        if let Some(oldest) = self.in_flight.front().filter(|_| self.acking) {
            d = d.min(oldest.sent + self.cfg.ack_timeout);
        }
        if let Some(since) = self.write_pending_since {
            d = d.min(since + self.cfg.write_timeout);
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn cfg(window: u32) -> FlowConfig {
        FlowConfig {
            window,
            ack_timeout: 5000 * MS,
            write_timeout: 10_000 * MS,
            dead_after: 60_000 * MS,
        }
    }

    #[test]
    fn without_acks_only_the_unsent_bytes_bound_applies() {
        let t0 = Instant::now();
        let mut f = Flow::new(cfg(1), t0);
        assert_eq!(f.gate(Some(0)), Gate::Open);
        for i in 0..10 {
            f.on_frame_sent(t0 + i * MS, None, 100_000);
        }
        // Ten unacked frames do not matter while the relay never acks...
        assert_eq!(f.gate(Some(0)), Gate::Open);
        assert_eq!(f.gate(None), Gate::Open);
        // ...but half a frame unsent in the kernel does.
        assert_eq!(f.unsent_allowance(), 50_000);
        assert_eq!(f.gate(Some(50_000)), Gate::Open);
        assert_eq!(f.gate(Some(50_001)), Gate::AwaitWritable);
        // Small frames: the allowance has a floor.
        f.on_frame_sent(t0, None, 1000);
        assert_eq!(f.unsent_allowance(), MIN_UNSENT);
        // And no ack deadline runs without ack mode.
        assert!(f.check(t0 + 59_000 * MS).is_ok());
    }

    #[test]
    fn ack_mode_starting_mid_connection_is_not_a_stall() {
        // The bug seen against real Phoenix: frames went out unacked for a
        // while, then the relay began acking; the oldest unacked send time
        // was taken for the ack's, and the link was called stalled.
        let t0 = Instant::now();
        let mut f = Flow::new(cfg(1), t0);
        for i in 0..20u32 {
            f.on_frame_sent(t0 + i * 100 * MS, None, 10_000);
        }
        let t1 = t0 + 30_000 * MS;
        f.on_receive(t1);
        assert!(f.on_ack(AckOf::Oldest), "the first ack starts ack mode");
        assert!(f.acking());
        assert_eq!(
            f.in_flight(),
            0,
            "frames before the first ack are not waited for"
        );
        assert!(f.check(t1).is_ok());
        assert_eq!(f.gate(Some(0)), Gate::Open);
        f.on_frame_sent(t1, None, 10_000);
        assert_eq!(f.gate(Some(0)), Gate::AwaitAck);
        assert!(!f.on_ack(AckOf::Oldest));
        assert_eq!(f.gate(Some(0)), Gate::Open);
        // An extra ack with nothing in flight does not go negative.
        assert!(!f.on_ack(AckOf::Oldest));
        assert_eq!(f.in_flight(), 0);
    }

    #[test]
    fn tagged_acks_release_their_frame_and_older_ones() {
        let t0 = Instant::now();
        let mut f = Flow::new(cfg(2), t0);
        for tag in 10..15 {
            f.on_frame_sent(t0, Some(tag), 1000);
        }
        // A reply to something that is not a frame (stats push): nothing.
        assert!(!f.on_ack(AckOf::Tag(99)));
        assert!(!f.acking());
        assert!(f.on_ack(AckOf::Tag(12)));
        assert_eq!(f.in_flight(), 2, "13 and 14 remain");
        assert_eq!(f.gate(None), Gate::AwaitAck);
        assert!(!f.on_ack(AckOf::Tag(13)));
        assert_eq!(f.gate(None), Gate::Open);
        // A channel that is gone answers nothing more.
        f.on_frame_sent(t0, Some(15), 1000);
        f.on_ack(AckOf::All);
        assert_eq!(f.in_flight(), 0);
        assert!(f.acking(), "ack mode stays for this connection");
    }

    #[test]
    fn a_missing_ack_is_a_stall_at_ack_timeout() {
        let t0 = Instant::now();
        let mut f = Flow::new(cfg(1), t0);
        f.on_frame_sent(t0, None, 1000);
        f.on_ack(AckOf::Oldest);
        let t1 = t0 + 100 * MS;
        f.on_frame_sent(t1, None, 1000);
        assert_eq!(f.next_deadline(), t1 + 5000 * MS);
        assert!(f.check(t1 + 4999 * MS).is_ok());
        let e = f.check(t1 + 5000 * MS).unwrap_err();
        assert!(e.0.contains("no ack for 5.0s"), "{e:?}");
    }

    #[test]
    fn the_tracked_frames_stay_bounded() {
        let t0 = Instant::now();
        let mut f = Flow::new(cfg(1), t0);
        for i in 0..(MAX_TRACKED as u64 * 3) {
            f.on_frame_sent(t0, Some(i), 10);
        }
        assert_eq!(f.in_flight(), MAX_TRACKED);
        // The oldest were forgotten: their acks release nothing.
        assert!(!f.on_ack(AckOf::Tag(0)));
    }

    #[test]
    fn a_write_that_does_not_finish_holds_frames_then_kills_the_link() {
        let t0 = Instant::now();
        let mut f = Flow::new(cfg(1), t0);
        f.on_write_queued(t0);
        f.on_write_queued(t0 + 500 * MS); // still the first moment
        assert_eq!(f.gate(Some(0)), Gate::WritePending);
        assert_eq!(f.next_deadline(), t0 + 10_000 * MS);
        assert!(f.check(t0 + 9_999 * MS).is_ok());
        f.on_receive(t0 + 9_999 * MS);
        assert!(
            f.check(t0 + 10_000 * MS)
                .unwrap_err()
                .0
                .contains("write stalled")
        );
        f.on_write_done();
        assert!(f.check(t0 + 10_000 * MS).is_ok());
        assert_eq!(f.gate(Some(0)), Gate::Open);
    }

    #[test]
    fn silence_is_a_dead_link_and_anything_received_resets_it() {
        let t0 = Instant::now();
        let mut f = Flow::new(cfg(1), t0);
        assert_eq!(f.next_deadline(), t0 + 60_000 * MS);
        f.on_receive(t0 + 30_000 * MS);
        assert!(f.check(t0 + 60_000 * MS).is_ok());
        assert_eq!(f.next_deadline(), t0 + 90_000 * MS);
        assert!(
            f.check(t0 + 90_000 * MS)
                .unwrap_err()
                .0
                .contains("nothing received")
        );
    }
}
