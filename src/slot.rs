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

/// The latest-frame slot.
#[derive(Debug)]
pub struct Slot {
    frame: Mutex<Option<Frame>>,
    dropped: AtomicU64,
    waker: Arc<Waker>,
}

impl Slot {
    /// An empty slot that pokes `waker` on every put.
    pub fn new(waker: Arc<Waker>) -> Slot {
        Slot {
            frame: Mutex::new(None),
            dropped: AtomicU64::new(0),
            waker,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Frame>> {
        // A panic elsewhere while holding the lock leaves a plain Option
        // behind: still valid, so recover rather than propagate.
        self.frame.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts a frame; returns true if it replaced one that was never taken
    /// (that older frame is counted as dropped).
    pub fn put(&self, frame: Frame) -> bool {
        let replaced = self.lock().replace(frame).is_some();
        if replaced {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.waker.wake();
        replaced
    }

    /// Takes the newest frame, if any.
    pub fn take(&self) -> Option<Frame> {
        self.lock().take()
    }

    /// Is a frame waiting?
    pub fn is_full(&self) -> bool {
        self.lock().is_some()
    }

    /// Empties the slot without counting a drop (e.g. on pause), returning
    /// whether a frame was discarded.
    pub fn clear(&self) -> bool {
        self.lock().take().is_some()
    }

    /// Frames overwritten before they were taken.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64) -> Frame {
        Frame {
            jpeg: vec![0xFF, 0xD8, 0xFF, 0xD9],
            seq,
            captured_at_us: 0,
            width: 2,
            height: 2,
        }
    }

    #[test]
    fn newer_frame_replaces_older_and_counts_a_drop() {
        let slot = Slot::new(Arc::new(Waker::new().unwrap()));
        assert!(!slot.put(frame(1)));
        assert!(slot.put(frame(2)));
        assert_eq!(slot.dropped(), 1);
        assert_eq!(slot.take().map(|f| f.seq), Some(2));
        assert_eq!(slot.take(), None);
        assert!(!slot.put(frame(3)));
        assert_eq!(slot.dropped(), 1);
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
