//! The stream stage: the session loop that carries frames from the
//! latest-frame slot to a relay over a reconnecting WebSocket.
//!
//! The wire dialects are pure state machines behind [`Dialect`]: messages and
//! timer ticks in, [`Action`]s out. Flow control ([`flow`]) and the stats
//! ([`stats`]) are pure too. [`session`] and [`connect`] own all the I/O
//! (TCP, TLS, WebSocket, poll) and are shared by both dialects.

pub mod adapt;
pub mod connect;
pub mod flow;
pub mod phoenix;
pub mod raw;
pub mod relays;
pub mod session;
pub mod stats;

use std::time::Instant;

use serde_json::{Map, Value};
use tungstenite::Message;

pub use crate::wire::message::{Command, Hello};
pub use flow::AckOf;

/// What a dialect asks the session to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send this message to the relay.
    Send(Message),
    /// Apply a command from the relay.
    Command(Command),
    /// The relay acknowledged frames.
    Ack(AckOf),
    /// The link is dead or unusable: close it and reconnect with backoff.
    Reconnect(String),
}

/// A wire dialect (docs/protocol.md): `raw` or `phoenix`.
pub trait Dialect: Send {
    /// The URL to open, with the dialect's path and query additions.
    fn url(&self) -> &str;
    /// Called after every successful WebSocket handshake.
    fn on_open(&mut self, now: Instant, hello: &Hello) -> Vec<Action>;
    /// May frames be sent now? (Phoenix: only once the join is `ok`.)
    fn ready(&self) -> bool;
    /// Wraps one JPEG as the message that carries it, with the tag its ack
    /// will name, if the dialect's acks name frames.
    fn frame(&mut self, jpeg: Vec<u8>) -> (Message, Option<u64>);
    /// Wraps the stats fields as a message, if the dialect sends stats now.
    fn stats(&mut self, fields: Map<String, Value>) -> Option<Message>;
    /// Wraps the settings fields as a message, if the dialect can send now.
    fn settings(&mut self, fields: Map<String, Value>) -> Option<Message>;
    /// A text message from the relay.
    fn on_text(&mut self, text: &str, now: Instant) -> Vec<Action>;
    /// A binary message from the relay.
    fn on_binary(&mut self, data: &[u8], now: Instant) -> Vec<Action>;
    /// Timers (heartbeats, rejoins): called at or after [`Dialect::next_deadline`].
    fn on_tick(&mut self, now: Instant) -> Vec<Action>;
    /// When `on_tick` is next due.
    fn next_deadline(&self) -> Instant;
}

/// Appends `key=value` pairs to a URL's query, percent-encoding the values.
pub fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return url.to_string();
    }
    let (base, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let mut out = base.to_string();
    let mut sep = if !base.contains('?') {
        "?"
    } else if base.ends_with(['?', '&']) {
        ""
    } else {
        "&"
    };
    for (k, v) in pairs {
        out.push_str(sep);
        out.push_str(&percent_encode(k));
        out.push('=');
        out.push_str(&percent_encode(v));
        sep = "&";
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_appended_and_encoded() {
        assert_eq!(
            with_query("ws://h/x", &[("token", "a b&c")]),
            "ws://h/x?token=a%20b%26c"
        );
        assert_eq!(
            with_query("ws://h/x?a=1", &[("token", "t")]),
            "ws://h/x?a=1&token=t"
        );
        assert_eq!(
            with_query("ws://h/x?", &[("v", "2"), ("t", "z")]),
            "ws://h/x?v=2&t=z"
        );
        assert_eq!(with_query("ws://h/x#f", &[("t", "z")]), "ws://h/x?t=z#f");
        assert_eq!(with_query("ws://h/x", &[]), "ws://h/x");
    }
}
