//! `zerocam-bench`: the tools `scripts/bench` drives.
//!
//! - `view`: N viewers (WebSocket or MJPEG) on one relay camera for a fixed
//!   window; per-viewer frame rates, capture→receipt latency from each
//!   JPEG's COM segment, seq gaps. Prints `WINDOW START`/`WINDOW END` lines
//!   (so the caller can sample the relay's CPU over exactly that window) and
//!   one JSON line of results.
//! - `instr`: encodes (or passes through) a fixed number of frames and
//!   exits: run twice under callgrind with different counts, the difference
//!   is the instruction count per frame with start-up cancelled out.
//! - `frame`: writes the natural-looking YUYV test frame to a file (the
//!   ARMv6 programs read it, so every encoder sees the same bytes).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use zerocam::wire::com;
use zerocam_bench::stats::percentile;

fn usage() -> ! {
    eprintln!(
        "usage:\n  zerocam-bench view --url http://127.0.0.1:PORT/cameras/ID [--url …] --kind ws|mjpeg --viewers N --secs S [--warmup S]\n  \
         zerocam-bench instr --what zerocam|reference|turbo|passthrough --size WxH --frames N\n  \
         zerocam-bench frame --size WxH --out FILE\n  \
         zerocam-bench quality --size WxH"
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("view") => view_main(&args[1..]),
        Some("instr") => instr_main(&args[1..]),
        Some("frame") => frame_main(&args[1..]),
        Some("quality") => quality_main(&args[1..]),
        _ => usage(),
    };
    if let Err(e) = result {
        eprintln!("zerocam-bench: error: {e:#}");
        std::process::exit(1);
    }
}

/// `--name value` from `args`.
fn opt<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn num<T: std::str::FromStr>(args: &[String], name: &str, default: Option<T>) -> anyhow::Result<T> {
    match opt(args, name) {
        Some(v) => v
            .parse()
            .ok()
            .with_context(|| format!("{name}: bad number {v:?}")),
        None => default.with_context(|| format!("{name} is required")),
    }
}

fn now_us() -> u64 {
    zerocam::frame::now_us()
}

// ---------------------------------------------------------------- frame --

fn frame_main(args: &[String]) -> anyhow::Result<()> {
    let size = opt(args, "--size").context("--size is required")?;
    let out = opt(args, "--out").context("--out is required")?;
    let (w, h) = zerocam::config::parse_size("--size", size).map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::write(out, zerocam_bench::natural_yuyv(w as usize, h as usize))
        .with_context(|| out.to_string())?;
    Ok(())
}

// -------------------------------------------------------------- quality --

/// PSNR in dB of `got` against `want` (same length).
fn psnr(got: &[u8], want: &[u8]) -> f64 {
    let se: f64 = got
        .iter()
        .zip(want)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum();
    let mse = se / got.len() as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-12)).log10()
}

/// Image quality and size of zerocam's encoder, `jpeg-encoder` and
/// libjpeg-turbo across qualities, on the natural-looking frame: each JPEG
/// is decoded to YUV by libjpeg-turbo (PSNR of Y and of Cb+Cr against the
/// source planes, no colour conversion in between) and to RGB by both
/// libjpeg-turbo and jpeg-decoder (their largest per-pixel difference: two
/// independent decoders agreeing on the picture). Prints a markdown table.
fn quality_main(args: &[String]) -> anyhow::Result<()> {
    use zerocam::encode::{RawFormat, RawImage, encode_raw, encode_reference};
    let size = opt(args, "--size").unwrap_or("640x480");
    let (w, h) = zerocam::config::parse_size("--size", size).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (w, h) = (w as usize, h as usize);
    anyhow::ensure!(
        w % 8 == 0 && h % 2 == 0,
        "--size: the width must be a multiple of 8"
    );
    let frame = zerocam_bench::natural_yuyv(w, h);
    let mut src = vec![0u8; w * h * 3 / 2];
    zerocam_bench::yuyv_to_i420(&frame, w, h, &mut src);
    let (src_y, src_c) = src.split_at(w * h);
    let img = RawImage {
        format: RawFormat::Yuyv,
        width: w as u32,
        height: h as u32,
        stride: w * 2,
        data: &frame,
    };
    println!(
        "| quality | encoder | bytes | size vs libjpeg-turbo | PSNR Y | Y vs libjpeg-turbo | PSNR Cb+Cr | decoders differ by at most |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for quality in [30u8, 40, 50, 60, 70, 80, 90, 95] {
        let mut turbo = zerocam_bench::Turbo::with_quality(w, h, quality)?;
        turbo.encode(&frame)?;
        let mut ours = Vec::new();
        encode_raw(&img, quality, None, &mut ours)?;
        let mut reference = Vec::new();
        encode_reference(&img, quality, None, &mut reference)?;
        let mut rows = Vec::new();
        for (name, jpeg) in [
            ("libjpeg-turbo", turbo.jpeg().to_vec()),
            ("zerocam's encoder", ours),
            ("jpeg-encoder", reference),
        ] {
            let yuv = turbojpeg::decompress_to_yuv(&jpeg).context("libjpeg-turbo decodes it")?;
            // align 4: rows of Y are w bytes, of Cb and Cr w/2 (w % 8 == 0).
            let (dy, dc) = yuv.pixels.split_at(w * h);
            let (py, pc) = (psnr(dy, src_y), psnr(&dc[..src_c.len()], src_c));
            let rgb = turbojpeg::decompress(&jpeg, turbojpeg::PixelFormat::RGB)?;
            let mut d = jpeg_decoder::Decoder::new(&jpeg[..]);
            let other = d.decode().context("jpeg-decoder decodes it")?;
            anyhow::ensure!(
                other.len() == rgb.pixels.len(),
                "{name}: decoders disagree on size"
            );
            let worst = rgb
                .pixels
                .iter()
                .zip(&other)
                .map(|(a, b)| a.abs_diff(*b))
                .max();
            rows.push((name, jpeg.len(), py, pc, worst.unwrap_or(0)));
        }
        let (tlen, tpy) = (rows[0].1 as f64, rows[0].2);
        for (name, len, py, pc, worst) in rows {
            println!(
                "| {quality} | {name} | {len} | {:+.1} % | {py:.2} dB | {:+.2} dB | {pc:.2} dB | {worst} |",
                (len as f64 / tlen - 1.0) * 100.0,
                py - tpy
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- instr --

fn instr_main(args: &[String]) -> anyhow::Result<()> {
    let what = opt(args, "--what").context("--what is required")?;
    let size = opt(args, "--size").unwrap_or("1280x720");
    let (w, h) = zerocam::config::parse_size("--size", size).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (w, h) = (w as usize, h as usize);
    let frames: usize = num(args, "--frames", None)?;
    let frame = zerocam_bench::natural_yuyv(w, h);
    let mut total = 0usize;
    match what {
        "zerocam" => {
            let mut e = zerocam_bench::Zerocam::new(w, h);
            for _ in 0..frames {
                total += e.encode(&frame)?;
            }
        }
        "reference" => {
            let mut e = zerocam_bench::Zerocam::reference(w, h);
            for _ in 0..frames {
                total += e.encode(&frame)?;
            }
        }
        "turbo" => {
            let mut e = zerocam_bench::Turbo::new(w, h)?;
            for _ in 0..frames {
                total += e.encode(&frame)?;
            }
        }
        "passthrough" => {
            // What the capture thread does per MJPEG frame: validate, check
            // for Huffman tables, insert the COM segment.
            let mut e = zerocam_bench::Zerocam::new(w, h);
            e.encode(&frame)?;
            let jpeg = e.jpeg().to_vec();
            let mut out = Vec::new();
            for seq in 0..frames as u64 {
                let meta = com::FrameMeta {
                    seq,
                    ts_us: now_us(),
                    size: None,
                };
                zerocam::encode::mjpeg::pass_through(&jpeg, &meta, &mut out)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                total += out.len();
            }
        }
        other => bail!("--what {other:?}: expected zerocam, reference, turbo or passthrough"),
    }
    println!("{frames} frames, {total} bytes");
    Ok(())
}

// ----------------------------------------------------------------- view --

/// What one viewer saw inside the window.
#[derive(Default)]
struct ViewerLog {
    frames: u64,
    bytes: u64,
    /// Frames the relay skipped for this viewer (seq gaps).
    gaps: u64,
    last_seq: Option<u64>,
    latencies_ms: Vec<f64>,
    connected: bool,
    error: Option<String>,
}

impl ViewerLog {
    fn record(&mut self, jpeg: &[u8], counting: bool) {
        let now = now_us();
        let Some(meta) = com::parse(jpeg) else {
            return;
        };
        if counting {
            self.frames += 1;
            self.bytes += jpeg.len() as u64;
            if let Some(last) = self.last_seq {
                self.gaps += meta.seq.saturating_sub(last + 1);
            }
            self.latencies_ms
                .push(now.saturating_sub(meta.ts_us) as f64 / 1000.0);
        }
        self.last_seq = Some(meta.seq);
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Ws,
    Mjpeg,
}

/// Every value of a repeatable `--name value`.
fn opts<'a>(args: &'a [String], name: &str) -> Vec<&'a str> {
    args.windows(2)
        .filter(|w| w[0] == name)
        .map(|w| w[1].as_str())
        .collect()
}

fn view_main(args: &[String]) -> anyhow::Result<()> {
    // Several --url: the viewers are spread over them in turn (the nodes
    // of a relay cluster).
    let urls: Vec<String> = opts(args, "--url")
        .into_iter()
        .map(str::to_string)
        .collect();
    anyhow::ensure!(!urls.is_empty(), "--url is required");
    let kind = match opt(args, "--kind") {
        Some("ws") => Kind::Ws,
        Some("mjpeg") => Kind::Mjpeg,
        _ => bail!("--kind must be ws or mjpeg"),
    };
    let viewers: usize = num(args, "--viewers", Some(1))?;
    let secs: f64 = num(args, "--secs", Some(10.0))?;
    let warmup: f64 = num(args, "--warmup", Some(2.0))?;
    let threads: usize = num(args, "--threads", Some(2))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    rt.block_on(view(urls, kind, viewers, secs, warmup))
}

/// Figures over a set of viewers, as JSON fields.
fn summary(logs: &[&ViewerLog], window: f64) -> String {
    let fps: Vec<f64> = logs.iter().map(|l| l.frames as f64 / window).collect();
    let lat: Vec<f64> = logs
        .iter()
        .flat_map(|l| l.latencies_ms.iter().copied())
        .collect();
    let bytes: u64 = logs.iter().map(|l| l.bytes).sum();
    let frames: u64 = logs.iter().map(|l| l.frames).sum();
    format!(
        "\"fps_mean\":{:.2},\"fps_min\":{:.2},\"fps_p10\":{:.2},\"fps_max\":{:.2},\"frames\":{frames},\
         \"mbyte_s\":{:.2},\"lat_p50_ms\":{:.1},\"lat_p99_ms\":{:.1},\"lat_max_ms\":{:.1}",
        fps.iter().sum::<f64>() / fps.len().max(1) as f64,
        percentile(&fps, 0.0),
        percentile(&fps, 10.0),
        percentile(&fps, 100.0),
        bytes as f64 / window / 1e6,
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        percentile(&lat, 100.0),
    )
}

async fn view(
    urls: Vec<String>,
    kind: Kind,
    n: usize,
    secs: f64,
    warmup: f64,
) -> anyhow::Result<()> {
    let mut targets = Vec::new();
    for url in &urls {
        let rest = url
            .strip_prefix("http://")
            .context("--url must start with http://")?;
        let (host, path) = rest.split_once('/').context("--url needs a path")?;
        targets.push((host.to_string(), path.to_string()));
    }
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let logs: Vec<Arc<Mutex<ViewerLog>>> = (0..n)
        .map(|_| Arc::new(Mutex::new(ViewerLog::default())))
        .collect();
    let mut tasks = Vec::new();
    for (i, log) in logs.iter().enumerate() {
        let (host, path) = targets[i % targets.len()].clone();
        let (log, counting, stop) = (log.clone(), counting.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let r = match kind {
                Kind::Ws => ws_viewer(&host, &path, &log, &counting, &stop).await,
                Kind::Mjpeg => mjpeg_viewer(&host, &path, &log, &counting, &stop).await,
            };
            if let Err(e) = r {
                log.lock().await.error = Some(format!("viewer {i}: {e:#}"));
            }
        }));
        // Do not SYN-flood the accept queue with 1000 connects at once.
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(warmup)).await;
    counting.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    println!("WINDOW START");
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    counting.store(false, Ordering::SeqCst);
    let window = t0.elapsed().as_secs_f64();
    println!("WINDOW END");
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        // Viewers notice `stop` on their next frame or read timeout.
        let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
    }
    let mut held = Vec::new();
    for l in &logs {
        held.push(l.lock().await);
    }
    let all: Vec<&ViewerLog> = held.iter().map(|g| &**g).collect();
    let gaps: u64 = all.iter().map(|l| l.gaps).sum();
    let connected = all.iter().filter(|l| l.connected).count();
    let errors: Vec<&String> = all.iter().filter_map(|l| l.error.as_ref()).collect();
    for e in errors.iter().take(3) {
        eprintln!("{e}");
    }
    // The same figures per URL (viewer i went to URL i mod the count).
    let per_url: Vec<String> = urls
        .iter()
        .enumerate()
        .map(|(u, url)| {
            let mine: Vec<&ViewerLog> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| i % urls.len() == u)
                .map(|(_, l)| *l)
                .collect();
            format!("{{\"url\":\"{url}\",{}}}", summary(&mine, window))
        })
        .collect();
    println!(
        "{{\"viewers\":{n},\"connected\":{connected},\"errors\":{},\"window_s\":{window:.3},\"gaps\":{gaps},{},\"per_url\":[{}]}}",
        errors.len(),
        summary(&all, window),
        per_url.join(",")
    );
    Ok(())
}

/// Read timeout per frame: a viewer that hears nothing this long gives up.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

async fn ws_viewer(
    host: &str,
    path: &str,
    log: &Mutex<ViewerLog>,
    counting: &AtomicBool,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let tcp = TcpStream::connect(host).await.context("connect")?;
    tcp.set_nodelay(true)?;
    let url = format!("ws://{host}/{path}/ws");
    let (mut ws, _) = tokio_tungstenite::client_async(url.as_str(), tcp)
        .await
        .context("websocket handshake")?;
    log.lock().await.connected = true;
    while !stop.load(Ordering::Relaxed) {
        let msg = match tokio::time::timeout(READ_TIMEOUT, ws.next()).await {
            Err(_) => bail!("no message for {READ_TIMEOUT:?}"),
            Ok(None) => bail!("relay closed the connection"),
            Ok(Some(m)) => m.context("read")?,
        };
        if let tokio_tungstenite::tungstenite::Message::Binary(b) = msg {
            log.lock()
                .await
                .record(&b, counting.load(Ordering::Relaxed));
        }
    }
    Ok(())
}

async fn mjpeg_viewer(
    host: &str,
    path: &str,
    log: &Mutex<ViewerLog>,
    counting: &AtomicBool,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let mut tcp = TcpStream::connect(host).await.context("connect")?;
    tcp.set_nodelay(true)?;
    // HTTP/1.0: the body comes close-delimited, not chunked.
    let req = format!("GET /{path}/mjpeg HTTP/1.0\r\nHost: {host}\r\n\r\n");
    tcp.write_all(req.as_bytes()).await?;
    let mut buf: Vec<u8> = Vec::with_capacity(512 * 1024);
    let mut chunk = vec![0u8; 256 * 1024];
    let mut headers_done = false;
    while !stop.load(Ordering::Relaxed) {
        let n = match tokio::time::timeout(READ_TIMEOUT, tcp.read(&mut chunk)).await {
            Err(_) => bail!("no data for {READ_TIMEOUT:?}"),
            Ok(r) => r.context("read")?,
        };
        if n == 0 {
            bail!("relay closed the connection");
        }
        buf.extend_from_slice(&chunk[..n]);
        if !headers_done {
            let Some(end) = find(&buf, b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
                bail!("relay answered {:?}", head.lines().next().unwrap_or(""));
            }
            buf.drain(..end + 4);
            headers_done = true;
            log.lock().await.connected = true;
        }
        // Parts: "--boundary\r\nheaders\r\n\r\n<Content-Length bytes>\r\n".
        while let Some(hend) = find(&buf, b"\r\n\r\n") {
            let part_head = String::from_utf8_lossy(&buf[..hend]).to_ascii_lowercase();
            let len: usize = part_head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .context("MJPEG part without Content-Length")?;
            if buf.len() < hend + 4 + len {
                break;
            }
            let jpeg = &buf[hend + 4..hend + 4 + len];
            log.lock()
                .await
                .record(jpeg, counting.load(Ordering::Relaxed));
            buf.drain(..hend + 4 + len);
            // The CRLF after the part is consumed with the next boundary line.
            while buf.starts_with(b"\r\n") {
                buf.drain(..2);
            }
        }
    }
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
