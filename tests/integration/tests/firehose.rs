//! The Firehose producer end to end: against moto (records land in its S3
//! and are read back with boto3) and against the emulator (throttling and
//! injected failures).

use std::collections::HashMap;
use std::time::Duration;

use shardline::{Error, FailureKind, Producer, UserRecord};
use shardline_emulator::{Emulator, EmulatorConfig, Faults, FirehoseLimits};
use shardline_integration::{
    Moto, create_bucket, create_s3_delivery_stream, firehose_client, local_config, s3_objects,
    send_from_threads,
};

/// `count` JSON click events, one per line once framed.
fn click_events(count: usize) -> Vec<UserRecord> {
    (0..count)
        .map(|i| {
            let event = format!(
                "{{\"user_id\":\"user-{}\",\"event\":\"interest_service_click\",\"interest_id\":{},\"index\":{i}}}",
                i % 97,
                1200 + i % 13
            );
            UserRecord::new(format!("user-{}", i % 97), event)
        })
        .collect()
}

fn index_of(line: &[u8]) -> usize {
    let text = std::str::from_utf8(line).expect("utf-8 line");
    let at = text.find("\"index\":").expect("index field") + 8;
    text[at..text.len() - 1].parse().expect("index number")
}

fn moto_stream(name: &str) -> Moto_ {
    let server = Moto::start();
    create_bucket(&server.endpoint, "sink");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = firehose_client(&server.endpoint).await;
        create_s3_delivery_stream(&client, name, "sink").await;
    });
    Moto_ { server }
}

struct Moto_ {
    server: shardline_integration::LocalServer,
}

/// Sends click events to moto and checks that S3 holds each exactly once,
/// in send order within each object (one object per PutRecordBatch).
fn round_trip_through_moto(
    configure: impl FnOnce(shardline::Config) -> shardline::Config,
) -> usize {
    let moto = moto_stream("clicks");
    let config = configure(local_config(&moto.server.endpoint));
    let producer = Producer::firehose(config).unwrap();
    let events = click_events(3_000);
    let sent: Vec<Vec<u8>> = events.iter().map(|r| r.data().to_vec()).collect();
    // One sending thread, so send order is index order.
    let results = send_from_threads(&producer, "clicks", events, 1);
    assert!(results.iter().all(|r| r.is_ok()), "every event delivered");
    for report in results.iter().flatten() {
        assert_eq!(report.shard_id, None);
        assert!(!report.sequence_number.is_empty(), "Firehose record id");
    }
    producer.close_blocking(None).unwrap();

    let objects = s3_objects(&moto.server.endpoint, "sink");
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    for (key, data) in &objects {
        assert!(key.starts_with("out/"), "{key}");
        assert!(data.ends_with(b"\n"), "every record is newline-framed");
        let lines: Vec<&[u8]> = data
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let indexes: Vec<usize> = lines.iter().map(|l| index_of(l)).collect();
        assert!(
            indexes.windows(2).all(|w| w[0] < w[1]),
            "in order within {key}"
        );
        for line in lines {
            *seen.entry(line.to_vec()).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), sent.len(), "every event is in S3");
    for event in &sent {
        assert_eq!(
            seen.get(event),
            Some(&1),
            "exactly once: {}",
            String::from_utf8_lossy(event)
        );
    }
    objects.len()
}

#[test]
fn events_land_in_s3_once_and_in_order() {
    let objects =
        round_trip_through_moto(|c| c.firehose_framing(shardline::FirehoseFraming::Newline));
    assert!(
        objects >= 6,
        "3,000 records need at least 6 PutRecordBatch calls, got {objects}"
    );
}

#[test]
fn packing_small_records_cuts_firehose_records() {
    let moto = moto_stream("packed");
    let producer =
        Producer::firehose(local_config(&moto.server.endpoint).firehose_pack_max_size(4_096))
            .unwrap();
    let events = click_events(2_000);
    let total: usize = events.iter().map(|e| e.data().len() + 1).sum();
    let results = send_from_threads(&producer, "packed", events, 1);
    assert!(results.iter().all(|r| r.is_ok()));
    assert!(
        results.iter().flatten().any(|r| r.aggregated),
        "records were packed"
    );
    let metrics = producer.metrics();
    assert_eq!(metrics.totals.user_records_put, 2_000);
    // ~100-byte lines in 4 KiB Firehose records: far fewer service records.
    assert!(
        (metrics.totals.kinesis_records_put as usize) <= total / 3_000 + 20,
        "{} Firehose records for {total} bytes",
        metrics.totals.kinesis_records_put
    );
    producer.close_blocking(None).unwrap();
    let lines: usize = s3_objects(&moto.server.endpoint, "sink")
        .iter()
        .map(|(_, d)| d.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count())
        .sum();
    assert_eq!(lines, 2_000);
}

#[test]
fn throttling_and_injected_failures_lose_and_duplicate_nothing() {
    let faults = Faults {
        record_failure_probability: 0.1,
        service_unavailable_probability: 0.05,
        internal_error_probability: 0.05,
        seed: Some(11),
        ..Faults::default()
    };
    let limits = FirehoseLimits {
        records_per_second: 2_000,
        bytes_per_second: 1024 * 1024,
        requests_per_second: 20,
    };
    let emulator = Emulator::start_in_background(EmulatorConfig {
        firehose_limits: Some(limits),
        ..EmulatorConfig::default()
            .with_delivery_stream("fh")
            .with_faults(faults)
    })
    .unwrap();
    let config = local_config(&emulator.endpoint())
        .firehose_framing(shardline::FirehoseFraming::Newline)
        // Deliberately above the emulator's quota, so it throttles.
        .firehose_records_per_second(4_000)
        .firehose_requests_per_second(40)
        .min_backoff(Duration::from_millis(10))
        .max_backoff(Duration::from_millis(200));
    let producer = Producer::firehose(config).unwrap();
    let events = click_events(5_000);
    let sent: Vec<Vec<u8>> = events
        .iter()
        .map(|r| [r.data().as_ref(), b"\n"].concat())
        .collect();
    let results = send_from_threads(&producer, "fh", events, 2);
    assert!(results.iter().all(|r| r.is_ok()), "every event delivered");
    let delivered = emulator.delivered("fh");
    let mut seen: HashMap<&[u8], usize> = HashMap::new();
    for record in &delivered {
        *seen.entry(record.as_ref()).or_default() += 1;
    }
    for event in &sent {
        assert_eq!(seen.get(event.as_slice()), Some(&1), "exactly once");
    }
    assert_eq!(delivered.len(), sent.len());
    let metrics = producer.metrics();
    assert!(
        metrics.totals.throttled > 0,
        "the emulator throttled: {}",
        metrics.to_json()
    );
    assert!(
        metrics.totals.all_errors > metrics.totals.throttled,
        "and failed records"
    );
    producer.close_blocking(None).unwrap();
}

#[test]
fn oversized_records_and_unknown_streams_fail_clearly() {
    let emulator =
        Emulator::start_in_background(EmulatorConfig::default().with_delivery_stream("fh"))
            .unwrap();
    let producer = Producer::firehose(local_config(&emulator.endpoint())).unwrap();
    let too_big = producer
        .try_send("fh", UserRecord::new("k", vec![b'x'; 1000 * 1024 + 1]))
        .unwrap_err();
    assert_eq!(
        too_big.error,
        Error::RecordTooLarge {
            size: 1000 * 1024 + 1,
            limit: 1000 * 1024
        }
    );
    assert_eq!(
        emulator.stats().requests.total,
        0,
        "rejected before any I/O"
    );
    let fits = producer
        .send_blocking("fh", UserRecord::new("k", vec![b'x'; 1000 * 1024]), None)
        .unwrap();
    fits.wait().expect("a record at the limit is delivered");
    let err = producer
        .send_blocking("no-such-delivery-stream", UserRecord::new("k", "x"), None)
        .unwrap()
        .wait()
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::Rejected);
    assert_eq!(err.code.as_deref(), Some("ResourceNotFoundException"));
    producer.close_blocking(None).unwrap();
}
