//! Issue #10, part 1: one invariant checked across fault scenarios.
//!
//! For every record handed to Shardline (the send was accepted):
//!
//! 1. its callback runs exactly once — callbacks are counted per record
//!    id, so a double completion is caught, not just a missing one;
//! 2. a success names a shard, and the emulator holds the record on that
//!    shard, which owns the record's hash key (a KCL consumer reading that
//!    shard sees it);
//! 3. a failure carries its reason: a kind, an error code, and the
//!    attempts that were made.
//!
//! Each scenario injects one kind of trouble while records are flowing,
//! and states which failures (if any) it allows. Records may be stored
//! more than once after an ambiguous failure (at-least-once); that is
//! allowed and counted, never required.
//!
//! Run: `cargo test -p shardline-integration --test reliability_faults`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardline::aggregation::deaggregate;
use shardline::{Config, DeliveryResult, FailureKind, Producer, UserRecord};
use shardline_emulator::{Emulator, EmulatorConfig, Faults, ShardLimits, StoredRecord};
use shardline_integration::{kinesis_client, list_all_shards, local_config};
use tracking::Tracker;

/// Access key the producers under test sign with; the SDK client the
/// tests use to reshard or delete signs with the default test key, so
/// "expiring" the producer's key leaves the test's own calls working.
const PRODUCER_KEY_ID: &str = "AKIDRELIABILITYPRODUCER";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A producer configuration with short backoffs, so that a scenario's
/// retries fit in seconds.
fn config(endpoint: &str) -> Config {
    local_config(endpoint)
        .static_credentials(PRODUCER_KEY_ID, "reliability-secret", None)
        .min_backoff(Duration::from_millis(20))
        .max_backoff(Duration::from_millis(300))
        .request_timeout(Duration::from_millis(1500))
        .connect_timeout(Duration::from_millis(500))
        .record_max_buffered_time(Duration::from_millis(20))
        .shard_map_refresh_interval(Duration::from_millis(500))
        .record_ttl(Duration::from_secs(30))
}

/// Per-record completion counting, without a lock crate: a mutex around
/// one vector of results per record id.
mod tracking {
    use std::sync::Mutex;

    use shardline::DeliveryResult;

    #[derive(Default)]
    pub(crate) struct Tracker {
        pub(crate) completions: Mutex<Vec<Vec<DeliveryResult>>>,
        pub(crate) accepted: Mutex<Vec<bool>>,
    }

    impl Tracker {
        pub(crate) fn new(n: usize) -> Self {
            Tracker {
                completions: Mutex::new((0..n).map(|_| Vec::new()).collect()),
                accepted: Mutex::new(vec![false; n]),
            }
        }
    }
}

/// The record with id `id`: the id is in the data, so it can be found in
/// the stream again.
fn record(id: usize, keys: usize) -> UserRecord {
    let mut data = format!("rel-{id:08}-").into_bytes();
    data.resize(64, b'x');
    UserRecord::new(format!("key-{}", id % keys), data)
}

fn id_of(data: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(data.get(..13)?).ok()?;
    text.strip_prefix("rel-")?.strip_suffix('-')?.parse().ok()
}

/// Sends records `ids` with callbacks from `threads` threads, spacing the
/// sends out over about `spread` so that faults land mid-stream.
fn send_tracked(
    producer: &Producer,
    stream: &str,
    ids: std::ops::Range<usize>,
    threads: usize,
    spread: Duration,
    tracker: &Arc<Tracker>,
) {
    let per_thread = ids.len().div_ceil(threads);
    let pause = spread / (per_thread.max(1) as u32);
    std::thread::scope(|s| {
        for t in 0..threads {
            let start = ids.start + t * per_thread;
            let end = (start + per_thread).min(ids.end);
            let tracker = tracker.clone();
            s.spawn(move || {
                for id in start..end {
                    let t2 = tracker.clone();
                    let callback = Box::new(move |result: DeliveryResult| {
                        t2.completions.lock().unwrap()[id].push(result);
                    });
                    let sent = producer.send_blocking_with_callback(
                        stream,
                        record(id, 500),
                        Some(Duration::from_secs(30)),
                        callback,
                    );
                    if sent.is_ok() {
                        tracker.accepted.lock().unwrap()[id] = true;
                    }
                    if !pause.is_zero() && id % 50 == 0 {
                        std::thread::sleep(pause * 50);
                    }
                }
            });
        }
    });
}

/// Waits until every accepted record has completed at least once (panics
/// after `limit`), then a little longer so that a second completion would
/// be seen.
fn wait_for_completions(tracker: &Tracker, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let pending = {
            let accepted = tracker.accepted.lock().unwrap();
            let done = tracker.completions.lock().unwrap();
            accepted
                .iter()
                .zip(done.iter())
                .filter(|(a, d)| **a && d.is_empty())
                .count()
        };
        if pending == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} accepted records never completed within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
}

/// Where each record id is stored: (shard id, user record hash key) per
/// copy. Aggregates are opened; a damaged one fails the test.
fn stored_copies(records: &[StoredRecord]) -> HashMap<usize, Vec<(String, u128)>> {
    let mut copies: HashMap<usize, Vec<(String, u128)>> = HashMap::new();
    for stored in records {
        let users = deaggregate(
            &stored.partition_key,
            stored.explicit_hash_key.as_deref(),
            &stored.data,
        )
        .unwrap_or_else(|e| panic!("a record on {} does not deaggregate: {e}", stored.shard_id));
        for user in users {
            let id = id_of(&user.data).expect("every stored record carries an id");
            let hash_key = user.hash_key().expect("valid hash key");
            copies
                .entry(id)
                .or_default()
                .push((stored.shard_id.clone(), hash_key));
        }
    }
    copies
}

/// Every shard's inclusive hash-key range (closed shards included).
fn shard_ranges(endpoint: &str, stream: &str) -> HashMap<String, (u128, u128)> {
    runtime().block_on(async {
        let client = kinesis_client(endpoint).await;
        list_all_shards(&client, stream)
            .await
            .into_iter()
            .map(|s| {
                let r = s.hash_key_range().expect("range");
                (
                    s.shard_id().to_owned(),
                    (
                        r.starting_hash_key().parse().unwrap(),
                        r.ending_hash_key().parse().unwrap(),
                    ),
                )
            })
            .collect()
    })
}

/// What a scenario allows besides success.
struct Allowed {
    /// (kind, code) pairs a failure may have; empty = every record must
    /// be stored.
    failures: &'static [(FailureKind, &'static str)],
}

const ALL_SUCCEED: Allowed = Allowed { failures: &[] };

/// The outcome counts of a checked run, for the scenario's own asserts.
#[derive(Debug, Default)]
struct Outcome {
    accepted: usize,
    succeeded: usize,
    failed: usize,
    duplicated: usize,
    /// Error codes of failed attempts, over every record.
    attempt_codes: HashMap<String, usize>,
}

/// Checks the invariant. `stored` is what the stream holds (or held just
/// before it went away); `ranges` the hash-key range of every shard.
fn check(
    tracker: &Tracker,
    stored: &[StoredRecord],
    ranges: &HashMap<String, (u128, u128)>,
    allowed: &Allowed,
) -> Outcome {
    let copies = stored_copies(stored);
    let accepted = tracker.accepted.lock().unwrap();
    let completions = tracker.completions.lock().unwrap();
    let mut outcome = Outcome::default();
    for (id, results) in completions.iter().enumerate() {
        if !accepted[id] {
            assert!(results.is_empty(), "record {id} was refused yet completed");
            continue;
        }
        outcome.accepted += 1;
        assert_eq!(
            results.len(),
            1,
            "record {id} completed {} times: {results:?}",
            results.len()
        );
        let here = copies.get(&id).map(Vec::as_slice).unwrap_or_default();
        if here.len() > 1 {
            outcome.duplicated += 1;
        }
        let attempts = match &results[0] {
            Ok(report) => &report.attempts,
            Err(error) => &error.attempts,
        };
        for code in attempts.iter().filter_map(|a| a.error_code.as_deref()) {
            *outcome.attempt_codes.entry(code.to_owned()).or_default() += 1;
        }
        match &results[0] {
            Ok(report) => {
                outcome.succeeded += 1;
                let shard = report.shard_id.as_deref().expect("a success names a shard");
                assert!(!report.sequence_number.is_empty());
                assert!(
                    report.attempts.last().is_some_and(|a| a.is_success()),
                    "record {id}: the last attempt is the success"
                );
                let (lo, hi) = ranges
                    .get(shard)
                    .unwrap_or_else(|| panic!("record {id}: reported shard {shard} is unknown"));
                assert!(
                    here.iter()
                        .any(|(s, key)| s == shard && (*lo..=*hi).contains(key)),
                    "record {id} reported stored on {shard}, but the stream holds it on {here:?}"
                );
            }
            Err(error) => {
                outcome.failed += 1;
                let code = error
                    .code
                    .as_deref()
                    .unwrap_or_else(|| panic!("record {id} failed without a code: {error}"));
                assert!(
                    allowed
                        .failures
                        .iter()
                        .any(|(kind, c)| *kind == error.kind && *c == code),
                    "record {id} failed unexpectedly: {error}"
                );
                assert!(!error.message.is_empty());
                if error.kind != FailureKind::Rejected {
                    // A record rejected before it was sent (the stream is
                    // gone from ListShards) has no attempts; every other
                    // failure was tried at least once.
                    assert!(
                        !error.attempts.is_empty(),
                        "record {id} failed without attempts: {error}"
                    );
                }
                for attempt in &error.attempts {
                    assert!(
                        attempt.error_code.is_some(),
                        "a failed record has no success"
                    );
                }
            }
        }
    }
    assert!(outcome.accepted > 0, "the scenario sent nothing");
    outcome
}

/// Runs one scenario against a fresh emulator: `during` runs while records
/// are being sent (from another thread), then every record must complete
/// and the invariant must hold.
fn scenario(
    emulator: &Emulator,
    stream: &str,
    producer_config: Config,
    count: usize,
    spread: Duration,
    during: impl FnOnce() + Send,
    allowed: &Allowed,
) -> Outcome {
    let producer = Producer::new(producer_config).unwrap();
    let tracker = Arc::new(Tracker::new(count));
    std::thread::scope(|s| {
        let sender = s.spawn(|| send_tracked(&producer, stream, 0..count, 2, spread, &tracker));
        during();
        sender.join().unwrap();
    });
    wait_for_completions(&tracker, Duration::from_secs(60));
    producer
        .close_blocking(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(producer.outstanding(), 0);
    let ranges = shard_ranges(&emulator.endpoint(), stream);
    check(&tracker, &emulator.records(stream), &ranges, allowed)
}

fn emulator(stream: &str, shards: u32) -> Emulator {
    Emulator::start_in_background(
        EmulatorConfig::default()
            .without_limits()
            .with_stream(stream, shards),
    )
    .unwrap()
}

#[test]
fn throttling_storm() {
    // A shard quota far below the offered load: most puts are throttled
    // for seconds, then the quota comes back.
    let emulator = emulator("s", 2);
    emulator.set_shard_limits(Some(ShardLimits {
        bytes_per_second: 20 * 1024,
        records_per_second: 20,
    }));
    let config = config(&emulator.endpoint())
        .aggregation_max_size(4 * 1024)
        .rate_limit_percent(1_000);
    let outcome = scenario(
        &emulator,
        "s",
        config,
        6_000,
        Duration::from_secs(1),
        || {
            std::thread::sleep(Duration::from_secs(3));
            emulator.set_shard_limits(None);
        },
        &ALL_SUCCEED,
    );
    assert_eq!(outcome.succeeded, 6_000);
    assert!(emulator.stats().streams["s"].throttled_records > 0);
}

#[test]
fn per_record_internal_failures() {
    let emulator = emulator("s", 2);
    emulator.set_faults(Faults {
        record_failure_probability: 0.3,
        seed: Some(11),
        ..Faults::default()
    });
    let outcome = scenario(
        &emulator,
        "s",
        config(&emulator.endpoint()).aggregation_enabled(false),
        3_000,
        Duration::from_secs(1),
        || {},
        &ALL_SUCCEED,
    );
    assert_eq!(outcome.succeeded, 3_000);
    // Per-record failures are unambiguous: nothing is stored twice.
    assert_eq!(outcome.duplicated, 0);
    assert!(emulator.stats().streams["s"].failed_records > 0);
}

#[test]
fn bursts_of_500_and_503() {
    let emulator = emulator("s", 2);
    let config = config(&emulator.endpoint());
    let outcome = scenario(
        &emulator,
        "s",
        config,
        5_000,
        Duration::from_secs(3),
        || {
            for _ in 0..3 {
                std::thread::sleep(Duration::from_millis(300));
                emulator.set_faults(Faults {
                    internal_error_probability: 0.7,
                    service_unavailable_probability: 0.7,
                    seed: Some(5),
                    ..Faults::default()
                });
                std::thread::sleep(Duration::from_millis(500));
                emulator.set_faults(Faults::default());
            }
        },
        &ALL_SUCCEED,
    );
    assert_eq!(outcome.succeeded, 5_000);
    let requests = emulator.stats().requests;
    assert!(requests.injected_internal_errors > 0 && requests.injected_unavailable > 0);
}

#[test]
fn timeouts_and_dropped_connections() {
    let emulator = emulator("s", 2);
    emulator.set_faults(Faults {
        latency_ms: 50,
        jitter_ms: 600,
        drop_connection_probability: 0.15,
        seed: Some(3),
        ..Faults::default()
    });
    // Attempts time out after 400 ms; the answer may have been stored
    // anyway, so duplicates are allowed (at-least-once).
    let config = config(&emulator.endpoint())
        .request_timeout(Duration::from_millis(400))
        .aggregation_enabled(false)
        .collection_max_count(20);
    let outcome = scenario(
        &emulator,
        "s",
        config,
        2_000,
        Duration::from_secs(2),
        || {},
        &ALL_SUCCEED,
    );
    assert_eq!(outcome.succeeded, 2_000);
    let requests = emulator.stats().requests;
    eprintln!("timeouts: {outcome:?} {requests:?}");
    assert!(requests.dropped_connections > 0);
    assert!(outcome.attempt_codes.contains_key("Timeout"), "{outcome:?}");
}

#[test]
fn server_restart_on_the_same_port() {
    let first = emulator("s", 2);
    let port = first.local_addr().port();
    let endpoint = first.endpoint();
    let producer = Producer::new(config(&endpoint)).unwrap();
    let count = 4_000;
    let tracker = Arc::new(Tracker::new(count));
    let mut before_restart = Vec::new();
    let second = std::thread::scope(|s| {
        let sender = s.spawn(|| {
            send_tracked(
                &producer,
                "s",
                0..count,
                2,
                Duration::from_secs(3),
                &tracker,
            )
        });
        std::thread::sleep(Duration::from_millis(800));
        // Stop answering, let requests that are past the stall check
        // finish, and keep what the old server stored: it is gone after.
        first.set_faults(Faults {
            stall: Some(shardline_emulator::Stall::UntilCleared),
            ..Faults::default()
        });
        assert!(
            first.settle(Duration::from_secs(10)),
            "requests past the stall never finished"
        );
        before_restart = first.records("s");
        first.shutdown();
        std::thread::sleep(Duration::from_millis(700));
        let second = Emulator::start_in_background(EmulatorConfig {
            port,
            ..EmulatorConfig::default()
                .without_limits()
                .with_stream("s", 2)
        })
        .expect("the port is free again");
        sender.join().unwrap();
        second
    });
    wait_for_completions(&tracker, Duration::from_secs(60));
    producer
        .close_blocking(Some(Duration::from_secs(10)))
        .unwrap();
    let mut stored = before_restart;
    assert!(!stored.is_empty(), "the first server stored some records");
    stored.extend(second.records("s"));
    // The new server has the same stream with the same shards.
    let ranges = shard_ranges(&second.endpoint(), "s");
    let outcome = check(&tracker, &stored, &ranges, &ALL_SUCCEED);
    assert_eq!(outcome.succeeded, count);
}

#[test]
fn resharding_split_merge_and_update_shard_count() {
    let emulator = emulator("s", 2);
    let endpoint = emulator.endpoint();
    let outcome = scenario(
        &emulator,
        "s",
        config(&endpoint),
        8_000,
        Duration::from_secs(4),
        || {
            runtime().block_on(async {
                let client = kinesis_client(&endpoint).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
                let open = |shards: Vec<aws_sdk_kinesis::types::Shard>| {
                    shards
                        .into_iter()
                        .filter(|s| {
                            s.sequence_number_range()
                                .and_then(|r| r.ending_sequence_number())
                                .is_none()
                        })
                        .collect::<Vec<_>>()
                };
                // Split the first shard in the middle of its range.
                let shards = open(list_all_shards(&client, "s").await);
                let first = &shards[0];
                let range = first.hash_key_range().unwrap();
                let lo: u128 = range.starting_hash_key().parse().unwrap();
                let hi: u128 = range.ending_hash_key().parse().unwrap();
                client
                    .split_shard()
                    .stream_name("s")
                    .shard_to_split(first.shard_id())
                    .new_starting_hash_key((lo + (hi - lo) / 2).to_string())
                    .send()
                    .await
                    .expect("SplitShard");
                tokio::time::sleep(Duration::from_millis(800)).await;
                // Merge the two children back.
                let mut shards = open(list_all_shards(&client, "s").await);
                shards.sort_by_key(|s| {
                    s.hash_key_range()
                        .unwrap()
                        .starting_hash_key()
                        .parse::<u128>()
                        .unwrap()
                });
                client
                    .merge_shards()
                    .stream_name("s")
                    .shard_to_merge(shards[0].shard_id())
                    .adjacent_shard_to_merge(shards[1].shard_id())
                    .send()
                    .await
                    .expect("MergeShards");
                tokio::time::sleep(Duration::from_millis(800)).await;
                client
                    .update_shard_count()
                    .stream_name("s")
                    .target_shard_count(3)
                    .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
                    .send()
                    .await
                    .expect("UpdateShardCount");
            })
        },
        &ALL_SUCCEED,
    );
    assert_eq!(outcome.succeeded, 8_000);
}

#[test]
fn stream_deleted_mid_run() {
    let emulator = emulator("s", 2);
    let endpoint = emulator.endpoint();
    let count = 4_000;
    let mut before_delete = Vec::new();
    let outcome = {
        let producer = Producer::new(config(&endpoint)).unwrap();
        let tracker = Arc::new(Tracker::new(count));
        std::thread::scope(|s| {
            let sender = s.spawn(|| {
                send_tracked(
                    &producer,
                    "s",
                    0..count,
                    2,
                    Duration::from_secs(3),
                    &tracker,
                )
            });
            std::thread::sleep(Duration::from_millis(1000));
            // Refuse the producer's puts for a moment so that the snapshot
            // of the stream taken before deleting it is complete.
            emulator.set_faults(Faults {
                expired_access_key_ids: vec![PRODUCER_KEY_ID.into()],
                ..Faults::default()
            });
            assert!(
                emulator.settle(Duration::from_secs(10)),
                "puts let through before the refusal never finished"
            );
            before_delete = emulator.records("s");
            runtime().block_on(async {
                let client = kinesis_client(&endpoint).await;
                client
                    .delete_stream()
                    .stream_name("s")
                    .send()
                    .await
                    .expect("DeleteStream");
            });
            emulator.set_faults(Faults::default());
            sender.join().unwrap();
        });
        wait_for_completions(&tracker, Duration::from_secs(60));
        producer
            .close_blocking(Some(Duration::from_secs(10)))
            .unwrap();
        // The shards are gone with the stream; any range works for the
        // check as long as the ids match what was stored.
        let ranges: HashMap<String, (u128, u128)> = before_delete
            .iter()
            .map(|r| (r.shard_id.clone(), (0, u128::MAX)))
            .collect();
        check(
            &tracker,
            &before_delete,
            &ranges,
            &Allowed {
                failures: &[(FailureKind::Rejected, "ResourceNotFoundException")],
            },
        )
    };
    assert!(outcome.succeeded > 0, "{outcome:?}");
    assert!(outcome.failed > 0, "{outcome:?}");
    eprintln!("deleted: {outcome:?}");
}

#[test]
fn credentials_expire_then_come_back() {
    let emulator = emulator("s", 2);
    let outcome = scenario(
        &emulator,
        "s",
        config(&emulator.endpoint()),
        4_000,
        Duration::from_secs(3),
        || {
            std::thread::sleep(Duration::from_millis(600));
            emulator.set_faults(Faults {
                expired_access_key_ids: vec![PRODUCER_KEY_ID.into()],
                ..Faults::default()
            });
            std::thread::sleep(Duration::from_millis(1500));
            emulator.set_faults(Faults::default());
        },
        &ALL_SUCCEED,
    );
    assert_eq!(outcome.succeeded, 4_000);
    assert!(emulator.stats().requests.expired_token_rejections > 0);
}

#[test]
fn credentials_that_stay_expired_fail_with_the_code() {
    let emulator = emulator("s", 2);
    let outcome = scenario(
        &emulator,
        "s",
        // The fault comes 200 ms into a 2 s spread: the records sent after
        // it fail however late this thread runs, short of a 1.8 s stall; the
        // TTL lets each of them get an answer (and so the code) first.
        config(&emulator.endpoint()).record_ttl(Duration::from_secs(4)),
        1_000,
        Duration::from_secs(2),
        || {
            std::thread::sleep(Duration::from_millis(200));
            emulator.set_faults(Faults {
                expired_access_key_ids: vec![PRODUCER_KEY_ID.into()],
                ..Faults::default()
            });
        },
        &Allowed {
            failures: &[(FailureKind::Expired, "ExpiredTokenException")],
        },
    );
    assert!(outcome.failed > 0, "{outcome:?}");
}
