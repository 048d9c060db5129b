//! A stand-in for Raspberry Pi OS's `rpicam-vid`, for `scripts/boot-test`:
//! the emulated Pi Zero has no CSI camera and no libcamera, but the
//! libcamera drop-in (`deploy/libcamera.conf`) must still be proven to start
//! its program under the unit's hardening and to stream what it writes.
//!
//! It takes the options the drop-in passes (`-t 0 -n --codec yuv420 --width W
//! --height H --framerate F -o -`) and writes raw YU12 (I420) frames to
//! stdout at that rate, as rpicam-vid does: a gradient that moves each frame,
//! so a viewer can tell fresh frames from a repeated one. Unknown options or
//! another codec are refused with a message, like the real program. It exits
//! quietly when the reader goes away (EPIPE) and after `-t MS` when not 0.

use std::io::{ErrorKind, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// What the command line asks for.
struct Options {
    width: usize,
    height: usize,
    fps: u32,
    timeout: Option<Duration>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        width: 640,
        height: 480,
        fps: 30,
        timeout: Some(Duration::from_secs(5)),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "-n" | "--nopreview" => {}
            // Also the boot test's broken update: it passes deploy's
            // `--version` check and then exits at start.
            "--version" => {
                println!("rpicam-vid (zerocam test stand-in)");
                std::process::exit(0);
            }
            "-t" | "--timeout" => {
                let ms: u64 = value(a)?.parse().map_err(|_| "-t takes milliseconds")?;
                o.timeout = (ms > 0).then(|| Duration::from_millis(ms));
            }
            "--codec" => {
                let c = value(a)?;
                if c != "yuv420" {
                    return Err(format!("this stand-in writes --codec yuv420 only, not {c}"));
                }
            }
            "--width" => o.width = value(a)?.parse().map_err(|_| "--width takes a number")?,
            "--height" => o.height = value(a)?.parse().map_err(|_| "--height takes a number")?,
            "--framerate" => {
                let f: f64 = value(a)?
                    .parse()
                    .map_err(|_| "--framerate takes a number")?;
                o.fps = f.round().clamp(1.0, 120.0) as u32;
            }
            "-o" | "--output" => {
                let out = value(a)?;
                if out != "-" {
                    return Err(format!(
                        "this stand-in writes to stdout (-o -) only, not {out}"
                    ));
                }
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    if o.width == 0 || o.height == 0 || o.width % 2 != 0 || o.height % 2 != 0 || o.width > 4096 {
        return Err(format!("unsupported size {}x{}", o.width, o.height));
    }
    Ok(o)
}

/// One I420 frame: a diagonal luma ramp shifted by `n`, chroma slowly cycling.
fn frame(o: &Options, n: usize, buf: &mut Vec<u8>) {
    buf.clear();
    for y in 0..o.height {
        buf.extend((0..o.width).map(|x| ((x + y + 4 * n) % 220 + 16) as u8));
    }
    let chroma = o.width / 2 * (o.height / 2);
    buf.extend(std::iter::repeat_n((96 + n % 64) as u8, chroma));
    buf.extend(std::iter::repeat_n((160 - n % 64) as u8, chroma));
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("rpicam-vid (zerocam test stand-in): {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "rpicam-vid (zerocam test stand-in): {}x{} YU12 at {} fps to stdout",
        o.width, o.height, o.fps
    );
    let period = Duration::from_secs(1) / o.fps;
    let start = Instant::now();
    let mut out = std::io::stdout().lock();
    let mut buf = Vec::new();
    for n in 0.. {
        if o.timeout.is_some_and(|t| start.elapsed() >= t) {
            break;
        }
        frame(&o, n, &mut buf);
        match out.write_all(&buf).and_then(|()| out.flush()) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::BrokenPipe => break,
            Err(e) => {
                eprintln!("rpicam-vid (zerocam test stand-in): write failed: {e}");
                return ExitCode::FAILURE;
            }
        }
        // Paced from the start, so a slow write does not slow the rate.
        let due = start + period * (n as u32 + 1);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    ExitCode::SUCCESS
}
