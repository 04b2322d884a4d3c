//! Issue #10, part 5: bad input at every Rust boundary is refused with a
//! specific error, and a refused record comes back to the caller. Covers
//! what `producer_emulator.rs` (bad_input_is_refused_with_a_specific_error)
//! and the unit tests in `core/src/config.rs` do not: the Firehose
//! producer, KPL `.properties` files, `Config::validate`, every kind of
//! config value, explicit hash key strings and a closed producer.
//!
//! Run: `cargo test -p shardline-integration --test reliability_validation`.

use std::time::Duration;

use shardline::{Config, Error, Producer, UserRecord};
use shardline_integration::local_config;

/// A local endpoint nothing listens on: validation happens before any
/// request, so nothing is ever sent.
const NOWHERE: &str = "http://127.0.0.1:9";

fn invalid_key(result: Result<(), Error>) -> String {
    match result {
        Err(Error::InvalidConfig { key, message }) => {
            assert!(!message.is_empty());
            key
        }
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

#[test]
fn firehose_refuses_bad_records_and_names() {
    let producer = Producer::firehose(local_config(NOWHERE)).unwrap();
    let refuse = |stream: &str, r: UserRecord| {
        let refused = producer.try_send(stream, r).expect_err("refused");
        (refused.error, refused.record)
    };
    // 1,000 KiB is the largest Firehose record.
    let limit = 1_000 * 1024;
    let (error, record) = refuse("d", UserRecord::new("", vec![0u8; limit + 1]));
    assert_eq!(
        error,
        Error::RecordTooLarge {
            size: limit + 1,
            limit
        }
    );
    assert!(error.is_validation());
    assert_eq!(record.data().len(), limit + 1, "the record comes back");
    assert!(matches!(
        refuse("", UserRecord::new("", "x")).0,
        Error::InvalidStreamName { .. }
    ));
    assert!(matches!(
        refuse(&"d".repeat(129), UserRecord::new("", "x")).0,
        Error::InvalidStreamName { .. }
    ));
    assert!(matches!(
        refuse("bad/name", UserRecord::new("", "x")).0,
        Error::InvalidStreamName { .. }
    ));
    assert_eq!(producer.outstanding(), 0);
    producer.close_blocking(None).unwrap();
}

#[test]
fn firehose_newline_framing_counts_the_newline() {
    let mut config = local_config(NOWHERE);
    config.set("firehose_newline_delimiter", "true").unwrap();
    let producer = Producer::firehose(config).unwrap();
    let limit = 1_000 * 1024;
    // Exactly the limit before the newline: one byte too many after it.
    let refused = producer
        .try_send("d", UserRecord::new("", vec![b'a'; limit]))
        .expect_err("refused");
    assert_eq!(
        refused.error,
        Error::RecordTooLarge {
            size: limit + 1,
            limit
        }
    );
    producer.close_blocking(None).unwrap();
}

#[test]
fn a_closed_producer_refuses_and_returns_the_record() {
    for producer in [
        Producer::new(local_config(NOWHERE)).unwrap(),
        Producer::firehose(local_config(NOWHERE)).unwrap(),
    ] {
        producer
            .close_blocking(Some(Duration::from_secs(1)))
            .unwrap();
        let refused = producer
            .try_send("s", UserRecord::new("k", "x"))
            .expect_err("closed");
        assert_eq!(refused.error, Error::Closed);
        assert_eq!(refused.record.data().as_ref(), b"x");
        let refused = producer
            .send_blocking(
                "s",
                UserRecord::new("k", "y"),
                Some(Duration::from_millis(10)),
            )
            .expect_err("closed");
        assert_eq!(refused.error, Error::Closed);
        assert!(!refused.error.is_retryable());
    }
}

#[test]
fn explicit_hash_key_strings_are_checked() {
    for bad in [
        "",
        "abc",
        "-1",
        "+1",
        " 1",
        "1.0",
        "007",
        "340282366920938463463374607431768211456", // 2^128
        "99999999999999999999999999999999999999999999999999",
    ] {
        let err = UserRecord::new("k", "x")
            .with_explicit_hash_key_str(bad)
            .expect_err(bad);
        assert!(
            matches!(err, Error::InvalidExplicitHashKey { .. }),
            "{bad:?}: {err}"
        );
        assert!(err.is_validation());
    }
    let max = UserRecord::new("k", "x")
        .with_explicit_hash_key_str("340282366920938463463374607431768211455")
        .unwrap();
    assert_eq!(max.explicit_hash_key(), Some(u128::MAX));
}

#[test]
fn every_kind_of_config_value_is_checked() {
    let mut config = Config::new();
    // (key, bad value, the key the error names)
    let cases = [
        ("region", "", "region"),
        ("endpoint_url", "", "endpoint_url"),
        ("endpoint_url", "ftp://host", "endpoint_url"),
        ("aws_access_key_id", "", "aws_access_key_id"),
        ("ca_bundle", "", "ca_bundle"),
        ("verify_certificate", "maybe", "verify_certificate"),
        ("VerifyCertificate", "2", "verify_certificate"),
        ("aggregation_max_count", "0", "aggregation_max_count"),
        ("aggregation_max_size", "63", "aggregation_max_size"),
        ("collection_max_count", "0", "collection_max_count"),
        ("collection_max_size", "1024", "collection_max_size"),
        ("record_max_buffered_time", "1h", "record_max_buffered_time"),
        ("record_ttl", "99", "record_ttl"),
        ("RecordTtl", "-5", "record_ttl"),
        ("max_record_size", "1023", "max_record_size"),
        ("max_record_size", "10485761", "max_record_size"),
        ("rate_limit", "10001", "rate_limit"),
        ("shard_bytes_per_second", "0", "shard_bytes_per_second"),
        ("max_connections", "257", "max_connections"),
        ("request_timeout", "99", "request_timeout"),
        ("connect_timeout", "1e3", "connect_timeout"),
        ("min_backoff", "0", "min_backoff"),
        ("max_backoff", "600001", "max_backoff"),
        ("max_buffered_bytes", "1023", "max_buffered_bytes"),
        ("max_buffered_records", "0", "max_buffered_records"),
        (
            "shard_map_refresh_interval",
            "99",
            "shard_map_refresh_interval",
        ),
        ("close_timeout", "x", "close_timeout"),
        ("worker_threads", "0", "worker_threads"),
        ("ThreadPoolSize", "257", "worker_threads"),
        (
            "firehose_newline_delimiter",
            "sometimes",
            "firehose_newline_delimiter",
        ),
        (
            "firehose_pack_max_size",
            "1024001",
            "firehose_pack_max_size",
        ),
        (
            "firehose_bytes_per_second",
            "0",
            "firehose_bytes_per_second",
        ),
        (
            "firehose_records_per_second",
            "-1",
            "firehose_records_per_second",
        ),
        (
            "firehose_requests_per_second",
            "",
            "firehose_requests_per_second",
        ),
        ("rate_limit", "18446744073709551616", "rate_limit"),
    ];
    for (key, value, named) in cases {
        let before = config.clone();
        assert_eq!(
            invalid_key(config.set(key, value)),
            named,
            "{key} = {value:?}"
        );
        assert!(config == before, "a refused value changes nothing ({key})");
    }
    assert!(matches!(
        config.set("no_such_key", "1"),
        Err(Error::UnknownConfigKey(k)) if k == "no_such_key"
    ));
    // Keys are case-sensitive: a near miss is unknown, not ignored.
    assert!(matches!(
        config.set("Region ", "x"),
        Err(Error::UnknownConfigKey(_))
    ));
}

#[test]
fn kpl_properties_errors_name_the_line_or_key() {
    let apply = |text: &str| Config::new().apply_properties(text);
    let err = apply("AggregationEnabled = true\n\n# comment\nno separator here").unwrap_err();
    assert_eq!(invalid_key(Err(err)), "line 4");
    for port in ["0", "65536", "https", "-1"] {
        let err = apply(&format!(
            "KinesisEndpoint = localhost\nKinesisPort = {port}"
        ))
        .unwrap_err();
        assert_eq!(invalid_key(Err(err)), "KinesisPort", "port {port}");
    }
    assert_eq!(invalid_key(apply("RateLimit = 0")), "rate_limit");
    assert_eq!(
        invalid_key(apply("RecordMaxBufferedTime = 10min")),
        "record_max_buffered_time"
    );
    assert_eq!(
        invalid_key(apply("AggregationEnabled = maybe")),
        "aggregation_enabled"
    );
    assert_eq!(
        invalid_key(apply("CollectionMaxCount = 501")),
        "collection_max_count"
    );
    assert!(matches!(
        apply("AggregationMaxSize = 51200\nNoSuchProperty = 1"),
        Err(Error::UnknownConfigKey(k)) if k == "NoSuchProperty"
    ));
    // KPL options Shardline does differently are accepted and ignored.
    apply("MetricsLevel = none\nLogLevel = info\nFailIfThrottled = true").unwrap();
    // `:` separates too, as in Java properties files.
    let mut config = Config::new();
    config
        .apply_properties("Region: eu-west-1\nRateLimit:120")
        .unwrap();
    // A bad file stops at the first bad line; later lines are not applied.
    let mut config = Config::new();
    assert!(
        config
            .apply_properties("RateLimit = 0\nRegion = eu-west-1")
            .is_err()
    );
    assert!(config == Config::new());
}

#[test]
fn inconsistent_configs_are_refused_by_validate_and_new() {
    let cases = [
        (
            local_config(NOWHERE)
                .min_backoff(Duration::from_secs(2))
                .max_backoff(Duration::from_secs(1)),
            "min_backoff",
        ),
        (
            local_config(NOWHERE).static_credentials("AKID", "", None),
            "aws_access_key_id",
        ),
        (
            local_config(NOWHERE).static_credentials("", "secret", None),
            "aws_access_key_id",
        ),
        (
            local_config(NOWHERE)
                .max_record_size(2 * 1024 * 1024)
                .collection_max_size(1024 * 1024),
            "max_record_size",
        ),
    ];
    for (config, key) in cases {
        assert_eq!(invalid_key(config.validate()), key);
        let err = Producer::new(config.clone()).expect_err("refused by new");
        assert_eq!(invalid_key(Err(err)), key);
        let err = Producer::firehose(config).expect_err("refused by firehose");
        assert_eq!(invalid_key(Err(err)), key);
    }
    // Only a session token, set through keys: no usable static credentials.
    let mut config = Config::new().endpoint_url(NOWHERE);
    config.set("aws_session_token", "token").unwrap();
    assert_eq!(invalid_key(config.validate()), "aws_access_key_id");
}
