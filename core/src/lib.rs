//! Shardline: an in-process producer for Amazon Kinesis Data Streams and
//! Amazon Data Firehose.
#![warn(missing_docs)]

pub mod aggregation;
pub mod completion;
pub mod error;
pub mod hash;
pub mod limits;
pub mod record;
pub mod shard_map;

pub use aggregation::{Aggregator, DeaggregatedRecord, KinesisRecord};
pub use completion::{Attempt, DeliveryError, DeliveryReport, FailureKind};
pub use error::{Error, Result};
pub use record::UserRecord;
pub use shard_map::{Shard, ShardMap};
