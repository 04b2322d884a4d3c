//! Kinesis Data Streams: streams, shards, routing, the per-shard write quota
//! and the operations of the `Kinesis_20131202` API.
//!
//! Locking: the stream map is read-locked only to find a stream. Each stream
//! has a topology lock (its list of shards) that writers hold in read mode
//! for a whole request, so a reshard (write mode) never races a put: a
//! record is always appended to a shard that is open. Each shard has its
//! own mutex over its records, quota window and counters, so puts to
//! different shards do not contend.
//!
//! # Layout
//!
//! * this module: the [`Kinesis`] type and everything the rest of the crate
//!   calls (construction, limits, [`handle`](Kinesis::handle) dispatch,
//!   stream creation, records and stats), plus the stream lookup every
//!   operation starts with;
//! * `model`: streams, shards, their logs and topology, sequence numbers,
//!   routing and the hash-range arithmetic of resharding;
//! * `wire`: JSON shapes, shard iterators, pagination tokens and the
//!   validation helpers that word errors as AWS does;
//! * `records`: PutRecords, PutRecord, GetShardIterator, GetRecords;
//! * `streams`: CreateStream, DeleteStream, ListStreams, DescribeStream,
//!   DescribeStreamSummary, ListShards;
//! * `resharding`: UpdateShardCount, SplitShard, MergeShards.
//!
//! The submodules are private and share items as `pub(super)`, so the
//! crate sees only what is declared here.

mod model;
mod records;
mod resharding;
mod streams;
mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Instant, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use parking_lot::RwLock;
use serde::{Serialize, Serializer};

use self::model::{Shard, Stream, Topology, even_split, utilisation};
use self::wire::StreamRef;
use crate::config::ShardLimits;
use crate::errors::ApiError;
use crate::faults::FaultInjector;
use crate::protocol::BASE64;
use crate::stats::{ShardStats, StreamStats};

/// A record as the emulator stored it, returned by
/// [`Emulator::records`](crate::Emulator::records).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredRecord {
    /// The shard the record was written to.
    pub shard_id: String,
    /// Its sequence number (a decimal string, increasing within a shard).
    pub sequence_number: String,
    /// The partition key it was sent with.
    pub partition_key: String,
    /// The explicit hash key it was sent with, if any.
    pub explicit_hash_key: Option<String>,
    /// The record's data (base64 in JSON).
    #[serde(serialize_with = "serialize_base64")]
    pub data: Bytes,
    /// The hash key that routed it: the explicit hash key, or the MD5 of the
    /// partition key read as a big-endian integer (decimal in JSON).
    #[serde(serialize_with = "serialize_decimal")]
    pub hash_key: u128,
}

fn serialize_base64<S: Serializer>(data: &Bytes, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&BASE64.encode(data))
}

fn serialize_decimal<S: Serializer>(n: &u128, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(n)
}

/// Immutable settings of the Kinesis side.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) account_id: String,
    pub(crate) region: String,
    pub(crate) max_record_bytes: usize,
    pub(crate) max_request_bytes: usize,
    pub(crate) retain: Option<usize>,
}

/// The Kinesis Data Streams side of the emulator.
#[derive(Debug)]
pub(crate) struct Kinesis {
    settings: Settings,
    limits: RwLock<Option<ShardLimits>>,
    streams: RwLock<BTreeMap<String, Arc<Stream>>>,
}

impl Kinesis {
    pub(crate) fn account_id(&self) -> &str {
        &self.settings.account_id
    }

    pub(crate) fn new(settings: Settings, limits: Option<ShardLimits>) -> Self {
        Kinesis {
            settings,
            limits: RwLock::new(limits),
            streams: RwLock::new(BTreeMap::new()),
        }
    }

    pub(crate) fn set_limits(&self, limits: Option<ShardLimits>) {
        *self.limits.write() = limits;
    }

    pub(crate) fn limits(&self) -> Option<ShardLimits> {
        *self.limits.read()
    }

    fn arn(&self, name: &str) -> String {
        format!(
            "arn:aws:kinesis:{}:{}:stream/{name}",
            self.settings.region, self.settings.account_id
        )
    }

    fn not_found(&self, name: &str) -> ApiError {
        ApiError::not_found(format!(
            "Stream {name} under account {} not found.",
            self.settings.account_id
        ))
    }

    /// Creates a stream unless one of that name exists; returns whether it did.
    pub(crate) fn create_stream(&self, name: &str, shards: u32) -> bool {
        let mut streams = self.streams.write();
        if streams.contains_key(name) {
            return false;
        }
        let stream = Stream {
            name: name.to_owned(),
            arn: self.arn(name),
            created: SystemTime::now(),
            topology: RwLock::new(Topology::default()),
            next_seq: AtomicU64::new(1),
        };
        {
            let mut topology = stream.topology.write();
            for (number, range) in even_split(shards).into_iter().enumerate() {
                let shard = Arc::new(Shard::new(number, range, [None, None], stream.take_seq()));
                topology.all.push(Arc::clone(&shard));
                topology.open.push(shard);
            }
        }
        streams.insert(name.to_owned(), Arc::new(stream));
        true
    }

    /// Finds the stream a request names by `StreamName` and/or `StreamARN`.
    fn resolve(&self, name: Option<&str>, arn: Option<&str>) -> Result<Arc<Stream>, ApiError> {
        let from_arn = match arn {
            None => None,
            Some(arn) => {
                let parsed = arn
                    .strip_prefix("arn:")
                    .and_then(|rest| rest.split_once(":stream/"))
                    .filter(|(head, _)| head.contains(":kinesis:"))
                    .map(|(_, name)| name)
                    .filter(|name| !name.is_empty());
                match parsed {
                    Some(n) => Some(n),
                    None => {
                        return Err(ApiError::validation_list(&[format!(
                            "Value '{arn}' at 'streamARN' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:aws.*:kinesis:.*:\\d{{12}}:stream/\\S+"
                        )]));
                    }
                }
            }
        };
        let name = match (name, from_arn) {
            (Some(a), Some(b)) if a != b => {
                return Err(ApiError::invalid_argument(format!(
                    "StreamName {a} does not match the stream named in StreamARN {}",
                    arn.unwrap_or_default()
                )));
            }
            (Some(n), _) | (None, Some(n)) => n,
            (None, None) => {
                return Err(ApiError::validation(
                    "Either StreamName or StreamARN should be provided.",
                ));
            }
        };
        self.streams
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| self.not_found(name))
    }

    fn resolve_ref(&self, r: &StreamRef<'_>) -> Result<Arc<Stream>, ApiError> {
        self.resolve(r.name.as_deref(), r.arn.as_deref())
    }

    /// Runs one `Kinesis_20131202` operation and returns its JSON answer.
    pub(crate) fn handle(
        &self,
        operation: &str,
        body: &[u8],
        faults: &FaultInjector,
    ) -> Result<Vec<u8>, ApiError> {
        match operation {
            "PutRecords" => self.put_records(body, faults),
            "PutRecord" => self.put_record(body),
            "GetShardIterator" => self.get_shard_iterator(body),
            "GetRecords" => self.get_records(body),
            "CreateStream" => self.create_stream_op(body),
            "DeleteStream" => self.delete_stream(body),
            "ListStreams" => self.list_streams(body),
            "DescribeStream" => self.describe_stream(body),
            "DescribeStreamSummary" => self.describe_stream_summary(body),
            "ListShards" => self.list_shards(body),
            "UpdateShardCount" => self.update_shard_count(body),
            "SplitShard" => self.split_shard(body),
            "MergeShards" => self.merge_shards(body),
            other => Err(ApiError::unknown_operation(&format!(
                "Kinesis_20131202.{other}"
            ))),
        }
    }

    // --- library accessors ---------------------------------------------------

    pub(crate) fn records(&self, stream: &str) -> Vec<StoredRecord> {
        let Some(stream) = self.streams.read().get(stream).cloned() else {
            return Vec::new();
        };
        let topology = stream.topology.read();
        let mut out = Vec::new();
        for shard in &topology.all {
            let log = shard.log.lock();
            out.extend(log.records.iter().map(|r| StoredRecord {
                shard_id: shard.id.clone(),
                sequence_number: r.seq.to_string(),
                partition_key: r.partition_key.to_string(),
                explicit_hash_key: r.explicit_hash_key.as_deref().map(str::to_owned),
                data: r.data.clone(),
                hash_key: r.hash_key,
            }));
        }
        out
    }

    pub(crate) fn stats(&self) -> BTreeMap<String, StreamStats> {
        let limits = self.limits();
        let now = Instant::now();
        let streams: Vec<Arc<Stream>> = self.streams.read().values().cloned().collect();
        let mut out = BTreeMap::new();
        for stream in streams {
            let mut totals = StreamStats::default();
            for shard in &stream.topology.read().all {
                let mut log = shard.log.lock();
                let window = log.window.usage(now);
                let c = &log.counters;
                totals.accepted_records += c.accepted_records;
                totals.accepted_bytes += c.accepted_bytes;
                totals.throttled_records += c.throttled_records;
                totals.failed_records += c.failed_records;
                totals.shards.insert(
                    shard.id.clone(),
                    ShardStats {
                        open: log.closed.is_none(),
                        accepted_records: c.accepted_records,
                        accepted_bytes: c.accepted_bytes,
                        throttled_records: c.throttled_records,
                        failed_records: c.failed_records,
                        window_bytes: window.0,
                        window_records: window.1,
                        utilisation: utilisation(window, limits),
                        peak_utilisation: c.peak_utilisation,
                    },
                );
            }
            out.insert(stream.name.clone(), totals);
        }
        out
    }
}
