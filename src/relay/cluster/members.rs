//! Who is in the cluster and what each node holds and watches, from the
//! presence messages: pure bookkeeping on an injected clock (no sockets).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::wire::cluster::{Announced, Presence, wins};

/// The other nodes as last heard from.
#[derive(Debug)]
pub struct Members {
    me: String,
    timeout: Duration,
    nodes: HashMap<String, Seen>,
}

#[derive(Debug)]
struct Seen {
    at: Instant,
    presence: Presence,
}

impl Members {
    /// This node is `me`; others are dropped `timeout` after their last
    /// presence.
    pub fn new(me: &str, timeout: Duration) -> Members {
        Members {
            me: me.to_string(),
            timeout,
            nodes: HashMap::new(),
        }
    }

    /// Takes a node's presence. False for this node's own (NATS echoes
    /// them back).
    pub fn apply(&mut self, p: Presence, now: Instant) -> bool {
        if p.node == self.me {
            return false;
        }
        if p.leaving {
            self.nodes.remove(&p.node);
        } else {
            self.nodes.insert(
                p.node.clone(),
                Seen {
                    at: now,
                    presence: p,
                },
            );
        }
        true
    }

    /// Drops the nodes silent for the timeout; their ids.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let timeout = self.timeout;
        let gone: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.at) >= timeout)
            .map(|(n, _)| n.clone())
            .collect();
        for n in &gone {
            self.nodes.remove(n);
        }
        gone
    }

    /// The other nodes' ids, sorted.
    pub fn others(&self) -> Vec<String> {
        let mut v: Vec<String> = self.nodes.keys().cloned().collect();
        v.sort();
        v
    }

    /// Cameras held by other nodes: id → (node, what it announced). When
    /// two nodes announce one id (a camera that just moved), the newer
    /// connection wins.
    pub fn remote_cameras(&self) -> BTreeMap<String, (String, Announced)> {
        let mut out: BTreeMap<String, (String, Announced)> = BTreeMap::new();
        for (node, seen) in &self.nodes {
            for a in &seen.presence.cameras {
                let better = out
                    .get(&a.id)
                    .is_none_or(|(n, b)| wins((a.connected_at_us, node), (b.connected_at_us, n)));
                if better {
                    out.insert(a.id.clone(), (node.clone(), a.clone()));
                }
            }
        }
        out
    }

    /// Viewers the other nodes have for camera `id`.
    pub fn interest(&self, id: &str) -> u32 {
        self.nodes
            .values()
            .filter_map(|s| s.presence.interest.get(id))
            .fold(0u32, |a, n| a.saturating_add(*n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn presence(node: &str, cams: &[(&str, u64)], interest: &[(&str, u32)]) -> Presence {
        Presence {
            v: crate::wire::cluster::VERSION,
            node: node.into(),
            leaving: false,
            cameras: cams
                .iter()
                .map(|(id, t)| Announced {
                    id: id.to_string(),
                    connected_at_us: *t,
                    describe: json!({"id": id}),
                })
                .collect(),
            interest: interest.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn nodes_come_go_and_time_out() {
        let t0 = Instant::now();
        let mut m = Members::new("a", Duration::from_secs(4));
        assert!(!m.apply(presence("a", &[("x", 1)], &[]), t0), "own echo");
        assert!(m.apply(presence("b", &[("x", 1)], &[]), t0));
        assert!(m.apply(presence("c", &[], &[("x", 2)]), t0 + Duration::from_secs(2)));
        assert_eq!(m.others(), ["b", "c"]);
        assert!(m.expire(t0 + Duration::from_millis(3999)).is_empty());
        assert_eq!(m.expire(t0 + Duration::from_secs(4)), ["b"]);
        assert_eq!(m.others(), ["c"]);
        // A node that says it is leaving goes at once.
        let mut bye = presence("c", &[], &[]);
        bye.leaving = true;
        m.apply(bye, t0 + Duration::from_secs(3));
        assert!(m.others().is_empty());
    }

    #[test]
    fn the_newest_connection_of_a_camera_wins() {
        let t0 = Instant::now();
        let mut m = Members::new("a", Duration::from_secs(4));
        m.apply(presence("b", &[("x", 100), ("y", 5)], &[]), t0);
        m.apply(presence("c", &[("x", 200)], &[]), t0);
        let r = m.remote_cameras();
        assert_eq!(r["x"].0, "c");
        assert_eq!(r["y"].0, "b");
        // Equal times: the larger node id, whichever node decides.
        m.apply(presence("d", &[("y", 5)], &[]), t0);
        assert_eq!(m.remote_cameras()["y"].0, "d");
        assert!(wins((5, "d"), (5, "b")) && !wins((5, "b"), (5, "d")));
        assert!(wins((6, "a"), (5, "z")));
    }

    #[test]
    fn interest_sums_over_nodes_without_overflow() {
        let t0 = Instant::now();
        let mut m = Members::new("a", Duration::from_secs(4));
        m.apply(presence("b", &[], &[("x", 2)]), t0);
        m.apply(presence("c", &[], &[("x", 3), ("y", 1)]), t0);
        assert_eq!(m.interest("x"), 5);
        assert_eq!(m.interest("y"), 1);
        assert_eq!(m.interest("z"), 0);
        m.apply(presence("d", &[], &[("x", u32::MAX)]), t0);
        assert_eq!(m.interest("x"), u32::MAX);
    }
}
