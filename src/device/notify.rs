//! systemd's notify protocol (sd_notify), by hand: one datagram per message
//! to the unix socket named by `NOTIFY_SOCKET` (a path, or `@name` in the
//! abstract namespace). No C library, so the static musl build stays static.
//!
//! [`NotifyPlan`] decides *what* to send (pure, tested without sockets);
//! [`Notifier`] only sends.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use crate::pipeline::LinkState;

/// A connection to systemd's notify socket.
#[derive(Debug)]
pub struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// The notifier for `NOTIFY_SOCKET`, or `None` when not started by
    /// systemd with `Type=notify`.
    pub fn from_env() -> Option<io::Result<Notifier>> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        Some(match path.to_str() {
            Some(p) => Notifier::new(p),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "NOTIFY_SOCKET is not valid UTF-8",
            )),
        })
    }

    /// A notifier for the socket `path`: a filesystem path, or `@name` for
    /// the abstract namespace (as systemd writes it).
    pub fn new(path: &str) -> io::Result<Notifier> {
        let addr = if let Some(name) = path.strip_prefix('@') {
            abstract_addr(name.as_bytes())?
        } else if path.starts_with('/') {
            SocketAddr::from_pathname(path)?
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("NOTIFY_SOCKET={path:?}: expected an absolute path or @name"),
            ));
        };
        Ok(Notifier {
            sock: UnixDatagram::unbound()?,
            addr,
        })
    }

    /// Sends one message such as `READY=1` (several `KEY=VALUE` lines may be
    /// joined with `\n`).
    pub fn send(&self, msg: &str) -> io::Result<()> {
        let n = self.sock.send_to_addr(msg.as_bytes(), &self.addr)?;
        if n != msg.len() {
            return Err(io::Error::other(format!(
                "notify: sent {n} of {} bytes",
                msg.len()
            )));
        }
        Ok(())
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_addr(name: &[u8]) -> io::Result<SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_addr(_name: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract unix sockets exist only on Linux",
    ))
}

/// The watchdog period systemd asks for: `WATCHDOG_USEC`, when `WATCHDOG_PID`
/// is absent or names this process (systemd sets it for the main PID only).
pub fn watchdog_from_env() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    parse_watchdog(usec.as_deref(), pid.as_deref(), std::process::id())
}

/// Pure part of [`watchdog_from_env`].
pub fn parse_watchdog(usec: Option<&str>, pid: Option<&str>, my_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != my_pid {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// What the device thread sees of the pipeline on one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    pub link: LinkState,
    /// Since the capture thread last beat.
    pub capture_age: Duration,
    /// Since the stream thread last beat.
    pub stream_age: Duration,
    /// Both threads have beaten at least once since the device thread started.
    pub both_started: bool,
}

/// Decides the notify messages: `READY=1` once both pipeline threads run,
/// `STATUS=` on every link change, `WATCHDOG=1` every half watchdog period
/// but only while both threads beat, `STOPPING=1` at shutdown.
#[derive(Debug, Clone)]
pub struct NotifyPlan {
    watchdog: Option<Duration>,
    ready: bool,
    status: Option<LinkState>,
    last_ping: Option<Duration>,
    stale_logged: bool,
}

/// The limit for a thread's silence when systemd set no watchdog (then it
/// only affects the `STATUS=` text).
const DEFAULT_STALE: Duration = Duration::from_secs(30);

impl NotifyPlan {
    /// `watchdog`: `WATCHDOG_USEC`, if systemd set one.
    pub fn new(watchdog: Option<Duration>) -> NotifyPlan {
        NotifyPlan {
            watchdog,
            ready: false,
            status: None,
            last_ping: None,
            stale_logged: false,
        }
    }

    /// How long a thread may go without beating before the pipeline counts
    /// as stuck: half the watchdog period, so that a stuck pipeline is
    /// restarted within about one and a half periods.
    pub fn stale_after(&self) -> Duration {
        self.watchdog.map(|w| w / 2).unwrap_or(DEFAULT_STALE)
    }

    /// Is every pipeline thread beating?
    pub fn alive(&self, o: &Observation) -> bool {
        let stale = self.stale_after();
        o.capture_age < stale && o.stream_age < stale
    }

    /// The messages to send at `now` (time since the device thread started).
    pub fn step(&mut self, now: Duration, o: &Observation) -> Vec<String> {
        let mut out = Vec::new();
        let alive = self.alive(o);
        if !self.ready && o.both_started && alive {
            self.ready = true;
            out.push("READY=1".to_string());
        }
        if self.status != Some(o.link) {
            self.status = Some(o.link);
            out.push(format!("STATUS={}", status_text(o.link)));
        }
        if alive {
            self.stale_logged = false;
        } else if self.ready && !self.stale_logged {
            self.stale_logged = true;
            log::error!(
                "pipeline stuck (capture silent {:.1}s, stream silent {:.1}s): no longer feeding the watchdog",
                o.capture_age.as_secs_f64(),
                o.stream_age.as_secs_f64()
            );
            out.push("STATUS=stuck: a pipeline thread stopped beating".to_string());
        }
        if let Some(w) = self.watchdog {
            let due = self.last_ping.is_none_or(|t| now >= t + w / 2);
            if self.ready && alive && due {
                self.last_ping = Some(now);
                out.push("WATCHDOG=1".to_string());
            }
        }
        out
    }

    /// The message for shutdown.
    pub fn stopping(&self) -> String {
        "STOPPING=1\nSTATUS=stopping".to_string()
    }
}

/// The `STATUS=` text for a link state (shown by `systemctl status`).
pub fn status_text(link: LinkState) -> &'static str {
    match link {
        LinkState::Connecting => "connecting to the relay",
        LinkState::Streaming => "streaming",
        LinkState::Paused => "connected, paused by the relay",
        LinkState::Error => "error (refused by the relay, or the camera is failing)",
    }
}

/// The mark `scripts/deploy` leaves after installing a new binary, in the
/// unit's `StateDirectory` (`/var/lib/zerocam`): `deploy/zerocam-rollback`
/// restores the previous binary while it is there after 3 starts.
pub const UPDATE_PENDING: &str = "update-pending";

/// This binary reached its relay: an update that got this far stays. Removes
/// the mark when systemd gave a state directory (`$STATE_DIRECTORY`) and the
/// mark is there; says so once. Elsewhere it does nothing.
pub fn confirm_update() {
    let Some(dir) = std::env::var_os("STATE_DIRECTORY") else {
        return;
    };
    // A list when the unit names several directories: ours is the first.
    let dir = dir
        .to_string_lossy()
        .split(':')
        .next()
        .unwrap_or("")
        .to_string();
    let mark = std::path::Path::new(&dir).join(UPDATE_PENDING);
    match std::fs::remove_file(&mark) {
        Ok(()) => log::info!("update confirmed: this binary reached its relay"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => log::warn!("cannot clear {}: {e}", mark.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(link: LinkState, cap_ms: u64, str_ms: u64, started: bool) -> Observation {
        Observation {
            link,
            capture_age: Duration::from_millis(cap_ms),
            stream_age: Duration::from_millis(str_ms),
            both_started: started,
        }
    }

    #[test]
    fn watchdog_env_parsing() {
        assert_eq!(
            parse_watchdog(Some("30000000"), None, 7),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_watchdog(Some("30000000"), Some("7"), 7),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_watchdog(Some("30000000"), Some("8"), 7), None);
        assert_eq!(parse_watchdog(Some("x"), None, 7), None);
        assert_eq!(parse_watchdog(Some("0"), None, 7), None);
        assert_eq!(parse_watchdog(None, None, 7), None);
    }

    #[test]
    fn ready_only_once_both_threads_run() {
        let mut p = NotifyPlan::new(Some(Duration::from_secs(20)));
        let s = |ms| Duration::from_millis(ms);
        let m = p.step(s(0), &obs(LinkState::Connecting, 10, 10, false));
        assert_eq!(m, vec!["STATUS=connecting to the relay"]);
        // Started but the capture thread is silent for too long: not ready.
        let m = p.step(s(100), &obs(LinkState::Connecting, 10_000, 10, true));
        assert!(m.is_empty(), "{m:?}");
        let m = p.step(s(200), &obs(LinkState::Connecting, 10, 10, true));
        assert_eq!(m, vec!["READY=1", "WATCHDOG=1"]);
        let m = p.step(s(300), &obs(LinkState::Streaming, 10, 10, true));
        assert_eq!(m, vec!["STATUS=streaming"]);
    }

    #[test]
    fn watchdog_fed_at_half_period_only_while_alive() {
        let mut p = NotifyPlan::new(Some(Duration::from_secs(20)));
        let s = Duration::from_secs;
        let live = obs(LinkState::Streaming, 100, 100, true);
        assert!(p.step(s(0), &live).contains(&"WATCHDOG=1".to_string()));
        assert!(p.step(s(5), &live).is_empty());
        assert_eq!(p.step(s(10), &live), vec!["WATCHDOG=1"]);
        // The stream thread stops beating (stale after 10 s): no more pings.
        let stuck = obs(LinkState::Streaming, 100, 11_000, true);
        let m = p.step(s(20), &stuck);
        assert_eq!(m, vec!["STATUS=stuck: a pipeline thread stopped beating"]);
        assert!(p.step(s(30), &stuck).is_empty());
        // It recovers: pings resume.
        assert_eq!(p.step(s(31), &live), vec!["WATCHDOG=1"]);
    }

    #[test]
    fn no_watchdog_no_pings() {
        let mut p = NotifyPlan::new(None);
        let live = obs(LinkState::Paused, 1, 1, true);
        let m = p.step(Duration::ZERO, &live);
        assert_eq!(m, vec!["READY=1", "STATUS=connected, paused by the relay"]);
        assert!(p.step(Duration::from_secs(100), &live).is_empty());
        assert!(p.stopping().starts_with("STOPPING=1"));
    }

    fn recv_all(l: &UnixDatagram) -> Vec<String> {
        let mut buf = [0u8; 512];
        let mut out = Vec::new();
        for _ in 0..2 {
            let n = l.recv(&mut buf).unwrap();
            out.push(String::from_utf8(buf[..n].to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn sends_to_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("zerocam-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let n = Notifier::new(path.to_str().unwrap()).unwrap();
        n.send("READY=1").unwrap();
        n.send("STATUS=streaming\nWATCHDOG=1").unwrap();
        assert_eq!(
            recv_all(&listener),
            vec!["READY=1", "STATUS=streaming\nWATCHDOG=1"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("zerocam-test-notify-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let n = Notifier::new(&format!("@{name}")).unwrap();
        n.send("WATCHDOG=1").unwrap();
        n.send("STOPPING=1").unwrap();
        assert_eq!(recv_all(&listener), vec!["WATCHDOG=1", "STOPPING=1"]);
    }

    #[test]
    fn relative_socket_path_is_refused() {
        let e = Notifier::new("relative/sock").unwrap_err();
        assert!(e.to_string().contains("absolute path"), "{e}");
    }
}
