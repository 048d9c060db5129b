//! Log lines for stderr, which systemd sends to the journal and the serial
//! console: short, UTC-timestamped, level-tagged, one line per event.
//! `--log-level` sets the default; `RUST_LOG` directives refine it.

use std::io::Write;
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
    // tungstenite and rustls are chatty at debug; keep them at warn unless
    // RUST_LOG names them.
    if std::env::var("RUST_LOG")
        .map(|s| !s.contains("tungstenite"))
        .unwrap_or(true)
    {
        b.filter_module("tungstenite", log::LevelFilter::Warn);
        b.filter_module("rustls", log::LevelFilter::Warn);
    }
    b.format(|buf, rec| {
        // The target: the module path unless a line names a shorter one
        // (the stats line, to fit an 80-column console).
        let target = rec.target();
        let module = target.strip_prefix("zerocam::").unwrap_or(target);
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
