//! The relay's test harness: a running `zerocam relay`, a test camera
//! speaking the raw dialect, HTTP and WebSocket viewers. Loopback only;
//! every wait is bounded.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

use super::{Zerocam, bin, temp_path};
use zerocam::frame::now_us;
use zerocam::wire::com;

/// The longest any single wait in these tests may take.
pub const HANG: Duration = Duration::from_secs(20);

/// A running `zerocam relay` (killed on drop).
pub struct Relay {
    pub proc: Zerocam,
    pub addr: SocketAddr,
    pub _dir: Option<TempDir>,
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = temp_path(tag);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Relay {
    pub fn start(args: &[&str], config: Option<&str>) -> Relay {
        let dir = config.map(|_| TempDir::new("cfg"));
        let mut cmd = Command::new(bin());
        cmd.arg("relay")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(args);
        if let (Some(text), Some(d)) = (config, &dir) {
            let p = d.0.join("zerocam.toml");
            std::fs::write(&p, text.replace("$DIR", d.0.to_str().unwrap())).unwrap();
            cmd.arg("--config").arg(&p);
        }
        let proc = Zerocam::spawn(cmd, "relay");
        let line = proc
            .wait_log("relay listening on http://", HANG)
            .expect("relay did not print its address");
        let addr = line
            .split("relay listening on http://")
            .nth(1)
            .unwrap()
            .trim_end_matches('/')
            .parse()
            .unwrap();
        Relay {
            proc,
            addr,
            _dir: dir,
        }
    }

    pub fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.proc.child.id())).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .unwrap()
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap()
    }

    pub fn metric(&self, line_prefix: &str) -> f64 {
        let (_, _, body) = http_get(self.addr, "/metrics");
        let text = String::from_utf8(body).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(line_prefix)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no metric {line_prefix} in\n{text}"))
    }

    pub fn logged(&self, needle: &str) -> bool {
        !self.proc.lines_with(needle).is_empty()
    }
}

/// A JPEG of `w`×`h` whose colour depends on `shade`; `noise` makes it big.
pub fn jpeg(w: u16, h: u16, shade: u8, noise: bool) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(shade as u64);
    let px: Vec<u8> = (0..w as usize * h as usize * 3)
        .map(|i| {
            if noise {
                rng.u8(..)
            } else {
                shade.wrapping_add((i % 7) as u8)
            }
        })
        .collect();
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 80)
        .encode(&px, w, h, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

pub fn with_com(jpeg: &[u8], seq: u64, w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    com::insert_into(
        jpeg,
        &com::FrameMeta {
            seq,
            ts_us: now_us(),
            size: Some((w, h)),
        },
        &mut out,
    );
    out
}

/// A test camera speaking the raw dialect.
pub struct Cam {
    pub ws: WebSocket<TcpStream>,
    pub seq: u64,
    /// Text messages received from the relay.
    pub texts: Vec<String>,
}

pub fn ws_connect(
    addr: SocketAddr,
    path: &str,
    bearer: Option<&str>,
) -> Result<WebSocket<TcpStream>, tungstenite::Error> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(HANG)).unwrap();
    stream.set_write_timeout(Some(HANG)).unwrap();
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some(t) = bearer {
        req.headers_mut()
            .insert("Authorization", format!("Bearer {t}").parse().unwrap());
    }
    tungstenite::client(req, stream)
        .map(|(ws, _)| ws)
        .map_err(|e| match e {
            tungstenite::HandshakeError::Failure(e) => e,
            tungstenite::HandshakeError::Interrupted(_) => panic!("blocking handshake interrupted"),
        })
}

pub fn http_status(e: tungstenite::Error) -> u16 {
    match e {
        tungstenite::Error::Http(r) => r.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

impl Cam {
    pub fn connect(addr: SocketAddr, id: &str, token: Option<&str>) -> Cam {
        let path = match token {
            Some(t) => format!("/ingest/{id}?token={t}"),
            None => format!("/ingest/{id}"),
        };
        let mut ws = ws_connect(addr, &path, None).expect("camera connects");
        let hello = format!(
            r#"{{"type":"hello","camera":"{id}","version":"test","width":64,"height":48,"format":"pattern","fps":20}}"#
        );
        ws.send(Message::text(hello)).unwrap();
        Cam {
            ws,
            seq: 0,
            texts: Vec::new(),
        }
    }

    /// Sends one message and waits for its ack, collecting text on the way.
    pub fn send_binary(&mut self, data: Vec<u8>) {
        self.ws.send(Message::binary(data)).unwrap();
        loop {
            match self.ws.read().expect("ack") {
                Message::Binary(b) => {
                    assert_eq!(&b[..], &[0x0A], "the ack is the single byte 0x0A");
                    return;
                }
                Message::Text(t) => self.texts.push(t.to_string()),
                _ => {}
            }
        }
    }

    pub fn send_frame(&mut self) {
        self.seq += 1;
        let j = jpeg(64, 48, (self.seq * 10) as u8, false);
        let f = with_com(&j, self.seq, 64, 48);
        self.send_binary(f);
    }

    /// Reads until a text message containing `needle` arrives.
    pub fn wait_text(&mut self, needle: &str) {
        if self.texts.iter().any(|t| t.contains(needle)) {
            return;
        }
        let end = Instant::now() + HANG;
        while Instant::now() < end {
            if let Message::Text(t) = self.ws.read().expect("relay message") {
                if t.contains(needle) {
                    self.texts.push(t.to_string());
                    return;
                }
            }
        }
        panic!("no {needle} from the relay");
    }
}

/// GET over HTTP/1.0 (so the body is not chunked): status, headers, body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(HANG)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&all[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, all[split + 4..].to_vec())
}

/// Reads until the relay closes the link; returns the close frame.
pub fn wait_close(ws: &mut WebSocket<TcpStream>) -> tungstenite::protocol::CloseFrame {
    let end = Instant::now() + HANG;
    loop {
        match ws.read() {
            Ok(Message::Close(Some(f))) => return f,
            Ok(Message::Close(None)) => panic!("close without a code"),
            Ok(_) => {}
            Err(e) => panic!("expected a close frame, got {e}"),
        }
        assert!(Instant::now() < end, "no close within {HANG:?}");
    }
}

/// Polls `f` every 50 ms until it holds, for at most `HANG`.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + HANG;
    while !f() {
        assert!(Instant::now() < end, "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
