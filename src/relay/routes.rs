//! The HTTP routes: camera ingest, viewer streams, snapshots, JSON, metrics.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::time::timeout;

use super::App;
use super::hub::{Camera, Frame, ViewerGuard};
use super::{auth, ingest, metrics};
use crate::config::check_id;

/// The viewer page (static; it reads everything else from the JSON routes).
const PAGE: &str = include_str!("page.html");
/// The MJPEG part boundary.
const BOUNDARY: &str = "zerocamframe";
/// A viewer whose socket accepts nothing for this long is dropped.
const VIEWER_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a snapshot of a paused camera waits for a fresh frame.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(3);
/// Slack above the frame limit before the WebSocket layer itself refuses a
/// message; up to it, oversize frames are counted as `too_large` rejects.
const WS_SLACK: usize = 1 << 20;

/// Builds the router.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/cameras", get(cameras))
        .route("/cameras/{id}/ws", get(viewer_ws))
        .route("/cameras/{id}/mjpeg", get(mjpeg))
        .route("/cameras/{id}/snapshot.jpg", get(snapshot))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/ingest/{id}", get(ingest_ws))
        .with_state(app)
}

fn plain(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut body = msg.into();
    body.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

fn denied(app: &App, d: auth::Denied) -> Response {
    let mut r = plain(d.status, d.message);
    if d.status == StatusCode::UNAUTHORIZED && !app.settings.viewer_auth.basic.is_empty() {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"zerocam\""),
        );
    }
    r
}

/// Viewer auth, then the camera (404 when it never connected).
fn viewer_camera(
    app: &App,
    uri: &Uri,
    headers: &HeaderMap,
    id: &str,
) -> Result<Arc<Camera>, Box<Response>> {
    app.settings
        .viewer_auth
        .check(uri, headers)
        .map_err(|d| Box::new(denied(app, d)))?;
    app.hub.camera(id).ok_or_else(|| {
        Box::new(plain(
            StatusCode::NOT_FOUND,
            format!("camera `{id}` is unknown (it has not connected to this relay)"),
        ))
    })
}

async fn page(State(app): State<Arc<App>>, uri: Uri, headers: HeaderMap) -> Response {
    if let Err(d) = app.settings.viewer_auth.check(&uri, &headers) {
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
    if let Err(d) = app.settings.viewer_auth.check(&uri, &headers) {
        return denied(&app, d);
    }
    let list: Vec<_> = app.hub.cameras().iter().map(|c| c.describe()).collect();
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
        metrics::render(&app.hub),
    )
        .into_response()
}

async fn snapshot(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let camera = match viewer_camera(&app, &uri, &headers, &id) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if !camera.online() {
        return plain(
            StatusCode::NOT_FOUND,
            format!("camera `{id}` is offline (not connected to this relay now)"),
        );
    }
    let mut frame = camera.latest();
    if camera.paused() || frame.is_none() {
        // Count as a viewer for a moment so a paused camera resumes, and
        // hand out a fresh frame rather than the one from before the pause.
        let _guard = camera.add_viewer();
        let mut rx = camera.subscribe();
        rx.borrow_and_update();
        if let Ok(Ok(())) = timeout(SNAPSHOT_WAIT, rx.changed()).await {
            frame = rx.borrow().clone();
        }
    }
    let Some(frame) = frame else {
        return plain(
            StatusCode::NOT_FOUND,
            format!("camera `{id}` is connected but has sent no frame yet"),
        );
    };
    camera.sent(&app.hub, &frame, 0);
    (
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        frame.jpeg,
    )
        .into_response()
}

async fn viewer_ws(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let camera = match viewer_camera(&app, &uri, &headers, &id) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    match ws {
        Ok(ws) => ws
            .max_message_size(64 << 10)
            .on_upgrade(move |socket| async move {
                let _live = app.live_socket();
                viewer_loop(app, camera, socket).await
            }),
        Err(e) => e.into_response(),
    }
}

async fn viewer_loop(app: Arc<App>, camera: Arc<Camera>, mut socket: WebSocket) {
    let _guard = camera.add_viewer();
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
                if frame.index == last {
                    continue;
                }
                match timeout(VIEWER_WRITE_TIMEOUT, socket.send(Message::Binary(frame.jpeg.clone()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break,
                    Err(_) => {
                        log::info!("viewer of {}: stalled for {} s, dropping it", camera.id, VIEWER_WRITE_TIMEOUT.as_secs());
                        break;
                    }
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
    last: u64,
    _guard: ViewerGuard,
}

async fn next_part(mut st: MjpegState) -> Option<([Bytes; 3], MjpegState)> {
    loop {
        tokio::select! {
            changed = st.rx.changed() => changed.ok()?,
            _ = st.shutdown.changed() => return None,
        }
        let Some(frame) = st.rx.borrow_and_update().clone() else {
            continue;
        };
        if frame.index == st.last {
            continue;
        }
        let head = format!(
            "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
            frame.jpeg.len()
        );
        st.camera.sent(&st.app.hub, &frame, st.last);
        st.last = frame.index;
        return Some((
            [Bytes::from(head), frame.jpeg, Bytes::from_static(b"\r\n")],
            st,
        ));
    }
}

async fn mjpeg(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let camera = match viewer_camera(&app, &uri, &headers, &id) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let mut rx = camera.subscribe();
    rx.mark_changed();
    let st = MjpegState {
        shutdown: app.shutdown.clone(),
        _guard: camera.add_viewer(),
        app,
        camera,
        rx,
        last: 0,
    };
    // Each part is three chunks (header, the shared JPEG, CRLF): no copy of
    // the image per viewer. The stream is only polled when the socket has
    // room, so a slow client simply gets the newest frame next.
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
        app.settings
            .camera_auth
            .check(&id, token.as_deref(), std::time::SystemTime::now())
    {
        app.hub.auth_failures.fetch_add(1, Ordering::Relaxed);
        log::warn!(
            "camera {id}: refused with {} ({})",
            d.status.as_u16(),
            d.message
        );
        return plain(d.status, d.message);
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => return e.into_response(),
    };
    let limit = app.settings.max_frame_bytes + WS_SLACK;
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| async move {
            let _live = app.live_socket();
            ingest::run(app, socket, id).await
        })
}
