//! The mmap buffer ring of a streaming V4L2 capture device, and the rule
//! that keeps frames fresh: take the NEWEST ready buffer and give the older
//! ones straight back to the driver (they are stale: counted, never sent),
//! as µStreamer does. Frames are stamped with the driver's own capture time.
//!
//! Written against the raw ioctls (through the `v4l` crate's bindings)
//! rather than `v4l::io::mmap::Stream`, which dequeues oldest-first, cannot
//! dequeue without blocking, and panics in `Drop` when STREAMOFF fails.
//! Here a failed STREAMOFF is logged and the buffers are released anyway:
//! unmapped, and freed by the kernel when the device is closed right after.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::raw::c_void;

use v4l::v4l_sys::{
    V4L2_BUF_FLAG_ERROR, V4L2_BUF_FLAG_TIMESTAMP_MASK, V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC,
    v4l2_buffer, v4l2_exportbuffer, v4l2_requestbuffers,
};
use v4l::v4l2::{self, vidioc};

/// `V4L2_BUF_TYPE_VIDEO_CAPTURE`.
const CAPTURE: u32 = 1;
/// `V4L2_MEMORY_MMAP`.
const MMAP: u32 = 1;

/// One buffer the driver handed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filled {
    pub index: usize,
    pub bytesused: usize,
    /// The driver flagged the data as bad (`V4L2_BUF_FLAG_ERROR`).
    pub error: bool,
    /// Capture time on `CLOCK_MONOTONIC` in µs, when the driver says its
    /// timestamps are monotonic (not for `COPY` or `UNKNOWN` sources).
    pub monotonic_us: Option<u64>,
    /// The driver's frame counter.
    pub sequence: u32,
}

/// Where filled buffers come from: the device, or a test double.
pub trait Queue {
    /// A filled buffer if one is ready now (never blocks).
    fn dequeue(&mut self) -> io::Result<Option<Filled>>;
    /// Gives buffer `index` back to the driver to fill.
    fn requeue(&mut self, index: usize) -> io::Result<()>;
}

/// Dequeues everything that is ready, keeps the newest and requeues the
/// rest. Returns it with the number of older buffers skipped, or `None` if
/// nothing was ready.
pub fn take_newest(q: &mut dyn Queue) -> io::Result<Option<(Filled, u32)>> {
    let mut newest: Option<Filled> = None;
    let mut skipped = 0u32;
    while let Some(f) = q.dequeue()? {
        if let Some(older) = newest.replace(f) {
            q.requeue(older.index)?;
            skipped += 1;
        }
    }
    Ok(newest.map(|f| (f, skipped)))
}

/// Frames the driver counted between two buffers we saw, beyond the one:
/// frames it dropped because no buffer was free. A counter that goes back
/// counts nothing, and a jump counts at most 1000, so a quirky driver
/// cannot report absurd numbers.
pub fn sequence_gap(previous: Option<u32>, now: u32) -> u32 {
    let Some(p) = previous else {
        return 0;
    };
    match now.wrapping_sub(p) {
        0 => 0,
        d if d > u32::MAX / 2 => 0,
        d => (d - 1).min(1000),
    }
}

/// The mapped buffers of one streaming device. Dropping it stops the
/// stream and releases the buffers; the device's fd must outlive it.
pub struct Ring {
    fd: i32,
    bufs: Vec<(*mut c_void, usize)>,
    /// The buffers exported as DMABUF (by index), once [`Ring::export`]
    /// succeeded: an M2M encoder reads frames through them without a copy.
    exported: Vec<OwnedFd>,
    streaming: bool,
    /// For log lines.
    name: String,
}

// SAFETY: the mappings are only touched through &self/&mut self of the one
// capture thread that owns the ring; the raw pointers are not shared.
unsafe impl Send for Ring {}

fn desc() -> v4l2_buffer {
    // SAFETY: v4l2_buffer is plain data; all-zero is a valid value.
    let mut b: v4l2_buffer = unsafe { std::mem::zeroed() };
    b.type_ = CAPTURE;
    b.memory = MMAP;
    b
}

impl Ring {
    /// Requests `count` buffers on `fd` (the driver may grant fewer, at
    /// least one), maps them, queues them all and starts streaming.
    pub fn start(fd: i32, count: u32, name: &str) -> io::Result<Ring> {
        let mut ring = Ring {
            fd,
            bufs: Vec::new(),
            exported: Vec::new(),
            streaming: false,
            name: name.to_string(),
        };
        // SAFETY: zeroed plain data.
        let mut req: v4l2_requestbuffers = unsafe { std::mem::zeroed() };
        req.count = count;
        req.type_ = CAPTURE;
        req.memory = MMAP;
        // SAFETY: REQBUFS takes a v4l2_requestbuffers on a valid fd.
        unsafe {
            v4l2::ioctl(
                fd,
                vidioc::VIDIOC_REQBUFS,
                (&mut req as *mut v4l2_requestbuffers).cast(),
            )
        }?;
        if req.count == 0 {
            return Err(io::Error::other("the driver granted no capture buffers"));
        }
        for index in 0..req.count {
            let mut b = desc();
            b.index = index;
            // SAFETY: QUERYBUF fills a v4l2_buffer for an index REQBUFS granted.
            unsafe {
                v4l2::ioctl(
                    fd,
                    vidioc::VIDIOC_QUERYBUF,
                    (&mut b as *mut v4l2_buffer).cast(),
                )
            }?;
            let len = b.length as usize;
            // SAFETY: the offset QUERYBUF gave for this index; unmapped in Drop.
            let ptr = crate::v4l2raw::map_buffer(fd, len, unsafe { b.m.offset })?;
            ring.bufs.push((ptr, len));
        }
        for index in 0..ring.bufs.len() {
            ring.requeue(index)?;
        }
        let mut typ = CAPTURE as libc::c_int;
        // SAFETY: STREAMON takes the buffer type as an int.
        unsafe {
            v4l2::ioctl(
                fd,
                vidioc::VIDIOC_STREAMON,
                (&mut typ as *mut libc::c_int).cast(),
            )
        }?;
        ring.streaming = true;
        Ok(ring)
    }

    /// How many buffers the driver granted.
    pub fn len(&self) -> usize {
        self.bufs.len()
    }

    /// Always false: a started ring has at least one buffer.
    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// The bytes of buffer `index`, up to `used` (the whole buffer when the
    /// driver reports 0 or more than its length).
    pub fn data(&self, index: usize, used: usize) -> &[u8] {
        let Some(&(ptr, len)) = self.bufs.get(index) else {
            return &[];
        };
        let n = if used == 0 || used > len { len } else { used };
        // SAFETY: the mapping of `len` bytes lives until Drop; the driver
        // does not write to a dequeued buffer until it is queued again,
        // which needs &mut self.
        unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), n) }
    }

    /// Exports every buffer as a DMABUF fd (VIDIOC_EXPBUF, read-only), as
    /// µStreamer does to hand capture buffers to the hardware encoder.
    /// Drivers built on videobuf2 support it; others say EINVAL/ENOTTY.
    pub fn export(&mut self) -> io::Result<()> {
        if !self.exported.is_empty() {
            return Ok(());
        }
        let mut fds = Vec::with_capacity(self.bufs.len());
        for index in 0..self.bufs.len() {
            // SAFETY: zeroed plain data.
            let mut e: v4l2_exportbuffer = unsafe { std::mem::zeroed() };
            e.type_ = CAPTURE;
            e.index = index as u32;
            e.flags = (libc::O_CLOEXEC | libc::O_RDONLY) as u32;
            // SAFETY: EXPBUF fills a v4l2_exportbuffer for a granted index.
            unsafe {
                v4l2::ioctl(
                    self.fd,
                    vidioc::VIDIOC_EXPBUF,
                    (&mut e as *mut v4l2_exportbuffer).cast(),
                )
            }?;
            // SAFETY: the kernel just gave us this fd; nothing else owns it.
            fds.push(unsafe { OwnedFd::from_raw_fd(e.fd) });
        }
        self.exported = fds;
        Ok(())
    }

    /// Buffer `index` as an exported DMABUF: (fd, length), after
    /// [`Ring::export`].
    pub fn dmabuf(&self, index: usize) -> Option<(RawFd, usize)> {
        let fd = self.exported.get(index)?;
        let &(_, len) = self.bufs.get(index)?;
        Some((fd.as_raw_fd(), len))
    }

    fn stop(&mut self) -> io::Result<()> {
        if !self.streaming {
            return Ok(());
        }
        self.streaming = false;
        let mut typ = CAPTURE as libc::c_int;
        // SAFETY: STREAMOFF takes the buffer type as an int.
        unsafe {
            v4l2::ioctl(
                self.fd,
                vidioc::VIDIOC_STREAMOFF,
                (&mut typ as *mut libc::c_int).cast(),
            )
        }
    }
}

impl Queue for Ring {
    fn dequeue(&mut self) -> io::Result<Option<Filled>> {
        let mut b = desc();
        // SAFETY: DQBUF fills a v4l2_buffer; the fd is non-blocking, so it
        // returns EAGAIN when nothing is ready.
        match unsafe {
            v4l2::ioctl(
                self.fd,
                vidioc::VIDIOC_DQBUF,
                (&mut b as *mut v4l2_buffer).cast(),
            )
        } {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        }
        let monotonic = b.flags & V4L2_BUF_FLAG_TIMESTAMP_MASK == V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC;
        let ts = b.timestamp;
        // time_t and suseconds_t are 32 bits on some ARM C libraries.
        #[allow(clippy::useless_conversion)]
        let us = i64::from(ts.tv_sec)
            .checked_mul(1_000_000)
            .and_then(|s| s.checked_add(i64::from(ts.tv_usec)))
            .filter(|&u| u > 0)
            .map(|u| u as u64);
        Ok(Some(Filled {
            index: b.index as usize,
            bytesused: b.bytesused as usize,
            error: b.flags & V4L2_BUF_FLAG_ERROR != 0,
            monotonic_us: us.filter(|_| monotonic),
            sequence: b.sequence,
        }))
    }

    fn requeue(&mut self, index: usize) -> io::Result<()> {
        let mut b = desc();
        b.index = index as u32;
        // SAFETY: QBUF takes a v4l2_buffer naming one of our indices.
        unsafe {
            v4l2::ioctl(
                self.fd,
                vidioc::VIDIOC_QBUF,
                (&mut b as *mut v4l2_buffer).cast(),
            )
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // Exported buffers pin the driver's memory: closed first.
        self.exported.clear();
        if let Err(e) = self.stop() {
            // ENODEV: the device is gone (unplugged); nothing to stop.
            if e.raw_os_error() != Some(libc::ENODEV) {
                log::warn!(
                    "{}: STREAMOFF failed ({e}); releasing its buffers anyway (unmapped, and freed by the kernel as the device is closed)",
                    self.name
                );
            }
        }
        for &(ptr, len) in &self.bufs {
            // SAFETY: each (ptr, len) is a live mapping made in start().
            if let Err(e) = unsafe { v4l2::munmap(ptr, len) } {
                log::warn!("{}: munmap failed: {e}", self.name);
            }
        }
        self.bufs.clear();
        // SAFETY: zeroed plain data; REQBUFS with count 0 frees the buffers
        // (it fails harmlessly if the device is gone or still streaming:
        // closing the fd then frees them).
        let mut req: v4l2_requestbuffers = unsafe { std::mem::zeroed() };
        req.type_ = CAPTURE;
        req.memory = MMAP;
        // SAFETY: as above, on the still-open fd.
        let _ = unsafe {
            v4l2::ioctl(
                self.fd,
                vidioc::VIDIOC_REQBUFS,
                (&mut req as *mut v4l2_requestbuffers).cast(),
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A driver double: buffers become ready in order.
    struct Fake {
        ready: VecDeque<Filled>,
        queued: Vec<usize>,
    }

    fn filled(index: usize, sequence: u32) -> Filled {
        Filled {
            index,
            bytesused: 10,
            error: false,
            monotonic_us: Some(1000 + sequence as u64),
            sequence,
        }
    }

    impl Queue for Fake {
        fn dequeue(&mut self) -> io::Result<Option<Filled>> {
            Ok(self.ready.pop_front())
        }
        fn requeue(&mut self, index: usize) -> io::Result<()> {
            self.queued.push(index);
            Ok(())
        }
    }

    #[test]
    fn the_newest_ready_buffer_wins_and_older_ones_go_back() {
        let mut q = Fake {
            ready: [filled(0, 7), filled(1, 8), filled(2, 9)].into(),
            queued: vec![],
        };
        let (f, skipped) = take_newest(&mut q).unwrap().unwrap();
        assert_eq!((f.index, f.sequence), (2, 9));
        assert_eq!(skipped, 2);
        assert_eq!(q.queued, [0, 1], "the stale ones are back with the driver");
        assert_eq!(take_newest(&mut q).unwrap(), None);
        q.ready.push_back(filled(3, 10));
        assert_eq!(take_newest(&mut q).unwrap(), Some((filled(3, 10), 0)));
    }

    #[test]
    fn driver_sequence_gaps_are_bounded() {
        assert_eq!(sequence_gap(None, 5), 0);
        assert_eq!(sequence_gap(Some(5), 6), 0);
        assert_eq!(sequence_gap(Some(5), 9), 3);
        assert_eq!(sequence_gap(Some(u32::MAX), 0), 0, "wraps");
        assert_eq!(
            sequence_gap(Some(9), 2),
            0,
            "a counter going back is no drop"
        );
        assert_eq!(sequence_gap(Some(9), 90_000), 1000, "a jump is bounded");
    }
}
