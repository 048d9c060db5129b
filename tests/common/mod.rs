//! Test harness: a relay that speaks the raw dialect (and misbehaves on
//! request) and a handle on the real `zerocam` binary. Loopback only; every
//! wait is bounded.
#![allow(dead_code)]
// tungstenite's handshake callback type is fixed by the library.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::Message;
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::http::StatusCode;
use tungstenite::protocol::CloseFrame;

pub mod relay;

/// How the test relay treats a camera.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// Reads everything; acks frames if `ack`.
    Normal { ack: bool },
    /// Answers the upgrade with this HTTP status.
    Refuse(u16),
    /// Accepts TCP and never reads or writes.
    SilentTcp,
    /// Completes the handshake, then never reads or writes again.
    SilentAfterHandshake,
    /// A slow link: reads at most `bytes_per_sec`, with a small receive buffer.
    SlowReader { bytes_per_sec: usize },
    /// Closes the connection after this many frames.
    DropAfterFrames(usize),
    /// After this many frames, sends a close frame with this code (as
    /// Bandit does on its idle timeout with 1002) and ends the connection.
    CloseAfterFrames { frames: usize, code: u16 },
    /// Acks each frame only after `delay`; stops acking after `stop_after` acks.
    DelayedAck { delay: Duration, stop_after: usize },
    /// Acks nothing for the first `frames` frames, then every frame (a
    /// relay that starts acking mid-connection).
    AckAfter(usize),
    /// Accepts, but never answers the Phoenix auth subprotocol (Phoenix 1.7,
    /// or a socket without `auth_token: true`).
    NoSubprotocol,
}

/// What the test relay observed.
#[derive(Debug)]
pub enum Event {
    /// A TCP connection arrived (before any handshake).
    Accepted(usize),
    /// Handshake done: path with query, headers (lower-case names).
    Connected {
        conn: usize,
        uri: String,
        headers: HashMap<String, String>,
    },
    Text {
        conn: usize,
        text: String,
        at: Instant,
    },
    Frame {
        conn: usize,
        jpeg: Vec<u8>,
        at: Instant,
    },
    Closed {
        conn: usize,
        frame: Option<(u16, String)>,
    },
}

/// A relay on 127.0.0.1 with an ephemeral port.
pub struct TestRelay {
    pub addr: SocketAddr,
    pub events: Receiver<Event>,
    /// Text to send to the current connection(s).
    outbox: Arc<Mutex<Vec<String>>>,
    pub accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl TestRelay {
    pub fn start(behavior: Behavior) -> TestRelay {
        let small_rcvbuf = matches!(behavior, Behavior::SlowReader { .. });
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        if small_rcvbuf {
            // A slow link: the camera's socket queue must fill quickly.
            sock.set_recv_buffer_size(16 * 1024).unwrap();
        }
        sock.set_reuse_address(true).unwrap();
        sock.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        sock.listen(16).unwrap();
        let listener: TcpListener = sock.into();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, events) = channel();
        let outbox = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (outbox, accepted, stop) = (outbox.clone(), accepted.clone(), stop.clone());
            thread::spawn(move || {
                let mut held = Vec::new(); // silent connections stay open
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((s, _)) => {
                            let n = accepted.fetch_add(1, Ordering::SeqCst) + 1;
                            let _ = tx.send(Event::Accepted(n));
                            s.set_nonblocking(false).unwrap();
                            if let Behavior::SilentTcp = behavior {
                                held.push(s);
                                continue;
                            }
                            let (b, tx, outbox, stop) =
                                (behavior.clone(), tx.clone(), outbox.clone(), stop.clone());
                            thread::spawn(move || serve(n, s, b, tx, outbox, stop));
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(5))
                        }
                        Err(_) => break,
                    }
                }
            });
        }
        TestRelay {
            addr,
            events,
            outbox,
            accepted,
            stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Sends a text message to the connected camera.
    pub fn send_text(&self, text: &str) {
        self.outbox.lock().unwrap().push(text.to_string());
    }

    /// Next event, or None after `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<Event> {
        match self.events.recv_timeout(timeout) {
            Ok(e) => Some(e),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Waits for the first event matching `f`, up to `timeout`.
    pub fn wait_for<T>(
        &self,
        timeout: Duration,
        mut f: impl FnMut(Event) -> Option<T>,
    ) -> Option<T> {
        let until = Instant::now() + timeout;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            if let Some(e) = self.next(left) {
                if let Some(t) = f(e) {
                    return Some(t);
                }
            } else {
                return None;
            }
        }
        None
    }

    /// Waits up to `timeout` for an event matching `f`: did one come?
    pub fn saw(&self, timeout: Duration, f: impl Fn(&Event) -> bool) -> bool {
        self.wait_for(timeout, |e| f(&e).then_some(())).is_some()
    }

    /// How long from an event matching `from` (within 10 s) to one matching
    /// `to` (within `within` after it): how fast the camera came back.
    pub fn gap(
        &self,
        from: impl Fn(&Event) -> bool,
        to: impl Fn(&Event) -> bool,
        within: Duration,
    ) -> Duration {
        let first = self
            .wait_for(10 * SEC, |e| from(&e).then(Instant::now))
            .expect("the first event");
        let second = self
            .wait_for(within, |e| to(&e).then(Instant::now))
            .expect("the camera came back");
        second - first
    }

    /// Collects events for `d`.
    pub fn collect(&self, d: Duration) -> Vec<Event> {
        let until = Instant::now() + d;
        let mut v = Vec::new();
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.next(left) {
                Some(e) => v.push(e),
                None => break,
            }
        }
        v
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A TCP stream whose reads are held to a byte rate: a slow link.
struct Throttled {
    inner: TcpStream,
    bytes_per_sec: usize,
    start: Instant,
    read: usize,
}

impl std::io::Read for Throttled {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.bytes_per_sec == usize::MAX {
            return self.inner.read(buf);
        }
        // Wait until the budget allows another chunk, then read at most it.
        let chunk = (self.bytes_per_sec / 20).max(512);
        let due = Duration::from_secs_f64(self.read as f64 / self.bytes_per_sec as f64);
        if let Some(wait) = due.checked_sub(self.start.elapsed()) {
            thread::sleep(wait);
        }
        let n = buf.len().min(chunk);
        let got = self.inner.read(&mut buf[..n])?;
        self.read += got;
        Ok(got)
    }
}

impl std::io::Write for Throttled {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn serve(
    n: usize,
    stream: TcpStream,
    behavior: Behavior,
    tx: Sender<Event>,
    outbox: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut seen = None;
    let refuse = if let Behavior::Refuse(code) = behavior {
        Some(code)
    } else {
        None
    };
    let cb = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let headers = req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_lowercase(),
                    v.to_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        seen = Some((req.uri().to_string(), headers));
        if let Some(code) = refuse {
            let mut r = ErrorResponse::new(Some("go away".into()));
            *r.status_mut() = StatusCode::from_u16(code).unwrap();
            return Err(r);
        }
        // As Phoenix does with `auth_token: true`: pick "phoenix".
        let offers_phoenix = req
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|p| p.trim() == "phoenix"));
        let mut resp = resp;
        if offers_phoenix && !matches!(behavior, Behavior::NoSubprotocol) {
            resp.headers_mut()
                .insert("sec-websocket-protocol", "phoenix".parse().unwrap());
        }
        Ok(resp)
    };
    let rate = if let Behavior::SlowReader { bytes_per_sec } = behavior {
        bytes_per_sec
    } else {
        usize::MAX
    };
    let ws = tungstenite::accept_hdr(
        Throttled {
            inner: stream,
            bytes_per_sec: rate,
            start: Instant::now(),
            read: 0,
        },
        cb,
    );
    let Ok(mut ws) = ws else { return };
    if let Some((uri, headers)) = seen {
        let _ = tx.send(Event::Connected {
            conn: n,
            uri,
            headers,
        });
    }
    if let Behavior::SilentAfterHandshake = behavior {
        while !stop.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(50));
        }
        return;
    }
    ws.get_mut()
        .inner
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut frames = 0usize;
    let mut acks = 0usize;
    let mut pending_acks: Vec<Instant> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        for text in outbox.lock().unwrap().drain(..) {
            if ws.send(Message::text(text)).is_err() {
                return;
            }
        }
        if let Behavior::DelayedAck { delay, stop_after } = behavior {
            while pending_acks.first().is_some_and(|t| t.elapsed() >= delay) {
                pending_acks.remove(0);
                if acks < stop_after {
                    acks += 1;
                    let _ = ws.send(Message::binary(vec![0x0A]));
                }
            }
        }
        match ws.read() {
            Ok(Message::Binary(b)) => {
                frames += 1;
                let _ = tx.send(Event::Frame {
                    conn: n,
                    jpeg: b.to_vec(),
                    at: Instant::now(),
                });
                match behavior {
                    Behavior::Normal { ack: true } => {
                        let _ = ws.send(Message::binary(vec![0x0A]));
                    }
                    Behavior::DelayedAck { .. } => pending_acks.push(Instant::now()),
                    Behavior::AckAfter(k) if frames > k => {
                        let _ = ws.send(Message::binary(vec![0x0A]));
                    }
                    Behavior::CloseAfterFrames { frames: k, code } if frames >= k => {
                        let _ = ws.close(Some(CloseFrame {
                            code: code.into(),
                            reason: "".into(),
                        }));
                        let _ = ws.flush();
                        let _ = tx.send(Event::Closed {
                            conn: n,
                            frame: None,
                        });
                        return;
                    }
                    Behavior::DropAfterFrames(k) if frames >= k => {
                        let _ = tx.send(Event::Closed {
                            conn: n,
                            frame: None,
                        });
                        return; // drop the TCP connection without a close frame
                    }
                    _ => {}
                }
            }
            Ok(Message::Text(t)) => {
                let _ = tx.send(Event::Text {
                    conn: n,
                    text: t.to_string(),
                    at: Instant::now(),
                });
            }
            Ok(Message::Close(f)) => {
                let frame =
                    f.map(|CloseFrame { code, reason }| (u16::from(code), reason.to_string()));
                let _ = tx.send(Event::Closed { conn: n, frame });
                let _ = ws.flush();
                return;
            }
            Ok(_) => {}
            Err(e) if read_timed_out(&e) => {}
            Err(_) => {
                let _ = tx.send(Event::Closed {
                    conn: n,
                    frame: None,
                });
                return;
            }
        }
    }
}

/// The real binary, with its output collected line by line.
pub struct Zerocam {
    pub child: Child,
    /// stderr (the log) and stdout lines, in arrival order per stream.
    pub log: Arc<Mutex<Vec<String>>>,
    /// Log lines (stderr, info and above) too long for an 80-column serial
    /// console with its timestamp: any fails the test when it ends.
    pub too_long: Arc<Mutex<Vec<String>>>,
}

/// The longest log line, timestamp included, that fits a serial console.
pub const MAX_LOG_LINE: usize = 100;

/// A stderr line that a console shows at the default level and that is
/// longer than [`MAX_LOG_LINE`] characters.
pub fn too_long(line: &str) -> bool {
    let quiet = [" DEBUG ", " TRACE "].iter().any(|l| line.contains(l));
    !quiet && line.chars().count() > MAX_LOG_LINE
}

/// The path of the `zerocam` binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_zerocam"))
}

impl Zerocam {
    /// Starts `zerocam stream` with `args` (the pattern source unless given).
    pub fn stream(args: &[&str]) -> Zerocam {
        let mut cmd = Command::new(bin());
        cmd.arg("stream");
        if !args.contains(&"--source") {
            cmd.args(["--source", "pattern"]);
        }
        cmd.args(args);
        Zerocam::spawn(cmd, "zerocam")
    }

    /// Starts `cmd` at its default log level (info; the caller's RUST_LOG
    /// is removed), collecting its stdout and stderr lines (echoed to the
    /// test's stderr behind `[tag]`).
    pub fn spawn(mut cmd: Command, tag: &str) -> Zerocam {
        cmd.env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn zerocam");
        let log = Arc::new(Mutex::new(Vec::new()));
        let long = Arc::new(Mutex::new(Vec::new()));
        let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        for (stream, is_log) in [(out, false), (err, true)] {
            let (l, long, tag) = (log.clone(), long.clone(), tag.to_string());
            thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    eprintln!("[{tag}] {line}");
                    if is_log && too_long(&line) {
                        long.lock().unwrap().push(line.clone());
                    }
                    l.lock().unwrap().push(line);
                }
            });
        }
        Zerocam {
            child,
            log,
            too_long: long,
        }
    }

    /// Log lines so far containing `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    /// Waits up to `timeout` for a log line containing `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if let Some(l) = self.lines_with(needle).into_iter().next() {
                return Some(l);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for exit up to `timeout`; None if still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Zerocam {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Every path a test drives is checked for console-sized lines.
        let long = self.too_long.lock().unwrap().clone();
        if !long.is_empty() && !thread::panicking() {
            panic!(
                "log lines over {MAX_LOG_LINE} characters (an 80-column console with its timestamp):\n{}",
                long.join("\n")
            );
        }
    }
}

/// `zerocam seq=… ts=…` from a frame.
pub fn meta(jpeg: &[u8]) -> zerocam::wire::com::FrameMeta {
    zerocam::wire::com::parse(jpeg).expect("frame carries the zerocam COM segment")
}

/// Decodes a JPEG fully; returns (width, height).
pub fn decode(jpeg: &[u8]) -> (u16, u16) {
    let mut d = jpeg_decoder::Decoder::new(jpeg);
    d.decode().expect("frame decodes");
    let info = d.info().unwrap();
    (info.width, info.height)
}

/// A unique temporary file path.
pub fn temp_path(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "zerocam-test-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

pub const SEC: Duration = Duration::from_secs(1);

/// True when a WebSocket read ended only because the socket's read timeout
/// passed (the tests' readers poll a stop flag between reads).
pub fn read_timed_out(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut))
}
