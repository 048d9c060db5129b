//! MJPEG pass-through on arbitrary camera frames: never panics, and what it
//! forwards is exactly what a relay accepts, with zerocam's COM metadata
//! first and the image's own header facts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerocam::encode::mjpeg;
use zerocam::wire::com::{self, FrameMeta};
use zerocam::wire::jpeg;

fuzz_target!(|data: &[u8]| {
    let meta = FrameMeta {
        seq: 7,
        ts_us: 1_700_000_000_000_000,
        size: None,
    };
    let mut out = Vec::new();
    if let Ok(info) = mjpeg::pass_through(data, &meta, &mut out) {
        let h = jpeg::check_frame(&out, usize::MAX).expect("forwarded frames pass the relay's check");
        assert_eq!((u32::from(h.width), u32::from(h.height)), (info.width, info.height));
        assert!(h.has_dht, "the forwarded frame carries Huffman tables");
        let m = com::parse(&out).expect("COM metadata is readable");
        assert_eq!((m.seq, m.ts_us), (7, meta.ts_us));
        assert_eq!(m.size, Some((info.width, info.height)));
        assert_eq!(&out[2..4], &[0xFF, 0xFE], "COM right after SOI");
    }
});
