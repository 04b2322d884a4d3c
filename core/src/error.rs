//! The one error type of the crate.

use std::time::Duration;

/// A `Result` whose error defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in Shardline.
///
/// Messages are short and lowercase; they never contain record payloads or
/// credentials. Use the predicates ([`Error::is_retryable`],
/// [`Error::is_validation`]) rather than matching on messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The partition key is the empty string.
    #[error("partition key is empty; it must be 1 to 256 characters")]
    EmptyPartitionKey,

    /// The partition key has more than 256 Unicode characters.
    #[error("partition key is {chars} characters long; the limit is 256")]
    PartitionKeyTooLong {
        /// Its length in Unicode scalar values.
        chars: usize,
    },

    /// The record (data plus partition key) is over the configured limit.
    #[error("record is {size} bytes (data + partition key); the limit is {limit} bytes")]
    RecordTooLarge {
        /// The record's size in bytes.
        size: usize,
        /// The limit it exceeded.
        limit: usize,
    },

    /// The explicit hash key is not a decimal integer in `0..=2^128-1`.
    #[error("explicit hash key {key:?} is invalid: {reason}")]
    InvalidExplicitHashKey {
        /// The key as given (at most 64 characters of it).
        key: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// A stream or delivery stream name is empty or malformed.
    #[error("stream name {name:?} is invalid: {reason}")]
    InvalidStreamName {
        /// The name as given (at most 128 characters of it).
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// A configuration key is not known.
    #[error("unknown configuration key {0:?}")]
    UnknownConfigKey(String),

    /// A configuration value is out of range or malformed.
    #[error("invalid value for {key}: {message}")]
    InvalidConfig {
        /// The key whose value was rejected.
        key: String,
        /// What is wrong with it.
        message: String,
    },

    /// A `ListShards`-shaped shard list does not cover the hash-key space
    /// exactly once.
    #[error("invalid shard map: {0}")]
    InvalidShardMap(String),

    /// Bytes that claim to be a KPL aggregated record are damaged.
    #[error("invalid aggregated record: {0}")]
    InvalidAggregate(String),

    /// The producer's buffer is at its configured cap.
    #[error("producer buffer is full")]
    QueueFull,

    /// The producer has been closed; it accepts no more records.
    #[error("producer is closed")]
    Closed,

    /// An operation did not finish within its timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),

    /// A record could not be delivered; the report says why and how often it
    /// was tried.
    #[error(transparent)]
    Delivery(Box<crate::completion::DeliveryError>),

    /// The producer could not be set up (bad region, endpoint, credentials
    /// source, TLS configuration).
    #[error("setup failed: {0}")]
    Setup(String),
}

impl Error {
    /// True for errors that describe the record itself (it can never be
    /// sent as it is); false for conditions that may pass.
    pub fn is_validation(&self) -> bool {
        matches!(
            self,
            Error::EmptyPartitionKey
                | Error::PartitionKeyTooLong { .. }
                | Error::RecordTooLarge { .. }
                | Error::InvalidExplicitHashKey { .. }
                | Error::InvalidStreamName { .. }
        )
    }

    /// True when trying the same operation again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::QueueFull | Error::Timeout(_))
    }
}
