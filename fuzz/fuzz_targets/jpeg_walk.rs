//! The shared JPEG marker walker on arbitrary bytes: never panics, and its
//! verdicts agree with each other (what `check_frame` accepts, `header`
//! accepts with the same facts; every segment lies inside the input).
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerocam::wire::{com, jpeg};

fuzz_target!(|data: &[u8]| {
    let mut end = 2;
    for seg in jpeg::segments(data) {
        let Ok(s) = seg else { break };
        assert!(s.at >= end && s.end <= data.len() && s.at < s.end);
        assert_eq!(data[s.at], 0xFF);
        assert_eq!(data[s.at + 1], s.marker);
        end = s.end;
    }
    if let Ok(h) = jpeg::check_frame(data, data.len()) {
        assert_eq!(jpeg::header(data), Ok(h));
        assert!(h.sos_at < h.scan_at && h.scan_at + 2 <= data.len());
        assert!(data.ends_with(&[0xFF, 0xD9]));
        assert_eq!(
            jpeg::check_frame(data, data.len() - 1),
            Err(jpeg::JpegError::TooLarge)
        );
    }
    let _ = com::parse(data);
});
