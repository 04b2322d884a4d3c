//! `agent.json`: the Kinesis Agent's configuration format, read into typed
//! settings and one Shardline producer [`Config`] per flow.
//!
//! Keys keep the Kinesis Agent's names and ranges. Keys the Kinesis Agent
//! has but that mean nothing here (CloudWatch, its thread pools) are
//! accepted with a warning; unknown keys warn too, so a typo is visible.
//! A value that is present but wrong fails start-up with a message naming
//! the key (`flows[1].maxBufferAgeMillis: ...`). Secrets never appear in a
//! message.
//!
//! Producer options that agent.json has no word for go in a
//! `"shardline.producer"` object, at the top level (every flow) or in a
//! flow (that flow): its keys are Shardline's `Config::set` keys.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use serde_json::Value;
use shardline::{Config, Service};

use crate::flow::record_overhead;
use crate::processing::Processor;

/// Where the Kinesis Agent keeps checkpoints by default.
const DEFAULT_CHECKPOINT_FILE: &str = "/var/run/aws-kinesis-agent/checkpoints";

/// The Kinesis Agent's default region when no endpoint names one.
const DEFAULT_REGION: &str = "us-east-1";

/// Largest Firehose record, and the largest Kinesis record the Kinesis Agent
/// sends (it does not use Kinesis' 10 MiB option).
const FIREHOSE_MAX_RECORD_BYTES: usize = 1000 * 1024;
const KINESIS_MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Shardline's smallest `collection_max_size`; `maxBufferSizeBytes` below it
/// is raised to it (a request that small gains nothing).
const MIN_COLLECTION_BYTES: u64 = 52_224;

/// A configuration value that is wrong, and which key holds it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub(crate) struct ConfigError {
    /// Path of the key, e.g. `flows[0].filePattern`.
    pub(crate) key: String,
    /// What is wrong; never contains a secret.
    pub(crate) message: String,
}

impl ConfigError {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Whole-agent settings.
#[derive(Debug)]
pub(crate) struct AgentConfig {
    /// `checkpointFile`.
    pub(crate) checkpoint_file: PathBuf,
    /// `shutdownTimeoutMillis`: how long a stop waits for outstanding records.
    pub(crate) shutdown_timeout: Duration,
    /// `log.statusReportingPeriodSeconds`.
    pub(crate) status_interval: Duration,
    /// The flows, in file order.
    pub(crate) flows: Vec<FlowConfig>,
}

/// `partitionKeyOption`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PartitionKeyOption {
    /// A random key per record: spreads records over all shards.
    Random,
    /// The MD5 of the record's data: equal records go to the same shard.
    Deterministic,
}

/// `initialPosition`: where to start in files found at the first start
/// (no checkpoint yet). Files that appear later are always read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InitialPosition {
    /// Read existing files from their beginning.
    StartOfFile,
    /// Skip what existing files hold; send only what is appended.
    EndOfFile,
}

/// One flow: a file pattern and where its records go.
#[derive(Debug)]
pub(crate) struct FlowConfig {
    /// A stable name, used in the checkpoint file and the status line.
    pub(crate) id: String,
    /// `filePattern` (a glob).
    pub(crate) file_pattern: String,
    /// Which service.
    pub(crate) service: Service,
    /// `kinesisStream` or `deliveryStream`.
    pub(crate) stream: String,
    /// `partitionKeyOption` (Kinesis only).
    pub(crate) partition_key: PartitionKeyOption,
    /// `initialPosition`.
    pub(crate) initial_position: InitialPosition,
    /// `multiLineStartPattern`: a line matching it starts a new record.
    pub(crate) multi_line_start: Option<Regex>,
    /// `skipHeaderLines`: lines skipped at the start of each file.
    pub(crate) skip_header_lines: usize,
    /// `truncatedRecordTerminator`: ends a record cut at the size limit.
    pub(crate) truncated_record_terminator: Vec<u8>,
    /// `dataProcessingOptions`.
    pub(crate) processors: Vec<Processor>,
    /// `minTimeBetweenFilePollsMillis`.
    pub(crate) poll_interval: Duration,
    /// Largest record (after processing) the destination takes.
    pub(crate) max_record_size: usize,
    /// The producer configuration for this flow.
    pub(crate) producer: Config,
}

/// A JSON object and where it sits in the file, for messages that name
/// the key.
#[derive(Debug)]
pub(crate) struct JsonObject<'a> {
    map: &'a serde_json::Map<String, Value>,
    path: String,
}

impl<'a> JsonObject<'a> {
    pub(crate) fn new(value: &'a Value, path: String) -> Result<Self, ConfigError> {
        match value {
            Value::Object(map) => Ok(JsonObject { map, path }),
            _ => Err(ConfigError::new(path, "must be a JSON object")),
        }
    }

    /// The full path of `key` in this object.
    pub(crate) fn path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(crate) fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.path(key), message)
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn optional_str(&self, key: &str) -> Result<Option<&'a str>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.invalid(key, "must be a string")),
        }
    }

    pub(crate) fn required_str(&self, key: &str) -> Result<&'a str, ConfigError> {
        match self.optional_str(key)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(self.invalid(key, "is required")),
        }
    }

    /// An integer given as a JSON number or a string (the Kinesis Agent
    /// accepts both), within `range`.
    fn integer(&self, key: &str, min: u64, max: u64) -> Result<Option<u64>, ConfigError> {
        let n = match self.get(key) {
            None => return Ok(None),
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(_) => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            Some(n) => Err(self.invalid(key, format!("{n} is outside {min}..={max}"))),
            None => Err(self.invalid(key, "must be a non-negative integer")),
        }
    }

    /// A string from a fixed set of choices, upper-case as in agent.json.
    fn choice(&self, key: &str, choices: &[&str]) -> Result<Option<&'a str>, ConfigError> {
        match self.optional_str(key)? {
            None => Ok(None),
            Some(s) if choices.contains(&s) => Ok(Some(s)),
            Some(s) => {
                Err(self.invalid(key, format!("{s:?} is not one of {}", choices.join(", "))))
            }
        }
    }

    /// Warns about keys outside `known`.
    pub(crate) fn check_keys(&self, known: &[&str], warnings: &mut Vec<String>) {
        for key in self.map.keys() {
            if !known.contains(&key.as_str()) {
                warnings.push(format!(
                    "{}: unknown key, ignored",
                    self.path(&key.chars().take(64).collect::<String>())
                ));
            }
        }
    }
}

/// Top-level keys we act on.
const AGENT_KEYS: &[&str] = &[
    "flows",
    "checkpointFile",
    "kinesis.endpoint",
    "kinesis.region",
    "firehose.endpoint",
    "firehose.region",
    "awsAccessKeyId",
    "awsSecretAccessKey",
    "awsSessionToken",
    "shutdownTimeoutMillis",
    "log.statusReportingPeriodSeconds",
    "maxConnections",
    "connectionTimeoutMillis",
    "socketTimeoutMillis",
    "shardline.producer",
];

/// Top-level Kinesis Agent keys that configure things this agent does not
/// have (CloudWatch metrics, the Java thread pools, HTTP client details).
const AGENT_KEYS_WITHOUT_EFFECT: &[&str] = &[
    "cloudwatch.emitMetrics",
    "cloudwatch.endpoint",
    "cloudwatch.tagInstance",
    "cloudwatch.metricsBufferTimeMillis",
    "cloudwatch.namespace",
    "cloudwatch.metricsQueueSize",
    "sts.endpoint",
    "log.emitMetrics",
    "log.emitInternalMetrics",
    "maxSendingThreads",
    "maxSendingThreadsPerCore",
    "sendingThreadsKeepAliveMillis",
    "sendingThreadsMaxQueueSize",
    "connectionTTLMillis",
    "useTcpKeepAlive",
    "useHttpGzip",
    "checkpointTimeToLiveDays",
];

/// Kinesis Agent keys whose absence of effect would be a surprise: refused.
const AGENT_KEYS_UNSUPPORTED: &[(&str, &str)] = &[
    (
        "assumeRoleARN",
        "is not supported; configure the role in an AWS profile (AWS_PROFILE) instead",
    ),
    (
        "assumeRoleExternalId",
        "is not supported; configure the role in an AWS profile (AWS_PROFILE) instead",
    ),
];

const FLOW_KEYS: &[&str] = &[
    "filePattern",
    "kinesisStream",
    "deliveryStream",
    "partitionKeyOption",
    "initialPosition",
    "maxBufferAgeMillis",
    "maxBufferSizeRecords",
    "maxBufferSizeBytes",
    "multiLineStartPattern",
    "skipHeaderLines",
    "truncatedRecordTerminator",
    "dataProcessingOptions",
    "minTimeBetweenFilePollsMillis",
    "retryInitialBackoffMillis",
    "retryMaxBackoffMillis",
    "shardline.producer",
];

const FLOW_KEYS_WITHOUT_EFFECT: &[&str] = &[
    "waitOnFullPublishQueueMillis",
    "waitOnEmptyPublishQueueMillis",
    "waitOnFullRetryQueueMillis",
    "publishQueueCapacity",
    "maxTimeBetweenFileTrackerRefreshMillis",
    "aggregatedRecordSizeBytes",
    "log.emitInternalMetrics",
];

/// Parses agent.json. Returns the settings and the warnings to log.
pub(crate) fn parse(text: &str) -> Result<(AgentConfig, Vec<String>), ConfigError> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        ConfigError::new(
            "agent.json",
            format!(
                "is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    let root = JsonObject::new(&value, String::new())?;
    let mut warnings = Vec::new();

    for (key, why) in AGENT_KEYS_UNSUPPORTED {
        if root.get(key).is_some() {
            return Err(root.invalid(key, *why));
        }
    }
    for key in root.map.keys() {
        if AGENT_KEYS_WITHOUT_EFFECT.contains(&key.as_str()) {
            warnings.push(format!("{key}: has no effect in shardline-agent, ignored"));
        } else if !AGENT_KEYS.contains(&key.as_str()) {
            warnings.push(format!(
                "{}: unknown key, ignored",
                key.chars().take(64).collect::<String>()
            ));
        }
    }

    let checkpoint_file = PathBuf::from(
        root.optional_str("checkpointFile")?
            .unwrap_or(DEFAULT_CHECKPOINT_FILE),
    );
    if checkpoint_file.as_os_str().is_empty() {
        return Err(root.invalid("checkpointFile", "must not be empty"));
    }
    let shutdown_timeout = Duration::from_millis(
        root.integer("shutdownTimeoutMillis", 0, 3_600_000)?
            .unwrap_or(10_000),
    );
    let status_interval = Duration::from_secs(
        root.integer("log.statusReportingPeriodSeconds", 1, 86_400)?
            .unwrap_or(30),
    );

    let base = base_producer_config(&root)?;

    let flows_value = root
        .get("flows")
        .ok_or_else(|| root.invalid("flows", "is required"))?;
    let Value::Array(flow_values) = flows_value else {
        return Err(root.invalid("flows", "must be a list of flows"));
    };
    if flow_values.is_empty() {
        return Err(root.invalid("flows", "must contain at least one flow"));
    }
    let mut flows = Vec::new();
    for (i, flow_value) in flow_values.iter().enumerate() {
        let flow = JsonObject::new(flow_value, format!("flows[{i}]"))?;
        flows.push(parse_flow(&flow, &root, &base, &mut warnings)?);
    }
    let mut ids = BTreeMap::new();
    for (i, flow) in flows.iter().enumerate() {
        if let Some(first) = ids.insert(flow.id.clone(), i) {
            return Err(ConfigError::new(
                format!("flows[{i}]"),
                format!("sends the same files to the same destination as flows[{first}]"),
            ));
        }
    }
    Ok((
        AgentConfig {
            checkpoint_file,
            shutdown_timeout,
            status_interval,
            flows,
        },
        warnings,
    ))
}

/// Producer settings shared by every flow: credentials, HTTP settings and
/// the top-level `shardline.producer`.
fn base_producer_config(root: &JsonObject<'_>) -> Result<Config, ConfigError> {
    let mut config = Config::new();
    let key_id = root.optional_str("awsAccessKeyId")?;
    let secret = root.optional_str("awsSecretAccessKey")?;
    let token = root.optional_str("awsSessionToken")?;
    match (key_id, secret) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => {
            config = config.static_credentials(id, secret, token.map(str::to_owned));
        }
        (None, None) if token.is_none() => {}
        (None, None) => {
            return Err(root.invalid(
                "awsSessionToken",
                "needs awsAccessKeyId and awsSecretAccessKey",
            ));
        }
        (Some(""), _) => {
            return Err(root.invalid("awsAccessKeyId", "must not be empty"));
        }
        (Some(_), _) => {
            return Err(root.invalid(
                "awsSecretAccessKey",
                "is required with awsAccessKeyId (and must not be empty)",
            ));
        }
        (None, Some(_)) => {
            return Err(root.invalid("awsAccessKeyId", "is required with awsSecretAccessKey"));
        }
    }
    let mapped = [
        ("maxConnections", "max_connections", 1, 256),
        ("connectionTimeoutMillis", "connect_timeout", 100, 300_000),
        ("socketTimeoutMillis", "request_timeout", 100, 600_000),
    ];
    for (key, shardline_key, min, max) in mapped {
        if let Some(n) = root.integer(key, min, max)? {
            set(&mut config, shardline_key, &n.to_string(), &root.path(key))?;
        }
    }
    apply_producer_options(&mut config, root)?;
    Ok(config)
}

/// Applies a `shardline.producer` object, if there is one.
fn apply_producer_options(config: &mut Config, object: &JsonObject<'_>) -> Result<(), ConfigError> {
    let Some(value) = object.get("shardline.producer") else {
        return Ok(());
    };
    let options = JsonObject::new(value, object.path("shardline.producer"))?;
    for (key, value) in options.map {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err(options.invalid(key, "must be a string, number or boolean"));
            }
        };
        set(config, key, &text, &options.path(key))?;
    }
    Ok(())
}

/// `Config::set`, with the error re-labelled by its place in agent.json.
/// Shardline's own messages already redact secrets.
fn set(config: &mut Config, key: &str, value: &str, path: &str) -> Result<(), ConfigError> {
    config.set(key, value).map_err(|e| match e {
        shardline::Error::UnknownConfigKey(_) => {
            ConfigError::new(path, "is not a Shardline producer option")
        }
        shardline::Error::InvalidConfig { message, .. } => ConfigError::new(path, message),
        other => ConfigError::new(path, other.to_string()),
    })
}

/// `https://` is assumed when an endpoint has no scheme, as the Kinesis
/// Agent's docs write them (`kinesis.us-west-2.amazonaws.com`).
fn endpoint_url(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("https://{endpoint}")
    }
}

/// The region in `https://kinesis.eu-west-1.amazonaws.com`, if it names one.
fn region_of(endpoint: &str) -> Option<String> {
    let host = endpoint.split("://").last()?.split(['/', ':']).next()?;
    let mut labels = host.split('.');
    let _service = labels.next()?;
    let region = labels.next()?;
    (host.contains(".amazonaws.") && region.contains('-')).then(|| region.to_owned())
}

fn parse_flow(
    flow: &JsonObject<'_>,
    root: &JsonObject<'_>,
    base: &Config,
    warnings: &mut Vec<String>,
) -> Result<FlowConfig, ConfigError> {
    for key in flow.map.keys() {
        if FLOW_KEYS_WITHOUT_EFFECT.contains(&key.as_str()) {
            warnings.push(format!(
                "{}: has no effect in shardline-agent, ignored",
                flow.path(key)
            ));
        }
    }
    let mut known = FLOW_KEYS.to_vec();
    known.extend_from_slice(FLOW_KEYS_WITHOUT_EFFECT);
    flow.check_keys(&known, warnings);

    let file_pattern = flow.required_str("filePattern")?.to_owned();
    glob::Pattern::new(&file_pattern)
        .map_err(|e| flow.invalid("filePattern", format!("is not a valid glob: {e}")))?;
    if !file_pattern.starts_with('/') {
        warnings.push(format!(
            "{}: {file_pattern:?} is relative; it is resolved against the working directory",
            flow.path("filePattern")
        ));
    }

    let (service, stream) = match (
        flow.optional_str("kinesisStream")?,
        flow.optional_str("deliveryStream")?,
    ) {
        (Some(s), None) if !s.is_empty() => (Service::Kinesis, s.to_owned()),
        (None, Some(s)) if !s.is_empty() => (Service::Firehose, s.to_owned()),
        (Some(_), Some(_)) => {
            return Err(flow.invalid(
                "deliveryStream",
                "a flow has either kinesisStream or deliveryStream, not both",
            ));
        }
        (Some(_), None) => return Err(flow.invalid("kinesisStream", "must not be empty")),
        (None, Some(_)) => return Err(flow.invalid("deliveryStream", "must not be empty")),
        (None, None) => {
            return Err(flow.invalid(
                "kinesisStream",
                "a flow needs kinesisStream or deliveryStream",
            ));
        }
    };
    let stream_key = match service {
        Service::Kinesis => "kinesisStream",
        Service::Firehose => "deliveryStream",
    };
    if stream.len() > 128
        || !stream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(flow.invalid(
            stream_key,
            "must be 1 to 128 characters of a-z, A-Z, 0-9, '_', '.' and '-'",
        ));
    }

    let partition_key = match flow.choice("partitionKeyOption", &["RANDOM", "DETERMINISTIC"])? {
        Some("DETERMINISTIC") => PartitionKeyOption::Deterministic,
        _ => PartitionKeyOption::Random,
    };
    if service == Service::Firehose && flow.get("partitionKeyOption").is_some() {
        warnings.push(format!(
            "{}: has no effect for a deliveryStream",
            flow.path("partitionKeyOption")
        ));
    }
    let initial_position =
        match flow.choice("initialPosition", &["START_OF_FILE", "END_OF_FILE"])? {
            Some("START_OF_FILE") => InitialPosition::StartOfFile,
            _ => InitialPosition::EndOfFile,
        };

    let multi_line_start = match flow.optional_str("multiLineStartPattern")? {
        None | Some("") => None,
        Some(p) => Some(Regex::new(p).map_err(|e| {
            flow.invalid(
                "multiLineStartPattern",
                format!("is not a valid regular expression: {e}"),
            )
        })?),
    };
    let skip_header_lines = flow.integer("skipHeaderLines", 0, 1_000_000)?.unwrap_or(0) as usize;

    let max_record_size = match service {
        Service::Kinesis => KINESIS_MAX_RECORD_BYTES,
        Service::Firehose => FIREHOSE_MAX_RECORD_BYTES,
    };
    let truncated_record_terminator = flow
        .optional_str("truncatedRecordTerminator")?
        .unwrap_or("\n")
        .as_bytes()
        .to_vec();

    let mut processors = Vec::new();
    match flow.get("dataProcessingOptions") {
        None => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let object =
                    JsonObject::new(item, flow.path(&format!("dataProcessingOptions[{i}]")))?;
                processors.push(Processor::from_json(&object, warnings)?);
            }
        }
        Some(_) => {
            return Err(flow.invalid("dataProcessingOptions", "must be a list of options"));
        }
    }

    let poll_interval = Duration::from_millis(
        flow.integer("minTimeBetweenFilePollsMillis", 1, 60_000)?
            .unwrap_or(100),
    );

    // The producer: the service's endpoint and region, the flow's buffer
    // limits, then the flow's own `shardline.producer` options.
    let mut producer = base.clone();
    if service == Service::Firehose {
        // Each line is its own Firehose record, newline-terminated, so the
        // objects Firehose writes keep one line per record.
        set(
            &mut producer,
            "firehose_newline_delimiter",
            "true",
            "deliveryStream",
        )?;
    }
    let (endpoint_key, region_key) = match service {
        Service::Kinesis => ("kinesis.endpoint", "kinesis.region"),
        Service::Firehose => ("firehose.endpoint", "firehose.region"),
    };
    let endpoint = root.optional_str(endpoint_key)?.filter(|e| !e.is_empty());
    if let Some(endpoint) = endpoint {
        set(
            &mut producer,
            "endpoint_url",
            &endpoint_url(endpoint),
            &root.path(endpoint_key),
        )?;
    }
    let region = root
        .optional_str(region_key)?
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .or_else(|| endpoint.and_then(region_of))
        .unwrap_or_else(|| DEFAULT_REGION.to_owned());
    producer = producer.region(region);

    // The Kinesis Agent's ranges; its buffer age floor (1 s) is relaxed to
    // 1 ms because Shardline batches per shard and gains little from waiting.
    let max_request_bytes: u64 = match service {
        Service::Kinesis => 5 * 1024 * 1024,
        Service::Firehose => 4 * 1024 * 1024,
    };
    let age = flow
        .integer("maxBufferAgeMillis", 1, 900_000)?
        .unwrap_or(60_000);
    set(
        &mut producer,
        "record_max_buffered_time",
        &age.to_string(),
        &flow.path("maxBufferAgeMillis"),
    )?;
    if let Some(n) = flow.integer("maxBufferSizeRecords", 1, 500)? {
        set(
            &mut producer,
            "collection_max_count",
            &n.to_string(),
            &flow.path("maxBufferSizeRecords"),
        )?;
    }
    if let Some(n) = flow.integer("maxBufferSizeBytes", 1, max_request_bytes)? {
        if n < MIN_COLLECTION_BYTES {
            warnings.push(format!(
                "{}: raised to Shardline's minimum request size, {MIN_COLLECTION_BYTES}",
                flow.path("maxBufferSizeBytes")
            ));
        }
        let bytes = n.max(MIN_COLLECTION_BYTES).to_string();
        set(
            &mut producer,
            "collection_max_size",
            &bytes,
            &flow.path("maxBufferSizeBytes"),
        )?;
        if service == Service::Kinesis {
            // A single record must fit in a request; cap it to the request
            // size rather than fail on the cross-check.
            let record = (n.max(MIN_COLLECTION_BYTES) as usize).min(KINESIS_MAX_RECORD_BYTES);
            set(
                &mut producer,
                "max_record_size",
                &record.to_string(),
                &flow.path("maxBufferSizeBytes"),
            )?;
        }
    }
    // The producer's ranges: an initial backoff over a minute is refused by
    // `min_backoff` anyway, and saying so here names the agent's key.
    for (key, shardline_key, max) in [
        ("retryInitialBackoffMillis", "min_backoff", 60_000),
        ("retryMaxBackoffMillis", "max_backoff", 600_000),
    ] {
        if let Some(n) = flow.integer(key, 1, max)? {
            set(
                &mut producer,
                shardline_key,
                &n.to_string(),
                &flow.path(key),
            )?;
        }
    }
    apply_producer_options(&mut producer, flow)?;
    producer.validate().map_err(|e| match e {
        shardline::Error::InvalidConfig { key, message } => {
            ConfigError::new(flow.path(&format!("shardline.producer.{key}")), message)
        }
        other => ConfigError::new(flow.path("shardline.producer"), other.to_string()),
    })?;

    let max_record_size = match service {
        Service::Kinesis => max_record_size.min(producer.max_record_size_bytes()),
        Service::Firehose => max_record_size,
    };
    // Checked against the final limit: a small `max_record_size` in
    // `shardline.producer` lowers it, and a cut record must keep room for
    // data after the flow's own overhead.
    let budget = max_record_size - record_overhead(service);
    if truncated_record_terminator.len() >= budget / 2 {
        return Err(flow.invalid(
            "truncatedRecordTerminator",
            format!(
                "is too long: records are cut at {budget} bytes, and the terminator must take less than half of that"
            ),
        ));
    }
    let id = match service {
        Service::Kinesis => format!("kinesis:{stream}:{file_pattern}"),
        Service::Firehose => format!("firehose:{stream}:{file_pattern}"),
    };
    Ok(FlowConfig {
        id,
        file_pattern,
        service,
        stream,
        partition_key,
        initial_position,
        multi_line_start,
        skip_header_lines,
        truncated_record_terminator,
        processors,
        poll_interval,
        max_record_size,
        producer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        parse(json).unwrap_err().to_string()
    }

    #[test]
    fn the_readme_config_parses() {
        let (config, warnings) = parse(
            r#"{
              "checkpointFile": "/tmp/shardline-agent/checkpoints",
              "kinesis.endpoint": "http://127.0.0.1:4567",
              "firehose.endpoint": "http://127.0.0.1:4567",
              "awsAccessKeyId": "AKIDEXAMPLE",
              "awsSecretAccessKey": "PLANTED-SECRET",
              "cloudwatch.emitMetrics": false,
              "flows": [
                {"filePattern": "/tmp/data.log*", "kinesisStream": "s",
                 "partitionKeyOption": "RANDOM", "maxBufferAgeMillis": 500},
                {"filePattern": "/tmp/data.log*", "deliveryStream": "d",
                 "initialPosition": "START_OF_FILE"}
              ]
            }"#,
        )
        .unwrap();
        assert_eq!(config.flows.len(), 2);
        assert_eq!(config.flows[0].service, Service::Kinesis);
        assert_eq!(
            config.flows[1].initial_position,
            InitialPosition::StartOfFile
        );
        assert_eq!(
            warnings,
            vec!["cloudwatch.emitMetrics: has no effect in shardline-agent, ignored"]
        );
        let shown = format!("{config:?}");
        assert!(!shown.contains("PLANTED"), "{shown}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let flow = |extra: &str| {
            format!(r#"{{"flows":[{{"filePattern":"/tmp/x","kinesisStream":"s"{extra}}}]}}"#)
        };
        assert!(
            err(&flow(r#","maxBufferAgeMillis":0"#)).starts_with("flows[0].maxBufferAgeMillis:")
        );
        assert!(
            err(&flow(r#","maxBufferSizeRecords":501"#))
                .starts_with("flows[0].maxBufferSizeRecords:")
        );
        assert!(
            err(&flow(r#","partitionKeyOption":"HASH""#))
                .starts_with("flows[0].partitionKeyOption:")
        );
        assert!(
            err(&flow(r#","initialPosition":"MIDDLE""#)).starts_with("flows[0].initialPosition:")
        );
        assert!(
            err(&flow(r#","multiLineStartPattern":"(""#))
                .starts_with("flows[0].multiLineStartPattern:")
        );
        let e = err(&flow(r#","retryInitialBackoffMillis":60001"#));
        assert!(
            e.starts_with("flows[0].retryInitialBackoffMillis:") && e.contains("60000"),
            "{e}"
        );
        assert!(
            err(&flow(r#","shardline.producer":{"rate_limit":"0"}"#))
                .starts_with("flows[0].shardline.producer.rate_limit:")
        );
        assert!(
            err(&flow(r#","shardline.producer":{"nope":1}"#))
                .starts_with("flows[0].shardline.producer.nope:")
        );
        assert!(err(r#"{"flows":[{"kinesisStream":"s"}]}"#).starts_with("flows[0].filePattern:"));
        assert!(err(r#"{"flows":[{"filePattern":"/x"}]}"#).starts_with("flows[0].kinesisStream:"));
        assert!(err(r#"{"flows":[]}"#).starts_with("flows:"));
        assert!(err("{nope").starts_with("agent.json:"));
        assert!(err(r#"{"assumeRoleARN":"arn:x","flows":[]}"#).starts_with("assumeRoleARN:"));
    }

    #[test]
    fn secrets_are_never_echoed() {
        let e = err(
            r#"{"awsSecretAccessKey":"PLANTED","flows":[{"filePattern":"/x","kinesisStream":"s"}]}"#,
        );
        assert!(e.starts_with("awsAccessKeyId:"), "{e}");
        assert!(!e.contains("PLANTED"));
        let e = err(
            r#"{"shardline.producer":{"aws_secret_access_key":""},"flows":[{"filePattern":"/x","kinesisStream":"s"}]}"#,
        );
        assert!(e.contains("aws_secret_access_key"), "{e}");
    }

    #[test]
    fn unknown_keys_warn() {
        let (_, warnings) = parse(
            r#"{"colour":"blue","flows":[{"filePattern":"/x","deliveryStream":"d","sped":1}]}"#,
        )
        .unwrap();
        assert_eq!(
            warnings,
            vec![
                "colour: unknown key, ignored",
                "flows[0].sped: unknown key, ignored"
            ]
        );
    }

    #[test]
    fn a_terminator_too_long_for_the_record_limit_is_refused() {
        // The length was checked against the service's limit (1 MiB), not
        // the producer's `max_record_size`, and the flow then panicked
        // cutting a long line (`max_record - terminator` underflowed). The
        // agent_config fuzz target's invariant catches it (input
        // fuzz/corpus/agent_config/regression_long_terminator).
        let flow = |terminator: usize, max_record_size: u32| {
            format!(
                r#"{{"flows":[{{"filePattern":"/x","kinesisStream":"s",
                   "truncatedRecordTerminator":"{}",
                   "shardline.producer":{{"max_record_size":{max_record_size}}}}}]}}"#,
                "~".repeat(terminator)
            )
        };
        let e = err(&flow(1000, 1024));
        assert!(
            e.starts_with("flows[0].truncatedRecordTerminator: is too long"),
            "{e}"
        );
        // (1024 - 256) / 2 = 384 bytes of record budget for the terminator.
        assert!(err(&flow(384, 1024)).contains("truncatedRecordTerminator"));
        let (config, _) = parse(&flow(383, 1024)).unwrap();
        assert_eq!(config.flows[0].max_record_size, 1024);
        assert!(parse(&flow(1000, 4096)).is_ok());
    }

    #[test]
    fn regions_come_from_endpoints() {
        assert_eq!(
            region_of("https://kinesis.eu-west-1.amazonaws.com").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            region_of("firehose.ap-south-1.amazonaws.com").as_deref(),
            Some("ap-south-1")
        );
        assert_eq!(region_of("http://127.0.0.1:4567"), None);
        assert_eq!(
            endpoint_url("kinesis.us-west-2.amazonaws.com"),
            "https://kinesis.us-west-2.amazonaws.com"
        );
    }
}
