//! The `phoenix` dialect (docs/protocol.md "Dialect 2: phoenix"): Phoenix Channels over the
//! V2 serializer, behaving as phoenix.js's `Socket` and `Channel` do for one
//! channel. Pure: messages and timer ticks in, [`Action`]s out.
//!
//! - The join carries the token and the hello fields; no frame is sent before
//!   an `ok` reply. An `error` reply, `phx_error` or `phx_close` schedules a
//!   rejoin on phoenix.js's ladder (1 s, 2 s, 5 s, then 10 s), reset after a
//!   successful join. A join that gets no reply in 10 s (phoenix.js's default
//!   push timeout) is left (`phx_leave`) and retried on the same ladder.
//! - A heartbeat goes out every heartbeat interval; if its reply has not come
//!   when the next one is due, the link is dead: [`Action::Reconnect`].
//! - Frames are kind-0 binary pushes, event `"frame"`, with a fresh ref each.
//! - Acks: a Phoenix channel that answers a frame (`{:reply, :ok, socket}`)
//!   sends a `phx_reply` carrying that frame's ref. Every reply to a push
//!   becomes [`Action::Ack`] naming that ref (a non-`ok` status is also
//!   logged); the session's flow control knows which refs are frames in
//!   flight, so the in-flight window works as with the raw dialect's `0x0A`
//!   and starts, as there, with the first ack. Channels that answer
//!   `{:noreply, socket}` never ack, and the window stays off. When a join
//!   is lost, frames still unanswered never will be: [`AckOf::All`].
//! - Commands `pause`, `resume`, `set` come as the event of a push or
//!   broadcast on our topic, in JSON text or binary (the payload then is JSON
//!   bytes), or as a reply's response in the raw dialect's shape
//!   (`{"type":"pause"}`), e.g. `{:reply, {:ok, %{type: "pause"}}, socket}`.

pub mod serializer;

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tungstenite::Message;

use self::serializer::{Msg, Payload, REPLY_EVENT};
use super::{AckOf, Action, Dialect, with_query};
use crate::config::RelayConfig;
use crate::logging::clip;
use crate::wire::message::{self, CommandError, Hello};

/// phoenix.js's rejoin ladder (`rejoinAfterMs`), then [`REJOIN_MAX`].
pub const REJOIN_LADDER: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
];
/// Rejoin delay after the ladder is exhausted.
pub const REJOIN_MAX: Duration = Duration::from_secs(10);
/// How long a join may go unanswered (phoenix.js's default push timeout).
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The topic of socket-level messages (heartbeats).
const SOCKET_TOPIC: &str = "phoenix";

/// The rejoin delay after `tries` failed joins (1-based, like phoenix.js).
pub fn rejoin_after(tries: u32) -> Duration {
    tries
        .checked_sub(1)
        .and_then(|i| REJOIN_LADDER.get(i as usize).copied())
        .unwrap_or(REJOIN_MAX)
}

/// Where the channel stands on the current connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Join {
    /// No connection yet.
    Closed,
    /// A join is out; `ref` is its join_ref.
    Joining { join_ref: u64, deadline: Instant },
    /// Joined: frames may flow.
    Joined { join_ref: u64 },
    /// Refused, errored or closed: rejoin at `at`.
    Waiting { at: Instant },
}

/// State of one Phoenix connection (the camera's one socket and channel).
#[derive(Debug)]
pub struct Phoenix {
    url: String,
    topic: String,
    token: Option<String>,
    heartbeat: Duration,
    /// Last ref handed out; like phoenix.js, one counter for the socket's life.
    last_ref: u64,
    join: Join,
    /// Failed joins since the last success (the rejoin ladder's position).
    tries: u32,
    /// The join payload: token and hello fields.
    join_payload: Value,
    next_heartbeat: Instant,
    pending_heartbeat: Option<u64>,
}

impl Phoenix {
    /// The dialect for `cfg`: its URL gets `/websocket`, `vsn=2.0.0` and the
    /// token, unless the token rides the auth subprotocol (which exists to
    /// keep it out of URLs and access logs).
    pub fn new(cfg: &RelayConfig) -> Phoenix {
        let mut p = Phoenix::with(
            &cfg.url,
            cfg.token.as_deref(),
            &cfg.topic,
            cfg.heartbeat_interval,
        );
        if cfg.auth_subprotocol {
            p.url = socket_url(&cfg.url, None);
        }
        p
    }

    /// As [`Phoenix::new`], from the parts.
    pub fn with(url: &str, token: Option<&str>, topic: &str, heartbeat: Duration) -> Phoenix {
        Phoenix {
            url: socket_url(url, token),
            topic: topic.to_string(),
            token: token.map(str::to_string),
            heartbeat,
            last_ref: 0,
            join: Join::Closed,
            tries: 0,
            join_payload: Value::Object(Map::new()),
            next_heartbeat: Instant::now() + heartbeat,
            pending_heartbeat: None,
        }
    }

    /// The join_ref of the current join, if any.
    fn join_ref(&self) -> Option<u64> {
        match self.join {
            Join::Joining { join_ref, .. } | Join::Joined { join_ref } => Some(join_ref),
            _ => None,
        }
    }

    fn make_ref(&mut self) -> u64 {
        // phoenix.js wraps to 0 on overflow; u64 never gets there in practice.
        self.last_ref = self.last_ref.wrapping_add(1);
        self.last_ref
    }

    fn text(
        &self,
        join_ref: Option<u64>,
        ref_: u64,
        topic: &str,
        event: &str,
        p: &Value,
    ) -> Action {
        let join_ref = join_ref.map(|j| j.to_string());
        let ref_ = ref_.to_string();
        Action::Send(Message::text(serializer::encode_text(
            join_ref.as_deref(),
            Some(&ref_),
            topic,
            event,
            p,
        )))
    }

    fn send_join(&mut self, now: Instant) -> Vec<Action> {
        if self.topic.len() > 255 {
            // The config refuses such topics; this guards frame encoding.
            return vec![Action::Reconnect(format!(
                "topic is {} bytes; Phoenix binary frames allow 255",
                self.topic.len()
            ))];
        }
        let r = self.make_ref();
        self.join = Join::Joining {
            join_ref: r,
            deadline: now + JOIN_TIMEOUT,
        };
        log::debug!("joining {} (join_ref {r})", self.topic);
        let a = self.text(Some(r), r, &self.topic, "phx_join", &self.join_payload);
        vec![a]
    }

    /// A JSON push of `event` on our topic, if joined.
    fn push(&mut self, event: &str, fields: Map<String, Value>) -> Option<Message> {
        let Join::Joined { join_ref } = self.join else {
            return None;
        };
        let r = self.make_ref();
        match self.text(
            Some(join_ref),
            r,
            &self.topic,
            event,
            &Value::Object(fields),
        ) {
            Action::Send(m) => Some(m),
            _ => None,
        }
    }

    /// Moves to waiting for a rejoin on the ladder. Frames of the lost join
    /// will never be answered: they are released so the in-flight window
    /// does not stall the rejoined channel.
    fn schedule_rejoin(&mut self, now: Instant) -> Vec<Action> {
        let was_joined = matches!(self.join, Join::Joined { .. });
        self.tries = self.tries.saturating_add(1);
        let after = rejoin_after(self.tries);
        log::info!("rejoining {} in {:?}", self.topic, after);
        self.join = Join::Waiting { at: now + after };
        // Frames go out only while joined.
        if was_joined {
            vec![Action::Ack(AckOf::All)]
        } else {
            vec![]
        }
    }

    fn handle(&mut self, msg: Msg, now: Instant) -> Vec<Action> {
        if msg.event == REPLY_EVENT {
            return self.on_reply(msg, now);
        }
        if msg.topic != self.topic {
            log::debug!("ignoring `{}` on topic `{}`", msg.event, msg.topic);
            return vec![];
        }
        // Like phoenix.js `isMember`: a message for an earlier join is stale.
        if let Some(j) = &msg.join_ref
            && Some(j.as_str()) != self.join_ref().map(|r| r.to_string()).as_deref()
        {
            log::debug!("ignoring `{}` for an earlier join ({j})", msg.event);
            return vec![];
        }
        match msg.event.as_str() {
            "phx_error" | "phx_close" => {
                if matches!(self.join, Join::Joined { .. } | Join::Joining { .. }) {
                    log::warn!(
                        "channel {}: {} from the server",
                        self.topic,
                        if msg.event == "phx_error" {
                            "crashed (phx_error)"
                        } else {
                            "closed (phx_close)"
                        }
                    );
                    return self.schedule_rejoin(now);
                }
                vec![]
            }
            event => {
                let payload = match json_payload(&msg.payload) {
                    Ok(v) => v,
                    Err(e) => {
                        if is_command(event) {
                            log::warn!("command `{event}` rejected: payload {e}");
                        } else {
                            log::debug!("ignoring `{event}` on {}", self.topic);
                        }
                        return vec![];
                    }
                };
                command(event, &payload)
            }
        }
    }

    fn on_reply(&mut self, msg: Msg, now: Instant) -> Vec<Action> {
        let (status, response) = match reply_parts(msg.payload) {
            Some(p) => p,
            None => {
                log::warn!("malformed phx_reply on {} (no status)", msg.topic);
                return vec![];
            }
        };
        let ref_ = msg.ref_.as_deref().and_then(|r| r.parse::<u64>().ok());
        if msg.topic == SOCKET_TOPIC {
            if ref_.is_some() && ref_ == self.pending_heartbeat {
                self.pending_heartbeat = None;
            } else {
                log::debug!("ignoring reply on `phoenix` ({:?})", msg.ref_);
            }
            return vec![];
        }
        if msg.topic != self.topic {
            log::debug!("ignoring reply on topic `{}`", msg.topic);
            return vec![];
        }
        if let Join::Joining { join_ref, .. } = self.join
            && ref_ == Some(join_ref)
        {
            if status == "ok" {
                log::info!("joined {} (join_ref {join_ref})", self.topic);
                self.join = Join::Joined { join_ref };
                self.tries = 0;
            } else {
                log::warn!(
                    "join {} refused: {status} {}",
                    self.topic,
                    reason(&response)
                );
                return self.schedule_rejoin(now);
            }
            return vec![];
        }
        let mut out = vec![];
        if let Some(r) = ref_ {
            if status != "ok" {
                log::warn!("push {r} answered {status}: {}", reason(&response));
            }
            out.push(Action::Ack(AckOf::Tag(r)));
        }
        // A reply may carry a command in the raw dialect's shape.
        if let Ok(Value::Object(obj)) = &response
            && let Some(kind) = obj.get("type").and_then(Value::as_str)
        {
            out.extend(command(kind, &Value::Object(obj.clone())));
        } else if out.is_empty() {
            log::debug!("ignoring reply {:?} on {}", msg.ref_, self.topic);
        }
        out
    }
}

/// The socket URL: `/websocket` appended to the path, then `vsn` and the token.
pub fn socket_url(url: &str, token: Option<&str>) -> String {
    let (base, rest) = match url.find(['?', '#']) {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let base = base.trim_end_matches('/');
    let mut out = if base.ends_with("/websocket") {
        base.to_string()
    } else {
        format!("{base}/websocket")
    };
    out.push_str(rest);
    let mut q = vec![("vsn", "2.0.0")];
    if let Some(t) = token {
        q.push(("token", t));
    }
    with_query(&out, &q)
}

fn is_command(event: &str) -> bool {
    matches!(event, "pause" | "resume" | "set")
}

/// A command event with its payload, or nothing (logged) if not a command.
fn command(event: &str, payload: &Value) -> Vec<Action> {
    match message::parse_command(event, payload) {
        Ok(c) => vec![Action::Command(c)],
        Err(CommandError::Unknown(e)) => {
            log::debug!("ignoring server event `{e}`");
            vec![]
        }
        Err(e) => {
            log::warn!("relay command {e}");
            vec![]
        }
    }
}

/// A push's payload as JSON: text payloads as they are, binary ones parsed as
/// JSON bytes (empty means no fields).
fn json_payload(p: &Payload) -> Result<Value, String> {
    match p {
        Payload::Json(v) => Ok(v.clone()),
        Payload::Binary(b) if b.is_empty() => Ok(Value::Null),
        Payload::Binary(b) => serde_json::from_slice(b).map_err(|e| format!("is not JSON ({e})")),
        Payload::BinaryReply { .. } => Err("is a reply".into()),
    }
}

/// A reply's status and its response as JSON (binary responses parsed as
/// JSON bytes; the error says why not).
fn reply_parts(p: Payload) -> Option<(String, Result<Value, String>)> {
    match p {
        Payload::Json(Value::Object(mut m)) => {
            let status = m.get("status")?.as_str()?.to_string();
            let response = m.remove("response").unwrap_or(Value::Null);
            Some((status, Ok(response)))
        }
        Payload::BinaryReply { status, response } => {
            let r = if response.is_empty() {
                Ok(Value::Null)
            } else {
                serde_json::from_slice(&response)
                    .map_err(|_| format!("{}-byte binary response", response.len()))
            };
            Some((status, r))
        }
        _ => None,
    }
}

/// `reason` of an error response, else the response itself, clipped.
fn reason(response: &Result<Value, String>) -> String {
    match response {
        Ok(v) => match v.get("reason").and_then(Value::as_str) {
            Some(r) => format!("(reason: {})", clip(r)),
            None => clip(&v.to_string()),
        },
        Err(e) => e.clone(),
    }
}

impl Dialect for Phoenix {
    fn url(&self) -> &str {
        &self.url
    }

    fn on_open(&mut self, now: Instant, hello: &Hello) -> Vec<Action> {
        let mut p = Map::new();
        if let Some(t) = &self.token {
            p.insert("token".into(), t.clone().into());
        }
        p.extend(hello.fields());
        self.join_payload = Value::Object(p);
        self.tries = 0;
        self.pending_heartbeat = None;
        self.next_heartbeat = now + self.heartbeat;
        self.send_join(now)
    }

    fn ready(&self) -> bool {
        matches!(self.join, Join::Joined { .. })
    }

    fn frame(&mut self, jpeg: Vec<u8>) -> (Message, Option<u64>) {
        let join_ref = self.join_ref().unwrap_or(0).to_string();
        let r = self.make_ref();
        match serializer::encode_push(&join_ref, &r.to_string(), &self.topic, "frame", &jpeg) {
            Ok(b) => (Message::binary(b), Some(r)),
            Err(e) => {
                // Unreachable with a configured topic (≤ 255 bytes, checked
                // by the config and again before joining, so never ready).
                log::error!("frame not encoded: {e}");
                (Message::Ping(Vec::new().into()), None)
            }
        }
    }

    fn stats(&mut self, fields: Map<String, Value>) -> Option<Message> {
        self.push("stats", fields)
    }

    fn settings(&mut self, fields: Map<String, Value>) -> Option<Message> {
        self.push("settings", fields)
    }

    fn on_text(&mut self, text: &str, now: Instant) -> Vec<Action> {
        match serializer::decode_text(text) {
            Ok(m) => self.handle(m, now),
            Err(e) => {
                log::warn!("malformed Phoenix frame: {e}");
                log::debug!("the frame: {}", clip(text));
                vec![]
            }
        }
    }

    fn on_binary(&mut self, data: &[u8], now: Instant) -> Vec<Action> {
        match serializer::decode_server_binary(data) {
            Ok(m) => self.handle(m, now),
            Err(e) => {
                log::warn!("malformed Phoenix frame: {e}");
                log::debug!("the frame: {} bytes", data.len());
                vec![]
            }
        }
    }

    fn on_tick(&mut self, now: Instant) -> Vec<Action> {
        let mut out = vec![];
        if now >= self.next_heartbeat {
            if let Some(r) = self.pending_heartbeat {
                return vec![Action::Reconnect(format!(
                    "no reply to heartbeat {r} within {:?}",
                    self.heartbeat
                ))];
            }
            let r = self.make_ref();
            self.pending_heartbeat = Some(r);
            self.next_heartbeat = now + self.heartbeat;
            out.push(self.text(None, r, SOCKET_TOPIC, "heartbeat", &json!({})));
        }
        match self.join {
            Join::Joining { join_ref, deadline } if now >= deadline => {
                log::warn!("join {} got no reply within {:?}", self.topic, JOIN_TIMEOUT);
                let r = self.make_ref();
                out.push(self.text(Some(join_ref), r, &self.topic, "phx_leave", &json!({})));
                out.extend(self.schedule_rejoin(now));
            }
            Join::Waiting { at } if now >= at => out.extend(self.send_join(now)),
            _ => {}
        }
        out
    }

    fn next_deadline(&self) -> Instant {
        match self.join {
            Join::Joining { deadline, .. } => self.next_heartbeat.min(deadline),
            Join::Waiting { at } => self.next_heartbeat.min(at),
            _ => self.next_heartbeat,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::serializer::{ServerFrame, decode_client_push, decode_text, encode_server};
    use super::*;
    use crate::stream::Command;

    const T: &str = "camera:porch";

    fn hello() -> Hello {
        Hello {
            camera: "porch".into(),
            version: "0.1.0".into(),
            width: 64,
            height: 48,
            format: "pattern".into(),
            fps: 5,
            relay: None,
        }
    }

    fn sent_text(a: &Action) -> Msg {
        match a {
            Action::Send(Message::Text(t)) => decode_text(t).unwrap(),
            other => panic!("not a text send: {other:?}"),
        }
    }

    fn reply(join_ref: &str, ref_: &str, topic: &str, status: &str, response: Value) -> String {
        serializer::encode_text(
            Some(join_ref),
            Some(ref_),
            topic,
            "phx_reply",
            &json!({"status": status, "response": response}),
        )
    }

    /// A dialect that has opened and joined; returns it with the join's ref.
    fn joined(t0: Instant) -> (Phoenix, String) {
        let mut p = Phoenix::with("ws://h/socket", Some("s3cret"), T, Duration::from_secs(1));
        let a = p.on_open(t0, &hello());
        let j = sent_text(&a[0]);
        let r = j.ref_.clone().unwrap();
        assert!(p.on_text(&reply(&r, &r, T, "ok", json!({})), t0).is_empty());
        assert!(p.ready());
        (p, r)
    }

    #[test]
    fn url_gets_websocket_vsn_and_token() {
        for (given, want) in [
            (
                "ws://h/socket",
                "ws://h/socket/websocket?vsn=2.0.0&token=a%20b",
            ),
            (
                "ws://h/socket/",
                "ws://h/socket/websocket?vsn=2.0.0&token=a%20b",
            ),
            (
                "ws://h/socket/websocket",
                "ws://h/socket/websocket?vsn=2.0.0&token=a%20b",
            ),
            (
                "wss://h:4000/s?x=1",
                "wss://h:4000/s/websocket?x=1&vsn=2.0.0&token=a%20b",
            ),
        ] {
            assert_eq!(socket_url(given, Some("a b")), want, "{given}");
        }
        assert_eq!(
            socket_url("ws://h/socket", None),
            "ws://h/socket/websocket?vsn=2.0.0"
        );
    }

    #[test]
    fn join_payload_has_token_and_hello() {
        let t0 = Instant::now();
        let mut p = Phoenix::with("ws://h/socket", Some("s3cret"), T, Duration::from_secs(30));
        let a = p.on_open(t0, &hello());
        assert_eq!(a.len(), 1);
        let m = sent_text(&a[0]);
        assert_eq!(
            (m.join_ref.as_deref(), m.ref_.as_deref()),
            (Some("1"), Some("1"))
        );
        assert_eq!((m.topic.as_str(), m.event.as_str()), (T, "phx_join"));
        assert_eq!(
            m.payload,
            Payload::Json(
                json!({"token":"s3cret","camera":"porch","version":"0.1.0","width":64,"height":48,"format":"pattern","fps":5})
            )
        );
        assert!(!p.ready());
        // Without a token the payload is just the hello fields.
        let mut p = Phoenix::with("ws://h/socket", None, T, Duration::from_secs(30));
        let m = sent_text(&p.on_open(t0, &hello())[0]);
        let Payload::Json(v) = m.payload else {
            panic!()
        };
        assert!(v.get("token").is_none());
    }

    #[test]
    fn frames_only_after_ok_and_as_binary_pushes() {
        let t0 = Instant::now();
        let (mut p, jr) = joined(t0);
        let a = p.frame(vec![0xFF, 0xD8, 0xFF, 0xD9]).0;
        let b = p.frame(vec![1]).0;
        let (Message::Binary(a), Message::Binary(b)) = (a, b) else {
            panic!()
        };
        let a = decode_client_push(&a).unwrap();
        let b = decode_client_push(&b).unwrap();
        assert_eq!(a.join_ref.as_deref(), Some(jr.as_str()));
        assert_eq!((a.topic.as_str(), a.event.as_str()), (T, "frame"));
        assert_eq!(a.payload, Payload::Binary(vec![0xFF, 0xD8, 0xFF, 0xD9]));
        assert_ne!(a.ref_, b.ref_);
        assert_ne!(a.ref_, Some(jr));
    }

    #[test]
    fn error_reply_rejoins_on_the_ladder_and_ok_resets_it() {
        let t0 = Instant::now();
        let mut p = Phoenix::with("ws://h/socket", None, T, Duration::from_secs(3600));
        let mut now = t0;
        let mut join = sent_text(&p.on_open(now, &hello())[0]);
        for want in [1, 2, 5, 10, 10] {
            let r = join.ref_.clone().unwrap();
            assert_eq!(join.join_ref, join.ref_);
            let refused = reply(&r, &r, T, "error", json!({"reason":"unmatched topic"}));
            assert!(p.on_text(&refused, now).is_empty());
            assert!(!p.ready());
            assert_eq!(p.next_deadline(), now + Duration::from_secs(want));
            assert!(
                p.on_tick(now + Duration::from_secs(want) - Duration::from_millis(1))
                    .is_empty()
            );
            now += Duration::from_secs(want);
            let a = p.on_tick(now);
            assert_eq!(a.len(), 1);
            join = sent_text(&a[0]);
            assert_eq!(join.event, "phx_join");
            // join_ref increments per join.
            assert_ne!(join.join_ref.as_deref(), Some(r.as_str()));
        }
        let r = join.ref_.clone().unwrap();
        p.on_text(&reply(&r, &r, T, "ok", json!({})), now);
        assert!(p.ready());
        // A later phx_error starts the ladder from 1 s again.
        let err = serializer::encode_text(Some(&r), Some(&r), T, "phx_error", &json!({}));
        assert_eq!(p.on_text(&err, now), vec![Action::Ack(AckOf::All)]);
        assert!(!p.ready());
        assert_eq!(p.next_deadline(), now + Duration::from_secs(1));
    }

    #[test]
    fn phx_close_and_stale_messages() {
        let t0 = Instant::now();
        let (mut p, jr) = joined(t0);
        // phx_error for an earlier join, or another topic, is ignored.
        let stale = serializer::encode_text(Some("999"), Some("999"), T, "phx_error", &json!({}));
        assert!(p.on_text(&stale, t0).is_empty());
        let other = serializer::encode_text(Some(&jr), None, "camera:x", "phx_close", &json!({}));
        assert!(p.on_text(&other, t0).is_empty());
        assert!(p.ready());
        let close = serializer::encode_text(Some(&jr), Some(&jr), T, "phx_close", &json!({}));
        p.on_text(&close, t0);
        assert!(!p.ready());
        // The heartbeat is due at the same moment; both go out.
        let a = p.on_tick(t0 + Duration::from_secs(1));
        let events: Vec<String> = a.iter().map(|a| sent_text(a).event).collect();
        assert_eq!(events, ["heartbeat", "phx_join"]);
    }

    #[test]
    fn join_timeout_leaves_and_rejoins() {
        let t0 = Instant::now();
        let mut p = Phoenix::with("ws://h/socket", None, T, Duration::from_secs(3600));
        let join = sent_text(&p.on_open(t0, &hello())[0]);
        assert_eq!(p.next_deadline(), t0 + JOIN_TIMEOUT);
        let a = p.on_tick(t0 + JOIN_TIMEOUT);
        let leave = sent_text(&a[0]);
        assert_eq!(leave.event, "phx_leave");
        assert_eq!(leave.join_ref, join.join_ref);
        // A late ok for the abandoned join does not count.
        let r = join.ref_.unwrap();
        p.on_text(&reply(&r, &r, T, "ok", json!({})), t0 + JOIN_TIMEOUT);
        assert!(!p.ready());
        let a = p.on_tick(t0 + JOIN_TIMEOUT + Duration::from_secs(1));
        assert_eq!(sent_text(&a[0]).event, "phx_join");
    }

    #[test]
    fn heartbeats_and_the_silent_heartbeat() {
        let hb = Duration::from_secs(1);
        let t0 = Instant::now();
        let (mut p, _) = joined(t0);
        assert_eq!(p.next_deadline(), t0 + hb);
        let a = p.on_tick(t0 + hb);
        let m = sent_text(&a[0]);
        assert_eq!(
            (m.join_ref, m.topic.as_str(), m.event.as_str()),
            (None, "phoenix", "heartbeat")
        );
        assert_eq!(m.payload, Payload::Json(json!({})));
        let r = m.ref_.unwrap();
        // Its reply clears it, so the next one goes out.
        p.on_text(
            &serializer::encode_text(
                None,
                Some(&r),
                "phoenix",
                "phx_reply",
                &json!({"status":"ok","response":{}}),
            ),
            t0 + hb,
        );
        let a = p.on_tick(t0 + hb * 2);
        assert_eq!(sent_text(&a[0]).event, "heartbeat");
        // No reply: the next due tick is a reconnect.
        let a = p.on_tick(t0 + hb * 3);
        assert!(
            matches!(&a[..], [Action::Reconnect(why)] if why.contains("heartbeat")),
            "{a:?}"
        );
        // A new connection starts clean.
        let a = p.on_open(t0 + hb * 4, &hello());
        assert_eq!(sent_text(&a[0]).event, "phx_join");
        assert!(!p.ready());
    }

    #[test]
    fn replies_to_frames_are_acks() {
        let t0 = Instant::now();
        let (mut p, jr) = joined(t0);
        let (Message::Binary(f), Some(tag)) = p.frame(vec![1, 2]) else {
            panic!()
        };
        let fr = decode_client_push(&f).unwrap().ref_.unwrap();
        assert_eq!(fr, tag.to_string(), "the tag is the push's ref");
        assert_eq!(
            p.on_text(&reply(&jr, &fr, T, "ok", json!({})), t0),
            vec![Action::Ack(AckOf::Tag(tag))]
        );
        // Any reply names its ref; flow control knows which are frames.
        assert_eq!(
            p.on_text(&reply(&jr, "12345", T, "error", json!({})), t0),
            vec![Action::Ack(AckOf::Tag(12345))]
        );
        // A binary reply acks too, and may carry a command.
        let (Message::Binary(f), Some(tag)) = p.frame(vec![3]) else {
            panic!()
        };
        let fr = decode_client_push(&f).unwrap().ref_.unwrap();
        let ServerFrame::Binary(b) = encode_server(&Msg {
            join_ref: Some(jr.clone()),
            ref_: Some(fr),
            topic: T.into(),
            event: REPLY_EVENT.into(),
            payload: Payload::BinaryReply {
                status: "ok".into(),
                response: br#"{"type":"pause"}"#.to_vec(),
            },
        })
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            p.on_binary(&b, t0),
            vec![
                Action::Ack(AckOf::Tag(tag)),
                Action::Command(Command::Pause)
            ]
        );
        // A channel lost with frames in flight releases them.
        let _ = p.frame(vec![4]);
        let err = serializer::encode_text(Some(&jr), Some(&jr), T, "phx_error", &json!({}));
        assert_eq!(p.on_text(&err, t0), vec![Action::Ack(AckOf::All)]);
    }

    #[test]
    fn commands_in_every_server_shape() {
        let t0 = Instant::now();
        let (mut p, jr) = joined(t0);
        let set = Command::Set(crate::wire::message::SetCommand {
            fps: Some(2),
            ..Default::default()
        });
        // JSON text: broadcast (no refs) and push (join_ref).
        let t = serializer::encode_text(None, None, T, "pause", &json!({}));
        assert_eq!(p.on_text(&t, t0), vec![Action::Command(Command::Pause)]);
        let t = serializer::encode_text(Some(&jr), None, T, "set", &json!({"fps":2}));
        assert_eq!(p.on_text(&t, t0), vec![Action::Command(set.clone())]);
        // Binary kinds: push (0), broadcast (2), reply (1).
        for (join_ref, event, payload, want) in [
            (Some(jr.clone()), "resume", b"".to_vec(), Command::Resume),
            (None, "set", br#"{"fps":2}"#.to_vec(), set.clone()),
            (None, "pause", b"{}".to_vec(), Command::Pause),
        ] {
            let ServerFrame::Binary(b) = encode_server(&Msg {
                join_ref,
                ref_: None,
                topic: T.into(),
                event: event.into(),
                payload: Payload::Binary(payload),
            })
            .unwrap() else {
                panic!()
            };
            assert_eq!(p.on_binary(&b, t0), vec![Action::Command(want)]);
        }
        let ServerFrame::Binary(b) = encode_server(&Msg {
            join_ref: Some(jr.clone()),
            ref_: Some("77".into()),
            topic: T.into(),
            event: REPLY_EVENT.into(),
            payload: Payload::BinaryReply {
                status: "ok".into(),
                response: br#"{"type":"set","quality":50}"#.to_vec(),
            },
        })
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            p.on_binary(&b, t0),
            vec![
                Action::Ack(AckOf::Tag(77)),
                Action::Command(Command::Set(crate::wire::message::SetCommand {
                    quality: Some(50),
                    ..Default::default()
                }))
            ]
        );
        // A text reply's response in the raw shape.
        assert_eq!(
            p.on_text(&reply(&jr, "78", T, "ok", json!({"type":"resume"})), t0),
            vec![
                Action::Ack(AckOf::Tag(78)),
                Action::Command(Command::Resume)
            ]
        );
    }

    #[test]
    fn junk_is_ignored_without_killing_anything() {
        let t0 = Instant::now();
        let (mut p, jr) = joined(t0);
        for t in [
            "garbage",
            "[]",
            r#"{"type":"pause"}"#,
            r#"[null,null,"camera:porch","set","nope"]"#,
            r#"[null,null,"camera:other","pause",{}]"#,
            r#"[null,null,"camera:porch","presence_diff",{}]"#,
            r#"["1","1","camera:porch","phx_reply","no status"]"#,
            r#"[null,"5","phoenix","phx_reply",{"status":"ok","response":{}}]"#,
        ] {
            assert!(p.on_text(t, t0).is_empty(), "{t}");
        }
        let mut bad_json = vec![2, T.len() as u8, 3];
        bad_json.extend_from_slice(T.as_bytes());
        bad_json.extend_from_slice(b"set{not json");
        for b in [
            &[][..],
            &[9, 9][..],
            &[2, 200, 1, 0][..],
            &[1, 0, 0, 0, 0, 0xFF][..],
            &bad_json[..],
        ] {
            assert!(p.on_binary(b, t0).is_empty(), "{b:?}");
        }
        assert!(p.ready());
        assert_eq!(p.join_ref().map(|r| r.to_string()), Some(jr));
    }

    #[test]
    fn stats_only_when_joined() {
        let t0 = Instant::now();
        let mut p = Phoenix::with("ws://h/socket", None, T, Duration::from_secs(30));
        assert!(p.stats(Map::new()).is_none());
        p.on_open(t0, &hello());
        assert!(p.stats(Map::new()).is_none());
        let (mut p, jr) = joined(t0);
        let mut f = Map::new();
        f.insert("sent".into(), 3.into());
        let Some(Message::Text(t)) = p.stats(f) else {
            panic!()
        };
        let m = decode_text(&t).unwrap();
        assert_eq!(
            (m.join_ref, m.topic.as_str(), m.event.as_str()),
            (Some(jr), T, "stats")
        );
        assert_eq!(m.payload, Payload::Json(json!({"sent":3})));
    }

    #[test]
    fn ladder_matches_phoenix_js() {
        let got: Vec<u64> = (1..=6).map(|t| rejoin_after(t).as_secs()).collect();
        assert_eq!(got, [1, 2, 5, 10, 10, 10]);
        assert_eq!(rejoin_after(0), REJOIN_MAX);
    }

    #[test]
    fn new_reads_the_relay_config() {
        use crate::config::{Config, Overrides, parse_str};
        let f = parse_str(
            "camera = \"porch\"\n[source]\ndevice = \"pattern\"\n[relay]\nurl = \"ws://127.0.0.1:4000/socket\"\nprotocol = \"phoenix\"\ntoken = \"t\"\n",
        )
        .unwrap();
        let c = Config::build_with(f, &Overrides::default(), true, &|_| false).unwrap();
        let p = Phoenix::new(&c.relay);
        assert_eq!(
            p.url(),
            "ws://127.0.0.1:4000/socket/websocket?vsn=2.0.0&token=t"
        );
        assert_eq!(p.topic, "camera:porch");
        assert_eq!(p.heartbeat, Duration::from_secs(30));
    }
}
