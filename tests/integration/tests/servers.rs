//! Proves each third-party local server works through the helpers of
//! `shardline-integration`, and pins the quirks documented in
//! `tests/servers/README.md`. Needs `scripts/setup-test-deps.sh` to have run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ScalingType, Shard};
use base64::Engine as _;
use shardline_integration::{
    Kinesalite, KinesisMock, LocalServer, Moto, firehose_client, kinesis_client, list_all_shards,
    parse_hash_key, python, read_all_records, repo_root, wait_for_stream_active,
};

/// `(start, end, open)` of each shard, sorted by start.
fn ranges(shards: &[Shard]) -> Vec<(u128, u128, bool)> {
    let mut r: Vec<_> = shards
        .iter()
        .map(|s| {
            let h = s.hash_key_range().expect("hash key range");
            let open = s
                .sequence_number_range()
                .and_then(|q| q.ending_sequence_number())
                .is_none();
            (
                parse_hash_key(h.starting_hash_key()),
                parse_hash_key(h.ending_hash_key()),
                open,
            )
        })
        .collect();
    r.sort();
    r
}

/// How the open shards' ranges fit together: `(first start, last end,
/// [next.start - prev.end for each neighbour pair])`. AWS: 0, 2^128-1, all 1.
fn coverage(shards: &[Shard]) -> (u128, u128, Vec<i128>) {
    let open: Vec<_> = ranges(shards).into_iter().filter(|r| r.2).collect();
    let steps = open
        .windows(2)
        .map(|w| {
            let (start, prev_end) = (w[1].0, w[0].1);
            if start >= prev_end {
                (start - prev_end) as i128
            } else {
                -((prev_end - start) as i128)
            }
        })
        .collect();
    (open[0].0, open.last().unwrap().1, steps)
}

fn shard_for(shards: &[Shard], hash: u128) -> Vec<String> {
    shards
        .iter()
        .filter(|s| {
            let h = s.hash_key_range().unwrap();
            let open = s
                .sequence_number_range()
                .and_then(|q| q.ending_sequence_number())
                .is_none();
            open && parse_hash_key(h.starting_hash_key()) <= hash
                && hash <= parse_hash_key(h.ending_hash_key())
        })
        .map(|s| s.shard_id().to_owned())
        .collect()
}

/// Puts `n` records with explicit hash keys spread over the key space
/// (including 0 and 2^128-1) and checks every one landed on the open shard
/// whose range holds its key. Returns `(data, shard id)` per record.
async fn put_spread(client: &Client, stream: &str, tag: &str, n: u32) -> BTreeMap<Vec<u8>, String> {
    let shards = list_all_shards(client, stream).await;
    let mut keys: Vec<u128> = (0..n)
        .map(|i| (u128::MAX / u128::from(n)) * u128::from(i) + 12345)
        .collect();
    keys[0] = 0;
    *keys.last_mut().unwrap() = u128::MAX;
    let entries: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            PutRecordsRequestEntry::builder()
                .data(Blob::new(format!("{tag}-{i}").into_bytes()))
                .partition_key(format!("pk-{i}"))
                .explicit_hash_key(k.to_string())
                .build()
                .unwrap()
        })
        .collect();
    let out = client
        .put_records()
        .stream_name(stream)
        .set_records(Some(entries))
        .send()
        .await
        .expect("PutRecords");
    assert_eq!(out.failed_record_count(), Some(0), "{out:?}");
    let mut placed = BTreeMap::new();
    for (i, (res, key)) in out.records().iter().zip(&keys).enumerate() {
        let shard = res.shard_id().expect("shard id").to_owned();
        let want = shard_for(&shards, *key);
        assert_eq!(
            want,
            vec![shard.clone()],
            "record {i} key {key} went to {shard}; open shards holding the key: {want:?}"
        );
        placed.insert(format!("{tag}-{i}").into_bytes(), shard);
    }
    placed
}

async fn check_read_back(client: &Client, stream: &str, placed: &BTreeMap<Vec<u8>, String>) {
    let t0 = Instant::now();
    let got = read_all_records(client, stream).await;
    let got: BTreeMap<Vec<u8>, String> = got
        .into_iter()
        .map(|(shard, r)| (r.data().as_ref().to_vec(), shard))
        .collect();
    assert_eq!(&got, placed);
    eprintln!("read {} records back in {:?}", got.len(), t0.elapsed());
}

fn print_shards(label: &str, shards: &[Shard]) {
    eprintln!("{label}: {} shards", shards.len());
    for s in shards {
        let h = s.hash_key_range().unwrap();
        eprintln!(
            "  {} parent={:?} adj={:?} [{}, {}] end_seq={:?}",
            s.shard_id(),
            s.parent_shard_id(),
            s.adjacent_parent_shard_id(),
            h.starting_hash_key(),
            h.ending_hash_key(),
            s.sequence_number_range()
                .and_then(|q| q.ending_sequence_number())
        );
    }
}

async fn create_stream(client: &Client, name: &str, shards: i32) {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .expect("CreateStream");
    let t0 = Instant::now();
    wait_for_stream_active(client, name).await;
    eprintln!("{name}: ACTIVE after {:?}", t0.elapsed());
}

/// Number of shards in the first ListShards page when asking for `max`.
async fn first_page(client: &Client, stream: &str, max: i32) -> (usize, bool) {
    let out = client
        .list_shards()
        .stream_name(stream)
        .max_results(max)
        .send()
        .await
        .expect("ListShards");
    (out.shards().len(), out.next_token().is_some())
}

const AWS_STEPS: [i128; 3] = [1, 1, 1];

#[tokio::test]
async fn kinesalite_create_put_read_split() {
    let server = Kinesalite::start();
    eprintln!(
        "kinesalite at {} started in {:?}",
        server.endpoint, server.startup
    );
    let client = kinesis_client(&server.endpoint).await;
    create_stream(&client, "s4", 4).await;

    let shards = list_all_shards(&client, "s4").await;
    print_shards("kinesalite s4", &shards);
    assert_eq!(shards.len(), 4);
    // kinesalite's ranges are exactly AWS's: contiguous over 0..=2^128-1.
    assert_eq!(coverage(&shards), (0, u128::MAX, AWS_STEPS.to_vec()));

    // ListShards paging: kinesalite ignores MaxResults and never pages.
    assert_eq!(first_page(&client, "s4", 2).await, (4, false));

    let mut placed = put_spread(&client, "s4", "a", 40).await;
    check_read_back(&client, "s4", &placed).await;

    // SplitShard the first shard at its midpoint.
    let (lo, hi, _) = ranges(&shards)[0];
    let first = shards
        .iter()
        .find(|s| parse_hash_key(s.hash_key_range().unwrap().starting_hash_key()) == lo)
        .unwrap()
        .shard_id()
        .to_owned();
    client
        .split_shard()
        .stream_name("s4")
        .shard_to_split(&first)
        .new_starting_hash_key((lo + (hi - lo) / 2 + 1).to_string())
        .send()
        .await
        .expect("SplitShard");
    wait_for_stream_active(&client, "s4").await;
    let after = list_all_shards(&client, "s4").await;
    print_shards("kinesalite s4 after split", &after);
    assert_eq!(after.len(), 6);
    let children: Vec<_> = after
        .iter()
        .filter(|s| s.parent_shard_id() == Some(first.as_str()))
        .collect();
    assert_eq!(children.len(), 2);
    let parent = after.iter().find(|s| s.shard_id() == first).unwrap();
    assert!(
        parent
            .sequence_number_range()
            .unwrap()
            .ending_sequence_number()
            .is_some(),
        "split parent is closed"
    );
    assert_eq!(coverage(&after), (0, u128::MAX, vec![1, 1, 1, 1]));

    placed.extend(put_spread(&client, "s4", "b", 40).await);
    check_read_back(&client, "s4", &placed).await;
    // kinesalite ignores MaxResults and never pages ListShards or DescribeStream.
    check_150_shards(&client, None).await;
}

/// Creates a 150-shard stream and checks ListShards paging and the open
/// shards' starting keys. `page` is the server's largest ListShards page
/// (`None`: it ignores MaxResults and returns every shard at once).
async fn check_150_shards(client: &Client, page: Option<usize>) {
    create_stream(client, "big", 150).await;
    for max in [None, Some(2), Some(1000), Some(10000)] {
        let out = client
            .list_shards()
            .stream_name("big")
            .set_max_results(max)
            .send()
            .await
            .expect("ListShards");
        let want = match page {
            None => 150,
            Some(p) => max.map_or(p, |m| (m as usize).min(p)),
        };
        assert_eq!(out.shards().len(), want, "MaxResults={max:?}");
        assert_eq!(out.next_token().is_some(), want < 150, "MaxResults={max:?}");
    }
    let all = list_all_shards(client, "big").await;
    assert_eq!(all.len(), 150);
    assert_eq!(coverage(&all), (0, u128::MAX, vec![1; 149]));
    // For a shard count that is not a power of two, floor(2^128/n) ==
    // floor((2^128-1)/n), so both servers agree with AWS's even split.
    let step = u128::MAX / 150;
    let starts: Vec<u128> = ranges(&all).iter().map(|r| r.0).collect();
    let want: Vec<u128> = (0..150).map(|i| i * step).collect();
    assert_eq!(starts, want);
    let d = client
        .describe_stream()
        .stream_name("big")
        .send()
        .await
        .unwrap();
    let d = d.stream_description().unwrap();
    assert_eq!(d.shards().len(), page.unwrap_or(150).min(150));
    assert_eq!(d.has_more_shards(), page.is_some());
}

#[tokio::test]
async fn kinesis_mock_create_put_read_update_shard_count() {
    let server = KinesisMock::start(&[("init", 3)]);
    eprintln!(
        "kinesis-mock at {} / {:?} started in {:?}",
        server.endpoint, server.tls_endpoint, server.startup
    );
    let client = kinesis_client(&server.endpoint).await;
    let t0 = Instant::now();
    wait_for_stream_active(&client, "init").await;
    eprintln!("init: ACTIVE after {:?}", t0.elapsed());
    assert_eq!(list_all_shards(&client, "init").await.len(), 3);

    create_stream(&client, "s4", 4).await;
    let shards = list_all_shards(&client, "s4").await;
    print_shards("kinesis-mock s4", &shards);
    assert_eq!(shards.len(), 4);
    // Contiguous over 0..=2^128-1 (no gap, no overlap), but split with
    // step floor((2^128-1)/n) instead of AWS's 2^128/n: for n = 4 every
    // boundary is lower than AWS's, by 1 after shard 0, 2 after shard 1, 3
    // after shard 2; the last shard absorbs the difference up to 2^128-1.
    assert_eq!(coverage(&shards), (0, u128::MAX, AWS_STEPS.to_vec()));
    let step = u128::MAX / 4;
    let starts: Vec<u128> = ranges(&shards).iter().map(|r| r.0).collect();
    assert_eq!(starts, vec![0, step, 2 * step, 3 * step]);
    let aws_starts: Vec<u128> = (0..4u128).map(|i| i * (1u128 << 126)).collect();
    let diffs: Vec<u128> = aws_starts.iter().zip(&starts).map(|(a, k)| a - k).collect();
    assert_eq!(diffs, vec![0, 1, 2, 3]);

    // ListShards honours MaxResults (up to 100) and returns a NextToken.
    assert_eq!(first_page(&client, "s4", 2).await, (2, true));

    let mut placed = put_spread(&client, "s4", "a", 40).await;
    check_read_back(&client, "s4", &placed).await;

    client
        .update_shard_count()
        .stream_name("s4")
        .target_shard_count(8)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .expect("UpdateShardCount");
    let t0 = Instant::now();
    wait_for_stream_active(&client, "s4").await;
    eprintln!("s4: ACTIVE after UpdateShardCount in {:?}", t0.elapsed());
    let after = list_all_shards(&client, "s4").await;
    print_shards("kinesis-mock s4 after UpdateShardCount(8)", &after);
    // 4 -> 8 splits every parent in two: 4 closed parents + 8 open children,
    // each child inside its parent's range, open shards contiguous.
    assert_eq!(after.len(), 12);
    let closed: Vec<_> = after
        .iter()
        .filter(|s| {
            s.sequence_number_range()
                .unwrap()
                .ending_sequence_number()
                .is_some()
        })
        .collect();
    assert_eq!(closed.len(), 4);
    for parent in &closed {
        // kinesis-mock reports i64::MAX as a closed shard's EndingSequenceNumber.
        assert_eq!(
            parent
                .sequence_number_range()
                .unwrap()
                .ending_sequence_number(),
            Some("9223372036854775807")
        );
        let pr = parent.hash_key_range().unwrap();
        let (pa, pb) = (
            parse_hash_key(pr.starting_hash_key()),
            parse_hash_key(pr.ending_hash_key()),
        );
        let kids: Vec<_> = after
            .iter()
            .filter(|s| s.parent_shard_id() == Some(parent.shard_id()))
            .collect();
        assert_eq!(kids.len(), 2, "children of {}", parent.shard_id());
        let kr = ranges(&kids.into_iter().cloned().collect::<Vec<_>>());
        assert_eq!((kr[0].0, kr[1].1), (pa, pb));
        assert_eq!(kr[1].0, kr[0].1 + 1);
    }
    assert_eq!(coverage(&after), (0, u128::MAX, vec![1; 7]));
    placed.extend(put_spread(&client, "s4", "b", 40).await);
    check_read_back(&client, "s4", &placed).await;
    // kinesis-mock pages ListShards and DescribeStream at 100 shards at most,
    // whatever MaxResults says above 100.
    check_150_shards(&client, Some(100)).await;
}

fn s3_tool(endpoint: &str, cmd: &str, bucket: &str) -> serde_json::Value {
    let out = std::process::Command::new(python())
        .arg(repo_root().join("tests/servers/s3_tool.py"))
        .args([cmd, endpoint, bucket])
        .output()
        .expect("run s3_tool.py");
    assert!(
        out.status.success(),
        "s3_tool.py {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("s3_tool.py prints JSON")
}

fn s3_objects(endpoint: &str, bucket: &str) -> Vec<(String, Vec<u8>)> {
    let v = s3_tool(endpoint, "dump", bucket);
    v["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let data = base64::engine::general_purpose::STANDARD
                .decode(o["data_b64"].as_str().unwrap())
                .unwrap();
            (o["key"].as_str().unwrap().to_owned(), data)
        })
        .collect()
}

#[tokio::test]
async fn moto_firehose_direct_put_writes_s3_objects() {
    use aws_sdk_firehose::primitives::Blob;
    use aws_sdk_firehose::types::{
        BufferingHints, CompressionFormat, DeliveryStreamStatus, DeliveryStreamType,
        ExtendedS3DestinationConfiguration, Record,
    };
    let server = Moto::start();
    eprintln!(
        "moto at {} started in {:?}",
        server.endpoint, server.startup
    );
    s3_tool(&server.endpoint, "create-bucket", "sink");

    let fh = firehose_client(&server.endpoint).await;
    fh.create_delivery_stream()
        .delivery_stream_name("fh")
        .delivery_stream_type(DeliveryStreamType::DirectPut)
        .extended_s3_destination_configuration(
            ExtendedS3DestinationConfiguration::builder()
                .role_arn("arn:aws:iam::123456789012:role/firehose")
                .bucket_arn("arn:aws:s3:::sink")
                .prefix("out/")
                // moto echoes back only what it was given, and the SDK fails to
                // parse a DescribeDeliveryStream without CompressionFormat.
                .compression_format(CompressionFormat::Uncompressed)
                .buffering_hints(
                    BufferingHints::builder()
                        .size_in_mbs(128)
                        .interval_in_seconds(900)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("CreateDeliveryStream");
    let desc = fh
        .describe_delivery_stream()
        .delivery_stream_name("fh")
        .send()
        .await
        .expect("DescribeDeliveryStream");
    let status = desc
        .delivery_stream_description()
        .map(|d| d.delivery_stream_status().clone());
    // moto creates delivery streams ACTIVE at once.
    assert_eq!(status, Some(DeliveryStreamStatus::Active));

    let batch1: Vec<Vec<u8>> = (0..3).map(|i| format!("rec-{i}\n").into_bytes()).collect();
    let batch2: Vec<Vec<u8>> = vec![vec![0u8, 1, 2, 255], b"tail\n".to_vec()];
    let mut objects_after = Vec::new();
    for batch in [&batch1, &batch2] {
        let records: Vec<_> = batch
            .iter()
            .map(|d| {
                Record::builder()
                    .data(Blob::new(d.clone()))
                    .build()
                    .unwrap()
            })
            .collect();
        let out = fh
            .put_record_batch()
            .delivery_stream_name("fh")
            .set_records(Some(records))
            .send()
            .await
            .expect("PutRecordBatch");
        assert_eq!(out.failed_put_count(), 0);
        assert_eq!(out.request_responses().len(), batch.len());
        // Read S3 right after the call returns: no waiting, no polling.
        objects_after.push(s3_objects(&server.endpoint, "sink"));
    }
    for (i, objs) in objects_after.iter().enumerate() {
        eprintln!(
            "after PutRecordBatch #{}: {:?}",
            i + 1,
            objs.iter().map(|(k, d)| (k, d.len())).collect::<Vec<_>>()
        );
    }
    // moto writes synchronously, one object per PutRecordBatch call, holding
    // the records' bytes concatenated (no delimiter added), buffering hints ignored.
    assert_eq!(objects_after[0].len(), 1);
    assert_eq!(objects_after[0][0].1, batch1.concat());
    assert!(
        objects_after[0][0].0.starts_with("out/"),
        "{:?}",
        objects_after[0][0].0
    );
    let all = &objects_after[1];
    assert_eq!(all.len(), 2);
    let mut datas: Vec<_> = all.iter().map(|(_, d)| d.clone()).collect();
    datas.sort();
    let mut want = vec![batch1.concat(), batch2.concat()];
    want.sort();
    assert_eq!(datas, want);
}

/// A server's process (group) is gone and reaped after Drop, also when the
/// test panics while holding it.
#[test]
fn servers_are_stopped_and_reaped_on_drop_and_panic() {
    fn gone(pid: u32) -> bool {
        // A zombie would still have /proc/PID; a reaped process has none.
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    }
    for start in [
        (|| Kinesalite::start()) as fn() -> LocalServer,
        || KinesisMock::start(&[]),
        || Moto::start(),
    ] {
        let server = start();
        let pid = server.pid().unwrap();
        assert!(!gone(pid));
        let t0 = Instant::now();
        drop(server);
        eprintln!("stopped {pid} in {:?}", t0.elapsed());
        assert!(gone(pid), "pid {pid} still there after drop");

        let (tx, rx) = std::sync::mpsc::channel();
        let res = std::panic::catch_unwind(move || {
            let server = start();
            tx.send(server.pid().unwrap()).unwrap();
            panic!("test panics while holding the server");
        });
        assert!(res.is_err());
        let pid = rx.recv().unwrap();
        assert!(gone(pid), "pid {pid} still there after a panic");
    }
}

/// kinesis-mock ignores SIGTERM for a long time once it has served HTTPS;
/// Drop uses SIGKILL, so teardown stays fast after a TLS request.
#[tokio::test]
async fn kinesis_mock_stops_fast_after_serving_https() {
    let server = KinesisMock::start(&[]);
    let tls = server.tls_endpoint.clone().unwrap();
    let port: u16 = tls.rsplit(':').next().unwrap().parse().unwrap();
    // One HTTPS request; curl -k because the certificate is self-signed.
    let out = std::process::Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .args(["-H", "Content-Type: application/x-amz-json-1.1"])
        .args(["-H", "X-Amz-Target: Kinesis_20131202.ListStreams"])
        .args(["-d", "{}", &format!("https://127.0.0.1:{port}/")])
        .output()
        .expect("curl");
    let code = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("kinesis-mock HTTPS answered {code}");
    assert!(code.starts_with('2') || code.starts_with('4'), "{code}");
    let pid = server.pid().unwrap();
    let t0 = Instant::now();
    drop(server);
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}
