//! The Kinesis producer end to end against the project's emulator: the only
//! local server that throttles and injects faults.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shardline::{DeliveryHandler, DeliveryResult, Error, FailureKind, Producer, UserRecord};
use shardline_emulator::{Emulator, EmulatorConfig, Faults, Stall};
use shardline_integration::{
    consumer_view, kinesis_client, local_config, multiset, send_from_threads, workload,
};

/// Delivers one record, so the stream's shard map is loaded before a test
/// injects a fault, and waits until its buffer room is given back.
fn warm_up(producer: &Producer, stream: &str) {
    producer
        .send_blocking(stream, UserRecord::new("k", "warm-up"), None)
        .unwrap()
        .wait()
        .unwrap();
    producer
        .flush_blocking(Some(Duration::from_secs(10)))
        .unwrap();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Sends `records`, checks every completion succeeded, then reads the
/// stream back as a KCL consumer would and checks that every record is
/// there. Returns how many copies a consumer would drop as misrouted.
fn deliver_and_verify(
    emulator: &Emulator,
    producer: &Producer,
    stream: &str,
    records: Vec<UserRecord>,
    threads: usize,
) -> usize {
    let expected = multiset(records.iter().map(|r| (r.partition_key(), &r.data()[..])));
    let results = send_from_threads(producer, stream, records, threads);
    let failures: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} failures, first: {}",
        failures.len(),
        failures[0]
    );
    for report in results.iter().flatten() {
        assert!(report.shard_id.is_some());
        assert!(!report.sequence_number.is_empty());
        assert!(report.attempts.last().is_some_and(|a| a.is_success()));
    }
    assert_read_back(emulator, stream, &expected)
}

/// Reads `stream` back as a KCL consumer would and checks that every
/// expected record is there (at least once: with no faults, exactly once).
/// Returns how many copies a consumer would drop as misrouted.
fn assert_read_back(
    emulator: &Emulator,
    stream: &str,
    expected: &HashMap<(String, Vec<u8>), usize>,
) -> usize {
    runtime().block_on(async {
        let client = kinesis_client(&emulator.endpoint()).await;
        let (read, dropped) = consumer_view(&client, stream).await;
        let got = multiset(read.iter().map(|r| (r.partition_key.as_str(), &r.data[..])));
        for (key, count) in expected {
            let n = got.get(key).copied().unwrap_or(0);
            assert!(n >= *count, "record {:?} missing ({n} of {count})", key.0);
        }
        dropped
    })
}

/// An emulator without quotas whose one stream injects `faults`.
fn faulty_emulator(stream: &str, shards: u32, faults: Faults) -> Emulator {
    Emulator::start_in_background(
        EmulatorConfig::default()
            .without_limits()
            .with_stream(stream, shards)
            .with_faults(faults),
    )
    .unwrap()
}

#[test]
fn hundred_thousand_records_arrive_exactly_once_on_their_shards() {
    let emulator = Emulator::start_in_background(
        EmulatorConfig::default()
            .without_limits()
            .with_stream("events", 4),
    )
    .unwrap();
    let producer = Producer::new(local_config(&emulator.endpoint())).unwrap();
    let records = workload(100_000, 1_000, 100);
    let expected = multiset(records.iter().map(|r| (r.partition_key(), &r.data()[..])));
    let misrouted = deliver_and_verify(&emulator, &producer, "events", records, 4);
    assert_eq!(misrouted, 0, "a stable shard map misroutes nothing");
    // Exactly once: nothing was retried, so nothing is duplicated.
    let stored: usize = emulator
        .records("events")
        .iter()
        .map(|r| {
            shardline::aggregation::deaggregate(
                &r.partition_key,
                r.explicit_hash_key.as_deref(),
                &r.data,
            )
            .unwrap()
            .len()
        })
        .sum();
    assert_eq!(stored, expected.values().sum::<usize>());
    let metrics = producer.metrics();
    assert_eq!(metrics.totals.user_records_put, 100_000);
    assert!(
        metrics.totals.kinesis_records_put < 10_000,
        "aggregation packs records: {}",
        metrics.totals.kinesis_records_put
    );
    producer.close_blocking(None).unwrap();
}

#[test]
fn large_records_go_alone_and_small_ones_are_aggregated_around_them() {
    let emulator = Emulator::start_in_background(
        EmulatorConfig::default()
            .without_limits()
            .with_stream("mixed", 2),
    )
    .unwrap();
    let producer = Producer::new(local_config(&emulator.endpoint())).unwrap();
    // Every tenth record is over the default 4 KiB
    // `aggregation_max_record_size`; the rest are 100 bytes, on the same
    // keys, so large and small records go to every shard mixed.
    let records: Vec<UserRecord> = (0..3000)
        .map(|i| {
            let size = if i % 10 == 0 { 8192 } else { 100 };
            UserRecord::new(format!("pk-{}", i % 50), vec![b'a' + (i % 26) as u8; size])
        })
        .collect();
    assert_eq!(
        deliver_and_verify(&emulator, &producer, "mixed", records, 2),
        0
    );
    let stored = emulator.records("mixed");
    let (aggregates, plain): (Vec<_>, Vec<_>) = stored
        .iter()
        .partition(|r| r.data.starts_with(&shardline::aggregation::MAGIC));
    assert_eq!(plain.len(), 300, "each large record is a Kinesis record");
    assert!(plain.iter().all(|r| r.data.len() == 8192));
    let small_in_aggregates: usize = aggregates
        .iter()
        .map(|r| {
            let users = shardline::aggregation::deaggregate(
                &r.partition_key,
                r.explicit_hash_key.as_deref(),
                &r.data,
            )
            .unwrap();
            assert!(users.iter().all(|u| u.data.len() == 100));
            users.len()
        })
        .sum();
    assert_eq!(small_in_aggregates, 2700);
    // Had each large record sealed its shard's aggregate, there would be
    // about as many aggregates as large records.
    assert!(
        aggregates.len() < 150,
        "a large record cuts no aggregate short: {} aggregates",
        aggregates.len()
    );
    producer.close_blocking(None).unwrap();
}

#[test]
fn records_with_explicit_hash_keys_go_to_the_owning_shard() {
    let emulator = Emulator::start_in_background(
        EmulatorConfig::default()
            .without_limits()
            .with_stream("ehk", 3),
    )
    .unwrap();
    let producer = Producer::new(local_config(&emulator.endpoint())).unwrap();
    let keys = [
        0u128,
        1,
        u128::MAX / 3,
        u128::MAX / 2,
        u128::MAX - 1,
        u128::MAX,
    ];
    let records: Vec<UserRecord> = (0..3000)
        .map(|i| {
            UserRecord::new(format!("pk-{i}"), format!("d{i}"))
                .with_explicit_hash_key(keys[i % keys.len()])
        })
        .collect();
    assert_eq!(
        deliver_and_verify(&emulator, &producer, "ehk", records, 2),
        0
    );
    producer.close_blocking(None).unwrap();
}

#[test]
fn aggregation_off_still_rate_limits() {
    // KPL #127: with aggregation off the KPL does not limit at all.
    let emulator =
        Emulator::start_in_background(EmulatorConfig::default().with_stream("plain", 1)).unwrap();
    let config = local_config(&emulator.endpoint()).aggregation_enabled(false);
    let producer = Producer::new(config).unwrap();
    let started = Instant::now();
    deliver_and_verify(&emulator, &producer, "plain", workload(2_500, 50, 100), 2);
    let elapsed = started.elapsed();
    let stats = emulator.stats();
    let stream = &stats.streams["plain"];
    // 2,500 records at 1,000 records/s take at least ~1.5 s after the burst.
    assert!(elapsed >= Duration::from_millis(1_300), "{elapsed:?}");
    assert!(
        stream.throttled_records * 20 <= stream.accepted_records,
        "throttled {} of {}",
        stream.throttled_records,
        stream.accepted_records
    );
    producer.close_blocking(None).unwrap();
}

#[test]
fn sustained_overload_is_paced_near_capacity_with_few_throttles() {
    let emulator =
        Emulator::start_in_background(EmulatorConfig::default().with_stream("busy", 1)).unwrap();
    let producer = Producer::new(local_config(&emulator.endpoint())).unwrap();
    // 9 MiB into a 1 MiB/s shard: about 9 s of pacing. The rate is judged
    // on the middle of the run (seconds 2 to 7), where the producer is
    // past its start and still has plenty queued: the shard's own rolling
    // one-second window, sampled every 100 ms. The median is the verdict,
    // so a stall of a second (a loaded machine) moves a few samples only.
    let records = workload(9 * 1024, 64, 1024);
    let stream = || emulator.stats().streams["busy"].clone();
    let ((samples, mean), accepted, throttled, results) = std::thread::scope(|s| {
        let sender = s.spawn(|| send_from_threads(&producer, "busy", records, 2));
        std::thread::sleep(Duration::from_secs(2));
        let (from, at) = (stream(), Instant::now());
        let mut samples = Vec::new();
        while at.elapsed() < Duration::from_secs(5) {
            samples.push(stream().shards["shardId-000000000000"].window_bytes);
            std::thread::sleep(Duration::from_millis(100));
        }
        let to = stream();
        let mean = (to.accepted_bytes - from.accepted_bytes) as f64 / at.elapsed().as_secs_f64();
        (
            (samples, mean),
            to.accepted_records - from.accepted_records,
            to.throttled_records - from.throttled_records,
            sender.join().unwrap(),
        )
    });
    assert!(results.iter().all(|r| r.is_ok()), "every record delivered");
    let mut sorted = samples.clone();
    sorted.sort_unstable();
    let median = sorted[sorted.len() / 2] as f64 / (1024.0 * 1024.0);
    // The emulator never admits more than the quota in any second; a few
    // percent below it is the limiter's margin for timing jitter.
    assert!(
        (0.85..=1.0).contains(&median),
        "median {median:.3} of 1 MiB/s in the steady window; samples {samples:?}"
    );
    // And no long idle spells the median could hide: a loose bound on the
    // mean, which a stall of a second or so cannot break.
    let mean = mean / (1024.0 * 1024.0);
    assert!(
        mean >= 0.7,
        "mean {mean:.3} of 1 MiB/s in the steady window"
    );
    assert!(
        throttled * 20 <= accepted,
        "throttled {throttled} of {accepted} Kinesis records in the steady window"
    );
    producer.close_blocking(None).unwrap();
}

#[test]
fn two_producers_on_one_shard_both_get_through() {
    let emulator =
        Emulator::start_in_background(EmulatorConfig::default().with_stream("shared", 1)).unwrap();
    let a = Producer::new(local_config(&emulator.endpoint())).unwrap();
    let b = Producer::new(local_config(&emulator.endpoint())).unwrap();
    let started = Instant::now();
    std::thread::scope(|s| {
        let ta = s.spawn(|| send_from_threads(&a, "shared", workload(2 * 1024, 32, 1024), 1));
        let tb = s.spawn(|| send_from_threads(&b, "shared", workload(2 * 1024, 32, 1024), 1));
        for results in [ta.join().unwrap(), tb.join().unwrap()] {
            assert!(results.iter().all(|r| r.is_ok()), "a producer lost records");
        }
    });
    let elapsed = started.elapsed();
    // 4 MiB through a 1 MiB/s shard; neither producer starved the other
    // into failing, and together they did not take far longer than the
    // shard needs.
    assert!(elapsed < Duration::from_secs(12), "{elapsed:?}");
    a.close_blocking(None).unwrap();
    b.close_blocking(None).unwrap();
}

#[test]
fn injected_faults_lose_nothing() {
    let faults = Faults {
        record_failure_probability: 0.1,
        internal_error_probability: 0.05,
        service_unavailable_probability: 0.05,
        drop_connection_probability: 0.03,
        seed: Some(7),
        ..Faults::default()
    };
    let emulator = faulty_emulator("faulty", 2, faults);
    let config = local_config(&emulator.endpoint())
        .min_backoff(Duration::from_millis(10))
        .max_backoff(Duration::from_millis(200))
        .request_timeout(Duration::from_secs(2));
    let producer = Producer::new(config).unwrap();
    deliver_and_verify(
        &emulator,
        &producer,
        "faulty",
        workload(20_000, 200, 100),
        2,
    );
    let metrics = producer.metrics();
    assert!(
        metrics.totals.all_errors > 0,
        "faults were injected and seen"
    );
    let stats = emulator.stats();
    assert!(stats.requests.injected_internal_errors + stats.requests.injected_unavailable > 0);
    producer.close_blocking(None).unwrap();
}

#[test]
fn a_delivery_handler_gets_every_tag_exactly_once_through_faults() {
    let faults = Faults {
        record_failure_probability: 0.3,
        internal_error_probability: 0.1,
        seed: Some(11),
        ..Faults::default()
    };
    let emulator = faulty_emulator("tagged", 2, faults);
    // Small aggregates: many entries, so the faults surely hit some.
    let config = local_config(&emulator.endpoint())
        .aggregation_max_size(4096)
        .min_backoff(Duration::from_millis(10))
        .max_backoff(Duration::from_millis(100));
    let producer = Producer::new(config).unwrap();
    let results: Arc<Mutex<Vec<(u64, DeliveryResult)>>> = Arc::default();
    let seen = results.clone();
    let handler: Arc<dyn DeliveryHandler> = Arc::new(move |tag: u64, result| {
        // A panicking handler is contained; the others still arrive.
        assert_ne!(tag, 13, "tag 13 panics on purpose");
        seen.lock().unwrap().push((tag, result));
    });
    let records = workload(5_000, 300, 100);
    let expected = multiset(records.iter().map(|r| (r.partition_key(), &r.data()[..])));
    for (tag, record) in records.into_iter().enumerate() {
        let tag = tag as u64;
        if tag.is_multiple_of(2) {
            producer.send_blocking_with_handler("tagged", record, None, &handler, tag)
        } else {
            producer.try_send_with_handler("tagged", record, &handler, tag)
        }
        .unwrap();
    }
    // Refused at the door: the handler never hears of it.
    let refused = producer
        .try_send_with_handler("tagged", UserRecord::new("", "no key"), &handler, 99_999)
        .unwrap_err();
    assert!(
        matches!(refused.error, Error::EmptyPartitionKey),
        "{}",
        refused.error
    );
    producer
        .flush_blocking(Some(Duration::from_secs(60)))
        .unwrap();

    let results = std::mem::take(&mut *results.lock().unwrap());
    let mut by_tag: HashMap<u64, usize> = HashMap::new();
    for (tag, _) in &results {
        *by_tag.entry(*tag).or_default() += 1;
    }
    assert_eq!(results.len(), 4_999, "every tag but the panicking one");
    assert!(by_tag.values().all(|&n| n == 1), "a tag completed twice");
    assert!(
        (0..5_000)
            .filter(|&t| t != 13)
            .all(|t| by_tag.contains_key(&t))
    );
    // Records of one aggregate share one report's strings and history.
    let mut shared = 0;
    let mut by_sequence: HashMap<&str, &shardline::DeliveryReport> = HashMap::new();
    for (_, result) in &results {
        let report = result.as_ref().expect("faults are retried until stored");
        assert!(report.attempts.last().is_some_and(|a| a.is_success()));
        if let Some(first) = by_sequence.insert(&report.sequence_number, report) {
            assert!(Arc::ptr_eq(&first.sequence_number, &report.sequence_number));
            assert!(std::ptr::eq(
                first.attempts.as_ptr(),
                report.attempts.as_ptr()
            ));
            shared += 1;
        }
    }
    assert!(shared > 0, "records were aggregated");
    assert!(
        producer.metrics().totals.all_errors > 0,
        "faults were injected and seen"
    );

    assert_read_back(&emulator, "tagged", &expected);
    producer.close_blocking(None).unwrap();
}

#[test]
fn a_stalled_endpoint_expires_records_with_their_attempts() {
    let faults = Faults {
        stall: Some(Stall::UntilCleared),
        ..Faults::default()
    };
    let emulator =
        Emulator::start_in_background(EmulatorConfig::default().with_stream("stuck", 1)).unwrap();
    // The TTL leaves room for several 300 ms tries even when the machine is
    // busy with other test binaries (at 1.5 s this failed once under load).
    let config = local_config(&emulator.endpoint())
        .record_ttl(Duration::from_secs(3))
        .request_timeout(Duration::from_millis(300))
        .min_backoff(Duration::from_millis(50))
        .max_backoff(Duration::from_millis(100));
    let producer = Producer::new(config).unwrap();
    // Let the shard map load, then stall the server.
    warm_up(&producer, "stuck");
    emulator.set_faults(faults);
    let started = Instant::now();
    let results = send_from_threads(&producer, "stuck", workload(200, 10, 100), 1);
    for result in &results {
        let err = result.as_ref().expect_err("nothing can be stored");
        assert_eq!(err.kind, FailureKind::Expired, "{err}");
        assert!(
            !err.attempts.is_empty(),
            "expiry carries the attempts: {err:?}"
        );
        assert!(
            err.attempts.iter().all(|a| a.error_code.is_some()),
            "{err:?}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(12));
    // A record is reported just before its room is given back, so right
    // after the last report it may still count for a moment; flush waits
    // for the count to reach zero.
    producer
        .flush_blocking(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(producer.outstanding(), 0);
    emulator.set_faults(Faults::default());
    producer.close_blocking(None).unwrap();
}

#[test]
fn a_full_buffer_refuses_then_recovers() {
    let emulator =
        Emulator::start_in_background(EmulatorConfig::default().with_stream("small", 1)).unwrap();
    let config = local_config(&emulator.endpoint())
        .max_buffered_records(100)
        .request_timeout(Duration::from_secs(5));
    let producer = Producer::new(config).unwrap();
    warm_up(&producer, "small");
    emulator.set_faults(Faults {
        stall: Some(Stall::UntilCleared),
        ..Faults::default()
    });
    let mut accepted = Vec::new();
    let refused = loop {
        match producer.try_send("small", UserRecord::new("k", "x")) {
            Ok(f) => accepted.push(f),
            Err(e) => break e,
        }
        assert!(accepted.len() <= 100, "the record cap holds");
    };
    assert_eq!(refused.error, Error::QueueFull);
    assert_eq!(
        refused.record.data().as_ref(),
        b"x",
        "the record comes back"
    );
    let blocked = producer.send_blocking(
        "small",
        UserRecord::new("k", "y"),
        Some(Duration::from_millis(100)),
    );
    assert!(matches!(blocked, Err(e) if matches!(e.error, Error::Timeout(_))));
    emulator.set_faults(Faults::default());
    for f in accepted {
        f.wait().expect("delivered once the endpoint answers");
    }
    // A record's room is given back after its completion is delivered
    // (once per aggregate), so the last future can resolve a moment before
    // the room is free: wait for it rather than race it.
    let after = producer
        .send_blocking(
            "small",
            UserRecord::new("k", "after"),
            Some(Duration::from_secs(5)),
        )
        .expect("room again");
    producer
        .flush_blocking(Some(Duration::from_secs(10)))
        .unwrap();
    after.wait().expect("delivered by the flush");
    producer.close_blocking(None).unwrap();
}

#[test]
fn bad_input_is_refused_with_a_specific_error() {
    let emulator =
        Emulator::start_in_background(EmulatorConfig::default().with_stream("s", 1)).unwrap();
    let producer = Producer::new(local_config(&emulator.endpoint())).unwrap();
    let refuse =
        |stream: &str, r: UserRecord| producer.try_send(stream, r).expect_err("refused").error;
    assert_eq!(
        refuse("s", UserRecord::new("", "x")),
        Error::EmptyPartitionKey
    );
    assert_eq!(
        refuse("s", UserRecord::new("k".repeat(257), "x")),
        Error::PartitionKeyTooLong { chars: 257 }
    );
    assert!(matches!(
        refuse("s", UserRecord::new("k", vec![0u8; 1024 * 1024])),
        Error::RecordTooLarge { .. }
    ));
    assert!(matches!(
        refuse("", UserRecord::new("k", "x")),
        Error::InvalidStreamName { .. }
    ));
    assert!(matches!(
        refuse("bad name!", UserRecord::new("k", "x")),
        Error::InvalidStreamName { .. }
    ));
    assert!(matches!(
        UserRecord::new("k", "x").with_explicit_hash_key_str("-5"),
        Err(Error::InvalidExplicitHashKey { .. })
    ));
    // Nothing refused was counted as outstanding.
    assert_eq!(producer.outstanding(), 0);

    // An unknown stream fails each record with the service's reason.
    let err = producer
        .send_blocking("no-such-stream", UserRecord::new("k", "x"), None)
        .unwrap()
        .wait()
        .expect_err("unknown stream");
    assert_eq!(err.kind, FailureKind::Rejected);
    assert_eq!(err.code.as_deref(), Some("ResourceNotFoundException"));

    // A bad config value names its key.
    let mut config = local_config(&emulator.endpoint());
    let e = config.set("rate_limit", "fast").unwrap_err();
    assert!(e.to_string().contains("rate_limit"));
    producer.close_blocking(None).unwrap();
}

#[test]
fn expired_credentials_are_retried_then_fail_with_the_code() {
    let faults = Faults {
        expired_access_key_ids: vec![shardline_integration::TEST_ACCESS_KEY_ID.to_owned()],
        ..Faults::default()
    };
    let emulator =
        Emulator::start_in_background(EmulatorConfig::default().with_stream("creds", 1)).unwrap();
    // A TTL long enough for several round trips even on a stalled machine
    // (800 ms once was not: the record expired after one attempt).
    let config = local_config(&emulator.endpoint())
        .record_ttl(Duration::from_secs(4))
        .min_backoff(Duration::from_millis(20))
        .max_backoff(Duration::from_millis(50));
    let producer = Producer::new(config).unwrap();
    warm_up(&producer, "creds");
    emulator.set_faults(faults);
    let err = producer
        .send_blocking("creds", UserRecord::new("k", "x"), None)
        .unwrap()
        .wait()
        .expect_err("credentials are refused");
    assert_eq!(err.kind, FailureKind::Expired);
    assert_eq!(err.code.as_deref(), Some("ExpiredTokenException"));
    assert!(err.attempts.len() > 1, "retried within the TTL");
    emulator.set_faults(Faults::default());
    producer.close_blocking(None).unwrap();
}

#[test]
fn resharding_while_producing_loses_and_misroutes_nothing() {
    let emulator = Emulator::start_in_background(
        EmulatorConfig::default()
            .without_limits()
            .with_stream("grow", 2),
    )
    .unwrap();
    let config =
        local_config(&emulator.endpoint()).shard_map_refresh_interval(Duration::from_millis(200));
    let producer = Producer::new(config).unwrap();
    let endpoint = emulator.endpoint();
    let records = workload(60_000, 2_000, 50);
    let expected = multiset(records.iter().map(|r| (r.partition_key(), &r.data()[..])));
    let results = std::thread::scope(|s| {
        let sender = s.spawn(|| send_from_threads(&producer, "grow", records, 2));
        std::thread::sleep(Duration::from_millis(150));
        runtime().block_on(async {
            let client = kinesis_client(&endpoint).await;
            client
                .update_shard_count()
                .stream_name("grow")
                .target_shard_count(4)
                .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
                .send()
                .await
                .expect("UpdateShardCount");
        });
        sender.join().unwrap()
    });
    assert!(results.iter().all(|r| r.is_ok()));
    runtime().block_on(async {
        let client = kinesis_client(&endpoint).await;
        // Aggregates sent with the old map that landed on a child shard
        // hold records the child does not own: the consumer drops those
        // copies, and the producer re-sent them to their owners.
        let (read, _dropped) = consumer_view(&client, "grow").await;
        let got = multiset(read.iter().map(|r| (r.partition_key.as_str(), &r.data[..])));
        for (key, count) in &expected {
            assert!(
                got.get(key).copied().unwrap_or(0) >= *count,
                "lost {:?}",
                key.0
            );
        }
    });
    assert!(producer.metrics().totals.shard_map_refreshes >= 2);
    producer.close_blocking(None).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_callers_on_their_own_runtime() {
    let emulator = Emulator::start_in_background(
        EmulatorConfig::default()
            .without_limits()
            .with_stream("async", 2),
    )
    .unwrap();
    let producer = Producer::with_runtime(
        local_config(&emulator.endpoint()),
        shardline::Service::Kinesis,
        tokio::runtime::Handle::current(),
    )
    .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..8 {
        let producer = producer.clone();
        tasks.spawn(async move {
            let mut deliveries = Vec::new();
            for i in 0..500 {
                let record = UserRecord::new(format!("k{task}-{i}"), format!("t{task}-{i}"));
                deliveries.push(producer.send("async", record).await.expect("accepted"));
            }
            for d in deliveries {
                d.await.expect("delivered");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    producer.flush(Some(Duration::from_secs(10))).await.unwrap();
    assert_eq!(producer.metrics().totals.user_records_put, 4_000);
    producer.close(None).await.unwrap();
    assert!(producer.is_closed());
    let refused = producer
        .send("async", UserRecord::new("k", "late"))
        .await
        .unwrap_err();
    assert_eq!(refused.error, Error::Closed);
}

#[test]
fn close_is_bounded_by_its_timeout_with_requests_in_flight() {
    let emulator =
        Emulator::start_in_background(EmulatorConfig::default().with_stream("slow", 1)).unwrap();
    let config = local_config(&emulator.endpoint()).request_timeout(Duration::from_secs(60));
    let producer = Producer::new(config).unwrap();
    warm_up(&producer, "slow");
    emulator.set_faults(Faults {
        stall: Some(Stall::UntilCleared),
        ..Faults::default()
    });
    let pending: Vec<_> = (0..50)
        .map(|i| {
            producer
                .try_send("slow", UserRecord::new("k", format!("r{i}")))
                .unwrap()
        })
        .collect();
    let started = Instant::now();
    assert!(
        producer
            .close_blocking(Some(Duration::from_millis(500)))
            .is_err(),
        "not all delivered"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "close took {:?}",
        started.elapsed()
    );
    for p in pending {
        let err = p.wait().expect_err("the server never answered");
        assert_eq!(err.kind, FailureKind::Closed, "{err}");
    }
    emulator.set_faults(Faults::default());
}
