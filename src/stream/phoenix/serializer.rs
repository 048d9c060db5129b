//! Phoenix Channels serializer V2 (`vsn=2.0.0`), as phoenix.js's
//! `serializer.js` and Phoenix's `Phoenix.Socket.V2.JSONSerializer` define it.
//! Pure: bytes in, messages out; malformed input is a typed error, never a panic.
//!
//! Text frames are JSON arrays `[join_ref, ref, topic, event, payload]`.
//! Binary frames start with a kind byte, and the layouts differ by direction:
//!
//! | kind | direction       | header after the kind byte                          |
//! |------|-----------------|-----------------------------------------------------|
//! | 0    | client → server | `len(join_ref) len(ref) len(topic) len(event)`      |
//! | 0    | server → client | `len(join_ref) len(topic) len(event)` (no ref)      |
//! | 1    | server → client | `len(join_ref) len(ref) len(topic) len(status)`     |
//! | 2    | server → client | `len(topic) len(event)`                             |
//!
//! then the strings in that order (UTF-8, no separators), then the payload.

use std::fmt;

use serde_json::Value;

/// Kind byte of a push (client's layout when we send, server's when we read).
pub const KIND_PUSH: u8 = 0;
/// Kind byte of a server reply.
pub const KIND_REPLY: u8 = 1;
/// Kind byte of a server broadcast.
pub const KIND_BROADCAST: u8 = 2;
/// The event Phoenix gives every reply.
pub const REPLY_EVENT: &str = "phx_reply";

/// A message's payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// From a text frame: any JSON value (for `phx_reply`, `{"status":…,"response":…}`).
    Json(Value),
    /// From a binary push or broadcast: the bytes after the header.
    Binary(Vec<u8>),
    /// From a binary reply (kind 1): the status and the response bytes.
    BinaryReply { status: String, response: Vec<u8> },
}

/// One Phoenix message, either direction.
#[derive(Debug, Clone, PartialEq)]
pub struct Msg {
    pub join_ref: Option<String>,
    pub ref_: Option<String>,
    pub topic: String,
    pub event: String,
    pub payload: Payload,
}

/// Why a frame could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A text frame that is not JSON.
    NotJson(String),
    /// JSON that is not a 5-element array.
    NotArray,
    /// A field of the wrong JSON type (refs must be strings or null).
    FieldType(&'static str),
    /// An empty binary frame.
    Empty,
    /// A binary frame with a kind byte other than 0, 1, 2.
    UnknownKind(u8),
    /// A binary frame shorter than its header or its declared strings.
    Truncated { need: usize, have: usize },
    /// A string field that is not UTF-8.
    NotUtf8(&'static str),
    /// A field longer than the 255 bytes the binary header can carry.
    TooLong { field: &'static str, len: usize },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotJson(e) => write!(f, "not JSON: {e}"),
            Error::NotArray => {
                f.write_str("text frame is not a [join_ref, ref, topic, event, payload] array")
            }
            Error::FieldType(field) => write!(f, "field `{field}` has the wrong JSON type"),
            Error::Empty => f.write_str("empty binary frame"),
            Error::UnknownKind(k) => write!(f, "binary frame of unknown kind {k}"),
            Error::Truncated { need, have } => {
                write!(f, "binary frame truncated: needs {need} bytes, has {have}")
            }
            Error::NotUtf8(field) => write!(f, "binary frame field `{field}` is not UTF-8"),
            Error::TooLong { field, len } => write!(
                f,
                "unable to convert {field} to binary: must be at most 255 bytes, but is {len} bytes"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// Encodes a JSON text frame `[join_ref, ref, topic, event, payload]`
/// (phoenix.js `encode` for non-binary payloads).
pub fn encode_text(
    join_ref: Option<&str>,
    ref_: Option<&str>,
    topic: &str,
    event: &str,
    payload: &Value,
) -> String {
    Value::Array(vec![
        join_ref.map_or(Value::Null, Value::from),
        ref_.map_or(Value::Null, Value::from),
        Value::from(topic),
        Value::from(event),
        payload.clone(),
    ])
    .to_string()
}

/// Encodes a client binary push (kind 0, with ref), phoenix.js `binaryEncode`.
/// Both refs are required: a Phoenix server needs them to route and reply.
pub fn encode_push(
    join_ref: &str,
    ref_: &str,
    topic: &str,
    event: &str,
    payload: &[u8],
) -> Result<Vec<u8>, Error> {
    let fields = [
        ("join_ref", join_ref),
        ("ref", ref_),
        ("topic", topic),
        ("event", event),
    ];
    let mut meta = 0;
    for (name, s) in fields {
        if s.len() > 255 {
            return Err(Error::TooLong {
                field: name,
                len: s.len(),
            });
        }
        meta += s.len();
    }
    let mut out = Vec::with_capacity(5 + meta + payload.len());
    out.push(KIND_PUSH);
    for (_, s) in fields {
        out.push(s.len() as u8); // checked ≤ 255 above
    }
    for (_, s) in fields {
        out.extend_from_slice(s.as_bytes());
    }
    out.extend_from_slice(payload);
    Ok(out)
}

/// Decodes a text frame (either direction).
pub fn decode_text(text: &str) -> Result<Msg, Error> {
    let v: Value = serde_json::from_str(text).map_err(|e| Error::NotJson(e.to_string()))?;
    let Value::Array(items) = v else {
        return Err(Error::NotArray);
    };
    let Ok([join_ref, ref_, topic, event, payload]) = <[Value; 5]>::try_from(items) else {
        return Err(Error::NotArray);
    };
    Ok(Msg {
        join_ref: opt_string(join_ref, "join_ref")?,
        ref_: opt_string(ref_, "ref")?,
        topic: string(topic, "topic")?,
        event: string(event, "event")?,
        payload: Payload::Json(payload),
    })
}

fn opt_string(v: Value, field: &'static str) -> Result<Option<String>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        _ => Err(Error::FieldType(field)),
    }
}

fn string(v: Value, field: &'static str) -> Result<String, Error> {
    match v {
        Value::String(s) => Ok(s),
        _ => Err(Error::FieldType(field)),
    }
}

/// Decodes a binary frame as the server sends it: kind 0 push (no ref),
/// kind 1 reply, kind 2 broadcast (phoenix.js `binaryDecode`).
pub fn decode_server_binary(data: &[u8]) -> Result<Msg, Error> {
    let (&kind, _) = data.split_first().ok_or(Error::Empty)?;
    let names: &[&'static str] = match kind {
        KIND_PUSH => &["join_ref", "topic", "event"],
        KIND_REPLY => &["join_ref", "ref", "topic", "status"],
        KIND_BROADCAST => &["topic", "event"],
        other => return Err(Error::UnknownKind(other)),
    };
    let (mut strings, rest) = split_fields(data, names)?;
    // Fields come out in header order; pop from the back.
    let mut take = || strings.pop().unwrap_or_default();
    let msg = match kind {
        KIND_PUSH => {
            let event = take();
            let topic = take();
            let join_ref = take();
            Msg {
                join_ref: Some(join_ref),
                ref_: None,
                topic,
                event,
                payload: Payload::Binary(rest.to_vec()),
            }
        }
        KIND_REPLY => {
            let status = take();
            let topic = take();
            let ref_ = take();
            let join_ref = take();
            Msg {
                join_ref: Some(join_ref),
                ref_: Some(ref_),
                topic,
                event: REPLY_EVENT.to_string(),
                payload: Payload::BinaryReply {
                    status,
                    response: rest.to_vec(),
                },
            }
        }
        _ => {
            let event = take();
            let topic = take();
            Msg {
                join_ref: None,
                ref_: None,
                topic,
                event,
                payload: Payload::Binary(rest.to_vec()),
            }
        }
    };
    Ok(msg)
}

/// Decodes a client binary push (kind 0 with ref): what a Phoenix server reads
/// from us. Used by tests and the fuzz round trip.
pub fn decode_client_push(data: &[u8]) -> Result<Msg, Error> {
    let (&kind, _) = data.split_first().ok_or(Error::Empty)?;
    if kind != KIND_PUSH {
        return Err(Error::UnknownKind(kind));
    }
    let (strings, rest) = split_fields(data, &["join_ref", "ref", "topic", "event"])?;
    let [join_ref, ref_, topic, event] =
        <[String; 4]>::try_from(strings).map_err(|_| Error::Truncated {
            need: 5,
            have: data.len(),
        })?;
    Ok(Msg {
        join_ref: Some(join_ref),
        ref_: Some(ref_),
        topic,
        event,
        payload: Payload::Binary(rest.to_vec()),
    })
}

/// Reads the length bytes after the kind byte, then the strings they
/// announce; returns the strings in order and the remaining payload.
fn split_fields<'a>(
    data: &'a [u8],
    names: &[&'static str],
) -> Result<(Vec<String>, &'a [u8]), Error> {
    let header = 1 + names.len();
    if data.len() < header {
        return Err(Error::Truncated {
            need: header,
            have: data.len(),
        });
    }
    let lens = &data[1..header];
    let need = header + lens.iter().map(|&l| l as usize).sum::<usize>();
    if data.len() < need {
        return Err(Error::Truncated {
            need,
            have: data.len(),
        });
    }
    let mut at = header;
    let mut out = Vec::with_capacity(names.len());
    for (&len, &name) in lens.iter().zip(names) {
        let bytes = &data[at..at + len as usize];
        let s = std::str::from_utf8(bytes).map_err(|_| Error::NotUtf8(name))?;
        out.push(s.to_string());
        at += len as usize;
    }
    Ok((out, &data[at..]))
}

/// Encodes a message as a Phoenix V2 *server* would (JSON text, or binary
/// kinds 0/1/2 chosen by the shape): for tests, the fuzz round trip and the
/// in-test Phoenix server.
pub fn encode_server(msg: &Msg) -> Result<ServerFrame, Error> {
    match &msg.payload {
        Payload::Json(v) => Ok(ServerFrame::Text(encode_text(
            msg.join_ref.as_deref(),
            msg.ref_.as_deref(),
            &msg.topic,
            &msg.event,
            v,
        ))),
        Payload::Binary(bytes) => match &msg.join_ref {
            Some(j) => binary(
                KIND_PUSH,
                &[
                    ("join_ref", j),
                    ("topic", &msg.topic),
                    ("event", &msg.event),
                ],
                bytes,
            ),
            None => binary(
                KIND_BROADCAST,
                &[("topic", &msg.topic), ("event", &msg.event)],
                bytes,
            ),
        },
        Payload::BinaryReply { status, response } => binary(
            KIND_REPLY,
            &[
                ("join_ref", msg.join_ref.as_deref().unwrap_or("")),
                ("ref", msg.ref_.as_deref().unwrap_or("")),
                ("topic", &msg.topic),
                ("status", status),
            ],
            response,
        ),
    }
}

/// A frame as a server would send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame {
    Text(String),
    Binary(Vec<u8>),
}

fn binary(kind: u8, fields: &[(&'static str, &str)], payload: &[u8]) -> Result<ServerFrame, Error> {
    let mut out = vec![kind];
    for (field, s) in fields {
        if s.len() > 255 {
            return Err(Error::TooLong {
                field,
                len: s.len(),
            });
        }
        out.push(s.len() as u8);
    }
    for (_, s) in fields {
        out.extend_from_slice(s.as_bytes());
    }
    out.extend_from_slice(payload);
    Ok(ServerFrame::Binary(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn push(
        join_ref: Option<&str>,
        ref_: Option<&str>,
        topic: &str,
        event: &str,
        p: Payload,
    ) -> Msg {
        Msg {
            join_ref: join_ref.map(str::to_string),
            ref_: ref_.map(str::to_string),
            topic: topic.into(),
            event: event.into(),
            payload: p,
        }
    }

    #[test]
    fn text_join_and_heartbeat_shapes() {
        assert_eq!(
            encode_text(
                Some("1"),
                Some("1"),
                "camera:porch",
                "phx_join",
                &json!({"token":"t"})
            ),
            r#"["1","1","camera:porch","phx_join",{"token":"t"}]"#
        );
        assert_eq!(
            encode_text(None, Some("7"), "phoenix", "heartbeat", &json!({})),
            r#"[null,"7","phoenix","heartbeat",{}]"#
        );
    }

    #[test]
    fn text_decode_reply_and_broadcast() {
        let m =
            decode_text(r#"["1","1","camera:porch","phx_reply",{"status":"ok","response":{}}]"#)
                .unwrap();
        assert_eq!(
            m,
            push(
                Some("1"),
                Some("1"),
                "camera:porch",
                "phx_reply",
                Payload::Json(json!({"status":"ok","response":{}}))
            )
        );
        let m = decode_text(r#"[null,null,"camera:porch","pause",{}]"#).unwrap();
        assert_eq!(
            m,
            push(
                None,
                None,
                "camera:porch",
                "pause",
                Payload::Json(json!({}))
            )
        );
        // Any JSON payload is carried as is.
        let m = decode_text(r#"[null,null,"t","e",[1,"x",null]]"#).unwrap();
        assert_eq!(m.payload, Payload::Json(json!([1, "x", null])));
    }

    #[test]
    fn text_decode_rejects_malformed() {
        for (bad, want) in [
            ("", "json"),
            ("not json", "json"),
            ("{}", "array"),
            ("[]", "array"),
            (r#"["1","1","t","e"]"#, "array"),
            (r#"["1","1","t","e",{},6]"#, "array"),
            (r#"[1,"1","t","e",{}]"#, "join_ref"),
            (r#"["1",2,"t","e",{}]"#, "ref"),
            (r#"["1","1",null,"e",{}]"#, "topic"),
            (r#"["1","1","t",{},{}]"#, "event"),
        ] {
            let e = decode_text(bad).unwrap_err();
            match (&e, want) {
                (Error::NotJson(_), "json") | (Error::NotArray, "array") => {}
                (Error::FieldType(f), w) if *f == w => {}
                _ => panic!("{bad}: {e:?}"),
            }
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn client_push_layout_is_phoenix_js_binary_encode() {
        let b = encode_push("1", "23", "camera:a", "frame", &[0xFF, 0xD8, 0xFF, 0xD9]).unwrap();
        let mut want = vec![0, 1, 2, 8, 5];
        want.extend_from_slice(b"123camera:aframe");
        want.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xD9]);
        assert_eq!(b, want);
        // Round trip through the server's reading of it.
        let m = decode_client_push(&b).unwrap();
        assert_eq!(
            m,
            push(
                Some("1"),
                Some("23"),
                "camera:a",
                "frame",
                Payload::Binary(vec![0xFF, 0xD8, 0xFF, 0xD9])
            )
        );
        // Empty payload and empty strings are fine.
        assert_eq!(
            encode_push("", "", "", "", &[]).unwrap(),
            vec![0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn client_push_field_limits() {
        let long = "x".repeat(256);
        let max = "y".repeat(255);
        assert!(encode_push("1", "1", &max, "frame", b"").is_ok());
        for (i, name) in ["join_ref", "ref", "topic", "event"]
            .into_iter()
            .enumerate()
        {
            let mut f = ["1", "1", "t", "e"];
            f[i] = &long;
            assert_eq!(
                encode_push(f[0], f[1], f[2], f[3], b"p"),
                Err(Error::TooLong {
                    field: name,
                    len: 256
                })
            );
        }
        // Lengths are bytes, not characters.
        let wide = "é".repeat(128); // 256 bytes
        assert!(matches!(
            encode_push("1", "1", &wide, "e", b""),
            Err(Error::TooLong { field: "topic", .. })
        ));
    }

    #[test]
    fn server_push_has_no_ref() {
        let mut b = vec![0, 1, 8, 5];
        b.extend_from_slice(b"3camera:apause{}");
        let m = decode_server_binary(&b).unwrap();
        assert_eq!(
            m,
            push(
                Some("3"),
                None,
                "camera:a",
                "pause",
                Payload::Binary(b"{}".to_vec())
            )
        );
        // The client layout read as a server push misparses: that is why the
        // two are distinct functions.
        let c = encode_push("1", "2", "t", "e", b"").unwrap();
        assert_ne!(
            decode_server_binary(&c).ok().map(|m| m.topic),
            Some("t".to_string())
        );
    }

    #[test]
    fn server_reply_and_broadcast() {
        let mut b = vec![1, 1, 2, 1, 2];
        b.extend_from_slice(b"142tok{\"type\":\"pause\"}");
        let m = decode_server_binary(&b).unwrap();
        assert_eq!(
            m,
            push(
                Some("1"),
                Some("42"),
                "t",
                "phx_reply",
                Payload::BinaryReply {
                    status: "ok".into(),
                    response: br#"{"type":"pause"}"#.to_vec()
                }
            )
        );
        let mut b = vec![2, 8, 3];
        b.extend_from_slice(b"camera:aset{\"fps\":2}");
        let m = decode_server_binary(&b).unwrap();
        assert_eq!(
            m,
            push(
                None,
                None,
                "camera:a",
                "set",
                Payload::Binary(br#"{"fps":2}"#.to_vec())
            )
        );
        // Header only, no payload.
        assert_eq!(
            decode_server_binary(&[2, 0, 0]).unwrap(),
            push(None, None, "", "", Payload::Binary(vec![]))
        );
    }

    #[test]
    fn server_binary_rejects_malformed() {
        assert_eq!(decode_server_binary(&[]), Err(Error::Empty));
        assert_eq!(decode_server_binary(&[3, 0, 0]), Err(Error::UnknownKind(3)));
        assert_eq!(decode_server_binary(&[0xFF]), Err(Error::UnknownKind(0xFF)));
        // Header shorter than the kind needs.
        for (b, need) in [
            (&[0u8][..], 4),
            (&[0, 1, 1][..], 4),
            (&[1, 0, 0, 0][..], 5),
            (&[2, 0][..], 3),
        ] {
            assert_eq!(
                decode_server_binary(b),
                Err(Error::Truncated {
                    need,
                    have: b.len()
                })
            );
        }
        // Strings longer than the frame.
        assert_eq!(
            decode_server_binary(&[2, 5, 5, b'a']),
            Err(Error::Truncated { need: 13, have: 4 })
        );
        assert_eq!(
            decode_server_binary(&[1, 255, 255, 255, 255]),
            Err(Error::Truncated {
                need: 5 + 4 * 255,
                have: 5
            })
        );
        // Invalid UTF-8 in a string field is named.
        assert_eq!(
            decode_server_binary(&[2, 1, 1, 0xC3, b'e']),
            Err(Error::NotUtf8("topic"))
        );
        assert_eq!(
            decode_server_binary(&[0, 1, 1, 1, b'1', b't', 0xFF]),
            Err(Error::NotUtf8("event"))
        );
        assert_eq!(
            decode_server_binary(&[1, 0, 1, 0, 0, 0x80]),
            Err(Error::NotUtf8("ref"))
        );
        // The payload itself may be anything.
        assert!(decode_server_binary(&[2, 0, 0, 0xFF, 0xFE]).is_ok());
        // Client push decoding rejects the same classes of input.
        assert_eq!(decode_client_push(&[]), Err(Error::Empty));
        assert_eq!(
            decode_client_push(&[1, 0, 0, 0, 0]),
            Err(Error::UnknownKind(1))
        );
        assert_eq!(
            decode_client_push(&[0, 0, 0, 0]),
            Err(Error::Truncated { need: 5, have: 4 })
        );
    }

    #[test]
    fn every_prefix_of_a_valid_frame_is_an_error_or_a_shorter_payload() {
        let frames = [
            encode_server(&push(
                Some("12"),
                None,
                "camera:a",
                "set",
                Payload::Binary(b"{}".to_vec()),
            ))
            .unwrap(),
            encode_server(&push(
                Some("1"),
                Some("2"),
                "t",
                "phx_reply",
                Payload::BinaryReply {
                    status: "ok".into(),
                    response: b"xy".to_vec(),
                },
            ))
            .unwrap(),
            encode_server(&push(
                None,
                None,
                "t",
                "e",
                Payload::Binary(b"abc".to_vec()),
            ))
            .unwrap(),
        ];
        for f in frames {
            let ServerFrame::Binary(b) = f else { panic!() };
            let full = decode_server_binary(&b).unwrap();
            for n in 0..b.len() {
                if let Ok(m) = decode_server_binary(&b[..n]) {
                    assert_eq!((m.topic, m.event), (full.topic.clone(), full.event.clone()));
                }
            }
        }
    }

    #[test]
    fn server_encoding_round_trips() {
        let msgs = [
            push(
                Some("1"),
                Some("1"),
                "camera:a",
                "phx_reply",
                Payload::Json(json!({"status":"ok","response":{}})),
            ),
            push(None, None, "camera:a", "pause", Payload::Json(json!({}))),
            push(
                Some("4"),
                None,
                "camera:a",
                "set",
                Payload::Binary(br#"{"fps":3}"#.to_vec()),
            ),
            push(
                Some("4"),
                Some("9"),
                "camera:a",
                "phx_reply",
                Payload::BinaryReply {
                    status: "error".into(),
                    response: vec![0, 1, 2],
                },
            ),
            push(None, None, "camera:ä", "resume", Payload::Binary(vec![])),
        ];
        for m in msgs {
            let back = match encode_server(&m).unwrap() {
                ServerFrame::Text(t) => decode_text(&t).unwrap(),
                ServerFrame::Binary(b) => decode_server_binary(&b).unwrap(),
            };
            assert_eq!(back, m);
        }
        let long = "x".repeat(300);
        assert!(encode_server(&push(None, None, &long, "e", Payload::Binary(vec![]))).is_err());
    }
}
