//! Log lines about rejected input, rate-limited: one line per camera per
//! reason per [`EVERY`], carrying the count since the last line, so a
//! camera that sends garbage 30 times a second writes one line every ten
//! seconds instead of 300. Pure bookkeeping; the caller logs.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// At most one line per reason this often.
pub const EVERY: Duration = Duration::from_secs(10);

/// Per reason: when its last line was written, and how many rejects came
/// since (not yet in a line).
#[derive(Debug, Default)]
pub struct RejectLog {
    reasons: HashMap<&'static str, (Instant, u64)>,
}

impl RejectLog {
    /// Notes one reject for `reason` at `now`; returns the count to log now
    /// (this one included), or `None` while the reason is within its quiet
    /// period.
    pub fn note(&mut self, reason: &'static str, now: Instant) -> Option<u64> {
        match self.reasons.get_mut(reason) {
            Some((at, pending)) => {
                *pending += 1;
                if now.saturating_duration_since(*at) >= EVERY {
                    let n = *pending;
                    *at = now;
                    *pending = 0;
                    Some(n)
                } else {
                    None
                }
            }
            None => {
                self.reasons.insert(reason, (now, 0));
                Some(1)
            }
        }
    }

    /// Rejects noted but not yet logged, per reason (for a last line when
    /// the connection ends).
    pub fn unlogged(&self) -> Vec<(&'static str, u64)> {
        let mut v: Vec<_> = self
            .reasons
            .iter()
            .filter(|(_, (_, n))| *n > 0)
            .map(|(r, (_, n))| (*r, *n))
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_reason_per_period_with_the_count() {
        let t0 = Instant::now();
        let mut l = RejectLog::default();
        assert_eq!(l.note("no_soi", t0), Some(1));
        let mut logged = vec![];
        // 30 rejects a second for 25 s.
        for i in 1..750u32 {
            let t = t0 + Duration::from_millis(u64::from(i) * 1000 / 30);
            if let Some(n) = l.note("no_soi", t) {
                logged.push(n);
            }
        }
        assert_eq!(logged.len(), 2, "{logged:?}");
        assert!(
            logged.iter().all(|&n| (299..=301).contains(&n)),
            "{logged:?}"
        );
        // Another reason has its own period.
        assert_eq!(l.note("too_large", t0 + Duration::from_secs(1)), Some(1));
        let pending = l.unlogged();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].0, "no_soi");
        assert_eq!(logged.iter().sum::<u64>() + 1 + pending[0].1, 750);
    }
}
