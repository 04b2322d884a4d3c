//! Property tests for KPL aggregation: round trips, exact sizing and
//! shard-correct routing.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use shardline::aggregation::{Aggregator, aggregate_all, deaggregate};
use shardline::{Shard, ShardMap, UserRecord};

/// Partition keys: a tiny alphabet (so keys repeat and the tables
/// deduplicate), arbitrary Unicode, and the 256-character maximum.
fn partition_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-c]{1,2}",
        3 => "\\PC{1,40}",
        1 => "\\PC{256}",
    ]
}

/// Explicit hash keys: absent, the extremes, a few repeated values, or any.
fn explicit_hash_key() -> impl Strategy<Value = Option<u128>> {
    prop_oneof![
        4 => Just(None),
        1 => Just(Some(0)),
        1 => Just(Some(u128::MAX)),
        1 => (0u128..3).prop_map(Some),
        2 => any::<u128>().prop_map(Some),
    ]
}

fn user_record() -> impl Strategy<Value = UserRecord> {
    (
        partition_key(),
        explicit_hash_key(),
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(key, explicit, data)| {
            let record = UserRecord::new(key, data);
            match explicit {
                Some(hash_key) => record.with_explicit_hash_key(hash_key),
                None => record,
            }
        })
}

fn user_records(max: usize) -> impl Strategy<Value = Vec<UserRecord>> {
    prop::collection::vec(user_record(), 1..max)
}

/// A valid shard layout: sorted cut points split `0..=u128::MAX` into
/// contiguous ranges, handed to `ShardMap::new` in shuffled order.
fn shard_map() -> impl Strategy<Value = ShardMap> {
    prop::collection::btree_set(1u128..=u128::MAX, 0..16)
        .prop_flat_map(|cuts| {
            let cuts: Vec<u128> = cuts.into_iter().collect();
            let mut shards = Vec::with_capacity(cuts.len() + 1);
            let mut start = 0u128;
            for (i, &cut) in cuts.iter().enumerate() {
                shards.push(Shard::new(format!("shardId-{i:012}"), start, cut - 1));
                start = cut;
            }
            shards.push(Shard::new(
                format!("shardId-{:012}", cuts.len()),
                start,
                u128::MAX,
            ));
            Just(shards).prop_shuffle()
        })
        .prop_map(|shards| ShardMap::new(shards).expect("layout is contiguous"))
}

fn assert_same_record(decoded: &shardline::DeaggregatedRecord, original: &UserRecord) {
    assert_eq!(decoded.partition_key, original.partition_key());
    assert_eq!(
        decoded.explicit_hash_key,
        original.explicit_hash_key().map(|k| k.to_string())
    );
    assert_eq!(&decoded.data, original.data());
    assert_eq!(decoded.hash_key().unwrap(), original.hash_key());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encode_then_decode_is_the_identity(records in user_records(40)) {
        let mut aggregator = Aggregator::new(usize::MAX, usize::MAX);
        for record in records.iter().cloned() {
            aggregator.try_add(record).unwrap();
        }
        let (kinesis_record, returned) = aggregator.take().unwrap();
        prop_assert_eq!(&returned, &records);
        prop_assert_eq!(kinesis_record.user_record_count, records.len());
        prop_assert_eq!(kinesis_record.aggregated, records.len() > 1);
        let decoded = deaggregate(
            &kinesis_record.partition_key,
            kinesis_record.explicit_hash_key.as_deref(),
            &kinesis_record.data,
        )
        .unwrap();
        prop_assert_eq!(decoded.len(), records.len());
        for (decoded, original) in decoded.iter().zip(&records) {
            assert_same_record(decoded, original);
        }
    }

    #[test]
    fn incremental_size_equals_the_encoded_size_after_every_add(
        records in prop::collection::vec(user_record(), 2..25),
    ) {
        let mut aggregator = Aggregator::new(usize::MAX, usize::MAX);
        for (added, record) in records.iter().cloned().enumerate() {
            let predicted = aggregator.size_with(&record);
            aggregator.try_add(record).unwrap();
            prop_assert_eq!(aggregator.size(), predicted);
            if added >= 1 {
                // Encode this prefix on its own and compare.
                let mut prefix = Aggregator::new(usize::MAX, usize::MAX);
                for record in records[..=added].iter().cloned() {
                    prefix.try_add(record).unwrap();
                }
                let size = prefix.size();
                let (kinesis_record, _) = prefix.take().unwrap();
                prop_assert_eq!(kinesis_record.data.len(), size);
                prop_assert_eq!(size, aggregator.size());
            }
        }
    }

    #[test]
    fn packing_respects_the_limits_and_keeps_every_record_in_order(
        records in user_records(60),
        max_size in 20usize..4000,
        max_count in 1usize..20,
    ) {
        let out = aggregate_all(records.clone(), max_size, max_count);
        let mut decoded = Vec::new();
        for kinesis_record in &out {
            if kinesis_record.aggregated {
                prop_assert!(kinesis_record.data.len() <= max_size);
                prop_assert!(kinesis_record.user_record_count <= max_count);
                prop_assert!(kinesis_record.user_record_count >= 2);
            } else {
                prop_assert_eq!(kinesis_record.user_record_count, 1);
            }
            let these = deaggregate(
                &kinesis_record.partition_key,
                kinesis_record.explicit_hash_key.as_deref(),
                &kinesis_record.data,
            )
            .unwrap();
            prop_assert_eq!(these.len(), kinesis_record.user_record_count);
            decoded.extend(these);
        }
        prop_assert_eq!(decoded.len(), records.len());
        for (decoded, original) in decoded.iter().zip(&records) {
            assert_same_record(decoded, original);
        }
    }

    #[test]
    fn aggregates_route_to_the_shard_their_records_were_predicted_for(
        map in shard_map(),
        records in user_records(60),
    ) {
        // Add records sitting exactly on every range boundary.
        let mut records = records;
        for shard in map.shards() {
            for key in [shard.starting_hash_key, shard.ending_hash_key] {
                records.push(UserRecord::new("edge", Bytes::new()).with_explicit_hash_key(key));
            }
        }

        // Predict each record's shard and group by it, as the producer does.
        let mut by_shard: BTreeMap<String, Vec<UserRecord>> = BTreeMap::new();
        for record in records {
            let shard = map.lookup(record.hash_key());
            prop_assert!(shard.contains(record.hash_key()));
            by_shard.entry(shard.shard_id.clone()).or_default().push(record);
        }

        for (shard_id, group) in by_shard {
            for kinesis_record in aggregate_all(group, 4096, 100) {
                // Kinesis routes by the explicit hash key when one is given,
                // else by MD5 of the partition key.
                let routed_by = match &kinesis_record.explicit_hash_key {
                    Some(key) => key.parse::<u128>().unwrap(),
                    None => shardline::hash::partition_key_hash(&kinesis_record.partition_key),
                };
                prop_assert_eq!(&map.lookup(routed_by).shard_id, &shard_id);
                if kinesis_record.aggregated {
                    let decoded = deaggregate(
                        &kinesis_record.partition_key,
                        kinesis_record.explicit_hash_key.as_deref(),
                        &kinesis_record.data,
                    )
                    .unwrap();
                    // The aggregate carries its first record's hash key, and
                    // the KCL would keep every record in it.
                    prop_assert_eq!(routed_by, decoded[0].hash_key().unwrap());
                    for record in &decoded {
                        let hash_key = record.hash_key().unwrap();
                        prop_assert!(map.lookup(routed_by).contains(hash_key));
                    }
                }
            }
        }
    }
}
