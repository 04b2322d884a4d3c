//! KPL-compatible record aggregation: many small user records in one
//! Kinesis record.
//!
//! Kinesis bills and throttles per record (1,000 records/s per shard), so
//! packing small user records into one Kinesis record multiplies what a
//! shard can take. Shardline writes and reads the Kinesis Producer
//! Library's format byte for byte, so KCL consumers, the
//! `aws-kinesis-agg` deaggregators and Lambda consumers read Shardline's
//! aggregates unchanged.
//!
//! # The format
//!
//! ```text
//! F3 89 9A C2 | protobuf AggregatedRecord | MD5(protobuf), 16 bytes
//! ```
//!
//! ```text
//! message AggregatedRecord {
//!   repeated string partition_key_table     = 1;
//!   repeated string explicit_hash_key_table = 2;
//!   repeated Record records                 = 3;
//! }
//! message Record {
//!   required uint64 partition_key_index     = 1;
//!   optional uint64 explicit_hash_key_index = 2;
//!   required bytes  data                    = 3;
//!   repeated Tag    tags                    = 4;
//! }
//! message Tag { required string key = 1; optional string value = 2; }
//! ```
//!
//! Keys are deduplicated per aggregate; the explicit-hash-key table holds
//! only keys callers supplied, as decimal strings. Fields are written in
//! field order, tables first, exactly as the KPL writes them.
//!
//! # Routing
//!
//! Kinesis routes the aggregate, not its user records, yet a consumer (the
//! KCL) drops user records whose own hash key is outside the shard it
//! reads. So an aggregate must only hold records predicted for one shard,
//! and it is sent with the first user record's partition key and, as its
//! explicit hash key, that record's hash key: it lands exactly where its
//! records were predicted to go. [`Aggregator`] does the packing; grouping
//! by shard is the caller's job.
//!
//! # Size
//!
//! An aggregate's size is 20 bytes plus the protobuf length. The
//! aggregator keeps it exact as records are added (varint arithmetic, never
//! re-encoding), so it can refuse the record that would cross the limit.
//!
//! Packing pays for small records only. The producer aggregates records of
//! at most `aggregation_max_record_size` billed bytes (4 KiB by default)
//! and sends larger ones alone; an [`Aggregator`] used directly packs
//! whatever it is given.

mod aggregator;
mod deaggregate;
pub mod format;
mod key_table;

pub use aggregator::{Aggregator, KinesisRecord, aggregate_all};
pub use deaggregate::{DeaggregatedRecord, deaggregate, decode_aggregate};
pub use format::MAGIC;
