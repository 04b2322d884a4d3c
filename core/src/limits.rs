//! Service quotas of Kinesis Data Streams and Data Firehose, in one place.
//!
//! Each constant names the quota it encodes. Configuration clamps user
//! values to these bounds, so a typo cannot ask the service for something it
//! would reject.

/// Largest number of records in one `PutRecords` call.
pub const KINESIS_MAX_RECORDS_PER_REQUEST: usize = 500;

/// Default size cap of one `PutRecords` call (data plus partition keys).
pub const KINESIS_DEFAULT_MAX_REQUEST_BYTES: usize = 5 * 1024 * 1024;

/// Largest `PutRecords` call a stream can be configured to accept.
pub const KINESIS_MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;

/// Default largest record (data plus partition key).
pub const KINESIS_DEFAULT_MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Largest record a stream can be configured for (`MaxRecordSizeInKiB`).
pub const KINESIS_MAX_RECORD_BYTES: usize = 10 * 1024 * 1024;

/// Partition keys are 1 to 256 Unicode characters.
pub const PARTITION_KEY_MAX_CHARS: usize = 256;

/// Provisioned write quota of one shard, in bytes per second.
pub const SHARD_BYTES_PER_SECOND: u64 = 1024 * 1024;

/// Provisioned write quota of one shard, in records per second. An
/// aggregated record counts as one.
pub const SHARD_RECORDS_PER_SECOND: u64 = 1000;

/// Largest number of records in one Firehose `PutRecordBatch` call.
pub const FIREHOSE_MAX_RECORDS_PER_REQUEST: usize = 500;

/// Size cap of one Firehose `PutRecordBatch` call.
pub const FIREHOSE_MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Largest Firehose record, before base64 encoding.
pub const FIREHOSE_MAX_RECORD_BYTES: usize = 1000 * 1024;

/// Default Firehose Direct PUT quotas per delivery stream (most regions).
pub const FIREHOSE_DEFAULT_BYTES_PER_SECOND: u64 = 1024 * 1024;
/// See [`FIREHOSE_DEFAULT_BYTES_PER_SECOND`].
pub const FIREHOSE_DEFAULT_RECORDS_PER_SECOND: u64 = 1000;
/// See [`FIREHOSE_DEFAULT_BYTES_PER_SECOND`].
pub const FIREHOSE_DEFAULT_REQUESTS_PER_SECOND: u64 = 1000;
