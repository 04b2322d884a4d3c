//! Per-shard write limits: over-limit records are refused like the service
//! refuses them, and a producer that stays under the limit is never refused.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use common::{blob, error_code, error_message, kinesis};
use shardline_emulator::{Emulator, EmulatorConfig, FirehoseLimits, ShardLimits};

const KIB: usize = 1024;

fn batch(records: usize, size: usize) -> Vec<PutRecordsRequestEntry> {
    (0..records)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("k{i}"))
                // Every record to the single shard; the key counts as 1 or 2 bytes more.
                .data(blob(vec![b'x'; size]))
                .build()
                .unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_mib_blast_into_one_shard_is_mostly_throttled() {
    let emulator = Emulator::start(EmulatorConfig::default().with_stream("t", 1))
        .await
        .unwrap();
    let client = kinesis(&emulator.endpoint());
    let started = Instant::now();
    let (mut ok, mut throttled) = (0, 0);
    // 3 MiB in 64 KiB records, 4 MiB requests (under the 5 MiB limit).
    for _ in 0..3 {
        let out = client
            .put_records()
            .stream_name("t")
            .set_records(Some(batch(16, 64 * KIB)))
            .send()
            .await
            .unwrap();
        for r in out.records() {
            match r.error_code() {
                None => ok += 1,
                Some("ProvisionedThroughputExceededException") => {
                    throttled += 1;
                    let message = r.error_message().unwrap();
                    assert!(
                        message.starts_with("Rate exceeded for shard shardId-000000000000 in stream t under account 123456789012"),
                        "{message}"
                    );
                }
                Some(other) => panic!("unexpected {other}"),
            }
        }
        assert_eq!(
            out.failed_record_count(),
            Some(
                out.records()
                    .iter()
                    .filter(|r| r.error_code().is_some())
                    .count() as i32
            )
        );
    }
    let elapsed = started.elapsed();
    if elapsed < Duration::from_secs(1) {
        // 1 MiB/s admits 15 records of 64 KiB + key; the other 33 are refused.
        assert_eq!((ok, throttled), (15, 33), "accepted, throttled");
    } else {
        // A slow (debug, loaded) client spread the blast over more than a
        // second: each started second admits at most 16 records.
        let allowed = 16 * elapsed.as_secs_f64().ceil() as usize;
        assert!(
            ok <= allowed && throttled >= 48 - allowed,
            "{ok} accepted in {elapsed:?}"
        );
    }
    let stats = emulator.stats();
    let shard = &stats.streams["t"].shards["shardId-000000000000"];
    assert_eq!(shard.throttled_records, throttled as u64);
    assert!(shard.utilisation > 0.9, "{shard:?}");

    // PutRecord is refused as a whole with a 400 of the same type.
    let e = client
        .put_record()
        .stream_name("t")
        .partition_key("k")
        .data(blob(vec![0; 64 * KIB]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        error_code(&e).as_deref(),
        Some("ProvisionedThroughputExceededException")
    );
    assert!(error_message(&e).contains("Rate exceeded for shard"));
}

/// Sends `record_bytes`-sized records (data + key), four per request, ten
/// requests per second, for `seconds`; returns (records sent, throttled).
async fn paced(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    record_bytes: usize,
    seconds: u32,
) -> (usize, usize) {
    let started = tokio::time::Instant::now();
    let (mut sent, mut throttled) = (0, 0);
    for tick in 0..seconds * 10 {
        tokio::time::sleep_until(started + Duration::from_millis(100) * tick).await;
        // Keys are "k0".."k3": two bytes of the record's size.
        let out = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(batch(4, record_bytes - 2)))
            .send()
            .await
            .unwrap();
        sent += out.records().len();
        throttled += out.failed_record_count().unwrap_or(0) as usize;
    }
    (sent, throttled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mib_per_second_sustained_is_not_throttled() {
    let emulator = Emulator::start(
        EmulatorConfig::default()
            .with_stream("s", 1)
            .with_stream("u", 1),
    )
    .await
    .unwrap();
    let client = kinesis(&emulator.endpoint());
    client.list_streams().send().await.unwrap(); // connect before timing

    // At 90% of the quota (900 KiB/s) timing jitter of up to a tick
    // (100 ms) still fits in the rolling window: nothing is throttled.
    let (sent, throttled) = paced(&client, "u", 90 * KIB / 4, 3).await;
    assert_eq!(throttled, 0, "{throttled} of {sent} throttled at 90%");

    // At the quota itself (1,024 KiB/s), a request that is served a little
    // earlier than the one a second before it finds the window full, so a
    // few records are throttled, as a real shard would do too; allow 10%.
    let (sent, throttled) = paced(&client, "s", 1024 * KIB / 40, 3).await;
    assert!(
        throttled * 10 <= sent,
        "{throttled} of {sent} throttled at 100%"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_per_second_limit_and_runtime_changes() {
    let emulator = Emulator::start(EmulatorConfig::default().with_stream("r", 1))
        .await
        .unwrap();
    let client = kinesis(&emulator.endpoint());
    let (mut ok, mut throttled) = (0, 0);
    for _ in 0..3 {
        let out = client
            .put_records()
            .stream_name("r")
            .set_records(Some(batch(500, 10)))
            .send()
            .await
            .unwrap();
        throttled += out.failed_record_count().unwrap() as usize;
        ok += out.records().len() - out.failed_record_count().unwrap() as usize;
    }
    assert_eq!((ok, throttled), (1000, 500));

    // Limits off at runtime: everything passes.
    emulator.set_shard_limits(None);
    let out = client
        .put_records()
        .stream_name("r")
        .set_records(Some(batch(500, 10)))
        .send()
        .await
        .unwrap();
    assert_eq!(out.failed_record_count(), Some(0));

    // A custom limit, set through the admin endpoint.
    emulator.set_shard_limits(Some(ShardLimits {
        bytes_per_second: u64::MAX,
        records_per_second: 10,
    }));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let out = client
        .put_records()
        .stream_name("r")
        .set_records(Some(batch(20, 10)))
        .send()
        .await
        .unwrap();
    assert_eq!(out.failed_record_count(), Some(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firehose_quotas_answer_service_unavailable() {
    use aws_sdk_firehose::primitives::Blob;
    use aws_sdk_firehose::types::Record;

    let mut config = EmulatorConfig::default().with_delivery_stream("f");
    config.firehose_limits = Some(FirehoseLimits {
        records_per_second: 100,
        bytes_per_second: u64::MAX,
        requests_per_second: 3,
    });
    let emulator = Emulator::start(config).await.unwrap();
    let client = common::firehose(&emulator.endpoint());
    let records: Vec<_> = (0..150)
        .map(|i| {
            Record::builder()
                .data(Blob::new(format!("{i}")))
                .build()
                .unwrap()
        })
        .collect();
    let out = client
        .put_record_batch()
        .delivery_stream_name("f")
        .set_records(Some(records))
        .send()
        .await
        .unwrap();
    assert_eq!(out.failed_put_count(), 50);
    let failed = out
        .request_responses()
        .iter()
        .filter(|r| r.error_code() == Some("ServiceUnavailableException"))
        .count();
    assert_eq!(failed, 50);
    // Records quota used up: PutRecord is refused whole.
    let e = client
        .put_record()
        .delivery_stream_name("f")
        .record(Record::builder().data(Blob::new("x")).build().unwrap())
        .send()
        .await
        .unwrap_err();
    assert!(e.into_service_error().is_service_unavailable_exception());
    // Requests quota (3/s): the fourth request in the second is refused whole.
    for _ in 0..2 {
        let e = client
            .put_record()
            .delivery_stream_name("f")
            .record(Record::builder().data(Blob::new("x")).build().unwrap())
            .send()
            .await
            .unwrap_err();
        assert!(e.into_service_error().is_service_unavailable_exception());
    }
    let stats = emulator.stats();
    assert_eq!(stats.delivery_streams["f"].accepted_records, 100);
    assert_eq!(stats.delivery_streams["f"].throttled_requests, 1);
}
