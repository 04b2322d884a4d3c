//! What a caller learns about each record: exactly one completion, success or
//! failure, with the history of its attempts.

use std::fmt;
use std::time::Duration;

/// One try at putting a record (or the aggregate that carried it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// How long the record waited (buffering, rate limiting, backoff) before
    /// this try was sent.
    pub delay: Duration,
    /// How long the request took.
    pub duration: Duration,
    /// The error code of a failed try (`ProvisionedThroughputExceededException`,
    /// `InternalFailure`, `Timeout`, ...); `None` for the successful one.
    pub error_code: Option<String>,
    /// The service's or transport's message for a failed try.
    pub error_message: Option<String>,
}

impl Attempt {
    /// True when this try succeeded.
    pub fn is_success(&self) -> bool {
        self.error_code.is_none()
    }
}

/// A record that was stored by the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    /// The shard that stored it (Kinesis Data Streams); `None` for Firehose.
    pub shard_id: Option<String>,
    /// The Kinesis sequence number of the record, or of the aggregate that
    /// carried it; the Firehose record id for Firehose.
    pub sequence_number: String,
    /// Every try, the last one the success.
    pub attempts: Vec<Attempt>,
    /// True when it travelled inside a KPL aggregate (or a packed Firehose
    /// record) with other user records.
    pub aggregated: bool,
}

/// Why a record will not be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// The service rejected it with a non-retryable error (unknown stream,
    /// access denied, validation, KMS errors).
    Rejected,
    /// It was still undelivered when its `record_ttl` ran out.
    Expired,
    /// The producer was closed (or dropped) before it could be delivered.
    Closed,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureKind::Rejected => "rejected",
            FailureKind::Expired => "expired",
            FailureKind::Closed => "producer closed",
        })
    }
}

/// A record that will not be delivered, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record not delivered ({kind}) after {} attempt(s): {}{}", attempts.len(),
    code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default(), message)]
pub struct DeliveryError {
    /// The class of failure.
    pub kind: FailureKind,
    /// The last error code seen, if any.
    pub code: Option<String>,
    /// A human-readable reason.
    pub message: String,
    /// Every try that was made.
    pub attempts: Vec<Attempt>,
}
