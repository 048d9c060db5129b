//! Configuration: a TOML file plus command-line flags, merged into one
//! validated [`Config`]. Every error names the key it is about, so an operator
//! looking at a serial console knows which line of the file to fix.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub mod keys;
use keys::Key;

/// Where the camera reads its config when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/zerocam/zerocam.toml";

/// A configuration error, naming the key and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key, e.g. `relay.url`; empty when the error is about the file.
    pub key: String,
    /// What is wrong, in the operator's terms.
    pub reason: String,
}

impl ConfigError {
    /// An error about `key`.
    pub fn new(key: &str, reason: impl Into<String>) -> Self {
        ConfigError {
            key: key.to_string(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.key, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

/// The file layout, exactly as an operator writes it. Unknown keys are errors.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Camera id, e.g. `porch`.
    pub camera: Option<String>,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub log_level: Option<String>,
    #[serde(default)]
    pub source: SourceSection,
    #[serde(default)]
    pub relay: RelaySection,
    #[serde(default)]
    pub backoff: BackoffSection,
    #[serde(default)]
    pub led: LedSection,
    /// The relay server's own settings (`zerocam relay`); validated by it.
    pub server: Option<toml::Table>,
}

/// `[source]`: where frames come from.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    /// `pattern` or a V4L2 device path.
    pub device: Option<String>,
    /// `WxH`.
    pub size: Option<String>,
    pub fps: Option<u32>,
    pub quality: Option<u8>,
    /// The lowest quality `relay.adapt = "quality"` may choose.
    pub min_quality: Option<u8>,
    /// Pixel format to ask a V4L2 device for (`MJPG`, `YUYV`, `NV12`,
    /// `YU12`) instead of zerocam's own pick.
    pub format: Option<String>,
    /// Seconds to wait at start-up for the device node to appear.
    pub wait_for_device: Option<f64>,
    /// Software encoder threads (default: the cores, at most 4).
    pub encode_threads: Option<u32>,
    /// `auto`, `software` or `hardware` (a V4L2 M2M JPEG encoder).
    pub encoder: Option<String>,
    /// The coded format asked of a hardware encoder (default `JPEG`; other
    /// formats are for testing the M2M path with a non-JPEG encoder).
    pub encoder_format: Option<String>,
    /// Image controls set at every open: `brightness = 60`, `hflip = true`,
    /// `power_line_frequency = "50 Hz"`.
    pub controls: Option<toml::Table>,
}

/// `[relay]`: where frames go.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySection {
    /// One URL, or a list tried in order (relays of one cluster).
    pub url: Option<UrlList>,
    pub token: Option<String>,
    /// `raw` or `phoenix`.
    pub protocol: Option<String>,
    /// Phoenix channel topic; defaults to `camera:<id>`.
    pub topic: Option<String>,
    /// Also offer the token as a Phoenix ≥ 1.8 auth subprotocol.
    pub auth_subprotocol: Option<bool>,
    /// PEM file with the CA that signs the relay's certificate.
    pub ca: Option<PathBuf>,
    pub heartbeat_interval: Option<f64>,
    pub stats_interval: Option<f64>,
    pub connect_timeout: Option<f64>,
    pub write_timeout: Option<f64>,
    pub ack_timeout: Option<f64>,
    pub window: Option<u32>,
    /// What follows the link: `quality`, `fps` or `off`.
    pub adapt: Option<String>,
}

/// `[backoff]`: reconnect pacing.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffSection {
    /// Seconds.
    pub base: Option<f64>,
    /// Seconds.
    pub max: Option<f64>,
    /// Seconds a connection must stay up before the attempt counter resets.
    pub stable_after: Option<f64>,
}

/// `[led]`: the status LED.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedSection {
    /// BCM GPIO number, or `"act"` for the board's activity LED, or `"none"`.
    pub pin: Option<toml::Value>,
    /// The LED is lit when the pin is low.
    pub active_low: Option<bool>,
}

impl FileConfig {
    /// A file for `zerocam relay` only: a `[server]` table and nothing a
    /// camera would read.
    pub fn is_relay_only(&self) -> bool {
        self.server.is_some() && self.camera_parts().is_empty()
    }

    /// The parts a camera reads (`camera`, `[source]`, `[relay]`,
    /// `[backoff]`, `[led]`) that this file sets: what `zerocam relay`
    /// ignores in it.
    pub fn camera_parts(&self) -> Vec<&'static str> {
        let mut parts = Vec::new();
        if self.camera.is_some() {
            parts.push("camera");
        }
        if self.source != SourceSection::default() {
            parts.push("[source]");
        }
        if self.relay != RelaySection::default() {
            parts.push("[relay]");
        }
        if self.backoff != BackoffSection::default() {
            parts.push("[backoff]");
        }
        if self.led != LedSection::default() {
            parts.push("[led]");
        }
        parts
    }
}

/// Under systemd's watchdog (`WatchdogSec`), a pipeline thread silent for
/// half the period counts as hung. zerocam's own timeouts for one step of
/// the link must end well inside that, so that it notices and recovers from
/// a dead relay itself, step by step, before systemd would judge it: a
/// timeout the watchdog would contradict is refused, naming its key.
pub fn check_watchdog(relay: &RelayConfig, watchdog: Duration) -> Result<(), ConfigError> {
    let stale = watchdog / 2;
    for (key, v) in [
        ("relay.connect_timeout", relay.connect_timeout),
        ("relay.write_timeout", relay.write_timeout),
        ("relay.ack_timeout", relay.ack_timeout),
    ] {
        if v >= stale {
            return Err(ConfigError::new(
                key,
                format!(
                    "{:.1} s is not under half of WatchdogSec={:.0} s ({:.1} s)\n\
                     lower {key} or raise WatchdogSec in the unit",
                    v.as_secs_f64(),
                    watchdog.as_secs_f64(),
                    stale.as_secs_f64()
                ),
            ));
        }
    }
    Ok(())
}

/// `relay.url`: one URL or a list of them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct UrlList(pub Vec<String>);

impl<'de> Deserialize<'de> for UrlList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = UrlList;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a URL or a list of URLs")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<UrlList, E> {
                Ok(UrlList(vec![v.to_string()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<UrlList, A::Error> {
                let mut out = Vec::new();
                while let Some(u) = a.next_element::<String>()? {
                    out.push(u);
                }
                Ok(UrlList(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Command-line overrides; `None` means "not given".
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--relay`, repeatable: replaces `relay.url`.
    pub relay: Vec<String>,
    pub camera: Option<String>,
    pub token: Option<String>,
    pub source: Option<String>,
    pub size: Option<String>,
    pub fps: Option<u32>,
    pub quality: Option<u8>,
    pub min_quality: Option<u8>,
    pub adapt: Option<String>,
    pub format: Option<String>,
    pub encode_threads: Option<u32>,
    pub encoder: Option<String>,
    pub protocol: Option<String>,
    pub topic: Option<String>,
    pub heartbeat: Option<f64>,
    pub stats_interval: Option<f64>,
    pub ca: Option<PathBuf>,
    pub log_level: Option<String>,
    pub auth_subprotocol: bool,
}

/// Where frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// The built-in animated test pattern.
    Pattern,
    /// The test pattern pre-encoded once and replayed as MJPEG, so that the
    /// MJPEG pass-through path runs without an MJPEG camera (benchmarks and
    /// tests; `--source pattern-mjpeg`).
    PatternMjpeg,
    /// The test pattern's counter and clock over a natural-looking moving
    /// scene (texture, gradients, noise) that compresses like a real
    /// camera's picture (`--source pattern:scene`).
    PatternScene,
    /// A V4L2 device node.
    Device(PathBuf),
    /// A camera program whose stdout carries the frames (`exec:COMMAND`).
    Exec(Vec<String>),
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceKind::Pattern => write!(f, "pattern"),
            SourceKind::PatternMjpeg => write!(f, "pattern-mjpeg"),
            SourceKind::PatternScene => write!(f, "pattern:scene"),
            SourceKind::Device(p) => write!(f, "{}", p.display()),
            SourceKind::Exec(argv) => write!(f, "exec:{}", argv.first().map_or("", String::as_str)),
        }
    }
}

/// The wire dialect spoken to the relay (see docs/protocol.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Raw,
    Phoenix,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Raw => "raw",
            Protocol::Phoenix => "phoenix",
        })
    }
}

/// Status LED selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedPin {
    None,
    /// The board's activity LED through sysfs (`/sys/class/leds/ACT` or `led0`).
    Act,
    /// A BCM GPIO number driven through rppal.
    Gpio(u8),
}

/// Capture settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    pub kind: SourceKind,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub quality: u8,
    /// The floor of quality adaptation (`relay.adapt = "quality"`).
    pub min_quality: u8,
    /// A FourCC the device must be driven in; `None`: zerocam's preference
    /// order (MJPEG, YUYV, NV12, YU12).
    pub format: Option<[u8; 4]>,
    pub wait_for_device: Duration,
    /// `[source.controls]`: set at every open, checked against the device.
    pub controls: Vec<(String, ControlValue)>,
    /// Software encoder threads; 1 encodes on the capture thread.
    pub encode_threads: u32,
    /// Which encoder turns raw frames into JPEG.
    pub encoder: EncoderChoice,
    /// The coded format asked of a hardware encoder (`JPEG`).
    pub encoder_format: [u8; 4],
}

impl SourceConfig {
    /// The built-in test pattern at `width`×`height` and `fps`, everything
    /// else at its default (software encoding on one thread): what tests
    /// and benchmarks start from.
    pub fn pattern(width: u32, height: u32, fps: u32) -> SourceConfig {
        SourceConfig {
            kind: SourceKind::Pattern,
            width,
            height,
            fps,
            quality: keys::default_whole("source.quality") as u8,
            min_quality: keys::default_whole("source.min_quality") as u8,
            format: None,
            wait_for_device: Duration::ZERO,
            controls: Vec::new(),
            encode_threads: 1,
            encoder: EncoderChoice::Software,
            encoder_format: *b"JPEG",
        }
    }
}

/// What adapts to the link (`relay.adapt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdaptMode {
    /// The JPEG quality, down to `source.min_quality`; then frames drop.
    Quality,
    /// Nothing is re-encoded: frames drop (the behaviour without it).
    Fps,
    /// Neither: frames drop, as `Fps` (kept apart so that the settings API
    /// can say what was chosen).
    Off,
}

impl AdaptMode {
    /// The config and wire name.
    pub fn name(self) -> &'static str {
        match self {
            AdaptMode::Quality => "quality",
            AdaptMode::Fps => "fps",
            AdaptMode::Off => "off",
        }
    }

    /// Parses a config or wire name.
    pub fn parse(s: &str) -> Option<AdaptMode> {
        match s {
            "quality" => Some(AdaptMode::Quality),
            "fps" => Some(AdaptMode::Fps),
            "off" => Some(AdaptMode::Off),
            _ => None,
        }
    }
}

/// `source.encoder`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderChoice {
    /// A hardware encoder if one is found, else software.
    Auto,
    Software,
    /// A hardware encoder, or a start-up error.
    Hardware,
}

/// Relay connection settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayConfig {
    /// The relay of this connection attempt (the first of `urls` as built).
    pub url: String,
    /// Every relay, in the order they are tried.
    pub urls: Vec<String>,
    pub token: Option<String>,
    pub protocol: Protocol,
    pub topic: String,
    pub auth_subprotocol: bool,
    pub ca: Option<PathBuf>,
    pub heartbeat_interval: Duration,
    pub stats_interval: Duration,
    pub connect_timeout: Duration,
    pub write_timeout: Duration,
    pub ack_timeout: Duration,
    pub window: u32,
    /// What follows the link's rate.
    pub adapt: AdaptMode,
}

impl RelayConfig {
    /// Every relay in the order tried: `urls`, or `url` alone when the
    /// list is empty (a config built by hand, as tests do).
    pub fn relays(&self) -> &[String] {
        if self.urls.is_empty() {
            std::slice::from_ref(&self.url)
        } else {
            &self.urls
        }
    }
}

/// Reconnect backoff settings (docs/protocol.md "Reconnect and backoff").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    pub base: Duration,
    pub max: Duration,
    pub stable_after: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        let secs = |k| Duration::from_secs_f64(keys::default_secs(k));
        BackoffConfig {
            base: secs("backoff.base"),
            max: secs("backoff.max"),
            stable_after: secs("backoff.stable_after"),
        }
    }
}

/// LED settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedConfig {
    pub pin: LedPin,
    pub active_low: bool,
}

/// The validated configuration of `zerocam stream`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub camera: String,
    pub log_level: Option<String>,
    pub source: SourceConfig,
    pub relay: RelayConfig,
    pub backoff: BackoffConfig,
    pub led: LedConfig,
}

use crate::wire::message::ControlValue;
/// Limits, shared with the `set` command so that both reject the same values.
pub use crate::wire::message::{FPS_RANGE, QUALITY_RANGE};
/// Largest frame side we accept (V4L2 devices top out well below this).
pub const MAX_SIDE: u32 = 8192;

/// Reads and parses a config file (no validation of values yet).
pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new("", format!("cannot read {}: {e}", path.display())))?;
    parse_str(&text)
}

/// Parses config text. Errors name the offending key (`source.fps`), say
/// what was expected and what was found, and give the line.
pub fn parse_str(text: &str) -> Result<FileConfig, ConfigError> {
    let line_of = |span: Option<std::ops::Range<usize>>| {
        span.map(|s| {
            format!(
                " (line {})",
                text[..s.start.min(text.len())].matches('\n').count() + 1
            )
        })
        .unwrap_or_default()
    };
    let de = toml::Deserializer::parse(text).map_err(|e| {
        ConfigError::new(
            "",
            format!("not valid TOML: {}{}", e.message(), line_of(e.span())),
        )
    })?;
    serde_path_to_error::deserialize::<_, FileConfig>(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.message().to_string();
        // The path already ends with an unknown key's name.
        let line = line_of(inner.span());
        let (key, reason) = match unknown_field_name(&msg) {
            Some(field) if path == "." || path.is_empty() => {
                let r = unknown_key(&field, &msg, &line);
                (field, r)
            }
            Some(field) => (path, unknown_key(&field, &msg, &line)),
            None => (path.clone(), format!("{}{line}", friendly(&path, &msg))),
        };
        ConfigError::new(&key, reason)
    })
}

/// Rewrites serde's "invalid type: string \"x\", expected u32" for `key`
/// as "expected a whole number in 1..=120, found \"x\"": a ranged key's
/// own range (from [`keys::KEYS`]), else plain words; no Rust type names.
pub fn friendly(key: &str, msg: &str) -> String {
    let rest = msg
        .strip_prefix("invalid type: ")
        .or_else(|| msg.strip_prefix("invalid value: "));
    let Some((found, expected)) = rest.and_then(|r| r.rsplit_once(", expected ")) else {
        return msg.to_string();
    };
    if let Some(d) = Key::of(key).and_then(describe) {
        return format!("expected {d}, found {}", found_text(found));
    }
    let expected = match expected {
        "u8" => "an integer from 0 to 255",
        "u16" => "an integer from 0 to 65535",
        "u32" => "a whole number from 0 to 4294967295",
        "u64" | "i64" | "i32" | "usize" => "an integer",
        "f64" | "f32" => "a number",
        "a boolean" | "bool" => "true or false",
        "a string" => "a string (in quotes)",
        "a sequence" => "a list like [\"a\", \"b\"]",
        other => other,
    };
    format!("expected {expected}, found {}", found_text(found))
}

/// serde's "string \"x\"" / "integer `5`" as `"x"` / `5`.
fn found_text(found: &str) -> &str {
    found
        .strip_prefix("string ")
        .or_else(|| found.strip_prefix("integer "))
        .or_else(|| found.strip_prefix("floating point "))
        .or_else(|| found.strip_prefix("boolean "))
        .unwrap_or(found)
        .trim_matches('`')
}

/// serde's "unknown field `fsp`, expected one of `device`, …" as "unknown
/// key (line 4); did you mean `fps`?" and the known keys on a second line:
/// each line fits a serial console.
pub fn unknown_key(field: &str, msg: &str, line: &str) -> String {
    let known: Vec<&str> = msg
        .split_once("expected ")
        .map(|(_, list)| list.split('`').skip(1).step_by(2).collect())
        .unwrap_or_default();
    let near = known
        .iter()
        .filter(|k| edit_distance(k, field) <= 2)
        .min_by_key(|k| edit_distance(k, field));
    let mut out = format!("unknown key{line}");
    if let Some(k) = near {
        out.push_str(&format!("; did you mean `{k}`?"));
    }
    // The known keys, wrapped to console-sized lines.
    let mut line = String::from("known here:");
    for (i, k) in known.iter().enumerate() {
        let word = if i + 1 < known.len() {
            format!(" {k},")
        } else {
            format!(" {k}")
        };
        if line.len() + word.len() > 72 {
            out.push('\n');
            out.push_str(&line);
            line = String::from(" ");
        }
        line.push_str(&word);
    }
    if !known.is_empty() {
        out.push('\n');
        out.push_str(&line);
    }
    out
}

/// Levenshtein distance, for suggesting a key (names are short).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn unknown_field_name(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_string())
}

/// Splits a command line as a POSIX shell would split words: blanks
/// separate, `'…'` is literal, `"…"` keeps blanks (backslash escapes `"`,
/// `\` and `$` in it), a backslash outside quotes escapes the next
/// character. No variables, globs or pipes: the program runs without a shell.
pub fn split_command(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated ' quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("unterminated \" quote".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated \" quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => cur.push(c),
                    None => return Err("a backslash at the end".into()),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    if words.is_empty() {
        return Err("no command after exec:".into());
    }
    Ok(words)
}

/// Parses `WxH`.
pub fn parse_size(key: &str, s: &str) -> Result<(u32, u32), ConfigError> {
    let bad = || ConfigError::new(key, format!("`{s}` is not a size like 1280x720"));
    let (w, h) = s.trim().split_once(['x', 'X']).ok_or_else(bad)?;
    let w: u32 = w.parse().map_err(|_| bad())?;
    let h: u32 = h.parse().map_err(|_| bad())?;
    if w < 16 || h < 16 || w > MAX_SIDE || h > MAX_SIDE {
        return Err(ConfigError::new(
            key,
            format!("{w}x{h} is out of range (16..={MAX_SIDE} each side)"),
        ));
    }
    if w % 2 != 0 || h % 2 != 0 {
        return Err(ConfigError::new(
            key,
            format!("{w}x{h}: width and height must be even (YUV 4:2:x)"),
        ));
    }
    Ok((w, h))
}

/// What a ranged key takes, for messages: "a whole number in 1..=120" or
/// "seconds in 0.1..=3600", as `wire::message` words a `set` (one wording
/// for one range).
pub fn describe(key: &Key) -> Option<String> {
    let (min, max) = key.range?;
    Some(if key.whole {
        format!("a whole number in {min}..={max}")
    } else {
        format!("seconds in {min}..={max}")
    })
}

fn ranged_key(key: &str) -> Result<&'static Key, ConfigError> {
    Key::of(key)
        .filter(|k| k.range.is_some())
        .ok_or_else(|| ConfigError::new(key, "has no range (a zerocam bug)"))
}

fn out_of_range(k: &Key, v: impl std::fmt::Display) -> ConfigError {
    let (min, max) = k.range.unwrap_or_default();
    let unit = if k.whole { "" } else { " seconds" };
    ConfigError::new(k.key, format!("{v}{unit} is out of range ({min}..={max})"))
}

/// A whole-number key's value (its default from [`keys::KEYS`] when not
/// set), checked against its range there.
pub fn ranged(key: &str, v: Option<u64>) -> Result<u64, ConfigError> {
    let k = ranged_key(key)?;
    let v = v.unwrap_or_else(|| keys::default_whole(key));
    let (min, max) = k.range.unwrap_or_default();
    if (v as f64) < min || (v as f64) > max {
        return Err(out_of_range(k, v));
    }
    Ok(v)
}

/// A duration key's value in seconds (its default when not set), checked
/// against its range in [`keys::KEYS`].
pub fn seconds(key: &str, v: Option<f64>) -> Result<Duration, ConfigError> {
    let k = ranged_key(key)?;
    let v = v.unwrap_or_else(|| keys::default_secs(key));
    let (min, max) = k.range.unwrap_or_default();
    if !v.is_finite() || v < min || v > max {
        return Err(out_of_range(k, v));
    }
    Ok(Duration::from_secs_f64(v))
}

/// Parses a pixel format name as a FourCC zerocam can capture from.
pub fn parse_format(key: &str, s: &str) -> Result<[u8; 4], ConfigError> {
    const FORMATS: [&[u8; 4]; 5] = [b"MJPG", b"JPEG", b"YUYV", b"NV12", b"YU12"];
    let up = s.to_ascii_uppercase();
    FORMATS
        .iter()
        .find(|f| f[..] == *up.as_bytes())
        .map(|f| **f)
        .ok_or_else(|| {
            ConfigError::new(
                key,
                format!("`{s}` is not a format zerocam captures (MJPG, JPEG, YUYV, NV12 or YU12)"),
            )
        })
}

/// Checks a relay URL: ws:// or wss:// with a host.
pub fn check_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        ConfigError::new(
            key,
            format!("`{url}` is not a URL (want ws://host/path or wss://…)"),
        )
    })?;
    if scheme != "ws" && scheme != "wss" {
        return Err(ConfigError::new(
            key,
            format!("scheme `{scheme}` is not supported (use ws:// or wss://)"),
        ));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() {
        return Err(ConfigError::new(key, format!("`{url}` has no host")));
    }
    url.parse::<tungstenite::http::Uri>()
        .map_err(|e| ConfigError::new(key, format!("`{url}` is not a valid URL: {e}")))?;
    Ok(())
}

/// [`crate::wire::check_id`], naming `key` in the error.
pub fn check_id(key: &str, id: &str) -> Result<(), ConfigError> {
    crate::wire::check_id(id).map_err(|why| ConfigError::new(key, why))
}

/// Checks a token: non-empty, no spaces or control characters (it travels
/// in a query string and an HTTP header).
pub fn check_token(key: &str, t: &str) -> Result<(), ConfigError> {
    if t.is_empty() || t.chars().any(|c| c.is_control() || c == ' ') {
        return Err(ConfigError::new(
            key,
            "must be non-empty, without spaces or control characters",
        ));
    }
    Ok(())
}

/// Checks a log level name.
pub fn check_log_level(key: &str, s: &str) -> Result<(), ConfigError> {
    match s.to_ascii_lowercase().as_str() {
        "error" | "warn" | "info" | "debug" | "trace" | "off" => Ok(()),
        _ => Err(ConfigError::new(
            key,
            format!("`{s}` is not a log level (error, warn, info, debug, trace, off)"),
        )),
    }
}

fn default_source(source_exists: &dyn Fn(&Path) -> bool) -> Result<SourceKind, ConfigError> {
    let dev = Path::new("/dev/video0");
    if source_exists(dev) {
        Ok(SourceKind::Device(dev.to_path_buf()))
    } else {
        Err(ConfigError::new(
            "source.device",
            "no camera given and /dev/video0 does not exist\npass --source /dev/videoN, or --source pattern (a test pattern)",
        ))
    }
}

impl Config {
    /// Merges file and flags (flags win) and validates everything.
    /// `require_relay` is false for commands that do not stream (`snapshot`).
    pub fn build(
        file: FileConfig,
        o: &Overrides,
        require_relay: bool,
    ) -> Result<Config, ConfigError> {
        Self::build_with(file, o, require_relay, &|p| p.exists())
    }

    /// [`Config::build`] with an injectable "does this device exist" check (tests).
    pub fn build_with(
        file: FileConfig,
        o: &Overrides,
        require_relay: bool,
        source_exists: &dyn Fn(&Path) -> bool,
    ) -> Result<Config, ConfigError> {
        let camera = o
            .camera
            .clone()
            .or(file.camera)
            .unwrap_or_else(default_camera_id);
        check_id("camera", &camera)?;

        let log_level = o.log_level.clone().or(file.log_level);
        if let Some(l) = &log_level {
            check_log_level("log_level", l)?;
        }

        let s = file.source;
        let kind = match o.source.clone().or(s.device) {
            Some(d) if d == "pattern" => SourceKind::Pattern,
            Some(d) if d == "pattern-mjpeg" => SourceKind::PatternMjpeg,
            Some(d) if d == "pattern:scene" => SourceKind::PatternScene,
            Some(d) if d.is_empty() => return Err(ConfigError::new("source.device", "is empty")),
            Some(d) if d.starts_with("exec:") => SourceKind::Exec(
                split_command(&d["exec:".len()..])
                    .map_err(|e| ConfigError::new("source.device", format!("exec command: {e}")))?,
            ),
            Some(d) => SourceKind::Device(PathBuf::from(d)),
            None => default_source(source_exists)?,
        };
        // Unset keys take their defaults from keys::KEYS.
        let size = o.size.as_deref().or(s.size.as_deref());
        let (width, height) = parse_size(
            "source.size",
            size.unwrap_or(keys::default_text("source.size")),
        )?;
        let fps = ranged("source.fps", o.fps.or(s.fps).map(u64::from))? as u32;
        let quality = ranged("source.quality", o.quality.or(s.quality).map(u64::from))? as u8;
        let min_quality = ranged(
            "source.min_quality",
            o.min_quality.or(s.min_quality).map(u64::from),
        )? as u8;
        let format = match o.format.as_deref().or(s.format.as_deref()) {
            Some(f) => Some(parse_format("source.format", f)?),
            None => None,
        };
        let controls = parse_controls(s.controls.as_ref())?;
        let encode_threads = o
            .encode_threads
            .or(s.encode_threads)
            .unwrap_or_else(default_encode_threads);
        let encoder = o.encoder.clone().or(s.encoder);
        let encoder = match encoder
            .as_deref()
            .unwrap_or(keys::default_text("source.encoder"))
        {
            "auto" => EncoderChoice::Auto,
            "software" => EncoderChoice::Software,
            "hardware" => EncoderChoice::Hardware,
            other => {
                return Err(ConfigError::new(
                    "source.encoder",
                    format!("`{other}` is not an encoder (auto, software or hardware)"),
                ));
            }
        };
        let encoder_format = s.encoder_format.as_deref();
        let encoder_format =
            match encoder_format.unwrap_or(keys::default_text("source.encoder_format")) {
                f if f.len() == 4 && f.bytes().all(|b| b.is_ascii_graphic() || b == b' ') => {
                    let b = f.as_bytes();
                    [b[0], b[1], b[2], b[3]]
                }
                f => {
                    return Err(ConfigError::new(
                        "source.encoder_format",
                        format!("`{f}` is not a FourCC (four characters, like JPEG)"),
                    ));
                }
            };
        let encode_threads = ranged("source.encode_threads", Some(encode_threads.into()))? as u32;
        let wait_for_device = seconds("source.wait_for_device", s.wait_for_device)?;

        let r = file.relay;
        let urls = if o.relay.is_empty() {
            r.url.map(|u| u.0).unwrap_or_default()
        } else {
            o.relay.clone()
        };
        if require_relay && urls.is_empty() {
            return Err(ConfigError::new(
                "relay.url",
                "no relay given; pass --relay ws://host:port/path or set relay.url",
            ));
        }
        if urls.len() > 16 {
            return Err(ConfigError::new(
                "relay.url",
                format!("{} relays listed; at most 16", urls.len()),
            ));
        }
        for u in &urls {
            check_url("relay.url", u)?;
        }
        let url = urls.first().cloned().unwrap_or_default();
        let protocol = o.protocol.clone().or(r.protocol);
        let protocol = match protocol
            .as_deref()
            .unwrap_or(keys::default_text("relay.protocol"))
        {
            "raw" => Protocol::Raw,
            "phoenix" => Protocol::Phoenix,
            other => {
                return Err(ConfigError::new(
                    "relay.protocol",
                    format!("`{other}` is not a protocol (raw or phoenix)"),
                ));
            }
        };
        let topic = o
            .topic
            .clone()
            .or(r.topic)
            .unwrap_or_else(|| format!("camera:{camera}"));
        if topic.is_empty() || topic.len() > 255 {
            return Err(ConfigError::new("relay.topic", "must be 1 to 255 bytes"));
        }
        let token = o.token.clone().or(r.token);
        if let Some(t) = &token {
            check_token("relay.token", t)?;
        }
        let ca = o.ca.clone().or(r.ca);
        if let Some(p) = &ca {
            if !p.is_file() {
                return Err(ConfigError::new(
                    "relay.ca",
                    format!("{} is not a readable file", p.display()),
                ));
            }
        }
        let auth_subprotocol = o.auth_subprotocol
            || r.auth_subprotocol
                .unwrap_or(keys::default_bool("relay.auth_subprotocol"));
        if auth_subprotocol && protocol == Protocol::Raw {
            // A zerocam relay reads the token from the query or the
            // Authorization header; the subprotocol is Phoenix's.
            return Err(ConfigError::new(
                "relay.auth_subprotocol",
                "is for relay.protocol = \"phoenix\" (raw reads ?token= or Bearer)",
            ));
        }
        let heartbeat_interval = seconds(
            "relay.heartbeat_interval",
            o.heartbeat.or(r.heartbeat_interval),
        )?;
        let stats_interval = seconds(
            "relay.stats_interval",
            o.stats_interval.or(r.stats_interval),
        )?;
        let connect_timeout = seconds("relay.connect_timeout", r.connect_timeout)?;
        let write_timeout = seconds("relay.write_timeout", r.write_timeout)?;
        let ack_timeout = seconds("relay.ack_timeout", r.ack_timeout)?;
        let window = ranged("relay.window", r.window.map(u64::from))? as u32;
        let adapt = o
            .adapt
            .clone()
            .or(r.adapt)
            .unwrap_or_else(|| keys::default_text("relay.adapt").to_string());
        let adapt = AdaptMode::parse(&adapt).ok_or_else(|| {
            ConfigError::new(
                "relay.adapt",
                format!("`{adapt}` is not quality, fps or off"),
            )
        })?;

        let b = file.backoff;
        let base = seconds("backoff.base", b.base)?;
        let max = seconds("backoff.max", b.max)?;
        if max < base {
            return Err(ConfigError::new(
                "backoff.max",
                "must not be smaller than backoff.base",
            ));
        }
        let stable_after = seconds("backoff.stable_after", b.stable_after)?;

        let led = LedConfig {
            pin: parse_led_pin(file.led.pin.as_ref())?,
            active_low: file
                .led
                .active_low
                .unwrap_or(keys::default_bool("led.active_low")),
        };

        Ok(Config {
            camera,
            log_level,
            source: SourceConfig {
                kind,
                width,
                height,
                fps,
                quality,
                min_quality,
                format,
                wait_for_device,
                controls,
                encode_threads,
                encoder,
                encoder_format,
            },
            relay: RelayConfig {
                url,
                urls,
                token,
                protocol,
                topic,
                auth_subprotocol,
                ca,
                heartbeat_interval,
                stats_interval,
                connect_timeout,
                write_timeout,
                ack_timeout,
                window,
                adapt,
            },
            backoff: BackoffConfig {
                base,
                max,
                stable_after,
            },
            led,
        })
    }
}

/// The default encoder threads: one per core, at most 4 (a Pi Zero: 1, a
/// Zero 2 W: 4).
pub fn default_encode_threads() -> u32 {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get() as u32)
        .min(4)
}

/// `[source.controls]`: names in lower_snake_case, values numbers, booleans
/// or menu item names. Ranges are the device's, checked when it opens.
fn parse_controls(t: Option<&toml::Table>) -> Result<Vec<(String, ControlValue)>, ConfigError> {
    let mut out = Vec::new();
    for (name, v) in t.into_iter().flatten() {
        let key = format!("source.controls.{name}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(ConfigError::new(
                &key,
                "control names are lower_snake_case, like brightness or hflip",
            ));
        }
        let value = match v {
            toml::Value::Integer(n) => ControlValue::Int(*n),
            toml::Value::Boolean(b) => ControlValue::Bool(*b),
            toml::Value::String(s) => ControlValue::Text(s.clone()),
            other => {
                return Err(ConfigError::new(
                    &key,
                    format!(
                        "expected a number, true/false or a menu item's name, found {}",
                        toml_text(other)
                    ),
                ));
            }
        };
        out.push((name.clone(), value));
    }
    Ok(out)
}

/// True when `[source.controls]` can only be checked once the device opens.
pub fn controls_checked_at_open(source: &SourceConfig) -> bool {
    matches!(source.kind, SourceKind::Device(_)) && !source.controls.is_empty()
}

fn parse_led_pin(v: Option<&toml::Value>) -> Result<LedPin, ConfigError> {
    match v {
        None => Ok(LedPin::None),
        Some(toml::Value::String(s)) if s == "none" => Ok(LedPin::None),
        Some(toml::Value::String(s)) if s == "act" => Ok(LedPin::Act),
        Some(toml::Value::Integer(n)) if (0..=53).contains(n) => Ok(LedPin::Gpio(*n as u8)),
        Some(other) => Err(ConfigError::new(
            "led.pin",
            format!(
                "{} is not a pin (a BCM GPIO number 0..=53, \"act\" or \"none\")",
                toml_text(other)
            ),
        )),
    }
}

/// A TOML value as the operator wrote it (for messages).
fn toml_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(_) => "a date".into(),
        toml::Value::Array(_) => "a list".into(),
        toml::Value::Table(_) => "a table".into(),
    }
}

/// The default camera id: the host name, else `camera`.
pub fn default_camera_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| check_id("camera", s).is_ok())
        .unwrap_or_else(|| "camera".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(text: &str) -> Result<Config, ConfigError> {
        let f = parse_str(text)?;
        Config::build_with(f, &Overrides::default(), true, &|_| false)
    }

    const OK: &str = "camera = \"porch\"\n[source]\ndevice = \"pattern\"\n[relay]\nurl = \"ws://127.0.0.1:8080/ingest/porch\"\n";

    #[test]
    fn minimal_config_is_valid_with_defaults() {
        let c = build(OK).unwrap();
        assert_eq!(c.camera, "porch");
        assert_eq!(c.source.kind, SourceKind::Pattern);
        let c = build(&OK.replace("device = \"pattern\"", "device = \"pattern:scene\"")).unwrap();
        assert_eq!(c.source.kind, SourceKind::PatternScene);
        assert_eq!(c.source.kind.to_string(), "pattern:scene");
        assert_eq!(
            (
                c.source.width,
                c.source.height,
                c.source.fps,
                c.source.quality
            ),
            (640, 480, 15, 80)
        );
        assert_eq!(c.relay.protocol, Protocol::Raw);
        assert_eq!(c.relay.topic, "camera:porch");
        assert_eq!(c.relay.heartbeat_interval, Duration::from_secs(30));
        assert_eq!(c.relay.window, 1);
        assert_eq!(c.backoff, BackoffConfig::default());
    }

    #[test]
    fn unknown_key_is_named() {
        let e = build(&format!("{OK}fsp = 3\n")).unwrap_err();
        assert_eq!(e.key, "relay.fsp", "{e}");
        let e = build(&format!("cmaera = \"x\"\n{OK}")).unwrap_err();
        assert_eq!(e.key, "cmaera", "{e}");
        assert!(
            e.reason
                .starts_with("unknown key (line 1); did you mean `camera`?"),
            "{e}"
        );
        let e = build("[source]\nfsp = 3\n").unwrap_err();
        assert_eq!(e.key, "source.fsp");
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(e.reason.contains("did you mean `fps`?"), "{e}");
        assert!(e.reason.contains("\nknown here: device, size, fps"), "{e}");
    }

    #[test]
    fn out_of_range_values_are_named() {
        let e = build(&OK.replace("device = \"pattern\"", "device = \"pattern\"\nfps = 0"))
            .unwrap_err();
        assert_eq!(e.key, "source.fps");
        let e = build(&OK.replace(
            "device = \"pattern\"",
            "device = \"pattern\"\nquality = 101",
        ))
        .unwrap_err();
        assert_eq!(e.key, "source.quality");
        let e = build(&OK.replace(
            "device = \"pattern\"",
            "device = \"pattern\"\nsize = \"640by480\"",
        ))
        .unwrap_err();
        assert_eq!(e.key, "source.size");
        let e = build(&format!("{OK}heartbeat_interval = 0\n")).unwrap_err();
        assert_eq!(e.key, "relay.heartbeat_interval");
        let e = build(&format!("{OK}window = 0\n")).unwrap_err();
        assert_eq!(e.key, "relay.window");
    }

    #[test]
    fn bad_url_scheme_is_named() {
        let e = build(&OK.replace("ws://", "http://")).unwrap_err();
        assert_eq!(e.key, "relay.url");
        assert!(e.reason.contains("http"), "{e}");
        let e = build(&OK.replace("ws://127.0.0.1:8080/ingest/porch", "porch")).unwrap_err();
        assert_eq!(e.key, "relay.url");
    }

    #[test]
    fn relay_url_may_list_relays_tried_in_order() {
        let two = OK.replace(
            "\"ws://127.0.0.1:8080/ingest/porch\"",
            "[\"ws://a:8080/ingest/porch\", \"wss://b/ingest/porch\"]",
        );
        let c = build(&two).unwrap();
        assert_eq!(
            c.relay.urls,
            ["ws://a:8080/ingest/porch", "wss://b/ingest/porch"]
        );
        assert_eq!(c.relay.url, "ws://a:8080/ingest/porch");
        // One string is a list of one.
        assert_eq!(build(OK).unwrap().relay.urls.len(), 1);
        // Every entry is checked, and named.
        let bad = OK.replace(
            "\"ws://127.0.0.1:8080/ingest/porch\"",
            "[\"ws://a/x\", \"http://b/x\"]",
        );
        let e = build(&bad).unwrap_err();
        assert_eq!(e.key, "relay.url");
        assert!(e.reason.contains("http"), "{e}");
        let e = build(&OK.replace("\"ws://127.0.0.1:8080/ingest/porch\"", "[]")).unwrap_err();
        assert!(e.reason.contains("no relay"), "{e}");
        let e = build(&OK.replace("\"ws://127.0.0.1:8080/ingest/porch\"", "3")).unwrap_err();
        assert!(e.reason.contains("a URL or a list of URLs"), "{e}");
        // --relay, repeated, replaces the file's list.
        let f = parse_str(&two).unwrap();
        let o = Overrides {
            relay: vec!["ws://c/x".into(), "ws://d/x".into()],
            ..Overrides::default()
        };
        let c = Config::build_with(f, &o, true, &|_| false).unwrap();
        assert_eq!(c.relay.urls, ["ws://c/x", "ws://d/x"]);
    }

    #[test]
    fn wrong_types_name_the_key_in_plain_words() {
        let e = build(&OK.replace(
            "device = \"pattern\"",
            "device = \"pattern\"\nfps = \"fifteen\"",
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "source.fps: expected a whole number in 1..=120, found \"fifteen\" (line 4)"
        );
        let e = build(&format!("{OK}heartbeat_interval = \"soon\"\n")).unwrap_err();
        assert_eq!(e.key, "relay.heartbeat_interval");
        assert!(
            e.reason
                .starts_with("expected seconds in 0.1..=3600, found \"soon\""),
            "{e}"
        );
        let e = build(&OK.replace(
            "device = \"pattern\"",
            "device = \"pattern\"\nquality = 300",
        ))
        .unwrap_err();
        assert_eq!(e.key, "source.quality");
        assert!(e.reason.contains("in 1..=100, found 300"), "{e}");
        // Every ranged key names its own range, whatever the wrong value.
        for r in keys::KEYS
            .iter()
            .filter(|k| k.range.is_some() && !k.key.starts_with("server."))
        {
            let (section, key) = r.key.rsplit_once('.').unwrap();
            let text = format!("[{section}]\n{key} = \"lots\"\n");
            let Err(e) = parse_str(&text) else {
                panic!("{} = \"lots\" parsed", r.key)
            };
            assert_eq!(e.key, r.key);
            assert!(e.reason.contains(&describe(r).unwrap()), "{e}");
        }
        let e = build(&format!("{OK}auth_subprotocol = \"yes\"\n")).unwrap_err();
        assert_eq!(e.key, "relay.auth_subprotocol");
        assert!(e.reason.contains("true or false"), "{e}");
        let e = build(&format!("{OK}[led]\npin = \"foo\"\n")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "led.pin: \"foo\" is not a pin (a BCM GPIO number 0..=53, \"act\" or \"none\")"
        );
        // No Rust names anywhere.
        let m = e.to_string();
        assert!(!m.contains("String(") && !m.contains("u32"), "{m}");
        let e = parse_str("[source\nfps = 3").unwrap_err();
        assert!(e.to_string().starts_with("not valid TOML"), "{e}");
    }

    #[test]
    fn missing_device_suggests_pattern() {
        let e = build("[relay]\nurl = \"ws://h/x\"\n").unwrap_err();
        assert_eq!(e.key, "source.device");
        assert!(e.reason.contains("--source pattern"), "{e}");
    }

    #[test]
    fn flags_win_over_file() {
        let f = parse_str(OK).unwrap();
        let o = Overrides {
            fps: Some(5),
            camera: Some("gate".into()),
            protocol: Some("phoenix".into()),
            heartbeat: Some(1.0),
            ..Overrides::default()
        };
        let c = Config::build_with(f, &o, true, &|_| false).unwrap();
        assert_eq!(c.source.fps, 5);
        assert_eq!(c.camera, "gate");
        assert_eq!(c.relay.topic, "camera:gate");
        assert_eq!(c.relay.protocol, Protocol::Phoenix);
        assert_eq!(c.relay.heartbeat_interval, Duration::from_secs(1));
    }

    #[test]
    fn bad_protocol_camera_and_led() {
        let e = build(&format!("{OK}protocol = \"mqtt\"\n")).unwrap_err();
        assert_eq!(e.key, "relay.protocol");
        let e = build(&OK.replace("porch\"\n[source]", "por ch\"\n[source]")).unwrap_err();
        assert_eq!(e.key, "camera");
        let e = build(&format!("{OK}[led]\npin = 99\n")).unwrap_err();
        assert_eq!(e.key, "led.pin");
        let c = build(&format!("{OK}[led]\npin = \"act\"\n")).unwrap();
        assert_eq!(c.led.pin, LedPin::Act);
    }

    #[test]
    fn source_format() {
        let f = parse_str("[source]\ndevice = \"pattern\"\nformat = \"nv12\"").unwrap();
        let c = Config::build(f, &Overrides::default(), false).unwrap();
        assert_eq!(c.source.format, Some(*b"NV12"));
        let e = parse_format("source.format", "RGB3").unwrap_err();
        assert_eq!(e.key, "source.format");
        assert!(e.to_string().contains("YUYV"), "{e}");
    }

    #[test]
    fn timeouts_the_watchdog_would_contradict_are_refused() {
        let c = build(OK).unwrap();
        assert!(check_watchdog(&c.relay, Duration::from_secs(60)).is_ok());
        let c = build(&format!("{OK}connect_timeout = 600\n")).unwrap();
        let e = check_watchdog(&c.relay, Duration::from_secs(60)).unwrap_err();
        assert_eq!(e.key, "relay.connect_timeout");
        assert!(e.reason.contains("WatchdogSec=60"), "{e}");
        let c = build(&format!("{OK}write_timeout = 30\n")).unwrap();
        assert_eq!(
            check_watchdog(&c.relay, Duration::from_secs(60))
                .unwrap_err()
                .key,
            "relay.write_timeout"
        );
        assert!(check_watchdog(&c.relay, Duration::from_secs(120)).is_ok());
    }

    #[test]
    fn relay_only_files_are_recognised() {
        assert!(
            parse_str("[server]\nlisten = \"0.0.0.0:1\"\n")
                .unwrap()
                .is_relay_only()
        );
        assert!(!parse_str("").unwrap().is_relay_only());
        assert!(
            !parse_str(&format!("{OK}[server]\n"))
                .unwrap()
                .is_relay_only()
        );
    }

    #[test]
    fn source_controls_are_read_and_checked() {
        // A device's controls are checked when it opens; here, the form.
        let c = build(&OK.replace(
            "device = \"pattern\"",
            "device = \"/dev/video0\"\n[source.controls]\nbrightness = 10\nhflip = true\npower_line_frequency = \"50 Hz\"",
        ))
        .unwrap();
        assert!(controls_checked_at_open(&c.source));
        assert_eq!(
            c.source.controls,
            vec![
                ("brightness".into(), ControlValue::Int(10)),
                ("hflip".into(), ControlValue::Bool(true)),
                (
                    "power_line_frequency".into(),
                    ControlValue::Text("50 Hz".into())
                ),
            ]
        );
        let e = build(&OK.replace(
            "device = \"pattern\"",
            "device = \"pattern\"\n[source.controls]\nbrightness = 1.5",
        ))
        .unwrap_err();
        assert_eq!(e.key, "source.controls.brightness");
        let e = build(&OK.replace(
            "device = \"pattern\"",
            "device = \"pattern\"\n[source.controls]\nBrightness = 1",
        ))
        .unwrap_err();
        assert_eq!(e.key, "source.controls.Brightness");
    }

    #[test]
    fn exec_sources_are_split_without_a_shell() {
        let c = build(&OK.replace(
            "device = \"pattern\"",
            "device = \"exec:rpicam-vid -t 0 -n --codec yuv420 -o -\"\nformat = \"YU12\"",
        ))
        .unwrap();
        assert_eq!(
            c.source.kind,
            SourceKind::Exec(
                [
                    "rpicam-vid",
                    "-t",
                    "0",
                    "-n",
                    "--codec",
                    "yuv420",
                    "-o",
                    "-"
                ]
                .map(String::from)
                .to_vec()
            )
        );
        assert_eq!(c.source.kind.to_string(), "exec:rpicam-vid");
        let e = build(&OK.replace("device = \"pattern\"", "device = \"exec:x 'y\"")).unwrap_err();
        assert_eq!(e.key, "source.device");
        assert!(e.reason.contains("unterminated"), "{e}");
    }

    #[test]
    fn parse_size_rules() {
        assert_eq!(parse_size("k", "1280x720").unwrap(), (1280, 720));
        assert!(parse_size("k", "641x480").is_err());
        assert!(parse_size("k", "0x0").is_err());
        assert!(parse_size("k", "x").is_err());
    }

    #[test]
    fn commands_split_like_a_shell() {
        assert_eq!(
            split_command("rpicam-vid -t 0 -n --codec yuv420 -o -").unwrap(),
            [
                "rpicam-vid",
                "-t",
                "0",
                "-n",
                "--codec",
                "yuv420",
                "-o",
                "-"
            ]
        );
        assert_eq!(
            split_command(r#"ffmpeg -vf 'scale=640:480, fps=15' "a \"b\" c" d\ e"#).unwrap(),
            [
                "ffmpeg",
                "-vf",
                "scale=640:480, fps=15",
                r#"a "b" c"#,
                "d e"
            ]
        );
        assert_eq!(split_command("  x  ''  ").unwrap(), ["x", ""]);
        assert!(
            split_command("x 'open")
                .unwrap_err()
                .contains("unterminated")
        );
        assert!(
            split_command("x \"open")
                .unwrap_err()
                .contains("unterminated")
        );
        assert!(split_command("   ").is_err());
        assert!(split_command("x \\").is_err());
    }
}
