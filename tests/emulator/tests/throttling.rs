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

/// One PutRecords of `records` records of `size` data bytes to `stream`.
async fn put_batch(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    records: usize,
    size: usize,
) -> aws_sdk_kinesis::operation::put_records::PutRecordsOutput {
    client
        .put_records()
        .stream_name(stream)
        .set_records(Some(batch(records, size)))
        .send()
        .await
        .unwrap()
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
        let out = put_batch(&client, "t", 16, 64 * KIB).await;
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
    // The window itself may have moved on by now on a slow machine; its
    // peak cannot.
    assert!(shard.peak_utilisation > 0.9, "{shard:?}");

    // PutRecord is refused as a whole with a 400 of the same type. A quota
    // smaller than the record refuses it however late it arrives.
    emulator.set_shard_limits(Some(ShardLimits {
        bytes_per_second: 32 * KIB as u64,
        ..ShardLimits::default()
    }));
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

/// Sends `record_bytes`-sized records (data + key), four per request, each
/// request 100 ms after the previous one was answered, `requests` times;
/// returns (records sent, throttled).
///
/// Pacing from the previous answer rather than from a clock tick makes the
/// bound hold however the test is scheduled: two requests are admitted more
/// than 100 ms apart, so any one-second window holds at most ten of them. A
/// late request never catches up by arriving together with the next.
async fn paced(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    record_bytes: usize,
    requests: u32,
) -> (usize, usize) {
    let (mut sent, mut throttled) = (0, 0);
    for _ in 0..requests {
        // Keys are "k0".."k3": two bytes of the record's size.
        let out = put_batch(client, stream, 4, record_bytes - 2).await;
        sent += out.records().len();
        throttled += out.failed_record_count().unwrap_or(0) as usize;
        tokio::time::sleep(Duration::from_millis(100)).await;
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

    // Ten requests a second at most, of 90% and then of 100% of a tenth of
    // the quota: a producer that never exceeds 1 MiB in any second is never
    // refused, even right at the quota (10 x 4 x 26,214 B = 1,048,560 B).
    let (sent, throttled) = paced(&client, "u", 90 * KIB / 4, 30).await;
    assert_eq!(throttled, 0, "{throttled} of {sent} throttled at 90%");
    let (sent, throttled) = paced(&client, "s", 1024 * KIB / 40, 30).await;
    assert_eq!(throttled, 0, "{throttled} of {sent} throttled at 100%");
}

/// Runs `scenario` (which builds its own emulator) until one run takes under
/// 900 ms, and returns that run's result. The exact counts these tests check
/// hold when every request falls in one second of the quota window; a run a
/// loaded machine stretched past that is not evidence either way, so it is
/// run again rather than judged with looser bounds.
async fn within_one_second<T, F: std::future::Future<Output = T>>(
    mut scenario: impl FnMut() -> F,
) -> T {
    for _ in 0..5 {
        let started = Instant::now();
        let out = scenario().await;
        if started.elapsed() < Duration::from_millis(900) {
            return out;
        }
    }
    panic!("five runs each took over 900 ms: the machine is too slow for this test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_per_second_limit_and_runtime_changes() {
    let (emulator, ok, throttled) = within_one_second(|| async {
        let emulator = Emulator::start(EmulatorConfig::default().with_stream("r", 1))
            .await
            .unwrap();
        let client = kinesis(&emulator.endpoint());
        client.list_streams().send().await.unwrap(); // connect first
        let (mut ok, mut throttled) = (0, 0);
        for _ in 0..3 {
            let out = put_batch(&client, "r", 500, 10).await;
            throttled += out.failed_record_count().unwrap() as usize;
            ok += out.records().len() - out.failed_record_count().unwrap() as usize;
        }
        (emulator, ok, throttled)
    })
    .await;
    assert_eq!((ok, throttled), (1000, 500));
    let client = kinesis(&emulator.endpoint());

    // Limits off at runtime: everything passes.
    emulator.set_shard_limits(None);
    let out = put_batch(&client, "r", 500, 10).await;
    assert_eq!(out.failed_record_count(), Some(0));

    // A custom limit, set at runtime; one request, so no timing involved.
    emulator.set_shard_limits(Some(ShardLimits {
        bytes_per_second: u64::MAX,
        records_per_second: 10,
    }));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let out = put_batch(&client, "r", 20, 10).await;
    assert_eq!(out.failed_record_count(), Some(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firehose_quotas_answer_service_unavailable() {
    use aws_sdk_firehose::primitives::Blob;
    use aws_sdk_firehose::types::Record;

    struct Run {
        batch_failed: i32,
        batch_codes: Vec<Option<String>>,
        put_record_refused: Vec<bool>,
        accepted_records: u64,
        throttled_requests: u64,
    }
    let run = within_one_second(|| async {
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
        let mut put_record_refused = Vec::new();
        for _ in 0..3 {
            let e = client
                .put_record()
                .delivery_stream_name("f")
                .record(Record::builder().data(Blob::new("x")).build().unwrap())
                .send()
                .await;
            put_record_refused
                .push(e.is_err_and(|e| e.into_service_error().is_service_unavailable_exception()));
        }
        let stats = emulator.stats();
        Run {
            batch_failed: out.failed_put_count(),
            batch_codes: out
                .request_responses()
                .iter()
                .map(|r| r.error_code().map(str::to_owned))
                .collect(),
            put_record_refused,
            accepted_records: stats.delivery_streams["f"].accepted_records,
            throttled_requests: stats.delivery_streams["f"].throttled_requests,
        }
    })
    .await;
    // 100 records a second: the batch's last 50 are refused.
    assert_eq!(run.batch_failed, 50);
    let unavailable = run
        .batch_codes
        .iter()
        .filter(|c| c.as_deref() == Some("ServiceUnavailableException"))
        .count();
    assert_eq!(unavailable, 50);
    // Records quota used up: PutRecord is refused whole; then the requests
    // quota (3/s) refuses the fourth request of the second whole too.
    assert_eq!(run.put_record_refused, [true, true, true]);
    assert_eq!(run.accepted_records, 100);
    assert_eq!(run.throttled_requests, 1);
}
