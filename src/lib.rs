//! zerocam: V4L2 capture → JPEG → latest-frame slot → WebSocket stream →
//! relay → viewers. Each stage has its own module, named for what it does.
//!
//! # Layout
//!
//! The camera (`zerocam stream`), stage by stage:
//!
//! - [`capture`]: frame sources (V4L2, the test pattern, a camera program's
//!   pipe) and the capture thread that reopens them after a loss;
//! - [`encode`]: raw frames → JPEG (software, a pool of threads, or a V4L2
//!   M2M hardware encoder) and MJPEG pass-through;
//! - [`slot`]: the one latest-frame slot between capture and the network
//!   (no queue: a newer frame replaces an unsent one, counted as dropped);
//! - [`stream`]: the WebSocket client: connect, the two dialects as pure
//!   state machines, flow control, backoff, stats;
//! - [`device`]: the status LED and systemd's notify/watchdog;
//! - [`pipeline`]: what those threads share (slot, live controls, counters,
//!   health).
//!
//! The relay (`zerocam relay`, feature `relay`): [`relay`] takes cameras in
//! and fans their frames out to viewers; `relay::cluster` joins relays
//! over NATS.
//!
//! Both sides: [`wire`] is everything they both speak (JPEG markers, the COM
//! segment, the JSON messages, image controls, cluster messages), pure and
//! fuzzed, specified in `docs/protocol.md`; [`config`] reads and checks the
//! configuration; [`frame`] is the encoded frame; [`logging`] the console
//! lines.
//!
//! Imports point down the pipeline and into [`wire`]: `wire` imports
//! nothing of zerocam's but itself, and the relay reaches into the camera's
//! modules only for `zerocam demo`, which runs a camera beside it.

pub mod backoff;
pub mod camera;
pub mod capture;
pub mod config;
#[cfg(feature = "relay")]
pub mod demo;
pub mod device;
pub mod encode;
pub mod frame;
pub mod logging;
pub mod pipeline;
#[cfg(feature = "relay")]
pub mod relay;
pub mod slot;
pub mod stream;
pub mod v4l2raw;
pub mod wire;

/// The version string sent in `hello` and printed by `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
