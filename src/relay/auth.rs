//! Who may connect: camera tokens (shared, per camera, or signed) and the
//! optional viewer auth. Checked before any WebSocket upgrade, so a refused
//! client gets a plain 401 (no credentials) or 403 (wrong credentials).
//!
//! Which camera token to use when:
//! - `--token` / `server.tokens`: one secret for every camera. Simplest; fine
//!   for a few cameras you own, but a leaked token lets anyone send as any id.
//! - `[server.cameras.<id>] token`: one secret per camera id, so a leaked token
//!   only impersonates that camera and can be revoked alone. Good for a
//!   handful of cameras, but every camera needs an entry in the relay config.
//! - signed tokens (`server.secret_file` + `zerocam token --camera ID
//!   --secret-file F --ttl 30d`): HMAC-SHA256 over the camera id and an expiry,
//!   so a fleet needs no per-camera entry; each token is bound to one id and
//!   expires on its own. Revoke all by changing the secret.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode, Uri, header};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Prefix of signed tokens; bumps if the format ever changes.
const SIGNED_PREFIX: &str = "v1";
/// The smallest secret we accept, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// A refused request: the status and a one-line message for the body and log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub status: StatusCode,
    pub message: String,
}

impl Denied {
    fn missing(what: &str) -> Denied {
        Denied {
            status: StatusCode::UNAUTHORIZED,
            message: format!("{what} required"),
        }
    }
    fn wrong(message: impl Into<String>) -> Denied {
        Denied {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }
}

/// The camera-side credentials the relay accepts.
#[derive(Debug, Clone, Default)]
pub struct CameraAuth {
    /// Accepted for any camera id.
    pub shared: Vec<String>,
    /// `(camera id, token)` pairs.
    pub per_camera: Vec<(String, String)>,
    /// HMAC key for signed tokens.
    pub secret: Option<Vec<u8>>,
}

impl CameraAuth {
    /// True when no credential is configured: every camera is let in.
    pub fn is_open(&self) -> bool {
        self.shared.is_empty() && self.per_camera.is_empty() && self.secret.is_none()
    }

    /// Checks the token a camera presented for `camera`.
    pub fn check(&self, camera: &str, token: Option<&str>, now: SystemTime) -> Result<(), Denied> {
        if self.is_open() {
            return Ok(());
        }
        let Some(token) = token else {
            return Err(Denied::missing("token (?token= or Bearer)"));
        };
        let shared = self.shared.iter().any(|t| ct_eq(t, token));
        let own = self
            .per_camera
            .iter()
            .any(|(id, t)| id == camera && ct_eq(t, token));
        if shared || own {
            return Ok(());
        }
        if let Some(secret) = &self.secret {
            if token.starts_with(SIGNED_PREFIX) && token.contains('.') {
                return verify_signed(secret, camera, token, now).map_err(Denied::wrong);
            }
        }
        Err(Denied::wrong(format!(
            "token not accepted for camera `{camera}`"
        )))
    }
}

/// Tokens and basic users of one role: the viewers (`[server.viewers]`,
/// empty means open) or the admin (`[server.admin]`).
#[derive(Debug, Clone, Default)]
pub struct ViewerAuth {
    pub tokens: Vec<String>,
    /// `user:password` pairs for HTTP basic auth.
    pub basic: Vec<String>,
}

impl ViewerAuth {
    /// True when no credential is configured.
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty() && self.basic.is_empty()
    }

    /// Checks a viewer request (page, JSON, streams, snapshots).
    pub fn check(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Denied> {
        if self.is_open() {
            return Ok(());
        }
        self.check_as("viewer", uri, headers)
    }

    /// Checks a request against this role's credentials, naming `role` in
    /// a refusal. Every credential the request carries counts (basic, the
    /// bearer header and `?token=`): a page that adds the viewer's token to
    /// its URL and the admin's to its header is the admin.
    pub fn check_as(&self, role: &str, uri: &Uri, headers: &HeaderMap) -> Result<(), Denied> {
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let basic = auth.and_then(|a| a.strip_prefix("Basic ")).map(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|v| String::from_utf8(v).ok())
        });
        if let Some(Some(pair)) = &basic {
            if self.basic.iter().any(|b| ct_eq(b, pair)) {
                return Ok(());
            }
        }
        let offered: Vec<String> = query_token(uri)
            .into_iter()
            .chain(bearer_token(headers))
            .collect();
        if offered
            .iter()
            .any(|t| self.tokens.iter().any(|v| ct_eq(v, t)))
        {
            return Ok(());
        }
        if basic.is_some() {
            Err(Denied::wrong(format!(
                "{role} user or password not accepted"
            )))
        } else if !offered.is_empty() {
            Err(Denied::wrong(format!("{role} token not accepted")))
        } else {
            Err(Denied::missing(&format!("{role} credentials")))
        }
    }
}

/// The non-empty `?token=` of a request, decoded.
fn query_token(uri: &Uri) -> Option<String> {
    uri.query()
        .and_then(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == "token")
                .map(|(_, v)| percent_decode(v))
        })
        .filter(|t| !t.is_empty())
}

/// The non-empty token of an `Authorization: Bearer` header.
fn bearer_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// The token from `?token=` or `Authorization: Bearer`, query first.
pub fn token_from(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    query_token(uri).or_else(|| bearer_token(headers))
}

/// Decodes `%XX` and `+` in a query value; malformed escapes stay as they are.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Compares without an early exit, so timing does not leak a token's prefix.
fn ct_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn mac(secret: &[u8], camera: &str, expiry: u64) -> HmacSha256 {
    // new_from_slice accepts any key length for HMAC.
    let mut m = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    m.update(format!("zerocam-token-v1\n{camera}\n{expiry}").as_bytes());
    m
}

/// A signed token for `camera`, valid until `expiry` (Unix seconds):
/// `v1.<expiry>.<base64url HMAC-SHA256>.<camera>`.
pub fn sign(secret: &[u8], camera: &str, expiry: u64) -> String {
    let tag = mac(secret, camera, expiry).finalize().into_bytes();
    let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag);
    format!("{SIGNED_PREFIX}.{expiry}.{tag}.{camera}")
}

/// Verifies a signed token for `camera` at `now`; the error says why not.
pub fn verify_signed(
    secret: &[u8],
    camera: &str,
    token: &str,
    now: SystemTime,
) -> Result<(), String> {
    let mut parts = token.splitn(4, '.');
    let (Some(SIGNED_PREFIX), Some(expiry), Some(tag), Some(id)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed signed token".into());
    };
    let expiry: u64 = expiry
        .parse()
        .map_err(|_| "malformed signed token (expiry)".to_string())?;
    let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| "malformed signed token (signature)".to_string())?;
    if id != camera {
        return Err(format!("signed token is for camera `{id}`, not `{camera}`"));
    }
    mac(secret, id, expiry)
        .verify_slice(&tag)
        .map_err(|_| format!("signed token for `{camera}` has a bad signature"))?;
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    if now >= expiry {
        return Err(format!("signed token for `{camera}` has expired"));
    }
    Ok(())
}

/// Reads a secret file: its bytes without trailing whitespace, at least
/// [`MIN_SECRET_LEN`] long.
pub fn read_secret(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let mut v = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    while v.last().is_some_and(|b| b.is_ascii_whitespace()) {
        v.pop();
    }
    if v.len() < MIN_SECRET_LEN {
        return Err(format!(
            "{} holds {} bytes; a secret needs at least {MIN_SECRET_LEN} (e.g. `head -c 32 /dev/urandom | base64 > FILE`)",
            path.display(),
            v.len()
        ));
    }
    Ok(v)
}

/// Parses a lifetime such as `30d`, `12h`, `45m`, `90s` or a plain number of seconds.
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a lifetime like 30d, 12h, 45m or 90s"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        _ => return Err(format!("`{s}`: unit must be s, m, h, d or w")),
    };
    if n == 0 {
        return Err(format!("`{s}`: a lifetime must be positive"));
    }
    n.checked_mul(mult)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{s}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn signed_tokens_bind_id_and_expiry() {
        let t = sign(SECRET, "porch.cam", 1000);
        assert_eq!(verify_signed(SECRET, "porch.cam", &t, at(999)), Ok(()));
        assert!(
            verify_signed(SECRET, "porch.cam", &t, at(1000))
                .unwrap_err()
                .contains("expired")
        );
        assert!(
            verify_signed(SECRET, "garden", &t, at(1))
                .unwrap_err()
                .contains("not `garden`")
        );
        assert!(verify_signed(b"another secret 123456", "porch.cam", &t, at(1)).is_err());
        let forged = t.replace("v1.1000.", "v1.9999.");
        assert!(verify_signed(SECRET, "porch.cam", &forged, at(1)).is_err());
        assert!(verify_signed(SECRET, "x", "v1.garbage", at(1)).is_err());
    }

    #[test]
    fn camera_auth_statuses() {
        let open = CameraAuth::default();
        assert_eq!(open.check("a", None, at(0)), Ok(()));
        let auth = CameraAuth {
            shared: vec!["s3cret".into()],
            per_camera: vec![("porch".into(), "p0rch".into())],
            secret: Some(SECRET.to_vec()),
        };
        let now = at(10);
        assert_eq!(
            auth.check("a", None, now).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(auth.check("a", Some("s3cret"), now), Ok(()));
        assert_eq!(auth.check("porch", Some("p0rch"), now), Ok(()));
        assert_eq!(
            auth.check("garden", Some("p0rch"), now).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(auth.check("g", Some(&sign(SECRET, "g", 20)), now), Ok(()));
        assert_eq!(
            auth.check("g", Some(&sign(SECRET, "g", 5)), now)
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn token_from_query_or_bearer() {
        let mut h = HeaderMap::new();
        let uri: Uri = "/ingest/a?x=1&token=ab%2Bc".parse().unwrap();
        assert_eq!(token_from(&uri, &h).as_deref(), Some("ab+c"));
        let uri: Uri = "/ingest/a".parse().unwrap();
        assert_eq!(token_from(&uri, &h), None);
        h.insert(header::AUTHORIZATION, "Bearer tok".parse().unwrap());
        assert_eq!(token_from(&uri, &h).as_deref(), Some("tok"));
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn viewer_basic_and_token() {
        let v = ViewerAuth {
            tokens: vec!["vt".into()],
            basic: vec!["me:pw".into()],
        };
        let uri: Uri = "/".parse().unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(
            v.check(&uri, &h).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        h.insert(header::AUTHORIZATION, "Basic bWU6cHc=".parse().unwrap());
        assert_eq!(v.check(&uri, &h), Ok(()));
        h.insert(header::AUTHORIZATION, "Basic bWU6eA==".parse().unwrap());
        assert_eq!(v.check(&uri, &h).unwrap_err().status, StatusCode::FORBIDDEN);
        let uri: Uri = "/?token=vt".parse().unwrap();
        assert_eq!(v.check(&uri, &HeaderMap::new()), Ok(()));
    }

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_ttl("0d").is_err());
        assert!(parse_ttl("3y").is_err());
        assert!(parse_ttl("d").is_err());
    }
}
