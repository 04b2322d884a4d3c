//! The data plane: PutRecords and PutRecord (validate, route each record
//! to its open shard, admit it against that shard's quota, append it) and
//! GetShardIterator and GetRecords (read a shard's log back, then follow
//! it into its children once it is closed).
//!
//! Kept apart from stream management because this is the hot path: it is
//! where the write quota is enforced and per-record faults are injected.

use std::borrow::Cow;
use std::time::{Instant, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::Kinesis;
use super::model::{Appended, RecordIn, SeqNo, Shard, Stream, partition_key_hash};
use super::wire::{
    ChildShardJson, HashKeyRange, PutRecordInput, PutRecordsInput, PutResult, ShardIterator,
    StreamRef, limit_value, matches_hash_key_pattern,
};
use crate::config::{MAX_RECORDS_PER_REQUEST, MIB};
use crate::errors::ApiError;
use crate::faults::FaultInjector;
use crate::protocol::{BASE64, decode_blob, epoch_seconds, parse_json, to_json};

/// Partition keys are 1 to 256 Unicode characters.
const MAX_PARTITION_KEY_CHARS: usize = 256;
/// GetRecords answers at most this many records and bytes.
const GET_RECORDS_MAX_RECORDS: usize = 10_000;
const GET_RECORDS_MAX_BYTES: usize = 10 * MIB as usize;

impl Kinesis {
    // --- writes --------------------------------------------------------------

    /// Checks the members of one record; `position` (1-based, `None` for
    /// PutRecord) is what AWS names in its messages: `records.3.member`.
    fn validate_record(
        &self,
        position: Option<usize>,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data_len: usize,
        errors: &mut Vec<String>,
    ) {
        let at = |member: &str| match position {
            None => member.to_owned(),
            Some(n) => format!("records.{n}.member.{member}"),
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

    pub(super) fn put_records(
        &self,
        body: &[u8],
        faults: &FaultInjector,
    ) -> Result<Vec<u8>, ApiError> {
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
            decode_blob(&record.data, &mut buffer, || {
                format!("records.{}.member.data", i + 1)
            })?;
            spans.push(start..buffer.len());
            self.validate_record(
                Some(i + 1),
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

    pub(super) fn put_record(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        let input: PutRecordInput<'_> = parse_json(body)?;
        let mut data = Vec::with_capacity(input.data.len() / 4 * 3 + 3);
        decode_blob(&input.data, &mut data, || "data".into())?;
        let mut errors = Vec::new();
        self.validate_record(
            None,
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

    pub(super) fn get_shard_iterator(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
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

    pub(super) fn get_records(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
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
}
