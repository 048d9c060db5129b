//! Frames from a camera program's stdout: `--source "exec:rpicam-vid -t 0
//! -n --codec yuv420 --width 640 --height 480 -o -"`, the way go2rtc's
//! `exec:` sources work. It is how a static zerocam reads the Pi camera on
//! current Raspberry Pi OS, where only libcamera drives it (and
//! `libcamerify`'s LD_PRELOAD cannot hook a static binary).
//!
//! - The command runs without a shell (split as a shell would, see
//!   [`crate::config::split_command`]), in its own process group, with
//!   `PR_SET_PDEATHSIG = SIGKILL`: if zerocam dies, even by SIGKILL, so does
//!   the child. Dropping the source closes the pipe and sends SIGTERM to
//!   the group, then SIGKILL after [`TERM_GRACE`] to whatever of the group
//!   is left (a wrapper script that obeys SIGTERM around a program that
//!   does not). No orphan.
//!   One limit: PDEATHSIG reaches only the direct child, so a program that
//!   a wrapper script started outlives a SIGKILLed zerocam; under systemd
//!   (`deploy/zerocam.service`, default `KillMode=control-group`) the
//!   restart kills it with the rest of the service.
//! - `source.format` says what it writes: `MJPG`/`JPEG` is a stream of
//!   concatenated JPEGs, split at SOI … EOI with the shared marker walker
//!   (bytes outside a JPEG are counted as corrupt); `YUYV`, `NV12`, `YU12`
//!   are back-to-back raw frames of `source.size`.
//! - Its stderr goes to the log, prefixed with the program's name, at most
//!   [`STDERR_LINES`] lines per 10 s.
//! - A child that exits or stalls (no frame for the stall timeout) is an
//!   error: the capture loop restarts it with backoff.
//! - Paused, the child is stopped ([`FrameSource::stop_when_paused`]): a
//!   camera program left blocked on a full pipe keeps its sensor running
//!   and may time out on its own; stopped, it costs nothing, and it is
//!   started again on resume (a second or two for rpicam-vid).

use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{FrameData, FrameSource, Granted, SourceFormat, SourceFrame};
use crate::encode::RawImage;
use crate::wire::jpeg;

/// How long the child gets between SIGTERM and SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(2);
/// Stderr lines logged per 10 s; the rest are counted in one line.
pub const STDERR_LINES: usize = 20;
/// How long a child that closed its output gets to exit, so its exit
/// status can be logged.
const EXIT_GRACE: Duration = Duration::from_secs(1);
/// A child silent for this long (or 3 frame periods, if longer) is stalled.
const MIN_STALL: Duration = Duration::from_secs(5);
/// One poll slice, so the capture loop beats and sees shutdown promptly.
const POLL_SLICE_MS: i32 = 200;
/// The largest MJPEG frame accepted; bytes beyond it without an EOI are
/// dropped as corrupt (a producer writing garbage cannot grow the buffer).
const MAX_JPEG: usize = 16 << 20;

/// Splits a byte stream of concatenated JPEGs into frames.
#[derive(Debug, Default)]
pub struct JpegSplitter {
    buf: Vec<u8>,
    /// Bytes dropped because they were not inside a JPEG.
    pub garbage: u64,
}

impl JpegSplitter {
    /// Adds bytes read from the producer.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole JPEG (SOI … EOI), if the buffer holds one. Bytes
    /// before its SOI are dropped and counted as garbage, as is a frame
    /// that grows past [`MAX_JPEG`] without an end.
    pub fn next_frame(&mut self) -> Option<Vec<u8>> {
        loop {
            let Some(soi) = find(&self.buf, &[0xFF, 0xD8, 0xFF]) else {
                // Keep a possible start split across reads.
                let keep = if self.buf.ends_with(&[0xFF, 0xD8]) {
                    2
                } else {
                    usize::from(self.buf.ends_with(&[0xFF]))
                };
                let drop = self.buf.len() - keep;
                self.garbage += drop as u64;
                self.buf.drain(..drop);
                return None;
            };
            if soi > 0 {
                self.garbage += soi as u64;
                self.buf.drain(..soi);
            }
            // Skip the header by its segment lengths (APP segments may hold
            // an embedded thumbnail with its own EOI), then find EOI in the
            // entropy-coded data, where FF is always followed by 00 or RSTn.
            let scan_at = match header_state(&self.buf) {
                Header::Complete(at) => at,
                Header::Incomplete if self.buf.len() < MAX_JPEG => return None,
                Header::Incomplete | Header::Invalid => {
                    // Not a JPEG after all: drop its SOI and look again.
                    self.garbage += 2;
                    self.buf.drain(..2);
                    continue;
                }
            };
            let mut i = scan_at;
            while i + 1 < self.buf.len() {
                if self.buf[i] == 0xFF {
                    match self.buf[i + 1] {
                        0xD9 => {
                            let frame: Vec<u8> = self.buf.drain(..i + 2).collect();
                            return Some(frame);
                        }
                        0x00 | 0xD0..=0xD7 | 0xFF => {}
                        // Another marker inside the scan: a broken frame.
                        _ => break,
                    }
                }
                i += 1;
            }
            if i + 1 < self.buf.len() || self.buf.len() > MAX_JPEG {
                // Broken or oversized: drop this start and resynchronise.
                self.garbage += 2;
                self.buf.drain(..2);
                continue;
            }
            return None;
        }
    }
}

/// How far a JPEG header at the start of a stream buffer has arrived.
#[derive(Debug, PartialEq, Eq)]
enum Header {
    /// The scan starts at this offset.
    Complete(usize),
    /// More bytes are needed.
    Incomplete,
    /// This is no JPEG header.
    Invalid,
}

fn header_state(buf: &[u8]) -> Header {
    let mut end = 2;
    for seg in jpeg::segments(buf) {
        match seg {
            Ok(s) if s.marker == jpeg::marker::SOS => return Header::Complete(s.end),
            Ok(s) => end = s.end,
            Err(jpeg::JpegError::BadSegment { at }) => {
                // A segment running past what has arrived is incomplete.
                return match buf.get(at + 2..at + 4) {
                    None => Header::Incomplete,
                    Some(l) => {
                        let len = usize::from(u16::from_be_bytes([l[0], l[1]]));
                        if len >= 2 && at + 2 + len > buf.len() {
                            Header::Incomplete
                        } else {
                            Header::Invalid
                        }
                    }
                };
            }
            // Out of bytes after the last segment, or EOI before a scan.
            Err(jpeg::JpegError::NoSos) => {
                let rest = &buf[end.min(buf.len())..];
                return if rest.iter().all(|&b| b == 0xFF) {
                    Header::Incomplete
                } else {
                    Header::Invalid
                };
            }
            Err(_) => return Header::Invalid,
        }
    }
    Header::Incomplete
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A running camera program.
pub struct ExecSource {
    child: Child,
    /// The pipe's read end; `None` once closed to stop the child.
    stdout: Option<ChildStdout>,
    program: String,
    granted: Granted,
    /// Bytes of one raw frame (raw formats).
    frame_len: usize,
    raw: Vec<u8>,
    filled: usize,
    splitter: JpegSplitter,
    frame: Vec<u8>,
    last_frame: Instant,
    stall: Duration,
    /// Garbage bytes already reported as corrupt frames.
    reported_garbage: u64,
    /// Bytes read in all (raw formats), for a hint when they are no whole
    /// number of frames.
    total_in: u64,
}

impl ExecSource {
    /// Starts `argv` and reads `format` frames of `width × height` from it.
    pub fn start(
        argv: &[String],
        format: SourceFormat,
        width: u32,
        height: u32,
        fps: u32,
    ) -> io::Result<ExecSource> {
        let program = argv.first().cloned().unwrap_or_default();
        let name = std::path::Path::new(&program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| program.clone());
        let mut cmd = Command::new(&program);
        cmd.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                // Its own process group, so stopping it reaches its children.
                if libc::setpgid(0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // Killed with zerocam, whatever kills zerocam.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // zerocam may already have died between fork and prctl.
                if libc::getppid() == 1 {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start `{program}`: {e}")))?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("the child's pipes were not set up"));
        };
        log::info!("exec: started {name} (pid {})", child.id());
        forward_stderr(name.clone(), stderr);
        // Non-blocking: the loop polls in slices and reads what is there.
        // SAFETY: fcntl on the pipe's fd, which we own.
        unsafe {
            let fd = stdout.as_raw_fd();
            let flags = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        let (stride, frame_len) = match format {
            SourceFormat::Mjpeg => (0, 0),
            SourceFormat::Raw(r) => {
                let stride = width as usize * r.bytes_per_pixel();
                let len = r.frame_len(stride, height as usize).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "source.size is too large")
                })?;
                (stride, len)
            }
        };
        let period = Duration::from_secs(1) / fps.max(1);
        Ok(ExecSource {
            child,
            stdout: Some(stdout),
            program: name,
            granted: Granted {
                format,
                width,
                height,
                stride,
                fps,
                label: format.name(),
            },
            frame_len,
            raw: vec![0; frame_len],
            filled: 0,
            splitter: JpegSplitter::default(),
            frame: Vec::new(),
            last_frame: Instant::now(),
            stall: MIN_STALL.max(period * 3),
            reported_garbage: 0,
            total_in: 0,
        })
    }

    /// The child's exit, as an error to restart on. Its stdout closes a
    /// moment before it is reaped (a loaded machine makes that moment
    /// long), so it gets [`EXIT_GRACE`] to exit: its exit status is what
    /// tells the user why it stopped.
    fn exited(&mut self) -> io::Error {
        let status = match exit_within(&mut self.child, EXIT_GRACE) {
            Ok(Some(st)) => st.to_string(),
            // Still running without its output: Drop stops it.
            Ok(None) => "closed its output but kept running".to_string(),
            Err(e) => format!("closed its output; cannot wait for it: {e}"),
        };
        self.warn_leftover();
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{} stopped ({status})", self.program),
        )
    }

    /// Logs what a partly read raw frame says about `source.format` and
    /// `source.size`, if one is there.
    fn warn_leftover(&self) {
        if let Some(hint) = self.leftover_hint() {
            log::warn!("{hint}");
        }
    }

    /// For a raw format with part of a frame read: what the byte count
    /// says about `source.format` and `source.size`. Short: it is a log
    /// line of its own.
    fn leftover_hint(&self) -> Option<String> {
        let SourceFormat::Raw(format) = self.granted.format else {
            return None;
        };
        if self.filled == 0 || self.frame_len == 0 {
            return None;
        }
        let (w, h) = (self.granted.width as usize, self.granted.height as usize);
        let fits = |f: crate::encode::RawFormat| {
            f.frame_len(w * f.bytes_per_pixel(), h)
                .is_some_and(|len| len > 0 && self.total_in % len as u64 == 0)
        };
        use crate::encode::RawFormat::{Nv12, Yu12, Yuyv};
        let other = match format {
            Yuyv if fits(Yu12) => " (YU12/NV12 fits)",
            Yu12 | Nv12 if fits(Yuyv) => " (YUYV fits)",
            _ => " (format? size?)",
        };
        Some(format!(
            "{} B: not a whole number of {w}x{h} {} frames{other}",
            self.total_in,
            format.name()
        ))
    }

    /// A raw format's first frame that starts like a JPEG: the program
    /// writes MJPEG, and reading it as raw would stream noise.
    fn check_first_frame(&self) -> io::Result<()> {
        if self.total_in == self.frame_len as u64 && self.frame.starts_with(&[0xFF, 0xD8, 0xFF]) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} writes JPEG, not {} (source.format = MJPG)",
                    self.program,
                    self.granted.format.name()
                ),
            ));
        }
        Ok(())
    }

    /// Reads what the pipe has into the raw frame or the JPEG splitter.
    /// `Ok(false)`: nothing more now.
    fn read_some(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 64 * 1024];
        let target: &mut [u8] = if self.frame_len > 0 {
            &mut self.raw[self.filled..]
        } else {
            &mut chunk
        };
        let Some(stdout) = self.stdout.as_mut() else {
            return Err(io::Error::other("the source is stopping"));
        };
        match stdout.read(target) {
            Ok(0) => Err(self.exited()),
            Ok(n) => {
                if self.frame_len > 0 {
                    self.filled += n;
                    self.total_in += n as u64;
                } else {
                    self.splitter.push(&chunk[..n]);
                }
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(e) => Err(e),
        }
    }
}

/// Logs the child's stderr lines, prefixed, at most [`STDERR_LINES`] per
/// 10 s (a chatty program must not flood a serial console).
fn forward_stderr(name: String, stderr: std::process::ChildStderr) {
    let spawned = std::thread::Builder::new()
        .name("exec-stderr".into())
        .spawn(move || {
            let mut window = Instant::now();
            let (mut shown, mut hidden) = (0usize, 0usize);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if window.elapsed() >= Duration::from_secs(10) {
                    if hidden > 0 {
                        log::info!("{name}: … {hidden} more lines");
                    }
                    window = Instant::now();
                    (shown, hidden) = (0, 0);
                }
                if shown < STDERR_LINES {
                    shown += 1;
                    log::info!("{name}: {}", crate::logging::clip(line.trim_end()));
                } else {
                    hidden += 1;
                }
            }
        });
    if let Err(e) = spawned {
        log::warn!("exec: cannot forward {}'s stderr: {e}", "the child");
    }
}

/// The child's exit status if it exits within `within` (reaping it), or
/// `None` if it is still running then.
fn exit_within(child: &mut Child, within: Duration) -> io::Result<Option<ExitStatus>> {
    let mut status = None;
    poll_until(within, || {
        status = child.try_wait().transpose();
        status.is_some()
    });
    status.transpose()
}

/// Calls `done` every 10 ms until it says yes (then `true`) or `within`
/// has passed (then `false`).
fn poll_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a live process is left in process group `pgid`. A zombie does
/// not count: its new parent reaps it when it will (a container's init
/// may never), and it holds nothing.
fn group_alive(pgid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the group has a member.
    if unsafe { libc::kill(-pgid, 0) } != 0 {
        return false;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return true;
    };
    procs.flatten().any(|p| {
        std::fs::read_to_string(p.path().join("stat"))
            .ok()
            .and_then(|stat| state_and_group(&stat))
            .is_some_and(|(state, pgrp)| pgrp == pgid && state != 'Z' && state != 'X')
    })
}

/// A process's state letter and process group, from its `/proc/PID/stat`
/// (fields after the command name, which may hold blanks and parentheses).
fn state_and_group(stat: &str) -> Option<(char, libc::pid_t)> {
    let mut f = stat.rsplit_once(')')?.1.split_whitespace();
    let state = f.next()?.chars().next()?;
    let pgrp = f.nth(1)?.parse().ok()?;
    Some((state, pgrp))
}

impl Drop for ExecSource {
    /// SIGTERM to the whole group, and SIGKILL after [`TERM_GRACE`] if the
    /// child or anything it started is still there: a wrapper script that
    /// exits on SIGTERM must not leave its camera program behind.
    fn drop(&mut self) {
        let pgid = self.child.id() as libc::pid_t;
        // The pipe closes with the signal: a program blocked writing a full
        // pipe (ffmpeg, rpicam-vid) cannot act on SIGTERM until its write
        // returns, and now it returns (EPIPE, or SIGPIPE ends it).
        self.stdout = None;
        // SAFETY: signals to the child's own process group.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let child = &mut self.child;
        let mut reaped = false;
        let gone = poll_until(TERM_GRACE, || {
            reaped = reaped || !matches!(child.try_wait(), Ok(None));
            reaped && !group_alive(pgid)
        });
        if gone {
            return;
        }
        log::warn!(
            "exec: {} ignored SIGTERM; killing its process group",
            self.program
        );
        // SAFETY: as above; the group still has a member, so its id is not
        // reused.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        if !reaped {
            let _ = self.child.wait();
        }
        // SIGKILL lands when each is next scheduled: wait a little, so the
        // next start does not find the camera still held.
        if !poll_until(Duration::from_secs(1), || !group_alive(pgid)) {
            log::warn!("exec: process group {pgid} survived SIGKILL (stuck in the kernel?)");
        }
    }
}

impl FrameSource for ExecSource {
    fn granted(&self) -> &Granted {
        &self.granted
    }

    fn self_paced(&self) -> bool {
        false
    }

    fn stop_when_paused(&self) -> bool {
        true
    }

    fn next_frame(&mut self, _fps: u32) -> io::Result<Option<SourceFrame<'_>>> {
        // Drain the pipe; keep only the newest complete frame (older ones
        // are stale, as with V4L2's newest-buffer rule).
        let mut skipped = 0u32;
        let mut got = false;
        loop {
            if self.frame_len > 0 && self.filled == self.frame_len {
                if got {
                    skipped += 1;
                }
                got = true;
                std::mem::swap(&mut self.frame, &mut self.raw);
                self.raw.resize(self.frame_len, 0);
                self.filled = 0;
                self.check_first_frame()?;
            }
            if self.frame_len == 0 {
                while let Some(f) = self.splitter.next_frame() {
                    if got {
                        skipped += 1;
                    }
                    got = true;
                    self.frame = f;
                }
            }
            if !self.read_some()? {
                break;
            }
        }
        if !got {
            if self.splitter.garbage > self.reported_garbage {
                // Bytes that were no JPEG: one corrupt frame per batch.
                log::debug!(
                    "exec: {} bytes outside any JPEG from {}",
                    self.splitter.garbage - self.reported_garbage,
                    self.program
                );
                self.reported_garbage = self.splitter.garbage;
                return Ok(Some(SourceFrame {
                    captured_at_us: crate::frame::now_us(),
                    skipped: 0,
                    data: FrameData::Corrupt,
                    dmabuf: None,
                }));
            }
            if self.last_frame.elapsed() > self.stall {
                self.warn_leftover();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{} wrote no frame for {:.1} s (stalled)",
                        self.program,
                        self.stall.as_secs_f64()
                    ),
                ));
            }
            let mut pfd = libc::pollfd {
                fd: self.stdout.as_ref().map_or(-1, |o| o.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, POLL_SLICE_MS) };
            return Ok(None);
        }
        self.last_frame = Instant::now();
        let g = &self.granted;
        let data = match g.format {
            SourceFormat::Mjpeg => FrameData::Mjpeg(&self.frame),
            SourceFormat::Raw(format) => FrameData::Raw(RawImage {
                format,
                width: g.width,
                height: g.height,
                stride: g.stride,
                data: &self.frame,
            }),
        };
        Ok(Some(SourceFrame {
            // A pipe carries no capture time: when it arrived whole.
            captured_at_us: crate::frame::now_us(),
            skipped,
            data,
            dmabuf: None,
        }))
    }
}

/// What `source.format` means for an exec source (MJPEG unless given).
pub fn format_of(fourcc: Option<[u8; 4]>) -> SourceFormat {
    match fourcc.as_ref().and_then(super::mode::supported) {
        Some((_, f)) => f,
        None => SourceFormat::Mjpeg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::split_command;

    /// Whether a `sleep` in group `pgid` ignores SIGTERM.
    fn sleep_ignores_term(pgid: libc::pid_t) -> bool {
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return false;
        };
        procs.flatten().any(|p| {
            let status = std::fs::read_to_string(p.path().join("status")).unwrap_or_default();
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::trim)
                    .unwrap_or("")
                    .to_string()
            };
            let stat = std::fs::read_to_string(p.path().join("stat")).unwrap_or_default();
            field("Name:") == "sleep"
                && state_and_group(&stat).is_some_and(|(_, pgrp)| pgrp == pgid)
                && u64::from_str_radix(&field("SigIgn:"), 16)
                    .is_ok_and(|m| m & (1 << (libc::SIGTERM - 1)) != 0)
        })
    }

    #[test]
    fn dropping_a_source_stops_its_whole_group_even_one_that_ignores_sigterm() {
        let argv = |s: &str| split_command(s).unwrap();
        // A child and its own child (the group), obeying SIGTERM.
        let src = ExecSource::start(
            &argv("sh -c 'sleep 60 & wait'"),
            SourceFormat::Mjpeg,
            8,
            8,
            1,
        )
        .unwrap();
        let pgid = src.child.id() as libc::pid_t;
        assert!(group_alive(pgid));
        let t0 = Instant::now();
        drop(src);
        assert!(!group_alive(pgid), "a process of the group outlived drop");
        assert!(t0.elapsed() < TERM_GRACE, "SIGTERM was enough");
        // A wrapper that obeys SIGTERM around a program that ignores it:
        // the program is SIGKILLed after the grace, not left behind.
        let src = ExecSource::start(
            &argv("sh -c '(trap \"\" TERM; exec sleep 60) & wait'"),
            SourceFormat::Mjpeg,
            8,
            8,
            1,
        )
        .unwrap();
        let pgid = src.child.id() as libc::pid_t;
        assert!(
            poll_until(Duration::from_secs(5), || sleep_ignores_term(pgid)),
            "the program did not start ignoring SIGTERM"
        );
        let t0 = Instant::now();
        drop(src);
        assert!(!group_alive(pgid), "a process of the group outlived drop");
        assert!(t0.elapsed() >= TERM_GRACE, "killed before the grace");
    }

    #[test]
    fn a_program_blocked_on_a_full_pipe_stops_without_the_kill() {
        // Like ffmpeg writing raw frames that nobody reads: blocked in
        // write(2), it cannot act on SIGTERM (here it ignores it outright).
        let src = ExecSource::start(
            &split_command("sh -c 'trap \"\" TERM; exec cat /dev/zero'").unwrap(),
            SourceFormat::Raw(crate::encode::RawFormat::Yuyv),
            64,
            64,
            1,
        )
        .unwrap();
        let fd = src.stdout.as_ref().unwrap().as_raw_fd();
        let full = poll_until(Duration::from_secs(10), || {
            let mut n: libc::c_int = 0;
            // SAFETY: FIONREAD into an int, on our pipe's fd.
            unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
            n >= 64 << 10
        });
        assert!(full, "the pipe never filled");
        let pgid = src.child.id() as libc::pid_t;
        let t0 = Instant::now();
        drop(src);
        assert!(!group_alive(pgid), "the writer outlived drop");
        // Closing the pipe ended it (SIGPIPE); the kill after the grace
        // was not needed.
        assert!(t0.elapsed() < TERM_GRACE, "it took the SIGKILL");
    }

    fn tiny_jpeg(shade: u8) -> Vec<u8> {
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, 80)
            .encode(&[shade; 16 * 16 * 3], 16, 16, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        out
    }

    #[test]
    fn a_jpeg_stream_splits_into_frames_in_any_chunking() {
        let frames: Vec<Vec<u8>> = (0..5).map(|i| tiny_jpeg(i * 40)).collect();
        let mut stream = b"junk before".to_vec();
        for f in &frames {
            stream.extend_from_slice(f);
        }
        for chunk in [1, 7, 100, 4096] {
            let mut s = JpegSplitter::default();
            let mut out = Vec::new();
            for part in stream.chunks(chunk) {
                s.push(part);
                while let Some(f) = s.next_frame() {
                    out.push(f);
                }
            }
            assert_eq!(out, frames, "chunk {chunk}");
            assert_eq!(s.garbage, 11, "chunk {chunk}");
        }
    }

    #[test]
    fn garbage_is_counted_and_never_grows_the_buffer() {
        let mut s = JpegSplitter::default();
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..200 {
            let junk: Vec<u8> = (0..10_000).map(|_| rng.u8(..)).collect();
            s.push(&junk);
            while s.next_frame().is_some() {}
            assert!(s.buf.len() < MAX_JPEG, "{}", s.buf.len());
        }
        assert!(s.garbage > 1_000_000);
        // A real frame after the noise still comes through.
        let f = tiny_jpeg(9);
        s.push(&f);
        let mut last = None;
        while let Some(x) = s.next_frame() {
            last = Some(x);
        }
        assert_eq!(last, Some(f));
    }
}
