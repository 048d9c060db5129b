//! The default config in deploy/ is valid as shipped, and every setting it
//! documents (the `#key = value` lines) is a real key with a valid example.

use std::path::Path;
use std::process::Command;

use zerocam::config::{self, Config, Overrides};

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/zerocam.toml");

/// The zerocam binary, behind ZEROCAM_TEST_RUNNER (e.g. `qemu-arm -cpu
/// arm1176`) when it is set.
fn zerocam() -> Command {
    let bin = env!("CARGO_BIN_EXE_zerocam");
    match std::env::var("ZEROCAM_TEST_RUNNER") {
        Ok(r) if !r.trim().is_empty() && cfg!(not(target_arch = "x86_64")) => {
            let mut parts = r.split_whitespace();
            let mut c = Command::new(parts.next().unwrap());
            c.args(parts).arg(bin);
            c
        }
        _ => Command::new(bin),
    }
}

#[test]
fn check_config_wants_a_relay_in_the_shipped_file_and_then_accepts_it() {
    // As shipped, the file names no relay: `stream` would refuse it, so
    // `check-config` does too, saying which key to set.
    let out = zerocam().args(["check-config", SHIPPED]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("relay.url"), "{stderr}");
    // With relay.url set, it is ok.
    let text = std::fs::read_to_string(SHIPPED).unwrap().replace(
        "[relay]\n",
        "[relay]\nurl = \"ws://127.0.0.1:8080/ingest/porch\"\n",
    );
    let dir = std::env::temp_dir().join(format!("zerocam-shipped-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("zerocam.toml");
    std::fs::write(&p, text).unwrap();
    let out = zerocam().arg("check-config").arg(&p).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(": ok"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_documented_setting_is_valid_when_uncommented() {
    let text = std::fs::read_to_string(SHIPPED).unwrap();
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let mut n = 0;
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_alphabetic()) => {
                n += 1;
                // relay.ca must name an existing file.
                if rest.starts_with("ca =") {
                    format!("ca = \"{ca}\"\n")
                } else {
                    format!("{rest}\n")
                }
            }
            _ => format!("{l}\n"),
        })
        .collect();
    assert!(n >= 20, "only {n} documented settings found");
    let file = config::parse_str(&uncommented).unwrap();
    let cfg = Config::build_with(file, &Overrides::default(), true, &|_| true).unwrap();
    assert_eq!(cfg.camera, "porch");
    assert!(cfg.relay.url.starts_with("wss://"));
    assert_eq!(cfg.relay.ca.as_deref(), Some(Path::new(ca)));
}

#[test]
fn the_shipped_file_documents_every_camera_key_at_its_default() {
    use zerocam::config::keys::{DefaultValue, KEYS};
    let text = std::fs::read_to_string(SHIPPED).unwrap();
    // `section.name` → the value written on its `#name = value` line.
    let mut section = String::new();
    let mut written = std::collections::HashMap::new();
    for line in text.lines() {
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        let line = line.strip_prefix('#').unwrap_or(line);
        if let Some((name, value)) = line.split_once(" = ") {
            if name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                let key = if section.is_empty() {
                    name.to_string()
                } else {
                    format!("{section}.{name}")
                };
                written
                    .entry(key)
                    .or_insert_with(|| value.trim().to_string());
            }
        }
    }
    let mut missing = Vec::new();
    for k in KEYS.iter().filter(|k| !k.key.starts_with("server.")) {
        if k.key == "source.controls" {
            assert!(
                text.contains("[source.controls]"),
                "no [source.controls] example"
            );
            continue;
        }
        let Some(v) = written.get(k.key) else {
            missing.push(k.key);
            continue;
        };
        // A commented line shows the default; an uncommented one is the
        // shipped choice (device, wait_for_device, led.pin).
        let commented = text.lines().any(|l| {
            l.starts_with('#') && l[1..].starts_with(k.key.rsplit('.').next().unwrap_or(""))
        });
        let want = match k.default {
            DefaultValue::Whole(n) => Some(n.to_string()),
            DefaultValue::Secs(s) => Some(format!("{s:?}")),
            DefaultValue::Bool(b) => Some(b.to_string()),
            DefaultValue::Text(t) => Some(format!("{t:?}")),
            DefaultValue::Note(_) => None,
        };
        if let (true, Some(want)) = (commented, want) {
            let same = v == &want
                || v.parse::<f64>().ok() == want.parse::<f64>().ok() && v.parse::<f64>().is_ok();
            assert!(same, "{}: the file says {v}, the default is {want}", k.key);
        }
    }
    assert!(
        missing.is_empty(),
        "not in deploy/zerocam.toml: {missing:?}"
    );
}
