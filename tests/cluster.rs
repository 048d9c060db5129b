//! Relays clustered over NATS, end to end: real `zerocam relay` nodes, a
//! real `nats-server` started here on free loopback ports (scripts/test
//! installs it; without it these tests fail, they do not pass), real
//! cameras, WebSocket viewers that decode every frame.
#![cfg(feature = "relay")]

mod common;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::Message;

use common::relay::*;
use common::{Zerocam, decode, temp_path};

/// A `nats-server` on loopback ports of its own (killed on drop).
struct Nats {
    proc: Option<std::process::Child>,
    port: u16,
    monitor: u16,
    config: std::path::PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Nats {
    /// With max_payload above the relay's default server.max_frame_bytes
    /// (4 MiB), as the README says to set it.
    fn start() -> Nats {
        Nats::with_max_payload(8 << 20)
    }

    fn with_max_payload(bytes: usize) -> Nats {
        let (port, monitor) = (free_port(), free_port());
        let config = temp_path("nats.conf");
        std::fs::write(
            &config,
            format!("listen: 127.0.0.1:{port}\nhttp: 127.0.0.1:{monitor}\nmax_payload: {bytes}\n"),
        )
        .unwrap();
        let mut n = Nats {
            proc: None,
            port,
            monitor,
            config,
        };
        n.restart();
        n
    }

    /// Starts the server (again, on the same ports) and waits until it
    /// takes connections.
    fn restart(&mut self) {
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&self.config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect(
                "nats-server is not installed (scripts/test installs it: apt install nats-server)",
            );
        self.proc = Some(child);
        eventually("nats-server listens", || {
            TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.proc.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Bytes the server has received from the client named `name`.
    fn in_bytes_from(&self, name: &str) -> u64 {
        let addr: SocketAddr = format!("127.0.0.1:{}", self.monitor).parse().unwrap();
        let (status, _, body) = http_get(addr, "/connz?limit=1024");
        assert_eq!(status, 200);
        let v: Value = serde_json::from_slice(&body).unwrap();
        v["connections"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["name"] == name)
            .map(|c| c["in_bytes"].as_u64().unwrap_or(0))
            .sum()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.config);
    }
}

/// A relay node named `node` in the cluster behind `nats`.
fn node(nats: &Nats, node: &str) -> Relay {
    Relay::start(
        &["--cluster", &nats.url()],
        Some(&format!(
            "[server]\npause_after = 1\n[server.cluster]\nnode = \"{node}\"\npresence_timeout = 2\n[server.admin]\ntokens = [\"adm\"]\n"
        )),
    )
}

/// A pattern camera streaming to the relays `to`, in order.
fn camera(id: &str, to: &[&Relay]) -> Zerocam {
    let cfg = temp_path("cam.toml");
    std::fs::write(&cfg, "[backoff]\nbase = 0.2\nmax = 1.0\n").unwrap();
    let mut args = vec![
        "--size".to_string(),
        "320x240".into(),
        "--fps".into(),
        "10".into(),
        "--camera".into(),
        id.into(),
        "--stats-interval".into(),
        "1".into(),
        "--config".into(),
        cfg.to_string_lossy().into_owned(),
    ];
    for r in to {
        args.push("--relay".into());
        args.push(format!("ws://{}/ingest/{id}", r.addr));
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    Zerocam::stream(&a)
}

/// `/cameras` of a node: (id, node, online) of each.
fn listing(r: &Relay) -> BTreeSet<(String, String, bool)> {
    let (status, _, body) = http_get(r.addr, "/cameras");
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap_or("").to_string(),
                c["node"].as_str().unwrap_or("").to_string(),
                c["online"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

fn entry(r: &Relay, id: &str) -> Value {
    let (_, _, body) = http_get(r.addr, "/cameras");
    let v: Value = serde_json::from_slice(&body).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

/// A WebSocket viewer in the background: every frame decoded, its seq kept.
struct Viewer {
    seqs: Arc<Mutex<Vec<u64>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Viewer {
    fn open(r: &Relay, id: &str) -> Viewer {
        let mut ws =
            ws_connect(r.addr, &format!("/cameras/{id}/ws"), None).expect("viewer connects");
        ws.get_mut()
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let seqs = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seqs.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match ws.read() {
                    Ok(Message::Binary(b)) => {
                        let _ = decode(&b);
                        s.lock().unwrap().push(common::meta(&b).seq);
                    }
                    Ok(_) => {}
                    Err(e) if common::read_timed_out(&e) => {}
                    Err(_) => break,
                }
            }
            let _ = ws.close(None);
        });
        Viewer {
            seqs,
            stop,
            thread: Some(thread),
        }
    }

    fn frames(&self) -> usize {
        self.seqs.lock().unwrap().len()
    }

    /// Waits for `n` more frames than now.
    fn more(&self, n: usize, what: &str) {
        let start = self.frames();
        eventually(what, || self.frames() >= start + n);
    }

    /// Frames missing between the ones seen (seq gaps, each camera
    /// connection's seq counted from its own start).
    fn gaps(&self) -> u64 {
        let s = self.seqs.lock().unwrap();
        s.windows(2)
            .map(|w| w[1].checked_sub(w[0]).map_or(0, |d| d.saturating_sub(1)))
            .sum()
    }

    fn close(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.gaps()
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Every frame drop a node counts for camera `id` and for the cluster.
fn counted_drops(r: &Relay, id: &str) -> f64 {
    let reasons = [
        "backpressure",
        "disconnected",
        "too_large",
        "stale",
        "slow_consumer",
        "invalid",
    ];
    let cluster: f64 = reasons
        .iter()
        .map(|x| r.metric(&format!("zerocam_cluster_drops_total{{reason=\"{x}\"}}")))
        .sum();
    cluster
        + r.metric(&format!(
            "zerocam_drops_total{{camera=\"{id}\",reason=\"viewer_skipped\"}}"
        ))
}

fn post(r: &Relay, path: &str, token: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(r.addr).unwrap();
    s.set_read_timeout(Some(HANG)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    let status = all.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
    let body = all.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn three_nodes_share_a_camera_its_viewers_and_its_settings() {
    let nats = Nats::start();
    let (a, b, c) = (node(&nats, "a"), node(&nats, "b"), node(&nats, "c"));
    let _cam = camera("c1", &[&a]);
    // Every node lists the camera, held by a.
    let want: BTreeSet<_> = [("c1".to_string(), "a".to_string(), true)].into();
    for r in [&a, &b, &c] {
        eventually("every node lists c1 on a", || listing(r) == want);
    }
    // A viewer on a only: the camera streams, and none of its frames go
    // over NATS (the server's own byte count for node a stays at presence).
    let local = Viewer::open(&a, "c1");
    local.more(10, "frames at a's own viewer");
    let before = nats.in_bytes_from("zerocam relay a");
    local.more(20, "2 s more frames at a's own viewer");
    let quiet = nats.in_bytes_from("zerocam relay a") - before;
    eprintln!("NATS bytes from node a in 2 s with no remote viewer: {quiet}");
    assert!(
        quiet < 30_000,
        "{quiet} bytes from node a with no remote viewer"
    );
    assert_eq!(a.metric("zerocam_cluster_frames_sent_total"), 0.0);
    // Viewers on b and c: the frames cross, and the same measure sees them.
    let vb = Viewer::open(&b, "c1");
    let vc = Viewer::open(&c, "c1");
    vb.more(10, "frames at b's viewer");
    vc.more(10, "frames at c's viewer");
    let before = nats.in_bytes_from("zerocam relay a");
    vb.more(20, "2 s more frames at b's viewer");
    let busy = nats.in_bytes_from("zerocam relay a") - before;
    eprintln!("NATS bytes from node a in 2 s with two remote viewers: {busy}");
    assert!(
        busy > 3 * quiet.max(10_000),
        "{busy} bytes with remote viewers, {quiet} without"
    );
    assert!(a.metric("zerocam_cluster_frames_sent_total") > 0.0);
    assert_eq!(a.metric("zerocam_cluster_remote_viewers"), 2.0);
    // Viewers counted cluster-wide: a's own viewer goes, b's and c's keep
    // the camera streaming past pause_after (1 s).
    let _ = local.close();
    std::thread::sleep(Duration::from_millis(1500));
    vc.more(10, "c's viewer still gets frames with no viewer on a");
    assert_eq!(entry(&a, "c1")["paused"], false);
    // Seq gaps at b and c are only where drops were counted.
    let (gb, gc) = (vb.close(), vc.close());
    let camera_gaps = a.metric("zerocam_drops_total{camera=\"c1\",reason=\"camera_seq_gap\"}");
    let a_drops = counted_drops(&a, "c1");
    assert!(
        gb as f64 <= camera_gaps + a_drops + counted_drops(&b, "c1"),
        "b saw {gb} gaps"
    );
    assert!(
        gc as f64 <= camera_gaps + a_drops + counted_drops(&c, "c1"),
        "c saw {gc} gaps"
    );
    // Nobody watches: paused; a viewer on c wakes it.
    eventually("c1 paused with no viewer in the cluster", || {
        entry(&a, "c1")["paused_by"] == "no_viewers"
    });
    let vc = Viewer::open(&c, "c1");
    vc.more(5, "a viewer on c resumes the camera");
    // Settings through c reach the camera on a; b reads them back.
    let (status, body) = post(&c, "/cameras/c1/settings", "adm", r#"{"fps":4}"#);
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["settings"]["fps"], 4, "{v}");
    let (status, _, body) = http_get(b.addr, "/cameras/c1/settings");
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["settings"]["fps"], 4, "{v}");
    // Without the admin token, c refuses it itself.
    assert_eq!(
        post(&c, "/cameras/c1/settings", "nope", r#"{"fps":5}"#).0,
        403
    );
    drop(vc);
    // All three nodes agree, and count three nodes.
    for r in [&a, &b, &c] {
        assert_eq!(listing(r), want);
        assert_eq!(r.metric("zerocam_cluster_nodes"), 3.0);
        assert_eq!(r.metric("zerocam_cluster_connected"), 1.0);
    }
}

#[test]
fn a_camera_moves_to_a_live_node_when_its_node_dies() {
    let nats = Nats::start();
    let (a, b, c) = (node(&nats, "a"), node(&nats, "b"), node(&nats, "c"));
    let cam = camera("c2", &[&a, &b]);
    eventually("c on a", || {
        listing(&c).contains(&("c2".into(), "a".into(), true))
    });
    let v = Viewer::open(&c, "c2");
    v.more(10, "frames at c's viewer from a");
    a.proc.signal(libc::SIGKILL);
    let killed = Instant::now();
    // The camera tries b next; c's viewer, still connected, sees its
    // frames again.
    v.more(10, "frames at c's viewer again, from b");
    let took = killed.elapsed();
    eprintln!("frames again at c {took:?} after a died");
    assert!(took < Duration::from_secs(15), "{took:?}");
    eventually("b and c list c2 on b", || {
        [&b, &c]
            .iter()
            .all(|r| listing(r) == [("c2".to_string(), "b".to_string(), true)].into())
    });
    eventually("a dropped out after the presence timeout", || {
        b.metric("zerocam_cluster_nodes") == 2.0 && c.metric("zerocam_cluster_nodes") == 2.0
    });
    assert!(
        cam.wait_log(&format!("connected to ws://{}/ingest/c2", b.addr), HANG)
            .is_some()
    );
    let _ = v.close();
}

#[test]
fn without_nats_each_node_serves_its_own_and_the_cluster_heals() {
    let mut nats = Nats::start();
    let (a, b) = (node(&nats, "a"), node(&nats, "b"));
    let _cam = camera("c3", &[&a]);
    eventually("b lists c3", || {
        listing(&b).contains(&("c3".into(), "a".into(), true))
    });
    let local = Viewer::open(&a, "c3");
    let remote = Viewer::open(&b, "c3");
    remote.more(5, "frames at b");
    nats.kill();
    eventually("a notices NATS is gone", || {
        a.metric("zerocam_cluster_connected") == 0.0
    });
    local.more(20, "a's own viewer keeps its frames without NATS");
    assert_eq!(a.proc.lines_with("lost NATS").len(), 1, "logged once");
    nats.restart();
    eventually("both nodes back on NATS", || {
        a.metric("zerocam_cluster_connected") == 1.0 && b.metric("zerocam_cluster_connected") == 1.0
    });
    eventually("b lists c3 again", || {
        listing(&b).contains(&("c3".into(), "a".into(), true))
    });
    remote.more(10, "b's viewer, connected all along, gets frames again");
    let _ = (local.close(), remote.close());
}

#[test]
fn one_camera_id_is_live_once_in_the_cluster() {
    let nats = Nats::start();
    let (a, b) = (node(&nats, "a"), node(&nats, "b"));
    let mut first = Cam::connect(a.addr, "dup", None);
    first.send_frame();
    eventually("b knows dup on a", || {
        listing(&b).contains(&("dup".into(), "a".into(), true))
    });
    let mut second = Cam::connect(b.addr, "dup", None);
    second.send_frame();
    let close = wait_close(&mut first.ws);
    assert_eq!(u16::from(close.code), 4000);
    assert!(close.reason.contains("relay node b"), "{}", close.reason);
    eventually("a lists dup on b", || {
        listing(&a).contains(&("dup".into(), "b".into(), true))
    });
    assert_eq!(a.metric("zerocam_camera_replaced_total"), 1.0);
}

#[test]
fn frames_up_to_max_frame_bytes_cross_when_nats_allows_them() {
    // 1.5 MB: over NATS's default max_payload (1 MB), under the relay's
    // default server.max_frame_bytes (4 MiB).
    let big = jpeg(1800, 1200, 7, true);
    assert!(big.len() > 1 << 20, "{}", big.len());
    for (max_payload, crosses) in [(8 << 20, true), (1 << 20, false)] {
        let nats = Nats::with_max_payload(max_payload);
        let (a, b) = (node(&nats, "a"), node(&nats, "b"));
        let mut cam = Cam::connect(a.addr, "big", None);
        cam.send_frame();
        eventually("b knows big", || {
            listing(&b).contains(&("big".into(), "a".into(), true))
        });
        let v = Viewer::open(&b, "big");
        eventually("b watches big", || {
            a.metric("zerocam_cluster_remote_viewers") == 1.0
        });
        for seq in 2..6 {
            cam.send_binary(with_com(&big, seq, 1800, 1200));
            std::thread::sleep(Duration::from_millis(100));
        }
        // The big frames are seq 2 to 5 (the first, small one is seq 1).
        let big_seen = || v.seqs.lock().unwrap().iter().any(|&s| s >= 2);
        if crosses {
            eventually("a big frame at b's viewer", big_seen);
        } else {
            eventually("counted as too large", || {
                a.metric("zerocam_cluster_drops_total{reason=\"too_large\"}") >= 1.0
            });
            assert!(a.logged("raise max_payload"), "the relay says what to do");
            assert!(!big_seen());
        }
        let _ = v.close();
    }
}

#[test]
fn a_node_reaches_nats_through_any_server_of_its_list() {
    let nats = Nats::start();
    let list = format!("nats://127.0.0.1:{},{}", free_port(), nats.url());
    let a = Relay::start(
        &["--cluster", &list],
        Some("[server.cluster]\nnode = \"a\"\npresence_timeout = 2\n"),
    );
    let b = node(&nats, "b");
    eventually("a and b see each other", || {
        a.metric("zerocam_cluster_nodes") == 2.0 && b.metric("zerocam_cluster_nodes") == 2.0
    });
    assert_eq!(a.metric("zerocam_cluster_connected"), 1.0);
}
