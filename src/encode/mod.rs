//! The encode stage: raw pixels → JPEG, MJPEG pass-through, COM metadata.

pub mod com;
