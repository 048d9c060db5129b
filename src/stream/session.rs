//! The session loop (I/O edge). TEMPORARY seam.

use std::sync::Arc;

use crate::config::Config;
use crate::pipeline::Pipeline;

/// Runs the stream until shutdown.
pub fn run(_cfg: &Config, _pipeline: Arc<Pipeline>) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
