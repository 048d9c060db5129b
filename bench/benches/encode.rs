//! YUYV → JPEG at quality 80, one thread: zerocam's encoder against
//! libjpeg-turbo with SIMD and with SIMD switched off, then zerocam's
//! frames/s with 1, 2 and 4 worker threads. Prints markdown tables.
//!
//! `cargo bench` (in bench/) runs it; `-- --quick` shortens it. libjpeg-turbo
//! reads `JSIMD_FORCENONE` once per process, so the scalar comparison runs in
//! a child process of this same binary (`--child-scalar`), which times
//! zerocam again next to it: every ratio comes from contenders interleaved
//! in the same process and the same seconds.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use zerocam_bench::stats::{median, median_ratio};
use zerocam_bench::{
    QUALITY, Turbo, Zerocam, interleaved, natural_yuyv, turbo_simd_disabled, zerocam_threads,
};

const SIZES: [(usize, usize); 2] = [(640, 480), (1280, 720)];

struct Plan {
    rounds: usize,
    thread_secs: f64,
}

/// Frames per timed round: about 0.1–0.2 s of work per contender.
fn frames_per_round(w: usize) -> usize {
    if w <= 640 { 12 } else { 5 }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("encode bench: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let plan = if quick {
        Plan {
            rounds: 7,
            thread_secs: 1.5,
        }
    } else {
        Plan {
            rounds: 21,
            thread_secs: 4.0,
        }
    };
    if args.iter().any(|a| a == "--child-scalar") {
        return child_scalar(&plan);
    }
    if turbo_simd_disabled() {
        bail!(
            "run without JSIMD_FORCENONE: the bench switches SIMD off itself for the scalar rows"
        );
    }
    // The scalar half first (its own process), then the SIMD half here.
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let mut child = Command::new(exe);
    child.arg("--child-scalar").env("JSIMD_FORCENONE", "1");
    if quick {
        child.arg("--quick");
    }
    let out = child.output().context("running the scalar child")?;
    if !out.status.success() {
        bail!(
            "scalar child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let scalar = String::from_utf8_lossy(&out.stdout).into_owned();

    println!("### Encode: YUYV → JPEG, quality {QUALITY}, 4:2:0, one thread\n");
    println!(
        "Input: a natural-looking YUYV frame (gradients, texture, noise), the same bytes for every encoder. \
         libjpeg-turbo 3.x (bundled, via the `turbojpeg` crate) gets the frame repacked to planar I420 inside the timed call (its cheapest input; \
         the repack alone is shown). Times are medians over {} interleaved rounds; the ratio is the median of \
         per-round ratios, so load from other jobs cancels out.\n",
        plan.rounds
    );
    println!("| size | encoder | ms/frame | MP/s | JPEG KiB | zerocam's speed relative to it |");
    println!("|---|---|---:|---:|---:|---:|");
    for (w, h) in SIZES {
        let frame = natural_yuyv(w, h);
        let mut zc = Zerocam::new(w, h);
        let mut tj = Turbo::new(w, h)?;
        let mut rp = Turbo::new(w, h)?;
        let mut f_zc = || zc.encode(&frame);
        let mut f_tj = || tj.encode(&frame);
        let mut f_rp = || {
            rp.repack_only(&frame);
            Ok(0)
        };
        let t = interleaved(
            &mut [&mut f_zc, &mut f_tj, &mut f_rp],
            plan.rounds,
            frames_per_round(w),
        )?;
        let mp = (w * h) as f64 / 1e6;
        let (zc_len, tj_len) = (zc.jpeg().len(), tj.jpeg().len());
        let row = |name: &str, s: f64, len: Option<usize>, rel: &str| {
            println!(
                "| {w}×{h} | {name} | {:.2} | {:.1} | {} | {rel} |",
                s * 1e3,
                mp / s,
                len.map_or("–".to_string(), |l| format!("{:.1}", l as f64 / 1024.0))
            );
        };
        row(
            "zerocam's encoder",
            median(&t[0]),
            Some(zc_len),
            "1 (reference)",
        );
        row(
            "libjpeg-turbo, SIMD",
            median(&t[1]),
            Some(tj_len),
            &format!("{:.2}×", median_ratio(&t[1], &t[0])),
        );
        // The scalar child's line for this size: "w h zc_s tj_s ratio len".
        let line = scalar
            .lines()
            .find(|l| l.starts_with(&format!("SCALAR {w} {h} ")))
            .context("scalar child printed no line for this size")?;
        let f: Vec<f64> = line
            .split_whitespace()
            .skip(3)
            .map(|x| x.parse().unwrap_or(f64::NAN))
            .collect();
        if f.len() != 4 {
            bail!("bad scalar line {line:?}");
        }
        row(
            "libjpeg-turbo, no SIMD (`JSIMD_FORCENONE=1`)",
            f[1],
            Some(f[3] as usize),
            &format!("{:.2}×", f[2]),
        );
        println!(
            "| {w}×{h} | (zerocam, timed again next to the scalar run) | {:.2} | {:.1} | | |",
            f[0] * 1e3,
            mp / f[0]
        );
        row(
            "(YUYV → I420 repack alone, part of the turbo rows)",
            median(&t[2]),
            None,
            "",
        );
    }
    println!("\n\"Relative speed\" above 1 means zerocam is faster; below 1, libjpeg-turbo is.\n");

    println!("### Encode: zerocam's frames/s with N worker threads, 1280×720\n");
    println!(
        "Each thread encodes its own copy of the frame; {:.1} s per thread count in 6 interleaved rounds. This machine has {} cores shared with other jobs, \
         so the figures past its core count show contention, not the encoder.\n",
        plan.thread_secs,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| threads | frames/s (median) | vs 1 thread (median of per-round ratios) |");
    println!("|---:|---:|---:|");
    let frame = natural_yuyv(1280, 720);
    // Rounds of short runs, thread counts alternating, so load bursts from
    // other jobs hit every count alike.
    let counts = [1usize, 2, 4];
    let rounds = 6;
    let dur = Duration::from_secs_f64(plan.thread_secs / rounds as f64);
    let mut fps = vec![Vec::new(); counts.len()];
    for round in 0..rounds {
        for k in 0..counts.len() {
            let i = if round % 2 == 0 {
                k
            } else {
                counts.len() - 1 - k
            };
            fps[i].push(zerocam_threads(&frame, 1280, 720, counts[i], dur)?);
        }
    }
    for (i, n) in counts.iter().enumerate() {
        let rel = if i == 0 {
            "1".to_string()
        } else {
            format!("{:.2}×", median_ratio(&fps[i], &fps[0]))
        };
        println!("| {n} | {:.1} | {rel} |", median(&fps[i]));
    }
    println!();
    Ok(())
}

/// In the child (SIMD off): zerocam and scalar libjpeg-turbo, interleaved.
fn child_scalar(plan: &Plan) -> anyhow::Result<()> {
    if !turbo_simd_disabled() {
        bail!("--child-scalar needs JSIMD_FORCENONE=1");
    }
    for (w, h) in SIZES {
        let frame = natural_yuyv(w, h);
        let mut zc = Zerocam::new(w, h);
        let mut tj = Turbo::new(w, h)?;
        let mut f_zc = || zc.encode(&frame);
        let mut f_tj = || tj.encode(&frame);
        let t = interleaved(
            &mut [&mut f_zc, &mut f_tj],
            plan.rounds,
            frames_per_round(w),
        )?;
        println!(
            "SCALAR {w} {h} {} {} {} {}",
            median(&t[0]),
            median(&t[1]),
            median_ratio(&t[1], &t[0]),
            tj.jpeg().len()
        );
    }
    Ok(())
}
