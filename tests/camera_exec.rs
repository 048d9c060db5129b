//! `--source exec:COMMAND` with ffmpeg (from apt; `scripts/test` installs
//! it) as a real camera program: MJPEG and raw YU12 on its stdout, a child
//! that exits, hangs or writes garbage, pause, and no orphan however
//! zerocam ends.

mod common;

use std::time::{Duration, Instant};

use common::{Behavior, Event, SEC, TestRelay, Zerocam, decode, meta, temp_path};

fn need_ffmpeg() {
    let ok = std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "ffmpeg is missing: scripts/test installs it (Debian package: ffmpeg)"
    );
}

const MJPEG: &str = "exec:ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=320x240:rate=15 -f mjpeg -q:v 5 -";

fn camera(relay: &TestRelay, source: &str, extra: &[&str]) -> Zerocam {
    let url = relay.url("/ingest/exec");
    let mut args = vec![
        "--relay",
        url.as_str(),
        "--camera",
        "exec",
        "--source",
        source,
        "--fps",
        "15",
        "--heartbeat",
        "1",
    ];
    args.extend_from_slice(extra);
    Zerocam::stream(&args)
}

fn frames(relay: &TestRelay, n: usize, within: Duration) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let end = Instant::now() + within;
    while out.len() < n && Instant::now() < end {
        if let Some(Event::Frame { jpeg, .. }) = relay.next(Duration::from_millis(200)) {
            out.push(jpeg);
        }
    }
    out
}

/// The pid in the latest "exec: started … (pid N)" line.
fn child_pid(cam: &Zerocam, nth: usize) -> u32 {
    let end = Instant::now() + 10 * SEC;
    loop {
        let lines = cam.lines_with("exec: started ");
        if let Some(l) = lines.get(nth) {
            return l
                .rsplit("(pid ")
                .next()
                .and_then(|p| p.trim_end_matches(')').parse().ok())
                .expect("pid in the line");
        }
        assert!(Instant::now() < end, "no child started ({nth})");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn alive(pid: u32) -> bool {
    // A zombie (exited, not reaped) counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

fn gone_within(pid: u32, d: Duration) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn mjpeg_from_a_camera_program_arrives_decodable() {
    need_ffmpeg();
    let relay = TestRelay::start(Behavior::Normal { ack: true });
    let cam = camera(&relay, MJPEG, &[]);
    let f = frames(&relay, 10, 20 * SEC);
    assert_eq!(f.len(), 10, "frames from ffmpeg");
    for j in &f {
        assert_eq!(decode(j), (320, 240));
    }
    let seqs: Vec<u64> = f.iter().map(|j| meta(j).seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");
    assert!(cam.wait_log("exec: started ffmpeg", SEC).is_some());
}

#[test]
fn raw_yu12_from_a_camera_program_is_encoded() {
    need_ffmpeg();
    let relay = TestRelay::start(Behavior::Normal { ack: true });
    let _cam = camera(
        &relay,
        "exec:ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=320x240:rate=15 -f rawvideo -pix_fmt yuv420p -",
        &["--format", "YU12", "--size", "320x240"],
    );
    let f = frames(&relay, 5, 20 * SEC);
    assert_eq!(f.len(), 5);
    for j in &f {
        assert_eq!(decode(j), (320, 240));
        assert_eq!(meta(j).size, Some((320, 240)));
    }
}

#[test]
fn a_child_that_exits_is_restarted_and_frames_go_on() {
    need_ffmpeg();
    let relay = TestRelay::start(Behavior::Normal { ack: true });
    let cam = camera(
        &relay,
        "exec:ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=160x120:rate=15 -t 1 -f mjpeg -",
        &["--stats-interval", "1"],
    );
    assert!(
        cam.wait_log("ffmpeg stopped (exit status: 0)", 15 * SEC)
            .is_some()
    );
    assert!(cam.wait_log("reopening with backoff", SEC).is_some());
    let first = child_pid(&cam, 0);
    let second = child_pid(&cam, 1);
    assert_ne!(first, second, "a new child");
    // Frames keep coming, one seq sequence across children.
    let f = frames(&relay, 25, 20 * SEC);
    assert!(f.len() >= 25, "{} frames", f.len());
    // The relay session stayed up throughout.
    assert!(cam.lines_with("link lost").is_empty());
}

#[test]
fn a_child_that_hangs_is_killed_and_restarted() {
    let relay = TestRelay::start(Behavior::Normal { ack: true });
    let cam = camera(&relay, "exec:sleep 60", &[]);
    let pid = child_pid(&cam, 0);
    assert!(cam.wait_log("sleep wrote no frame", 15 * SEC).is_some());
    assert!(gone_within(pid, 5 * SEC), "the hung child was not stopped");
    let again = child_pid(&cam, 1);
    assert_ne!(pid, again);
}

#[test]
fn garbage_from_a_child_is_counted_not_forwarded() {
    let relay = TestRelay::start(Behavior::Normal { ack: true });
    let _cam = camera(
        &relay,
        "exec:head -c 3000000 /dev/urandom",
        &["--stats-interval", "0.5"],
    );
    let corrupt = relay
        .wait_for(15 * SEC, |e| match e {
            Event::Text { text, .. } if text.contains(r#""type":"stats""#) => {
                let v: serde_json::Value = serde_json::from_str(&text).ok()?;
                let n = v["corrupt"].as_u64()?;
                (n > 0).then_some(n)
            }
            Event::Frame { .. } => panic!("garbage was forwarded as a frame"),
            _ => None,
        })
        .expect("corrupt data counted in stats");
    assert!(corrupt > 0);
}

#[test]
fn no_orphan_when_zerocam_stops_or_is_killed() {
    need_ffmpeg();
    let relay = TestRelay::start(Behavior::Normal { ack: true });
    // SIGTERM: zerocam stops its child and exits 0.
    let mut cam = camera(&relay, MJPEG, &[]);
    assert_eq!(frames(&relay, 2, 20 * SEC).len(), 2);
    let pid = child_pid(&cam, 0);
    assert!(alive(pid));
    cam.signal(libc::SIGTERM);
    let st = cam.wait_exit(10 * SEC).expect("exits");
    assert!(st.success(), "{st:?}");
    assert!(
        gone_within(pid, 3 * SEC),
        "ffmpeg outlived zerocam's SIGTERM"
    );
    // SIGKILL: zerocam cannot clean up; the kernel kills the child for it.
    let mut cam = camera(&relay, MJPEG, &[]);
    assert!(!frames(&relay, 2, 20 * SEC).is_empty());
    let pid = child_pid(&cam, 0);
    cam.signal(libc::SIGKILL);
    cam.wait_exit(5 * SEC).expect("killed");
    assert!(gone_within(pid, 3 * SEC), "ffmpeg was orphaned by SIGKILL");
}

#[test]
fn a_pause_stops_the_child_and_a_resume_starts_it_again() {
    need_ffmpeg();
    let relay = TestRelay::start(Behavior::Normal { ack: true });
    let cfg = temp_path("exec-pause.toml");
    std::fs::write(&cfg, "").unwrap();
    let cam = camera(&relay, MJPEG, &[]);
    assert!(!frames(&relay, 2, 20 * SEC).is_empty());
    let pid = child_pid(&cam, 0);
    relay.send_text(r#"{"type":"pause"}"#);
    assert!(gone_within(pid, 5 * SEC), "the child runs on while paused");
    assert!(cam.wait_log("stopped while paused", SEC).is_some());
    relay.send_text(r#"{"type":"resume"}"#);
    let again = child_pid(&cam, 1);
    assert_ne!(pid, again);
    assert!(
        !frames(&relay, 2, 20 * SEC).is_empty(),
        "frames after resume"
    );
    let _ = std::fs::remove_file(cfg);
}

#[test]
fn a_child_that_closes_its_output_before_exiting_is_named_by_its_exit_status() {
    let relay = TestRelay::start(Behavior::Normal { ack: true });
    // stdout closes 300 ms before the exit: the log still says why it ended.
    let cam = camera(&relay, r#"exec:sh -c "exec >&-; sleep 0.3; exit 3""#, &[]);
    assert!(
        cam.wait_log("sh stopped (exit status: 3)", 15 * SEC)
            .is_some()
    );
}

#[test]
fn a_child_that_closes_its_output_and_runs_on_is_stopped() {
    let relay = TestRelay::start(Behavior::Normal { ack: true });
    let cam = camera(&relay, r#"exec:sh -c "exec >&-; exec sleep 60""#, &[]);
    let pid = child_pid(&cam, 0);
    assert!(
        cam.wait_log("sh stopped (closed its output but kept running)", 15 * SEC)
            .is_some()
    );
    assert!(gone_within(pid, 5 * SEC), "the child outlived its restart");
    assert_ne!(pid, child_pid(&cam, 1));
}

#[test]
fn hello_carries_the_size_an_mjpeg_program_really_writes() {
    need_ffmpeg();
    let relay = TestRelay::start(Behavior::Normal { ack: true });
    // source.size stays at its default (640x480); ffmpeg writes 320x240.
    let _cam = camera(&relay, MJPEG, &[]);
    let hello = relay
        .wait_for(20 * SEC, |e| match e {
            Event::Text { text, .. } if text.contains(r#""type":"hello""#) => Some(text),
            _ => None,
        })
        .expect("hello");
    let v: serde_json::Value = serde_json::from_str(&hello).unwrap();
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(320), Some(240)),
        "{hello}"
    );
}

#[test]
fn mjpeg_read_as_raw_is_named_not_streamed_as_noise() {
    need_ffmpeg();
    let relay = TestRelay::start(Behavior::Normal { ack: true });
    let cam = camera(&relay, MJPEG, &["--format", "YU12", "--size", "320x240"]);
    assert!(
        cam.wait_log(
            "ffmpeg writes JPEG, not yu12 (source.format = MJPG)",
            15 * SEC
        )
        .is_some()
    );
    assert!(frames(&relay, 1, 2 * SEC).is_empty(), "noise was streamed");
}

#[test]
fn a_byte_count_that_is_no_whole_frame_is_named() {
    // 1.5 YUYV frames of 64x64 (8192 bytes each), then the program ends.
    let relay = TestRelay::start(Behavior::Normal { ack: true });
    let cam = camera(
        &relay,
        "exec:sh -c 'head -c 12288 /dev/zero; sleep 0.2'",
        &["--format", "YUYV", "--size", "64x64"],
    );
    assert!(
        cam.wait_log(
            "12288 B: not a whole number of 64x64 yuyv frames (YU12/NV12 fits)",
            15 * SEC
        )
        .is_some()
    );
}

#[test]
fn stopping_a_raw_program_blocked_on_its_pipe_blames_nobody() {
    need_ffmpeg();
    let relay = TestRelay::start(Behavior::Normal { ack: true });
    // ffmpeg writing raw 640x480 faster than zerocam reads: blocked in
    // write(2) when the pause stops it.
    let cam = camera(
        &relay,
        "exec:ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc2=size=640x480:rate=60 -f rawvideo -pix_fmt yuv420p -",
        &["--format", "YU12", "--size", "640x480"],
    );
    assert!(!frames(&relay, 2, 20 * SEC).is_empty());
    let pid = child_pid(&cam, 0);
    relay.send_text(r#"{"type":"pause"}"#);
    assert!(cam.wait_log("stopped while paused", 10 * SEC).is_some());
    assert!(!alive(pid));
    assert!(
        cam.lines_with("ignored SIGTERM").is_empty(),
        "{:?}",
        cam.lines_with("ignored SIGTERM")
    );
}

#[test]
fn a_snapshot_of_a_program_that_writes_one_frame_and_exits() {
    let frame = temp_path("one-frame.yuv");
    // One mid-grey YU12 frame of 64x48.
    std::fs::write(&frame, vec![128u8; 64 * 48 * 3 / 2]).unwrap();
    let out = temp_path("one-frame.jpg");
    let source = format!("exec:sh -c 'cat {}; sleep 0.3'", frame.display());
    let run = std::process::Command::new(common::bin())
        .args([
            "snapshot", "--source", &source, "--format", "YU12", "--size", "64x48", "-o",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{log}");
    assert_eq!(decode(&std::fs::read(&out).unwrap()), (64, 48));
    assert!(log.contains("using frame 1"), "{log}");
    // Nothing at all: the error says how many frames arrived.
    let run = std::process::Command::new(common::bin())
        .args([
            "snapshot",
            "--source",
            "exec:true",
            "--format",
            "YU12",
            "--size",
            "64x48",
            "-o",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(log.contains("before any usable frame (0 arrived)"), "{log}");
    let _ = std::fs::remove_file(frame);
    let _ = std::fs::remove_file(out);
}
