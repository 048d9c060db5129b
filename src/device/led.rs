//! The status LED: a pure pattern (link state + time → lit or not) and the
//! outputs that show it, a GPIO pin through rppal or the board's ACT LED
//! through sysfs.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{LedConfig, LedPin};
use crate::pipeline::LinkState;

/// Is the LED lit for `link` at `t` (time since the device thread started)?
///
/// * Connecting: slow blink, 1 s period, half on.
/// * Streaming: steadily on.
/// * Paused: a 100 ms blip every 2 s.
/// * Error: fast blink, 200 ms period, half on.
pub fn lit(link: LinkState, t: Duration) -> bool {
    let ms = t.as_millis();
    match link {
        LinkState::Connecting => ms % 1000 < 500,
        LinkState::Streaming => true,
        LinkState::Paused => ms % 2000 < 100,
        LinkState::Error => ms % 200 < 100,
    }
}

/// Where the sysfs LED class lives (a parameter for tests).
pub const SYS_LEDS: &str = "/sys/class/leds";

/// An LED that can be switched.
pub enum Led {
    /// A GPIO pin (rppal); `active_low` inverts it.
    Gpio {
        pin: rppal::gpio::OutputPin,
        active_low: bool,
    },
    /// A sysfs LED (`brightness` file); its trigger is restored on drop.
    Sysfs {
        dir: PathBuf,
        active_low: bool,
        old_trigger: Option<String>,
    },
}

impl std::fmt::Debug for Led {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Led::Gpio { pin, .. } => write!(f, "Led::Gpio({})", pin.pin()),
            Led::Sysfs { dir, .. } => write!(f, "Led::Sysfs({})", dir.display()),
        }
    }
}

impl Led {
    /// Opens the configured LED. `Ok(None)` when none is configured; an
    /// error (for one warning line) when this is not a Pi or access is denied.
    pub fn open(cfg: &LedConfig) -> io::Result<Option<Led>> {
        match cfg.pin {
            LedPin::None => Ok(None),
            LedPin::Gpio(n) => open_gpio(n, cfg.active_low).map(Some),
            LedPin::Act => Led::open_sysfs(Path::new(SYS_LEDS), cfg.active_low).map(Some),
        }
    }

    /// The board's activity LED under `root` (`ACT` on current kernels,
    /// `led0` on older ones): sets its trigger to `none` so the kernel's
    /// SD-card activity does not fight our pattern.
    pub fn open_sysfs(root: &Path, active_low: bool) -> io::Result<Led> {
        let dir = ["ACT", "led0"]
            .iter()
            .map(|n| root.join(n))
            .find(|d| d.join("brightness").exists())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no ACT or led0 LED under {}", root.display()),
                )
            })?;
        let old_trigger = fs::read_to_string(dir.join("trigger"))
            .ok()
            .and_then(|t| current_trigger(&t));
        fs::write(dir.join("trigger"), "none").map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "{}: {e} (the udev rule deploy/99-zerocam-led.rules gives the gpio group write access)",
                    dir.join("trigger").display()
                ),
            )
        })?;
        Ok(Led::Sysfs {
            dir,
            active_low,
            old_trigger,
        })
    }

    /// Lights the LED or not.
    pub fn set(&mut self, on: bool) -> io::Result<()> {
        match self {
            Led::Gpio { pin, active_low } => {
                if on != *active_low {
                    pin.set_high()
                } else {
                    pin.set_low()
                }
                Ok(())
            }
            Led::Sysfs {
                dir, active_low, ..
            } => fs::write(
                dir.join("brightness"),
                if on != *active_low { "1" } else { "0" },
            ),
        }
    }
}

impl Drop for Led {
    fn drop(&mut self) {
        // Give the board LED back to the kernel (rppal resets GPIO pins itself).
        if let Led::Sysfs {
            dir,
            old_trigger: Some(t),
            ..
        } = self
        {
            let _ = fs::write(dir.join("trigger"), t.as_bytes());
        }
    }
}

fn open_gpio(pin: u8, active_low: bool) -> io::Result<Led> {
    let err = |what: &str, e: &dyn std::fmt::Display| {
        io::Error::other(format!("GPIO {pin}: {what}: {e}"))
    };
    // DeviceInfo fails off a Pi with a clearer reason than Gpio::new.
    rppal::system::DeviceInfo::new().map_err(|e| err("not a Raspberry Pi", &e))?;
    let gpio = rppal::gpio::Gpio::new().map_err(|e| err("cannot open the GPIO", &e))?;
    let out = gpio
        .get(pin)
        .map_err(|e| err("cannot take the pin", &e))?
        .into_output();
    Ok(Led::Gpio {
        pin: out,
        active_low,
    })
}

/// The bracketed entry of a sysfs `trigger` file, e.g. `mmc0` from
/// `none [mmc0] timer`.
pub fn current_trigger(text: &str) -> Option<String> {
    let start = text.find('[')? + 1;
    let len = text[start..].find(']')?;
    Some(text[start..start + len].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn patterns_are_distinct() {
        let sample = |l| (0..40).map(|i| lit(l, ms(i * 50))).collect::<Vec<_>>();
        let c = sample(LinkState::Connecting);
        let s = sample(LinkState::Streaming);
        let p = sample(LinkState::Paused);
        let e = sample(LinkState::Error);
        let lit_count = |v: &Vec<bool>| v.iter().filter(|b| **b).count();
        assert_eq!(lit_count(&s), 40);
        assert_eq!(lit_count(&c), 20);
        assert_eq!(lit_count(&e), 20);
        assert_eq!(lit_count(&p), 2);
        assert_ne!(c, e);
    }

    #[test]
    fn pattern_timing() {
        use LinkState::*;
        assert!(lit(Connecting, ms(0)) && lit(Connecting, ms(499)));
        assert!(!lit(Connecting, ms(500)) && !lit(Connecting, ms(999)));
        assert!(lit(Connecting, ms(1000)));
        assert!(lit(Paused, ms(2050)) && !lit(Paused, ms(2100)) && !lit(Paused, ms(3999)));
        assert!(lit(Error, ms(1099)) && !lit(Error, ms(1100)) && lit(Error, ms(1200)));
        assert!(lit(Streaming, ms(123_456)));
    }

    #[test]
    fn trigger_parsing() {
        assert_eq!(
            current_trigger("none [mmc0] timer heartbeat\n").as_deref(),
            Some("mmc0")
        );
        assert_eq!(current_trigger("none timer").as_deref(), None);
    }

    #[test]
    fn sysfs_led_takes_over_and_restores_the_trigger() {
        let root = std::env::temp_dir().join(format!("zerocam-leds-{}", std::process::id()));
        let act = root.join("led0");
        fs::create_dir_all(&act).unwrap();
        fs::write(act.join("brightness"), "0").unwrap();
        fs::write(act.join("trigger"), "none [mmc0] timer").unwrap();
        let mut led = Led::open_sysfs(&root, false).unwrap();
        assert_eq!(fs::read_to_string(act.join("trigger")).unwrap(), "none");
        led.set(true).unwrap();
        assert_eq!(fs::read_to_string(act.join("brightness")).unwrap(), "1");
        led.set(false).unwrap();
        assert_eq!(fs::read_to_string(act.join("brightness")).unwrap(), "0");
        drop(led);
        assert_eq!(fs::read_to_string(act.join("trigger")).unwrap(), "mmc0");
        // Inverted.
        let mut led = Led::open_sysfs(&root, true).unwrap();
        led.set(true).unwrap();
        assert_eq!(fs::read_to_string(act.join("brightness")).unwrap(), "0");
        drop(led);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn missing_sysfs_led_is_an_error_not_a_panic() {
        let e = Led::open_sysfs(Path::new("/nonexistent-zerocam"), false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn gpio_off_a_pi_is_an_error_not_a_panic() {
        // The test machine (or qemu-user) is not a Pi.
        if rppal::system::DeviceInfo::new().is_err() {
            let e = Led::open(&LedConfig {
                pin: LedPin::Gpio(17),
                active_low: false,
            })
            .unwrap_err();
            assert!(e.to_string().contains("GPIO 17"), "{e}");
        }
    }
}
