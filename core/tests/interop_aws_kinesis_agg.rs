//! Interop with code nobody here wrote: the PyPI package `aws-kinesis-agg`
//! (AWS's Python port of the KPL aggregation format).
//!
//! (a) aggregates written by Shardline are read by
//!     `aws_kinesis_agg.deaggregator`, and (b) aggregates written by its
//!     `RecordAggregator` are read by Shardline, every user record's bytes,
//!     partition key and explicit hash key intact.
//!
//! Needs a Python with `aws-kinesis-agg` and `six`: `$SHARDLINE_PYTHON`, or
//! else `<repo>/.venv/bin/python`. Set up with
//! `python3 -m venv .venv && .venv/bin/pip install aws-kinesis-agg six`.
//! These tests fail, never skip, when it is missing.
//!
//! Known quirks of aws-kinesis-agg 1.2.3 (read from its source, confirmed
//! by the tests below):
//! - Its deaggregator gives a record that has no explicit hash key index
//!   the table's first key whenever the aggregate's explicit-hash-key table
//!   is non-empty (`if ehks and ehks[mr.explicit_hash_key_index]`, and an
//!   unset proto2 field reads as 0). The KPL's own format says the field is
//!   optional; Shardline writes it only for caller-supplied keys.
//! - Its aggregator compares UTF-8 bytes against a table of `str` keys, so
//!   a repeated key is always sized as new: its reported size overestimates
//!   and aggregates split earlier than necessary (the bytes are still right).
//! - Its aggregates carry the first record's explicit hash key, or none:
//!   unlike Shardline it does not pin the aggregate to the first record's
//!   MD5 hash key.
//! - It passes damaged aggregates (bad digest, undecodable protobuf, 20
//!   bytes or fewer) through as one opaque record, where Shardline errors.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use serde_json::{Value, json};
use shardline::UserRecord;
use shardline::aggregation::{Aggregator, KinesisRecord, aggregate_all, deaggregate};

const ONE_MIB: usize = 1024 * 1024;
const MAX_HASH_KEY: &str = "340282366920938463463374607431768211455";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("core/ has a parent")
        .to_path_buf()
}

fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("SHARDLINE_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = repo_root().join(".venv/bin/python");
    if venv.exists() {
        return venv;
    }
    panic!(
        "the aws-kinesis-agg interop tests need Python with aws-kinesis-agg and six.\n\
         Either set SHARDLINE_PYTHON to such an interpreter, or create the repo's venv:\n  \
         cd {} && python3 -m venv .venv && .venv/bin/pip install aws-kinesis-agg six",
        repo_root().display()
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Bytes {
    assert_eq!(text.len() % 2, 0, "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex from the oracle"))
        .collect::<Vec<u8>>()
        .into()
}

/// Runs the oracle script and returns its JSON answer; any stderr output
/// (the deaggregator prints its errors there) fails the test.
fn run_oracle(mode: &str, request: &Value) -> Value {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir();
    let stem = format!("shardline-kpl-oracle-{}-{call}", std::process::id());
    let in_path = dir.join(format!("{stem}-in.json"));
    let out_path = dir.join(format!("{stem}-out.json"));
    std::fs::write(&in_path, serde_json::to_vec(request).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/kpl_agg_oracle.py");
    let python = python();
    let output = Command::new(&python)
        .arg(&script)
        .arg(mode)
        .arg(&in_path)
        .arg(&out_path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "oracle failed ({}); is aws-kinesis-agg installed in {}?\n{stderr}",
        output.status,
        python.display()
    );
    assert!(stderr.trim().is_empty(), "oracle complained:\n{stderr}");
    let answer = serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    let _ = std::fs::remove_file(&in_path);
    let _ = std::fs::remove_file(&out_path);
    answer
}

fn record_json(partition_key: &str, explicit_hash_key: Option<&str>, data: &[u8]) -> Value {
    json!({
        "partitionKey": partition_key,
        "explicitHashKey": explicit_hash_key,
        "data": hex(data),
    })
}

fn kinesis_record_json(record: &KinesisRecord) -> Value {
    record_json(
        &record.partition_key,
        record.explicit_hash_key.as_deref(),
        &record.data,
    )
}

fn user_record_json(record: &UserRecord) -> Value {
    record_json(
        record.partition_key(),
        record.explicit_hash_key().map(|k| k.to_string()).as_deref(),
        record.data(),
    )
}

fn with_key(record: UserRecord, explicit_hash_key: &str) -> UserRecord {
    record
        .with_explicit_hash_key_str(explicit_hash_key)
        .unwrap()
}

/// Record sets that each exercise one edge of the format. Within a set,
/// either every record has an explicit hash key or none has (see the
/// deaggregator quirk in the module docs; mixing is tested separately).
fn scenarios() -> Vec<(&'static str, Vec<UserRecord>)> {
    let unicode_keys = ["ключ", "鍵", "🔑🗝️", "e\u{301}", "\u{10FFFF}", " "];
    vec![
        (
            "empty data",
            (0..5).map(|_| UserRecord::new("k", Bytes::new())).collect(),
        ),
        (
            "one-byte records, distinct keys",
            (0..200u8)
                .map(|i| UserRecord::new(format!("key-{i}"), vec![i]))
                .collect(),
        ),
        (
            "unicode keys",
            unicode_keys
                .iter()
                .map(|k| UserRecord::new(*k, k.as_bytes().to_vec()))
                .collect(),
        ),
        (
            "256-character keys",
            vec![
                UserRecord::new("k".repeat(256), "ascii"),
                UserRecord::new("é".repeat(256), "two-byte"),
                UserRecord::new("😀".repeat(256), "four-byte"),
                UserRecord::new("k".repeat(256), "repeat"),
            ],
        ),
        (
            "repeated and distinct keys",
            (0..300usize)
                .map(|i| UserRecord::new(format!("k{}", i % 7), vec![i as u8; i % 50]))
                .collect(),
        ),
        (
            "explicit hash keys 0 and 2^128-1",
            vec![
                with_key(UserRecord::new("a", "zero"), "0"),
                with_key(UserRecord::new("a", "max"), MAX_HASH_KEY),
                with_key(UserRecord::new("b", "zero again"), "0"),
                with_key(
                    UserRecord::new("c", "middle"),
                    "170141183460469231731687303715884105728",
                ),
                with_key(UserRecord::new("c", "max again"), MAX_HASH_KEY),
            ],
        ),
        ("a lone record", vec![UserRecord::new("alone", "raw")]),
        (
            "a lone record with an explicit hash key",
            vec![with_key(UserRecord::new("alone", "raw"), MAX_HASH_KEY)],
        ),
    ]
}

/// Two records whose aggregate is exactly 1 MiB.
fn one_mib_pair() -> Vec<UserRecord> {
    let small = UserRecord::new("small", "x");
    let mut probe = Aggregator::new(usize::MAX, usize::MAX);
    probe.try_add(small.clone()).unwrap();
    // Grow the data until the aggregate reaches the limit; varint lengths
    // make the relation slightly nonlinear, so search rather than solve.
    let mut data_len = ONE_MIB - 64;
    while probe.size_with(&UserRecord::new("big", vec![0u8; data_len + 1])) <= ONE_MIB {
        data_len += 1;
    }
    let big = UserRecord::new("big", vec![0xab; data_len]);
    assert_eq!(probe.size_with(&big), ONE_MIB);
    vec![small, big]
}

fn expected_json(records: &[UserRecord]) -> Vec<Value> {
    records.iter().map(user_record_json).collect()
}

/// Checks the oracle's view of one Kinesis record against what went in.
fn assert_python_read(name: &str, got: &Value, sent: &KinesisRecord, expected: &[Value]) {
    let got = got.as_array().expect("a list per Kinesis record");
    assert_eq!(
        got.len(),
        expected.len(),
        "{name}: aws-kinesis-agg read {} user records out of {}",
        got.len(),
        expected.len()
    );
    for (i, (got, expected)) in got.iter().zip(expected).enumerate() {
        assert_eq!(got["aggregated"], json!(sent.aggregated), "{name} #{i}");
        for field in ["partitionKey", "explicitHashKey", "data"] {
            assert_eq!(got[field], expected[field], "{name} #{i}: {field}");
        }
    }
}

#[test]
fn aws_kinesis_agg_reads_shardline_aggregates() {
    let mut cases = scenarios();
    cases.push(("an aggregate of exactly 1 MiB", one_mib_pair()));

    let mut sent = Vec::new();
    for (name, records) in &cases {
        let max_size = ONE_MIB;
        let kinesis_records = aggregate_all(records.clone(), max_size, usize::MAX);
        let mut offset = 0;
        for kinesis_record in kinesis_records {
            let count = kinesis_record.user_record_count;
            assert!(kinesis_record.data.len() <= max_size, "{name}");
            let expected = expected_json(&records[offset..offset + count]);
            offset += count;
            sent.push((*name, kinesis_record, expected));
        }
        assert_eq!(offset, records.len(), "{name}");
    }
    let one_mib = &sent.last().unwrap().1;
    assert!(one_mib.aggregated && one_mib.data.len() == ONE_MIB);

    let request = json!({
        "records": sent.iter().map(|(_, record, _)| kinesis_record_json(record)).collect::<Vec<_>>(),
    });
    let answer = run_oracle("deaggregate", &request);
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), sent.len());
    let mut user_records = 0;
    for ((name, record, expected), got) in sent.iter().zip(results) {
        assert_python_read(name, got, record, expected);
        user_records += expected.len();
    }
    let total: usize = cases.iter().map(|(_, records)| records.len()).sum();
    assert_eq!(user_records, total);
}

#[test]
fn aws_kinesis_agg_gives_records_without_a_key_the_first_explicit_hash_key() {
    // Shardline writes the index only for records that have a key ...
    let records = vec![
        UserRecord::new("plain", "1"),
        with_key(UserRecord::new("keyed", "2"), "12345"),
        UserRecord::new("plain", "3"),
    ];
    let (aggregate, _) = {
        let mut aggregator = Aggregator::new(ONE_MIB, usize::MAX);
        for record in records.clone() {
            aggregator.try_add(record).unwrap();
        }
        aggregator.take().unwrap()
    };
    let ours = deaggregate(
        &aggregate.partition_key,
        aggregate.explicit_hash_key.as_deref(),
        &aggregate.data,
    )
    .unwrap();
    let ours: Vec<_> = ours
        .iter()
        .map(|r| r.explicit_hash_key.as_deref())
        .collect();
    assert_eq!(ours, [None, Some("12345"), None]);

    // ... but aws-kinesis-agg reports the table's first key for the others.
    let answer = run_oracle(
        "deaggregate",
        &json!({ "records": [kinesis_record_json(&aggregate)] }),
    );
    let theirs = answer["results"][0].as_array().unwrap();
    assert_eq!(theirs.len(), 3);
    for (got, original) in theirs.iter().zip(&records) {
        assert_eq!(got["partitionKey"], json!(original.partition_key()));
        assert_eq!(got["data"], json!(hex(original.data())));
        assert_eq!(got["explicitHashKey"], json!("12345"));
    }
}

#[test]
fn shardline_reads_aws_kinesis_agg_aggregates() {
    let mut cases: Vec<(&str, Vec<UserRecord>, usize)> = scenarios()
        .into_iter()
        .map(|(name, records)| (name, records, ONE_MIB))
        .collect();
    cases.push(("an aggregate of exactly 1 MiB", one_mib_pair(), ONE_MIB));
    cases.push((
        "mixed explicit hash keys",
        vec![
            UserRecord::new("plain", "1"),
            with_key(UserRecord::new("keyed", "2"), "0"),
            UserRecord::new("plain", "3"),
        ],
        ONE_MIB,
    ));
    cases.push((
        "many small aggregates",
        (0..500usize)
            .map(|i| UserRecord::new(format!("k{}", i % 13), vec![i as u8; 1 + i % 90]))
            .collect(),
        2000,
    ));

    for (name, records, max_size) in &cases {
        let request = json!({
            "max_size": max_size,
            "records": records.iter().map(user_record_json).collect::<Vec<_>>(),
        });
        let answer = run_oracle("aggregate", &request);
        let aggregates = answer["aggregates"].as_array().unwrap();
        assert!(!aggregates.is_empty(), "{name}");

        let mut decoded = Vec::new();
        let mut repeated_keys = false;
        for aggregate in aggregates {
            let data = unhex(aggregate["data"].as_str().unwrap());
            assert!(data.starts_with(&shardline::aggregation::MAGIC), "{name}");
            assert!(data.len() <= *max_size, "{name}");
            let these = deaggregate(
                aggregate["partitionKey"].as_str().unwrap(),
                aggregate["explicitHashKey"].as_str(),
                &data,
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                these.len() as u64,
                aggregate["user_record_count"].as_u64().unwrap(),
                "{name}"
            );
            // Its size bookkeeping is exact unless a key repeats (quirk).
            let reported = aggregate["reported_size"].as_u64().unwrap() as usize;
            let mut keys: Vec<&str> = these.iter().map(|r| r.partition_key.as_str()).collect();
            keys.sort_unstable();
            let had_repeats = keys.windows(2).any(|w| w[0] == w[1]);
            repeated_keys |= had_repeats;
            if had_repeats {
                assert!(
                    reported > data.len(),
                    "{name}: {reported} vs {}",
                    data.len()
                );
            } else {
                assert_eq!(reported, data.len(), "{name}");
            }
            decoded.extend(these);
        }
        assert_eq!(decoded.len(), records.len(), "{name}: record count");
        for (i, (got, original)) in decoded.iter().zip(records).enumerate() {
            assert_eq!(got.partition_key, original.partition_key(), "{name} #{i}");
            assert_eq!(
                got.explicit_hash_key,
                original.explicit_hash_key().map(|k| k.to_string()),
                "{name} #{i}"
            );
            assert_eq!(&got.data, original.data(), "{name} #{i}");
        }

        // Where both libraries put the same records in one aggregate, the
        // bytes must be identical: same field order, same tables.
        if aggregates.len() == 1 && records.len() > 1 {
            let ours = aggregate_all(records.clone(), usize::MAX, usize::MAX);
            assert_eq!(ours.len(), 1);
            assert_eq!(
                hex(&ours[0].data),
                aggregates[0]["data"].as_str().unwrap(),
                "{name}: bytes differ from aws-kinesis-agg's"
            );
        }
        if *name == "many small aggregates" {
            assert!(aggregates.len() > 10 && repeated_keys);
        }
    }
}

#[test]
fn aws_kinesis_agg_passes_damaged_aggregates_through_where_shardline_errors() {
    let aggregate = aggregate_all(
        vec![UserRecord::new("a", "1"), UserRecord::new("b", "2")],
        ONE_MIB,
        usize::MAX,
    )
    .remove(0);
    let mut damaged = aggregate.data.to_vec();
    *damaged.last_mut().unwrap() ^= 1;
    let damaged = Bytes::from(damaged);
    assert!(deaggregate("outer", None, &damaged).is_err());

    let answer = run_oracle(
        "deaggregate",
        &json!({ "records": [record_json("outer", None, &damaged)] }),
    );
    let theirs = answer["results"][0].as_array().unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0]["aggregated"], json!(false));
    assert_eq!(theirs[0]["data"], json!(hex(&damaged)));
}
