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
fn check_config_accepts_the_shipped_file() {
    let out = zerocam().args(["check-config", SHIPPED]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(": ok"), "{stdout}");
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
