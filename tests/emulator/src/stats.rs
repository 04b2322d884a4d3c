//! Counters reported by [`Emulator::stats`](crate::Emulator::stats) and
//! `GET /_emulator/stats`.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// A snapshot of everything the emulator counted since it started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Requests of every kind (admin requests excluded).
    pub requests: RequestStats,
    /// Per Kinesis stream.
    pub streams: BTreeMap<String, StreamStats>,
    /// Per Firehose delivery stream.
    pub delivery_streams: BTreeMap<String, DeliveryStreamStats>,
}

/// Request totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestStats {
    /// Every API request received.
    pub total: u64,
    /// Requests per operation, e.g. `"Kinesis.PutRecords"`.
    pub by_operation: BTreeMap<String, u64>,
    /// Requests answered with a 4xx error (validation, not found, throttled,
    /// expired token...).
    pub client_errors: u64,
    /// Whole requests throttled (PutRecord, Firehose quotas).
    pub throttled: u64,
    /// Injected 500 `InternalFailure` answers.
    pub injected_internal_errors: u64,
    /// Injected 503 answers.
    pub injected_unavailable: u64,
    /// Connections closed without an answer on purpose.
    pub dropped_connections: u64,
    /// Requests refused with `ExpiredTokenException`.
    pub expired_token_rejections: u64,
    /// Requests that waited for a stall to end.
    pub stalled: u64,
}

/// Counters of one Kinesis stream (sums of its shards).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamStats {
    /// Records written.
    pub accepted_records: u64,
    /// Data + partition key bytes written (what the shard quota counts).
    pub accepted_bytes: u64,
    /// Records refused with `ProvisionedThroughputExceededException`.
    pub throttled_records: u64,
    /// Records failed on purpose with `InternalFailure`.
    pub failed_records: u64,
    /// Per shard, closed ones included.
    pub shards: BTreeMap<String, ShardStats>,
}

/// Counters of one shard.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardStats {
    /// False once the shard was split or merged.
    pub open: bool,
    /// Records written.
    pub accepted_records: u64,
    /// Data + partition key bytes written.
    pub accepted_bytes: u64,
    /// Records throttled.
    pub throttled_records: u64,
    /// Records failed on purpose.
    pub failed_records: u64,
    /// Bytes accepted during the last second.
    pub window_bytes: u64,
    /// Records accepted during the last second.
    pub window_records: u64,
    /// Use of the write quota during the last second: the larger of the
    /// bytes and records ratios (1.0 = at the limit). Measured against the
    /// default quota when limits are off.
    pub utilisation: f64,
    /// The highest `utilisation` seen when a record was written.
    pub peak_utilisation: f64,
}

/// Counters of one Firehose delivery stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveryStreamStats {
    /// Records delivered.
    pub accepted_records: u64,
    /// Record bytes delivered.
    pub accepted_bytes: u64,
    /// Records refused with `ServiceUnavailableException` (quota).
    pub throttled_records: u64,
    /// Records failed on purpose with `InternalFailure`.
    pub failed_records: u64,
    /// Requests refused because of the requests-per-second quota.
    pub throttled_requests: u64,
}

/// Request counters, updated once per request.
#[derive(Debug, Default)]
pub(crate) struct RequestCounters {
    inner: Mutex<RequestStats>,
}

impl RequestCounters {
    pub(crate) fn update(&self, f: impl FnOnce(&mut RequestStats)) {
        f(&mut self.inner.lock());
    }

    pub(crate) fn count_operation(&self, service: &str, operation: &str) {
        let mut stats = self.inner.lock();
        stats.total += 1;
        *stats
            .by_operation
            .entry(format!("{service}.{operation}"))
            .or_default() += 1;
    }

    pub(crate) fn snapshot(&self) -> RequestStats {
        self.inner.lock().clone()
    }
}
