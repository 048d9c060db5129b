//! Helper run inside the `scripts/vm-test` guests (busybox + vivid + zerocam):
//!
//! - `vm_guest view URL FRAMES TIMEOUT_S [DECODE_EVERY]`: a viewer. Connects
//!   to a relay's `/cameras/{id}/ws`, receives FRAMES binary messages,
//!   decodes each JPEG (or every DECODE_EVERY-th, the first always) with a
//!   real decoder and prints one parseable `VIEWER ...` line. Latency cases
//!   sample: decoding every 720p frame on an emulated CPU would make the
//!   viewer the slowest hop, and its socket backlog the latency measured.
//! - `vm_guest ctl DEVICE NAME [VALUE]`: sets a V4L2 control found by name
//!   (vivid's error injection, e.g. "Disconnect"), like `v4l2-ctl --set-ctrl`.
//! - `vm_guest ctls DEVICE`: lists the device's controls.
//!
//! It is test tooling, so it reports errors on stderr and exits non-zero
//! instead of panicking; it never waits longer than its timeout.

use std::io::ErrorKind;
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tungstenite::Message;
use v4l::control::{Control, Type, Value};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let res = match args.first().map(String::as_str) {
        Some("view") if args.len() == 4 || args.len() == 5 => {
            let every = args.get(4).map_or(Ok(1), |e| e.parse::<u64>());
            match (args[2].parse(), args[3].parse(), every) {
                (Ok(n), Ok(t), Ok(every)) if every > 0 => {
                    view(&args[1], n, Duration::from_secs_f64(t), every)
                }
                _ => Err(anyhow::anyhow!(
                    "view: FRAMES, TIMEOUT_S and DECODE_EVERY (≥ 1) must be numbers"
                )),
            }
        }
        Some("ctl") if args.len() == 3 || args.len() == 4 => {
            set_ctl(&args[1], &args[2], args.get(3).map(String::as_str))
        }
        Some("ctls") if args.len() == 2 => list_ctls(&args[1]),
        Some("post") if args.len() == 4 => post(&args[1], &args[2], &args[3]),
        Some("sink") if args.len() == 5 => {
            match (args[1].parse(), args[2].parse(), args[3].parse()) {
                (Ok(port), Ok(n), Ok(t)) => sink(port, n, Duration::from_secs_f64(t), &args[4]),
                _ => Err(anyhow::anyhow!("sink: PORT FRAMES TIMEOUT_S MAGIC_HEX")),
            }
        }
        _ => Err(anyhow::anyhow!(
            "usage: vm_guest view URL FRAMES TIMEOUT_S [DECODE_EVERY] | ctl DEVICE NAME [VALUE] | ctls DEVICE | post URL TOKEN JSON | sink PORT FRAMES TIMEOUT_S MAGIC_HEX"
        )),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vm_guest: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What the viewer saw.
#[derive(Default)]
struct Tally {
    received: u64,
    /// Frames given to the decoder.
    tried: u64,
    decoded: u64,
    undecodable: u64,
    size: Option<(u16, u16)>,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
    first_at: Option<Instant>,
    last_at: Option<Instant>,
    /// Receipt time minus the COM capture time, ms, per frame.
    latency_ms: Vec<f64>,
}

impl Tally {
    fn line(&self) -> String {
        let fps = match (self.first_at, self.last_at) {
            (Some(a), Some(b)) if self.received > 1 && b > a => {
                (self.received - 1) as f64 / (b - a).as_secs_f64()
            }
            _ => 0.0,
        };
        let size = self.size.map_or("-".into(), |(w, h)| format!("{w}x{h}"));
        let seq = match (self.first_seq, self.last_seq) {
            (Some(a), Some(b)) => format!("{a}..{b}"),
            _ => "-".into(),
        };
        let mut lat = self.latency_ms.clone();
        lat.sort_by(f64::total_cmp);
        let q = |p: f64| {
            lat.get(((lat.len().max(1) - 1) as f64 * p).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        format!(
            "VIEWER received={} tried={} decoded={} undecodable={} size={size} fps={fps:.1} seq={seq} latency_ms_p50={:.0} latency_ms_p90={:.0} latency_ms_max={:.0}",
            self.received,
            self.tried,
            self.decoded,
            self.undecodable,
            q(0.5),
            q(0.9),
            q(1.0)
        )
    }
}

/// Connects (retrying until the deadline: the relay or the camera may not be
/// up yet) and counts frames until `frames` arrived or the time is up,
/// decoding every `decode_every`-th one (the first included).
fn view(url: &str, frames: u64, timeout: Duration, decode_every: u64) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let rest = url
        .strip_prefix("ws://")
        .context("view: only ws:// URLs are supported")?;
    let hostport = rest.split('/').next().unwrap_or(rest);
    let mut last_err = String::new();
    let mut ws = loop {
        if Instant::now() >= deadline {
            bail!("view: could not connect to {url} within {timeout:?}: {last_err}");
        }
        let attempt = (|| -> Result<_> {
            let addr = hostport.to_socket_addrs()?.next().context("no address")?;
            let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            tcp.set_read_timeout(Some(Duration::from_millis(500)))?;
            let (ws, _resp) = tungstenite::client::client(url, tcp)?;
            Ok(ws)
        })();
        match attempt {
            Ok(ws) => break ws,
            Err(e) => {
                last_err = format!("{e:#}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    let mut t = Tally::default();
    while t.received < frames && Instant::now() < deadline {
        match ws.read() {
            Ok(Message::Binary(b)) => {
                let now = Instant::now();
                t.first_at.get_or_insert(now);
                t.last_at = Some(now);
                t.received += 1;
                if let Some(m) = zerocam::wire::com::parse(&b) {
                    t.first_seq.get_or_insert(m.seq);
                    t.last_seq = Some(m.seq);
                    let age = zerocam::frame::now_us().saturating_sub(m.ts_us);
                    t.latency_ms.push(age as f64 / 1000.0);
                }
                if (t.received - 1) % decode_every != 0 {
                    continue;
                }
                t.tried += 1;
                let mut d = jpeg_decoder::Decoder::new(&b[..]);
                match d.decode() {
                    Ok(px) if !px.is_empty() => {
                        t.decoded += 1;
                        t.size = d.info().map(|i| (i.width, i.height));
                    }
                    _ => t.undecodable += 1,
                }
            }
            Ok(Message::Close(c)) => {
                eprintln!("vm_guest: relay closed the viewer socket: {c:?}");
                break;
            }
            Ok(_) => {}
            Err(e) if read_timed_out(&e) => {}
            Err(e) => {
                eprintln!("vm_guest: viewer socket error: {e}");
                break;
            }
        }
    }
    let _ = ws.close(None);
    println!("{}", t.line());
    if t.received < frames || t.decoded < t.tried {
        bail!("view: wanted {frames} decodable frames, {}", t.line());
    }
    Ok(())
}

/// `sink PORT FRAMES TIMEOUT_S MAGIC_HEX`: a bare WebSocket relay on
/// 127.0.0.1:PORT for one camera, counting its binary messages and those
/// that start with MAGIC (e.g. vicodec's FWHT header); prints one `SINK …`
/// line (with `dims=WxH`, the big-endian words at bytes 12 and 16 of the
/// last frame: an FWHT header's width and height) and exits non-zero
/// unless FRAMES all carried the magic in time.
fn sink(port: u16, frames: u64, timeout: Duration, magic_hex: &str) -> Result<()> {
    let magic: Vec<u8> = (0..magic_hex.len() / 2)
        .map(|i| u8::from_str_radix(&magic_hex[i * 2..i * 2 + 2], 16))
        .collect::<std::result::Result<_, _>>()
        .context("MAGIC_HEX")?;
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + timeout;
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    bail!("sink: no camera connected within {timeout:?}");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e.into()),
        }
    };
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut ws =
        tungstenite::accept(stream).map_err(|e| anyhow::anyhow!("sink: handshake: {e}"))?;
    let (mut total, mut matched, mut bytes) = (0u64, 0u64, 0u64);
    let mut dims = (0u32, 0u32);
    while matched < frames && Instant::now() < deadline {
        match ws.read() {
            Ok(Message::Binary(b)) => {
                total += 1;
                bytes += b.len() as u64;
                if b.starts_with(&magic) {
                    matched += 1;
                }
                let word = |at: usize| {
                    b.get(at..at + 4)
                        .map_or(0, |w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
                };
                dims = (word(12), word(16));
            }
            Ok(_) => {}
            Err(e) if read_timed_out(&e) => {}
            Err(e) => {
                eprintln!("vm_guest: sink: {e}");
                break;
            }
        }
    }
    let _ = ws.close(None);
    println!(
        "SINK frames={total} magic={matched} bytes={bytes} dims={}x{}",
        dims.0, dims.1
    );
    if matched < frames || matched != total {
        bail!("sink: wanted {frames} frames all starting with {magic_hex}");
    }
    Ok(())
}

/// `post URL TOKEN JSON`: an HTTP/1.0 POST (busybox has no JSON POST);
/// prints `HTTP <status> <body>`, exits non-zero unless 2xx.
fn post(url: &str, token: &str, body: &str) -> Result<()> {
    use std::io::{Read, Write};
    let rest = url
        .strip_prefix("http://")
        .context("post: only http:// URLs")?;
    let (hostport, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let addr = hostport.to_socket_addrs()?.next().context("no address")?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    write!(
        s,
        "POST {path} HTTP/1.0\r\nHost: {hostport}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut all = Vec::new();
    s.read_to_end(&mut all)?;
    let text = String::from_utf8_lossy(&all);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    println!("HTTP {status} {}", body.trim());
    if !(200..300).contains(&status) {
        bail!("post: HTTP {status}");
    }
    Ok(())
}

fn list_ctls(device: &str) -> Result<()> {
    let dev = v4l::Device::with_path(device).with_context(|| format!("open {device}"))?;
    for c in dev.query_controls().context("query controls")? {
        println!("{:#010x} {:?} {:?}", c.id, c.typ, c.name);
    }
    Ok(())
}

/// Sets the control whose name matches (ignoring case); buttons are pressed,
/// booleans set true unless VALUE says otherwise.
fn set_ctl(device: &str, name: &str, value: Option<&str>) -> Result<()> {
    let dev = v4l::Device::with_path(device).with_context(|| format!("open {device}"))?;
    let desc = dev
        .query_controls()
        .context("query controls")?
        .into_iter()
        .find(|c| c.name.eq_ignore_ascii_case(name))
        .with_context(|| format!("{device} has no control named {name:?}"))?;
    let value = match desc.typ {
        Type::Button => Value::None,
        Type::Boolean => Value::Boolean(value.is_none_or(|v| v == "1" || v == "true")),
        Type::Integer | Type::Menu | Type::Integer64 => Value::Integer(
            value
                .context("this control needs a VALUE")?
                .parse()
                .context("VALUE must be an integer")?,
        ),
        t => bail!("control {name:?} has type {t:?}, which vm_guest does not set"),
    };
    dev.set_control(Control { id: desc.id, value })
        .with_context(|| format!("set {name:?} on {device}"))?;
    println!("CTL {device} {name:?} set");
    Ok(())
}

/// True when a read ended only because the socket's read timeout passed.
fn read_timed_out(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut))
}
