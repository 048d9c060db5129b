//! The camera (`zerocam stream --protocol phoenix`, the real binary) against
//! an in-test server that behaves as Phoenix's socket and channel do (V2
//! serializer): join ok/error, unmatched topic, heartbeat replies or silence,
//! phx_error, phx_close, pushes and broadcasts in text and binary.

// tungstenite's handshake callback type is fixed by the library.
#![allow(clippy::result_large_err)]

mod common;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{SEC, Zerocam, decode};
use serde_json::{Value, json};
use tungstenite::Message;
use tungstenite::handshake::server::{Request, Response};
use zerocam::stream::phoenix::serializer::{self, Msg, Payload, ServerFrame};

const TOPIC: &str = "camera:cam1";

/// How the server answers the nth join (1-based); joins past the list are ok.
#[derive(Clone, Debug)]
enum JoinAnswer {
    Ok,
    Error(&'static str),
}

#[derive(Clone, Debug)]
struct Script {
    joins: Vec<JoinAnswer>,
    /// Reply to heartbeats (Phoenix always does; false is a dead server).
    heartbeats: bool,
    /// Reply `{:reply, :ok, socket}` to each frame.
    ack_frames: bool,
    /// With `ack_frames`: only from this many frames on (a channel that
    /// starts replying mid-connection).
    ack_after: usize,
    /// Send an ignorable broadcast every 200 ms, so the link is never silent.
    chatter: bool,
    /// Take frames no faster than this many bytes a second, behind a small
    /// receive buffer: a slow link, as the camera sees it.
    read_rate: Option<f64>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            joins: vec![],
            heartbeats: true,
            ack_frames: false,
            ack_after: 0,
            chatter: false,
            read_rate: None,
        }
    }
}

/// What the server saw (`conn` shows in failure messages via Debug).
#[derive(Debug)]
#[allow(dead_code)]
enum Ev {
    Connected {
        conn: usize,
        uri: String,
        /// What the camera offered in Sec-WebSocket-Protocol.
        subprotocol: Option<String>,
    },
    Join {
        conn: usize,
        join_ref: String,
        ref_: String,
        payload: Value,
        at: Instant,
    },
    Heartbeat {
        conn: usize,
        join_ref: Option<String>,
    },
    Frame {
        conn: usize,
        join_ref: String,
        ref_: String,
        topic: String,
        event: String,
        jpeg: Vec<u8>,
        at: Instant,
    },
    Text {
        conn: usize,
        msg: Msg,
    },
    Closed {
        conn: usize,
    },
}

/// Something for the server to send on the current connection.
enum Out {
    Text(String),
    Binary(Vec<u8>),
    /// `phx_error` / `phx_close` with the current join_ref (as Phoenix sends them).
    ChannelEvent(&'static str),
}

struct PhxServer {
    addr: SocketAddr,
    events: Receiver<Ev>,
    outbox: Arc<Mutex<Vec<Out>>>,
    stop: Arc<AtomicBool>,
}

impl PhxServer {
    fn start(script: Script) -> PhxServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        if script.read_rate.is_some() {
            // Accepted sockets inherit it; the window is set at the SYN.
            socket2::SockRef::from(&listener)
                .set_recv_buffer_size(16 * 1024)
                .unwrap();
        }
        let addr = listener.local_addr().unwrap();
        let (tx, events) = channel();
        let outbox = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let joins = Arc::new(AtomicUsize::new(0));
        let (ob, st) = (outbox.clone(), stop.clone());
        thread::spawn(move || {
            let mut n = 0;
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        n += 1;
                        let (tx, ob, st, sc, j) = (
                            tx.clone(),
                            ob.clone(),
                            st.clone(),
                            script.clone(),
                            joins.clone(),
                        );
                        thread::spawn(move || serve(n, s, sc, j, tx, ob, st));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        PhxServer {
            addr,
            events,
            outbox,
            stop,
        }
    }

    fn url(&self) -> String {
        format!("ws://{}/socket", self.addr)
    }

    fn send(&self, o: Out) {
        self.outbox.lock().unwrap().push(o);
    }

    fn wait_for<T>(&self, timeout: Duration, mut f: impl FnMut(Ev) -> Option<T>) -> Option<T> {
        let until = Instant::now() + timeout;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok(e) => {
                    if let Some(t) = f(e) {
                        return Some(t);
                    }
                }
                Err(_) => return None,
            }
        }
        None
    }

    fn collect(&self, d: Duration) -> Vec<Ev> {
        let until = Instant::now() + d;
        let mut v = vec![];
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok(e) => v.push(e),
                Err(_) => break,
            }
        }
        v
    }
}

impl Drop for PhxServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn reply(join_ref: &str, ref_: &str, status: &str, response: Value) -> Message {
    reply_on(TOPIC, join_ref, ref_, status, response)
}

/// A reply on `topic` (Phoenix replies on the topic the push named).
fn reply_on(topic: &str, join_ref: &str, ref_: &str, status: &str, response: Value) -> Message {
    Message::text(serializer::encode_text(
        Some(join_ref),
        Some(ref_),
        topic,
        "phx_reply",
        &json!({"status": status, "response": response}),
    ))
}

fn serve(
    conn: usize,
    s: std::net::TcpStream,
    script: Script,
    joins: Arc<AtomicUsize>,
    tx: Sender<Ev>,
    outbox: Arc<Mutex<Vec<Out>>>,
    stop: Arc<AtomicBool>,
) {
    s.set_nonblocking(false).unwrap();
    let mut uri = String::new();
    let mut subprotocol = None;
    // As Phoenix 1.8 with `auth_token: true` (or 1.7 with `websocket:
    // [subprotocols: ["phoenix"]]`): "phoenix" is picked when offered.
    let cb = |req: &Request, mut resp: Response| {
        uri = req.uri().to_string();
        let offered = req
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if offered
            .as_deref()
            .is_some_and(|v| v.split(',').any(|p| p.trim() == "phoenix"))
        {
            resp.headers_mut()
                .insert("sec-websocket-protocol", "phoenix".parse().unwrap());
        }
        subprotocol = offered;
        Ok(resp)
    };
    let Ok(mut ws) = tungstenite::accept_hdr(s, cb) else {
        return;
    };
    let _ = tx.send(Ev::Connected {
        conn,
        uri,
        subprotocol,
    });
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut join_ref = String::new();
    let mut last_chatter = Instant::now();
    let mut frames_seen = 0usize;
    while !stop.load(Ordering::Relaxed) {
        for o in outbox.lock().unwrap().drain(..) {
            let m = match o {
                Out::Text(t) => Message::text(t),
                Out::Binary(b) => Message::binary(b),
                Out::ChannelEvent(ev) => Message::text(serializer::encode_text(
                    Some(&join_ref),
                    Some(&join_ref),
                    TOPIC,
                    ev,
                    &json!({}),
                )),
            };
            let _ = ws.send(m);
        }
        if script.chatter && last_chatter.elapsed() > Duration::from_millis(200) {
            last_chatter = Instant::now();
            let _ = ws.send(Message::text(serializer::encode_text(
                None,
                None,
                TOPIC,
                "viewer_count",
                &json!({"n": 1}),
            )));
        }
        match ws.read() {
            Ok(Message::Text(t)) => {
                let m = serializer::decode_text(t.as_str()).expect("camera text is V2 JSON");
                match (m.topic.as_str(), m.event.as_str()) {
                    ("phoenix", "heartbeat") => {
                        let _ = tx.send(Ev::Heartbeat {
                            conn,
                            join_ref: m.join_ref.clone(),
                        });
                        if script.heartbeats {
                            let r = m.ref_.unwrap();
                            let _ = ws.send(Message::text(serializer::encode_text(
                                None,
                                Some(&r),
                                "phoenix",
                                "phx_reply",
                                &json!({"status":"ok","response":{}}),
                            )));
                        }
                    }
                    (_, "phx_join") => {
                        let (j, r) = (m.join_ref.clone().unwrap(), m.ref_.clone().unwrap());
                        let Payload::Json(payload) = m.payload else {
                            panic!()
                        };
                        let _ = tx.send(Ev::Join {
                            conn,
                            join_ref: j.clone(),
                            ref_: r.clone(),
                            payload,
                            at: Instant::now(),
                        });
                        let nth = joins.fetch_add(1, Ordering::SeqCst);
                        let answer = script.joins.get(nth).cloned().unwrap_or(JoinAnswer::Ok);
                        let resp = match (&answer, m.topic == TOPIC) {
                            (_, false) => reply_on(
                                &m.topic,
                                &j,
                                &r,
                                "error",
                                json!({"reason": "unmatched topic"}),
                            ),
                            (JoinAnswer::Ok, true) => {
                                join_ref = j.clone();
                                reply(&j, &r, "ok", json!({}))
                            }
                            (JoinAnswer::Error(why), true) => {
                                reply(&j, &r, "error", json!({"reason": why}))
                            }
                        };
                        let _ = ws.send(resp);
                    }
                    _ => {
                        let _ = tx.send(Ev::Text { conn, msg: m });
                    }
                }
            }
            Ok(Message::Binary(b)) => {
                let m = serializer::decode_client_push(&b).expect("camera binary is a V2 push");
                let Payload::Binary(jpeg) = m.payload else {
                    panic!()
                };
                let (j, r) = (m.join_ref.unwrap(), m.ref_.unwrap());
                frames_seen += 1;
                if let Some(rate) = script.read_rate {
                    thread::sleep(Duration::from_secs_f64(b.len() as f64 / rate));
                }
                if script.ack_frames && frames_seen > script.ack_after {
                    let _ = ws.send(reply(&j, &r, "ok", json!({})));
                }
                let _ = tx.send(Ev::Frame {
                    conn,
                    join_ref: j,
                    ref_: r,
                    topic: m.topic,
                    event: m.event,
                    jpeg,
                    at: Instant::now(),
                });
            }
            Ok(Message::Close(_))
            | Err(tungstenite::Error::ConnectionClosed)
            | Err(tungstenite::Error::AlreadyClosed) => break,
            Ok(_) => {}
            Err(e) if common::read_timed_out(&e) => {}
            Err(_) => break,
        }
    }
    let _ = tx.send(Ev::Closed { conn });
}

fn camera(server: &PhxServer, extra: &[&str]) -> Zerocam {
    let url = server.url();
    let mut args = vec![
        "--relay",
        url.as_str(),
        "--camera",
        "cam1",
        "--protocol",
        "phoenix",
        "--heartbeat",
        "1",
    ];
    if !extra.contains(&"--size") {
        args.extend(["--size", "160x120"]);
    }
    if !extra.contains(&"--fps") {
        args.extend(["--fps", "10"]);
    }
    args.extend_from_slice(extra);
    Zerocam::stream(&args)
}

fn server_binary(m: Msg) -> Out {
    match serializer::encode_server(&m).unwrap() {
        ServerFrame::Binary(b) => Out::Binary(b),
        ServerFrame::Text(t) => Out::Text(t),
    }
}

fn bmsg(join_ref: Option<&str>, event: &str, payload: &[u8]) -> Msg {
    Msg {
        join_ref: join_ref.map(str::to_string),
        ref_: None,
        topic: TOPIC.into(),
        event: event.into(),
        payload: Payload::Binary(payload.to_vec()),
    }
}

fn frames_on(evs: &[Ev]) -> Vec<(String, String)> {
    evs.iter()
        .filter_map(|e| match e {
            Ev::Frame { join_ref, ref_, .. } => Some((join_ref.clone(), ref_.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn with_the_auth_subprotocol_the_token_stays_out_of_the_url() {
    let server = PhxServer::start(Script::default());
    // base64 of this token contains '/', which Phoenix's decoder needs as is.
    let _cam = camera(&server, &["--token", "x??>", "--auth-subprotocol"]);
    let (uri, offered) = server
        .wait_for(10 * SEC, |e| match e {
            Ev::Connected {
                uri, subprotocol, ..
            } => Some((uri, subprotocol)),
            _ => None,
        })
        .expect("camera connects");
    assert_eq!(uri, "/socket/websocket?vsn=2.0.0", "no token in the URL");
    assert_eq!(
        offered.as_deref(),
        Some("phoenix, base64url.bearer.phx.eD8/Pg")
    );
    assert!(
        server
            .wait_for(10 * SEC, |e| matches!(e, Ev::Frame { .. }).then_some(()))
            .is_some(),
        "streams once joined"
    );
}

#[test]
fn joins_then_streams_binary_pushes_with_heartbeats_and_stats() {
    let server = PhxServer::start(Script::default());
    let _cam = camera(&server, &["--token", "s3cret/+", "--stats-interval", "1"]);
    let uri = server
        .wait_for(10 * SEC, |e| match e {
            Ev::Connected { uri, .. } => Some(uri),
            _ => None,
        })
        .expect("camera connects");
    assert_eq!(uri, "/socket/websocket?vsn=2.0.0&token=s3cret%2F%2B");
    let (jr, r, payload, joined_at) = server
        .wait_for(5 * SEC, |e| match e {
            Ev::Frame { .. } => panic!("a frame before the join"),
            Ev::Join {
                join_ref,
                ref_,
                payload,
                at,
                ..
            } => Some((join_ref, ref_, payload, at)),
            _ => None,
        })
        .expect("join");
    assert_eq!((jr.as_str(), r.as_str()), ("1", "1"));
    assert_eq!(payload["token"], "s3cret/+");
    assert_eq!(payload["camera"], "cam1");
    assert_eq!(
        (payload["width"].as_u64(), payload["height"].as_u64()),
        (Some(160), Some(120))
    );
    assert!(
        payload["version"].is_string() && payload["format"].is_string() && payload["fps"] == 10
    );

    let evs = server.collect(3 * SEC);
    let mut refs = std::collections::HashSet::new();
    let mut n = 0;
    for e in &evs {
        match e {
            Ev::Frame {
                join_ref,
                ref_,
                topic,
                event,
                jpeg,
                at,
                ..
            } => {
                assert!(*at >= joined_at);
                assert_eq!(
                    (join_ref.as_str(), topic.as_str(), event.as_str()),
                    ("1", TOPIC, "frame")
                );
                assert!(refs.insert(ref_.clone()), "fresh ref per frame");
                assert_eq!(decode(jpeg), (160, 120));
                n += 1;
            }
            Ev::Heartbeat { join_ref, .. } => assert_eq!(join_ref, &None),
            _ => {}
        }
    }
    assert!(n >= 10, "{n} frames in 3 s at 10 fps");
    let hb = evs
        .iter()
        .filter(|e| matches!(e, Ev::Heartbeat { .. }))
        .count();
    assert!(hb >= 2, "{hb} heartbeats in 3 s at 1 s");
    let stats: Vec<&Msg> = evs
        .iter()
        .filter_map(|e| match e {
            Ev::Text { msg, .. } if msg.event == "stats" => Some(msg),
            _ => None,
        })
        .collect();
    let s = stats.first().expect("stats push");
    assert_eq!(
        (s.join_ref.as_deref(), s.topic.as_str()),
        (Some("1"), TOPIC)
    );
    let Payload::Json(p) = &s.payload else {
        panic!()
    };
    assert!(p["sent"].is_u64(), "{p}");
    assert!(
        !evs.iter()
            .any(|e| matches!(e, Ev::Connected { .. } | Ev::Closed { .. })),
        "one connection"
    );
}

/// `--adapt quality` through the Phoenix dialect as through the raw one: a
/// channel that takes frames slower than the camera makes them at quality
/// 80 (a reader paced to 40 KB/s; the scene's 320×240 frames at 80 are
/// about 10 KB, 15 a second) brings the encoding quality down, frames keep
/// arriving, and the stats pushes the channel gets say so.
#[test]
fn over_a_slow_channel_the_quality_drops_and_frames_keep_coming() {
    let server = PhxServer::start(Script {
        ack_frames: true,
        read_rate: Some(40_000.0),
        ..Script::default()
    });
    let cam = camera(
        &server,
        &[
            "--source",
            "pattern:scene",
            "--size",
            "320x240",
            "--fps",
            "15",
            "--quality",
            "80",
            "--adapt",
            "quality",
            "--stats-interval",
            "1",
        ],
    );
    let quality = |e: &Ev| match e {
        Ev::Text { msg, .. } if msg.event == "stats" => match &msg.payload {
            Payload::Json(p) => p["encoding_quality"].as_u64(),
            _ => None,
        },
        _ => None,
    };
    let low = server.wait_for(60 * SEC, |e| quality(&e).filter(|&q| q <= 60));
    assert!(
        low.is_some(),
        "the quality never came down to 60: {:?}",
        cam.lines_with("stats: ")
    );
    // And it stays down with frames still coming (the precondition: the
    // camera makes more than the channel takes at 80).
    let evs = server.collect(6 * SEC);
    let qs: Vec<u64> = evs.iter().filter_map(quality).collect();
    let frames = evs.iter().filter(|e| matches!(e, Ev::Frame { .. })).count();
    assert!(qs.len() >= 3, "stats pushes in 6 s: {qs:?}");
    assert!(qs.iter().all(|&q| q < 80), "back at 80: {qs:?}");
    assert!(
        frames >= 10,
        "{frames} frames in 6 s: {:?}",
        cam.lines_with("stats: ")
    );
}

#[test]
fn join_errors_and_unmatched_topic_rejoin_on_the_ladder() {
    let server = PhxServer::start(Script {
        joins: vec![
            JoinAnswer::Error("unauthorized"),
            JoinAnswer::Error("unmatched topic"),
        ],
        ..Script::default()
    });
    let cam = camera(&server, &[]);
    let mut joins = vec![];
    let got = server.wait_for(15 * SEC, |e| match e {
        Ev::Frame { .. } => Some(()),
        Ev::Join { at, join_ref, .. } => {
            joins.push((at, join_ref));
            None
        }
        Ev::Connected { conn, .. } if conn > 1 => panic!("join errors must not reconnect"),
        _ => None,
    });
    assert!(got.is_some(), "frames after the third join");
    assert_eq!(joins.len(), 3, "{joins:?}");
    let gap1 = joins[1].0 - joins[0].0;
    let gap2 = joins[2].0 - joins[1].0;
    assert!(
        gap1 >= Duration::from_millis(900) && gap1 < 3 * SEC,
        "1st rejoin after {gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_millis(1900) && gap2 < 4 * SEC,
        "2nd rejoin after {gap2:?}"
    );
    assert_ne!(joins[0].1, joins[1].1, "join_ref changes per join");
    assert!(cam.wait_log("unauthorized", SEC).is_some());
    assert!(cam.wait_log("unmatched topic", SEC).is_some());
}

#[test]
fn wrong_topic_is_refused_as_unmatched_and_retried() {
    let server = PhxServer::start(Script::default());
    let cam = camera(&server, &["--topic", "camera:nope"]);
    let mut joins = 0;
    let mut frames = 0;
    server.wait_for(10 * SEC, |e| {
        match e {
            Ev::Join { .. } => joins += 1,
            Ev::Frame { .. } => frames += 1,
            _ => {}
        }
        (joins >= 2).then_some(())
    });
    assert!(joins >= 2, "rejoined after the refusal: {joins} joins");
    assert_eq!(frames, 0, "no frames without an ok join");
    assert!(cam.wait_log("unmatched topic", SEC).is_some());
}

#[test]
fn phx_error_and_phx_close_rejoin_on_the_same_connection() {
    let server = PhxServer::start(Script::default());
    let _cam = camera(&server, &[]);
    for (i, ev) in ["phx_error", "phx_close"].into_iter().enumerate() {
        server
            .wait_for(10 * SEC, |e| matches!(e, Ev::Frame { .. }).then_some(()))
            .expect("frames");
        server.send(Out::ChannelEvent(ev));
        let (jr, conn) = server
            .wait_for(5 * SEC, |e| match e {
                Ev::Join { join_ref, conn, .. } => Some((join_ref, conn)),
                _ => None,
            })
            .unwrap_or_else(|| panic!("rejoin after {ev}"));
        assert_eq!(conn, 1, "{ev}: same connection");
        let f = server
            .wait_for(5 * SEC, |e| match e {
                Ev::Frame { join_ref, .. } => Some(join_ref),
                _ => None,
            })
            .expect("frames after the rejoin");
        assert_eq!(f, jr, "frames carry the new join_ref");
        assert_ne!(jr, "1", "{ev}: a new join_ref (join {})", i + 2);
    }
}

#[test]
fn a_silent_heartbeat_means_a_dead_link_and_a_reconnect() {
    let server = PhxServer::start(Script {
        heartbeats: false,
        chatter: true,
        ..Script::default()
    });
    let cam = camera(&server, &[]);
    server
        .wait_for(15 * SEC, |e| match e {
            Ev::Join { conn: 2, .. } => Some(()),
            _ => None,
        })
        .expect("reconnects and rejoins");
    assert!(cam.wait_log("no reply to heartbeat", SEC).is_some());
}

#[test]
fn commands_in_every_server_shape_and_junk_is_survived() {
    let server = PhxServer::start(Script::default());
    let cam = camera(&server, &[]);
    server
        .wait_for(10 * SEC, |e| matches!(e, Ev::Frame { .. }).then_some(()))
        .expect("frames");
    // Junk first: malformed text and binary, unknown kinds, other topics.
    for o in [
        Out::Text("not json".into()),
        Out::Text(r#"[null,null,"camera:cam1","set",{"fps":0}]"#.into()),
        Out::Binary(vec![9, 1, 2]),
        Out::Binary(vec![2, 200, 1]),
        Out::Binary(vec![0, 1, 1, 1, b'1', 0xFF, b'x']),
        Out::Text(r#"[null,null,"camera:other","pause",{}]"#.into()),
    ] {
        server.send(o);
    }
    // pause as a text broadcast.
    server.send(Out::Text(serializer::encode_text(
        None,
        None,
        TOPIC,
        "pause",
        &json!({}),
    )));
    cam.wait_log("relay says pause", 5 * SEC).expect("paused");
    let quiet = server.collect(Duration::from_millis(1500));
    // At most the one frame already on the wire when the pause landed.
    assert!(
        frames_on(&quiet).len() <= 1,
        "paused: {:?}",
        frames_on(&quiet)
    );
    // resume as a binary broadcast (kind 2).
    server.send(server_binary(bmsg(None, "resume", b"{}")));
    server
        .wait_for(5 * SEC, |e| matches!(e, Ev::Frame { .. }).then_some(()))
        .expect("resumed");
    // set as a binary push (kind 0, no ref).
    server.send(server_binary(bmsg(Some("1"), "set", br#"{"fps":3}"#)));
    cam.wait_log("relay set fps 3", 5 * SEC)
        .expect("set by kind-0 push");
    // set as a JSON push.
    server.send(Out::Text(serializer::encode_text(
        Some("1"),
        None,
        TOPIC,
        "set",
        &json!({"quality": 40}),
    )));
    cam.wait_log("quality 40", 5 * SEC)
        .expect("set by text push");
    // pause as a binary reply (kind 1) carrying a raw-shaped command.
    server.send(server_binary(Msg {
        join_ref: Some("1".into()),
        ref_: Some("999".into()),
        topic: TOPIC.into(),
        event: "phx_reply".into(),
        payload: Payload::BinaryReply {
            status: "ok".into(),
            response: br#"{"type":"set","fps":4}"#.to_vec(),
        },
    }));
    cam.wait_log("relay set fps 4", 5 * SEC)
        .expect("set by kind-1 reply");
    assert!(
        cam.wait_log("malformed Phoenix", SEC).is_some(),
        "junk is logged"
    );
    // Still the first connection, still streaming.
    let evs = server.collect(2 * SEC);
    assert!(!frames_on(&evs).is_empty());
    assert!(
        !evs.iter()
            .any(|e| matches!(e, Ev::Connected { .. } | Ev::Closed { .. }))
    );
}

#[test]
fn replies_to_frames_are_acks_for_the_window() {
    let server = PhxServer::start(Script {
        ack_frames: true,
        ..Script::default()
    });
    let cam = camera(&server, &["--fps", "15"]);
    cam.wait_log("relay acknowledges frames", 10 * SEC)
        .expect("acks seen");
    let evs = server.collect(2 * SEC);
    assert!(frames_on(&evs).len() >= 10, "streams under the window");
    assert!(
        !evs.iter()
            .any(|e| matches!(e, Ev::Connected { conn, .. } if *conn > 1)),
        "no stall, no reconnect"
    );
}

#[test]
fn a_channel_that_starts_replying_mid_connection_is_not_a_stall() {
    // The field bug: frames unanswered for a while, then replies began, and
    // the camera waited for replies to the old frames: "no ack", reconnect.
    let server = PhxServer::start(Script {
        ack_frames: true,
        ack_after: 40,
        ..Script::default()
    });
    let cfg = common::temp_path("phx-ackafter.toml");
    std::fs::write(&cfg, "[relay]\nack_timeout = 1\n").unwrap();
    let cam = camera(&server, &["--fps", "20", "--config", cfg.to_str().unwrap()]);
    let evs = server.collect(6 * SEC);
    assert!(
        frames_on(&evs).len() >= 60,
        "frames: {}",
        frames_on(&evs).len()
    );
    assert!(
        !evs.iter()
            .any(|e| matches!(e, Ev::Connected { conn, .. } if *conn > 1)),
        "no stall, no reconnect"
    );
    assert!(cam.lines_with("no ack for").is_empty());
    assert!(cam.wait_log("relay acknowledges frames", SEC).is_some());
    let _ = std::fs::remove_file(cfg);
}
