//! Shardline: an in-process producer for Amazon Kinesis Data Streams and
//! Amazon Data Firehose.
//!
//! # The model
//!
//! A [`Producer`] accepts [`UserRecord`]s from any number of threads or
//! tasks and delivers them in the background:
//!
//! - **What is buffered.** Each record is validated, hashed (MD5 of its
//!   partition key, or its explicit hash key) and added to an aggregate for
//!   the shard its hash key maps to. Aggregates use the KPL format, so KCL
//!   and the `aws-kinesis-agg` libraries read them. The producer holds at
//!   most `max_buffered_bytes` and `max_buffered_records`; at the cap,
//!   [`Producer::send`] waits, [`Producer::send_blocking`] blocks and
//!   [`Producer::try_send`] hands the record back.
//! - **When a record is sent.** An aggregate goes when it is full or has
//!   waited `record_max_buffered_time`; aggregates are collected into
//!   `PutRecords` requests of up to 500 records / 5 MiB, paced per shard by
//!   an adaptive rate limiter, with at most `max_connections` requests in
//!   flight.
//! - **What a completion means.** Every record completes exactly once:
//!   [`DeliveryReport`] (shard, sequence number, attempts) once the service
//!   stored it, or [`DeliveryError`] when it was rejected, its `record_ttl`
//!   ran out, or the producer closed first. It arrives through a
//!   [`DeliveryFuture`], a boxed [`DeliveryCallback`], or a call of a shared
//!   [`DeliveryHandler`] with the tag the record was sent with (the
//!   `*_with_handler` sends: no allocation per record, the fastest path).
//!   Failed records are retried alone: transient failures after a backoff,
//!   throttled ones paced by the shard's adaptive limiter. Delivery is at least once: a request that timed out after the
//!   service stored it is retried and the record stored twice.
//! - **What `close` does, and what skipping it loses.** [`Producer::close`]
//!   delivers outstanding records for up to a timeout and fails the rest.
//!   Dropping the last handle without closing does the same in the
//!   background (for `close_timeout`), so nothing is dropped silently, but
//!   the program must live that long for the records to go.
//!
//! # A tour
//!
//! ```no_run
//! use shardline::{Config, Producer, UserRecord};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let producer = Producer::new(Config::new().region("us-east-1"))?;
//! let delivery = producer.send_blocking(
//!     "my-stream",
//!     UserRecord::new("user-42", &b"{\"clicked\":true}"[..]),
//!     None,
//! )?;
//! let report = delivery.wait()?;
//! println!("stored in {:?} as {}", report.shard_id, report.sequence_number);
//! producer.close_blocking(None)?;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]
// `send` hands a refused record back inside its error (as tokio's
// `TrySendError` and rdkafka do), so the error is as large as a record.
#![allow(clippy::result_large_err)]

pub mod aggregation;
mod aws;
pub mod completion;
pub mod config;
pub mod error;
pub mod hash;
mod insecure_tls;
mod limiter;
pub mod limits;
pub mod metrics;
mod producer;
pub mod record;
mod retry;
pub mod shard_map;
mod sink;

pub use aggregation::{Aggregator, DeaggregatedRecord, KinesisRecord};
pub use completion::{Attempt, Attempts, DeliveryError, DeliveryReport, FailureKind};
pub use config::{CONFIG_KEYS, Config, Credentials, FirehoseFraming};
pub use error::{Error, Result};
pub use metrics::MetricsSnapshot;
#[doc(hidden)]
pub use producer::bench_support;
pub use producer::{
    DeliveryCallback, DeliveryFuture, DeliveryHandler, DeliveryResult, Producer, SendError,
    Service, validate_stream_name,
};
pub use record::UserRecord;
pub use shard_map::{Shard, ShardMap};

/// Public handles are shared across threads; this fails to compile if one
/// stops being `Send + Sync`.
#[allow(dead_code)]
fn _assert_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<Producer>();
    check::<Config>();
    check::<UserRecord>();
    check::<DeliveryFuture>();
    check::<MetricsSnapshot>();
    check::<Error>();
    check::<SendError>();
}
