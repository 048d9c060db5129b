//! The single latest-frame slot between capture and the network.
//!
//! Capture puts, the stream takes. A put that replaces a frame nobody took
//! counts as a drop: the camera never queues frames behind a slow link.
//! Every put also pokes a [`Waker`] so that the stream loop, which sleeps in
//! `poll(2)` on its socket, wakes at once instead of polling on a timer.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::frame::Frame;

/// A self-pipe: `wake()` from any thread (or a signal handler: it is one
/// non-blocking write(2)) makes the read end readable.
#[derive(Debug)]
pub struct Waker {
    rx: UnixStream,
    tx: UnixStream,
}

impl Waker {
    /// Creates a non-blocking socket pair.
    pub fn new() -> std::io::Result<Waker> {
        let (rx, tx) = UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        Ok(Waker { rx, tx })
    }

    /// Makes the read end readable. Never blocks: a full pipe already wakes.
    pub fn wake(&self) {
        let _ = (&self.tx).write(&[1]);
    }

    /// Empties the read end; call after waking.
    pub fn drain(&self) {
        let mut buf = [0u8; 64];
        loop {
            match (&self.rx).read(&mut buf) {
                Ok(0) => return,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    }

    /// The fd to `poll` for readability.
    pub fn fd(&self) -> RawFd {
        self.rx.as_raw_fd()
    }
}

/// What [`Slot::put`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// Stored in an empty slot.
    Stored,
    /// Stored; it replaced a frame nobody took (counted as dropped).
    Replaced,
    /// Refused (counted as dropped): captured before the latest pause, or
    /// older than a frame already delivered (parallel encoders finish out of
    /// order; capture order wins).
    Stale,
}

#[derive(Debug, Default)]
struct Inner {
    frame: Option<Frame>,
    /// Bumped by every pause: frames carry the epoch of their capture.
    epoch: u64,
    /// The seq of the newest frame put so far.
    newest_seq: Option<u64>,
}

/// The latest-frame slot.
#[derive(Debug)]
pub struct Slot {
    inner: Mutex<Inner>,
    dropped: AtomicU64,
    waker: Arc<Waker>,
}

impl Slot {
    /// An empty slot that pokes `waker` on every put.
    pub fn new(waker: Arc<Waker>) -> Slot {
        Slot {
            inner: Mutex::new(Inner::default()),
            dropped: AtomicU64::new(0),
            waker,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain data behind:
        // still valid, so recover rather than propagate.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pause epoch to stamp on a frame captured now.
    pub fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// Puts a frame. A newer frame replaces one nobody took; a frame
    /// captured before the latest pause is refused, so nothing from before
    /// a pause can go out after it (a relay would serve it as current).
    pub fn put(&self, frame: Frame) -> Put {
        let outcome = {
            let mut inner = self.lock();
            if frame.epoch < inner.epoch || inner.newest_seq.is_some_and(|s| frame.seq < s) {
                Put::Stale
            } else {
                inner.newest_seq = Some(frame.seq);
                if inner.frame.replace(frame).is_some() {
                    Put::Replaced
                } else {
                    Put::Stored
                }
            }
        };
        match outcome {
            Put::Stored => self.waker.wake(),
            Put::Replaced => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                self.waker.wake();
            }
            Put::Stale => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        outcome
    }

    /// Takes the newest frame, if any.
    pub fn take(&self) -> Option<Frame> {
        self.lock().frame.take()
    }

    /// Is a frame waiting?
    pub fn is_full(&self) -> bool {
        self.lock().frame.is_some()
    }

    /// Starts a new pause epoch: the waiting frame, and every frame captured
    /// before now that is still on its way here, will never be sent (each
    /// counted as dropped). Returns whether a waiting frame was discarded.
    pub fn pause(&self) -> bool {
        let discarded = {
            let mut inner = self.lock();
            inner.epoch += 1;
            inner.frame.take().is_some()
        };
        if discarded {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        discarded
    }

    /// A frame taken to be sent whose send failed (the link went under
    /// it): dropped.
    pub fn lost(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// At the end: the waiting frame, if any, will never be sent (dropped).
    pub fn discard(&self) -> bool {
        let discarded = self.lock().frame.take().is_some();
        if discarded {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        discarded
    }

    /// Frames that were captured and will never be sent: overwritten
    /// before they were taken, from before a pause, lost with the link, or
    /// still waiting at the end.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64) -> Frame {
        frame_in(seq, 0)
    }

    fn frame_in(seq: u64, epoch: u64) -> Frame {
        Frame {
            jpeg: vec![0xFF, 0xD8, 0xFF, 0xD9],
            seq,
            captured_at_us: 0,
            width: 2,
            height: 2,
            epoch,
        }
    }

    #[test]
    fn a_frame_lost_in_sending_or_left_at_the_end_is_dropped() {
        let slot = Slot::new(Arc::new(Waker::new().unwrap()));
        assert!(!slot.discard());
        slot.put(frame(1));
        assert!(slot.take().is_some());
        slot.lost();
        slot.put(frame(2));
        assert!(slot.discard());
        assert_eq!(slot.dropped(), 2);
        assert_eq!(slot.take(), None);
    }

    #[test]
    fn newer_frame_replaces_older_and_counts_a_drop() {
        let slot = Slot::new(Arc::new(Waker::new().unwrap()));
        assert_eq!(slot.put(frame(1)), Put::Stored);
        assert_eq!(slot.put(frame(2)), Put::Replaced);
        assert_eq!(slot.dropped(), 1);
        assert_eq!(slot.take().map(|f| f.seq), Some(2));
        assert_eq!(slot.take(), None);
        assert_eq!(slot.put(frame(3)), Put::Stored);
        assert_eq!(slot.dropped(), 1);
    }

    #[test]
    fn a_frame_captured_before_a_pause_never_goes_out_after_it() {
        let slot = Slot::new(Arc::new(Waker::new().unwrap()));
        // Capture stamps the epoch, then encodes while the relay pauses.
        let captured_in = slot.epoch();
        assert_eq!(slot.put(frame_in(1, captured_in)), Put::Stored);
        assert!(slot.pause(), "the waiting frame is discarded");
        assert_eq!(slot.dropped(), 1);
        // The frame that was being encoded arrives after the pause (and
        // after a resume): refused and counted, never sent.
        assert_eq!(slot.put(frame_in(2, captured_in)), Put::Stale);
        assert_eq!(slot.take(), None);
        assert_eq!(slot.dropped(), 2);
        // Frames captured after the pause flow again.
        assert_eq!(slot.put(frame_in(3, slot.epoch())), Put::Stored);
        assert_eq!(slot.take().map(|f| f.seq), Some(3));
        assert!(!slot.pause());
        assert_eq!(slot.dropped(), 2);
    }

    #[test]
    fn frames_are_delivered_in_capture_order() {
        let slot = Slot::new(Arc::new(Waker::new().unwrap()));
        assert_eq!(slot.put(frame(5)), Put::Stored);
        assert_eq!(slot.take().map(|f| f.seq), Some(5));
        // A slower encoder finishes an older frame afterwards: refused.
        assert_eq!(slot.put(frame(4)), Put::Stale);
        assert_eq!(slot.take(), None);
        assert_eq!(slot.dropped(), 1);
        assert_eq!(slot.put(frame(6)), Put::Stored);
    }

    #[test]
    fn put_wakes_the_poller() {
        let waker = Arc::new(Waker::new().unwrap());
        let slot = Slot::new(waker.clone());
        let mut pfd = libc::pollfd {
            fd: waker.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 0) }, 0);
        slot.put(frame(1));
        // SAFETY: as above.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 0) }, 1);
        waker.drain();
        pfd.revents = 0;
        // SAFETY: as above.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 0) }, 0);
    }
}
