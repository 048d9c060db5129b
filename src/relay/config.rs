//! The relay's settings: the `[server]` table of the zerocam TOML file,
//! merged with `zerocam relay` flags (flags win) and validated. Unknown keys
//! are errors naming the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::auth::{self, CameraAuth, ViewerAuth};
use crate::config::{ConfigError, check_id, check_token, keys, ranged, seconds};

/// `[server]` as written in the file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// `host:port` to listen on.
    pub listen: Option<String>,
    /// Camera tokens accepted for any camera id.
    pub tokens: Option<Vec<String>>,
    /// File holding the HMAC secret for signed camera tokens.
    pub secret_file: Option<PathBuf>,
    /// Largest accepted JPEG in bytes.
    pub max_frame_bytes: Option<u64>,
    /// Send `pause` to cameras nobody watches.
    pub pause_when_unwatched: Option<bool>,
    /// Seconds without viewers before a camera is paused.
    pub pause_after: Option<f64>,
    /// Consecutive rejected messages after which a camera is disconnected.
    pub max_consecutive_rejects: Option<u32>,
    /// Seconds of silence from a camera after which it is disconnected.
    pub camera_timeout: Option<f64>,
    /// Seconds after which an offline camera nobody waits for is forgotten.
    pub forget_offline_after: Option<f64>,
    /// Most cameras the relay keeps track of (online or offline).
    pub max_cameras: Option<u32>,
    /// Seconds a viewer (or any peer) may take no bytes before it is closed.
    pub viewer_write_timeout: Option<f64>,
    /// Seconds a snapshot of a paused camera waits for a fresh frame.
    pub snapshot_wait: Option<f64>,
    /// Per-camera settings, keyed by camera id.
    pub cameras: Option<BTreeMap<String, CameraSection>>,
    /// Viewer auth; absent means open.
    pub viewers: Option<ViewersSection>,
    /// Who may change a camera's settings; absent means nobody.
    pub admin: Option<ViewersSection>,
    /// Relay nodes sharing cameras over NATS.
    pub cluster: Option<ClusterSection>,
}

/// `[server.cluster]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// `nats://host:port` (or `tls://`), several separated by commas.
    pub url: Option<String>,
    /// Subject prefix shared by the nodes of one cluster.
    pub name: Option<String>,
    /// This node's id (default: host name and listen port).
    pub node: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    /// A NATS `.creds` file (JWT and nkey seed).
    pub creds: Option<PathBuf>,
    /// PEM CA that signs the NATS servers' certificates (TLS).
    pub ca: Option<PathBuf>,
    /// Seconds after its last presence that a silent node is dropped.
    pub presence_timeout: Option<f64>,
}

/// How this node joins a cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub url: String,
    pub name: String,
    pub node: String,
    pub user: Option<(String, String)>,
    pub token: Option<String>,
    pub creds: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    pub presence_timeout: Duration,
}

/// Default `server.cluster.name`.
pub const DEFAULT_CLUSTER_NAME: &str = "zerocam";

/// `[server.cameras.<id>]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraSection {
    /// The token only this camera id may use.
    pub token: Option<String>,
}

/// `[server.viewers]` and `[server.admin]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewersSection {
    /// Tokens accepted from viewers (`?token=` or `Authorization: Bearer`).
    pub tokens: Option<Vec<String>>,
    /// `user:password` pairs for HTTP basic auth.
    pub basic: Option<Vec<String>>,
}

/// Command-line overrides for the relay.
#[derive(Debug, Default, Clone)]
pub struct RelayOverrides {
    pub listen: Option<String>,
    /// Added to `server.tokens`.
    pub tokens: Vec<String>,
    /// `--cluster URL`: overrides `server.cluster.url`.
    pub cluster: Option<String>,
}

/// Validated relay settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub camera_auth: CameraAuth,
    pub viewer_auth: ViewerAuth,
    /// Credentials for changing camera settings; empty: nobody may.
    pub admin_auth: ViewerAuth,
    /// Clients on this machine (loopback) may change camera settings
    /// without admin credentials. Only `zerocam demo` sets it; no
    /// configuration key does (behind a reverse proxy every client is
    /// loopback).
    pub admin_loopback: bool,
    pub max_frame_bytes: usize,
    /// `None` when pausing is off.
    pub pause_after: Option<Duration>,
    pub max_consecutive_rejects: u32,
    pub camera_timeout: Duration,
    pub forget_offline_after: Duration,
    pub max_cameras: usize,
    pub viewer_write_timeout: Duration,
    pub snapshot_wait: Duration,
    /// Set when this relay is a node of a cluster.
    pub cluster: Option<Cluster>,
}

impl Default for ServerConfig {
    /// Every key at its default (`config::keys::KEYS`), no credentials.
    fn default() -> Self {
        let secs = |k| Duration::from_secs_f64(keys::default_secs(k));
        ServerConfig {
            listen: keys::default_text("server.listen")
                .parse()
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 8080))),
            camera_auth: CameraAuth::default(),
            viewer_auth: ViewerAuth::default(),
            admin_auth: ViewerAuth::default(),
            admin_loopback: false,
            max_frame_bytes: keys::default_whole("server.max_frame_bytes") as usize,
            pause_after: keys::default_bool("server.pause_when_unwatched")
                .then(|| secs("server.pause_after")),
            max_consecutive_rejects: keys::default_whole("server.max_consecutive_rejects") as u32,
            camera_timeout: secs("server.camera_timeout"),
            forget_offline_after: secs("server.forget_offline_after"),
            max_cameras: keys::default_whole("server.max_cameras") as usize,
            viewer_write_timeout: secs("server.viewer_write_timeout"),
            snapshot_wait: secs("server.snapshot_wait"),
            cluster: None,
        }
    }
}

/// `[server.cluster]` and `--cluster`, checked; `None` without a URL.
fn cluster(
    section: Option<ClusterSection>,
    flag: Option<&str>,
    listen: SocketAddr,
) -> Result<Option<Cluster>, ConfigError> {
    let c = section.unwrap_or_default();
    let Some(url) = flag.map(str::to_string).or(c.url.clone()) else {
        let set = c.name.is_some()
            || c.node.is_some()
            || c.user.is_some()
            || c.token.is_some()
            || c.creds.is_some();
        if set {
            return Err(ConfigError::new(
                "server.cluster.url",
                "is missing: the other [server.cluster] keys need it (or pass --cluster nats://HOST:PORT)",
            ));
        }
        return Ok(None);
    };
    for u in url.split(',') {
        let u = u.trim();
        let scheme_ok = ["nats://", "tls://"].iter().any(|s| u.starts_with(s));
        if !scheme_ok || u.len() <= "nats://".len() {
            return Err(ConfigError::new(
                "server.cluster.url",
                format!("`{u}` is not a NATS URL like nats://127.0.0.1:4222"),
            ));
        }
    }
    let name = c.name.unwrap_or_else(|| DEFAULT_CLUSTER_NAME.to_string());
    crate::wire::cluster::check_name(&name)
        .map_err(|e| ConfigError::new("server.cluster.name", e))?;
    let node = match c.node {
        Some(n) => n,
        None => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default();
            let host = if host.is_empty() {
                "relay".to_string()
            } else {
                host
            };
            format!("{host}:{}", listen.port())
        }
    };
    crate::wire::cluster::check_node(&node)
        .map_err(|e| ConfigError::new("server.cluster.node", e))?;
    let user = match (c.user, c.password) {
        (Some(u), Some(p)) => Some((u, p)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(ConfigError::new(
                "server.cluster.password",
                "is missing (user needs it)",
            ));
        }
        (None, Some(_)) => {
            return Err(ConfigError::new(
                "server.cluster.user",
                "is missing (password needs it)",
            ));
        }
    };
    let methods = usize::from(user.is_some())
        + usize::from(c.token.is_some())
        + usize::from(c.creds.is_some());
    if methods > 1 {
        return Err(ConfigError::new(
            "server.cluster",
            "give one of user/password, token or creds, not several",
        ));
    }
    for (key, path) in [
        ("server.cluster.creds", &c.creds),
        ("server.cluster.ca", &c.ca),
    ] {
        if let Some(p) = path {
            std::fs::metadata(p)
                .map_err(|e| ConfigError::new(key, format!("{}: {e}", p.display())))?;
        }
    }
    let presence_timeout = seconds("server.cluster.presence_timeout", c.presence_timeout)?;
    Ok(Some(Cluster {
        url,
        name,
        node,
        user,
        token: c.token,
        creds: c.creds,
        ca: c.ca,
        presence_timeout,
    }))
}

/// Parses the raw `[server]` table (as kept by [`crate::config::FileConfig`]).
/// Errors name the key (`server.max_cameras`) in plain words.
pub fn parse_section(table: Option<&toml::Table>) -> Result<ServerSection, ConfigError> {
    let Some(t) = table else {
        return Ok(ServerSection::default());
    };
    serde_path_to_error::deserialize::<_, ServerSection>(toml::Value::Table(t.clone())).map_err(
        |e| {
            let path = e.path().to_string();
            let key = if path == "." || path.is_empty() {
                "server".to_string()
            } else {
                format!("server.{path}")
            };
            let msg = e.into_inner().message().to_string();
            let reason = match msg.strip_prefix("unknown field `") {
                Some(rest) => {
                    crate::config::unknown_key(rest.split('`').next().unwrap_or(""), &msg, "")
                }
                None => crate::config::friendly(&key, &msg),
            };
            ConfigError::new(&key, reason)
        },
    )
}

/// Tokens and `user:password` pairs of `[server.viewers]` or `[server.admin]`.
fn credentials(key: &str, section: Option<ViewersSection>) -> Result<ViewerAuth, ConfigError> {
    let v = section.unwrap_or_default();
    let tokens = v.tokens.unwrap_or_default();
    for t in &tokens {
        check_token(&format!("{key}.tokens"), t)?;
    }
    let basic = v.basic.unwrap_or_default();
    for b in &basic {
        if !b.contains(':') || b.starts_with(':') {
            return Err(ConfigError::new(
                &format!("{key}.basic"),
                format!("`{b}` is not `user:password`"),
            ));
        }
    }
    Ok(ViewerAuth { tokens, basic })
}

impl ServerConfig {
    /// Merges `[server]` and flags, validating every value.
    pub fn build(
        table: Option<&toml::Table>,
        o: &RelayOverrides,
    ) -> Result<ServerConfig, ConfigError> {
        let s = parse_section(table)?;
        let listen_s = o
            .listen
            .clone()
            .or(s.listen)
            .unwrap_or_else(|| keys::default_text("server.listen").to_string());
        let listen: SocketAddr = listen_s.parse().map_err(|_| {
            ConfigError::new(
                "server.listen",
                format!("`{listen_s}` is not an address like 0.0.0.0:8080"),
            )
        })?;
        let mut shared = s.tokens.unwrap_or_default();
        shared.extend(o.tokens.iter().cloned());
        for t in &shared {
            check_token("server.tokens", t)?;
        }
        let mut per_camera = Vec::new();
        for (id, c) in s.cameras.unwrap_or_default() {
            let key = format!("server.cameras.{id}");
            check_id(&key, &id)?;
            if let Some(t) = c.token {
                check_token(&format!("{key}.token"), &t)?;
                per_camera.push((id, t));
            }
        }
        let secret = match &s.secret_file {
            Some(p) => {
                Some(auth::read_secret(p).map_err(|e| ConfigError::new("server.secret_file", e))?)
            }
            None => None,
        };
        let viewer_auth = credentials("server.viewers", s.viewers)?;
        let admin_auth = credentials("server.admin", s.admin)?;
        // Unset keys take their defaults from config::keys::KEYS.
        let max_frame_bytes = ranged("server.max_frame_bytes", s.max_frame_bytes)? as usize;
        let pause_after = if s
            .pause_when_unwatched
            .unwrap_or(keys::default_bool("server.pause_when_unwatched"))
        {
            Some(seconds("server.pause_after", s.pause_after)?)
        } else {
            None
        };
        let max_consecutive_rejects = ranged(
            "server.max_consecutive_rejects",
            s.max_consecutive_rejects.map(u64::from),
        )? as u32;
        let camera_timeout = seconds("server.camera_timeout", s.camera_timeout)?;
        let forget_offline_after = seconds("server.forget_offline_after", s.forget_offline_after)?;
        let max_cameras = ranged("server.max_cameras", s.max_cameras.map(u64::from))?;
        let viewer_write_timeout = seconds("server.viewer_write_timeout", s.viewer_write_timeout)?;
        let snapshot_wait = seconds("server.snapshot_wait", s.snapshot_wait)?;
        let cluster = cluster(s.cluster, o.cluster.as_deref(), listen)?;
        Ok(ServerConfig {
            listen,
            camera_auth: CameraAuth {
                shared,
                per_camera,
                secret,
            },
            viewer_auth,
            admin_auth,
            admin_loopback: false,
            max_frame_bytes,
            pause_after,
            max_consecutive_rejects,
            camera_timeout,
            forget_offline_after,
            max_cameras: max_cameras as usize,
            viewer_write_timeout,
            snapshot_wait,
            cluster,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(text: &str) -> Result<ServerConfig, ConfigError> {
        let f = crate::config::parse_str(text)?;
        ServerConfig::build(f.server.as_ref(), &RelayOverrides::default())
    }

    #[test]
    fn defaults_without_a_server_table() {
        let s = build("").unwrap();
        assert_eq!(s.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(s.max_frame_bytes, 4 << 20);
        assert_eq!(s.pause_after, Some(Duration::from_secs(10)));
        assert!(s.camera_auth.is_open() && s.viewer_auth.is_open());
        assert_eq!(s.forget_offline_after, Duration::from_secs(600));
        assert_eq!(s.max_cameras, 256);
        assert_eq!(s.viewer_write_timeout, Duration::from_secs(10));
        assert_eq!(s.snapshot_wait, Duration::from_secs(5));
    }

    #[test]
    fn full_table() {
        let s = build(
            "[server]\nlisten = \"127.0.0.1:9000\"\ntokens = [\"a\"]\nmax_frame_bytes = 100000\npause_when_unwatched = false\n[server.cameras.porch]\ntoken = \"p\"\n[server.viewers]\nbasic = [\"me:pw\"]\n",
        )
        .unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.camera_auth.shared, vec!["a".to_string()]);
        assert_eq!(
            s.camera_auth.per_camera,
            vec![("porch".to_string(), "p".to_string())]
        );
        assert_eq!(s.pause_after, None);
        assert!(!s.viewer_auth.is_open());
    }

    #[test]
    fn unknown_and_bad_keys_are_named() {
        let e = build("[server]\nlistne = \"x\"\n").unwrap_err();
        assert_eq!(e.key, "server.listne", "{e}");
        let e = build("[server]\nlisten = \"nope\"\n").unwrap_err();
        assert_eq!(e.key, "server.listen");
        let e = build("[server]\nmax_frame_bytes = 5\n").unwrap_err();
        assert_eq!(e.key, "server.max_frame_bytes");
        let e = build("[server.cameras.porch]\ntokne = \"x\"\n").unwrap_err();
        assert_eq!(e.key, "server.cameras.porch.tokne", "{e}");
        let e = build("[server]\nmax_cameras = \"lots\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "server.max_cameras: expected a whole number in 1..=100000, found \"lots\""
        );
        let e = build("[server]\nsecret_file = \"/nonexistent/zerocam\"\n").unwrap_err();
        assert_eq!(e.key, "server.secret_file");
        let e = build("[server.viewers]\nbasic = [\"nocolon\"]\n").unwrap_err();
        assert_eq!(e.key, "server.viewers.basic");
        let e = build("[server.admin]\nbasic = [\"x\"]\n").unwrap_err();
        assert_eq!(e.key, "server.admin.basic");
        let s = build("[server.admin]\ntokens = [\"adm\"]\n").unwrap();
        assert!(!s.admin_auth.is_open() && s.viewer_auth.is_open());
        let e = build("[server]\nmax_cameras = 0\n").unwrap_err();
        assert_eq!(e.key, "server.max_cameras");
        let e = build("[server]\nviewer_write_timeout = 0\n").unwrap_err();
        assert_eq!(e.key, "server.viewer_write_timeout");
        let e = build("[server]\nforget_offline_after = -1\n").unwrap_err();
        assert_eq!(e.key, "server.forget_offline_after");
        let e = build("[server]\nsnapshot_wait = 1000\n").unwrap_err();
        assert_eq!(e.key, "server.snapshot_wait");
    }
    #[test]
    fn every_ranged_server_key_names_its_range_for_a_wrong_type() {
        for r in keys::KEYS
            .iter()
            .filter(|k| k.range.is_some() && k.key.starts_with("server."))
        {
            let (section, key) = r.key.rsplit_once('.').unwrap();
            let e = build(&format!("[{section}]\n{key} = \"lots\"\n")).unwrap_err();
            assert_eq!(e.key, r.key);
            let words = crate::config::describe(r).unwrap();
            assert!(e.reason.contains(&words), "{e}");
        }
    }

    #[test]
    fn the_cluster_table_is_checked_key_by_key() {
        assert_eq!(build("").unwrap().cluster, None);
        let c = build("[server]\nlisten = \"127.0.0.1:9000\"\n[server.cluster]\nurl = \"nats://n1:4222,nats://n2:4222\"\ntoken = \"t\"\n")
            .unwrap()
            .cluster
            .unwrap();
        assert_eq!(c.name, "zerocam");
        assert!(c.node.ends_with(":9000"), "{}", c.node);
        assert_eq!(c.token.as_deref(), Some("t"));
        assert_eq!(c.presence_timeout, Duration::from_secs(4));
        // --cluster alone is enough, and wins over the file.
        let f = crate::config::parse_str("[server.cluster]\nurl = \"nats://x:1\"\nnode = \"a\"\n")
            .unwrap();
        let o = RelayOverrides {
            cluster: Some("nats://127.0.0.1:4222".into()),
            ..Default::default()
        };
        let c = ServerConfig::build(f.server.as_ref(), &o)
            .unwrap()
            .cluster
            .unwrap();
        assert_eq!(
            (c.url.as_str(), c.node.as_str()),
            ("nats://127.0.0.1:4222", "a")
        );
        for (text, key) in [
            (
                "[server.cluster]\nurl = \"http://x\"\n",
                "server.cluster.url",
            ),
            ("[server.cluster]\nnode = \"a\"\n", "server.cluster.url"),
            (
                "[server.cluster]\nurl = \"nats://x:1\"\nname = \"a..b\"\n",
                "server.cluster.name",
            ),
            (
                "[server.cluster]\nurl = \"nats://x:1\"\nnode = \"a b\"\n",
                "server.cluster.node",
            ),
            (
                "[server.cluster]\nurl = \"nats://x:1\"\nuser = \"u\"\n",
                "server.cluster.password",
            ),
            (
                "[server.cluster]\nurl = \"nats://x:1\"\nuser = \"u\"\npassword = \"p\"\ntoken = \"t\"\n",
                "server.cluster",
            ),
            (
                "[server.cluster]\nurl = \"nats://x:1\"\ncreds = \"/nonexistent.creds\"\n",
                "server.cluster.creds",
            ),
            (
                "[server.cluster]\nurl = \"nats://x:1\"\npresence_timeout = 0.1\n",
                "server.cluster.presence_timeout",
            ),
            (
                "[server.cluster]\nurl = \"nats://x:1\"\nnods = \"a\"\n",
                "server.cluster.nods",
            ),
        ] {
            let e = build(text).unwrap_err();
            assert_eq!(e.key, key, "{text}: {e}");
        }
    }
}
