//! The relay (`zerocam relay`, `zerocam token`; `zerocam demo` runs it
//! beside a camera, see [`crate::demo`]): cameras
//! stream in over WebSocket (docs/protocol.md raw dialect), browsers and tools
//! watch over WebSocket, MJPEG or snapshots. axum/tokio; the camera side of
//! the binary stays blocking and does not use any of this.

pub mod auth;
pub mod camera_settings;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod hub;
pub mod ingest;
pub mod metrics;
pub mod prometheus;
pub mod rejects;
pub mod reply;
pub mod routes;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tokio::sync::watch;

pub use config::{RelayOverrides, ServerConfig};

/// How long shutdown waits for connections to close before giving up.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Shared state of a running relay.
#[derive(Debug)]
pub struct App {
    pub hub: Arc<hub::Hub>,
    pub config: ServerConfig,
    /// This node's handle on its cluster, when it is in one.
    pub cluster: Option<Arc<cluster::Cluster>>,
    /// Turns `true` when the relay stops; long-lived handlers watch it.
    pub shutdown: watch::Receiver<bool>,
    /// How many upgraded WebSocket connections are still running.
    live_sockets: watch::Sender<usize>,
}

impl App {
    /// Marks an upgraded WebSocket as running until the guard drops.
    /// hyper's graceful shutdown stops tracking a connection once it is
    /// upgraded, so `serve` waits on this count too: otherwise the runtime
    /// could drop a socket before its handler has sent the close frame.
    pub fn live_socket(self: &Arc<Self>) -> LiveSocket {
        self.live_sockets.send_modify(|n| *n += 1);
        LiveSocket(self.clone())
    }
}

/// See [`App::live_socket`].
#[derive(Debug)]
pub struct LiveSocket(Arc<App>);

impl Drop for LiveSocket {
    fn drop(&mut self) {
        self.0
            .live_sockets
            .send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Serves on `listener` until `stop` completes, then closes every
/// connection (cameras get a close reason) and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: ServerConfig,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (tx, rx) = watch::channel(false);
    // Held here until serve returns, so handlers see `true`, not a closed channel.
    let tx = Arc::new(tx);
    let signal_tx = tx.clone();
    if config.camera_auth.is_open() {
        log::warn!("no camera tokens configured: any client may stream as any camera id");
    }
    let write_timeout = config.viewer_write_timeout;
    let cluster = match config.cluster.clone() {
        Some(c) => Some(cluster::connect(c).await.map_err(std::io::Error::other)?),
        None => None,
    };
    let app = Arc::new(App {
        hub: hub::Hub::with_limits(config.max_cameras, config.forget_offline_after),
        config,
        cluster: cluster.clone(),
        shutdown: rx,
        live_sockets: watch::channel(0).0,
    });
    let sweeper = tokio::spawn(sweep(app.hub.clone(), app.config.forget_offline_after));
    let clustering = cluster.map(|c| tokio::spawn(cluster::run(app.clone(), c)));
    let mut live = app.live_sockets.subscribe();
    let router = routes::router(app).into_make_service_with_connect_info::<conn::ConnHandle>();
    let listener = conn::RelayListener::new(listener, write_timeout);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        stop.await;
        log::info!("shutting down");
        let _ = signal_tx.send(true);
        let _ = done_tx.send(());
    });
    let server = server.into_future();
    tokio::pin!(server);
    let result = tokio::select! {
        r = async {
            let r = (&mut server).await;
            // The HTTP side is done; upgraded sockets may still be closing.
            let _ = live.wait_for(|n| *n == 0).await;
            r
        } => r,
        _ = async {
            let _ = done_rx.await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            log::warn!("connections did not close within {} s; stopping anyway", SHUTDOWN_GRACE.as_secs());
            Ok(())
        }
    };
    sweeper.abort();
    if let Some(task) = clustering {
        // It says goodbye to the other nodes on the shutdown signal.
        let _ = timeout_ok(task).await;
    }
    drop(tx);
    result
}

/// Waits for the cluster task to finish (it sends its leaving presence),
/// at most a second.
async fn timeout_ok(task: tokio::task::JoinHandle<()>) -> bool {
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .is_ok()
}

/// Forgets offline cameras nobody watches, a few times per
/// `forget_after` (at least every minute).
async fn sweep(hub: Arc<hub::Hub>, forget_after: Duration) {
    let every = (forget_after / 4).clamp(Duration::from_millis(250), Duration::from_secs(60));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        hub.sweep(std::time::Instant::now());
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                log::warn!("cannot watch SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("relay")
        .build()
        .context("cannot start the async runtime")
}

pub async fn bind(addr: SocketAddr) -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// `zerocam relay`: serves until SIGINT/SIGTERM.
pub fn run(config: ServerConfig) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let (listener, local) = bind(config.listen).await?;
        // A fixed, parseable line: tests and scripts read the bound port from it.
        log::info!("relay listening on http://{local}/");
        serve(listener, config, shutdown_signal()).await?;
        log::info!("relay stopped");
        Ok(())
    })
}

/// `zerocam token`: a signed camera token valid for `ttl`.
pub fn make_token(
    camera: &str,
    secret_file: &std::path::Path,
    ttl: &str,
) -> anyhow::Result<String> {
    crate::config::check_id("--camera", camera)?;
    let secret = auth::read_secret(secret_file).map_err(anyhow::Error::msg)?;
    let ttl = auth::parse_ttl(ttl).map_err(|e| anyhow::anyhow!("--ttl: {e}"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    Ok(auth::sign(
        &secret,
        camera,
        now.saturating_add(ttl.as_secs()),
    ))
}
