//! The JSON text messages of docs/protocol.md shared by both dialects and both
//! ends: what the camera says (hello, heartbeat, stats) and the relay's
//! commands. Pure: values in, values out.

use serde_json::{Map, Value, json};

/// Frame rates a camera accepts, in its config and in `set`.
pub const FPS_RANGE: std::ops::RangeInclusive<u32> = 1..=120;
/// JPEG qualities a camera accepts, in its config and in `set`.
pub const QUALITY_RANGE: std::ops::RangeInclusive<u8> = 1..=100;

/// A `set`'s `fps`, checked: the one check the camera, the relay's settings
/// API and (through `config::RANGES`) the config file share.
pub fn check_fps(v: &Value) -> Result<u32, String> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| FPS_RANGE.contains(n))
        .ok_or_else(|| out_of_range("fps", v, FPS_RANGE.start(), FPS_RANGE.end()))
}

/// A `set`'s `quality`, checked (as [`check_fps`]).
pub fn check_quality(v: &Value) -> Result<u8, String> {
    v.as_u64()
        .and_then(|n| u8::try_from(n).ok())
        .filter(|n| QUALITY_RANGE.contains(n))
        .ok_or_else(|| out_of_range("quality", v, QUALITY_RANGE.start(), QUALITY_RANGE.end()))
}

/// What may follow the link (`relay.adapt`), in `set` and `settings`.
pub const ADAPT_MODES: [&str; 3] = ["quality", "fps", "off"];

/// A `set`'s `adapt`, checked: one of [`ADAPT_MODES`].
pub fn check_adapt(v: &Value) -> Result<&'static str, String> {
    v.as_str()
        .and_then(|s| ADAPT_MODES.iter().find(|m| **m == s).copied())
        .ok_or_else(|| {
            format!(
                "adapt: expected one of {}, found {}",
                ADAPT_MODES.join(", "),
                clip_str(&v.to_string(), MAX_HELLO_STRING)
            )
        })
}

/// A `set`'s `min_quality`, checked (as [`check_quality`]).
pub fn check_min_quality(v: &Value) -> Result<u8, String> {
    check_quality(v).map_err(|e| format!("min_{e}"))
}

fn out_of_range(
    field: &str,
    v: &Value,
    min: impl std::fmt::Display,
    max: impl std::fmt::Display,
) -> String {
    match v {
        Value::Number(_) => format!("{field}: {v} is out of range ({min}..={max})"),
        _ => format!(
            "{field}: expected a whole number in {min}..={max}, found {}",
            clip_str(&v.to_string(), MAX_HELLO_STRING)
        ),
    }
}

/// A command from the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Stop sending frames; heartbeats continue.
    Pause,
    /// Start sending frames again.
    Resume,
    /// Change pacing, quality and image controls live.
    Set(SetCommand),
}

/// The valid parts of a `set`, and what was refused in it (each refusal a
/// line for the log, naming the field and the valid range). The valid rest
/// of a `set` applies even when a part of it is refused (docs/protocol.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetCommand {
    pub fps: Option<u32>,
    pub quality: Option<u8>,
    /// What follows the link: one of [`ADAPT_MODES`].
    pub adapt: Option<&'static str>,
    /// The floor of quality adaptation.
    pub min_quality: Option<u8>,
    /// Image controls by lower_snake_case name (in name order: JSON objects
    /// carry no order).
    pub controls: Vec<(String, ControlValue)>,
    pub rejected: Vec<String>,
}

/// A control value as JSON carries it: a number, a boolean, or a menu
/// item's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlValue {
    Int(i64),
    Bool(bool),
    Text(String),
}

impl ControlValue {
    /// The value as JSON.
    pub fn to_json(&self) -> Value {
        match self {
            ControlValue::Int(n) => json!(n),
            ControlValue::Bool(b) => json!(b),
            ControlValue::Text(t) => json!(t),
        }
    }

    /// A JSON value as a control value, if it is one.
    pub fn from_json(v: &Value) -> Option<ControlValue> {
        match v {
            Value::Bool(b) => Some(ControlValue::Bool(*b)),
            Value::Number(n) => n.as_i64().map(ControlValue::Int),
            Value::String(s) if s.len() <= MAX_HELLO_STRING => Some(ControlValue::Text(s.clone())),
            _ => None,
        }
    }
}

impl std::fmt::Display for ControlValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlValue::Int(n) => write!(f, "{n}"),
            ControlValue::Bool(b) => write!(f, "{b}"),
            ControlValue::Text(t) => write!(f, "{t:?}"),
        }
    }
}

/// Most controls one `set` may name.
pub const MAX_SET_CONTROLS: usize = 64;

/// Why a command was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// Not a command we know; logged and ignored.
    Unknown(String),
    /// A known command with bad values; logged, never applied.
    Invalid(String),
}

impl Command {
    /// The command's name: the raw dialect's `type`, Phoenix's event.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Set(_) => "set",
        }
    }

    /// The payload fields (without `type`): what [`parse_command`] reads.
    pub fn fields(&self) -> Map<String, Value> {
        let mut m = Map::new();
        if let Command::Set(set) = self {
            if let Some(fps) = set.fps {
                m.insert("fps".into(), json!(fps));
            }
            if let Some(q) = set.quality {
                m.insert("quality".into(), json!(q));
            }
            if let Some(a) = set.adapt {
                m.insert("adapt".into(), json!(a));
            }
            if let Some(q) = set.min_quality {
                m.insert("min_quality".into(), json!(q));
            }
            if !set.controls.is_empty() {
                let c: Map<String, Value> = set
                    .controls
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect();
                m.insert("controls".into(), Value::Object(c));
            }
        }
        m
    }

    /// The raw dialect's text message: `{"type":"set","fps":5,…}`.
    pub fn text(&self) -> String {
        let mut m = Map::new();
        m.insert("type".into(), json!(self.name()));
        m.extend(self.fields());
        Value::Object(m).to_string()
    }
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandError::Unknown(t) => write!(f, "unknown message type `{t}`"),
            CommandError::Invalid(why) => write!(f, "rejected: {why}"),
        }
    }
}

/// Parses a command named `kind` with the fields of `payload` (for the raw
/// dialect `kind` is the `type` field; for Phoenix it is the event name).
pub fn parse_command(kind: &str, payload: &Value) -> Result<Command, CommandError> {
    match kind {
        "pause" => Ok(Command::Pause),
        "resume" => Ok(Command::Resume),
        "set" => parse_set(payload),
        other => Err(CommandError::Unknown(other.to_string())),
    }
}

/// A `set`'s fields: each valid one is taken, each invalid one becomes a
/// line in `rejected`. Only a payload that is no object, or names nothing
/// at all, is an error.
pub fn parse_set(payload: &Value) -> Result<Command, CommandError> {
    let obj = payload
        .as_object()
        .ok_or_else(|| CommandError::Invalid("set: payload is not an object".into()))?;
    let mut set = SetCommand::default();
    // A field that is absent or null is not asked for; an invalid one is
    // refused with its reason, and the rest still applies.
    fn take<T>(
        obj: &Map<String, Value>,
        key: &str,
        check: fn(&Value) -> Result<T, String>,
        rejected: &mut Vec<String>,
    ) -> Option<T> {
        match obj.get(key).filter(|v| !v.is_null()).map(check)? {
            Ok(v) => Some(v),
            Err(why) => {
                rejected.push(why);
                None
            }
        }
    }
    set.fps = take(obj, "fps", check_fps, &mut set.rejected);
    set.quality = take(obj, "quality", check_quality, &mut set.rejected);
    set.adapt = take(obj, "adapt", check_adapt, &mut set.rejected);
    set.min_quality = take(obj, "min_quality", check_min_quality, &mut set.rejected);
    match obj.get("controls") {
        None | Some(Value::Null) => {}
        Some(Value::Object(c)) => {
            for (name, v) in c.iter().take(MAX_SET_CONTROLS) {
                match ControlValue::from_json(v) {
                    Some(cv) => set.controls.push((clip_str(name, MAX_HELLO_STRING), cv)),
                    None => set.rejected.push(format!(
                        "control {}: {} is not a number, true/false or a menu item's name",
                        clip_str(name, MAX_HELLO_STRING),
                        clip_str(&v.to_string(), MAX_HELLO_STRING)
                    )),
                }
            }
            if c.len() > MAX_SET_CONTROLS {
                set.rejected.push(format!(
                    "{} controls beyond the first {MAX_SET_CONTROLS} ignored",
                    c.len() - MAX_SET_CONTROLS
                ));
            }
        }
        Some(other) => set.rejected.push(format!(
            "controls: {} is not an object",
            clip_str(&other.to_string(), MAX_HELLO_STRING)
        )),
    }
    if set == SetCommand::default() {
        return Err(CommandError::Invalid(
            "set: names no fps, quality, adapt, min_quality or controls".into(),
        ));
    }
    Ok(Command::Set(set))
}

/// How the camera follows its link, as `settings` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkPolicy {
    /// One of [`ADAPT_MODES`].
    pub adapt: &'static str,
    pub min_quality: u8,
}

/// `{"type":"settings", …}`: what the camera now actually uses.
pub fn settings_fields(
    fps: u32,
    quality: u8,
    link: LinkPolicy,
    paused: bool,
    controls: Map<String, Value>,
    ranges: Map<String, Value>,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("fps".into(), json!(fps));
    m.insert("quality".into(), json!(quality));
    m.insert("adapt".into(), json!(link.adapt));
    m.insert("min_quality".into(), json!(link.min_quality));
    m.insert("paused".into(), json!(paused));
    m.insert("controls".into(), Value::Object(controls));
    m.insert("ranges".into(), Value::Object(ranges));
    m
}

/// Parses a raw-dialect text message into a command.
pub fn parse_raw_text(text: &str) -> Result<Command, CommandError> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| CommandError::Invalid(format!("not JSON ({e})")))?;
    let kind = v
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| CommandError::Invalid("no \"type\" field".into()))?;
    parse_command(kind, &v)
}

/// The facts a camera announces after connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub camera: String,
    pub version: String,
    pub width: u32,
    pub height: u32,
    /// `mjpeg`, `yuyv`, `nv12`, `yu12` or `pattern`.
    pub format: String,
    pub fps: u32,
    /// The relay URL this connection went to (token redacted), when known.
    pub relay: Option<String>,
}

impl Hello {
    /// The hello fields as a JSON object (without `type`).
    pub fn fields(&self) -> Map<String, Value> {
        let Value::Object(mut m) = json!({
            "camera": self.camera,
            "version": self.version,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "fps": self.fps,
        }) else {
            unreachable!("json! of an object literal is an object")
        };
        if let Some(r) = &self.relay {
            m.insert("relay".into(), r.as_str().into());
        }
        m
    }
}

/// `{"type":"hello", …}`.
pub fn hello_text(h: &Hello) -> String {
    let mut m = Map::new();
    m.insert("type".into(), "hello".into());
    m.extend(h.fields());
    Value::Object(m).to_string()
}

/// `{"type":"heartbeat"}`.
pub fn heartbeat_text() -> String {
    r#"{"type":"heartbeat"}"#.to_string()
}

/// A text message from a camera, as a relay reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum CameraText {
    /// `hello`: only the fields docs/protocol.md names, strings clipped.
    Hello(Map<String, Value>),
    /// `heartbeat`.
    Heartbeat,
    /// `stats`: only the numeric and boolean fields, at most
    /// [`MAX_STATS_FIELDS`] of them.
    Stats(Map<String, Value>),
    /// `settings`, kept as sent (bounded by the message size).
    Settings(Map<String, Value>),
    /// Any other `type`; relays log and ignore it.
    Other(String),
}

/// Longest string value a relay keeps from a camera's `hello`.
pub const MAX_HELLO_STRING: usize = 64;
/// Most fields a relay keeps from a camera's `stats`.
pub const MAX_STATS_FIELDS: usize = 64;

/// Why a camera's text message was not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextError {
    /// Over [`super::MAX_CONTROL_MESSAGE`] bytes.
    TooLarge(usize),
    /// Not a JSON object with a string `type`.
    Malformed(String),
}

impl std::fmt::Display for TextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TextError::TooLarge(n) => write!(
                f,
                "{n} bytes, over the {} limit",
                super::MAX_CONTROL_MESSAGE
            ),
            TextError::Malformed(why) => f.write_str(why),
        }
    }
}

impl TextError {
    /// A short label for metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            TextError::TooLarge(_) => "too_large",
            TextError::Malformed(_) => "malformed",
        }
    }
}

/// Parses a camera's text message. The size is checked before any parsing,
/// and what is kept is bounded whatever the camera sends.
pub fn parse_camera_text(text: &str) -> Result<CameraText, TextError> {
    if text.len() > super::MAX_CONTROL_MESSAGE {
        return Err(TextError::TooLarge(text.len()));
    }
    let v: Value =
        serde_json::from_str(text).map_err(|e| TextError::Malformed(format!("not JSON ({e})")))?;
    let Value::Object(mut m) = v else {
        return Err(TextError::Malformed("not a JSON object".into()));
    };
    let kind = match m.remove("type") {
        Some(Value::String(t)) => t,
        _ => return Err(TextError::Malformed("no \"type\" field".into())),
    };
    Ok(match kind.as_str() {
        "hello" => {
            let mut keep = Map::new();
            for key in ["camera", "version", "width", "height", "format", "fps"] {
                match m.remove(key) {
                    Some(Value::String(s)) => {
                        keep.insert(key.into(), Value::String(clip_str(&s, MAX_HELLO_STRING)));
                    }
                    Some(v @ Value::Number(_)) => {
                        keep.insert(key.into(), v);
                    }
                    _ => {}
                }
            }
            CameraText::Hello(keep)
        }
        "heartbeat" => CameraText::Heartbeat,
        "stats" => CameraText::Stats(
            m.into_iter()
                .filter(|(k, v)| k.len() <= MAX_HELLO_STRING && (v.is_number() || v.is_boolean()))
                .take(MAX_STATS_FIELDS)
                .collect(),
        ),
        "settings" => CameraText::Settings(m),
        _ => CameraText::Other(clip_str(&kind, MAX_HELLO_STRING)),
    })
}

/// At most `max` bytes of `s`, cut at a character boundary.
pub fn clip_str(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {

    #[test]
    fn set_carries_the_link_policy_and_refuses_unknown_modes() {
        let Ok(Command::Set(set)) =
            parse_raw_text(r#"{"type":"set","adapt":"fps","min_quality":40}"#)
        else {
            panic!("not a set");
        };
        assert_eq!((set.adapt, set.min_quality), (Some("fps"), Some(40)));
        assert!(set.rejected.is_empty());
        // Round trip through the text the relay sends.
        assert_eq!(
            parse_raw_text(&Command::Set(set.clone()).text()),
            Ok(Command::Set(set))
        );
        let Ok(Command::Set(set)) =
            parse_raw_text(r#"{"type":"set","adapt":"bitrate","min_quality":0,"fps":5}"#)
        else {
            panic!("not a set");
        };
        assert_eq!((set.adapt, set.min_quality, set.fps), (None, None, Some(5)));
        assert_eq!(set.rejected.len(), 2, "{:?}", set.rejected);
        assert!(
            set.rejected[0].contains("quality, fps, off"),
            "{:?}",
            set.rejected
        );
        assert!(
            set.rejected[1].starts_with("min_quality"),
            "{:?}",
            set.rejected
        );
    }

    use super::*;

    #[test]
    fn a_command_encodes_to_what_parses_back_to_it() {
        let set = Command::Set(SetCommand {
            fps: Some(5),
            quality: Some(70),
            adapt: Some("off"),
            min_quality: Some(20),
            controls: vec![
                ("brightness".into(), ControlValue::Int(-3)),
                ("hflip".into(), ControlValue::Bool(true)),
                (
                    "power_line_frequency".into(),
                    ControlValue::Text("50 Hz".into()),
                ),
            ],
            rejected: vec![],
        });
        for c in [Command::Pause, Command::Resume, set] {
            assert_eq!(parse_raw_text(&c.text()), Ok(c.clone()), "{}", c.text());
            assert_eq!(parse_command(c.name(), &Value::Object(c.fields())), Ok(c));
        }
    }

    fn set(fps: Option<u32>, quality: Option<u8>) -> Command {
        Command::Set(SetCommand {
            fps,
            quality,
            ..SetCommand::default()
        })
    }

    #[test]
    fn commands() {
        assert_eq!(parse_raw_text(r#"{"type":"pause"}"#), Ok(Command::Pause));
        assert_eq!(parse_raw_text(r#"{"type":"resume"}"#), Ok(Command::Resume));
        assert_eq!(
            parse_raw_text(r#"{"type":"set","fps":5,"quality":70}"#),
            Ok(set(Some(5), Some(70)))
        );
        assert_eq!(
            parse_raw_text(r#"{"type":"set","quality":1}"#),
            Ok(set(None, Some(1)))
        );
        assert_eq!(
            parse_raw_text(
                r#"{"type":"set","controls":{"hflip":true,"brightness":60,"power_line_frequency":"50 Hz"}}"#
            ),
            Ok(Command::Set(SetCommand {
                controls: vec![
                    ("brightness".into(), ControlValue::Int(60)),
                    ("hflip".into(), ControlValue::Bool(true)),
                    (
                        "power_line_frequency".into(),
                        ControlValue::Text("50 Hz".into())
                    ),
                ],
                ..SetCommand::default()
            }))
        );
    }

    #[test]
    fn the_valid_rest_of_a_set_applies() {
        let Ok(Command::Set(s)) = parse_raw_text(
            r#"{"type":"set","fps":0,"quality":70,"controls":{"hflip":[1],"vflip":false}}"#,
        ) else {
            panic!()
        };
        assert_eq!((s.fps, s.quality), (None, Some(70)));
        assert_eq!(
            s.controls,
            vec![("vflip".into(), ControlValue::Bool(false))]
        );
        assert_eq!(s.rejected.len(), 2, "{:?}", s.rejected);
        assert!(s.rejected[0].contains("fps: 0 is out of range (1..=120)"));
        assert!(s.rejected[1].contains("control hflip"));
        // All of it bad: still a set, so each refusal is logged.
        let Ok(Command::Set(s)) = parse_raw_text(r#"{"type":"set","fps":0}"#) else {
            panic!()
        };
        assert_eq!(s.rejected.len(), 1);
    }

    #[test]
    fn bad_commands_are_rejected() {
        for bad in [
            r#"{"type":"set"}"#,
            r#"{"type":"set","controls":null}"#,
            r#"{"nope":1}"#,
            r#"[1,2]"#,
            r#"{"type":"set","x":1}"#,
            "not json",
        ] {
            assert!(
                matches!(parse_raw_text(bad), Err(CommandError::Invalid(_))),
                "{bad}"
            );
        }
        for partly in [
            r#"{"type":"set","fps":5,"quality":101}"#,
            r#"{"type":"set","fps":-1}"#,
            r#"{"type":"set","fps":"5"}"#,
            r#"{"type":"set","fps":2.5}"#,
            r#"{"type":"set","fps":99999999999}"#,
        ] {
            let Ok(Command::Set(s)) = parse_raw_text(partly) else {
                panic!("{partly}")
            };
            assert!(!s.rejected.is_empty(), "{partly}");
        }
        assert_eq!(
            parse_raw_text(r#"{"type":"reboot"}"#),
            Err(CommandError::Unknown("reboot".into()))
        );
    }

    #[test]
    fn hello_and_heartbeat_shapes() {
        let h = Hello {
            camera: "porch".into(),
            version: "0.1.0".into(),
            width: 1280,
            height: 720,
            format: "mjpeg".into(),
            fps: 15,
            relay: None,
        };
        let v: Value = serde_json::from_str(&hello_text(&h)).unwrap();
        assert_eq!(
            v,
            json!({"type":"hello","camera":"porch","version":"0.1.0","width":1280,"height":720,"format":"mjpeg","fps":15})
        );
        let v: Value = serde_json::from_str(&heartbeat_text()).unwrap();
        assert_eq!(v, json!({"type":"heartbeat"}));
    }

    #[test]
    fn camera_texts_are_bounded() {
        let long = "x".repeat(1000);
        let t = format!(
            r#"{{"type":"hello","camera":"{long}","width":640,"height":480,"fps":15,"junk":[1,2,3]}}"#
        );
        let CameraText::Hello(h) = parse_camera_text(&t).unwrap() else {
            panic!()
        };
        assert_eq!(h["camera"].as_str().unwrap().len(), MAX_HELLO_STRING);
        assert_eq!(h["width"], 640);
        assert!(h.get("junk").is_none());
        let mut stats = String::from(r#"{"type":"stats","nested":{"a":1},"s":"x""#);
        for i in 0..200 {
            stats.push_str(&format!(r#","k{i}":{i}"#));
        }
        stats.push('}');
        let CameraText::Stats(s) = parse_camera_text(&stats).unwrap() else {
            panic!()
        };
        assert_eq!(s.len(), MAX_STATS_FIELDS);
        assert!(s.values().all(Value::is_number));
        assert_eq!(
            parse_camera_text(r#"{"type":"heartbeat"}"#),
            Ok(CameraText::Heartbeat)
        );
        let huge = format!(r#"{{"type":"stats","pad":"{}"}}"#, "y".repeat(70_000));
        assert!(matches!(
            parse_camera_text(&huge),
            Err(TextError::TooLarge(_))
        ));
        assert!(matches!(
            parse_camera_text("[1]"),
            Err(TextError::Malformed(_))
        ));
        assert!(matches!(
            parse_camera_text("nope"),
            Err(TextError::Malformed(_))
        ));
        assert_eq!(
            parse_camera_text(r#"{"type":"later-thing"}"#),
            Ok(CameraText::Other("later-thing".into()))
        );
        assert_eq!(clip_str("aé", 2), "a");
    }
}
