//! The session loop: the I/O edge of the stream stage.
//!
//! One thread, blocking sockets made non-blocking after the handshake, and a
//! single `poll(2)` on the socket plus the slot's waker. That keeps latency
//! at zero when a frame arrives (the waker fires), costs nothing when idle
//! (no timer polling on a 1 GHz single core), and lets one loop do
//! everything tungstenite needs: it only answers pings when it is read.
//!
//! Per connection: handshake (with timeouts: a relay that accepts and then
//! says nothing must not hang us), the dialect's opening messages, then the
//! loop: read all that is there, run timers (heartbeats, stats, dead-link and
//! ack deadlines), finish pending writes, and send the newest frame when the
//! in-flight bound allows. Between connections: exponential backoff with
//! full jitter, interruptible by shutdown.

use std::collections::VecDeque;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::HandshakeError;
use tungstenite::http::{HeaderValue, StatusCode};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Connector, Message, WebSocket};

use super::backoff::Backoff;
use super::message::{self, Command, Hello};
use super::{Action, Dialect};
use crate::config::{Config, Protocol, RelayConfig};
use crate::pipeline::{LinkState, Pipeline, StatsSnapshot};

type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

/// Frames whose send time is remembered while waiting for acks.
const MAX_TRACKED: usize = 256;

/// Why a connection attempt failed.
#[derive(Debug)]
enum ConnectError {
    /// 401/403: retrying soon cannot help.
    Refused(StatusCode),
    /// Anything else: network trouble, timeouts, other HTTP statuses.
    Other(String),
}

/// How a connection ended.
enum End {
    Shutdown,
    Lost(String),
}

/// Runs the stream until shutdown is requested on `pipeline.controls`.
/// Returns an error only for problems no retry can fix (bad TLS material).
pub fn run(cfg: &Config, pipeline: Arc<Pipeline>) -> anyhow::Result<()> {
    let tls = match cfg.relay.url.starts_with("wss://") {
        true => Some(tls_config(cfg.relay.ca.as_deref())?),
        false => None,
    };
    let mut dialect = new_dialect(&cfg.relay)?;
    let mut backoff = Backoff::new(cfg.backoff);
    let mut stats = StatsTicker::new(&pipeline, cfg.relay.stats_interval);
    let mut connections = 0u64;
    let p = &*pipeline;

    // hello announces what the device granted: give the source a moment to
    // open before the first connect (a missing camera does not hold us up
    // for long; hello then carries the requested mode).
    sleep_interruptibly(p, Duration::from_secs(3), &mut stats, &|| {
        p.health.source_ok()
    });

    while !p.controls.shutting_down() {
        p.health.set_link(LinkState::Connecting);
        let beat = || p.health.beat_stream();
        let delay = match connect(&cfg.relay, dialect.url(), tls.clone(), &beat) {
            Ok((ws, fd)) => {
                connections += 1;
                if connections > 1 {
                    p.counters
                        .reconnects
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                log::info!(
                    "connected to {} ({})",
                    redact(&cfg.relay.url),
                    cfg.relay.protocol
                );
                let now = Instant::now();
                backoff.connected(now);
                let mut conn = Connection::new(ws, fd, &cfg.relay, p);
                let end = conn.drive(dialect.as_mut(), &cfg.camera, &mut stats);
                backoff.disconnected(Instant::now());
                match end {
                    End::Shutdown => break,
                    End::Lost(why) => {
                        log::warn!("link lost: {why}");
                        (backoff.next_delay(), why)
                    }
                }
            }
            Err(ConnectError::Refused(status)) => {
                p.health.set_link(LinkState::Error);
                let why = format!(
                    "relay refused the camera: HTTP {} (authentication failed: check the token)",
                    status.as_u16()
                );
                (backoff.max_delay(), why)
            }
            Err(ConnectError::Other(why)) => (backoff.next_delay(), why),
        };
        let (delay, why) = delay;
        log::warn!(
            "reconnect attempt {} in {:.1}s: {why}",
            backoff.attempt(),
            delay.as_secs_f64()
        );
        sleep_interruptibly(p, delay, &mut stats, &|| false);
    }
    p.health.set_link(LinkState::Connecting);
    Ok(())
}

fn new_dialect(relay: &RelayConfig) -> anyhow::Result<Box<dyn Dialect>> {
    match relay.protocol {
        Protocol::Raw => Ok(Box::new(super::raw::Raw::new(
            &relay.url,
            relay.token.as_deref(),
            relay.heartbeat_interval,
        ))),
        Protocol::Phoenix => Ok(Box::new(super::phoenix::Phoenix::new(relay))),
    }
}

/// The URL with any `token=` query value hidden, for logs.
fn redact(url: &str) -> String {
    match url.split_once('?') {
        None => url.to_string(),
        Some((base, q)) => {
            let q: Vec<String> = q
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some(("token", _)) => "token=…".to_string(),
                    _ => kv.to_string(),
                })
                .collect();
            format!("{base}?{}", q.join("&"))
        }
    }
}

/// Builds the rustls client config: webpki roots plus an optional private CA.
fn tls_config(ca: Option<&Path>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca {
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path)
            .with_context(|| format!("relay.ca: cannot read {}", path.display()))?
        {
            let cert = cert.with_context(|| format!("relay.ca: bad PEM in {}", path.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("relay.ca: unusable certificate in {}", path.display()))?;
            added += 1;
        }
        anyhow::ensure!(
            added > 0,
            "relay.ca: no certificate found in {}",
            path.display()
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS: no usable protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Base64 without padding, for the Phoenix auth subprotocol. Despite the
/// `base64url.` prefix, phoenix.js encodes with `btoa()` (the standard
/// alphabet) and Phoenix's transport decodes with
/// `Base.decode64!(token, padding: false)`, which rejects `-` and `_`.
fn base64_unpadded(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn timeout_error(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Opens TCP (and TLS) and does the WebSocket handshake, all under timeouts.
/// Returns the socket's fd too, for poll and the unsent-bytes count.
/// `beat` marks progress between the blocking steps (the watchdog counts a
/// stream thread silent for long as stuck; each step is bounded on its own).
fn connect(
    relay: &RelayConfig,
    url: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
    beat: &dyn Fn(),
) -> Result<(Ws, RawFd), ConnectError> {
    let other = |what: &str, e: &dyn std::fmt::Display| ConnectError::Other(format!("{what}: {e}"));
    let mut req = url
        .into_client_request()
        .map_err(|e| other("bad relay URL", &e))?;
    let uri = req.uri().clone();
    let host = uri
        .host()
        .unwrap_or("")
        .trim_matches(['[', ']'])
        .to_string();
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("wss") {
            443
        } else {
            80
        });
    let headers = req.headers_mut();
    if let Some(token) = &relay.token {
        if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
            headers.insert("Authorization", v);
        }
        if relay.auth_subprotocol {
            let proto = format!(
                "phoenix, base64url.bearer.phx.{}",
                base64_unpadded(token.as_bytes())
            );
            if let Ok(v) = HeaderValue::from_str(&proto) {
                headers.insert("Sec-WebSocket-Protocol", v);
            }
        }
    }
    if let Ok(v) = HeaderValue::from_str(&format!("zerocam/{}", crate::VERSION)) {
        headers.insert("User-Agent", v);
    }

    beat();
    let addrs: Vec<SocketAddr> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| other(&format!("cannot resolve {host}"), &e))?
        .collect();
    let mut last = ConnectError::Other(format!("{host} resolved to no address"));
    let mut stream = None;
    for addr in addrs {
        beat();
        match TcpStream::connect_timeout(&addr, relay.connect_timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) if timeout_error(&e) => {
                last = ConnectError::Other(format!(
                    "connect to {addr} timed out after {:.1}s",
                    relay.connect_timeout.as_secs_f64()
                ))
            }
            Err(e) => last = other(&format!("connect to {addr}"), &e),
        }
    }
    let stream = stream.ok_or(last)?;
    tune_socket(&stream, relay).map_err(|e| other("socket setup", &e))?;
    let fd = stream.as_raw_fd();

    // A relay that accepts TCP and then says nothing is as dead as one that
    // stops answering later: give the handshake the dead-link bound.
    let handshake_timeout = relay.connect_timeout.min(relay.heartbeat_interval * 2);
    stream
        .set_read_timeout(Some(handshake_timeout))
        .and_then(|_| stream.set_write_timeout(Some(handshake_timeout)))
        .map_err(|e| other("socket setup", &e))?;
    beat();
    let connector = match tls {
        Some(c) => Connector::Rustls(c),
        None => Connector::Plain,
    };
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20));
    match tungstenite::client_tls_with_config(req, stream, Some(ws_config), Some(connector)) {
        Ok((ws, _response)) => {
            let s = tcp_of(&ws);
            s.set_nonblocking(true)
                .map_err(|e| other("socket setup", &e))?;
            Ok((ws, fd))
        }
        Err(HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                Err(ConnectError::Refused(status))
            } else {
                Err(ConnectError::Other(format!(
                    "relay answered HTTP {status} to the upgrade"
                )))
            }
        }
        Err(HandshakeError::Failure(tungstenite::Error::Io(e))) if timeout_error(&e) => {
            Err(ConnectError::Other(format!(
                "no handshake reply within {:.1}s",
                handshake_timeout.as_secs_f64()
            )))
        }
        Err(HandshakeError::Interrupted(_)) => Err(ConnectError::Other(format!(
            "no handshake reply within {:.1}s",
            handshake_timeout.as_secs_f64()
        ))),
        Err(HandshakeError::Failure(e)) => Err(other("handshake", &e)),
    }
}

fn tcp_of(ws: &Ws) -> &TcpStream {
    match ws.get_ref() {
        MaybeTlsStream::Plain(s) => s,
        MaybeTlsStream::Rustls(s) => &s.sock,
        // MaybeTlsStream is non-exhaustive; we only build the two above.
        _ => unreachable!("zerocam only creates plain and rustls streams"),
    }
}

/// Nagle off (frames are latency-bound), keepalive on, and TCP_USER_TIMEOUT
/// so the kernel itself gives up on a link whose data goes unacknowledged.
fn tune_socket(s: &TcpStream, relay: &RelayConfig) -> io::Result<()> {
    s.set_nodelay(true)?;
    let sock = socket2::SockRef::from(s);
    let ka = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(5))
        .with_retries(3);
    sock.set_tcp_keepalive(&ka)?;
    sock.set_tcp_user_timeout(Some(relay.write_timeout))?;
    Ok(())
}

/// Bytes written to the socket that the peer has not acknowledged yet.
fn unsent_bytes(fd: RawFd) -> Option<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (== SIOCOUTQ) writes one int; fd is a TCP socket
    // owned by the live WebSocket.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) };
    (rc == 0 && n >= 0).then_some(n as usize)
}

/// Waits until `timeout` for the socket (`events`) or the waker.
fn wait(sock: Option<(RawFd, i16)>, waker: RawFd, timeout: Duration) {
    let mut fds = [
        libc::pollfd {
            fd: waker,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: -1,
            events: 0,
            revents: 0,
        },
    ];
    if let Some((fd, ev)) = sock {
        fds[1] = libc::pollfd {
            fd,
            events: ev,
            revents: 0,
        };
    }
    let ms = timeout.as_millis().clamp(0, 60_000) as libc::c_int;
    // SAFETY: two valid pollfd structs; fd -1 is ignored by poll.
    unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
}

/// Sleeps up to `d`, returning early on shutdown or once `done()` holds
/// (checked whenever the waker fires, e.g. on each captured frame); keeps
/// stats and liveness going.
fn sleep_interruptibly(
    p: &Pipeline,
    d: Duration,
    stats: &mut StatsTicker,
    done: &dyn Fn() -> bool,
) {
    let until = Instant::now() + d;
    loop {
        p.health.beat_stream();
        p.waker.drain();
        let now = Instant::now();
        if p.controls.shutting_down() || now >= until || done() {
            return;
        }
        stats.tick(p, now);
        let next = until.min(stats.next).min(now + Duration::from_secs(1));
        wait(None, p.waker.fd(), next.saturating_duration_since(now));
    }
}

/// The periodic stats line (and the figures for the `stats` message).
struct StatsTicker {
    interval: Duration,
    next: Instant,
    last: StatsSnapshot,
    last_at: Instant,
}

impl StatsTicker {
    fn new(p: &Pipeline, interval: Duration) -> StatsTicker {
        let now = Instant::now();
        StatsTicker {
            interval,
            next: now + interval,
            last: p.snapshot(),
            last_at: now,
        }
    }

    /// If due, logs the stats line and returns the fields for `stats`.
    fn tick(
        &mut self,
        p: &Pipeline,
        now: Instant,
    ) -> Option<serde_json::Map<String, serde_json::Value>> {
        if now < self.next {
            return None;
        }
        let snap = p.snapshot();
        let rates = snap.rates_since(&self.last, now.duration_since(self.last_at).as_secs_f64());
        log::info!(
            "stats: {:.1} fps captured, {:.1} sent, {} dropped (+{}), {} corrupt, {:.0} kbit/s, {} reconnects, encode p50 {:.1} ms p99 {:.1} ms{}",
            rates.fps_captured,
            rates.fps_sent,
            snap.dropped,
            snap.dropped.saturating_sub(self.last.dropped),
            snap.corrupt,
            rates.kbit_s,
            snap.reconnects,
            snap.encode_ms_p50,
            snap.encode_ms_p99,
            if snap.paused { ", paused" } else { "" }
        );
        self.last = snap;
        self.last_at = now;
        self.next = now + self.interval;
        Some(message::stats_fields(&snap, &rates))
    }
}

/// One live WebSocket connection and its flow-control state.
struct Connection<'a> {
    ws: Ws,
    fd: RawFd,
    relay: &'a RelayConfig,
    p: &'a Pipeline,
    last_rx: Instant,
    /// Set once the relay has acked a frame: from then on the ack window,
    /// not the socket's unsent count, bounds what is in flight.
    acks_seen: bool,
    /// Send times of frames not yet acked, from the start of the
    /// connection: the first ack may arrive with many frames already out,
    /// and the window must count them.
    unacked: VecDeque<Instant>,
    /// Since when a write has been waiting for the socket to take it.
    flush_pending_since: Option<Instant>,
    last_frame_len: usize,
}

impl<'a> Connection<'a> {
    fn new(ws: Ws, fd: RawFd, relay: &'a RelayConfig, p: &'a Pipeline) -> Connection<'a> {
        Connection {
            ws,
            fd,
            relay,
            p,
            last_rx: Instant::now(),
            acks_seen: false,
            unacked: VecDeque::new(),
            flush_pending_since: None,
            last_frame_len: 0,
        }
    }

    fn drive(&mut self, dialect: &mut dyn Dialect, camera: &str, stats: &mut StatsTicker) -> End {
        let p = self.p;
        // A new relay session starts streaming; a relay that wants quiet
        // sends `pause` again.
        if p.controls.paused() {
            p.controls.set_paused(false);
        }
        let src = p.source_info();
        let hello = Hello {
            camera: camera.to_string(),
            version: crate::VERSION.to_string(),
            width: src.width,
            height: src.height,
            format: src.format,
            fps: p.controls.fps(),
        };
        let now = Instant::now();
        if let Err(end) = self.apply(dialect.on_open(now, &hello)) {
            return end;
        }
        let dead_after = self.relay.heartbeat_interval * 2;
        loop {
            p.health.beat_stream();
            p.waker.drain();
            if p.controls.shutting_down() {
                self.close(Some(CloseFrame {
                    code: CloseCode::Away,
                    reason: "camera shutting down".into(),
                }));
                return End::Shutdown;
            }
            p.health
                .set_link(match (p.controls.paused(), dialect.ready()) {
                    (true, _) => LinkState::Paused,
                    (false, true) => LinkState::Streaming,
                    (false, false) => LinkState::Connecting,
                });

            // 1. Everything the relay sent.
            loop {
                match self.ws.read() {
                    Ok(msg) => {
                        let now = Instant::now();
                        self.last_rx = now;
                        let actions = match &msg {
                            Message::Text(t) => dialect.on_text(t.as_str(), now),
                            Message::Binary(b) => dialect.on_binary(b, now),
                            Message::Close(f) => {
                                let why = f
                                    .as_ref()
                                    .map(|f| {
                                        format!(
                                            "relay closed the link: {} {}",
                                            u16::from(f.code),
                                            f.reason
                                        )
                                    })
                                    .unwrap_or_else(|| "relay closed the link".into());
                                // tungstenite queues the close reply; flush it.
                                let _ = self.ws.flush();
                                return End::Lost(why);
                            }
                            _ => vec![], // ping (answered by tungstenite), pong
                        };
                        if let Err(end) = self.apply(actions) {
                            return end;
                        }
                    }
                    Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(
                        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed,
                    ) => {
                        return End::Lost("connection closed".into());
                    }
                    Err(tungstenite::Error::Protocol(e)) => {
                        return End::Lost(format!("protocol error from relay: {e}"));
                    }
                    Err(tungstenite::Error::Capacity(e)) => {
                        return End::Lost(format!("relay sent an oversized message: {e}"));
                    }
                    Err(e) => return End::Lost(e.to_string()),
                }
            }

            // 2. Timers.
            let now = Instant::now();
            if now.duration_since(self.last_rx) >= dead_after {
                return End::Lost(format!(
                    "nothing received for {:.1}s (2 × heartbeat): link is dead",
                    now.duration_since(self.last_rx).as_secs_f64()
                ));
            }
            if let Some(sent) = self.unacked.front().filter(|_| self.acks_seen) {
                if now.duration_since(*sent) >= self.relay.ack_timeout {
                    return End::Lost(format!(
                        "no ack for {:.1}s: link is stalled",
                        now.duration_since(*sent).as_secs_f64()
                    ));
                }
            }
            if now >= dialect.next_deadline() {
                if let Err(end) = self.apply(dialect.on_tick(now)) {
                    return end;
                }
            }
            if let Some(fields) = stats.tick(p, now) {
                if let Some(m) = dialect.stats(fields) {
                    if let Err(end) = self.send(m) {
                        return end;
                    }
                }
            }

            // 3. Finish a write the socket could not take at once.
            if let Err(end) = self.flush() {
                return end;
            }

            // 4. The newest frame, if the in-flight bound allows.
            let can_send =
                !p.controls.paused() && dialect.ready() && self.flush_pending_since.is_none();
            let mut throttled = false;
            if can_send && p.slot.is_full() {
                if self.in_flight_ok() {
                    if let Some(frame) = p.slot.take() {
                        let len = frame.jpeg.len();
                        let msg = dialect.frame(frame.jpeg);
                        if let Err(end) = self.send(msg) {
                            return end;
                        }
                        self.last_frame_len = len;
                        let c = &p.counters;
                        c.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        c.bytes_sent
                            .fetch_add(len as u64, std::sync::atomic::Ordering::Relaxed);
                        if self.unacked.len() >= MAX_TRACKED {
                            // A relay that never acks: forget the oldest.
                            self.unacked.pop_front();
                        }
                        self.unacked.push_back(Instant::now());
                        continue; // another frame may already be waiting
                    }
                } else {
                    throttled = true;
                }
            }

            // 5. Sleep until something happens.
            let now = Instant::now();
            let mut until = dialect
                .next_deadline()
                .min(stats.next)
                .min(self.last_rx + dead_after)
                .min(now + Duration::from_secs(1));
            if let Some(sent) = self.unacked.front().filter(|_| self.acks_seen) {
                until = until.min(*sent + self.relay.ack_timeout);
            }
            if let Some(since) = self.flush_pending_since {
                until = until.min(since + self.relay.write_timeout);
            }
            if throttled && !self.acks_seen {
                // No event says "the peer acknowledged bytes": look again soon.
                until = until.min(now + Duration::from_millis(5));
            }
            let mut events = libc::POLLIN;
            if self.flush_pending_since.is_some() {
                events |= libc::POLLOUT;
            }
            wait(
                Some((self.fd, events)),
                p.waker.fd(),
                until.saturating_duration_since(now),
            );
        }
    }

    /// May another frame go out now?
    fn in_flight_ok(&self) -> bool {
        if self.acks_seen {
            return self.unacked.len() < self.relay.window as usize;
        }
        // Hold the next frame while more than about half a frame is still
        // unacknowledged in the kernel: that queue is latency too.
        let limit = (self.last_frame_len / 2).max(16 * 1024);
        unsent_bytes(self.fd).is_none_or(|n| n <= limit)
    }

    fn apply(&mut self, actions: Vec<Action>) -> Result<(), End> {
        for a in actions {
            match a {
                Action::Send(m) => self.send(m)?,
                Action::Command(c) => self.command(c),
                Action::Ack => {
                    if !self.acks_seen {
                        log::info!(
                            "relay acknowledges frames: in-flight window {}",
                            self.relay.window
                        );
                        self.acks_seen = true;
                    }
                    self.unacked.pop_front();
                }
                Action::Reconnect(why) => {
                    self.close(None);
                    return Err(End::Lost(why));
                }
            }
        }
        Ok(())
    }

    fn command(&mut self, c: Command) {
        let ctl = &self.p.controls;
        match c {
            Command::Pause => {
                if !ctl.paused() {
                    log::info!("relay says pause: no frames until resume");
                }
                ctl.set_paused(true);
                // The frame in the slot is stale by the time we resume.
                self.p.slot.clear();
            }
            Command::Resume => {
                if ctl.paused() {
                    log::info!("relay says resume");
                }
                ctl.set_paused(false);
            }
            Command::Set { fps, quality } => {
                if let Some(f) = fps {
                    ctl.set_fps(f);
                }
                if let Some(q) = quality {
                    ctl.set_quality(q);
                }
                log::info!("relay set fps {} quality {}", ctl.fps(), ctl.quality());
            }
        }
    }

    /// Queues a message and tries to flush it; a full socket is not an error
    /// (the write completes later) unless it stays full past write_timeout.
    fn send(&mut self, m: Message) -> Result<(), End> {
        match self.ws.write(m) {
            Ok(()) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(End::Lost(format!("write failed: {e}"))),
        }
        if self.flush_pending_since.is_none() {
            self.flush_pending_since = Some(Instant::now());
        }
        self.flush()
    }

    fn flush(&mut self) -> Result<(), End> {
        let Some(since) = self.flush_pending_since else {
            return Ok(());
        };
        match self.ws.flush() {
            Ok(()) => {
                self.flush_pending_since = None;
                Ok(())
            }
            Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                if since.elapsed() >= self.relay.write_timeout {
                    Err(End::Lost(format!(
                        "write stalled for {:.1}s: link is dead",
                        since.elapsed().as_secs_f64()
                    )))
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(End::Lost(format!("write failed: {e}"))),
        }
    }

    /// Sends a close frame and gives the relay a moment to answer.
    fn close(&mut self, frame: Option<CloseFrame>) {
        let _ = self.ws.close(frame);
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            match self.ws.flush() {
                Ok(()) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
            match self.ws.read() {
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                    wait(Some((self.fd, libc::POLLIN)), -1, Duration::from_millis(20));
                }
                Err(_) => return, // closed: done
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_subprotocol_token_is_unpadded_standard_base64_like_btoa() {
        assert_eq!(base64_unpadded(b""), "");
        assert_eq!(base64_unpadded(b"f"), "Zg");
        assert_eq!(base64_unpadded(b"fo"), "Zm8");
        assert_eq!(base64_unpadded(b"foo"), "Zm9v");
        assert_eq!(base64_unpadded(b"foob"), "Zm9vYg");
        // phoenix.js: btoa("x??>").replace(/=/g, "") == "eD8/Pg"
        assert_eq!(base64_unpadded(b"x??>"), "eD8/Pg");
        assert_eq!(base64_unpadded(&[0xFB, 0xFF]), "+/8");
    }

    #[test]
    fn tokens_are_redacted_in_logs() {
        assert_eq!(redact("ws://h/x?a=1&token=s3cret"), "ws://h/x?a=1&token=…");
        assert_eq!(redact("ws://h/x"), "ws://h/x");
    }
}
