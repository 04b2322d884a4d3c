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
async fn put_spread(
    client: &Client,
    stream: &str,
    tag: &str,
    n: u32,
) -> BTreeMap<Vec<u8>, String> {
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
    eprintln!("kinesalite at {} started in {:?}", server.endpoint, server.startup);
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
    let cov = coverage(&shards);
    eprintln!("kinesis-mock coverage: {cov:?}");

    let (n, more) = first_page(&client, "s4", 2).await;
    eprintln!("kinesis-mock ListShards MaxResults=2: {n} shards, next token: {more}");

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
    eprintln!("kinesis-mock coverage after: {:?}", coverage(&after));
    placed.extend(put_spread(&client, "s4", "b", 40).await);
    check_read_back(&client, "s4", &placed).await;
}
