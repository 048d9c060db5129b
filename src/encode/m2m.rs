//! Hardware encoding through a V4L2 memory-to-memory (M2M) encoder: raw
//! YUV in on the OUTPUT queue, the coded frame out on the CAPTURE queue,
//! multi-planar API, as the stateful encoder interface of the kernel's
//! V4L2 documentation describes it.
//!
//! On a Raspberry Pi this is the VideoCore's JPEG encoder: `bcm2835-codec`
//! (`drivers/staging/vc04_services/bcm2835-codec`, kernel ≥ 5.15, every Pi
//! model including the Zero) registers `/dev/video31` as
//! "bcm2835-codec-encode_image": OUTPUT takes YU12, NV12, YUYV (among
//! others), CAPTURE gives `JPEG`, quality through
//! `V4L2_CID_JPEG_COMPRESSION_QUALITY`; its line strides must be 32-byte
//! aligned for planar formats, so it may grant a `bytesperline` wider than
//! the camera's (rows are then copied one by one into it). µStreamer drives
//! the same device (`--encoder=m2m-image`, `src/ustreamer/m2m.c`): S_FMT on
//! OUTPUT then CAPTURE, the quality control, MMAP buffers on CAPTURE, one
//! frame in flight. No Pi is available here: this code runs in the test
//! suite against the kernel's own `vicodec` (a stateful FWHT encoder with
//! the same interface, built out of tree, `scripts/vm-test` case `m2m`),
//! with the coded format as a parameter (`source.encoder_format`), and the
//! JPEG-specific parts (the quality control, COM insertion) rest on the
//! facts above.
//!
//! Frames reach the encoder without a copy when the camera's driver can
//! export its buffers (VIDIOC_EXPBUF; videobuf2 drivers such as
//! bcm2835-v4l2, uvcvideo and vivid can) and the encoder takes the camera's
//! line stride: the OUTPUT queue then imports them as DMABUF, as µStreamer
//! does. Otherwise each frame is copied, row by row, into the encoder's
//! MMAP OUTPUT buffer (one copy: BENCHMARKS.md measures it).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::raw::c_void;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use v4l::v4l_sys::{
    V4L2_CAP_DEVICE_CAPS, V4L2_CAP_VIDEO_M2M_MPLANE, V4L2_CID_JPEG_COMPRESSION_QUALITY,
    v4l2_buffer, v4l2_capability, v4l2_control, v4l2_fmtdesc, v4l2_format, v4l2_plane,
    v4l2_requestbuffers,
};
use v4l::v4l2::{self, vidioc};

use super::{RawFormat, RawImage};
use crate::v4l2raw::c_name;

const CAPTURE_MPLANE: u32 = 9;
const OUTPUT_MPLANE: u32 = 10;
const MMAP: u32 = 1;
const DMABUF: u32 = 4;
/// Buffers per queue: one frame in flight, one being filled.
const BUFFERS: u32 = 2;

/// The V4L2 fourcc of a raw format.
fn fourcc(r: RawFormat) -> [u8; 4] {
    match r {
        RawFormat::Yuyv => *b"YUYV",
        RawFormat::Nv12 => *b"NV12",
        RawFormat::Yu12 => *b"YU12",
    }
}

fn ioctl<T>(fd: i32, req: vidioc::_IOC_TYPE, arg: &mut T) -> io::Result<()> {
    // SAFETY: every caller in this file passes the struct its request
    // expects, on an fd it owns.
    unsafe { crate::v4l2raw::ioctl(fd, req, arg) }
}

/// A capture buffer exported as DMABUF, lent for one frame.
#[derive(Debug, Clone, Copy)]
pub struct Dmabuf {
    /// The exported fd (owned by the capture source).
    pub fd: RawFd,
    /// The buffer's length in bytes.
    pub len: usize,
    /// The capture buffer's index: the OUTPUT slot it is queued in, so each
    /// slot keeps seeing the same buffer (the kernel keeps it attached).
    pub index: usize,
}

/// The camera's side of a zero-copy hand-over: its line stride and how many
/// buffers it exported.
#[derive(Debug, Clone, Copy)]
pub struct Import {
    pub stride: usize,
    pub buffers: usize,
}

/// A hardware encoder as the capture loop drives it: the M2M device, or a
/// test double.
pub trait HardwareEncoder: Send {
    /// Encodes `img` at `quality` into `out` (cleared first), waiting at
    /// most `timeout`; `dmabuf` is the buffer `img` lives in, when the
    /// source lends it. An importing encoder is done with it on return.
    fn encode(
        &mut self,
        img: &RawImage<'_>,
        dmabuf: Option<&Dmabuf>,
        quality: u8,
        out: &mut Vec<u8>,
        timeout: Duration,
    ) -> io::Result<()>;
    /// True when frames come in as the camera's own buffers (no copy).
    fn imports(&self) -> bool;
    /// The coded format it produces.
    fn coded(&self) -> [u8; 4];
    /// What it is, for the log: "card (/dev/videoN)".
    fn describe(&self) -> String;
    /// The same device opened again, copying frames in (for when it
    /// cannot take the camera's buffers).
    fn reopen_copying(&self) -> io::Result<Box<dyn HardwareEncoder>>;
}

/// Opens the first M2M encoder offering `coded` for `width × height`
/// frames of `format`.
pub fn open_first(
    coded: [u8; 4],
    format: RawFormat,
    width: u32,
    height: u32,
    import: Option<Import>,
) -> io::Result<Box<dyn HardwareEncoder>> {
    let Some((path, _)) = find(coded) else {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no M2M encoder for {} (Pi: /dev/video31)",
                String::from_utf8_lossy(&coded)
            ),
        ));
    };
    Ok(Box::new(M2mEncoder::open(
        &path, coded, format, width, height, import,
    )?))
}

/// Is `path` an M2M (multi-planar) device whose CAPTURE queue offers
/// `coded`? Its card name, if so.
pub fn offers(path: &Path, coded: [u8; 4]) -> Option<String> {
    let f = open(path).ok()?;
    let fd = f.as_raw_fd();
    // SAFETY: plain data.
    let mut c: v4l2_capability = unsafe { std::mem::zeroed() };
    ioctl(fd, vidioc::VIDIOC_QUERYCAP, &mut c).ok()?;
    let caps = if c.capabilities & V4L2_CAP_DEVICE_CAPS != 0 {
        c.device_caps
    } else {
        c.capabilities
    };
    if caps & V4L2_CAP_VIDEO_M2M_MPLANE == 0 {
        return None;
    }
    let want = u32::from_le_bytes(coded);
    for index in 0..64 {
        // SAFETY: plain data.
        let mut d: v4l2_fmtdesc = unsafe { std::mem::zeroed() };
        d.index = index;
        d.type_ = CAPTURE_MPLANE;
        if ioctl(fd, vidioc::VIDIOC_ENUM_FMT, &mut d).is_err() {
            break;
        }
        if d.pixelformat == want {
            return Some(c_name(&c.card));
        }
    }
    None
}

/// The first `/dev/video*` M2M encoder offering `coded`.
pub fn find(coded: [u8; 4]) -> Option<(PathBuf, String)> {
    let mut nodes: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e
                .file_name()
                .to_str()?
                .strip_prefix("video")?
                .parse()
                .ok()?;
            Some((n, e.path()))
        })
        .collect();
    nodes.sort();
    nodes
        .into_iter()
        .find_map(|(_, p)| offers(&p, coded).map(|card| (p, card)))
}

fn open(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// One mapped buffer plane.
struct Mapped {
    ptr: *mut c_void,
    len: usize,
}

/// An open, streaming M2M encoder for one raw format and size.
pub struct M2mEncoder {
    file: File,
    path: PathBuf,
    /// The driver's card name.
    card: String,
    /// The path, for messages.
    name: String,
    coded: [u8; 4],
    format: RawFormat,
    width: u32,
    height: u32,
    /// The OUTPUT queue's line stride (may be wider than the camera's).
    stride: usize,
    /// MMAP OUTPUT buffers (empty when importing).
    out: Vec<Mapped>,
    /// OUTPUT slots when the camera's buffers are imported (DMABUF).
    import_slots: usize,
    cap: Vec<Mapped>,
    /// OUTPUT buffers not queued to the driver.
    out_free: Vec<usize>,
    quality: Option<u8>,
    streaming: bool,
}

// SAFETY: the mappings are used only through &mut self by the one thread
// that owns the encoder.
unsafe impl Send for M2mEncoder {}

fn desc(type_: u32, memory: u32, index: u32, planes: &mut v4l2_plane) -> v4l2_buffer {
    // SAFETY: plain data.
    let mut b: v4l2_buffer = unsafe { std::mem::zeroed() };
    b.type_ = type_;
    b.memory = memory;
    b.index = index;
    b.length = 1;
    b.m.planes = planes;
    b
}

impl M2mEncoder {
    /// Opens the encoder at `path` for `width × height` frames of `format`,
    /// producing `coded` frames; importing the camera's buffers when
    /// `import` is given and the encoder accepts the camera's stride.
    pub fn open(
        path: &Path,
        coded: [u8; 4],
        format: RawFormat,
        width: u32,
        height: u32,
        import: Option<Import>,
    ) -> io::Result<M2mEncoder> {
        let file = open(path)?;
        let fd = file.as_raw_fd();
        let name = path.display().to_string();
        let at = |what: &'static str| {
            let name = path.display().to_string();
            move |e: io::Error| io::Error::new(e.kind(), format!("{name}: {what}: {e}"))
        };
        // SAFETY: plain data.
        let mut c: v4l2_capability = unsafe { std::mem::zeroed() };
        ioctl(fd, vidioc::VIDIOC_QUERYCAP, &mut c).map_err(at("QUERYCAP"))?;
        let card = c_name(&c.card);
        // The stateful encoder interface: the coded format on CAPTURE first,
        // then the raw one on OUTPUT (which sets the size for both).
        // SAFETY: plain data; the mplane member is the one in use.
        let mut f: v4l2_format = unsafe { std::mem::zeroed() };
        f.type_ = CAPTURE_MPLANE;
        f.fmt.pix_mp.width = width;
        f.fmt.pix_mp.height = height;
        f.fmt.pix_mp.pixelformat = u32::from_le_bytes(coded);
        f.fmt.pix_mp.num_planes = 1;
        ioctl(fd, vidioc::VIDIOC_S_FMT, &mut f).map_err(at("setting the coded format"))?;
        // SAFETY: plain data.
        let mut f: v4l2_format = unsafe { std::mem::zeroed() };
        f.type_ = OUTPUT_MPLANE;
        f.fmt.pix_mp.width = width;
        f.fmt.pix_mp.height = height;
        f.fmt.pix_mp.pixelformat = u32::from_le_bytes(fourcc(format));
        f.fmt.pix_mp.num_planes = 1;
        ioctl(fd, vidioc::VIDIOC_S_FMT, &mut f).map_err(at("setting the raw format"))?;
        // SAFETY: the driver filled the mplane member.
        let (gw, gh, gfmt, stride, planes) = unsafe {
            let p = &f.fmt.pix_mp;
            (
                p.width,
                p.height,
                p.pixelformat,
                p.plane_fmt[0].bytesperline as usize,
                p.num_planes,
            )
        };
        if (gw, gh) != (width, height) || gfmt != u32::from_le_bytes(fourcc(format)) || planes != 1
        {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "{name} takes {}x{} {} in {planes} plane(s), not {width}x{height} {} in one",
                    gw,
                    gh,
                    String::from_utf8_lossy(&gfmt.to_le_bytes()),
                    format.name()
                ),
            ));
        }
        let mut enc = M2mEncoder {
            file,
            path: path.to_path_buf(),
            card,
            name,
            coded,
            format,
            width,
            height,
            stride: stride.max(width as usize * format.bytes_per_pixel()),
            out: Vec::new(),
            import_slots: 0,
            cap: Vec::new(),
            out_free: Vec::new(),
            quality: None,
            streaming: false,
        };
        match import {
            Some(i) if i.stride == enc.stride && i.buffers > 0 => {
                enc.import_slots =
                    enc.request(OUTPUT_MPLANE, DMABUF, i.buffers as u32)
                        .map_err(at("output buffers (DMABUF)"))? as usize;
            }
            Some(i) => log::debug!(
                "{}: takes lines of {} bytes, the camera gives {}: frames are copied",
                enc.name,
                enc.stride,
                i.stride
            ),
            None => {}
        }
        if enc.import_slots == 0 {
            enc.out = enc.map(OUTPUT_MPLANE).map_err(at("output buffers"))?;
            enc.out_free = (0..enc.out.len()).collect();
        }
        enc.cap = enc.map(CAPTURE_MPLANE).map_err(at("capture buffers"))?;
        for i in 0..enc.cap.len() {
            enc.queue(CAPTURE_MPLANE, i, 0)
                .map_err(at("queueing a capture buffer"))?;
        }
        for t in [OUTPUT_MPLANE, CAPTURE_MPLANE] {
            let mut typ = t as libc::c_int;
            ioctl(fd, vidioc::VIDIOC_STREAMON, &mut typ).map_err(at("STREAMON"))?;
        }
        enc.streaming = true;
        Ok(enc)
    }

    /// REQBUFS: the number of buffers granted (at least one).
    fn request(&self, type_: u32, memory: u32, count: u32) -> io::Result<u32> {
        // SAFETY: plain data.
        let mut req: v4l2_requestbuffers = unsafe { std::mem::zeroed() };
        req.count = count;
        req.type_ = type_;
        req.memory = memory;
        ioctl(self.file.as_raw_fd(), vidioc::VIDIOC_REQBUFS, &mut req)?;
        if req.count == 0 {
            return Err(io::Error::other("the driver granted no buffers"));
        }
        Ok(req.count)
    }

    fn map(&self, type_: u32) -> io::Result<Vec<Mapped>> {
        let fd = self.file.as_raw_fd();
        let count = self.request(type_, MMAP, BUFFERS)?;
        let mut out = Vec::new();
        for i in 0..count {
            // SAFETY: plain data.
            let mut plane: v4l2_plane = unsafe { std::mem::zeroed() };
            let mut b = desc(type_, MMAP, i, &mut plane);
            ioctl(fd, vidioc::VIDIOC_QUERYBUF, &mut b)?;
            let len = plane.length as usize;
            // SAFETY: the offset QUERYBUF gave for this plane; unmapped in Drop.
            let ptr = crate::v4l2raw::map_buffer(fd, len, unsafe { plane.m.mem_offset })?;
            out.push(Mapped { ptr, len });
        }
        Ok(out)
    }

    fn queue(&mut self, type_: u32, index: usize, bytesused: usize) -> io::Result<()> {
        // SAFETY: plain data.
        let mut plane: v4l2_plane = unsafe { std::mem::zeroed() };
        plane.bytesused = bytesused as u32;
        let len = if type_ == OUTPUT_MPLANE {
            &self.out
        } else {
            &self.cap
        }
        .get(index)
        .map_or(0, |m| m.len);
        plane.length = len as u32;
        let mut b = desc(type_, MMAP, index as u32, &mut plane);
        ioctl(self.file.as_raw_fd(), vidioc::VIDIOC_QBUF, &mut b)
    }

    /// Queues the camera's buffer `d` (holding `used` bytes) on OUTPUT.
    fn queue_import(&mut self, d: &Dmabuf, used: usize) -> io::Result<()> {
        // SAFETY: plain data.
        let mut plane: v4l2_plane = unsafe { std::mem::zeroed() };
        plane.bytesused = used as u32;
        plane.length = d.len as u32;
        plane.m.fd = d.fd;
        let mut b = desc(OUTPUT_MPLANE, DMABUF, d.index as u32, &mut plane);
        ioctl(self.file.as_raw_fd(), vidioc::VIDIOC_QBUF, &mut b).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "{}: cannot take the camera's buffer (DMABUF): {e}",
                    self.name
                ),
            )
        })
    }

    /// A filled buffer of `type_`, if one is ready: (index, bytesused).
    fn dequeue(&mut self, type_: u32) -> io::Result<Option<(usize, usize)>> {
        // SAFETY: plain data.
        let mut plane: v4l2_plane = unsafe { std::mem::zeroed() };
        let memory = if type_ == OUTPUT_MPLANE && self.import_slots > 0 {
            DMABUF
        } else {
            MMAP
        };
        let mut b = desc(type_, memory, 0, &mut plane);
        match ioctl(self.file.as_raw_fd(), vidioc::VIDIOC_DQBUF, &mut b) {
            Ok(()) => Ok(Some((b.index as usize, plane.bytesused as usize))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn wait(&self, events: i16, until: Instant) -> io::Result<()> {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{}: the encoder gave no frame in time", self.name),
            ));
        }
        let mut p = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, left.as_millis().min(1000) as i32) };
        Ok(())
    }

    /// The copying path: the frame goes into a free MMAP OUTPUT buffer.
    fn encode_copied(
        &mut self,
        img: &RawImage<'_>,
        out: &mut Vec<u8>,
        until: Instant,
    ) -> io::Result<()> {
        // A free OUTPUT buffer: reclaim the ones the encoder is done with.
        while let Some((i, _)) = self.dequeue(OUTPUT_MPLANE)? {
            self.out_free.push(i);
        }
        let idx = loop {
            if let Some(i) = self.out_free.pop() {
                break i;
            }
            self.wait(libc::POLLOUT, until)?;
            while let Some((i, _)) = self.dequeue(OUTPUT_MPLANE)? {
                self.out_free.push(i);
            }
        };
        let used = self.fill(idx, img)?;
        self.queue(OUTPUT_MPLANE, idx, used)?;
        self.take_coded(out, until)
    }

    /// The zero-copy path: the camera's buffer goes in as it is, and comes
    /// back out of the encoder before this returns (the camera reuses it).
    fn encode_imported(
        &mut self,
        img: &RawImage<'_>,
        dmabuf: Option<&Dmabuf>,
        out: &mut Vec<u8>,
        until: Instant,
    ) -> io::Result<()> {
        let d = dmabuf.ok_or_else(|| {
            io::Error::other(format!("{}: a frame came without its DMABUF", self.name))
        })?;
        if d.index >= self.import_slots || img.stride != self.stride {
            return Err(io::Error::other(format!(
                "{}: the camera's buffer {} (stride {}) does not fit the encoder's {} slots (stride {})",
                self.name, d.index, img.stride, self.import_slots, self.stride
            )));
        }
        let used = img.data.len().min(d.len);
        self.queue_import(d, used)?;
        let coded = self.take_coded(out, until);
        // Whatever happened, wait for the buffer to come back: the camera
        // must not refill it while the encoder may still read it. (On a
        // timeout the caller drops the encoder, which releases it.)
        loop {
            if self.dequeue(OUTPUT_MPLANE)?.is_some() {
                break;
            }
            self.wait(libc::POLLOUT, until)?;
        }
        coded
    }

    /// Waits for the next coded frame and copies it into `out`.
    fn take_coded(&mut self, out: &mut Vec<u8>, until: Instant) -> io::Result<()> {
        let (ci, n) = loop {
            if let Some(done) = self.dequeue(CAPTURE_MPLANE)? {
                break done;
            }
            self.wait(libc::POLLIN, until)?;
        };
        let buf = &self.cap[ci];
        let n = n.min(buf.len);
        out.clear();
        // SAFETY: the capture buffer is dequeued: the driver does not write
        // it until it is queued again below.
        out.extend_from_slice(unsafe { std::slice::from_raw_parts(buf.ptr.cast::<u8>(), n) });
        self.queue(CAPTURE_MPLANE, ci, 0)?;
        Ok(())
    }

    /// Copies `img` into OUTPUT buffer `idx`, row by row (the encoder's
    /// stride may be wider). Returns the bytes used.
    fn fill(&mut self, idx: usize, img: &RawImage<'_>) -> io::Result<usize> {
        let h = img.height as usize;
        let need = self
            .format
            .frame_len(self.stride, h)
            .ok_or_else(|| io::Error::other("the encoder's frame size overflows"))?;
        let buf = &self.out[idx];
        if need > buf.len {
            return Err(io::Error::other(format!(
                "{}: an output buffer of {} bytes cannot hold a {need}-byte frame",
                self.name, buf.len
            )));
        }
        // SAFETY: the buffer is ours (not queued), `need` bytes fit in it.
        let dst = unsafe { std::slice::from_raw_parts_mut(buf.ptr.cast::<u8>(), need) };
        copy_planes(img, dst, self.stride);
        Ok(need)
    }
}

/// Copies the planes of `img` (already validated) into `dst`, whose lines
/// are `dst_stride` bytes apart (the layout `RawFormat::frame_len` gives).
pub fn copy_planes(img: &RawImage<'_>, dst: &mut [u8], dst_stride: usize) {
    let (w, h) = (img.width as usize, img.height as usize);
    let (src_s, dst_s) = (img.stride, dst_stride);
    let line = w * img.format.bytes_per_pixel();
    // Planes as (rows, bytes per row, source offset, dest offset, strides).
    let mut planes = vec![(h, line, 0usize, 0usize, src_s, dst_s)];
    match img.format {
        RawFormat::Yuyv => {}
        RawFormat::Nv12 => planes.push((h / 2, w, src_s * h, dst_s * h, src_s, dst_s)),
        RawFormat::Yu12 => {
            let (cs, cd) = (src_s / 2, dst_s / 2);
            planes.push((h / 2, w / 2, src_s * h, dst_s * h, cs, cd));
            planes.push((
                h / 2,
                w / 2,
                src_s * h + cs * (h / 2),
                dst_s * h + cd * (h / 2),
                cs,
                cd,
            ));
        }
    }
    for (rows, bytes, so, d0, ss, ds) in planes {
        for r in 0..rows {
            let s = so + r * ss;
            let d = d0 + r * ds;
            if let (Some(from), Some(to)) = (img.data.get(s..s + bytes), dst.get_mut(d..d + bytes))
            {
                to.copy_from_slice(from);
            }
        }
    }
}

impl HardwareEncoder for M2mEncoder {
    fn encode(
        &mut self,
        img: &RawImage<'_>,
        dmabuf: Option<&Dmabuf>,
        quality: u8,
        out: &mut Vec<u8>,
        timeout: Duration,
    ) -> io::Result<()> {
        if img.format != self.format || (img.width, img.height) != (self.width, self.height) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the frame's format or size changed",
            ));
        }
        img.validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        if self.quality != Some(quality) && self.coded == *b"JPEG" {
            let mut c = v4l2_control {
                id: V4L2_CID_JPEG_COMPRESSION_QUALITY,
                value: i32::from(quality),
            };
            ioctl(self.file.as_raw_fd(), vidioc::VIDIOC_S_CTRL, &mut c)?;
            self.quality = Some(quality);
        }
        let until = Instant::now() + timeout;
        if self.import_slots > 0 {
            self.encode_imported(img, dmabuf, out, until)
        } else {
            self.encode_copied(img, out, until)
        }
    }

    fn imports(&self) -> bool {
        self.import_slots > 0
    }

    fn coded(&self) -> [u8; 4] {
        self.coded
    }

    fn describe(&self) -> String {
        format!("{} ({})", self.card, self.path.display())
    }

    fn reopen_copying(&self) -> io::Result<Box<dyn HardwareEncoder>> {
        Ok(Box::new(M2mEncoder::open(
            &self.path,
            self.coded,
            self.format,
            self.width,
            self.height,
            None,
        )?))
    }
}

impl Drop for M2mEncoder {
    fn drop(&mut self) {
        let fd = self.file.as_raw_fd();
        if self.streaming {
            for t in [OUTPUT_MPLANE, CAPTURE_MPLANE] {
                let mut typ = t as libc::c_int;
                let _ = ioctl(fd, vidioc::VIDIOC_STREAMOFF, &mut typ);
            }
        }
        for m in self.out.drain(..).chain(self.cap.drain(..)) {
            // SAFETY: each is a live mapping made in map().
            let _ = unsafe { v4l2::munmap(m.ptr, m.len) };
        }
        // Closing the file frees the buffers.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_are_copied_into_a_wider_stride() {
        // 4x2 YU12 with a source stride of 4 into a destination stride of 8.
        let src: Vec<u8> = (0..12).collect(); // Y 8, U 2, V 2
        let img = RawImage {
            format: RawFormat::Yu12,
            width: 4,
            height: 2,
            stride: 4,
            data: &src,
        };
        let need = RawFormat::Yu12.frame_len(8, 2).unwrap();
        let mut dst = vec![0xEE; need];
        copy_planes(&img, &mut dst, 8);
        assert_eq!(&dst[0..4], &[0, 1, 2, 3]);
        assert_eq!(&dst[8..12], &[4, 5, 6, 7]);
        // U at 16 (stride 4 per chroma row), V after one chroma row.
        assert_eq!(&dst[16..18], &[8, 9]);
        assert_eq!(&dst[20..22], &[10, 11]);
    }
}
