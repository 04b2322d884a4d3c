//! Micro-benchmarks for KPL aggregation, one group per question:
//!
//! - `partition_key_hash`: what does routing a record by its key cost?
//! - `aggregation`: how many user records (and MB) per second does packing
//!   into KPL aggregates (`try_add` + `take`, MD5 included) sustain?
//! - `limiter`: what does a shard's rate limiter cost per Kinesis record
//!   (the check and the accounting the collector does for each)?
//! - `collector`: what does filling `PutRecords` requests from the shard
//!   queues cost (queueing sealed aggregates, taking them shard by shard
//!   through their limiters, making each request's record list), per user
//!   record inside those aggregates?
//! - `digest`: how fast are raw MD5 and SHA-256 on this machine, measured in
//!   the same run, so the aggregation figures have a yardstick?
//!
//! Every group measures the CPU time of the benchmark thread
//! (`CLOCK_THREAD_CPUTIME_ID` on Linux), not wall time: the benchmark
//! machines are shared, and wall time there mostly measures how long the
//! thread waited for a core. Elsewhere it falls back to wall time.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use md5::{Digest, Md5};
use sha2::Sha256;
use shardline::UserRecord;
use shardline::aggregation::{Aggregator, KinesisRecord};
use shardline::bench_support::{CollectorInput, Limiter};
use shardline::hash::partition_key_hash;

/// KPL's default `AggregationMaxSize`.
const AGGREGATION_MAX_SIZE: usize = 51_200;
/// KPL's default `AggregationMaxCount` (effectively unlimited).
const AGGREGATION_MAX_COUNT: usize = 4_294_967_295;
/// About 1 MiB of payload per iteration, whatever the record size.
const PAYLOAD_PER_ITERATION: usize = 1 << 20;

/// Criterion measurement: CPU time consumed by the calling thread.
struct ThreadCpuTime;

impl ThreadCpuTime {
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    fn now() -> Duration {
        #[repr(C)]
        struct Timespec {
            seconds: i64,
            nanoseconds: i64,
        }
        const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
        unsafe extern "C" {
            fn clock_gettime(clock: i32, time: *mut Timespec) -> i32;
        }
        let mut time = Timespec {
            seconds: 0,
            nanoseconds: 0,
        };
        // SAFETY: `time` is a valid, writable timespec (two 64-bit fields on
        // 64-bit Linux) and the clock id is a constant the kernel defines.
        let status = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut time) };
        assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
        Duration::new(time.seconds as u64, time.nanoseconds as u32)
    }

    #[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
    fn now() -> Duration {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed()
    }
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        Self::now()
    }
    fn end(&self, start: Duration) -> Duration {
        Self::now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Values are nanoseconds, exactly as wall time's are.
        static WALL_TIME: WallTime = WallTime;
        WALL_TIME.formatter()
    }
}

fn partition_key(i: usize) -> String {
    // UUID-shaped, 36 characters: the common choice of key.
    format!("{:08x}-0000-4000-8000-{:012x}", i as u32, i)
}

fn bench_partition_key_hash(c: &mut Criterion<ThreadCpuTime>) {
    let mut group = c.benchmark_group("partition_key_hash");
    let key = partition_key(12345);
    group.throughput(Throughput::Elements(1));
    group.bench_function("uuid_key_36_chars", |b| {
        b.iter(|| partition_key_hash(black_box(&key)))
    });
    group.finish();
}

/// Distinct keys, one per record: the worst case for the key table.
fn user_records(record_size: usize) -> Vec<UserRecord> {
    let count = PAYLOAD_PER_ITERATION / record_size;
    let payload = Bytes::from(vec![0x5a; record_size]);
    (0..count)
        .map(|i| UserRecord::new(partition_key(i), payload.clone()))
        .collect()
}

/// What the producer's per-shard loop does: add until full, take, repeat.
fn aggregate(records: Vec<UserRecord>) -> Vec<(KinesisRecord, Vec<UserRecord>)> {
    let mut aggregator = Aggregator::new(AGGREGATION_MAX_SIZE, AGGREGATION_MAX_COUNT);
    let mut out = Vec::new();
    for record in records {
        if let Err(record) = aggregator.try_add(record) {
            out.extend(aggregator.take());
            aggregator
                .try_add(record)
                .expect("empty aggregator accepts");
        }
    }
    out.extend(aggregator.take());
    out
}

fn bench_aggregation(c: &mut Criterion<ThreadCpuTime>) {
    let mut group = c.benchmark_group("aggregation");
    for (label, record_size) in [("100B", 100), ("1KiB", 1024), ("10KiB", 10 * 1024)] {
        let records = user_records(record_size);
        let data_bytes: usize = records.iter().map(|r| r.data().len()).sum();
        // Criterion takes one throughput unit per benchmark, so the same
        // work is measured twice: once counted in records, once in bytes.
        for (unit, throughput) in [
            ("records", Throughput::Elements(records.len() as u64)),
            ("bytes", Throughput::Bytes(data_bytes as u64)),
        ] {
            group.throughput(throughput);
            group.bench_with_input(BenchmarkId::new(unit, label), &records, |b, records| {
                b.iter_batched(|| records.clone(), aggregate, BatchSize::LargeInput)
            });
        }
    }
    group.finish();
}

fn bench_limiter(c: &mut Criterion<ThreadCpuTime>) {
    let mut group = c.benchmark_group("limiter");
    // The collector asks the limiter once per Kinesis record: a whole
    // aggregate (~50 KiB) at small record sizes, one record without
    // aggregation. The quota is lifted so every record is admitted (the
    // cost of the check, not of waiting); the clock advances 1 us per
    // record (buckets start empty), so the rolling window keeps moving.
    const CALLS: u64 = 10_000;
    for (label, bytes) in [
        ("100B", 100),
        ("1KiB", 1024),
        ("10KiB", 10 * 1024),
        ("50KiB_aggregate", AGGREGATION_MAX_SIZE),
    ] {
        group.throughput(Throughput::Elements(CALLS));
        group.bench_function(BenchmarkId::new("admit", label), |b| {
            b.iter_batched(
                || {
                    let start = std::time::Instant::now();
                    (Limiter::new(1 << 40, 1 << 40, start), start)
                },
                |(mut limiter, start)| {
                    let mut admitted = 0u64;
                    for i in 0..CALLS {
                        let now = start + Duration::from_micros(i + 1);
                        admitted += u64::from(limiter.admit(black_box(bytes), now));
                    }
                    assert_eq!(admitted, CALLS);
                    limiter
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn bench_collector(c: &mut Criterion<ThreadCpuTime>) {
    let mut group = c.benchmark_group("collector");
    // ~1 MiB of user records per iteration, aggregated (KPL defaults) over
    // 4 shards before the clock starts; counted in user records and in
    // user-data bytes, like `aggregation`.
    for (label, record_size) in [("100B", 100), ("1KiB", 1024), ("10KiB", 10 * 1024)] {
        let records = user_records(record_size);
        let data_bytes: usize = records.iter().map(|r| r.data().len()).sum();
        let count = records.len();
        for (unit, throughput) in [
            ("records", Throughput::Elements(count as u64)),
            ("bytes", Throughput::Bytes(data_bytes as u64)),
        ] {
            group.throughput(throughput);
            group.bench_with_input(BenchmarkId::new(unit, label), &records, |b, records| {
                b.iter_batched(
                    || CollectorInput::new(records.clone(), 4),
                    CollectorInput::collect_all,
                    BatchSize::LargeInput,
                )
            });
        }
    }
    group.finish();
}

fn bench_digest(c: &mut Criterion<ThreadCpuTime>) {
    let mut group = c.benchmark_group("digest");
    let buffer = vec![0x5au8; 1 << 20];
    group.throughput(Throughput::Bytes(buffer.len() as u64));
    group.bench_function("md5_1MiB", |b| b.iter(|| Md5::digest(black_box(&buffer))));
    group.bench_function("sha256_1MiB", |b| {
        b.iter(|| Sha256::digest(black_box(&buffer)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = bench_partition_key_hash, bench_aggregation, bench_limiter, bench_collector, bench_digest
}
criterion_main!(benches);
