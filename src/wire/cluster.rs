//! What relay nodes say to each other over NATS (`relay::cluster`):
//! subjects, and the bytes of each message, as pure functions (no sockets;
//! unit-tested and fuzzed).
//!
//! Subjects, under the cluster's `name` (default `zerocam`):
//! - `<name>.presence`: every node's [`Presence`], as JSON, every
//!   heartbeat and at once when its cameras or viewers change;
//! - `<name>.frames.<camera>`: a camera's frames, one JPEG per message
//!   (the payload is the frame as the camera sent it, COM segment included),
//!   published by the node that holds the camera only while another node
//!   has a viewer for it;
//! - `<name>.rpc.<node>`: requests for the node that holds a camera
//!   (the settings API), [`RpcRequest`] in, [`RpcReply`] back.
//!
//! Camera and node ids become one subject token each: `.` (a NATS token
//! separator, allowed in ids) is written `%2E`; ids never contain `%`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::check_id;

/// The version of these messages; a node ignores presence of another.
pub const VERSION: u32 = 1;
/// Largest presence or RPC message accepted (a node with `max_cameras`
/// cameras, each with its `/cameras` entry, stays far below).
pub const MAX_MESSAGE: usize = 4 << 20;
/// Most cameras one presence may announce.
pub const MAX_ANNOUNCED: usize = 100_000;

/// One subject token for an id (camera or node).
pub fn token(id: &str) -> String {
    id.replace('.', "%2E")
}

/// The subject of a camera's frames.
pub fn frames_subject(name: &str, camera: &str) -> String {
    format!("{name}.frames.{}", token(camera))
}

/// The subject every node's presence goes to.
pub fn presence_subject(name: &str) -> String {
    format!("{name}.presence")
}

/// The subject a node answers requests on.
pub fn rpc_subject(name: &str, node: &str) -> String {
    format!("{name}.rpc.{}", token(node))
}

/// Checks a cluster `name` (the subject prefix): dot-separated tokens of
/// letters, digits, `-` and `_`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    for t in name.split('.') {
        if t.is_empty() {
            return Err(format!("`{name}` has an empty part between dots"));
        }
        if let Some(c) = t
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_')))
        {
            return Err(format!(
                "`{name}` contains `{c}`; use letters, digits, '-', '_' and dots between parts"
            ));
        }
    }
    Ok(())
}

/// Of two connections for one camera id, does `a` (connected at, node)
/// win over `b`? The newer one (the camera reconnected there); on equal
/// times, the larger node id, so that every node decides alike.
pub fn wins(a: (u64, &str), b: (u64, &str)) -> bool {
    a > b
}

/// Checks a node id: what `check_id` allows, and `:` (host:port).
pub fn check_node(node: &str) -> Result<(), String> {
    if node.is_empty() || node.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    match node
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        Some(c) => Err(format!(
            "`{node}` contains `{c}`; use letters, digits, '-', '_', '.' or ':'"
        )),
        None => Ok(()),
    }
}

/// A camera a node holds, as it announces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Announced {
    pub id: String,
    /// When its current connection began (µs since the Unix epoch): of two
    /// nodes holding the same id, the newer connection wins.
    pub connected_at_us: u64,
    /// Its `/cameras` entry on the node that holds it.
    pub describe: Value,
}

/// What one node announces about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Presence {
    pub v: u32,
    pub node: String,
    /// The node is stopping: drop it now rather than after the timeout.
    #[serde(default)]
    pub leaving: bool,
    /// The cameras connected to it now.
    #[serde(default)]
    pub cameras: Vec<Announced>,
    /// Cameras held elsewhere that it has viewers for (or snapshots
    /// waiting), with how many.
    #[serde(default)]
    pub interest: BTreeMap<String, u32>,
}

/// Why a message from another node was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses one JSON message of at most [`MAX_MESSAGE`] bytes; `what`
/// names it in the error.
fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Invalid> {
    if bytes.len() > MAX_MESSAGE {
        return Err(Invalid(format!("{what} of {} bytes", bytes.len())));
    }
    serde_json::from_slice(bytes).map_err(|e| Invalid(format!("{what} is not valid JSON: {e}")))
}

impl Presence {
    /// The message bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses and checks a presence message.
    pub fn decode(bytes: &[u8]) -> Result<Presence, Invalid> {
        let p: Presence = parse(bytes, "presence")?;
        if p.v != VERSION {
            return Err(Invalid(format!(
                "presence version {} (this relay speaks {VERSION})",
                p.v
            )));
        }
        check_node(&p.node).map_err(|e| Invalid(format!("presence node id: {e}")))?;
        if p.cameras.len() > MAX_ANNOUNCED || p.interest.len() > MAX_ANNOUNCED {
            return Err(Invalid(format!("presence of {} lists too much", p.node)));
        }
        for c in &p.cameras {
            check_id(&c.id).map_err(|e| Invalid(format!("presence of {}: camera: {e}", p.node)))?;
            if !c.describe.is_object() {
                return Err(Invalid(format!(
                    "presence of {}: camera {} has no description",
                    p.node, c.id
                )));
            }
        }
        for id in p.interest.keys() {
            check_id(id).map_err(|e| Invalid(format!("presence of {}: camera: {e}", p.node)))?;
        }
        Ok(p)
    }
}

/// A request for the node that holds `camera`: the settings API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcRequest {
    pub camera: String,
    /// `GET` or `POST` (`/cameras/{id}/settings`).
    pub method: String,
    /// The POST body (already authorised by the node that took it).
    #[serde(default)]
    pub body: String,
}

/// The answer: an HTTP status and body for the node that asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcReply {
    pub status: u16,
    /// True when `body` is JSON (else plain text).
    #[serde(default)]
    pub json: bool,
    pub body: String,
}

impl RpcRequest {
    /// The message bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses and checks a request.
    pub fn decode(bytes: &[u8]) -> Result<RpcRequest, Invalid> {
        let r: RpcRequest = parse(bytes, "request")?;
        check_id(&r.camera).map_err(|e| Invalid(format!("camera: {e}")))?;
        if r.method != "GET" && r.method != "POST" {
            return Err(Invalid(format!("request method `{}`", r.method)));
        }
        Ok(r)
    }
}

impl RpcReply {
    /// The message bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a reply.
    pub fn decode(bytes: &[u8]) -> Result<RpcReply, Invalid> {
        let r: RpcReply = parse(bytes, "reply")?;
        if !(100..=599).contains(&r.status) {
            return Err(Invalid(format!("reply status {}", r.status)));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn presence() -> Presence {
        Presence {
            v: VERSION,
            node: "relay-a:8080".into(),
            leaving: false,
            cameras: vec![Announced {
                id: "front.door".into(),
                connected_at_us: 1_700_000_000_000_000,
                describe: json!({"id": "front.door", "online": true}),
            }],
            interest: BTreeMap::from([("garden".to_string(), 2)]),
        }
    }

    #[test]
    fn ids_become_one_token_each() {
        assert_eq!(
            frames_subject("zerocam", "front.door"),
            "zerocam.frames.front%2Edoor"
        );
        assert_eq!(
            rpc_subject("site1.zerocam", "10.0.0.1:8080"),
            "site1.zerocam.rpc.10%2E0%2E0%2E1:8080"
        );
        assert_eq!(presence_subject("zerocam"), "zerocam.presence");
        // Distinct ids stay distinct (ids never contain '%').
        assert_ne!(token("a.b"), token("a_b"));
    }

    #[test]
    fn names_and_nodes_are_checked() {
        assert!(check_name("zerocam").is_ok());
        assert!(check_name("site-1.zerocam").is_ok());
        for bad in ["", "a..b", ".a", "a.", "a b", "a*", "a>"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_node("relay-a:8080").is_ok());
        assert!(check_node("10.0.0.1:8080").is_ok());
        assert!(check_node("a b").is_err());
        assert!(check_node("a*").is_err());
        assert!(check_node(&"x".repeat(65)).is_err());
    }

    #[test]
    fn presence_round_trips_and_bad_ones_are_refused() {
        let p = presence();
        assert_eq!(Presence::decode(&p.encode()).unwrap(), p);
        let mut wrong = p.clone();
        wrong.v = 2;
        assert!(
            Presence::decode(&wrong.encode())
                .unwrap_err()
                .0
                .contains("version")
        );
        let mut bad_id = p.clone();
        bad_id.cameras[0].id = "no spaces".into();
        assert!(Presence::decode(&bad_id.encode()).is_err());
        let mut bad_interest = p.clone();
        bad_interest.interest.insert("a/b".into(), 1);
        assert!(Presence::decode(&bad_interest.encode()).is_err());
        let mut no_describe = p;
        no_describe.cameras[0].describe = json!(3);
        assert!(Presence::decode(&no_describe.encode()).is_err());
        assert!(Presence::decode(b"{").is_err());
        assert!(Presence::decode(&vec![b' '; MAX_MESSAGE + 1]).is_err());
        // Missing optional parts are empty.
        let min = Presence::decode(br#"{"v":1,"node":"b"}"#).unwrap();
        assert!(min.cameras.is_empty() && min.interest.is_empty() && !min.leaving);
    }

    #[test]
    fn rpc_round_trips_and_is_checked() {
        let r = RpcRequest {
            camera: "porch".into(),
            method: "POST".into(),
            body: r#"{"fps":3}"#.into(),
        };
        assert_eq!(RpcRequest::decode(&r.encode()).unwrap(), r);
        assert!(RpcRequest::decode(br#"{"camera":"porch","method":"DELETE"}"#).is_err());
        assert!(RpcRequest::decode(br#"{"camera":"a b","method":"GET"}"#).is_err());
        let a = RpcReply {
            status: 200,
            json: true,
            body: "{}".into(),
        };
        assert_eq!(RpcReply::decode(&a.encode()).unwrap(), a);
        assert!(RpcReply::decode(br#"{"status":99,"body":""}"#).is_err());
    }
}
