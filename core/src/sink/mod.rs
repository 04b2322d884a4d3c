//! The services a producer writes to. Everything that differs between
//! Kinesis Data Streams and Firehose lives here: how a batch is put, what a
//! per-entry outcome looks like, and where shards come from. The pipeline
//! in [`crate::producer`] is shared.

use bytes::Bytes;

use crate::error::Error;
use crate::retry::{FailureClass, classify};
use crate::shard_map::Shard;

mod body;
pub(crate) mod firehose;
pub(crate) mod kinesis;

/// One record as it goes on the wire.
#[derive(Clone)]
pub(crate) struct OutRecord {
    pub(crate) partition_key: String,
    pub(crate) explicit_hash_key: Option<String>,
    pub(crate) data: Bytes,
}

impl OutRecord {
    /// What the service charges against its request-size limit.
    pub(crate) fn billed_size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

/// At most how many bytes the request body for `entries` records of
/// `billed` bytes (data and keys) takes ([`body::put_body`] writes it),
/// unless a key holds characters JSON must escape (quotes, backslashes,
/// control characters: up to 6 bytes each, and rare) or the stream's name
/// is longer than the services allow. Both services' JSON carries the data
/// in base64 (4 bytes per 3, keys counted the same way), plus per entry
/// the member names, punctuation, padding and an explicit hash key of up to
/// 39 digits, plus the request's own members. Used to hold bodies in flight
/// against the buffer cap.
pub(crate) fn body_size(billed: usize, entries: usize) -> usize {
    /// `{"Data":"","PartitionKey":"","ExplicitHashKey":""},`, 39 digits and
    /// base64 padding.
    const ENTRY_JSON: usize = 92;
    /// `{"DeliveryStreamName":"","Records":[]}` and a name of up to 128
    /// characters (Kinesis; Firehose allows 64).
    const REQUEST_JSON: usize = 166;
    billed.div_ceil(3) * 4 + entries * ENTRY_JSON + REQUEST_JSON
}

/// The outcome of one entry of a batch.
#[derive(Debug)]
pub(crate) enum EntryOutcome {
    Stored {
        /// Kinesis only.
        shard_id: Option<String>,
        /// Kinesis sequence number or Firehose record id.
        sequence_number: String,
    },
    Failed {
        code: String,
        message: String,
    },
}

/// A whole request failed: nothing in it was stored (as far as we know).
#[derive(Debug, Clone)]
pub(crate) struct RequestFailure {
    pub(crate) code: String,
    pub(crate) message: String,
}

impl RequestFailure {
    pub(crate) fn class(&self) -> FailureClass {
        classify(&self.code)
    }

    pub(crate) fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        RequestFailure {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// Turns any SDK error into a code and message, without credentials or
/// payloads (the SDK's messages contain neither).
pub(crate) fn request_failure<E, R>(
    err: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> RequestFailure
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            RequestFailure::new(
                e.code().unwrap_or("UnknownServiceError"),
                e.message()
                    .unwrap_or("the service returned an error without a message"),
            )
        }
        SdkError::TimeoutError(_) => RequestFailure::new("Timeout", "request timed out"),
        SdkError::DispatchFailure(failure) => {
            let code = if failure.is_timeout() {
                "Timeout"
            } else if failure.is_io() {
                "ConnectionError"
            } else if failure.is_user() {
                "ConstructionFailure"
            } else {
                "DispatchFailure"
            };
            RequestFailure::new(code, error_chain(err))
        }
        SdkError::ResponseError(_) => RequestFailure::new("MalformedResponse", error_chain(err)),
        SdkError::ConstructionFailure(_) => {
            RequestFailure::new("ConstructionFailure", error_chain(err))
        }
        _ => RequestFailure::new("UnknownError", error_chain(err)),
    }
}

/// The error and its sources on one line.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A destination service.
#[derive(Debug, Clone)]
pub(crate) enum Sink {
    Kinesis(kinesis::KinesisSink),
    Firehose(firehose::FirehoseSink),
}

impl Sink {
    /// Puts a batch; on success, one outcome per record, in order.
    pub(crate) async fn put(
        &self,
        stream: &str,
        records: Vec<OutRecord>,
    ) -> Result<Vec<EntryOutcome>, RequestFailure> {
        match self {
            Sink::Kinesis(k) => k.put_records(stream, records).await,
            Sink::Firehose(f) => f.put_record_batch(stream, records).await,
        }
    }

    /// The stream's open shards. A Firehose delivery stream is one
    /// pseudo-shard covering every key.
    pub(crate) async fn open_shards(&self, stream: &str) -> Result<Vec<Shard>, RequestFailure> {
        match self {
            Sink::Kinesis(k) => k.open_shards(stream).await,
            Sink::Firehose(_) => Ok(vec![Shard::new(String::new(), 0, u128::MAX)]),
        }
    }

    pub(crate) fn is_firehose(&self) -> bool {
        matches!(self, Sink::Firehose(_))
    }
}

impl From<RequestFailure> for Error {
    fn from(f: RequestFailure) -> Self {
        Error::Setup(format!("{}: {}", f.code, f.message))
    }
}
