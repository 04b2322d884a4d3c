//! Start-up configuration of the emulator, and the quotas it enforces.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::faults::Faults;

/// One mebibyte, the unit AWS quotes its Kinesis quotas in.
pub const MIB: u64 = 1024 * 1024;

/// Per-shard write quota of a provisioned stream: 1 MiB/s of data plus
/// partition key bytes, and 1,000 records/s.
pub const DEFAULT_SHARD_BYTES_PER_SECOND: u64 = MIB;
/// Per-shard write quota: records per second.
pub const DEFAULT_SHARD_RECORDS_PER_SECOND: u64 = 1_000;
/// Largest record (data + partition key) a stream accepts by default.
pub const DEFAULT_MAX_RECORD_BYTES: usize = MIB as usize;
/// Largest record any stream can be configured for (`MaxRecordSizeInKiB`).
pub const MAX_MAX_RECORD_BYTES: usize = 10 * MIB as usize;
/// Largest PutRecords request (data + partition keys of all records).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 5 * MIB as usize;
/// Records per PutRecords / PutRecordBatch request.
pub const MAX_RECORDS_PER_REQUEST: usize = 500;
/// Largest Firehose record before base64 (1,000 KiB).
pub const FIREHOSE_MAX_RECORD_BYTES: usize = 1_000 * 1024;
/// Largest PutRecordBatch request (sum of record sizes).
pub const FIREHOSE_MAX_BATCH_BYTES: usize = 4 * MIB as usize;

/// Per-shard write quota enforced over a rolling one-second window.
///
/// A record is admitted only if, together with everything the shard accepted
/// in the last second, it stays within both figures. A limit smaller than a
/// single record therefore throttles that record forever, as AWS would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardLimits {
    /// Data plus partition key bytes per second.
    pub bytes_per_second: u64,
    /// Records per second (an aggregated KPL record counts as one).
    pub records_per_second: u64,
}

impl Default for ShardLimits {
    fn default() -> Self {
        ShardLimits {
            bytes_per_second: DEFAULT_SHARD_BYTES_PER_SECOND,
            records_per_second: DEFAULT_SHARD_RECORDS_PER_SECOND,
        }
    }
}

/// Per-delivery-stream Firehose quotas, enforced over a rolling one-second
/// window. The defaults are the quotas of most regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirehoseLimits {
    /// Records per second.
    pub records_per_second: u64,
    /// Record bytes per second.
    pub bytes_per_second: u64,
    /// PutRecord + PutRecordBatch calls per second.
    pub requests_per_second: u64,
}

impl Default for FirehoseLimits {
    fn default() -> Self {
        FirehoseLimits {
            records_per_second: 1_000,
            bytes_per_second: MIB,
            requests_per_second: 1_000,
        }
    }
}

/// Everything the emulator needs at start-up. Every field has a default
/// (`EmulatorConfig::default()`); the `with_*` helpers read well in tests.
///
/// ```
/// use shardline_emulator::EmulatorConfig;
/// let config = EmulatorConfig::default().with_stream("orders", 4).without_limits();
/// assert!(config.shard_limits.is_none());
/// ```
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Per-shard write quota; `None` switches throttling off.
    pub shard_limits: Option<ShardLimits>,
    /// Per-delivery-stream Firehose quotas; `None` switches them off.
    pub firehose_limits: Option<FirehoseLimits>,
    /// Faults injected from the start (none by default).
    pub faults: Faults,
    /// Also serve HTTPS (self-signed certificate) on a second port.
    pub tls: bool,
    /// Largest record (data + partition key); clamped to 10 MiB.
    pub max_record_bytes: usize,
    /// Largest PutRecords request (data + partition keys); 5 MiB by default.
    pub max_request_bytes: usize,
    /// Keep at most this many records per shard (oldest dropped first);
    /// `Some(0)` keeps none, `None` keeps everything. Long benchmarks set it
    /// so that memory stays flat.
    pub retain_records_per_shard: Option<usize>,
    /// The same for records delivered to each Firehose delivery stream.
    pub retain_delivered_records: Option<usize>,
    /// Streams (name, shard count) created at start, ACTIVE at once.
    pub streams: Vec<(String, u32)>,
    /// Firehose delivery streams (Direct PUT) created at start.
    pub delivery_streams: Vec<String>,
    /// Account id used in ARNs and error messages.
    pub account_id: String,
    /// Region used in ARNs.
    pub region: String,
    /// Plain HTTP port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// HTTPS port on 127.0.0.1 when `tls` is set; 0 picks a free one.
    pub tls_port: u16,
    /// Where to write the generated certificate (PEM) when `tls` is set.
    pub cert_out: Option<PathBuf>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            shard_limits: Some(ShardLimits::default()),
            firehose_limits: Some(FirehoseLimits::default()),
            faults: Faults::default(),
            tls: false,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            retain_records_per_shard: None,
            retain_delivered_records: None,
            streams: Vec::new(),
            delivery_streams: Vec::new(),
            account_id: "123456789012".to_owned(),
            region: "us-east-1".to_owned(),
            port: 0,
            tls_port: 0,
            cert_out: None,
        }
    }
}

impl EmulatorConfig {
    /// Adds a stream created at start.
    pub fn with_stream(mut self, name: impl Into<String>, shards: u32) -> Self {
        self.streams.push((name.into(), shards));
        self
    }

    /// Adds a Firehose delivery stream created at start.
    pub fn with_delivery_stream(mut self, name: impl Into<String>) -> Self {
        self.delivery_streams.push(name.into());
        self
    }

    /// Switches off both the shard and the Firehose quotas.
    pub fn without_limits(mut self) -> Self {
        self.shard_limits = None;
        self.firehose_limits = None;
        self
    }

    /// Sets the per-shard quota (`None` = no throttling).
    pub fn with_shard_limits(mut self, limits: Option<ShardLimits>) -> Self {
        self.shard_limits = limits;
        self
    }

    /// Sets the faults injected from the start.
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Also serves HTTPS.
    pub fn with_tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Keeps at most `n` records per shard and per delivery stream.
    pub fn with_retention(mut self, n: Option<usize>) -> Self {
        self.retain_records_per_shard = n;
        self.retain_delivered_records = n;
        self
    }
}
