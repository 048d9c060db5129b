//! The built-in test pattern: colour bars over a grey ramp, a white bar
//! sweeping across, and a frame counter plus a UTC clock drawn with a tiny
//! bitmap font. Produced as raw YUYV so that it goes through exactly the
//! encode path a YUYV camera would.

use std::io;
use std::time::{Duration, Instant};

use super::{FrameSource, Granted, SourceFrame};
use crate::encode::{RawFormat, RawImage};
use crate::wire::controls::{ControlInfo, Kind};

/// 75 % colour bars as (Y, U, V), BT.601 studio range.
const BARS: [(u8, u8, u8); 8] = [
    (180, 128, 128), // white
    (162, 44, 142),  // yellow
    (131, 156, 44),  // cyan
    (112, 72, 58),   // green
    (84, 184, 198),  // magenta
    (65, 100, 212),  // red
    (35, 212, 114),  // blue
    (16, 128, 128),  // black
];

/// 5×7 glyphs, one byte per row, bit 4 = leftmost column.
fn glyph(c: u8) -> [u8; 7] {
    match c {
        b'0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        b'1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        b'2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        b'3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        b'4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        b'5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        b'6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        b'7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        b'8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        b'9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        b':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        b'.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        b'#' => [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A],
        b'-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        b'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        _ => [0; 7],
    }
}

/// A natural-looking YUYV frame: smooth gradients, a soft texture of
/// overlapping waves and fine noise, so that the entropy coder sees
/// something like a real camera's output (the test pattern's flat bars
/// compress unrealistically well). Deterministic for a given size; the
/// benchmarks encode it too.
pub fn natural_yuyv(width: usize, height: usize) -> Vec<u8> {
    let mut out = vec![0u8; width * height * 2];
    let mut rng: u32 = 0x1234_5678;
    let mut noise = move || {
        // xorshift32: cheap, deterministic, good enough for sensor noise.
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        (rng % 13) as f32 - 6.0
    };
    let (w, h) = (width as f32, height as f32);
    for y in 0..height {
        for x in 0..width {
            let (fx, fy) = (x as f32 / w, y as f32 / h);
            let texture = 18.0 * ((fx * 37.0).sin() * (fy * 23.0).cos())
                + 10.0 * ((fx * 5.0 + fy * 7.0) * std::f32::consts::TAU).sin()
                + 6.0 * ((fx * 131.0 + fy * 97.0).sin());
            let luma = 40.0 + 150.0 * (0.6 * fx + 0.4 * fy) + texture + noise();
            let at = y * width * 2 + x * 2;
            out[at] = luma.clamp(16.0, 235.0) as u8;
            out[at + 1] = if x % 2 == 0 {
                (110.0 + 40.0 * fy + 0.3 * texture + 0.5 * noise()).clamp(16.0, 240.0) as u8
            } else {
                (150.0 - 40.0 * fx - 0.3 * texture + 0.5 * noise()).clamp(16.0, 240.0) as u8
            };
        }
    }
    out
}

/// Renders the animated pattern into a reusable YUYV buffer.
#[derive(Debug)]
pub struct Pattern {
    width: usize,
    height: usize,
    /// The static part (bars and ramp, or the scene), copied under each
    /// frame.
    background: Vec<u8>,
    frame: Vec<u8>,
    count: u64,
    /// The background is the natural-looking scene, which scrolls.
    scene: bool,
}

impl Pattern {
    /// A pattern of `width × height` (both even, at least 2).
    pub fn new(width: u32, height: u32) -> io::Result<Pattern> {
        if width < 2
            || height < 2
            || width % 2 != 0
            || height % 2 != 0
            || width > 8192
            || height > 8192
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("pattern size {width}x{height} must be even and between 2 and 8192"),
            ));
        }
        let (w, h) = (width as usize, height as usize);
        let mut background = vec![0u8; w * h * 2];
        let bars_end = h * 2 / 3;
        for (y, row) in background.chunks_exact_mut(w * 2).enumerate() {
            for (pair, px) in row.chunks_exact_mut(4).enumerate() {
                let x = pair * 2;
                let (yy, u, v) = if y < bars_end {
                    BARS[x * 8 / w]
                } else {
                    (16 + (219 * x / w) as u8, 128, 128)
                };
                px.copy_from_slice(&[yy, u, yy, v]);
            }
        }
        Ok(Pattern {
            width: w,
            height: h,
            frame: background.clone(),
            background,
            count: 0,
            scene: false,
        })
    }

    /// The pattern's counter and clock over [`natural_yuyv`], scrolling
    /// sideways two pixels a frame: every frame differs, and each encodes
    /// to about what a real camera's picture of that size does.
    pub fn scene(width: u32, height: u32) -> io::Result<Pattern> {
        let mut p = Pattern::new(width, height)?;
        p.background = natural_yuyv(p.width, p.height);
        p.scene = true;
        Ok(p)
    }

    /// Frames rendered so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Renders the next frame for wall-clock time `ts_us` and returns it
    /// (YUYV, stride = width × 2).
    pub fn render(&mut self, ts_us: u64) -> &[u8] {
        let w = self.width;
        if self.scene {
            // Scrolled by an even number of pixels: YUYV pairs stay whole.
            let shift = ((self.count % (w as u64 / 2)) as usize * 2) * 2;
            for (dst, src) in self
                .frame
                .chunks_exact_mut(w * 2)
                .zip(self.background.chunks_exact(w * 2))
            {
                dst[..w * 2 - shift].copy_from_slice(&src[shift..]);
                dst[w * 2 - shift..].copy_from_slice(&src[..shift]);
            }
            return self.overlay(ts_us);
        }
        self.frame.copy_from_slice(&self.background);
        // The sweeping bar: 1/16 of the width, 1/64 of the width per frame.
        let bar_w = (w / 16).max(2) & !1;
        let step = (w / 64).max(2) & !1;
        // Modulo first: no overflow on 32-bit after weeks of frames.
        let x0 = (((self.count % w as u64) as usize * step) % w) & !1;
        for row in self.frame.chunks_exact_mut(w * 2) {
            let end = (x0 + bar_w).min(w);
            for px in row[x0 * 2..end * 2].chunks_exact_mut(4) {
                px.copy_from_slice(&[235, 128, 235, 128]);
            }
        }
        self.overlay(ts_us)
    }

    /// Draws the counter and the clock on the frame, and counts it.
    fn overlay(&mut self, ts_us: u64) -> &[u8] {
        let h = self.height;
        // Counter and clock, scaled so they stay legible at any size.
        let scale = (h / 120).clamp(1, 8);
        let secs = ts_us / 1_000_000;
        let clock = format!(
            "{:02}:{:02}:{:02}.{:03}Z",
            (secs / 3600) % 24,
            (secs / 60) % 60,
            secs % 60,
            (ts_us / 1000) % 1000
        );
        let counter = format!("#{:06}", self.count);
        let line_h = 9 * scale;
        self.text(2 * scale, 2 * scale, scale, counter.as_bytes());
        self.text(2 * scale, 2 * scale + line_h, scale, clock.as_bytes());
        self.count += 1;
        &self.frame
    }

    /// The last rendered frame.
    pub fn frame(&self) -> &[u8] {
        &self.frame
    }

    /// Applies the software image controls to the last rendered frame:
    /// mirror (`hflip`), upside down (`vflip`), and `brightness` added to
    /// the luma (clamped to the video range).
    pub fn adjust(&mut self, hflip: bool, vflip: bool, brightness: i64) {
        let (w, h) = (self.width, self.height);
        let row = w * 2;
        if vflip {
            for y in 0..h / 2 {
                let (top, bottom) = self.frame.split_at_mut((h - 1 - y) * row);
                top[y * row..(y + 1) * row].swap_with_slice(&mut bottom[..row]);
            }
        }
        if hflip {
            for r in self.frame.chunks_exact_mut(row) {
                // YUYV: reverse the pixel pairs, and the two lumas of each.
                let pairs = w / 2;
                for i in 0..pairs / 2 {
                    let j = pairs - 1 - i;
                    for k in 0..4 {
                        r.swap(i * 4 + k, j * 4 + k);
                    }
                }
                for px in r.chunks_exact_mut(4) {
                    px.swap(0, 2);
                }
            }
        }
        if brightness != 0 {
            for px in self.frame.chunks_exact_mut(2) {
                px[0] = (i64::from(px[0]) + brightness).clamp(16, 235) as u8;
            }
        }
    }

    /// Draws white text on a black box at (x, y), clipped to the frame.
    fn text(&mut self, x: usize, y: usize, scale: usize, s: &[u8]) {
        let (w, h) = (self.width, self.height);
        let box_w = (s.len() * 6 + 1) * scale;
        let box_h = 9 * scale;
        let x = x & !1;
        let x_end = (x + box_w).min(w) & !1;
        for yy in y..(y + box_h).min(h) {
            let row = &mut self.frame[yy * w * 2..(yy + 1) * w * 2];
            for px in row[x * 2..x_end * 2].chunks_exact_mut(4) {
                px.copy_from_slice(&[16, 128, 16, 128]);
            }
        }
        for (i, &c) in s.iter().enumerate() {
            let g = glyph(c);
            let gx = x + (1 + i * 6) * scale;
            for (gy, bits) in g.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) == 0 {
                        continue;
                    }
                    for dy in 0..scale {
                        let py = y + (1 + gy) * scale + dy;
                        if py >= h {
                            continue;
                        }
                        for dx in 0..scale {
                            let px = gx + col * scale + dx;
                            if px < w {
                                self.frame[(py * w + px) * 2] = 235;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The pattern as a [`FrameSource`], paced to the live fps by sleeping to
/// a schedule (so a slow encode does not make the rate drift).
#[derive(Debug)]
pub struct PatternSource {
    pattern: Pattern,
    granted: Granted,
    next_due: Option<Instant>,
    hflip: bool,
    vflip: bool,
    brightness: i64,
}

/// The pattern's software controls, with the V4L2 ids of their namesakes.
const HFLIP: u32 = 0x0098_0914;
const VFLIP: u32 = 0x0098_0915;
const BRIGHTNESS: u32 = 0x0098_0900;

impl PatternSource {
    /// A pattern source of `width × height` (even) starting at `fps`.
    pub fn new(width: u32, height: u32, fps: u32) -> io::Result<PatternSource> {
        PatternSource::with(Pattern::new(width, height)?, fps)
    }

    /// The natural-looking moving scene ([`Pattern::scene`]) as a source.
    pub fn scene(width: u32, height: u32, fps: u32) -> io::Result<PatternSource> {
        PatternSource::with(Pattern::scene(width, height)?, fps)
    }

    fn with(pattern: Pattern, fps: u32) -> io::Result<PatternSource> {
        let (width, height) = (pattern.width as u32, pattern.height as u32);
        Ok(PatternSource {
            pattern,
            granted: Granted {
                format: super::SourceFormat::Raw(RawFormat::Yuyv),
                width,
                height,
                stride: width as usize * 2,
                fps,
                label: "pattern",
            },
            next_due: None,
            hflip: false,
            vflip: false,
            brightness: 0,
        })
    }
}

/// Longest single sleep, so shutdown and fps changes are seen promptly.
const MAX_SLEEP: Duration = Duration::from_millis(50);

impl FrameSource for PatternSource {
    fn granted(&self) -> &Granted {
        &self.granted
    }

    fn self_paced(&self) -> bool {
        true
    }

    fn next_frame(&mut self, fps: u32) -> io::Result<Option<SourceFrame<'_>>> {
        if !pace(&mut self.next_due, fps) {
            return Ok(None);
        }
        self.granted.fps = fps;
        let ts = crate::frame::now_us();
        let (w, h) = (self.granted.width, self.granted.height);
        self.pattern.render(ts);
        self.pattern.adjust(self.hflip, self.vflip, self.brightness);
        let data = self.pattern.frame();
        Ok(Some(SourceFrame {
            skipped: 0,
            dmabuf: None,
            captured_at_us: ts,
            data: super::FrameData::Raw(RawImage {
                format: RawFormat::Yuyv,
                width: w,
                height: h,
                stride: w as usize * 2,
                data,
            }),
        }))
    }

    fn controls(&mut self) -> Vec<ControlInfo> {
        controls(self.hflip, self.vflip, self.brightness)
    }

    fn set_control(&mut self, id: u32, value: i64) -> io::Result<()> {
        match id {
            HFLIP => self.hflip = value != 0,
            VFLIP => self.vflip = value != 0,
            BRIGHTNESS => self.brightness = value.clamp(-100, 100),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("the pattern has no control {id:#x}"),
                ));
            }
        }
        Ok(())
    }
}

/// The test pattern's image controls, with these values (also what
/// `check-config` checks `[source.controls]` against for the pattern).
pub fn controls(hflip: bool, vflip: bool, brightness: i64) -> Vec<ControlInfo> {
    let flag = |name: &str, id, on: bool| ControlInfo {
        name: name.into(),
        id,
        kind: Kind::Boolean,
        default: 0,
        value: i64::from(on),
        read_only: false,
    };
    vec![
        flag("hflip", HFLIP, hflip),
        flag("vflip", VFLIP, vflip),
        ControlInfo {
            name: "brightness".into(),
            id: BRIGHTNESS,
            kind: Kind::Integer {
                min: -100,
                max: 100,
                step: 1,
            },
            default: 0,
            value: brightness,
            read_only: false,
        },
    ]
}

/// Sleep-to-schedule pacing shared by the pattern sources: true when the
/// next frame is due now; false after a short sleep (call again).
fn pace(next_due: &mut Option<Instant>, fps: u32) -> bool {
    let interval = Duration::from_secs(1) / fps.max(1);
    let now = Instant::now();
    let due = *next_due.get_or_insert(now);
    if now < due {
        std::thread::sleep((due - now).min(MAX_SLEEP));
        if Instant::now() < due {
            return false;
        }
    }
    // If we fell far behind, resynchronise instead of bursting to catch up.
    let next = due + interval;
    *next_due = Some(if next + interval < Instant::now() {
        Instant::now() + interval
    } else {
        next
    });
    true
}

/// How many pattern frames `pattern-mjpeg` pre-encodes and then replays.
const MJPEG_LOOP: usize = 30;

/// `--source pattern-mjpeg`: the test pattern encoded once at start-up
/// (quality 80) and replayed as MJPEG frames, so that the capture thread
/// takes the MJPEG pass-through path exactly as with an MJPEG camera
/// (validation, Huffman-table check, COM insertion). What it leaves out is
/// the V4L2 dequeue/queue ioctls of a real device. The picture loops every
/// [`MJPEG_LOOP`] frames and its clock shows the start-up time.
#[derive(Debug)]
pub struct PatternMjpegSource {
    frames: Vec<Vec<u8>>,
    next: usize,
    granted: Granted,
    next_due: Option<Instant>,
}

impl PatternMjpegSource {
    /// Pre-encodes the loop of `width × height` frames.
    pub fn new(width: u32, height: u32, fps: u32) -> io::Result<PatternMjpegSource> {
        let mut pattern = Pattern::new(width, height)?;
        let t0 = crate::frame::now_us();
        let mut frames = Vec::with_capacity(MJPEG_LOOP);
        for i in 0..MJPEG_LOOP as u64 {
            let img = RawImage {
                format: RawFormat::Yuyv,
                width,
                height,
                stride: width as usize * 2,
                data: pattern.render(t0 + i * 1_000_000 / u64::from(fps.max(1))),
            };
            let mut jpeg = Vec::new();
            crate::encode::encode_raw(&img, 80, None, &mut jpeg)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
            frames.push(jpeg);
        }
        Ok(PatternMjpegSource {
            frames,
            next: 0,
            granted: Granted {
                format: super::SourceFormat::Mjpeg,
                width,
                height,
                stride: 0,
                fps,
                label: "pattern-mjpeg",
            },
            next_due: None,
        })
    }
}

impl FrameSource for PatternMjpegSource {
    fn granted(&self) -> &Granted {
        &self.granted
    }

    fn self_paced(&self) -> bool {
        true
    }

    fn next_frame(&mut self, fps: u32) -> io::Result<Option<SourceFrame<'_>>> {
        if !pace(&mut self.next_due, fps) {
            return Ok(None);
        }
        self.granted.fps = fps;
        let i = self.next % self.frames.len();
        self.next = self.next.wrapping_add(1);
        Ok(Some(SourceFrame {
            skipped: 0,
            captured_at_us: crate::frame::now_us(),
            data: super::FrameData::Mjpeg(&self.frames[i]),
            dmabuf: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg_len(yuyv: &[u8], w: u32, h: u32) -> usize {
        let img = RawImage {
            format: RawFormat::Yuyv,
            width: w,
            height: h,
            stride: w as usize * 2,
            data: yuyv,
        };
        let mut out = Vec::new();
        crate::encode::encode_raw(&img, 80, None, &mut out).unwrap();
        out.len()
    }

    #[test]
    fn the_scene_moves_and_encodes_like_a_real_picture_not_like_bars() {
        let (w, h) = (640, 480);
        let mut scene = Pattern::scene(w, h).unwrap();
        let a = scene.render(0).to_vec();
        let b = scene.render(66_000).to_vec();
        assert_ne!(a, b, "the scene does not move");
        let natural = jpeg_len(&natural_yuyv(w as usize, h as usize), w, h);
        let moving = jpeg_len(&b, w, h);
        let bars = jpeg_len(Pattern::new(w, h).unwrap().render(0), w, h);
        // About the benchmarks' natural frame (the overlay adds a little),
        // and several times the flat bars.
        let ratio = moving as f64 / natural as f64;
        assert!(
            (0.9..1.15).contains(&ratio),
            "scene {moving} B vs natural {natural} B"
        );
        assert!(moving > 3 * bars, "scene {moving} B vs bars {bars} B");
        // Two pixels a frame: YUYV pairs stay whole, for weeks of frames.
        let mut long = Pattern::scene(64, 16).unwrap();
        long.count = u64::MAX - 1;
        long.render(0);
    }

    #[test]
    fn frames_animate_and_the_counter_region_changes() {
        let mut p = Pattern::new(320, 240).unwrap();
        let a = p.render(1_000_000).to_vec();
        let b = p.render(1_000_000).to_vec();
        assert_ne!(a, b);
        // The counter sits in the top-left box; same clock, different count.
        let scale = 2;
        let region = |f: &[u8]| -> Vec<u8> {
            (2 * scale..11 * scale)
                .flat_map(|y| f[y * 640..y * 640 + 90 * scale].to_vec())
                .collect()
        };
        assert_ne!(region(&a), region(&b));
        assert_eq!(p.count(), 2);
    }

    #[test]
    fn any_even_size_works_and_odd_sizes_are_refused() {
        for (w, h) in [
            (2, 2),
            (4, 2),
            (34, 18),
            (320, 240),
            (642, 362),
            (1280, 720),
        ] {
            let mut p = Pattern::new(w, h).unwrap();
            for i in 0..3 {
                assert_eq!(p.render(i * 123_456_789).len(), (w * h * 2) as usize);
            }
        }
        assert!(Pattern::new(3, 2).is_err());
        assert!(Pattern::new(0, 2).is_err());
    }

    #[test]
    fn pattern_mjpeg_replays_whole_jpegs_that_pass_through() {
        let mut src = PatternMjpegSource::new(160, 120, 1000).unwrap();
        assert_eq!(src.granted().format, super::super::SourceFormat::Mjpeg);
        let mut out = Vec::new();
        for _ in 0..MJPEG_LOOP + 2 {
            let f = loop {
                if let Some(f) = src.next_frame(1000).unwrap() {
                    break f;
                }
            };
            let super::super::FrameData::Mjpeg(bytes) = f.data else {
                panic!("pattern-mjpeg is MJPEG")
            };
            let meta = crate::wire::com::FrameMeta {
                seq: 1,
                ts_us: f.captured_at_us,
                size: None,
            };
            let info = crate::encode::mjpeg::pass_through(bytes, &meta, &mut out).unwrap();
            assert_eq!((info.width, info.height), (160, 120));
        }
        let px = jpeg_decoder::Decoder::new(&out[..]).decode().unwrap();
        assert_eq!(px.len(), 160 * 120 * 3);
    }

    #[test]
    fn pattern_encodes_and_decodes() {
        let mut src = PatternSource::new(160, 120, 30).unwrap();
        let mut out = Vec::new();
        let f = loop {
            if let Some(f) = src.next_frame(30).unwrap() {
                break f;
            }
        };
        let super::super::FrameData::Raw(img) = f.data else {
            panic!("pattern is raw")
        };
        crate::encode::encode_raw(&img, 80, None, &mut out).unwrap();
        let px = jpeg_decoder::Decoder::new(&out[..]).decode().unwrap();
        assert_eq!(px.len(), 160 * 120 * 3);
    }

    #[test]
    fn software_controls_flip_and_brighten() {
        let (w, h) = (64usize, 48usize);
        // The first frame of a fresh pattern each time: the same picture.
        let first = |hflip, vflip, brightness| {
            let mut p = Pattern::new(w as u32, h as u32).unwrap();
            p.render(1);
            p.adjust(hflip, vflip, brightness);
            p.frame().to_vec()
        };
        let luma = |f: &[u8], x: usize, y: usize| f[(y * w + x) * 2];
        let plain = first(false, false, 0);
        let mirrored = first(true, false, 0);
        let upside_down = first(false, true, 0);
        let brighter = first(false, false, 40);
        for y in 0..h {
            for x in 0..w {
                assert_eq!(
                    luma(&mirrored, x, y),
                    luma(&plain, w - 1 - x, y),
                    "({x},{y})"
                );
                assert_eq!(
                    luma(&upside_down, x, y),
                    luma(&plain, x, h - 1 - y),
                    "({x},{y})"
                );
            }
        }
        let (a, b) = (luma(&plain, 50, 40), luma(&brighter, 50, 40));
        assert_eq!(b, (a + 40).min(235));
        let mut src = PatternSource::new(64, 48, 30).unwrap();
        let names: Vec<String> = src.controls().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["hflip", "vflip", "brightness"]);
        src.set_control(HFLIP, 1).unwrap();
        assert_eq!(src.controls()[0].value, 1);
        assert!(src.set_control(0x1234, 1).is_err());
    }
}
