//! The JPEG quality of a camera that compresses its own frames (MJPEG
//! passed through): zerocam cannot re-encode those, so where the driver
//! offers `V4L2_CID_JPEG_COMPRESSION_QUALITY` (the Pi's legacy CSI driver
//! does) the encode quality — `source.quality`, lowered by the link
//! controller — is set there instead. Pure: the source's controls and the
//! wanted quality in, the control to set out; the capture loop does the
//! ioctl.

use crate::wire::controls::{ControlInfo, Kind};

/// `V4L2_CID_JPEG_COMPRESSION_QUALITY` (JPEG class base 0x009d0900 + 3).
pub const JPEG_COMPRESSION_QUALITY: u32 = 0x009d_0903;

/// The camera's quality control and what was last set on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraQuality {
    id: u32,
    min: i64,
    max: i64,
    applied: Option<i64>,
}

impl CameraQuality {
    /// The quality control among a source's `controls`, if it has a
    /// writable integer one.
    pub fn find(controls: &[ControlInfo]) -> Option<CameraQuality> {
        let c = controls
            .iter()
            .find(|c| c.id == JPEG_COMPRESSION_QUALITY && !c.read_only)?;
        match c.kind {
            Kind::Integer { min, max, .. } if min <= max => Some(CameraQuality {
                id: c.id,
                min,
                max,
                applied: None,
            }),
            _ => None,
        }
    }

    /// The control's range, for the log.
    pub fn range(&self) -> (i64, i64) {
        (self.min, self.max)
    }

    /// The control id and value to set for quality `q` (1–100, as the
    /// V4L2 control counts it), or `None` when that is what the camera
    /// already has from us. Marks it applied: a refusal is the caller's to
    /// handle (it stops using the control).
    pub fn due(&mut self, q: u8) -> Option<(u32, i64)> {
        let v = i64::from(q).clamp(self.min, self.max);
        if self.applied == Some(v) {
            return None;
        }
        self.applied = Some(v);
        Some((self.id, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(id: u32, kind: Kind, read_only: bool) -> ControlInfo {
        ControlInfo {
            name: "compression_quality".into(),
            id,
            kind,
            default: 30,
            value: 30,
            read_only,
        }
    }

    fn integer(min: i64, max: i64) -> Kind {
        Kind::Integer { min, max, step: 1 }
    }

    #[test]
    fn found_only_as_a_writable_integer_control() {
        assert!(
            CameraQuality::find(&[control(JPEG_COMPRESSION_QUALITY, integer(1, 100), false)])
                .is_some()
        );
        assert!(
            CameraQuality::find(&[control(JPEG_COMPRESSION_QUALITY, integer(1, 100), true)])
                .is_none()
        );
        assert!(
            CameraQuality::find(&[control(JPEG_COMPRESSION_QUALITY, Kind::Boolean, false)])
                .is_none()
        );
        assert!(CameraQuality::find(&[control(0x0098_0900, integer(1, 100), false)]).is_none());
        assert!(CameraQuality::find(&[]).is_none());
    }

    #[test]
    fn set_once_per_change_and_within_the_range() {
        let mut q =
            CameraQuality::find(&[control(JPEG_COMPRESSION_QUALITY, integer(10, 90), false)])
                .unwrap();
        assert_eq!(q.due(80), Some((JPEG_COMPRESSION_QUALITY, 80)));
        // Every frame asks; only a change reaches the device.
        assert_eq!(q.due(80), None);
        assert_eq!(q.due(52), Some((JPEG_COMPRESSION_QUALITY, 52)));
        assert_eq!(q.due(52), None);
        assert_eq!(q.due(5), Some((JPEG_COMPRESSION_QUALITY, 10)));
        assert_eq!(q.due(8), None, "both clamp to the same value");
        assert_eq!(q.due(100), Some((JPEG_COMPRESSION_QUALITY, 90)));
    }
}
