//! zerocam: V4L2 capture → JPEG → latest-frame slot → WebSocket stream →
//! relay → viewers. Each stage has its own module, named for what it does.

pub mod capture;
pub mod config;
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
