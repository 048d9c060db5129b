//! The hub: per camera, the latest frame and its viewers.
//!
//! Each camera has a `watch` channel holding only the newest frame. A viewer
//! holds a receiver: whenever it is ready to send, it takes whatever is newest,
//! so a slow viewer skips frames (counted) and never holds back the camera or
//! other viewers. Frames are `Bytes`, shared by every viewer without copies;
//! at most one frame is pending per viewer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};

use super::jpeg::Reject;
use super::metrics::Histogram;

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
    /// Rejected binary messages, by [`Reject`] index.
    pub rejected: [AtomicU64; 6],
    /// Text messages that were not understood.
    pub bad_text: AtomicU64,
    /// Connections (first included).
    pub connects: AtomicU64,
}

/// Mutable facts about a camera's current (or last) connection.
#[derive(Debug, Default)]
struct State {
    online: bool,
    generation: u64,
    kick: Option<oneshot::Sender<&'static str>>,
    connected_since: Option<SystemTime>,
    hello: Option<Value>,
    stats: Option<Value>,
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

/// A camera known to the relay (it stays known after disconnecting, so
/// viewers can wait for it to come back).
#[derive(Debug)]
pub struct Camera {
    pub id: String,
    frames: watch::Sender<Option<Frame>>,
    viewers: watch::Sender<usize>,
    state: Mutex<State>,
    pub counters: CameraCounters,
}

/// Relay-wide state shared by all handlers.
#[derive(Debug, Default)]
pub struct Hub {
    cameras: Mutex<HashMap<String, Arc<Camera>>>,
    /// Capture → egress latency of frames sent to viewers.
    pub latency: Histogram,
    /// Camera connections refused before the upgrade (401/403).
    pub auth_failures: AtomicU64,
    /// Camera connections closed because a newer one took the id.
    pub replaced: AtomicU64,
    /// Cameras closed for sending only garbage.
    pub garbage_closed: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the relay down with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What an ingest connection holds while it is the camera's current one.
pub struct Attached {
    pub camera: Arc<Camera>,
    pub generation: u64,
    /// Fires with a reason when a newer connection replaces this one.
    pub kicked: oneshot::Receiver<&'static str>,
}

impl Hub {
    /// A new, empty hub.
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    /// The camera `id`, if it ever connected.
    pub fn camera(&self, id: &str) -> Option<Arc<Camera>> {
        lock(&self.cameras).get(id).cloned()
    }

    /// All known cameras, sorted by id.
    pub fn cameras(&self) -> Vec<Arc<Camera>> {
        let mut v: Vec<_> = lock(&self.cameras).values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Makes a new connection the current one for `id`, kicking the previous
    /// connection (if any) with a reason.
    pub fn attach(&self, id: &str) -> Attached {
        let camera = lock(&self.cameras)
            .entry(id.to_string())
            .or_insert_with(|| {
                Arc::new(Camera {
                    id: id.to_string(),
                    frames: watch::channel(None).0,
                    viewers: watch::channel(0).0,
                    state: Mutex::new(State::default()),
                    counters: CameraCounters::default(),
                })
            })
            .clone();
        let (tx, rx) = oneshot::channel();
        let generation = {
            let mut st = lock(&camera.state);
            if let Some(old) = st.kick.take() {
                let _ = old.send("replaced by a newer connection for this camera id");
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
        Attached {
            camera,
            generation,
            kicked: rx,
        }
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
        if st.generation == generation {
            st.online = false;
            st.kick = None;
            st.paused = false;
        }
    }

    /// True while a camera connection is attached.
    pub fn online(&self) -> bool {
        lock(&self.state).online
    }

    /// Stores a validated frame and wakes the viewers.
    pub fn publish(&self, jpeg: Bytes, seq: Option<u64>, capture_us: Option<u64>) -> Stored {
        let now = Instant::now();
        let len = jpeg.len() as u64;
        let gap = {
            let mut st = lock(&self.state);
            let gap = match (st.last_seq, seq) {
                (Some(last), Some(s)) if s > last + 1 => s - last - 1,
                _ => 0,
            };
            if seq.is_some() {
                st.last_seq = seq;
            }
            st.last_frame_at = Some(now);
            let start = *st.window_start.get_or_insert(now);
            st.window_frames += 1;
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
        self.frames.send_replace(Some(Frame {
            jpeg,
            index,
            capture_us,
        }));
        Stored { gap }
    }

    /// Counts a rejected binary message.
    pub fn reject(&self, why: Reject) {
        self.counters.rejected[why.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Records the camera's `hello`.
    pub fn set_hello(&self, v: Value) {
        let mut st = lock(&self.state);
        st.width = v.get("width").and_then(Value::as_u64).map(|n| n as u32);
        st.height = v.get("height").and_then(Value::as_u64).map(|n| n as u32);
        st.hello = Some(v);
    }

    /// Records the camera's latest `stats`.
    pub fn set_stats(&self, v: Value) {
        lock(&self.state).stats = Some(v);
    }

    /// Records whether the relay has paused the camera.
    pub fn set_paused(&self, p: bool) {
        lock(&self.state).paused = p;
    }

    /// True when the relay has paused this camera.
    pub fn paused(&self) -> bool {
        lock(&self.state).paused
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
    pub fn add_viewer(self: &Arc<Self>) -> ViewerGuard {
        self.viewers.send_modify(|n| *n += 1);
        ViewerGuard {
            camera: self.clone(),
        }
    }

    /// Accounts one frame sent to a viewer that last sent `prev_index`.
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

    /// The `/cameras` entry.
    pub fn describe(&self) -> Value {
        let st = lock(&self.state);
        let since = st
            .connected_since
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64());
        let age_ms = st.last_frame_at.map(|t| t.elapsed().as_millis() as u64);
        let c = &self.counters;
        let rejected: u64 = c.rejected.iter().map(|a| a.load(Ordering::Relaxed)).sum();
        let hello = st.hello.clone().unwrap_or(Value::Null);
        let stats = st.stats.clone().unwrap_or(Value::Null);
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
            "paused": st.paused,
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
            "camera_reconnects": stats.get("reconnects"),
            "stats": stats,
        })
    }
}

/// Decrements the camera's viewer count when dropped.
pub struct ViewerGuard {
    camera: Arc<Camera>,
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.camera
            .viewers
            .send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_counts_gaps_and_viewers_see_the_newest() {
        let hub = Hub::new();
        let a = hub.attach("cam");
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
    fn attach_kicks_the_previous_connection() {
        let hub = Hub::new();
        let mut first = hub.attach("cam");
        let second = hub.attach("cam");
        assert!(first.kicked.try_recv().unwrap().contains("replaced"));
        // The old connection's detach must not take the new one offline.
        first.camera.detach(first.generation);
        assert!(second.camera.online());
        second.camera.detach(second.generation);
        assert!(!second.camera.online());
    }

    #[test]
    fn viewer_guard_counts() {
        let hub = Hub::new();
        let cam = hub.attach("cam").camera;
        let g1 = cam.add_viewer();
        let g2 = cam.add_viewer();
        assert_eq!(cam.viewer_count(), 2);
        drop(g1);
        drop(g2);
        assert_eq!(cam.viewer_count(), 0);
    }
}
