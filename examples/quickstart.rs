//! The Shardline demo: produce to a Kinesis stream for a few seconds from
//! several threads, then show what happened.
//!
//! With no `--endpoint`, it starts the project's emulator in-process with
//! the real shard limits on (1 MiB/s and 1,000 records/s per shard), so no
//! AWS account is needed and the rate limiter has something to respect.
//!
//! ```text
//! cargo run --release --example quickstart
//! cargo run --release --example quickstart -- --seconds 10 --threads 8
//! cargo run --release --example quickstart -- --endpoint https://kinesis.eu-west-1.amazonaws.com --stream my-stream
//! ```

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use shardline::aggregation::deaggregate;
use shardline::{Config, Producer, UserRecord};
use shardline_emulator::{Emulator, EmulatorConfig};
use shardline_examples::Latencies;

#[derive(Parser, Debug)]
#[command(about = "Produce to Kinesis with Shardline and report what happened")]
struct Args {
    /// Kinesis endpoint; without one, an in-process emulator is started.
    #[arg(long)]
    endpoint: Option<String>,
    /// Stream to produce to (created in the emulator).
    #[arg(long, default_value = "shardline-quickstart")]
    stream: String,
    /// Shards of the emulator's stream.
    #[arg(long, default_value_t = 4)]
    shards: u32,
    /// How long to produce.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Producing threads.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Bytes of data per record.
    #[arg(long, default_value_t = 200)]
    record_size: usize,
    /// AWS region (the default chain's region if omitted).
    #[arg(long)]
    region: Option<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();

    let emulator = match &args.endpoint {
        Some(_) => None,
        None => Some(Emulator::start_in_background(
            EmulatorConfig::default().with_stream(&args.stream, args.shards),
        )?),
    };
    let mut config = Config::new()
        // A small buffer keeps the backlog (and so the latency) short when
        // the threads produce faster than the shards accept: `send`
        // blocks instead.
        .max_buffered_bytes(8 * 1024 * 1024);
    if let Some(region) = &args.region {
        config = config.region(region);
    }
    match (&emulator, &args.endpoint) {
        (Some(emulator), _) => {
            println!("emulator: {} (shard limits on)", emulator.endpoint());
            // Local servers accept any region and keys; naming a region
            // also keeps the SDK from asking EC2 instance metadata for one.
            config = config
                .endpoint_url(emulator.endpoint())
                .region(args.region.as_deref().unwrap_or("us-east-1"))
                .static_credentials("quickstart", "quickstart", None);
        }
        (None, Some(endpoint)) => config = config.endpoint_url(endpoint),
        (None, None) => unreachable!(),
    }
    let producer = Producer::new(config)?;

    println!(
        "producing {}-byte records to {:?} for {} s from {} threads...",
        args.record_size, args.stream, args.seconds, args.threads
    );
    let latencies = Latencies::default();
    let delivered = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let stop_at = started + Duration::from_secs(args.seconds);
    let sent: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..args.threads)
            .map(|thread| {
                let (producer, latencies) = (&producer, &latencies);
                let (delivered, failed) = (delivered.clone(), failed.clone());
                let (stream, size) = (&args.stream, args.record_size);
                s.spawn(move || {
                    let mut n = 0u64;
                    while Instant::now() < stop_at {
                        let id = format!("{thread}-{n}");
                        let mut data = format!("{{\"id\":\"{id}\",\"pad\":\"").into_bytes();
                        data.resize(size.saturating_sub(2).max(data.len()), b'x');
                        data.extend_from_slice(b"\"}");
                        let key = format!("user-{}", rand::random::<u32>() % 10_000);
                        let (latencies, delivered, failed) =
                            (latencies.clone(), delivered.clone(), failed.clone());
                        let sent_at = Instant::now();
                        let accepted = producer.send_blocking_with_callback(
                            stream,
                            UserRecord::new(key, data),
                            Some(Duration::from_secs(30)),
                            Box::new(move |result| match result {
                                Ok(_) => {
                                    latencies.record_since(sent_at);
                                    delivered.fetch_add(1, Ordering::Relaxed);
                                }
                                Err(e) => {
                                    if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                                        eprintln!("delivery failed: {e}");
                                    }
                                }
                            }),
                        );
                        match accepted {
                            Ok(()) => n += 1,
                            Err(e) => {
                                eprintln!("send refused: {e}");
                                break;
                            }
                        }
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    producer.flush_blocking(Some(Duration::from_secs(60)))?;
    let elapsed = started.elapsed().as_secs_f64();
    let metrics = producer.metrics();
    let totals = &metrics.totals;
    let (p50, p99) = latencies.p50_p99_ms();

    println!();
    println!("records sent        {sent}");
    println!("records delivered   {}", delivered.load(Ordering::Relaxed));
    println!("records failed      {}", failed.load(Ordering::Relaxed));
    println!(
        "throughput          {:.0} records/s, {:.2} MB/s (user data)",
        totals.user_records_put as f64 / elapsed,
        totals.user_records_data_put as f64 / elapsed / 1e6
    );
    println!(
        "aggregation         {} user records in {} Kinesis records, {} requests",
        totals.user_records_put, totals.kinesis_records_put, totals.requests
    );
    println!(
        "throttles, retries  {} throttled attempts, {} failed attempts in all",
        totals.throttled, totals.all_errors
    );
    println!("delivery latency    p50 {p50:.1} ms, p99 {p99:.1} ms (send to acknowledgement)");
    if let Some(stream) = metrics.streams.get(&args.stream) {
        println!("per shard:");
        for (shard, s) in &stream.shards {
            let mib_s = s.kinesis_records_data_put as f64 / elapsed / (1024.0 * 1024.0);
            println!(
                "  {shard}  {:>8} user records  {:.2} MiB/s ({:.0}% of 1 MiB/s)  throttled {}  rate {:.0}%",
                s.user_records_put,
                mib_s,
                mib_s * 100.0,
                s.throttled,
                s.rate_limit_fraction * 100.0
            );
        }
    }
    producer.close_blocking(None)?;

    if let Some(emulator) = &emulator {
        // Read everything back from the server and check every record.
        let mut seen = HashSet::new();
        for record in emulator.records(&args.stream) {
            for user in deaggregate(
                &record.partition_key,
                record.explicit_hash_key.as_deref(),
                &record.data,
            )? {
                seen.insert(user.data);
            }
        }
        let ok = seen.len() as u64 == sent && failed.load(Ordering::Relaxed) == 0;
        println!(
            "read-back check     {} of {sent} records found in the stream: {}",
            seen.len(),
            if ok { "OK" } else { "MISMATCH" }
        );
        if !ok {
            std::process::exit(1);
        }
    }
    Ok(())
}
