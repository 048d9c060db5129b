//! The hub: per camera, the latest frame and its viewers.
//!
//! Each camera has a `watch` channel holding only the newest frame. A viewer
//! holds a receiver: whenever it is ready to send, it takes whatever is newest,
//! so a slow viewer skips frames (counted) and never holds back the camera or
//! other viewers. Frames are `Bytes`, shared by every viewer without copies;
//! at most one frame is pending per viewer.
//!
//! Anything a stranger can create, a stranger can exhaust: the hub knows at
//! most `server.max_cameras` cameras, and forgets an offline camera nobody
//! is waiting for after `server.forget_offline_after`. A new camera id
//! beyond the cap takes the place of the longest-offline camera without
//! viewers, or is refused when there is none.
//!
//! In a cluster (`[server.cluster]`), the hub also holds the cameras other
//! nodes hold ("remote" entries, kept by [`super::cluster`]), so that every
//! viewer route serves them alike; their frames arrive over NATS.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use super::prometheus::Histogram;
use crate::wire::jpeg::JpegError;

/// One validated frame as stored and fanned out.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The JPEG, shared by all viewers.
    pub jpeg: Bytes,
    /// The relay's own running count for this camera (1, 2, …): a viewer
    /// that sees index jump by more than one has skipped frames.
    pub index: u64,
    /// Capture time from the COM segment, µs since the Unix epoch.
    pub capture_us: Option<u64>,
    /// When the relay received it, µs since the Unix epoch.
    pub received_us: u64,
}

impl Frame {
    /// The best capture time known: the camera's, else the receipt time.
    pub fn taken_us(&self) -> u64 {
        self.capture_us.unwrap_or(self.received_us)
    }
}

/// Counters of one camera (monotonic, for `/metrics` and `/cameras`).
#[derive(Debug, Default)]
pub struct CameraCounters {
    pub frames_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Frames a slow viewer skipped.
    pub viewer_skipped: AtomicU64,
    /// Frames missing from the camera's `seq` (dropped on the camera or link).
    pub seq_gaps: AtomicU64,
    /// Rejected binary messages, by [`JpegError::index`].
    pub rejected: [AtomicU64; JpegError::ALL.len()],
    /// Text messages that were not understood.
    pub bad_text: AtomicU64,
    /// Connections (first included).
    pub connects: AtomicU64,
    /// Viewers closed because they took no bytes for the write timeout.
    pub viewers_stalled: AtomicU64,
    /// Settings changes sent to the camera through the settings API.
    pub settings_changes: AtomicU64,
    /// Settings changes refused, by [`SettingsReject::index`].
    pub settings_rejected: [AtomicU64; SettingsReject::ALL.len()],
}

/// Why a command could not be queued to a camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandError {
    /// No connection from the camera now.
    Offline,
    /// Its command queue is full (it is not reading them).
    Busy,
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CommandError::Offline => "offline",
            CommandError::Busy => "busy",
        })
    }
}

/// Why a settings change was refused (the `reason` label of
/// `zerocam_settings_rejected_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingsReject {
    /// The body named a bad field.
    BadRequest,
    /// No admin credentials.
    Unauthorized,
    /// Wrong admin credentials, or none configured.
    Forbidden,
    /// The camera is not connected.
    Offline,
    /// The camera did not answer in time.
    Timeout,
}

impl SettingsReject {
    /// Every reason, in index order.
    pub const ALL: [SettingsReject; 5] = [
        SettingsReject::BadRequest,
        SettingsReject::Unauthorized,
        SettingsReject::Forbidden,
        SettingsReject::Offline,
        SettingsReject::Timeout,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            SettingsReject::BadRequest => "bad_request",
            SettingsReject::Unauthorized => "unauthorized",
            SettingsReject::Forbidden => "forbidden",
            SettingsReject::Offline => "offline",
            SettingsReject::Timeout => "timeout",
        }
    }

    /// Index into per-reason counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Commands queued to one camera connection: a few at most, so a flood of
/// API calls cannot grow it.
pub const OUTBOX: usize = 8;

/// A command for a camera (the settings API's, the relay's own pause):
/// the wire's command, encoded where it is parsed.
pub use crate::wire::message::Command as ToCamera;

/// What the settings API knows of a camera: its last `settings` report
/// (numbered, so a caller can wait for the next one).
#[derive(Debug, Clone, Default)]
pub struct Reported {
    pub count: u64,
    pub settings: Option<Map<String, Value>>,
}

/// Mutable facts about a camera's current (or last) connection.
#[derive(Debug, Default)]
struct State {
    online: bool,
    /// Since when the camera has been offline (None while online).
    offline_since: Option<Instant>,
    generation: u64,
    kick: Option<oneshot::Sender<String>>,
    connected_since: Option<SystemTime>,
    hello: Option<Map<String, Value>>,
    stats: Option<Map<String, Value>>,
    last_frame_at: Option<Instant>,
    last_seq: Option<u64>,
    paused: bool,
    width: Option<u32>,
    height: Option<u32>,
    // Measured input rate.
    window_start: Option<Instant>,
    window_frames: u32,
    fps_in: f64,
}

/// A camera known to the relay (it stays known for a while after
/// disconnecting, so viewers can wait for it to come back).
#[derive(Debug)]
pub struct Camera {
    pub id: String,
    frames: watch::Sender<Option<Frame>>,
    viewers: watch::Sender<usize>,
    state: Mutex<State>,
    pub counters: CameraCounters,
    /// The current connection's command queue: (generation, sender).
    outbox: Mutex<Option<(u64, mpsc::Sender<ToCamera>)>>,
    /// The camera's last `settings`.
    reported: watch::Sender<Reported>,
    /// An explicit pause (settings API) holds until an explicit resume,
    /// across reconnects; the relay's own pause-when-unwatched does not
    /// lift it.
    user_paused: AtomicBool,
    /// Frames up to this index were captured before the camera was last
    /// paused: no viewer gets one as its first frame.
    stale_upto: AtomicU64,
    /// Set while another cluster node holds the camera.
    home: Mutex<Option<Remote>>,
    /// Viewers other cluster nodes have (part of the `viewers` count).
    remote_viewers: AtomicUsize,
    /// The hub's change signal (connections, viewers), for the cluster.
    changed: Arc<Notify>,
}

/// Where a remote camera is and what its node says of it.
#[derive(Debug, Clone)]
pub struct Remote {
    pub node: String,
    /// Its `/cameras` entry, as its node announced it.
    pub describe: Value,
}

/// Most cameras held by other nodes that one node keeps track of.
pub const MAX_REMOTE_CAMERAS: usize = 16_384;

/// Relay-wide state shared by all handlers.
#[derive(Debug)]
pub struct Hub {
    cameras: Mutex<HashMap<String, Arc<Camera>>>,
    /// Most cameras known at once.
    max_cameras: usize,
    /// An offline camera without viewers is forgotten after this.
    forget_after: Duration,
    /// Capture → egress latency of frames sent to viewers.
    pub latency: Histogram,
    /// Camera connections refused before the upgrade (401/403).
    pub auth_failures: AtomicU64,
    /// Camera connections closed because a newer one took the id.
    pub replaced: AtomicU64,
    /// Cameras closed for sending only garbage.
    pub garbage_closed: AtomicU64,
    /// Camera connections refused with 503: `max_cameras` known, all of
    /// them online or watched.
    pub refused_full: AtomicU64,
    /// Offline cameras forgotten (timed out, or evicted for a new id).
    pub forgotten: AtomicU64,
    /// Notified when a camera connects or goes, or its viewers change.
    changed: Arc<Notify>,
    /// This node's id in a cluster.
    node: OnceLock<String>,
}

/// Why a camera connection cannot be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// `max_cameras` are known and none may be forgotten.
    MaxCameras(usize),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the relay down with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What an ingest connection holds while it is the camera's current one.
/// Dropping it marks the camera offline (unless a newer connection took
/// over), however the connection ends, even before its upgrade completes.
pub struct Attached {
    pub camera: Arc<Camera>,
    pub generation: u64,
    /// Fires with a reason when a newer connection replaces this one.
    pub kicked: oneshot::Receiver<String>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.camera.detach(self.generation);
    }
}

impl Hub {
    /// A new, empty hub with the default limits.
    pub fn new() -> Arc<Hub> {
        Hub::with_limits(256, Duration::from_secs(600))
    }

    /// A new, empty hub knowing at most `max_cameras`, forgetting offline
    /// ones nobody watches after `forget_after`.
    pub fn with_limits(max_cameras: usize, forget_after: Duration) -> Arc<Hub> {
        Arc::new(Hub {
            cameras: Mutex::new(HashMap::new()),
            max_cameras: max_cameras.max(1),
            forget_after,
            latency: Histogram::default(),
            auth_failures: AtomicU64::new(0),
            replaced: AtomicU64::new(0),
            garbage_closed: AtomicU64::new(0),
            refused_full: AtomicU64::new(0),
            forgotten: AtomicU64::new(0),
            changed: Arc::new(Notify::new()),
            node: OnceLock::new(),
        })
    }

    /// Notified whenever a camera connects or goes, or its viewers change.
    pub fn changed(&self) -> Arc<Notify> {
        self.changed.clone()
    }

    /// Names this node (once, when it joins a cluster).
    pub fn set_node(&self, node: &str) {
        let _ = self.node.set(node.to_string());
    }

    /// This node's id in a cluster.
    pub fn node(&self) -> Option<&str> {
        self.node.get().map(String::as_str)
    }

    /// A camera's `/cameras` entry, with the node that holds it in a
    /// cluster.
    pub fn describe(&self, c: &Camera) -> Value {
        let mut v = c.describe();
        if let (Value::Object(m), Some(me)) = (&mut v, self.node()) {
            m.entry("node").or_insert_with(|| json!(me));
        }
        v
    }

    fn new_camera(&self, id: &str) -> Arc<Camera> {
        Arc::new(Camera {
            id: id.to_string(),
            frames: watch::channel(None).0,
            viewers: watch::channel(0).0,
            state: Mutex::new(State::default()),
            counters: CameraCounters::default(),
            outbox: Mutex::new(None),
            reported: watch::channel(Reported::default()).0,
            user_paused: AtomicBool::new(false),
            stale_upto: AtomicU64::new(0),
            home: Mutex::new(None),
            remote_viewers: AtomicUsize::new(0),
            changed: self.changed.clone(),
        })
    }

    /// Records that node `node` holds camera `id` (as it announced). A
    /// camera connected here is not taken over unless the announced
    /// connection is newer: then the local one is closed, and the entry
    /// turns remote once it has gone. Returns false when the local
    /// connection stays (it is the newer one).
    pub fn remote(&self, id: &str, node: &str, connected_at_us: u64, describe: &Value) -> bool {
        let cam = {
            let mut map = lock(&self.cameras);
            match map.get(id) {
                Some(c) => c.clone(),
                None => {
                    let remote = map.values().filter(|c| c.is_remote()).count();
                    if remote >= MAX_REMOTE_CAMERAS {
                        return true;
                    }
                    let c = self.new_camera(id);
                    map.insert(id.to_string(), c.clone());
                    c
                }
            }
        };
        if !cam.is_remote() && cam.online() {
            let me = self.node().unwrap_or_default();
            let theirs = (connected_at_us, node);
            if !crate::wire::cluster::wins(theirs, (cam.connected_at_us(), me)) {
                return false;
            }
            if cam.kick(format!(
                "replaced by a newer connection on relay node {node}"
            )) {
                self.replaced.fetch_add(1, Ordering::Relaxed);
            }
            return true;
        }
        *lock(&cam.home) = Some(Remote {
            node: node.to_string(),
            describe: describe.clone(),
        });
        let mut st = lock(&cam.state);
        if !st.online {
            st.online = true;
            st.offline_since = None;
        }
        st.paused = describe
            .get("paused")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        true
    }

    /// A remote camera no node announces any more: offline (kept while
    /// viewers wait for it to come back, here or on another node).
    pub fn remote_gone(&self, id: &str) {
        let Some(cam) = self.camera(id) else { return };
        if !cam.is_remote() {
            return;
        }
        let mut st = lock(&cam.state);
        if st.online {
            st.online = false;
            st.offline_since = Some(Instant::now());
            st.paused = false;
        }
    }

    /// The camera `id`, if it is known.
    pub fn camera(&self, id: &str) -> Option<Arc<Camera>> {
        lock(&self.cameras).get(id).cloned()
    }

    /// All known cameras, sorted by id.
    pub fn cameras(&self) -> Vec<Arc<Camera>> {
        let mut v: Vec<_> = lock(&self.cameras).values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// How many cameras are known.
    pub fn known(&self) -> usize {
        lock(&self.cameras).len()
    }

    /// Registers a viewer of camera `id`, if it is known. Under the same
    /// lock as forgetting, so a camera with a viewer is never forgotten.
    pub fn watch(&self, id: &str) -> Option<(Arc<Camera>, ViewerGuard)> {
        let map = lock(&self.cameras);
        let cam = map.get(id)?.clone();
        let guard = cam.add_viewer();
        Some((cam, guard))
    }

    /// Forgets cameras offline for `forget_after` with nobody watching.
    /// Returns how many.
    pub fn sweep(&self, now: Instant) -> usize {
        let mut map = lock(&self.cameras);
        let before = map.len();
        map.retain(|_, c| !c.forgettable(now, self.forget_after));
        let n = before - map.len();
        if n > 0 {
            self.forgotten.fetch_add(n as u64, Ordering::Relaxed);
            log::debug!("forgot {n} offline camera(s)");
        }
        n
    }

    /// Makes a new connection the current one for `id`, kicking the previous
    /// connection (if any) with a reason. A new id beyond `max_cameras`
    /// takes the place of the longest-offline camera nobody watches, or is
    /// refused when there is none.
    pub fn attach(&self, id: &str) -> Result<Attached, Full> {
        let camera = {
            let mut map = lock(&self.cameras);
            // Cameras other nodes hold do not count against this one's cap.
            let local = map.values().filter(|c| !c.is_remote()).count();
            if !map.contains_key(id) && local >= self.max_cameras {
                let victim = map
                    .values()
                    .filter(|c| !c.is_remote())
                    .filter_map(|c| c.evictable_since().map(|t| (t, c.id.clone())))
                    .min();
                let Some((_, old)) = victim else {
                    self.refused_full.fetch_add(1, Ordering::Relaxed);
                    return Err(Full::MaxCameras(self.max_cameras));
                };
                map.remove(&old);
                self.forgotten.fetch_add(1, Ordering::Relaxed);
                log::info!("camera {id}: forgetting offline camera {old} to make room");
            }
            match map.get(id) {
                Some(c) => c.clone(),
                None => {
                    let c = self.new_camera(id);
                    map.insert(id.to_string(), c.clone());
                    c
                }
            }
        };
        // Connected here now, whoever held it before. A pause its last node
        // held for a user holds here too, as across reconnects to one relay.
        if let Some(before) = lock(&camera.home).take() {
            let user = before.describe.get("paused_by").and_then(Value::as_str) == Some("user");
            camera.set_user_paused(user);
        }
        let (tx, rx) = oneshot::channel();
        let generation = {
            let mut st = lock(&camera.state);
            if let Some(old) = st.kick.take() {
                let _ = old.send("replaced by a newer connection".to_string());
                self.replaced.fetch_add(1, Ordering::Relaxed);
            }
            let generation = st.generation + 1;
            *st = State {
                online: true,
                generation,
                kick: Some(tx),
                connected_since: Some(SystemTime::now()),
                ..State::default()
            };
            generation
        };
        camera.counters.connects.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_one();
        Ok(Attached {
            camera,
            generation,
            kicked: rx,
        })
    }
}

/// Outcome of storing a frame.
pub struct Stored {
    /// Frames missing from the camera's sequence before this one.
    pub gap: u64,
}

impl Camera {
    /// Marks the connection `generation` gone, unless a newer one took over.
    pub fn detach(&self, generation: u64) {
        let mut st = lock(&self.state);
        if st.generation == generation && st.online {
            st.online = false;
            st.offline_since = Some(Instant::now());
            st.kick = None;
            st.paused = false;
            let mut outbox = lock(&self.outbox);
            if outbox.as_ref().is_some_and(|(g, _)| *g == generation) {
                *outbox = None;
            }
            self.changed.notify_one();
        }
    }

    /// Closes the current connection with `why`; false if there is none.
    pub fn kick(&self, why: String) -> bool {
        lock(&self.state)
            .kick
            .take()
            .is_some_and(|k| k.send(why).is_ok())
    }

    /// True while another cluster node holds the camera.
    pub fn is_remote(&self) -> bool {
        lock(&self.home).is_some()
    }

    /// The node holding the camera, when it is another one.
    pub fn home(&self) -> Option<String> {
        lock(&self.home).as_ref().map(|r| r.node.clone())
    }

    /// When the current (or last) local connection began, µs since the
    /// Unix epoch (0 if never).
    pub fn connected_at_us(&self) -> u64 {
        lock(&self.state)
            .connected_since
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_micros() as u64)
    }

    /// Sets how many viewers other nodes have (they count as viewers here:
    /// a camera is paused only when no node watches it).
    pub fn set_remote_viewers(&self, n: usize) {
        let old = self.remote_viewers.swap(n, Ordering::Relaxed);
        if old != n {
            self.viewers
                .send_modify(|v| *v = v.saturating_sub(old).saturating_add(n));
        }
    }

    /// Viewers on other nodes.
    pub fn remote_viewers(&self) -> usize {
        self.remote_viewers.load(Ordering::Relaxed)
    }

    /// Viewers on this node.
    pub fn local_viewers(&self) -> usize {
        self.viewer_count().saturating_sub(self.remote_viewers())
    }

    /// Opens the command queue of connection `generation`.
    pub fn open_outbox(&self, generation: u64) -> mpsc::Receiver<ToCamera> {
        let (tx, rx) = mpsc::channel(OUTBOX);
        *lock(&self.outbox) = Some((generation, tx));
        rx
    }

    /// Queues a command to the camera's current connection.
    pub fn command(&self, cmd: ToCamera) -> Result<(), CommandError> {
        let outbox = lock(&self.outbox);
        let Some((_, tx)) = outbox.as_ref() else {
            return Err(CommandError::Offline);
        };
        tx.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => CommandError::Busy,
            mpsc::error::TrySendError::Closed(_) => CommandError::Offline,
        })
    }

    /// Records the camera's `settings` report.
    pub fn set_settings(&self, m: Map<String, Value>) {
        self.reported.send_modify(|r| {
            r.count += 1;
            r.settings = Some(m);
        });
    }

    /// The camera's last `settings` report.
    pub fn reported(&self) -> Reported {
        self.reported.borrow().clone()
    }

    /// Watches the camera's `settings` reports.
    pub fn reported_watch(&self) -> watch::Receiver<Reported> {
        self.reported.subscribe()
    }

    /// Is an explicit pause in force?
    pub fn user_paused(&self) -> bool {
        self.user_paused.load(Ordering::Relaxed)
    }

    /// Sets or lifts the explicit pause.
    pub fn set_user_paused(&self, p: bool) {
        self.user_paused.store(p, Ordering::Relaxed);
        if p {
            self.mark_stale();
        }
    }

    /// The frames so far are from before a pause.
    fn mark_stale(&self) {
        let latest = self.counters.frames_in.load(Ordering::Relaxed);
        self.stale_upto.fetch_max(latest, Ordering::Relaxed);
    }

    /// Was `f` captured before the camera's last pause (too old to be a
    /// viewer's first frame)?
    pub fn is_stale(&self, f: &Frame) -> bool {
        f.index <= self.stale_upto.load(Ordering::Relaxed)
    }

    /// Who paused the camera, if anyone: `user` (settings API) or
    /// `no_viewers` (the relay's pause-when-unwatched).
    pub fn paused_by(&self) -> Option<&'static str> {
        if let Some(r) = lock(&self.home).as_ref() {
            // Another node holds it: what that node says.
            return match r.describe.get("paused_by").and_then(Value::as_str) {
                Some("user") => Some("user"),
                Some("no_viewers") => Some("no_viewers"),
                _ => None,
            };
        }
        if self.user_paused() {
            Some("user")
        } else if lock(&self.state).paused {
            Some("no_viewers")
        } else {
            None
        }
    }

    /// Counts a refused settings change.
    pub fn settings_rejected(&self, why: SettingsReject) {
        self.counters.settings_rejected[why.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// True while a camera connection is attached.
    pub fn online(&self) -> bool {
        lock(&self.state).online
    }

    /// Offline since when, if nobody watches it (a candidate for eviction).
    fn evictable_since(&self) -> Option<Instant> {
        if self.viewer_count() > 0 {
            return None;
        }
        let st = lock(&self.state);
        st.offline_since.filter(|_| !st.online)
    }

    /// Offline for `after` with nobody watching?
    fn forgettable(&self, now: Instant, after: Duration) -> bool {
        self.evictable_since()
            .is_some_and(|t| now.saturating_duration_since(t) >= after)
    }

    /// Stores a validated frame and wakes the viewers.
    pub fn publish(&self, jpeg: Bytes, seq: Option<u64>, capture_us: Option<u64>) -> Stored {
        let now = Instant::now();
        let len = jpeg.len() as u64;
        let paused;
        let gap = {
            let mut st = lock(&self.state);
            // The seq comes from the network: no arithmetic that can wrap.
            let gap = match (st.last_seq, seq) {
                (Some(last), Some(s)) => s.checked_sub(last).map_or(0, |d| d.saturating_sub(1)),
                _ => 0,
            };
            if seq.is_some() {
                st.last_seq = seq;
            }
            st.last_frame_at = Some(now);
            paused = st.paused || self.user_paused();
            let start = *st.window_start.get_or_insert(now);
            st.window_frames = st.window_frames.saturating_add(1);
            let el = now.duration_since(start).as_secs_f64();
            if el >= 1.0 {
                st.fps_in = st.window_frames as f64 / el;
                st.window_start = Some(now);
                st.window_frames = 0;
            }
            gap
        };
        let c = &self.counters;
        c.seq_gaps.fetch_add(gap, Ordering::Relaxed);
        let index = c.frames_in.fetch_add(1, Ordering::Relaxed) + 1;
        c.bytes_in.fetch_add(len, Ordering::Relaxed);
        if paused {
            // Sent before the camera took the pause: still an old picture.
            self.stale_upto.fetch_max(index, Ordering::Relaxed);
        }
        self.frames.send_replace(Some(Frame {
            jpeg,
            index,
            capture_us,
            received_us: crate::frame::now_us(),
        }));
        Stored { gap }
    }

    /// Counts a rejected binary message.
    pub fn reject(&self, why: JpegError) {
        self.counters.rejected[why.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Records the camera's `hello` (already bounded by the parser).
    pub fn set_hello(&self, v: Map<String, Value>) {
        let mut st = lock(&self.state);
        let side = |k: &str| {
            v.get(k)
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
        };
        st.width = side("width");
        st.height = side("height");
        st.hello = Some(v);
    }

    /// Records the camera's latest `stats` (already bounded by the parser).
    pub fn set_stats(&self, v: Map<String, Value>) {
        lock(&self.state).stats = Some(v);
    }

    /// A number from the camera's last `stats` message (`encoding_quality`,
    /// `link_kbit_s`, …), while it is online.
    pub fn stat(&self, key: &str) -> Option<f64> {
        let st = lock(&self.state);
        st.stats.as_ref().filter(|_| st.online)?.get(key)?.as_f64()
    }

    /// Records whether the relay has paused the camera for lack of viewers.
    pub fn set_paused(&self, p: bool) {
        lock(&self.state).paused = p;
        if p {
            self.mark_stale();
        }
    }

    /// True when the camera is paused, by the relay or by a user (for a
    /// camera another node holds, as that node says).
    pub fn paused(&self) -> bool {
        let remote = self.is_remote();
        (!remote && self.user_paused()) || lock(&self.state).paused
    }

    /// The newest frame, if any.
    pub fn latest(&self) -> Option<Frame> {
        self.frames.borrow().clone()
    }

    /// A receiver of the newest frame, for a viewer.
    pub fn subscribe(&self) -> watch::Receiver<Option<Frame>> {
        self.frames.subscribe()
    }

    /// Watches the number of viewers (for pause/resume).
    pub fn viewers_watch(&self) -> watch::Receiver<usize> {
        self.viewers.subscribe()
    }

    /// The current number of viewers.
    pub fn viewer_count(&self) -> usize {
        *self.viewers.borrow()
    }

    /// Registers a viewer for as long as the guard lives.
    fn add_viewer(self: &Arc<Self>) -> ViewerGuard {
        self.viewers.send_modify(|n| *n += 1);
        self.changed.notify_one();
        ViewerGuard {
            camera: self.clone(),
        }
    }

    /// Accounts one frame written to a viewer that last got `prev_index`.
    pub fn sent(&self, hub: &Hub, frame: &Frame, prev_index: u64) {
        let c = &self.counters;
        c.frames_out.fetch_add(1, Ordering::Relaxed);
        c.bytes_out
            .fetch_add(frame.jpeg.len() as u64, Ordering::Relaxed);
        if prev_index > 0 && frame.index > prev_index + 1 {
            c.viewer_skipped
                .fetch_add(frame.index - prev_index - 1, Ordering::Relaxed);
        }
        if let Some(ts) = frame.capture_us {
            let now = crate::frame::now_us();
            hub.latency
                .observe(Duration::from_micros(now.saturating_sub(ts)).as_secs_f64());
        }
    }

    /// Counts a viewer closed for taking no bytes.
    pub fn viewer_stalled(&self) {
        self.counters
            .viewers_stalled
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The `/cameras` entry (for a remote camera, its node's, with the
    /// node named and what this node knows of it).
    pub fn describe(&self) -> Value {
        if let Some(r) = lock(&self.home).clone() {
            let mut v = r.describe;
            if let Value::Object(m) = &mut v {
                m.insert("node".into(), json!(r.node));
                m.insert("online".into(), json!(self.online()));
            }
            return v;
        }
        let st = lock(&self.state);
        let since = st
            .connected_since
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64());
        let age_ms = st.last_frame_at.map(|t| t.elapsed().as_millis() as u64);
        let c = &self.counters;
        let rejected: u64 = c.rejected.iter().map(|a| a.load(Ordering::Relaxed)).sum();
        let hello = st.hello.clone().map_or(Value::Null, Value::Object);
        let stats = st.stats.clone().map_or(Value::Null, Value::Object);
        let auto_paused = st.paused;
        drop(st);
        let user_paused = self.user_paused();
        let paused_by = if user_paused {
            json!("user")
        } else if auto_paused {
            json!("no_viewers")
        } else {
            Value::Null
        };
        let st = lock(&self.state);
        json!({
            "id": self.id,
            "online": st.online,
            "connected_since": since,
            "width": st.width,
            "height": st.height,
            "fps": (st.fps_in * 10.0).round() / 10.0,
            "announced_fps": hello.get("fps"),
            "format": hello.get("format"),
            "version": hello.get("version"),
            "viewers": *self.viewers.borrow(),
            "paused": user_paused || auto_paused,
            "paused_by": paused_by,
            "last_frame_age_ms": age_ms,
            "frames_in": c.frames_in.load(Ordering::Relaxed),
            "frames_out": c.frames_out.load(Ordering::Relaxed),
            "reconnects": c.connects.load(Ordering::Relaxed).saturating_sub(1),
            "drops": {
                "camera_seq_gaps": c.seq_gaps.load(Ordering::Relaxed),
                "camera_reported": stats.get("dropped"),
                "rejected": rejected,
                "viewer_skipped": c.viewer_skipped.load(Ordering::Relaxed),
            },
            "viewers_stalled": c.viewers_stalled.load(Ordering::Relaxed),
            "camera_reconnects": stats.get("reconnects"),
            // What the link allows now (`relay.adapt`): the quality frames
            // are encoded at and the link's measured rate.
            "quality": stats.get("encoding_quality"),
            "configured_quality": stats.get("quality"),
            "link_kbit_s": stats.get("link_kbit_s"),
            "stats": stats,
        })
    }
}

/// Decrements the camera's viewer count when dropped.
#[derive(Debug)]
pub struct ViewerGuard {
    camera: Arc<Camera>,
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.camera
            .viewers
            .send_modify(|n| *n = n.saturating_sub(1));
        self.camera.changed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attach(hub: &Hub, id: &str) -> Attached {
        hub.attach(id).ok().unwrap()
    }

    #[test]
    fn publish_counts_gaps_and_viewers_see_the_newest() {
        let hub = Hub::new();
        let a = attach(&hub, "cam");
        let cam = a.camera.clone();
        let mut rx = cam.subscribe();
        for seq in [1, 2, 5] {
            cam.publish(Bytes::from_static(b"x"), Some(seq), None);
        }
        assert_eq!(cam.counters.seq_gaps.load(Ordering::Relaxed), 2);
        // Only the newest is pending: three publishes, one frame.
        let f = rx.borrow_and_update().clone().unwrap();
        assert_eq!(f.index, 3);
        assert!(!rx.has_changed().unwrap());
        cam.sent(&hub, &f, 1);
        assert_eq!(cam.counters.viewer_skipped.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn hostile_seqs_do_not_overflow() {
        let hub = Hub::new();
        let a = attach(&hub, "cam");
        let cam = a.camera.clone();
        for seq in [u64::MAX, 0, u64::MAX - 1, u64::MAX, 3] {
            cam.publish(Bytes::from_static(b"x"), Some(seq), None);
        }
        // Only forward jumps count: MAX-1 → MAX is no gap, 0 → MAX-1 is
        // MAX-2 frames (a hostile camera's claim, counted without wrapping).
        assert_eq!(cam.counters.seq_gaps.load(Ordering::Relaxed), u64::MAX - 2);
    }

    #[test]
    fn attach_kicks_the_previous_connection() {
        let hub = Hub::new();
        let mut first = attach(&hub, "cam");
        let second = attach(&hub, "cam");
        assert!(first.kicked.try_recv().unwrap().contains("replaced"));
        // The old connection's end must not take the new one offline.
        let cam = second.camera.clone();
        drop(first);
        assert!(cam.online());
        drop(second);
        assert!(!cam.online());
    }

    #[test]
    fn viewer_guard_counts() {
        let hub = Hub::new();
        let a = attach(&hub, "cam");
        let cam = a.camera.clone();
        let (_, g1) = hub.watch("cam").unwrap();
        let (_, g2) = hub.watch("cam").unwrap();
        assert_eq!(cam.viewer_count(), 2);
        drop(g1);
        drop(g2);
        assert_eq!(cam.viewer_count(), 0);
        assert!(hub.watch("nope").is_none());
    }

    #[test]
    fn offline_cameras_are_forgotten_unless_watched() {
        let hub = Hub::with_limits(10, Duration::from_secs(600));
        let a = attach(&hub, "gone");
        let b = attach(&hub, "watched");
        let c = attach(&hub, "online");
        a.camera.detach(a.generation);
        b.camera.detach(b.generation);
        let (_, guard) = hub.watch("watched").unwrap();
        let now = Instant::now();
        assert_eq!(hub.sweep(now + Duration::from_secs(599)), 0);
        assert_eq!(hub.sweep(now + Duration::from_secs(601)), 1);
        assert!(hub.camera("gone").is_none());
        assert!(hub.camera("watched").is_some(), "a viewer waits for it");
        assert!(hub.camera("online").is_some());
        drop(guard);
        assert_eq!(hub.sweep(now + Duration::from_secs(601)), 1);
        assert_eq!(hub.known(), 1);
        assert_eq!(hub.forgotten.load(Ordering::Relaxed), 2);
        drop(c);
    }

    #[test]
    fn the_camera_cap_evicts_the_longest_offline_or_refuses() {
        let hub = Hub::with_limits(3, Duration::from_secs(600));
        let a = attach(&hub, "a");
        let b = attach(&hub, "b");
        let _c = attach(&hub, "c");
        // All online: a fourth id is refused.
        assert_eq!(hub.attach("d").err(), Some(Full::MaxCameras(3)));
        assert_eq!(hub.refused_full.load(Ordering::Relaxed), 1);
        // b goes offline first, then a: b is the longest offline.
        b.camera.detach(b.generation);
        std::thread::sleep(Duration::from_millis(5));
        a.camera.detach(a.generation);
        assert!(hub.attach("d").is_ok());
        assert!(hub.camera("b").is_none(), "the longest-offline one went");
        assert!(hub.camera("a").is_some());
        // A known id is never refused, even at the cap.
        assert!(hub.attach("a").is_ok());
        // Thousands of one-shot ids: the map stays at the cap.
        for i in 0..2000 {
            if let Ok(x) = hub.attach(&format!("oneshot{i}")) {
                x.camera.detach(x.generation);
            }
        }
        assert!(hub.known() <= 3);
    }
    #[test]
    fn remote_cameras_are_served_like_local_ones_and_bounded_apart() {
        let hub = Hub::with_limits(1, Duration::from_secs(600));
        hub.set_node("a");
        assert!(hub.remote("x", "b", 10, &json!({"id": "x", "paused": true})));
        let x = hub.camera("x").unwrap();
        assert!(x.is_remote() && x.online() && x.paused());
        assert_eq!(x.home().as_deref(), Some("b"));
        let d = hub.describe(&x);
        assert_eq!(d["node"], "b", "{d}");
        // Remote entries do not take the local cap.
        let local = attach(&hub, "mine");
        assert_eq!(hub.describe(&local.camera)["node"], "a");
        // A viewer here is a local viewer of a remote camera.
        let (_, g) = hub.watch("x").unwrap();
        assert_eq!((x.local_viewers(), x.remote_viewers()), (1, 0));
        drop(g);
        // Gone from every presence: offline, then forgettable.
        hub.remote_gone("x");
        assert!(!x.online() && x.is_remote());
        assert_eq!(hub.sweep(Instant::now() + Duration::from_secs(601)), 1);
        assert!(hub.camera("x").is_none());
    }

    #[test]
    fn remote_viewers_count_toward_pausing() {
        let hub = Hub::new();
        let a = attach(&hub, "cam");
        let cam = a.camera.clone();
        let viewers = cam.viewers_watch();
        let (_, g) = hub.watch("cam").unwrap();
        cam.set_remote_viewers(3);
        assert_eq!(*viewers.borrow(), 4);
        assert_eq!((cam.local_viewers(), cam.remote_viewers()), (1, 3));
        cam.set_remote_viewers(0);
        drop(g);
        assert_eq!(*viewers.borrow(), 0);
    }

    #[test]
    fn a_camera_is_live_once_in_the_cluster_the_newer_connection_wins() {
        let hub = Hub::new();
        hub.set_node("a");
        let mut local = attach(&hub, "cam");
        let at = local.camera.connected_at_us();
        // Another node announces an older connection: ours stays.
        assert!(!hub.remote("cam", "b", at - 1, &json!({})));
        assert!(local.kicked.try_recv().is_err());
        assert!(!local.camera.is_remote());
        // A newer one: ours is closed, naming the node.
        assert!(hub.remote("cam", "b", at + 1, &json!({})));
        let why = local.kicked.try_recv().unwrap();
        assert!(why.contains("relay node b"), "{why}");
        assert_eq!(hub.replaced.load(Ordering::Relaxed), 1);
        // Once it has gone, the entry turns remote.
        let cam = local.camera.clone();
        drop(local);
        hub.remote("cam", "b", at + 1, &json!({}));
        assert_eq!(cam.home().as_deref(), Some("b"));
        // The camera coming back here makes it local again.
        let back = attach(&hub, "cam");
        assert!(!back.camera.is_remote() && back.camera.online());
        assert!(!back.camera.user_paused());
    }

    #[test]
    fn a_users_pause_follows_the_camera_to_another_node() {
        let hub = Hub::new();
        hub.set_node("b");
        hub.remote("cam", "a", 5, &json!({"paused": true, "paused_by": "user"}));
        let cam = hub.camera("cam").unwrap();
        assert_eq!(cam.paused_by(), Some("user"));
        assert!(cam.paused() && !cam.user_paused());
        // The camera moves here: the pause holds, and is said to it again.
        let here = attach(&hub, "cam");
        assert!(here.camera.user_paused());
        assert_eq!(here.camera.paused_by(), Some("user"));
    }
}
