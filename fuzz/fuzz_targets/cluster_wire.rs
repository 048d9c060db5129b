//! What a relay node does with another node's messages, on arbitrary
//! input: presence, settings requests and replies decode or are refused,
//! never panic, and what is taken is within its bounds and checked.
//! (The bookkeeping on top, `relay::cluster::members`, is unit-tested.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerocam::wire::cluster::{self as wire, Presence, RpcReply, RpcRequest};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Presence::decode(data) {
        assert!(p.cameras.len() <= wire::MAX_ANNOUNCED);
        assert!(wire::check_node(&p.node).is_ok());
        // Re-encoding is stable; every id makes one subject token.
        assert_eq!(Presence::decode(&p.encode()).as_ref(), Ok(&p));
        for c in &p.cameras {
            let subject = wire::frames_subject("zerocam", &c.id);
            assert_eq!(subject.split('.').count(), 3, "{subject}");
        }
    }
    if let Ok(r) = RpcRequest::decode(data) {
        assert!(r.method == "GET" || r.method == "POST");
    }
    if let Ok(r) = RpcReply::decode(data) {
        assert!((100..=599).contains(&r.status));
    }
});
