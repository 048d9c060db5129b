//! Plain answers the relay's routes share.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{App, auth};

/// A plain-text answer (one line).
pub fn plain(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut body = msg.into();
    body.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The answer to a refused viewer request (with a Basic challenge when
/// viewers use basic auth).
pub fn denied(app: &App, d: auth::Denied) -> Response {
    let mut r = plain(d.status, d.message);
    if d.status == StatusCode::UNAUTHORIZED && !app.config.viewer_auth.basic.is_empty() {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"zerocam\""),
        );
    }
    r
}
