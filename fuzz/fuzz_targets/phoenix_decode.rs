//! Any bytes from a server: the V2 decoders and the Phoenix dialect built on
//! them must return a message or a typed error, never panic.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use zerocam::stream::Dialect;
use zerocam::stream::Hello;
use zerocam::stream::phoenix::{Phoenix, serializer};

fuzz_target!(|data: &[u8]| {
    let _ = serializer::decode_server_binary(data);
    let _ = serializer::decode_client_push(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = serializer::decode_text(text);
    }
    // The dialect, joined, fed the same bytes as binary and as text.
    let mut p = Phoenix::with("ws://h/socket", Some("t"), "camera:f", Duration::from_secs(1));
    let now = Instant::now();
    let hello = Hello {
        camera: "f".into(),
        version: "0".into(),
        width: 1,
        height: 1,
        format: "pattern".into(),
        fps: 1,
        relay: None,
    };
    p.on_open(now, &hello);
    p.on_text(
        r#"["1","1","camera:f","phx_reply",{"status":"ok","response":{}}]"#,
        now,
    );
    let _ = p.frame(vec![0xFF, 0xD8]);
    let _ = p.on_binary(data, now);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = p.on_text(text, now);
    }
    let _ = p.on_tick(now + Duration::from_secs(2));
    let _ = p.next_deadline();
});
