//! What the relay does with a camera's messages, on arbitrary input: the
//! frame check and COM read for binary messages, the bounded parse for
//! text. Never panics; what is kept stays within its bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerocam::wire::message::{self, CameraText};
use zerocam::wire::{MAX_CONTROL_MESSAGE, com, jpeg};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = jpeg::check_frame(data, 1 << 20) {
        assert!(h.scan_at <= data.len());
        let _ = com::parse(data);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        match message::parse_camera_text(text) {
            Ok(CameraText::Hello(h)) => {
                for v in h.values() {
                    if let Some(s) = v.as_str() {
                        assert!(s.len() <= message::MAX_HELLO_STRING);
                    }
                }
            }
            Ok(CameraText::Stats(s)) => {
                assert!(s.len() <= message::MAX_STATS_FIELDS);
                assert!(s.values().all(|v| v.is_number() || v.is_boolean()));
            }
            Ok(_) => {}
            Err(message::TextError::TooLarge(n)) => assert!(n > MAX_CONTROL_MESSAGE),
            Err(_) => {}
        }
        let _ = message::parse_raw_text(text);
    }
});
