//! Resharding: SplitShard, MergeShards and UpdateShardCount close parents,
//! open children with the right lineage and ranges, and keep parent data
//! readable until GetRecords hands over to the children.

mod common;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::types::{ScalingType, ShardFilter, ShardFilterType, ShardIteratorType};
use common::{blob, error_code, kinesis};
use shardline_emulator::{Emulator, EmulatorConfig};

async fn read_all(client: &Client, stream: &str, shard: &str) -> (Vec<String>, Vec<String>) {
    let mut iterator = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    let mut data = Vec::new();
    loop {
        let out = client
            .get_records()
            .shard_iterator(&iterator)
            .limit(2)
            .send()
            .await
            .unwrap();
        data.extend(
            out.records()
                .iter()
                .map(|r| String::from_utf8(r.data().as_ref().to_vec()).unwrap()),
        );
        match out.next_shard_iterator() {
            Some(next) if !out.records().is_empty() => iterator = next.to_owned(),
            // Open shard and caught up.
            Some(_) => return (data, Vec::new()),
            None => {
                let children = out
                    .child_shards()
                    .iter()
                    .map(|c| c.shard_id().to_owned())
                    .collect();
                return (data, children);
            }
        }
    }
}

async fn put(client: &Client, stream: &str, hash_key: u128, data: &str) -> String {
    client
        .put_record()
        .stream_name(stream)
        .partition_key("k")
        .explicit_hash_key(hash_key.to_string())
        .data(blob(data.to_owned()))
        .send()
        .await
        .unwrap()
        .shard_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_then_merge_keeps_lineage_and_data() {
    let emulator = Emulator::start(EmulatorConfig::default().with_stream("r", 1))
        .await
        .unwrap();
    let client = kinesis(&emulator.endpoint());
    let half = 1u128 << 127;
    assert_eq!(
        put(&client, "r", 5, "before-low").await,
        "shardId-000000000000"
    );
    assert_eq!(
        put(&client, "r", half + 5, "before-high").await,
        "shardId-000000000000"
    );

    client
        .split_shard()
        .stream_name("r")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key(half.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        put(&client, "r", 5, "after-low").await,
        "shardId-000000000001"
    );
    assert_eq!(
        put(&client, "r", half + 5, "after-high").await,
        "shardId-000000000002"
    );

    let shards = client.list_shards().stream_name("r").send().await.unwrap();
    let shards = shards.shards();
    assert_eq!(shards.len(), 3);
    assert!(
        shards[0]
            .sequence_number_range()
            .unwrap()
            .ending_sequence_number()
            .is_some()
    );
    for child in &shards[1..] {
        assert_eq!(child.parent_shard_id(), Some("shardId-000000000000"));
        assert!(
            child
                .sequence_number_range()
                .unwrap()
                .ending_sequence_number()
                .is_none()
        );
        // Children's numbers start above everything in the parent.
        assert!(
            child
                .sequence_number_range()
                .unwrap()
                .starting_sequence_number()
                > shards[0]
                    .sequence_number_range()
                    .unwrap()
                    .ending_sequence_number()
                    .unwrap()
        );
    }
    assert_eq!(
        shards[1].hash_key_range().unwrap().ending_hash_key(),
        (half - 1).to_string()
    );
    assert_eq!(
        shards[2].hash_key_range().unwrap().starting_hash_key(),
        half.to_string()
    );

    // The closed parent is still readable, then points at its children.
    let (data, children) = read_all(&client, "r", "shardId-000000000000").await;
    assert_eq!(data, ["before-low", "before-high"]);
    assert_eq!(children, ["shardId-000000000001", "shardId-000000000002"]);
    assert_eq!(
        read_all(&client, "r", "shardId-000000000001").await.0,
        ["after-low"]
    );

    // Splitting a closed shard is refused.
    let e = client
        .split_shard()
        .stream_name("r")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("10")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&e).as_deref(), Some("InvalidArgumentException"));

    client
        .merge_shards()
        .stream_name("r")
        .shard_to_merge("shardId-000000000002")
        .adjacent_shard_to_merge("shardId-000000000001")
        .send()
        .await
        .unwrap();
    let open = client
        .list_shards()
        .stream_name("r")
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AtLatest)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let open = open.shards();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].shard_id(), "shardId-000000000003");
    assert_eq!(open[0].parent_shard_id(), Some("shardId-000000000002"));
    assert_eq!(
        open[0].adjacent_parent_shard_id(),
        Some("shardId-000000000001")
    );
    assert_eq!(open[0].hash_key_range().unwrap().starting_hash_key(), "0");
    assert_eq!(
        open[0].hash_key_range().unwrap().ending_hash_key(),
        u128::MAX.to_string()
    );
    assert_eq!(put(&client, "r", 5, "merged").await, "shardId-000000000003");
    let (_, children) = read_all(&client, "r", "shardId-000000000001").await;
    assert_eq!(children, ["shardId-000000000003"]);

    let stats = emulator.stats();
    assert_eq!(stats.streams["r"].shards.len(), 4);
    assert!(!stats.streams["r"].shards["shardId-000000000000"].open);
    assert_eq!(emulator.records("r").len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_shard_count_scales_uniformly_within_a_factor_of_two() {
    let emulator = Emulator::start(EmulatorConfig::default().with_stream("u", 2))
        .await
        .unwrap();
    let client = kinesis(&emulator.endpoint());
    for i in 0..20 {
        client
            .put_record()
            .stream_name("u")
            .partition_key(format!("k{i}"))
            .data(blob("old"))
            .send()
            .await
            .unwrap();
    }
    let out = client
        .update_shard_count()
        .stream_name("u")
        .target_shard_count(4)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (out.current_shard_count(), out.target_shard_count()),
        (Some(2), Some(4))
    );
    let summary = client
        .describe_stream_summary()
        .stream_name("u")
        .send()
        .await
        .unwrap();
    assert_eq!(
        summary
            .stream_description_summary()
            .unwrap()
            .open_shard_count(),
        4
    );
    let shards = client.list_shards().stream_name("u").send().await.unwrap();
    let children: Vec<_> = shards
        .shards()
        .iter()
        .filter(|s| s.parent_shard_id().is_some())
        .collect();
    assert_eq!(children.len(), 4);
    assert_eq!(children[0].parent_shard_id(), Some("shardId-000000000000"));
    assert_eq!(children[3].parent_shard_id(), Some("shardId-000000000001"));
    for i in 0..20 {
        client
            .put_record()
            .stream_name("u")
            .partition_key(format!("k{i}"))
            .data(blob("new"))
            .send()
            .await
            .unwrap();
    }
    // Old records stay in the parents, new ones land in children only.
    let records = emulator.records("u");
    for r in &records {
        let parent = r.shard_id == "shardId-000000000000" || r.shard_id == "shardId-000000000001";
        assert_eq!(parent, r.data.as_ref() == b"old", "{r:?}");
    }
    let (old, _) = read_all(&client, "u", "shardId-000000000000").await;
    let (old2, _) = read_all(&client, "u", "shardId-000000000001").await;
    assert_eq!(old.len() + old2.len(), 20);

    // More than double is refused.
    let e = client
        .update_shard_count()
        .stream_name("u")
        .target_shard_count(9)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&e).as_deref(), Some("LimitExceededException"));
    // Halving merges pairs: each child names two parents.
    client
        .update_shard_count()
        .stream_name("u")
        .target_shard_count(2)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .unwrap();
    let shards = client
        .list_shards()
        .stream_name("u")
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AtLatest)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    for s in shards.shards() {
        assert!(
            s.parent_shard_id().is_some() && s.adjacent_parent_shard_id().is_some(),
            "{s:?}"
        );
    }
}
