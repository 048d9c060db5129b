//! The device edge: status LED, systemd notify/watchdog.
//!
//! One thread ticks every 50 ms: it shows `pipeline.health.link()` on the
//! LED and tells systemd `READY=1`, `STATUS=`, `WATCHDOG=1` (only while the
//! capture and stream threads beat) and `STOPPING=1` at shutdown.

pub mod led;
pub mod notify;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::LedConfig;
use crate::pipeline::Pipeline;

use led::Led;
use notify::{Notifier, NotifyPlan, Observation};

/// The device thread's tick.
const TICK: Duration = Duration::from_millis(50);

/// Starts the device thread, which stops once `controls.shutting_down()`.
/// Returns `None` when there is nothing to do (no LED configured and not
/// started by systemd). Off a Pi (no GPIO, no ACT LED) it logs one warning
/// and carries on without the LED.
pub fn spawn(pipeline: Arc<Pipeline>, led: LedConfig) -> std::io::Result<Option<JoinHandle<()>>> {
    let led = match Led::open(&led) {
        Ok(l) => l,
        Err(e) => {
            log::warn!("status LED off: {e}");
            None
        }
    };
    let notifier = match Notifier::from_env() {
        Some(Ok(n)) => Some(n),
        Some(Err(e)) => {
            log::warn!("systemd notify off: {e}");
            None
        }
        None => None,
    };
    if led.is_none() && notifier.is_none() {
        return Ok(None);
    }
    let watchdog = notifier.as_ref().and_then(|_| notify::watchdog_from_env());
    if let Some(w) = watchdog {
        log::info!("systemd watchdog {:.0}s", w.as_secs_f64());
    }
    std::thread::Builder::new()
        .name("device".into())
        .spawn(move || run(&pipeline, led, notifier, watchdog))
        .map(Some)
}

fn run(p: &Pipeline, mut led: Option<Led>, notifier: Option<Notifier>, watchdog: Option<Duration>) {
    let t0 = Instant::now();
    let mut plan = NotifyPlan::new(watchdog);
    let mut shown: Option<bool> = None;
    let mut notify_failed = false;
    let send = |msg: &str, failed: &mut bool| {
        if let Some(n) = &notifier {
            match n.send(msg) {
                Ok(()) => *failed = false,
                Err(e) if !*failed => {
                    *failed = true;
                    log::warn!("systemd notify failed: {e}");
                }
                Err(_) => {}
            }
        }
    };
    // A thread has beaten since we started when its silence is shorter than
    // our own lifetime (Health counts from before the threads started).
    let mut capture_started = false;
    let mut stream_started = false;
    loop {
        let now = t0.elapsed();
        let h = &p.health;
        let (capture_age, stream_age) = (h.capture_age(), h.stream_age());
        capture_started |= capture_age + TICK < now;
        stream_started |= stream_age + TICK < now;
        let link = h.link();
        if let Some(l) = &mut led {
            let on = led::lit(link, now);
            if shown != Some(on) {
                shown = Some(on);
                if let Err(e) = l.set(on) {
                    log::warn!("status LED off: {e}");
                    led = None;
                }
            }
        }
        let o = Observation {
            link,
            capture_age,
            stream_age,
            both_started: capture_started && stream_started,
        };
        for msg in plan.step(now, &o) {
            send(&msg, &mut notify_failed);
        }
        if p.controls.shutting_down() {
            send(&plan.stopping(), &mut notify_failed);
            if let Some(l) = &mut led {
                let _ = l.set(false);
            }
            return;
        }
        std::thread::sleep(TICK);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LedPin;

    fn test_pipeline() -> Arc<Pipeline> {
        let source = crate::config::SourceConfig::pattern(64, 48, 5);
        Pipeline::for_source(&source).unwrap()
    }

    #[test]
    fn without_led_or_systemd_there_is_no_thread() {
        // NOTIFY_SOCKET is not set under `cargo test` (nor under CI).
        if std::env::var_os("NOTIFY_SOCKET").is_some() {
            return;
        }
        let p = test_pipeline();
        let h = spawn(
            p,
            LedConfig {
                pin: LedPin::None,
                active_low: false,
            },
        )
        .unwrap();
        assert!(h.is_none());
    }

    #[test]
    fn thread_notifies_and_stops_on_shutdown() {
        use std::os::unix::net::UnixDatagram;
        let dir = std::env::temp_dir().join(format!("zerocam-dev-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("n.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let p = test_pipeline();
        let n = Notifier::new(path.to_str().unwrap()).unwrap();
        let p2 = p.clone();
        let t = std::thread::spawn(move || {
            run(&p2, None, Some(n), Some(Duration::from_secs(60)));
        });
        let mut buf = [0u8; 256];
        let mut recv = || {
            let n = listener.recv(&mut buf).unwrap();
            String::from_utf8(buf[..n].to_vec()).unwrap()
        };
        assert_eq!(recv(), "STATUS=connecting to the relay");
        // Beat both threads until READY arrives.
        let beater = {
            let p = p.clone();
            std::thread::spawn(move || {
                while !p.controls.shutting_down() {
                    p.health.beat_capture();
                    p.health.beat_stream();
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        assert_eq!(recv(), "READY=1");
        assert_eq!(recv(), "WATCHDOG=1");
        p.health.set_link(crate::pipeline::LinkState::Streaming);
        assert_eq!(recv(), "STATUS=streaming");
        p.controls.request_shutdown();
        assert_eq!(recv(), "STOPPING=1\nSTATUS=stopping");
        t.join().unwrap();
        beater.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
