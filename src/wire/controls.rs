//! Image controls (brightness, flips, exposure …) as zerocam names and
//! checks them, whatever the source: a V4L2 device's own controls, or the
//! test pattern's software ones. Pure: descriptions and values in,
//! validated values and messages out. The camera checks a `set` against its
//! source's controls; the relay checks an API request against the ranges
//! the camera reported (the same check, through [`ControlInfo::from_range`]).

use serde_json::{Map, Value, json};

use crate::wire::message::ControlValue;

/// Why a source has no image controls to set: the camera's log, the
/// config check and the relay's settings API say it alike.
pub const NO_CONTROLS: &str = "no image controls (an exec: program takes them as options)";

/// What values a control takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Integer {
        min: i64,
        max: i64,
        step: i64,
    },
    Boolean,
    /// Menu items: (value, label). Integer menus label their numbers.
    Menu {
        items: Vec<(i64, String)>,
    },
    /// Pressed, no value (e.g. "restore defaults").
    Button,
}

/// One control of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlInfo {
    /// lower_snake_case: the common names of docs/protocol.md for well-known
    /// controls, else the device's own name.
    pub name: String,
    /// The V4L2 control id (or the source's own id).
    pub id: u32,
    pub kind: Kind,
    pub default: i64,
    /// The value the device reports now.
    pub value: i64,
    /// The device will not take a value now (read-only, or inactive while
    /// an automatic mode is on).
    pub read_only: bool,
}

/// zerocam's name for a V4L2 control: the names docs/protocol.md lists for the
/// well-known ids (as `v4l2-ctl` spelled them before kernel 5.x renamed
/// some), else the device's name in lower_snake_case.
pub fn name_for(id: u32, device_name: &str) -> String {
    let known = match id {
        0x0098_0900 => "brightness",
        0x0098_0901 => "contrast",
        0x0098_0902 => "saturation",
        0x0098_0903 => "hue",
        0x0098_090c => "white_balance_auto",
        0x0098_0910 => "gamma",
        0x0098_0911 => "exposure",
        0x0098_0912 => "gain_auto",
        0x0098_0913 => "gain",
        0x0098_0914 => "hflip",
        0x0098_0915 => "vflip",
        0x0098_0918 => "power_line_frequency",
        0x0098_0919 => "hue_auto",
        0x0098_091a => "white_balance_temperature",
        0x0098_091b => "sharpness",
        0x0098_091c => "backlight_compensation",
        0x0098_0922 => "rotate",
        0x009a_0901 => "exposure_auto",
        0x009a_0902 => "exposure_absolute",
        0x009a_0903 => "exposure_auto_priority",
        0x009a_090a => "focus_absolute",
        0x009a_090c => "focus_auto",
        0x009a_090d => "zoom_absolute",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_string();
    }
    snake(device_name)
}

/// "White Balance Temperature, Auto" → "white_balance_temperature_auto".
pub fn snake(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

impl ControlInfo {
    /// The device value for a requested one, or why it is refused (naming
    /// the control and what it takes).
    pub fn resolve(&self, v: &ControlValue) -> Result<i64, String> {
        let n = &self.name;
        if self.read_only {
            return Err(format!(
                "control {n} cannot be set now (read-only or inactive)"
            ));
        }
        match (&self.kind, v) {
            (Kind::Integer { min, max, step }, ControlValue::Int(x)) => {
                if x < min || x > max {
                    return Err(format!("control {n}: {x} is out of range ({min}..={max})"));
                }
                let step = (*step).max(1);
                if (x - min) % step != 0 {
                    return Err(format!(
                        "control {n}: {x} is not on the step of {step} from {min}"
                    ));
                }
                Ok(*x)
            }
            (Kind::Boolean, ControlValue::Bool(b)) => Ok(i64::from(*b)),
            (Kind::Boolean, ControlValue::Int(x @ (0 | 1))) => Ok(*x),
            (Kind::Menu { items }, ControlValue::Int(x)) => {
                if items.iter().any(|(i, _)| i == x) {
                    Ok(*x)
                } else {
                    Err(format!(
                        "control {n}: {x} is not one of {}",
                        menu_list(items)
                    ))
                }
            }
            (Kind::Menu { items }, ControlValue::Text(t)) => items
                .iter()
                .find(|(_, label)| label.eq_ignore_ascii_case(t))
                .map(|(i, _)| *i)
                .ok_or_else(|| format!("control {n}: {t:?} is not one of {}", menu_list(items))),
            (Kind::Button, ControlValue::Bool(true)) => Ok(1),
            (kind, v) => Err(format!(
                "control {n}: {v} is not {}",
                match kind {
                    Kind::Integer { min, max, .. } => format!("an integer in {min}..={max}"),
                    Kind::Boolean => "true or false".into(),
                    Kind::Menu { items } => format!("one of {}", menu_list(items)),
                    Kind::Button => "true (a button)".into(),
                }
            )),
        }
    }

    /// The current value as JSON (booleans as booleans).
    pub fn value_json(&self) -> Value {
        match self.kind {
            Kind::Boolean => json!(self.value != 0),
            Kind::Button => Value::Null,
            _ => json!(self.value),
        }
    }

    /// What the control takes, as JSON (for `settings` and the relay's API).
    pub fn range_json(&self) -> Value {
        let mut m = Map::new();
        match &self.kind {
            Kind::Integer { min, max, step } => {
                m.insert("type".into(), json!("integer"));
                m.insert("min".into(), json!(min));
                m.insert("max".into(), json!(max));
                m.insert("step".into(), json!(step));
                m.insert("default".into(), json!(self.default));
            }
            Kind::Boolean => {
                m.insert("type".into(), json!("boolean"));
                m.insert("default".into(), json!(self.default != 0));
            }
            Kind::Menu { items } => {
                m.insert("type".into(), json!("menu"));
                m.insert(
                    "items".into(),
                    Value::Array(
                        items
                            .iter()
                            .map(|(v, l)| json!({"value": v, "label": l}))
                            .collect(),
                    ),
                );
                m.insert("default".into(), json!(self.default));
            }
            Kind::Button => {
                m.insert("type".into(), json!("button"));
            }
        }
        if self.read_only {
            m.insert("read_only".into(), json!(true));
        }
        Value::Object(m)
    }

    /// The control a `ranges` entry describes (what [`range_json`] wrote),
    /// so that a relay can check a value as the camera would; `None` for an
    /// entry it cannot read.
    ///
    /// [`range_json`]: ControlInfo::range_json
    pub fn from_range(name: &str, range: &Value) -> Option<ControlInfo> {
        let int = |k: &str| range.get(k).and_then(Value::as_i64);
        let kind = match range.get("type")?.as_str()? {
            "integer" => Kind::Integer {
                min: int("min")?,
                max: int("max")?,
                step: int("step").unwrap_or(1),
            },
            "boolean" => Kind::Boolean,
            "menu" => Kind::Menu {
                items: range
                    .get("items")?
                    .as_array()?
                    .iter()
                    .map(|i| {
                        Some((
                            i.get("value")?.as_i64()?,
                            i.get("label")?.as_str()?.to_string(),
                        ))
                    })
                    .collect::<Option<Vec<_>>>()?,
            },
            "button" => Kind::Button,
            _ => return None,
        };
        Some(ControlInfo {
            name: name.to_string(),
            id: 0,
            kind,
            default: 0,
            value: 0,
            read_only: range.get("read_only").and_then(Value::as_bool) == Some(true),
        })
    }

    /// One line for `zerocam probe`, as `v4l2-ctl --list-ctrls-menus` does.
    pub fn describe(&self) -> String {
        let flags = if self.read_only {
            " (read-only/inactive)"
        } else {
            ""
        };
        match &self.kind {
            Kind::Integer { min, max, step } => format!(
                "{} (int): min={min} max={max} step={step} default={} value={}{flags}",
                self.name, self.default, self.value
            ),
            Kind::Boolean => format!(
                "{} (bool): default={} value={}{flags}",
                self.name, self.default, self.value
            ),
            Kind::Menu { items } => format!(
                "{} (menu): {} default={} value={}{flags}",
                self.name,
                menu_list(items),
                self.default,
                self.value
            ),
            Kind::Button => format!("{} (button){flags}", self.name),
        }
    }
}

fn menu_list(items: &[(i64, String)]) -> String {
    let v: Vec<String> = items.iter().map(|(i, l)| format!("{i}: {l}")).collect();
    format!("[{}]", v.join(", "))
}

/// Values and ranges of `controls` as the `settings` message carries them.
pub fn report(controls: &[ControlInfo]) -> (Map<String, Value>, Map<String, Value>) {
    let mut values = Map::new();
    let mut ranges = Map::new();
    for c in controls {
        if c.kind != Kind::Button {
            values.insert(c.name.clone(), c.value_json());
        }
        ranges.insert(c.name.clone(), c.range_json());
    }
    (values, ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(name: &str, min: i64, max: i64, step: i64) -> ControlInfo {
        ControlInfo {
            name: name.into(),
            id: 1,
            kind: Kind::Integer { min, max, step },
            default: 0,
            value: 0,
            read_only: false,
        }
    }

    #[test]
    fn names_follow_the_protocol_then_the_device() {
        assert_eq!(name_for(0x0098_0914, "Horizontal Flip"), "hflip");
        assert_eq!(name_for(0x009a_0901, "Auto Exposure"), "exposure_auto");
        assert_eq!(
            name_for(0x0098_090c, "White Balance, Automatic"),
            "white_balance_auto"
        );
        assert_eq!(
            name_for(0x00f0_0000, "White Balance Temperature, Auto"),
            "white_balance_temperature_auto"
        );
        assert_eq!(snake("  Exposure (Absolute)  "), "exposure_absolute");
    }

    #[test]
    fn values_are_checked_against_what_the_device_reports() {
        let b = int("brightness", 0, 255, 1);
        assert_eq!(b.resolve(&ControlValue::Int(60)), Ok(60));
        let e = b.resolve(&ControlValue::Int(300)).unwrap_err();
        assert_eq!(e, "control brightness: 300 is out of range (0..=255)");
        assert!(
            b.resolve(&ControlValue::Bool(true))
                .unwrap_err()
                .contains("an integer in 0..=255")
        );
        let s = int("zoom", 100, 500, 10);
        assert!(
            s.resolve(&ControlValue::Int(105))
                .unwrap_err()
                .contains("step of 10")
        );
        let flip = ControlInfo {
            kind: Kind::Boolean,
            ..int("hflip", 0, 1, 1)
        };
        assert_eq!(flip.resolve(&ControlValue::Bool(true)), Ok(1));
        assert_eq!(flip.resolve(&ControlValue::Int(0)), Ok(0));
        let plf = ControlInfo {
            kind: Kind::Menu {
                items: vec![
                    (0, "Disabled".into()),
                    (1, "50 Hz".into()),
                    (2, "60 Hz".into()),
                ],
            },
            ..int("power_line_frequency", 0, 2, 1)
        };
        assert_eq!(plf.resolve(&ControlValue::Text("50 hz".into())), Ok(1));
        assert_eq!(plf.resolve(&ControlValue::Int(2)), Ok(2));
        assert!(
            plf.resolve(&ControlValue::Int(7))
                .unwrap_err()
                .contains("1: 50 Hz")
        );
        let ro = ControlInfo {
            read_only: true,
            ..int("exposure_absolute", 1, 5000, 1)
        };
        assert!(
            ro.resolve(&ControlValue::Int(10))
                .unwrap_err()
                .contains("cannot be set now")
        );
    }

    #[test]
    fn a_reported_range_checks_as_the_control_itself() {
        let plf = ControlInfo {
            kind: Kind::Menu {
                items: vec![(0, "Disabled".into()), (1, "50 Hz".into())],
            },
            ..int("power_line_frequency", 0, 1, 1)
        };
        let flip = ControlInfo {
            kind: Kind::Boolean,
            ..int("hflip", 0, 1, 1)
        };
        for c in [int("brightness", -100, 100, 2), plf, flip] {
            let back = ControlInfo::from_range(&c.name, &c.range_json()).unwrap();
            for v in [
                ControlValue::Int(4),
                ControlValue::Int(5),
                ControlValue::Int(500),
                ControlValue::Bool(true),
                ControlValue::Text("yes".into()),
                ControlValue::Text("50 Hz".into()),
            ] {
                assert_eq!(back.resolve(&v), c.resolve(&v), "{} {v}", c.name);
            }
        }
        assert!(ControlInfo::from_range("x", &json!({"type": "wobble"})).is_none());
        assert!(ControlInfo::from_range("x", &json!({"type": "integer"})).is_none());
    }

    #[test]
    fn reports_carry_values_and_ranges() {
        let flip = ControlInfo {
            kind: Kind::Boolean,
            value: 1,
            ..int("vflip", 0, 1, 1)
        };
        let (values, ranges) = report(&[int("brightness", -64, 64, 1), flip]);
        assert_eq!(values["brightness"], 0);
        assert_eq!(values["vflip"], true);
        assert_eq!(ranges["brightness"]["min"], -64);
        assert_eq!(ranges["vflip"]["type"], "boolean");
    }
}
