//! Encode then decode gives back what was encoded: the client push (kind 0
//! with ref) and every server shape (text, kinds 0, 1, 2).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use zerocam::stream::phoenix::serializer::{self, Msg, Payload, ServerFrame};

/// Splits the input into four strings and a payload (lengths from the first
/// bytes; strings lossily made UTF-8, as the wire requires UTF-8).
fn parts(data: &[u8]) -> Option<([String; 4], Vec<u8>, u8)> {
    let (&sel, rest) = data.split_first()?;
    let (lens, mut rest) = rest.split_at_checked(4)?;
    let mut out: [String; 4] = Default::default();
    for (i, &l) in lens.iter().enumerate() {
        let (s, r) = rest.split_at_checked((l as usize).min(rest.len()))?;
        out[i] = String::from_utf8_lossy(s).into_owned();
        rest = r;
    }
    Some((out, rest.to_vec(), sel))
}

fuzz_target!(|data: &[u8]| {
    let Some(([j, r, t, e], payload, sel)) = parts(data) else {
        return;
    };
    match serializer::encode_push(&j, &r, &t, &e, &payload) {
        Ok(b) => {
            let m = serializer::decode_client_push(&b).expect("own push decodes");
            assert_eq!(
                (m.join_ref.as_deref(), m.ref_.as_deref(), m.topic.as_str(), m.event.as_str()),
                (Some(j.as_str()), Some(r.as_str()), t.as_str(), e.as_str())
            );
            assert_eq!(m.payload, Payload::Binary(payload.clone()));
        }
        Err(_) => assert!([&j, &r, &t, &e].iter().any(|s| s.len() > 255)),
    }
    let json_payload = serde_json::from_slice::<Value>(&payload).unwrap_or(Value::Null);
    let msg = match sel % 4 {
        0 => Msg {
            join_ref: (sel & 4 != 0).then(|| j.clone()),
            ref_: (sel & 8 != 0).then(|| r.clone()),
            topic: t.clone(),
            event: e.clone(),
            payload: Payload::Json(json_payload),
        },
        1 => Msg {
            join_ref: Some(j.clone()),
            ref_: None,
            topic: t.clone(),
            event: e.clone(),
            payload: Payload::Binary(payload),
        },
        2 => Msg {
            join_ref: Some(j.clone()),
            ref_: Some(r.clone()),
            topic: t.clone(),
            event: serializer::REPLY_EVENT.into(),
            payload: Payload::BinaryReply { status: e.clone(), response: payload },
        },
        _ => Msg {
            join_ref: None,
            ref_: None,
            topic: t.clone(),
            event: e.clone(),
            payload: Payload::Binary(payload),
        },
    };
    let back = match serializer::encode_server(&msg) {
        Ok(ServerFrame::Text(s)) => serializer::decode_text(&s).expect("own text decodes"),
        Ok(ServerFrame::Binary(b)) => serializer::decode_server_binary(&b).expect("own binary decodes"),
        Err(_) => return,
    };
    assert_eq!(back, msg);
});
