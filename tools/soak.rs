//! The soak behind `scripts/soak`: a real relay and real cameras (the
//! release `zerocam` binary) under a hostile, changing load, with each
//! process's memory and open files watched over time.
//!
//! - cameras: `steady` (pattern 320x240 @ 10 fps), `big` (640x480 @ 5 fps),
//!   `mjpeg` (pattern-mjpeg 320x240, the pass-through path; its viewers
//!   come and go, so the relay pauses and resumes it), `restarted`
//!   (SIGKILLed and started again every 20 s), and a camera that connects
//!   under a new id every 4 s (more ids than `server.max_cameras`);
//! - viewers: WebSocket viewers that stay, come and go, or stall (never
//!   read); MJPEG viewers that stay or stall; snapshot pollers on every
//!   camera, paused ones included.
//!
//! Every 5 s it samples RSS and open fds of the relay and of the long-lived
//! cameras; it prints a table (start after warm-up, each quarter, end,
//! slope per hour) and fails when a process's RSS grows past its bound
//! after warm-up, or its fds grow.
//!
//! usage: soak ZEROCAM_BIN MINUTES

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::Message;

/// RSS growth after warm-up that fails the soak, per process kind. The
/// relay holds at most `max_cameras` latest frames (16 × ≤ 100 KB here) and
/// per-connection buffers for a bounded number of viewers; allocator
/// fragmentation and tokio's lazily grown worker state take a few MiB more.
/// A camera holds one frame in its slot and the encoder's buffers, all
/// allocated in the first seconds.
const RELAY_GROWTH_KIB: u64 = 12 * 1024;
const CAMERA_GROWTH_KIB: u64 = 3 * 1024;
/// fds above the first quarter's highest count that mean a leak (the
/// relay's count moves with the viewers connected at the moment).
const FD_SLACK: i64 = 6;

struct Proc {
    name: String,
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(bin: &str, name: &str, args: &[&str], log: &str) -> Proc {
    let f = std::fs::File::create(log).expect("log file");
    let child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(f.try_clone().expect("log file"))
        .stderr(f)
        .env_remove("RUST_LOG")
        .spawn()
        .expect("spawn zerocam");
    Proc {
        name: name.to_string(),
        child,
    }
}

fn camera(bin: &str, relay: SocketAddr, id: &str, extra: &[&str], dir: &str) -> Proc {
    let url = format!("ws://{relay}/ingest/{id}");
    let mut args = vec![
        "stream",
        "--relay",
        &url,
        "--camera",
        id,
        "--token",
        "soak",
        "--stats-interval",
        "10",
    ];
    args.extend_from_slice(extra);
    spawn(bin, id, &args, &format!("{dir}/{id}.log"))
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn fds(pid: u32) -> Option<i64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as i64)
}

fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").ok()?;
    let mut all = Vec::new();
    s.read_to_end(&mut all).ok()?;
    let split = all.windows(4).position(|w| w == b"\r\n\r\n")?;
    let status = String::from_utf8_lossy(&all[..split])
        .split(' ')
        .nth(1)?
        .parse()
        .ok()?;
    Some((status, all[split + 4..].to_vec()))
}

fn metric_sum(addr: SocketAddr, prefix: &str) -> f64 {
    let Some((_, body)) = http_get(addr, "/metrics") else {
        return 0.0;
    };
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Shared counters of the load.
#[derive(Default)]
struct Load {
    ws_frames: AtomicU64,
    mjpeg_parts: AtomicU64,
    snapshots: AtomicU64,
    snapshots_503: AtomicU64,
}

/// A WebSocket viewer reading `frames` frames (forever when 0).
fn ws_view(addr: SocketAddr, id: &str, frames: u64, load: &Load, stop: &AtomicBool) {
    let Ok(s) = TcpStream::connect(addr) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(15)));
    let Ok((mut ws, _)) = tungstenite::client(format!("ws://{addr}/cameras/{id}/ws"), s) else {
        return;
    };
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) && (frames == 0 || n < frames) {
        match ws.read() {
            Ok(Message::Binary(_)) => {
                n += 1;
                load.ws_frames.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
    let _ = ws.close(None);
}

/// A viewer that connects with a tiny receive buffer and never reads: the
/// relay must close it after `viewer_write_timeout`.
fn stall(addr: SocketAddr, path: &str, ws: bool, stop: &AtomicBool) {
    let Ok(sock) = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None) else {
        return;
    };
    let _ = sock.set_recv_buffer_size(4096);
    if sock.connect(&addr.into()).is_err() {
        return;
    }
    let mut s: TcpStream = sock.into();
    let held = if ws {
        tungstenite::client(format!("ws://{addr}{path}"), s)
            .ok()
            .map(|(w, _)| w.into_inner())
    } else {
        write!(s, "GET {path} HTTP/1.0\r\n\r\n").ok().map(|_| s)
    };
    // Hold it, unread, for 30 s: the relay must give up on it well before.
    if held.is_some() {
        nap(stop, Duration::from_secs(30));
    }
    drop(held);
}

fn mjpeg_view(addr: SocketAddr, id: &str, load: &Load, stop: &AtomicBool) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(15)));
    if write!(s, "GET /cameras/{id}/mjpeg HTTP/1.0\r\n\r\n").is_err() {
        return;
    }
    let mut r = BufReader::new(s);
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            let Ok(n) = v.trim().parse::<usize>() else {
                return;
            };
            let mut blank = String::new();
            let _ = r.read_line(&mut blank);
            let mut body = vec![0u8; n];
            if r.read_exact(&mut body).is_err() {
                return;
            }
            load.mjpeg_parts.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs `f` in a loop on its own thread until `stop`.
fn forever(
    stop: &Arc<AtomicBool>,
    f: impl Fn(&AtomicBool) + Send + 'static,
) -> thread::JoinHandle<()> {
    let stop = stop.clone();
    thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            f(&stop);
            thread::sleep(Duration::from_millis(100));
        }
    })
}

/// Waits up to `d`, returning early on `stop`.
fn nap(stop: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end && !stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(100));
    }
}

struct Series {
    name: String,
    /// (seconds since start, RSS KiB, fds)
    samples: Vec<(f64, u64, i64)>,
    growth_bound: u64,
}

fn slope_per_hour(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx * 3600.0 }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(bin), Some(minutes)) = (
        args.first(),
        args.get(1).and_then(|m| m.parse::<f64>().ok()),
    ) else {
        eprintln!("usage: soak ZEROCAM_BIN MINUTES");
        return ExitCode::from(2);
    };
    let bin = bin.clone();
    let total = Duration::from_secs_f64(minutes * 60.0);
    // Warm-up: a tenth of the run, 20 s to 3 min.
    let warmup = (total / 10).clamp(Duration::from_secs(20), Duration::from_secs(180));
    let dir = std::env::var("SOAK_DIR").unwrap_or_else(|_| "artifacts/soak".into());
    let _ = std::fs::create_dir_all(&dir);
    let cfg = format!("{dir}/relay.toml");
    std::fs::write(
        &cfg,
        "[server]\ntokens = [\"soak\"]\nmax_cameras = 16\nforget_offline_after = 20\n\
         pause_after = 2\nviewer_write_timeout = 3\nsnapshot_wait = 3\n",
    )
    .expect("relay config");
    let relay = spawn(
        &bin,
        "relay",
        &["relay", "--listen", "127.0.0.1:0", "--config", &cfg],
        &format!("{dir}/relay.log"),
    );
    // The relay prints its address.
    let addr: SocketAddr = {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(format!("{dir}/relay.log")).unwrap_or_default();
            if let Some(a) = text
                .lines()
                .find_map(|l| l.split("relay listening on http://").nth(1))
                .and_then(|a| a.trim_end_matches('/').parse().ok())
            {
                break a;
            }
            if Instant::now() > end {
                eprintln!("soak: the relay did not start; see {dir}/relay.log");
                return ExitCode::FAILURE;
            }
            thread::sleep(Duration::from_millis(50));
        }
    };
    eprintln!(
        "soak: relay on {addr}, {minutes} min, warm-up {} s, logs in {dir}/",
        warmup.as_secs()
    );
    let steady = camera(
        &bin,
        addr,
        "steady",
        &["--source", "pattern", "--size", "320x240", "--fps", "10"],
        &dir,
    );
    let big = camera(
        &bin,
        addr,
        "big",
        &["--source", "pattern", "--size", "640x480", "--fps", "5"],
        &dir,
    );
    let mjpeg = camera(
        &bin,
        addr,
        "mjpeg",
        &[
            "--source",
            "pattern-mjpeg",
            "--size",
            "320x240",
            "--fps",
            "15",
        ],
        &dir,
    );
    let restarted = Arc::new(Mutex::new(Some(camera(
        &bin,
        addr,
        "restarted",
        &["--source", "pattern", "--size", "160x120", "--fps", "15"],
        &dir,
    ))));

    let stop = Arc::new(AtomicBool::new(false));
    let load = Arc::new(Load::default());
    let mut threads = Vec::new();
    // Persistent viewers.
    for (id, n) in [("steady", 3), ("big", 1)] {
        for _ in 0..n {
            let l = load.clone();
            threads.push(forever(&stop, move |s| ws_view(addr, id, 0, &l, s)));
        }
    }
    for _ in 0..2 {
        let l = load.clone();
        threads.push(forever(&stop, move |s| mjpeg_view(addr, "big", &l, s)));
    }
    // Viewers that come and go (the mjpeg camera pauses in between).
    {
        let l = load.clone();
        threads.push(forever(&stop, move |s| {
            ws_view(addr, "steady", 20, &l, s);
            nap(s, Duration::from_secs(1));
        }));
        let l = load.clone();
        threads.push(forever(&stop, move |s| {
            ws_view(addr, "mjpeg", 40, &l, s);
            nap(s, Duration::from_secs(6));
        }));
    }
    // Stalled viewers, WebSocket and MJPEG.
    threads.push(forever(&stop, move |s| {
        stall(addr, "/cameras/steady/ws", true, s)
    }));
    threads.push(forever(&stop, move |s| {
        stall(addr, "/cameras/big/mjpeg", false, s)
    }));
    // Snapshots of every camera, paused ones included.
    {
        let l = load.clone();
        threads.push(forever(&stop, move |s| {
            for id in ["steady", "big", "mjpeg", "restarted"] {
                match http_get(addr, &format!("/cameras/{id}/snapshot.jpg")) {
                    Some((200, _)) => {
                        l.snapshots.fetch_add(1, Ordering::Relaxed);
                    }
                    Some((503, _)) => {
                        l.snapshots_503.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
            nap(s, Duration::from_secs(1));
        }));
    }
    // A camera under a new id every 4 s.
    {
        let (bin, dir) = (bin.clone(), dir.clone());
        let n = AtomicU64::new(0);
        threads.push(forever(&stop, move |s| {
            let i = n.fetch_add(1, Ordering::Relaxed);
            let id = format!("oneshot{i}");
            let cam = camera(
                &bin,
                addr,
                &id,
                &["--source", "pattern", "--size", "160x120", "--fps", "5"],
                &dir,
            );
            nap(s, Duration::from_secs(4));
            drop(cam);
            let _ = std::fs::remove_file(format!("{dir}/{id}.log"));
        }));
    }
    // The restarted camera: SIGKILL and start again every 20 s.
    {
        let (bin, dir, cam) = (bin.clone(), dir.clone(), restarted.clone());
        threads.push(forever(&stop, move |s| {
            nap(s, Duration::from_secs(20));
            if s.load(Ordering::Relaxed) {
                return;
            }
            if let Some(mut old) = cam.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = old.child.kill();
                let _ = old.child.wait();
            }
            *cam.lock().unwrap_or_else(|p| p.into_inner()) = Some(camera(
                &bin,
                addr,
                "restarted",
                &["--source", "pattern", "--size", "160x120", "--fps", "15"],
                &dir,
            ));
        }));
    }

    // Sampling.
    let watched: Vec<&Proc> = vec![&relay, &steady, &big, &mjpeg];
    let mut series: Vec<Series> = watched
        .iter()
        .map(|p| Series {
            name: p.name.clone(),
            samples: vec![],
            growth_bound: if p.name == "relay" {
                RELAY_GROWTH_KIB
            } else {
                CAMERA_GROWTH_KIB
            },
        })
        .collect();
    let t0 = Instant::now();
    let mut died = Vec::new();
    while t0.elapsed() < total {
        thread::sleep(Duration::from_secs(5));
        let t = t0.elapsed().as_secs_f64();
        for (p, s) in watched.iter().zip(series.iter_mut()) {
            match (rss_kib(p.child.id()), fds(p.child.id())) {
                (Some(r), Some(f)) => s.samples.push((t, r, f)),
                _ => {
                    if !died.contains(&p.name) {
                        died.push(p.name.clone());
                    }
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let drops = metric_sum(addr, "zerocam_drops_total{");
    let stalled = metric_sum(addr, "zerocam_viewers_stalled_total{");
    let frames_out = metric_sum(addr, "zerocam_frames_out_total{");
    let forgotten = metric_sum(addr, "zerocam_cameras_forgotten_total");
    let refused = metric_sum(addr, "zerocam_camera_refused_total{");
    let known = metric_sum(addr, "zerocam_cameras_known");
    for t in threads {
        let _ = t.join();
    }

    // The table.
    let w = warmup.as_secs_f64();
    println!();
    println!(
        "soak: {minutes} min; samples every 5 s; warm-up {w:.0} s (excluded from bounds and slopes)"
    );
    println!(
        "{:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11} {:>8} {:>5} {:>5} {:>6}",
        "process",
        "RSS@warm",
        "RSS@25%",
        "RSS@50%",
        "RSS@75%",
        "RSS@end",
        "KiB/hour",
        "bound",
        "fd@w",
        "fd@e",
        "result"
    );
    let mut failed = !died.is_empty();
    for s in &series {
        let after: Vec<_> = s.samples.iter().filter(|x| x.0 >= w).collect();
        if after.len() < 2 {
            println!("{:<10} too few samples after warm-up", s.name);
            failed = true;
            continue;
        }
        let at = |q: f64| {
            let t = w + (total.as_secs_f64() - w) * q;
            after
                .iter()
                .min_by(|a, b| (a.0 - t).abs().total_cmp(&(b.0 - t).abs()))
                .map_or(0, |x| x.1)
        };
        let start = after[0].1;
        let max_rss = after.iter().map(|x| x.1).max().unwrap_or(0);
        let slope = slope_per_hour(&after.iter().map(|x| (x.0, x.1 as f64)).collect::<Vec<_>>());
        let quarter = (after.len() / 4).max(1);
        let fd_first = after[..quarter].iter().map(|x| x.2).max().unwrap_or(0);
        let fd_end = after.last().map_or(0, |x| x.2);
        let rss_ok = max_rss <= start + s.growth_bound;
        let fd_ok = fd_end <= fd_first + FD_SLACK;
        let ok = rss_ok && fd_ok;
        failed |= !ok;
        println!(
            "{:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>+11.0} {:>8} {:>5} {:>5} {:>6}",
            s.name,
            start,
            at(0.25),
            at(0.5),
            at(0.75),
            after.last().map_or(0, |x| x.1),
            slope,
            format!("+{}", s.growth_bound),
            fd_first,
            fd_end,
            if ok {
                "ok"
            } else if !rss_ok {
                "RSS"
            } else {
                "FDS"
            }
        );
    }
    println!(
        "delivered: {} WebSocket frames, {} MJPEG parts, {} snapshots ({} answered 503: paused camera too slow to wake)",
        load.ws_frames.load(Ordering::Relaxed),
        load.mjpeg_parts.load(Ordering::Relaxed),
        load.snapshots.load(Ordering::Relaxed),
        load.snapshots_503.load(Ordering::Relaxed)
    );
    println!(
        "relay: {frames_out:.0} frames out, {drops:.0} drops counted, {stalled:.0} stalled viewers closed, \
         {forgotten:.0} cameras forgotten, {refused:.0} refused (full), {known:.0} known at the end"
    );
    if !died.is_empty() {
        println!("DIED during the soak: {}", died.join(", "));
    }
    if load.ws_frames.load(Ordering::Relaxed) == 0 || load.mjpeg_parts.load(Ordering::Relaxed) == 0
    {
        println!("no frames delivered: the load did not run");
        failed = true;
    }
    if stalled < 1.0 {
        println!("no stalled viewer was closed: the write timeout did not work");
        failed = true;
    }
    drop(restarted);
    println!("soak: {}", if failed { "FAILED" } else { "ok" });
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
