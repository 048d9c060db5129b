//! The session loop: the I/O edge of the stream stage, sockets and
//! `poll(2)` only. What may go out and when the link is dead is decided by
//! [`Flow`] (pure); the wire format by the [`Dialect`]; the stats by
//! [`StatsTicker`]; opening the link by [`connect`].
//!
//! One thread, the socket non-blocking after the handshake, and a single
//! `poll(2)` on the socket plus the slot's waker: latency is zero when a
//! frame arrives (the waker fires), nothing is polled on a timer, and one
//! loop does everything tungstenite needs (it answers pings only when read).
//! While the kernel holds more unsent bytes than the flow allows, the loop
//! waits for `POLLOUT`, which `TCP_NOTSENT_LOWAT` makes mean "below the
//! allowance".

use std::io::ErrorKind;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tungstenite::Message;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;

use super::adapt::{AdaptMode, QualityControl};
use super::connect::{self, ConnectError, SLICE, Ws};
use super::flow::{AckOf, Flow, FlowConfig, Gate};
use super::relays::Rotation;
use super::stats::StatsTicker;
use super::{Action, Command, Dialect, Hello};
use crate::backoff::Backoff;
use crate::config::{Config, Protocol, RelayConfig};
use crate::pipeline::{LinkState, Pipeline};

/// How a connection ended.
enum End {
    Shutdown,
    /// Lost: reconnect with backoff.
    Lost(String),
    /// Refused by policy (close 1008): retrying soon cannot help.
    Refused(String),
}

/// Runs the stream until shutdown is requested on `pipeline.controls`.
/// Returns an error only for problems no retry can fix (bad TLS material).
pub fn run(cfg: &Config, pipeline: Arc<Pipeline>) -> anyhow::Result<()> {
    let tls = match cfg.relay.relays().iter().any(|u| u.starts_with("wss://")) {
        true => Some(connect::tls_config(cfg.relay.ca.as_deref())?),
        false => None,
    };
    let urls = cfg.relay.relays();
    let mut rotation = Rotation::new(urls.len());
    let mut backoff = Backoff::new(cfg.backoff);
    pipeline.controls.set_adapt(cfg.relay.adapt);
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
        let Some(i) = rotation.next_relay() else {
            rotation.new_round();
            continue;
        };
        let relay = RelayConfig {
            url: urls[i].clone(),
            ..cfg.relay.clone()
        };
        // The relay as hello names it (token redacted), and as log lines
        // show it (also shortened to fit a console).
        let named = connect::redact(&relay.url);
        let shown = connect::shown(&relay.url);
        let mut dialect = new_dialect(&relay);
        p.health.set_link(LinkState::Connecting);
        let beat = || p.health.beat_stream();
        // A refusal by policy (401/403, close 1008): retrying soon cannot help.
        let mut refused = false;
        // A link that was up and went (else: it never came up), and what
        // the relay's close code suggests.
        let mut lost = false;
        let mut hint = None;
        let why = match connect::connect(&relay, dialect.url(), tls.clone(), &beat) {
            Ok((ws, fd, addr)) => {
                connections += 1;
                if connections > 1 {
                    p.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                log::info!("connected to {shown}");
                if connections == 1 {
                    crate::device::notify::confirm_update();
                }
                log::debug!("{shown}: {addr}, {}", relay.protocol);
                rotation.connected(i);
                let since = Instant::now();
                backoff.connected(since);
                let mut conn = Connection::new(ws, fd, &relay, p);
                let end = conn.drive(dialect.as_mut(), &cfg.camera, &named, &mut stats);
                hint = conn.hint.take();
                backoff.disconnected(Instant::now());
                let stable = since.elapsed() >= cfg.backoff.stable_after;
                lost = true;
                match end {
                    End::Shutdown => break,
                    End::Lost(why) => {
                        rotation.lost(stable);
                        why
                    }
                    End::Refused(why) => {
                        p.health.set_link(LinkState::Error);
                        rotation.lost(false);
                        refused = true;
                        why
                    }
                }
            }
            Err(e) => {
                p.counters.connect_failures.fetch_add(1, Ordering::Relaxed);
                if matches!(e, ConnectError::Refused(_) | ConnectError::NoSubprotocol) {
                    p.health.set_link(LinkState::Error);
                    refused = true;
                }
                e.to_string()
            }
        };
        if p.controls.shutting_down() {
            break;
        }
        // What happened, then what comes next, each line short enough for
        // a serial console: the relay is named by its place in relay.url
        // (the start-up lines list them).
        let which = if urls.len() > 1 {
            format!("relay {}: ", i + 1)
        } else {
            String::new()
        };
        if lost {
            log::warn!("link lost: {which}{why}");
        } else {
            log::warn!("{which}{why}");
        }
        if let Some(h) = hint {
            log::info!("{h}");
        }
        if rotation.has_next() {
            log::info!("trying the next relay now");
            continue;
        }
        // The round is used up: back off (the longest after a refusal),
        // then a full round from the first relay.
        let delay = if refused {
            backoff.max_delay()
        } else {
            backoff.next_delay()
        };
        let what = if urls.len() > 1 {
            " (no relay in relay.url took the camera)"
        } else {
            ""
        };
        log::warn!(
            "reconnect attempt {} in {:.1}s{what}",
            backoff.attempt(),
            delay.as_secs_f64()
        );
        sleep_interruptibly(p, delay, &mut stats, &|| false);
        rotation.new_round();
    }
    p.health.set_link(LinkState::Connecting);
    Ok(())
}

fn new_dialect(relay: &RelayConfig) -> Box<dyn Dialect> {
    match relay.protocol {
        Protocol::Raw => Box::new(super::raw::Raw::new(
            &relay.url,
            relay.token.as_deref(),
            relay.heartbeat_interval,
        )),
        Protocol::Phoenix => Box::new(super::phoenix::Phoenix::new(relay)),
    }
}

/// Bytes written to the socket that it has not sent yet (`SIOCOUTQNSD`):
/// the kernel's own queue, which is latency too. Where that ioctl is
/// missing (qemu-user does not know it), the bytes not yet acknowledged
/// (`SIOCOUTQ`), which include it: a stricter bound, never a looser one.
fn unsent_bytes(fd: RawFd) -> Option<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQNSD writes one int; fd is a TCP socket owned by the
    // live WebSocket.
    if unsafe { libc::ioctl(fd, 0x894B as _, &mut n) } == 0 && n >= 0 {
        return Some(n as usize);
    }
    // SAFETY: TIOCOUTQ (== SIOCOUTQ) writes one int, as above.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) };
    (rc == 0 && n >= 0).then_some(n as usize)
}

/// The kernel's delivery rate of the connection in bytes per second
/// (`TCP_INFO`'s `tcpi_delivery_rate`, Linux ≥ 4.9: measured per ack, so it
/// sees each frame's burst drain at the bottleneck's pace even when this
/// thread did not look in between). None where the kernel (or qemu-user)
/// does not report it.
fn kernel_delivery_rate(fd: RawFd) -> Option<f64> {
    // struct tcp_info up to tcpi_delivery_rate (a u64 at byte 160), with
    // room for the fields newer kernels add after it.
    const RATE_AT: usize = 160;
    let mut buf = [0u8; 256];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `buf` and sets
    // `len` to what it wrote; fd is a TCP socket owned by the live WebSocket.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 || (len as usize) < RATE_AT + 8 {
        return None;
    }
    let bytes: [u8; 8] = buf[RATE_AT..RATE_AT + 8].try_into().ok()?;
    let rate = u64::from_ne_bytes(bytes);
    (rate > 0).then_some(rate as f64)
}

/// How often to look again at the unsent count when `TCP_NOTSENT_LOWAT`
/// cannot be set (then `POLLOUT` does not say "below the allowance").
const THROTTLE_RECHECK: Duration = Duration::from_millis(5);

/// Makes `POLLOUT` mean "fewer than `bytes` unsent" (`TCP_NOTSENT_LOWAT`).
fn set_notsent_lowat(fd: RawFd, bytes: usize) -> bool {
    let v = bytes.min(libc::c_int::MAX as usize) as libc::c_int;
    // SAFETY: one int option on a TCP socket owned by the live WebSocket.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
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
    let ms = timeout.as_millis().min(SLICE.as_millis()) as libc::c_int;
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
        let next = until.min(stats.next());
        wait(None, p.waker.fd(), next.saturating_duration_since(now));
    }
}

/// What a relay's close code means for the camera, in the log's words
/// (docs/protocol.md, "Closing"; the codes Bandit and Phoenix send): the fact,
/// a hint on a line of its own (so that each fits a serial console), and
/// whether it is a refusal. `heartbeat` is relay.heartbeat_interval, named
/// when an idle timeout is the likely cause.
fn close_reason(code: u16, reason: &str, heartbeat: Duration) -> (String, Option<String>, bool) {
    let hint = match code {
        1000 => Some("normal closure: the relay is shutting down or let the camera go".into()),
        1001 => Some("going away: the relay is shutting down".into()),
        // Bandit closes a socket that was idle past its timeout with 1002.
        1002 => Some(format!(
            "the relay timed it out: is heartbeat_interval ({} s) over its timeout?",
            heartbeat.as_secs()
        )),
        1008 => Some("policy: refused, like HTTP 403".into()),
        1009 => Some("a frame was too big for the relay: lower source.quality or size".into()),
        1011 => Some("the relay hit an internal error".into()),
        // Phoenix closes channel sockets with 1012 when its endpoint stops.
        1012 => Some("service restart: the relay is restarting".into()),
        _ => None,
    };
    let reason = if reason.is_empty() {
        String::new()
    } else {
        format!(" {}", crate::wire::message::clip_str(reason, 40))
    };
    (
        format!("relay closed it: {code}{reason}"),
        hint,
        code == 1008,
    )
}

/// How long a `settings` reply waits for the capture thread to apply and
/// read back image controls before it goes out with what is known.
const CONTROLS_WAIT: Duration = Duration::from_secs(2);

/// A `settings` message owed to the relay.
#[derive(Debug, Clone, Copy)]
struct SettingsDue {
    /// Wait for a control report newer than this (None: send now).
    after_report: Option<u64>,
    /// Send anyway at this time.
    deadline: Instant,
}

/// One live WebSocket connection.
struct Connection<'a> {
    ws: Ws,
    fd: RawFd,
    p: &'a Pipeline,
    flow: Flow,
    /// The `TCP_NOTSENT_LOWAT` now set on the socket (`None`: the socket
    /// does not take it).
    lowat: Option<usize>,
    /// Owed after hello and after every set, pause and resume.
    settings_due: Option<SettingsDue>,
    /// relay.heartbeat_interval, for explaining an idle-timeout close.
    heartbeat: Duration,
    /// What the relay's close code suggests, logged after the link is.
    hint: Option<String>,
    /// The quality this link allows (`relay.adapt`), pure.
    adapt: QualityControl,
    /// Bytes of frames written to this connection.
    frame_bytes: u64,
}

impl<'a> Connection<'a> {
    fn new(ws: Ws, fd: RawFd, relay: &RelayConfig, p: &'a Pipeline) -> Connection<'a> {
        let cfg = FlowConfig {
            window: relay.window,
            ack_timeout: relay.ack_timeout,
            write_timeout: relay.write_timeout,
            dead_after: relay.heartbeat_interval * 2,
        };
        let ctl = &p.controls;
        let adapt = QualityControl::new(
            ctl.effective_adapt(),
            ctl.quality(),
            ctl.min_quality(),
            ctl.fps(),
            Instant::now(),
        );
        // A new link is measured afresh.
        ctl.set_link(None, None);
        Connection {
            ws,
            fd,
            p,
            adapt,
            frame_bytes: 0,
            flow: Flow::new(cfg, Instant::now()),
            lowat: Some(0),
            settings_due: None,
            heartbeat: relay.heartbeat_interval,
            hint: None,
        }
    }

    /// Runs the connection to `relay` (as logged: token redacted) until it
    /// ends.
    fn drive(
        &mut self,
        dialect: &mut dyn Dialect,
        camera: &str,
        relay: &str,
        stats: &mut StatsTicker,
    ) -> End {
        let p = self.p;
        // A new relay session starts streaming; a relay that wants quiet
        // sends `pause` again.
        if p.controls.paused() {
            p.resume();
        }
        let src = p.source_info();
        let hello = Hello {
            camera: camera.to_string(),
            version: crate::VERSION.to_string(),
            width: src.width,
            height: src.height,
            format: src.format,
            fps: p.controls.fps(),
            relay: Some(relay.to_string()),
        };
        if let Err(end) = self.apply(dialect.on_open(Instant::now(), &hello)) {
            return end;
        }
        // Once after hello (Phoenix: as soon as the join is ok).
        self.owe_settings(None);
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
            if let Err(end) = self.read_all(dialect) {
                return end;
            }

            // 2. Timers: the link's deadlines, the dialect's, the stats.
            let now = Instant::now();
            if let Err(dead) = self.flow.check(now) {
                return End::Lost(dead.0);
            }
            if now >= dialect.next_deadline() {
                if let Err(end) = self.apply(dialect.on_tick(now)) {
                    return end;
                }
            }
            if let Some(mut fields) = stats.tick(p, now) {
                fields.insert("relay".into(), relay.into());
                if let Some(m) = dialect.stats(fields) {
                    if let Err(end) = self.send(m) {
                        return end;
                    }
                }
            }
            if let Err(end) = self.send_settings_if_due(dialect, now) {
                return end;
            }

            // 3. Finish a write the socket could not take at once.
            if let Err(end) = self.flush() {
                return end;
            }

            // 4. The newest frame, if the flow allows.
            let mut gate = Gate::Open;
            let unsent = unsent_bytes(self.fd);
            self.adapt_to_link(now, unsent);
            if !p.controls.paused() && dialect.ready() && p.slot.is_full() {
                gate = self.flow.gate(unsent);
                if gate != Gate::Open {
                    self.adapt.on_blocked();
                }
                if gate == Gate::Open {
                    if let Some(frame) = p.slot.take() {
                        let len = frame.jpeg.len();
                        let (msg, tag) = dialect.frame(frame.jpeg);
                        self.flow.on_frame_sent(Instant::now(), tag, len);
                        self.adapt.on_frame_sent(len, p.controls.encode_quality());
                        self.frame_bytes += len as u64;
                        if let Err(end) = self.send(msg) {
                            p.slot.lost();
                            return end;
                        }
                        p.counters.sent.fetch_add(1, Ordering::Relaxed);
                        p.counters
                            .bytes_sent
                            .fetch_add(len as u64, Ordering::Relaxed);
                        continue; // another frame may already be waiting
                    }
                }
            }

            // 5. Sleep until something happens.
            let now = Instant::now();
            let mut until = dialect
                .next_deadline()
                .min(stats.next())
                .min(self.flow.next_deadline())
                .min(self.adapt.next_deadline());
            if let Some(due) = self.settings_due {
                until = until.min(due.deadline);
            }
            let mut events = libc::POLLIN;
            if self.flow.write_pending() {
                events |= libc::POLLOUT;
            }
            if gate == Gate::AwaitWritable {
                let allowance = self.flow.unsent_allowance();
                if self.lowat.is_some_and(|l| l != allowance) {
                    self.lowat = set_notsent_lowat(self.fd, allowance).then_some(allowance);
                }
                if self.lowat.is_some() {
                    events |= libc::POLLOUT;
                } else {
                    until = until.min(now + THROTTLE_RECHECK);
                }
            }
            wait(
                Some((self.fd, events)),
                p.waker.fd(),
                until.saturating_duration_since(now),
            );
        }
    }

    /// Feeds the link controller what the socket did and applies its
    /// decision: the quality the encoder uses from the next frame on.
    fn adapt_to_link(&mut self, now: Instant, unsent: Option<usize>) {
        let ctl = &self.p.controls;
        let unsent = unsent.unwrap_or(0);
        // A reopened source may have brought or lost the quality knob.
        if self.adapt.mode() != ctl.effective_adapt() {
            self.adapt.configure(
                ctl.effective_adapt(),
                ctl.quality(),
                ctl.min_quality(),
                ctl.fps(),
            );
        }
        let delivered = self.frame_bytes.saturating_sub(unsent as u64);
        self.adapt
            .on_sample(now, delivered, unsent, kernel_delivery_rate(self.fd));
        let before = self.adapt.quality();
        if self.adapt.poll(now).is_some() {
            log::debug!(
                "link: quality {before} -> {}, {} ({:.1} Mbit/s measured)",
                self.adapt.quality(),
                self.adapt.reason(),
                self.adapt.rate().unwrap_or(0.0) * 8.0 / 1e6
            );
        }
        let limit = (self.adapt.quality() < ctl.quality()).then_some(self.adapt.quality());
        ctl.set_link(limit, self.adapt.rate().map(|r| r * 8.0 / 1000.0));
    }

    /// Reads until the socket has nothing more, handing each message to the
    /// dialect and carrying out what it asks.
    fn read_all(&mut self, dialect: &mut dyn Dialect) -> Result<(), End> {
        loop {
            let msg = match self.ws.read() {
                Ok(m) => m,
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                    return Ok(());
                }
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return Err(End::Lost("connection closed".into()));
                }
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::UnexpectedEof => {
                    // rustls's words end with a long link to its manual.
                    return Err(End::Lost("closed by the relay without a TLS close".into()));
                }
                Err(tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                )) => {
                    return Err(End::Lost("reset by the relay without a close".into()));
                }
                Err(tungstenite::Error::Protocol(e)) => {
                    return Err(End::Lost(format!("protocol error from relay: {e}")));
                }
                Err(tungstenite::Error::Capacity(_)) => {
                    return Err(End::Lost(format!(
                        "relay sent a message over the camera's {} bytes",
                        crate::wire::MAX_CONTROL_MESSAGE
                    )));
                }
                Err(e) => return Err(End::Lost(e.to_string())),
            };
            let now = Instant::now();
            self.flow.on_receive(now);
            let actions = match &msg {
                Message::Text(t) => dialect.on_text(t.as_str(), now),
                Message::Binary(b) => dialect.on_binary(b, now),
                Message::Close(f) => {
                    let (why, hint, refused) = match f {
                        Some(f) => close_reason(u16::from(f.code), &f.reason, self.heartbeat),
                        None => ("relay closed it".to_string(), None, false),
                    };
                    self.hint = hint;
                    // tungstenite queues the close reply; flush it.
                    let _ = self.ws.flush();
                    return Err(if refused {
                        End::Refused(why)
                    } else {
                        End::Lost(why)
                    });
                }
                _ => vec![], // ping (answered by tungstenite), pong
            };
            self.apply(actions)?;
        }
    }

    fn apply(&mut self, actions: Vec<Action>) -> Result<(), End> {
        for a in actions {
            match a {
                Action::Send(m) => self.send(m)?,
                Action::Command(c) => self.command(c),
                Action::Ack(of) => {
                    if self.flow.on_ack(of) && of != AckOf::All {
                        log::info!("relay acknowledges frames: in-flight window on");
                    }
                }
                Action::Reconnect(why) => {
                    self.close(None);
                    return Err(End::Lost(why));
                }
            }
        }
        Ok(())
    }

    /// Owes the relay a `settings` message: now, or once the capture thread
    /// has published a control report newer than `after_report`.
    fn owe_settings(&mut self, after_report: Option<u64>) {
        self.settings_due = Some(SettingsDue {
            after_report,
            deadline: Instant::now() + CONTROLS_WAIT,
        });
    }

    fn send_settings_if_due(&mut self, dialect: &mut dyn Dialect, now: Instant) -> Result<(), End> {
        let Some(due) = self.settings_due else {
            return Ok(());
        };
        let p = self.p;
        let applied = due.after_report.is_none_or(|v| p.desk.version() > v);
        if !applied && now < due.deadline {
            return Ok(());
        }
        let report = p.desk.report();
        let fields = crate::wire::message::settings_fields(
            p.controls.fps(),
            p.controls.quality(),
            crate::wire::message::LinkPolicy {
                adapt: p.controls.adapt().name(),
                min_quality: p.controls.min_quality(),
            },
            p.controls.paused(),
            report.values,
            report.ranges,
        );
        // Phoenix sends only once joined: keep owing until then.
        if let Some(m) = dialect.settings(fields) {
            self.settings_due = None;
            self.send(m)?;
        }
        Ok(())
    }

    fn command(&mut self, c: Command) {
        let p = self.p;
        let ctl = &p.controls;
        match c {
            Command::Pause => {
                if !ctl.paused() {
                    log::info!("relay says pause: no frames until resume");
                }
                // Also refuses frames captured before now that are still
                // being encoded: they would be stale on resume.
                p.pause();
                self.owe_settings(None);
            }
            Command::Resume => {
                if ctl.paused() {
                    log::info!("relay says resume");
                }
                p.resume();
                self.owe_settings(None);
            }
            Command::Set(set) => {
                for why in &set.rejected {
                    log::warn!("relay set: {why}; not applied");
                }
                if let Some(f) = set.fps {
                    ctl.set_fps(f);
                }
                if let Some(q) = set.quality {
                    ctl.set_quality(q);
                }
                if let Some(mode) = set.adapt.and_then(AdaptMode::parse) {
                    ctl.set_adapt(mode);
                }
                if let Some(q) = set.min_quality {
                    ctl.set_min_quality(q);
                }
                if set.adapt.is_some() || set.min_quality.is_some() {
                    log::info!(
                        "relay set adapt {} min_quality {}",
                        ctl.adapt().name(),
                        ctl.min_quality()
                    );
                }
                self.adapt.configure(
                    ctl.effective_adapt(),
                    ctl.quality(),
                    ctl.min_quality(),
                    ctl.fps(),
                );
                if set.fps.is_some() || set.quality.is_some() {
                    log::info!("relay set fps {} quality {}", ctl.fps(), ctl.quality());
                }
                if set.controls.is_empty() {
                    self.owe_settings(None);
                } else {
                    // The capture thread owns the device: it applies them,
                    // reads them back and publishes a report.
                    let before = p.desk.version();
                    p.desk.request(set.controls);
                    self.owe_settings(Some(before));
                }
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
        self.flow.on_write_queued(Instant::now());
        self.flush()
    }

    fn flush(&mut self) -> Result<(), End> {
        if !self.flow.write_pending() {
            return Ok(());
        }
        match self.ws.flush() {
            Ok(()) => {
                self.flow.on_write_done();
                Ok(())
            }
            Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => Ok(()),
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
    fn close_codes_are_explained() {
        let hb = Duration::from_secs(30);
        let (why, hint, refused) = close_reason(1002, "", hb);
        assert_eq!(why, "relay closed it: 1002");
        assert_eq!(
            hint.as_deref(),
            Some("the relay timed it out: is heartbeat_interval (30 s) over its timeout?")
        );
        assert!(!refused);
        let (_, hint, refused) = close_reason(1009, "too big", hb);
        assert!(hint.unwrap().contains("source.quality") && !refused);
        assert!(close_reason(1008, "no", hb).2);
        let (why, hint, refused) = close_reason(1001, "bye", hb);
        assert_eq!(why, "relay closed it: 1001 bye");
        assert_eq!(
            hint.as_deref(),
            Some("going away: the relay is shutting down")
        );
        assert!(!refused);
        assert!(
            close_reason(1000, "", hb)
                .1
                .unwrap()
                .contains("normal closure")
        );
        assert!(
            close_reason(1012, "", hb)
                .1
                .unwrap()
                .contains("service restart")
        );
        let (why, hint, _) = close_reason(4000, "replaced by a newer connection", hb);
        assert_eq!(why, "relay closed it: 4000 replaced by a newer connection");
        assert_eq!(hint, None);
    }
}
