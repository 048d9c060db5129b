//! The periodic stats: the `stats` message for the relay every
//! `stats_interval`, and the log line, written for an 80-column serial
//! console: at most [`MAX_LINE`] characters with its prefix, saying why
//! nothing is captured when nothing is, and quiet while paused (one line on
//! entering the pause, then one every [`PAUSED_LOG_EVERY`] unless something
//! changes).

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::pipeline::{Pipeline, Rates, StatsSnapshot};

/// The longest stats log line, prefix included.
pub const MAX_LINE: usize = 100;
/// The log prefix before the message: `HH:MM:SS.mmm INFO  stats: `.
const PREFIX_LEN: usize = 26;
/// While paused and nothing changes, a stats line this often.
pub const PAUSED_LOG_EVERY: Duration = Duration::from_secs(300);
/// The log target of the stats line (short, for the console).
pub const TARGET: &str = "stats";

/// The stats fields (without `type`): counters, rates and settings.
pub fn fields(s: &StatsSnapshot, r: &Rates) -> Map<String, Value> {
    let mut m = match serde_json::to_value(s) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    m.insert("fps_captured".into(), json!(round2(r.fps_captured)));
    m.insert("fps_sent".into(), json!(round2(r.fps_sent)));
    m.insert("kbit_s".into(), json!(round2(r.kbit_s)));
    m
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// What decides whether a paused camera's line is worth writing again.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Quiet {
    paused: bool,
    attempts: u64,
    source_errors: u64,
    corrupt: u64,
    source_error: Option<String>,
}

/// A link faster than this many times the stream's bit rate is not shown on
/// the stats line (the `stats` message still carries it).
const LINK_NEWS: f64 = 10.0;

/// The stats message, without the log prefix: the numbers in short form,
/// then, when the source delivers nothing, why. At most
/// `MAX_LINE - PREFIX_LEN` characters.
pub fn line(s: &StatsSnapshot, r: &Rates, d_dropped: u64, source_error: Option<&str>) -> String {
    let budget = MAX_LINE - PREFIX_LEN;
    let failing = source_error.filter(|_| r.fps_captured == 0.0);
    let mut out = if s.paused {
        "paused by the relay".to_string()
    } else if failing.is_none() {
        format!(
            "{:.1} fps, sent {:.1}, {:.0} kbit/s, drop {} (+{d_dropped})",
            r.fps_captured, r.fps_sent, r.kbit_s, s.dropped
        )
    } else {
        String::new()
    };
    // Why nothing is captured comes before everything optional.
    if let Some(e) = failing {
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str("no frames: ");
        out.push_str(e);
    }
    // Optional parts, most useful first; each only if it fits.
    let mut parts = Vec::new();
    // The link allows less than the configured quality (relay.adapt).
    if !s.paused && s.encoding_quality < s.quality {
        parts.push(format!("q {}/{}", s.encoding_quality, s.quality));
    }
    // The link's rate when it is near what the stream needs; a link many
    // times faster is no news, and its number would push out the rest.
    if !s.paused && s.link_kbit_s > 0 && f64::from(s.link_kbit_s) <= LINK_NEWS * r.kbit_s.max(1.0) {
        parts.push(format!(
            "link {:.1} Mbit/s",
            f64::from(s.link_kbit_s) / 1000.0
        ));
    }
    if s.attempts > 0 {
        parts.push(format!("{} attempts", s.attempts));
    }
    if s.corrupt > 0 {
        parts.push(format!("{} corrupt", s.corrupt));
    }
    if !s.paused && s.encode_ms_p50 > 0.0 {
        parts.push(format!(
            "enc {:.0}/{:.0} ms",
            s.encode_ms_p50, s.encode_ms_p99
        ));
    }
    for p in parts {
        if out.chars().count() + 2 + p.chars().count() <= budget {
            out.push_str(", ");
            out.push_str(&p);
        }
    }
    if out.chars().count() > budget {
        out = out.chars().take(budget - 1).collect::<String>() + "…";
    }
    out
}

/// Decides when to log and when to send `stats`.
#[derive(Debug)]
pub struct StatsTicker {
    interval: Duration,
    next: Instant,
    last: StatsSnapshot,
    last_at: Instant,
    logged: Option<(Quiet, Instant)>,
}

impl StatsTicker {
    /// Starts counting from `p`'s counters now.
    pub fn new(p: &Pipeline, interval: Duration) -> StatsTicker {
        let now = Instant::now();
        StatsTicker {
            interval,
            next: now + interval,
            last: p.snapshot(),
            last_at: now,
            logged: None,
        }
    }

    /// When [`StatsTicker::tick`] is next due.
    pub fn next(&self) -> Instant {
        self.next
    }

    /// If due, logs the stats line (unless paused and unchanged) and
    /// returns the fields for the `stats` message.
    pub fn tick(&mut self, p: &Pipeline, now: Instant) -> Option<Map<String, Value>> {
        if now < self.next {
            return None;
        }
        let snap = p.snapshot();
        let rates = snap.rates_since(&self.last, now.duration_since(self.last_at).as_secs_f64());
        let source_error = p.source_error();
        let quiet = Quiet {
            paused: snap.paused,
            attempts: snap.attempts,
            source_errors: snap.source_errors,
            corrupt: snap.corrupt,
            source_error: source_error.clone(),
        };
        let log_now = match &self.logged {
            Some((q, at)) if snap.paused && *q == quiet => {
                now.duration_since(*at) >= PAUSED_LOG_EVERY
            }
            _ => true,
        };
        if log_now {
            let d_dropped = snap.dropped.saturating_sub(self.last.dropped);
            log::info!(
                target: TARGET,
                "{}",
                line(&snap, &rates, d_dropped, source_error.as_deref())
            );
            self.logged = Some((quiet, now));
        }
        self.last = snap;
        self.last_at = now;
        self.next = now + self.interval;
        Some(fields(&snap, &rates))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worst() -> StatsSnapshot {
        StatsSnapshot {
            captured: 9_999_999_999,
            sent: 9_999_999_999,
            bytes: u64::MAX / 2,
            dropped: 9_999_999_999,
            corrupt: 999_999_999,
            source_errors: 999_999_999,
            reconnects: 999_999_999,
            attempts: 999_999_999,
            encoder_fallbacks: 999_999_999,
            encode_ms_p50: 9999.9,
            encode_ms_p99: 99999.9,
            fps: 120,
            quality: 100,
            encoding_quality: 1,
            link_kbit_s: 4_000_000_000,
            paused: false,
        }
    }

    fn rates(fps: f64) -> Rates {
        Rates {
            fps_captured: fps,
            fps_sent: fps,
            kbit_s: 99_999.0,
        }
    }

    #[test]
    fn the_line_fits_a_serial_console_whatever_the_numbers() {
        let long_error = "/dev/video0: permission denied (the device belongs to group video; add the zerocam user to it) and more words";
        for (s, r, e) in [
            (worst(), rates(120.0), None),
            (worst(), rates(0.0), Some(long_error)),
            (
                StatsSnapshot {
                    paused: true,
                    ..worst()
                },
                rates(0.0),
                Some(long_error),
            ),
            (StatsSnapshot::default(), rates(0.0), None),
        ] {
            let l = line(&s, &r, 9_999_999_999, e);
            assert!(
                PREFIX_LEN + l.chars().count() <= MAX_LINE,
                "{} chars: {l}",
                PREFIX_LEN + l.chars().count()
            );
        }
        // The prefix is what logging.rs writes for this target.
        assert_eq!("12:34:56.789 INFO  stats: ".len(), PREFIX_LEN);
    }

    #[test]
    fn a_typical_line_says_everything_and_why_nothing_is_captured() {
        let s = StatsSnapshot {
            dropped: 12,
            attempts: 3,
            encode_ms_p50: 12.3,
            encode_ms_p99: 30.9,
            ..StatsSnapshot::default()
        };
        let l = line(&s, &rates(15.0), 2, None);
        assert_eq!(
            l,
            "15.0 fps, sent 15.0, 99999 kbit/s, drop 12 (+2), 3 attempts, enc 12/31 ms"
        );
        // A slow link is news; one 100 times faster than the stream is not.
        let slow = StatsSnapshot {
            quality: 80,
            encoding_quality: 35,
            link_kbit_s: 3700,
            ..s
        };
        let r = Rates {
            kbit_s: 2900.0,
            ..rates(30.0)
        };
        assert_eq!(
            line(&slow, &r, 0, None),
            "30.0 fps, sent 30.0, 2900 kbit/s, drop 12 (+0), q 35/80, link 3.7 Mbit/s"
        );
        let fast = StatsSnapshot {
            link_kbit_s: 290_000,
            ..s
        };
        let l = line(&fast, &r, 0, None);
        assert!(!l.contains("link"), "{l}");
        assert!(l.ends_with("enc 12/31 ms"), "{l}");
        let l = line(&s, &rates(0.0), 0, Some("/dev/video0: no such device"));
        assert!(l.contains("no frames: /dev/video0: no such device"), "{l}");
        // A source error while frames flow (recovered) is not shouted.
        let l = line(&s, &rates(15.0), 0, Some("old trouble"));
        assert!(!l.contains("old trouble"), "{l}");
    }
}
