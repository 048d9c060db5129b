//! The capture stage: where frames come from (V4L2 or the test pattern).
//! TEMPORARY seam: being written now; the signatures below are the contract.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::config::SourceConfig;
use crate::pipeline::Pipeline;

/// Starts the capture thread: opens the source (reopening with backoff after
/// failures), encodes, and puts frames into the pipeline's slot until
/// shutdown is requested.
pub fn spawn(_pipeline: Arc<Pipeline>, _cfg: SourceConfig) -> std::io::Result<JoinHandle<()>> {
    Err(std::io::Error::other("capture: not built yet"))
}

/// `zerocam probe [DEVICE]`.
pub fn probe(_device: Option<&Path>) -> anyhow::Result<()> {
    anyhow::bail!("probe: not built yet")
}

/// `zerocam snapshot`: writes one frame.
pub fn snapshot(_cfg: &SourceConfig, _out: &Path) -> anyhow::Result<()> {
    anyhow::bail!("snapshot: not built yet")
}
