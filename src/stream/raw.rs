//! The `raw` dialect (docs/protocol.md "Dialect 1: raw"): JSON text for control, one
//! binary message per JPEG, optional one-byte `0x0A` acks from the relay.
//! Pure: no sockets here.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tungstenite::Message;

use super::{AckOf, Action, Dialect, with_query};
use crate::wire::ACK;
use crate::wire::message::{self, CommandError, Hello};

/// State of one raw-dialect connection.
#[derive(Debug)]
pub struct Raw {
    url: String,
    heartbeat: Duration,
    next_heartbeat: Instant,
}

impl Raw {
    /// `url` as configured; the token, if any, goes into its query.
    pub fn new(url: &str, token: Option<&str>, heartbeat: Duration) -> Raw {
        let url = match token {
            Some(t) => with_query(url, &[("token", t)]),
            None => url.to_string(),
        };
        Raw {
            url,
            heartbeat,
            next_heartbeat: Instant::now() + heartbeat,
        }
    }
}

impl Dialect for Raw {
    fn url(&self) -> &str {
        &self.url
    }

    fn on_open(&mut self, now: Instant, hello: &Hello) -> Vec<Action> {
        self.next_heartbeat = now + self.heartbeat;
        vec![Action::Send(Message::text(message::hello_text(hello)))]
    }

    fn ready(&self) -> bool {
        true
    }

    fn frame(&mut self, jpeg: Vec<u8>) -> (Message, Option<u64>) {
        // 0x0A acks name no frame: each acks the oldest in flight.
        (Message::binary(jpeg), None)
    }

    fn stats(&mut self, fields: Map<String, Value>) -> Option<Message> {
        Some(typed("stats", fields))
    }

    fn settings(&mut self, fields: Map<String, Value>) -> Option<Message> {
        Some(typed("settings", fields))
    }

    fn on_text(&mut self, text: &str, _now: Instant) -> Vec<Action> {
        match message::parse_raw_text(text) {
            Ok(cmd) => vec![Action::Command(cmd)],
            Err(CommandError::Unknown(t)) => {
                log::debug!("ignoring relay message of unknown type `{t}`");
                vec![]
            }
            Err(e) => {
                log::warn!("relay command {e}");
                log::debug!("the command: {}", crate::logging::clip(text));
                vec![]
            }
        }
    }

    fn on_binary(&mut self, data: &[u8], _now: Instant) -> Vec<Action> {
        if data == [ACK] {
            vec![Action::Ack(AckOf::Oldest)]
        } else {
            log::debug!("ignoring {}-byte binary message from the relay", data.len());
            vec![]
        }
    }

    fn on_tick(&mut self, now: Instant) -> Vec<Action> {
        if now < self.next_heartbeat {
            return vec![];
        }
        self.next_heartbeat = now + self.heartbeat;
        vec![
            Action::Send(Message::text(message::heartbeat_text())),
            Action::Send(Message::Ping(Vec::new().into())),
        ]
    }

    fn next_deadline(&self) -> Instant {
        self.next_heartbeat
    }
}

/// `{"type": kind, …fields}` as a text message.
fn typed(kind: &str, fields: Map<String, Value>) -> Message {
    let mut m = Map::new();
    m.insert("type".into(), kind.into());
    m.extend(fields);
    Message::text(Value::Object(m).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::Command;

    fn hello() -> Hello {
        Hello {
            camera: "c".into(),
            version: "v".into(),
            width: 64,
            height: 48,
            format: "pattern".into(),
            fps: 5,
            relay: None,
        }
    }

    #[test]
    fn token_goes_in_the_query() {
        assert_eq!(
            Raw::new("ws://h/ingest/c", Some("s3cr t"), Duration::from_secs(30)).url(),
            "ws://h/ingest/c?token=s3cr%20t"
        );
        assert_eq!(
            Raw::new("ws://h/ingest/c", None, Duration::from_secs(30)).url(),
            "ws://h/ingest/c"
        );
    }

    #[test]
    fn hello_then_heartbeats_on_schedule() {
        let hb = Duration::from_secs(1);
        let mut r = Raw::new("ws://h/", None, hb);
        let t0 = Instant::now();
        let a = r.on_open(t0, &hello());
        assert!(
            matches!(&a[..], [Action::Send(Message::Text(t))] if t.contains("\"type\":\"hello\""))
        );
        assert!(r.on_tick(t0 + Duration::from_millis(999)).is_empty());
        assert_eq!(r.next_deadline(), t0 + hb);
        let a = r.on_tick(t0 + hb);
        assert_eq!(a.len(), 2);
        assert!(
            matches!(&a[0], Action::Send(Message::Text(t)) if t.as_str() == r#"{"type":"heartbeat"}"#)
        );
        assert!(matches!(&a[1], Action::Send(Message::Ping(_))));
        assert_eq!(r.next_deadline(), t0 + hb * 2);
    }

    #[test]
    fn commands_acks_and_junk() {
        let mut r = Raw::new("ws://h/", None, Duration::from_secs(1));
        let now = Instant::now();
        assert_eq!(
            r.on_text(r#"{"type":"pause"}"#, now),
            vec![Action::Command(Command::Pause)]
        );
        // A set whose only field is bad still reaches the session, which
        // logs the refusal and answers with the settings it keeps.
        assert!(matches!(
            &r.on_text(r#"{"type":"set","fps":1000}"#, now)[..],
            [Action::Command(Command::Set(s))] if s.rejected.len() == 1
        ));
        assert!(r.on_text(r#"{"type":"future-thing"}"#, now).is_empty());
        assert!(r.on_text("\u{0}garbage", now).is_empty());
        assert_eq!(r.on_binary(&[ACK], now), vec![Action::Ack(AckOf::Oldest)]);
        assert!(r.on_binary(&[ACK, ACK], now).is_empty());
        assert!(r.on_binary(&[], now).is_empty());
    }

    #[test]
    fn frames_are_single_binary_messages() {
        let mut r = Raw::new("ws://h/", None, Duration::from_secs(1));
        let (m, tag) = r.frame(vec![0xFF, 0xD8, 0xFF, 0xD9]);
        assert_eq!(m, Message::binary(vec![0xFF, 0xD8, 0xFF, 0xD9]));
        assert_eq!(tag, None);
    }
}
