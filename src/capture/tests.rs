//! Capture loop tests with the pattern source (bounded waits only).

use super::*;
use crate::encode::m2m::{self, HardwareEncoder};
use crate::encode::{RawFormat, RawImage, encode_raw};
use crate::frame::Frame;
use std::path::Path;

fn pipeline(fps: u32) -> Arc<Pipeline> {
    Pipeline::for_source(&cfg(fps)).unwrap()
}

fn cfg(fps: u32) -> SourceConfig {
    SourceConfig::pattern(64, 48, fps)
}

/// Waits (bounded) for a frame in the slot.
fn take(p: &Pipeline) -> Frame {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(f) = p.slot.take() {
            return f;
        }
        assert!(Instant::now() < end, "no frame within 10 s");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn pattern_frames_have_consecutive_seq_and_metadata() {
    let p = pipeline(100);
    let h = spawn(p.clone(), cfg(100)).unwrap();
    let mut last = None;
    for _ in 0..5 {
        let f = take(&p);
        let meta = crate::wire::com::parse(&f.jpeg).unwrap();
        assert_eq!(meta.seq, f.seq);
        assert_eq!(meta.size, Some((64, 48)));
        assert_eq!((f.width, f.height), (64, 48));
        if let Some(l) = last {
            // Slot overwrites are counted drops; seq counts published frames.
            assert!(f.seq > l);
        }
        last = Some(f.seq);
    }
    // Every published frame is either taken or counted as dropped.
    let captured = p.counters.captured.load(Ordering::Relaxed);
    assert!(captured >= 5);
    assert_eq!(p.source_info().format, "pattern");
    assert!(p.health.source_ok());
    p.controls.request_shutdown();
    h.join().unwrap();
}

#[test]
fn seq_gaps_are_exactly_the_counted_drops() {
    let p = pipeline(50);
    let h = spawn(p.clone(), cfg(50)).unwrap();
    let mut seqs: Vec<u64> = (0..6).map(|_| take(&p).seq).collect();
    p.controls.request_shutdown();
    h.join().unwrap();
    seqs.extend(p.slot.take().map(|f| f.seq));
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");
    // Seqs are 0..captured: every missing one was overwritten in the slot.
    let captured = p.counters.captured.load(Ordering::Relaxed);
    assert_eq!(*seqs.last().unwrap(), captured - 1);
    assert_eq!(captured - seqs.len() as u64, p.slot.dropped());
}

#[test]
fn pause_resume_and_live_fps() {
    let p = pipeline(100);
    let h = spawn(p.clone(), cfg(100)).unwrap();
    take(&p);
    p.pause();
    // Let any frame in flight land (it is refused as stale), then expect
    // silence.
    std::thread::sleep(Duration::from_millis(100));
    assert!(p.slot.take().is_none());
    let before = p.counters.captured.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(p.counters.captured.load(Ordering::Relaxed), before);
    assert!(p.slot.take().is_none());
    p.resume();
    let f = take(&p);
    assert_eq!(f.seq, before, "seq continues without a gap after a pause");
    // Live fps: at 2 fps, a 300 ms window publishes at most one frame
    // (a generous bound; we assert an upper limit only).
    p.controls.set_fps(2);
    take(&p);
    let n0 = p.counters.captured.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300));
    let n1 = p.counters.captured.load(Ordering::Relaxed);
    assert!(n1 - n0 <= 1, "{} frames in 300 ms at 2 fps", n1 - n0);
    p.controls.request_shutdown();
    h.join().unwrap();
}

#[test]
fn shutdown_stops_the_thread_promptly() {
    let p = pipeline(1);
    let h = spawn(p.clone(), cfg(1)).unwrap();
    take(&p);
    p.controls.request_shutdown();
    let end = Instant::now() + Duration::from_secs(5);
    while !h.is_finished() {
        assert!(Instant::now() < end, "capture thread did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
    h.join().unwrap();
}

/// A source that fails after a few frames, to exercise the reopen path.
struct Flaky {
    inner: pattern::PatternSource,
    left: u32,
}

impl FrameSource for Flaky {
    fn granted(&self) -> &Granted {
        self.inner.granted()
    }
    fn self_paced(&self) -> bool {
        true
    }
    fn next_frame(&mut self, fps: u32) -> io::Result<Option<SourceFrame<'_>>> {
        if self.left == 0 {
            return Err(io::Error::from_raw_os_error(libc::ENODEV));
        }
        self.left -= 1;
        self.inner.next_frame(fps)
    }
}

#[test]
fn source_errors_reopen_and_seq_continues() {
    let p = pipeline(100);
    let p2 = p.clone();
    let opens = std::sync::atomic::AtomicU32::new(0);
    let h = std::thread::spawn(move || {
        let mut open = |c: &SourceConfig| -> Result<Box<dyn FrameSource + Send>, SourceError> {
            let n = opens.fetch_add(1, Ordering::Relaxed);
            if n == 1 {
                return Err(SourceError::from_io(
                    Path::new("/dev/video9"),
                    "open",
                    &io::Error::from_raw_os_error(libc::ENOENT),
                ));
            }
            Ok(Box::new(Flaky {
                inner: pattern::PatternSource::new(c.width, c.height, c.fps)?,
                left: 3,
            }))
        };
        run(&p2, &cfg(100), &mut open);
    });
    let mut seqs = Vec::new();
    let end = Instant::now() + Duration::from_secs(20);
    while p.counters.source_errors.load(Ordering::Relaxed) < 3 {
        assert!(Instant::now() < end, "no reopen");
        if let Some(f) = p.slot.take() {
            seqs.push(f.seq);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    p.controls.request_shutdown();
    h.join().unwrap();
    while let Some(f) = p.slot.take() {
        seqs.push(f.seq);
    }
    // Frames from successive opens continue one seq sequence.
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");
    assert!(p.counters.captured.load(Ordering::Relaxed) >= 6);
}

#[test]
fn snapshot_writes_a_decodable_pattern_frame() {
    let dir = std::env::temp_dir().join(format!("zerocam-snap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("x.jpg");
    let mut c = cfg(15);
    c.width = 320;
    c.height = 240;
    crate::camera::snapshot(&c, &out).unwrap();
    let jpeg = std::fs::read(&out).unwrap();
    let meta = crate::wire::com::parse(&jpeg).unwrap();
    assert_eq!(meta.size, Some((320, 240)));
    let px = jpeg_decoder::Decoder::new(&jpeg[..]).decode().unwrap();
    assert_eq!(px.len(), 320 * 240 * 3);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A source whose next frame waits for the test's go-ahead, as a slow
/// capture and encode would.
struct Gated {
    inner: pattern::PatternSource,
    entered: std::sync::mpsc::Sender<()>,
    go: std::sync::mpsc::Receiver<()>,
}

impl FrameSource for Gated {
    fn granted(&self) -> &Granted {
        self.inner.granted()
    }
    fn self_paced(&self) -> bool {
        true
    }
    fn next_frame(&mut self, fps: u32) -> io::Result<Option<SourceFrame<'_>>> {
        let _ = self.entered.send(());
        if self.go.recv_timeout(Duration::from_secs(10)).is_err() {
            return Ok(None);
        }
        self.inner.next_frame(fps)
    }
}

#[test]
fn a_frame_captured_before_a_pause_is_never_published_after_it() {
    let p = pipeline(100);
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let (go, go_rx) = std::sync::mpsc::channel();
    let src = std::sync::Mutex::new(Some(Gated {
        inner: pattern::PatternSource::new(64, 48, 100).unwrap(),
        entered: entered_tx,
        go: go_rx,
    }));
    let p2 = p.clone();
    let h = std::thread::spawn(move || {
        let mut open = |_: &SourceConfig| -> Result<Box<dyn FrameSource + Send>, SourceError> {
            match src.lock().unwrap().take() {
                Some(s) => Ok(Box::new(s)),
                None => Err(SourceError::failed("opened twice")),
            }
        };
        run(&p2, &cfg(100), &mut open);
    });
    let wait_entered = || entered.recv_timeout(Duration::from_secs(10)).unwrap();
    // Frame 0 goes through.
    wait_entered();
    go.send(()).unwrap();
    assert_eq!(take(&p).seq, 0);
    // Frame 1 is being captured when the relay pauses and resumes.
    wait_entered();
    p.pause();
    p.resume();
    go.send(()).unwrap();
    // Frame 2 (captured after the resume) is the next one out; frame 1 was
    // refused by the slot and counted.
    wait_entered();
    assert!(p.slot.take().is_none(), "the stale frame reached the slot");
    assert_eq!(p.slot.dropped(), 1);
    go.send(()).unwrap();
    let f = take(&p);
    assert_eq!(f.seq, 2);
    p.controls.request_shutdown();
    let _ = go.send(());
    h.join().unwrap();
}

#[test]
fn parallel_encoders_deliver_in_capture_order_and_count_every_frame() {
    let mut c = cfg(200);
    c.width = 320;
    c.height = 240;
    c.encode_threads = 3;
    let p = Pipeline::for_source(&c).unwrap();
    let h = spawn(p.clone(), c).unwrap();
    let mut seqs = Vec::new();
    let end = Instant::now() + Duration::from_secs(20);
    while seqs.len() < 40 {
        assert!(Instant::now() < end, "no frames from the pool");
        if let Some(f) = p.slot.take() {
            assert_eq!(crate::wire::com::parse(&f.jpeg).unwrap().seq, f.seq);
            seqs.push(f.seq);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    p.controls.request_shutdown();
    h.join().unwrap();
    seqs.extend(std::iter::from_fn(|| p.slot.take().map(|f| f.seq)));
    // Strictly increasing: never an older frame after a newer one.
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");
    // Every seq up to the last delivered is accounted for: delivered,
    // replaced or refused in the slot, or stale (no free encoder).
    let last = *seqs.last().unwrap();
    let dropped = p.slot.dropped() + p.counters.stale.load(Ordering::Relaxed);
    assert!(
        seqs.len() as u64 + dropped > last,
        "{} delivered + {dropped} dropped < {} frames",
        seqs.len(),
        last + 1
    );
}

/// What a test hardware encoder was asked to do.
#[derive(Default)]
struct HwLog {
    /// Frames offered, and whether each came with a DMABUF.
    calls: Vec<bool>,
    reopened: u32,
}

/// A hardware encoder double: JPEG from the software encoder, failing on
/// the frames `fail_at` names (counted from 0), or on every imported one.
struct FakeHw {
    log: Arc<std::sync::Mutex<HwLog>>,
    imports: bool,
    fail_at: Vec<usize>,
}

impl HardwareEncoder for FakeHw {
    fn encode(
        &mut self,
        img: &RawImage<'_>,
        dmabuf: Option<&m2m::Dmabuf>,
        quality: u8,
        out: &mut Vec<u8>,
        _timeout: Duration,
    ) -> io::Result<()> {
        let n = {
            let mut log = self.log.lock().unwrap();
            log.calls.push(dmabuf.is_some());
            log.calls.len() - 1
        };
        if self.imports || self.fail_at.contains(&n) {
            return Err(io::Error::other("the test encoder failed"));
        }
        encode_raw(img, quality, None, out).map_err(io::Error::other)
    }
    fn imports(&self) -> bool {
        self.imports
    }
    fn coded(&self) -> [u8; 4] {
        *b"JPEG"
    }
    fn describe(&self) -> String {
        "test encoder".into()
    }
    fn reopen_copying(&self) -> io::Result<Box<dyn HardwareEncoder>> {
        self.log.lock().unwrap().reopened += 1;
        Ok(Box::new(FakeHw {
            log: self.log.clone(),
            imports: false,
            fail_at: self.fail_at.clone(),
        }))
    }
}

/// The pattern, as a source that lends its buffers (fake DMABUF fds).
struct Lending {
    inner: pattern::PatternSource,
    exported: bool,
}

impl FrameSource for Lending {
    fn granted(&self) -> &Granted {
        self.inner.granted()
    }
    fn self_paced(&self) -> bool {
        true
    }
    fn export_buffers(&mut self) -> Option<usize> {
        self.exported = true;
        Some(2)
    }
    fn next_frame(&mut self, fps: u32) -> io::Result<Option<SourceFrame<'_>>> {
        let exported = self.exported;
        Ok(self.inner.next_frame(fps)?.map(|mut f| {
            if exported {
                f.dmabuf = Some(m2m::Dmabuf {
                    fd: -1,
                    len: 0,
                    index: 0,
                });
            }
            f
        }))
    }
}

/// Runs the capture loop with `source` and the hardware encoder `hw` until
/// `frames` frames came out (or the pipeline stopped); the frames' seqs.
fn run_hw(
    c: SourceConfig,
    source: Box<dyn FrameSource + Send>,
    hw: Option<FakeHw>,
    frames: usize,
) -> (Arc<Pipeline>, Vec<Frame>) {
    let p = Pipeline::for_source(&c).unwrap();
    let p2 = p.clone();
    let source = std::sync::Mutex::new(Some(source));
    let hw = std::sync::Mutex::new(hw);
    let h = std::thread::spawn(move || {
        let mut open = |_: &SourceConfig| -> Result<Box<dyn FrameSource + Send>, SourceError> {
            source
                .lock()
                .unwrap()
                .take()
                .ok_or_else(|| SourceError::failed("opened twice"))
        };
        let mut open_hw = |_: [u8; 4], _: RawFormat, _: &Granted, _: Option<m2m::Import>| match hw
            .lock()
            .unwrap()
            .take()
        {
            Some(h) => Ok(Box::new(h) as Box<dyn HardwareEncoder>),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "no test encoder")),
        };
        run_with(&p2, &c, &mut open, &mut open_hw);
    });
    let mut out = Vec::new();
    let end = Instant::now() + Duration::from_secs(20);
    while out.len() < frames && p.fatal().is_none() && Instant::now() < end {
        if let Some(f) = p.slot.take() {
            out.push(f);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    p.controls.request_shutdown();
    h.join().unwrap();
    (p, out)
}

fn hw_cfg(choice: crate::config::EncoderChoice) -> SourceConfig {
    SourceConfig {
        encoder: choice,
        ..cfg(200)
    }
}

#[test]
fn a_hardware_encoder_failing_mid_stream_falls_back_to_software_once() {
    let log = Arc::new(std::sync::Mutex::new(HwLog::default()));
    let hw = FakeHw {
        log: log.clone(),
        imports: false,
        fail_at: vec![3],
    };
    let src = Box::new(pattern::PatternSource::new(64, 48, 200).unwrap());
    let (p, frames) = run_hw(
        hw_cfg(crate::config::EncoderChoice::Auto),
        src,
        Some(hw),
        12,
    );
    assert_eq!(frames.len(), 12, "frames stopped after the failure");
    // Every frame is a JPEG with its COM segment, hardware-made or not.
    for f in &frames {
        assert_eq!(crate::wire::com::parse(&f.jpeg).unwrap().seq, f.seq);
    }
    assert_eq!(p.counters.encoder_fallbacks.load(Ordering::Relaxed), 1);
    // Frames 0–2 in hardware, frame 3 failed there, and the hardware was
    // never asked again.
    assert_eq!(log.lock().unwrap().calls.len(), 4);
}

#[test]
fn an_encoder_refusing_the_cameras_buffers_is_reopened_to_copy_them() {
    let log = Arc::new(std::sync::Mutex::new(HwLog::default()));
    let hw = FakeHw {
        log: log.clone(),
        imports: true,
        fail_at: Vec::new(),
    };
    let src = Box::new(Lending {
        inner: pattern::PatternSource::new(64, 48, 200).unwrap(),
        exported: false,
    });
    let (p, frames) = run_hw(
        hw_cfg(crate::config::EncoderChoice::Hardware),
        src,
        Some(hw),
        8,
    );
    assert_eq!(frames.len(), 8);
    assert_eq!(p.counters.encoder_fallbacks.load(Ordering::Relaxed), 0);
    let log = log.lock().unwrap();
    assert_eq!(log.reopened, 1);
    // The first frame was offered as DMABUF (refused), then again copied;
    // later ones always copied, all in hardware.
    assert!(log.calls[0]);
    assert!(log.calls[1..].iter().all(|&d| !d), "{:?}", log.calls);
    assert!(log.calls.len() >= 9);
}

#[test]
fn encoder_hardware_without_one_stops_with_a_clear_error() {
    let src = Box::new(pattern::PatternSource::new(64, 48, 200).unwrap());
    let (p, frames) = run_hw(hw_cfg(crate::config::EncoderChoice::Hardware), src, None, 1);
    assert!(frames.is_empty());
    let why = p.fatal().expect("the pipeline did not stop");
    assert!(
        why.contains("source.encoder = hardware") && why.contains("no test encoder"),
        "{why}"
    );
}

#[test]
fn encoder_auto_without_one_encodes_in_software() {
    let src = Box::new(pattern::PatternSource::new(64, 48, 200).unwrap());
    let (p, frames) = run_hw(hw_cfg(crate::config::EncoderChoice::Auto), src, None, 5);
    assert_eq!(frames.len(), 5);
    assert!(p.fatal().is_none());
    assert_eq!(p.counters.encoder_fallbacks.load(Ordering::Relaxed), 0);
}

#[test]
fn the_patterns_controls_are_checked_before_it_starts_and_exec_has_none() {
    let with = |kind: SourceKind, controls: Vec<(String, ControlValue)>| SourceConfig {
        kind,
        controls,
        ..cfg(15)
    };
    let one = |name: &str, v: ControlValue| vec![(name.to_string(), v)];
    assert!(
        check_controls(&with(
            SourceKind::Pattern,
            one("brightness", ControlValue::Int(10))
        ))
        .is_ok()
    );
    for (name, v, words) in [
        (
            "brightness",
            ControlValue::Int(500),
            "500 is out of range (-100..=100)",
        ),
        (
            "hflip",
            ControlValue::Text("yes".into()),
            "\"yes\" is not true or false",
        ),
        (
            "zoom",
            ControlValue::Int(1),
            "no such control (the pattern has: hflip, vflip, brightness)",
        ),
    ] {
        let e = check_controls(&with(SourceKind::Pattern, one(name, v))).unwrap_err();
        assert_eq!(e.key, format!("source.controls.{name}"));
        assert_eq!(e.reason, words);
    }
    let exec = SourceKind::Exec(vec!["rpicam-vid".into()]);
    let e = check_controls(&with(exec, one("hflip", ControlValue::Bool(true)))).unwrap_err();
    assert!(e.reason.contains("no image controls"), "{e}");
    // A device's wait for it to open.
    let dev = with(
        SourceKind::Device("/dev/video9".into()),
        one("brightness", ControlValue::Int(500)),
    );
    assert!(check_controls(&dev).is_ok());
    assert!(crate::config::controls_checked_at_open(&dev));
}

/// A camera that makes its own JPEG, with or without a compression quality
/// control; what zerocam sets on it is logged in `set`.
struct JpegCam {
    granted: Granted,
    jpeg: Vec<u8>,
    has_quality: bool,
    set: Arc<std::sync::Mutex<Vec<i64>>>,
}

impl JpegCam {
    fn new(has_quality: bool) -> (JpegCam, Arc<std::sync::Mutex<Vec<i64>>>) {
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, 80)
            .encode(&[90; 64 * 48 * 3], 64, 48, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        let set = Arc::new(std::sync::Mutex::new(Vec::new()));
        let cam = JpegCam {
            granted: Granted {
                format: SourceFormat::Mjpeg,
                width: 64,
                height: 48,
                stride: 0,
                fps: 100,
                label: "mjpeg",
            },
            jpeg,
            has_quality,
            set: set.clone(),
        };
        (cam, set)
    }
}

impl FrameSource for JpegCam {
    fn granted(&self) -> &Granted {
        &self.granted
    }
    fn self_paced(&self) -> bool {
        true
    }
    fn controls(&mut self) -> Vec<crate::wire::controls::ControlInfo> {
        if !self.has_quality {
            return Vec::new();
        }
        vec![crate::wire::controls::ControlInfo {
            name: "compression_quality".into(),
            id: camera_quality::JPEG_COMPRESSION_QUALITY,
            kind: crate::wire::controls::Kind::Integer {
                min: 1,
                max: 100,
                step: 1,
            },
            default: 30,
            value: self.set.lock().unwrap().last().copied().unwrap_or(30),
            read_only: false,
        }]
    }
    fn set_control(&mut self, id: u32, value: i64) -> io::Result<()> {
        assert_eq!(id, camera_quality::JPEG_COMPRESSION_QUALITY);
        self.set.lock().unwrap().push(value);
        Ok(())
    }
    fn next_frame(&mut self, _fps: u32) -> io::Result<Option<SourceFrame<'_>>> {
        std::thread::sleep(Duration::from_millis(5));
        Ok(Some(SourceFrame {
            captured_at_us: 1,
            skipped: 0,
            data: FrameData::Mjpeg(&self.jpeg),
            dmabuf: None,
        }))
    }
}

/// Runs the capture loop on `cam`; `during` runs once frames flow.
fn run_jpeg_cam(cam: JpegCam, during: impl FnOnce(&Pipeline)) -> Arc<Pipeline> {
    let c = cfg(100);
    let p = Pipeline::for_source(&c).unwrap();
    let p2 = p.clone();
    let cam = std::sync::Mutex::new(Some(cam));
    let h = std::thread::spawn(move || {
        let mut open = |_: &SourceConfig| -> Result<Box<dyn FrameSource + Send>, SourceError> {
            match cam.lock().unwrap().take() {
                Some(c) => Ok(Box::new(c)),
                None => Err(SourceError::failed("opened twice")),
            }
        };
        run(&p2, &c, &mut open);
    });
    take(&p);
    during(&p);
    p.controls.request_shutdown();
    h.join().unwrap();
    p
}

/// Waits (bounded) until `log` holds `want`.
fn wait_for_sets(log: &std::sync::Mutex<Vec<i64>>, want: &[i64]) {
    let end = Instant::now() + Duration::from_secs(10);
    while log.lock().unwrap().as_slice() != want {
        assert!(
            Instant::now() < end,
            "camera quality set {:?}, not {want:?}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_jpeg_camera_with_a_quality_control_follows_the_encode_quality() {
    let (cam, set) = JpegCam::new(true);
    let p = run_jpeg_cam(cam, |p| {
        // The configured quality at open, once (not once per frame).
        let q = i64::from(p.controls.quality());
        wait_for_sets(&set, &[q]);
        assert_eq!(p.controls.quality_knob(), QualityKnob::CameraControl);
        assert_eq!(
            p.controls.effective_adapt(),
            crate::config::AdaptMode::Quality
        );
        // The link allows less: the camera is told; then it recovers.
        p.controls.set_link(Some(35), None);
        wait_for_sets(&set, &[q, 35]);
        p.controls.set_link(None, None);
        wait_for_sets(&set, &[q, 35, q]);
        take(p);
    });
    assert_eq!(set.lock().unwrap().len(), 3);
    assert!(p.counters.captured.load(Ordering::Relaxed) >= 2);
}

#[test]
fn a_jpeg_camera_without_one_leaves_the_link_to_the_frame_rate() {
    let (cam, set) = JpegCam::new(false);
    run_jpeg_cam(cam, |p| {
        assert_eq!(p.controls.quality_knob(), QualityKnob::None);
        assert_eq!(p.controls.effective_adapt(), crate::config::AdaptMode::Fps);
        p.controls.set_adapt(crate::config::AdaptMode::Off);
        assert_eq!(p.controls.effective_adapt(), crate::config::AdaptMode::Off);
    });
    assert!(set.lock().unwrap().is_empty());
}
