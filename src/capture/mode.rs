//! Which mode to ask a V4L2 device for: a pure function of what the device
//! offers and what the operator requested, with the reason spelled out (it
//! is printed by `zerocam probe` and logged at start-up).

use std::fmt;

use super::SourceFormat;
use crate::encode::RawFormat;

/// Frame rates offered for one size.
#[derive(Debug, Clone, PartialEq)]
pub enum Rates {
    /// A list of discrete rates, frames per second.
    Discrete(Vec<f64>),
    /// Any rate in `min..=max` frames per second.
    Range { min: f64, max: f64 },
    /// The driver does not enumerate intervals.
    Unknown,
}

/// Frame sizes offered for one format.
#[derive(Debug, Clone, PartialEq)]
pub enum Sizes {
    /// Discrete sizes, each with its rates.
    Discrete(Vec<(u32, u32, Rates)>),
    /// Any size in the range on the step grid.
    Stepwise {
        min: (u32, u32),
        max: (u32, u32),
        step: (u32, u32),
        rates: Rates,
    },
}

/// One pixel format a device offers.
#[derive(Debug, Clone, PartialEq)]
pub struct FormatOffer {
    pub fourcc: [u8; 4],
    pub sizes: Sizes,
}

/// The mode zerocam will request, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub fourcc: [u8; 4],
    pub format: SourceFormat,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub reason: String,
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}x{} @ {} fps: {}",
            fourcc_str(&self.fourcc),
            self.width,
            self.height,
            self.fps,
            self.reason
        )
    }
}

pub use crate::encode::fourcc_str;

/// What zerocam can do with a FourCC, in order of preference.
pub fn supported(fourcc: &[u8; 4]) -> Option<(usize, SourceFormat)> {
    Some(match fourcc {
        b"MJPG" => (0, SourceFormat::Mjpeg),
        b"JPEG" => (1, SourceFormat::Mjpeg),
        b"YUYV" => (2, SourceFormat::Raw(RawFormat::Yuyv)),
        b"NV12" => (3, SourceFormat::Raw(RawFormat::Nv12)),
        b"YU12" => (4, SourceFormat::Raw(RawFormat::Yu12)),
        _ => return None,
    })
}

fn why_format(fmt: SourceFormat) -> &'static str {
    match fmt {
        SourceFormat::Mjpeg => {
            "the camera compresses, frames are passed through untouched (no encode on the Pi)"
        }
        SourceFormat::Raw(RawFormat::Yuyv) => {
            "no MJPEG offered; YUYV is the cheapest raw format to encode"
        }
        SourceFormat::Raw(_) => {
            "no MJPEG or YUYV offered; planar YUV is encoded straight from its planes"
        }
    }
}

/// Nearest point on a stepped range (even for raw formats).
fn on_grid(want: u32, min: u32, max: u32, step: u32, even: bool) -> u32 {
    let step = step.max(1);
    let c = want.clamp(min, max.max(min));
    let mut v = min + (c - min + step / 2) / step * step;
    if v > max {
        v -= step;
    }
    if even && v % 2 == 1 {
        v = if v + step <= max {
            v + step
        } else {
            v.saturating_sub(step)
        };
    }
    v.max(min)
}

/// Picks the rate: the lowest offered rate at or above the request (the
/// capture loop decimates down to it), else the fastest offered.
fn pick_rate(rates: &Rates, want: u32) -> (u32, String) {
    let want_f = want as f64;
    match rates {
        Rates::Discrete(list) if !list.is_empty() => {
            let at_least = list
                .iter()
                .copied()
                .filter(|&r| r + 0.01 >= want_f)
                .fold(f64::INFINITY, f64::min);
            if at_least.is_finite() {
                let r = at_least.round().max(1.0) as u32;
                if r == want {
                    (r, format!("{want} fps is offered"))
                } else {
                    (
                        r,
                        format!(
                            "{r} fps is the lowest offered rate ≥ {want}; frames are decimated to {want}"
                        ),
                    )
                }
            } else {
                let best = list.iter().copied().fold(0.0, f64::max).round().max(1.0) as u32;
                (
                    best,
                    format!("{want} fps is not offered; {best} fps is the fastest"),
                )
            }
        }
        Rates::Range { min, max } => {
            let r = want_f.clamp(*min, *max).round().max(1.0) as u32;
            if r == want {
                (r, format!("{want} fps is within the offered range"))
            } else {
                (
                    r,
                    format!("{want} fps is outside {min:.1}..{max:.1}; using {r}"),
                )
            }
        }
        _ => (
            want,
            format!("the driver lists no rates; asking for {want} fps"),
        ),
    }
}

/// [`choose`] restricted to one FourCC when `format` is given (the
/// operator's `source.format`); an error names what the device offers.
pub fn choose_in(
    offers: &[FormatOffer],
    format: Option<[u8; 4]>,
    want_w: u32,
    want_h: u32,
    want_fps: u32,
) -> Result<Choice, String> {
    let Some(f) = format else {
        return choose(offers, want_w, want_h, want_fps);
    };
    let only: Vec<FormatOffer> = offers.iter().filter(|o| o.fourcc == f).cloned().collect();
    if only.is_empty() {
        let offered: Vec<String> = offers.iter().map(|o| fourcc_str(&o.fourcc)).collect();
        return Err(format!(
            "source.format {} is not offered (the device offers {})",
            fourcc_str(&f),
            offered.join(", ")
        ));
    }
    let mut c = choose(&only, want_w, want_h, want_fps)?;
    // Keep the size and rate reasons; only the format's changes.
    let rest = c
        .reason
        .strip_prefix(why_format(c.format))
        .unwrap_or(&c.reason)
        .trim_start_matches("; ")
        .to_string();
    c.reason = format!("{} requested by source.format; {rest}", fourcc_str(&f));
    Ok(c)
}

/// Chooses format, size and rate for a request of `want_w × want_h @
/// want_fps`. Format wins first (MJPEG, then YUYV, NV12, YU12), then the
/// offered size nearest to the request, then the rate.
pub fn choose(
    offers: &[FormatOffer],
    want_w: u32,
    want_h: u32,
    want_fps: u32,
) -> Result<Choice, String> {
    let best = offers
        .iter()
        .filter_map(|o| supported(&o.fourcc).map(|(rank, f)| (rank, f, o)))
        .filter(|(_, _, o)| match &o.sizes {
            Sizes::Discrete(v) => !v.is_empty(),
            Sizes::Stepwise { .. } => true,
        })
        .min_by_key(|(rank, _, _)| *rank);
    let Some((_, format, offer)) = best else {
        let offered: Vec<String> = offers.iter().map(|o| fourcc_str(&o.fourcc)).collect();
        return Err(if offered.is_empty() {
            "the device offers no capture formats".to_string()
        } else {
            format!(
                "the device offers only {} (zerocam needs MJPG, JPEG, YUYV, NV12 or YU12)",
                offered.join(", ")
            )
        });
    };
    let even = matches!(format, SourceFormat::Raw(_));
    let (width, height, rates) = match &offer.sizes {
        Sizes::Discrete(sizes) => {
            let dist = |w: u32, h: u32| {
                (w as i64 - want_w as i64).abs() + (h as i64 - want_h as i64).abs()
            };
            // Odd raw sizes cannot be 4:2:0-encoded: skip them if we can.
            let usable = sizes
                .iter()
                .filter(|(w, h, _)| !even || (w % 2 == 0 && h % 2 == 0));
            let pick = usable.min_by_key(|(w, h, _)| dist(*w, *h)).ok_or_else(|| {
                format!("{} is offered only at odd sizes", fourcc_str(&offer.fourcc))
            })?;
            (pick.0, pick.1, &pick.2)
        }
        Sizes::Stepwise {
            min,
            max,
            step,
            rates,
        } => (
            on_grid(want_w, min.0, max.0, step.0, even),
            on_grid(want_h, min.1, max.1, step.1, even),
            rates,
        ),
    };
    let size_why = if (width, height) == (want_w, want_h) {
        format!("{width}x{height} is offered")
    } else {
        format!("{width}x{height} is the offered size nearest to {want_w}x{want_h}")
    };
    let (fps, fps_why) = pick_rate(rates, want_fps);
    Ok(Choice {
        fourcc: offer.fourcc,
        format,
        width,
        height,
        fps,
        reason: format!("{}; {size_why}; {fps_why}", why_format(format)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discrete(fourcc: &[u8; 4], sizes: &[(u32, u32, &[f64])]) -> FormatOffer {
        FormatOffer {
            fourcc: *fourcc,
            sizes: Sizes::Discrete(
                sizes
                    .iter()
                    .map(|(w, h, r)| (*w, *h, Rates::Discrete(r.to_vec())))
                    .collect(),
            ),
        }
    }

    #[test]
    fn mjpeg_wins_over_raw() {
        let offers = [
            discrete(b"YUYV", &[(640, 480, &[30.0, 15.0])]),
            discrete(b"MJPG", &[(1280, 720, &[30.0]), (640, 480, &[30.0, 15.0])]),
        ];
        let c = choose(&offers, 640, 480, 15).unwrap();
        assert_eq!(&c.fourcc, b"MJPG");
        assert_eq!(c.format, SourceFormat::Mjpeg);
        assert_eq!((c.width, c.height, c.fps), (640, 480, 15));
        assert!(c.reason.contains("passed through"), "{}", c.reason);
    }

    #[test]
    fn vivid_like_devices_get_yuyv_then_nv12_then_yu12() {
        let yu12 = discrete(b"YU12", &[(640, 480, &[30.0])]);
        let nv12 = discrete(b"NV12", &[(640, 480, &[30.0])]);
        let yuyv = discrete(b"YUYV", &[(640, 480, &[30.0])]);
        let c = choose(&[yu12.clone(), nv12.clone(), yuyv], 640, 480, 15).unwrap();
        assert_eq!(c.format, SourceFormat::Raw(RawFormat::Yuyv));
        assert!(c.reason.contains("decimated"), "{}", c.reason);
        let c = choose(&[yu12.clone(), nv12], 640, 480, 15).unwrap();
        assert_eq!(c.format, SourceFormat::Raw(RawFormat::Nv12));
        let c = choose(&[yu12], 640, 480, 15).unwrap();
        assert_eq!(c.format, SourceFormat::Raw(RawFormat::Yu12));
    }

    #[test]
    fn nearest_size_and_rates() {
        let offers = [discrete(
            b"YUYV",
            &[
                (320, 240, &[30.0]),
                (800, 600, &[20.0, 10.0]),
                (1920, 1080, &[5.0]),
            ],
        )];
        let c = choose(&offers, 640, 480, 15).unwrap();
        assert_eq!((c.width, c.height, c.fps), (800, 600, 20));
        assert!(c.reason.contains("nearest to 640x480"), "{}", c.reason);
        let c = choose(&offers, 1920, 1080, 15).unwrap();
        assert_eq!((c.width, c.height, c.fps), (1920, 1080, 5));
        assert!(c.reason.contains("fastest"), "{}", c.reason);
    }

    #[test]
    fn a_requested_format_overrides_the_preference() {
        let offers = [
            discrete(b"MJPG", &[(640, 480, &[30.0])]),
            discrete(b"NV12", &[(640, 480, &[30.0]), (1280, 720, &[10.0])]),
        ];
        let c = choose_in(&offers, Some(*b"NV12"), 1280, 720, 10).unwrap();
        assert_eq!(c.format, SourceFormat::Raw(RawFormat::Nv12));
        assert_eq!((c.width, c.height, c.fps), (1280, 720, 10));
        assert!(c.reason.starts_with("NV12 requested"), "{}", c.reason);
        assert!(c.reason.contains("10 fps"), "{}", c.reason);
        let e = choose_in(&offers, Some(*b"YU12"), 640, 480, 15).unwrap_err();
        assert!(
            e.contains("YU12 is not offered") && e.contains("MJPG, NV12"),
            "{e}"
        );
        let c = choose_in(&offers, None, 640, 480, 15).unwrap();
        assert_eq!(&c.fourcc, b"MJPG");
    }

    #[test]
    fn stepwise_sizes_and_rate_ranges() {
        let offers = [FormatOffer {
            fourcc: *b"YUYV",
            sizes: Sizes::Stepwise {
                min: (16, 16),
                max: (1920, 1080),
                step: (1, 1),
                rates: Rates::Range {
                    min: 1.0,
                    max: 60.0,
                },
            },
        }];
        let c = choose(&offers, 642, 362, 25).unwrap();
        assert_eq!((c.width, c.height, c.fps), (642, 362, 25));
        let c = choose(&offers, 4000, 3000, 90).unwrap();
        assert_eq!((c.width, c.height, c.fps), (1920, 1080, 60));
        let c = choose(&offers, 8, 8, 15).unwrap();
        assert_eq!((c.width, c.height), (16, 16));
        assert_eq!(on_grid(641, 16, 1920, 1, true), 642);
        assert_eq!(on_grid(650, 0, 1920, 16, false), 656);
    }

    #[test]
    fn unusable_devices_name_what_they_offer() {
        let offers = [
            discrete(b"RGB3", &[(640, 480, &[30.0])]),
            discrete(b"GREY", &[]),
        ];
        let e = choose(&offers, 640, 480, 15).unwrap_err();
        assert!(e.contains("RGB3, GREY"), "{e}");
        assert!(
            choose(&[], 640, 480, 15)
                .unwrap_err()
                .contains("no capture formats")
        );
    }
}
