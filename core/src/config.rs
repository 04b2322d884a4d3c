//! Producer configuration: one typed builder, plus string keys shared by the
//! C ABI, Python keyword arguments and KPL `.properties` files.
//!
//! Every option has a snake_case key (`aggregation_max_size`) and, where the
//! KPL has the same option, its KPL property name (`AggregationMaxSize`) is
//! accepted too, so a KPL user can bring `default_config.properties`.
//! Durations given as strings are milliseconds (as in the KPL), optionally
//! with an `ms` or `s` suffix.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::limits::*;

/// Where the producer gets AWS credentials.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// The default chain: environment, profile files, web identity, ECS,
    /// IMDSv2.
    #[default]
    DefaultChain,
    /// Fixed keys. The secret is never printed.
    Static {
        /// The access key id.
        access_key_id: String,
        /// The secret access key.
        secret_access_key: String,
        /// A session token for temporary credentials.
        session_token: Option<String>,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::DefaultChain => f.write_str("DefaultChain"),
            Credentials::Static {
                access_key_id,
                session_token,
                ..
            } => f
                .debug_struct("Static")
                .field("access_key_id", &redact_key_id(access_key_id))
                .field("secret_access_key", &"<redacted>")
                .field(
                    "session_token",
                    &session_token.as_ref().map(|_| "<redacted>"),
                )
                .finish(),
        }
    }
}

/// Shows only the first four characters of an access key id: enough to tell
/// keys apart in a log, not enough to use.
fn redact_key_id(key: &str) -> String {
    let shown: String = key.chars().take(4).collect();
    format!("{shown}…")
}

/// How a Firehose record is built from user records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirehoseFraming {
    /// Each user record is sent as its own Firehose record, bytes as given.
    None,
    /// Each user record gets a `\n` appended (unless it already ends in one),
    /// so the records stay separable in the destination object.
    Newline,
}

/// Configuration of a [`Producer`](crate::Producer), for Kinesis
/// ([`Producer::new`](crate::Producer::new)) or Firehose
/// ([`Producer::firehose`](crate::Producer::firehose)).
///
/// Defaults follow the KPL where the KPL has the option. `Debug` never
/// prints secrets.
#[derive(Clone, PartialEq)]
pub struct Config {
    pub(crate) region: Option<String>,
    pub(crate) endpoint_url: Option<String>,
    pub(crate) credentials: Credentials,
    pub(crate) verify_certificate: bool,
    pub(crate) ca_bundle: Option<PathBuf>,

    pub(crate) aggregation_enabled: bool,
    pub(crate) aggregation_max_count: usize,
    pub(crate) aggregation_max_size: usize,
    pub(crate) aggregation_max_record_size: usize,
    pub(crate) collection_max_count: usize,
    pub(crate) collection_max_size: usize,
    pub(crate) record_max_buffered_time: Duration,
    pub(crate) record_ttl: Duration,
    pub(crate) max_record_size: usize,

    pub(crate) rate_limit_percent: u32,
    pub(crate) adaptive_rate_limit: bool,
    pub(crate) shard_bytes_per_second: u64,
    pub(crate) shard_records_per_second: u64,

    pub(crate) max_connections: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) min_backoff: Duration,
    pub(crate) max_backoff: Duration,

    pub(crate) max_buffered_bytes: usize,
    pub(crate) max_buffered_records: usize,

    pub(crate) shard_map_refresh_interval: Duration,
    pub(crate) close_timeout: Duration,
    pub(crate) worker_threads: usize,

    pub(crate) firehose_framing: FirehoseFraming,
    pub(crate) firehose_pack_max_size: usize,
    pub(crate) firehose_bytes_per_second: u64,
    pub(crate) firehose_records_per_second: u64,
    pub(crate) firehose_requests_per_second: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            region: None,
            endpoint_url: None,
            credentials: Credentials::DefaultChain,
            verify_certificate: true,
            ca_bundle: None,

            aggregation_enabled: true,
            aggregation_max_count: 4_294_967_295,
            aggregation_max_size: 51_200,
            aggregation_max_record_size: 4096,
            collection_max_count: KINESIS_MAX_RECORDS_PER_REQUEST,
            collection_max_size: KINESIS_DEFAULT_MAX_REQUEST_BYTES,
            record_max_buffered_time: Duration::from_millis(100),
            record_ttl: Duration::from_secs(30),
            max_record_size: KINESIS_DEFAULT_MAX_RECORD_BYTES,

            rate_limit_percent: 150,
            adaptive_rate_limit: true,
            shard_bytes_per_second: SHARD_BYTES_PER_SECOND,
            shard_records_per_second: SHARD_RECORDS_PER_SECOND,

            max_connections: 24,
            request_timeout: Duration::from_secs(6),
            connect_timeout: Duration::from_secs(6),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),

            max_buffered_bytes: 128 * 1024 * 1024,
            max_buffered_records: 1_000_000,

            shard_map_refresh_interval: Duration::from_secs(60),
            close_timeout: Duration::from_secs(30),
            worker_threads: 2,

            firehose_framing: FirehoseFraming::None,
            firehose_pack_max_size: 0,
            firehose_bytes_per_second: FIREHOSE_DEFAULT_BYTES_PER_SECOND,
            firehose_records_per_second: FIREHOSE_DEFAULT_RECORDS_PER_SECOND,
            firehose_requests_per_second: FIREHOSE_DEFAULT_REQUESTS_PER_SECOND,
        }
    }
}

/// Every string key, its KPL alias (if any) and what it means; the single
/// source for `Config::set`, the docs and the bindings' keyword lists.
pub const CONFIG_KEYS: &[(&str, Option<&str>, &str)] = &[
    ("region", Some("Region"), "AWS region, e.g. us-east-1"),
    (
        "endpoint_url",
        None,
        "custom endpoint URL (VPC endpoint, local server)",
    ),
    ("aws_access_key_id", None, "static access key id"),
    ("aws_secret_access_key", None, "static secret access key"),
    (
        "aws_session_token",
        None,
        "session token for temporary credentials",
    ),
    (
        "verify_certificate",
        Some("VerifyCertificate"),
        "verify the server's TLS certificate (true)",
    ),
    (
        "ca_bundle",
        None,
        "PEM file of extra trusted certificate authorities",
    ),
    (
        "aggregation_enabled",
        Some("AggregationEnabled"),
        "pack user records into KPL aggregates (true)",
    ),
    (
        "aggregation_max_count",
        Some("AggregationMaxCount"),
        "user records per aggregate",
    ),
    (
        "aggregation_max_size",
        Some("AggregationMaxSize"),
        "bytes per aggregate (51200)",
    ),
    (
        "aggregation_max_record_size",
        None,
        "user records of more bytes (data + key) go alone, not aggregated (4096)",
    ),
    (
        "collection_max_count",
        Some("CollectionMaxCount"),
        "records per PutRecords (500)",
    ),
    (
        "collection_max_size",
        Some("CollectionMaxSize"),
        "bytes per PutRecords (5 MiB)",
    ),
    (
        "record_max_buffered_time",
        Some("RecordMaxBufferedTime"),
        "ms a record may wait for batching (100)",
    ),
    (
        "record_ttl",
        Some("RecordTtl"),
        "ms before an undelivered record fails as expired (30000)",
    ),
    (
        "max_record_size",
        None,
        "largest record, data + partition key (1 MiB; up to 10 MiB)",
    ),
    (
        "rate_limit",
        Some("RateLimit"),
        "per-shard rate cap, % of the shard quota (150)",
    ),
    (
        "adaptive_rate_limit",
        None,
        "cut a shard's rate when throttled, raise it while puts succeed (true)",
    ),
    (
        "shard_bytes_per_second",
        None,
        "shard write quota in bytes/s (1 MiB)",
    ),
    (
        "shard_records_per_second",
        None,
        "shard write quota in records/s (1000)",
    ),
    (
        "max_connections",
        Some("MaxConnections"),
        "requests in flight per producer (24)",
    ),
    (
        "request_timeout",
        Some("RequestTimeout"),
        "ms per request attempt (6000)",
    ),
    (
        "connect_timeout",
        Some("ConnectTimeout"),
        "ms to connect (6000)",
    ),
    ("min_backoff", None, "ms of the first retry backoff (100)"),
    ("max_backoff", None, "ms cap on retry backoff (5000)"),
    (
        "max_buffered_bytes",
        None,
        "bytes buffered before send waits (128 MiB)",
    ),
    (
        "max_buffered_records",
        None,
        "records buffered before send waits (1000000)",
    ),
    (
        "shard_map_refresh_interval",
        None,
        "ms between ListShards refreshes (60000)",
    ),
    (
        "close_timeout",
        None,
        "ms close/drop waits for delivery before failing the rest (30000)",
    ),
    (
        "worker_threads",
        Some("ThreadPoolSize"),
        "threads of the producer's own runtime (2)",
    ),
    (
        "firehose_newline_delimiter",
        None,
        "append \\n to each Firehose record (false)",
    ),
    (
        "firehose_pack_max_size",
        None,
        "pack user records newline-joined into Firehose records up to this size; 0 = off",
    ),
    (
        "firehose_bytes_per_second",
        None,
        "delivery stream quota in bytes/s (1 MiB)",
    ),
    (
        "firehose_records_per_second",
        None,
        "delivery stream quota in records/s (1000)",
    ),
    (
        "firehose_requests_per_second",
        None,
        "delivery stream quota in requests/s (1000)",
    ),
];

/// KPL properties that configure things Shardline does differently (its
/// own metrics upload, the native child process, logging). Accepted so a
/// KPL properties file loads, and otherwise ignored.
const KPL_IGNORED_KEYS: &[&str] = &[
    "CloudwatchEndpoint",
    "CloudwatchPort",
    "CredentialsRefreshDelay",
    "EnableCoreDumps",
    "FailIfThrottled",
    "LogLevel",
    "MetricsGranularity",
    "MetricsLevel",
    "MetricsNamespace",
    "MetricsUploadDelay",
    "MinConnections",
    "NativeExecutable",
    "TempDirectory",
    "ThreadingModel",
    "StsEndpoint",
    "StsPort",
    "UserRecordTimeoutInMillis",
];

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("credentials", &self.credentials)
            .field("verify_certificate", &self.verify_certificate)
            .field("ca_bundle", &self.ca_bundle)
            .field("aggregation_enabled", &self.aggregation_enabled)
            .field("aggregation_max_count", &self.aggregation_max_count)
            .field("aggregation_max_size", &self.aggregation_max_size)
            .field(
                "aggregation_max_record_size",
                &self.aggregation_max_record_size,
            )
            .field("collection_max_count", &self.collection_max_count)
            .field("collection_max_size", &self.collection_max_size)
            .field("record_max_buffered_time", &self.record_max_buffered_time)
            .field("record_ttl", &self.record_ttl)
            .field("max_record_size", &self.max_record_size)
            .field("rate_limit_percent", &self.rate_limit_percent)
            .field("adaptive_rate_limit", &self.adaptive_rate_limit)
            .field("max_connections", &self.max_connections)
            .field("request_timeout", &self.request_timeout)
            .field("max_buffered_bytes", &self.max_buffered_bytes)
            .field("max_buffered_records", &self.max_buffered_records)
            .field("firehose_framing", &self.firehose_framing)
            .field("firehose_pack_max_size", &self.firehose_pack_max_size)
            .finish_non_exhaustive()
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, value: $ty) -> Self {
                self.$name = value;
                self
            }
        )*
    };
}

impl Config {
    /// The defaults: KPL-like batching, adaptive per-shard limiting at up to
    /// 150% of the shard quota, 128 MiB / 1 M records of buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the AWS region.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sends to this endpoint instead of the region's public one (a VPC
    /// interface endpoint, a local server). `http://` turns TLS off.
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Uses fixed credentials instead of the default chain.
    pub fn static_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        self.credentials = Credentials::Static {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token,
        };
        self
    }

    /// Trusts the certificate authorities in this PEM file in addition to
    /// the system's.
    pub fn ca_bundle(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_bundle = Some(path.into());
        self
    }

    setters! {
        /// Whether to verify the server's TLS certificate. On by default;
        /// turn it off only for a local test server.
        verify_certificate: bool;
        /// Whether to pack user records into KPL aggregates.
        aggregation_enabled: bool;
        /// Most user records in one aggregate.
        aggregation_max_count: usize;
        /// Most bytes in one aggregate.
        aggregation_max_size: usize;
        /// Largest user record (data plus partition key, in bytes) that is
        /// aggregated; larger ones go out as Kinesis records of their own.
        ///
        /// Aggregation pays for itself with small records: it lets a shard
        /// take its full 1 MiB/s in fewer than its 1,000 records/s, and a
        /// PutRecords call carry megabytes in its 500 entries. A record of
        /// more than about 1 KiB already fills the byte quota first, and
        /// from about 3 KiB plain records make calls of megabytes too, so
        /// an aggregate of large records only adds an MD5 over every byte
        /// and a copy. The default, 4096, sends records above 4 KiB alone
        /// (measured in BENCHMARKS.md); set it to `aggregation_max_size`
        /// or more to aggregate every record that fits, as the KPL does
        /// (0 sends every record alone, like `aggregation_enabled = false`).
        aggregation_max_record_size: usize;
        /// Most records in one PutRecords / PutRecordBatch call.
        collection_max_count: usize;
        /// Most bytes in one PutRecords / PutRecordBatch call.
        collection_max_size: usize;
        /// How long a record may wait to be batched before it is sent anyway.
        record_max_buffered_time: Duration;
        /// How long a record may stay undelivered before it fails as expired.
        record_ttl: Duration;
        /// Largest record accepted (data + partition key).
        max_record_size: usize;
        /// Cap of each shard's send rate, in percent of its quota.
        rate_limit_percent: u32;
        /// React to throttling by lowering a shard's rate.
        adaptive_rate_limit: bool;
        /// A shard's write quota in bytes per second.
        shard_bytes_per_second: u64;
        /// A shard's write quota in records per second.
        shard_records_per_second: u64;
        /// Most requests in flight at once.
        max_connections: usize;
        /// Timeout of one request attempt.
        request_timeout: Duration;
        /// Timeout of connecting.
        connect_timeout: Duration;
        /// First retry backoff.
        min_backoff: Duration;
        /// Largest retry backoff.
        max_backoff: Duration;
        /// Bytes (data + keys) the producer holds before `send` waits.
        max_buffered_bytes: usize;
        /// Records the producer holds before `send` waits.
        max_buffered_records: usize;
        /// How often the shard map is refreshed when nothing else triggers it.
        shard_map_refresh_interval: Duration;
        /// How long `close` (and `Drop`) waits for deliveries before failing
        /// what is left.
        close_timeout: Duration;
        /// Threads of the producer's own runtime.
        worker_threads: usize;
        /// How Firehose records are framed.
        firehose_framing: FirehoseFraming;
        /// Pack user records (newline-joined) into Firehose records up to
        /// this many bytes; 0 sends one Firehose record per user record.
        firehose_pack_max_size: usize;
        /// Delivery-stream quota in bytes per second.
        firehose_bytes_per_second: u64;
        /// Delivery-stream quota in records per second.
        firehose_records_per_second: u64;
        /// Delivery-stream quota in requests per second.
        firehose_requests_per_second: u64;
    }

    /// Sets one option by its string key (or KPL property name).
    ///
    /// ```
    /// let mut config = shardline::Config::new();
    /// config.set("aggregation_max_size", "51200").unwrap();
    /// config.set("RecordMaxBufferedTime", "250").unwrap();
    /// assert!(config.set("no_such_key", "1").is_err());
    /// ```
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let value = value.trim();
        let canonical = canonical_key(key)?;
        let Some(canonical) = canonical else {
            tracing::warn!(key, "KPL property has no effect in Shardline; ignored");
            return Ok(());
        };
        let v = Value {
            key: canonical,
            raw: value,
        };
        match canonical {
            "region" => self.region = Some(v.non_empty()?.to_owned()),
            "endpoint_url" => {
                let url = v.non_empty()?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(v.invalid("must start with http:// or https://"));
                }
                self.endpoint_url = Some(url.to_owned());
            }
            "aws_access_key_id" => {
                let id = v.non_empty()?.to_owned();
                match &mut self.credentials {
                    Credentials::Static { access_key_id, .. } => *access_key_id = id,
                    c => {
                        *c = Credentials::Static {
                            access_key_id: id,
                            secret_access_key: String::new(),
                            session_token: None,
                        }
                    }
                }
            }
            "aws_secret_access_key" => {
                let secret = v.non_empty_secret()?.to_owned();
                match &mut self.credentials {
                    Credentials::Static {
                        secret_access_key, ..
                    } => *secret_access_key = secret,
                    c => {
                        *c = Credentials::Static {
                            access_key_id: String::new(),
                            secret_access_key: secret,
                            session_token: None,
                        }
                    }
                }
            }
            "aws_session_token" => {
                let token = v.non_empty_secret()?.to_owned();
                match &mut self.credentials {
                    Credentials::Static { session_token, .. } => *session_token = Some(token),
                    c => {
                        *c = Credentials::Static {
                            access_key_id: String::new(),
                            secret_access_key: String::new(),
                            session_token: Some(token),
                        }
                    }
                }
            }
            "verify_certificate" => self.verify_certificate = v.bool()?,
            "ca_bundle" => self.ca_bundle = Some(PathBuf::from(v.non_empty()?)),
            "aggregation_enabled" => self.aggregation_enabled = v.bool()?,
            "aggregation_max_count" => {
                self.aggregation_max_count = v.integer(1, u32::MAX as u64)? as usize
            }
            "aggregation_max_size" => {
                self.aggregation_max_size = v.integer(64, KINESIS_MAX_RECORD_BYTES as u64)? as usize
            }
            "aggregation_max_record_size" => {
                self.aggregation_max_record_size =
                    v.integer(0, KINESIS_MAX_RECORD_BYTES as u64)? as usize
            }
            "collection_max_count" => {
                self.collection_max_count =
                    v.integer(1, KINESIS_MAX_RECORDS_PER_REQUEST as u64)? as usize
            }
            "collection_max_size" => {
                self.collection_max_size =
                    v.integer(52_224, KINESIS_MAX_REQUEST_BYTES as u64)? as usize
            }
            "record_max_buffered_time" => {
                self.record_max_buffered_time = v.millis(0, 60 * 60 * 1000)?
            }
            "record_ttl" => self.record_ttl = v.millis(100, 7 * 24 * 60 * 60 * 1000)?,
            "max_record_size" => {
                self.max_record_size = v.integer(1024, KINESIS_MAX_RECORD_BYTES as u64)? as usize
            }
            "rate_limit" => self.rate_limit_percent = v.integer(1, 10_000)? as u32,
            "adaptive_rate_limit" => self.adaptive_rate_limit = v.bool()?,
            "shard_bytes_per_second" => self.shard_bytes_per_second = v.integer(1, u64::MAX)?,
            "shard_records_per_second" => self.shard_records_per_second = v.integer(1, u64::MAX)?,
            "max_connections" => self.max_connections = v.integer(1, 256)? as usize,
            "request_timeout" => self.request_timeout = v.millis(100, 600_000)?,
            "connect_timeout" => self.connect_timeout = v.millis(100, 300_000)?,
            "min_backoff" => self.min_backoff = v.millis(1, 60_000)?,
            "max_backoff" => self.max_backoff = v.millis(1, 600_000)?,
            "max_buffered_bytes" => {
                self.max_buffered_bytes = v.integer(1024, u64::MAX >> 1)? as usize
            }
            "max_buffered_records" => {
                self.max_buffered_records = v.integer(1, u64::MAX >> 1)? as usize
            }
            "shard_map_refresh_interval" => {
                self.shard_map_refresh_interval = v.millis(100, 24 * 60 * 60 * 1000)?
            }
            "close_timeout" => self.close_timeout = v.millis(0, 24 * 60 * 60 * 1000)?,
            "worker_threads" => self.worker_threads = v.integer(1, 256)? as usize,
            "firehose_newline_delimiter" => {
                self.firehose_framing = if v.bool()? {
                    FirehoseFraming::Newline
                } else {
                    FirehoseFraming::None
                }
            }
            "firehose_pack_max_size" => {
                self.firehose_pack_max_size =
                    v.integer(0, FIREHOSE_MAX_RECORD_BYTES as u64)? as usize
            }
            "firehose_bytes_per_second" => {
                self.firehose_bytes_per_second = v.integer(1, u64::MAX)?
            }
            "firehose_records_per_second" => {
                self.firehose_records_per_second = v.integer(1, u64::MAX)?
            }
            "firehose_requests_per_second" => {
                self.firehose_requests_per_second = v.integer(1, u64::MAX)?
            }
            other => unreachable!("key {other} is listed in CONFIG_KEYS but not handled"),
        }
        Ok(())
    }

    /// Applies a KPL-style `.properties` file: `Key = value` lines, `#` and
    /// `!` comments. Besides the keys `set` accepts, `KinesisEndpoint` and
    /// `KinesisPort` become an `https://` endpoint URL.
    pub fn apply_properties(&mut self, text: &str) -> Result<()> {
        let mut kinesis_host = None;
        let mut kinesis_port = None;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let Some((key, value)) = line.split_once(['=', ':']) else {
                return Err(Error::InvalidConfig {
                    key: format!("line {}", number + 1),
                    message: "expected `Key = value`".into(),
                });
            };
            let (key, value) = (key.trim(), value.trim());
            match key {
                "KinesisEndpoint" => kinesis_host = Some(value.to_owned()),
                "KinesisPort" => kinesis_port = Some(Value { key, raw: value }.integer(1, 65_535)?),
                _ => self.set(key, value)?,
            }
        }
        if let Some(host) = kinesis_host {
            let port = kinesis_port.unwrap_or(443);
            self.endpoint_url = Some(format!("https://{host}:{port}"));
        }
        Ok(())
    }

    /// Checks that every option is in the range [`Config::set`] accepts
    /// (the typed setters do not check) and that the options agree with
    /// each other.
    pub fn validate(&self) -> Result<()> {
        // Each numeric option goes through `set` again, so the ranges live
        // in one place: a zero rate or a TTL past what an `Instant` holds
        // would otherwise reach the pipeline.
        let mut probe = self.clone();
        for (key, value) in self.numeric_values() {
            probe.set(key, &value)?;
        }
        if self.min_backoff > self.max_backoff {
            return Err(Error::InvalidConfig {
                key: "min_backoff".into(),
                message: "is greater than max_backoff".into(),
            });
        }
        if let Credentials::Static {
            access_key_id,
            secret_access_key,
            ..
        } = &self.credentials
            && (access_key_id.is_empty() || secret_access_key.is_empty())
        {
            return Err(Error::InvalidConfig {
                key: "aws_access_key_id".into(),
                message: "static credentials need both an access key id and a secret access key"
                    .into(),
            });
        }
        if self.max_record_size > self.collection_max_size {
            return Err(Error::InvalidConfig {
                key: "max_record_size".into(),
                message: "is greater than collection_max_size".into(),
            });
        }
        Ok(())
    }

    /// The numeric options as `set` would take them.
    fn numeric_values(&self) -> [(&'static str, String); 25] {
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        [
            (
                "aggregation_max_count",
                self.aggregation_max_count.to_string(),
            ),
            (
                "aggregation_max_size",
                self.aggregation_max_size.to_string(),
            ),
            (
                "aggregation_max_record_size",
                self.aggregation_max_record_size.to_string(),
            ),
            (
                "collection_max_count",
                self.collection_max_count.to_string(),
            ),
            ("collection_max_size", self.collection_max_size.to_string()),
            (
                "record_max_buffered_time",
                ms(self.record_max_buffered_time),
            ),
            ("record_ttl", ms(self.record_ttl)),
            ("max_record_size", self.max_record_size.to_string()),
            ("rate_limit", self.rate_limit_percent.to_string()),
            (
                "shard_bytes_per_second",
                self.shard_bytes_per_second.to_string(),
            ),
            (
                "shard_records_per_second",
                self.shard_records_per_second.to_string(),
            ),
            ("max_connections", self.max_connections.to_string()),
            ("request_timeout", ms(self.request_timeout)),
            ("connect_timeout", ms(self.connect_timeout)),
            ("min_backoff", ms(self.min_backoff)),
            ("max_backoff", ms(self.max_backoff)),
            ("max_buffered_bytes", self.max_buffered_bytes.to_string()),
            (
                "max_buffered_records",
                self.max_buffered_records.to_string(),
            ),
            (
                "shard_map_refresh_interval",
                ms(self.shard_map_refresh_interval),
            ),
            ("close_timeout", ms(self.close_timeout)),
            ("worker_threads", self.worker_threads.to_string()),
            (
                "firehose_pack_max_size",
                self.firehose_pack_max_size.to_string(),
            ),
            (
                "firehose_bytes_per_second",
                self.firehose_bytes_per_second.to_string(),
            ),
            (
                "firehose_records_per_second",
                self.firehose_records_per_second.to_string(),
            ),
            (
                "firehose_requests_per_second",
                self.firehose_requests_per_second.to_string(),
            ),
        ]
    }

    /// The largest record this configuration accepts.
    pub fn max_record_size_bytes(&self) -> usize {
        self.max_record_size
    }
}

/// Maps a key or KPL property name to the canonical key; `Ok(None)` for
/// KPL keys that are accepted and ignored.
fn canonical_key(key: &str) -> Result<Option<&'static str>> {
    for (name, kpl, _) in CONFIG_KEYS {
        if key == *name || Some(key) == *kpl {
            return Ok(Some(name));
        }
    }
    if KPL_IGNORED_KEYS.contains(&key) {
        return Ok(None);
    }
    Err(Error::UnknownConfigKey(key.chars().take(128).collect()))
}

struct Value<'a> {
    key: &'a str,
    raw: &'a str,
}

impl Value<'_> {
    fn invalid(&self, message: impl Into<String>) -> Error {
        Error::InvalidConfig {
            key: self.key.to_owned(),
            message: message.into(),
        }
    }

    fn non_empty(&self) -> Result<&str> {
        if self.raw.is_empty() {
            Err(self.invalid("must not be empty"))
        } else {
            Ok(self.raw)
        }
    }

    /// Like `non_empty`, for values that must never be echoed.
    fn non_empty_secret(&self) -> Result<&str> {
        self.non_empty()
    }

    fn bool(&self) -> Result<bool> {
        match self.raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(self.invalid(format!("expected true or false, got {:?}", self.shown()))),
        }
    }

    fn integer(&self, min: u64, max: u64) -> Result<u64> {
        let n: u64 =
            self.raw.replace('_', "").parse().map_err(|_| {
                self.invalid(format!("expected an integer, got {:?}", self.shown()))
            })?;
        if n < min || n > max {
            return Err(self.invalid(format!("{n} is outside {min}..={max}")));
        }
        Ok(n)
    }

    fn millis(&self, min: u64, max: u64) -> Result<Duration> {
        let (number, scale) = if let Some(n) = self.raw.strip_suffix("ms") {
            (n.trim(), 1)
        } else if let Some(n) = self.raw.strip_suffix('s') {
            (n.trim(), 1000)
        } else {
            (self.raw, 1)
        };
        let n: u64 = number.parse().map_err(|_| {
            self.invalid(format!(
                "expected milliseconds (e.g. 250, 250ms or 2s), got {:?}",
                self.shown()
            ))
        })?;
        let ms = n.saturating_mul(scale);
        if ms < min || ms > max {
            return Err(self.invalid(format!("{ms} ms is outside {min}..={max} ms")));
        }
        Ok(Duration::from_millis(ms))
    }

    /// The value as it may appear in an error: truncated, and never for a
    /// credential key.
    fn shown(&self) -> String {
        if self.key.contains("secret") || self.key.contains("token") {
            "<redacted>".into()
        } else {
            self.raw.chars().take(64).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_key_is_settable() {
        let sample = |key: &str| match key {
            "region" => "us-east-1",
            "endpoint_url" => "http://127.0.0.1:4567",
            "aws_access_key_id" | "aws_secret_access_key" | "aws_session_token" => "x",
            "ca_bundle" => "/tmp/ca.pem",
            k if k.contains("enabled")
                || k.contains("verify")
                || k.contains("adaptive")
                || k.contains("newline") =>
            {
                "true"
            }
            "collection_max_size" => "5242880",
            "aggregation_max_size" => "51200",
            "max_record_size" => "1048576",
            "record_ttl" => "30000",
            "shard_map_refresh_interval" => "60000",
            "request_timeout" | "connect_timeout" => "1000",
            "max_buffered_bytes" => "1048576",
            _ => "10",
        };
        for (key, kpl, _) in CONFIG_KEYS {
            let mut config = Config::new();
            config
                .set(key, sample(key))
                .unwrap_or_else(|e| panic!("{key}: {e}"));
            if let Some(kpl) = kpl {
                config
                    .set(kpl, sample(key))
                    .unwrap_or_else(|e| panic!("{kpl}: {e}"));
            }
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        let mut config = Config::new();
        let err = config.set("aggregation_max_size", "lots").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value for aggregation_max_size: expected an integer, got \"lots\""
        );
        let err = config.set("RateLimit", "0").unwrap_err();
        assert!(err.to_string().contains("rate_limit"), "{err}");
        let err = config.set("collection_max_count", "501").unwrap_err();
        assert!(err.to_string().contains("1..=500"), "{err}");
        assert!(matches!(
            config.set("nope", "1"),
            Err(Error::UnknownConfigKey(k)) if k == "nope"
        ));
        let err = config.set("endpoint_url", "localhost:1").unwrap_err();
        assert!(err.to_string().contains("http://"), "{err}");
    }

    #[test]
    fn kpl_properties_files_load() {
        let mut config = Config::new();
        config
            .apply_properties(
                "# KPL defaults\nAggregationEnabled = true\nAggregationMaxSize = 51200\n\
                 RecordMaxBufferedTime = 250\nRecordTtl=60000\nRateLimit = 120\n\
                 MetricsLevel = none\nKinesisEndpoint = localhost\nKinesisPort = 4567\n\
                 VerifyCertificate = false\n",
            )
            .unwrap();
        assert_eq!(config.record_max_buffered_time, Duration::from_millis(250));
        assert_eq!(config.record_ttl, Duration::from_secs(60));
        assert_eq!(config.rate_limit_percent, 120);
        assert!(!config.verify_certificate);
        assert_eq!(
            config.endpoint_url.as_deref(),
            Some("https://localhost:4567")
        );
        assert!(config.apply_properties("garbage line").is_err());
    }

    #[test]
    fn validate_holds_the_typed_setters_to_the_ranges_of_set() {
        Config::default().validate().unwrap();
        let err = Config::new().rate_limit_percent(0).validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value for rate_limit: 0 is outside 1..=10000"
        );
        let err = Config::new()
            .record_ttl(Duration::MAX)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("record_ttl"), "{err}");
        assert!(Config::new().shard_bytes_per_second(0).validate().is_err());
        // Every numeric key is checked: each one listed is a real key.
        for (key, _) in Config::default().numeric_values() {
            assert!(CONFIG_KEYS.iter().any(|(name, ..)| *name == key), "{key}");
        }
    }

    #[test]
    fn secrets_never_show() {
        let mut config = Config::new().static_credentials(
            "AKIAEXAMPLEKEY",
            "PLANTED-SECRET-VALUE",
            Some("PLANTED-TOKEN".into()),
        );
        let shown = format!("{config:?}");
        assert!(!shown.contains("PLANTED"), "{shown}");
        assert!(!shown.contains("AKIAEXAMPLEKEY"), "{shown}");
        let err = config.set("aws_secret_access_key", "").unwrap_err();
        assert!(!err.to_string().contains("PLANTED"));
    }
}
