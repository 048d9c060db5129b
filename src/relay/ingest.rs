//! `GET /ingest/{camera_id}`: the camera side, PROTOCOL.md's raw dialect
//! (the relay is the server). Every binary message is validated as one JPEG,
//! acked with `0x0A`, and published; text messages carry hello, heartbeat and
//! stats. The relay pauses a camera nobody watches and resumes it when a
//! viewer arrives.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::Bytes;
use serde_json::Value;
use tokio::time::{Instant, sleep_until, timeout};

use super::App;
use super::hub::Attached;
use super::jpeg;
use crate::encode::com;

/// How long a write to a camera may take before the link counts as dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The ack byte of PROTOCOL.md.
const ACK: &[u8] = &[0x0A];

/// Close codes sent to cameras.
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_INVALID_DATA: u16 = 1007;
/// Application code: another connection took this camera id.
const CLOSE_REPLACED: u16 = 4000;

enum Step {
    Continue,
    Close(u16, String),
    Gone,
}

/// Serves one camera connection until it ends, is replaced, or the relay stops.
pub async fn run(app: Arc<App>, mut socket: WebSocket, id: String) {
    let Attached {
        camera,
        generation,
        mut kicked,
    } = app.hub.attach(&id);
    log::info!("camera {id} connected");
    let s = &app.settings;
    let mut viewers = camera.viewers_watch();
    let mut shutdown = app.shutdown.clone();
    let mut paused = false;
    let mut idle_since = (camera.viewer_count() == 0).then(Instant::now);
    let mut rejects_in_row = 0u32;

    let end = loop {
        let pause_at = match (s.pause_after, idle_since, paused) {
            (Some(grace), Some(t), false) => Some(t + grace),
            _ => None,
        };
        let pause_timer = async move {
            match pause_at {
                Some(at) => sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let step = tokio::select! {
            why = &mut kicked => {
                let why = why.unwrap_or("replaced");
                Step::Close(CLOSE_REPLACED, why.to_string())
            }
            _ = shutdown.changed() => Step::Close(CLOSE_GOING_AWAY, "relay shutting down".into()),
            _ = viewers.changed() => {
                let n = *viewers.borrow_and_update();
                if n > 0 {
                    idle_since = None;
                    if paused {
                        paused = false;
                        camera.set_paused(false);
                        log::info!("camera {id}: viewer arrived, resuming");
                        send(&mut socket, Message::Text(r#"{"type":"resume"}"#.into())).await
                    } else {
                        Step::Continue
                    }
                } else {
                    idle_since.get_or_insert_with(Instant::now);
                    Step::Continue
                }
            }
            _ = pause_timer => {
                paused = true;
                camera.set_paused(true);
                log::info!("camera {id}: no viewers, pausing");
                send(&mut socket, Message::Text(r#"{"type":"pause"}"#.into())).await
            }
            msg = timeout(s.camera_timeout, socket.recv()) => match msg {
                Err(_) => Step::Close(
                    CLOSE_GOING_AWAY,
                    format!("nothing received for {} s", s.camera_timeout.as_secs()),
                ),
                Ok(None) => Step::Gone,
                Ok(Some(Err(e))) => {
                    log::warn!("camera {id}: {e}");
                    Step::Gone
                }
                Ok(Some(Ok(Message::Binary(data)))) => {
                    let step = on_binary(&app, &camera, &id, data, &mut rejects_in_row);
                    match step {
                        Step::Continue => send(&mut socket, Message::Binary(Bytes::from_static(ACK))).await,
                        other => other,
                    }
                }
                Ok(Some(Ok(Message::Text(t)))) => {
                    on_text(&camera, &id, t.as_str());
                    Step::Continue
                }
                Ok(Some(Ok(Message::Close(_)))) => Step::Gone,
                Ok(Some(Ok(_))) => Step::Continue, // ping/pong: tungstenite answers pings
            },
        };
        match step {
            Step::Continue => {}
            other => break other,
        }
    };
    if let Step::Close(code, reason) = end {
        log::info!("camera {id}: closing ({reason})");
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = timeout(WRITE_TIMEOUT, socket.send(Message::Close(Some(frame)))).await;
    } else {
        log::info!("camera {id} disconnected");
    }
    camera.detach(generation);
}

async fn send(socket: &mut WebSocket, m: Message) -> Step {
    match timeout(WRITE_TIMEOUT, socket.send(m)).await {
        Ok(Ok(())) => Step::Continue,
        Ok(Err(_)) => Step::Gone,
        Err(_) => Step::Close(CLOSE_GOING_AWAY, "write timed out".into()),
    }
}

fn on_binary(
    app: &App,
    camera: &super::hub::Camera,
    id: &str,
    data: Bytes,
    rejects_in_row: &mut u32,
) -> Step {
    match jpeg::validate(&data, app.settings.max_frame_bytes) {
        Ok(()) => {
            *rejects_in_row = 0;
            let meta = com::parse(&data);
            let stored = camera.publish(data, meta.map(|m| m.seq), meta.map(|m| m.ts_us));
            if stored.gap > 0 {
                log::debug!("camera {id}: {} frames missing from seq", stored.gap);
            }
            Step::Continue
        }
        Err(why) => {
            camera.reject(why);
            *rejects_in_row += 1;
            log::warn!(
                "camera {id}: rejected a {}-byte message ({why})",
                data.len()
            );
            let limit = app.settings.max_consecutive_rejects;
            if *rejects_in_row >= limit {
                app.hub.garbage_closed.fetch_add(1, Ordering::Relaxed);
                Step::Close(
                    CLOSE_INVALID_DATA,
                    format!("{limit} invalid frames in a row (last: {why})"),
                )
            } else {
                Step::Continue
            }
        }
    }
}

fn on_text(camera: &super::hub::Camera, id: &str, text: &str) {
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            camera.counters.bad_text.fetch_add(1, Ordering::Relaxed);
            log::warn!("camera {id}: text message is not JSON ({e})");
            return;
        }
    };
    match v.get("type").and_then(Value::as_str) {
        Some("hello") => {
            if let Some(named) = v.get("camera").and_then(Value::as_str) {
                if named != id {
                    log::warn!("camera {id}: hello names itself `{named}`; the URL's id wins");
                }
            }
            log::info!(
                "camera {id}: hello {}x{} {} fps {} version {}",
                v.get("width").unwrap_or(&Value::Null),
                v.get("height").unwrap_or(&Value::Null),
                v.get("fps").unwrap_or(&Value::Null),
                v.get("format").unwrap_or(&Value::Null),
                v.get("version").unwrap_or(&Value::Null),
            );
            camera.set_hello(v);
        }
        Some("heartbeat") => {}
        Some("stats") => camera.set_stats(v),
        other => {
            camera.counters.bad_text.fetch_add(1, Ordering::Relaxed);
            log::debug!("camera {id}: ignoring message type {other:?}");
        }
    }
}
