//! Kinesis Data Streams: streams, shards, routing, the per-shard write quota
//! and the operations of the `Kinesis_20131202` API.
//!
//! Locking: the stream map is read-locked only to find a stream. Each stream
//! has a topology lock (its list of shards) that writers hold in read mode
//! for a whole request, so a reshard (write mode) never races a put: a
//! record is always appended to a shard that is open. Each shard has its
//! own mutex over its records, quota window and counters, so puts to
//! different shards do not contend.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use md5::{Digest, Md5};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize, Serializer};

use crate::config::{MAX_RECORDS_PER_REQUEST, MIB, ShardLimits};
use crate::errors::ApiError;
use crate::faults::FaultInjector;
use crate::limits::RateWindow;
use crate::protocol::{BASE64, decode_blob, epoch_seconds, parse_json, to_json};
use crate::stats::{ShardStats, StreamStats};

/// Longest stream name.
const MAX_STREAM_NAME_CHARS: usize = 128;
/// Partition keys are 1 to 256 Unicode characters.
const MAX_PARTITION_KEY_CHARS: usize = 256;
/// GetRecords answers at most this many records and bytes.
const GET_RECORDS_MAX_RECORDS: usize = 10_000;
const GET_RECORDS_MAX_BYTES: usize = 10 * MIB as usize;

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

/// The hash key of a partition key: MD5 of its UTF-8 bytes, big-endian.
pub(crate) fn partition_key_hash(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

/// Where shard `i` of `n` starts when 0..2^128-1 is split evenly, as AWS
/// does at CreateStream and UpdateShardCount: steps of floor(2^128 / n).
fn even_split(n: u32) -> Vec<(u128, u128)> {
    let n = u128::from(n.max(1));
    if n == 1 {
        return vec![(0, u128::MAX)];
    }
    // floor(2^128 / n) without overflowing: 2^128 = MAX + 1.
    let step = u128::MAX / n + u128::from(u128::MAX % n == n - 1);
    (0..n)
        .map(|i| {
            let start = i * step;
            let end = if i + 1 == n {
                u128::MAX
            } else {
                (i + 1) * step - 1
            };
            (start, end)
        })
        .collect()
}

/// A sequence number: a per-stream counter shown as a 56-digit decimal
/// starting with 49, like AWS's. Every number of a stream has the same
/// width, so they compare the same as strings and as big integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct SeqNo(u64);

impl SeqNo {
    const DIGITS: usize = 56;

    fn parse(text: &str) -> Option<SeqNo> {
        let digits = text.strip_prefix("49")?;
        if text.len() != Self::DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        u64::try_from(digits.parse::<u128>().ok()?).ok().map(SeqNo)
    }
}

impl fmt::Display for SeqNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "49{:054}", self.0)
    }
}

impl Serialize for SeqNo {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
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

#[derive(Debug)]
struct Stored {
    seq: SeqNo,
    arrival: SystemTime,
    partition_key: Box<str>,
    explicit_hash_key: Option<Box<str>>,
    data: Bytes,
    hash_key: u128,
}

#[derive(Debug)]
struct Closure {
    ending_seq: SeqNo,
    at: SystemTime,
    children: Vec<Arc<Shard>>,
}

#[derive(Debug, Default)]
struct ShardCounters {
    accepted_records: u64,
    accepted_bytes: u64,
    throttled_records: u64,
    failed_records: u64,
    peak_utilisation: f64,
}

/// Everything about a shard that changes; behind the shard's mutex.
#[derive(Debug, Default)]
struct ShardLog {
    /// Retained records; `records[0]` has position `first_position`.
    records: VecDeque<Stored>,
    first_position: u64,
    /// Position of the next record written (positions are what iterators
    /// point at; they survive trimming, unlike indexes).
    next_position: u64,
    closed: Option<Closure>,
    window: RateWindow,
    counters: ShardCounters,
}

#[derive(Debug)]
struct Shard {
    number: usize,
    id: String,
    parent: Option<String>,
    adjacent_parent: Option<String>,
    start: u128,
    end: u128,
    starting_seq: SeqNo,
    log: Mutex<ShardLog>,
}

impl Shard {
    fn new(number: usize, range: (u128, u128), parents: [Option<String>; 2], seq: SeqNo) -> Self {
        let [parent, adjacent_parent] = parents;
        Shard {
            number,
            id: format!("shardId-{number:012}"),
            parent,
            adjacent_parent,
            start: range.0,
            end: range.1,
            starting_seq: seq,
            log: Mutex::new(ShardLog::default()),
        }
    }

    fn overlaps(&self, start: u128, end: u128) -> bool {
        self.start <= end && start <= self.end
    }

    fn describe(&self) -> ShardJson<'_> {
        ShardJson {
            shard_id: &self.id,
            parent_shard_id: self.parent.as_deref(),
            adjacent_parent_shard_id: self.adjacent_parent.as_deref(),
            hash_key_range: HashKeyRange::of(self),
            sequence_number_range: SequenceNumberRange {
                starting_sequence_number: self.starting_seq,
                ending_sequence_number: self.log.lock().closed.as_ref().map(|c| c.ending_seq),
            },
        }
    }
}

/// The shards of a stream. Shard numbers are indexes into `all`.
#[derive(Debug, Default)]
struct Topology {
    all: Vec<Arc<Shard>>,
    /// Open shards sorted by hash range; together they cover 0..2^128-1.
    open: Vec<Arc<Shard>>,
}

impl Topology {
    fn route(&self, hash_key: u128) -> &Arc<Shard> {
        let i = self.open.partition_point(|s| s.end < hash_key);
        &self.open[i.min(self.open.len() - 1)]
    }

    fn find(&self, shard_id: &str) -> Option<&Arc<Shard>> {
        let number: usize = shard_id.strip_prefix("shardId-")?.parse().ok()?;
        self.all.get(number).filter(|s| s.id == shard_id)
    }
}

#[derive(Debug)]
struct Stream {
    name: String,
    arn: String,
    created: SystemTime,
    topology: RwLock<Topology>,
    /// Source of sequence numbers; taken under a shard's lock, so numbers
    /// increase within every shard, and children start above their parents.
    next_seq: AtomicU64,
}

impl Stream {
    fn take_seq(&self) -> SeqNo {
        SeqNo(self.next_seq.fetch_add(1, Ordering::Relaxed))
    }

    fn open_shard_count(&self) -> usize {
        self.topology.read().open.len()
    }

    /// Opens `ranges` as new shards that replace `parents` (closed here).
    /// Parent numbers of each child are the closed shards its range
    /// overlaps; AWS can name two, which is all SplitShard, MergeShards and
    /// an UpdateShardCount within [half, double] produce for even ranges.
    fn reshard(&self, topology: &mut Topology, parents: &[Arc<Shard>], ranges: &[(u128, u128)]) {
        let now = SystemTime::now();
        let mut logs: Vec<_> = parents.iter().map(|p| p.log.lock()).collect();
        for log in &mut logs {
            log.closed = Some(Closure {
                ending_seq: self.take_seq(),
                at: now,
                children: Vec::new(),
            });
        }
        let mut children = Vec::with_capacity(ranges.len());
        for &(start, end) in ranges {
            let mut overlapping = parents.iter().filter(|p| p.overlaps(start, end));
            let parent_ids = [
                overlapping.next().map(|p| p.id.clone()),
                overlapping.next().map(|p| p.id.clone()),
            ];
            let child = Arc::new(Shard::new(
                topology.all.len(),
                (start, end),
                parent_ids,
                self.take_seq(),
            ));
            topology.all.push(Arc::clone(&child));
            children.push(child);
        }
        for (parent, log) in parents.iter().zip(&mut logs) {
            if let Some(closure) = log.closed.as_mut() {
                closure.children = children
                    .iter()
                    .filter(|c| parent.overlaps(c.start, c.end))
                    .cloned()
                    .collect();
            }
        }
        drop(logs);
        topology
            .open
            .retain(|s| !parents.iter().any(|p| Arc::ptr_eq(p, s)));
        topology.open.extend(children);
        topology.open.sort_by_key(|s| s.start);
    }
}

/// What happened to one record of a put.
enum Appended {
    Stored(SeqNo),
    Throttled,
}

impl ShardLog {
    #[allow(clippy::too_many_arguments)]
    fn append(
        &mut self,
        stream: &Stream,
        now: Instant,
        arrival: SystemTime,
        limits: Option<ShardLimits>,
        retain: Option<usize>,
        record: RecordIn<'_>,
    ) -> Appended {
        let cost = (record.data.len() + record.partition_key.len()) as u64;
        self.window.expire(now);
        if let Some(l) = limits
            && !self
                .window
                .fits(cost, 1, l.bytes_per_second, l.records_per_second)
        {
            self.counters.throttled_records += 1;
            return Appended::Throttled;
        }
        self.window.add(now, cost, 1);
        let seq = stream.take_seq();
        self.counters.accepted_records += 1;
        self.counters.accepted_bytes += cost;
        let utilisation = self.utilisation(limits);
        if utilisation > self.counters.peak_utilisation {
            self.counters.peak_utilisation = utilisation;
        }
        self.next_position += 1;
        if retain.is_none_or(|n| n > 0) {
            self.records.push_back(Stored {
                seq,
                arrival,
                partition_key: record.partition_key.into(),
                explicit_hash_key: record.explicit_hash_key.map(Into::into),
                data: record.data,
                hash_key: record.hash_key,
            });
        }
        if let Some(n) = retain {
            while self.records.len() > n {
                self.records.pop_front();
            }
        }
        self.first_position = self.next_position - self.records.len() as u64;
        Appended::Stored(seq)
    }

    /// Share of the quota used over the last second (window already expired).
    fn utilisation(&self, limits: Option<ShardLimits>) -> f64 {
        utilisation(self.window.totals(), limits)
    }
}

/// The larger of the bytes and records ratios against the quota (the
/// default quota when limits are off, so the figure stays meaningful).
fn utilisation((bytes, records): (u64, u64), limits: Option<ShardLimits>) -> f64 {
    let l = limits.unwrap_or_default();
    let b = bytes as f64 / l.bytes_per_second.max(1) as f64;
    let r = records as f64 / l.records_per_second.max(1) as f64;
    b.max(r)
}

/// One record of a put, validated and decoded.
struct RecordIn<'a> {
    partition_key: &'a str,
    explicit_hash_key: Option<&'a str>,
    data: Bytes,
    hash_key: u128,
}

// ---------------------------------------------------------------------------
// Wire shapes. Inputs borrow from the request body (`Cow` falls back to an
// owned string only when JSON escapes force it).

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct HashKeyRange {
    starting_hash_key: String,
    ending_hash_key: String,
}

impl HashKeyRange {
    fn of(shard: &Shard) -> Self {
        HashKeyRange {
            starting_hash_key: shard.start.to_string(),
            ending_hash_key: shard.end.to_string(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SequenceNumberRange {
    starting_sequence_number: SeqNo,
    #[serde(skip_serializing_if = "Option::is_none")]
    ending_sequence_number: Option<SeqNo>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ShardJson<'a> {
    shard_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_shard_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    adjacent_parent_shard_id: Option<&'a str>,
    hash_key_range: HashKeyRange,
    sequence_number_range: SequenceNumberRange,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ChildShardJson<'a> {
    shard_id: &'a str,
    parent_shards: Vec<&'a str>,
    hash_key_range: HashKeyRange,
}

/// Every operation names its stream by `StreamName` or `StreamARN`.
#[derive(Deserialize, Default)]
struct StreamRef<'a> {
    #[serde(rename = "StreamName", borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(rename = "StreamARN", borrow)]
    arn: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct PutRecordsEntry<'a> {
    #[serde(rename = "Data", borrow)]
    data: Cow<'a, str>,
    #[serde(rename = "PartitionKey", borrow)]
    partition_key: Cow<'a, str>,
    #[serde(rename = "ExplicitHashKey", borrow)]
    explicit_hash_key: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct PutRecordsInput<'a> {
    #[serde(rename = "StreamName", borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(rename = "StreamARN", borrow)]
    arn: Option<Cow<'a, str>>,
    #[serde(rename = "Records", borrow)]
    records: Vec<PutRecordsEntry<'a>>,
}

#[derive(Deserialize)]
struct PutRecordInput<'a> {
    #[serde(rename = "StreamName", borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(rename = "StreamARN", borrow)]
    arn: Option<Cow<'a, str>>,
    #[serde(rename = "Data", borrow)]
    data: Cow<'a, str>,
    #[serde(rename = "PartitionKey", borrow)]
    partition_key: Cow<'a, str>,
    #[serde(rename = "ExplicitHashKey", borrow)]
    explicit_hash_key: Option<Cow<'a, str>>,
}

/// One PutRecords result, in request order.
#[derive(Serialize)]
#[serde(untagged)]
enum PutResult<'a> {
    Ok {
        #[serde(rename = "SequenceNumber")]
        sequence_number: SeqNo,
        #[serde(rename = "ShardId")]
        shard_id: &'a str,
    },
    Failed {
        #[serde(rename = "ErrorCode")]
        error_code: &'static str,
        #[serde(rename = "ErrorMessage")]
        error_message: String,
    },
}

/// A shard iterator: stream, shard number and position, base64-encoded so
/// that clients treat it as opaque.
struct ShardIterator<'a> {
    stream: Cow<'a, str>,
    shard: usize,
    position: u64,
}

impl ShardIterator<'_> {
    fn encode(&self) -> String {
        BASE64.encode(format!("{}/{}/{}", self.stream, self.shard, self.position))
    }

    fn decode(text: &str) -> Option<ShardIterator<'static>> {
        let raw = String::from_utf8(BASE64.decode(text).ok()?).ok()?;
        let mut parts = raw.split('/');
        let stream = parts.next()?.to_owned();
        let shard = parts.next()?.parse().ok()?;
        let position = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(ShardIterator {
            stream: Cow::Owned(stream),
            shard,
            position,
        })
    }
}

/// Pagination token of ListShards / ListStreams: an opaque offset.
fn encode_token(scope: &str, offset: usize) -> String {
    BASE64.encode(format!("{scope}/{offset}"))
}

fn decode_token(token: &str) -> Option<(String, usize)> {
    let raw = String::from_utf8(BASE64.decode(token).ok()?).ok()?;
    let (scope, offset) = raw.rsplit_once('/')?;
    Some((scope.to_owned(), offset.parse().ok()?))
}

fn is_valid_stream_name(name: &str) -> bool {
    (1..=MAX_STREAM_NAME_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// AWS's pattern for explicit hash keys: `0|([1-9]\d{0,38})`.
fn matches_hash_key_pattern(key: &str) -> bool {
    key == "0"
        || (!key.is_empty()
            && key.len() <= 39
            && !key.starts_with('0')
            && key.bytes().all(|b| b.is_ascii_digit()))
}

fn limit_value(
    value: Option<i64>,
    name: &str,
    max: i64,
    default: usize,
) -> Result<usize, ApiError> {
    match value {
        None => Ok(default),
        Some(v) if v < 1 => Err(ApiError::validation_list(&[format!(
            "Value '{v}' at '{name}' failed to satisfy constraint: Member must have value greater than or equal to 1"
        )])),
        Some(v) if v > max => Err(ApiError::validation_list(&[format!(
            "Value '{v}' at '{name}' failed to satisfy constraint: Member must have value less than or equal to {max}"
        )])),
        Some(v) => Ok(v as usize),
    }
}

// ---------------------------------------------------------------------------

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

    // --- writes --------------------------------------------------------------

    /// Checks the members of one record; `field` is the path AWS names in
    /// its messages (`records.3.member` or empty for PutRecord).
    fn validate_record(
        &self,
        field: &str,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data_len: usize,
        errors: &mut Vec<String>,
    ) {
        let at = |member: &str| {
            if field.is_empty() {
                member.to_owned()
            } else {
                format!("{field}.{member}")
            }
        };
        // Bytes bound characters from above, so only long keys are counted.
        let key_chars = if partition_key.len() <= MAX_PARTITION_KEY_CHARS {
            partition_key.len().min(partition_key.chars().count())
        } else {
            partition_key.chars().count()
        };
        if key_chars < 1 {
            errors.push(format!(
                "Value '{partition_key}' at '{}' failed to satisfy constraint: Member must have length greater than or equal to 1",
                at("partitionKey")
            ));
        } else if key_chars > MAX_PARTITION_KEY_CHARS {
            errors.push(format!(
                "Value '{partition_key}' at '{}' failed to satisfy constraint: Member must have length less than or equal to {MAX_PARTITION_KEY_CHARS}",
                at("partitionKey")
            ));
        }
        if let Some(key) = explicit_hash_key
            && !matches_hash_key_pattern(key)
        {
            errors.push(format!(
                "Value '{key}' at '{}' failed to satisfy constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{{0,38}})",
                at("explicitHashKey")
            ));
        }
        if data_len > self.settings.max_record_bytes {
            errors.push(format!(
                "Value 'java.nio.HeapByteBuffer[pos=0 lim={data_len} cap={data_len}]' at '{}' failed to satisfy constraint: Member must have length less than or equal to {}",
                at("data"),
                self.settings.max_record_bytes
            ));
        }
    }

    /// The hash key of a validated record, and its size against the record
    /// limit (data + partition key).
    fn route_key(
        &self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data_len: usize,
    ) -> Result<u128, ApiError> {
        let hash_key = match explicit_hash_key {
            Some(key) => key.parse::<u128>().map_err(|_| {
                ApiError::invalid_argument(format!(
                    "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {key}"
                ))
            })?,
            None => partition_key_hash(partition_key),
        };
        let size = data_len + partition_key.len();
        if size > self.settings.max_record_bytes {
            return Err(ApiError::invalid_argument(format!(
                "Record size of {size} bytes (data + partition key) exceeds the limit of {} bytes",
                self.settings.max_record_bytes
            )));
        }
        Ok(hash_key)
    }

    fn throttled_message(&self, shard: &Shard, stream: &Stream) -> String {
        format!(
            "Rate exceeded for shard {} in stream {} under account {}.",
            shard.id, stream.name, self.settings.account_id
        )
    }

    fn put_records(&self, body: &[u8], faults: &FaultInjector) -> Result<Vec<u8>, ApiError> {
        let input: PutRecordsInput<'_> = parse_json(body)?;
        let n = input.records.len();
        if n == 0 || n > MAX_RECORDS_PER_REQUEST {
            let constraint = if n == 0 {
                "greater than or equal to 1".to_owned()
            } else {
                format!("less than or equal to {MAX_RECORDS_PER_REQUEST}")
            };
            return Err(ApiError::validation_list(&[format!(
                "Value '[...{n} records]' at 'records' failed to satisfy constraint: Member must have length {constraint}"
            )]));
        }

        // Decode every record into one buffer: one allocation per request,
        // and each record's data is a cheap slice of it.
        let estimate: usize = input.records.iter().map(|r| r.data.len() / 4 * 3 + 3).sum();
        let mut buffer = Vec::with_capacity(estimate);
        let mut spans = Vec::with_capacity(n);
        let mut errors = Vec::new();
        for (i, record) in input.records.iter().enumerate() {
            let start = buffer.len();
            decode_blob(
                &record.data,
                &mut buffer,
                &format!("records.{}.member.data", i + 1),
            )?;
            spans.push(start..buffer.len());
            self.validate_record(
                &format!("records.{}.member", i + 1),
                &record.partition_key,
                record.explicit_hash_key.as_deref(),
                buffer.len() - start,
                &mut errors,
            );
        }
        if !errors.is_empty() {
            return Err(ApiError::validation_list(&errors));
        }
        let stream = self.resolve(input.name.as_deref(), input.arn.as_deref())?;
        let mut hash_keys = Vec::with_capacity(n);
        let mut request_bytes = 0;
        for (record, span) in input.records.iter().zip(&spans) {
            hash_keys.push(self.route_key(
                &record.partition_key,
                record.explicit_hash_key.as_deref(),
                span.len(),
            )?);
            request_bytes += span.len() + record.partition_key.len();
        }
        if request_bytes > self.settings.max_request_bytes {
            return Err(ApiError::invalid_argument(format!(
                "Records size exceeds {} MB limit",
                self.settings.max_request_bytes as u64 / MIB
            )));
        }

        let data = Bytes::from(buffer);
        let failures = faults.roll_records(n);
        let limits = self.limits();
        let now = Instant::now();
        let arrival = SystemTime::now();
        let topology = stream.topology.read();
        let mut results = Vec::with_capacity(n);
        let mut failed = 0;
        for (i, record) in input.records.iter().enumerate() {
            let shard = topology.route(hash_keys[i]);
            let mut log = shard.log.lock();
            if failures.as_ref().is_some_and(|f| f[i]) {
                log.counters.failed_records += 1;
                failed += 1;
                results.push(PutResult::Failed {
                    error_code: "InternalFailure",
                    error_message: "Internal service failure.".to_owned(),
                });
                continue;
            }
            let appended = log.append(
                &stream,
                now,
                arrival,
                limits,
                self.settings.retain,
                RecordIn {
                    partition_key: &record.partition_key,
                    explicit_hash_key: record.explicit_hash_key.as_deref(),
                    data: data.slice(spans[i].clone()),
                    hash_key: hash_keys[i],
                },
            );
            drop(log);
            results.push(match appended {
                Appended::Stored(sequence_number) => PutResult::Ok {
                    sequence_number,
                    shard_id: &shard.id,
                },
                Appended::Throttled => {
                    failed += 1;
                    PutResult::Failed {
                        error_code: "ProvisionedThroughputExceededException",
                        error_message: self.throttled_message(shard, &stream),
                    }
                }
            });
        }
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Output<'a> {
            failed_record_count: usize,
            records: Vec<PutResult<'a>>,
            encryption_type: &'static str,
        }
        Ok(to_json(&Output {
            failed_record_count: failed,
            records: results,
            encryption_type: "NONE",
        }))
    }

    fn put_record(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        let input: PutRecordInput<'_> = parse_json(body)?;
        let mut data = Vec::with_capacity(input.data.len() / 4 * 3 + 3);
        decode_blob(&input.data, &mut data, "data")?;
        let mut errors = Vec::new();
        self.validate_record(
            "",
            &input.partition_key,
            input.explicit_hash_key.as_deref(),
            data.len(),
            &mut errors,
        );
        if !errors.is_empty() {
            return Err(ApiError::validation_list(&errors));
        }
        let stream = self.resolve(input.name.as_deref(), input.arn.as_deref())?;
        let hash_key = self.route_key(
            &input.partition_key,
            input.explicit_hash_key.as_deref(),
            data.len(),
        )?;
        let topology = stream.topology.read();
        let shard = topology.route(hash_key);
        let appended = shard.log.lock().append(
            &stream,
            Instant::now(),
            SystemTime::now(),
            self.limits(),
            self.settings.retain,
            RecordIn {
                partition_key: &input.partition_key,
                explicit_hash_key: input.explicit_hash_key.as_deref(),
                data: Bytes::from(data),
                hash_key,
            },
        );
        match appended {
            Appended::Stored(seq) => Ok(to_json(&serde_json::json!({
                "ShardId": shard.id,
                "SequenceNumber": seq,
                "EncryptionType": "NONE",
            }))),
            Appended::Throttled => Err(ApiError::throughput_exceeded(
                self.throttled_message(shard, &stream),
            )),
        }
    }

    // --- reads ---------------------------------------------------------------

    fn get_shard_iterator(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        #[derive(Deserialize)]
        struct Input<'a> {
            #[serde(flatten, borrow)]
            stream: StreamRef<'a>,
            #[serde(rename = "ShardId", borrow)]
            shard_id: Cow<'a, str>,
            #[serde(rename = "ShardIteratorType", borrow)]
            iterator_type: Cow<'a, str>,
            #[serde(rename = "StartingSequenceNumber", borrow)]
            starting_sequence_number: Option<Cow<'a, str>>,
            #[serde(rename = "Timestamp")]
            timestamp: Option<f64>,
        }
        let input: Input<'_> = parse_json(body)?;
        let stream = self.resolve_ref(&input.stream)?;
        let topology = stream.topology.read();
        let shard = topology.find(&input.shard_id).ok_or_else(|| {
            ApiError::not_found(format!(
                "Shard {} in stream {} under account {} does not exist",
                input.shard_id, stream.name, self.settings.account_id
            ))
        })?;
        let log = shard.log.lock();
        let sequence = || -> Result<SeqNo, ApiError> {
            let text = input.starting_sequence_number.as_deref().ok_or_else(|| {
                ApiError::invalid_argument(format!(
                    "Must specify StartingSequenceNumber for {} shard iterator type",
                    input.iterator_type
                ))
            })?;
            SeqNo::parse(text).ok_or_else(|| {
                ApiError::invalid_argument(format!(
                    "StartingSequenceNumber {text} used in GetShardIterator on shard {} in stream {} under account {} is invalid.",
                    shard.id, stream.name, self.settings.account_id
                ))
            })
        };
        let index = match &*input.iterator_type {
            "TRIM_HORIZON" => 0,
            "LATEST" => log.records.len(),
            "AT_SEQUENCE_NUMBER" => {
                let seq = sequence()?;
                log.records.partition_point(|r| r.seq < seq)
            }
            "AFTER_SEQUENCE_NUMBER" => {
                let seq = sequence()?;
                log.records.partition_point(|r| r.seq <= seq)
            }
            "AT_TIMESTAMP" => {
                let ts = input.timestamp.ok_or_else(|| {
                    ApiError::invalid_argument("Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP.")
                })?;
                log.records
                    .partition_point(|r| epoch_seconds(r.arrival) < ts)
            }
            other => {
                return Err(ApiError::validation_list(&[format!(
                    "Value '{other}' at 'shardIteratorType' failed to satisfy constraint: Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, AT_SEQUENCE_NUMBER, AT_TIMESTAMP, TRIM_HORIZON, LATEST]"
                )]));
            }
        };
        let iterator = ShardIterator {
            stream: Cow::Borrowed(&stream.name),
            shard: shard.number,
            position: log.first_position + index as u64,
        };
        Ok(to_json(
            &serde_json::json!({ "ShardIterator": iterator.encode() }),
        ))
    }

    fn get_records(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        #[derive(Deserialize)]
        struct Input<'a> {
            #[serde(rename = "ShardIterator", borrow)]
            shard_iterator: Cow<'a, str>,
            #[serde(rename = "Limit")]
            limit: Option<i64>,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct RecordJson<'a> {
            sequence_number: SeqNo,
            approximate_arrival_timestamp: f64,
            data: String,
            partition_key: &'a str,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Output<'a> {
            records: Vec<RecordJson<'a>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            next_shard_iterator: Option<String>,
            millis_behind_latest: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            child_shards: Option<Vec<ChildShardJson<'a>>>,
        }
        let input: Input<'_> = parse_json(body)?;
        let limit = limit_value(
            input.limit,
            "limit",
            GET_RECORDS_MAX_RECORDS as i64,
            GET_RECORDS_MAX_RECORDS,
        )?;
        let iterator = ShardIterator::decode(&input.shard_iterator)
            .ok_or_else(|| ApiError::invalid_argument("Invalid ShardIterator."))?;
        let stream = self.resolve(Some(&iterator.stream), None)?;
        let topology = stream.topology.read();
        let shard = topology
            .all
            .get(iterator.shard)
            .ok_or_else(|| ApiError::invalid_argument("Invalid ShardIterator."))?;
        let log = shard.log.lock();
        // Records trimmed by retention are gone: start at the oldest kept,
        // as AWS does for records past the retention period.
        let start = iterator
            .position
            .max(log.first_position)
            .min(log.next_position);
        let first = (start - log.first_position) as usize;
        let mut records = Vec::new();
        let mut bytes = 0;
        for r in log.records.iter().skip(first).take(limit) {
            if !records.is_empty() && bytes + r.data.len() > GET_RECORDS_MAX_BYTES {
                break;
            }
            bytes += r.data.len();
            records.push(RecordJson {
                sequence_number: r.seq,
                approximate_arrival_timestamp: epoch_seconds(r.arrival),
                data: BASE64.encode(&r.data),
                partition_key: &r.partition_key,
            });
        }
        let next = start + records.len() as u64;
        let millis_behind_latest = log
            .records
            .get(first + records.len())
            .and_then(|r| r.arrival.elapsed().ok())
            .map_or(0, |d| d.as_millis() as u64);
        let at_end = next == log.next_position;
        let (next_shard_iterator, child_shards) = match &log.closed {
            Some(closure) if at_end => (
                None,
                Some(
                    closure
                        .children
                        .iter()
                        .map(|c| ChildShardJson {
                            shard_id: &c.id,
                            parent_shards: c
                                .parent
                                .iter()
                                .chain(&c.adjacent_parent)
                                .map(String::as_str)
                                .collect(),
                            hash_key_range: HashKeyRange::of(c),
                        })
                        .collect(),
                ),
            ),
            _ => (
                Some(
                    ShardIterator {
                        stream: Cow::Borrowed(&stream.name),
                        shard: shard.number,
                        position: next,
                    }
                    .encode(),
                ),
                None,
            ),
        };
        Ok(to_json(&Output {
            records,
            next_shard_iterator,
            millis_behind_latest,
            child_shards,
        }))
    }

    // --- stream management ---------------------------------------------------

    fn create_stream_op(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        #[derive(Deserialize)]
        struct Input<'a> {
            #[serde(rename = "StreamName", borrow)]
            name: Cow<'a, str>,
            #[serde(rename = "ShardCount")]
            shard_count: Option<i64>,
            #[serde(rename = "StreamModeDetails")]
            mode: Option<serde_json::Value>,
        }
        let input: Input<'_> = parse_json(body)?;
        if !is_valid_stream_name(&input.name) {
            return Err(ApiError::validation_list(&[format!(
                "Value '{}' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ and have length between 1 and {MAX_STREAM_NAME_CHARS}",
                input.name
            )]));
        }
        let on_demand = input
            .mode
            .as_ref()
            .and_then(|m| m.get("StreamMode"))
            .and_then(|m| m.as_str())
            == Some("ON_DEMAND");
        let shards = match input.shard_count {
            // On-demand streams start with four shards, as AWS's do.
            None if on_demand => 4,
            None => {
                return Err(ApiError::invalid_argument(
                    "ShardCount must be specified for a PROVISIONED stream",
                ));
            }
            Some(n) if !(1..=10_000).contains(&n) => {
                return Err(ApiError::validation_list(&[format!(
                    "Value '{n}' at 'shardCount' failed to satisfy constraint: Member must have value between 1 and 10000"
                )]));
            }
            Some(n) => n as u32,
        };
        if !self.create_stream(&input.name, shards) {
            return Err(ApiError::in_use(format!(
                "Stream {} under account {} already exists.",
                input.name, self.settings.account_id
            )));
        }
        Ok(b"{}".to_vec())
    }

    fn delete_stream(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        let input: StreamRef<'_> = parse_json(body)?;
        let stream = self.resolve_ref(&input)?;
        self.streams.write().remove(&stream.name);
        Ok(b"{}".to_vec())
    }

    fn list_streams(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        #[derive(Deserialize)]
        struct Input<'a> {
            #[serde(rename = "Limit")]
            limit: Option<i64>,
            #[serde(rename = "ExclusiveStartStreamName", borrow)]
            exclusive_start: Option<Cow<'a, str>>,
            #[serde(rename = "NextToken", borrow)]
            next_token: Option<Cow<'a, str>>,
        }
        let input: Input<'_> = parse_json(body)?;
        let limit = limit_value(input.limit, "limit", 10_000, 100)?;
        let after = match &input.next_token {
            Some(token) => Some(
                decode_token(token)
                    .map(|(name, _)| name)
                    .ok_or_else(|| ApiError::invalid_argument("Invalid NextToken."))?,
            ),
            None => input.exclusive_start.map(Cow::into_owned),
        };
        let streams = self.streams.read();
        let selected: Vec<&Arc<Stream>> = streams
            .values()
            .filter(|s| after.as_deref().is_none_or(|a| s.name.as_str() > a))
            .take(limit + 1)
            .collect();
        let has_more = selected.len() > limit;
        let page = &selected[..selected.len().min(limit)];
        let summaries: Vec<_> = page
            .iter()
            .map(|s| {
                serde_json::json!({
                    "StreamName": s.name,
                    "StreamARN": s.arn,
                    "StreamStatus": "ACTIVE",
                    "StreamModeDetails": { "StreamMode": "PROVISIONED" },
                    "StreamCreationTimestamp": epoch_seconds(s.created),
                })
            })
            .collect();
        let mut out = serde_json::json!({
            "StreamNames": page.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            "HasMoreStreams": has_more,
            "StreamSummaries": summaries,
        });
        if has_more && let Some(last) = page.last() {
            out["NextToken"] = encode_token(&last.name, 0).into();
        }
        Ok(to_json(&out))
    }

    fn describe_stream(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        #[derive(Deserialize)]
        struct Input<'a> {
            #[serde(flatten, borrow)]
            stream: StreamRef<'a>,
            #[serde(rename = "Limit")]
            limit: Option<i64>,
            #[serde(rename = "ExclusiveStartShardId", borrow)]
            exclusive_start: Option<Cow<'a, str>>,
        }
        let input: Input<'_> = parse_json(body)?;
        let limit = limit_value(input.limit, "limit", 10_000, 100)?;
        let stream = self.resolve_ref(&input.stream)?;
        let topology = stream.topology.read();
        let after: Vec<&Arc<Shard>> = topology
            .all
            .iter()
            .filter(|s| {
                input
                    .exclusive_start
                    .as_deref()
                    .is_none_or(|x| s.id.as_str() > x)
            })
            .collect();
        let shards: Vec<_> = after.iter().take(limit).map(|s| s.describe()).collect();
        Ok(to_json(&serde_json::json!({
            "StreamDescription": {
                "StreamName": stream.name,
                "StreamARN": stream.arn,
                "StreamStatus": "ACTIVE",
                "StreamModeDetails": { "StreamMode": "PROVISIONED" },
                "Shards": shards,
                "HasMoreShards": after.len() > limit,
                "RetentionPeriodHours": 24,
                "StreamCreationTimestamp": epoch_seconds(stream.created),
                "EnhancedMonitoring": [{ "ShardLevelMetrics": [] }],
                "EncryptionType": "NONE",
            }
        })))
    }

    fn describe_stream_summary(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        let input: StreamRef<'_> = parse_json(body)?;
        let stream = self.resolve_ref(&input)?;
        Ok(to_json(&serde_json::json!({
            "StreamDescriptionSummary": {
                "StreamName": stream.name,
                "StreamARN": stream.arn,
                "StreamStatus": "ACTIVE",
                "StreamModeDetails": { "StreamMode": "PROVISIONED" },
                "RetentionPeriodHours": 24,
                "StreamCreationTimestamp": epoch_seconds(stream.created),
                "EnhancedMonitoring": [{ "ShardLevelMetrics": [] }],
                "EncryptionType": "NONE",
                "OpenShardCount": stream.open_shard_count(),
                "ConsumerCount": 0,
            }
        })))
    }

    fn list_shards(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        #[derive(Deserialize)]
        struct Filter<'a> {
            #[serde(rename = "Type", borrow)]
            kind: Cow<'a, str>,
            #[serde(rename = "ShardId", borrow)]
            shard_id: Option<Cow<'a, str>>,
            #[serde(rename = "Timestamp")]
            timestamp: Option<f64>,
        }
        #[derive(Deserialize)]
        struct Input<'a> {
            #[serde(flatten, borrow)]
            stream: StreamRef<'a>,
            #[serde(rename = "NextToken", borrow)]
            next_token: Option<Cow<'a, str>>,
            #[serde(rename = "MaxResults")]
            max_results: Option<i64>,
            #[serde(rename = "ExclusiveStartShardId", borrow)]
            exclusive_start: Option<Cow<'a, str>>,
            #[serde(rename = "ShardFilter", borrow)]
            filter: Option<Filter<'a>>,
        }
        let input: Input<'_> = parse_json(body)?;
        let max = limit_value(input.max_results, "maxResults", 10_000, 1_000)?;
        let (stream, offset) = match &input.next_token {
            Some(token) => {
                if input.stream.name.is_some() || input.stream.arn.is_some() {
                    return Err(ApiError::invalid_argument(
                        "NextToken and StreamName cannot be provided together.",
                    ));
                }
                let (name, offset) = decode_token(token)
                    .ok_or_else(|| ApiError::invalid_argument("Invalid NextToken."))?;
                (self.resolve(Some(&name), None)?, offset)
            }
            None => (self.resolve_ref(&input.stream)?, 0),
        };
        let topology = stream.topology.read();
        let keep = |s: &Shard| -> Result<bool, ApiError> {
            if input
                .exclusive_start
                .as_deref()
                .is_some_and(|x| s.id.as_str() <= x)
            {
                return Ok(false);
            }
            let Some(filter) = &input.filter else {
                return Ok(true);
            };
            let closed_at = s.log.lock().closed.as_ref().map(|c| c.at);
            Ok(match &*filter.kind {
                "AT_LATEST" => closed_at.is_none(),
                // Everything is within retention here.
                "AT_TRIM_HORIZON" | "FROM_TRIM_HORIZON" => true,
                "AFTER_SHARD_ID" => {
                    let id = filter.shard_id.as_deref().ok_or_else(|| {
                        ApiError::invalid_argument(
                            "ShardId must be specified for the AFTER_SHARD_ID ShardFilter type.",
                        )
                    })?;
                    s.id.as_str() > id
                }
                "AT_TIMESTAMP" | "FROM_TIMESTAMP" => {
                    let ts = filter.timestamp.ok_or_else(|| {
                        ApiError::invalid_argument(
                            "Timestamp must be specified for this ShardFilter type.",
                        )
                    })?;
                    closed_at.is_none_or(|at| epoch_seconds(at) >= ts)
                }
                other => {
                    return Err(ApiError::validation_list(&[format!(
                        "Value '{other}' at 'shardFilter.type' failed to satisfy constraint: Member must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]"
                    )]));
                }
            })
        };
        let mut selected = Vec::new();
        for shard in &topology.all {
            if keep(shard)? {
                selected.push(shard);
            }
        }
        let page: Vec<_> = selected
            .iter()
            .skip(offset)
            .take(max)
            .map(|s| s.describe())
            .collect();
        let mut out = serde_json::json!({ "Shards": page });
        if offset + max < selected.len() {
            out["NextToken"] = encode_token(&stream.name, offset + max).into();
        }
        Ok(to_json(&out))
    }

    // --- resharding ----------------------------------------------------------

    fn update_shard_count(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        #[derive(Deserialize)]
        struct Input<'a> {
            #[serde(flatten, borrow)]
            stream: StreamRef<'a>,
            #[serde(rename = "TargetShardCount")]
            target: i64,
            #[serde(rename = "ScalingType", borrow)]
            scaling_type: Cow<'a, str>,
        }
        let input: Input<'_> = parse_json(body)?;
        if input.scaling_type != "UNIFORM_SCALING" {
            return Err(ApiError::validation_list(&[format!(
                "Value '{}' at 'scalingType' failed to satisfy constraint: Member must satisfy enum value set: [UNIFORM_SCALING]",
                input.scaling_type
            )]));
        }
        let stream = self.resolve_ref(&input.stream)?;
        let mut topology = stream.topology.write();
        let current = topology.open.len() as i64;
        let target = input.target;
        // AWS scales by at most a factor of two per call.
        if target < 1 || target > 2 * current || 2 * target < current {
            return Err(ApiError::limit_exceeded(format!(
                "UpdateShardCount can only scale between half and double the current open shard count ({current}); requested {target}."
            )));
        }
        if target != current {
            let parents = topology.open.clone();
            stream.reshard(&mut topology, &parents, &even_split(target as u32));
        }
        Ok(to_json(&serde_json::json!({
            "StreamName": stream.name,
            "StreamARN": stream.arn,
            "CurrentShardCount": current,
            "TargetShardCount": target,
        })))
    }

    fn open_shard<'t>(
        &self,
        topology: &'t Topology,
        stream: &Stream,
        shard_id: &str,
    ) -> Result<&'t Arc<Shard>, ApiError> {
        let shard = topology.find(shard_id).ok_or_else(|| {
            ApiError::not_found(format!(
                "Could not find shard {shard_id} in stream {} under account {}.",
                stream.name, self.settings.account_id
            ))
        })?;
        if shard.log.lock().closed.is_some() {
            return Err(ApiError::invalid_argument(format!(
                "Shard {shard_id} in stream {} under account {} has already been merged or split, and thus is not eligible for merging or splitting.",
                stream.name, self.settings.account_id
            )));
        }
        Ok(shard)
    }

    fn split_shard(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        #[derive(Deserialize)]
        struct Input<'a> {
            #[serde(flatten, borrow)]
            stream: StreamRef<'a>,
            #[serde(rename = "ShardToSplit", borrow)]
            shard: Cow<'a, str>,
            #[serde(rename = "NewStartingHashKey", borrow)]
            new_starting_hash_key: Cow<'a, str>,
        }
        let input: Input<'_> = parse_json(body)?;
        let stream = self.resolve_ref(&input.stream)?;
        let mut topology = stream.topology.write();
        let shard = Arc::clone(self.open_shard(&topology, &stream, &input.shard)?);
        let key = input
            .new_starting_hash_key
            .parse::<u128>()
            .ok()
            .filter(|k| *k > shard.start && *k <= shard.end)
            .ok_or_else(|| {
                ApiError::invalid_argument(format!(
                    "NewStartingHashKey {} used in SplitShard() on shard {} in stream {} under account {} is not both greater than one plus the shard's StartingHashKey {} and less than the shard's EndingHashKey {}.",
                    input.new_starting_hash_key, shard.id, stream.name, self.settings.account_id, shard.start, shard.end
                ))
            })?;
        stream.reshard(
            &mut topology,
            std::slice::from_ref(&shard),
            &[(shard.start, key - 1), (key, shard.end)],
        );
        Ok(b"{}".to_vec())
    }

    fn merge_shards(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        #[derive(Deserialize)]
        struct Input<'a> {
            #[serde(flatten, borrow)]
            stream: StreamRef<'a>,
            #[serde(rename = "ShardToMerge", borrow)]
            shard: Cow<'a, str>,
            #[serde(rename = "AdjacentShardToMerge", borrow)]
            adjacent: Cow<'a, str>,
        }
        let input: Input<'_> = parse_json(body)?;
        let stream = self.resolve_ref(&input.stream)?;
        let mut topology = stream.topology.write();
        let a = Arc::clone(self.open_shard(&topology, &stream, &input.shard)?);
        let b = Arc::clone(self.open_shard(&topology, &stream, &input.adjacent)?);
        let adjacent =
            a.end.checked_add(1) == Some(b.start) || b.end.checked_add(1) == Some(a.start);
        if !adjacent {
            return Err(ApiError::invalid_argument(format!(
                "Shards {} and {} in stream {} under account {} are not an adjacent pair of shards eligible for merging",
                a.id, b.id, stream.name, self.settings.account_id
            )));
        }
        let range = (a.start.min(b.start), a.end.max(b.end));
        // The child names ShardToMerge as parent and the other as adjacent
        // parent, whatever their hash order.
        stream.reshard(&mut topology, &[a, b], &[range]);
        Ok(b"{}".to_vec())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_split_matches_aws() {
        let two = even_split(2);
        assert_eq!(two[0], (0, (1u128 << 127) - 1));
        assert_eq!(two[1], (1u128 << 127, u128::MAX));
        let three = even_split(3);
        assert_eq!(
            three[1].0,
            113_427_455_640_312_821_154_458_202_477_256_070_485
        );
        assert_eq!(three[2].1, u128::MAX);
        let four = even_split(4);
        assert_eq!(
            four[1].0,
            85_070_591_730_234_615_865_843_651_857_942_052_864
        );
        for n in 1..50 {
            let ranges = even_split(n);
            assert_eq!(ranges[0].0, 0);
            assert_eq!(ranges.last().unwrap().1, u128::MAX);
            for w in ranges.windows(2) {
                assert_eq!(w[0].1 + 1, w[1].0);
            }
        }
    }

    #[test]
    fn partition_key_hash_is_big_endian_md5() {
        // MD5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(partition_key_hash("a"), 0x0cc175b9c0f1b6a831c399e269772661);
    }

    #[test]
    fn sequence_numbers_round_trip_and_order_as_strings() {
        let a = SeqNo(9).to_string();
        let b = SeqNo(10).to_string();
        assert_eq!(a.len(), 56);
        assert!(a < b);
        assert_eq!(SeqNo::parse(&b), Some(SeqNo(10)));
        assert_eq!(SeqNo::parse("12"), None);
    }

    #[test]
    fn hash_key_pattern_is_aws_regex() {
        assert!(matches_hash_key_pattern("0"));
        assert!(matches_hash_key_pattern(&u128::MAX.to_string()));
        assert!(!matches_hash_key_pattern("01"));
        assert!(!matches_hash_key_pattern("-1"));
        assert!(!matches_hash_key_pattern(""));
        assert!(!matches_hash_key_pattern(&"9".repeat(40)));
    }

    #[test]
    fn iterators_are_opaque_but_decodable() {
        let it = ShardIterator {
            stream: Cow::Borrowed("s.1"),
            shard: 3,
            position: 77,
        };
        let back = ShardIterator::decode(&it.encode()).unwrap();
        assert_eq!(
            (back.stream.as_ref(), back.shard, back.position),
            ("s.1", 3, 77)
        );
        assert!(ShardIterator::decode("garbage!").is_none());
    }
}
