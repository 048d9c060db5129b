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
