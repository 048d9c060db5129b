//! `GET /ingest/{camera_id}`: the camera side, docs/protocol.md's raw dialect
//! (the relay is the server). Every binary message is validated as one JPEG,
//! acked with `0x0A`, and published; text messages carry hello, heartbeat and
//! stats. The relay pauses a camera nobody watches and resumes it when a
//! viewer arrives. A camera silent for `server.camera_timeout` is closed; a
//! frame over `server.max_frame_bytes` closes the link with 1009.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::Bytes;
use tokio::time::{Instant, sleep_until, timeout};

use super::App;
use super::hub::{Attached, Camera, ToCamera};
use super::rejects::RejectLog;
use crate::wire::jpeg::{self, JpegError};
use crate::wire::message::{CameraText, parse_camera_text};
use crate::wire::{ACK, com};

/// How long a write to a camera may take before the link counts as dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Close codes sent to cameras.
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_INVALID_DATA: u16 = 1007;
const CLOSE_TOO_BIG: u16 = 1009;
/// Application code: another connection took this camera id.
const CLOSE_REPLACED: u16 = 4000;

enum Step {
    Continue,
    Close(u16, String),
    Gone,
}

/// Is this error from the WebSocket layer a message over its size limit?
/// (axum wraps its own tungstenite's `Error::Capacity`, whose text is
/// "Space limit exceeded: Message too long: N > M"; the test
/// `an_oversized_frame_closes_with_1009` holds this to the real text.)
fn too_big(e: &axum::Error) -> bool {
    e.to_string().contains("Space limit exceeded")
}

/// Serves one camera connection until it ends, is replaced, or the relay stops.
pub async fn run(app: Arc<App>, mut socket: WebSocket, mut attached: Attached) {
    let camera = attached.camera.clone();
    let id = camera.id.clone();
    log::info!("camera {id} connected");
    let s = &app.config;
    let mut viewers = camera.viewers_watch();
    let mut shutdown = app.shutdown.clone();
    // Paused by the relay for lack of viewers (an explicit pause from the
    // settings API is `camera.user_paused()` and holds until lifted).
    let mut paused = false;
    let mut idle_since = (camera.viewer_count() == 0).then(Instant::now);
    let mut commands = camera.open_outbox(attached.generation);
    // Pause is per connection on the camera: an explicit pause is said again.
    if camera.user_paused() {
        if let Step::Close(..) | Step::Gone =
            send(&mut socket, Message::Text(ToCamera::Pause.text().into())).await
        {
            return;
        }
    }
    let mut rejects_in_row = 0u32;
    let mut log = RejectLog::default();
    // A deadline, not a timeout per wait: viewers coming and going must
    // not postpone it.
    let mut silent_until = Instant::now() + s.camera_timeout;

    let end = loop {
        let pause_at = match (s.pause_after, idle_since, paused || camera.user_paused()) {
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
            why = &mut attached.kicked => {
                let why = why.unwrap_or_else(|_| "replaced".to_string());
                Step::Close(CLOSE_REPLACED, why)
            }
            _ = shutdown.changed() => Step::Close(CLOSE_GOING_AWAY, "relay shutting down".into()),
            _ = viewers.changed() => {
                let n = *viewers.borrow_and_update();
                if n > 0 {
                    idle_since = None;
                    if paused {
                        paused = false;
                        camera.set_paused(false);
                        if camera.user_paused() {
                            // The user's pause holds; the page shows it.
                            Step::Continue
                        } else {
                            log::info!("camera {id}: viewer arrived, resuming");
                            send(&mut socket, Message::Text(ToCamera::Resume.text().into())).await
                        }
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
                send(&mut socket, Message::Text(ToCamera::Pause.text().into())).await
            }
            Some(cmd) = commands.recv() => {
                if cmd == ToCamera::Resume {
                    // An explicit resume lifts the relay's own pause too; if
                    // nobody watches, it pauses again after pause_after.
                    paused = false;
                    camera.set_paused(false);
                    if camera.viewer_count() == 0 {
                        idle_since = Some(Instant::now());
                    }
                }
                send(&mut socket, Message::Text(cmd.text().into())).await
            }
            _ = sleep_until(silent_until) => Step::Close(
                CLOSE_GOING_AWAY,
                format!("nothing received for {} s", s.camera_timeout.as_secs()),
            ),
            msg = socket.recv() => {
                silent_until = Instant::now() + s.camera_timeout;
                match msg {
                    None => Step::Gone,
                    Some(Err(e)) if too_big(&e) => {
                        camera.reject(JpegError::TooLarge);
                        Step::Close(
                            CLOSE_TOO_BIG,
                            format!("frame over server.max_frame_bytes ({} bytes)", s.max_frame_bytes),
                        )
                    }
                    Some(Err(e)) => {
                        log::warn!("camera {id}: {}", short_ws_error(&e.to_string()));
                        Step::Gone
                    }
                    Some(Ok(Message::Binary(data))) => {
                        match on_binary(&app, &camera, data, &mut rejects_in_row, &mut log) {
                            Step::Continue => {
                                send(&mut socket, Message::Binary(Bytes::from_static(&[ACK]))).await
                            }
                            other => other,
                        }
                    }
                    Some(Ok(Message::Text(t))) => {
                        on_text(&camera, t.as_str(), &mut log);
                        Step::Continue
                    }
                    Some(Ok(Message::Close(_))) => Step::Gone,
                    Some(Ok(_)) => Step::Continue, // ping/pong: tungstenite answers pings
                }
            }
        };
        match step {
            Step::Continue => {}
            other => break other,
        }
    };
    for (reason, n) in log.unlogged() {
        log::warn!("camera {id}: {n} more rejected ({reason})");
    }
    if let Step::Close(code, reason) = end {
        log::info!("camera {id}: closing, {code} {reason}");
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = timeout(WRITE_TIMEOUT, socket.send(Message::Close(Some(frame)))).await;
    } else {
        log::info!("camera {id} disconnected");
    }
    // Dropping `attached` detaches the camera (unless a newer connection
    // took over).
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
    camera: &Camera,
    data: Bytes,
    rejects_in_row: &mut u32,
    log: &mut RejectLog,
) -> Step {
    let id = &camera.id;
    match jpeg::check_frame(&data, app.config.max_frame_bytes) {
        Ok(_) => {
            *rejects_in_row = 0;
            let meta = com::parse(&data);
            let stored = camera.publish(data, meta.map(|m| m.seq), meta.map(|m| m.ts_us));
            if stored.gap > 0 {
                log::debug!("camera {id}: {} frames missing from seq", stored.gap);
            }
            Step::Continue
        }
        Err(JpegError::TooLarge) => {
            camera.reject(JpegError::TooLarge);
            Step::Close(
                CLOSE_TOO_BIG,
                format!(
                    "frame of {} bytes is over server.max_frame_bytes ({})",
                    data.len(),
                    app.config.max_frame_bytes
                ),
            )
        }
        Err(why) => {
            camera.reject(why);
            *rejects_in_row += 1;
            if let Some(n) = log.note(why.as_str(), std::time::Instant::now()) {
                log::warn!("camera {id}: {n} frame(s) rejected: {why}");
            }
            let limit = app.config.max_consecutive_rejects;
            if *rejects_in_row >= limit {
                app.hub.garbage_closed.fetch_add(1, Ordering::Relaxed);
                Step::Close(
                    CLOSE_INVALID_DATA,
                    format!("{limit} invalid frames in a row (last: {})", why.as_str()),
                )
            } else {
                Step::Continue
            }
        }
    }
}

fn on_text(camera: &Camera, text: &str, log: &mut RejectLog) {
    let id = &camera.id;
    match parse_camera_text(text) {
        Ok(CameraText::Hello(h)) => {
            if let Some(named) = h.get("camera").and_then(|v| v.as_str()) {
                if named != id {
                    log::warn!("camera {id}: hello names itself `{named}`; the URL's id wins");
                }
            }
            let field = |k: &str| h.get(k).map(|v| v.to_string()).unwrap_or_default();
            // The camera's own strings, clipped: a line fits a console.
            log::info!(
                "camera {id}: hello {}x{} {} fps {} version {}",
                field("width"),
                field("height"),
                field("fps"),
                crate::wire::message::clip_str(&field("format"), 12),
                crate::wire::message::clip_str(&field("version"), 16),
            );
            camera.set_hello(h);
        }
        Ok(CameraText::Heartbeat) => {}
        Ok(CameraText::Stats(s)) => camera.set_stats(s),
        Ok(CameraText::Settings(m)) => camera.set_settings(m),
        Ok(CameraText::Other(t)) => {
            camera.counters.bad_text.fetch_add(1, Ordering::Relaxed);
            log::debug!("camera {id}: ignoring message type `{t}`");
        }
        Err(e) => {
            camera.counters.bad_text.fetch_add(1, Ordering::Relaxed);
            if let Some(n) = log.note(e.as_str(), std::time::Instant::now()) {
                log::warn!("camera {id}: {n} text(s) not understood: {e}");
            }
        }
    }
}

/// A WebSocket error in a few words: the usual one (a camera that lost
/// power or its network) in plain words, the rest without the prefix.
fn short_ws_error(e: &str) -> String {
    let e = e.strip_prefix("WebSocket protocol error: ").unwrap_or(e);
    if e == "Connection reset without closing handshake" {
        return "gone without a close (reset)".into();
    }
    e.to_string()
}
