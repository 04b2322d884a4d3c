//! The emulator as boto3 sees it: round trips, validation, throttling,
//! resharding and faults, driven by `tests/boto3_client.py`.

mod common;

use common::boto3;
use serde_json::json;
use shardline_emulator::{Emulator, EmulatorConfig, Faults, ShardLimits};

#[test]
fn round_trip() {
    let emulator = Emulator::start_in_background(EmulatorConfig::default()).unwrap();
    let out = boto3("roundtrip", &emulator.endpoint(), &[]);
    assert_eq!(out["failed"], 0);
    assert_eq!(out["single_shard"], "shardId-000000000000");
    assert_eq!(out["shards"], 2);
    assert_eq!(out["read"].as_array().unwrap().len(), 51);
    assert_eq!(out["streams"], json!(["py"]));
    assert_eq!(out["firehose_failed"], 0);
    assert_eq!(out["delivery_streams"], json!(["pyd"]));
    let delivered: Vec<_> = emulator
        .delivered("pyd")
        .iter()
        .map(|b| b.to_vec())
        .collect();
    assert_eq!(
        delivered,
        [b"a\n".to_vec(), b"b\n".to_vec(), b"c\n".to_vec()]
    );
}

#[test]
fn validation_errors() {
    let emulator =
        Emulator::start_in_background(EmulatorConfig::default().without_limits()).unwrap();
    let out = boto3("validation", &emulator.endpoint(), &[]);
    assert_eq!(
        out,
        json!({
            "too_many": "ValidationException",
            "empty_key": "ValidationException",
            "long_key": "ValidationException",
            "bad_hash_key": "ValidationException",
            "hash_key_range": "InvalidArgumentException",
            "big_record": "ValidationException",
            "big_request": "InvalidArgumentException",
            "unknown_stream": "ResourceNotFoundException",
            "unknown_delivery_stream": "ResourceNotFoundException",
        })
    );
}

/// Throttling as boto3 sees it: per-record error codes in a PutRecords
/// answer, and an error response for PutRecord. The shard quota is 4,096
/// bytes per second so the outcome depends on record sizes only; filling the
/// real 1 MiB window first was timing-dependent when boto3 ran slowly.
#[test]
fn throttling() {
    let emulator = Emulator::start_in_background(EmulatorConfig::default().with_shard_limits(
        Some(ShardLimits {
            bytes_per_second: 4096,
            records_per_second: 1_000,
        }),
    ))
    .unwrap();
    let out = boto3("throttling", &emulator.endpoint(), &[]);
    let throttled = json!("ProvisionedThroughputExceededException");
    let mut codes = vec![json!(null); 4];
    codes.resize(10, throttled.clone());
    assert_eq!(
        out,
        json!({"failed": 6, "codes": codes, "put_record": throttled})
    );
}

#[test]
fn resharding() {
    let emulator = Emulator::start_in_background(EmulatorConfig::default()).unwrap();
    let out = boto3("resharding", &emulator.endpoint(), &[]);
    assert_eq!(
        out["shards"],
        json!([
            ["shardId-000000000000", null, true],
            ["shardId-000000000001", "shardId-000000000000", false],
            ["shardId-000000000002", "shardId-000000000000", false],
        ])
    );
    assert_eq!(out["parent_data"], json!(["old"]));
    assert_eq!(
        out["parent_children"],
        json!(["shardId-000000000001", "shardId-000000000002"])
    );
    assert_eq!(out["open_after_update"], 4);
}

#[test]
fn faults() {
    let emulator =
        Emulator::start_in_background(EmulatorConfig::default().with_stream("f", 1).with_faults(
            Faults {
                record_failure_probability: 1.0,
                ..Faults::default()
            },
        ))
        .unwrap();
    let out = boto3("faults", &emulator.endpoint(), &[]);
    assert_eq!(out, json!({"failed": 10, "codes": ["InternalFailure"]}));

    emulator.set_faults(Faults {
        expired_access_key_ids: vec!["AKIDEXPIRED".into()],
        ..Faults::default()
    });
    let out = boto3("expired", &emulator.endpoint(), &[]);
    assert_eq!(out["code"], "ExpiredTokenException");
}

#[test]
fn boto3_reads_the_sts_caller_identity() {
    let emulator = Emulator::start_in_background(EmulatorConfig::default()).unwrap();
    let out = boto3("sts", &emulator.endpoint(), &[]);
    assert_eq!(out["account"], "123456789012");
    assert_eq!(out["user_id"], "AKIDSTS");
    assert_eq!(
        out["arn"],
        "arn:aws:iam::123456789012:user/shardline-emulator"
    );
    assert_eq!(out["other_action"], "InvalidAction");
}
