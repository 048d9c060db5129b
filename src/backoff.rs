//! Exponential backoff with full jitter (docs/protocol.md): attempt n waits a
//! uniformly random delay in `[0, min(max, base × 2^n)]`; the attempt count
//! resets once a connection has stayed up for `stable_after`.

use std::time::{Duration, Instant};

use crate::config::BackoffConfig;

/// Backoff state for one relay connection.
#[derive(Debug)]
pub struct Backoff {
    cfg: BackoffConfig,
    attempt: u32,
    rng: fastrand::Rng,
    connected_at: Option<Instant>,
}

impl Backoff {
    pub fn new(cfg: BackoffConfig) -> Backoff {
        Backoff {
            cfg,
            attempt: 0,
            rng: fastrand::Rng::new(),
            connected_at: None,
        }
    }

    /// Deterministic jitter, for tests.
    pub fn with_seed(cfg: BackoffConfig, seed: u64) -> Backoff {
        Backoff {
            cfg,
            attempt: 0,
            rng: fastrand::Rng::with_seed(seed),
            connected_at: None,
        }
    }

    /// The current attempt number (0 = no failure since the last reset).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The upper bound of the next delay: `min(max, base × 2^attempt)`.
    pub fn ceiling(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(30));
        self.cfg.base.saturating_mul(factor).min(self.cfg.max)
    }

    /// The delay before the next attempt; advances the attempt counter.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let nanos = ceiling.as_nanos().min(u64::MAX as u128) as u64;
        Duration::from_nanos(self.rng.u64(0..=nanos))
    }

    /// For refusals that retrying soon cannot fix (401/403): wait the
    /// maximum, with jitter in its upper half so a fleet still spreads out.
    pub fn max_delay(&mut self) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        let max = self.cfg.max.as_nanos().min(u64::MAX as u128) as u64;
        Duration::from_nanos(self.rng.u64(max / 2..=max))
    }

    /// A connection came up now.
    pub fn connected(&mut self, now: Instant) {
        self.connected_at = Some(now);
    }

    /// The connection went down now: if it had been up for `stable_after`
    /// the attempt counter starts again from zero.
    pub fn disconnected(&mut self, now: Instant) {
        if let Some(at) = self.connected_at.take() {
            if now.saturating_duration_since(at) >= self.cfg.stable_after {
                self.attempt = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BackoffConfig {
        BackoffConfig::default()
    }

    #[test]
    fn delays_stay_within_the_exponential_ceiling() {
        let mut b = Backoff::with_seed(cfg(), 1);
        for n in 0..20u32 {
            let ceiling = Duration::from_millis(500)
                .saturating_mul(2u32.saturating_pow(n))
                .min(Duration::from_secs(30));
            assert_eq!(b.ceiling(), ceiling);
            let d = b.next_delay();
            assert!(d <= ceiling, "attempt {n}: {d:?} > {ceiling:?}");
        }
        assert_eq!(b.ceiling(), Duration::from_secs(30));
    }

    #[test]
    fn jitter_spreads_over_the_whole_range() {
        let mut b = Backoff::with_seed(cfg(), 7);
        let mut samples = Vec::new();
        for _ in 0..2000 {
            b.attempt = 6; // ceiling 30 s
            samples.push(b.next_delay().as_secs_f64());
        }
        let min = samples.iter().cloned().fold(f64::MAX, f64::min);
        let max = samples.iter().cloned().fold(0.0, f64::max);
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        assert!(min < 1.5, "min {min}");
        assert!(max > 28.5 && max <= 30.0, "max {max}");
        assert!((13.5..16.5).contains(&mean), "mean {mean}");
        // Two cameras with different seeds do not reconnect in lockstep.
        let mut a = Backoff::with_seed(cfg(), 1);
        let mut c = Backoff::with_seed(cfg(), 2);
        let same = (0..10).filter(|_| a.next_delay() == c.next_delay()).count();
        assert!(same < 3);
    }

    #[test]
    fn counter_resets_only_after_a_stable_connection() {
        let mut b = Backoff::with_seed(cfg(), 3);
        for _ in 0..5 {
            b.next_delay();
        }
        assert_eq!(b.attempt(), 5);
        let t0 = Instant::now();
        b.connected(t0);
        b.disconnected(t0 + Duration::from_secs(2));
        assert_eq!(b.attempt(), 5, "a short-lived connection does not reset");
        b.connected(t0);
        b.disconnected(t0 + Duration::from_secs(10));
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.ceiling(), Duration::from_millis(500));
    }

    #[test]
    fn max_delay_is_in_the_upper_half_of_max() {
        let mut b = Backoff::with_seed(cfg(), 9);
        for _ in 0..100 {
            let d = b.max_delay();
            assert!(
                d >= Duration::from_secs(15) && d <= Duration::from_secs(30),
                "{d:?}"
            );
        }
    }
}
