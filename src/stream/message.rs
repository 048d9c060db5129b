//! The JSON text messages shared by both dialects (PROTOCOL.md): what the
//! camera says (hello, heartbeat, stats) and the relay's commands.
//! Pure: values in, values out.

use serde_json::{Map, Value, json};

use crate::config::{FPS_RANGE, QUALITY_RANGE};
use crate::pipeline::{Rates, StatsSnapshot};

/// A command from the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Stop sending frames; heartbeats continue.
    Pause,
    /// Start sending frames again.
    Resume,
    /// Change pacing and/or quality live; at least one is present.
    Set {
        fps: Option<u32>,
        quality: Option<u8>,
    },
}

/// Why a command was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// Not a command we know; logged and ignored.
    Unknown(String),
    /// A known command with bad values; logged, never applied.
    Invalid(String),
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

fn parse_set(payload: &Value) -> Result<Command, CommandError> {
    let obj = payload
        .as_object()
        .ok_or_else(|| CommandError::Invalid("set: payload is not an object".into()))?;
    let fps = match obj.get("fps") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let n = v
                .as_u64()
                .filter(|n| *n <= u32::MAX as u64 && FPS_RANGE.contains(&(*n as u32)))
                .ok_or_else(|| {
                    CommandError::Invalid(format!(
                        "set: fps {v} is out of range ({}..={})",
                        FPS_RANGE.start(),
                        FPS_RANGE.end()
                    ))
                })?;
            Some(n as u32)
        }
    };
    let quality = match obj.get("quality") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let n = v
                .as_u64()
                .filter(|n| *n <= 255 && QUALITY_RANGE.contains(&(*n as u8)))
                .ok_or_else(|| {
                    CommandError::Invalid(format!("set: quality {v} is out of range (1..=100)"))
                })?;
            Some(n as u8)
        }
    };
    if fps.is_none() && quality.is_none() {
        return Err(CommandError::Invalid(
            "set: neither fps nor quality given".into(),
        ));
    }
    Ok(Command::Set { fps, quality })
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
}

impl Hello {
    /// The hello fields as a JSON object (without `type`).
    pub fn fields(&self) -> Map<String, Value> {
        let Value::Object(m) = json!({
            "camera": self.camera,
            "version": self.version,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "fps": self.fps,
        }) else {
            unreachable!("json! of an object literal is an object")
        };
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

/// The stats fields (without `type`).
pub fn stats_fields(s: &StatsSnapshot, r: &Rates) -> Map<String, Value> {
    let mut m = match serde_json::to_value(s) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    m.insert("fps_captured".into(), json!(round2(r.fps_captured)));
    m.insert("fps_sent".into(), json!(round2(r.fps_sent)));
    m.insert("kbit_s".into(), json!(round2(r.kbit_s)));
    m
}

/// `{"type":"stats", …}`.
pub fn stats_text(s: &StatsSnapshot, r: &Rates) -> String {
    let mut m = Map::new();
    m.insert("type".into(), "stats".into());
    m.extend(stats_fields(s, r));
    Value::Object(m).to_string()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(parse_raw_text(r#"{"type":"pause"}"#), Ok(Command::Pause));
        assert_eq!(parse_raw_text(r#"{"type":"resume"}"#), Ok(Command::Resume));
        assert_eq!(
            parse_raw_text(r#"{"type":"set","fps":5,"quality":70}"#),
            Ok(Command::Set {
                fps: Some(5),
                quality: Some(70)
            })
        );
        assert_eq!(
            parse_raw_text(r#"{"type":"set","quality":1}"#),
            Ok(Command::Set {
                fps: None,
                quality: Some(1)
            })
        );
    }

    #[test]
    fn bad_commands_are_rejected_whole() {
        for bad in [
            r#"{"type":"set","fps":0}"#,
            r#"{"type":"set","fps":5,"quality":101}"#,
            r#"{"type":"set","fps":-1}"#,
            r#"{"type":"set","fps":"5"}"#,
            r#"{"type":"set","fps":2.5}"#,
            r#"{"type":"set","fps":99999999999}"#,
            r#"{"type":"set"}"#,
            r#"{"nope":1}"#,
            r#"[1,2]"#,
            "not json",
        ] {
            assert!(
                matches!(parse_raw_text(bad), Err(CommandError::Invalid(_))),
                "{bad}"
            );
        }
        assert_eq!(
            parse_raw_text(r#"{"type":"reboot"}"#),
            Err(CommandError::Unknown("reboot".into()))
        );
    }

    #[test]
    fn hello_and_stats_shapes() {
        let h = Hello {
            camera: "porch".into(),
            version: "0.1.0".into(),
            width: 1280,
            height: 720,
            format: "mjpeg".into(),
            fps: 15,
        };
        let v: Value = serde_json::from_str(&hello_text(&h)).unwrap();
        assert_eq!(
            v,
            json!({"type":"hello","camera":"porch","version":"0.1.0","width":1280,"height":720,"format":"mjpeg","fps":15})
        );
        let v: Value = serde_json::from_str(&heartbeat_text()).unwrap();
        assert_eq!(v, json!({"type":"heartbeat"}));
        let s = StatsSnapshot {
            sent: 3,
            dropped: 1,
            ..Default::default()
        };
        let v: Value = serde_json::from_str(&stats_text(
            &s,
            &Rates {
                fps_sent: 1.234,
                ..Default::default()
            },
        ))
        .unwrap();
        assert_eq!(v["type"], "stats");
        assert_eq!(v["sent"], 3);
        assert_eq!(v["dropped"], 1);
        assert_eq!(v["fps_sent"], 1.23);
        for key in [
            "reconnects",
            "bytes",
            "encode_ms_p50",
            "encode_ms_p99",
            "quality",
            "fps",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
    }
}
