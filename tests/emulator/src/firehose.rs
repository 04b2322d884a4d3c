//! Amazon Data Firehose (Direct PUT): delivery streams, their quotas and
//! the operations of the `Firehose_20150804` API. Delivered records are
//! kept in arrival order, as Firehose would concatenate them into its
//! destination.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::config::{
    FIREHOSE_MAX_BATCH_BYTES, FIREHOSE_MAX_RECORD_BYTES, FirehoseLimits, MAX_RECORDS_PER_REQUEST,
};
use crate::errors::ApiError;
use crate::faults::FaultInjector;
use crate::limits::RateWindow;
use crate::protocol::{decode_blob, epoch_seconds, parse_json, to_json};
use crate::stats::DeliveryStreamStats;

#[derive(Debug, Default)]
struct DeliveryState {
    delivered: VecDeque<Bytes>,
    records_window: RateWindow,
    requests_window: RateWindow,
    stats: DeliveryStreamStats,
}

#[derive(Debug)]
struct DeliveryStream {
    name: String,
    arn: String,
    created: SystemTime,
    state: Mutex<DeliveryState>,
}

#[derive(Deserialize)]
struct RecordIn<'a> {
    /// Base64 text, read as bytes: see [`decode_blob`](crate::protocol::decode_blob).
    #[serde(rename = "Data", borrow)]
    data: Cow<'a, [u8]>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum EntryResult {
    Ok {
        #[serde(rename = "RecordId")]
        record_id: String,
    },
    Failed {
        #[serde(rename = "ErrorCode")]
        error_code: &'static str,
        #[serde(rename = "ErrorMessage")]
        error_message: &'static str,
    },
}

/// The Firehose side of the emulator.
#[derive(Debug)]
pub(crate) struct Firehose {
    account_id: String,
    region: String,
    retain: Option<usize>,
    limits: RwLock<Option<FirehoseLimits>>,
    streams: RwLock<BTreeMap<String, Arc<DeliveryStream>>>,
    /// Makes record ids unique across the emulator's life.
    next_record_id: AtomicU64,
}

impl Firehose {
    pub(crate) fn new(
        account_id: &str,
        region: &str,
        retain: Option<usize>,
        limits: Option<FirehoseLimits>,
    ) -> Self {
        Firehose {
            account_id: account_id.to_owned(),
            region: region.to_owned(),
            retain,
            limits: RwLock::new(limits),
            streams: RwLock::new(BTreeMap::new()),
            next_record_id: AtomicU64::new(1),
        }
    }

    pub(crate) fn set_limits(&self, limits: Option<FirehoseLimits>) {
        *self.limits.write() = limits;
    }

    pub(crate) fn limits(&self) -> Option<FirehoseLimits> {
        *self.limits.read()
    }

    /// Creates a delivery stream unless it exists; returns whether it did.
    pub(crate) fn create(&self, name: &str) -> bool {
        let mut streams = self.streams.write();
        if streams.contains_key(name) {
            return false;
        }
        let stream = DeliveryStream {
            name: name.to_owned(),
            arn: format!(
                "arn:aws:firehose:{}:{}:deliverystream/{name}",
                self.region, self.account_id
            ),
            created: SystemTime::now(),
            state: Mutex::new(DeliveryState::default()),
        };
        streams.insert(name.to_owned(), Arc::new(stream));
        true
    }

    fn find(&self, name: &str) -> Result<Arc<DeliveryStream>, ApiError> {
        self.streams.read().get(name).cloned().ok_or_else(|| {
            ApiError::not_found(format!(
                "Firehose {name} under account {} not found.",
                self.account_id
            ))
        })
    }

    fn record_id(&self) -> String {
        // Real ids are long opaque strings; uniqueness is what clients need.
        format!(
            "{:048x}",
            self.next_record_id.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Runs one `Firehose_20150804` operation and returns its JSON answer.
    pub(crate) fn handle(
        &self,
        operation: &str,
        body: &[u8],
        faults: &FaultInjector,
    ) -> Result<Vec<u8>, ApiError> {
        match operation {
            "PutRecordBatch" => self.put_record_batch(body, faults),
            "PutRecord" => self.put_record(body),
            "CreateDeliveryStream" => self.create_op(body),
            "DescribeDeliveryStream" => self.describe(body),
            "ListDeliveryStreams" => self.list(body),
            "DeleteDeliveryStream" => self.delete(body),
            other => Err(ApiError::unknown_operation(&format!(
                "Firehose_20150804.{other}"
            ))),
        }
    }

    /// Counts a request against the requests-per-second quota.
    fn admit_request(
        &self,
        state: &mut DeliveryState,
        now: Instant,
        limits: Option<FirehoseLimits>,
    ) -> Result<(), ApiError> {
        state.requests_window.expire(now);
        if let Some(l) = limits
            && !state
                .requests_window
                .fits(0, 1, u64::MAX, l.requests_per_second)
        {
            state.stats.throttled_requests += 1;
            return Err(ApiError::firehose_unavailable());
        }
        state.requests_window.add(now, 0, 1);
        Ok(())
    }

    /// Stores one record if the records and bytes quotas allow it.
    fn admit_record(
        &self,
        state: &mut DeliveryState,
        now: Instant,
        limits: Option<FirehoseLimits>,
        data: Bytes,
    ) -> bool {
        let size = data.len() as u64;
        state.records_window.expire(now);
        if let Some(l) = limits
            && !state
                .records_window
                .fits(size, 1, l.bytes_per_second, l.records_per_second)
        {
            state.stats.throttled_records += 1;
            return false;
        }
        state.records_window.add(now, size, 1);
        state.stats.accepted_records += 1;
        state.stats.accepted_bytes += size;
        if self.retain.is_none_or(|n| n > 0) {
            state.delivered.push_back(data);
        }
        if let Some(n) = self.retain {
            while state.delivered.len() > n {
                state.delivered.pop_front();
            }
        }
        true
    }

    fn record_too_large(field: &str, len: usize) -> String {
        format!(
            "Value 'java.nio.HeapByteBuffer[pos=0 lim={len} cap={len}]' at '{field}' failed to satisfy constraint: Member must have length less than or equal to {FIREHOSE_MAX_RECORD_BYTES}"
        )
    }

    fn put_record_batch(&self, body: &[u8], faults: &FaultInjector) -> Result<Vec<u8>, ApiError> {
        #[derive(Deserialize)]
        struct Input<'a> {
            #[serde(rename = "DeliveryStreamName", borrow)]
            name: Cow<'a, str>,
            #[serde(rename = "Records", borrow)]
            records: Vec<RecordIn<'a>>,
        }
        let input: Input<'_> = parse_json(body)?;
        let n = input.records.len();
        if n == 0 || n > MAX_RECORDS_PER_REQUEST {
            return Err(ApiError::validation_list(&[format!(
                "Value '[...{n} records]' at 'records' failed to satisfy constraint: Member must have length between 1 and {MAX_RECORDS_PER_REQUEST}"
            )]));
        }
        let mut buffer =
            Vec::with_capacity(input.records.iter().map(|r| r.data.len() / 4 * 3 + 3).sum());
        let mut spans = Vec::with_capacity(n);
        let mut errors = Vec::new();
        for (i, record) in input.records.iter().enumerate() {
            let start = buffer.len();
            let field = || format!("records.{}.member.data", i + 1);
            decode_blob(&record.data, &mut buffer, field)?;
            if buffer.len() - start > FIREHOSE_MAX_RECORD_BYTES {
                errors.push(Self::record_too_large(&field(), buffer.len() - start));
            }
            spans.push(start..buffer.len());
        }
        if !errors.is_empty() {
            return Err(ApiError::validation_list(&errors));
        }
        let stream = self.find(&input.name)?;
        if buffer.len() > FIREHOSE_MAX_BATCH_BYTES {
            return Err(ApiError::invalid_argument(format!(
                "Batch size of {} bytes exceeds the 4 MiB limit of PutRecordBatch",
                buffer.len()
            )));
        }
        let data = Bytes::from(buffer);
        let failures = faults.roll_records(n);
        let limits = self.limits();
        let now = Instant::now();
        let mut state = stream.state.lock();
        self.admit_request(&mut state, now, limits)?;
        let mut failed = 0;
        let mut responses = Vec::with_capacity(n);
        for (i, span) in spans.into_iter().enumerate() {
            let result = if failures.as_ref().is_some_and(|f| f[i]) {
                state.stats.failed_records += 1;
                EntryResult::Failed {
                    error_code: "InternalFailure",
                    error_message: "Internal service failure.",
                }
            } else if self.admit_record(&mut state, now, limits, data.slice(span)) {
                EntryResult::Ok {
                    record_id: self.record_id(),
                }
            } else {
                EntryResult::Failed {
                    error_code: "ServiceUnavailableException",
                    error_message: "Slow down.",
                }
            };
            if matches!(result, EntryResult::Failed { .. }) {
                failed += 1;
            }
            responses.push(result);
        }
        drop(state);
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Output {
            failed_put_count: usize,
            encrypted: bool,
            request_responses: Vec<EntryResult>,
        }
        Ok(to_json(&Output {
            failed_put_count: failed,
            encrypted: false,
            request_responses: responses,
        }))
    }

    fn put_record(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        #[derive(Deserialize)]
        struct Input<'a> {
            #[serde(rename = "DeliveryStreamName", borrow)]
            name: Cow<'a, str>,
            #[serde(rename = "Record", borrow)]
            record: RecordIn<'a>,
        }
        let input: Input<'_> = parse_json(body)?;
        let mut data = Vec::with_capacity(input.record.data.len() / 4 * 3 + 3);
        decode_blob(&input.record.data, &mut data, || "record.data".into())?;
        if data.len() > FIREHOSE_MAX_RECORD_BYTES {
            return Err(ApiError::validation_list(&[Self::record_too_large(
                "record.data",
                data.len(),
            )]));
        }
        let stream = self.find(&input.name)?;
        let limits = self.limits();
        let now = Instant::now();
        let mut state = stream.state.lock();
        self.admit_request(&mut state, now, limits)?;
        if !self.admit_record(&mut state, now, limits, Bytes::from(data)) {
            return Err(ApiError::firehose_unavailable());
        }
        drop(state);
        Ok(to_json(&serde_json::json!({
            "RecordId": self.record_id(),
            "Encrypted": false,
        })))
    }

    fn create_op(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        #[derive(Deserialize)]
        struct Input<'a> {
            #[serde(rename = "DeliveryStreamName", borrow)]
            name: Cow<'a, str>,
            #[serde(rename = "DeliveryStreamType", borrow)]
            kind: Option<Cow<'a, str>>,
        }
        let input: Input<'_> = parse_json(body)?;
        let valid_name = (1..=64).contains(&input.name.len())
            && input
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !valid_name {
            return Err(ApiError::validation_list(&[format!(
                "Value '{}' at 'deliveryStreamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ and have length between 1 and 64",
                input.name
            )]));
        }
        if let Some(kind) = input.kind.as_deref()
            && kind != "DirectPut"
        {
            return Err(ApiError::invalid_argument(format!(
                "Only DirectPut delivery streams are emulated, not {kind}"
            )));
        }
        if !self.create(&input.name) {
            return Err(ApiError::in_use(format!(
                "Firehose {} under account {} already exists.",
                input.name, self.account_id
            )));
        }
        let stream = self.find(&input.name)?;
        Ok(to_json(
            &serde_json::json!({ "DeliveryStreamARN": stream.arn }),
        ))
    }

    fn describe(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        #[derive(Deserialize)]
        struct Input<'a> {
            #[serde(rename = "DeliveryStreamName", borrow)]
            name: Cow<'a, str>,
        }
        let input: Input<'_> = parse_json(body)?;
        let stream = self.find(&input.name)?;
        Ok(to_json(&serde_json::json!({
            "DeliveryStreamDescription": {
                "DeliveryStreamName": stream.name,
                "DeliveryStreamARN": stream.arn,
                "DeliveryStreamStatus": "ACTIVE",
                "DeliveryStreamType": "DirectPut",
                "VersionId": "1",
                "CreateTimestamp": epoch_seconds(stream.created),
                "Destinations": [],
                "HasMoreDestinations": false,
            }
        })))
    }

    fn list(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        #[derive(Deserialize)]
        struct Input<'a> {
            #[serde(rename = "Limit")]
            limit: Option<usize>,
            #[serde(rename = "ExclusiveStartDeliveryStreamName", borrow)]
            exclusive_start: Option<Cow<'a, str>>,
        }
        let input: Input<'_> = parse_json(body)?;
        let limit = input.limit.unwrap_or(10).clamp(1, 10_000);
        let streams = self.streams.read();
        let names: Vec<&str> = streams
            .keys()
            .map(String::as_str)
            .filter(|n| input.exclusive_start.as_deref().is_none_or(|x| *n > x))
            .collect();
        Ok(to_json(&serde_json::json!({
            "DeliveryStreamNames": &names[..names.len().min(limit)],
            "HasMoreDeliveryStreams": names.len() > limit,
        })))
    }

    fn delete(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        #[derive(Deserialize)]
        struct Input<'a> {
            #[serde(rename = "DeliveryStreamName", borrow)]
            name: Cow<'a, str>,
        }
        let input: Input<'_> = parse_json(body)?;
        let stream = self.find(&input.name)?;
        self.streams.write().remove(&stream.name);
        Ok(b"{}".to_vec())
    }

    pub(crate) fn delivered(&self, name: &str) -> Vec<Bytes> {
        self.streams
            .read()
            .get(name)
            .map(|s| s.state.lock().delivered.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn stats(&self) -> BTreeMap<String, DeliveryStreamStats> {
        self.streams
            .read()
            .iter()
            .map(|(name, s)| (name.clone(), s.state.lock().stats.clone()))
            .collect()
    }
}
