//! Reading a stream back and checking what a producer promised: every
//! record there, as sent, on a shard that owns its hash key.

use std::collections::HashMap;
use std::time::Duration;

use shardline::aggregation::deaggregate;
use shardline::{Config, DeliveryFuture, DeliveryResult, Producer, UserRecord};

use crate::clients::{
    TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, list_all_shards, read_all_records,
};

/// A producer configuration for a local server.
pub fn local_config(endpoint: &str) -> Config {
    Config::new()
        .region("us-east-1")
        .endpoint_url(endpoint)
        .static_credentials(TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, None)
}

/// One user record as read back from a stream.
#[derive(Debug, Clone)]
pub struct ReadRecord {
    /// The shard it was read from.
    pub shard_id: String,
    /// Its partition key.
    pub partition_key: String,
    /// Its data.
    pub data: Vec<u8>,
    /// The hash key that routes it.
    pub hash_key: u128,
}

/// Reads every shard of `stream` with GetRecords and deaggregates every
/// Kinesis record (KPL aggregates and plain records alike).
pub async fn read_user_records(client: &aws_sdk_kinesis::Client, stream: &str) -> Vec<ReadRecord> {
    let mut out = Vec::new();
    for (shard_id, record) in read_all_records(client, stream).await {
        let data = bytes::Bytes::copy_from_slice(record.data().as_ref());
        // GetRecords does not return explicit hash keys; user records inside
        // an aggregate carry their own.
        let users = deaggregate(record.partition_key().unwrap_or_default(), None, &data)
            .unwrap_or_else(|e| panic!("a record in {shard_id} does not deaggregate: {e}"));
        for user in users {
            out.push(ReadRecord {
                shard_id: shard_id.clone(),
                hash_key: user.hash_key().expect("valid hash key"),
                partition_key: user.partition_key,
                data: user.data.to_vec(),
            });
        }
    }
    out
}

/// What a KCL consumer sees: the records that lie in the hash-key range of
/// the shard they were read from (closed shards included). KCL drops the
/// others, which exist when an aggregate was sent with a stale shard map;
/// the producer re-sends those records to their owning shard. Returns the
/// kept records and how many were dropped.
pub async fn consumer_view(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
) -> (Vec<ReadRecord>, usize) {
    let ranges: HashMap<String, (u128, u128)> = list_all_shards(client, stream)
        .await
        .into_iter()
        .map(|s| {
            let r = s.hash_key_range().expect("shard has a range");
            (
                s.shard_id().to_owned(),
                (
                    r.starting_hash_key().parse().unwrap(),
                    r.ending_hash_key().parse().unwrap(),
                ),
            )
        })
        .collect();
    let all = read_user_records(client, stream).await;
    let total = all.len();
    let kept: Vec<ReadRecord> = all
        .into_iter()
        .filter(|r| {
            let (lo, hi) = ranges[&r.shard_id];
            (lo..=hi).contains(&r.hash_key)
        })
        .collect();
    let dropped = total - kept.len();
    (kept, dropped)
}

/// Counts records by (partition key, data).
pub fn multiset<'a>(
    items: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> HashMap<(String, Vec<u8>), usize> {
    let mut m = HashMap::new();
    for (k, d) in items {
        *m.entry((k.to_owned(), d.to_vec())).or_default() += 1;
    }
    m
}

/// A deterministic workload: `count` records over `keys` partition keys,
/// each `size` bytes, distinct payloads.
pub fn workload(count: usize, keys: usize, size: usize) -> Vec<UserRecord> {
    (0..count)
        .map(|i| {
            let mut data = format!("record-{i:08}-").into_bytes();
            data.resize(size.max(data.len()), b'x');
            UserRecord::new(format!("key-{}", i % keys), data)
        })
        .collect()
}

/// Sends `records` from `threads` threads with `send_blocking`, and waits
/// for every delivery.
pub fn send_from_threads(
    producer: &Producer,
    stream: &str,
    records: Vec<UserRecord>,
    threads: usize,
) -> Vec<DeliveryResult> {
    let chunk = records.len().div_ceil(threads.max(1)).max(1);
    let mut chunks: Vec<Vec<UserRecord>> = Vec::new();
    let mut records = records;
    while !records.is_empty() {
        let rest = records.split_off(chunk.min(records.len()));
        chunks.push(std::mem::replace(&mut records, rest));
    }
    let futures: Vec<Vec<DeliveryFuture>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|c| {
                s.spawn(move || {
                    c.into_iter()
                        .map(|r| {
                            producer
                                .send_blocking(stream, r, Some(Duration::from_secs(60)))
                                .expect("send accepted")
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    futures
        .into_iter()
        .flatten()
        .map(DeliveryFuture::wait)
        .collect()
}
