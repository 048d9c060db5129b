//! The camera (`zerocam stream`, the real binary) against an in-test relay
//! speaking docs/protocol.md's raw dialect, including relays that misbehave.

mod common;

use std::time::{Duration, Instant};

use common::{Behavior, Event, SEC, TestRelay, Zerocam, decode, meta, temp_path};

fn camera(relay: &TestRelay, extra: &[&str]) -> Zerocam {
    let url = relay.url("/ingest/cam1");
    let mut args = vec!["--relay", url.as_str(), "--camera", "cam1"];
    for (flag, default) in [("--size", "160x120"), ("--heartbeat", "1")] {
        if !extra.contains(&flag) {
            args.extend([flag, default]);
        }
    }
    args.extend_from_slice(extra);
    Zerocam::stream(&args)
}

fn frames(events: &[Event]) -> Vec<(usize, Vec<u8>, Instant)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Frame { conn, jpeg, at } => Some((*conn, jpeg.clone(), *at)),
            _ => None,
        })
        .collect()
}

fn texts(events: &[Event]) -> Vec<serde_json::Value> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Text { text, .. } => serde_json::from_str(text).ok(),
            _ => None,
        })
        .collect()
}

#[test]
fn hello_then_decodable_frames_with_metadata_and_auth() {
    let relay = TestRelay::start(Behavior::Normal { ack: false });
    let _cam = camera(&relay, &["--fps", "10", "--token", "s3cret/+"]);
    let (uri, headers) = relay
        .wait_for(10 * SEC, |e| match e {
            Event::Connected { uri, headers, .. } => Some((uri, headers)),
            _ => None,
        })
        .expect("camera connects");
    assert_eq!(uri, "/ingest/cam1?token=s3cret%2F%2B");
    assert_eq!(
        headers.get("authorization").map(String::as_str),
        Some("Bearer s3cret/+")
    );
    assert!(
        !headers.contains_key("origin"),
        "the camera sends no Origin"
    );

    let events = relay.collect(2 * SEC);
    let t = texts(&events);
    let hello = t.first().expect("hello first");
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["camera"], "cam1");
    assert_eq!(hello["width"], 160);
    assert_eq!(hello["height"], 120);
    assert_eq!(hello["fps"], 10);
    assert!(hello["version"].is_string() && hello["format"].is_string());

    let f = frames(&events);
    assert!(f.len() >= 5, "got {} frames in 2 s at 10 fps", f.len());
    let mut last = None;
    for (_, jpeg, _) in &f {
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
        assert_eq!(&jpeg[jpeg.len() - 2..], &[0xFF, 0xD9]);
        assert_eq!(decode(jpeg), (160, 120));
        let m = meta(jpeg);
        assert_eq!(m.size, Some((160, 120)));
        if let Some(prev) = last {
            assert!(m.seq > prev, "seq increases");
        }
        last = Some(m.seq);
        let age = zerocam::frame::now_us().saturating_sub(m.ts_us);
        assert!(age < 60_000_000, "capture timestamp is recent: {age} µs");
    }
    // Heartbeats keep coming once a second.
    let hb = t.iter().filter(|v| v["type"] == "heartbeat").count();
    assert!(hb >= 1, "heartbeats: {hb}");
}

#[test]
fn the_auth_subprotocol_is_phoenix_only() {
    let relay = TestRelay::start(Behavior::Normal { ack: false });
    let mut cam = camera(&relay, &["--token", "t", "--auth-subprotocol"]);
    let st = cam.wait_exit(10 * SEC).expect("a config error ends it");
    assert!(!st.success());
    assert!(
        cam.wait_log(
            "relay.auth_subprotocol: is for relay.protocol = \"phoenix\"",
            SEC
        )
        .is_some()
    );
}

#[test]
fn reconnects_after_the_relay_drops_the_link() {
    let relay = TestRelay::start(Behavior::DropAfterFrames(3));
    let cam = camera(&relay, &["--fps", "15"]);
    let gap = relay.gap(
        |e| matches!(e, Event::Closed { conn: 1, .. }),
        |e| matches!(e, Event::Connected { conn: 2, .. }),
        5 * SEC,
    );
    // Attempt 0's delay is at most base (0.5 s); allow generous slack.
    assert!(gap < 3 * SEC, "reconnected after {gap:?}");
    // And it streams again on the new connection.
    assert!(relay.saw(5 * SEC, |e| matches!(e, Event::Frame { conn: 2, .. })));
    assert!(cam.wait_log("link lost", SEC).is_some());
    assert!(cam.wait_log("reconnect attempt", SEC).is_some());
}

#[test]
fn a_relay_that_goes_silent_after_the_handshake_is_noticed() {
    let relay = TestRelay::start(Behavior::SilentAfterHandshake);
    let cam = camera(&relay, &[]);
    // The camera gives up on the silent link and reconnects, within
    // 2 × heartbeat (2 s) + backoff (≤ 0.5 s) + slack.
    let gap = relay.gap(
        |e| matches!(e, Event::Connected { conn: 1, .. }),
        |e| matches!(e, Event::Accepted(2)),
        8 * SEC,
    );
    assert!(gap < Duration::from_millis(4500), "took {gap:?}");
    assert!(
        cam.wait_log("nothing received", SEC).is_some()
            || cam.wait_log("write stalled", SEC).is_some()
    );
}

#[test]
fn a_relay_that_accepts_tcp_and_never_answers_does_not_hang_the_camera() {
    let relay = TestRelay::start(Behavior::SilentTcp);
    let cam = camera(&relay, &[]);
    // The camera times the handshake out and retries.
    let gap = relay.gap(
        |e| matches!(e, Event::Accepted(1)),
        |e| matches!(e, Event::Accepted(2)),
        8 * SEC,
    );
    assert!(gap < Duration::from_millis(4500), "took {gap:?}");
    assert!(cam.wait_log("no handshake reply", SEC).is_some());
}

#[test]
fn forbidden_is_an_auth_failure_retried_slowly() {
    let relay = TestRelay::start(Behavior::Refuse(403));
    let cam = camera(&relay, &["--token", "wrong"]);
    assert!(relay.saw(10 * SEC, |e| matches!(e, Event::Accepted(1))));
    std::thread::sleep(Duration::from_secs(8));
    let attempts = relay.accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!(attempts <= 2, "{attempts} attempts in ~8 s after a 403");
    let line = cam.wait_log("HTTP 403", SEC).expect("logged");
    assert!(
        line.contains("refused (HTTP 403): bad token, or connect/1 refused the params"),
        "{line}"
    );
}

#[test]
fn idle_timeout_close_names_the_heartbeat_and_reconnects() {
    // Bandit closes a socket idle past its timeout with 1002.
    let relay = TestRelay::start(Behavior::CloseAfterFrames {
        frames: 2,
        code: 1002,
    });
    let cam = camera(&relay, &["--heartbeat", "7"]);
    cam.wait_log("link lost: relay closed it: 1002", 10 * SEC)
        .expect("the close is logged");
    let line = cam
        .wait_log("the relay timed it out", SEC)
        .expect("the hint is logged");
    assert!(
        line.contains("is heartbeat_interval (7 s) over its timeout?"),
        "{line}"
    );
    assert!(
        relay.saw(10 * SEC, |e| matches!(e, Event::Accepted(2))),
        "a 1002 is not a refusal: the camera reconnects"
    );
}

#[test]
fn pause_resume_and_set_apply_live() {
    let relay = TestRelay::start(Behavior::Normal { ack: false });
    let cam = camera(&relay, &["--fps", "15"]);
    assert!(relay.saw(10 * SEC, |e| matches!(e, Event::Frame { .. })));

    relay.send_text(r#"{"type":"pause"}"#);
    let _ = relay.collect(Duration::from_millis(500)); // in flight before the pause
    let paused = relay.collect(Duration::from_millis(2500));
    assert_eq!(frames(&paused).len(), 0, "no frames while paused");
    assert!(
        texts(&paused).iter().any(|v| v["type"] == "heartbeat"),
        "heartbeats continue while paused"
    );

    relay.send_text(r#"{"type":"resume"}"#);
    let resumed = relay.collect(2 * SEC);
    assert!(
        frames(&resumed).len() >= 10,
        "frames after resume: {}",
        frames(&resumed).len()
    );

    relay.send_text(r#"{"type":"set","fps":2,"quality":30}"#);
    let _ = relay.collect(Duration::from_millis(700));
    let slow = relay.collect(3 * SEC);
    let n = frames(&slow).len();
    assert!((3..=9).contains(&n), "{n} frames in 3 s at fps 2");
    assert!(cam.wait_log("relay set fps 2 quality 30", SEC).is_some());

    relay.send_text(r#"{"type":"set","fps":0}"#);
    relay.send_text(r#"{"type":"set","quality":500}"#);
    relay.send_text("garbage that is not json");
    relay.send_text(r#"{"type":"self-destruct"}"#);
    let after = relay.collect(3 * SEC);
    let n = frames(&after).len();
    assert!(
        (3..=9).contains(&n),
        "bad commands are not applied: {n} frames in 3 s"
    );
    assert!(cam.wait_log("fps: 0 is out of range", SEC).is_some());
    assert!(cam.wait_log("quality: 500 is out of range", SEC).is_some());
}

#[test]
fn a_slow_reader_causes_counted_drops_not_growing_latency() {
    // 100 kB/s: a poor Wi-Fi link, far below what 640x480 at 30 fps needs.
    let relay = TestRelay::start(Behavior::SlowReader {
        bytes_per_sec: 100_000,
    });
    let _cam = camera(
        &relay,
        &["--fps", "30", "--size", "640x480", "--stats-interval", "1"],
    );
    assert!(relay.saw(10 * SEC, |e| matches!(e, Event::Frame { .. })));
    let events = relay.collect(8 * SEC);
    let f = frames(&events);
    assert!(f.len() >= 10, "frames: {}", f.len());
    let seqs: Vec<u64> = f.iter().map(|(_, j, _)| meta(j).seq).collect();
    assert!(
        f.iter().all(|(c, _, _)| *c == 1),
        "a slow link is not a dead one: no reconnects"
    );
    let gaps: u64 = seqs.windows(2).map(|w| w[1] - w[0] - 1).sum();
    assert!(
        gaps > 0,
        "a 4 fps reader of a 30 fps camera must see seq gaps"
    );
    // Latency at receipt stays bounded: the last frames are not older than
    // the first ones were (nothing queues up).
    let lat: Vec<u64> = f
        .iter()
        .map(|(_, j, at)| {
            let sent_age = at.elapsed().as_micros() as u64;
            zerocam::frame::now_us()
                .saturating_sub(meta(j).ts_us)
                .saturating_sub(sent_age)
        })
        .collect();
    let tail = &lat[lat.len() - 5..];
    let worst = tail.iter().max().unwrap();
    assert!(*worst < 2_000_000, "latency grew to {worst} µs: {lat:?}");
    // The camera reports its drops in stats.
    let reported = texts(&events)
        .iter()
        .filter(|v| v["type"] == "stats")
        .filter_map(|v| v["dropped"].as_u64())
        .max()
        .unwrap_or(0);
    assert!(reported > 0, "stats report drops");
}

#[test]
fn acks_bound_what_is_in_flight_and_a_missing_ack_means_a_stall() {
    let cfg = temp_path("ack.toml");
    std::fs::write(&cfg, "[relay]\nack_timeout = 1.5\nwindow = 1\n").unwrap();
    let relay = TestRelay::start(Behavior::DelayedAck {
        delay: Duration::from_millis(400),
        stop_after: 6,
    });
    let cam = camera(&relay, &["--fps", "30", "--config", cfg.to_str().unwrap()]);
    let events = relay.collect(5 * SEC);
    let f: Vec<_> = frames(&events)
        .into_iter()
        .filter(|(c, _, _)| *c == 1)
        .collect();
    // Before the first ack the socket bound applies (loopback: ~400 ms of
    // frames); from then on one frame in flight, and the relay stops acking
    // after 6: a handful of frames, where 30 fps for 5 s would be 150.
    assert!(
        f.len() >= 3 && f.len() <= 25,
        "frames on conn 1: {}",
        f.len()
    );
    // After 6 acks the relay goes quiet: the camera must call it a stall.
    // After 6 acks the relay goes quiet: the camera must call it a stall
    // and reconnect.
    assert!(cam.wait_log("no ack for", 6 * SEC).is_some());
    let reconnected = events
        .iter()
        .any(|e| matches!(e, Event::Connected { conn: 2, .. }))
        || relay
            .wait_for(5 * SEC, |e| {
                matches!(e, Event::Connected { conn: 2, .. }).then_some(())
            })
            .is_some();
    assert!(reconnected);
    let _ = std::fs::remove_file(cfg);
}

#[test]
fn sigterm_closes_with_1001_and_exits_zero_quickly() {
    let relay = TestRelay::start(Behavior::Normal { ack: true });
    let mut cam = camera(&relay, &[]);
    assert!(relay.saw(10 * SEC, |e| matches!(e, Event::Frame { .. })));
    let t0 = Instant::now();
    cam.signal(libc::SIGTERM);
    let st = cam.wait_exit(3 * SEC).expect("exits after SIGTERM");
    assert!(t0.elapsed() < 2 * SEC, "took {:?}", t0.elapsed());
    assert!(st.success(), "{st:?}");
    let code = relay.wait_for(2 * SEC, |e| match e {
        Event::Closed { frame, .. } => Some(frame),
        _ => None,
    });
    assert_eq!(code.flatten().map(|(c, _)| c), Some(1001));
}

#[test]
fn a_relay_that_is_down_is_logged_once_per_attempt() {
    // Bind and drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}/ingest/x");
    let cam = Zerocam::stream(&[
        "--relay", &url, "--camera", "x", "--fps", "30", "--size", "160x120",
    ]);
    std::thread::sleep(Duration::from_secs(4));
    let attempts = cam.lines_with("reconnect attempt").len();
    let all = cam.log.lock().unwrap().len();
    assert!(attempts >= 2, "attempts logged: {attempts}");
    // ~120 frames were captured meanwhile: no line per frame.
    assert!(
        all < attempts + 15,
        "{all} log lines for {attempts} attempts"
    );
}

#[test]
fn the_config_file_sets_the_log_level_and_the_flag_wins() {
    let relay = TestRelay::start(Behavior::Normal { ack: true });
    let cfg = temp_path("log.toml");
    std::fs::write(&cfg, "log_level = \"debug\"\n").unwrap();
    let debug_lines = |extra: &[&str]| {
        let mut args = vec!["--config", cfg.to_str().unwrap()];
        args.extend_from_slice(extra);
        let mut cam = camera(&relay, &args);
        assert!(cam.wait_log("connected to", 10 * SEC).is_some());
        cam.signal(libc::SIGTERM);
        assert!(cam.wait_exit(5 * SEC).is_some());
        // `capture stopped` is logged at debug on every exit.
        cam.lines_with(" DEBUG ").len()
    };
    assert!(debug_lines(&[]) > 0, "log_level from the file applies");
    assert_eq!(debug_lines(&["--log-level", "info"]), 0, "--log-level wins");
    let _ = std::fs::remove_file(cfg);
}

#[test]
fn a_relay_that_starts_acking_mid_connection_is_not_taken_for_a_stall() {
    // Seen against real Phoenix: frames went out unacked for a while, then
    // acks began, and the camera called the link stalled because it waited
    // for acks of the frames sent before. Ack mode starts at the first ack.
    let cfg = temp_path("ackafter.toml");
    std::fs::write(&cfg, "[relay]\nack_timeout = 1\nwindow = 1\n").unwrap();
    let relay = TestRelay::start(Behavior::AckAfter(40));
    let cam = camera(&relay, &["--fps", "20", "--config", cfg.to_str().unwrap()]);
    // 40 unacked frames at 20 fps: two seconds, twice the ack timeout.
    let events = relay.collect(6 * SEC);
    let on_first: Vec<_> = frames(&events)
        .into_iter()
        .filter(|(c, _, _)| *c == 1)
        .collect();
    assert!(
        on_first.len() >= 60,
        "frames kept flowing: {}",
        on_first.len()
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Connected { conn: 2, .. })),
        "the camera reconnected"
    );
    assert!(cam.lines_with("no ack for").is_empty(), "false stall");
    assert!(cam.wait_log("relay acknowledges frames", SEC).is_some());
    let _ = std::fs::remove_file(cfg);
}

#[test]
fn an_oversized_message_from_the_relay_is_refused() {
    let relay = TestRelay::start(Behavior::Normal { ack: true });
    let cam = camera(&relay, &[]);
    assert!(relay.saw(10 * SEC, |e| matches!(e, Event::Frame { .. })));
    // 100 KiB of "command": more than the camera takes from a relay.
    relay.send_text(&format!(
        r#"{{"type":"set","junk":"{}"}}"#,
        "x".repeat(100 << 10)
    ));
    assert!(
        cam.wait_log("relay sent a message over the camera", 5 * SEC)
            .is_some()
    );
    assert!(
        relay.saw(5 * SEC, |e| matches!(e, Event::Connected { conn: 2, .. })),
        "reconnects"
    );
}

#[test]
fn a_relay_without_the_auth_subprotocol_is_named_once_and_not_hammered() {
    let relay = TestRelay::start(Behavior::NoSubprotocol);
    // Phoenix 1.7, or a socket without `auth_token: true`: the handshake
    // fails before any channel message, whatever the dialect.
    let cam = camera(
        &relay,
        &[
            "--token",
            "t",
            "--auth-subprotocol",
            "--protocol",
            "phoenix",
        ],
    );
    assert!(
        cam.wait_log("no auth subprotocol at the relay", 10 * SEC)
            .is_some()
    );
    // Backed off to the maximum: no second attempt within a few seconds.
    std::thread::sleep(3 * SEC);
    assert_eq!(relay.accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(cam.lines_with("auth_subprotocol").len() == 1);
}

#[test]
fn a_source_that_is_no_camera_is_a_startup_error_in_plain_words() {
    let relay = TestRelay::start(Behavior::Normal { ack: true });
    for (source, words) in [
        (
            "/etc/passwd",
            "/etc/passwd: not a V4L2 device (a regular file",
        ),
        (
            "/dev/zerocam-no-camera",
            "/dev/zerocam-no-camera: does not exist",
        ),
    ] {
        let mut cam = camera(&relay, &["--source", source]);
        let st = cam.wait_exit(10 * SEC).expect("exits");
        assert!(!st.success(), "{source}: {st:?}");
        let err = cam.log.lock().unwrap().join("\n");
        assert!(err.contains(words), "{source}: {err}");
        assert!(!err.contains("Inappropriate ioctl"), "{err}");
    }
    // With source.wait_for_device the camera waits for the device instead.
    let cfg = temp_path("wait.toml");
    std::fs::write(&cfg, "[source]\nwait_for_device = 0.5\n").unwrap();
    let mut cam = camera(
        &relay,
        &[
            "--source",
            "/dev/zerocam-no-camera",
            "--config",
            cfg.to_str().unwrap(),
        ],
    );
    assert!(cam.wait_log("reopening with backoff", 10 * SEC).is_some());
    assert!(cam.wait_exit(SEC).is_none(), "keeps running, retrying");
    // The stats line says why no frames arrive.
    drop(cam);
    let mut cam = camera(
        &relay,
        &[
            "--source",
            "/dev/zerocam-no-camera",
            "--config",
            cfg.to_str().unwrap(),
            "--stats-interval",
            "0.5",
        ],
    );
    assert!(
        cam.wait_log("no frames: /dev/zerocam-no-camera", 10 * SEC)
            .is_some()
    );
    cam.signal(libc::SIGTERM);
    assert!(cam.wait_exit(5 * SEC).is_some());
    let _ = std::fs::remove_file(cfg);
}

#[test]
fn stats_lines_fit_a_serial_console_and_are_quiet_while_paused() {
    let relay = TestRelay::start(Behavior::Normal { ack: true });
    let cam = camera(&relay, &["--stats-interval", "0.3", "--fps", "10"]);
    assert!(cam.wait_log("stats:", 10 * SEC).is_some());
    relay.send_text(r#"{"type":"pause"}"#);
    assert!(cam.wait_log("relay says pause", 5 * SEC).is_some());
    let at_pause = cam.lines_with(" stats: ").len();
    std::thread::sleep(3 * SEC);
    let paused_lines = cam.lines_with(" stats: ").len() - at_pause;
    // One line on entering the pause (maybe one more from the interval that
    // straddled it), not one per 0.3 s.
    assert!(paused_lines <= 2, "{paused_lines} stats lines while paused");
    relay.send_text(r#"{"type":"resume"}"#);
    std::thread::sleep(SEC);
    for line in cam.lines_with(" stats: ") {
        assert!(
            line.chars().count() <= 100,
            "{} chars: {line}",
            line.chars().count()
        );
    }
}

#[test]
fn timeouts_the_systemd_watchdog_would_contradict_are_refused_at_start() {
    let cfg = temp_path("wd.toml");
    std::fs::write(&cfg, "[relay]\nconnect_timeout = 600\n").unwrap();
    let out = std::process::Command::new(common::bin())
        .args([
            "stream",
            "--source",
            "pattern",
            "--relay",
            "ws://127.0.0.1:9/x",
            "--config",
        ])
        .arg(&cfg)
        .env("WATCHDOG_USEC", "60000000")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("relay.connect_timeout"), "{err}");
    assert!(err.contains("WatchdogSec=60"), "{err}");
    let _ = std::fs::remove_file(cfg);
}

/// Voluntary context switches of one thread of `pid` (its main thread: the
/// stream loop runs there).
fn switches(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_throttled_camera_waits_for_writability_instead_of_polling() {
    // A relay that takes the handshake and then reads nothing: the socket
    // fills, and the camera must hold frames back. It should sleep until
    // the socket can take more (POLLOUT with TCP_NOTSENT_LOWAT), waking for
    // new frames only, not poll every few milliseconds.
    let relay = TestRelay::start(Behavior::SilentAfterHandshake);
    let cam = camera(
        &relay,
        &["--fps", "15", "--size", "640x480", "--heartbeat", "20"],
    );
    assert!(relay.saw(10 * SEC, |e| matches!(e, Event::Connected { .. })));
    // Let the kernel buffers fill.
    std::thread::sleep(3 * SEC);
    let pid = cam.child.id();
    let (s0, t0) = (switches(pid), Instant::now());
    std::thread::sleep(3 * SEC);
    let per_s = (switches(pid) - s0) as f64 / t0.elapsed().as_secs_f64();
    eprintln!("stream thread: {per_s:.0} wake-ups/s while throttled");
    // About one per captured frame (15/s) plus timers; a 5 ms poll loop
    // would be 200/s and more.
    assert!(per_s < 80.0, "{per_s:.0} wake-ups/s while throttled");
    assert!(cam.lines_with("link lost").is_empty(), "still connected");
}

#[test]
fn settings_answer_hello_set_pause_and_resume_with_what_the_camera_has() {
    let relay = TestRelay::start(Behavior::Normal { ack: true });
    let cam = camera(&relay, &["--fps", "10"]);
    let settings = |relay: &TestRelay| {
        relay
            .wait_for(10 * SEC, |e| match e {
                Event::Text { text, .. } if text.contains(r#""type":"settings""#) => {
                    serde_json::from_str::<serde_json::Value>(&text).ok()
                }
                _ => None,
            })
            .expect("a settings message")
    };
    // Once after hello: the pattern's software controls, with ranges.
    let s = settings(&relay);
    assert_eq!(s["fps"], 10);
    assert_eq!(s["paused"], false);
    assert_eq!(s["controls"]["hflip"], false);
    assert_eq!(s["ranges"]["brightness"]["min"], -100);
    assert_eq!(s["ranges"]["vflip"]["type"], "boolean");
    // A set: the valid parts apply, each refusal is one log line.
    relay.send_text(
        r#"{"type":"set","fps":5,"quality":0,"controls":{"hflip":true,"brightness":500,"nope":1}}"#,
    );
    let s = settings(&relay);
    assert_eq!(s["fps"], 5);
    assert_eq!(s["controls"]["hflip"], true, "{s}");
    assert_eq!(s["controls"]["brightness"], 0, "{s}");
    assert!(
        cam.wait_log("control brightness: 500 is out of range (-100..=100)", SEC)
            .is_some()
    );
    assert!(cam.wait_log("control nope: no such control", SEC).is_some());
    assert!(cam.wait_log("quality: 0 is out of range", SEC).is_some());
    relay.send_text(r#"{"type":"pause"}"#);
    assert_eq!(settings(&relay)["paused"], true);
    relay.send_text(r#"{"type":"resume"}"#);
    assert_eq!(settings(&relay)["paused"], false);
}

#[test]
fn source_controls_from_the_config_apply_at_start() {
    let cfg = temp_path("controls.toml");
    std::fs::write(&cfg, "[source.controls]\nvflip = true\nbrightness = 30\n").unwrap();
    let relay = TestRelay::start(Behavior::Normal { ack: true });
    let _cam = camera(&relay, &["--config", cfg.to_str().unwrap()]);
    let s = relay
        .wait_for(10 * SEC, |e| match e {
            Event::Text { text, .. } if text.contains(r#""type":"settings""#) => {
                serde_json::from_str::<serde_json::Value>(&text).ok()
            }
            _ => None,
        })
        .expect("settings");
    assert_eq!(s["controls"]["vflip"], true, "{s}");
    assert_eq!(s["controls"]["brightness"], 30, "{s}");
    let _ = std::fs::remove_file(cfg);
}

#[test]
fn relays_are_tried_in_order_and_hello_names_the_one_in_use() {
    // The first relay refuses (a node that is down for maintenance), the
    // second takes the camera: no backoff between them.
    let down = TestRelay::start(Behavior::Refuse(503));
    let up = TestRelay::start(Behavior::Normal { ack: false });
    let second = up.url("/ingest/cam1");
    let cam = camera(&down, &["--relay", &second]);
    let hello = up
        .wait_for(10 * SEC, |e| match e {
            Event::Text { text, .. } if text.contains("\"hello\"") => Some(text),
            _ => None,
        })
        .expect("the camera reaches the second relay");
    assert!(
        down.accepted.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the first was tried first"
    );
    let hello: serde_json::Value = serde_json::from_str(&hello).unwrap();
    assert_eq!(hello["relay"], second.as_str(), "{hello}");
    assert!(cam.wait_log("trying the next relay now", SEC).is_some());
    assert!(
        cam.lines_with("reconnect attempt").is_empty(),
        "no backoff while a relay in the list is untried"
    );
    // Its stats name it too.
    let stats = up
        .wait_for(15 * SEC, |e| match e {
            Event::Text { text, .. } if text.contains("\"stats\"") => Some(text),
            _ => None,
        })
        .expect("stats from the camera");
    assert!(
        stats.contains(&format!("\"relay\":\"{second}\"")),
        "{stats}"
    );
}

/// The totals of a camera's "stopped: N captured, N sent, N dropped" line.
fn totals(cam: &Zerocam) -> (u64, u64, u64) {
    let line = cam
        .wait_log("stopped: ", 10 * SEC)
        .expect("the totals line");
    let n = |word: &str| -> u64 {
        let before = line.split(&format!(" {word}")).next().unwrap_or("");
        before
            .rsplit(' ')
            .next()
            .unwrap_or("")
            .parse()
            .unwrap_or(u64::MAX)
    };
    (n("captured"), n("sent"), n("dropped"))
}

#[test]
fn every_captured_frame_is_sent_or_counted_as_dropped() {
    // A link slower than the camera (drops in the slot), stopped mid-stream
    // (a frame may be waiting, or on its way): nothing goes uncounted.
    let relay = TestRelay::start(Behavior::SlowReader {
        bytes_per_sec: 60_000,
    });
    let mut cam = camera(&relay, &["--fps", "30", "--size", "320x240"]);
    let got = relay.wait_for(20 * SEC, |e| match e {
        Event::Frame { .. } => Some(()),
        _ => None,
    });
    assert!(got.is_some(), "no frame");
    let _ = relay.collect(2 * SEC);
    cam.signal(libc::SIGTERM);
    assert!(cam.wait_exit(10 * SEC).is_some_and(|s| s.success()));
    let (captured, sent, dropped) = totals(&cam);
    assert!(dropped > 0, "the slow link dropped nothing?");
    assert_eq!(
        captured,
        sent + dropped,
        "captured {captured}, sent {sent}, dropped {dropped}"
    );
}
