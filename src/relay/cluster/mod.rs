//! Relay nodes sharing cameras over NATS (`[server.cluster]`,
//! `zerocam relay --cluster nats://HOST:PORT`).
//!
//! Each node announces the cameras connected to it and the remote cameras
//! it has viewers for ([`Presence`]); from those, every node keeps
//! the others' cameras in its hub (so every viewer route serves them), and
//! the node holding a camera publishes its frames on NATS only while some
//! other node watches it. Frames keep latest-frame semantics on both ends:
//! the sender has one frame in flight per camera (publish, then flush) and
//! skips what came meanwhile; the receiver drains its subscription to the
//! newest frame. Both count what they skip. Viewer counts are
//! cluster-wide (a camera pauses only when no node watches it), settings
//! requests go to the node holding the camera, and one camera id is live
//! once: a newer connection on another node replaces the older one.
//!
//! NATS down: every node keeps serving its own cameras to its own viewers;
//! the client reconnects by itself and the cluster heals from presence.
//!
//! Files: [`crate::wire::cluster`] (subjects and message bytes, pure; with
//! the other wire code so that it is fuzzed without the relay), [`members`]
//! (who holds and watches what, pure), this file (the NATS connection and
//! tasks), [`stats`] (counters for `/metrics`).

pub mod members;
pub mod stats;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::connection::State as NatsState;
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

use self::members::Members;
use self::stats::{ClusterStats, DropReason};
use super::App;
use super::config::Cluster as ClusterConfig;
use super::hub::Camera;
use crate::wire::cluster::{self as cluster_wire, Announced, Presence, RpcReply, RpcRequest};
use crate::wire::{com, jpeg};

/// A changed hub is announced after this pause (connections and viewers
/// tend to come in bursts).
const DEBOUNCE: Duration = Duration::from_millis(20);
/// How long a settings request to another node may take (the camera's own
/// answer may take 5 s).
const RPC_TIMEOUT: Duration = Duration::from_secs(8);
/// How long one frame may take to reach NATS before the link counts as
/// stalled (the frame is dropped and counted).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// This node's handle on the cluster: the NATS client and the counters.
#[derive(Debug)]
pub struct Cluster {
    client: async_nats::Client,
    pub config: ClusterConfig,
    pub stats: Arc<ClusterStats>,
}

/// Connects to NATS (in the background: a relay starts, and serves its own
/// cameras, while NATS is down).
pub async fn connect(config: ClusterConfig) -> anyhow::Result<Arc<Cluster>> {
    let stats = Arc::new(ClusterStats::default());
    let events = stats.clone();
    let url = config.url.clone();
    let mut opts = match (&config.user, &config.token, &config.creds) {
        (Some((u, p)), _, _) => {
            async_nats::ConnectOptions::with_user_and_password(u.clone(), p.clone())
        }
        (_, Some(t), _) => async_nats::ConnectOptions::with_token(t.clone()),
        (_, _, Some(path)) => async_nats::ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|e| anyhow::anyhow!("server.cluster.creds: {}: {e}", path.display()))?,
        _ => async_nats::ConnectOptions::new(),
    };
    if let Some(ca) = &config.ca {
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    let opts = opts
        .name(format!("zerocam relay {}", config.node))
        .retry_on_initial_connect()
        .max_reconnects(None)
        // Frames are dropped, not queued, when this node is slow.
        .subscription_capacity(64)
        .ping_interval(config.presence_timeout)
        .connection_timeout(Duration::from_secs(5))
        .event_callback(move |event| {
            let stats = events.clone();
            let url = url.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        if !stats.connected.swap(true, Ordering::Relaxed) {
                            log::info!("connected to NATS at {url}");
                        }
                    }
                    async_nats::Event::Disconnected => {
                        if stats.connected.swap(false, Ordering::Relaxed) {
                            log::warn!(
                                "lost NATS; serving this node's cameras only until it is back"
                            );
                        }
                    }
                    async_nats::Event::SlowConsumer(_) => {
                        stats.count_drop(DropReason::SlowConsumer, 1)
                    }
                    other => log::debug!("NATS: {other}"),
                }
            }
        });
    let servers = config.url.split(',').count();
    log::info!(
        "cluster {}: node {} joining through NATS ({} server{})",
        config.name,
        config.node,
        servers,
        if servers == 1 { "" } else { "s" }
    );
    // Several servers of one NATS cluster, separated by commas: tried in
    // turn, at start and on every reconnect.
    let servers: Vec<&str> = config.url.split(',').map(str::trim).collect();
    let client = opts
        .connect(servers)
        .await
        .map_err(|e| anyhow::anyhow!("server.cluster.url: {e}"))?;
    Ok(Arc::new(Cluster {
        client,
        config,
        stats,
    }))
}

impl Cluster {
    fn connected(&self) -> bool {
        self.client.connection_state() == NatsState::Connected
    }

    /// Publishes and waits until the message has left for NATS (so one
    /// message at most is in flight per caller), or [`PUBLISH_TIMEOUT`].
    async fn publish(&self, subject: String, payload: Bytes) -> bool {
        let sent = timeout(PUBLISH_TIMEOUT, async {
            self.client.publish(subject, payload).await?;
            self.client.flush().await.map_err(async_nats::Error::from)
        })
        .await;
        matches!(sent, Ok(Ok(())))
    }

    /// Asks `node` (which holds the camera) to answer a settings request.
    pub async fn request(&self, node: &str, req: &RpcRequest) -> RpcReply {
        let subject = cluster_wire::rpc_subject(&self.config.name, node);
        let asked = timeout(
            RPC_TIMEOUT,
            self.client.request(subject, Bytes::from(req.encode())),
        )
        .await;
        let plain = |status: u16, body: String| RpcReply {
            status,
            json: false,
            body,
        };
        match asked {
            Ok(Ok(m)) => RpcReply::decode(&m.payload)
                .unwrap_or_else(|e| plain(502, format!("relay node {node} answered badly: {e}"))),
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => plain(
                404,
                format!(
                    "camera `{}` is offline (relay node {node} is gone)",
                    req.camera
                ),
            ),
            Ok(Err(e)) => plain(
                503,
                format!("cannot reach relay node {node} through the cluster: {e}"),
            ),
            Err(_) => plain(
                504,
                format!(
                    "relay node {node} did not answer within {} s",
                    RPC_TIMEOUT.as_secs()
                ),
            ),
        }
    }
}

/// Per-camera tasks: frames out (this node holds the camera, another
/// watches it) or in (another node holds it, this one watches it).
#[derive(Default)]
struct Tasks {
    forwarders: HashMap<String, JoinHandle<()>>,
    receivers: HashMap<String, JoinHandle<()>>,
}

impl Tasks {
    /// Runs the task for `id` while `want` holds: started (again, if it
    /// ended) when wanted, stopped when not.
    fn keep(
        map: &mut HashMap<String, JoinHandle<()>>,
        id: &str,
        want: bool,
        start: impl FnOnce() -> JoinHandle<()>,
    ) {
        if !want {
            if let Some(h) = map.remove(id) {
                h.abort();
            }
        } else if map.get(id).is_none_or(|h| h.is_finished()) {
            map.insert(id.to_string(), start());
        }
    }

    fn stop(map: &mut HashMap<String, JoinHandle<()>>, id: &str) {
        if let Some(h) = map.remove(id) {
            h.abort();
        }
    }

    fn stop_all(&mut self) {
        for (_, h) in self.forwarders.drain().chain(self.receivers.drain()) {
            h.abort();
        }
    }
}

/// What presence says that other nodes act on at once (not the counters
/// in the descriptions, which go out with the heartbeat).
type Shape = (Vec<(String, u64, bool)>, BTreeMap<String, u32>);

/// Runs the cluster side of the relay until it stops.
pub async fn run(app: Arc<App>, cluster: Arc<Cluster>) {
    let cfg = &cluster.config;
    let me = cfg.node.clone();
    app.hub.set_node(&me);
    let heartbeat = cfg.presence_timeout / 4;
    let client = cluster.client.clone();
    let mut presence = match client
        .subscribe(cluster_wire::presence_subject(&cfg.name))
        .await
    {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot subscribe to presence: {e}; not clustering");
            return;
        }
    };
    let mut rpc = match client
        .subscribe(cluster_wire::rpc_subject(&cfg.name, &me))
        .await
    {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot subscribe to requests: {e}; not clustering");
            return;
        }
    };
    let mut members = Members::new(&me, cfg.presence_timeout);
    let mut tasks = Tasks::default();
    let changed = app.hub.changed();
    let mut shutdown = app.shutdown.clone();
    let mut tick = tokio::time::interval(heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_shape: Option<Shape> = None;
    let mut last_sent: Option<Instant> = None;
    let mut told_unreachable = false;
    let mut checked_payload = false;
    let started = Instant::now();
    loop {
        tokio::select! {
            m = presence.next() => {
                let Some(m) = m else { break };
                match Presence::decode(&m.payload) {
                    Ok(p) => {
                        let node = p.node.clone();
                        let leaving = p.leaving;
                        let known = members.others().contains(&node);
                        if members.apply(p, std::time::Instant::now()) {
                            if leaving {
                                log::info!("node {node} left");
                            } else if !known {
                                log::info!("node {node} joined");
                            }
                        }
                    }
                    Err(e) => log::warn!("ignoring a presence message: {e}"),
                }
            }
            m = rpc.next() => {
                let Some(m) = m else { break };
                tokio::spawn(answer(app.clone(), client.clone(), m));
            }
            _ = changed.notified() => tokio::time::sleep(DEBOUNCE).await,
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        for node in members.expire(std::time::Instant::now()) {
            log::warn!(
                "node {node} silent for {:.0} s, dropped with its cameras",
                cfg.presence_timeout.as_secs_f64()
            );
        }
        if !cluster.connected()
            && !told_unreachable
            && started.elapsed() > Duration::from_secs(5)
            && !cluster.stats.connected.load(Ordering::Relaxed)
        {
            log::warn!("NATS unreachable; serving this node's cameras only, retrying");
            told_unreachable = true;
        }
        if !checked_payload && cluster.connected() {
            checked_payload = true;
            let max = cluster.client.max_payload();
            if max < app.config.max_frame_bytes {
                // Two lines: what happens, then what to do.
                log::warn!(
                    "NATS max_payload {max} B is below server.max_frame_bytes {} B",
                    app.config.max_frame_bytes
                );
                log::warn!("bigger frames stay on their node; raise max_payload in nats-server");
            }
        }
        let shape = reconcile(&app, &cluster, &members, &mut tasks);
        let due = last_sent.is_none_or(|t| t.elapsed() >= heartbeat);
        if (due || last_shape.as_ref() != Some(&shape)) && cluster.connected() {
            let p = own_presence(&app, &me, false);
            if publish_presence(&cluster, &p).await {
                last_sent = Some(Instant::now());
                last_shape = Some(shape);
            }
        }
        cluster
            .stats
            .nodes
            .store(members.others().len() + 1, Ordering::Relaxed);
    }
    tasks.stop_all();
    if cluster.connected() {
        publish_presence(&cluster, &own_presence(&app, &me, true)).await;
    }
}

async fn publish_presence(cluster: &Cluster, p: &Presence) -> bool {
    let subject = cluster_wire::presence_subject(&cluster.config.name);
    cluster.publish(subject, Bytes::from(p.encode())).await
}

/// This node's presence: its connected cameras, and the remote cameras it
/// has viewers for.
fn own_presence(app: &App, me: &str, leaving: bool) -> Presence {
    let mut p = Presence {
        v: cluster_wire::VERSION,
        node: me.to_string(),
        leaving,
        cameras: Vec::new(),
        interest: BTreeMap::new(),
    };
    if leaving {
        return p;
    }
    for cam in app.hub.cameras() {
        if cam.is_remote() {
            let n = cam.local_viewers();
            if n > 0 {
                p.interest
                    .insert(cam.id.clone(), u32::try_from(n).unwrap_or(u32::MAX));
            }
        } else if cam.online() {
            p.cameras.push(Announced {
                id: cam.id.clone(),
                connected_at_us: cam.connected_at_us(),
                describe: app.hub.describe(&cam),
            });
        }
    }
    p
}

/// Brings the hub and the per-camera tasks in line with what the members
/// say. Returns the shape of this node's presence.
fn reconcile(
    app: &Arc<App>,
    cluster: &Arc<Cluster>,
    members: &Members,
    tasks: &mut Tasks,
) -> Shape {
    let hub = &app.hub;
    let remote = members.remote_cameras();
    for (id, (node, a)) in &remote {
        hub.remote(id, node, a.connected_at_us, &a.describe);
    }
    let mut cameras = Vec::new();
    let mut interest = BTreeMap::new();
    let mut remote_viewers = 0usize;
    for cam in hub.cameras() {
        let id = cam.id.clone();
        if cam.is_remote() {
            if !remote.contains_key(&id) {
                hub.remote_gone(&id);
            }
            cam.set_remote_viewers(0);
            let local = cam.local_viewers();
            if local > 0 {
                interest.insert(id.clone(), u32::try_from(local).unwrap_or(u32::MAX));
            }
            Tasks::keep(&mut tasks.receivers, &id, local > 0, || {
                tokio::spawn(receive(app.clone(), cluster.clone(), cam.clone()))
            });
            Tasks::stop(&mut tasks.forwarders, &id);
        } else {
            let online = cam.online();
            let n = if online {
                members.interest(&id) as usize
            } else {
                0
            };
            cam.set_remote_viewers(n);
            remote_viewers += n;
            if online {
                cameras.push((id.clone(), cam.connected_at_us(), cam.paused()));
            }
            Tasks::keep(&mut tasks.forwarders, &id, online && n > 0, || {
                tokio::spawn(forward(cluster.clone(), cam.clone()))
            });
            Tasks::stop(&mut tasks.receivers, &id);
        }
    }
    // Tasks of cameras the hub forgot.
    for map in [&mut tasks.forwarders, &mut tasks.receivers] {
        map.retain(|id, h| {
            let keep = hub.camera(id).is_some();
            if !keep {
                h.abort();
            }
            keep
        });
    }
    cluster
        .stats
        .remote_viewers
        .store(remote_viewers, Ordering::Relaxed);
    (cameras, interest)
}

/// Publishes a local camera's frames while other nodes watch it: one frame
/// in flight, the newest next; skipped ones are counted.
async fn forward(cluster: Arc<Cluster>, cam: Arc<Camera>) {
    let subject = cluster_wire::frames_subject(&cluster.config.name, &cam.id);
    let stats = &cluster.stats;
    let mut rx = cam.subscribe();
    rx.mark_changed();
    let mut last = 0u64;
    let mut told_too_large = false;
    while rx.changed().await.is_ok() {
        let Some(frame) = rx.borrow_and_update().clone() else {
            continue;
        };
        if frame.index == last {
            continue;
        }
        if last > 0 && frame.index > last + 1 {
            stats.count_drop(DropReason::Backpressure, frame.index - last - 1);
        }
        last = frame.index;
        if !cluster.connected() {
            stats.count_drop(DropReason::Disconnected, 1);
            continue;
        }
        let max = cluster.client.max_payload();
        if frame.jpeg.len() > max {
            stats.count_drop(DropReason::TooLarge, 1);
            if !told_too_large {
                log::warn!(
                    "camera {}: a {} B frame is over NATS max_payload ({max} B)",
                    cam.id,
                    frame.jpeg.len()
                );
                log::warn!("raise max_payload in nats-server to server.max_frame_bytes");
                told_too_large = true;
            }
            continue;
        }
        let len = frame.jpeg.len() as u64;
        let sent = cluster.publish(subject.clone(), frame.jpeg).await;
        if sent {
            stats.sent(len);
        } else {
            stats.count_drop(DropReason::Disconnected, 1);
        }
    }
}

/// Takes a remote camera's frames from NATS while this node watches it:
/// always the newest waiting one (older ones are counted, never queued).
async fn receive(app: Arc<App>, cluster: Arc<Cluster>, cam: Arc<Camera>) {
    let subject = cluster_wire::frames_subject(&cluster.config.name, &cam.id);
    let mut sub = match cluster.client.subscribe(subject).await {
        Ok(s) => s,
        Err(e) => {
            log::warn!("cannot subscribe to camera {}'s frames: {e}", cam.id);
            return;
        }
    };
    let stats = &cluster.stats;
    while let Some(mut m) = sub.next().await {
        while let Some(Some(newer)) = sub.next().now_or_never() {
            stats.count_drop(DropReason::Stale, 1);
            m = newer;
        }
        let data = m.payload;
        stats.received(data.len() as u64);
        if jpeg::check_frame(&data, app.config.max_frame_bytes).is_err() {
            stats.count_drop(DropReason::Invalid, 1);
            continue;
        }
        let meta = com::parse(&data);
        cam.publish(data, meta.map(|m| m.seq), meta.map(|m| m.ts_us));
    }
}

/// Answers another node's settings request for a camera connected here.
async fn answer(app: Arc<App>, client: async_nats::Client, m: async_nats::Message) {
    let Some(reply_to) = m.reply else { return };
    let reply = match RpcRequest::decode(&m.payload) {
        Ok(req) => match req.method.as_str() {
            "GET" => super::camera_settings::local_get(&app, &req.camera),
            _ => super::camera_settings::local_post(&app, &req.camera, req.body.as_bytes()).await,
        },
        Err(e) => RpcReply {
            status: 400,
            json: false,
            body: format!("bad cluster request: {e}"),
        },
    };
    let _ = timeout(
        PUBLISH_TIMEOUT,
        client.publish(reply_to, Bytes::from(reply.encode())),
    )
    .await;
}
