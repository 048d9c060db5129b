//! Which relay to try next, when `relay.url` lists several (a cluster of
//! relays, any of which takes the camera): pure, no I/O.
//!
//! The camera connects to the first relay that works and stays on it. When
//! that link is lost, it tries the other relays, in the configured order,
//! and the lost one last; only when a whole round has failed does it back
//! off (the session's [`crate::backoff::Backoff`]), then start a full round
//! from the first relay again. With a single relay, a lost link is retried
//! after a backoff, as always. A link that breaks before it has been up for
//! `backoff.stable_after` counts as a failed attempt of its round, so two
//! relays that each take the camera and drop it at once cannot make it
//! spin between them without backing off.

/// The order of attempts over `n` relays.
#[derive(Debug, Clone)]
pub struct Rotation {
    n: usize,
    /// The relays still to try in this round, next first.
    round: Vec<usize>,
    /// The relay of the current (or last) link.
    current: Option<usize>,
}

impl Rotation {
    /// A rotation over `n` relays (at least one), starting a full round.
    pub fn new(n: usize) -> Rotation {
        let n = n.max(1);
        Rotation {
            n,
            round: (0..n).collect(),
            current: None,
        }
    }

    /// The relay to try now, or `None` when this round is used up: back
    /// off, then call [`Rotation::new_round`].
    pub fn next_relay(&mut self) -> Option<usize> {
        if self.round.is_empty() {
            None
        } else {
            Some(self.round.remove(0))
        }
    }

    /// Are there relays left to try in this round?
    pub fn has_next(&self) -> bool {
        !self.round.is_empty()
    }

    /// A full round, in the configured order (after a backoff).
    pub fn new_round(&mut self) {
        self.round = (0..self.n).collect();
    }

    /// Connected to relay `i`: the camera stays on it.
    pub fn connected(&mut self, i: usize) {
        self.current = Some(i);
    }

    /// The link to the current relay was lost. `stable`: it had been up
    /// long enough to count as working; then the others in order, and it
    /// last (alone, it is retried after a backoff). An unstable link
    /// continues the round it came from (the relays not yet tried in it).
    pub fn lost(&mut self, stable: bool) {
        let Some(cur) = self.current else { return };
        if stable {
            self.round = (0..self.n).filter(|&i| i != cur).collect();
            if self.n > 1 {
                self.round.push(cur);
            }
        }
    }

    /// The relay of the current (or last) link.
    pub fn current(&self) -> Option<usize> {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(r: &mut Rotation) -> Vec<usize> {
        std::iter::from_fn(|| r.next_relay()).collect()
    }

    #[test]
    fn a_round_goes_in_order_then_backs_off() {
        let mut r = Rotation::new(3);
        assert_eq!(drain(&mut r), [0, 1, 2]);
        assert_eq!(r.next_relay(), None);
        r.new_round();
        assert_eq!(r.next_relay(), Some(0));
    }

    #[test]
    fn the_camera_stays_where_it_connected_and_fails_over_to_the_others() {
        let mut r = Rotation::new(3);
        assert_eq!(r.next_relay(), Some(0)); // refused
        assert_eq!(r.next_relay(), Some(1));
        r.connected(1);
        // Relay 1 dies after a good while: 0 and 2 in order, 1 last.
        r.lost(true);
        assert_eq!(drain(&mut r), [0, 2, 1]);
        // Then a backoff and a full round from the first.
        r.new_round();
        assert_eq!(drain(&mut r), [0, 1, 2]);
    }

    #[test]
    fn a_link_that_breaks_at_once_does_not_restart_the_round() {
        let mut r = Rotation::new(2);
        assert_eq!(r.next_relay(), Some(0));
        r.connected(0);
        r.lost(true);
        assert_eq!(r.next_relay(), Some(1));
        r.connected(1);
        // Relay 1 takes the camera and drops it straight away: the round
        // goes on (only 0 was left in it), then the camera backs off.
        r.lost(false);
        assert_eq!(drain(&mut r), [0]);
        assert_eq!(r.next_relay(), None);
    }

    #[test]
    fn one_relay_is_retried_after_a_backoff() {
        let mut r = Rotation::new(1);
        assert_eq!(drain(&mut r), [0]);
        r.connected(0);
        r.lost(true);
        assert_eq!(r.next_relay(), None, "back off first");
        r.new_round();
        assert_eq!(drain(&mut r), [0]);
        assert_eq!(Rotation::new(0).next_relay(), Some(0), "never zero relays");
    }
}
