//! Round trips through aws-sdk-kinesis and aws-sdk-firehose: streams are
//! created, listed and described, records are written and read back, and
//! routing follows the MD5 of the partition key.

mod common;

use aws_sdk_kinesis::types::{
    PutRecordsRequestEntry, ShardFilter, ShardFilterType, ShardIteratorType,
};
use common::{blob, kinesis};
use shardline_emulator::{Emulator, EmulatorConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_records_and_read_them_back_from_every_shard() {
    let emulator = Emulator::start(EmulatorConfig::default().with_stream("rt", 4))
        .await
        .unwrap();
    let client = kinesis(&emulator.endpoint());

    let entries: Vec<_> = (0..100)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("key-{i}"))
                .data(blob(format!("record {i}")))
                .build()
                .unwrap()
        })
        .collect();
    let put = client
        .put_records()
        .stream_name("rt")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    assert_eq!(put.failed_record_count(), Some(0));
    assert_eq!(put.records().len(), 100);

    // Every shard got something and the routing is the MD5 range.
    let shards = client.list_shards().stream_name("rt").send().await.unwrap();
    let shards = shards.shards();
    assert_eq!(shards.len(), 4);
    let mut read_back = Vec::new();
    for shard in shards {
        let range = shard.hash_key_range().unwrap();
        let (start, end): (u128, u128) = (
            range.starting_hash_key().parse().unwrap(),
            range.ending_hash_key().parse().unwrap(),
        );
        let iterator = client
            .get_shard_iterator()
            .stream_name("rt")
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator
            .unwrap();
        let got = client
            .get_records()
            .shard_iterator(iterator)
            .send()
            .await
            .unwrap();
        assert!(
            !got.records().is_empty(),
            "{} got no records",
            shard.shard_id()
        );
        assert!(
            got.next_shard_iterator().is_some(),
            "open shards keep an iterator"
        );
        let mut last: Option<String> = None;
        for r in got.records() {
            let key = r.partition_key().unwrap();
            let hash = u128::from_be_bytes(md5_digest(key));
            assert!((start..=end).contains(&hash), "misrouted {key}");
            // Equal-width decimals: string order is numeric order.
            let seq = r.sequence_number().to_owned();
            assert_eq!(seq.len(), 56);
            if let Some(prev) = &last {
                assert!(seq > *prev, "{seq} after {prev}");
            }
            last = Some(seq);
            read_back.push(String::from_utf8(r.data().as_ref().to_vec()).unwrap());
        }
    }
    read_back.sort();
    let mut expected: Vec<_> = (0..100).map(|i| format!("record {i}")).collect();
    expected.sort();
    assert_eq!(read_back, expected);
    assert_eq!(emulator.records("rt").len(), 100);
    let stats = emulator.stats();
    assert_eq!(stats.streams["rt"].accepted_records, 100);
    assert_eq!(stats.requests.by_operation["Kinesis.PutRecords"], 1);
}

fn md5_digest(key: &str) -> [u8; 16] {
    use md5::{Digest, Md5};
    Md5::digest(key.as_bytes()).into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_hash_key_and_stream_arn_address_records() {
    let emulator = Emulator::start(EmulatorConfig::default().with_stream("arn", 2))
        .await
        .unwrap();
    let client = kinesis(&emulator.endpoint());
    let summary = client
        .describe_stream_summary()
        .stream_name("arn")
        .send()
        .await
        .unwrap();
    let summary = summary.stream_description_summary().unwrap();
    assert_eq!(summary.open_shard_count(), 2);
    let arn = summary.stream_arn().to_owned();
    assert_eq!(arn, "arn:aws:kinesis:us-east-1:123456789012:stream/arn");

    let put = client
        .put_record()
        .stream_arn(&arn)
        .partition_key("anything")
        .explicit_hash_key((u128::MAX).to_string())
        .data(blob("last"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.shard_id(), "shardId-000000000001");
    let put = client
        .put_record()
        .stream_arn(&arn)
        .partition_key("anything")
        .explicit_hash_key("0")
        .data(blob("first"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.shard_id(), "shardId-000000000000");

    // AT_SEQUENCE_NUMBER / AFTER_SEQUENCE_NUMBER / LATEST position as AWS does.
    let seq = put.sequence_number().to_owned();
    let at = client
        .get_shard_iterator()
        .stream_arn(&arn)
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(&seq)
        .send()
        .await
        .unwrap();
    let got = client
        .get_records()
        .shard_iterator(at.shard_iterator().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(got.records().len(), 1);
    assert_eq!(got.records()[0].data().as_ref(), b"first");
    for kind in [
        ShardIteratorType::AfterSequenceNumber,
        ShardIteratorType::Latest,
    ] {
        let mut request = client
            .get_shard_iterator()
            .stream_name("arn")
            .shard_id("shardId-000000000000")
            .shard_iterator_type(kind);
        request = request.starting_sequence_number(&seq);
        let it = request.send().await.unwrap();
        let got = client
            .get_records()
            .shard_iterator(it.shard_iterator().unwrap())
            .send()
            .await
            .unwrap();
        assert!(got.records().is_empty());
    }
    let stored = emulator.records("arn");
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].explicit_hash_key.as_deref(), Some("0"));
    assert_eq!(stored[1].hash_key, u128::MAX);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_created_listed_described_paged_and_deleted() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let client = kinesis(&emulator.endpoint());
    client
        .create_stream()
        .stream_name("paged")
        .shard_count(7)
        .send()
        .await
        .unwrap();
    emulator.create_stream("other", 1);
    let names = client.list_streams().send().await.unwrap();
    assert_eq!(names.stream_names(), ["other", "paged"]);

    // ListShards pages with MaxResults / NextToken.
    let mut ids = Vec::new();
    let mut page = client
        .list_shards()
        .stream_name("paged")
        .max_results(3)
        .send()
        .await
        .unwrap();
    loop {
        ids.extend(page.shards().iter().map(|s| s.shard_id().to_owned()));
        let Some(token) = page.next_token().map(str::to_owned) else {
            break;
        };
        page = client
            .list_shards()
            .next_token(token)
            .max_results(3)
            .send()
            .await
            .unwrap();
    }
    assert_eq!(ids.len(), 7);
    assert_eq!(ids[6], "shardId-000000000006");
    let filtered = client
        .list_shards()
        .stream_name("paged")
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AfterShardId)
                .shard_id("shardId-000000000004")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(filtered.shards().len(), 2);

    let described = client
        .describe_stream()
        .stream_name("paged")
        .limit(5)
        .send()
        .await
        .unwrap();
    let description = described.stream_description().unwrap();
    assert_eq!(description.shards().len(), 5);
    assert!(description.has_more_shards());
    let last = description.shards()[6 - 2].hash_key_range().unwrap();
    assert_ne!(last.starting_hash_key(), "0");

    let duplicate = client
        .create_stream()
        .stream_name("paged")
        .shard_count(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        common::error_code(&duplicate).as_deref(),
        Some("ResourceInUseException")
    );

    client
        .delete_stream()
        .stream_name("paged")
        .send()
        .await
        .unwrap();
    let gone = client
        .describe_stream()
        .stream_name("paged")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        common::error_code(&gone).as_deref(),
        Some("ResourceNotFoundException")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firehose_round_trip_keeps_arrival_order() {
    use aws_sdk_firehose::primitives::Blob;
    use aws_sdk_firehose::types::Record;

    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let client = common::firehose(&emulator.endpoint());
    client
        .create_delivery_stream()
        .delivery_stream_name("logs")
        .send()
        .await
        .unwrap();
    let described = client
        .describe_delivery_stream()
        .delivery_stream_name("logs")
        .send()
        .await
        .unwrap();
    assert_eq!(
        described
            .delivery_stream_description()
            .unwrap()
            .delivery_stream_name(),
        "logs"
    );
    client
        .put_record()
        .delivery_stream_name("logs")
        .record(
            Record::builder()
                .data(Blob::new("line 0\n"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let batch: Vec<_> = (1..=3)
        .map(|i| {
            Record::builder()
                .data(Blob::new(format!("line {i}\n")))
                .build()
                .unwrap()
        })
        .collect();
    let out = client
        .put_record_batch()
        .delivery_stream_name("logs")
        .set_records(Some(batch))
        .send()
        .await
        .unwrap();
    assert_eq!(out.failed_put_count(), 0);
    assert_eq!(out.request_responses().len(), 3);
    let listed = client.list_delivery_streams().send().await.unwrap();
    assert_eq!(listed.delivery_stream_names(), ["logs"]);

    let delivered: Vec<_> = emulator
        .delivered("logs")
        .iter()
        .map(|b| b.to_vec())
        .collect();
    assert_eq!(
        delivered,
        ["line 0\n", "line 1\n", "line 2\n", "line 3\n"].map(|s| s.as_bytes().to_vec())
    );

    // The same bytes through the admin endpoint.
    let admin = http_get(&emulator, "/_emulator/delivered/logs").await;
    let admin: Vec<String> = serde_json::from_str(&admin).unwrap();
    assert_eq!(admin.len(), 4);

    client
        .delete_delivery_stream()
        .delivery_stream_name("logs")
        .send()
        .await
        .unwrap();
    let missing = client
        .put_record()
        .delivery_stream_name("logs")
        .record(Record::builder().data(Blob::new("x")).build().unwrap())
        .send()
        .await
        .unwrap_err();
    assert!(
        missing
            .into_service_error()
            .is_resource_not_found_exception()
    );
}

/// A minimal HTTP/1.1 GET over a TCP socket.
pub async fn http_get(emulator: &Emulator, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(emulator.local_addr())
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.unwrap();
    answer.split_once("\r\n\r\n").unwrap().1.to_owned()
}
