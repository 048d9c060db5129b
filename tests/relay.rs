//! End-to-end tests of `zerocam relay` (the real binary) over loopback.
//! A test camera speaks docs/protocol.md's raw dialect with tungstenite; viewers
//! use WebSocket, MJPEG and snapshots, and every JPEG is decoded.
#![cfg(feature = "relay")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tungstenite::Message;
use tungstenite::protocol::frame::coding::CloseCode;

use common::relay::*;
use common::{Zerocam, bin, decode};
use zerocam::wire::com;

/// Starts a thread that sends frames from `cam` until `stop`; counts them.
fn stream_in_background(
    mut cam: Cam,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    frame: impl Fn(u64) -> Vec<u8> + Send + 'static,
    interval: Duration,
) -> std::thread::JoinHandle<Cam> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            cam.seq += 1;
            let f = frame(cam.seq);
            cam.send_binary(f);
            sent.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(interval);
        }
        cam
    })
}

/// A camera `id` streaming big, incompressible 320x240 frames (they fill a
/// stalled viewer's socket buffers fast) every `interval` in the
/// background; returns its thread, its stop flag and its sent count.
fn stream_noise(
    addr: SocketAddr,
    id: &str,
    interval: Duration,
) -> (
    std::thread::JoinHandle<Cam>,
    Arc<AtomicBool>,
    Arc<AtomicU64>,
) {
    let frames: Vec<Vec<u8>> = (0..4).map(|i| jpeg(320, 240, i, true)).collect();
    assert!(frames[0].len() > 50_000, "{}", frames[0].len());
    let cam = Cam::connect(addr, id, None);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let streamer = stream_in_background(
        cam,
        stop.clone(),
        sent.clone(),
        move |seq| with_com(&frames[seq as usize % 4], seq, 320, 240),
        interval,
    );
    (streamer, stop, sent)
}

#[test]
fn camera_to_websocket_mjpeg_and_snapshot_viewers() {
    let relay = Relay::start(&["--token", "t1", "--token", "t2"], None);
    let cam = Cam::connect(relay.addr, "porch", Some("t2"));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let jpegs: Vec<Vec<u8>> = (0..4).map(|i| jpeg(64, 48, i * 60, false)).collect();
    let streamer = stream_in_background(
        cam,
        stop.clone(),
        sent.clone(),
        move |seq| with_com(&jpegs[seq as usize % 4], seq, 64, 48),
        Duration::from_millis(20),
    );

    // WebSocket viewer: decodable JPEGs with increasing COM seq.
    let mut viewer = ws_connect(relay.addr, "/cameras/porch/ws", None).unwrap();
    let mut last_seq = 0;
    for _ in 0..10 {
        let Message::Binary(data) = viewer.read().unwrap() else {
            panic!("viewer messages are binary")
        };
        assert_eq!(decode(&data), (64, 48));
        let meta = com::parse(&data).expect("COM kept");
        assert!(meta.seq > last_seq, "{} after {last_seq}", meta.seq);
        last_seq = meta.seq;
    }

    // MJPEG: multipart parts with Content-Length, each a JPEG.
    let mut s = TcpStream::connect(relay.addr).unwrap();
    s.set_read_timeout(Some(HANG)).unwrap();
    write!(s, "GET /cameras/porch/mjpeg HTTP/1.0\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: multipart/x-mixed-replace; boundary=zerocamframe"),
        "{head}"
    );
    for _ in 0..5 {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert_eq!(line, "--zerocamframe\r\n");
        let mut len = None;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = Some(v.trim().parse::<usize>().unwrap());
            }
        }
        let mut body = vec![0; len.expect("Content-Length per part")];
        r.read_exact(&mut body).unwrap();
        assert_eq!(decode(&body), (64, 48));
        let mut crlf = [0; 2];
        r.read_exact(&mut crlf).unwrap();
        assert_eq!(&crlf, b"\r\n");
    }

    // Snapshot, /cameras, /healthz.
    let (status, head, body) = http_get(relay.addr, "/cameras/porch/snapshot.jpg");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: image/jpeg")
    );
    assert_eq!(decode(&body), (64, 48));
    let (status, _, body) = http_get(relay.addr, "/cameras");
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let cam = &list[0];
    assert_eq!(cam["id"], "porch");
    assert_eq!(cam["online"], true);
    assert_eq!(cam["width"], 64);
    assert_eq!(cam["height"], 48);
    assert_eq!(cam["version"], "test");
    assert!(cam["viewers"].as_u64().unwrap() >= 1, "{cam}");
    assert!(cam["connected_since"].as_f64().unwrap() > 1.6e9);
    assert!(cam["last_frame_age_ms"].is_u64());
    assert!(cam["drops"].is_object());
    assert_eq!(http_get(relay.addr, "/healthz").0, 200);

    // Unknown camera: a clear 404.
    let (status, _, body) = http_get(relay.addr, "/cameras/nope/snapshot.jpg");
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("camera `nope` is unknown"));

    // Metrics: frames in/out, latency histogram from the COM ts.
    assert!(relay.metric("zerocam_frames_in_total{camera=\"porch\"}") >= 10.0);
    assert!(relay.metric("zerocam_frames_out_total{camera=\"porch\"}") >= 16.0);
    assert_eq!(relay.metric("zerocam_cameras"), 1.0);
    assert!(relay.metric("zerocam_latency_seconds_count") >= 16.0);

    stop.store(true, Ordering::Relaxed);
    let mut cam = streamer.join().unwrap();
    cam.ws.close(None).unwrap();
    // Offline camera: snapshot says so.
    let end = Instant::now() + HANG;
    loop {
        let (status, _, body) = http_get(relay.addr, "/cameras/porch/snapshot.jpg");
        if status == 404 {
            assert!(String::from_utf8_lossy(&body).contains("offline"));
            break;
        }
        assert!(Instant::now() < end, "camera never went offline");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn auth_is_checked_before_the_upgrade() {
    let dir = TempDir::new("secret");
    let secret = dir.0.join("secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef\n").unwrap();
    let config = format!(
        "[server]\ntokens = [\"shared\"]\nsecret_file = \"{}\"\n[server.cameras.porch]\ntoken = \"porch-only\"\n",
        secret.display()
    );
    let relay = Relay::start(&[], Some(&config));
    let a = relay.addr;
    assert_eq!(
        http_status(ws_connect(a, "/ingest/porch", None).unwrap_err()),
        401
    );
    assert_eq!(
        http_status(ws_connect(a, "/ingest/porch?token=wrong", None).unwrap_err()),
        403
    );
    assert_eq!(
        http_status(ws_connect(a, "/ingest/garden", Some("porch-only")).unwrap_err()),
        403
    );
    ws_connect(a, "/ingest/porch", Some("porch-only")).unwrap();
    ws_connect(a, "/ingest/garden?token=shared", None).unwrap();

    // Signed tokens from `zerocam token`.
    let out = Command::new(bin())
        .args(["token", "--camera", "shed", "--ttl", "1h", "--secret-file"])
        .arg(&secret)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    ws_connect(a, &format!("/ingest/shed?token={token}"), None).unwrap();
    ws_connect(a, "/ingest/shed", Some(&token)).unwrap();
    assert_eq!(
        http_status(ws_connect(a, &format!("/ingest/barn?token={token}"), None).unwrap_err()),
        403
    );
    assert!(relay.metric("zerocam_auth_failures_total") >= 4.0);
    assert!(relay.logged("refused, 403"));
}

#[test]
fn a_second_connection_replaces_the_first() {
    let relay = Relay::start(&[], None);
    let mut first = Cam::connect(relay.addr, "cam", None);
    first.send_frame();
    let mut second = Cam::connect(relay.addr, "cam", None);
    second.send_frame();
    // The first is closed with a reason.
    let end = Instant::now() + HANG;
    let frame = loop {
        match first.ws.read() {
            Ok(Message::Close(f)) => break f.expect("close frame with a reason"),
            Ok(_) => {}
            Err(e) => panic!("expected a close frame, got {e}"),
        }
        assert!(Instant::now() < end);
    };
    assert_eq!(frame.code, CloseCode::Library(4000));
    assert!(frame.reason.contains("replaced"), "{}", frame.reason);
    // The second keeps streaming.
    for _ in 0..3 {
        second.send_frame();
    }
    let (status, _, body) = http_get(relay.addr, "/cameras/cam/snapshot.jpg");
    assert_eq!(status, 200);
    assert_eq!(com::parse(&body).unwrap().seq, 4);
    assert_eq!(relay.metric("zerocam_camera_replaced_total"), 1.0);
    assert_eq!(relay.metric("zerocam_cameras"), 1.0);
}

#[test]
fn a_stalled_viewer_does_not_slow_the_camera_or_a_fast_viewer() {
    let relay = Relay::start(&[], None);
    let (streamer, stop, sent) = stream_noise(relay.addr, "busy", Duration::from_millis(30));

    // The stalled viewer: a small receive buffer, and it never reads.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&relay.addr.into()).unwrap();
    let stream: TcpStream = sock.into();
    stream.set_read_timeout(Some(HANG)).unwrap();
    let (_stalled, _) =
        tungstenite::client(format!("ws://{}/cameras/busy/ws", relay.addr), stream).unwrap();

    let mut fast = ws_connect(relay.addr, "/cameras/busy/ws", None).unwrap();
    let mut received = 0u64;
    let mut warm_rss = 0;
    let mut sent_at_start = 0;
    let start = Instant::now();
    let mut last_seq = 0;
    while start.elapsed() < Duration::from_secs(8) {
        let Message::Binary(data) = fast.read().unwrap() else {
            continue;
        };
        let seq = com::parse(&data).unwrap().seq;
        assert!(seq > last_seq);
        last_seq = seq;
        if warm_rss == 0 && start.elapsed() > Duration::from_secs(2) {
            warm_rss = relay.rss_kib();
            sent_at_start = sent.load(Ordering::Relaxed);
            received = 0;
        }
        received += 1;
    }
    let sent_total = sent.load(Ordering::Relaxed) - sent_at_start;
    let end_rss = relay.rss_kib();
    stop.store(true, Ordering::Relaxed);
    streamer.join().unwrap();
    eprintln!(
        "camera sent {sent_total}, fast viewer got {received}; relay RSS {warm_rss} → {end_rss} KiB"
    );
    assert!(sent_total >= 50, "the camera kept its rate: {sent_total}");
    assert!(
        received * 10 >= sent_total * 8,
        "fast viewer got {received} of {sent_total}"
    );
    assert!(
        end_rss < warm_rss + 16 * 1024,
        "relay memory grew from {warm_rss} to {end_rss} KiB"
    );
    assert!(relay.metric("zerocam_viewers{camera=\"busy\"}") >= 2.0);
}

#[test]
fn unwatched_camera_is_paused_and_resumed_by_a_viewer() {
    let relay = Relay::start(&[], Some("[server]\npause_after = 0.3\n"));
    let mut cam = Cam::connect(relay.addr, "idle", None);
    cam.send_frame();
    cam.wait_text("\"pause\"");
    let (_, _, body) = http_get(relay.addr, "/cameras");
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list[0]["paused"], true);
    assert_eq!(relay.metric("zerocam_camera_paused{camera=\"idle\"}"), 1.0);
    // A paused camera keeps heartbeating; the relay keeps it.
    cam.ws
        .send(Message::text(r#"{"type":"heartbeat"}"#))
        .unwrap();
    let mut viewer = ws_connect(relay.addr, "/cameras/idle/ws", None).unwrap();
    cam.wait_text("\"resume\"");
    cam.send_frame();
    // The viewer gets the stored frame, then the fresh one.
    let mut seqs = Vec::new();
    while !seqs.contains(&2) {
        if let Message::Binary(d) = viewer.read().unwrap() {
            seqs.push(com::parse(&d).unwrap().seq);
        }
    }
    drop(viewer);
    // Without viewers again: paused again after the grace period.
    cam.texts.clear();
    cam.wait_text("\"pause\"");
}

#[test]
fn garbage_is_rejected_counted_and_never_forwarded() {
    let relay = Relay::start(
        &[],
        Some("[server]\nmax_consecutive_rejects = 4\nmax_frame_bytes = 2048\n"),
    );
    let mut cam = Cam::connect(relay.addr, "junk", None);
    cam.send_frame();
    cam.send_binary(b"not a jpeg".to_vec());
    cam.send_binary(vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 1, 2]); // truncated
    // A segment that runs past the end, in a frame that does end with EOI.
    cam.send_binary(vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 1, 2, 0xFF, 0xD9]);
    cam.send_frame();
    let (status, _, body) = http_get(relay.addr, "/cameras/junk/snapshot.jpg");
    assert_eq!(status, 200);
    assert_eq!(decode(&body), (64, 48));
    assert_eq!(com::parse(&body).unwrap().seq, 2);
    let m = |r: &str| {
        relay.metric(&format!(
            "zerocam_rejected_frames_total{{camera=\"junk\",reason=\"{r}\"}}"
        ))
    };
    assert_eq!(m("no_soi"), 1.0);
    assert_eq!(m("no_eoi"), 1.0);
    assert_eq!(m("bad_segment"), 1.0);
    assert_eq!(
        relay.metric("zerocam_drops_total{camera=\"junk\",reason=\"rejected\"}"),
        3.0
    );
    assert_eq!(
        relay.metric("zerocam_frames_in_total{camera=\"junk\"}"),
        2.0
    );

    // Only garbage: closed after 4 in a row.
    for _ in 0..3 {
        cam.send_binary(vec![0u8; 100]);
    }
    cam.ws.send(Message::binary(vec![1u8; 100])).unwrap();
    let end = Instant::now() + HANG;
    let frame = loop {
        match cam.ws.read() {
            Ok(Message::Close(f)) => break f.unwrap(),
            Ok(_) => {}
            Err(e) => panic!("expected close, got {e}"),
        }
        assert!(Instant::now() < end);
    };
    assert_eq!(frame.code, CloseCode::Invalid);
    assert!(frame.reason.contains("invalid frames"), "{}", frame.reason);
    assert_eq!(relay.metric("zerocam_camera_garbage_closed_total"), 1.0);
}

#[test]
fn sigterm_closes_cameras_and_exits_cleanly() {
    let mut relay = Relay::start(&[], None);
    let mut cam = Cam::connect(relay.addr, "c", None);
    cam.send_frame();
    let _viewer = ws_connect(relay.addr, "/cameras/c/ws", None).unwrap();
    relay.proc.signal(libc::SIGTERM);
    let frame = loop {
        match cam.ws.read() {
            Ok(Message::Close(f)) => break f.unwrap(),
            Ok(_) => {}
            Err(e) => panic!("expected close, got {e}"),
        }
    };
    assert_eq!(frame.code, CloseCode::Away);
    let status = relay
        .proc
        .wait_exit(HANG)
        .expect("relay did not exit on SIGTERM");
    assert!(status.success(), "{status}");
    assert!(relay.logged("relay stopped"));
    assert!(
        !relay.logged("did not close"),
        "graceful shutdown timed out"
    );
}

#[test]
fn check_config_validates_the_server_table() {
    let dir = TempDir::new("check");
    let p = dir.0.join("z.toml");
    std::fs::write(
        &p,
        "camera = \"c\"\n[source]\ndevice = \"pattern\"\n[server]\nlistne = \"x\"\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .arg("check-config")
        .arg(&p)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.listne"), "{err}");
    let check = |text: &str| {
        std::fs::write(&p, text).unwrap();
        let out = Command::new(bin())
            .arg("check-config")
            .arg(&p)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    // What `stream` would refuse, check-config refuses: no relay here.
    let (ok, out) = check(
        "camera = \"c\"\n[source]\ndevice = \"pattern\"\n[server]\nlisten = \"127.0.0.1:1\"\n",
    );
    assert!(!ok && out.contains("relay.url"), "{out}");
    let (ok, out) = check(
        "camera = \"c\"\n[source]\ndevice = \"pattern\"\n[relay]\nurl = \"ws://h/x\"\n[server]\nlisten = \"127.0.0.1:1\"\n",
    );
    assert!(ok, "{out}");
    // An empty file does not start a camera either.
    let (ok, out) = check("");
    assert!(
        !ok && (out.contains("relay.url") || out.contains("source.device")),
        "{out}"
    );
    // A relay-only file is a relay's config: ok.
    let (ok, out) = check("[server]\nlisten = \"127.0.0.1:1\"\nmax_cameras = 8\n");
    assert!(ok && out.contains("relay settings only"), "{out}");
    // Type errors name the key, in plain words.
    let (ok, out) = check("[source]\nfps = \"fifteen\"\n");
    assert!(!ok, "{out}");
    assert!(
        out.contains("source.fps: expected a whole number in 1..=120, found \"fifteen\""),
        "{out}"
    );
}

#[test]
fn demo_streams_the_pattern_through_its_relay() {
    let mut cmd = Command::new(bin());
    cmd.args([
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--size",
        "320x240",
        "--fps",
        "10",
    ]);
    let mut demo = Zerocam::spawn(cmd, "demo");
    let line = demo
        .wait_log("zerocam demo: open http://", HANG)
        .expect("demo prints its URL");
    let addr: SocketAddr = line
        .split("open http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .parse()
        .unwrap();
    let (status, _, page) = http_get(addr, "/");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&page).contains("createObjectURL"));
    let end = Instant::now() + HANG;
    let mut viewer = loop {
        match ws_connect(addr, "/cameras/demo/ws", None) {
            Ok(v) => break v,
            Err(_) if Instant::now() < end => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("demo camera never appeared: {e}"),
        }
    };
    let mut last: Option<u64> = None;
    for _ in 0..5 {
        let Message::Binary(d) = viewer.read().unwrap() else {
            continue;
        };
        assert_eq!(decode(&d), (320, 240));
        let meta = com::parse(&d).unwrap();
        assert!(
            last.is_none_or(|l| meta.seq > l),
            "{} after {last:?}",
            meta.seq
        );
        last = Some(meta.seq);
    }
    // The settings panel works out of the box from this machine: no admin
    // token to configure, and the camera confirms the change.
    let (st, text) = http_send(
        addr,
        "POST",
        "/cameras/demo/settings",
        None,
        r#"{"quality":55}"#,
    );
    assert_eq!(st, 200, "{text}");
    assert!(text.contains(r#""quality":55"#), "{text}");
    let (st, text) = http_send(
        addr,
        "POST",
        "/cameras/demo/settings",
        None,
        r#"{"controls":{"hflip":"yes"}}"#,
    );
    assert_eq!(st, 400, "{text}");
    demo.signal(libc::SIGTERM);
    let status = demo.wait_exit(HANG).expect("demo did not exit on SIGTERM");
    assert!(status.success(), "{status}");
}

#[test]
fn an_oversized_frame_closes_with_1009_and_is_counted() {
    let relay = Relay::start(&[], Some("[server]\nmax_frame_bytes = 100000\n"));
    let mut cam = Cam::connect(relay.addr, "big", None);
    cam.send_frame();
    // A 10 MB binary frame: only its header and a little payload are sent;
    // the relay must refuse it from the header, with a close frame.
    let mut head = vec![0x82, 0x80 | 127];
    head.extend_from_slice(&10_000_000u64.to_be_bytes());
    head.extend_from_slice(&[1, 2, 3, 4]); // mask key
    head.extend_from_slice(&[0u8; 4096]);
    cam.ws.get_mut().write_all(&head).unwrap();
    let f = wait_close(&mut cam.ws);
    assert_eq!(u16::from(f.code), 1009, "{f:?}");
    assert!(f.reason.contains("max_frame_bytes"), "{}", f.reason);
    assert_eq!(
        relay.metric("zerocam_rejected_frames_total{camera=\"big\",reason=\"too_large\"}"),
        1.0
    );
    // A whole frame just over the limit (below the WebSocket slack) too.
    let mut cam = Cam::connect(relay.addr, "big", None);
    let big = jpeg(640, 480, 1, true);
    assert!(big.len() > 100_000, "{}", big.len());
    cam.ws.send(Message::binary(big)).unwrap();
    let f = wait_close(&mut cam.ws);
    assert_eq!(u16::from(f.code), 1009, "{f:?}");
    assert_eq!(
        relay.metric("zerocam_rejected_frames_total{camera=\"big\",reason=\"too_large\"}"),
        2.0
    );
}

#[test]
fn a_silent_camera_times_out_even_while_viewers_come_and_go() {
    let relay = Relay::start(
        &[],
        Some("[server]\ncamera_timeout = 2\npause_when_unwatched = false\n"),
    );
    let mut cam = Cam::connect(relay.addr, "mute", None);
    cam.send_frame();
    let t0 = Instant::now();
    // Viewers arriving and leaving every 200 ms must not postpone the
    // camera's deadline.
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (stop, addr) = (stop.clone(), relay.addr);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(mut v) = ws_connect(addr, "/cameras/mute/ws", None) {
                    let _ = v.read();
                    let _ = v.close(None);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let f = wait_close(&mut cam.ws);
    let took = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    assert_eq!(u16::from(f.code), 1001);
    assert!(f.reason.contains("nothing received"), "{}", f.reason);
    assert!(
        took < Duration::from_secs(6),
        "closed after {took:?}, not ~2 s"
    );
}

#[test]
fn camera_ids_are_bounded_forgotten_and_refused_when_full() {
    let relay = Relay::start(
        &[],
        Some("[server]\nmax_cameras = 3\nforget_offline_after = 1\n"),
    );
    let ids = |addr| -> Vec<String> {
        let (_, _, body) = http_get(addr, "/cameras");
        let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    };
    let mut a = Cam::connect(relay.addr, "a", None);
    let _b = Cam::connect(relay.addr, "b", None);
    let _c = Cam::connect(relay.addr, "c", None);
    a.send_frame();
    // All three online: a fourth id is refused with 503, counted.
    let e = ws_connect(relay.addr, "/ingest/d", None).unwrap_err();
    assert_eq!(http_status(e), 503);
    assert_eq!(
        relay.metric("zerocam_camera_refused_total{reason=\"max_cameras\"}"),
        1.0
    );
    // A known id still connects (and replaces itself).
    let _c2 = Cam::connect(relay.addr, "c", None);
    // A viewer waits on an offline camera: it is kept past the timeout.
    let mut viewer = ws_connect(relay.addr, "/cameras/a/ws", None).unwrap();
    let _ = viewer.read();
    a.ws.close(None).unwrap();
    drop(a);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        ids(relay.addr).contains(&"a".to_string()),
        "a viewer keeps it"
    );
    drop(viewer);
    // Unwatched and offline: forgotten after forget_offline_after.
    eventually("camera a forgotten", || {
        !ids(relay.addr).contains(&"a".to_string())
    });
    assert!(relay.metric("zerocam_cameras_forgotten_total") >= 1.0);
    // Many one-shot ids never grow the relay past its cap.
    for i in 0..40 {
        if let Ok(mut ws) = ws_connect(relay.addr, &format!("/ingest/oneshot{i}"), None) {
            let _ = ws.close(None);
            let _ = ws.read();
        }
    }
    assert!(ids(relay.addr).len() <= 3, "{:?}", ids(relay.addr));
    assert!(relay.metric("zerocam_cameras_known") <= 3.0);
}

#[test]
fn text_messages_are_capped_and_rejects_are_logged_not_spammed() {
    let relay = Relay::start(&[], Some("[server]\nmax_consecutive_rejects = 1000\n"));
    let mut cam = Cam::connect(relay.addr, "noisy", None);
    // A 100 KiB text message is refused (counted) and the link stays up.
    let pad = "x".repeat(100 << 10);
    cam.ws
        .send(Message::text(format!(
            r#"{{"type":"stats","pad":"{pad}"}}"#
        )))
        .unwrap();
    // A hello with a huge field is kept clipped.
    let long = "v".repeat(10_000);
    cam.ws
        .send(Message::text(format!(
            r#"{{"type":"hello","version":"{long}","width":64,"height":48}}"#
        )))
        .unwrap();
    cam.send_frame();
    assert_eq!(
        relay.metric("zerocam_bad_messages_total{camera=\"noisy\"}"),
        1.0
    );
    let (_, _, body) = http_get(relay.addr, "/cameras");
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list[0]["version"].as_str().unwrap().len(), 64);
    // 200 garbage frames in a burst: one log line, with its count to come.
    for _ in 0..200 {
        cam.send_binary(b"garbage".to_vec());
    }
    assert_eq!(
        relay.metric("zerocam_rejected_frames_total{camera=\"noisy\",reason=\"no_soi\"}"),
        200.0
    );
    cam.ws.close(None).unwrap();
    let _ = cam.ws.read();
    eventually("the camera's last line", || relay.logged("noisy: 199 more"));
    let lines = relay.proc.lines_with("camera noisy: 1 frame(s) rejected");
    assert_eq!(lines.len(), 1, "{lines:?}");
}

/// Reads one MJPEG part: its headers (lower-case names) and body.
fn mjpeg_part(r: &mut impl BufRead) -> (std::collections::HashMap<String, String>, Vec<u8>) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "--zerocamframe\r\n");
    let mut headers = std::collections::HashMap::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        let (k, v) = line.split_once(':').unwrap();
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let len: usize = headers["content-length"].parse().unwrap();
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    let mut crlf = [0; 2];
    r.read_exact(&mut crlf).unwrap();
    (headers, body)
}

/// Opens an MJPEG stream with a small receive buffer; returns the reader
/// positioned at the first part.
fn mjpeg_viewer(addr: SocketAddr, id: &str, rcvbuf: usize) -> BufReader<TcpStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(rcvbuf).unwrap();
    sock.connect(&addr.into()).unwrap();
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(HANG)).unwrap();
    write!(s, "GET /cameras/{id}/mjpeg HTTP/1.0\r\n\r\n").unwrap();
    let mut r = BufReader::with_capacity(1024, s);
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            return r;
        }
    }
}

#[test]
fn snapshots_of_a_paused_camera_are_fresh_and_carry_their_capture_time() {
    let relay = Relay::start(
        &[],
        Some("[server]\npause_after = 0.2\nsnapshot_wait = 1.5\n"),
    );
    let mut cam = Cam::connect(relay.addr, "still", None);
    cam.send_frame();
    cam.wait_text("\"pause\"");
    // The camera is paused: a snapshot wakes it and waits for a new frame.
    let answer = std::thread::spawn(move || {
        cam.texts.clear();
        cam.wait_text("\"resume\"");
        cam.send_frame();
        cam
    });
    let (status, head, body) = http_get(relay.addr, "/cameras/still/snapshot.jpg");
    let mut cam = answer.join().unwrap();
    assert_eq!(status, 200, "{head}");
    let meta = com::parse(&body).unwrap();
    assert_eq!(
        meta.seq, 2,
        "the frame from before the pause is not current"
    );
    let head = head.to_ascii_lowercase();
    let ts = format!(
        "x-timestamp: {}.{:06}",
        meta.ts_us / 1_000_000,
        meta.ts_us % 1_000_000
    );
    assert!(head.contains(&ts), "{head}\nwant {ts}");
    assert!(head.contains("last-modified: "), "{head}");
    assert!(head.contains(" gmt"), "{head}");
    // Paused again, and this time the camera does not answer: 503, said.
    cam.texts.clear();
    cam.wait_text("\"pause\"");
    let t0 = Instant::now();
    let (status, _, body) = http_get(relay.addr, "/cameras/still/snapshot.jpg");
    assert_eq!(status, 503);
    assert!(
        String::from_utf8_lossy(&body).contains("no fresh frame"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(t0.elapsed() >= Duration::from_millis(1400));
    // MJPEG parts carry the same headers.
    let mut streaming = Cam::connect(relay.addr, "live", None);
    streaming.send_frame();
    let mut r = mjpeg_viewer(relay.addr, "live", 1 << 16);
    let (h, body) = mjpeg_part(&mut r);
    let meta = com::parse(&body).unwrap();
    assert_eq!(
        h["x-timestamp"],
        format!("{}.{:06}", meta.ts_us / 1_000_000, meta.ts_us % 1_000_000)
    );
    assert!(h["last-modified"].ends_with(" GMT"), "{h:?}");
}

#[test]
fn a_slow_mjpeg_viewer_is_one_frame_behind_and_a_stalled_one_is_closed() {
    let relay = Relay::start(&[], Some("[server]\nviewer_write_timeout = 1.5\n"));
    let (streamer, stop, sent) = stream_noise(relay.addr, "mj", Duration::from_millis(40));
    eventually("frames flowing", || sent.load(Ordering::Relaxed) > 5);

    // A slow reader: about a third of the camera's bytes per second.
    let mut slow = mjpeg_viewer(relay.addr, "mj", 16 << 10);
    let mut behind = Vec::new();
    for _ in 0..12 {
        let (_, body) = mjpeg_part(&mut slow);
        let newest = sent.load(Ordering::Relaxed);
        behind.push(newest.saturating_sub(com::parse(&body).unwrap().seq));
        // One part per three camera frame intervals.
        std::thread::sleep(Duration::from_millis(120));
    }
    eprintln!("frames behind the camera: {behind:?}");
    // In steady state: the part being read and at most one more in the
    // pipe (the kernels' small queues), three camera frames each; not
    // hyper's queue of five parts (15 frames and more).
    let steady = behind[behind.len() - 4..]
        .iter()
        .max()
        .copied()
        .unwrap_or(0);
    assert!(
        steady <= 8,
        "a slow viewer runs {steady} frames behind: {behind:?}"
    );
    drop(slow);

    // A stalled viewer: reads the head, then nothing. Closed after the
    // write timeout, counted, and no longer watching.
    let stalled = mjpeg_viewer(relay.addr, "mj", 4 << 10);
    let out0 = relay.metric("zerocam_frames_out_total{camera=\"mj\"}");
    eventually("the stalled viewer is closed", || {
        relay.metric("zerocam_viewers_stalled_total{camera=\"mj\"}") >= 1.0
    });
    let out1 = relay.metric("zerocam_frames_out_total{camera=\"mj\"}");
    eprintln!("frames counted out while stalled: {}", out1 - out0);
    assert!(
        out1 - out0 <= 3.0,
        "parts a stalled viewer never read were counted as sent: {}",
        out1 - out0
    );
    eventually("no viewers left", || {
        relay.metric("zerocam_viewers{camera=\"mj\"}") == 0.0
    });
    drop(stalled);
    stop.store(true, Ordering::Relaxed);
    streamer.join().unwrap();
}

/// An HTTP request with a body; status and body.
fn http_send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(HANG)).unwrap();
    let auth = bearer.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&all[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (
        status,
        String::from_utf8_lossy(&all[split + 4..]).to_string(),
    )
}

/// The luma of pixel (x, y) of a snapshot.
fn luma_at(jpeg: &[u8], x: usize, y: usize) -> u8 {
    let mut d = jpeg_decoder::Decoder::new(jpeg);
    let px = d.decode().unwrap();
    let w = d.info().unwrap().width as usize;
    let i = (y * w + x) * 3;
    // Rough luma from RGB.
    ((px[i] as u32 * 3 + px[i + 1] as u32 * 6 + px[i + 2] as u32) / 10) as u8
}

#[test]
fn camera_settings_through_the_api_need_admin_and_take_effect() {
    let relay = Relay::start(
        &[],
        Some("[server]\npause_after = 0.5\n[server.admin]\ntokens = [\"adm\"]\n"),
    );
    let url = format!("ws://{}/ingest/set", relay.addr);
    let _cam = Zerocam::stream(&[
        "--relay", &url, "--camera", "set", "--size", "160x120", "--fps", "10",
    ]);
    let get = || -> serde_json::Value {
        match http_get(relay.addr, "/cameras/set/settings") {
            (200, _, body) => serde_json::from_slice(&body).unwrap(),
            _ => serde_json::Value::Null, // not connected yet
        }
    };
    eventually("the camera reports its settings", || {
        get()["settings"]["ranges"]["hflip"].is_object()
    });
    let s = get();
    assert_eq!(s["settings"]["fps"], 10);
    assert_eq!(s["settings"]["controls"]["vflip"], false);
    let post = |token: Option<&str>, body: &str| {
        http_send(relay.addr, "POST", "/cameras/set/settings", token, body)
    };
    // Changing needs the admin's token; reading does not. Refusals name
    // the admin's credentials, not a viewer's.
    let (st, text) = post(None, r#"{"fps":5}"#);
    assert_eq!(st, 401, "{text}");
    assert!(text.starts_with("admin credentials required"), "{text}");
    let (st, text) = post(Some("viewer"), r#"{"fps":5}"#);
    assert_eq!(st, 403, "{text}");
    assert!(text.starts_with("admin token not accepted"), "{text}");
    // Bad fields are refused, naming the field.
    for (body, words) in [
        (r#"{"fps":0}"#, "fps: 0 is out of range (1..=120)"),
        (
            r#"{"fps":"fast"}"#,
            "fps: expected a whole number in 1..=120",
        ),
        (r#"{"quality":"high"}"#, "quality"),
        (r#"{"paused":1}"#, "paused: expected true or false"),
        (
            r#"{"controls":{"brightness":500}}"#,
            "controls.brightness: 500 is out of range (-100..=100)",
        ),
        (
            r#"{"controls":{"zoom":1}}"#,
            "controls.zoom: the camera has no such control",
        ),
        // Values of the wrong type, refused here rather than in the log.
        (
            r#"{"controls":{"hflip":"yes"}}"#,
            "controls.hflip: \"yes\" is not true or false",
        ),
        (
            r#"{"controls":{"brightness":"bright"}}"#,
            "controls.brightness: \"bright\" is not an integer in -100..=100",
        ),
        (r#"{"bogus":1}"#, "unknown field `bogus`"),
        (r#"{}"#, "nothing to change"),
        ("not json", "not JSON"),
    ] {
        let (st, text) = post(Some("adm"), body);
        assert_eq!(st, 400, "{body}: {text}");
        assert!(text.contains(words), "{body}: {text}");
    }
    // fps: the answer is the camera's own, and the measured rate follows.
    let (st, text) = post(Some("adm"), r#"{"fps":3}"#);
    assert_eq!(st, 200, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["settings"]["fps"], 3, "{v}");
    let mut viewer = ws_connect(relay.addr, "/cameras/set/ws", None).unwrap();
    // Count frames over 3 s: 3 fps gives about 9; 10 fps would give 30.
    let _ = viewer.read();
    let t0 = Instant::now();
    let mut n = 0;
    while t0.elapsed() < Duration::from_secs(3) {
        if let Ok(Message::Binary(_)) = viewer.read() {
            n += 1;
        }
    }
    assert!((6..=12).contains(&n), "{n} frames in 3 s at 3 fps");
    // hflip: the image follows (the pattern's bars are white on the left).
    let (_, _, before) = http_get(relay.addr, "/cameras/set/snapshot.jpg");
    let (st, text) = post(Some("adm"), r#"{"controls":{"hflip":true}}"#);
    assert_eq!(st, 200, "{text}");
    assert!(text.contains(r#""hflip":true"#), "{text}");
    let _ = viewer.read();
    let (_, _, after) = http_get(relay.addr, "/cameras/set/snapshot.jpg");
    let (l0, l1) = (luma_at(&before, 8, 40), luma_at(&after, 8, 40));
    assert!(
        l0 > 120 && l1 < 60,
        "left edge luma {l0} → {l1}: not mirrored"
    );
    // An explicit pause holds while a viewer watches, until an explicit resume.
    let (st, text) = post(Some("adm"), r#"{"paused":true}"#);
    assert_eq!(st, 200, "{text}");
    assert!(text.contains(r#""paused_by":"user""#), "{text}");
    let (_, _, body) = http_get(relay.addr, "/cameras");
    assert!(String::from_utf8_lossy(&body).contains(r#""paused_by":"user""#));
    viewer
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut during = 0;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(2) {
        if let Ok(Message::Binary(_)) = viewer.read() {
            during += 1;
        }
    }
    assert!(during <= 1, "{during} frames while paused by the user");
    let (st, _) = post(Some("adm"), r#"{"paused":false}"#);
    assert_eq!(st, 200);
    viewer.get_ref().set_read_timeout(Some(HANG)).unwrap();
    assert!(
        matches!(viewer.read(), Ok(Message::Binary(_))),
        "frames again"
    );
    // Counted per camera.
    assert!(relay.metric("zerocam_settings_changes_total{camera=\"set\"}") >= 4.0);
    assert_eq!(
        relay.metric("zerocam_settings_rejected_total{camera=\"set\",reason=\"bad_request\"}"),
        11.0
    );
    assert_eq!(
        relay.metric("zerocam_settings_rejected_total{camera=\"set\",reason=\"unauthorized\"}"),
        1.0
    );
    // Unknown and offline cameras: 404.
    assert_eq!(
        http_send(
            relay.addr,
            "POST",
            "/cameras/nope/settings",
            Some("adm"),
            r#"{"fps":5}"#
        )
        .0,
        404
    );
}

#[test]
fn admin_credentials_win_beside_a_viewer_token() {
    // The page adds the viewer's ?token= to its URLs; the admin's token in
    // the header must still be seen (and either place is the admin's).
    let relay = Relay::start(
        &[],
        Some("[server.viewers]\ntokens = [\"view\"]\n[server.admin]\ntokens = [\"adm\"]\n"),
    );
    let mut cam = Cam::connect(relay.addr, "both", None);
    cam.send_frame();
    for (path, bearer) in [
        ("/cameras/both/settings?token=view", Some("adm")),
        ("/cameras/both/settings?token=adm", Some("view")),
        ("/cameras/both/settings?token=adm", None),
    ] {
        // This test camera never confirms: 504 means the request passed auth.
        let (st, text) = http_send(relay.addr, "POST", path, bearer, r#"{"fps":5}"#);
        assert_eq!(st, 504, "{path} {bearer:?}: {text}");
    }
    let (st, text) = http_send(
        relay.addr,
        "POST",
        "/cameras/both/settings?token=view",
        None,
        r#"{"fps":5}"#,
    );
    assert_eq!(st, 403, "{text}");
    assert!(text.starts_with("admin token not accepted"), "{text}");
}

#[test]
fn a_viewers_first_frame_is_never_one_from_before_a_pause() {
    let relay = Relay::start(&[], Some("[server]\npause_after = 0.2\n"));
    let mut cam = Cam::connect(relay.addr, "old", None);
    cam.send_frame();
    cam.wait_text("\"pause\"");
    // Paused for lack of viewers, holding frame 1. A new MJPEG viewer
    // wakes it and its first part is the frame captured after that.
    let answer = std::thread::spawn(move || {
        cam.texts.clear();
        cam.wait_text("\"resume\"");
        cam.send_frame();
        cam
    });
    let mut r = mjpeg_viewer(relay.addr, "old", 1 << 16);
    let (_, body) = mjpeg_part(&mut r);
    let mut cam = answer.join().unwrap();
    assert_eq!(
        com::parse(&body).unwrap().seq,
        2,
        "MJPEG: an old first frame"
    );
    drop(r);
    // Again for a WebSocket viewer.
    cam.texts.clear();
    cam.wait_text("\"pause\"");
    let answer = std::thread::spawn(move || {
        cam.texts.clear();
        cam.wait_text("\"resume\"");
        cam.send_frame();
        cam
    });
    let mut viewer = ws_connect(relay.addr, "/cameras/old/ws", None).unwrap();
    let Message::Binary(d) = viewer.read().unwrap() else {
        panic!("not a frame")
    };
    let _cam = answer.join().unwrap();
    assert_eq!(
        com::parse(&d).unwrap().seq,
        3,
        "WebSocket: an old first frame"
    );
}

#[test]
fn a_snapshot_of_a_camera_paused_by_a_user_says_so_at_once() {
    let relay = Relay::start(
        &[],
        Some("[server]\nsnapshot_wait = 5\n[server.admin]\ntokens = [\"adm\"]\n"),
    );
    let mut cam = Cam::connect(relay.addr, "shy", None);
    cam.send_frame();
    // This test camera does not confirm (504), but the user's pause stands.
    let (st, text) = http_send(
        relay.addr,
        "POST",
        "/cameras/shy/settings",
        Some("adm"),
        r#"{"paused":true}"#,
    );
    assert_eq!(st, 504, "{text}");
    cam.wait_text("\"pause\"");
    let t0 = Instant::now();
    let (status, _, body) = http_get(relay.addr, "/cameras/shy/snapshot.jpg");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("paused by a user"), "{body}");
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "waited for a paused camera"
    );
}

#[test]
fn settings_changes_are_refused_without_admin_and_time_out_without_an_answer() {
    let relay = Relay::start(&[], None);
    let mut cam = Cam::connect(relay.addr, "quiet", None);
    cam.send_frame();
    let (st, text) = http_send(
        relay.addr,
        "POST",
        "/cameras/quiet/settings",
        Some("x"),
        r#"{"fps":5}"#,
    );
    assert_eq!(st, 403);
    assert!(text.contains("[server.admin]"), "{text}");
    let relay = Relay::start(&[], Some("[server.admin]\ntokens = [\"adm\"]\n"));
    let mut cam = Cam::connect(relay.addr, "quiet", None);
    cam.send_frame();
    // This test camera never answers with settings: 504 after a few seconds.
    let t0 = Instant::now();
    let (st, text) = http_send(
        relay.addr,
        "POST",
        "/cameras/quiet/settings",
        Some("adm"),
        r#"{"fps":5}"#,
    );
    assert_eq!(st, 504, "{text}");
    assert!(t0.elapsed() >= Duration::from_secs(4));
    // The command did reach the camera.
    cam.wait_text(r#""type":"set""#);
    assert_eq!(
        relay.metric("zerocam_settings_rejected_total{camera=\"quiet\",reason=\"timeout\"}"),
        1.0
    );
}

#[test]
fn config_errors_fit_a_serial_console_and_say_what_waits_for_the_camera() {
    let dir = TempDir::new("console");
    let p = dir.0.join("z.toml");
    let check = |text: &str| {
        std::fs::write(&p, text).unwrap();
        let out = Command::new(bin())
            .arg("check-config")
            .arg(&p)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for line in text.lines() {
            assert!(
                !common::too_long(line),
                "over {} columns: {line}",
                common::MAX_LOG_LINE
            );
        }
        (out.status.success(), text)
    };
    let base = "camera = \"c\"\n[relay]\nurl = \"ws://127.0.0.1:9/ingest/c\"\n";
    for (extra, words) in [
        (
            "[source]\nfps = \"fifteen\"\n",
            "source.fps: expected a whole number in 1..=120",
        ),
        (
            "[source]\nfps = 0\n",
            "source.fps: 0 is out of range (1..=120)",
        ),
        ("[source]\nquality = 101\n", "source.quality"),
        ("[source]\nsize = \"big\"\n", "source.size"),
        ("[source]\nformat = \"H264\"\n", "source.format"),
        ("[source]\nfsp = 5\n", "fsp"),
        ("[relay]\nwindow = 100\n", "relay.window"),
        ("[backoff]\nbase = 5.0\nmax = 1.0\n", "backoff.max"),
        ("[led]\npin = 99\n", "led.pin"),
        (
            "[source]\ndevice = \"pattern\"\n[source.controls]\nbrightness = 500\n",
            "source.controls.brightness: 500 is out of range (-100..=100)",
        ),
        (
            "[source]\ndevice = \"pattern\"\n[source.controls]\nhflip = \"yes\"\n",
            "source.controls.hflip: \"yes\" is not true or false",
        ),
        (
            "[source]\ndevice = \"pattern\"\n[source.controls]\nzoom = 1\n",
            "source.controls.zoom: no such control",
        ),
        (
            "[source]\ndevice = \"exec:rpicam-vid -o -\"\n[source.controls]\nhflip = true\n",
            "no image controls",
        ),
        (
            "[server]\nmax_cameras = \"lots\"\n",
            "server.max_cameras: expected a whole number in 1..=100000",
        ),
    ] {
        // base ends in [relay]: keys of that table go on; the source is
        // the pattern unless the case names one.
        let extra = match extra.strip_prefix("[source]\n") {
            Some(rest) if !rest.starts_with("device") => {
                format!("[source]\ndevice = \"pattern\"\n{rest}")
            }
            _ if !extra.contains("[source]") => format!("[source]\ndevice = \"pattern\"\n{extra}"),
            _ => extra.to_string(),
        };
        let text = match extra.strip_prefix("[source]\ndevice = \"pattern\"\n[relay]\n") {
            Some(keys) => format!("{base}{keys}[source]\ndevice = \"pattern\"\n"),
            None => format!("{base}{extra}"),
        };
        let (ok, out) = check(&text);
        assert!(!ok, "{extra}: {out}");
        assert!(out.contains(words), "{extra}: {out}");
    }
    // A device's controls: checked when it opens, and check-config says so.
    let (ok, out) = check(&format!(
        "{base}[source]\ndevice = \"/dev/video0\"\n[source.controls]\nbrightness = 500\n"
    ));
    assert!(ok, "{out}");
    assert!(out.contains("checked when the camera opens"), "{out}");
}

#[test]
fn a_relay_says_which_camera_parts_of_its_config_it_ignores() {
    let relay = Relay::start(
        &[],
        Some("camera = \"porch\"\n[source]\nfps = 5\n[server]\nmax_cameras = 8\n"),
    );
    let line = relay
        .proc
        .wait_log("config: ignoring", HANG)
        .expect("one line naming what it ignores");
    assert!(line.contains("camera, [source]"), "{line}");
}
