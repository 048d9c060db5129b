//! Every setting, defined once: its key, its flag, its default, its range
//! and what it does. The checks ([`super::ranged`], [`super::seconds`]),
//! the defaults of the camera's and the relay's configuration, the flags'
//! help and the configuration reference (`docs/configuration.md`, checked
//! by a test) all read this table; `deploy/zerocam.toml` is checked
//! against it too.

/// What a key is when it is not set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DefaultValue {
    /// A whole number.
    Whole(u64),
    /// Seconds.
    Secs(f64),
    Bool(bool),
    /// A string, as the config file writes it.
    Text(&'static str),
    /// No single value (it depends on the machine, or there is none): what
    /// happens, in words.
    Note(&'static str),
}

/// One setting.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// `section.name` as the config file has it (`camera` at the top).
    pub key: &'static str,
    /// Its command-line flag, if it has one (`--fps N`).
    pub flag: Option<&'static str>,
    pub default: DefaultValue,
    /// Allowed values of a number: (min, max).
    pub range: Option<(f64, f64)>,
    /// The number is whole (else seconds, fractions allowed).
    pub whole: bool,
    /// One line for `--help` and the reference.
    pub help: &'static str,
    /// More for the reference, if any.
    pub more: &'static str,
}

const fn key(key: &'static str, default: DefaultValue, help: &'static str) -> Key {
    Key {
        key,
        flag: None,
        default,
        range: None,
        whole: false,
        help,
        more: "",
    }
}

impl Key {
    const fn flag(mut self, flag: &'static str) -> Key {
        self.flag = Some(flag);
        self
    }
    /// A whole number in `min..=max`.
    const fn range(mut self, min: f64, max: f64) -> Key {
        self.range = Some((min, max));
        self.whole = true;
        self
    }
    /// Seconds in `min..=max`.
    const fn secs(mut self, min: f64, max: f64) -> Key {
        self.range = Some((min, max));
        self.whole = false;
        self
    }
    const fn more(mut self, more: &'static str) -> Key {
        self.more = more;
        self
    }

    /// The setting named `key`.
    pub fn of(key: &str) -> Option<&'static Key> {
        KEYS.iter().find(|k| k.key == key)
    }

    /// The default as the reference shows it.
    pub fn default_text(&self) -> String {
        match self.default {
            Whole(n) => format!("`{n}`"),
            Secs(s) => format!("`{s}`"),
            Bool(b) => format!("`{b}`"),
            Text(t) => format!("`{t}`"),
            Note(n) => n.to_string(),
        }
    }
}

const FPS: (f64, f64) = (
    *crate::wire::message::FPS_RANGE.start() as f64,
    *crate::wire::message::FPS_RANGE.end() as f64,
);
const QUALITY: (f64, f64) = (
    *crate::wire::message::QUALITY_RANGE.start() as f64,
    *crate::wire::message::QUALITY_RANGE.end() as f64,
);

use DefaultValue::{Bool, Note, Secs, Text, Whole};

/// Every key of `zerocam stream`'s configuration, then the relay's
/// (`[server]`), in the order the reference lists them.
pub const KEYS: &[Key] = &[
    key("camera", Note("—"), "camera id: letters, digits, `-`, `_`, `.` (1 to 64)")
        .flag("--camera ID"),
    key("log_level", Text("info"), "`error`, `warn`, `info`, `debug` or `trace`; `RUST_LOG` refines it")
        .flag("--log-level L"),
    key("source.device", Note("`/dev/video0` if it exists"), "`pattern`, a V4L2 device, or `exec:COMMAND` (a camera program writing frames to its stdout)")
        .more("`pattern:scene` is the pattern's counter and clock over a natural-looking moving scene, which compresses like a real camera's picture (the flat bars compress far better than any camera's).")
        .flag("--source S"),
    key("source.size", Text("640x480"), "requested frame size, WxH (the device may grant another; it is logged)")
        .flag("--size WxH"),
    key("source.fps", Whole(15), "frames per second")
        .flag("--fps N")
        .range(FPS.0, FPS.1),
    key("source.quality", Whole(80), "JPEG quality: of what zerocam encodes, and of an MJPEG camera through its quality control where it has one")
        .flag("--quality Q")
        .range(QUALITY.0, QUALITY.1),
    key("source.min_quality", Whole(20), "the lowest JPEG quality `relay.adapt = \"quality\"` may choose; below it the frame rate gives way")
        .flag("--min-quality Q")
        .range(QUALITY.0, QUALITY.1),
    key("source.format", Note("zerocam's pick"), "V4L2 pixel format to capture: `MJPG`, `YUYV`, `NV12` or `YU12`; for `exec:` sources, what the program writes")
        .flag("--format F")
        .more("Without it: MJPEG if offered, else YUYV, NV12, YU12; `MJPG` for `exec:` sources."),
    key("source.encode_threads", Note("the cores, at most 4"), "software JPEG encoders running in parallel")
        .flag("--encode-threads N")
        .range(1.0, 16.0)
        .more("With more than one, the capture thread copies each raw frame to an idle encoder (one buffer each: memory stays bounded) and goes on; a frame that finds them all busy is dropped and counted, and frames are delivered in capture order. With one (a Pi Zero), capture encodes inline, with no copy."),
    key("source.encoder", Text("auto"), "`auto`, `software` or `hardware`: JPEG from a V4L2 memory-to-memory encoder (the Pi's bcm2835-codec, /dev/video31) or from the CPU")
        .flag("--encoder E")
        .more("See [Hardware JPEG](raspberry-pi.md#hardware-jpeg-sourceencoder)."),
    key("source.encoder_format", Text("JPEG"), "the coded format asked of the hardware encoder; only tests change it (`FWHT` for the kernel's vicodec)"),
    key("source.wait_for_device", Secs(0.0), "seconds to wait at start for the device node (boot races)")
        .secs(0.0, 3600.0)
        .more("With `0`, a source that is missing, no V4L2 capture device or without a usable format is a start-up error (exit 1); otherwise zerocam keeps waiting for it."),
    key("source.controls", Note("none"), "a table of image controls set at every open, e.g. `brightness = 60`, `hflip = true`, `power_line_frequency = \"50 Hz\"`")
        .more("The test pattern's are checked at start (and by `check-config`); an `exec:` source has none (its program takes them as options); a device's are checked against its ranges when it opens, a refused one logged naming the range, and `check-config` says so."),
    key("relay.url", Note("—"), "`ws://` or `wss://`; repeat `--relay` (or give a list) for relays tried in order")
        .flag("--relay URL")
        .more("The camera stays on the first relay that takes it and fails over to the others (see [cluster.md](cluster.md))."),
    key("relay.token", Note("none"), "token for the relay: sent as `?token=` and `Authorization: Bearer`")
        .flag("--token T"),
    key("relay.protocol", Text("raw"), "wire dialect: `raw` or `phoenix`")
        .flag("--protocol P"),
    key("relay.topic", Note("`camera:<id>`"), "Phoenix channel topic")
        .flag("--topic T"),
    key("relay.auth_subprotocol", Bool(false), "`protocol = \"phoenix\"` only: the token as Phoenix ≥ 1.8's auth subprotocol, and not in the URL")
        .flag("--auth-subprotocol")
        .more("Sent as `phoenix, base64url.bearer.phx.<token in base64 without padding>`, as phoenix.js does; the socket must be mounted with `auth_token: true`. Phoenix 1.7 cannot read it: see [examples/phoenix/](../examples/phoenix/README.md#authentication)."),
    key("relay.ca", Note("webpki roots"), "PEM file with a private CA for a `wss://` relay")
        .flag("--ca FILE"),
    key("relay.heartbeat_interval", Secs(30.0), "seconds between heartbeats; nothing received for 2× this = dead link")
        .flag("--heartbeat S")
        .secs(0.1, 3600.0),
    key("relay.stats_interval", Secs(10.0), "seconds between stats lines and messages")
        .flag("--stats-interval S")
        .secs(0.1, 86400.0),
    key("relay.connect_timeout", Secs(10.0), "one deadline for name lookup, TCP, TLS and the WebSocket handshake together (at most 2× heartbeat)")
        .secs(0.1, 600.0),
    key("relay.write_timeout", Secs(10.0), "seconds a write may stall before the link is declared dead (also TCP_USER_TIMEOUT)")
        .secs(0.1, 600.0),
    key("relay.ack_timeout", Secs(5.0), "seconds an ack may take once the relay acks frames")
        .secs(0.1, 600.0),
    key("relay.window", Whole(1), "frames in flight without an ack (once acks are seen)")
        .range(1.0, 64.0),
    key("relay.adapt", Text("quality"), "what follows the link's rate: `quality` (JPEG quality between `source.min_quality` and `source.quality`, then frames drop), `fps` or `off` (frames drop, quality stays)")
        .flag("--adapt MODE")
        .more("The camera measures what its link carries while busy and picks the highest quality whose frames fit it, with headroom, at the frame rate; on a link that carries everything nothing changes. See [protocol.md](protocol.md#adapting-to-the-link)."),
    key("backoff.base", Secs(0.5), "the first reconnect delay's bound, seconds")
        .secs(0.01, 3600.0),
    key("backoff.max", Secs(30.0), "the longest reconnect delay, seconds")
        .secs(0.01, 86400.0),
    key("backoff.stable_after", Secs(10.0), "seconds up before the attempt counter resets")
        .secs(0.0, 86400.0),
    key("led.pin", Text("none"), "status LED: a BCM GPIO number, `\"act\"` for the board LED, or `\"none\"`"),
    key("led.active_low", Bool(false), "the LED lights when the pin is low"),
    // The relay's `[server]` table.
    key("server.listen", Text("0.0.0.0:8080"), "address the relay listens on")
        .flag("--listen ADDR"),
    key("server.tokens", Note("none (any camera)"), "camera tokens accepted for any camera id")
        .flag("--token T"),
    key("server.secret_file", Note("none"), "HMAC key for signed camera tokens (`zerocam token`)"),
    key("server.max_frame_bytes", Whole(4 << 20), "the largest frame a camera may send (close 1009 above it)")
        .range(1024.0, (64u64 << 20) as f64),
    key("server.pause_when_unwatched", Bool(true), "pause cameras nobody watches"),
    key("server.pause_after", Secs(10.0), "seconds without viewers before a camera is paused")
        .secs(0.0, 86400.0),
    key("server.max_consecutive_rejects", Whole(10), "invalid frames in a row before a camera is closed (1007)")
        .range(1.0, 10_000.0),
    key("server.camera_timeout", Secs(90.0), "seconds without a word from a camera before its link is closed")
        .secs(1.0, 86400.0),
    key("server.forget_offline_after", Secs(600.0), "seconds an offline, unwatched camera stays listed")
        .secs(1.0, 30.0 * 86400.0),
    key("server.max_cameras", Whole(256), "camera ids the relay keeps at once")
        .range(1.0, 100_000.0),
    key("server.viewer_write_timeout", Secs(10.0), "seconds a viewer may take no bytes before it is closed")
        .secs(0.1, 3600.0),
    key("server.snapshot_wait", Secs(5.0), "seconds a snapshot waits for a fresh frame of a paused camera")
        .secs(0.1, 600.0),
    key("server.cluster.presence_timeout", Secs(4.0), "seconds before a silent cluster node is dropped with its cameras")
        .secs(1.0, 600.0),
];

/// The one-line help of `key` (for a flag's `--help`).
pub fn help(key: &str) -> &'static str {
    Key::of(key).map_or("", |k| k.help)
}

/// `key`'s help for its flag: the line, the range and the default.
pub fn flag_help(key: &str) -> String {
    let Some(k) = Key::of(key) else {
        return String::new();
    };
    let range = match k.range {
        Some((min, max)) => format!(", {min} to {max}"),
        None => String::new(),
    };
    let default = k.default_text().replace('`', "");
    format!("{}{range} [default: {default}] ({})", k.help, k.key)
}

/// A whole-number key's default.
pub fn default_whole(key: &str) -> u64 {
    match Key::of(key).map(|k| k.default) {
        Some(Whole(n)) => n,
        _ => 0,
    }
}

/// A seconds key's default.
pub fn default_secs(key: &str) -> f64 {
    match Key::of(key).map(|k| k.default) {
        Some(Secs(s)) => s,
        _ => 0.0,
    }
}

/// A boolean key's default.
pub fn default_bool(key: &str) -> bool {
    matches!(Key::of(key).map(|k| k.default), Some(Bool(true)))
}

/// A text key's default.
pub fn default_text(key: &str) -> &'static str {
    match Key::of(key).map(|k| k.default) {
        Some(Text(t)) => t,
        _ => "",
    }
}

/// The reference table of the keys whose name starts with `prefix` (all
/// camera keys: ""; the relay's: "server."), as `docs/configuration.md`
/// carries it.
pub fn reference(server: bool) -> String {
    let mut out = String::from("| flag | key | default | what |\n|---|---|---|---|\n");
    for k in KEYS
        .iter()
        .filter(|k| k.key.starts_with("server.") == server)
    {
        let range = match k.range {
            Some((min, max)) if k.whole => format!(" ({min}–{max})"),
            Some((min, max)) => format!(" ({min}–{max} s)"),
            None => String::new(),
        };
        let more = if k.more.is_empty() {
            String::new()
        } else {
            format!(". {}", k.more.trim_end_matches('.'))
        };
        let flag = k.flag.map_or(String::new(), |f| format!("`{f}`"));
        out.push_str(&format!(
            "| {flag} | `{}` | {} | {}{range}{more} |\n",
            k.key,
            k.default_text(),
            k.help
        ));
    }
    out
}

/// `text` with the block after each `<!-- keys:NAME … -->` marker (up to
/// `<!-- end -->`) replaced by the reference it names (`camera`, `server`).
pub fn fill_reference(text: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if skipping {
            if line.trim() == "<!-- end -->" {
                skipping = false;
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if let Some(rest) = line.strip_prefix("<!-- keys:") {
            skipping = true;
            out.push('\n');
            out.push_str(&reference(rest.starts_with("server")));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/configuration.md carries the reference as this table makes it.
    /// `ZEROCAM_WRITE_DOCS=1 cargo test --lib keys` rewrites it.
    #[test]
    fn the_configuration_reference_is_the_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");
        let text = std::fs::read_to_string(path).unwrap();
        let want = fill_reference(&text);
        if std::env::var_os("ZEROCAM_WRITE_DOCS").is_some() {
            std::fs::write(path, &want).unwrap();
            return;
        }
        assert!(text.contains("<!-- keys:camera") && text.contains("<!-- keys:server"));
        assert!(
            text == want,
            "docs/configuration.md disagrees with src/config/keys.rs: \
             run ZEROCAM_WRITE_DOCS=1 cargo test --lib keys"
        );
    }

    #[test]
    fn every_key_is_listed_once_and_every_default_is_in_range() {
        let mut seen = std::collections::HashSet::new();
        for k in KEYS {
            assert!(seen.insert(k.key), "{} twice", k.key);
            assert!(!k.help.is_empty(), "{} has no help", k.key);
            if let (Some((min, max)), Whole(n)) = (k.range, k.default) {
                assert!((min..=max).contains(&(n as f64)), "{}", k.key);
            }
            if let (Some((min, max)), Secs(s)) = (k.range, k.default) {
                assert!((min..=max).contains(&s), "{}", k.key);
            }
        }
        assert_eq!(default_whole("source.fps"), 15);
        assert_eq!(default_secs("relay.stats_interval"), 10.0);
    }
}
