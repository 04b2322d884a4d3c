//! AWS SDK clients pointed at local servers, and stream helpers built on them.

use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_sdk_kinesis::types::{Record, Shard, ShardIteratorType, StreamStatus};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

/// Dummy access key id used against local servers. Not 12 digits, so
/// kinesis-mock puts every stream in its default account (000000000000).
pub const TEST_ACCESS_KEY_ID: &str = "AKIDSHARDLINETEST";
/// Dummy secret key used against local servers.
pub const TEST_SECRET_ACCESS_KEY: &str = "shardline-test-secret";
/// Region used against local servers.
pub const TEST_REGION: &str = "us-east-1";

/// One HTTP(S) client (hyper 1 + rustls + ring) for the SDK. A new one per
/// SDK client: a connection pool must not outlive the tokio runtime of the
/// test that created it.
pub fn http_client() -> aws_sdk_kinesis::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

fn credentials() -> Credentials {
    Credentials::new(
        TEST_ACCESS_KEY_ID,
        TEST_SECRET_ACCESS_KEY,
        None,
        None,
        "shardline-integration-static",
    )
}

/// A Kinesis client for `endpoint` with static dummy credentials in us-east-1.
pub async fn kinesis_client(endpoint: &str) -> aws_sdk_kinesis::Client {
    use aws_sdk_kinesis::config::{BehaviorVersion, Region};
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(TEST_REGION))
        .credentials_provider(credentials())
        .endpoint_url(endpoint)
        .http_client(http_client())
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

/// A Firehose client for `endpoint` with static dummy credentials in us-east-1.
pub async fn firehose_client(endpoint: &str) -> aws_sdk_firehose::Client {
    use aws_sdk_firehose::config::{BehaviorVersion, Region};
    let config = aws_sdk_firehose::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(TEST_REGION))
        .credentials_provider(credentials())
        .endpoint_url(endpoint)
        .http_client(http_client())
        .build();
    aws_sdk_firehose::Client::from_conf(config)
}

/// Polls DescribeStreamSummary every 50 ms until `name` is ACTIVE (panics
/// after 60 s, or on an error other than ResourceNotFound).
pub async fn wait_for_stream_active(client: &aws_sdk_kinesis::Client, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        match client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
        {
            Ok(out) => {
                let status = out
                    .stream_description_summary()
                    .map(|d| d.stream_status().clone());
                if status == Some(StreamStatus::Active) {
                    return;
                }
                last = format!("{status:?}");
            }
            Err(e) => {
                let svc = e.as_service_error();
                if !svc.is_some_and(|s| s.is_resource_not_found_exception()) {
                    panic!("DescribeStreamSummary({name}): {e:?}");
                }
                last = "ResourceNotFound".into();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("stream {name} not ACTIVE after 60 s (last: {last})");
}

/// Every shard of `stream` (open and closed), following ListShards' NextToken.
pub async fn list_all_shards(client: &aws_sdk_kinesis::Client, stream: &str) -> Vec<Shard> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        // With NextToken, ListShards must not name the stream.
        let req = match &token {
            Some(t) => client.list_shards().next_token(t),
            None => client.list_shards().stream_name(stream),
        };
        let out = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListShards({stream}): {e:?}"));
        shards.extend(out.shards().iter().cloned());
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => return shards,
        }
    }
}

/// Reads every record of every shard of `stream` (open and closed) from
/// TRIM_HORIZON to the end, returning `(shard id, record)` in shard order,
/// then sequence order. A shard is done when GetRecords returns no records
/// with MillisBehindLatest 0 (or absent), or no NextShardIterator (a closed
/// shard read to its end).
pub async fn read_all_records(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
) -> Vec<(String, Record)> {
    let mut all = Vec::new();
    for shard in list_all_shards(client, stream).await {
        let shard_id = shard.shard_id().to_owned();
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(&shard_id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetShardIterator({stream}/{shard_id}): {e:?}"))
            .shard_iterator()
            .map(str::to_owned);
        let mut calls = 0u32;
        while let Some(it) = iterator.take() {
            calls += 1;
            assert!(
                calls < 10_000,
                "GetRecords on {stream}/{shard_id} does not end"
            );
            let out = client
                .get_records()
                .shard_iterator(it)
                .limit(10_000)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GetRecords({stream}/{shard_id}): {e:?}"));
            let got = out.records().len();
            all.extend(out.records().iter().map(|r| (shard_id.clone(), r.clone())));
            let caught_up = out.millis_behind_latest().unwrap_or(0) == 0;
            if got == 0 && caught_up {
                break;
            }
            iterator = out.next_shard_iterator().map(str::to_owned);
        }
    }
    all
}

/// Parses a decimal hash key (as in `HashKeyRange`) into a `u128`.
pub fn parse_hash_key(s: &str) -> u128 {
    s.parse()
        .unwrap_or_else(|e| panic!("hash key {s:?} is not a u128: {e}"))
}
