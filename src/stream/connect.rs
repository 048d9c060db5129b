//! Opening a link to the relay: name lookup, TCP, TLS and the WebSocket
//! handshake, under ONE overall deadline (`relay.connect_timeout`), in
//! slices of at most [`SLICE`] so the stream thread keeps beating for the
//! watchdog however long the relay takes to answer.

use std::io::{self, ErrorKind};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tungstenite::client::IntoClientRequest;
use tungstenite::error::{ProtocolError, SubProtocolError};
use tungstenite::handshake::HandshakeError;
use tungstenite::http::{HeaderValue, StatusCode};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Connector, WebSocket};

use crate::config::RelayConfig;
use crate::wire::MAX_CONTROL_MESSAGE;

/// The WebSocket this camera speaks through.
pub type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

/// The longest the stream thread waits in one go before beating again.
pub const SLICE: Duration = Duration::from_secs(1);

/// Why a connection attempt failed.
#[derive(Debug)]
pub enum ConnectError {
    /// 401/403: retrying soon cannot help.
    Refused(StatusCode),
    /// The camera offered the Phoenix auth subprotocol and the server did not
    /// take it: retrying the same way cannot help.
    NoSubprotocol,
    /// Anything else: network trouble, timeouts, other HTTP statuses.
    Other(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Phoenix answers 403 for any connect/1 that fails, not only
            // for a bad token (e.g. a missing path param).
            ConnectError::Refused(status) if status.as_u16() == 403 => {
                f.write_str("refused (HTTP 403): bad token, or connect/1 refused the params")
            }
            ConnectError::Refused(status) => write!(
                f,
                "refused (HTTP {}): authentication required, check the token",
                status.as_u16()
            ),
            // Phoenix < 1.8, or a socket without `auth_token: true`.
            ConnectError::NoSubprotocol => {
                f.write_str("no auth subprotocol at the relay: turn relay.auth_subprotocol off")
            }
            ConnectError::Other(why) => f.write_str(why),
        }
    }
}

/// Builds the rustls client config: webpki roots plus an optional private CA.
pub fn tls_config(ca: Option<&Path>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
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
pub fn base64_unpadded(data: &[u8]) -> String {
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

/// The URL with any `token=` query value hidden, for logs.
pub fn redact(url: &str) -> String {
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

/// A relay URL as log lines show it: the token redacted, and a long one
/// cut in the middle to [`SHOWN_URL`] characters, so that a line with it
/// fits a serial console.
pub fn shown(url: &str) -> String {
    let r = redact(url);
    let n = r.chars().count();
    if n <= SHOWN_URL {
        return r;
    }
    let head: String = r.chars().take(SHOWN_URL / 2).collect();
    let tail: String = r
        .chars()
        .skip(n - (SHOWN_URL - SHOWN_URL / 2 - 1))
        .collect();
    format!("{head}…{tail}")
}

/// The longest URL a log line shows whole.
pub const SHOWN_URL: usize = 44;

fn timeout_error(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Resolves `host:port` on a helper thread (getaddrinfo cannot be
/// interrupted), beating while it waits, until `deadline`. A lookup still
/// hanging at the deadline is left to finish on its own.
fn resolve(
    host: &str,
    port: u16,
    deadline: Instant,
    beat: &dyn Fn(),
) -> Result<Vec<SocketAddr>, ConnectError> {
    let (tx, rx) = mpsc::channel();
    let name = host.to_string();
    std::thread::Builder::new()
        .name("resolve".into())
        .spawn(move || {
            let _ = tx.send((name.as_str(), port).to_socket_addrs().map(Vec::from_iter));
        })
        .map_err(|e| ConnectError::Other(format!("cannot start the name lookup: {e}")))?;
    loop {
        beat();
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ConnectError::Other(format!(
                "looking up {host} did not finish in time"
            )));
        }
        match rx.recv_timeout(left.min(SLICE)) {
            Ok(Ok(a)) if a.is_empty() => {
                return Err(ConnectError::Other(format!(
                    "{host} resolved to no address"
                )));
            }
            Ok(Ok(a)) => return Ok(a),
            Ok(Err(e)) => return Err(ConnectError::Other(format!("cannot resolve {host}: {e}"))),
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(ConnectError::Other(format!("looking up {host} failed")));
            }
        }
    }
}

/// A non-blocking TCP connect to `addr`, polled in slices until `deadline`.
fn tcp_connect(addr: SocketAddr, deadline: Instant, beat: &dyn Fn()) -> io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_nonblocking(true)?;
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => loop {
            beat();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(ErrorKind::TimedOut, "connect timed out"));
            }
            if poll_one(sock.as_raw_fd(), libc::POLLOUT, left.min(SLICE))? {
                if let Some(e) = sock.take_error()? {
                    return Err(e);
                }
                break;
            }
        },
        Err(e) => return Err(e),
    }
    sock.set_nonblocking(false)?;
    Ok(sock.into())
}

/// Polls one fd for `events`; true when any arrived (or an error/hangup).
pub fn poll_one(fd: RawFd, events: i16, timeout: Duration) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ms = timeout.as_millis().min(60_000) as libc::c_int;
    // SAFETY: one valid pollfd.
    let rc = unsafe { libc::poll(&mut p, 1, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(rc > 0)
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

/// The TCP stream under a WebSocket.
pub fn tcp_of(ws: &Ws) -> &TcpStream {
    match ws.get_ref() {
        MaybeTlsStream::Plain(s) => s,
        MaybeTlsStream::Rustls(s) => &s.sock,
        // MaybeTlsStream is non-exhaustive; we only build the two above.
        _ => unreachable!("zerocam only creates plain and rustls streams"),
    }
}

/// Opens TCP (and TLS) and does the WebSocket handshake, all before one
/// deadline: `relay.connect_timeout` from now, or the dead-link bound
/// (2 × `relay.heartbeat_interval`) if shorter, since a relay that says
/// nothing that long is dead during the handshake as after it. A host name
/// with several addresses is tried address by address, each with a fair
/// share of the time left (a dead first address cannot use it all), until
/// one completes the handshake; a refusal (401/403) is the relay's answer
/// and is not tried elsewhere. Returns the socket's fd (for poll and the
/// unsent-bytes count) and the address it reached. `beat` is called at
/// least every [`SLICE`] while waiting.
pub fn connect(
    relay: &RelayConfig,
    url: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
    beat: &dyn Fn(),
) -> Result<(Ws, RawFd, SocketAddr), ConnectError> {
    let limit = relay.connect_timeout.min(relay.heartbeat_interval * 2);
    let deadline = Instant::now() + limit;
    let other = |what: &str, e: &dyn std::fmt::Display| ConnectError::Other(format!("{what}: {e}"));
    let timed_out = || {
        ConnectError::Other(format!(
            "no connection within {:.1}s (relay.connect_timeout, or 2 × heartbeat)",
            limit.as_secs_f64()
        ))
    };
    let uri = url
        .into_client_request()
        .map_err(|e| other("bad relay URL", &e))?
        .uri()
        .clone();
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
    let addrs = resolve(&host, port, deadline, beat)?;
    let n = addrs.len();
    let mut last = timed_out();
    for (k, addr) in addrs.into_iter().enumerate() {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let share = (deadline - now) / (n - k).max(1) as u32;
        match connect_addr(relay, url, addr, now + share, tls.clone(), beat) {
            Ok((ws, fd)) => return Ok((ws, fd, addr)),
            Err(e @ (ConnectError::Refused(_) | ConnectError::NoSubprotocol)) => return Err(e),
            Err(e) => {
                if n > 1 {
                    log::debug!("{addr}: {e}");
                }
                last = e;
            }
        }
    }
    Err(last)
}

/// The request for `url`, with the token, subprotocol and user agent.
fn request(
    relay: &RelayConfig,
    url: &str,
) -> Result<tungstenite::handshake::client::Request, ConnectError> {
    let mut req = url
        .into_client_request()
        .map_err(|e| ConnectError::Other(format!("bad relay URL: {e}")))?;
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
    Ok(req)
}

/// TCP, TLS and the WebSocket handshake to one address, by `deadline`.
fn connect_addr(
    relay: &RelayConfig,
    url: &str,
    addr: SocketAddr,
    deadline: Instant,
    tls: Option<Arc<rustls::ClientConfig>>,
    beat: &dyn Fn(),
) -> Result<(Ws, RawFd), ConnectError> {
    let other = |what: &str, e: &dyn std::fmt::Display| ConnectError::Other(format!("{what}: {e}"));
    let late = || {
        ConnectError::Other(format!(
            "{addr}: no handshake reply (relay.connect_timeout)"
        ))
    };
    let req = request(relay, url)?;
    let stream = match tcp_connect(addr, deadline, beat) {
        Ok(s) => s,
        Err(e) if timeout_error(&e) => {
            return Err(ConnectError::Other(format!(
                "{addr}: no answer (relay.connect_timeout)"
            )));
        }
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            return Err(ConnectError::Other(format!(
                "{addr} refused the connection"
            )));
        }
        Err(e) => return Err(other(&addr.to_string(), &e)),
    };
    tune_socket(&stream, relay).map_err(|e| other("socket setup", &e))?;
    let fd = stream.as_raw_fd();
    // Reads and writes block for at most one slice, then the handshake is
    // resumed after a beat, until the deadline.
    stream
        .set_read_timeout(Some(SLICE))
        .and_then(|_| stream.set_write_timeout(Some(SLICE)))
        .map_err(|e| other("socket setup", &e))?;
    let connector = match tls {
        Some(c) => Connector::Rustls(c),
        None => Connector::Plain,
    };
    // The camera takes only small control messages from a relay.
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(MAX_CONTROL_MESSAGE))
        .max_frame_size(Some(MAX_CONTROL_MESSAGE));
    beat();
    let mut attempt =
        tungstenite::client_tls_with_config(req, stream, Some(ws_config), Some(connector));
    loop {
        match attempt {
            Ok((ws, _response)) => {
                tcp_of(&ws)
                    .set_nonblocking(true)
                    .map_err(|e| other("socket setup", &e))?;
                return Ok((ws, fd));
            }
            Err(HandshakeError::Interrupted(mid)) => {
                beat();
                if Instant::now() >= deadline {
                    return Err(late());
                }
                attempt = mid.handshake();
            }
            Err(HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
                let status = resp.status();
                return Err(
                    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                        ConnectError::Refused(status)
                    } else {
                        ConnectError::Other(format!("relay answered HTTP {status} to the upgrade"))
                    },
                );
            }
            Err(HandshakeError::Failure(tungstenite::Error::Protocol(
                ProtocolError::SecWebSocketSubProtocolError(SubProtocolError::NoSubProtocol),
            ))) if relay.auth_subprotocol => return Err(ConnectError::NoSubprotocol),
            Err(HandshakeError::Failure(tungstenite::Error::Io(e))) if timeout_error(&e) => {
                return Err(late());
            }
            // rustls's own words ("invalid peer certificate: …") say it.
            Err(HandshakeError::Failure(tungstenite::Error::Io(e)))
                if e.get_ref().is_some_and(|i| i.is::<rustls::Error>()) =>
            {
                let inner = e.get_ref().map(ToString::to_string).unwrap_or_default();
                return Err(ConnectError::Other(format!("TLS: {inner}")));
            }
            Err(HandshakeError::Failure(e)) => return Err(other("handshake", &e)),
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
        assert_eq!(shown("ws://h/x?token=s3cret"), "ws://h/x?token=…");
        let long = "wss://camera-relay.example.com:4443/socket/websocket?vsn=2.0.0&token=s";
        let s = shown(long);
        assert_eq!(s.chars().count(), SHOWN_URL, "{s}");
        assert!(
            s.starts_with("wss://camera-relay.exa") && s.ends_with("token=…"),
            "{s}"
        );
    }
}
