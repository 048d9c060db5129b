//! The camera-settings API, `GET`/`POST /cameras/{id}/settings`: what a
//! camera reported, and changes checked field by field (against the
//! camera's own `ranges`) then sent as `set`/`pause`/`resume`, answered
//! with the camera's confirmation. The node a request came to checks the
//! credentials; the node that holds the camera answers (the cluster calls
//! [`local_get`] and [`local_post`] there).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::time::timeout;

use super::App;
use super::conn::ConnHandle;
use super::hub::{Camera, CommandError, SettingsReject, ToCamera};
use super::reply::{denied, plain};
use crate::wire::cluster::{RpcReply, RpcRequest};
use crate::wire::controls::{ControlInfo, NO_CONTROLS};

/// How long a settings change waits for the camera's `settings` answer.
const SETTINGS_WAIT: Duration = Duration::from_secs(5);

/// The settings API's view of a camera: what it last reported.
fn settings_view(camera: &Camera) -> serde_json::Value {
    let r = camera.reported();
    serde_json::json!({
        "camera": camera.id,
        "online": camera.online(),
        "paused_by": camera.paused_by(),
        "settings": r.settings.map_or(serde_json::Value::Null, serde_json::Value::Object),
    })
}

/// An answer of the settings API, as it also crosses the cluster.
fn answer(status: StatusCode, body: impl Into<String>) -> RpcReply {
    RpcReply {
        status: status.as_u16(),
        json: false,
        body: body.into(),
    }
}

fn answer_json(status: StatusCode, v: &serde_json::Value) -> RpcReply {
    RpcReply {
        status: status.as_u16(),
        json: true,
        body: v.to_string(),
    }
}

/// The HTTP response for an answer.
fn respond(r: RpcReply) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY);
    if r.json {
        (
            status,
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::CONTENT_TYPE, "application/json"),
            ],
            r.body,
        )
            .into_response()
    } else {
        plain(status, r.body)
    }
}

/// `GET /cameras/{id}/settings`: a viewer's right. Answered by the node
/// that holds the camera.
pub async fn get(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(d) = app.config.viewer_auth.check(&uri, &headers) {
        return denied(&app, d);
    }
    if let Some(r) = forward(&app, &id, "GET", &[]).await {
        return respond(r);
    }
    respond(local_get(&app, &id))
}

/// A settings request for a camera another cluster node holds, answered
/// there; `None` when the camera is not remote.
async fn forward(app: &App, id: &str, method: &str, body: &[u8]) -> Option<RpcReply> {
    let cluster = app.cluster.as_ref()?;
    let node = app.hub.camera(id)?.home()?;
    let req = RpcRequest {
        camera: id.to_string(),
        method: method.to_string(),
        body: String::from_utf8_lossy(body).into_owned(),
    };
    Some(cluster.request(&node, &req).await)
}

/// `GET /cameras/{id}/settings` for a camera known here.
pub fn local_get(app: &App, id: &str) -> RpcReply {
    match app.hub.camera(id).filter(|c| !c.is_remote()) {
        Some(c) => answer_json(StatusCode::OK, &settings_view(&c)),
        None => answer(
            StatusCode::NOT_FOUND,
            format!("camera `{id}` is unknown (it is not connected to this relay)"),
        ),
    }
}

/// A settings change, checked field by field: the commands to send.
pub fn parse_change(
    body: &[u8],
    ranges: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Result<Vec<ToCamera>, String> {
    use crate::wire::message::{
        ControlValue, SetCommand, check_adapt, check_fps, check_min_quality, check_quality,
    };
    use serde_json::Value;
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let Value::Object(obj) = v else {
        return Err("the body is not a JSON object".into());
    };
    let mut set = SetCommand::default();
    let mut out = Vec::new();
    for (k, v) in &obj {
        match k.as_str() {
            "fps" => set.fps = Some(check_fps(v)?),
            "quality" => set.quality = Some(check_quality(v)?),
            "adapt" => set.adapt = Some(check_adapt(v)?),
            "min_quality" => set.min_quality = Some(check_min_quality(v)?),
            "paused" => match v {
                Value::Bool(true) => out.push(ToCamera::Pause),
                Value::Bool(false) => out.push(ToCamera::Resume),
                other => return Err(format!("paused: expected true or false, found {other}")),
            },
            "controls" => {
                let Value::Object(c) = v else {
                    return Err(format!(
                        "controls: expected an object of name: value, found {v}"
                    ));
                };
                for (name, value) in c {
                    let Some(cv) = ControlValue::from_json(value) else {
                        return Err(format!(
                            "controls.{name}: expected a number, true/false or a menu item's name, found {value}"
                        ));
                    };
                    set.controls.push((name.clone(), cv.clone()));
                    let Some(ranges) = ranges else { continue };
                    let Some(range) = ranges.get(name) else {
                        let names: Vec<&str> = ranges.keys().map(String::as_str).collect();
                        return Err(if names.is_empty() {
                            format!("controls.{name}: {NO_CONTROLS}")
                        } else {
                            format!(
                                "controls.{name}: the camera has no such control (it has: {})",
                                names.join(", ")
                            )
                        });
                    };
                    // The camera's own check, on the ranges it reported:
                    // the type, the range, the step, a menu's items.
                    if let Some(control) = ControlInfo::from_range(name, range) {
                        control.resolve(&cv).map_err(|e| {
                            format!("controls.{}", e.trim_start_matches("control "))
                        })?;
                    }
                }
            }
            other => {
                return Err(format!(
                    "unknown field `{other}` (the fields are fps, quality, adapt, min_quality, paused and controls)"
                ));
            }
        }
    }
    if set != SetCommand::default() {
        out.push(ToCamera::Set(set));
    }
    if out.is_empty() {
        return Err("nothing to change (the fields are fps, quality, adapt, min_quality, paused and controls)".into());
    }
    Ok(out)
}

/// `POST /cameras/{id}/settings`: changing a camera needs the admin's
/// credentials (`[server.admin]`), whatever the viewer auth is; checked by
/// the node the request came to, then answered by the node that holds the
/// camera.
pub async fn post(
    State(app): State<Arc<App>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let camera = app.hub.camera(&id);
    let reject = |why: SettingsReject| {
        if let Some(c) = &camera {
            c.settings_rejected(why);
        }
    };
    let admin = &app.config.admin_auth;
    let trusted = app.config.admin_loopback && conn.0.peer.ip().is_loopback();
    // Loopback in the demo needs nothing more; anyone else, the admin's.
    if !trusted {
        if admin.is_open() {
            reject(SettingsReject::Forbidden);
            let why = if app.config.admin_loopback {
                "zerocam demo: only its own machine (loopback) may change camera settings"
            } else {
                "changing camera settings needs [server.admin] tokens or basic users on this relay"
            };
            return plain(StatusCode::FORBIDDEN, why);
        }
        if let Err(d) = admin.check_as("admin", &uri, &headers) {
            reject(if d.status == StatusCode::UNAUTHORIZED {
                SettingsReject::Unauthorized
            } else {
                SettingsReject::Forbidden
            });
            let mut r = plain(
                d.status,
                format!("{} ([server.admin] on this relay)", d.message),
            );
            if d.status == StatusCode::UNAUTHORIZED && !admin.basic.is_empty() {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"zerocam admin\""),
                );
            }
            return r;
        }
    }
    if let Some(r) = forward(&app, &id, "POST", &body).await {
        return respond(r);
    }
    respond(local_post(&app, &id, &body).await)
}

/// Applies an (authorised) settings change to a camera connected here and
/// waits for its confirmation.
pub async fn local_post(app: &App, id: &str, body: &[u8]) -> RpcReply {
    let Some(camera) = app.hub.camera(id).filter(|c| !c.is_remote()) else {
        return answer(
            StatusCode::NOT_FOUND,
            format!("camera `{id}` is unknown (it is not connected to this relay)"),
        );
    };
    if !camera.online() {
        camera.settings_rejected(SettingsReject::Offline);
        return answer(StatusCode::NOT_FOUND, format!("camera `{id}` is offline"));
    }
    let ranges = camera
        .reported()
        .settings
        .and_then(|s| s.get("ranges").and_then(|r| r.as_object().cloned()));
    let commands = match parse_change(body, ranges.as_ref()) {
        Ok(c) => c,
        Err(why) => {
            camera.settings_rejected(SettingsReject::BadRequest);
            return answer(StatusCode::BAD_REQUEST, why);
        }
    };
    let mut reports = camera.reported_watch();
    let want = reports.borrow_and_update().count + commands.len() as u64;
    for cmd in commands {
        match &cmd {
            ToCamera::Pause => camera.set_user_paused(true),
            ToCamera::Resume => camera.set_user_paused(false),
            ToCamera::Set(_) => {}
        }
        if let Err(why) = camera.command(cmd) {
            camera.settings_rejected(SettingsReject::Offline);
            let status = if why == CommandError::Busy {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::NOT_FOUND
            };
            return answer(
                status,
                format!("camera `{id}` cannot take a command now ({why})"),
            );
        }
    }
    camera
        .counters
        .settings_changes
        .fetch_add(1, Ordering::Relaxed);
    log::info!("camera {id}: settings changed through the API");
    match timeout(SETTINGS_WAIT, reports.wait_for(|r| r.count >= want)).await {
        Ok(Ok(_)) => answer_json(StatusCode::OK, &settings_view(&camera)),
        _ => {
            camera.settings_rejected(SettingsReject::Timeout);
            answer(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "camera `{id}` did not confirm the change within {} s",
                    SETTINGS_WAIT.as_secs()
                ),
            )
        }
    }
}
