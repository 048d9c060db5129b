//! Byte-for-byte agreement with Phoenix's own JavaScript client: zerocam's
//! V2 encoder and decoder (and the frames the dialect actually sends) are
//! written as vectors, and tests/phoenix_js/check.mjs checks them with the
//! npm package `phoenix`'s `Serializer.encode`/`Serializer.decode`.
//! Needs Node.js and npm (`scripts/test` installs them first): without
//! `node` the test fails, naming the packages, rather than passing unrun.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::Message;
use zerocam::stream::phoenix::Phoenix;
use zerocam::stream::phoenix::serializer::{self, Msg, Payload, ServerFrame};
use zerocam::stream::{Dialect, Hello};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn msg_json(join_ref: Option<&str>, ref_: Option<&str>, topic: &str, event: &str) -> Value {
    json!({"join_ref": join_ref, "ref": ref_, "topic": topic, "event": event})
}

fn text_vector(name: &str, j: Option<&str>, r: Option<&str>, t: &str, e: &str, p: Value) -> Value {
    let mut msg = msg_json(j, r, t, e);
    msg["payload"] = p.clone();
    json!({"kind": "encode_text", "name": name, "msg": msg,
           "zerocam": serializer::encode_text(j, r, t, e, &p)})
}

fn push_vector(name: &str, j: &str, r: &str, t: &str, e: &str, payload: &[u8]) -> Value {
    let msg = msg_json(Some(j), Some(r), t, e);
    match serializer::encode_push(j, r, t, e, payload) {
        Ok(b) => json!({"kind": "encode_push", "name": name, "msg": msg,
                        "payload_hex": hex(payload), "zerocam_hex": hex(&b)}),
        Err(serializer::Error::TooLong { field, .. }) => json!({"kind": "encode_push_error",
            "name": name, "msg": msg, "payload_hex": hex(payload), "field": field}),
        Err(e) => panic!("{name}: {e}"),
    }
}

/// A server frame encoded by zerocam's server-side encoder, with zerocam's
/// own decoding of it for phoenix.js to agree with.
fn server_vector(name: &str, m: Msg) -> Value {
    match serializer::encode_server(&m).unwrap() {
        ServerFrame::Binary(b) => {
            let d = serializer::decode_server_binary(&b).unwrap();
            let (status, payload) = match d.payload {
                Payload::Binary(p) => (None, p),
                Payload::BinaryReply { status, response } => (Some(status), response),
                Payload::Json(_) => unreachable!(),
            };
            json!({"kind": "decode_binary", "name": name, "frame_hex": hex(&b), "zerocam": {
                "join_ref": d.join_ref, "ref": d.ref_, "topic": d.topic, "event": d.event,
                "status": status, "payload_hex": hex(&payload)}})
        }
        ServerFrame::Text(t) => {
            let d = serializer::decode_text(&t).unwrap();
            let Payload::Json(p) = d.payload else {
                unreachable!()
            };
            json!({"kind": "decode_text", "name": name, "frame": t, "zerocam": {
                "join_ref": d.join_ref, "ref": d.ref_, "topic": d.topic, "event": d.event,
                "payload": p}})
        }
    }
}

fn msg(j: Option<&str>, r: Option<&str>, t: &str, e: &str, p: Payload) -> Msg {
    Msg {
        join_ref: j.map(str::to_string),
        ref_: r.map(str::to_string),
        topic: t.into(),
        event: e.into(),
        payload: p,
    }
}

fn vectors() -> Vec<Value> {
    let mut v = vec![];
    let odd = "é✓ \u{1}\u{1f}\u{7f}\"\\/\n\t\u{2028}";
    // Client text frames.
    v.push(text_vector(
        "join",
        Some("1"),
        Some("1"),
        "camera:porch",
        "phx_join",
        json!({"token": "s3cret", "camera": "porch", "width": 640, "fps": 15}),
    ));
    v.push(text_vector(
        "heartbeat",
        None,
        Some("2"),
        "phoenix",
        "heartbeat",
        json!({}),
    ));
    v.push(text_vector(
        "stats",
        Some("1"),
        Some("9"),
        "camera:porch",
        "stats",
        json!({"sent": 10, "dropped": 0, "fps_sent": 12.5, "kbit_s": 803.27}),
    ));
    v.push(text_vector(
        "unicode and escapes",
        Some("1"),
        Some("3"),
        odd,
        odd,
        json!({"s": odd, "n": null, "a": [1, -2, true]}),
    ));
    v.push(text_vector(
        "null refs",
        None,
        None,
        "t",
        "e",
        json!("just a string"),
    ));
    // Client binary pushes.
    let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 0x4A, 0x46, 0xFF, 0xD9];
    v.push(push_vector(
        "frame",
        "1",
        "2",
        "camera:porch",
        "frame",
        &jpeg,
    ));
    v.push(push_vector(
        "empty payload",
        "1",
        "3",
        "camera:porch",
        "frame",
        &[],
    ));
    v.push(push_vector("empty strings", "", "", "", "", &[0, 1, 2]));
    v.push(push_vector(
        "utf-8 lengths are bytes",
        "12",
        "345",
        "camera:é✓",
        "frame",
        &[255; 300],
    ));
    let max = "m".repeat(255);
    v.push(push_vector("255-byte fields", &max, &max, &max, &max, b"x"));
    let long = "l".repeat(256);
    v.push(push_vector(
        "topic too long",
        "1",
        "2",
        &long,
        "frame",
        b"x",
    ));
    v.push(push_vector(
        "join_ref too long",
        &long,
        "2",
        "t",
        "frame",
        b"x",
    ));
    v.push(push_vector(
        "event too long",
        "1",
        "2",
        "t",
        &"é".repeat(128),
        b"x",
    ));
    // Server binary frames: push (no ref), reply, broadcast.
    v.push(server_vector(
        "server push",
        msg(
            Some("1"),
            None,
            "camera:porch",
            "set",
            Payload::Binary(br#"{"fps":2}"#.to_vec()),
        ),
    ));
    v.push(server_vector(
        "server push, empty",
        msg(Some(""), None, "", "", Payload::Binary(vec![])),
    ));
    v.push(server_vector(
        "server reply ok",
        msg(
            Some("1"),
            Some("7"),
            "camera:porch",
            "phx_reply",
            Payload::BinaryReply {
                status: "ok".into(),
                response: br#"{"type":"pause"}"#.to_vec(),
            },
        ),
    ));
    v.push(server_vector(
        "server reply error, binary",
        msg(
            Some("12"),
            Some("345"),
            "camera:é",
            "phx_reply",
            Payload::BinaryReply {
                status: "error".into(),
                response: vec![0, 0xFF, 7],
            },
        ),
    ));
    v.push(server_vector(
        "broadcast",
        msg(
            None,
            None,
            "camera:porch",
            "pause",
            Payload::Binary(b"{}".to_vec()),
        ),
    ));
    v.push(server_vector(
        "broadcast, 255-byte topic",
        msg(
            None,
            None,
            &max,
            "resume",
            Payload::Binary(vec![0xFF; 1000]),
        ),
    ));
    // Server text frames.
    v.push(server_vector(
        "text reply",
        msg(
            Some("1"),
            Some("1"),
            "camera:porch",
            "phx_reply",
            Payload::Json(json!({"status": "error", "response": {"reason": "unmatched topic"}})),
        ),
    ));
    v.push(server_vector(
        "text broadcast",
        msg(
            None,
            None,
            "camera:porch",
            "set",
            Payload::Json(json!({"fps": 3, "quality": 60})),
        ),
    ));
    v.extend(dialect_vectors());
    v
}

/// What the dialect itself puts on the wire, against phoenix.js encoding the
/// message it should be.
fn dialect_vectors() -> Vec<Value> {
    let hello = Hello {
        camera: "porch".into(),
        version: "0.1.0".into(),
        width: 640,
        height: 480,
        format: "pattern".into(),
        fps: 15,
        relay: None,
    };
    let topic = "camera:porch";
    let hb = Duration::from_secs(30);
    let mut p = Phoenix::with("ws://127.0.0.1/socket", Some("s3cret"), topic, hb);
    let t0 = Instant::now();
    let mut out = vec![];
    let text = |a: &zerocam::stream::Action| match a {
        zerocam::stream::Action::Send(Message::Text(t)) => t.to_string(),
        other => panic!("{other:?}"),
    };
    let join = text(&p.on_open(t0, &hello)[0]);
    let mut m = msg_json(Some("1"), Some("1"), topic, "phx_join");
    m["payload"] = json!({"token": "s3cret", "camera": "porch", "version": "0.1.0",
        "width": 640, "height": 480, "format": "pattern", "fps": 15});
    out.push(json!({"kind": "encode_text", "name": "dialect join", "msg": m, "zerocam": join}));
    p.on_text(
        r#"["1","1","camera:porch","phx_reply",{"status":"ok","response":{}}]"#,
        t0,
    );
    assert!(p.ready());
    let jpeg = vec![0xFF, 0xD8, 1, 2, 3, 0xFF, 0xD9];
    let Message::Binary(f) = p.frame(jpeg.clone()).0 else {
        panic!()
    };
    out.push(json!({"kind": "encode_push", "name": "dialect frame",
        "msg": msg_json(Some("1"), Some("2"), topic, "frame"),
        "payload_hex": hex(&jpeg), "zerocam_hex": hex(&f)}));
    let heartbeat = text(&p.on_tick(t0 + hb)[0]);
    let mut m = msg_json(None, Some("3"), "phoenix", "heartbeat");
    m["payload"] = json!({});
    out.push(
        json!({"kind": "encode_text", "name": "dialect heartbeat", "msg": m, "zerocam": heartbeat}),
    );
    let mut fields = serde_json::Map::new();
    fields.insert("sent".into(), 1.into());
    fields.insert("fps_sent".into(), json!(0.5));
    let Some(Message::Text(stats)) = p.stats(fields) else {
        panic!()
    };
    let mut m = msg_json(Some("1"), Some("4"), topic, "stats");
    m["payload"] = json!({"sent": 1, "fps_sent": 0.5});
    out.push(json!({"kind": "encode_text", "name": "dialect stats", "msg": m, "zerocam": stats.to_string()}));
    out
}

fn ok(cmd: &mut Command) -> bool {
    cmd.status().map(|s| s.success()).unwrap_or(false)
}

#[test]
fn phoenix_js_serializer_agrees_byte_for_byte() {
    assert!(
        ok(Command::new("node").arg("--version")),
        "`node` not found: this test runs phoenix.js itself; install Debian's nodejs and npm \
         (scripts/test does)"
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/phoenix_js");
    if !dir.join("node_modules/phoenix/package.json").exists() {
        assert!(
            ok(Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)),
            "`npm ci` failed in {}",
            dir.display()
        );
    }
    let file = std::env::temp_dir().join(format!(
        "zerocam-phoenix-vectors-{}.json",
        std::process::id()
    ));
    std::fs::write(&file, serde_json::to_string_pretty(&vectors()).unwrap()).unwrap();
    let out = Command::new("node")
        .arg("check.mjs")
        .arg(&file)
        .current_dir(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "phoenix.js check failed:\n{stdout}{stderr}"
    );
    assert!(stdout.contains("agrees"), "{stdout}");
}
