//! Requests AWS would refuse are refused with AWS's error types, and
//! malformed requests get a 400, never a panic or a dropped connection.

mod common;

use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use common::{blob, error_code, error_message, kinesis};
use shardline_emulator::{Emulator, EmulatorConfig};

fn entry(key: &str, data: Vec<u8>) -> PutRecordsRequestEntry {
    PutRecordsRequestEntry::builder()
        .partition_key(key)
        .data(blob(data))
        .build()
        .unwrap()
}

async fn emulator() -> Emulator {
    Emulator::start(
        EmulatorConfig::default()
            .with_stream("v", 1)
            .without_limits(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_records_batch_limits() {
    let emulator = emulator().await;
    let client = kinesis(&emulator.endpoint());

    let too_many: Vec<_> = (0..501).map(|i| entry(&i.to_string(), vec![1])).collect();
    let e = client
        .put_records()
        .stream_name("v")
        .set_records(Some(too_many))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&e).as_deref(), Some("ValidationException"));
    assert!(
        error_message(&e).contains("less than or equal to 500"),
        "{}",
        error_message(&e)
    );

    // Six records of 1,000,000 bytes: each fits, the request (> 5 MiB) does not.
    let big: Vec<_> = (0..6)
        .map(|i| entry(&i.to_string(), vec![7; 1_000_000]))
        .collect();
    let e = client
        .put_records()
        .stream_name("v")
        .set_records(Some(big))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&e).as_deref(), Some("InvalidArgumentException"));
    assert!(error_message(&e).contains("5 MB"), "{}", error_message(&e));
    assert!(
        emulator.records("v").is_empty(),
        "a refused request stores nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_size_and_key_limits() {
    let emulator = emulator().await;
    let client = kinesis(&emulator.endpoint());
    let mib = 1024 * 1024;

    // Data alone over 1 MiB: constraint violation on `data`.
    let e = client
        .put_record()
        .stream_name("v")
        .partition_key("k")
        .data(blob(vec![0; mib + 1]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&e).as_deref(), Some("ValidationException"));
    assert!(
        error_message(&e).contains("at 'data'"),
        "{}",
        error_message(&e)
    );

    // Data exactly 1 MiB plus a key: over the data + key limit.
    let e = client
        .put_record()
        .stream_name("v")
        .partition_key("k")
        .data(blob(vec![0; mib]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&e).as_deref(), Some("InvalidArgumentException"));

    // Same inside PutRecords, with AWS's member path.
    let e = client
        .put_records()
        .stream_name("v")
        .records(entry("a", vec![1]))
        .records(entry("b", vec![0; mib + 1]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&e).as_deref(), Some("ValidationException"));
    assert!(
        error_message(&e).contains("records.2.member.data"),
        "{}",
        error_message(&e)
    );

    // Partition keys: 1 to 256 characters (characters, not bytes).
    let e = client
        .put_record()
        .stream_name("v")
        .partition_key("")
        .data(blob("x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&e).as_deref(), Some("ValidationException"));
    assert!(error_message(&e).contains("greater than or equal to 1"));
    let e = client
        .put_record()
        .stream_name("v")
        .partition_key("k".repeat(257))
        .data(blob("x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&e).as_deref(), Some("ValidationException"));
    assert!(error_message(&e).contains("less than or equal to 256"));
    client
        .put_record()
        .stream_name("v")
        .partition_key("é".repeat(256))
        .data(blob("x"))
        .send()
        .await
        .unwrap();

    // Two bad members are reported together, as AWS does.
    let e = client
        .put_records()
        .stream_name("v")
        .records(entry("", vec![1]))
        .records(
            PutRecordsRequestEntry::builder()
                .partition_key("k")
                .explicit_hash_key("01")
                .data(blob("x"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert!(
        error_message(&e).starts_with("2 validation errors detected"),
        "{}",
        error_message(&e)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_hash_keys_must_be_decimals_in_range() {
    let emulator = emulator().await;
    let client = kinesis(&emulator.endpoint());
    for bad in ["abc", "-1", "01", "1.5"] {
        let e = client
            .put_record()
            .stream_name("v")
            .partition_key("k")
            .explicit_hash_key(bad)
            .data(blob("x"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            error_code(&e).as_deref(),
            Some("ValidationException"),
            "{bad}"
        );
    }
    // 2^128 matches the pattern but is out of range.
    let e = client
        .put_record()
        .stream_name("v")
        .partition_key("k")
        .explicit_hash_key("340282366920938463463374607431768211456")
        .data(blob("x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&e).as_deref(), Some("InvalidArgumentException"));
    assert!(error_message(&e).contains("[0, 2^128-1]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_streams_shards_and_iterators() {
    let emulator = emulator().await;
    let client = kinesis(&emulator.endpoint());
    let e = client
        .put_record()
        .stream_name("nope")
        .partition_key("k")
        .data(blob("x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&e).as_deref(), Some("ResourceNotFoundException"));
    assert_eq!(
        error_message(&e),
        "Stream nope under account 123456789012 not found."
    );
    let e = client
        .put_records()
        .stream_arn("arn:aws:kinesis:us-east-1:123456789012:stream/nope")
        .records(entry("k", vec![1]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&e).as_deref(), Some("ResourceNotFoundException"));
    let e = client
        .get_shard_iterator()
        .stream_name("v")
        .shard_id("shardId-000000000009")
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&e).as_deref(), Some("ResourceNotFoundException"));
    let e = client
        .get_records()
        .shard_iterator("bm90IGFuIGl0ZXJhdG9y")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&e).as_deref(), Some("InvalidArgumentException"));
    let e = client
        .create_stream()
        .stream_name("bad name!")
        .shard_count(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&e).as_deref(), Some("ValidationException"));
}

/// Raw HTTP: malformed JSON, bad base64, a missing member, an unknown
/// operation and an unsupported content type all get AWS-style 400s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_aws_style_400s() {
    let emulator = emulator().await;
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "application/x-amz-json-1.1",
            "Kinesis_20131202.PutRecords",
            "{not json",
            "SerializationException",
        ),
        (
            "application/x-amz-json-1.1",
            "Kinesis_20131202.PutRecord",
            r#"{"StreamName":"v","PartitionKey":"k","Data":"@@@"}"#,
            "SerializationException",
        ),
        (
            "application/x-amz-json-1.1",
            "Kinesis_20131202.PutRecord",
            r#"{"StreamName":"v","Data":"eA=="}"#,
            "ValidationException",
        ),
        (
            "application/x-amz-json-1.1",
            "Kinesis_20131202.PutRecords",
            r#"{"StreamName":"v","Records":"x"}"#,
            "SerializationException",
        ),
        (
            "application/x-amz-json-1.1",
            "Kinesis_20131202.PutRecord",
            r#"{"Data":"eA==","PartitionKey":"k"}"#,
            "ValidationException",
        ),
        (
            "application/x-amz-json-1.1",
            "Kinesis_20131202.Frobnicate",
            "{}",
            "UnknownOperationException",
        ),
        (
            "application/x-amz-json-1.1",
            "Nope.PutRecord",
            "{}",
            "UnknownOperationException",
        ),
        (
            "application/x-amz-cbor-1.1",
            "Kinesis_20131202.PutRecord",
            "\u{a0}",
            "UnsupportedMediaTypeException",
        ),
    ];
    for (content_type, target, body, code) in cases {
        let (status, answer) = post(&emulator, content_type, target, body).await;
        assert_eq!(status, 400, "{target} {body}: {answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["__type"], *code, "{target} {body}: {answer}");
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Still serving.
    let (status, _) = post(
        &emulator,
        "application/x-amz-json-1.1",
        "Kinesis_20131202.ListStreams",
        "{}",
    )
    .await;
    assert_eq!(status, 200);
}

async fn post(emulator: &Emulator, content_type: &str, target: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(emulator.local_addr())
        .await
        .unwrap();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nX-Amz-Target: {target}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.unwrap();
    let status = answer[9..12].parse().unwrap();
    (status, answer.split_once("\r\n\r\n").unwrap().1.to_owned())
}
