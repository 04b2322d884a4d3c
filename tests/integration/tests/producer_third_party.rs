//! The Kinesis producer against servers nobody here wrote: kinesalite and
//! kinesis-mock. Everything sent is read back with GetRecords, deaggregated,
//! and checked against what was sent and against the shard it was read
//! from.

use std::time::Duration;

use aws_sdk_kinesis::types::ScalingType;
use shardline::{Config, Producer, UserRecord};
use shardline_integration::{
    Kinesalite, KinesisMock, consumer_view, kinesis_client, local_config, multiset,
    send_from_threads, wait_for_stream_active, workload,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// kinesis-mock is a Scala.js program and answers a 5 MiB PutRecords in
/// seconds on a loaded machine: fewer requests in flight, more patience.
fn patient(config: Config) -> Config {
    config
        .max_connections(4)
        .request_timeout(Duration::from_secs(60))
        .record_ttl(Duration::from_secs(300))
}

/// Sends 100,000 records over 1,000 keys to a 4-shard stream and checks
/// the stream holds exactly those records, each on a shard that owns it.
fn hundred_thousand_round_trip(config: Config, endpoint: &str, stream: &str) {
    let producer = Producer::new(config).unwrap();
    let records = workload(100_000, 1_000, 100);
    let expected = multiset(records.iter().map(|r| (r.partition_key(), &r.data()[..])));
    let results = send_from_threads(&producer, stream, records, 4);
    let failed = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(
        failed,
        0,
        "first failure: {:?}",
        results.iter().find(|r| r.is_err())
    );
    producer.close_blocking(None).unwrap();
    runtime().block_on(async {
        let client = kinesis_client(endpoint).await;
        let (read, dropped) = consumer_view(&client, stream).await;
        assert_eq!(dropped, 0, "no record on a shard that does not own it");
        let got = multiset(read.iter().map(|r| (r.partition_key.as_str(), &r.data[..])));
        assert_eq!(got, expected, "the stream holds exactly what was sent");
    });
}

async fn create_stream(endpoint: &str, name: &str, shards: i32) {
    let client = kinesis_client(endpoint).await;
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .expect("CreateStream");
    wait_for_stream_active(&client, name).await;
}

#[test]
fn kinesalite_round_trip() {
    let server = Kinesalite::start();
    runtime().block_on(create_stream(&server.endpoint, "events", 4));
    hundred_thousand_round_trip(local_config(&server.endpoint), &server.endpoint, "events");
}

/// The `PutRecords` body is written by Shardline, not the SDK: keys JSON
/// must escape (quotes, backslashes, control characters) and non-ASCII
/// ones reach a server nobody here wrote intact, on the wire (aggregation
/// off) and inside aggregates.
#[test]
fn keys_json_must_escape_arrive_intact_on_kinesalite() {
    let server = Kinesalite::start();
    runtime().block_on(create_stream(&server.endpoint, "escapes", 2));
    let keys = [
        "plain",
        "quote\"d",
        "back\\slash",
        "tab\tnew\nline",
        "bell\u{7}",
        "\u{e9}t\u{e9} \u{65e5}\u{672c} \u{1f980}",
        "</script>",
    ];
    let records: Vec<_> = keys
        .iter()
        .enumerate()
        .flat_map(|(i, key)| {
            (0..3).map(move |j| UserRecord::new(*key, format!("{i}-{j} \"data\" \u{e9}")))
        })
        .collect();
    // Once with aggregation off (every key on the wire), once on.
    for aggregation in ["false", "true"] {
        let mut config = local_config(&server.endpoint);
        config.set("aggregation_enabled", aggregation).unwrap();
        let producer = Producer::new(config).unwrap();
        let results = send_from_threads(&producer, "escapes", records.clone(), 1);
        let failed = results.iter().filter(|r| r.is_err()).count();
        let first = results.iter().find_map(|r| r.as_ref().err());
        assert_eq!(
            failed, 0,
            "aggregation {aggregation}: {failed} failed, first: {first:?}"
        );
        producer.close_blocking(None).unwrap();
    }
    let mut expected = multiset(records.iter().map(|r| (r.partition_key(), &r.data()[..])));
    expected.values_mut().for_each(|count| *count *= 2);
    runtime().block_on(async {
        let client = kinesis_client(&server.endpoint).await;
        let (read, dropped) = consumer_view(&client, "escapes").await;
        assert_eq!(dropped, 0, "no record on a shard that does not own it");
        let got = multiset(read.iter().map(|r| (r.partition_key.as_str(), &r.data[..])));
        assert_eq!(got, expected, "every key and payload, byte for byte");
    });
}

#[test]
fn kinesis_mock_round_trip() {
    let server = KinesisMock::start(&[("events", 4)]);
    runtime().block_on(async {
        let client = kinesis_client(&server.endpoint).await;
        wait_for_stream_active(&client, "events").await;
    });
    hundred_thousand_round_trip(
        patient(local_config(&server.endpoint)),
        &server.endpoint,
        "events",
    );
}

/// Resharding while producing, on a server nobody here wrote: nothing is
/// lost, and a consumer sees every record on a shard that owns it.
fn reshard_while_producing(config: Config, endpoint: &str, reshard: impl FnOnce(&str) + Send) {
    let config = config.shard_map_refresh_interval(Duration::from_millis(250));
    let producer = Producer::new(config).unwrap();
    let records = workload(40_000, 1_000, 50);
    let expected = multiset(records.iter().map(|r| (r.partition_key(), &r.data()[..])));
    let results = std::thread::scope(|s| {
        let sender = s.spawn(|| send_from_threads(&producer, "resharded", records, 2));
        std::thread::sleep(Duration::from_millis(100));
        reshard(endpoint);
        sender.join().unwrap()
    });
    assert!(
        results.iter().all(|r| r.is_ok()),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    // Keep producing after the reshard so the new shards are used.
    let more = workload(5_000, 500, 50);
    let more_expected = multiset(more.iter().map(|r| (r.partition_key(), &r.data()[..])));
    assert!(
        send_from_threads(&producer, "resharded", more, 1)
            .iter()
            .all(|r| r.is_ok())
    );
    producer.close_blocking(None).unwrap();
    runtime().block_on(async {
        let client = kinesis_client(endpoint).await;
        let (read, _dropped) = consumer_view(&client, "resharded").await;
        let got = multiset(read.iter().map(|r| (r.partition_key.as_str(), &r.data[..])));
        for (key, count) in expected.iter().chain(more_expected.iter()) {
            assert!(
                got.get(key).copied().unwrap_or(0) >= *count,
                "lost {:?}",
                key.0
            );
        }
    });
}

#[test]
fn kinesis_mock_update_shard_count_while_producing() {
    let server = KinesisMock::start(&[("resharded", 2)]);
    runtime().block_on(async {
        wait_for_stream_active(&kinesis_client(&server.endpoint).await, "resharded").await;
    });
    reshard_while_producing(
        patient(local_config(&server.endpoint)),
        &server.endpoint,
        |endpoint| {
            runtime().block_on(async {
                let client = kinesis_client(endpoint).await;
                client
                    .update_shard_count()
                    .stream_name("resharded")
                    .target_shard_count(4)
                    .scaling_type(ScalingType::UniformScaling)
                    .send()
                    .await
                    .expect("UpdateShardCount");
                wait_for_stream_active(&client, "resharded").await;
            });
        },
    );
}

#[test]
fn kinesalite_split_shard_while_producing() {
    let server = Kinesalite::start();
    runtime().block_on(create_stream(&server.endpoint, "resharded", 2));
    reshard_while_producing(
        local_config(&server.endpoint),
        &server.endpoint,
        |endpoint| {
            runtime().block_on(async {
                let client = kinesis_client(endpoint).await;
                client
                    .split_shard()
                    .stream_name("resharded")
                    .shard_to_split("shardId-000000000000")
                    .new_starting_hash_key("85070591730234615865843651857942052864")
                    .send()
                    .await
                    .expect("SplitShard");
                wait_for_stream_active(&client, "resharded").await;
            });
        },
    );
}
