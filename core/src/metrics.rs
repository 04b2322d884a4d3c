//! In-process metrics under the KPL's metric names, so dashboards carry
//! over. Counters are atomics updated once per record; histograms and
//! per-shard figures are updated once per Kinesis record or request, by
//! the stream's dispatcher, never on the caller's hot path.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;

/// Per-stream counters and distributions.
#[derive(Debug)]
pub(crate) struct StreamMetrics {
    pub(crate) user_records_received: AtomicU64,
    pub(crate) user_records_pending: AtomicU64,
    pub(crate) user_records_put: AtomicU64,
    pub(crate) user_records_data_put: AtomicU64,
    pub(crate) user_records_failed: AtomicU64,
    pub(crate) user_record_expired: AtomicU64,
    pub(crate) kinesis_records_put: AtomicU64,
    pub(crate) kinesis_records_data_put: AtomicU64,
    pub(crate) all_errors: AtomicU64,
    pub(crate) throttled: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) shard_map_refreshes: AtomicU64,
    detail: Mutex<Detail>,
}

#[derive(Debug)]
struct Detail {
    errors_by_code: HashMap<String, u64>,
    buffering_time_ms: Histogram<u64>,
    request_time_ms: Histogram<u64>,
    retries_per_record: Histogram<u64>,
    user_records_per_kinesis_record: Histogram<u64>,
    kinesis_records_per_request: Histogram<u64>,
    shards: BTreeMap<String, ShardSnapshot>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000, 2).expect("static histogram bounds are valid")
}

impl Default for StreamMetrics {
    fn default() -> Self {
        StreamMetrics {
            user_records_received: AtomicU64::new(0),
            user_records_pending: AtomicU64::new(0),
            user_records_put: AtomicU64::new(0),
            user_records_data_put: AtomicU64::new(0),
            user_records_failed: AtomicU64::new(0),
            user_record_expired: AtomicU64::new(0),
            kinesis_records_put: AtomicU64::new(0),
            kinesis_records_data_put: AtomicU64::new(0),
            all_errors: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            shard_map_refreshes: AtomicU64::new(0),
            detail: Mutex::new(Detail {
                errors_by_code: HashMap::new(),
                buffering_time_ms: histogram(),
                request_time_ms: histogram(),
                retries_per_record: histogram(),
                user_records_per_kinesis_record: histogram(),
                kinesis_records_per_request: histogram(),
                shards: BTreeMap::new(),
            }),
        }
    }
}

fn millis(d: Duration) -> u64 {
    (d.as_millis() as u64).max(1)
}

impl StreamMetrics {
    /// A request finished after `elapsed`, carrying `records` Kinesis records.
    pub(crate) fn request_done(&self, elapsed: Duration, records: usize) {
        self.requests.fetch_add(1, Relaxed);
        let mut d = self.detail.lock();
        d.request_time_ms.saturating_record(millis(elapsed));
        d.kinesis_records_per_request
            .saturating_record(records.max(1) as u64);
    }

    /// A Kinesis record (aggregate or single) was stored.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn kinesis_record_put(
        &self,
        shard_id: Option<&str>,
        user_records: usize,
        user_bytes: u64,
        wire_bytes: u64,
        buffered_for: Duration,
        retries: u32,
    ) {
        self.user_records_put
            .fetch_add(user_records as u64, Relaxed);
        self.user_records_data_put.fetch_add(user_bytes, Relaxed);
        self.kinesis_records_put.fetch_add(1, Relaxed);
        self.kinesis_records_data_put.fetch_add(wire_bytes, Relaxed);
        let mut d = self.detail.lock();
        d.buffering_time_ms.saturating_record(millis(buffered_for));
        d.retries_per_record
            .saturating_record_n(u64::from(retries).max(1), user_records as u64);
        d.user_records_per_kinesis_record
            .saturating_record(user_records.max(1) as u64);
        if let Some(shard) = shard_id {
            let s = d.shards.entry(shard.to_owned()).or_default();
            s.user_records_put += user_records as u64;
            s.kinesis_records_put += 1;
            s.kinesis_records_data_put += wire_bytes;
        }
    }

    /// One attempt of a Kinesis record failed with `code`.
    pub(crate) fn error(&self, code: &str, shard_id: Option<&str>, throttled: bool) {
        self.all_errors.fetch_add(1, Relaxed);
        if throttled {
            self.throttled.fetch_add(1, Relaxed);
        }
        let mut d = self.detail.lock();
        *d.errors_by_code.entry(code.to_owned()).or_default() += 1;
        if let (Some(shard), true) = (shard_id, throttled) {
            d.shards.entry(shard.to_owned()).or_default().throttled += 1;
        }
    }

    /// Publishes a shard limiter's current rate.
    pub(crate) fn shard_rate(&self, shard_id: &str, fraction: f64) {
        let mut d = self.detail.lock();
        d.shards
            .entry(shard_id.to_owned())
            .or_default()
            .rate_limit_fraction = fraction;
    }

    pub(crate) fn snapshot(&self) -> StreamSnapshot {
        let d = self.detail.lock();
        StreamSnapshot {
            counters: Counters {
                user_records_received: self.user_records_received.load(Relaxed),
                user_records_pending: self.user_records_pending.load(Relaxed),
                user_records_put: self.user_records_put.load(Relaxed),
                user_records_data_put: self.user_records_data_put.load(Relaxed),
                user_records_failed: self.user_records_failed.load(Relaxed),
                user_record_expired: self.user_record_expired.load(Relaxed),
                kinesis_records_put: self.kinesis_records_put.load(Relaxed),
                kinesis_records_data_put: self.kinesis_records_data_put.load(Relaxed),
                all_errors: self.all_errors.load(Relaxed),
                throttled: self.throttled.load(Relaxed),
                requests: self.requests.load(Relaxed),
                shard_map_refreshes: self.shard_map_refreshes.load(Relaxed),
                errors_by_code: d
                    .errors_by_code
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect(),
            },
            buffering_time_ms: Summary::of(&d.buffering_time_ms),
            request_time_ms: Summary::of(&d.request_time_ms),
            retries_per_record: Summary::of(&d.retries_per_record),
            user_records_per_kinesis_record: Summary::of(&d.user_records_per_kinesis_record),
            kinesis_records_per_request: Summary::of(&d.kinesis_records_per_request),
            shards: d.shards.clone(),
        }
    }
}

/// Counts, under the KPL's metric names.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct Counters {
    /// User records accepted by `send`.
    pub user_records_received: u64,
    /// User records accepted and not yet completed.
    pub user_records_pending: u64,
    /// User records stored by the service.
    pub user_records_put: u64,
    /// Bytes (data + partition key) of the user records stored.
    pub user_records_data_put: u64,
    /// User records completed with a failure (expired, rejected, closed).
    pub user_records_failed: u64,
    /// User records that failed because their `record_ttl` ran out.
    pub user_record_expired: u64,
    /// Kinesis records (aggregates or single records) stored.
    pub kinesis_records_put: u64,
    /// Bytes of the Kinesis records stored.
    pub kinesis_records_data_put: u64,
    /// Failed attempts of Kinesis records, any cause.
    pub all_errors: u64,
    /// Failed attempts that were throttling.
    pub throttled: u64,
    /// PutRecords / PutRecordBatch requests made.
    pub requests: u64,
    /// Times the shard map was loaded.
    pub shard_map_refreshes: u64,
    /// Failed attempts by error code.
    pub errors_by_code: BTreeMap<String, u64>,
}

impl Counters {
    fn add(&mut self, o: &Counters) {
        self.user_records_received += o.user_records_received;
        self.user_records_pending += o.user_records_pending;
        self.user_records_put += o.user_records_put;
        self.user_records_data_put += o.user_records_data_put;
        self.user_records_failed += o.user_records_failed;
        self.user_record_expired += o.user_record_expired;
        self.kinesis_records_put += o.kinesis_records_put;
        self.kinesis_records_data_put += o.kinesis_records_data_put;
        self.all_errors += o.all_errors;
        self.throttled += o.throttled;
        self.requests += o.requests;
        self.shard_map_refreshes += o.shard_map_refreshes;
        for (code, n) in &o.errors_by_code {
            *self.errors_by_code.entry(code.clone()).or_default() += n;
        }
    }
}

/// A distribution's summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Summary {
    /// Number of samples.
    pub count: u64,
    /// Mean of the samples.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest sample.
    pub max: u64,
}

impl Summary {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Summary::default();
        }
        Summary {
            count: h.len(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }
}

/// Per-shard figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct ShardSnapshot {
    /// User records stored in this shard.
    pub user_records_put: u64,
    /// Kinesis records stored in this shard.
    pub kinesis_records_put: u64,
    /// Bytes of Kinesis records stored in this shard.
    pub kinesis_records_data_put: u64,
    /// Records this shard throttled.
    pub throttled: u64,
    /// The limiter's current rate as a fraction of the shard quota.
    pub rate_limit_fraction: f64,
}

/// One stream's metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct StreamSnapshot {
    /// The counters.
    #[serde(flatten)]
    pub counters: Counters,
    /// Time from `send` to the first attempt, per Kinesis record (ms).
    pub buffering_time_ms: Summary,
    /// Duration of PutRecords calls (ms).
    pub request_time_ms: Summary,
    /// Attempts per user record that was stored.
    pub retries_per_record: Summary,
    /// Aggregation ratio.
    pub user_records_per_kinesis_record: Summary,
    /// Batching ratio.
    pub kinesis_records_per_request: Summary,
    /// By shard id (empty for Firehose).
    pub shards: BTreeMap<String, ShardSnapshot>,
}

/// A point-in-time copy of a producer's metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Totals over all streams.
    #[serde(flatten)]
    pub totals: Counters,
    /// By stream name.
    pub streams: BTreeMap<String, StreamSnapshot>,
}

impl MetricsSnapshot {
    pub(crate) fn from_streams(streams: BTreeMap<String, StreamSnapshot>) -> Self {
        let mut totals = Counters::default();
        for s in streams.values() {
            totals.add(&s.counters);
        }
        MetricsSnapshot { totals, streams }
    }

    /// The snapshot as JSON (KPL metric names as keys).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("metrics serialize to JSON")
    }
}
