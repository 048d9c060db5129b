//! `/metrics`: Prometheus text exposition, every name prefixed `zerocam_`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use super::hub::Hub;
use super::prometheus::{head, scalar};
use crate::wire::jpeg::JpegError;

/// The whole exposition; with `cluster`, this node's cluster figures too.
pub fn render(hub: &Hub, cluster: Option<&super::cluster::Cluster>) -> String {
    let cams = hub.cameras();
    let mut o = String::with_capacity(4096);
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);

    let online = cams.iter().filter(|c| c.online()).count();
    scalar(
        &mut o,
        "zerocam_cameras",
        "gauge",
        "Cameras connected now.",
        online,
    );
    scalar(
        &mut o,
        "zerocam_cameras_known",
        "gauge",
        "Cameras the relay keeps track of, online or offline (at most server.max_cameras).",
        cams.len(),
    );

    head(
        &mut o,
        "zerocam_viewers",
        "gauge",
        "Viewers per camera (WebSocket and MJPEG).",
    );
    for c in &cams {
        let _ = writeln!(
            o,
            "zerocam_viewers{{camera=\"{}\"}} {}",
            c.id,
            c.viewer_count()
        );
    }

    head(
        &mut o,
        "zerocam_camera_paused",
        "gauge",
        "1 while the relay has paused the camera for lack of viewers.",
    );
    for c in &cams {
        let _ = writeln!(
            o,
            "zerocam_camera_paused{{camera=\"{}\"}} {}",
            c.id,
            u8::from(c.paused())
        );
    }

    for (name, help, key) in [
        (
            "zerocam_camera_quality",
            "JPEG quality the camera encodes at now (below its configured quality while its link allows less).",
            "encoding_quality",
        ),
        (
            "zerocam_camera_link_kbit_s",
            "The camera's measured link rate in kbit/s (from its last stats).",
            "link_kbit_s",
        ),
    ] {
        head(&mut o, name, "gauge", help);
        for c in &cams {
            if let Some(v) = c.stat(key) {
                let _ = writeln!(o, "{name}{{camera=\"{}\"}} {v}", c.id);
            }
        }
    }

    type Get = fn(&super::hub::CameraCounters) -> &AtomicU64;
    let per_camera: [(&str, &str, Get); 7] = [
        (
            "zerocam_frames_in_total",
            "Valid frames received from cameras.",
            |c| &c.frames_in,
        ),
        ("zerocam_frames_out_total", "Frames sent to viewers.", |c| {
            &c.frames_out
        }),
        (
            "zerocam_bytes_in_total",
            "JPEG bytes received from cameras.",
            |c| &c.bytes_in,
        ),
        (
            "zerocam_bytes_out_total",
            "JPEG bytes sent to viewers.",
            |c| &c.bytes_out,
        ),
        (
            "zerocam_camera_connects_total",
            "Camera connections accepted.",
            |c| &c.connects,
        ),
        (
            "zerocam_settings_changes_total",
            "Settings changes sent to the camera through POST /cameras/{id}/settings.",
            |c| &c.settings_changes,
        ),
        (
            "zerocam_viewers_stalled_total",
            "Viewers closed because they took no bytes for server.viewer_write_timeout.",
            |c| &c.viewers_stalled,
        ),
    ];
    for (name, help, get) in per_camera {
        head(&mut o, name, "counter", help);
        for c in &cams {
            let _ = writeln!(
                o,
                "{name}{{camera=\"{}\"}} {}",
                c.id,
                load(get(&c.counters))
            );
        }
    }

    head(
        &mut o,
        "zerocam_drops_total",
        "counter",
        "Frames lost, by reason: camera_seq_gap (missing from the camera's seq), viewer_skipped (a slow viewer got a newer frame instead), rejected (not a valid JPEG, or too large).",
    );
    for c in &cams {
        let k = &c.counters;
        let rejected: u64 = k.rejected.iter().map(load).sum();
        for (reason, n) in [
            ("camera_seq_gap", load(&k.seq_gaps)),
            ("viewer_skipped", load(&k.viewer_skipped)),
            ("rejected", rejected),
        ] {
            let _ = writeln!(
                o,
                "zerocam_drops_total{{camera=\"{}\",reason=\"{reason}\"}} {n}",
                c.id
            );
        }
    }

    head(
        &mut o,
        "zerocam_rejected_frames_total",
        "counter",
        "Binary messages from cameras refused as not one valid JPEG, by reason.",
    );
    for c in &cams {
        for r in JpegError::ALL {
            let _ = writeln!(
                o,
                "zerocam_rejected_frames_total{{camera=\"{}\",reason=\"{}\"}} {}",
                c.id,
                r.as_str(),
                load(&c.counters.rejected[r.index()])
            );
        }
    }

    head(
        &mut o,
        "zerocam_settings_rejected_total",
        "counter",
        "Settings changes refused, by reason: bad_request, unauthorized, forbidden, offline, timeout.",
    );
    for c in &cams {
        for r in super::hub::SettingsReject::ALL {
            let _ = writeln!(
                o,
                "zerocam_settings_rejected_total{{camera=\"{}\",reason=\"{}\"}} {}",
                c.id,
                r.as_str(),
                load(&c.counters.settings_rejected[r.index()])
            );
        }
    }

    head(
        &mut o,
        "zerocam_bad_messages_total",
        "counter",
        "Text messages from cameras that were not understood.",
    );
    for c in &cams {
        let _ = writeln!(
            o,
            "zerocam_bad_messages_total{{camera=\"{}\"}} {}",
            c.id,
            load(&c.counters.bad_text)
        );
    }

    scalar(
        &mut o,
        "zerocam_auth_failures_total",
        "counter",
        "Camera connections refused with 401/403.",
        load(&hub.auth_failures),
    );
    head(
        &mut o,
        "zerocam_camera_refused_total",
        "counter",
        "Camera connections refused with 503, by reason (max_cameras: the relay knows server.max_cameras cameras, all online or watched).",
    );
    let _ = writeln!(
        o,
        "zerocam_camera_refused_total{{reason=\"max_cameras\"}} {}",
        load(&hub.refused_full)
    );
    scalar(
        &mut o,
        "zerocam_cameras_forgotten_total",
        "counter",
        "Offline cameras forgotten (after server.forget_offline_after, or to make room for a new id).",
        load(&hub.forgotten),
    );
    scalar(
        &mut o,
        "zerocam_camera_replaced_total",
        "counter",
        "Camera connections closed because a newer one took the id.",
        load(&hub.replaced),
    );
    scalar(
        &mut o,
        "zerocam_camera_garbage_closed_total",
        "counter",
        "Camera connections closed for sending only invalid frames.",
        load(&hub.garbage_closed),
    );

    head(
        &mut o,
        "zerocam_latency_seconds",
        "histogram",
        "Capture (COM ts) to egress latency of frames sent to viewers.",
    );
    hub.latency.render(&mut o, "zerocam_latency_seconds");
    if let Some(c) = cluster {
        render_cluster(&mut o, c);
    }
    o
}

/// `zerocam_cluster_*`: what this node sent to and took from the cluster.
fn render_cluster(o: &mut String, c: &super::cluster::Cluster) {
    use super::cluster::stats::DropReason;
    let s = &c.stats;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    head(
        o,
        "zerocam_cluster_info",
        "gauge",
        "This relay's node id and cluster name.",
    );
    let _ = writeln!(
        o,
        "zerocam_cluster_info{{node=\"{}\",cluster=\"{}\"}} 1",
        c.config.node, c.config.name
    );
    scalar(
        o,
        "zerocam_cluster_connected",
        "gauge",
        "1 while connected to NATS.",
        u8::from(s.connected.load(Ordering::Relaxed)),
    );
    scalar(
        o,
        "zerocam_cluster_nodes",
        "gauge",
        "Relay nodes known, this one included.",
        s.nodes.load(Ordering::Relaxed),
    );
    scalar(
        o,
        "zerocam_cluster_remote_viewers",
        "gauge",
        "Viewers on other nodes of the cameras connected to this one.",
        s.remote_viewers.load(Ordering::Relaxed),
    );
    for (name, help, v) in [
        (
            "zerocam_cluster_frames_sent_total",
            "Frames published to the cluster (other nodes watch them).",
            load(&s.frames_sent),
        ),
        (
            "zerocam_cluster_bytes_sent_total",
            "JPEG bytes published to the cluster.",
            load(&s.bytes_sent),
        ),
        (
            "zerocam_cluster_frames_received_total",
            "Frames of other nodes' cameras received from the cluster.",
            load(&s.frames_received),
        ),
        (
            "zerocam_cluster_bytes_received_total",
            "JPEG bytes received from the cluster.",
            load(&s.bytes_received),
        ),
    ] {
        scalar(o, name, "counter", help, v);
    }
    head(
        o,
        "zerocam_cluster_drops_total",
        "counter",
        "Frames that did not cross the cluster, by reason: backpressure and disconnected and too_large (sending), stale and slow_consumer and invalid (receiving).",
    );
    for d in DropReason::ALL {
        let _ = writeln!(
            o,
            "zerocam_cluster_drops_total{{reason=\"{}\"}} {}",
            d.as_str(),
            s.dropped(d)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_names_are_prefixed() {
        let hub = Hub::new();
        let _a = hub.attach("cam");
        let text = render(&hub, None);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("zerocam_"), "{line}");
        }
        assert!(text.contains("zerocam_cameras 1"));
    }
}
