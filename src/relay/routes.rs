//! The HTTP routes: camera ingest, viewer streams, snapshots, JSON, metrics.
//!
//! Every viewer route gets the newest frame, never a queue: a WebSocket or
//! MJPEG viewer has at most one frame in flight, and a frame counts as sent
//! once the connection has written it ([`ConnInfo::written_at_least`]), not
//! when it is handed to hyper. A viewer that takes no bytes for
//! `server.viewer_write_timeout` is closed by its connection ([`super::conn`])
//! and counted.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::time::timeout;

use super::App;
use super::conn::ConnHandle;
use super::hub::{Camera, Frame, Full, ViewerGuard};
use super::reply::{denied, plain};
use super::{auth, camera_settings, ingest, metrics};
use crate::config::check_id;
use crate::wire::MAX_CONTROL_MESSAGE;

/// The viewer page (static; it reads everything else from the JSON routes).
const PAGE: &str = include_str!("page.html");
/// The MJPEG part boundary.
const BOUNDARY: &str = "zerocamframe";
/// What a viewer may send (it has nothing to say but close and pong).
const VIEWER_READ_BUFFER: usize = 4096;

/// Builds the router.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/cameras", get(cameras))
        .route("/cameras/{id}/ws", get(viewer_ws))
        .route("/cameras/{id}/mjpeg", get(mjpeg))
        .route("/cameras/{id}/snapshot.jpg", get(snapshot))
        .route(
            "/cameras/{id}/settings",
            get(camera_settings::get)
                .post(camera_settings::post)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_CONTROL_MESSAGE)),
        )
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/ingest/{id}", get(ingest_ws))
        .with_state(app)
}

/// Viewer auth, then the camera (404 when unknown), registered as watched
/// for as long as the guard lives.
fn viewer_camera(
    app: &App,
    uri: &Uri,
    headers: &HeaderMap,
    id: &str,
) -> Result<(Arc<Camera>, ViewerGuard), Box<Response>> {
    app.config
        .viewer_auth
        .check(uri, headers)
        .map_err(|d| Box::new(denied(app, d)))?;
    app.hub.watch(id).ok_or_else(|| {
        Box::new(plain(
            StatusCode::NOT_FOUND,
            format!("camera `{id}` is unknown (it is not connected to this relay)"),
        ))
    })
}

async fn page(State(app): State<Arc<App>>, uri: Uri, headers: HeaderMap) -> Response {
    if let Err(d) = app.config.viewer_auth.check(&uri, &headers) {
        return denied(&app, d);
    }
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
        .into_response()
}

async fn cameras(State(app): State<Arc<App>>, uri: Uri, headers: HeaderMap) -> Response {
    if let Err(d) = app.config.viewer_auth.check(&uri, &headers) {
        return denied(&app, d);
    }
    let list: Vec<_> = app
        .hub
        .cameras()
        .iter()
        .map(|c| app.hub.describe(c))
        .collect();
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(serde_json::Value::Array(list)),
    )
        .into_response()
}

async fn metrics_text(State(app): State<Arc<App>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics::render(&app.hub, app.cluster.as_deref()),
    )
        .into_response()
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 IMF-fixdate) for Unix seconds.
pub fn http_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `X-Timestamp` (capture time, seconds with microseconds, as µStreamer
/// sends it) and `Last-Modified` for a frame.
fn frame_times(f: &Frame) -> (String, String) {
    let us = f.taken_us();
    (
        format!("{}.{:06}", us / 1_000_000, us % 1_000_000),
        http_date(us / 1_000_000),
    )
}

async fn snapshot(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    // Registered as a viewer while it waits: a paused camera resumes.
    let (camera, _guard) = match viewer_camera(&app, &uri, &headers, &id) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if !camera.online() {
        return plain(
            StatusCode::NOT_FOUND,
            format!("camera `{id}` is offline (not connected to this relay now)"),
        );
    }
    // A user's pause holds for snapshots too: say so at once.
    if camera.paused_by() == Some("user") {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "camera `{id}` is paused by a user (POST /cameras/{id}/settings \
                 {{\"paused\":false}} resumes it)"
            ),
        );
    }
    let mut rx = camera.subscribe();
    let latest = rx.borrow_and_update().clone();
    // A streaming camera's latest frame is current. One paused for lack of
    // viewers resumes (this request is a viewer) and its latest frame is
    // from before the pause: wait for one captured after it.
    let frame = match latest {
        Some(f) if !camera.paused() && !camera.is_stale(&f) => Some(f),
        _ => {
            let fresh = timeout(
                app.config.snapshot_wait,
                rx.wait_for(|f| f.as_ref().is_some_and(|f| !camera.is_stale(f))),
            )
            .await;
            match fresh {
                Ok(Ok(f)) => f.clone(),
                _ => None,
            }
        }
    };
    let Some(frame) = frame else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "camera `{id}` sent no fresh frame within {:.0} s (server.snapshot_wait): \
                 it is starting or stalled",
                app.config.snapshot_wait.as_secs_f64()
            ),
        );
    };
    camera.sent(&app.hub, &frame, 0);
    let (ts, modified) = frame_times(&frame);
    (
        [
            (header::CONTENT_TYPE, "image/jpeg".to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (header::LAST_MODIFIED, modified),
            (header::HeaderName::from_static("x-timestamp"), ts),
        ],
        frame.jpeg,
    )
        .into_response()
}

async fn viewer_ws(
    State(app): State<Arc<App>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let (camera, guard) = match viewer_camera(&app, &uri, &headers, &id) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    match ws {
        // Viewers send nearly nothing: a small read buffer (tungstenite
        // zero-fills it on every read) and a small message limit.
        Ok(ws) => ws
            .read_buffer_size(VIEWER_READ_BUFFER)
            .max_message_size(VIEWER_READ_BUFFER)
            .max_frame_size(VIEWER_READ_BUFFER)
            .on_upgrade(move |socket| async move {
                let _live = app.live_socket();
                viewer_loop(app, camera, guard, conn, socket).await
            }),
        Err(e) => e.into_response(),
    }
}

async fn viewer_loop(
    app: Arc<App>,
    camera: Arc<Camera>,
    _guard: ViewerGuard,
    conn: ConnHandle,
    mut socket: WebSocket,
) {
    let mut rx = camera.subscribe();
    rx.mark_changed();
    let mut shutdown = app.shutdown.clone();
    let mut last = 0u64;
    loop {
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    break;
                }
                let Some(frame) = rx.borrow_and_update().clone() else { continue };
                if frame.index == last || (last == 0 && camera.is_stale(&frame)) {
                    continue;
                }
                // The send completes once the connection has written the
                // frame (or fails when it stalls past the write timeout).
                if socket.send(Message::Binary(frame.jpeg.clone())).await.is_err() {
                    if conn.0.timed_out() {
                        camera.viewer_stalled();
                        log::info!("viewer of {}: took nothing for {:.1} s, closed", camera.id, app.config.viewer_write_timeout.as_secs_f64());
                    }
                    break;
                }
                camera.sent(&app.hub, &frame, last);
                last = frame.index;
            }
            m = socket.recv() => match m {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            },
            _ = shutdown.changed() => {
                let _ = timeout(Duration::from_secs(1), socket.send(Message::Close(None))).await;
                break;
            }
        }
    }
}

/// State of one MJPEG response stream.
struct MjpegState {
    app: Arc<App>,
    camera: Arc<Camera>,
    rx: watch::Receiver<Option<Frame>>,
    shutdown: watch::Receiver<bool>,
    conn: ConnHandle,
    /// Bytes the connection had written when the stream started.
    base: Option<u64>,
    /// Body bytes handed to hyper so far.
    produced: u64,
    /// The part handed over last, counted once it is written.
    in_flight: Option<Frame>,
    last: u64,
    _guard: ViewerGuard,
}

impl Drop for MjpegState {
    fn drop(&mut self) {
        if self.conn.0.timed_out() {
            self.camera.viewer_stalled();
            log::info!(
                "MJPEG viewer of {}: took nothing for {:.1} s, closed",
                self.camera.id,
                self.app.config.viewer_write_timeout.as_secs_f64()
            );
        }
    }
}

async fn next_part(mut st: MjpegState) -> Option<([Bytes; 3], MjpegState)> {
    let base = *st.base.get_or_insert_with(|| st.conn.0.written());
    // The previous part counts as sent only once the socket has taken it:
    // until then no newer frame is handed over, so a slow viewer holds one
    // part, not a queue of them.
    if let Some(prev) = st.in_flight.take() {
        let written = st.conn.0.written_at_least(base + st.produced);
        tokio::select! {
            _ = written => {}
            _ = st.shutdown.changed() => return None,
        }
        st.camera.sent(&st.app.hub, &prev, st.last);
        st.last = prev.index;
    }
    loop {
        tokio::select! {
            changed = st.rx.changed() => changed.ok()?,
            _ = st.shutdown.changed() => return None,
        }
        let Some(frame) = st.rx.borrow_and_update().clone() else {
            continue;
        };
        // A first frame from before a pause waits for a fresh one.
        if frame.index == st.last || (st.last == 0 && st.camera.is_stale(&frame)) {
            continue;
        }
        let (ts, modified) = frame_times(&frame);
        let head = format!(
            "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: {ts}\r\nLast-Modified: {modified}\r\n\r\n",
            frame.jpeg.len()
        );
        st.produced += (head.len() + frame.jpeg.len() + 2) as u64;
        let part = [
            Bytes::from(head),
            frame.jpeg.clone(),
            Bytes::from_static(b"\r\n"),
        ];
        st.in_flight = Some(frame);
        return Some((part, st));
    }
}

async fn mjpeg(
    State(app): State<Arc<App>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (camera, guard) = match viewer_camera(&app, &uri, &headers, &id) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let mut rx = camera.subscribe();
    rx.mark_changed();
    let st = MjpegState {
        shutdown: app.shutdown.clone(),
        _guard: guard,
        app,
        camera,
        rx,
        conn,
        base: None,
        produced: 0,
        in_flight: None,
        last: 0,
    };
    // Each part is three chunks (header, the shared JPEG, CRLF): no copy of
    // the image per viewer.
    let parts = futures_util::stream::unfold(st, next_part)
        .flat_map(|p| futures_util::stream::iter(p.map(Ok::<Bytes, Infallible>)));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("multipart/x-mixed-replace; boundary=zerocamframe"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache, no-store, must-revalidate"),
            ),
            (header::PRAGMA, HeaderValue::from_static("no-cache")),
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        Body::from_stream(parts),
    )
        .into_response()
}

async fn ingest_ws(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    if let Err(e) = check_id("camera", &id) {
        return plain(StatusCode::BAD_REQUEST, e.to_string());
    }
    // Auth before the upgrade: a refused camera gets a plain 401/403.
    let token = auth::token_from(&uri, &headers);
    if let Err(d) =
        app.config
            .camera_auth
            .check(&id, token.as_deref(), std::time::SystemTime::now())
    {
        app.hub.auth_failures.fetch_add(1, Ordering::Relaxed);
        log::warn!("camera {id}: refused, {}: {}", d.status.as_u16(), d.message);
        return plain(d.status, d.message);
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => return e.into_response(),
    };
    let attached = match app.hub.attach(&id) {
        Ok(a) => a,
        Err(Full::MaxCameras(n)) => {
            log::warn!(
                "camera {id}: refused, 503: {n} cameras known (server.max_cameras), all in use"
            );
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "this relay already has {n} cameras (server.max_cameras), all online or watched"
                ),
            );
        }
    };
    // One frame may be up to max_frame_bytes; anything bigger is refused
    // by the WebSocket layer and closed with 1009.
    let limit = app.config.max_frame_bytes.max(MAX_CONTROL_MESSAGE);
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| async move {
            let _live = app.live_socket();
            ingest::run(app, socket, attached).await
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(1_798_761_599), "Thu, 31 Dec 2026 23:59:59 GMT");
    }
}
