//! Log lines for stderr, which systemd sends to the journal and the serial
//! console: short, UTC-timestamped, level-tagged, one line per event.
//! `--log-level` sets the default; `RUST_LOG` directives refine it.

use std::io::Write;

use crate::wire::message::clip_str;
use std::time::{SystemTime, UNIX_EPOCH};

/// Installs the logger once; later calls are ignored.
pub fn init(level: Option<&str>) {
    let default = level
        .and_then(|l| l.parse::<log::LevelFilter>().ok())
        .unwrap_or(log::LevelFilter::Info);
    let mut b = env_logger::Builder::new();
    b.filter_level(default);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        b.parse_filters(&spec);
    }
    // Libraries that are chatty below warn (async_nats logs every connect
    // at info; zerocam says it once, in its own words): at warn unless
    // RUST_LOG names them.
    let named = std::env::var("RUST_LOG").unwrap_or_default();
    for module in ["tungstenite", "rustls", "async_nats"] {
        if !named.contains(module) {
            b.filter_module(module, log::LevelFilter::Warn);
        }
    }
    b.format(|buf, rec| {
        // The target: the pipeline stage (the module path's first part)
        // unless a line names a shorter one (the stats line). Every line,
        // timestamp included, fits 100 columns: an 80-column serial console
        // wraps the rest, which is why messages say little and say it once.
        let target = rec.target();
        let module = target.strip_prefix("zerocam::").unwrap_or(target);
        let module = module.split("::").next().unwrap_or(module);
        writeln!(
            buf,
            "{} {:<5} {}: {}",
            clock(),
            rec.level(),
            module,
            rec.args()
        )
    });
    b.target(env_logger::Target::Stderr);
    let _ = b.try_init();
}

/// `HH:MM:SS.mmm` in UTC: the journal adds the date; the serial console
/// only needs to order lines.
fn clock() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let s = d.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        d.subsec_millis()
    )
}

/// At most [`CLIPPED`] bytes of a peer's text for a log line (which fits a
/// serial console), `…` marking a cut; [`clip_str`] is the one cut.
pub fn clip(s: &str) -> String {
    let cut = clip_str(s, CLIPPED);
    if cut.len() < s.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// How much of a peer's text a log line shows.
pub const CLIPPED: usize = 60;
