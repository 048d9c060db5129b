//! `zerocam demo`: the relay and one camera streaming to it over a real
//! WebSocket on loopback, in one process. The one place that runs both
//! sides, so neither imports the other.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

use crate::camera::Camera;
use crate::config::{Config, FileConfig, Overrides};
use crate::relay::{self, ServerConfig};

/// `zerocam demo` options.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub listen: SocketAddr,
    pub source: String,
    pub size: Option<String>,
    pub fps: Option<u32>,
}

/// `zerocam demo`: the relay plus one camera streaming to it over a real
/// WebSocket on loopback.
pub fn run(o: DemoOptions) -> anyhow::Result<()> {
    let token = format!("demo-{:016x}", fastrand::u64(..));
    let config = ServerConfig {
        listen: o.listen,
        camera_auth: relay::auth::CameraAuth {
            shared: vec![token.clone()],
            ..Default::default()
        },
        // The settings panel works out of the box, from this machine only.
        admin_loopback: true,
        ..ServerConfig::default()
    };
    let rt = relay::runtime()?;
    let (listener, local) = rt.block_on(relay::bind(o.listen))?;
    let port = local.port();
    let ingest = format!("ws://127.0.0.1:{port}/ingest/demo");
    let cfg = Config::build(
        FileConfig::default(),
        &Overrides {
            relay: vec![ingest],
            camera: Some("demo".into()),
            token: Some(token),
            source: Some(o.source.clone()),
            size: o.size.clone(),
            fps: o.fps,
            ..Overrides::default()
        },
        true,
    )?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut server = rt.spawn(relay::serve(listener, config, async move {
        let _ = stop_rx.await;
    }));
    log::info!("relay listening on http://{local}/");
    let camera = Camera::start(&cfg).context("cannot start the camera")?;
    let shown = if local.ip().is_unspecified() {
        format!("http://127.0.0.1:{port}/")
    } else {
        format!("http://{local}/")
    };
    println!("zerocam demo: open {shown} in a browser (Ctrl-C to stop)");
    println!("zerocam demo: settings may be changed from this machine, no token needed");
    let early = rt.block_on(async {
        tokio::select! {
            _ = relay::shutdown_signal() => None,
            r = &mut server => Some(r),
            _ = async {
                // The camera thread ending on its own is a failure to report.
                while !camera.is_finished() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            } => None,
        }
    });
    // Camera first, so it closes its link cleanly instead of reconnecting
    // to a relay that is going away; the runtime keeps serving meanwhile.
    let camera_result = camera.stop();
    let _ = stop_tx.send(());
    let served = match early {
        Some(r) => r,
        None => rt.block_on(server),
    };
    camera_result.context("demo camera stopped")?;
    served.context("relay task failed")??;
    log::info!("demo stopped");
    Ok(())
}
