//! The periodic status: one line per flow on stderr, and optionally the
//! same numbers plus each producer's full metrics as a JSON file.

use std::io;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde::Serialize;
use shardline::MetricsSnapshot;

use crate::flow::FlowHandle;

/// One flow's numbers at one moment.
#[derive(Debug, Serialize)]
pub(crate) struct FlowStatus {
    /// The flow id.
    pub(crate) flow: String,
    /// Files followed.
    pub(crate) files: u64,
    /// Records read.
    pub(crate) read: u64,
    /// Records delivered.
    pub(crate) sent: u64,
    /// Records rejected for good.
    pub(crate) failed: u64,
    /// Records dropped by processing.
    pub(crate) filtered: u64,
    /// Records sent again after expiring.
    pub(crate) resent: u64,
    /// Bytes of the files not read yet.
    pub(crate) behind_bytes: u64,
    /// The producer's metrics.
    pub(crate) producer: MetricsSnapshot,
}

/// The status of every flow.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    /// Seconds since start.
    pub(crate) uptime_seconds: u64,
    /// Per flow.
    pub(crate) flows: Vec<FlowStatus>,
}

impl Report {
    /// Reads every flow's counters and metrics.
    pub(crate) fn collect(handles: &[FlowHandle], uptime: Duration) -> Report {
        Report {
            uptime_seconds: uptime.as_secs(),
            flows: handles
                .iter()
                .map(|h| FlowStatus {
                    flow: h.id.clone(),
                    files: h.stats.files.load(Relaxed),
                    read: h.stats.read.load(Relaxed),
                    sent: h.stats.sent.load(Relaxed),
                    failed: h.stats.failed.load(Relaxed),
                    filtered: h.stats.filtered.load(Relaxed),
                    resent: h.stats.resent.load(Relaxed),
                    behind_bytes: h.stats.behind_bytes.load(Relaxed),
                    producer: h.producer.metrics(),
                })
                .collect(),
        }
    }

    /// The status lines.
    pub(crate) fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.flows.iter().map(|f| {
            let p = &f.producer.totals;
            format!(
                "status flow={} files={} read={} sent={} failed={} filtered={} resent={} pending={} behind={}B | producer requests={} throttled={} errors={} expired={}",
                f.flow,
                f.files,
                f.read,
                f.sent,
                f.failed,
                f.filtered,
                f.resent,
                f.read.saturating_sub(f.sent + f.failed + f.filtered),
                f.behind_bytes,
                p.requests,
                p.throttled,
                p.all_errors,
                p.user_record_expired,
            )
        })
    }

    /// Replaces `path` with the report as JSON (temp file + rename, so a
    /// reader never sees half of it).
    pub(crate) fn write_json(&self, path: &Path) -> io::Result<()> {
        let mut temp = path.as_os_str().to_owned();
        temp.push(".tmp");
        let json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        std::fs::write(&temp, json)?;
        std::fs::rename(&temp, path)
    }
}
